//! One classification of upstream failures for every adapter, precise enough to choose
//! between retrying, failing over and telling the user what to fix. The provider's own
//! error text is kept in `detail` for the log; clients only ever see `kind`'s message.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    InvalidKey,
    PermissionDenied,
    ModelNotFound,
    RateLimited,
    QuotaExceeded,
    InvalidRequest,
    ContextLengthExceeded,
    ServerError,
    Timeout,
    Network,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::InvalidKey,
        ErrorKind::PermissionDenied,
        ErrorKind::ModelNotFound,
        ErrorKind::RateLimited,
        ErrorKind::QuotaExceeded,
        ErrorKind::InvalidRequest,
        ErrorKind::ContextLengthExceeded,
        ErrorKind::ServerError,
        ErrorKind::Timeout,
        ErrorKind::Network,
    ];

    /// Whether the same request may succeed if sent again (after a pause).
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::ServerError
                | ErrorKind::Timeout
                | ErrorKind::Network
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidKey => "invalid_key",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::ContextLengthExceeded => "context_length_exceeded",
            ErrorKind::ServerError => "server_error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Network => "network",
        }
    }

    /// What a user is told. Never includes provider text, which may echo input.
    pub fn user_message(self) -> &'static str {
        match self {
            ErrorKind::InvalidKey => "The provider rejected the API key (invalid or revoked)",
            ErrorKind::PermissionDenied => "The API key has no access to this model or resource",
            ErrorKind::ModelNotFound => {
                "The provider does not know this model, or the key cannot see it"
            }
            ErrorKind::RateLimited => "The provider is rate limiting this key; try again shortly",
            ErrorKind::QuotaExceeded => "The provider account is out of quota or credit",
            ErrorKind::InvalidRequest => "The provider rejected the request as invalid",
            ErrorKind::ContextLengthExceeded => {
                "The prompt is longer than the model's context window"
            }
            ErrorKind::ServerError => "The provider had an internal error",
            ErrorKind::Timeout => "The provider did not answer in time",
            ErrorKind::Network => "The provider could not be reached",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind:?} (status {status:?}): {detail}")]
pub struct ProviderError {
    pub kind: ErrorKind,
    /// The upstream HTTP status, when there was a response.
    pub status: Option<u16>,
    /// When the provider said how long to wait.
    pub retry_after: Option<Duration>,
    /// The provider's own message, for the log only.
    pub detail: String,
    /// What the answer said about the key's rate limits (headers, a 429's wait).
    pub rate_limit: Option<super::RateLimitState>,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        ProviderError {
            kind,
            status: None,
            retry_after: None,
            detail: detail.into(),
            rate_limit: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }

    /// Attaches what the failed answer at `now` said about the key's limits: its
    /// headers' `state`, with a 429's wait as a block.
    pub fn reporting(
        mut self,
        state: super::RateLimitState,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let state = super::ratelimit::with_block(state, &self, now);
        self.rate_limit = (!state.is_empty()).then_some(state);
        self
    }
}

/// The kind an HTTP status implies before any provider-specific refinement.
pub fn kind_for_status(status: u16) -> ErrorKind {
    match status {
        401 => ErrorKind::InvalidKey,
        402 => ErrorKind::QuotaExceeded,
        403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::ModelNotFound,
        408 | 504 => ErrorKind::Timeout,
        413 => ErrorKind::ContextLengthExceeded,
        429 => ErrorKind::RateLimited,
        400..=499 => ErrorKind::InvalidRequest,
        _ => ErrorKind::ServerError,
    }
}

/// Phrases providers use for an over-long prompt, whatever status they send it with.
pub fn mentions_context_length(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "context_length_exceeded",
        "context length",
        "context window",
        "prompt is too long",
        "maximum context",
        "too many tokens",
        "input is too long",
        "exceeds the maximum number of tokens",
        "input token count",
    ]
    .iter()
    .any(|p| t.contains(p))
}

/// `retry-after` (seconds or an HTTP date is not worth parsing: seconds only) or
/// `retry-after-ms`, as OpenAI-style APIs send it.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_millis(ms as u64));
    }
    get("retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_millis((s * 1000.0) as u64))
}

/// Keeps provider text short enough for a log line.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(500).collect();
    if text.chars().count() > 500 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryability() {
        let retryable: Vec<_> = ErrorKind::ALL
            .into_iter()
            .filter(|k| k.retryable())
            .collect();
        assert_eq!(
            retryable,
            [
                ErrorKind::RateLimited,
                ErrorKind::ServerError,
                ErrorKind::Timeout,
                ErrorKind::Network
            ]
        );
    }

    #[test]
    fn retry_after_headers() {
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        assert_eq!(retry_after(&http::HeaderMap::new()), None);
    }
}
