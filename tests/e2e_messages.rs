//! `POST /v1/messages` (Anthropic's Messages API) end to end through the `llm-local`
//! binary, against local upstreams that speak Anthropic's and OpenAI's wire formats: the
//! body each upstream got, the answer in Anthropic's shape, tool use behind an OpenAI
//! model, the exact stream event sequences, `x-api-key` auth, `count_tokens`, and errors
//! in Anthropic's envelope naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod local_support;

use local_support::{Server, start_with_env, token};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const OPENAI_KEY: &str = "sk-proj-MSGOPENAIKEYMARKER-0123456789abcdefghijklmnop";
const ANTHROPIC_KEY: &str = "sk-ant-api03-MSGANTHROPICMARKER-0123456789abcdefghijklmnop";

struct Gateway {
    _server: Server,
    base: String,
    token: String,
    http: reqwest::Client,
    openai: MockServer,
    anthropic: MockServer,
    _tmp: tempfile::TempDir,
}

/// A gateway whose openai and anthropic point at two mock servers answering `openai`
/// and `anthropic`, with user `alice` holding both keys and no failover (each test
/// names its model).
async fn gateway(openai: ResponseTemplate, anthropic: ResponseTemplate) -> Gateway {
    let o = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(openai)
        .mount(&o)
        .await;
    let a = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(anthropic)
        .mount(&a)
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let token = token(&data, "alice", false);
    let env = vec![
        ("LLM_PROVIDER_URL_OPENAI", format!("{}/v1", o.uri())),
        ("LLM_PROVIDER_URL_ANTHROPIC", a.uri()),
        ("LLM_PROVIDER_TIMEOUT_SECS", "2".to_string()),
        ("LLM_MAX_RETRIES", "1".to_string()),
        ("LLM_REQUESTS_PER_MINUTE", "100000".to_string()),
    ];
    let server = start_with_env(&data, &log, &env);
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{}/api/llm-settings/alice", server.base))
        .bearer_auth(&token)
        .json(
            &json!({"preferences": {"defaultProvider": "openai", "autoFailover": false},
                      "apiKeys": {"openai": OPENAI_KEY, "anthropic": ANTHROPIC_KEY}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    Gateway {
        base: server.base.clone(),
        _server: server,
        token,
        http,
        openai: o,
        anthropic: a,
        _tmp: tmp,
    }
}

impl Gateway {
    /// A request as the Anthropic SDK sends it: the key in `x-api-key`.
    async fn post(&self, route: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{route}", self.base))
            .header("x-api-key", &self.token)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn messages(&self, body: Value) -> (u16, Value) {
        let r = self.post("/v1/messages", body).await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

async fn upstream_bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r: &Request| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

fn sse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .filter_map(|block| {
            let mut event = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (!data.is_empty()).then(|| (event, serde_json::from_str(&data).unwrap()))
        })
        .collect()
}

/// OpenAI's stream: one `data:` line per chunk, then `[DONE]`.
fn openai_stream(chunks: &[Value]) -> ResponseTemplate {
    let mut body = String::new();
    for c in chunks {
        body.push_str(&format!("data: {c}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

fn chunk(delta: Value, finish: Value) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
}

fn usage_chunk(prompt: u64, completion: u64) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
           "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                    "total_tokens": prompt + completion}})
}

fn unused() -> ResponseTemplate {
    ResponseTemplate::new(500)
}

#[tokio::test]
async fn a_text_message_to_an_anthropic_model() {
    let answer = json!({"id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant",
        "model": "claude-3-5-sonnet-20241022",
        "content": [{"type": "text", "text": "Hello! How can I help?"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 20, "output_tokens": 7, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 0}});
    let g = gateway(unused(), ResponseTemplate::new(200).set_body_json(answer)).await;
    let r = g
        .post(
            "/v1/messages",
            json!({"model": "anthropic/claude-3-5-sonnet-20241022", "max_tokens": 256,
               "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
               "messages": [{"role": "user", "content": "Hello"}],
               "temperature": 0.2, "stop_sequences": ["END"], "metadata": {"user_id": "u-1"}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["id"],
        format!("msg_{}", request_id.trim_start_matches("req-"))
    );
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "anthropic/claude-3-5-sonnet-20241022");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "Hello! How can I help?"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert_eq!(v["usage"]["input_tokens"], 20);
    assert_eq!(v["usage"]["output_tokens"], 7);
    assert_eq!(v["usage"]["cache_read_input_tokens"], 5);
    let sent = upstream_bodies(&g.anthropic).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["model"], "claude-3-5-sonnet-20241022");
    assert_eq!(sent[0]["max_tokens"], 256);
    assert_eq!(sent[0]["stop_sequences"], json!(["END"]));
    assert!(
        sent[0]["system"].to_string().contains("Be brief."),
        "{}",
        sent[0]
    );
    assert_eq!(sent[0]["messages"][0]["role"], "user");
    assert!(upstream_bodies(&g.openai).await.is_empty());
}

#[tokio::test]
async fn a_tool_use_round_trip_through_an_openai_model() {
    let answer = json!({"id": "chatcmpl-abc123", "object": "chat.completion", "created": 1699896916, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_2", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\":\"Lyon\"}"}}]},
            "logprobs": null, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99}});
    let g = gateway(ResponseTemplate::new(200).set_body_json(answer), unused()).await;
    let (s, v) = g
        .messages(json!({"model": "openai/gpt-4o", "max_tokens": 100,
        "tools": [{"name": "get_weather", "description": "The weather in a city",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
        "tool_choice": {"type": "auto"},
        "messages": [
            {"role": "user", "content": "Weather in Paris, then Lyon?"},
            {"role": "assistant", "content": [{"type": "text", "text": "Checking Paris."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "18C, sunny"}]}]}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(
        v["content"],
        json!([{"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Lyon"}}])
    );
    assert_eq!(v["usage"]["input_tokens"], 82);
    assert_eq!(v["usage"]["output_tokens"], 17);
    let sent = upstream_bodies(&g.openai).await;
    assert_eq!(sent.len(), 1);
    let b = &sent[0];
    assert_eq!(b["model"], "gpt-4o");
    assert_eq!(b["tools"][0]["type"], "function");
    assert_eq!(b["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(
        b["tools"][0]["function"]["parameters"]["required"],
        json!(["city"])
    );
    assert_eq!(b["tool_choice"], "auto");
    let msgs = b["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{b}");
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[1]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        msgs[1]["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Paris"}"#
    );
    assert_eq!(msgs[2]["role"], "tool");
    assert_eq!(msgs[2]["tool_call_id"], "call_1");
    assert!(msgs[2]["content"].to_string().contains("18C, sunny"));
}

/// The events' names, and each block event's index.
fn sequence(events: &[(String, Value)]) -> Vec<String> {
    events
        .iter()
        .map(|(e, d)| match d.get("index") {
            Some(i) => format!("{e}:{i}"),
            None => e.clone(),
        })
        .collect()
}

#[tokio::test]
async fn a_streamed_text_answer_has_anthropics_event_sequence() {
    let stream = openai_stream(&[
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Hello"}), Value::Null),
        chunk(json!({"content": "!"}), Value::Null),
        chunk(json!({}), json!("stop")),
        usage_chunk(9, 12),
    ]);
    let g = gateway(stream, unused()).await;
    let r = g
        .post(
            "/v1/messages",
            json!({"model": "gpt-4o", "max_tokens": 50, "stream": true,
                   "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse_events(&r.text().await.unwrap());
    let seq = sequence(&events);
    // The upstream's empty first delta may or may not be forwarded as its own delta.
    let deltas = seq.iter().filter(|s| *s == "content_block_delta:0").count();
    let mut expected = vec!["message_start", "content_block_start:0"];
    expected.extend(std::iter::repeat_n("content_block_delta:0", deltas));
    expected.extend(["content_block_stop:0", "message_delta", "message_stop"]);
    assert_eq!(seq, expected);
    for (name, data) in &events {
        assert_eq!(&data["type"], name, "every event's data names its event");
    }
    let start = &events[0].1["message"];
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["model"], "gpt-4o");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["usage"]["input_tokens"], 0);
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = events
        .iter()
        .filter(|(e, _)| e == "content_block_delta")
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "Hello!");
    let delta = &events[events.len() - 2].1;
    assert_eq!(
        delta["delta"],
        json!({"stop_reason": "end_turn", "stop_sequence": null})
    );
    assert_eq!(delta["usage"]["output_tokens"], 12);
    assert_eq!(delta["usage"]["input_tokens"], 9);
}

#[tokio::test]
async fn streamed_tool_calls_become_tool_use_blocks_with_input_json_deltas() {
    let call = |index: u32, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut function = json!({"arguments": args});
        if let Some(n) = name {
            function["name"] = json!(n);
        }
        let mut c = json!({"index": index, "function": function});
        if let Some(id) = id {
            c["id"] = json!(id);
            c["type"] = json!("function");
        }
        chunk(json!({"tool_calls": [c]}), Value::Null)
    };
    let stream = openai_stream(&[
        chunk(
            json!({"role": "assistant", "content": "Let me check."}),
            Value::Null,
        ),
        call(0, Some("call_a"), Some("get_weather"), ""),
        call(0, None, None, "{\"city\":"),
        call(0, None, None, "\"Paris\"}"),
        call(1, Some("call_b"), Some("get_time"), "{}"),
        chunk(json!({}), json!("tool_calls")),
        usage_chunk(60, 18),
    ]);
    let g = gateway(stream, unused()).await;
    let r = g
        .post(
            "/v1/messages",
            json!({"model": "openai/gpt-4o", "max_tokens": 50, "stream": true,
                   "tools": [{"name": "get_weather", "input_schema": {"type": "object"}},
                             {"name": "get_time", "input_schema": {"type": "object"}}],
                   "messages": [{"role": "user", "content": "Weather and time in Paris?"}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let events = sse_events(&r.text().await.unwrap());
    assert_eq!(
        sequence(&events),
        [
            "message_start",
            "content_block_start:0",
            "content_block_delta:0",
            "content_block_stop:0",
            "content_block_start:1",
            "content_block_delta:1",
            "content_block_delta:1",
            "content_block_stop:1",
            "content_block_start:2",
            "content_block_delta:2",
            "content_block_stop:2",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(events[2].1["delta"]["text"], "Let me check.");
    assert_eq!(
        events[4].1["content_block"],
        json!({"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}})
    );
    let json_of = |i: usize| {
        assert_eq!(events[i].1["delta"]["type"], "input_json_delta");
        events[i].1["delta"]["partial_json"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(json_of(5) + &json_of(6), r#"{"city":"Paris"}"#);
    assert_eq!(events[8].1["content_block"]["id"], "call_b");
    assert_eq!(events[8].1["content_block"]["name"], "get_time");
    assert_eq!(json_of(9), "{}");
    let delta = &events[11].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 18);
    assert_eq!(delta["usage"]["input_tokens"], 60);
}

#[tokio::test]
async fn x_api_key_authenticates_and_a_bad_one_is_a_401_like_a_bad_bearer() {
    let g = gateway(unused(), unused()).await;
    let body =
        json!({"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    let bad_key = g
        .http
        .post(format!("{}/v1/messages", g.base))
        .header("x-api-key", "llmk_not-a-real-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), 401);
    assert!(bad_key.headers().contains_key("x-request-id"));
    let v: Value = bad_key.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");
    let bad_bearer = g
        .http
        .post(format!("{}/v1/messages", g.base))
        .bearer_auth("llmk_not-a-real-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_bearer.status(), 401);
    let none = g
        .http
        .post(format!("{}/v1/messages", g.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    // Every route reads the key: the OpenAI face too, in the gateway's own envelope.
    let models = g
        .http
        .get(format!("{}/v1/models", g.base))
        .header("x-api-key", &g.token)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    let bad_models = g
        .http
        .get(format!("{}/v1/models", g.base))
        .header("x-api-key", "llmk_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_models.status(), 401);
    let v: Value = bad_models.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unauthorized");
}

#[tokio::test]
async fn count_tokens_estimates_without_calling_a_provider() {
    let g = gateway(unused(), unused()).await;
    let text = "a".repeat(400);
    let r = g
        .post(
            "/v1/messages/count_tokens",
            json!({"model": "anthropic/claude-3-5-sonnet-20241022",
               "messages": [{"role": "user", "content": [{"type": "text", "text": text},
                   {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    // 400 bytes of text and 4 of framing at 4 bytes a token, and one image at 1,000.
    assert_eq!(v, json!({"input_tokens": 1101}));
    let r = g
        .post(
            "/v1/messages/count_tokens",
            json!({"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(upstream_bodies(&g.anthropic).await.is_empty());
    assert!(upstream_bodies(&g.openai).await.is_empty());
}

#[tokio::test]
async fn bad_requests_are_400s_in_anthropics_envelope_naming_the_field() {
    let g = gateway(unused(), unused()).await;
    for (body, field) in [
        (
            json!({"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image", "source": {"type": "url", "url": "http://example.com/cat.png"}}]}]}),
            "messages.0.content.1.source",
        ),
        (
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens",
        ),
        (
            json!({"model": "no-such-model", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (
            json!({"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                   "tools": [{"name": "bad name", "input_schema": {"type": "object"}}]}),
            "tools.0.name",
        ),
        (
            json!({"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                   "tools": [{"type": "bash_20250124", "name": "bash"}]}),
            "tools.0.type",
        ),
    ] {
        let r = g.post("/v1/messages", body).await;
        assert_eq!(r.status(), 400, "{field}");
        assert!(r.headers().contains_key("x-request-id"));
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("{field}:")), "{message}");
        assert!(v["request_id"].as_str().unwrap().starts_with("req-"));
    }
    let (s, v) = g
        .messages(json!({"model": "gpt-4o", "max_tokens": 5, "top_k": 3,
                         "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("top_k"));
    assert!(upstream_bodies(&g.openai).await.is_empty());
}

#[tokio::test]
async fn the_model_list_parses_in_both_sdks() {
    let g = gateway(unused(), unused()).await;
    let r = g
        .http
        .get(format!("{}/v1/models", g.base))
        .header("x-api-key", &g.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["has_more"], false);
    let data = v["data"].as_array().unwrap();
    assert!(!data.is_empty());
    assert_eq!(v["first_id"], data[0]["id"]);
    assert_eq!(v["last_id"], data[data.len() - 1]["id"]);
    for m in data {
        assert_eq!(m["type"], "model");
        assert_eq!(m["object"], "model");
        assert!(m["display_name"].is_string());
        let created = m["created_at"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(created).is_ok(),
            "{created}"
        );
    }
}

#[tokio::test]
async fn a_stream_that_breaks_midway_ends_in_an_error_event() {
    // No finish, no usage, no [DONE]: the upstream stream just ends.
    let mut body = String::new();
    for c in [
        chunk(json!({"role": "assistant", "content": "Hel"}), Value::Null),
        chunk(json!({"content": "lo"}), Value::Null),
    ] {
        body.push_str(&format!("data: {c}\n\n"));
    }
    let g = gateway(
        ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"),
        unused(),
    )
    .await;
    let r = g
        .post(
            "/v1/messages",
            json!({"model": "gpt-4o", "max_tokens": 50, "stream": true,
                   "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let events = sse_events(&r.text().await.unwrap());
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "api_error");
    assert!(data["error"]["message"].is_string());
    assert_eq!(events[0].0, "message_start");
    assert!(!events.iter().any(|(e, _)| e == "message_stop"));
}

#[tokio::test]
async fn a_failure_before_the_stream_starts_is_an_ordinary_error_response() {
    let g = gateway(
        ResponseTemplate::new(500)
            .set_body_json(json!({"error": {"message": "The server had an error",
            "type": "server_error", "param": null, "code": null}})),
        unused(),
    )
    .await;
    let r = g
        .post(
            "/v1/messages",
            json!({"model": "gpt-4o", "max_tokens": 50, "stream": true,
                   "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 502);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "api_error");
    assert_eq!(v["error"]["attempts"][0]["provider"], "openai");
}
