//! Anthropic Messages API (`POST /v1/messages`): `x-api-key` and `anthropic-version`
//! headers, a top-level `system`, and usage whose `input_tokens` excludes cache reads
//! and writes (`cache_read_input_tokens`, `cache_creation_input_tokens`), which are
//! added back so [`TokenCounts::input_tokens`] is always the whole prompt.

use super::error::{excerpt, kind_for_status, mentions_context_length, retry_after};
use super::ratelimit::{RateLimitState, count, header};
use super::sse::{SseDecoder, SseEvents};
use super::{
    ChatRequest, ChatWire, Endpoint, ErrorKind, FinishReason, Generation, ProviderError, Role,
    StreamEvent, StreamParser, WireRequest, join,
};
use crate::pricing::TokenCounts;
use crate::provider::Provider;
use crate::secret::ApiKey;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::json;

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

#[derive(Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
struct MessageResponse {
    model: String,
    content: Vec<ContentBlock>,
    stop_reason: Option<String>,
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
        // System turns in the conversation join the top-level system prompt.
        let mut system: Vec<String> = request.system.iter().cloned().collect();
        let mut messages = Vec::new();
        for m in &request.messages {
            match m.role {
                Role::System => system.push(m.joined_text()),
                Role::User | Role::Tool => {
                    messages.push(json!({"role": "user", "content": m.joined_text()}))
                }
                Role::Assistant => {
                    messages.push(json!({"role": "assistant", "content": m.joined_text()}))
                }
            }
        }
        let mut body = json!({
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
        });
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
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
        let content = r
            .content
            .iter()
            .filter(|b| b.kind == "text")
            .map(|b| b.text.as_str())
            .collect();
        Ok(Generation {
            content,
            tool_calls: Vec::new(),
            model: r.model,
            tokens: r.usage.counts(),
            finish_reason: r.stop_reason.as_deref().map(stop_reason),
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

/// Anthropic's event stream: `message_start` (input usage), `content_block_delta`
/// (text), `message_delta` (output usage, stop reason), `message_stop`; an `error`
/// event may arrive mid-stream.
#[derive(Default)]
struct AnthropicStream {
    sse: SseDecoder,
    usage: Usage,
    stop_reason: Option<FinishReason>,
    done: bool,
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
            "content_block_delta" if v["delta"]["type"] == "text_delta" => {
                if let Some(t) = v["delta"]["text"].as_str() {
                    out.push(StreamEvent::Delta(t.to_owned()));
                }
            }
            "message_delta" => {
                if let Some(n) = v["usage"]["output_tokens"].as_u64() {
                    self.usage.output_tokens = n;
                }
                if let Some(r) = v["delta"]["stop_reason"].as_str() {
                    self.stop_reason = Some(stop_reason(r));
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
