//! The `generate` function's router: `POST /api/llm-generate/{userId}` (JSON or
//! Server-Sent Events), and the OpenAI-compatible face of the same engine.

use super::extract::{JsonBody, UserId};
use crate::error::{ApiError, current_request_id};
use crate::generate::request::GenerateBody;
use crate::generate::stream::{self, Event};
use crate::generate::{GenerateResponse, GenerateState, generate_detached};
use crate::identity::Caller;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::Stream;
use std::convert::Infallible;
use tokio::sync::mpsc;

pub fn generate_router(state: GenerateState) -> Router {
    Router::new()
        .route("/api/llm-generate/{user_id}", post(generate_handler))
        .route(
            "/v1/chat/completions",
            post(super::openai::chat_completions),
        )
        .route("/v1/models", get(super::openai::list_models))
        .with_state(state)
}

async fn generate_handler(
    caller: Caller,
    UserId(user_id): UserId,
    State(st): State<GenerateState>,
    JsonBody(body): JsonBody<GenerateBody>,
) -> Result<Response, ApiError> {
    caller.authorize_user(&user_id)?;
    let req = body.validate(st.app.catalog)?;
    let request_id = current_request_id();
    if req.stream {
        let mut rx = stream::start(st, user_id, request_id.clone(), req);
        let first = first_event(&mut rx).await?;
        return Ok(sse(first, rx, request_id).into_response());
    }
    Ok(Json(generate_detached(&st, &user_id, request_id, req).await?).into_response())
}

/// Waits for the first event: a failure before any text is an ordinary error response
/// with its status code, not a stream.
pub async fn first_event(rx: &mut mpsc::Receiver<Event>) -> Result<Event, ApiError> {
    match rx.recv().await {
        Some(Event::Failed(e)) => Err(e),
        Some(event) => Ok(event),
        None => Err(ApiError::internal("stream ended before its first event")),
    }
}

/// The events after the first, as a stream.
pub fn events(first: Event, rx: mpsc::Receiver<Event>) -> impl Stream<Item = Event> + Send {
    futures_util::stream::unfold((Some(first), rx), |(pending, mut rx)| async move {
        match pending {
            Some(event) => Some((event, (None, rx))),
            None => rx.recv().await.map(|event| (event, (None, rx))),
        }
    })
}

fn done_payload(r: &GenerateResponse) -> serde_json::Value {
    serde_json::json!({
        "provider": r.provider, "model": r.model, "usage": r.usage,
        "requestId": r.request_id, "cached": r.cached, "attempts": r.attempts,
    })
}

pub fn error_payload(e: &ApiError, request_id: &str) -> serde_json::Value {
    serde_json::json!({"error": {"code": e.code(), "message": e.to_string(), "requestId": request_id}})
}

/// `event: delta` with `{"text"}`, then `event: done` with usage, or `event: error`.
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
                .json_data(serde_json::json!({"text": text})),
            Event::Done(r) => SseEvent::default()
                .event("done")
                .json_data(done_payload(&r)),
            Event::Failed(e) => SseEvent::default()
                .event("error")
                .json_data(error_payload(&e, &request_id)),
        }
        .unwrap_or_else(|_| SseEvent::default().event("error").data("{}")))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
