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

async fn get_settings(
    caller: Caller,
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
) -> Result<Json<SettingsView>, ApiError> {
    caller.authorize_tenant_read(&tenant)?;
    let record = service::read(state.settings.as_ref(), &tenant_owner(&tenant)).await?;
    Ok(Json(record.into()))
}

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
async fn test_connection(
    caller: Caller,
    TenantId(tenant): TenantId,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<TestRequest>,
) -> Result<Json<TestOutcome>, ApiError> {
    caller.authorize_tenant_write(&tenant)?;
    Ok(Json(test_keys(&state, &tenant_owner(&tenant), body).await?))
}
