//! The `generate` function's router: `POST /api/llm-generate/{userId}` (JSON or
//! Server-Sent Events), merged with the OpenAI-compatible and Anthropic Messages faces of
//! the same engine.

use super::error::{ApiError, current_request_id};
use super::extract::{JsonBody, UserId};
use super::sse::{error_data, events, opened};
use crate::generate::request::GenerateBody;
use crate::generate::stream::{self, Event};
use crate::generate::{GenerateResponse, GenerateState, generate_detached};
use crate::identity::{Caller, IdentityMode};
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::stream::Stream;
use std::convert::Infallible;
use tokio::sync::mpsc;

/// The generate routes' state: the engine, and how callers are identified.
#[derive(Clone)]
pub struct GenerateApi {
    pub engine: GenerateState,
    pub identity: IdentityMode,
}

impl FromRef<GenerateApi> for IdentityMode {
    fn from_ref(api: &GenerateApi) -> IdentityMode {
        api.identity.clone()
    }
}

impl FromRef<GenerateApi> for GenerateState {
    fn from_ref(api: &GenerateApi) -> GenerateState {
        api.engine.clone()
    }
}

pub fn generate_router(api: GenerateApi) -> Router {
    Router::new()
        .route("/api/llm-generate/{user_id}", post(generate_handler))
        .merge(super::openai::openai_routes())
        .merge(super::messages::messages_routes())
        .merge(super::embeddings::embeddings_routes())
        .with_state(api)
}

/// The caller's request to drop parameters the chosen provider cannot honour.
pub const DROP_PARAMS: &str = "x-gateway-drop-params";
/// The answer's list of the parameters that were dropped.
pub const DROPPED_PARAMS: &str = "x-gateway-dropped-params";

pub fn drop_params_requested(headers: &HeaderMap) -> bool {
    headers
        .get(DROP_PARAMS)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Names the dropped parameters in the answer's header (none: no header).
pub fn with_dropped(mut response: Response, dropped: &[&'static str]) -> Response {
    if !dropped.is_empty()
        && let Ok(v) = HeaderValue::from_str(&dropped.join(","))
    {
        response.headers_mut().insert(DROPPED_PARAMS, v);
    }
    response
}

#[utoipa::path(
    post,
    path = "/api/llm-generate/{userId}",
    tag = "generate",
    summary = "Generate a completion",
    params(("userId" = String, Path, description = "The user id (URL-encoded); the caller's own unless admin")),
    request_body(content = crate::generate::request::GenerateBody, description = "`prompt` or `messages` (exactly one); everything else optional. Unknown fields are 400", content_type = "application/json", example = json!({"prompt": "Count the users who signed up last week", "operationType": "query_generation", "maxTokens": 200})),
    security(("bearer" = [])),
    responses((status = 200, description = "content, toolCalls, provider, model, usage, requestId, cached, attempts; with `stream: true`, Server-Sent Events: text deltas, then a final event with usage", content((crate::generate::response::GenerateResponse = "application/json"), (String = "text/event-stream"))), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 402, description = "Monthly budget exceeded (`budget_exceeded`)", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope), (status = 413, description = "Body over 1 MiB", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited (`rate_limited`, with `Retry-After`)", body = crate::http::openapi::ErrorEnvelope), (status = 502, description = "Every provider tried failed (`provider_error`)", body = crate::http::openapi::ErrorEnvelope), (status = 504, description = "The providers timed out (`provider_timeout`)", body = crate::http::openapi::ErrorEnvelope))
)]
async fn generate_handler(
    caller: Caller,
    UserId(user_id): UserId,
    State(st): State<GenerateState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<GenerateBody>,
) -> Result<Response, ApiError> {
    caller.authorize_user(&user_id)?;
    let tenant = caller.tenant_for(&user_id);
    let mut req = body.validate_for(&*st.registry.view().await, tenant)?;
    req.drop_params = drop_params_requested(&headers);
    let request_id = current_request_id();
    if req.stream {
        let mut rx = stream::start(st, user_id, request_id.clone(), req);
        let (first, dropped) = opened(&mut rx).await?;
        return Ok(with_dropped(
            sse(first, rx, request_id).into_response(),
            &dropped,
        ));
    }
    let r = generate_detached(&st, &user_id, request_id, req).await?;
    let dropped = r.dropped_params.clone();
    Ok(with_dropped(Json(r).into_response(), &dropped))
}

fn done_payload(r: &GenerateResponse) -> serde_json::Value {
    serde_json::json!({
        "provider": r.provider, "model": r.model, "usage": r.usage,
        "requestId": r.request_id, "cached": r.cached, "attempts": r.attempts,
        "finishReason": r.finish_reason,
    })
}

/// `event: delta` with `{"text"}` and `event: toolCall` with `{"index", "id", "name",
/// "arguments"}` fragments (id and name on a call's first), then `event: done` with
/// usage and the finish reason, or `event: error`.
fn sse(
    first: Event,
    rx: mpsc::Receiver<Event>,
    request_id: String,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    use futures_util::StreamExt;
    let stream = events(first, rx).map(move |event| {
        Ok(match event {
            Event::Delta(text) => SseEvent::default()
                .event("delta")
                .json_data(serde_json::json!({"text": text}))
                .unwrap_or_else(|_| SseEvent::default().event("error").data("{}")),
            Event::ToolCall(t) => SseEvent::default()
                .event("toolCall")
                .json_data(serde_json::json!({
                    "index": t.index, "id": t.id, "name": t.name, "arguments": t.arguments,
                }))
                .unwrap_or_else(|_| SseEvent::default().event("error").data("{}")),
            // Only ever first, and taken by `opened`.
            Event::Opened { .. } => SseEvent::default().comment("opened"),
            Event::Done(r) => SseEvent::default()
                .event("done")
                .json_data(done_payload(&r))
                .unwrap_or_else(|_| SseEvent::default().event("error").data("{}")),
            Event::Failed(e) => SseEvent::default()
                .event("error")
                .data(error_data(e, &request_id)),
        })
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// This router's operations in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(generate_handler))]
pub(crate) struct Doc;
