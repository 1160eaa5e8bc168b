//! A tenant's settings (`/api/tenants/{tenantId}/llm-settings`): the bodies and
//! guarantees of a user's, stored under the tenant's owner id, so its keys live in the
//! vault under `tenants/<tenantId>/llm/<provider>`. Members read; the tenant's admins and
//! global admins write; anyone else gets `403`.

use super::AppState;
use super::error::ApiError;
use super::extract::{JsonBody, TenantId};
use super::settings::{ProviderPath, remove_key, save, test_keys};
use crate::identity::{Caller, tenant_owner};
use crate::settings::connection_test::{TestOutcome, TestRequest};
use crate::settings::{SettingsUpdate, SettingsView, service};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};

pub fn tenant_settings_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/tenants/{tenant_id}/llm-settings",
            get(get_settings).put(put_settings),
        )
        .route(
            "/api/tenants/{tenant_id}/llm-settings/keys/{provider}",
            delete(delete_key),
        )
        .route(
            "/api/tenants/{tenant_id}/llm-settings/test",
            post(test_connection),
        )
}

#[utoipa::path(
    get,
    operation_id = "tenant_get_settings",
    path = "/api/tenants/{tenantId}/llm-settings",
    tag = "tenants",
    summary = "A tenant's settings",
    params(("tenantId" = String, Path, description = "The tenant id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The tenant's settings (the user settings body)", body = crate::settings::SettingsView), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope))
)]
async fn get_settings(
    caller: Caller,
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
) -> Result<Json<SettingsView>, ApiError> {
    caller.authorize_tenant_read(&tenant)?;
    let record = service::read(state.settings.as_ref(), &tenant_owner(&tenant)).await?;
    Ok(Json(record.into()))
}

#[utoipa::path(
    put,
    operation_id = "tenant_put_settings",
    path = "/api/tenants/{tenantId}/llm-settings",
    tag = "tenants",
    summary = "Write a tenant's settings",
    params(("tenantId" = String, Path, description = "The tenant id")),
    request_body(content = crate::settings::SettingsUpdate, description = "e.g. `{\"preferences\": {\"defaultProvider\": \"anthropic\"}, \"apiKeys\": {\"anthropic\": \"sk-ant-...\", \"openai\": null}, \"version\": 7}`; unknown fields are 400", content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 200, description = "The settings after the write", body = crate::settings::SettingsView), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope), (status = 409, description = "Stale `version`, or a name another entry holds", body = crate::http::openapi::ErrorEnvelope), (status = 413, description = "Body over 1 MiB", body = crate::http::openapi::ErrorEnvelope))
)]
async fn put_settings(
    caller: Caller,
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<SettingsUpdate>,
) -> Result<Json<SettingsView>, ApiError> {
    caller.authorize_tenant_write(&tenant)?;
    let record = save(&state, &caller, &tenant_owner(&tenant), Some(&tenant), body).await?;
    tracing::info!(actor = %caller.user_id, tenant = %tenant, version = record.version, "tenant settings updated");
    Ok(Json(record.into()))
}

#[utoipa::path(
    delete,
    operation_id = "tenant_delete_key",
    path = "/api/tenants/{tenantId}/llm-settings/keys/{provider}",
    tag = "tenants",
    summary = "Delete a tenant key",
    params(("tenantId" = String, Path, description = "The tenant id"), ("provider" = crate::provider::Provider, Path, description = "A built-in provider (anthropic, openai, google, bedrock, azure_openai, groq, openrouter, fireworks, mistral, deepseek, together, ollama)")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope), (status = 409, description = "Stale `version`, or a name another entry holds", body = crate::http::openapi::ErrorEnvelope))
)]
async fn delete_key(
    caller: Caller,
    TenantId(tenant): TenantId,
    ProviderPath(provider): ProviderPath,
    State(state): State<AppState>,
) -> Result<StatusCode, ApiError> {
    caller.authorize_tenant_write(&tenant)?;
    remove_key(
        &state,
        &caller,
        &tenant_owner(&tenant),
        Some(&tenant),
        provider,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Calls a provider with the tenant's keys (or the body's): a write, so members may not.
#[utoipa::path(
    post,
    operation_id = "tenant_test_connection",
    path = "/api/tenants/{tenantId}/llm-settings/test",
    tag = "tenants",
    summary = "Test a tenant key",
    params(("tenantId" = String, Path, description = "The tenant id")),
    request_body(content = crate::settings::connection_test::TestRequest, description = "The provider; a key to try unsaved (else the saved one); a model (else the default)", content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 200, description = "The outcome (a failed test is 200 with success false)", body = crate::settings::connection_test::TestOutcome), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope), (status = 413, description = "Body over 1 MiB", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited (`rate_limited`, with `Retry-After`)", body = crate::http::openapi::ErrorEnvelope))
)]
async fn test_connection(
    caller: Caller,
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<TestRequest>,
) -> Result<Json<TestOutcome>, ApiError> {
    caller.authorize_tenant_write(&tenant)?;
    Ok(Json(test_keys(&state, &tenant_owner(&tenant), body).await?))
}

/// This router's operations in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_settings, put_settings, delete_key, test_connection))]
pub(crate) struct Doc;
