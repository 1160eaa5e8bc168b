//! What a generation can fail with, in the engine's own terms. `http/` turns these into
//! status codes and the error envelope; nothing here knows about HTTP.

use super::recorder::RecordError;
use crate::provider::Provider;
use crate::providers::ErrorKind;
use crate::store::StoreError;
use crate::vault::VaultError;
use serde::{Serialize, Serializer};

/// Why one attempt at one candidate did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptError {
    /// The user has no key for the provider.
    NoApiKey,
    /// The provider's circuit is open for this user and key.
    CircuitOpen,
    /// The worst-case cost would pass the monthly budget.
    BudgetExceeded,
    /// A fallback whose provider cannot honour a parameter the request sets, while
    /// dropping is not allowed.
    UnsupportedParameter,
    /// The provider (or the way to it) failed.
    Provider(ErrorKind),
}

impl AttemptError {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptError::NoApiKey => "no_api_key",
            AttemptError::CircuitOpen => "circuit_open",
            AttemptError::BudgetExceeded => "budget_exceeded",
            AttemptError::UnsupportedParameter => "unsupported_parameter",
            AttemptError::Provider(kind) => kind.as_str(),
        }
    }
}

impl Serialize for AttemptError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One candidate tried, and how it failed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub provider: Provider,
    pub model: String,
    /// The failure's class: `no_api_key`, `circuit_open`, `budget_exceeded`,
    /// `unsupported_parameter`, or a provider error kind (`server_error`, `timeout`, ...).
    #[schema(value_type = String)]
    pub error: AttemptError,
    pub latency_ms: f64,
}

/// How the providers failed a request as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// Out of time: the provider hung, or the deadline left no room for another try.
    Timeout,
    /// Every provider tried was rate limited; retry after this many seconds.
    RateLimited { retry_after_secs: u64 },
    /// Providers answered with errors (or none could take the request).
    Failed,
    /// A stream that had started broke off.
    StreamBroke,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The user's own requests-per-minute limit.
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("the monthly budget does not allow this request")]
    BudgetExceeded,
    #[error("no API key is saved for {0}; save one with PUT /api/llm-settings/{{userId}}")]
    NoKey(Provider),
    /// The chosen provider has no such parameter, and dropping it was not allowed.
    #[error(
        "{param} is not supported by {provider} model {model}; send x-gateway-drop-params: true to drop it"
    )]
    UnsupportedParameter {
        param: &'static str,
        provider: Provider,
        model: String,
    },
    /// A field of the request is wrong (`field` is its JSON name).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// Every candidate failed; `attempts` says how.
    #[error("{message}")]
    Upstream {
        failure: UpstreamFailure,
        message: String,
        attempts: Vec<Attempt>,
    },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("vault: {0}")]
    Vault(#[from] VaultError),
    #[error("usage record: {0}")]
    Record(#[from] RecordError),
    /// A bug or a task that died: logged, never shown.
    #[error("{0}")]
    Internal(String),
}

impl GenerateError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        GenerateError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
