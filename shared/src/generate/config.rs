//! Operator settings of the generate path, from the environment.

use crate::ratelimit::RateLimiter;
use std::sync::Arc;
use std::time::Duration;

/// A lease outlives the deadline by at least this: streams, which may run past the
/// deadline, are cut [`STREAM_LEASE_MARGIN`] before their lease ends.
pub const MIN_LEASE_MARGIN: Duration = Duration::from_secs(5);

/// How long before its reservation's lease ends a stream is cut.
pub const STREAM_LEASE_MARGIN: Duration = Duration::from_secs(3);

/// The longest stream ceiling: a Lambda runs at most 15 minutes, and the function's
/// timeout must sit above the ceiling (infra/lambda.tf).
pub const MAX_STREAM_CEILING: Duration = Duration::from_secs(890);

/// Operator settings of the generate path.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    /// Retries per provider of a retryable failure (so `1 + max_retries` attempts).
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// The whole request, every attempt included, answers within this
    /// (`LLM_REQUEST_DEADLINE_SECS`, default 28: API Gateway gives up at 30 s). Each
    /// attempt gets what is left of it, less a margin to record the outcome.
    pub deadline: Duration,
    /// How long a budget reservation holds without being settled: past it, the
    /// reservation stops counting (a process that died cannot block a user's month).
    pub lease: Duration,
    pub cache_ttl: Duration,
    pub retention_days: i64,
    /// `LLM_UNSUPPORTED_PARAMS=drop`: a parameter the chosen provider cannot honour is
    /// dropped (and named in `x-gateway-dropped-params`) instead of refused.
    pub drop_unsupported_params: bool,
    /// `LLM_STREAM_MAX_SECS`: how long a stream may run from the request's start, past
    /// the deadline (it answered in time), before the gateway cuts it, records it and
    /// settles it. `None`: [`STREAM_LEASE_MARGIN`] before the lease ends. Behind the
    /// streaming front door it is set below the function's timeout (a stream of up to
    /// 15 minutes); a streamed request's reservation is leased for as long.
    pub stream_ceiling: Option<Duration>,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            max_retries: 2,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(2),
            deadline: Duration::from_secs(28),
            lease: Duration::from_secs(28 + 60),
            cache_ttl: Duration::from_secs(3600),
            retention_days: 90,
            drop_unsupported_params: false,
            stream_ceiling: None,
        }
    }
}

impl GenerateConfig {
    /// How long after its start a stream is cut.
    pub fn stream_ceiling(&self) -> Duration {
        self.stream_ceiling
            .unwrap_or_else(|| self.lease.saturating_sub(STREAM_LEASE_MARGIN))
    }

    /// A streamed request's reservation lease: the stream may run to its ceiling, and a
    /// reservation must not stop counting before the stream is settled.
    pub fn stream_lease(&self) -> Duration {
        self.lease.max(self.stream_ceiling() + STREAM_LEASE_MARGIN)
    }

    /// The defaults with `LLM_MAX_RETRIES`, `LLM_CACHE_TTL_SECS`,
    /// `USAGE_RETENTION_DAYS`, `LLM_REQUEST_DEADLINE_SECS`,
    /// `LLM_RESERVATION_LEASE_SECS` and `LLM_STREAM_MAX_SECS` applied when set.
    pub fn from_env() -> Self {
        let mut c = GenerateConfig::default();
        let num = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let secs = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.5 && *s <= 900.0)
                .map(Duration::from_secs_f64)
        };
        if let Some(d) = secs("LLM_REQUEST_DEADLINE_SECS") {
            c.deadline = d;
        }
        // At least the deadline plus what a stream may run past it (a shorter lease could
        // release a reservation mid-request); at most the deadline plus a minute (SPEC).
        c.lease = secs("LLM_RESERVATION_LEASE_SECS")
            .unwrap_or(c.deadline + Duration::from_secs(60))
            .clamp(
                c.deadline + MIN_LEASE_MARGIN,
                c.deadline + Duration::from_secs(60),
            );
        // At least the deadline (a stream may always answer within it), at most what a
        // Lambda can run.
        c.stream_ceiling =
            secs("LLM_STREAM_MAX_SECS").map(|v| v.clamp(c.deadline, MAX_STREAM_CEILING));
        if let Some(v) = num("LLM_MAX_RETRIES") {
            c.max_retries = u32::try_from(v.min(5)).unwrap_or(2);
        }
        if let Some(v) = num("LLM_CACHE_TTL_SECS") {
            c.cache_ttl = Duration::from_secs(v);
        }
        c.drop_unsupported_params = std::env::var("LLM_UNSUPPORTED_PARAMS")
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("drop"));
        if let Some(v) = num("USAGE_RETENTION_DAYS") {
            c.retention_days = i64::try_from(v.clamp(1, 3650)).unwrap_or(90);
        }
        c
    }
}

/// The per-user requests-per-minute limit: `LLM_REQUESTS_PER_MINUTE`, default 120.
pub fn rpm_limiter_from_env() -> Arc<RateLimiter> {
    let rpm = std::env::var("LLM_REQUESTS_PER_MINUTE")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(120);
    Arc::new(RateLimiter::new(rpm, Duration::from_secs(60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_cut_before_its_lease_and_a_ceiling_lengthens_the_lease() {
        let c = GenerateConfig::default();
        assert_eq!(c.stream_ceiling(), c.lease - STREAM_LEASE_MARGIN);
        assert_eq!(c.stream_lease(), c.lease);
        let long = GenerateConfig {
            stream_ceiling: Some(Duration::from_secs(840)),
            ..GenerateConfig::default()
        };
        assert_eq!(long.stream_ceiling(), Duration::from_secs(840));
        assert_eq!(long.stream_lease(), Duration::from_secs(843));
        // A JSON request keeps the short lease a dead process's reservation ends with.
        assert_eq!(long.lease, c.lease);
    }
}
