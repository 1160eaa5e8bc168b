//! The `llm-settings` function's router: preferences, keys, the model catalog, health.

use super::AppState;
use super::error::ApiError;
use super::extract::{JsonBody, UserId, path_param};
use crate::identity::Caller;
use crate::provider::Provider;
use crate::registry::Resolved;
use crate::registry::view::Scoped;
use crate::settings::connection_test::{self, TestOutcome, TestRequest};
use crate::settings::{SettingsUpdate, SettingsView, service};
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

pub fn settings_router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(super::openapi::openapi_json))
        .route("/api/me", get(me))
        .route("/api/llm-models", get(list_models))
        .route(
            "/api/llm-settings/{user_id}",
            get(get_settings).put(put_settings),
        )
        .route(
            "/api/llm-settings/{user_id}/keys/{provider}",
            delete(delete_key),
        )
        .route("/api/llm-settings/{user_id}/test", post(test_connection))
        .merge(super::tenants::tenant_settings_routes())
        .merge(super::admin::admin_routes())
        .merge(super::pages::page_routes())
        .with_state(state)
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "meta",
    summary = "Liveness and version",
    responses((status = 200, description = "`{\"status\": \"ok\", \"version\": \"x.y.z\"}`", body = Object))
)]
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// Who the token belongs to: what the dashboard needs to know which pages to show and
/// whose settings to read. Only what the caller's own token already says.
#[utoipa::path(
    get,
    path = "/api/me",
    tag = "settings",
    summary = "Who the token belongs to",
    security(("bearer" = [])),
    responses((status = 200, description = "`{\"userId\", \"admin\", \"tenantId\", \"tenantAdmin\"}`", body = Object), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope))
)]
async fn me(caller: Caller) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "userId": caller.user_id,
        "admin": caller.is_admin,
        "tenantId": caller.tenant_id,
        "tenantAdmin": caller.is_tenant_admin,
    }))
}

#[utoipa::path(
    get,
    path = "/api/llm-settings/{userId}",
    tag = "settings",
    summary = "A user's settings",
    params(("userId" = String, Path, description = "The user id (URL-encoded); the caller's own unless admin")),
    security(("bearer" = [])),
    responses((status = 200, description = "The settings (defaults when nothing is saved): preferences, hasApiKeys, keyHints, version, updatedAt", body = crate::settings::SettingsView), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope))
)]
async fn get_settings(
    caller: Caller,
    UserId(user_id): UserId,
    State(state): State<AppState>,
) -> Result<Json<SettingsView>, ApiError> {
    caller.authorize_user(&user_id)?;
    let record = service::read(state.settings.as_ref(), &user_id).await?;
    Ok(Json(record.into()))
}

/// Saves `owner`'s settings (a user's, or a tenant's under its owner id): the models it
/// may name are those of `scope` (a tenant's entries and the global ones).
pub(super) async fn save(
    state: &AppState,
    caller: &Caller,
    owner: &str,
    scope: Option<&str>,
    body: SettingsUpdate,
) -> Result<crate::settings::SettingsRecord, ApiError> {
    // Preferences may name only models the registry has enabled.
    let view = state.registry.view().await;
    let models = Scoped {
        view: view.as_ref(),
        tenant: scope,
    };
    let record = service::update(
        state.settings.as_ref(),
        state.vault.as_ref(),
        &state.key_changes,
        &models,
        &caller.user_id,
        owner,
        body,
    )
    .await?;
    Ok(record)
}

/// Removes `owner`'s key for `provider`.
pub(super) async fn remove_key(
    state: &AppState,
    caller: &Caller,
    owner: &str,
    scope: Option<&str>,
    provider: Provider,
) -> Result<(), ApiError> {
    let update = SettingsUpdate {
        api_keys: Some([(provider, None)].into()),
        ..Default::default()
    };
    save(state, caller, owner, scope, update).await?;
    tracing::info!(actor = %caller.user_id, owner = %owner, provider = %provider, "key deleted");
    Ok(())
}

/// Tests `owner`'s saved keys, or keys given in the body, against the providers.
pub(super) async fn test_keys(
    state: &AppState,
    owner: &str,
    body: TestRequest,
) -> Result<TestOutcome, ApiError> {
    if let Err(wait) = state.test_limiter.check(owner) {
        return Err(ApiError::RateLimited {
            retry_after_secs: wait.as_secs().max(1),
        });
    }
    let settings = service::read(state.settings.as_ref(), owner).await?;
    let outcome = connection_test::run(
        state.providers.as_ref(),
        state.vault.as_ref(),
        state.catalog,
        &settings,
        owner,
        body,
    )
    .await?;
    Ok(outcome)
}

#[utoipa::path(
    put,
    path = "/api/llm-settings/{userId}",
    tag = "settings",
    summary = "Merge preferences, store or delete keys",
    params(("userId" = String, Path, description = "The user id (URL-encoded); the caller's own unless admin")),
    request_body(content = crate::settings::SettingsUpdate, description = "e.g. `{\"preferences\": {\"defaultProvider\": \"anthropic\"}, \"apiKeys\": {\"anthropic\": \"sk-ant-...\", \"openai\": null}, \"version\": 7}`; unknown fields are 400", content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 200, description = "The settings after the write (the GET body)", body = crate::settings::SettingsView), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope), (status = 409, description = "Stale `version`, or a name another entry holds", body = crate::http::openapi::ErrorEnvelope), (status = 413, description = "Body over 1 MiB", body = crate::http::openapi::ErrorEnvelope))
)]
async fn put_settings(
    caller: Caller,
    UserId(user_id): UserId,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<SettingsUpdate>,
) -> Result<Json<SettingsView>, ApiError> {
    caller.authorize_user(&user_id)?;
    let tenant = caller.tenant_for(&user_id);
    let record = save(&state, &caller, &user_id, tenant.as_deref(), body).await?;
    tracing::info!(
        actor = %caller.user_id,
        target_user = %user_id,
        version = record.version,
        "settings updated"
    );
    Ok(Json(record.into()))
}

/// The `{provider}` path segment, which must name a built-in provider.
pub(super) struct ProviderPath(pub Provider);

impl FromRequestParts<AppState> for ProviderPath {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let raw = path_param(parts, "provider").await?;
        raw.parse()
            .map(ProviderPath)
            .map_err(|e| ApiError::invalid("provider", e.to_string()))
    }
}

#[utoipa::path(
    delete,
    path = "/api/llm-settings/{userId}/keys/{provider}",
    tag = "settings",
    summary = "Delete a stored key",
    params(("userId" = String, Path, description = "The user id (URL-encoded); the caller's own unless admin"), ("provider" = crate::provider::Provider, Path, description = "A built-in provider (anthropic, openai, google, bedrock, azure_openai, groq, openrouter, fireworks, mistral, deepseek, together, ollama)")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope), (status = 409, description = "Stale `version`, or a name another entry holds", body = crate::http::openapi::ErrorEnvelope))
)]
async fn delete_key(
    caller: Caller,
    UserId(user_id): UserId,
    ProviderPath(provider): ProviderPath,
    State(state): State<AppState>,
) -> Result<StatusCode, ApiError> {
    caller.authorize_user(&user_id)?;
    let tenant = caller.tenant_for(&user_id);
    remove_key(&state, &caller, &user_id, tenant.as_deref(), provider).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/llm-settings/{userId}/test",
    tag = "settings",
    summary = "Test a saved or given key",
    params(("userId" = String, Path, description = "The user id (URL-encoded); the caller's own unless admin")),
    request_body(content = crate::settings::connection_test::TestRequest, description = "The provider; a key to try unsaved (else the saved one); a model (else the default)", content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 200, description = "The outcome (a failed test is 200 with success false)", body = crate::settings::connection_test::TestOutcome), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope), (status = 413, description = "Body over 1 MiB", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited (`rate_limited`, with `Retry-After`)", body = crate::http::openapi::ErrorEnvelope))
)]
async fn test_connection(
    caller: Caller,
    UserId(user_id): UserId,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<TestRequest>,
) -> Result<Json<TestOutcome>, ApiError> {
    caller.authorize_user(&user_id)?;
    Ok(Json(test_keys(&state, &user_id, body).await?))
}

#[derive(Serialize)]
struct ModelView {
    /// The registry entry: `llmId` on a generate request picks it.
    llm_id: String,
    name: String,
    priority: i64,
    provider: Provider,
    id: String,
    display_name: String,
    input_per_1m: Option<f64>,
    output_per_1m: Option<f64>,
    cached_input_per_1m: Option<f64>,
    cache_write_per_1m: Option<f64>,
    context_window: u64,
    max_output_tokens: u64,
    capabilities: Vec<String>,
    enabled: bool,
    is_default: bool,
    effective_date: String,
}

/// Prices are shown as JSON numbers; the conversion is display only, never summed.
fn display(rate: Decimal) -> Option<f64> {
    rate.to_f64()
}

impl From<&Resolved> for ModelView {
    fn from(r: &Resolved) -> Self {
        let m = &r.model;
        ModelView {
            llm_id: r.entry.id.clone(),
            name: r.entry.name.clone(),
            priority: r.entry.priority,
            provider: m.provider,
            id: m.id.clone(),
            display_name: m.display_name.clone(),
            input_per_1m: display(m.input),
            output_per_1m: display(m.output),
            cached_input_per_1m: m.cached_read.and_then(display),
            cache_write_per_1m: m.cache_write.and_then(display),
            context_window: m.context_window,
            max_output_tokens: m.max_output_tokens,
            capabilities: m.capabilities.clone(),
            enabled: r.entry.enabled,
            is_default: r.entry.is_default(),
            effective_date: m.effective_date.clone(),
        }
    }
}

/// The enabled registry entries the caller may use (their tenant's included), in
/// priority order.
#[utoipa::path(
    get,
    path = "/api/llm-models",
    tag = "settings",
    summary = "The models the caller may pick",
    security(("bearer" = [])),
    responses((status = 200, description = "`{\"models\": [{llm_id, name, priority, provider, id, display_name, input_per_1m, output_per_1m, cached_input_per_1m, cache_write_per_1m, context_window, max_output_tokens, capabilities, enabled, is_default, effective_date}], \"priceVersion\"}`", body = Object), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope))
)]
async fn list_models(caller: Caller, State(state): State<AppState>) -> Json<serde_json::Value> {
    let view = state.registry.view().await;
    let models: Vec<ModelView> = view
        .usable(caller.tenant_id.as_deref())
        .map(|r| ModelView::from(r.as_ref()))
        .collect();
    Json(serde_json::json!({"models": models, "priceVersion": state.catalog.version}))
}

/// This router's operations in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    health,
    me,
    get_settings,
    put_settings,
    delete_key,
    test_connection,
    list_models
))]
pub(crate) struct Doc;
