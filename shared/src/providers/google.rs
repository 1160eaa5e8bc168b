//! Gemini API (`POST /v1beta/models/{model}:generateContent`, and
//! `:streamGenerateContent?alt=sse` for streams). What is special about the wire format:
//! the key travels in the `x-goog-api-key` header (never `?key=` in the URL); the model
//! is part of the path, not the body; assistant turns are role `model` and the system
//! prompt is a separate `systemInstruction`; `promptTokenCount` already includes cached
//! tokens (`cachedContentTokenCount`), while thinking tokens (`thoughtsTokenCount`) are
//! billed as output but reported apart from `candidatesTokenCount`, so they are added to
//! [`TokenCounts::output_tokens`]. A 200 can still be a refusal (a blocked prompt or a
//! candidate stopped for safety with no text). Streams have no `[DONE]`: the chunk
//! carrying a `finishReason` is the last. Errors are `google.rpc.Status` bodies whose
//! `status` names the class, refined by typed `details` (`ErrorInfo.reason`,
//! `QuotaFailure`, `RetryInfo.retryDelay`); an invalid key is a 400, not a 401.
//!
//! Tools are `functionDeclarations` whose schemas are cleaned to Gemini's OpenAPI
//! subset; calls are `functionCall` parts with object `args` and no id (one is made
//! up), and results are `functionResponse` parts matched to their call by name.

use super::error::{excerpt, kind_for_status, mentions_context_length, retry_after};
use super::sse::{SseDecoder, SseEvents};
use super::{
    ChatRequest, ChatWire, Endpoint, ErrorKind, FinishReason, Generation, ImageSource, Message,
    ProviderError, ReasoningEffort, ResponseFormat, Role, StreamEvent, StreamParser, ToolCall,
    ToolCallDelta, ToolChoice, WireRequest, join,
};
use crate::pricing::TokenCounts;
use crate::provider::Provider;
use crate::secret::ApiKey;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::time::Duration;

pub struct Google;

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    cached_content_token_count: u64,
}

impl UsageMetadata {
    fn counts(&self) -> TokenCounts {
        TokenCounts {
            input_tokens: self.prompt_token_count,
            output_tokens: self.candidates_token_count + self.thoughts_token_count,
            cached_input_tokens: self.cached_content_token_count,
            cache_write_tokens: 0,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: bool,
    #[serde(default)]
    function_call: Option<FunctionCall>,
}

/// A whole call (Gemini never splits one across stream chunks). `id` is set by some
/// models and the Live API only.
#[derive(Deserialize, Default)]
struct FunctionCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    args: Option<Value>,
}

impl FunctionCall {
    /// The neutral call, `index` being its ordinal in the answer. Without an id from
    /// Gemini, one is made from the ordinal and the name: stable for the same answer
    /// (a cached one too), and enough for [`function_response`], which goes by name.
    fn to_call(&self, index: usize) -> ToolCall {
        let id = match self.id.as_deref() {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => format!("call_{index}_{}", self.name),
        };
        let arguments = match &self.args {
            None | Some(Value::Null) => "{}".to_owned(),
            Some(v) => v.to_string(),
        };
        ToolCall {
            id,
            name: self.name.clone(),
            arguments,
        }
    }
}

#[derive(Deserialize, Default)]
struct Content {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    finish_reason: Option<String>,
}

impl Candidate {
    /// The answer's text: every text part except thought summaries.
    fn text(&self) -> String {
        self.content
            .iter()
            .flat_map(|c| &c.parts)
            .filter(|p| !p.thought)
            .filter_map(|p| p.text.as_deref())
            .collect()
    }

    /// The calls, numbered from `first` (the calls already seen in a stream).
    fn tool_calls(&self, first: usize) -> Vec<ToolCall> {
        self.content
            .iter()
            .flat_map(|c| &c.parts)
            .filter_map(|p| p.function_call.as_ref())
            .enumerate()
            .map(|(i, c)| c.to_call(first + i))
            .collect()
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerateContentResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    model_version: Option<String>,
}

/// Finish reasons that mean the candidate's content was withheld.
const BLOCKED_FINISH: [&str; 6] = [
    "SAFETY",
    "PROHIBITED_CONTENT",
    "BLOCKLIST",
    "SPII",
    "RECITATION",
    "IMAGE_SAFETY",
];

/// A blocked prompt (`promptFeedback.blockReason`, no candidates) or a candidate stopped
/// for safety, when nothing (no text, no call) came with it: the provider refused this
/// request's content.
fn blocked(
    block_reason: Option<&str>,
    finish_reason: Option<&str>,
    nothing_said: bool,
) -> Option<ProviderError> {
    let reason = block_reason.or(finish_reason.filter(|r| BLOCKED_FINISH.contains(r)))?;
    nothing_said.then(|| {
        ProviderError::new(
            ErrorKind::InvalidRequest,
            format!("google: content blocked ({reason})"),
        )
        .with_status(200)
    })
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Status,
}

/// `google.rpc.Status`, as the Gemini API renders it in JSON.
#[derive(Deserialize, Default)]
struct Status {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    details: Vec<serde_json::Value>,
}

impl Status {
    fn details_of<'a>(
        &'a self,
        type_suffix: &'a str,
    ) -> impl Iterator<Item = &'a serde_json::Value> {
        self.details.iter().filter(move |d| {
            d["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with(type_suffix))
        })
    }

    fn reasons(&self) -> impl Iterator<Item = &str> {
        self.details_of("google.rpc.ErrorInfo")
            .filter_map(|d| d["reason"].as_str())
    }

    /// `RetryInfo.retryDelay`, a protobuf Duration in JSON: decimal seconds and an `s`.
    fn retry_delay(&self) -> Option<Duration> {
        self.details_of("google.rpc.RetryInfo")
            .filter_map(|d| d["retryDelay"].as_str())
            .find_map(|s| s.trim().strip_suffix('s')?.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_millis((s * 1000.0) as u64))
    }

    /// Whether a `RESOURCE_EXHAUSTED` is out of quota for good (until a day boundary or
    /// a billing change) rather than a per-minute limit that clears in seconds.
    ///
    /// Every Gemini 429 says "You exceeded your current quota, please check your plan
    /// and billing details", and most carry a `QuotaFailure` and a `RetryInfo`, even the
    /// per-minute ones (`...PerMinute...` quota ids, retry in ~30 s): "quota" alone
    /// decides nothing. Out of quota is told apart by what the documented bodies show:
    /// - a `QuotaFailure` violation of a per-day quota (`GenerateRequestsPerDay...`):
    ///   it resets at midnight Pacific, whatever `retryDelay` says (often a few seconds);
    /// - a quota whose limit is zero (`quotaValue: "0"`, or "limit: 0" in the message):
    ///   the model has no free tier for this project, only billing lifts it;
    /// - prepaid credit used up ("Your prepayment credits are depleted").
    ///
    /// A bare "Resource has been exhausted (e.g. check quota)." with no details is
    /// shared-capacity throttling and stays a rate limit.
    fn quota_exhausted(&self) -> bool {
        let msg = self.message.to_ascii_lowercase();
        if msg.contains("credits are depleted")
            || msg.contains("prepayment")
            || msg.contains("limit: 0,")
        {
            return true;
        }
        self.details_of("google.rpc.QuotaFailure")
            .filter_map(|d| d["violations"].as_array())
            .flatten()
            .any(|v| {
                v["quotaId"]
                    .as_str()
                    .is_some_and(|id| id.contains("PerDay"))
                    || v["quotaValue"].as_str() == Some("0")
            })
    }
}

/// Error bodies are one `{"error": Status}`; a stream opened without `alt=sse` sends
/// them wrapped in a JSON array, accepted here too.
fn parse_status(body: &[u8]) -> Option<Status> {
    // Through `Value`: serde would also read a struct from a one-element array.
    let v = match serde_json::from_slice(body).ok()? {
        serde_json::Value::Array(items) => items.into_iter().next()?,
        v => v,
    };
    serde_json::from_value::<ErrorBody>(v).ok().map(|b| b.error)
}

/// The `status` (canonical gRPC code name) decides, refined by the details; the HTTP
/// status is the fallback for anything unparsed or new.
fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let parsed = parse_status(body).unwrap_or_default();
    let lower = parsed.message.to_ascii_lowercase();
    let key_rejected = parsed
        .reasons()
        .any(|r| matches!(r, "API_KEY_INVALID" | "API_KEY_EXPIRED"))
        // 403 PERMISSION_DENIED for a key Google revoked after finding it public.
        || lower.contains("reported as leaked")
        || lower.contains("api key not valid")
        || lower.contains("api key expired")
        || parsed.status == "UNAUTHENTICATED";
    let kind = if key_rejected {
        ErrorKind::InvalidKey
    } else {
        match parsed.status.as_str() {
            "PERMISSION_DENIED" => ErrorKind::PermissionDenied,
            "NOT_FOUND" => ErrorKind::ModelNotFound,
            "RESOURCE_EXHAUSTED" if parsed.quota_exhausted() => ErrorKind::QuotaExceeded,
            "RESOURCE_EXHAUSTED" => ErrorKind::RateLimited,
            // "Gemini API free tier is not available in your country. Please enable
            // billing on your project in Google AI Studio."
            "FAILED_PRECONDITION" if lower.contains("billing") => ErrorKind::QuotaExceeded,
            // "User location is not supported for the API use.": the key is fine but may
            // not be used from here; another provider may serve the request.
            "FAILED_PRECONDITION" => ErrorKind::PermissionDenied,
            // "The input token count (N) exceeds the maximum number of tokens allowed (M)."
            "INVALID_ARGUMENT" | "OUT_OF_RANGE" if mentions_context_length(&parsed.message) => {
                ErrorKind::ContextLengthExceeded
            }
            "INVALID_ARGUMENT" | "OUT_OF_RANGE" => ErrorKind::InvalidRequest,
            "INTERNAL" | "UNAVAILABLE" | "UNKNOWN" => ErrorKind::ServerError,
            "DEADLINE_EXCEEDED" => ErrorKind::Timeout,
            // 499: the connection was closed before the answer was complete.
            "CANCELLED" => ErrorKind::Network,
            _ if (400..500).contains(&status) && mentions_context_length(&parsed.message) => {
                ErrorKind::ContextLengthExceeded
            }
            _ => kind_for_status(status),
        }
    };
    ProviderError::new(kind, format!("google {status}: {}", excerpt(body)))
        .with_status(status)
        .with_retry_after(retry_after(headers).or_else(|| parsed.retry_delay()))
}

fn auth(req: &mut WireRequest, key: Option<&ApiKey>) -> Result<(), ProviderError> {
    let key = key.ok_or_else(|| ProviderError::new(ErrorKind::InvalidKey, "no key"))?;
    req.secret_header("x-goog-api-key", key.expose())
}

fn invalid(detail: String) -> ProviderError {
    ProviderError::new(ErrorKind::InvalidRequest, format!("google: {detail}"))
}

/// The conversation as Gemini `contents`. System turns join `system` (Gemini has one
/// `systemInstruction`); assistant turns are role `model`, their tool calls
/// `functionCall` parts after the text; tool results are `functionResponse` parts of a
/// `user` turn, and consecutive results share one turn, since Gemini expects every
/// response to one turn's calls together.
fn contents(request: &ChatRequest, system: &mut Vec<String>) -> Result<Vec<Value>, ProviderError> {
    let sign = needs_signatures(&request.model);
    let mut contents = Vec::with_capacity(request.messages.len());
    let mut responses: Vec<Value> = Vec::new();
    for (i, m) in request.messages.iter().enumerate() {
        match m.role {
            Role::System => system.push(m.joined_text()),
            Role::Tool => responses.push(function_response(&request.messages[..i], m)?),
            Role::User | Role::Assistant => {
                if !responses.is_empty() {
                    let parts = std::mem::take(&mut responses);
                    contents.push(json!({"role": "user", "parts": parts}));
                }
                contents.push(turn(m, sign)?);
            }
        }
    }
    if !responses.is_empty() {
        contents.push(json!({"role": "user", "parts": responses}));
    }
    Ok(contents)
}

/// Google's documented placeholder for a `thoughtSignature` the client does not have.
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// Whether replayed calls need a `thoughtSignature`. Gemini 3 and later refuse a
/// history whose `functionCall` parts lack one (400 "Function call is missing a
/// thought_signature"); the neutral history cannot keep Gemini's opaque signatures,
/// so those models get the placeholder. Models known older (1.x, 2.x) are sent none;
/// an id whose version cannot be read (`gemini-flash-latest`, tuned models) gets it,
/// which older models accept too.
fn needs_signatures(model: &str) -> bool {
    let id = model.rsplit('/').next().unwrap_or(model);
    let major: String = id
        .strip_prefix("gemini-")
        .unwrap_or_default()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    major.parse::<u32>().map_or(true, |v| v >= 3)
}

/// A user or model turn: its parts, then (model turns) its calls, with the signature
/// placeholder when `sign`.
fn turn(m: &Message, sign: bool) -> Result<Value, ProviderError> {
    let role = if m.role == Role::Assistant {
        "model"
    } else {
        "user"
    };
    // An empty text part beside other parts says nothing (OpenAI clients send
    // `content: ""` with tool calls); a turn with no parts at all still needs one.
    let mut parts: Vec<Value> = m
        .parts
        .iter()
        .filter(|p| !matches!(p, super::Part::Text { text } if text.is_empty()))
        .map(part)
        .collect();
    if m.role == Role::Assistant {
        for c in &m.tool_calls {
            let mut p = json!({"functionCall": {"name": c.name, "args": call_args(c)?}});
            if sign {
                p["thoughtSignature"] = json!(SKIP_SIGNATURE);
            }
            parts.push(p);
        }
    }
    if parts.is_empty() {
        parts.push(json!({"text": ""}));
    }
    Ok(json!({"role": role, "parts": parts}))
}

/// Text, inline image bytes, or an image by URL (`fileData`, which needs a MIME type:
/// guessed from the URL). v1beta has no per-part resolution to carry OpenAI's image
/// `detail`, so it is not sent.
fn part(p: &super::Part) -> Value {
    match p {
        super::Part::Text { text } => json!({"text": text}),
        super::Part::Image { source, .. } => match source {
            ImageSource::Base64 { media_type, data } => {
                json!({"inlineData": {"mimeType": media_type, "data": data}})
            }
            ImageSource::Url { url } => {
                json!({"fileData": {"mimeType": image_mime(url), "fileUri": url}})
            }
        },
    }
}

/// The MIME type of an image URL, by the extension of its path (query and fragment
/// ignored); JPEG when it says nothing, the most common type of photo on the web.
fn image_mime(url: &str) -> &'static str {
    let path = match url::Url::parse(url) {
        Ok(u) => u.path().to_owned(),
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_owned(),
    };
    let file = path.rsplit('/').next().unwrap_or_default();
    let ext = file.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        _ => "image/jpeg",
    }
}

/// A call's arguments as the JSON object Gemini's `args` is (a protobuf `Struct`).
/// Empty arguments are a call without any; anything else but an object is refused
/// here rather than by Google with a vaguer message.
fn call_args(c: &ToolCall) -> Result<Value, ProviderError> {
    if c.arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(&c.arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(invalid(format!(
            "the arguments of tool call {:?} are not a JSON object",
            c.id
        ))),
    }
}

/// A tool's result. Gemini matches a response to its call by function name, not by id,
/// so the name is looked up among the calls the earlier assistant turns made; a result
/// answering no known call is refused (Google would reject a nameless response).
fn function_response(earlier: &[Message], m: &Message) -> Result<Value, ProviderError> {
    let id = m.tool_call_id.as_deref().unwrap_or_default();
    let name = earlier
        .iter()
        .rev()
        .filter(|e| e.role == Role::Assistant)
        .flat_map(|e| &e.tool_calls)
        .find(|c| c.id == id)
        .map(|c| c.name.clone())
        .ok_or_else(|| {
            invalid(format!(
                "tool result for {id:?} answers no earlier assistant tool call"
            ))
        })?;
    let text = m.joined_text();
    // `response` is a `Struct`: a JSON object result goes as itself, any other text
    // as a string, both under `content`.
    let content = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::String(text),
    };
    Ok(json!({"functionResponse": {"name": name, "response": {"content": content}}}))
}

/// The JSON Schema keys Gemini's `Schema` (an OpenAPI 3.0 subset) accepts; any other
/// key (`additionalProperties`, `$schema`, `strict`, `$ref`, `$defs`, ...) makes the
/// request fail with "Invalid JSON payload received. Unknown name".
const SCHEMA_KEYS: [&str; 22] = [
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// `format`s Gemini documents (`enum` and `date-time` for strings, widths for
/// numbers); others (`email`, `uri`, ...) are refused for strings, so they are dropped.
const SCHEMA_FORMATS: [&str; 6] = ["enum", "date-time", "float", "double", "int32", "int64"];

/// How many `$ref`s deep a schema is inlined: enough for nested models, and a bound
/// on a recursive schema (which Gemini's `Schema` cannot express) and on its size.
const MAX_REF_DEPTH: usize = 8;

/// A JSON Schema cleaned to what Gemini accepts, recursively through `properties`,
/// `items` and `anyOf`: unknown keys dropped; local `$ref`s (to `$defs` or
/// `definitions`, as Pydantic and zod write nested models) inlined, since Gemini has
/// no references; a one-element `allOf` merged; a `type` list with `"null"` becomes the
/// one type and `nullable` (Gemini takes a single type), several types an `anyOf`;
/// `const` becomes a one-value `enum`.
fn gemini_schema(schema: &Value) -> Value {
    let defs = schema.get("$defs").or_else(|| schema.get("definitions"));
    clean_schema(schema, defs, 0)
}

/// The definition a local reference names.
fn resolve_ref<'a>(reference: &str, defs: Option<&'a Value>) -> Option<&'a Value> {
    let name = reference
        .strip_prefix("#/$defs/")
        .or_else(|| reference.strip_prefix("#/definitions/"))?;
    defs?.get(name)
}

/// `base`'s keys overridden by `over`'s, but for `skip`.
fn merged(base: Option<&Value>, over: &Map<String, Value>, skip: &str) -> Value {
    let mut out = match base {
        Some(Value::Object(b)) => b.clone(),
        _ => Map::new(),
    };
    for (k, v) in over {
        if k != skip {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn clean_schema(schema: &Value, defs: Option<&Value>, depth: usize) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    // The reference replaced by what it names, the referring schema's own keys (a
    // `description`) winning; past the depth bound, or unresolved, only those keys stay.
    if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
        let target = resolve_ref(reference, defs).filter(|_| depth < MAX_REF_DEPTH);
        return clean_schema(&merged(target, map, "$ref"), defs, depth + 1);
    }
    if let Some(Value::Array(all)) = map.get("allOf")
        && let [one] = all.as_slice()
    {
        return clean_schema(&merged(Some(one), map, "allOf"), defs, depth);
    }
    let clean = |s: &Value| clean_schema(s, defs, depth);
    let mut out = Map::new();
    for (k, v) in map {
        match k.as_str() {
            "properties" => {
                let props = match v {
                    Value::Object(p) => {
                        p.iter().map(|(name, s)| (name.clone(), clean(s))).collect()
                    }
                    _ => continue,
                };
                out.insert(k.clone(), Value::Object(props));
            }
            "items" => {
                out.insert(k.clone(), clean(v));
            }
            "anyOf" | "oneOf" => {
                if let Value::Array(a) = v {
                    out.insert("anyOf".into(), Value::Array(a.iter().map(clean).collect()));
                }
            }
            "type" => match v {
                Value::Array(types) => {
                    let named: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                    if named.len() < types.len() {
                        out.insert("nullable".into(), json!(true));
                    }
                    match named.as_slice() {
                        [] => {}
                        [one] => {
                            out.insert("type".into(), (*one).clone());
                        }
                        many => {
                            let any: Vec<Value> = many.iter().map(|t| json!({"type": t})).collect();
                            out.insert("anyOf".into(), Value::Array(any));
                        }
                    }
                }
                other => {
                    out.insert(k.clone(), other.clone());
                }
            },
            // An allowed format is kept by the last arm.
            "format" if !v.as_str().is_some_and(|f| SCHEMA_FORMATS.contains(&f)) => {}
            "const" => {
                out.insert("enum".into(), json!([v]));
            }
            key if SCHEMA_KEYS.contains(&key) => {
                out.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

/// An object schema with no properties: Gemini refuses it as `parameters` ("should be
/// non-empty for OBJECT type"), and a function without parameters omits the field.
fn takes_no_parameters(schema: &Value) -> bool {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty)
        && schema.get("type").is_none_or(|t| t == "object")
}

/// `tools` as one `functionDeclarations` list, and the tool choice as
/// `toolConfig.functionCallingConfig`: ANY is Gemini's "must call", narrowed to one
/// function by `allowedFunctionNames`.
fn tooling(body: &mut Value, request: &ChatRequest) {
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                let mut d = json!({"name": t.name});
                if let Some(desc) = &t.description {
                    d["description"] = json!(desc);
                }
                let parameters = gemini_schema(&t.parameters);
                if !takes_no_parameters(&parameters) {
                    d["parameters"] = parameters;
                }
                d
            })
            .collect();
        body["tools"] = json!([{ "functionDeclarations": declarations }]);
    }
    if let Some(choice) = &request.tool_choice {
        let config = match choice {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Tool(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        body["toolConfig"] = json!({ "functionCallingConfig": config });
    }
}

/// Gemini 2.5's `thinkingBudget` for an effort: Google's own OpenAI-compatibility
/// layer maps `low` to 1024, `medium` to 8192 and `high` to 24576 tokens (Flash's
/// maximum). `minimal` gets the low budget too, not 0: 0 turns thinking off, which
/// 2.5 Pro refuses ("only works in thinking mode").
fn thinking_budget(effort: ReasoningEffort) -> u32 {
    match effort {
        ReasoningEffort::Minimal | ReasoningEffort::Low => 1024,
        ReasoningEffort::Medium => 8192,
        ReasoningEffort::High => 24576,
    }
}

/// The sampling parameters, response format and thinking budget in
/// `generationConfig`'s names.
fn generation_config(config: &mut serde_json::Value, request: &ChatRequest) {
    match &request.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => config["responseMimeType"] = json!("application/json"),
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            config["responseMimeType"] = json!("application/json");
            config["responseSchema"] = gemini_schema(schema);
        }
    }
    if let Some(e) = request.reasoning_effort {
        config["thinkingConfig"] = json!({"thinkingBudget": thinking_budget(e)});
    }
    if let Some(p) = request.top_p {
        config["topP"] = json!(p);
    }
    if !request.stop.is_empty() {
        config["stopSequences"] = json!(request.stop);
    }
    if let Some(s) = request.seed {
        config["seed"] = json!(s);
    }
    if let Some(p) = request.presence_penalty {
        config["presencePenalty"] = json!(p);
    }
    if let Some(p) = request.frequency_penalty {
        config["frequencyPenalty"] = json!(p);
    }
}

/// The resource path of a model: `models/{id}` (a leading `models/` in the id is
/// accepted) or a tuned model's `tunedModels/{id}`. The id goes into the URL path, so
/// anything but the characters Google uses in model ids is refused before sending.
fn model_resource(model: &str) -> Result<String, ProviderError> {
    let (collection, id) = match model.split_once('/') {
        Some(("models", id)) => ("models", id),
        Some(("tunedModels", id)) => ("tunedModels", id),
        Some(_) => ("", ""),
        None => ("models", model),
    };
    let valid = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !valid {
        return Err(ProviderError::new(
            ErrorKind::ModelNotFound,
            format!("google: {model:?} is not a model id"),
        ));
    }
    Ok(format!("{collection}/{id}"))
}

impl ChatWire for Google {
    fn provider(&self) -> Provider {
        Provider::Google
    }

    fn chat_request(
        &self,
        endpoint: &Endpoint,
        key: Option<&ApiKey>,
        request: &ChatRequest,
    ) -> Result<WireRequest, ProviderError> {
        let mut system: Vec<String> = request.system.iter().cloned().collect();
        let contents = contents(request, &mut system)?;
        let mut config = json!({"maxOutputTokens": request.max_tokens});
        if let Some(t) = request.temperature {
            config["temperature"] = json!(t);
        }
        generation_config(&mut config, request);
        let mut body = json!({"contents": contents, "generationConfig": config});
        tooling(&mut body, request);
        if !system.is_empty() {
            body["systemInstruction"] = json!({"parts": [{"text": system.join("\n\n")}]});
        }
        let resource = model_resource(&request.model)?;
        let path = if request.stream {
            format!("/v1beta/{resource}:streamGenerateContent?alt=sse")
        } else {
            format!("/v1beta/{resource}:generateContent")
        };
        let mut req = WireRequest::post_json(join(&endpoint.base_url, &path), &body)?;
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
        let r: GenerateContentResponse = serde_json::from_slice(body).map_err(|e| {
            ProviderError::new(
                ErrorKind::ServerError,
                format!("google: unreadable answer: {e}"),
            )
            .with_status(status)
        })?;
        let first = r.candidates.first();
        let content = first.map(Candidate::text).unwrap_or_default();
        let tool_calls = first.map(|c| c.tool_calls(0)).unwrap_or_default();
        let finish_reason = first.and_then(|c| c.finish_reason.clone());
        let block_reason = r
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_deref());
        let nothing_said = content.is_empty() && tool_calls.is_empty();
        if let Some(e) = blocked(block_reason, finish_reason.as_deref(), nothing_said) {
            return Err(e);
        }
        let finish_reason = finish_of(finish_reason.as_deref(), !tool_calls.is_empty());
        Ok(Generation {
            content,
            tool_calls,
            model: r.model_version.unwrap_or_default(),
            tokens: r.usage_metadata.unwrap_or_default().counts(),
            finish_reason,
            logprobs: None,
            rate_limit: None,
        })
    }

    fn classify_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        classify(status, headers, body)
    }

    fn stream_parser(&self) -> Box<dyn StreamParser> {
        Box::new(GoogleStream::default())
    }

    /// One model's metadata: the cheapest authenticated call, and it answers both
    /// questions (the key works; the key can see the model) with no token spent.
    fn probe_request(
        &self,
        endpoint: &Endpoint,
        key: Option<&ApiKey>,
        model: &str,
    ) -> Result<WireRequest, ProviderError> {
        let resource = model_resource(model)?;
        let mut req = WireRequest::get(join(&endpoint.base_url, &format!("/v1beta/{resource}")));
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
        struct Model {
            name: String,
        }
        let m: Model = serde_json::from_slice(body).map_err(|e| {
            ProviderError::new(ErrorKind::ServerError, format!("google model: {e}"))
        })?;
        if !m.name.contains('/') {
            return Err(ProviderError::new(
                ErrorKind::ServerError,
                format!("google model: unexpected name {:?} for {model}", m.name),
            ));
        }
        Ok(())
    }
}

/// Gemini's SSE stream: each `data:` is a whole `GenerateContentResponse` carrying the
/// next piece of text; `usageMetadata` rides along and the last one is final; the chunk
/// with a `finishReason` ends the stream. A blocked prompt arrives as a first chunk with
/// `promptFeedback.blockReason` and no candidates; an error may arrive as `{"error":..}`.
#[derive(Default)]
struct GoogleStream {
    sse: SseDecoder,
    usage: UsageMetadata,
    emitted_text: bool,
    /// Calls streamed so far: the next call's index.
    calls: usize,
    done: bool,
}

impl GoogleStream {
    fn handle(&mut self, data: &str, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        if self.done || data.trim().is_empty() {
            return Ok(());
        }
        let v: serde_json::Value = serde_json::from_str(data).map_err(|e| {
            ProviderError::new(ErrorKind::ServerError, format!("google stream: {e}"))
        })?;
        if let Some(code) = v.get("error").map(|e| e["code"].as_u64().unwrap_or(500)) {
            let status = u16::try_from(code).unwrap_or(500);
            return Err(classify(status, &HeaderMap::new(), data.as_bytes()));
        }
        let chunk: GenerateContentResponse = serde_json::from_value(v).map_err(|e| {
            ProviderError::new(ErrorKind::ServerError, format!("google stream: {e}"))
        })?;
        if let Some(u) = &chunk.usage_metadata {
            self.usage = u.clone();
        }
        let first = chunk.candidates.first();
        let text = first.map(Candidate::text).unwrap_or_default();
        if !text.is_empty() {
            self.emitted_text = true;
            out.push(StreamEvent::Delta(text));
        }
        // Each call arrives whole: one fragment carries its id, name and arguments.
        for call in first.map(|c| c.tool_calls(self.calls)).unwrap_or_default() {
            out.push(StreamEvent::ToolCall(ToolCallDelta {
                index: u32::try_from(self.calls).unwrap_or(u32::MAX),
                id: Some(call.id),
                name: Some(call.name),
                arguments: call.arguments,
            }));
            self.calls += 1;
        }
        let finish_reason = first.and_then(|c| c.finish_reason.clone());
        let block_reason = chunk
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_deref());
        let nothing_said = !self.emitted_text && self.calls == 0;
        if let Some(e) = blocked(block_reason, finish_reason.as_deref(), nothing_said) {
            return Err(e);
        }
        if finish_reason.is_some() {
            self.done = true;
            out.push(StreamEvent::Usage(self.usage.counts()));
            out.push(StreamEvent::Done {
                finish_reason: finish_of(finish_reason.as_deref(), self.calls > 0),
            });
        }
        Ok(())
    }
}

/// Gemini's `finishReason`s in the neutral vocabulary (the blocked ones are errors
/// before they get here).
fn finish(r: &str) -> FinishReason {
    match r {
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" => {
            FinishReason::ContentFilter
        }
        _ => FinishReason::Stop,
    }
}

/// The neutral finish reason of an answer: Gemini says STOP after calling a function,
/// where the neutral vocabulary says `tool_calls` (a cut-off or filtered answer keeps
/// its own reason).
fn finish_of(reason: Option<&str>, called: bool) -> Option<FinishReason> {
    match reason.map(finish) {
        None | Some(FinishReason::Stop) if called => Some(FinishReason::ToolCalls),
        other => other,
    }
}

impl SseEvents for GoogleStream {
    fn decoder(&mut self) -> &mut SseDecoder {
        &mut self.sse
    }

    fn handle(&mut self, data: &str, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        GoogleStream::handle(self, data, out)
    }

    fn finished(&self) -> bool {
        self.done
    }

    fn cut_message(&self) -> String {
        "google stream ended before a chunk with finishReason".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::behaviours::{ErrorCase, WireFixture};

    struct Fixture;

    const KEY: &str = "AIzaSyFIXTUREKEY0123456789abcdefghijklm";

    // Shaped as the Gemini API reference's generateContent response for a thinking
    // model: thoughts are not returned (no includeThoughts) but are counted apart.
    const SUCCESS: &str = r#"{"candidates":[{"content":{"parts":[{"text":"SELECT * FROM cloudtrail WHERE errorCode = 'FailedAuthentication';"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":24,"candidatesTokenCount":17,"totalTokenCount":430,"promptTokensDetails":[{"modality":"TEXT","tokenCount":24}],"thoughtsTokenCount":389},"modelVersion":"gemini-2.5-flash","responseId":"kXqLaJ2bN9XhnvgP2ZqS8Qc"}"#;

    // streamGenerateContent?alt=sse as the API sends it (CRLF-separated events; interim
    // usageMetadata without counts; the last chunk has finishReason, an empty text part
    // with a thoughtSignature, and the final counts).
    const STREAM: &str = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hello\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 1033,\"totalTokenCount\": 1033,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 1033}]},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"tTCwacuEBMvnitYP06qsgQY\"}\r\n\r\ndata: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"! How can I help you today\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 1033,\"totalTokenCount\": 1033},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"tTCwacuEBMvnitYP06qsgQY\"}\r\n\r\ndata: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"?\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 1033,\"totalTokenCount\": 1033},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"tTCwacuEBMvnitYP06qsgQY\"}\r\n\r\ndata: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\",\"thoughtSignature\": \"AY89a18iOcFus5wr5bW5xN6zZ4aUiCyhgmg6HE2YjtYDV/dwZ5oZlZHeTmiUKv34qq0=\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 1033,\"candidatesTokenCount\": 9,\"totalTokenCount\": 1084,\"cachedContentTokenCount\": 1024,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 1033}],\"cacheTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 1024}],\"candidatesTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 9}],\"thoughtsTokenCount\": 42},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"tTCwacuEBMvnitYP06qsgQY\"}\r\n\r\n";

    // Error bodies as the Gemini API returns them (troubleshooting page, and bodies
    // reported verbatim in public issues for 429s).
    const INVALID_KEY: &str = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}},{"@type":"type.googleapis.com/google.rpc.LocalizedMessage","locale":"en-US","message":"API key not valid. Please pass a valid API key."}]}}"#;
    const PERMISSION_DENIED: &str = r#"{"error":{"code":403,"message":"Generative Language API has not been used in project 123456789012 before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/generativelanguage.googleapis.com/overview?project=123456789012 then retry. If you enabled this API recently, wait a few minutes for the action to propagate to our systems and retry.","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"SERVICE_DISABLED","domain":"googleapis.com","metadata":{"consumer":"projects/123456789012","service":"generativelanguage.googleapis.com"}}]}}"#;
    const NOT_FOUND: &str = r#"{"error":{"code":404,"message":"models/gemini-2.5-flash is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.","status":"NOT_FOUND"}}"#;
    const RATE_LIMITED: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_input_token_count","quotaId":"GenerateContentInputTokensPerModelPerMinute-FreeTier","quotaDimensions":{"location":"global","model":"gemini-2.5-flash"},"quotaValue":"250000"}]},{"@type":"type.googleapis.com/google.rpc.Help","links":[{"description":"Learn more about Gemini API quotas","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"26s"}]}}"#;
    const CREDITS_DEPLETED: &str = r#"{"error":{"code":429,"message":"Your prepayment credits are depleted. Please go to AI Studio at https://ai.studio/projects to manage your project and billing.","status":"RESOURCE_EXHAUSTED"}}"#;
    const PER_DAY: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier","quotaDimensions":{"model":"gemini-2.0-pro-exp","location":"global"},"quotaValue":"25"}]},{"@type":"type.googleapis.com/google.rpc.Help","links":[{"description":"Learn more about Gemini API quotas","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"5s"}]}}"#;
    const NO_FREE_TIER: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, head to: https://ai.dev/rate-limit. \n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 0, model: gemini-2.5-pro\nPlease retry in 38.863719904s.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.Help","links":[{"description":"Learn more about Gemini API quotas","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"38s"}]}}"#;
    const INVALID_REQUEST: &str = r#"{"error":{"code":400,"message":"Please use a valid role: user, model.","status":"INVALID_ARGUMENT"}}"#;
    const TOO_LONG: &str = r#"{"error":{"code":400,"message":"The input token count (1196279) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#;
    const OVERLOADED: &str = r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#;

    impl WireFixture for Fixture {
        fn wire() -> Box<dyn ChatWire> {
            Box::new(Google)
        }
        fn key() -> Option<ApiKey> {
            Some(ApiKey::new(KEY.into()))
        }
        fn model() -> &'static str {
            "gemini-2.5-flash"
        }
        fn chat_path(stream: bool) -> String {
            if stream {
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent".into()
            } else {
                "/v1beta/models/gemini-2.5-flash:generateContent".into()
            }
        }
        fn assert_sampling(b: &serde_json::Value) {
            let c = &b["generationConfig"];
            assert_eq!(c["topP"], 0.5);
            assert_eq!(c["stopSequences"], serde_json::json!(["END", "STOP"]));
            assert_eq!(c["seed"], 7);
            assert_eq!(c["presencePenalty"], 0.25);
            assert_eq!(c["frequencyPenalty"], -0.5);
        }
        fn assert_chat_request(r: &wiremock::Request, stream: bool) {
            assert_eq!(r.method.as_str(), "POST");
            assert_eq!(r.headers.get("x-goog-api-key").unwrap(), KEY);
            assert!(r.headers.get("authorization").is_none());
            assert_eq!(r.url.query(), stream.then_some("alt=sse"));
            assert!(!r.url.as_str().contains(KEY));
            let b: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert!(b.get("model").is_none());
            assert!(b.get("stream").is_none());
            assert_eq!(
                b["systemInstruction"],
                json!({"parts": [{"text": "You write SQL."}]})
            );
            assert_eq!(
                b["generationConfig"],
                json!({"maxOutputTokens": 256, "temperature": 0.0})
            );
            assert_eq!(
                b["contents"],
                json!([
                    {"role": "user", "parts": [{"text": "Show me failed login attempts"}]},
                    {"role": "model", "parts": [{"text": "Which table?"}]},
                    {"role": "user", "parts": [{"text": "cloudtrail"}]},
                ])
            );
        }
        fn success() -> (&'static str, &'static str, TokenCounts) {
            (
                SUCCESS,
                "SELECT * FROM cloudtrail WHERE errorCode = 'FailedAuthentication';",
                TokenCounts {
                    input_tokens: 24,
                    output_tokens: 17 + 389,
                    ..Default::default()
                },
            )
        }
        fn stream() -> (&'static str, &'static str, TokenCounts) {
            (
                STREAM,
                "Hello! How can I help you today?",
                TokenCounts {
                    input_tokens: 1033,
                    output_tokens: 9 + 42,
                    cached_input_tokens: 1024,
                    cache_write_tokens: 0,
                },
            )
        }
        fn error(kind: ErrorKind) -> ErrorCase {
            match kind {
                ErrorKind::InvalidKey => ErrorCase::new(400, INVALID_KEY),
                ErrorKind::PermissionDenied => ErrorCase::new(403, PERMISSION_DENIED),
                ErrorKind::ModelNotFound => ErrorCase::new(404, NOT_FOUND),
                ErrorKind::RateLimited => ErrorCase::new(429, RATE_LIMITED),
                ErrorKind::QuotaExceeded => ErrorCase::new(429, CREDITS_DEPLETED),
                ErrorKind::InvalidRequest => ErrorCase::new(400, INVALID_REQUEST),
                ErrorKind::ContextLengthExceeded => ErrorCase::new(400, TOO_LONG),
                ErrorKind::ServerError => ErrorCase::new(503, OVERLOADED),
                ErrorKind::Timeout | ErrorKind::Network => unreachable!("made by the transport"),
            }
        }
        fn probe() -> (http::Method, String, &'static str) {
            (
                http::Method::GET,
                "/v1beta/models/gemini-2.5-flash".into(),
                r#"{"name":"models/gemini-2.5-flash","version":"001","displayName":"Gemini 2.5 Flash","description":"Stable version of Gemini 2.5 Flash, our mid-size multimodal model that supports up to 1 million tokens, released in June of 2025.","inputTokenLimit":1048576,"outputTokenLimit":65536,"supportedGenerationMethods":["generateContent","countTokens","createCachedContent","batchGenerateContent"],"temperature":1,"topP":0.95,"topK":64,"maxTemperature":2,"thinking":true}"#,
            )
        }
    }

    crate::adapter_behaviours!(Fixture);

    // A generateContent answer calling a function, shaped as in the Gemini API's
    // function-calling guide (the call part carries a thoughtSignature on thinking
    // models; no id, finishReason STOP).
    const TOOL_ANSWER: &str = r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"CiQB0e2Kb7l4kqGn1x2nZ9l1oW3Jt2n4O9mYxWfK8p3qv6sAbCd="}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":58,"candidatesTokenCount":15,"totalTokenCount":151,"promptTokensDetails":[{"modality":"TEXT","tokenCount":58}],"thoughtsTokenCount":78},"modelVersion":"gemini-2.5-flash","responseId":"p3iLaOa6LcTnnvgPjJaa4Qc"}"#;

    // The same call streamed (alt=sse): a thought-free first chunk with interim usage,
    // then the whole call in the chunk that ends the stream, with the final counts.
    const TOOL_STREAM: &str = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 58,\"totalTokenCount\": 58},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"q3iLaLbVAcTnnvgPjJaa4Qc\"}\r\n\r\ndata: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"get_weather\",\"args\": {\"city\": \"Paris\"}},\"thoughtSignature\": \"CiQB0e2Kb7l4kqGn1x2nZ9l1oW3Jt2n4O9mYxWfK8p3qv6sAbCd=\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 58,\"candidatesTokenCount\": 15,\"totalTokenCount\": 151,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 58}],\"thoughtsTokenCount\": 78},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"q3iLaLbVAcTnnvgPjJaa4Qc\"}\r\n\r\n";

    fn paris_call() -> crate::providers::ToolCall {
        crate::providers::ToolCall {
            id: "call_0_get_weather".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        }
    }

    impl crate::providers::behaviours::ToolFixture for Fixture {
        fn assert_tools(b: &serde_json::Value) {
            assert_eq!(
                *b,
                json!({
                    "systemInstruction": {"parts": [{"text": "You are a weather bot."}]},
                    "contents": [
                        {"role": "user", "parts": [
                            {"text": "What is the weather in Paris, and where is this?"},
                            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
                        ]},
                        {"role": "model", "parts": [
                            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
                        ]},
                        {"role": "user", "parts": [
                            {"functionResponse": {"name": "get_weather",
                                "response": {"content": "18C and sunny"}}}
                        ]}
                    ],
                    "tools": [{"functionDeclarations": [{
                        "name": "get_weather",
                        "description": "Current weather for a city",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                            "required": ["city"]
                        }
                    }]}],
                    "toolConfig": {"functionCallingConfig": {
                        "mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
                    "generationConfig": {"maxOutputTokens": 256, "temperature": 0.0}
                })
            );
        }
        fn assert_structured(b: &serde_json::Value) {
            assert_eq!(
                b["generationConfig"],
                json!({
                    "maxOutputTokens": 256,
                    "responseMimeType": "application/json",
                    "responseSchema": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}},
                        "required": ["city", "celsius"]
                    }
                })
            );
            assert!(b.get("tools").is_none());
        }
        fn tool_answer() -> (&'static str, crate::providers::ToolCall) {
            (TOOL_ANSWER, paris_call())
        }
        fn tool_stream() -> (&'static str, crate::providers::ToolCall) {
            (TOOL_STREAM, paris_call())
        }
    }

    crate::tool_behaviours!(Fixture);

    fn body_of(chat: &ChatRequest) -> Result<serde_json::Value, ProviderError> {
        let endpoint = Endpoint {
            base_url: "https://generativelanguage.googleapis.com".into(),
        };
        let chat = ChatRequest {
            model: "gemini-2.5-flash".into(),
            ..chat.clone()
        };
        let r = Google.chat_request(&endpoint, Some(&ApiKey::new(KEY.into())), &chat)?;
        Ok(serde_json::from_slice(r.body.as_deref().unwrap()).unwrap())
    }

    #[test]
    fn image_urls_go_as_file_data_with_a_guessed_type() {
        for (url, mime) in [
            ("https://example.com/cat.png", "image/png"),
            ("https://example.com/a/cat.JPG?size=large#top", "image/jpeg"),
            ("https://example.com/cat.jpeg", "image/jpeg"),
            ("https://example.com/anim.gif", "image/gif"),
            ("https://example.com/x.webp?v=2", "image/webp"),
            ("https://example.com/photo", "image/jpeg"),
            ("https://example.com/dir.png/photo", "image/jpeg"),
            ("https://example.com/?f=cat.png", "image/jpeg"),
        ] {
            assert_eq!(image_mime(url), mime, "{url}");
        }
        let mut chat = crate::providers::behaviours::request(false);
        chat.messages[2].parts.push(crate::providers::Part::Image {
            source: ImageSource::Url {
                url: "https://example.com/cat.webp".into(),
            },
            detail: Some("high".into()),
        });
        let b = body_of(&chat).unwrap();
        assert_eq!(
            b["contents"][2]["parts"],
            json!([
                {"text": "cloudtrail"},
                {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp"}}
            ])
        );
    }

    fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: name.into(),
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
    fn parallel_results_share_one_user_turn() {
        let chat = ChatRequest {
            messages: vec![
                Message::text(Role::User, "Weather and time in Paris?"),
                Message {
                    role: Role::Assistant,
                    parts: vec![crate::providers::Part::Text {
                        text: "Checking.".into(),
                    }],
                    tool_calls: vec![
                        call("a", "get_weather", r#"{"city":"Paris"}"#),
                        call("b", "get_time", ""),
                    ],
                    ..Message::default()
                },
                result("b", r#"{"time":"12:00"}"#),
                result("a", "18C"),
                Message::text(Role::User, "Thanks"),
            ],
            max_tokens: 64,
            ..ChatRequest::default()
        };
        let b = body_of(&chat).unwrap();
        assert_eq!(
            b["contents"],
            json!([
                {"role": "user", "parts": [{"text": "Weather and time in Paris?"}]},
                {"role": "model", "parts": [
                    {"text": "Checking."},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                    {"functionCall": {"name": "get_time", "args": {}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_time", "response": {"content": {"time": "12:00"}}}},
                    {"functionResponse": {"name": "get_weather", "response": {"content": "18C"}}}
                ]},
                {"role": "user", "parts": [{"text": "Thanks"}]}
            ])
        );
    }

    #[test]
    fn a_result_for_an_unknown_call_or_bad_arguments_is_refused() {
        let mut chat = crate::providers::behaviours::tooled(false);
        chat.messages[2].tool_call_id = Some("call_9".into());
        assert_eq!(body_of(&chat).unwrap_err().kind, ErrorKind::InvalidRequest);
        chat.messages[2].tool_call_id = None;
        assert_eq!(body_of(&chat).unwrap_err().kind, ErrorKind::InvalidRequest);
        // A call made after the result is no answer to it.
        let mut chat = crate::providers::behaviours::tooled(false);
        chat.messages.swap(1, 2);
        assert_eq!(body_of(&chat).unwrap_err().kind, ErrorKind::InvalidRequest);

        for bad in ["{\"city\":", "[1]", "\"Paris\""] {
            let mut chat = crate::providers::behaviours::tooled(false);
            chat.messages[1].tool_calls[0].arguments = bad.into();
            assert_eq!(
                body_of(&chat).unwrap_err().kind,
                ErrorKind::InvalidRequest,
                "{bad}"
            );
        }
    }

    #[test]
    fn schemas_are_cleaned_for_gemini() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "strict": true,
            "additionalProperties": false,
            "properties": {
                "additionalProperties": {"type": "string", "format": "email"},
                "tags": {
                    "type": "array",
                    "items": {"type": "object", "additionalProperties": false,
                              "properties": {"name": {"type": ["string", "null"]}}},
                    "minItems": 1
                },
                "when": {"type": "string", "format": "date-time"},
                "unit": {"const": "celsius", "description": "Fixed"},
                "value": {"anyOf": [{"type": "number", "$comment": "x"}, {"type": "null"}]},
                "either": {"type": ["string", "integer"]}
            },
            "required": ["tags"],
            "$defs": {"x": {}}
        });
        assert_eq!(
            gemini_schema(&schema),
            json!({
                "type": "object",
                "properties": {
                    // A property may be named like a keyword: names are kept.
                    "additionalProperties": {"type": "string"},
                    "tags": {
                        "type": "array",
                        "items": {"type": "object",
                                  "properties": {"name": {"type": "string", "nullable": true}}},
                        "minItems": 1
                    },
                    "when": {"type": "string", "format": "date-time"},
                    "unit": {"enum": ["celsius"], "description": "Fixed"},
                    "value": {"anyOf": [{"type": "number"}, {"type": "null"}]},
                    "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]}
                },
                "required": ["tags"]
            })
        );
        // Nested models by reference, as Pydantic writes them, are inlined; a recursive
        // one stops at the depth bound.
        let pydantic = json!({
            "$defs": {
                "City": {"type": "object", "title": "City", "additionalProperties": false,
                         "properties": {"name": {"type": "string"}}, "required": ["name"]},
                "Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}
            },
            "type": "object",
            "properties": {
                "city": {"$ref": "#/$defs/City", "description": "Where"},
                "home": {"allOf": [{"$ref": "#/$defs/City"}], "description": "Home"},
                "maybe": {"anyOf": [{"$ref": "#/definitions/Missing"}, {"type": "null"}]},
                "list": {"$ref": "#/$defs/Node"}
            }
        });
        let city = json!({"type": "object", "title": "City",
                          "properties": {"name": {"type": "string"}}, "required": ["name"]});
        let cleaned = gemini_schema(&pydantic);
        let props = &cleaned["properties"];
        let with = |d: &str| {
            let mut c = city.clone();
            c["description"] = json!(d);
            c
        };
        assert_eq!(props["city"], with("Where"));
        assert_eq!(props["home"], with("Home"));
        assert_eq!(props["maybe"], json!({"anyOf": [{}, {"type": "null"}]}));
        let mut node = &props["list"];
        for _ in 0..MAX_REF_DEPTH {
            assert_eq!(node["type"], "object");
            node = &node["properties"]["next"];
        }
        assert_eq!(*node, json!({}));
        assert!(cleaned.get("$defs").is_none());

        // A function without parameters sends none (Gemini refuses an empty object).
        let mut chat = crate::providers::behaviours::tooled(false);
        chat.tools[0].parameters =
            json!({"type": "object", "properties": {}, "additionalProperties": false});
        let b = body_of(&chat).unwrap();
        assert_eq!(
            b["tools"][0]["functionDeclarations"][0],
            json!({"name": "get_weather", "description": "Current weather for a city"})
        );
    }

    #[test]
    fn tool_choices_and_json_modes() {
        let mut chat = crate::providers::behaviours::tooled(false);
        for (choice, config) in [
            (ToolChoice::Auto, json!({"mode": "AUTO"})),
            (ToolChoice::None, json!({"mode": "NONE"})),
            (ToolChoice::Required, json!({"mode": "ANY"})),
        ] {
            chat.tool_choice = Some(choice);
            let b = body_of(&chat).unwrap();
            assert_eq!(b["toolConfig"]["functionCallingConfig"], config);
        }
        chat.tool_choice = None;
        assert!(body_of(&chat).unwrap().get("toolConfig").is_none());

        let mut chat = crate::providers::behaviours::request(false);
        chat.response_format = Some(ResponseFormat::JsonObject);
        let c = &body_of(&chat).unwrap()["generationConfig"];
        assert_eq!(c["responseMimeType"], "application/json");
        assert!(c.get("responseSchema").is_none());
        chat.response_format = Some(ResponseFormat::Text);
        let c = &body_of(&chat).unwrap()["generationConfig"];
        assert!(c.get("responseMimeType").is_none());
    }

    #[test]
    fn gemini_3_replays_calls_with_the_signature_placeholder() {
        for (model, sign) in [
            ("gemini-2.5-flash", false),
            ("models/gemini-2.0-flash-001", false),
            ("gemini-1.5-pro", false),
            ("gemini-3-pro-preview", true),
            ("models/gemini-3.1-flash", true),
            ("gemini-10-ultra", true),
            ("gemini-flash-latest", true),
            ("tunedModels/sql-writer-7x2k", true),
        ] {
            assert_eq!(needs_signatures(model), sign, "{model}");
        }
        let chat = ChatRequest {
            model: "gemini-3-pro-preview".into(),
            ..crate::providers::behaviours::tooled(false)
        };
        let r = Google
            .chat_request(
                &Endpoint {
                    base_url: "https://generativelanguage.googleapis.com".into(),
                },
                Some(&ApiKey::new(KEY.into())),
                &chat,
            )
            .unwrap();
        let b: serde_json::Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            b["contents"][1]["parts"],
            json!([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "skip_thought_signature_validator"}])
        );
    }

    #[test]
    fn reasoning_effort_is_a_thinking_budget() {
        let mut chat = crate::providers::behaviours::request(false);
        assert!(
            body_of(&chat).unwrap()["generationConfig"]
                .get("thinkingConfig")
                .is_none()
        );
        for (effort, budget) in [
            (ReasoningEffort::Minimal, 1024),
            (ReasoningEffort::Low, 1024),
            (ReasoningEffort::Medium, 8192),
            (ReasoningEffort::High, 24576),
        ] {
            chat.reasoning_effort = Some(effort);
            assert_eq!(
                body_of(&chat).unwrap()["generationConfig"]["thinkingConfig"],
                json!({"thinkingBudget": budget})
            );
        }
    }

    #[test]
    fn calls_are_numbered_and_keep_an_id_gemini_gave() {
        let body = r#"{"candidates":[{"content":{"parts":[{"text":"Let me check."},{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}},{"functionCall":{"id":"fc-7","name":"get_time"}}],"role":"model"},"finishReason":"STOP","index":0}],"modelVersion":"gemini-2.5-flash"}"#;
        let g = Google
            .parse_chat(200, &HeaderMap::new(), body.as_bytes())
            .unwrap();
        assert_eq!(g.content, "Let me check.");
        assert_eq!(
            g.tool_calls,
            vec![
                call("call_0_get_weather", "get_weather", r#"{"city":"Paris"}"#),
                call("fc-7", "get_time", "{}"),
            ]
        );
        assert_eq!(g.finish_reason, Some(FinishReason::ToolCalls));

        // A call cut off by the token limit keeps its reason.
        let cut = body.replace("STOP", "MAX_TOKENS");
        let g = Google
            .parse_chat(200, &HeaderMap::new(), cut.as_bytes())
            .unwrap();
        assert_eq!(g.finish_reason, Some(FinishReason::Length));

        // A second streamed call is index 1 and id call_1_...
        let mut p = Google.stream_parser();
        let mut events = p.feed(b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"a\",\"args\": {}}}],\"role\": \"model\"},\"index\": 0}]}\r\n\r\ndata: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"b\",\"args\": {\"x\": 1}}}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}]}\r\n\r\n").unwrap();
        events.extend(p.finish().unwrap());
        assert_eq!(
            events,
            vec![
                StreamEvent::ToolCall(ToolCallDelta {
                    index: 0,
                    id: Some("call_0_a".into()),
                    name: Some("a".into()),
                    arguments: "{}".into()
                }),
                StreamEvent::ToolCall(ToolCallDelta {
                    index: 1,
                    id: Some("call_1_b".into()),
                    name: Some("b".into()),
                    arguments: r#"{"x":1}"#.into()
                }),
                StreamEvent::Usage(TokenCounts::default()),
                StreamEvent::Done {
                    finish_reason: Some(FinishReason::ToolCalls)
                },
            ]
        );
    }

    #[test]
    fn a_call_with_a_safety_finish_is_not_blocked() {
        let body = r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}],"role":"model"},"finishReason":"SAFETY","index":0}],"modelVersion":"gemini-2.5-flash"}"#;
        let g = Google
            .parse_chat(200, &HeaderMap::new(), body.as_bytes())
            .unwrap();
        assert_eq!(g.tool_calls.len(), 1);
        assert_eq!(g.finish_reason, Some(FinishReason::ContentFilter));
    }

    fn kind_of(status: u16, body: &str) -> ProviderError {
        Google.classify_error(status, &HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn retry_delay_is_read_when_there_is_no_header() {
        let e = kind_of(429, RATE_LIMITED);
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(26)));

        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        let e = Google.classify_error(429, &h, RATE_LIMITED.as_bytes());
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));

        let fractional = r#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"57.238747106s"}]}}"#;
        assert_eq!(
            kind_of(429, fractional).retry_after,
            Some(Duration::from_millis(57_238))
        );
    }

    #[test]
    fn out_of_quota_is_told_apart_from_a_rate_limit() {
        assert_eq!(kind_of(429, PER_DAY).kind, ErrorKind::QuotaExceeded);
        assert_eq!(kind_of(429, NO_FREE_TIER).kind, ErrorKind::QuotaExceeded);
        assert_eq!(
            kind_of(429, CREDITS_DEPLETED).kind,
            ErrorKind::QuotaExceeded
        );
        let bare = r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(kind_of(429, bare).kind, ErrorKind::RateLimited);
        let billing = r#"{"error":{"code":400,"message":"Gemini API free tier is not available in your country. Please enable billing on your project in Google AI Studio.","status":"FAILED_PRECONDITION"}}"#;
        assert_eq!(kind_of(400, billing).kind, ErrorKind::QuotaExceeded);
    }

    #[test]
    fn other_documented_statuses() {
        let leaked = r#"{"error":{"code":403,"message":"Your API key was reported as leaked. Please use another API key.","status":"PERMISSION_DENIED"}}"#;
        assert_eq!(kind_of(403, leaked).kind, ErrorKind::InvalidKey);
        let location = r#"{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}"#;
        assert_eq!(kind_of(400, location).kind, ErrorKind::PermissionDenied);
        let internal = r#"{"error":{"code":500,"message":"An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting","status":"INTERNAL"}}"#;
        assert_eq!(kind_of(500, internal).kind, ErrorKind::ServerError);
        let deadline = r#"{"error":{"code":504,"message":"Deadline expired before operation could complete.","status":"DEADLINE_EXCEEDED"}}"#;
        assert_eq!(kind_of(504, deadline).kind, ErrorKind::Timeout);
        // The array form sent by streams opened without alt=sse.
        let array = format!("[{INVALID_KEY}]");
        assert_eq!(kind_of(400, &array).kind, ErrorKind::InvalidKey);
        // Not JSON at all (a proxy's page): the HTTP status decides.
        assert_eq!(
            kind_of(502, "<html>Bad Gateway</html>").kind,
            ErrorKind::ServerError
        );
    }

    #[test]
    fn thought_parts_are_not_content_but_their_tokens_are_output() {
        let body = r#"{"candidates":[{"content":{"parts":[{"text":"**Considering the table**\nThe user wants failed logins.","thought":true},{"text":"SELECT 1;"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":4096,"candidatesTokenCount":5,"totalTokenCount":4201,"cachedContentTokenCount":4000,"thoughtsTokenCount":100},"modelVersion":"gemini-2.5-pro"}"#;
        let g = Google
            .parse_chat(200, &HeaderMap::new(), body.as_bytes())
            .unwrap();
        assert_eq!(g.content, "SELECT 1;");
        assert_eq!(g.model, "gemini-2.5-pro");
        assert_eq!(g.finish_reason, Some(FinishReason::Stop));
        assert_eq!(
            g.tokens,
            TokenCounts {
                input_tokens: 4096,
                output_tokens: 105,
                cached_input_tokens: 4000,
                cache_write_tokens: 0
            }
        );
    }

    #[test]
    fn blocked_content_is_an_invalid_request() {
        let prompt_blocked = r#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":12,"totalTokenCount":12},"modelVersion":"gemini-2.5-flash"}"#;
        let e = Google
            .parse_chat(200, &HeaderMap::new(), prompt_blocked.as_bytes())
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
        let candidate_blocked = r#"{"candidates":[{"finishReason":"SAFETY","index":0,"safetyRatings":[{"category":"HARM_CATEGORY_DANGEROUS_CONTENT","probability":"HIGH","blocked":true}]}],"usageMetadata":{"promptTokenCount":12,"totalTokenCount":12},"modelVersion":"gemini-2.5-flash"}"#;
        let e = Google
            .parse_chat(200, &HeaderMap::new(), candidate_blocked.as_bytes())
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
        // Out of tokens with nothing said is not a refusal.
        let empty = r#"{"candidates":[{"content":{"role":"model"},"finishReason":"MAX_TOKENS","index":0}],"usageMetadata":{"promptTokenCount":12,"totalTokenCount":268,"thoughtsTokenCount":256},"modelVersion":"gemini-2.5-flash"}"#;
        let g = Google
            .parse_chat(200, &HeaderMap::new(), empty.as_bytes())
            .unwrap();
        assert_eq!(g.content, "");
        assert_eq!(g.tokens.output_tokens, 256);

        let mut p = Google.stream_parser();
        let e = p
            .feed(b"data: {\"promptFeedback\": {\"blockReason\": \"SAFETY\"},\"usageMetadata\": {\"promptTokenCount\": 12,\"totalTokenCount\": 12},\"modelVersion\": \"gemini-2.5-flash\"}\r\n\r\n")
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
    }

    #[test]
    fn an_error_chunk_mid_stream_is_classified() {
        let mut p = Google.stream_parser();
        let first = p
            .feed(b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel\"}],\"role\": \"model\"},\"index\": 0}]}\r\n\r\n")
            .unwrap();
        assert_eq!(first, vec![StreamEvent::Delta("Hel".into())]);
        let e = p
            .feed(format!("data: {OVERLOADED}\r\n\r\n").as_bytes())
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::ServerError);
        assert_eq!(e.status, Some(503));
    }

    #[test]
    fn requests_keep_the_key_out_of_the_url_and_check_the_model() {
        let endpoint = Endpoint {
            base_url: "https://generativelanguage.googleapis.com/".into(),
        };
        let key = ApiKey::new(KEY.into());
        let mut chat = crate::providers::behaviours::request(true);
        chat.model = "models/gemini-2.5-flash".into();
        let r = Google.chat_request(&endpoint, Some(&key), &chat).unwrap();
        assert_eq!(
            r.url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert!(r.headers.get("x-goog-api-key").unwrap().is_sensitive());

        chat.model = "tunedModels/sql-writer-7x2k".into();
        let r = Google.chat_request(&endpoint, Some(&key), &chat).unwrap();
        assert!(r.url.contains("/v1beta/tunedModels/sql-writer-7x2k:"));

        let p = Google
            .probe_request(&endpoint, Some(&key), "gemini-2.5-flash")
            .unwrap();
        assert_eq!(
            p.url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
        );
        assert!(!p.url.contains("key="));

        for evil in [
            "../files/x",
            "gemini?alt=json",
            "a/b/c",
            "gemini flash",
            "",
            "x#y",
        ] {
            chat.model = evil.into();
            assert!(
                Google.chat_request(&endpoint, Some(&key), &chat).is_err(),
                "{evil}"
            );
        }
        chat.model = "gemini-2.5-flash".into();
        assert_eq!(
            Google
                .chat_request(&endpoint, None, &chat)
                .unwrap_err()
                .kind,
            ErrorKind::InvalidKey
        );
    }

    #[test]
    fn probe_of_a_missing_model_or_a_bad_key() {
        let e = Google
            .parse_probe(404, &HeaderMap::new(), NOT_FOUND.as_bytes(), "gemini-9")
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::ModelNotFound);
        let e = Google
            .parse_probe(
                400,
                &HeaderMap::new(),
                INVALID_KEY.as_bytes(),
                "gemini-2.5-flash",
            )
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidKey);
    }

    #[test]
    fn system_turns_join_the_system_instruction() {
        let endpoint = Endpoint {
            base_url: "https://generativelanguage.googleapis.com".into(),
        };
        let key = ApiKey::new(KEY.into());
        let mut chat = crate::providers::behaviours::request(false);
        chat.model = "gemini-2.5-flash".into();
        chat.system = None;
        chat.temperature = None;
        chat.messages.insert(
            0,
            crate::providers::Message::text(Role::System, "Be brief."),
        );
        let r = Google.chat_request(&endpoint, Some(&key), &chat).unwrap();
        let b: serde_json::Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
        assert_eq!(b["systemInstruction"]["parts"][0]["text"], "Be brief.");
        assert_eq!(b["contents"].as_array().unwrap().len(), 3);
        assert!(b["generationConfig"].get("temperature").is_none());
    }
}
