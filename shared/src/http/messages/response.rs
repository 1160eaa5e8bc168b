//! Answers in Anthropic's shapes: the `message` object, its streamed events, and the
//! error envelope.

use crate::generate::GenerateResponse;
use crate::generate::stream::Event;
use crate::http::error::ApiError;
use crate::providers::{FinishReason, ToolCallDelta};
use axum::http::StatusCode;
use axum::response::sse::Event as SseEvent;
use serde_json::{Value, json};

/// The message id: the gateway's request id, so a client's id finds the log lines.
pub fn message_id(request_id: &str) -> String {
    format!("msg_{}", request_id.trim_start_matches("req-"))
}

/// Anthropic's stop reason for a neutral finish reason. A stop on one of the caller's
/// `stop_sequences` cannot be told from a natural end here, so both are `end_turn`.
pub fn stop_reason(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Stop => "end_turn",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter => "refusal",
    }
}

/// Anthropic counts cache reads apart from `input_tokens`; the gateway's input count
/// holds them. Cache writes are not reported by the engine's usage, so they stay in
/// `input_tokens` and `cache_creation_input_tokens` is 0.
fn usage(r: &GenerateResponse) -> Value {
    let cached = r.usage.cached_input_tokens;
    json!({
        "input_tokens": r.usage.input_tokens.saturating_sub(cached),
        "output_tokens": r.usage.output_tokens,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    })
}

/// A tool call's arguments as the `input` object; a model that wrote invalid JSON
/// gets `{}` (Anthropic's `input` is always an object).
fn input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}

/// The whole answer as Anthropic's `message` object, `model` as the caller named it.
pub fn message(r: &GenerateResponse, request_id: &str, model: &str) -> Value {
    let mut content = Vec::new();
    if !r.content.is_empty() {
        content.push(json!({"type": "text", "text": r.content}));
    }
    for c in &r.tool_calls {
        content.push(
            json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input(&c.arguments)}),
        );
    }
    json!({
        "id": message_id(request_id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(r.finish_reason),
        "stop_sequence": null,
        "usage": usage(r),
    })
}

/// Anthropic's error type for a status code.
pub fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 405 | 409 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        408 | 504 => "timeout_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 | 503 => "overloaded_error",
        _ => "api_error",
    }
}

/// Anthropic's error envelope. `request_id` is the gateway's, as in its own envelope;
/// `attempts` (which providers failed) rides along when there were any.
pub fn error_body(
    status: StatusCode,
    message: &str,
    request_id: &Value,
    attempts: Option<&Value>,
) -> Value {
    let mut body = json!({"type": "error",
        "error": {"type": error_type(status), "message": message},
        "request_id": request_id});
    if let Some(a) = attempts {
        body["error"]["attempts"] = a.clone();
    }
    body
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Open {
    Text,
    /// The neutral index and the id of the tool call the block holds.
    Tool(u32, String),
}

/// Turns the engine's events into Anthropic's, one content block at a time: a new block
/// when text turns into a tool call, and for each new tool call.
pub struct Blocks {
    id: String,
    model: String,
    request_id: String,
    next: u32,
    open: Option<Open>,
}

/// An event's name and data, before it is written as SSE.
pub type Named = (&'static str, Value);

fn sse(name: &'static str, data: Value) -> Named {
    (name, data)
}

/// One event on the wire: `event: <name>` and its JSON.
pub fn to_sse((name, data): Named) -> SseEvent {
    SseEvent::default().event(name).data(data.to_string())
}

impl Blocks {
    pub fn new(request_id: &str, model: String) -> Self {
        Blocks {
            id: message_id(request_id),
            model,
            request_id: request_id.to_owned(),
            next: 0,
            open: None,
        }
    }

    /// `message_start`: the usage is zero, since the input count is only known at the
    /// end; `message_delta` carries both counts, as Anthropic's newer API does.
    pub fn start(&self) -> Named {
        sse(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        )
    }

    fn close(&mut self, out: &mut Vec<Named>) {
        if self.open.take().is_some() {
            let index = self.next - 1;
            out.push(sse(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    fn open_block(&mut self, open: Open, block: Value, out: &mut Vec<Named>) -> u32 {
        self.close(out);
        let index = self.next;
        self.next += 1;
        self.open = Some(open);
        out.push(sse(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        index
    }

    fn text(&mut self, text: String, out: &mut Vec<Named>) {
        let index = match self.open {
            Some(Open::Text) => self.next - 1,
            _ => self.open_block(Open::Text, json!({"type": "text", "text": ""}), out),
        };
        out.push(sse(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index,
                   "delta": {"type": "text_delta", "text": text}}),
        ));
    }

    fn tool(&mut self, t: ToolCallDelta, out: &mut Vec<Named>) {
        // A call's first fragment carries its id; a later one of the same call has no id,
        // or (from some adapters) the same id again.
        let continues = matches!(&self.open, Some(Open::Tool(i, id))
            if *i == t.index && t.id.as_ref().is_none_or(|new| new == id));
        let index = if continues {
            self.next - 1
        } else {
            let id = t.id.unwrap_or_else(|| {
                let msg = self.id.trim_start_matches("msg_");
                format!("toolu_{msg}_{}", t.index)
            });
            let name = t.name.unwrap_or_default();
            let block = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
            self.open_block(Open::Tool(t.index, id), block, out)
        };
        if !t.arguments.is_empty() {
            out.push(sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index,
                       "delta": {"type": "input_json_delta", "partial_json": t.arguments}}),
            ));
        }
    }

    /// The Anthropic events for one engine event.
    pub fn events(&mut self, event: Event) -> Vec<Named> {
        let mut out = Vec::new();
        match event {
            // Only ever first, and taken by `opened`.
            Event::Opened { .. } => {}
            Event::Delta(text) => self.text(text, &mut out),
            Event::ToolCall(t) => self.tool(t, &mut out),
            Event::Done(r) => {
                self.close(&mut out);
                // message_start said 0 input tokens; the real figures are here.
                let u = usage(&r);
                out.push(sse(
                    "message_delta",
                    json!({"type": "message_delta",
                           "delta": {"stop_reason": stop_reason(r.finish_reason), "stop_sequence": null},
                           "usage": u}),
                ));
                out.push(sse("message_stop", json!({"type": "message_stop"})));
            }
            Event::Failed(e) => {
                let e = ApiError::from(e);
                let attempts = match &e {
                    ApiError::Upstream { attempts, .. } => Some(attempts.clone()),
                    _ => None,
                };
                out.push(sse(
                    "error",
                    error_body(
                        e.status(),
                        &e.to_string(),
                        &json!(self.request_id),
                        attempts.as_ref(),
                    ),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn arguments_that_are_not_an_object_become_an_empty_input() {
        assert_eq!(input(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(input("{\"a\":"), json!({}));
        assert_eq!(input("[1]"), json!({}));
    }

    #[test]
    fn a_repeated_id_continues_its_block_and_a_new_one_opens_another() {
        let mut b = Blocks::new("req-1", "m".into());
        let call = |index, id: Option<&str>, args: &str| {
            Event::ToolCall(ToolCallDelta {
                index,
                id: id.map(str::to_owned),
                name: id.map(|_| "f".to_owned()),
                arguments: args.into(),
            })
        };
        let mut out = b.events(Event::Delta("hi".into()));
        out.extend(b.events(call(0, Some("a"), "{")));
        out.extend(b.events(call(0, Some("a"), "}")));
        out.extend(b.events(call(0, None, "")));
        out.extend(b.events(call(1, None, "{}")));
        let seq: Vec<String> = out
            .iter()
            .map(|(n, d)| format!("{n}:{}", d["index"]))
            .collect();
        assert_eq!(
            seq,
            [
                "content_block_start:0",
                "content_block_delta:0",
                "content_block_stop:0",
                "content_block_start:1",
                "content_block_delta:1",
                "content_block_delta:1",
                "content_block_stop:1",
                "content_block_start:2",
                "content_block_delta:2",
            ]
        );
        // A call that came without an id still gets one.
        assert_eq!(out[7].1["content_block"]["id"], "toolu_1_1");
    }

    #[test]
    fn statuses_map_to_anthropic_error_types() {
        assert_eq!(error_type(StatusCode::BAD_REQUEST), "invalid_request_error");
        assert_eq!(error_type(StatusCode::UNAUTHORIZED), "authentication_error");
        assert_eq!(
            error_type(StatusCode::TOO_MANY_REQUESTS),
            "rate_limit_error"
        );
        assert_eq!(error_type(StatusCode::BAD_GATEWAY), "api_error");
    }
}
