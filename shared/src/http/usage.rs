//! The `llm-usage` function's router: entries, summary, daily trend, budget, export,
//! cost insights, the tenant views ([`super::tenant_usage`]) and the admin views (every
//! user's usage summary, provider health).
//! Handlers check who may ask and which parameters exist, hand the values to `usage/`
//! (which parses, reads and computes), and write its answer as JSON or a stream.

use super::error::ApiError;
use super::extract::UserId;
use crate::identity::{Caller, IdentityMode};
use crate::store::{AuditStore, BudgetStore, LimitsStore, SettingsStore, UsageStore};
use crate::usage::query::{self, EntriesParams};
use crate::usage::token::TokenKey;
use crate::usage::{self, admin, dashboard, health};
use axum::body::Body;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use chrono::Utc;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the usage routes read: reports only, so no vault and no provider transport
/// (costs were priced when the entries were written; only the insights price the same
/// tokens on other models, with the registry's prices).
#[derive(Clone)]
pub struct UsageState {
    pub identity: IdentityMode,
    /// Read for the budget limit, a user preference.
    pub settings: Arc<dyn SettingsStore>,
    pub usage: Arc<dyn UsageStore>,
    pub budgets: Arc<dyn BudgetStore>,
    pub token_key: TokenKey,
    /// Admin limits: the budget `/budget` reports is the user's, capped by them.
    pub limits: Arc<dyn LimitsStore>,
    /// The audit log `GET /api/admin/audit` reads.
    pub audit: Arc<dyn AuditStore>,
    /// What providers last said about keys' rate limits (a tenant's `last24h`).
    pub rate_limits: Arc<dyn crate::store::ratelimits::RateLimitBook>,
    /// The models a user may pick, read (never written) by the insights' cheaper models.
    pub registry: Arc<crate::registry::RegistryCache>,
}

impl FromRef<UsageState> for IdentityMode {
    fn from_ref(st: &UsageState) -> IdentityMode {
        st.identity.clone()
    }
}

pub fn usage_router(state: UsageState) -> Router {
    Router::new()
        .route("/api/llm-usage/{user_id}", get(entries))
        .route("/api/llm-usage/{user_id}/summary", get(summary))
        .route("/api/llm-usage/{user_id}/daily", get(daily))
        .route("/api/llm-usage/{user_id}/budget", get(budget))
        .route("/api/llm-usage/{user_id}/export", get(export))
        .route("/api/llm-usage/{user_id}/insights", get(insights))
        .route("/api/admin/usage/summary", get(admin_summary))
        .route("/api/admin/audit", get(audit_log))
        .route("/api/admin/providers/health", get(providers_health))
        .merge(super::tenant_usage::routes())
        .with_state(state)
}

/// Query parameters, each checked by name: an unknown one is a 400, not ignored.
pub(super) struct Params(BTreeMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(query)?;
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            if map.insert(k.clone(), v).is_some() {
                return Err(ApiError::invalid(k, "is given more than once"));
            }
        }
        Ok(Params(map))
    }
}

fn serde_urlencoded_pairs(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::invalid("query", "is not a valid query string"))?,
    )
    .map(|q| q.0)
    .map_err(|_| ApiError::invalid("query", "is not a valid query string"))
}

impl Params {
    pub(super) fn allow(&self, names: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !names.contains(&k.as_str())) {
            Some(k) => Err(ApiError::invalid(
                k.clone(),
                format!("unknown parameter; expected one of: {}", names.join(", ")),
            )),
            None => Ok(()),
        }
    }

    /// A parameter's value; an empty one counts as absent.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

#[utoipa::path(
    get,
    path = "/api/llm-usage/{userId}",
    tag = "usage",
    summary = "A user's usage entries, newest first",
    params(("userId" = String, Path, description = "The user id (URL-encoded); the caller's own unless admin"), ("start" = Option<String>, Query, description = "RFC 3339 start (inclusive)"), ("end" = Option<String>, Query, description = "RFC 3339 end"), ("provider" = Option<String>, Query, description = ""), ("operationType" = Option<String>, Query, description = ""), ("model" = Option<String>, Query, description = ""), ("status" = Option<String>, Query, description = "success, error or cached"), ("limit" = Option<u32>, Query, description = ""), ("nextToken" = Option<String>, Query, description = "")),
    security(("bearer" = [])),
    responses((status = 200, description = "`{\"entries\": [UsageEntry], \"nextToken\": \"...\" | null}`", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope))
)]
async fn entries(
    caller: Caller,
    UserId(user_id): UserId,
    State(st): State<UsageState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    caller.authorize_user(&user_id)?;
    params.allow(&[
        "start",
        "end",
        "provider",
        "operationType",
        "model",
        "status",
        "limit",
        "nextToken",
    ])?;
    let query = EntriesParams {
        start: params.get("start"),
        end: params.get("end"),
        provider: params.get("provider"),
        operation_type: params.get("operationType"),
        model: params.get("model"),
        status: params.get("status"),
        limit: params.get("limit"),
        next_token: params.get("nextToken"),
    };
    let page = query::entries_page(
        st.usage.as_ref(),
        &st.token_key,
        &user_id,
        &query,
        Utc::now(),
    )
    .await?;
    Ok(Json(
        json!({"entries": page.entries, "nextToken": page.next_token}),
    ))
}

#[utoipa::path(
    get,
    path = "/api/llm-usage/{userId}/summary",
    tag = "usage",
    summary = "Totals and breakdowns",
    params(("userId" = String, Path, description = "The user id (URL-encoded); the caller's own unless admin"), ("start" = Option<String>, Query, description = "RFC 3339 start (inclusive)"), ("end" = Option<String>, Query, description = "RFC 3339 end")),
    security(("bearer" = [])),
    responses((status = 200, description = "total_requests, total_tokens, total_cost_usd, avg_cost_per_request, success_rate, cache_hit_rate, avg_latency_ms, by_provider, by_operation, by_model", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope))
)]
async fn summary(
    caller: Caller,
    UserId(user_id): UserId,
    State(st): State<UsageState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    caller.authorize_user(&user_id)?;
    params.allow(&["start", "end"])?;
    let report = dashboard::summary(
        st.usage.as_ref(),
        &user_id,
        params.get("start"),
        params.get("end"),
        Utc::now(),
    )
    .await?;
    summary_body(report)
}

/// A summary's body: the totals, the range they cover and what was read.
pub(super) fn summary_body(report: dashboard::SummaryReport) -> Result<Json<Value>, ApiError> {
    let mut body = serde_json::to_value(report.summary).map_err(ApiError::internal)?;
    body["start"] = json!(report.range.start_key());
    body["end"] = json!(report.range.end_key());
    body["read"] = json!(report.read);
    Ok(Json(body))
}

#[utoipa::path(
    get,
    path = "/api/llm-usage/{userId}/daily",
    tag = "usage",
    summary = "One row per day",
    params(("userId" = String, Path, description = "The user id (URL-encoded); the caller's own unless admin"), ("days" = Option<u32>, Query, description = "Days back (default 30)")),
    security(("bearer" = [])),
    responses((status = 200, description = "`{\"days\": [{date, requests, tokens, cost_usd, errors}]}`", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope))
)]
async fn daily(
    caller: Caller,
    UserId(user_id): UserId,
    State(st): State<UsageState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    caller.authorize_user(&user_id)?;
    params.allow(&["days"])?;
    let days =
        dashboard::daily(st.usage.as_ref(), &user_id, params.get("days"), Utc::now()).await?;
    Ok(Json(json!({"days": days})))
}

#[utoipa::path(
    get,
    path = "/api/llm-usage/{userId}/budget",
    tag = "usage",
    summary = "Month-to-date budget",
    params(("userId" = String, Path, description = "The user id (URL-encoded); the caller's own unless admin")),
    security(("bearer" = [])),
    responses((status = 200, description = "month, limit_usd, spent_usd, reserved_usd, remaining_usd, projected_usd, alerted_thresholds", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope))
)]
async fn budget(
    caller: Caller,
    UserId(user_id): UserId,
    State(st): State<UsageState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    caller.authorize_user(&user_id)?;
    params.allow(&[])?;
    let b = dashboard::budget(
        st.settings.as_ref(),
        st.limits.as_ref(),
        st.budgets.as_ref(),
        &user_id,
        Utc::now(),
    )
    .await?;
    Ok(Json(json!({
        "month": b.month,
        "limit_usd": b.limit,
        "spent_usd": b.spent,
        "reserved_usd": b.reserved,
        "remaining_usd": b.remaining,
        "projected_usd": b.projected,
        "alerted_thresholds": b.alerted_thresholds,
    })))
}

/// Cost insights ([`crate::usage::insights`]). The registry scope is the caller's tenant
/// when they ask about themselves.
#[utoipa::path(
    get,
    path = "/api/llm-usage/{userId}/insights",
    tag = "usage",
    summary = "Cost insights",
    params(("userId" = String, Path, description = "The user id (URL-encoded); the caller's own unless admin"), ("days" = Option<u32>, Query, description = "7 to 90, default 30")),
    security(("bearer" = [])),
    responses((status = 200, description = "period, forecast, anomalies, cheaper_models, repeated_prompts, truncated", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope))
)]
async fn insights(
    caller: Caller,
    UserId(user_id): UserId,
    State(st): State<UsageState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    caller.authorize_user(&user_id)?;
    params.allow(&["days"])?;
    let sources = usage::insights::Sources {
        usage: st.usage.as_ref(),
        settings: st.settings.as_ref(),
        limits: st.limits.as_ref(),
        budgets: st.budgets.as_ref(),
        registry: st.registry.as_ref(),
    };
    let own_tenant = (caller.user_id == user_id).then_some(caller.tenant_id.as_deref());
    let report = usage::insights::insights(
        &sources,
        &user_id,
        own_tenant,
        params.get("days"),
        Utc::now(),
    )
    .await?;
    Ok(Json(
        serde_json::to_value(report).map_err(ApiError::internal)?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/admin/audit",
    tag = "admin",
    summary = "The audit log",
    params(("actor" = Option<String>, Query, description = ""), ("target" = Option<String>, Query, description = ""), ("action" = Option<String>, Query, description = ""), ("start" = Option<String>, Query, description = "RFC 3339 start (inclusive)"), ("end" = Option<String>, Query, description = "RFC 3339 end"), ("limit" = Option<u32>, Query, description = ""), ("nextToken" = Option<String>, Query, description = "")),
    security(("bearer" = [])),
    responses((status = 200, description = "Audit records with actor and time", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope))
)]
async fn audit_log(
    caller: Caller,
    State(st): State<UsageState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    params.allow(&[
        "actor",
        "target",
        "action",
        "start",
        "end",
        "limit",
        "nextToken",
    ])?;
    let p = usage::audit::AuditParams {
        actor: params.get("actor"),
        target: params.get("target"),
        action: params.get("action"),
        start: params.get("start"),
        end: params.get("end"),
        limit: params.get("limit"),
        next_token: params.get("nextToken"),
    };
    let (events, next) =
        usage::audit::page(st.audit.as_ref(), &st.token_key, &p, Utc::now()).await?;
    Ok(Json(json!({"events": events, "nextToken": next})))
}

#[utoipa::path(
    get,
    path = "/api/admin/usage/summary",
    tag = "admin",
    summary = "Usage over every user",
    params(("start" = Option<String>, Query, description = "RFC 3339 start (inclusive)"), ("end" = Option<String>, Query, description = "RFC 3339 end"), ("provider" = Option<String>, Query, description = "")),
    security(("bearer" = [])),
    responses((status = 200, description = "Totals and breakdowns over every user", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope))
)]
async fn admin_summary(
    caller: Caller,
    State(st): State<UsageState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    params.allow(&["start", "end", "provider"])?;
    let report = admin::summary(
        st.usage.as_ref(),
        params.get("start"),
        params.get("end"),
        params.get("provider"),
        Utc::now(),
    )
    .await?;
    let mut body = serde_json::to_value(report.summary).map_err(ApiError::internal)?;
    body["by_user"] = json!(report.by_user);
    body["start"] = json!(report.range.start_key());
    body["end"] = json!(report.range.end_key());
    body["entries_read"] = json!(report.entries_read);
    Ok(Json(body))
}

#[utoipa::path(
    get,
    path = "/api/admin/providers/health",
    tag = "admin",
    summary = "Provider health over 15 minutes and 24 hours",
    security(("bearer" = [])),
    responses((status = 200, description = "Per provider and model: requests, success rate, latency p50/p95, errors by category", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope))
)]
async fn providers_health(
    caller: Caller,
    State(st): State<UsageState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    params.allow(&[])?;
    let report = health::report(st.usage.as_ref(), Utc::now()).await?;
    Ok(Json(
        serde_json::to_value(report).map_err(ApiError::internal)?,
    ))
}

/// The export streams: the status and headers leave before the first store page is read.
#[utoipa::path(
    get,
    path = "/api/llm-usage/{userId}/export",
    tag = "usage",
    summary = "Every entry in range",
    params(("userId" = String, Path, description = "The user id (URL-encoded); the caller's own unless admin"), ("start" = Option<String>, Query, description = "RFC 3339 start (inclusive)"), ("end" = Option<String>, Query, description = "RFC 3339 end"), ("format" = Option<String>, Query, description = "csv or ndjson")),
    security(("bearer" = [])),
    responses((status = 200, description = "The entries", content((String = "text/csv"), (String = "application/x-ndjson"))), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope))
)]
async fn export(
    caller: Caller,
    UserId(user_id): UserId,
    State(st): State<UsageState>,
    params: Params,
) -> Result<Response, ApiError> {
    caller.authorize_user(&user_id)?;
    params.allow(&["start", "end", "format"])?;
    let export = usage::export::export(
        st.usage.clone(),
        user_id,
        params.get("format"),
        params.get("start"),
        params.get("end"),
        Utc::now(),
    )?;
    let body = export.chunks.map(Ok::<Bytes, std::convert::Infallible>);
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(export.format.content_type()),
    );
    let disposition = format!(
        "attachment; filename=\"usage.{}\"",
        export.format.extension()
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// This router's operations in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    entries,
    summary,
    daily,
    budget,
    insights,
    export,
    admin_summary,
    audit_log,
    providers_health
))]
pub(crate) struct Doc;
