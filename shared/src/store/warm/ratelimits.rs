//! Rate-limit states in memory.
//!
//! - [`MemoryRateLimits`]: the whole book, per process (the local server: it makes every
//!   call of its deployment, so its memory knows every answer).
//! - [`RateLimitWindow`]: in front of a shared book (DynamoDB, on AWS), so a generate
//!   request does not pay a read per candidate: a key's state is read at most once per
//!   `window` per instance, and this instance's own observations are seen at once.
//!
//! Writes through the window are filtered, so that the shared book does not cost a write
//! per request: an observation is written when it is low or blocking (other instances
//! must hear of an exhausted key before they call it; a few seconds late is a wasted
//! call each), or when this instance last wrote the key more than [`SHARE_EVERY`] ago
//! (so a healthy key's shared state stays recent, for analytics and for the recovery
//! after a reset). Anything in between only changes counts far from their limit.

use crate::store::StoreError;
use crate::store::ratelimits::{
    KeyRef, RateLimitBook, RateLimitReport, RateLimitState, newest_per_provider,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many keys one process remembers: beyond this, expired states go first, then the
/// oldest observations.
const MAX_KEYS: usize = 10_000;

/// An unexpired observation: the state, when it was observed, when it is forgotten.
#[derive(Clone)]
struct Observed {
    state: RateLimitState,
    at: DateTime<Utc>,
    expires: DateTime<Utc>,
}

#[derive(Default)]
pub struct MemoryRateLimits {
    keys: Mutex<HashMap<KeyRef, Observed>>,
}

#[async_trait]
impl RateLimitBook for MemoryRateLimits {
    async fn observe(
        &self,
        key: &KeyRef,
        state: &RateLimitState,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.get(key).is_some_and(|o| o.at > now) {
            return Ok(()); // a newer answer is known already
        }
        if keys.len() >= MAX_KEYS && !keys.contains_key(key) {
            keys.retain(|_, o| o.expires > now);
            if keys.len() >= MAX_KEYS
                && let Some(oldest) = keys
                    .iter()
                    .min_by_key(|(_, o)| o.at)
                    .map(|(k, _)| k.clone())
            {
                keys.remove(&oldest);
            }
        }
        keys.insert(
            key.clone(),
            Observed {
                state: state.clone(),
                at: now,
                expires: state.expires_at(now),
            },
        );
        Ok(())
    }

    async fn last(
        &self,
        key: &KeyRef,
        now: DateTime<Utc>,
    ) -> Result<Option<RateLimitState>, StoreError> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        Ok(keys
            .get(key)
            .filter(|o| o.expires > now)
            .map(|o| o.state.clone()))
    }

    async fn reported(
        &self,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<RateLimitReport>, StoreError> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let all = keys
            .iter()
            .filter(|(k, o)| k.owner == owner && o.expires > now)
            .map(|(k, o)| RateLimitReport {
                provider: k.provider,
                state: o.state.clone(),
                observed_at: o.at,
            })
            .collect();
        Ok(newest_per_provider(all))
    }
}

/// How often this instance writes a key's state that is neither low nor blocking.
pub const SHARE_EVERY: Duration = Duration::from_secs(5);
/// The default read window (like the other warm caches, but short: a block matters
/// within seconds).
pub const READ_WINDOW: Duration = Duration::from_secs(1);

type Held = (Instant, Option<RateLimitState>, Option<DateTime<Utc>>);

pub struct RateLimitWindow {
    inner: Arc<dyn RateLimitBook>,
    window: Duration,
    /// key -> when read or observed here, the state then, and when it was observed (for
    /// this instance's own observations: an older answer arriving late must not
    /// replace a newer one).
    reads: Mutex<HashMap<KeyRef, Held>>,
    /// key -> when this instance last wrote it.
    writes: Mutex<HashMap<KeyRef, Instant>>,
}

impl RateLimitWindow {
    pub fn new(inner: Arc<dyn RateLimitBook>, window: Duration) -> Self {
        RateLimitWindow {
            inner,
            window,
            reads: Mutex::new(HashMap::new()),
            writes: Mutex::new(HashMap::new()),
        }
    }

    fn install(&self, key: &KeyRef, state: Option<RateLimitState>, seen: Option<DateTime<Utc>>) {
        let mut reads = self.reads.lock().unwrap_or_else(|p| p.into_inner());
        let newer_held = reads
            .get(key)
            .and_then(|(_, _, held)| *held)
            .is_some_and(|held| seen.is_some_and(|seen| held > seen));
        if newer_held {
            return;
        }
        if reads.len() >= MAX_KEYS {
            reads.retain(|_, (at, _, _)| at.elapsed() < self.window);
        }
        reads.insert(key.clone(), (Instant::now(), state, seen));
    }

    /// Whether this observation goes to the shared book now (see the module docs).
    fn worth_writing(&self, key: &KeyRef, state: &RateLimitState, now: DateTime<Utc>) -> bool {
        let mut writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let due = writes.get(key).is_none_or(|at| at.elapsed() >= SHARE_EVERY);
        if !(due || state.low(now)) {
            return false;
        }
        if writes.len() >= MAX_KEYS {
            writes.retain(|_, at| at.elapsed() < SHARE_EVERY);
        }
        writes.insert(key.clone(), Instant::now());
        true
    }

    /// What `provider` keys' states this instance holds (for tests).
    #[cfg(test)]
    fn held(&self, provider: crate::provider::Provider) -> usize {
        let reads = self.reads.lock().unwrap_or_else(|p| p.into_inner());
        reads.keys().filter(|k| k.provider == provider).count()
    }
}

#[async_trait]
impl RateLimitBook for RateLimitWindow {
    async fn observe(
        &self,
        key: &KeyRef,
        state: &RateLimitState,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.install(key, Some(state.clone()), Some(now));
        if !self.worth_writing(key, state, now) {
            return Ok(());
        }
        let written = self.inner.observe(key, state, now).await;
        if written.is_err() {
            // Not shared: try again with the next observation.
            let mut writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
            writes.remove(key);
        }
        written
    }

    async fn last(
        &self,
        key: &KeyRef,
        now: DateTime<Utc>,
    ) -> Result<Option<RateLimitState>, StoreError> {
        {
            let reads = self.reads.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, state, _)) = reads.get(key)
                && at.elapsed() < self.window
            {
                return Ok(state.clone());
            }
        }
        let state = self.inner.last(key, now).await?;
        self.install(key, state.clone(), None);
        Ok(state)
    }

    async fn reported(
        &self,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<RateLimitReport>, StoreError> {
        // Analytics, not the hot path: always the shared book's word.
        self.inner.reported(owner, now).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::provider::Provider;
    use crate::store::conformance;

    /// Counts the calls that reach the shared book.
    #[derive(Default)]
    struct Counting {
        book: MemoryRateLimits,
        reads: Mutex<u32>,
        writes: Mutex<u32>,
    }

    #[async_trait]
    impl RateLimitBook for Counting {
        async fn observe(
            &self,
            key: &KeyRef,
            state: &RateLimitState,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            *self.writes.lock().unwrap() += 1;
            self.book.observe(key, state, now).await
        }

        async fn last(
            &self,
            key: &KeyRef,
            now: DateTime<Utc>,
        ) -> Result<Option<RateLimitState>, StoreError> {
            *self.reads.lock().unwrap() += 1;
            self.book.last(key, now).await
        }

        async fn reported(
            &self,
            owner: &str,
            now: DateTime<Utc>,
        ) -> Result<Vec<RateLimitReport>, StoreError> {
            self.book.reported(owner, now).await
        }
    }

    #[tokio::test]
    async fn memory_passes_the_rate_limit_suite() {
        conformance::rate_limits_suite(&MemoryRateLimits::default()).await;
    }

    #[tokio::test]
    async fn the_window_reads_once_per_window_and_writes_only_what_matters() {
        let shared = Arc::new(Counting::default());
        let w = RateLimitWindow::new(shared.clone(), Duration::from_secs(60));
        let key = KeyRef {
            owner: "u".into(),
            provider: Provider::OpenAi,
            fingerprint: "f".into(),
        };
        let now = Utc::now();
        for _ in 0..5 {
            assert_eq!(w.blocked(&key, 10, now).await.unwrap(), None);
        }
        assert_eq!(*shared.reads.lock().unwrap(), 1, "one read per window");
        let plenty = RateLimitState {
            requests_remaining: Some(500),
            requests_reset: Some(now + chrono::TimeDelta::seconds(60)),
            ..Default::default()
        };
        for _ in 0..5 {
            w.observe(&key, &plenty, now).await.unwrap();
        }
        assert_eq!(
            *shared.writes.lock().unwrap(),
            1,
            "then once per SHARE_EVERY"
        );
        let exhausted = RateLimitState {
            requests_remaining: Some(0),
            ..plenty.clone()
        };
        w.observe(&key, &exhausted, now).await.unwrap();
        assert_eq!(
            *shared.writes.lock().unwrap(),
            2,
            "an exhausted key at once"
        );
        let until = w.blocked(&key, 10, now).await.unwrap();
        assert_eq!(until, exhausted.requests_reset, "own observations at once");
        assert_eq!(*shared.reads.lock().unwrap(), 1);
        let other = RateLimitWindow::new(shared.clone(), Duration::from_secs(60));
        assert_eq!(other.blocked(&key, 10, now).await.unwrap(), until);
        assert_eq!(w.held(Provider::OpenAi), 1);
    }
}
