//! A tenant's analytics on the llm-usage router: `summary` and `daily` in the user
//! shapes over every member's requests, and `last24h` per provider and model. Open to
//! the tenant's members and admins and to global admins (403 for anyone else).

use super::error::ApiError;
use super::extract::TenantId;
use super::usage::{Params, UsageState};
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
    let mut body = serde_json::to_value(report.summary).map_err(ApiError::internal)?;
    body["start"] = json!(report.range.start_key());
    body["end"] = json!(report.range.end_key());
    body["read"] = json!(report.read);
    Ok(Json(body))
}

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
