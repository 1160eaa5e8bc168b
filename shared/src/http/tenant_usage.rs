//! A tenant's analytics on the llm-usage router: `summary` and `daily` in the user
//! shapes over every member's requests, and `last24h` per provider and model. Open to
//! the tenant's members and admins and to global admins (403 for anyone else).

use super::error::ApiError;
use super::extract::TenantId;
use super::usage::{Params, UsageState, summary_body};
use crate::identity::Caller;
use crate::usage::tenant;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{Value, json};

pub(super) fn routes() -> Router<UsageState> {
    Router::new()
        .route("/api/tenants/{tenant_id}/llm-usage/summary", get(summary))
        .route("/api/tenants/{tenant_id}/llm-usage/daily", get(daily))
        .route("/api/tenants/{tenant_id}/llm-usage/last24h", get(last24h))
}

#[utoipa::path(
    get,
    operation_id = "tenant_usage_summary",
    path = "/api/tenants/{tenantId}/llm-usage/summary",
    tag = "tenants",
    summary = "A tenant's usage summary",
    params(("tenantId" = String, Path, description = "The tenant id"), ("start" = Option<String>, Query, description = "RFC 3339 start (inclusive)"), ("end" = Option<String>, Query, description = "RFC 3339 end")),
    security(("bearer" = [])),
    responses((status = 200, description = "The user summary shape over every member", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope))
)]
async fn summary(
    caller: Caller,
    TenantId(tenant_id): TenantId,
    State(st): State<UsageState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    caller.authorize_tenant_read(&tenant_id)?;
    params.allow(&["start", "end"])?;
    let report = tenant::summary(
        st.usage.as_ref(),
        &tenant_id,
        params.get("start"),
        params.get("end"),
        Utc::now(),
    )
    .await?;
    summary_body(report)
}

#[utoipa::path(
    get,
    operation_id = "tenant_usage_daily",
    path = "/api/tenants/{tenantId}/llm-usage/daily",
    tag = "tenants",
    summary = "A tenant's daily usage",
    params(("tenantId" = String, Path, description = "The tenant id"), ("days" = Option<u32>, Query, description = "")),
    security(("bearer" = [])),
    responses((status = 200, description = "The user daily shape over every member", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope))
)]
async fn daily(
    caller: Caller,
    TenantId(tenant_id): TenantId,
    State(st): State<UsageState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    caller.authorize_tenant_read(&tenant_id)?;
    params.allow(&["days"])?;
    let days = tenant::daily(
        st.usage.as_ref(),
        &tenant_id,
        params.get("days"),
        Utc::now(),
    )
    .await?;
    Ok(Json(json!({"days": days})))
}

#[utoipa::path(
    get,
    operation_id = "tenant_usage_last24h",
    path = "/api/tenants/{tenantId}/llm-usage/last24h",
    tag = "tenants",
    summary = "A tenant's last 24 hours",
    params(("tenantId" = String, Path, description = "The tenant id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Per provider and model: requests, tokens, cost, average latency, success rate, errors by class, rate-limit state", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope))
)]
async fn last24h(
    caller: Caller,
    TenantId(tenant_id): TenantId,
    State(st): State<UsageState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    caller.authorize_tenant_read(&tenant_id)?;
    params.allow(&[])?;
    let report = tenant::last24h(
        st.usage.as_ref(),
        st.rate_limits.as_ref(),
        &tenant_id,
        Utc::now(),
    )
    .await?;
    Ok(Json(
        serde_json::to_value(report).map_err(ApiError::internal)?,
    ))
}

/// This router's operations in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(summary, daily, last24h))]
pub(crate) struct Doc;
