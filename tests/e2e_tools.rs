//! Tools, images and structured output through `POST /api/llm-generate` of the
//! `llm-local` binary, against a local upstream speaking OpenAI's wire format: what the
//! provider receives, what the caller gets back (`toolCalls`, `finishReason`, streamed
//! `toolCall` events), the cache telling tool sets apart, and refusals for a model whose
//! catalog entry lacks the capability.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod local_support;

use local_support::{Client, Server, start_with_env, token};
use serde_json::{Value, json};
use shared::store::UsageStore;
use shared::store::sqlite::SqliteStore;
use shared::usage::UsageEntry;
use std::path::PathBuf;
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OPENAI_KEY: &str = "sk-proj-TOOLSOPENAIKEYMARKER-0123456789abcdefghijklmnop";
const GOOGLE_KEY: &str = "AIzaSyTOOLSGOOGLEKEYMARKER0123456789abc";
const ANTHROPIC_KEY: &str = "sk-ant-api03-TOOLSANTHROPICMARKER-0123456789abcdefghijklmnop";

/// OpenAI's function-calling guide: an answer that calls `get_weather`.
fn tool_answer() -> Value {
    json!({"id": "chatcmpl-abc123", "object": "chat.completion", "created": 1699896916,
           "model": "gpt-4o-mini-2024-07-18",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
               "tool_calls": [{"id": "call_abc123", "type": "function",
                   "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
               "logprobs": null, "finish_reason": "tool_calls"}],
           "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99}})
}

fn text_answer(text: &str) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 30, "completion_tokens": 8, "total_tokens": 38}})
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}})
}

struct Gateway {
    _server: Server,
    data: PathBuf,
    client: Client,
    token: String,
    _tmp: tempfile::TempDir,
}

async fn gateway(openai: &MockServer) -> Gateway {
    // Nothing listens at port 9: a request reaching Anthropic or Google would fail.
    gateway_at(
        &format!("{}/v1", openai.uri()),
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
    )
    .await
}

/// A gateway whose OpenAI, Anthropic and Google base URLs are these, with alice holding
/// a key for each.
async fn gateway_at(openai: &str, anthropic: &str, google: &str) -> Gateway {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let token = token(&data, "alice", false);
    let env = [
        ("LLM_PROVIDER_URL_OPENAI", openai.to_string()),
        ("LLM_PROVIDER_URL_ANTHROPIC", anthropic.to_string()),
        ("LLM_PROVIDER_URL_GOOGLE", google.to_string()),
        ("LLM_PROVIDER_TIMEOUT_SECS", "2".to_string()),
        ("LLM_REQUESTS_PER_MINUTE", "100000".to_string()),
    ];
    let server = start_with_env(&data, &tmp.path().join("server.log"), &env);
    let mut client = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        bodies: Vec::new(),
    };
    let (s, v) = client
        .call(
            reqwest::Method::PUT,
            "/api/llm-settings/alice",
            Some(&token),
            Some(
                json!({"preferences": {"defaultProvider": "openai", "autoFailover": false},
                        "apiKeys": {"openai": OPENAI_KEY, "google": GOOGLE_KEY,
                                    "anthropic": ANTHROPIC_KEY}}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    Gateway {
        _server: server,
        data,
        client,
        token,
        _tmp: tmp,
    }
}

impl Gateway {
    async fn generate(&mut self, body: Value) -> (u16, Value) {
        let token = self.token.clone();
        self.client
            .call(
                reqwest::Method::POST,
                "/api/llm-generate/alice",
                Some(&token),
                Some(body),
            )
            .await
    }

    async fn usage(&self, expected: usize) -> Vec<UsageEntry> {
        let store = SqliteStore::open(&self.data.join("gateway.sqlite3")).unwrap();
        for _ in 0..100 {
            let (entries, _) = store
                .entries("alice", "2000", "9999", 1000, None)
                .await
                .unwrap();
            if entries.len() >= expected {
                return entries;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fewer than {expected} usage entries");
    }
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

async fn openai_answering(answer: Value) -> MockServer {
    let o = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&o)
        .await;
    o
}

#[tokio::test]
async fn a_tool_call_and_its_result_round_trip_with_usage() {
    let o = openai_answering(tool_answer()).await;
    let mut g = gateway(&o).await;
    let (s, v) = g
        .generate(json!({
            "prompt": "What is the weather in Paris?", "model": "gpt-4o-mini",
            "tools": [weather_tool()], "toolChoice": "required", "parallelToolCalls": false
        }))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["finishReason"], "tool_calls");
    assert_eq!(v["content"], "");
    assert_eq!(
        v["toolCalls"],
        json!([{"id": "call_abc123", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}])
    );
    assert_eq!(v["usage"]["total_tokens"], 99);
    let sent = bodies(&o).await;
    assert_eq!(sent[0]["tools"], json!([weather_tool()]));
    assert_eq!(sent[0]["tool_choice"], "required");
    assert_eq!(sent[0]["parallel_tool_calls"], false);

    // The result goes back; the history reaches the provider in its own shape.
    o.reset().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(text_answer("18C in Paris.")))
        .mount(&o)
        .await;
    let (s, v) = g
        .generate(json!({
            "model": "gpt-4o-mini", "tools": [weather_tool()],
            "messages": [
                {"role": "user", "content": "What is the weather in Paris?"},
                {"role": "assistant", "toolCalls": v["toolCalls"]},
                {"role": "tool", "toolCallId": "call_abc123", "content": "18C"}
            ]
        }))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["content"], "18C in Paris.");
    assert_eq!(v["finishReason"], "stop");
    assert!(v.get("toolCalls").is_none(), "{v}");
    let sent = bodies(&o).await;
    assert_eq!(
        sent[0]["messages"][1],
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_abc123",
            "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]})
    );
    assert_eq!(
        sent[0]["messages"][2],
        json!({"role": "tool", "tool_call_id": "call_abc123", "content": "18C"})
    );

    // One entry each, priced from the provider's counts.
    let entries = g.usage(2).await;
    assert_eq!(entries.len(), 2);
    assert!(
        entries
            .iter()
            .any(|e| e.input_tokens == 82 && e.output_tokens == 17)
    );
    assert!(entries.iter().all(|e| e.cost_usd.is_some_and(|c| c.0 > 0)));
}

#[tokio::test]
async fn a_streamed_call_arrives_as_tool_call_events() {
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let body = [
        chunk(
            json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                   "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        format!(
            "data: {}\n\ndata: [DONE]\n\n",
            json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                   "choices": [], "usage": {"prompt_tokens": 60, "completion_tokens": 18, "total_tokens": 78}})
        ),
    ]
    .concat();
    let o = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .mount(&o)
        .await;
    let g = gateway(&o).await;
    let resp = g
        .client
        .http
        .post(format!("{}/api/llm-generate/alice", g.client.base))
        .bearer_auth(&g.token)
        .json(
            &json!({"prompt": "weather?", "model": "gpt-4o", "stream": true,
                      "tools": [weather_tool()]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let events: Vec<(String, Value)> = text
        .split("\n\n")
        .filter_map(|block| {
            let event = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((event.to_owned(), serde_json::from_str(data).unwrap()))
        })
        .collect();
    let calls: Vec<&Value> = events
        .iter()
        .filter(|(e, _)| e == "toolCall")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(calls.len(), 3, "{text}");
    assert_eq!(calls[0]["id"], "call_9");
    assert_eq!(calls[0]["name"], "get_weather");
    let arguments: String = calls
        .iter()
        .map(|c| c["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, "{\"city\":\"Paris\"}");
    let (last, done) = events.last().unwrap();
    assert_eq!(last, "done");
    assert_eq!(done["finishReason"], "tool_calls");
    assert_eq!(done["usage"]["total_tokens"], 78);
    let entries = g.usage(1).await;
    assert_eq!(
        (entries[0].input_tokens, entries[0].output_tokens),
        (60, 18)
    );
}

#[tokio::test]
async fn the_cache_tells_tool_sets_apart_and_keeps_the_calls() {
    let o = openai_answering(tool_answer()).await;
    let mut g = gateway(&o).await;
    let ask = |tools: Value| json!({"prompt": "weather?", "model": "gpt-4o-mini", "temperature": 0.0, "tools": tools});
    let (s, first) = g.generate(ask(json!([weather_tool()]))).await;
    assert_eq!(
        (s, first["cached"].as_bool()),
        (200, Some(false)),
        "{first}"
    );
    let (_, again) = g.generate(ask(json!([weather_tool()]))).await;
    assert_eq!(again["cached"], true, "{again}");
    assert_eq!(again["toolCalls"], first["toolCalls"]);
    assert_eq!(again["finishReason"], "tool_calls");
    let mut other = weather_tool();
    other["function"]["description"] = json!("Weather, in Fahrenheit");
    let (_, changed) = g.generate(ask(json!([other]))).await;
    assert_eq!(
        changed["cached"], false,
        "a different tool is a different request"
    );
    assert_eq!(bodies(&o).await.len(), 2);
}

#[tokio::test]
async fn a_model_without_the_capability_is_refused_by_name_before_any_call() {
    let o = openai_answering(text_answer("x")).await;
    let mut g = gateway(&o).await;
    // gemini-pro's catalog entry has no `tools`; gpt-4's has no `vision`.
    let (s, v) = g
        .generate(json!({"prompt": "weather?", "model": "gemini-pro", "tools": [weather_tool()]}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("unsupported_parameter")),
        "{v}"
    );
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("tools") && message.contains("google"),
        "{message}"
    );
    let image = json!({"model": "gpt-4", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]});
    let (s, v) = g.generate(image.clone()).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("unsupported_parameter")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("image_url")
    );
    assert!(bodies(&o).await.is_empty(), "nothing was sent");

    // Asked to, the gateway drops the image and says so.
    let resp = g
        .client
        .http
        .post(format!("{}/api/llm-generate/alice", g.client.base))
        .bearer_auth(&g.token)
        .header("x-gateway-drop-params", "true")
        .json(&image)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("x-gateway-dropped-params").unwrap(),
        "image_url"
    );
    assert_eq!(
        bodies(&o).await[0]["messages"][0]["content"],
        "What is this?"
    );

    // A stream names what it dropped too: the header leaves before the first delta.
    o.reset().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"A cat\"},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n",
            "text/event-stream",
        ))
        .mount(&o)
        .await;
    let mut streamed = image.clone();
    streamed["stream"] = json!(true);
    let resp = g
        .client
        .http
        .post(format!("{}/api/llm-generate/alice", g.client.base))
        .bearer_auth(&g.token)
        .header("x-gateway-drop-params", "true")
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("x-gateway-dropped-params").unwrap(),
        "image_url"
    );
    assert!(resp.text().await.unwrap().contains("A cat"));
}

#[tokio::test]
async fn bad_tool_fields_are_400s_naming_the_field() {
    let o = openai_answering(text_answer("x")).await;
    let mut g = gateway(&o).await;
    for (body, field) in [
        (
            json!({"prompt": "x", "toolChoice": {"type": "function", "function": {"name": "nope"}},
                   "tools": [weather_tool()]}),
            "toolChoice.function.name",
        ),
        (
            json!({"prompt": "x", "tools": [{"type": "function", "function": {"name": "bad name"}}]}),
            "tools[0].function.name",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"},
                                {"role": "tool", "content": "18C"}]}),
            "messages[1].tool_call_id",
        ),
        (
            json!({"prompt": "x", "responseFormat": {"type": "json_schema",
                   "json_schema": {"name": "w"}}}),
            "responseFormat.json_schema.schema",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url",
                   "image_url": {"url": "http://example.com/a.png"}}]}]}),
            "messages[0].content[0].image_url.url",
        ),
    ] {
        let (s, v) = g.generate(body.clone()).await;
        assert_eq!(s, 400, "{body} -> {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{field} not named in {message}");
    }
    assert!(bodies(&o).await.is_empty());
}

#[tokio::test]
async fn a_json_schema_answer_is_requested_and_returned() {
    let o = openai_answering(text_answer(r#"{"city":"Paris","celsius":18}"#)).await;
    let mut g = gateway(&o).await;
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"},
        "celsius": {"type": "number"}}, "required": ["city", "celsius"],
        "additionalProperties": false});
    let (s, v) = g
        .generate(
            json!({"prompt": "Paris, 18 degrees", "model": "gpt-4o-mini",
            "responseFormat": {"type": "json_schema",
                "json_schema": {"name": "weather", "schema": schema, "strict": true}}}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let answer: Value = serde_json::from_str(v["content"].as_str().unwrap()).unwrap();
    assert_eq!(answer["city"], "Paris");
    assert_eq!(
        bodies(&o).await[0]["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "weather", "schema": schema, "strict": true}})
    );
}

/// The OpenAI face's request for a second turn: the user asked (with an image), the
/// assistant called `get_weather`, the tool answered.
fn second_turn(model: &str) -> Value {
    json!({"model": model, "tools": [weather_tool()], "tool_choice": "required",
    "messages": [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": [
            {"type": "text", "text": "Weather here?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"}
    ]})
}

async fn chat_completion(g: &mut Gateway, body: Value) -> (u16, Value) {
    let token = g.token.clone();
    g.client
        .call(
            reqwest::Method::POST,
            "/v1/chat/completions",
            Some(&token),
            Some(body),
        )
        .await
}

#[tokio::test]
async fn the_openai_face_speaks_tools_to_an_anthropic_model() {
    // Anthropic's tool-use guide: a `tool_use` answer.
    let a = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant",
            "model": "claude-3-5-sonnet-20241022",
            "content": [
                {"type": "text", "text": "<thinking>I need the weather tool.</thinking>"},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9",
                 "name": "get_weather", "input": {"city": "Lyon"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 472, "output_tokens": 91}})))
        .mount(&a)
        .await;
    let mut g = gateway_at("http://127.0.0.1:9", &a.uri(), "http://127.0.0.1:9").await;
    let (s, v) = chat_completion(&mut g, second_turn("claude-3-5-sonnet-20241022")).await;
    assert_eq!(s, 200, "{v}");
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(
        choice["message"]["tool_calls"][0]["id"],
        "toolu_01A09q90qw90lq917835lq9"
    );
    let args: Value = serde_json::from_str(
        choice["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args, json!({"city": "Lyon"}));
    let sent = &bodies(&a).await[0];
    assert_eq!(sent["system"], "You are a weather bot.");
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_eq!(
        sent["tools"][0]["input_schema"],
        weather_tool()["function"]["parameters"]
    );
    assert_eq!(sent["tool_choice"], json!({"type": "any"}));
    let m = &sent["messages"];
    assert_eq!(m[0]["content"][1]["type"], "image");
    assert_eq!(m[0]["content"][1]["source"]["media_type"], "image/png");
    assert_eq!(
        m[1]["content"],
        json!([{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}])
    );
    assert_eq!(m[2]["role"], "user");
    assert_eq!(m[2]["content"][0]["type"], "tool_result");
    assert_eq!(m[2]["content"][0]["tool_use_id"], "call_1");
    let entries = g.usage(1).await;
    assert_eq!(
        (entries[0].input_tokens, entries[0].output_tokens),
        (472, 91)
    );
}

#[tokio::test]
async fn the_openai_face_speaks_tools_to_a_gemini_model() {
    let gm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-1.5-pro:generateContent"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Lyon"}}}]},
                "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 12,
                              "totalTokenCount": 132},
            "modelVersion": "gemini-1.5-pro-002"})))
        .mount(&gm)
        .await;
    let mut g = gateway_at("http://127.0.0.1:9", "http://127.0.0.1:9", &gm.uri()).await;
    let (s, v) = chat_completion(&mut g, second_turn("gemini-1.5-pro")).await;
    assert_eq!(s, 200, "{v}");
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert!(
        !call["id"].as_str().unwrap().is_empty(),
        "a call id, even if Gemini gives none"
    );
    let sent = &bodies(&gm).await[0];
    assert_eq!(
        sent["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );
    assert_eq!(sent["toolConfig"]["functionCallingConfig"]["mode"], "ANY");
    let contents = &sent["contents"];
    assert_eq!(
        contents[0]["parts"][1]["inlineData"]["mimeType"],
        "image/png"
    );
    assert_eq!(
        contents[1]["parts"][0]["functionCall"],
        json!({"name": "get_weather", "args": {"city": "Paris"}})
    );
    assert_eq!(contents[2]["role"], "user");
    assert_eq!(
        contents[2]["parts"][0]["functionResponse"]["name"],
        "get_weather"
    );
    let entries = g.usage(1).await;
    assert_eq!(
        (entries[0].input_tokens, entries[0].output_tokens),
        (120, 12)
    );
}
