//! Rate-limit-aware failover end to end through the `llm-local` binary: an upstream that
//! says its key has no requests left (headers) or must wait (a 429's `retry-after`) is
//! skipped, without a call, until its reset; the attempt is listed as `rate_limited`
//! with no latency, the fallback answers, and after the reset the upstream is used again.
//! When every candidate is skipped, the client gets a 429 with `Retry-After`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod local_support;

use local_support::{Client, Server, start_with_env, token};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OPENAI_KEY: &str = "sk-proj-RLOPENAIKEYMARKER-0123456789abcdefghijklmnop";
const ANTHROPIC_KEY: &str = "sk-ant-api03-RLANTHROPICMARKER-0123456789abcdefghijklmnop";

fn openai_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1677858242, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "from openai"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}))
}

fn anthropic_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant",
        "model": "claude-3-5-sonnet-20241022", "content": [{"type": "text", "text": "from claude"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5}}))
}

struct Gateway {
    _server: Server,
    client: Client,
    token: String,
    _tmp: tempfile::TempDir,
}

/// `alice` holds keys for both, openai first, anthropic as the fallback.
async fn gateway(openai: &MockServer, anthropic: &MockServer) -> Gateway {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let token = token(&data, "alice", false);
    let env = vec![
        ("LLM_PROVIDER_URL_OPENAI", format!("{}/v1", openai.uri())),
        ("LLM_PROVIDER_URL_ANTHROPIC", anthropic.uri()),
        ("LLM_PROVIDER_TIMEOUT_SECS", "2".to_string()),
        ("LLM_REQUESTS_PER_MINUTE", "100000".to_string()),
    ];
    let server = start_with_env(&data, &log, &env);
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
            Some(json!({
                "preferences": {"defaultProvider": "openai", "fallbackProviders": ["anthropic"],
                                "autoFailover": true, "enableCaching": false},
                "apiKeys": {"openai": OPENAI_KEY, "anthropic": ANTHROPIC_KEY}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    Gateway {
        _server: server,
        client,
        token,
        _tmp: tmp,
    }
}

impl Gateway {
    async fn generate(&mut self) -> (u16, Value) {
        let token = self.token.clone();
        self.client
            .call(
                reqwest::Method::POST,
                "/api/llm-generate/alice",
                Some(&token),
                Some(json!({"prompt": "hello"})),
            )
            .await
    }

    fn assert_no_key_sent_back(&self) {
        for b in &self.client.bodies {
            assert!(!b.contains("RLOPENAIKEYMARKER") && !b.contains("RLANTHROPICMARKER"));
        }
    }
}

async fn mock(server: &MockServer, route: &str, answer: ResponseTemplate, times: u64) {
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(answer)
        .up_to_n_times(times)
        .expect(times)
        .mount(server)
        .await;
}

fn skipped(v: &Value, provider: &str) {
    let attempts = v["attempts"].as_array().unwrap();
    let a = attempts
        .iter()
        .find(|a| a["provider"] == provider)
        .unwrap_or_else(|| panic!("no {provider} attempt: {v}"));
    assert_eq!(a["error"], "rate_limited", "{v}");
    assert_eq!(a["latency_ms"].as_f64(), Some(0.0), "not called: {v}");
}

#[tokio::test]
async fn no_requests_left_skips_the_provider_until_its_reset() {
    let (o, a) = (MockServer::start().await, MockServer::start().await);
    // The first answer says no requests remain for 2 s; the next (after the reset) is
    // an ordinary one. `expect` proves nothing else reached openai.
    let exhausted = openai_ok()
        .insert_header("x-ratelimit-limit-requests", "60")
        .insert_header("x-ratelimit-remaining-requests", "0")
        .insert_header("x-ratelimit-reset-requests", "2s")
        .insert_header("x-ratelimit-remaining-tokens", "149984")
        .insert_header("x-ratelimit-reset-tokens", "6m0s");
    mock(&o, "/v1/chat/completions", exhausted, 1).await;
    let mut g = gateway(&o, &a).await;
    let (s, v) = g.generate().await;
    let told = Instant::now();
    assert_eq!((s, &v["provider"]), (200, &json!("openai")), "{v}");
    mock(&o, "/v1/chat/completions", openai_ok(), 1).await;
    mock(&a, "/v1/messages", anthropic_ok(), 1).await;

    let (s, v) = g.generate().await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["provider"], "anthropic");
    assert_eq!(v["content"], "from claude");
    skipped(&v, "openai");
    assert_eq!(v["attempts"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(
        o.received_requests().await.unwrap().len(),
        1,
        "openai not called"
    );

    tokio::time::sleep(Duration::from_millis(2100).saturating_sub(told.elapsed())).await;
    let (s, v) = g.generate().await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["provider"], "openai", "used again after the reset: {v}");
    assert_eq!(v["attempts"], json!([]), "{v}");
    o.verify().await;
    a.verify().await;
    g.assert_no_key_sent_back();
}

#[tokio::test]
async fn a_429_with_retry_after_is_not_called_again_before_it() {
    let (o, a) = (MockServer::start().await, MockServer::start().await);
    let limited = ResponseTemplate::new(429)
        .set_body_json(
            json!({"error": {"message": "Rate limit reached for gpt-4o", "type": "requests",
                                         "param": null, "code": "rate_limit_exceeded"}}),
        )
        .insert_header("retry-after", "20");
    // Once only: a wait longer than any retry's fails over at once.
    mock(&o, "/v1/chat/completions", limited, 1).await;
    mock(&a, "/v1/messages", anthropic_ok(), 2).await;
    let mut g = gateway(&o, &a).await;
    let (s, v) = g.generate().await;
    assert_eq!((s, &v["provider"]), (200, &json!("anthropic")), "{v}");
    assert_eq!(v["attempts"].as_array().unwrap().len(), 1, "no retry: {v}");
    assert_eq!(v["attempts"][0]["error"], "rate_limited");

    let (s, v) = g.generate().await;
    assert_eq!((s, &v["provider"]), (200, &json!("anthropic")), "{v}");
    skipped(&v, "openai");
    o.verify().await;
    a.verify().await;
}

#[tokio::test]
async fn every_candidate_rate_limited_is_a_429_until_the_first_reset() {
    let (o, a) = (MockServer::start().await, MockServer::start().await);
    let openai_out = openai_ok()
        .insert_header("x-ratelimit-remaining-requests", "0")
        .insert_header("x-ratelimit-reset-requests", "20s");
    mock(&o, "/v1/chat/completions", openai_out, 1).await;
    let reset = chrono::Utc::now() + chrono::TimeDelta::seconds(40);
    let anthropic_out = anthropic_ok()
        .insert_header("anthropic-ratelimit-requests-remaining", "0")
        .insert_header(
            "anthropic-ratelimit-requests-reset",
            reset
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                .as_str(),
        );
    mock(&a, "/v1/messages", anthropic_out, 1).await;
    let mut g = gateway(&o, &a).await;
    assert_eq!(g.generate().await.1["provider"], "openai");
    let (s, v) = g.generate().await;
    assert_eq!((s, &v["provider"]), (200, &json!("anthropic")), "{v}");

    let resp = reqwest::Client::new()
        .post(format!("{}/api/llm-generate/alice", g.client.base))
        .bearer_auth(&g.token)
        .json(&json!({"prompt": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (17..=20).contains(&wait),
        "the first reset, openai's: {wait}"
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited", "{v}");
    skipped(&v["error"], "openai");
    skipped(&v["error"], "anthropic");
    o.verify().await;
    a.verify().await;
}
