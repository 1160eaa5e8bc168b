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

use super::error::{excerpt, kind_for_status, mentions_context_length, retry_after};
use super::sse::{SseDecoder, SseEvents};
use super::{
    ChatRequest, ChatWire, Endpoint, ErrorKind, FinishReason, Generation, ProviderError, Role,
    StreamEvent, StreamParser, WireRequest, join,
};
use crate::pricing::TokenCounts;
use crate::provider::Provider;
use crate::secret::ApiKey;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::json;
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
struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: bool,
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
/// for safety, when no text came with it: the provider refused this request's content.
fn blocked(
    block_reason: Option<&str>,
    finish_reason: Option<&str>,
    text_is_empty: bool,
) -> Option<ProviderError> {
    let reason = block_reason.or(finish_reason.filter(|r| BLOCKED_FINISH.contains(r)))?;
    text_is_empty.then(|| {
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

/// The sampling parameters in `generationConfig`'s names.
fn generation_config(config: &mut serde_json::Value, request: &ChatRequest) {
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
        // System turns in the conversation join the system instruction.
        let mut system: Vec<String> = request.system.iter().cloned().collect();
        let mut contents = Vec::new();
        for m in &request.messages {
            let role = match m.role {
                Role::System => {
                    system.push(m.joined_text());
                    continue;
                }
                Role::User | Role::Tool => "user",
                Role::Assistant => "model",
            };
            contents.push(json!({"role": role, "parts": [{"text": m.joined_text()}]}));
        }
        let mut config = json!({"maxOutputTokens": request.max_tokens});
        if let Some(t) = request.temperature {
            config["temperature"] = json!(t);
        }
        generation_config(&mut config, request);
        let mut body = json!({"contents": contents, "generationConfig": config});
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
        let finish_reason = first.and_then(|c| c.finish_reason.clone());
        let block_reason = r
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_deref());
        if let Some(e) = blocked(block_reason, finish_reason.as_deref(), content.is_empty()) {
            return Err(e);
        }
        Ok(Generation {
            content,
            tool_calls: Vec::new(),
            model: r.model_version.unwrap_or_default(),
            tokens: r.usage_metadata.unwrap_or_default().counts(),
            finish_reason: finish_reason.as_deref().map(finish),
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
        let finish_reason = first.and_then(|c| c.finish_reason.clone());
        let block_reason = chunk
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_deref());
        if let Some(e) = blocked(block_reason, finish_reason.as_deref(), !self.emitted_text) {
            return Err(e);
        }
        if finish_reason.is_some() {
            self.done = true;
            out.push(StreamEvent::Usage(self.usage.counts()));
            out.push(StreamEvent::Done {
                finish_reason: finish_reason.as_deref().map(finish),
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
