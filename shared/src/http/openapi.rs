//! The OpenAPI 3.1 document at `GET /openapi.json`, generated from the handlers'
//! `#[utoipa::path]` annotations (each router module has a `Doc` listing its own) and the
//! schemas below. Built once per process.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::LazyLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, OpenApiVersion};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every route the routers serve, as (method, path) with the path written as SPEC.md
/// writes it (`{userId}`, `{tenantId}`, `{provider}`, `{id}`, `{file}`). The tests check
/// this list against the document's operations and against the merged local router.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/openapi.json"),
    ("get", "/"),
    ("get", "/assets/{file}"),
    ("get", "/api/me"),
    ("get", "/api/llm-models"),
    ("get", "/api/llm-settings/{userId}"),
    ("put", "/api/llm-settings/{userId}"),
    ("delete", "/api/llm-settings/{userId}/keys/{provider}"),
    ("post", "/api/llm-settings/{userId}/test"),
    ("get", "/api/tenants/{tenantId}/llm-settings"),
    ("put", "/api/tenants/{tenantId}/llm-settings"),
    (
        "delete",
        "/api/tenants/{tenantId}/llm-settings/keys/{provider}",
    ),
    ("post", "/api/tenants/{tenantId}/llm-settings/test"),
    ("get", "/api/admin/llms"),
    ("post", "/api/admin/llms"),
    ("post", "/api/admin/llms/bulk"),
    ("get", "/api/admin/llms/{id}"),
    ("put", "/api/admin/llms/{id}"),
    ("delete", "/api/admin/llms/{id}"),
    ("post", "/api/admin/llms/{id}/toggle"),
    ("post", "/api/admin/llms/{id}/set-default"),
    ("get", "/api/admin/users/{userId}/limits"),
    ("put", "/api/admin/users/{userId}/limits"),
    ("post", "/api/llm-generate/{userId}"),
    ("post", "/v1/chat/completions"),
    ("get", "/v1/models"),
    ("post", "/v1/messages"),
    ("post", "/v1/messages/count_tokens"),
    ("post", "/v1/embeddings"),
    ("get", "/api/llm-usage/{userId}"),
    ("get", "/api/llm-usage/{userId}/summary"),
    ("get", "/api/llm-usage/{userId}/daily"),
    ("get", "/api/llm-usage/{userId}/budget"),
    ("get", "/api/llm-usage/{userId}/insights"),
    ("get", "/api/llm-usage/{userId}/export"),
    ("get", "/api/admin/usage/summary"),
    ("get", "/api/admin/audit"),
    ("get", "/api/admin/providers/health"),
    ("get", "/api/tenants/{tenantId}/llm-usage/summary"),
    ("get", "/api/tenants/{tenantId}/llm-usage/daily"),
    ("get", "/api/tenants/{tenantId}/llm-usage/last24h"),
];

/// The routes that need no caller.
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/openapi.json"),
    ("get", "/"),
    ("get", "/assets/{file}"),
];

/// The body of every non-2xx response (see `error.rs`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ErrorBody {
    /// snake_case, e.g. `invalid_request`, `unauthorized`, `provider_error`.
    code: String,
    /// Human readable; names the field for a `400`.
    message: String,
    /// Equals the `x-request-id` header and the usage record's `request_id`.
    request_id: String,
    /// The providers tried, when any were (`provider`, `model`, `error`, `latency_ms`).
    attempts: Option<Vec<serde_json::Value>>,
}

/// The `/v1/messages` routes' errors: Anthropic's shape, so its SDKs raise typed errors.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AnthropicErrorEnvelope {
    /// Always `error`.
    r#type: String,
    error: AnthropicErrorBody,
    request_id: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AnthropicErrorBody {
    /// Anthropic's error type (`invalid_request_error`, `authentication_error`, ...).
    r#type: String,
    message: String,
    attempts: Option<Vec<serde_json::Value>>,
}

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <token>`: a local token (`llm-local token \
                         create`) or, on AWS, the JWT the API Gateway authorizer checks.",
                    ))
                    .build(),
            ),
        );
        // The Anthropic face also takes the same token in `x-api-key`, as its SDKs send it.
        components.add_security_scheme(
            "x-api-key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "The bearer token, as the Anthropic SDKs send it (`/v1/messages` only)",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "BYOK LLM gateway",
        description = "Bring-your-own-key LLM gateway: settings and keys, generation \
                       (native, OpenAI- and Anthropic-compatible), usage analytics, \
                       tenants and the admin registry. Every non-2xx response is the \
                       error envelope.",
        license(name = "Apache-2.0")
    ),
    paths(openapi_json),
    components(schemas(ErrorEnvelope, ErrorBody, AnthropicErrorEnvelope, AnthropicErrorBody)),
    modifiers(&Bearer)
)]
struct ApiDoc;

/// The whole document: the top level and every router's paths.
pub fn document() -> Document {
    let mut doc = ApiDoc::openapi();
    doc.openapi = OpenApiVersion::Version31;
    doc.merge(super::settings::Doc::openapi());
    doc.merge(super::tenants::Doc::openapi());
    doc.merge(super::admin::Doc::openapi());
    doc.merge(super::pages::Doc::openapi());
    doc.merge(super::generate::Doc::openapi());
    doc.merge(super::openai::Doc::openapi());
    doc.merge(super::messages::Doc::openapi());
    doc.merge(super::embeddings::Doc::openapi());
    doc.merge(super::usage::Doc::openapi());
    doc.merge(super::tenant_usage::Doc::openapi());
    doc
}

static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string(&document()).unwrap_or_default());

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}
