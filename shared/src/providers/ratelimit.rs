//! Reading what an answer says about its key's rate limits into a [`RateLimitState`].
//! Each wire format reads its own headers (OpenAI's family here, as the most shared;
//! Anthropic's in [`super::anthropic`]); a 429's wait (`retry-after`, Gemini's
//! `retryDelay`, already in [`ProviderError::retry_after`]) becomes a block for every
//! provider in [`with_block`].

use super::ProviderError;
pub use crate::store::RateLimitState;
use chrono::{DateTime, TimeDelta, Utc};
use http::HeaderMap;
use std::time::Duration;

/// A header's value as text, trimmed.
pub(crate) fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

pub(crate) fn count(headers: &HeaderMap, name: &str) -> Option<u64> {
    header(headers, name).and_then(|v| v.parse().ok())
}

/// A Go-style duration as OpenAI (and Groq, Together, ...) send resets: `1s`, `6m0s`,
/// `20ms`, `1h2m3.5s`, `7.66s`; a bare number is seconds. `None` for anything else.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return seconds(secs);
    }
    if text.is_empty() {
        return None;
    }
    let mut total = 0.0_f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|i| *i > 0)?;
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    seconds(total)
}

fn seconds(secs: f64) -> Option<Duration> {
    // At most a day: a reset further out is not a rate limit's.
    (secs.is_finite() && (0.0..=86_400.0).contains(&secs))
        .then(|| Duration::from_micros((secs * 1e6) as u64))
}

/// `now` plus a wait from the wire.
pub fn after(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    now + TimeDelta::from_std(wait).unwrap_or(TimeDelta::zero())
}

/// OpenAI's `x-ratelimit-remaining-requests|tokens` and `x-ratelimit-reset-requests|
/// tokens`, which Azure OpenAI and the OpenAI-compatible providers send too.
pub fn openai_headers(headers: &HeaderMap, now: DateTime<Utc>) -> RateLimitState {
    let reset = |name| {
        header(headers, name)
            .and_then(parse_duration)
            .map(|d| after(now, d))
    };
    RateLimitState {
        requests_remaining: count(headers, "x-ratelimit-remaining-requests"),
        requests_reset: reset("x-ratelimit-reset-requests"),
        tokens_remaining: count(headers, "x-ratelimit-remaining-tokens"),
        tokens_reset: reset("x-ratelimit-reset-tokens"),
        blocked_until: None,
    }
}

/// What a failed answer at `now` reported: its headers' state, and for a 429 that said
/// how long to wait, a block until then (any provider; Gemini says it in the body).
pub fn with_block(
    mut state: RateLimitState,
    error: &ProviderError,
    now: DateTime<Utc>,
) -> RateLimitState {
    if error.status == Some(429)
        && let Some(wait) = error.retry_after
    {
        state.blocked_until = Some(after(now, wait));
    }
    state
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::providers::ErrorKind;

    #[test]
    fn go_durations_as_openai_sends_them() {
        let ms = |t: &str| parse_duration(t).map(|d| d.as_millis());
        assert_eq!(ms("1s"), Some(1000));
        assert_eq!(ms("6m0s"), Some(360_000));
        assert_eq!(ms("20ms"), Some(20));
        assert_eq!(ms("1h2m3.5s"), Some(3_723_500));
        assert_eq!(ms("7.66s"), Some(7660));
        assert_eq!(ms("2m59.56s"), Some(179_560));
        assert_eq!(ms("12"), Some(12_000), "a bare number is seconds");
        for bad in ["", "s", "1d", "1.2.3s", "-1s", "abc", "48h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn openais_documented_headers() {
        // https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-limit-tokens", "150000"),
            ("x-ratelimit-remaining-requests", "59"),
            ("x-ratelimit-remaining-tokens", "149984"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ] {
            h.insert(k, v.parse().unwrap());
        }
        let now = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        let s = openai_headers(&h, now);
        assert_eq!(s.requests_remaining, Some(59));
        assert_eq!(s.tokens_remaining, Some(149_984));
        assert_eq!(s.requests_reset, Some(now + TimeDelta::seconds(1)));
        assert_eq!(s.tokens_reset, Some(now + TimeDelta::minutes(6)));
        assert!(openai_headers(&HeaderMap::new(), now).is_empty());
    }

    #[test]
    fn a_429_that_says_how_long_blocks_until_then() {
        let now = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        let e = ProviderError::new(ErrorKind::RateLimited, "x")
            .with_status(429)
            .with_retry_after(Some(Duration::from_secs(7)));
        let s = with_block(RateLimitState::default(), &e, now);
        assert_eq!(s.blocked_until, Some(now + TimeDelta::seconds(7)));
        let no_wait = ProviderError::new(ErrorKind::RateLimited, "x").with_status(429);
        assert!(with_block(RateLimitState::default(), &no_wait, now).is_empty());
        let server = ProviderError::new(ErrorKind::ServerError, "x")
            .with_status(503)
            .with_retry_after(Some(Duration::from_secs(7)));
        assert!(with_block(RateLimitState::default(), &server, now).is_empty());
    }
}
