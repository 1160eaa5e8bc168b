//! The OpenAI-compatible face of the generate engine: `POST /v1/chat/completions`
//! (JSON and OpenAI's SSE chunks, usage included) and `GET /v1/models`, so the official
//! OpenAI SDKs work with `base_url` at the gateway and the caller's bearer token as
//! `api_key`. `model` is a catalog id or `provider/model`.

use super::error::{ApiError, current_request_id};
use super::extract::JsonBody;
use super::generate::{GenerateApi, drop_params_requested, with_dropped};
use super::sse::{error_data, events, opened};
use crate::generate::chat_fields::{MessageIn, ResponseFormatIn, ToolChoiceIn, ToolIn};
use crate::generate::error::GenerateError;
use crate::generate::request::Generate;
use crate::generate::response::openai_call;
use crate::generate::stream::{self, Event};
use crate::generate::{GenerateResponse, GenerateState, generate_detached};
use crate::identity::Caller;
use crate::pricing::ModelPrice;
use crate::provider::Provider;
use crate::providers::params::{Param, Stop};
use crate::providers::{ReasoningEffort, ToolCallDelta};
use crate::registry::RegistryView;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Every documented Chat Completions request field. A field OpenAI does not define is a
/// `400` (`deny_unknown_fields`), so a typo is never silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatCompletionBody {
    model: String,
    messages: Vec<MessageIn>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    presence_penalty: Option<f64>,
    #[serde(default)]
    frequency_penalty: Option<f64>,
    #[serde(default)]
    tools: Option<Vec<ToolIn>>,
    #[serde(default)]
    tool_choice: Option<ToolChoiceIn>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    response_format: Option<ResponseFormatIn>,
    #[serde(default)]
    logprobs: Option<bool>,
    #[serde(default)]
    top_logprobs: Option<u8>,
    #[serde(default)]
    logit_bias: Option<BTreeMap<String, i32>>,
    #[serde(default)]
    reasoning_effort: Option<ReasoningEffort>,
    #[serde(default)]
    stream: Option<bool>,
    /// `{"include_usage": true}` adds OpenAI's separate usage chunk (empty `choices`)
    /// before `[DONE]`; without it the usage rides on the final chunk, so a client
    /// reading `choices[0]` of every chunk never meets an empty list.
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    /// OpenAI's end-user id; the gateway's user is the token's.
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
    /// OpenAI pads chunks against length side channels; the gateway's chunks are its own.
    #[serde(default, rename = "include_obfuscation")]
    _include_obfuscation: Option<bool>,
}

/// The OpenAI name of a field the shared validation names in the native body's camelCase.
fn openai_field(field: String) -> String {
    const RENAMED: [(&str, &str); 6] = [
        ("toolChoice", "tool_choice"),
        ("responseFormat", "response_format"),
        ("topLogprobs", "top_logprobs"),
        ("logitBias", "logit_bias"),
        ("maxTokens", "max_tokens"),
        ("parallelToolCalls", "parallel_tool_calls"),
    ];
    for (camel, snake) in RENAMED {
        if let Some(rest) = field.strip_prefix(camel) {
            return format!("{snake}{rest}");
        }
    }
    Param::ALL
        .into_iter()
        .find(|p| p.camel() == field)
        .map_or(field, |p| p.name().to_owned())
}

/// `provider/model` first (so `openai/gpt-4o-mini` is OpenAI's model), then a plain
/// catalog id (which may itself contain a `/`, like OpenRouter's).
/// A tenant's members also reach the tenant's own entries.
pub(super) fn resolve_model<'v>(
    view: &'v RegistryView,
    model: &str,
    tenant: Option<&str>,
) -> Option<&'v ModelPrice> {
    if let Some((p, rest)) = model.split_once('/')
        && let Ok(provider) = p.parse::<Provider>()
        && let Some(r) = view.find(tenant, Some(provider), rest)
    {
        return Some(&r.model);
    }
    view.find(tenant, None, model).map(|r| &r.model)
}

impl ChatCompletionBody {
    pub fn into_generate(
        self,
        catalog: &RegistryView,
        tenant: Option<String>,
    ) -> Result<(Generate, bool), ApiError> {
        let _ = self.user;
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::invalid("n", "only 1 choice is supported"));
        }
        let model = resolve_model(catalog, &self.model, tenant.as_deref()).ok_or_else(|| {
            ApiError::invalid(
                "model",
                "unknown or disabled model; GET /v1/models lists them",
            )
        })?;
        let stream = self.stream.unwrap_or(false);
        let body = crate::generate::request::GenerateBody {
            messages: Some(self.messages),
            operation_type: Some("conversation".into()),
            provider: Some(model.provider),
            model: Some(model.id.clone()),
            max_tokens: self.max_completion_tokens.or(self.max_tokens),
            temperature: self.temperature,
            top_p: self.top_p,
            stop: self.stop,
            seed: self.seed,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            tools: self.tools,
            tool_choice: self.tool_choice,
            parallel_tool_calls: self.parallel_tool_calls,
            response_format: self.response_format,
            logprobs: self.logprobs,
            top_logprobs: self.top_logprobs,
            logit_bias: self.logit_bias,
            reasoning_effort: self.reasoning_effort,
            stream: Some(stream),
            metadata: self.metadata,
            ..Default::default()
        };
        let generate = body.validate_for(catalog, tenant).map_err(|e| match e {
            // This face's callers know the parameters by OpenAI's names.
            GenerateError::Invalid { field, message } => GenerateError::Invalid {
                field: openai_field(field),
                message,
            },
            other => other,
        })?;
        Ok((generate, stream))
    }
}

/// `POST /v1/chat/completions` and `GET /v1/models`, on the generate routes' state.
pub fn openai_routes() -> Router<GenerateApi> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(list_models))
}

fn created() -> i64 {
    chrono::Utc::now().timestamp()
}

fn usage_json(r: &GenerateResponse) -> Value {
    json!({
        "prompt_tokens": r.usage.input_tokens,
        "completion_tokens": r.usage.output_tokens,
        "total_tokens": r.usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": r.usage.cached_input_tokens},
    })
}

fn completion_id(request_id: &str) -> String {
    format!("chatcmpl-{}", request_id.trim_start_matches("req-"))
}

#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "openai",
    summary = "OpenAI Chat Completions",
    request_body(content = Object, description = "OpenAI's Chat Completions request", content_type = "application/json", example = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 50})),
    security(("bearer" = [])),
    responses((status = 200, description = "OpenAI's chat.completion; with `stream: true`, OpenAI's chat.completion.chunk events", content((Object = "application/json"), (String = "text/event-stream"))), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 402, description = "Monthly budget exceeded (`budget_exceeded`)", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope), (status = 413, description = "Body over 1 MiB", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited (`rate_limited`, with `Retry-After`)", body = crate::http::openapi::ErrorEnvelope), (status = 502, description = "Every provider tried failed (`provider_error`)", body = crate::http::openapi::ErrorEnvelope), (status = 504, description = "The providers timed out (`provider_timeout`)", body = crate::http::openapi::ErrorEnvelope))
)]
pub async fn chat_completions(
    caller: Caller,
    State(st): State<GenerateState>,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody<ChatCompletionBody>,
) -> Result<Response, ApiError> {
    let requested_model = body.model.clone();
    let usage_chunk = body
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let tenant = caller.tenant_id.clone();
    let (mut req, streaming) = body.into_generate(&*st.registry.view().await, tenant)?;
    req.drop_params = drop_params_requested(&headers);
    let request_id = current_request_id();
    let user_id = caller.user_id;
    if !streaming {
        let r = generate_detached(&st, &user_id, request_id.clone(), req).await?;
        let answer = Json(json!({
            "id": completion_id(&request_id),
            "object": "chat.completion",
            "created": created(),
            "model": requested_model,
            "choices": [{"index": 0, "message": assistant_message(&r),
                         "finish_reason": r.finish_reason.as_openai(),
                         "logprobs": r.logprobs.clone().unwrap_or(Value::Null)}],
            "usage": usage_json(&r),
        }))
        .into_response();
        return Ok(with_dropped(answer, &r.dropped_params));
    }
    let mut rx = stream::start(st, user_id, request_id.clone(), req);
    let (first, dropped) = opened(&mut rx).await?;
    let id = completion_id(&request_id);
    let ts = created();
    // `delta: None` is OpenAI's usage-only chunk, whose `choices` is empty.
    let chunk = move |delta: Option<Value>, finish: Value, usage: Option<Value>| {
        let choices = match delta {
            None => json!([]),
            Some(delta) => {
                json!([{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}])
            }
        };
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": ts, "model": requested_model, "choices": choices});
        if let Some(u) = usage {
            c["usage"] = u;
        }
        c
    };
    use futures_util::StreamExt;
    let mut started = false;
    let stream = events(first, rx).flat_map(move |event| {
        // The first delta of any kind carries the role, as OpenAI's does.
        let mut delta_chunk = |mut delta: Value| {
            if !started {
                delta["role"] = json!("assistant");
                started = true;
            }
            Ok(SseEvent::default().data(chunk(Some(delta), Value::Null, None).to_string()))
        };
        let items: Vec<Result<SseEvent, std::convert::Infallible>> = match event {
            // Only ever first, and taken by `opened`.
            Event::Opened { .. } => Vec::new(),
            Event::Delta(text) => vec![delta_chunk(json!({"content": text}))],
            Event::ToolCall(t) => vec![delta_chunk(json!({"tool_calls": [tool_call_delta(&t)]}))],
            Event::Done(r) if usage_chunk => vec![
                Ok(SseEvent::default().data(
                    chunk(Some(json!({})), json!(r.finish_reason.as_openai()), None).to_string(),
                )),
                Ok(SseEvent::default()
                    .data(chunk(None, Value::Null, Some(usage_json(&r))).to_string())),
                Ok(SseEvent::default().data("[DONE]")),
            ],
            Event::Done(r) => vec![
                Ok(SseEvent::default().data(
                    chunk(
                        Some(json!({})),
                        json!(r.finish_reason.as_openai()),
                        Some(usage_json(&r)),
                    )
                    .to_string(),
                )),
                Ok(SseEvent::default().data("[DONE]")),
            ],
            Event::Failed(e) => vec![Ok(SseEvent::default().data(error_data(e, &request_id)))],
        };
        futures_util::stream::iter(items)
    });
    let response = Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response();
    Ok(with_dropped(response, &dropped))
}

/// The answer's message: `content` is `null` when the model only called tools, as
/// OpenAI's is.
fn assistant_message(r: &GenerateResponse) -> Value {
    let content = if r.content.is_empty() && !r.tool_calls.is_empty() {
        Value::Null
    } else {
        json!(r.content)
    };
    let mut m = json!({"role": "assistant", "content": content, "refusal": null});
    if !r.tool_calls.is_empty() {
        m["tool_calls"] = r.tool_calls.iter().map(openai_call).collect();
    }
    m
}

/// One streamed tool-call fragment in OpenAI's chunk shape: the id, type and name on a
/// call's first fragment, the argument pieces on every one.
fn tool_call_delta(t: &ToolCallDelta) -> Value {
    let mut function = json!({"arguments": t.arguments});
    if let Some(name) = &t.name {
        function["name"] = json!(name);
    }
    let mut v = json!({"index": t.index, "function": function});
    if let Some(id) = &t.id {
        v["id"] = json!(id);
        v["type"] = json!("function");
    }
    v
}

/// The enabled registry entries, in priority order: the chat models, then the embedding
/// models (`POST /v1/embeddings`), as OpenAI's listing also holds both. Each entry and
/// the list carry both SDKs' fields (OpenAI's `object`/`created`/`owned_by`, Anthropic's
/// `type`/`display_name`/`created_at` and one page's `has_more`/`first_id`/`last_id`),
/// so `client.models.list()` parses in either.
#[utoipa::path(
    get,
    operation_id = "openai_list_models",
    path = "/v1/models",
    tag = "openai",
    summary = "OpenAI model list",
    security(("bearer" = [])),
    responses((status = 200, description = "`{\"object\": \"list\", \"data\": [{id, object, created, owned_by}]}`", body = Object), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope))
)]
pub async fn list_models(caller: Caller, State(st): State<GenerateState>) -> Json<Value> {
    let view = st.registry.view().await;
    let tenant = caller.tenant_id.as_deref();
    let data: Vec<Value> = view
        .usable(tenant)
        .chain(view.embedders(tenant))
        .map(|r| &r.model)
        .map(|m| {
            json!({"id": format!("{}/{}", m.provider, m.id), "object": "model", "created": 0,
                   "owned_by": m.provider, "type": "model", "display_name": m.display_name,
                   "created_at": created_at(&m.effective_date)})
        })
        .collect();
    let first_id = data.first().map_or(Value::Null, |m| m["id"].clone());
    let last_id = data.last().map_or(Value::Null, |m| m["id"].clone());
    Json(json!({"object": "list", "data": data, "has_more": false,
                "first_id": first_id, "last_id": last_id}))
}

/// Anthropic's RFC 3339 `created_at`: the catalog's price date is the nearest thing the
/// gateway knows to a release date (the epoch when it is not a date).
fn created_at(effective_date: &str) -> String {
    chrono::NaiveDate::parse_from_str(effective_date, "%Y-%m-%d")
        .map_or_else(|_| "1970-01-01".to_owned(), |d| d.to_string())
        + "T00:00:00Z"
}

/// This router's operations in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(chat_completions, list_models))]
pub(crate) struct Doc;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_sampling_fields_are_accepted_and_unknown_ones_still_refused() {
        let ok = r#"{"model": "gpt-4o", "messages": [], "top_p": 0.5, "stop": "END",
            "seed": 7, "presence_penalty": 0.1, "frequency_penalty": -0.1}"#;
        let body: ChatCompletionBody = serde_json::from_str(ok).unwrap();
        assert_eq!(body.stop, Some(Stop::One("END".into())));
        assert_eq!(body.seed, Some(7));
        let list = r#"{"model": "m", "messages": [], "stop": ["a", "b"]}"#;
        let body: ChatCompletionBody = serde_json::from_str(list).unwrap();
        assert_eq!(body.stop.map(Stop::into_vec).unwrap(), ["a", "b"]);
        let typo = r#"{"model": "m", "messages": [], "top_k": 3}"#;
        assert!(serde_json::from_str::<ChatCompletionBody>(typo).is_err());
    }
}
