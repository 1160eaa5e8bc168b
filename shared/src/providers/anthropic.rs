//! Anthropic Messages API (`POST /v1/messages`): `x-api-key` and `anthropic-version`
//! headers, a top-level `system`, and usage whose `input_tokens` excludes cache reads
//! and writes (`cache_read_input_tokens`, `cache_creation_input_tokens`), which are
//! added back so [`TokenCounts::input_tokens`] is always the whole prompt.

use super::error::{excerpt, kind_for_status, mentions_context_length, retry_after};
use super::ratelimit::{RateLimitState, count, header};
use super::sse::{SseDecoder, SseEvents};
use super::{
    ChatRequest, ChatWire, Endpoint, ErrorKind, FinishReason, Generation, ImageSource, Message,
    Part, ProviderError, ResponseFormat, Role, StreamEvent, StreamParser, ToolCall, ToolCallDelta,
    ToolChoice, WireRequest, join,
};
use crate::pricing::TokenCounts;
use crate::provider::Provider;
use crate::secret::ApiKey;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

pub const API_VERSION: &str = "2023-06-01";

pub struct Anthropic;

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

impl Usage {
    fn counts(&self) -> TokenCounts {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        TokenCounts {
            input_tokens: self.input_tokens + read + written,
            output_tokens: self.output_tokens,
            cached_input_tokens: read,
            cache_write_tokens: written,
        }
    }
}

/// An answer's content block: `text`, or `tool_use` with its id, name and input.
#[derive(Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    input: Value,
}

#[derive(Deserialize)]
struct MessageResponse {
    model: String,
    content: Vec<ContentBlock>,
    stop_reason: Option<String>,
    // Anthropic's own tool-use examples leave usage out.
    #[serde(default)]
    usage: Usage,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: String,
}

fn auth(req: &mut WireRequest, key: Option<&ApiKey>) -> Result<(), ProviderError> {
    let key = key.ok_or_else(|| ProviderError::new(ErrorKind::InvalidKey, "no key"))?;
    req.secret_header("x-api-key", key.expose())?;
    req.header("anthropic-version", API_VERSION);
    Ok(())
}

/// Anthropic's error `type`s, with the status as a fallback for anything new.
fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (kind_name, message) = parsed
        .map(|b| (b.error.kind, b.error.message))
        .unwrap_or_default();
    let lower = message.to_ascii_lowercase();
    let kind = match kind_name.as_str() {
        "authentication_error" => ErrorKind::InvalidKey,
        "permission_error" => ErrorKind::PermissionDenied,
        "not_found_error" => ErrorKind::ModelNotFound,
        "rate_limit_error" => ErrorKind::RateLimited,
        "billing_error" => ErrorKind::QuotaExceeded,
        "request_too_large" => ErrorKind::ContextLengthExceeded,
        "api_error" | "overloaded_error" => ErrorKind::ServerError,
        "timeout_error" => ErrorKind::Timeout,
        "invalid_request_error" if lower.contains("credit balance") => ErrorKind::QuotaExceeded,
        "invalid_request_error" if mentions_context_length(&message) => {
            ErrorKind::ContextLengthExceeded
        }
        "invalid_request_error" => ErrorKind::InvalidRequest,
        _ => kind_for_status(status),
    };
    ProviderError::new(kind, format!("anthropic {status}: {}", excerpt(body)))
        .with_status(status)
        .with_retry_after(retry_after(headers))
}

/// `anthropic-ratelimit-requests-remaining|reset` and the token limits' (`tokens`,
/// `input-tokens`, `output-tokens`), resets as RFC 3339 times. The tokens that remain are
/// the fewest of any token limit (with that limit's reset): a request needs room in
/// each, and Anthropic's own `tokens-*` pair already names the most restrictive one.
pub fn rate_limit_headers(headers: &HeaderMap) -> RateLimitState {
    let time = |name: &str| {
        header(headers, name)
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let pair = |limit: &str| {
        count(headers, &format!("anthropic-ratelimit-{limit}-remaining"))
            .map(|n| (n, time(&format!("anthropic-ratelimit-{limit}-reset"))))
    };
    let tokens = ["tokens", "input-tokens", "output-tokens"]
        .into_iter()
        .filter_map(pair)
        .min_by_key(|(n, _)| *n);
    let requests = pair("requests");
    RateLimitState {
        requests_remaining: requests.map(|(n, _)| n),
        requests_reset: requests.and_then(|(_, t)| t),
        tokens_remaining: tokens.map(|(n, _)| n),
        tokens_reset: tokens.and_then(|(_, t)| t),
        blocked_until: None,
    }
}

/// Structured output goes through a forced tool: Messages has no JSON mode, and Anthropic
/// documents a tool whose `input_schema` is the wanted schema, forced by `tool_choice`,
/// as the way to get JSON. Parsers see no request, so the tool's name carries the
/// marker: a `tool_use` of a tool so named is the answer itself (its `input` as content,
/// finishing with `stop`), never a call for the client. Callers' tools may not use it.
pub(crate) const ANSWER_TOOL_PREFIX: &str = "json_answer_";

/// Anthropic and Bedrock both cap tool names at 64 characters.
const TOOL_NAME_MAX: usize = 64;

pub(crate) fn is_answer_tool(name: &str) -> bool {
    name.starts_with(ANSWER_TOOL_PREFIX)
}

/// The synthetic tool a JSON response format is forced through.
pub(crate) struct AnswerTool {
    pub name: String,
    pub description: String,
    pub schema: Value,
}

/// The forced tool for `request`'s response format, if it wants JSON. A request with
/// both its own tools and a JSON format is refused: forcing the answer tool would keep
/// the model from calling the caller's tools, and offering both would let it skip the
/// format, so neither meaning could be kept.
pub(crate) fn answer_tool(
    request: &ChatRequest,
    label: &str,
) -> Result<Option<AnswerTool>, ProviderError> {
    if let Some(t) = request.tools.iter().find(|t| is_answer_tool(&t.name)) {
        return Err(ProviderError::new(
            ErrorKind::InvalidRequest,
            format!(
                "{label}: tool name {} is reserved (the {ANSWER_TOOL_PREFIX} prefix carries structured answers)",
                t.name
            ),
        ));
    }
    let Some(format) = request.response_format.as_ref().filter(|f| f.wants_json()) else {
        return Ok(None);
    };
    if !request.tools.is_empty() {
        return Err(ProviderError::new(
            ErrorKind::InvalidRequest,
            format!("{label}: response_format with tools is not supported"),
        ));
    }
    let tool = match format {
        ResponseFormat::JsonSchema {
            name,
            description,
            schema,
            ..
        } => AnswerTool {
            name: answer_tool_name(name),
            description: description.clone().unwrap_or_else(|| {
                "Give the answer as this tool's input, matching its schema.".to_owned()
            }),
            schema: schema.clone(),
        },
        ResponseFormat::JsonObject | ResponseFormat::Text => AnswerTool {
            name: answer_tool_name("object"),
            description: "Give the answer as this tool's input, a JSON object.".to_owned(),
            schema: json!({"type": "object"}),
        },
    };
    Ok(Some(tool))
}

/// The prefix and the schema's name, in the characters tool names allow, within the cap.
fn answer_tool_name(schema_name: &str) -> String {
    let safe = schema_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(TOOL_NAME_MAX - ANSWER_TOOL_PREFIX.len());
    ANSWER_TOOL_PREFIX.chars().chain(safe).collect()
}

/// A call's `arguments` as the JSON object Anthropic and Bedrock take for its input.
/// Empty arguments are an argument-less call (some clients send `""` for one); anything
/// else that is not an object is refused here rather than passed on to fail upstream
/// with a less clear message.
pub(crate) fn call_input(call: &ToolCall, label: &str) -> Result<Value, ProviderError> {
    if call.arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(&call.arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(ProviderError::new(
            ErrorKind::InvalidRequest,
            format!(
                "{label}: the arguments of tool call {} are not a JSON object",
                call.id
            ),
        )),
        Err(e) => Err(ProviderError::new(
            ErrorKind::InvalidRequest,
            format!(
                "{label}: the arguments of tool call {} are not valid JSON: {e}",
                call.id
            ),
        )),
    }
}

/// A tool message must name the call it answers: both APIs match results to calls by id.
pub(crate) fn result_id<'m>(m: &'m Message, label: &str) -> Result<&'m str, ProviderError> {
    m.tool_call_id.as_deref().ok_or_else(|| {
        ProviderError::new(
            ErrorKind::InvalidRequest,
            format!("{label}: a tool message needs the tool_call_id it answers"),
        )
    })
}

/// One turn of the conversation being built. `open`: a user turn of tool results that
/// further results and the user's next words still join, since Anthropic wants every
/// result of an assistant turn in the one user turn after it, results first, and turns
/// that alternate.
struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
    open: bool,
}

/// The system prompt's pieces (system turns in the conversation join it) and the
/// messages, in Messages' content blocks.
fn conversation(request: &ChatRequest) -> Result<(Vec<String>, Vec<Value>), ProviderError> {
    let mut system: Vec<String> = request.system.iter().cloned().collect();
    let mut turns: Vec<Turn> = Vec::new();
    for m in &request.messages {
        match m.role {
            Role::System => system.push(m.joined_text()),
            Role::Tool => {
                let block = tool_result(m)?;
                match turns.last_mut() {
                    Some(last) if last.open => last.blocks.push(block),
                    _ => turns.push(Turn {
                        role: "user",
                        blocks: vec![block],
                        open: true,
                    }),
                }
            }
            Role::User => match turns.last_mut() {
                Some(last) if last.open => {
                    last.blocks.extend(m.parts.iter().filter_map(block));
                    last.open = false;
                }
                _ => turns.push(Turn {
                    role: "user",
                    blocks: m.parts.iter().filter_map(block).collect(),
                    open: false,
                }),
            },
            Role::Assistant => {
                let mut blocks: Vec<Value> = m.parts.iter().filter_map(block).collect();
                for c in &m.tool_calls {
                    blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name,
                                       "input": call_input(c, "anthropic")?}));
                }
                turns.push(Turn {
                    role: "assistant",
                    blocks,
                    open: false,
                });
            }
        }
    }
    let messages = turns
        .into_iter()
        .map(|t| {
            // A lone text stays a plain string, the shorthand Anthropic documents.
            let content = match t.blocks.as_slice() {
                [] => json!(""),
                [b] if b["type"] == "text" => b["text"].clone(),
                _ => Value::Array(t.blocks),
            };
            json!({"role": t.role, "content": content})
        })
        .collect();
    Ok((system, messages))
}

/// A part as a content block; empty text is left out, since Anthropic refuses empty
/// text blocks (clients send `""` beside tool calls).
fn block(p: &Part) -> Option<Value> {
    match p {
        Part::Text { text } if text.is_empty() => None,
        Part::Text { text } => Some(json!({"type": "text", "text": text})),
        // Anthropic has no `detail`: it sizes images itself.
        Part::Image { source, .. } => Some(match source {
            ImageSource::Base64 { media_type, data } => json!({"type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data}}),
            ImageSource::Url { url } => {
                json!({"type": "image", "source": {"type": "url", "url": url}})
            }
        }),
    }
}

/// A tool's answer: its text as a string, or blocks when it holds images too.
fn tool_result(m: &Message) -> Result<Value, ProviderError> {
    let id = result_id(m, "anthropic")?;
    let content = if m.has_images() {
        Value::Array(m.parts.iter().filter_map(block).collect())
    } else {
        json!(m.joined_text())
    };
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": content}))
}

/// Tools, tool choice and the structured-output tool. `tool_choice` is sent only with
/// tools, which Anthropic requires of it.
fn tooling(body: &mut Value, request: &ChatRequest) -> Result<(), ProviderError> {
    let answer = answer_tool(request, "anthropic")?;
    let mut tools: Vec<Value> = request
        .tools
        .iter()
        .map(|t| {
            let mut v = json!({"name": t.name, "input_schema": t.parameters});
            if let Some(d) = &t.description {
                v["description"] = json!(d);
            }
            v
        })
        .collect();
    let mut choice = request.tool_choice.as_ref().map(|c| match c {
        ToolChoice::Auto => json!({"type": "auto"}),
        ToolChoice::None => json!({"type": "none"}),
        ToolChoice::Required => json!({"type": "any"}),
        ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
    });
    if let Some(a) = answer {
        choice = Some(json!({"type": "tool", "name": a.name}));
        tools.push(json!({"name": a.name, "description": a.description,
                          "input_schema": a.schema}));
    }
    if tools.is_empty() {
        return Ok(());
    }
    if request.parallel_tool_calls == Some(false) {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        // `none` calls nothing, and takes no such flag.
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
    }
    body["tools"] = Value::Array(tools);
    if let Some(c) = choice {
        body["tool_choice"] = c;
    }
    Ok(())
}

/// A `tool_use` block's `input` as argument text (compact JSON; `{}` when absent).
fn input_text(input: &Value) -> String {
    if input.is_null() {
        "{}".to_owned()
    } else {
        input.to_string()
    }
}

impl ChatWire for Anthropic {
    fn provider(&self) -> Provider {
        Provider::Anthropic
    }

    fn chat_request(
        &self,
        endpoint: &Endpoint,
        key: Option<&ApiKey>,
        request: &ChatRequest,
    ) -> Result<WireRequest, ProviderError> {
        let (system, messages) = conversation(request)?;
        let mut body = json!({
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
        });
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        tooling(&mut body, request)?;
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        // Messages has no seed and no penalties: `params` refuses or drops those
        // before a request gets here.
        if let Some(p) = request.top_p {
            body["top_p"] = json!(p);
        }
        if !request.stop.is_empty() {
            body["stop_sequences"] = json!(request.stop);
        }
        if request.stream {
            body["stream"] = json!(true);
        }
        let mut req = WireRequest::post_json(join(&endpoint.base_url, "/v1/messages"), &body)?;
        auth(&mut req, key)?;
        Ok(req)
    }

    fn parse_chat(
        &self,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Generation, ProviderError> {
        if !(200..300).contains(&status) {
            return Err(classify(status, headers, body));
        }
        let r: MessageResponse = serde_json::from_slice(body).map_err(|e| {
            ProviderError::new(
                ErrorKind::ServerError,
                format!("anthropic: unreadable answer: {e}"),
            )
            .with_status(status)
        })?;
        let mut content = String::new();
        let mut tool_calls = Vec::new();
        let mut answer = None;
        for b in r.content {
            match b.kind.as_str() {
                "text" => content.push_str(&b.text),
                "tool_use" if is_answer_tool(&b.name) => answer = Some(input_text(&b.input)),
                "tool_use" => tool_calls.push(ToolCall {
                    id: b.id,
                    name: b.name,
                    arguments: input_text(&b.input),
                }),
                _ => {}
            }
        }
        let mut finish_reason = r.stop_reason.as_deref().map(stop_reason);
        if let Some(json) = answer {
            // A forced tool leaves no room for text of the model's own (Anthropic
            // prefills the turn), so the JSON alone is the answer: what was asked for.
            content = json;
            if tool_calls.is_empty() && finish_reason == Some(FinishReason::ToolCalls) {
                finish_reason = Some(FinishReason::Stop);
            }
        }
        Ok(Generation {
            content,
            tool_calls,
            model: r.model,
            tokens: r.usage.counts(),
            finish_reason,
            logprobs: None,
            rate_limit: None,
        })
    }

    fn classify_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        classify(status, headers, body)
    }

    fn rate_limit(&self, headers: &HeaderMap, _now: DateTime<Utc>) -> RateLimitState {
        rate_limit_headers(headers)
    }

    fn stream_parser(&self) -> Box<dyn StreamParser> {
        Box::new(AnthropicStream::default())
    }

    fn probe_request(
        &self,
        endpoint: &Endpoint,
        key: Option<&ApiKey>,
        _model: &str,
    ) -> Result<WireRequest, ProviderError> {
        let mut req = WireRequest::get(join(&endpoint.base_url, "/v1/models?limit=1000"));
        auth(&mut req, key)?;
        Ok(req)
    }

    fn parse_probe(
        &self,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
        model: &str,
    ) -> Result<(), ProviderError> {
        if !(200..300).contains(&status) {
            return Err(classify(status, headers, body));
        }
        #[derive(Deserialize)]
        struct Listing {
            data: Vec<ModelId>,
            #[serde(default)]
            has_more: bool,
        }
        #[derive(Deserialize)]
        struct ModelId {
            id: String,
        }
        let listing: Listing = serde_json::from_slice(body).map_err(|e| {
            ProviderError::new(ErrorKind::ServerError, format!("anthropic models: {e}"))
        })?;
        // Only a complete listing can prove a model is missing.
        if !listing.has_more && !listing.data.iter().any(|m| m.id == model) {
            return Err(ProviderError::new(
                ErrorKind::ModelNotFound,
                format!("{model} is not in the key's model listing"),
            ));
        }
        Ok(())
    }
}

/// Anthropic's event stream: `message_start` (input usage), `content_block_start`
/// (a `tool_use` block's id and name), `content_block_delta` (text, or a piece of a
/// tool's input as `input_json_delta`), `message_delta` (output usage, stop reason),
/// `message_stop`; an `error` event may arrive mid-stream.
#[derive(Default)]
struct AnthropicStream {
    sse: SseDecoder,
    usage: Usage,
    stop_reason: Option<FinishReason>,
    /// The `tool_use` blocks seen, by content-block index: deltas name only the block.
    blocks: Vec<(u64, ToolBlock)>,
    /// Calls seen so far: clients number calls from 0, not content blocks, which
    /// count the text before them too.
    calls: u32,
    answered: bool,
    done: bool,
}

#[derive(Clone, Copy)]
enum ToolBlock {
    Call(u32),
    /// The structured-output tool: its input is the answer's text.
    Answer,
}

/// Anthropic's `stop_reason`s in the neutral vocabulary (`refusal` is a filter's).
fn stop_reason(r: &str) -> FinishReason {
    match r {
        "max_tokens" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

impl AnthropicStream {
    fn handle(&mut self, data: &str, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        let v: serde_json::Value = serde_json::from_str(data).map_err(|e| {
            ProviderError::new(ErrorKind::ServerError, format!("anthropic stream: {e}"))
        })?;
        match v["type"].as_str().unwrap_or("") {
            "message_start" => {
                if let Ok(u) = serde_json::from_value::<Usage>(v["message"]["usage"].clone()) {
                    self.usage = u;
                }
            }
            "content_block_start" if v["content_block"]["type"] == "tool_use" => {
                let index = v["index"].as_u64().unwrap_or(0);
                let block = &v["content_block"];
                let name = block["name"].as_str().unwrap_or("");
                if is_answer_tool(name) {
                    self.answered = true;
                    self.blocks.push((index, ToolBlock::Answer));
                } else {
                    let call = self.calls;
                    self.calls += 1;
                    self.blocks.push((index, ToolBlock::Call(call)));
                    out.push(StreamEvent::ToolCall(ToolCallDelta {
                        index: call,
                        id: block["id"].as_str().map(str::to_owned),
                        name: Some(name.to_owned()),
                        arguments: String::new(),
                    }));
                }
            }
            "content_block_delta" if v["delta"]["type"] == "text_delta" => {
                if let Some(t) = v["delta"]["text"].as_str() {
                    out.push(StreamEvent::Delta(t.to_owned()));
                }
            }
            "content_block_delta" if v["delta"]["type"] == "input_json_delta" => {
                let index = v["index"].as_u64().unwrap_or(0);
                let piece = v["delta"]["partial_json"].as_str().unwrap_or("");
                let block = self.blocks.iter().find(|(i, _)| *i == index).map(|b| b.1);
                match block {
                    _ if piece.is_empty() => {}
                    Some(ToolBlock::Call(call)) => out.push(StreamEvent::ToolCall(ToolCallDelta {
                        index: call,
                        id: None,
                        name: None,
                        arguments: piece.to_owned(),
                    })),
                    Some(ToolBlock::Answer) => out.push(StreamEvent::Delta(piece.to_owned())),
                    None => {}
                }
            }
            "message_delta" => {
                if let Some(n) = v["usage"]["output_tokens"].as_u64() {
                    self.usage.output_tokens = n;
                }
                if let Some(r) = v["delta"]["stop_reason"].as_str() {
                    let mut reason = stop_reason(r);
                    // The answer tool's use is the answer ending, not a call to make.
                    if self.answered && self.calls == 0 && reason == FinishReason::ToolCalls {
                        reason = FinishReason::Stop;
                    }
                    self.stop_reason = Some(reason);
                }
            }
            "message_stop" => {
                self.done = true;
                out.push(StreamEvent::Usage(self.usage.counts()));
                out.push(StreamEvent::Done {
                    finish_reason: self.stop_reason,
                });
            }
            "error" => {
                return Err(classify(500, &HeaderMap::new(), data.as_bytes()));
            }
            _ => {}
        }
        Ok(())
    }
}

impl SseEvents for AnthropicStream {
    fn decoder(&mut self) -> &mut SseDecoder {
        &mut self.sse
    }

    fn handle(&mut self, data: &str, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        AnthropicStream::handle(self, data, out)
    }

    fn finished(&self) -> bool {
        self.done
    }

    fn cut_message(&self) -> String {
        "anthropic stream ended before message_stop".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::behaviours::{ErrorCase, WireFixture};

    struct Fixture;

    // Bodies from Anthropic's API reference (Messages, Streaming Messages, Errors).
    const SUCCESS: &str = r#"{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant","model":"claude-3-5-sonnet-20241022","content":[{"type":"text","text":"SELECT * FROM cloudtrail WHERE errorcode = 'Failed authentication';"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1500,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":500}}"#;

    const STREAM: &str = "event: message_start\ndata: {\"type\": \"message_start\", \"message\": {\"id\": \"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\", \"type\": \"message\", \"role\": \"assistant\", \"content\": [], \"model\": \"claude-3-5-sonnet-20241022\", \"stop_reason\": null, \"stop_sequence\": null, \"usage\": {\"input_tokens\": 25, \"output_tokens\": 1, \"cache_read_input_tokens\": 100, \"cache_creation_input_tokens\": 10}}}\n\nevent: content_block_start\ndata: {\"type\": \"content_block_start\", \"index\": 0, \"content_block\": {\"type\": \"text\", \"text\": \"\"}}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\nevent: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"Hello\"}}\n\nevent: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"!\"}}\n\nevent: content_block_stop\ndata: {\"type\": \"content_block_stop\", \"index\": 0}\n\nevent: message_delta\ndata: {\"type\": \"message_delta\", \"delta\": {\"stop_reason\": \"end_turn\", \"stop_sequence\":null}, \"usage\": {\"output_tokens\": 15}}\n\nevent: message_stop\ndata: {\"type\": \"message_stop\"}\n\n";

    impl WireFixture for Fixture {
        fn wire() -> Box<dyn ChatWire> {
            Box::new(Anthropic)
        }
        fn key() -> Option<ApiKey> {
            Some(ApiKey::new(
                "sk-ant-api03-FIXTUREKEY-0123456789abcdefghijklmnopqrstu".into(),
            ))
        }
        fn model() -> &'static str {
            "claude-3-5-sonnet-20241022"
        }
        fn chat_path(_stream: bool) -> String {
            "/v1/messages".into()
        }
        fn assert_sampling(b: &serde_json::Value) {
            assert_eq!(b["top_p"], 0.5);
            assert_eq!(b["stop_sequences"], serde_json::json!(["END", "STOP"]));
            for absent in ["stop", "seed", "presence_penalty", "frequency_penalty"] {
                assert!(b.get(absent).is_none(), "{absent}");
            }
        }
        fn assert_chat_request(r: &wiremock::Request, stream: bool) {
            assert_eq!(r.method.as_str(), "POST");
            assert_eq!(
                r.headers.get("x-api-key").unwrap(),
                "sk-ant-api03-FIXTUREKEY-0123456789abcdefghijklmnopqrstu"
            );
            assert_eq!(r.headers.get("anthropic-version").unwrap(), API_VERSION);
            assert!(r.headers.get("authorization").is_none());
            let b: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(b["model"], "claude-3-5-sonnet-20241022");
            assert_eq!(b["max_tokens"], 256);
            assert_eq!(b["system"], "You write SQL.");
            assert_eq!(b["temperature"], 0.0);
            assert_eq!(
                b["messages"][0],
                json!({"role": "user", "content": "Show me failed login attempts"})
            );
            assert_eq!(b["messages"][1]["role"], "assistant");
            assert_eq!(b["messages"].as_array().unwrap().len(), 3);
            assert_eq!(b.get("stream").is_some(), stream);
        }
        fn success() -> (&'static str, &'static str, TokenCounts) {
            (
                SUCCESS,
                "SELECT * FROM cloudtrail WHERE errorcode = 'Failed authentication';",
                TokenCounts {
                    input_tokens: 1500,
                    output_tokens: 500,
                    ..Default::default()
                },
            )
        }
        fn stream() -> (&'static str, &'static str, TokenCounts) {
            (
                STREAM,
                "Hello!",
                TokenCounts {
                    input_tokens: 135,
                    output_tokens: 15,
                    cached_input_tokens: 100,
                    cache_write_tokens: 10,
                },
            )
        }
        fn error(kind: ErrorKind) -> ErrorCase {
            match kind {
                ErrorKind::InvalidKey => ErrorCase::new(401, r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#),
                ErrorKind::PermissionDenied => ErrorCase::new(403, r#"{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}"#),
                ErrorKind::ModelNotFound => ErrorCase::new(404, r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"}}"#),
                ErrorKind::RateLimited => ErrorCase::new(429, r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#).header("retry-after", "12"),
                ErrorKind::QuotaExceeded => ErrorCase::new(400, r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}"#),
                ErrorKind::InvalidRequest => ErrorCase::new(400, r#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate between \"user\" and \"assistant\""}}"#),
                ErrorKind::ContextLengthExceeded => ErrorCase::new(400, r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 maximum"}}"#),
                ErrorKind::ServerError => ErrorCase::new(529, r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
                ErrorKind::Timeout | ErrorKind::Network => unreachable!("made by the transport"),
            }
        }
        fn probe() -> (http::Method, String, &'static str) {
            (
                http::Method::GET,
                "/v1/models".into(),
                r#"{"data":[{"type":"model","id":"claude-3-5-sonnet-20241022","display_name":"Claude 3.5 Sonnet (New)","created_at":"2024-10-22T00:00:00Z"}],"has_more":false,"first_id":"claude-3-5-sonnet-20241022","last_id":"claude-3-5-sonnet-20241022"}"#,
            )
        }
    }

    crate::adapter_behaviours!(Fixture);

    // From Anthropic's tool-use guide: an answer that calls a tool after some text, and
    // the streamed form (a text block, then a `tool_use` block at content index 1 whose
    // input arrives as `input_json_delta` pieces).
    const TOOL_ANSWER: &str = r#"{"id":"msg_01Aq9w938a90dw8q","model":"claude-3-5-sonnet-20241022","stop_reason":"tool_use","role":"assistant","content":[{"type":"text","text":"<thinking>I need to use the get_weather, and the user wants SF, which is likely San Francisco, CA.</thinking>"},{"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","input":{"location":"San Francisco, CA","unit":"celsius"}}]}"#;

    const TOOL_STREAM: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-3-haiku-20240307\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2},\"content\":[],\"stop_reason\":null}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Okay\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\",\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" let\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"'s\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" check\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" the\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" weather\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" for\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" San\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" Francisco\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\",\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" CA\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\":\"}}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\":\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \\\"San\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" Francisc\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"o,\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" CA\\\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\", \"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"unit\\\": \\\"fah\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"renheit\\\"}\"}}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    impl crate::providers::behaviours::ToolFixture for Fixture {
        fn assert_tools(b: &serde_json::Value) {
            use crate::providers::behaviours::weather_tool;
            assert_eq!(
                b["tools"],
                json!([{"name": "get_weather", "description": "Current weather for a city",
                        "input_schema": weather_tool().parameters}])
            );
            assert_eq!(
                b["tool_choice"],
                json!({"type": "tool", "name": "get_weather"})
            );
            assert_eq!(b["system"], "You are a weather bot.");
            assert_eq!(
                b["messages"],
                json!([
                    {"role": "user", "content": [
                        {"type": "text", "text": "What is the weather in Paris, and where is this?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
                    ]},
                    {"role": "assistant", "content": [
                        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "18C and sunny"}
                    ]}
                ])
            );
        }
        fn assert_structured(b: &serde_json::Value) {
            let tools = b["tools"].as_array().unwrap();
            assert_eq!(tools.len(), 1);
            assert_eq!(tools[0]["name"], "json_answer_weather");
            assert_eq!(
                tools[0]["input_schema"],
                crate::providers::behaviours::weather_schema()
            );
            assert!(tools[0]["description"].is_string());
            assert_eq!(
                b["tool_choice"],
                json!({"type": "tool", "name": "json_answer_weather"})
            );
            assert!(b.get("response_format").is_none());
        }
        fn tool_answer() -> (&'static str, ToolCall) {
            (
                TOOL_ANSWER,
                ToolCall {
                    id: "toolu_01A09q90qw90lq917835lq9".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"location":"San Francisco, CA","unit":"celsius"}"#.into(),
                },
            )
        }
        fn tool_stream() -> (&'static str, ToolCall) {
            (
                TOOL_STREAM,
                ToolCall {
                    id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"location":"San Francisco, CA","unit":"fahrenheit"}"#.into(),
                },
            )
        }
    }

    crate::tool_behaviours!(Fixture);

    fn body_of(request: &ChatRequest) -> serde_json::Value {
        let endpoint = Endpoint {
            base_url: "http://127.0.0.1:9".into(),
        };
        let req = Anthropic
            .chat_request(&endpoint, Fixture::key().as_ref(), request)
            .unwrap();
        serde_json::from_slice(&req.body.unwrap()).unwrap()
    }

    fn call(id: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: "get_weather".into(),
            arguments: arguments.into(),
        }
    }

    fn result(id: &str, text: &str) -> Message {
        Message {
            tool_call_id: Some(id.into()),
            ..Message::text(Role::Tool, text)
        }
    }

    #[test]
    fn parallel_results_and_the_next_words_share_one_user_turn() {
        let request = ChatRequest {
            messages: vec![
                Message::text(Role::User, "Paris and Rome?"),
                Message {
                    role: Role::Assistant,
                    parts: vec![Part::Text {
                        text: String::new(),
                    }],
                    tool_calls: vec![
                        call("toolu_1", r#"{"city":"Paris"}"#),
                        call("toolu_2", r#"{"city":"Rome"}"#),
                    ],
                    ..Message::default()
                },
                result("toolu_1", "18C"),
                result("toolu_2", "24C"),
                Message::text(Role::User, "Which is warmer?"),
            ],
            tools: vec![crate::providers::behaviours::weather_tool()],
            max_tokens: 64,
            ..ChatRequest::default()
        };
        let b = body_of(&request);
        let m = b["messages"].as_array().unwrap();
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(
            m[1]["content"],
            json!([
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}}
            ]),
            "an empty text beside calls is left out"
        );
        assert_eq!(
            m[2],
            json!({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "24C"},
                {"type": "text", "text": "Which is warmer?"}
            ]})
        );
        assert!(b.get("tool_choice").is_none());
    }

    #[test]
    fn an_image_url_is_a_url_source() {
        let request = ChatRequest {
            messages: vec![Message {
                role: Role::User,
                parts: vec![
                    Part::Text {
                        text: "What is this?".into(),
                    },
                    Part::Image {
                        source: ImageSource::Url {
                            url: "https://upload.wikimedia.org/a.jpg".into(),
                        },
                        detail: Some("high".into()),
                    },
                ],
                ..Message::default()
            }],
            max_tokens: 64,
            ..ChatRequest::default()
        };
        assert_eq!(
            body_of(&request)["messages"][0]["content"][1],
            json!({"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/a.jpg"}})
        );
    }

    #[test]
    fn one_call_at_a_time_disables_parallel_use() {
        let mut request = ChatRequest {
            messages: vec![Message::text(Role::User, "Weather?")],
            tools: vec![crate::providers::behaviours::weather_tool()],
            parallel_tool_calls: Some(false),
            max_tokens: 64,
            ..ChatRequest::default()
        };
        assert_eq!(
            body_of(&request)["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        request.tool_choice = Some(ToolChoice::Required);
        assert_eq!(
            body_of(&request)["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
        request.tool_choice = Some(ToolChoice::None);
        assert_eq!(body_of(&request)["tool_choice"], json!({"type": "none"}));
        request.tool_choice = Some(ToolChoice::Auto);
        request.parallel_tool_calls = None;
        assert_eq!(body_of(&request)["tool_choice"], json!({"type": "auto"}));
    }

    #[test]
    fn a_json_object_format_forces_an_object_tool() {
        let request = ChatRequest {
            response_format: Some(ResponseFormat::JsonObject),
            ..crate::providers::behaviours::structured(false)
        };
        let b = body_of(&request);
        assert_eq!(b["tools"][0]["name"], "json_answer_object");
        assert_eq!(b["tools"][0]["input_schema"], json!({"type": "object"}));
        assert_eq!(
            b["tool_choice"],
            json!({"type": "tool", "name": "json_answer_object"})
        );
        // A plain text format asks for nothing.
        let text = ChatRequest {
            response_format: Some(ResponseFormat::Text),
            ..request
        };
        assert!(body_of(&text).get("tools").is_none());
    }

    #[test]
    fn the_answer_tool_name_stays_within_limits() {
        let name = answer_tool_name(&"a.b c".repeat(30));
        assert!(name.len() <= 64);
        assert!(name.starts_with("json_answer_a_b_c"));
    }

    #[test]
    fn a_structured_answer_comes_back_as_content() {
        let body = r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-3-5-sonnet-20241022","content":[{"type":"tool_use","id":"toolu_01","name":"json_answer_weather","input":{"city":"Paris","celsius":18}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":400,"output_tokens":30}}"#;
        let g = Anthropic
            .parse_chat(200, &HeaderMap::new(), body.as_bytes())
            .unwrap();
        assert!(g.tool_calls.is_empty());
        let v: serde_json::Value = serde_json::from_str(&g.content).unwrap();
        assert_eq!(v, json!({"city": "Paris", "celsius": 18}));
        assert_eq!(g.finish(), FinishReason::Stop);
    }

    #[test]
    fn a_streamed_structured_answer_comes_back_as_text() {
        let body = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-3-5-sonnet-20241022\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":400,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"json_answer_weather\",\"input\":{}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"is\\\", \\\"celsius\\\": 18}\"}}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":30}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let mut p = Anthropic.stream_parser();
        let mut events = p.feed(body.as_bytes()).unwrap();
        events.extend(p.finish().unwrap());
        let mut text = String::new();
        let mut finish = None;
        for e in events {
            match e {
                StreamEvent::Delta(d) => text.push_str(&d),
                StreamEvent::ToolCall(c) => panic!("the answer is no call: {c:?}"),
                StreamEvent::Done { finish_reason } => finish = finish_reason,
                StreamEvent::Usage(_) => {}
            }
        }
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v, json!({"city": "Paris", "celsius": 18}));
        assert_eq!(finish, Some(FinishReason::Stop));
    }

    #[test]
    fn unparseable_arguments_are_refused() {
        let endpoint = Endpoint {
            base_url: "http://127.0.0.1:9".into(),
        };
        for arguments in [r#"{"city": "Par"#, r#"["Paris"]"#] {
            let mut request = crate::providers::behaviours::tooled(false);
            request.messages[1].tool_calls[0].arguments = arguments.into();
            let err = Anthropic
                .chat_request(&endpoint, Fixture::key().as_ref(), &request)
                .err()
                .unwrap();
            assert_eq!(err.kind, ErrorKind::InvalidRequest);
            assert!(err.detail.contains("call_1"), "{}", err.detail);
        }
        // No arguments at all is a call without any.
        let mut request = crate::providers::behaviours::tooled(false);
        request.messages[1].tool_calls[0].arguments = String::new();
        assert_eq!(
            body_of(&request)["messages"][1]["content"][0]["input"],
            json!({})
        );
    }

    #[test]
    fn a_format_beside_tools_or_a_reserved_name_is_refused() {
        let endpoint = Endpoint {
            base_url: "http://127.0.0.1:9".into(),
        };
        let both = ChatRequest {
            tools: vec![crate::providers::behaviours::weather_tool()],
            ..crate::providers::behaviours::structured(false)
        };
        let reserved = ChatRequest {
            tools: vec![crate::providers::Tool {
                name: "json_answer_x".into(),
                ..crate::providers::behaviours::weather_tool()
            }],
            ..crate::providers::behaviours::tooled(false)
        };
        for request in [both, reserved] {
            let err = Anthropic
                .chat_request(&endpoint, Fixture::key().as_ref(), &request)
                .err()
                .unwrap();
            assert_eq!(err.kind, ErrorKind::InvalidRequest);
        }
    }

    #[test]
    fn a_tool_result_without_its_call_id_is_refused() {
        let mut request = crate::providers::behaviours::tooled(false);
        request.messages[2].tool_call_id = None;
        let err = conversation(&request).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidRequest);
    }

    #[test]
    fn cache_tokens_are_added_back_to_input() {
        let body = r#"{"model":"claude-3-5-sonnet-20241022","content":[{"type":"text","text":"x"}],"stop_reason":"end_turn","usage":{"input_tokens":50,"cache_creation_input_tokens":2000,"cache_read_input_tokens":8000,"output_tokens":10}}"#;
        let g = Anthropic
            .parse_chat(200, &HeaderMap::new(), body.as_bytes())
            .unwrap();
        assert_eq!(
            g.tokens,
            TokenCounts {
                input_tokens: 10_050,
                output_tokens: 10,
                cached_input_tokens: 8000,
                cache_write_tokens: 2000
            }
        );
    }

    #[test]
    fn an_error_event_mid_stream_is_classified() {
        let mut p = Anthropic.stream_parser();
        let e = p
            .feed(b"event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n")
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::ServerError);
    }

    #[test]
    fn rate_limit_headers_as_documented() {
        // https://docs.anthropic.com/en/api/rate-limits#response-headers
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2026-11-20T10:00:02Z"),
            ("anthropic-ratelimit-tokens-limit", "80000"),
            ("anthropic-ratelimit-tokens-remaining", "64000"),
            ("anthropic-ratelimit-tokens-reset", "2026-11-20T10:00:30Z"),
            ("anthropic-ratelimit-input-tokens-remaining", "40000"),
            (
                "anthropic-ratelimit-input-tokens-reset",
                "2026-11-20T10:00:20.5Z",
            ),
            ("anthropic-ratelimit-output-tokens-remaining", "16000"),
            (
                "anthropic-ratelimit-output-tokens-reset",
                "2026-11-20T10:00:10+00:00",
            ),
            ("retry-after", "2"),
        ] {
            h.insert(k, v.parse().unwrap());
        }
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let s = rate_limit_headers(&h);
        assert_eq!(s.requests_remaining, Some(0));
        assert_eq!(s.requests_reset, Some(t("2026-11-20T10:00:02Z")));
        assert_eq!(
            s.tokens_remaining,
            Some(16_000),
            "the fewest of the token limits"
        );
        assert_eq!(s.tokens_reset, Some(t("2026-11-20T10:00:10Z")));
        h.remove("anthropic-ratelimit-output-tokens-remaining");
        h.remove("anthropic-ratelimit-input-tokens-remaining");
        assert_eq!(rate_limit_headers(&h).tokens_remaining, Some(64_000));
        assert!(rate_limit_headers(&HeaderMap::new()).is_empty());
        // A 429 that says how long: blocked until then.
        let now = t("2026-11-20T10:00:00Z");
        let e = classify(
            429,
            &h,
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"x"}}"#,
        )
        .reporting(Anthropic.rate_limit(&h, now), now);
        assert_eq!(
            e.rate_limit.unwrap().blocked_until,
            Some(t("2026-11-20T10:00:02Z"))
        );
    }
}
