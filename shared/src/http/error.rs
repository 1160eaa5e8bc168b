//! `ApiError`: every failure as a status code and the one error envelope. Every non-2xx
//! response (and a stream's error event) has the body `{"error": {"code", "message",
//! "requestId"}}`, plus `attempts` when providers were tried; `failures.rs` maps the lower
//! layers' errors to it. Internal details go to the log,
//! keyed by the request id that the client also sees; the client gets a generic message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use crate::context::{REQUEST_ID, current_request_id};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field is missing, of the wrong type, out of range or unknown. `field` is the
    /// JSON path (`preferences.maxTokens`) or the parameter name.
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    /// A parameter the chosen provider cannot honour (the message names both).
    #[error("{0}")]
    UnsupportedParameter(String),
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("request body is larger than 1 MiB")]
    PayloadTooLarge,
    /// The body did not arrive within the server's body timeout (local server only).
    #[error("the request body was not received within {0} s")]
    RequestTimeout(u64),
    #[error("authentication required")]
    Unauthorized,
    #[error("not allowed to act on this resource")]
    Forbidden,
    #[error("no such route")]
    NotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    /// A unique name is held by another resource.
    #[error("{0}")]
    NameTaken(String),
    /// The route exists; the resource it names does not.
    #[error("{0}")]
    Missing(String),
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    BudgetExceeded(String),
    /// Every provider tried failed. `status` is 502, 504 or 429; `attempts` lists them.
    #[error("{message}")]
    Upstream {
        status: StatusCode,
        code: &'static str,
        message: String,
        retry_after_secs: Option<u64>,
        attempts: serde_json::Value,
    },
    /// A backend (DynamoDB, Secrets Manager) is throttling or unreachable, after the
    /// retries: nothing the client did, and worth sending again shortly (`Retry-After`).
    /// The string is logged, never sent.
    #[error("the service is temporarily unavailable; retry after {UNAVAILABLE_RETRY_AFTER_SECS} s")]
    Unavailable(String),
    /// Anything the client cannot fix. The string is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

/// The `Retry-After` of a `503`: throttling and restarts clear within seconds.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        ApiError::Internal(detail.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidField { .. }
            | ApiError::MalformedJson(_)
            | ApiError::UnsupportedParameter(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) | ApiError::NameTaken(_) => StatusCode::CONFLICT,
            ApiError::Missing(_) => StatusCode::NOT_FOUND,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BudgetExceeded(_) => StatusCode::PAYMENT_REQUIRED,
            ApiError::Upstream { status, .. } => *status,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidField { .. } => "invalid_request",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::UnsupportedParameter(_) => "unsupported_parameter",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "version_conflict",
            ApiError::NameTaken(_) => "name_taken",
            ApiError::Missing(_) => "not_found",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::BudgetExceeded(_) => "budget_exceeded",
            ApiError::Upstream { code, .. } => code,
            ApiError::Unavailable(_) => "service_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

impl ApiError {
    /// The one error envelope, in a response body and in a stream's error event alike:
    /// `{"error": {"code", "message", "requestId"}}`, plus `attempts` when providers
    /// were tried.
    pub fn envelope(&self, request_id: &str) -> serde_json::Value {
        let mut body = json!({"error": {
            "code": self.code(),
            "message": self.to_string(),
            "requestId": request_id,
        }});
        if let ApiError::Upstream { attempts, .. } = self {
            body["error"]["attempts"] = attempts.clone();
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = current_request_id();
        let status = self.status();
        match &self {
            ApiError::Internal(detail) => {
                tracing::error!(request_id = %request_id, detail = %detail, "internal error");
            }
            ApiError::Unavailable(detail) => {
                tracing::warn!(request_id = %request_id, detail = %detail, "backend unavailable");
            }
            _ => {}
        }
        let body = self.envelope(&request_id);
        let mut response = (status, axum::Json(body)).into_response();
        match &self {
            ApiError::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::RateLimited { retry_after_secs }
            | ApiError::Upstream {
                retry_after_secs: Some(retry_after_secs),
                ..
            } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            ApiError::Unavailable(_) => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS),
                );
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn internal_details_stay_out_of_the_body() {
        let response = REQUEST_ID
            .scope("req-1".into(), async {
                ApiError::internal("database at /secret/path exploded").into_response()
            })
            .await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "internal_error");
        assert_eq!(v["error"]["requestId"], "req-1");
        assert!(!String::from_utf8_lossy(&body).contains("/secret/path"));
    }

    #[tokio::test]
    async fn unavailable_says_when_to_retry_and_nothing_else() {
        let response = REQUEST_ID
            .scope("req-2".into(), async {
                ApiError::Unavailable("ThrottlingException on table prod-usage".into())
                    .into_response()
            })
            .await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "service_unavailable");
        assert_eq!(v["error"]["requestId"], "req-2");
        assert!(!String::from_utf8_lossy(&body).contains("prod-usage"));
    }
}
