//! How the lower layers' failures answer over HTTP: the one mapping of the engine's
//! [`GenerateError`], the settings' [`SettingsError`], the usage reports' `UsageError`,
//! and store and vault failures to status codes and the error envelope. A backend that
//! is throttling or unreachable (after the retries) is a `503` with `Retry-After`; any
//! other store or vault failure a `500`. Neither shows its detail.

use super::error::ApiError;
use crate::generate::recorder::RecordError;
use crate::generate::{GenerateError, UpstreamFailure};
use crate::settings::SettingsError;
use crate::store::StoreError;
use crate::vault::VaultError;
use axum::http::StatusCode;

impl From<crate::identity::Forbidden> for ApiError {
    fn from(_: crate::identity::Forbidden) -> Self {
        ApiError::Forbidden
    }
}

impl From<crate::registry::RegistryError> for ApiError {
    fn from(e: crate::registry::RegistryError) -> Self {
        use crate::registry::RegistryError as R;
        match e {
            R::Invalid { field, message } => ApiError::InvalidField { field, message },
            R::NotFound => ApiError::Missing(e.to_string()),
            R::Conflict(m) => ApiError::Conflict(m),
            R::NameTaken(m) => ApiError::NameTaken(m),
            R::Store(s) => s.into(),
        }
    }
}

impl From<SettingsError> for ApiError {
    fn from(e: SettingsError) -> Self {
        match e {
            SettingsError::InvalidField { field, message } => {
                ApiError::InvalidField { field, message }
            }
            SettingsError::Conflict(message) => ApiError::Conflict(message),
            SettingsError::Unavailable(detail) => ApiError::Unavailable(detail),
            SettingsError::Internal(detail) => ApiError::Internal(detail),
        }
    }
}

impl From<GenerateError> for ApiError {
    fn from(e: GenerateError) -> Self {
        match e {
            GenerateError::RateLimited { retry_after_secs } => {
                ApiError::RateLimited { retry_after_secs }
            }
            GenerateError::BudgetExceeded => ApiError::BudgetExceeded(e.to_string()),
            GenerateError::NoKey(_) => ApiError::invalid("provider", e.to_string()),
            GenerateError::Invalid { field, message } => ApiError::InvalidField { field, message },
            GenerateError::UnsupportedParameter { .. } => {
                ApiError::UnsupportedParameter(e.to_string())
            }
            GenerateError::Upstream {
                failure,
                message,
                attempts,
            } => {
                let (status, code, retry_after_secs) = match failure {
                    UpstreamFailure::Timeout => {
                        (StatusCode::GATEWAY_TIMEOUT, "provider_timeout", None)
                    }
                    UpstreamFailure::RateLimited { retry_after_secs } => (
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        Some(retry_after_secs),
                    ),
                    UpstreamFailure::Failed | UpstreamFailure::StreamBroke => {
                        (StatusCode::BAD_GATEWAY, "provider_error", None)
                    }
                };
                ApiError::Upstream {
                    status,
                    code,
                    message,
                    retry_after_secs,
                    attempts: serde_json::to_value(&attempts).unwrap_or_default(),
                }
            }
            GenerateError::Store(StoreError::Unavailable(_))
            | GenerateError::Vault(VaultError::Unavailable(_))
            | GenerateError::Record(
                RecordError::Store(StoreError::Unavailable(_)) | RecordError::TimedOut(_),
            ) => ApiError::Unavailable(e.to_string()),
            GenerateError::Store(_)
            | GenerateError::Vault(_)
            | GenerateError::Record(_)
            | GenerateError::Internal(_) => ApiError::internal(e),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => ApiError::Conflict(
                "settings were changed by another request; reload and retry".into(),
            ),
            e @ StoreError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// The usage layer's errors are all the client's (a 400 naming the parameter) but for
/// the store's, which map like every other store failure.
impl From<crate::usage::UsageError> for ApiError {
    fn from(e: crate::usage::UsageError) -> Self {
        match e {
            crate::usage::UsageError::Invalid { field, message } => {
                ApiError::InvalidField { field, message }
            }
            crate::usage::UsageError::Store(e) => ApiError::from(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{Attempt, AttemptError};
    use crate::provider::Provider;
    use crate::providers::ErrorKind;

    fn upstream(failure: UpstreamFailure) -> ApiError {
        ApiError::from(GenerateError::Upstream {
            failure,
            message: "m".into(),
            attempts: vec![Attempt {
                provider: Provider::OpenAi,
                model: "gpt-4o".into(),
                error: AttemptError::Provider(ErrorKind::RateLimited),
                latency_ms: 1.0,
            }],
        })
    }

    #[test]
    fn each_failure_has_its_status_code_and_keeps_its_attempts() {
        let timeout = upstream(UpstreamFailure::Timeout);
        assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(timeout.code(), "provider_timeout");
        let limited = upstream(UpstreamFailure::RateLimited {
            retry_after_secs: 7,
        });
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        let broke = upstream(UpstreamFailure::StreamBroke);
        assert_eq!(broke.status(), StatusCode::BAD_GATEWAY);
        let envelope = broke.envelope("req-1");
        assert_eq!(envelope["error"]["attempts"][0]["error"], "rate_limited");
        assert_eq!(envelope["error"]["requestId"], "req-1");
        let budget = ApiError::from(GenerateError::BudgetExceeded);
        assert_eq!(budget.status(), StatusCode::PAYMENT_REQUIRED);
        let no_key = ApiError::from(GenerateError::NoKey(Provider::Anthropic));
        assert_eq!(no_key.status(), StatusCode::BAD_REQUEST);
        assert!(
            no_key
                .to_string()
                .starts_with("provider: no API key is saved for anthropic")
        );
    }

    #[test]
    fn internal_failures_say_nothing_to_the_client() {
        let e = ApiError::from(GenerateError::Internal("task at /x panicked".into()));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.envelope("r").to_string().contains("/x"));
    }

    #[test]
    fn an_unavailable_backend_is_a_503_and_any_other_failure_a_500() {
        let detail = "ProvisionedThroughputExceededException on table usage-prod";
        let unavailable = [
            ApiError::from(GenerateError::Store(StoreError::Unavailable(detail.into()))),
            ApiError::from(GenerateError::Vault(VaultError::Unavailable(detail.into()))),
            ApiError::from(GenerateError::Record(RecordError::Store(
                StoreError::Unavailable(detail.into()),
            ))),
            ApiError::from(GenerateError::Record(RecordError::TimedOut(
                std::time::Duration::from_secs(3),
            ))),
            ApiError::from(StoreError::Unavailable(detail.into())),
            ApiError::from(VaultError::Unavailable(detail.into())),
            ApiError::from(SettingsError::from(VaultError::Unavailable(detail.into()))),
            ApiError::from(SettingsError::from(StoreError::Unavailable(detail.into()))),
        ];
        for e in unavailable {
            assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE, "{e:?}");
            assert_eq!(e.code(), "service_unavailable");
            assert!(!e.envelope("r").to_string().contains("usage-prod"));
        }
        let broken = [
            ApiError::from(GenerateError::Store(StoreError::Backend(detail.into()))),
            ApiError::from(GenerateError::Vault(VaultError::Backend(detail.into()))),
            ApiError::from(StoreError::Corrupt(detail.into())),
        ];
        for e in broken {
            assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR, "{e:?}");
        }
    }
}
