//! The Anthropic Messages face of the generate engine: `POST /v1/messages` (JSON, or
//! Anthropic's SSE events) and `POST /v1/messages/count_tokens`, so the Anthropic SDKs
//! and Claude Code work with their base URL at the gateway and the caller's token as
//! the API key (`x-api-key`, see `extract.rs`). `model` is any catalog model, of any
//! provider, named as on the OpenAI face (`provider/model` or a catalog id).
//!
//! `anthropic-version` and `anthropic-beta` are accepted and not forwarded: the neutral
//! request has no place for provider headers yet, and the Anthropic adapter sends its own
//! version.

mod request;
mod response;

use super::error::{ApiError, current_request_id};
use super::extract::JsonBody;
use super::generate::{GenerateApi, drop_params_requested, with_dropped};
use super::openai::resolve_model;
use super::sse::{events, opened};
use crate::generate::request::Generate;
use crate::generate::stream;
use crate::generate::{GenerateState, generate_detached};
use crate::identity::Caller;
use crate::providers::ChatRequest;
use crate::registry::RegistryView;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
pub use request::MessagesBody;
use request::renamed;
use response::{Blocks, error_body, to_sse};
use serde_json::{Value, json};

/// The tokens an image is counted at by `count_tokens` (the engine's own estimate).
const IMAGE_TOKENS: u64 = 1000;

/// `POST /v1/messages` and `POST /v1/messages/count_tokens`, on the generate routes'
/// state. Every error they answer is in Anthropic's envelope, the extractors' included.
pub fn messages_routes() -> Router<GenerateApi> {
    Router::new()
        .route("/v1/messages", post(create_message))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route_layer(axum::middleware::map_response(anthropic_errors))
}

/// The engine's request: the model resolved from the catalog, the body translated, then
/// the shared validation, whose field names are put back into Anthropic's.
pub fn to_generate(
    body: MessagesBody,
    catalog: &RegistryView,
    tenant: Option<String>,
) -> Result<Generate, ApiError> {
    let model = resolve_model(catalog, &body.model, tenant.as_deref()).ok_or_else(|| {
        ApiError::invalid(
            "model",
            "unknown or disabled model; GET /v1/models lists them",
        )
    })?;
    let (provider, id) = (model.provider, model.id.clone());
    let generate = body.into_body(provider, id)?;
    Ok(generate.validate_for(catalog, tenant).map_err(renamed)?)
}

#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "anthropic",
    summary = "Anthropic Messages",
    request_body(content = Object, description = "Anthropic's Messages request (max_tokens required)", content_type = "application/json", example = json!({"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": "Say hello"}]})),
    security(("bearer" = []), ("x-api-key" = [])),
    responses((status = 200, description = "Anthropic's message; with `stream: true`, Anthropic's named events (message_start, content_block_delta, ...)", content((Object = "application/json"), (String = "text/event-stream"))), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::AnthropicErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::AnthropicErrorEnvelope), (status = 402, description = "Monthly budget exceeded (`budget_exceeded`)", body = crate::http::openapi::AnthropicErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::AnthropicErrorEnvelope), (status = 413, description = "Body over 1 MiB", body = crate::http::openapi::AnthropicErrorEnvelope), (status = 429, description = "Rate limited (`rate_limited`, with `Retry-After`)", body = crate::http::openapi::AnthropicErrorEnvelope), (status = 502, description = "Every provider tried failed (`provider_error`)", body = crate::http::openapi::AnthropicErrorEnvelope), (status = 504, description = "The providers timed out (`provider_timeout`)", body = crate::http::openapi::AnthropicErrorEnvelope))
)]
pub async fn create_message(
    caller: Caller,
    State(st): State<GenerateState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<MessagesBody>,
) -> Result<Response, ApiError> {
    if body.max_tokens.is_none() {
        return Err(ApiError::invalid("max_tokens", "is required"));
    }
    let requested_model = body.model.clone();
    let tenant = caller.tenant_id.clone();
    let mut req = to_generate(body, &*st.registry.view().await, tenant)?;
    req.drop_params = drop_params_requested(&headers);
    let request_id = current_request_id();
    let user_id = caller.user_id;
    if !req.stream {
        let r = generate_detached(&st, &user_id, request_id.clone(), req).await?;
        let answer = Json(response::message(&r, &request_id, &requested_model)).into_response();
        return Ok(with_dropped(answer, &r.dropped_params));
    }
    let mut rx = stream::start(st, user_id, request_id.clone(), req);
    // A failure before the first event is an ordinary error response.
    let (first, dropped) = opened(&mut rx).await?;
    let mut blocks = Blocks::new(&request_id, requested_model);
    let start = blocks.start();
    use futures_util::StreamExt;
    let stream = futures_util::stream::once(async move { start })
        .chain(events(first, rx).flat_map(move |e| futures_util::stream::iter(blocks.events(e))))
        .map(|e| Ok::<_, std::convert::Infallible>(to_sse(e)));
    let response = Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response();
    Ok(with_dropped(response, &dropped))
}

/// An estimate, not a count: the gateway has no tokenizer, so the prompt is counted as
/// the engine counts it for rate limits (about four bytes a token, tool definitions
/// included) and each image at a fixed figure. No provider is called.
#[utoipa::path(
    post,
    path = "/v1/messages/count_tokens",
    tag = "anthropic",
    summary = "Anthropic token count",
    request_body(content = Object, description = "Anthropic's count_tokens request (no max_tokens)", content_type = "application/json", example = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]})),
    security(("bearer" = []), ("x-api-key" = [])),
    responses((status = 200, description = "`{\"input_tokens\": N}`", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::AnthropicErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::AnthropicErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::AnthropicErrorEnvelope), (status = 413, description = "Body over 1 MiB", body = crate::http::openapi::AnthropicErrorEnvelope))
)]
pub async fn count_tokens(
    caller: Caller,
    State(st): State<GenerateState>,
    JsonBody(body): JsonBody<MessagesBody>,
) -> Result<Json<Value>, ApiError> {
    if body.max_tokens.is_some() {
        return Err(ApiError::invalid(
            "max_tokens",
            "is not a count_tokens field",
        ));
    }
    if body.stream.is_some() {
        return Err(ApiError::invalid("stream", "is not a count_tokens field"));
    }
    let tenant = caller.tenant_id.clone();
    let g = to_generate(body, &*st.registry.view().await, tenant)?;
    let chat = ChatRequest {
        system: g.system,
        messages: g.messages,
        tools: g.tooling.tools,
        ..ChatRequest::default()
    };
    let images = u64::try_from(chat.image_count()).unwrap_or(u64::MAX);
    let tokens = u64::try_from(chat.prompt_bytes().div_ceil(4))
        .unwrap_or(u64::MAX)
        .saturating_add(images.saturating_mul(IMAGE_TOKENS));
    Ok(Json(json!({"input_tokens": tokens})))
}

/// Rewrites the gateway's error envelope into Anthropic's (same status, same headers,
/// `x-request-id` included, which the outer layer adds), so the Anthropic SDKs raise
/// their typed errors. Success responses, streams included, pass untouched.
async fn anthropic_errors(response: Response) -> Response {
    let status = response.status();
    if status.is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let message = v["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let request_id = match &v["error"]["requestId"] {
        Value::Null => json!(current_request_id()),
        id => id.clone(),
    };
    let body = error_body(status, &message, &request_id, v["error"].get("attempts"));
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body.to_string()))
}

/// This router's operations in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(create_message, count_tokens))]
pub(crate) struct Doc;
