//! A circuit breaker per provider, in process memory. Only provider-side failures count
//! (server errors, timeouts, unreachable): a user's bad key or rate limit says nothing
//! about the provider's health for everyone else. After `threshold` consecutive
//! failures the provider is skipped for `cool_down`; then one request may try it.

use crate::provider::Provider;
use crate::providers::ErrorKind;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Breakers {
    threshold: u32,
    cool_down: Duration,
    state: Mutex<HashMap<Provider, (u32, Option<Instant>)>>,
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
    pub fn allows(&self, provider: Provider) -> bool {
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

    pub fn success(&self, provider: Provider) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.remove(&provider);
    }

    pub fn failure(&self, provider: Provider, kind: ErrorKind) {
        if !counts(kind) {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let entry = state.entry(provider).or_insert((0, None));
        entry.0 += 1;
        if entry.0 >= self.threshold {
            entry.1 = Some(Instant::now());
            tracing::warn!(provider = %provider, failures = entry.0, "circuit opened");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_provider_failures_and_half_opens() {
        let b = Breakers::new(3, Duration::from_millis(50));
        let p = Provider::OpenAi;
        for _ in 0..5 {
            b.failure(p, ErrorKind::InvalidKey); // a user's problem: never counts
        }
        assert!(b.allows(p));
        b.failure(p, ErrorKind::ServerError);
        b.failure(p, ErrorKind::Timeout);
        assert!(b.allows(p));
        b.failure(p, ErrorKind::Network);
        assert!(!b.allows(p), "open after 3");
        assert!(b.allows(Provider::Anthropic), "per provider");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allows(p), "half-open trial");
        assert!(!b.allows(p), "only one trial at a time");
        b.success(p);
        assert!(b.allows(p));
    }
}
