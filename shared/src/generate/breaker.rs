//! A circuit breaker per provider, user and key, in process memory. Only provider-side
//! failures count (server errors, timeouts, unreachable). A breaker is keyed by the key
//! that was used as well as the provider, so one user's failing key (a revoked
//! project, a hung account, a region of their own) can never open a circuit that
//! another user's requests meet. After `threshold` consecutive failures that
//! provider+key is skipped for `cool_down`; then one request may try it.

use crate::provider::Provider;
use crate::providers::ErrorKind;
use crate::secret::ApiKey;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a breaker is for: a provider, the user and a fingerprint of the key (never the
/// key itself). The user is part of it so that shared credentials (the operator's, such
/// as Bedrock's function role) cannot let one user's failures trip anyone else either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BreakerKey(Provider, u64);

impl BreakerKey {
    pub fn new(provider: Provider, user_id: &str, key: Option<&ApiKey>) -> Self {
        let mut h = Sha256::new();
        h.update(user_id.as_bytes());
        h.update([0u8]);
        h.update(key.map_or("", |k| k.expose()).as_bytes());
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        BreakerKey(provider, u64::from_le_bytes(first))
    }

    pub fn provider(&self) -> Provider {
        self.0
    }
}

pub struct Breakers {
    threshold: u32,
    cool_down: Duration,
    state: Mutex<HashMap<BreakerKey, (u32, Option<Instant>)>>,
}

fn counts(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ServerError | ErrorKind::Timeout | ErrorKind::Network
    )
}

impl Breakers {
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Breakers {
            threshold,
            cool_down,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a request may go to `provider` now. An open breaker whose cool-down has
    /// passed lets one request through (half-open) and re-opens if it fails.
    pub fn allows(&self, provider: BreakerKey) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.get_mut(&provider) {
            Some((_, Some(opened))) if opened.elapsed() < self.cool_down => false,
            Some((_, open @ Some(_))) => {
                // Half-open: this request is the trial; others wait for its outcome.
                *open = Some(Instant::now());
                true
            }
            _ => true,
        }
    }

    pub fn success(&self, provider: BreakerKey) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.remove(&provider);
    }

    pub fn failure(&self, provider: BreakerKey, kind: ErrorKind) {
        if !counts(kind) {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.len() > 10_000 {
            // Bounded memory: forget closed breakers first (they hold only a count).
            state.retain(|_, (_, open)| open.is_some());
        }
        let entry = state.entry(provider).or_insert((0, None));
        entry.0 += 1;
        if entry.0 >= self.threshold {
            entry.1 = Some(Instant::now());
            tracing::warn!(provider = %provider.provider(), failures = entry.0, "circuit opened");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_provider_failures_and_half_opens() {
        let b = Breakers::new(3, Duration::from_millis(50));
        let p = BreakerKey::new(Provider::OpenAi, "u", None);
        for _ in 0..5 {
            b.failure(p, ErrorKind::InvalidKey); // a user's problem: never counts
        }
        assert!(b.allows(p));
        b.failure(p, ErrorKind::ServerError);
        b.failure(p, ErrorKind::Timeout);
        assert!(b.allows(p));
        b.failure(p, ErrorKind::Network);
        assert!(!b.allows(p), "open after 3");
        assert!(
            b.allows(BreakerKey::new(Provider::Anthropic, "u", None)),
            "per provider"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allows(p), "half-open trial");
        assert!(!b.allows(p), "only one trial at a time");
        b.success(p);
        assert!(b.allows(p));
    }

    #[test]
    fn one_users_failing_key_never_opens_another_users_circuit() {
        let b = Breakers::new(2, Duration::from_secs(60));
        let alice = ApiKey::new("sk-ant-api03-alice-aaaaaaaaaaaaaaaaaaaaaaaa".into());
        let bob = ApiKey::new("sk-ant-api03-bob-bbbbbbbbbbbbbbbbbbbbbbbbbb".into());
        let a = BreakerKey::new(Provider::Anthropic, "alice", Some(&alice));
        let o = BreakerKey::new(Provider::Anthropic, "bob", Some(&bob));
        b.failure(a, ErrorKind::Timeout);
        b.failure(a, ErrorKind::Timeout);
        assert!(!b.allows(a), "alice's key is skipped");
        assert!(b.allows(o), "bob's key is not");
        assert_ne!(format!("{a:?}"), format!("{o:?}"));
        assert!(
            !format!("{a:?}").contains("alice"),
            "no key in the breaker's name"
        );
    }
}
