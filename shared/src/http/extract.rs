//! Extractors that turn every client mistake into a 400 naming the field, and identity
//! into a [`Caller`], so handlers never parse headers or raw bodies themselves.

use super::error::ApiError;
use crate::identity::{self, Caller, IdentityMode};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::collections::HashMap;

impl<S> FromRequestParts<S> for Caller
where
    IdentityMode: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match &IdentityMode::from_ref(state) {
            IdentityMode::ApiGatewayJwt(names) => {
                let claims = jwt_claims(&parts.extensions);
                claims
                    .and_then(|c| identity::caller_from_claims(&c, names))
                    .ok_or(ApiError::Unauthorized)
            }
            IdentityMode::LocalTokens(tokens) => {
                let token = local_token(&parts.headers).ok_or(ApiError::Unauthorized)?;
                identity::caller_from_token(tokens.as_ref(), token)
                    .await?
                    .ok_or(ApiError::Unauthorized)
            }
        }
    }
}

/// The claims API Gateway's authorizer verified, from the Lambda event's request context:
/// an HTTP API's JWT authorizer (`requestContext.authorizer.jwt.claims`, payload 2.0) or
/// a REST API's Cognito user-pool authorizer (`requestContext.authorizer.claims`, the
/// streaming front door). `None` outside Lambda or without an authorizer. Claims that are
/// not strings in a REST event (never sent by Cognito) are kept as their JSON text.
pub fn jwt_claims(extensions: &axum::http::Extensions) -> Option<Cow<'_, HashMap<String, String>>> {
    use lambda_http::request::RequestContext;
    match extensions.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(ctx) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|jwt| Cow::Borrowed(&jwt.claims)),
        RequestContext::ApiGatewayV1(ctx) => {
            let claims = ctx.authorizer.fields.get("claims")?.as_object()?;
            Some(Cow::Owned(
                claims
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ))
        }
        _ => None,
    }
}

/// The caller's token: `Authorization: Bearer <token>`, else `x-api-key: <token>`, which
/// is where the Anthropic SDKs (and Claude Code) put their key. Both are accepted on every
/// route, not just `/v1/messages`: it is the same token either way, and one rule is
/// simpler to reason about than a per-route one. An `Authorization` header that is there
/// wins, even when malformed, so a bad bearer token never falls back to another header.
fn local_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(AUTHORIZATION) {
        let v = v.to_str().ok()?;
        return v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map(str::trim);
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The `{userId}` path segment, percent-decoded and checked.
pub struct UserId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for UserId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::invalid("userId", "must be valid UTF-8, percent-encoded"))?;
        let id = params
            .0
            .into_iter()
            .find(|(name, _)| name == "user_id")
            .map(|(_, v)| v)
            .ok_or_else(|| ApiError::invalid("userId", "is required"))?;
        if !identity::valid_user_id(&id) {
            return Err(ApiError::invalid(
                "userId",
                "must be 1-128 printable characters without spaces or '/'",
            ));
        }
        Ok(UserId(id))
    }
}

/// The `{tenant_id}` path segment of `/api/tenants/{tenantId}/...`, checked like a user id.
pub struct TenantId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for TenantId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let id = path_param(parts, "tenant_id")
            .await
            .map_err(|_| ApiError::invalid("tenantId", "must be valid UTF-8, percent-encoded"))?;
        if !identity::valid_tenant_id(&id) {
            return Err(ApiError::invalid(
                "tenantId",
                "must be 1-128 printable characters without spaces or '/'",
            ));
        }
        Ok(TenantId(id))
    }
}

/// Reads one named path parameter as text.
pub async fn path_param(parts: &mut Parts, name: &str) -> Result<String, ApiError> {
    let params = Path::<Vec<(String, String)>>::from_request_parts(parts, &())
        .await
        .map_err(|_| ApiError::invalid(name, "must be valid UTF-8, percent-encoded"))?;
    params
        .0
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .ok_or_else(|| ApiError::invalid(name, "is required"))
}

/// A JSON body. Unknown fields, wrong types and bad values are 400 with the path of the
/// field (`preferences.maxTokens`); bodies over the limit are 413. Messages never echo
/// the values the client sent, since those may be keys.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::MalformedJson("the body could not be read".into())
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson("the body is empty".into()));
    }
    // serde would read a struct from an array, positionally; every body here is an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        let first_valid = serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
        return Err(if first_valid {
            ApiError::invalid("body", "must be a JSON object")
        } else {
            ApiError::MalformedJson("the body is not a JSON document".into())
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = redact_values(&inner.to_string());
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::invalid(
                if path == "." {
                    "body".to_string()
                } else {
                    path
                },
                message,
            ),
            _ => ApiError::MalformedJson(message),
        }
    })?;
    // Trailing garbage after the document is malformed too.
    de.end()
        .map_err(|e| ApiError::MalformedJson(redact_values(&e.to_string())))?;
    if let Some(path) = underflowing_number(bytes) {
        return Err(ApiError::invalid(
            path,
            "is a nonzero number too small to represent (it would be read as 0)",
        ));
    }
    Ok(value)
}

/// The path of the first number that is not zero as written but reads as 0.0 (`1e-400`):
/// serde_json rounds such numbers to zero silently, which would turn a tiny positive
/// budget into a $0 one. Strings are skipped; the path is the chain of object keys.
fn underflowing_number(bytes: &[u8]) -> Option<String> {
    // One frame per open object or array: the key being read in it, if an object.
    let mut keys: Vec<Option<String>> = Vec::new();
    let mut last_string: Option<String> = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                last_string = std::str::from_utf8(bytes.get(start..i).unwrap_or_default())
                    .ok()
                    .map(str::to_owned);
            }
            b':' => {
                if let Some(frame) = keys.last_mut() {
                    *frame = last_string.take();
                }
            }
            b'{' | b'[' => keys.push(None),
            b'}' | b']' => {
                keys.pop();
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let text = std::str::from_utf8(&bytes[start..i]).unwrap_or("0");
                let mantissa = text.split(['e', 'E']).next().unwrap_or("");
                let nonzero = mantissa.bytes().any(|b| matches!(b, b'1'..=b'9'));
                if nonzero && text.parse::<f64>().is_ok_and(|f| f == 0.0) {
                    let path: Vec<&str> = keys.iter().flatten().map(String::as_str).collect();
                    return Some(if path.is_empty() {
                        "body".into()
                    } else {
                        path.join(".")
                    });
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// serde quotes offending values (`invalid type: string "sk-..."`); drop them so that a
/// key sent in the wrong place is not echoed back or logged. Field names in backticks
/// are kept unless they are long enough to be a pasted secret.
pub(crate) fn redact_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(['"', '`']) {
        let quote = rest[start..].chars().next().unwrap_or('"');
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find(quote) else {
            out.push('…');
            return out;
        };
        let inner = &after[..end];
        if quote == '`' && inner.len() <= 40 {
            out.push('`');
            out.push_str(inner);
            out.push('`');
        } else {
            out.push_str(if quote == '"' { "value" } else { "`…`" });
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::SettingsUpdate;

    fn field_error(json: &str) -> (String, String) {
        match parse_json::<SettingsUpdate>(json.as_bytes()) {
            Err(ApiError::InvalidField { field, message }) => (field, message),
            other => panic!("{json}: expected a field error, got {:?}", other.err()),
        }
    }

    #[test]
    fn the_token_is_the_bearer_else_the_x_api_key() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = axum::http::HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, axum::http::HeaderValue::from_static(v));
            }
            h
        };
        let h = headers(&[("authorization", "Bearer llmk_a")]);
        assert_eq!(local_token(&h), Some("llmk_a"));
        let h = headers(&[("x-api-key", "llmk_b")]);
        assert_eq!(local_token(&h), Some("llmk_b"));
        // A malformed Authorization header is not rescued by another header.
        let h = headers(&[("authorization", "Basic eA=="), ("x-api-key", "llmk_b")]);
        assert_eq!(local_token(&h), None);
        assert_eq!(local_token(&headers(&[("x-api-key", " ")])), None);
        assert_eq!(local_token(&headers(&[])), None);
    }

    #[test]
    fn errors_name_the_field_and_never_echo_values() {
        let (field, msg) = field_error(r#"{"preferences": {"maxTokens": "lots"}}"#);
        assert_eq!(field, "preferences.maxTokens");
        assert!(!msg.contains("lots"), "{msg}");

        let (field, msg) = field_error(r#"{"preferences": {"maxTokenz": 5}}"#);
        assert!(field.starts_with("preferences"), "{field}");
        assert!(msg.contains("maxTokenz"), "{msg}");

        let (field, msg) = field_error(r#"{"apiKeys": "sk-ant-api03-SECRETSECRETSECRET"}"#);
        assert_eq!(field, "apiKeys");
        assert!(!msg.contains("SECRET"), "{msg}");

        let (field, _) = field_error(r#"{"apiKeys": {"nope": "x"}}"#);
        assert!(field.starts_with("apiKeys"), "{field}");

        let (field, _) = field_error(r#"{"preferences": {"defaultProvider": "acme"}}"#);
        assert_eq!(field, "preferences.defaultProvider");
    }

    #[test]
    fn a_positive_amount_too_small_to_represent_is_refused() {
        for tiny in ["1e-400", "0.1e-330", "-5E-400"] {
            let body = format!(r#"{{"preferences": {{"monthlyBudgetUsd": {tiny}}}}}"#);
            let (field, msg) = field_error(&body);
            assert_eq!(field, "preferences.monthlyBudgetUsd", "{tiny}");
            assert!(msg.contains("too small"), "{msg}");
        }
        // Below a nano-dollar but representable: refused by the amount's own rule.
        let (field, _) = field_error(r#"{"preferences": {"monthlyBudgetUsd": 1e-10}}"#);
        assert_eq!(field, "preferences.monthlyBudgetUsd");
        // Zero written as zero, and numbers inside strings, are fine.
        for ok in [
            r#"{"preferences": {"monthlyBudgetUsd": 0.0e-400}}"#,
            r#"{"preferences": {"monthlyBudgetUsd": 0, "maxTokens": 5}}"#,
            r#"{"preferences": {"queryModel": "m-1e-400", "monthlyBudgetUsd": 1e-9}}"#,
        ] {
            assert!(parse_json::<SettingsUpdate>(ok.as_bytes()).is_ok(), "{ok}");
        }
    }

    #[test]
    fn syntax_errors_are_malformed_json() {
        for body in ["{", "not json", "", "{} x", "{\"preferences\": "] {
            assert!(
                matches!(
                    parse_json::<SettingsUpdate>(body.as_bytes()),
                    Err(ApiError::MalformedJson(_))
                ),
                "{body}"
            );
        }
    }
}
