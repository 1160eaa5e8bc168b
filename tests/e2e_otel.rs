//! OpenTelemetry traces end to end through the `llm-local` binary: with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a loopback collector, a generation that
//! fails over (OpenAI 500, then Anthropic) is exported over OTLP/HTTP JSON as one trace:
//! the `request` span (route template, method, status, request id) and, under it, one
//! `upstream` span per attempt (provider, model, the failure's class on the failed one).
//! No key, user id or prompt is in any span. Without the variable nothing is exported.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod local_support;

use local_support::{Server, start_with_env, token};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OPENAI_KEY: &str = "sk-proj-OTELOPENAIMARKER-0123456789abcdefghijklmnopqrstuv";
const ANTHROPIC_KEY: &str = "sk-ant-api03-OTELANTHROPICMARKER-0123456789abcdefghijk";
const PROMPT: &str = "otel-prompt-marker: count failed logins";

async fn upstreams() -> (MockServer, MockServer) {
    let openai = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"error": {"message": "The server had an error", "type": "server_error", "param": null, "code": null}}),
        ))
        .mount(&openai)
        .await;
    let anthropic = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msg_01", "type": "message", "role": "assistant",
            "model": "claude-3-5-sonnet-20241022",
            "content": [{"type": "text", "text": "SELECT 1"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 3}})))
        .mount(&anthropic)
        .await;
    (openai, anthropic)
}

fn serve(
    data: &std::path::Path,
    log: &std::path::Path,
    openai: &MockServer,
    anthropic: &MockServer,
    extra: &[(&str, String)],
) -> Server {
    let mut env = vec![
        ("LLM_PROVIDER_URL_OPENAI", format!("{}/v1", openai.uri())),
        ("LLM_PROVIDER_URL_ANTHROPIC", anthropic.uri()),
        ("LLM_MAX_RETRIES", "0".to_string()),
    ];
    env.extend(extra.iter().cloned());
    start_with_env(data, log, &env)
}

/// Saves alice's keys and preferences, then runs one generation that fails over.
async fn failover(base: &str, alice: &str) -> Value {
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{base}/api/llm-settings/alice"))
        .bearer_auth(alice)
        .json(&json!({"preferences": {"defaultProvider": "openai",
                                      "fallbackProviders": ["anthropic"], "autoFailover": true},
                      "apiKeys": {"openai": OPENAI_KEY, "anthropic": ANTHROPIC_KEY}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = http
        .post(format!("{base}/api/llm-generate/alice"))
        .bearer_auth(alice)
        .json(&json!({"prompt": PROMPT, "cache": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

/// Every span of every export the collector received.
async fn spans(collector: &MockServer) -> Vec<Value> {
    let mut out = Vec::new();
    for req in collector.received_requests().await.unwrap_or_default() {
        assert_eq!(req.url.path(), "/v1/traces");
        let body: Value = serde_json::from_slice(&req.body).expect("OTLP/HTTP JSON");
        for rs in body["resourceSpans"].as_array().unwrap() {
            let service = rs["resource"]["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == "service.name")
                .map(|a| a["value"]["stringValue"].clone());
            assert_eq!(service, Some(json!("llm-local")));
            for ss in rs["scopeSpans"].as_array().unwrap() {
                out.extend(ss["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    out
}

/// A span's attributes as key -> JSON value (`stringValue`, `intValue`, ...).
fn attributes(span: &Value) -> BTreeMap<String, Value> {
    span["attributes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|kv| {
                    let v = kv["value"].as_object().unwrap().values().next().unwrap();
                    (kv["key"].as_str().unwrap().to_owned(), v.clone())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_failover_is_one_trace_with_a_span_per_attempt() {
    let (openai, anthropic) = upstreams().await;
    let collector = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/traces"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&collector)
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let (data, log) = (tmp.path().join("data"), tmp.path().join("server.log"));
    let alice = token(&data, "alice", false);
    let srv = serve(
        &data,
        &log,
        &openai,
        &anthropic,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.uri()),
            // Export every 100 ms instead of every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
        ],
    );
    let answer = failover(&srv.base, &alice).await;
    assert_eq!(answer["provider"], "anthropic", "{answer}");
    let request_id = answer["requestId"].as_str().unwrap().to_owned();

    // The generate request's span and its two attempts, once exported.
    let started = Instant::now();
    let (request, attempts) = loop {
        let all = spans(&collector).await;
        let request = all
            .iter()
            .find(|s| attributes(s).get("request_id") == Some(&json!(request_id)));
        if let Some(request) = request {
            let trace = request["traceId"].clone();
            let attempts: Vec<Value> = all
                .iter()
                .filter(|s| s["name"] == "upstream" && s["traceId"] == trace)
                .cloned()
                .collect();
            if attempts.len() == 2 {
                // Nothing in any export names a key, a user or the prompt.
                let text = serde_json::to_string(&all).unwrap();
                for secret in [
                    "OTELOPENAIMARKER",
                    "OTELANTHROPICMARKER",
                    "alice",
                    "otel-prompt-marker",
                    "llmk_",
                ] {
                    assert!(!text.contains(secret), "{secret} in an exported span");
                }
                break (request.clone(), attempts);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no complete trace exported; spans: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    assert_eq!(request["name"], "POST /api/llm-generate/{user_id}");
    let a = attributes(&request);
    assert_eq!(a["http.route"], json!("/api/llm-generate/{user_id}"));
    assert_eq!(a["http.request.method"], json!("POST"));
    assert_eq!(
        a["http.response.status_code"].to_string().trim_matches('"'),
        "200"
    );
    // Each attempt is a child of the request span: the generation's own task carries
    // the request's span.
    for attempt in &attempts {
        assert_eq!(attempt["parentSpanId"], request["spanId"], "{attempt}");
    }
    let mut by_provider: BTreeMap<String, BTreeMap<String, Value>> = attempts
        .iter()
        .map(|s| {
            let a = attributes(s);
            (a["gen_ai.system"].as_str().unwrap().to_owned(), a)
        })
        .collect();
    let failed = by_provider.remove("openai").expect("an openai attempt");
    assert_eq!(
        failed.get("error.type"),
        Some(&json!("server_error")),
        "{failed:?}"
    );
    let answered = by_provider
        .remove("anthropic")
        .expect("an anthropic attempt");
    assert_eq!(answered.get("error.type"), None, "{answered:?}");
    assert_eq!(
        answered["gen_ai.request.model"],
        json!("claude-3-5-sonnet-20241022")
    );
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_exported() {
    let (openai, anthropic) = upstreams().await;
    // No exporter is built at all, so none logs an export attempt or failure.
    let tmp = tempfile::tempdir().unwrap();
    let (data, log) = (tmp.path().join("data"), tmp.path().join("server.log"));
    let alice = token(&data, "alice", false);
    let srv = serve(&data, &log, &openai, &anthropic, &[]);
    let answer = failover(&srv.base, &alice).await;
    assert_eq!(answer["provider"], "anthropic", "{answer}");
    drop(srv);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains("opentelemetry"), "{logged}");
}
