//! The admin routes of the `llm-settings` function: the model registry and per-user
//! limits. Every route needs an admin caller (`401` without a token, `403` otherwise);
//! handlers only check that and the parameters, and hand the rest to `registry::admin`
//! and `settings::limits`.

use super::AppState;
use super::error::ApiError;
use super::extract::{JsonBody, UserId, parse_json, path_param};
use super::usage::Params;
use crate::identity::Caller;
use crate::registry::admin::{Admin, BulkResult, ListPage, ListQuery, LlmView};
use crate::registry::input::{Bulk, LlmPatch, NewLlm, SetDefault};
use crate::settings::limits::{self, LimitsBody, LimitsView};
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;

const MAX_PAGE: usize = 200;

pub fn admin_routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/llms", get(list).post(create))
        .route("/api/admin/llms/bulk", post(bulk))
        .route(
            "/api/admin/llms/{id}",
            get(get_one).put(update).delete(remove),
        )
        .route("/api/admin/llms/{id}/toggle", post(toggle))
        .route("/api/admin/llms/{id}/set-default", post(set_default))
        .route(
            "/api/admin/users/{user_id}/limits",
            get(get_limits).put(put_limits),
        )
}

/// The `{id}` of a registry entry.
struct LlmId(String);

impl FromRequestParts<AppState> for LlmId {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let id = path_param(parts, "id").await?;
        if id.is_empty() || id.len() > 128 {
            return Err(ApiError::invalid("id", "must be 1 to 128 characters"));
        }
        Ok(LlmId(id))
    }
}

/// Admin callers only; the registry operations act as them.
fn admin<'a>(caller: &'a Caller, st: &'a AppState) -> Result<Admin<'a>, ApiError> {
    caller.require_admin()?;
    Ok(Admin {
        cache: st.registry.as_ref(),
        operator: st.operator_keys.as_ref(),
        actor: &caller.user_id,
    })
}

fn flag(params: &Params, name: &str) -> Result<Option<bool>, ApiError> {
    params
        .get(name)
        .map(|v| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(ApiError::invalid(name, "must be true or false")),
        })
        .transpose()
}

#[utoipa::path(
    get,
    path = "/api/admin/llms",
    tag = "admin",
    summary = "List registry entries",
    params(("search" = Option<String>, Query, description = "Substring of name or model"), ("provider" = Option<String>, Query, description = "A provider"), ("enabled" = Option<bool>, Query, description = "true or false"), ("scope" = Option<String>, Query, description = "global or a tenant id"), ("limit" = Option<u32>, Query, description = "Page size (at most 200)"), ("nextToken" = Option<String>, Query, description = "Cursor from the previous page")),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of registry entries", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope))
)]
async fn list(
    caller: Caller,
    State(st): State<AppState>,
    params: Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let admin = admin(&caller, &st)?;
    params.allow(&[
        "search",
        "provider",
        "enabled",
        "scope",
        "limit",
        "nextToken",
    ])?;
    let provider = params
        .get("provider")
        .map(|p| {
            p.parse().map_err(|e: crate::provider::UnknownProvider| {
                ApiError::invalid("provider", e.to_string())
            })
        })
        .transpose()?;
    let limit = match params.get("limit") {
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", format!("must be 1 to {MAX_PAGE}")))?,
        None => 50,
    };
    let offset = match params.get("nextToken") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::invalid("nextToken", "is not a token this route issued"))?,
        None => 0,
    };
    let q = ListQuery {
        search: params.get("search").map(str::to_owned),
        provider,
        enabled: flag(&params, "enabled")?,
        scope: params.get("scope").map(str::to_owned),
        offset,
        limit,
    };
    let ListPage {
        llms,
        total,
        next_offset,
    } = admin.list(&q).await?;
    Ok(Json(serde_json::json!({
        "llms": llms, "total": total,
        "nextToken": next_offset.map(|o| o.to_string()),
    })))
}

#[utoipa::path(
    post,
    path = "/api/admin/llms",
    tag = "admin",
    summary = "Create a registry entry",
    request_body(content = Object, description = "A registry entry: name, provider, model_name, description, config, auth_meta (references only), enabled, is_default, priority, scope, capabilities, price", content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 201, description = "The created entry", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope), (status = 409, description = "Stale `version`, or a name another entry holds", body = crate::http::openapi::ErrorEnvelope), (status = 413, description = "Body over 1 MiB", body = crate::http::openapi::ErrorEnvelope))
)]
async fn create(
    caller: Caller,
    State(st): State<AppState>,
    JsonBody(body): JsonBody<NewLlm>,
) -> Result<(StatusCode, Json<LlmView>), ApiError> {
    let view = admin(&caller, &st)?.create(body).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(
    get,
    path = "/api/admin/llms/{id}",
    tag = "admin",
    summary = "A registry entry",
    params(("id" = String, Path, description = "A registry entry id (1 to 128 characters)")),
    security(("bearer" = [])),
    responses((status = 200, description = "A registry entry: id, name, provider, model_name, description, config, auth_meta, enabled, is_default, priority, scope, capabilities, price override, created_at, updated_at", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope), (status = 404, description = "The resource does not exist", body = crate::http::openapi::ErrorEnvelope))
)]
async fn get_one(
    caller: Caller,
    LlmId(id): LlmId,
    State(st): State<AppState>,
) -> Result<Json<LlmView>, ApiError> {
    Ok(Json(admin(&caller, &st)?.get(&id).await?))
}

#[utoipa::path(
    put,
    path = "/api/admin/llms/{id}",
    tag = "admin",
    summary = "Update a registry entry",
    params(("id" = String, Path, description = "A registry entry id (1 to 128 characters)")),
    request_body(content = Object, description = "Fields to change: name, provider, model_name, description, config, auth_meta (references only), enabled, is_default, priority, scope, capabilities, price", content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 200, description = "A registry entry: id, name, provider, model_name, description, config, auth_meta, enabled, is_default, priority, scope, capabilities, price override, created_at, updated_at", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope), (status = 404, description = "The resource does not exist", body = crate::http::openapi::ErrorEnvelope), (status = 409, description = "Stale `version`, or a name another entry holds", body = crate::http::openapi::ErrorEnvelope), (status = 413, description = "Body over 1 MiB", body = crate::http::openapi::ErrorEnvelope))
)]
async fn update(
    caller: Caller,
    LlmId(id): LlmId,
    State(st): State<AppState>,
    JsonBody(body): JsonBody<LlmPatch>,
) -> Result<Json<LlmView>, ApiError> {
    Ok(Json(admin(&caller, &st)?.update(&id, body).await?))
}

#[utoipa::path(
    delete,
    path = "/api/admin/llms/{id}",
    tag = "admin",
    summary = "Delete a registry entry",
    params(("id" = String, Path, description = "A registry entry id (1 to 128 characters)")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope), (status = 404, description = "The resource does not exist", body = crate::http::openapi::ErrorEnvelope))
)]
async fn remove(
    caller: Caller,
    LlmId(id): LlmId,
    State(st): State<AppState>,
) -> Result<StatusCode, ApiError> {
    admin(&caller, &st)?.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/admin/llms/{id}/toggle",
    tag = "admin",
    summary = "Enable or disable an entry",
    params(("id" = String, Path, description = "A registry entry id (1 to 128 characters)")),
    security(("bearer" = [])),
    responses((status = 200, description = "A registry entry: id, name, provider, model_name, description, config, auth_meta, enabled, is_default, priority, scope, capabilities, price override, created_at, updated_at", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope), (status = 404, description = "The resource does not exist", body = crate::http::openapi::ErrorEnvelope), (status = 409, description = "Stale `version`, or a name another entry holds", body = crate::http::openapi::ErrorEnvelope))
)]
async fn toggle(
    caller: Caller,
    LlmId(id): LlmId,
    State(st): State<AppState>,
) -> Result<Json<LlmView>, ApiError> {
    Ok(Json(admin(&caller, &st)?.toggle(&id).await?))
}

/// The body is optional: none means the default for every operation type.
#[utoipa::path(
    post,
    path = "/api/admin/llms/{id}/set-default",
    tag = "admin",
    summary = "Make an entry the default for its scope and operation type",
    params(("id" = String, Path, description = "A registry entry id (1 to 128 characters)")),
    request_body(content = Object, description = "Optional: `{\"operationType\": \"...\"}`; an empty body is allowed", content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 200, description = "A registry entry: id, name, provider, model_name, description, config, auth_meta, enabled, is_default, priority, scope, capabilities, price override, created_at, updated_at", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope), (status = 404, description = "The resource does not exist", body = crate::http::openapi::ErrorEnvelope), (status = 409, description = "Stale `version`, or a name another entry holds", body = crate::http::openapi::ErrorEnvelope), (status = 413, description = "Body over 1 MiB", body = crate::http::openapi::ErrorEnvelope))
)]
async fn set_default(
    caller: Caller,
    LlmId(id): LlmId,
    State(st): State<AppState>,
    body: Bytes,
) -> Result<Json<LlmView>, ApiError> {
    let admin = admin(&caller, &st)?;
    let body: SetDefault = if body.iter().all(u8::is_ascii_whitespace) {
        SetDefault::default()
    } else {
        parse_json(&body)?
    };
    Ok(Json(admin.set_default(&id, body).await?))
}

#[utoipa::path(
    post,
    path = "/api/admin/llms/bulk",
    tag = "admin",
    summary = "Enable, disable or delete many entries",
    request_body(content = Object, description = "`{\"action\": \"enable|disable|delete\", \"ids\": [...]}`", content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 200, description = "`{\"results\": [...], \"succeeded\", \"failed\"}`", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope), (status = 413, description = "Body over 1 MiB", body = crate::http::openapi::ErrorEnvelope))
)]
async fn bulk(
    caller: Caller,
    State(st): State<AppState>,
    JsonBody(body): JsonBody<Bulk>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let results: Vec<BulkResult> = admin(&caller, &st)?.bulk(body).await?;
    let failed = results.iter().filter(|r| !r.ok).count();
    Ok(Json(serde_json::json!({
        "results": results, "succeeded": results.len() - failed, "failed": failed,
    })))
}

#[utoipa::path(
    get,
    path = "/api/admin/users/{userId}/limits",
    tag = "admin",
    summary = "A user's admin limits",
    params(("userId" = String, Path, description = "The user id (URL-encoded); the caller's own unless admin")),
    security(("bearer" = [])),
    responses((status = 200, description = "The limits (`null`: not limited)", body = crate::settings::limits::LimitsView), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope))
)]
async fn get_limits(
    caller: Caller,
    UserId(user_id): UserId,
    State(st): State<AppState>,
) -> Result<Json<LimitsView>, ApiError> {
    caller.require_admin()?;
    let current = st.limits.get_limits(&user_id).await?;
    Ok(Json(LimitsView::new(&user_id, current)))
}

#[utoipa::path(
    put,
    path = "/api/admin/users/{userId}/limits",
    tag = "admin",
    summary = "Set a user's admin limits",
    params(("userId" = String, Path, description = "The user id (URL-encoded); the caller's own unless admin")),
    request_body(content = crate::settings::limits::LimitsBody, description = "e.g. `{\"monthlyBudgetUsd\": 100.0, \"requestsPerMinute\": 60}`; an absent or `null` field is not limited", content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 200, description = "The limits after the write", body = crate::settings::limits::LimitsView), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope), (status = 409, description = "Stale `version`, or a name another entry holds", body = crate::http::openapi::ErrorEnvelope), (status = 413, description = "Body over 1 MiB", body = crate::http::openapi::ErrorEnvelope))
)]
async fn put_limits(
    caller: Caller,
    UserId(user_id): UserId,
    State(st): State<AppState>,
    JsonBody(body): JsonBody<LimitsBody>,
) -> Result<Json<LimitsView>, ApiError> {
    caller.require_admin()?;
    let next = limits::put(st.limits.as_ref(), &caller.user_id, &user_id, body).await?;
    Ok(Json(LimitsView::new(&user_id, Some(next))))
}

/// This router's operations in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list,
    create,
    get_one,
    update,
    remove,
    toggle,
    set_default,
    bulk,
    get_limits,
    put_limits
))]
pub(crate) struct Doc;
