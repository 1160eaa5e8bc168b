//! The rate-limit state each provider last reported for each key: how many requests and
//! tokens remain before their resets, and how long a 429 told us to stay away. Generation
//! asks it before calling a candidate (a key known to be exhausted is skipped until its
//! reset, without a call) and tells it what every answer said.
//!
//! A key is named by whose it is (`owner`: a user id, `tenant/<id>` or `operator`), the
//! provider and a fingerprint of the key (never the key itself), so a rotated key starts
//! afresh and one owner's exhaustion never blocks another's.

use super::StoreError;
use crate::provider::Provider;
use crate::secret::ApiKey;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What one answer said about a key's limits. Times are absolute (the headers give
/// durations or times relative to the answer, turned into instants when it arrived).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_remaining: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_reset: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_remaining: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_reset: Option<DateTime<Utc>>,
    /// A 429's `retry-after` (or Gemini's `retryDelay`): nothing goes through before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_until: Option<DateTime<Utc>>,
}

/// Below these, a state is "low" and worth sharing with every instance at once (see
/// [`crate::store::warm::ratelimits`]). The providers do not say what the limit is, so
/// these are absolute: a few requests, or about one large request's tokens.
pub const LOW_REQUESTS: u64 = 5;
pub const LOW_TOKENS: u64 = 20_000;

/// The longest a state is kept after it was observed: analytics shows the last day.
pub const KEEP_AT_MOST: chrono::TimeDelta = chrono::TimeDelta::days(1);
/// How long a state outlives its latest reset (for analytics; it no longer blocks).
pub const KEEP_PAST_RESET: chrono::TimeDelta = chrono::TimeDelta::hours(1);

impl RateLimitState {
    /// Nothing was reported (a provider without rate-limit headers).
    pub fn is_empty(&self) -> bool {
        *self == RateLimitState::default()
    }

    /// Until when a request needing `tokens_needed` tokens would be refused: no
    /// requests left before the requests reset, fewer tokens than needed before the
    /// tokens reset, or a 429's block not over. The latest of those that apply; `None`
    /// when the key may be called now. A count without a reset blocks nothing: there is
    /// no telling when it ends.
    pub fn blocked(&self, tokens_needed: u64, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let future = |t: Option<DateTime<Utc>>| t.filter(|t| *t > now);
        let mut until = future(self.blocked_until);
        if self.requests_remaining == Some(0) {
            until = until.max(future(self.requests_reset));
        }
        if self.tokens_remaining.is_some_and(|t| t < tokens_needed) {
            until = until.max(future(self.tokens_reset));
        }
        until
    }

    /// Blocked, or close to it: what other instances should hear about without delay.
    pub fn low(&self, now: DateTime<Utc>) -> bool {
        self.blocked(0, now).is_some()
            || self.requests_remaining.is_some_and(|r| r <= LOW_REQUESTS)
            || self.tokens_remaining.is_some_and(|t| t <= LOW_TOKENS)
    }

    /// The latest instant the state speaks of.
    pub fn latest(&self) -> Option<DateTime<Utc>> {
        [self.requests_reset, self.tokens_reset, self.blocked_until]
            .into_iter()
            .flatten()
            .max()
    }

    /// When a state observed at `now` is forgotten: a while past its latest reset (it
    /// blocks nothing after that, but analytics may still show it), at most a day.
    pub fn expires_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let past_reset = self.latest().unwrap_or(now).max(now) + KEEP_PAST_RESET;
        past_reset.min(now + KEEP_AT_MOST)
    }
}

/// One key of one owner at one provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyRef {
    /// Whose key: a user id, `tenant/<tenantId>` or `operator`. Opaque here.
    pub owner: String,
    pub provider: Provider,
    /// [`fingerprint`] of the key.
    pub fingerprint: String,
}

/// A short, stable name for a key that does not reveal it (a truncated SHA-256 of a
/// random secret cannot be turned back into it), so it may be stored and compared.
/// Keyless calls (Ollama, Bedrock on the function's role) share the name `none`.
pub fn fingerprint(key: Option<&ApiKey>) -> String {
    let Some(key) = key else {
        return "none".to_owned();
    };
    let mut h = Sha256::new();
    h.update(b"llm-gateway/ratelimit\0");
    h.update(key.expose().as_bytes());
    hex::encode(&h.finalize()[..8])
}

/// What an owner's key last reported, without the key's fingerprint: what the tenant
/// analytics show.
/// Snake case, like every usage answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateLimitReport {
    pub provider: Provider,
    #[serde(flatten)]
    pub state: RateLimitState,
    pub observed_at: DateTime<Utc>,
}

/// Keeps only the newest report per provider (an owner has one key per provider at a
/// time; an older one is a rotated key's), ordered by provider.
pub fn newest_per_provider(mut all: Vec<RateLimitReport>) -> Vec<RateLimitReport> {
    all.sort_by(|a, b| {
        (a.provider.to_string(), b.observed_at).cmp(&(b.provider.to_string(), a.observed_at))
    });
    all.dedup_by(|later, first| later.provider == first.provider);
    all
}

#[async_trait]
pub trait RateLimitBook: Send + Sync {
    /// Records what an answer at `now` said about `key`: it replaces what was known
    /// (the provider's latest word is the truth), unless a newer observation is stored.
    async fn observe(
        &self,
        key: &KeyRef,
        state: &RateLimitState,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The last state observed for `key`, unless it expired.
    async fn last(
        &self,
        key: &KeyRef,
        now: DateTime<Utc>,
    ) -> Result<Option<RateLimitState>, StoreError>;

    /// The newest state per provider of every key of `owner`, unexpired.
    async fn reported(
        &self,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<RateLimitReport>, StoreError>;

    /// Until when `key` must not be called for a request needing `tokens_needed`
    /// tokens (see [`RateLimitState::blocked`]).
    async fn blocked(
        &self,
        key: &KeyRef,
        tokens_needed: u64,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .last(key, now)
            .await?
            .and_then(|s| s.blocked(tokens_needed, now)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn exhausted_requests_tokens_and_429s_block_until_their_reset() {
        let now = at(0);
        let none_left = RateLimitState {
            requests_remaining: Some(0),
            requests_reset: Some(at(2)),
            tokens_remaining: Some(1000),
            tokens_reset: Some(at(5)),
            ..Default::default()
        };
        assert_eq!(none_left.blocked(10, now), Some(at(2)));
        assert_eq!(none_left.blocked(10, at(2)), None, "over at the reset");
        assert_eq!(none_left.blocked(2000, now), Some(at(5)), "the later one");
        assert_eq!(none_left.blocked(2000, at(3)), Some(at(5)));
        let some_left = RateLimitState {
            requests_remaining: Some(3),
            requests_reset: Some(at(2)),
            ..none_left.clone()
        };
        assert_eq!(some_left.blocked(1000, now), None, "exactly enough tokens");
        assert_eq!(some_left.blocked(1001, now), Some(at(5)));
        let told = RateLimitState {
            blocked_until: Some(at(7)),
            ..Default::default()
        };
        assert_eq!(told.blocked(0, now), Some(at(7)));
        assert_eq!(told.blocked(0, at(7)), None);
        let no_reset = RateLimitState {
            requests_remaining: Some(0),
            ..Default::default()
        };
        assert_eq!(no_reset.blocked(0, now), None, "no telling when it ends");
    }

    #[test]
    fn states_are_low_near_exhaustion_and_expire_past_their_reset() {
        let now = at(0);
        assert!(!RateLimitState::default().low(now));
        let plenty = RateLimitState {
            requests_remaining: Some(100),
            tokens_remaining: Some(100_000),
            requests_reset: Some(at(60)),
            ..Default::default()
        };
        assert!(!plenty.low(now));
        assert!(
            RateLimitState {
                requests_remaining: Some(2),
                ..plenty.clone()
            }
            .low(now)
        );
        assert_eq!(plenty.expires_at(now), at(60) + KEEP_PAST_RESET);
        let far = RateLimitState {
            blocked_until: Some(now + TimeDelta::days(3)),
            ..Default::default()
        };
        assert_eq!(far.expires_at(now), now + KEEP_AT_MOST);
        assert_eq!(
            RateLimitState::default().expires_at(now),
            now + KEEP_PAST_RESET
        );
    }

    #[test]
    fn fingerprints_name_a_key_without_showing_it() {
        let key = ApiKey::new("sk-proj-abcdefghijklmnopqrstuvwxyz0123456789".into());
        let f = fingerprint(Some(&key));
        assert_eq!(f.len(), 16);
        assert_eq!(f, fingerprint(Some(&key)));
        assert!(!key.expose().contains(&f) && !f.contains("sk-"));
        let other = ApiKey::new("sk-proj-zyxwvutsrqponmlkjihgfedcba9876543210".into());
        assert_ne!(f, fingerprint(Some(&other)));
        assert_eq!(fingerprint(None), "none");
    }
}
