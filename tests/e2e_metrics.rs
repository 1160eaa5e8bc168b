//! `GET /metrics` end to end through the `llm-local` binary: after a failover (an
//! upstream 500, then the fallback), a plain success, a cache hit and a 402 budget
//! refusal, the exposition shows exactly those counts; the latency histogram is
//! cumulative and its `_count` is the number of requests; no key or user id appears in
//! it. `LLM_METRICS=off` removes the route.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod local_support;

use local_support::{Client, Server, start_with_env, token};
use serde_json::{Value, json};
use std::path::Path;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OPENAI_KEY: &str = "sk-proj-METRICSOPENAIMARKER-0123456789abcdefghijklmnop";
const ANTHROPIC_KEY: &str = "sk-ant-api03-METRICSANTHROPICMARKER-0123456789abcdefghijk";
const GENERATE_ROUTE: &str = "/api/llm-generate/{user_id}";

fn openai_body() -> Value {
    json!({"id": "chatcmpl-9", "object": "chat.completion", "created": 1_733_000_000u64,
           "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "stop",
           "message": {"role": "assistant", "content": "SELECT 1"}}],
           "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}})
}

fn anthropic_body() -> Value {
    json!({"id": "msg_01", "type": "message", "role": "assistant",
           "model": "claude-3-5-sonnet-20241022",
           "content": [{"type": "text", "text": "SELECT 2"}],
           "stop_reason": "end_turn", "stop_sequence": null,
           "usage": {"input_tokens": 12, "output_tokens": 3}})
}

fn server(
    data: &Path,
    log: &Path,
    openai: &MockServer,
    anthropic: &MockServer,
    extra: &[(&str, &str)],
) -> Server {
    let mut env = vec![
        ("LLM_PROVIDER_URL_OPENAI", format!("{}/v1", openai.uri())),
        ("LLM_PROVIDER_URL_ANTHROPIC", anthropic.uri()),
        ("LLM_PROVIDER_TIMEOUT_SECS", "2".to_string()),
        // One attempt per provider: the 500 fails over instead of being retried.
        ("LLM_MAX_RETRIES", "0".to_string()),
        ("LLM_REQUESTS_PER_MINUTE", "100000".to_string()),
    ];
    for (k, v) in extra {
        env.push((k, v.to_string()));
    }
    start_with_env(data, log, &env)
}

async fn save_settings(client: &mut Client, user: &str, token: &str, prefs: Value) {
    let (s, v) = client
        .call(
            reqwest::Method::PUT,
            &format!("/api/llm-settings/{user}"),
            Some(token),
            Some(json!({"preferences": prefs,
                        "apiKeys": {"openai": OPENAI_KEY, "anthropic": ANTHROPIC_KEY}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

/// The value of the one sample line that is exactly `series`.
fn sample(text: &str, series: &str) -> u64 {
    let found: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .collect();
    assert_eq!(found.len(), 1, "{series} in\n{text}");
    found[0].parse().unwrap()
}

#[tokio::test]
async fn metrics_count_failover_success_cache_hit_and_budget_refusal() {
    let openai = MockServer::start().await;
    // The first call fails; every later one answers.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"error": {"message": "The server had an error", "type": "server_error", "param": null, "code": null}}),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&openai)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_body()))
        .with_priority(2)
        .mount(&openai)
        .await;
    let anthropic = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_body()))
        .expect(1)
        .mount(&anthropic)
        .await;

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let alice = token(&data, "alice", false);
    let bob = token(&data, "bob", false);
    let srv = server(&data, &log, &openai, &anthropic, &[]);
    let mut client = Client {
        http: reqwest::Client::new(),
        base: srv.base.clone(),
        bodies: Vec::new(),
    };
    save_settings(&mut client, "alice", &alice,
        json!({"defaultProvider": "openai", "fallbackProviders": ["anthropic"], "autoFailover": true})).await;
    // A budget far below any request's worst case: refused before any provider.
    save_settings(
        &mut client,
        "bob",
        &bob,
        json!({"defaultProvider": "openai", "monthlyBudgetUsd": 0.000001, "budgetAction": "block"}),
    )
    .await;

    let generate = |user: &'static str, token: String, body: Value| {
        let http = client.http.clone();
        let base = srv.base.clone();
        async move {
            let r = http
                .post(format!("{base}/api/llm-generate/{user}"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    // 1. openai 500, failover to anthropic.
    let (s, v) = generate(
        "alice",
        alice.clone(),
        json!({"prompt": "failed logins", "cache": false}),
    )
    .await;
    assert_eq!((s, v["provider"].as_str()), (200, Some("anthropic")), "{v}");
    // 2. openai answers (and the answer is cached); 3. the same request is a cache hit.
    let cached = json!({"prompt": "count users", "temperature": 0.0});
    let (s, v) = generate("alice", alice.clone(), cached.clone()).await;
    assert_eq!((s, v["cached"].as_bool()), (200, Some(false)), "{v}");
    let (s, v) = generate("alice", alice.clone(), cached).await;
    assert_eq!((s, v["cached"].as_bool()), (200, Some(true)), "{v}");
    // 4. bob is over budget.
    let (s, v) = generate(
        "bob",
        bob.clone(),
        json!({"prompt": "anything", "cache": false}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (402, Some("budget_exceeded")),
        "{v}"
    );

    let r = client
        .http
        .get(format!("{}/metrics", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();

    let g = format!("route=\"{GENERATE_ROUTE}\",method=\"POST\"");
    assert_eq!(
        sample(
            &text,
            &format!("llm_http_requests_total{{{g},status=\"200\"}}")
        ),
        3
    );
    assert_eq!(
        sample(
            &text,
            &format!("llm_http_requests_total{{{g},status=\"402\"}}")
        ),
        1
    );
    assert_eq!(
        sample(
            &text,
            "llm_http_requests_total{route=\"/api/llm-settings/{user_id}\",method=\"PUT\",status=\"200\"}"
        ),
        2
    );
    assert_eq!(
        sample(
            &text,
            "llm_upstream_attempts_total{provider=\"openai\",outcome=\"server_error\"}"
        ),
        1
    );
    assert_eq!(
        sample(
            &text,
            "llm_upstream_attempts_total{provider=\"openai\",outcome=\"success\"}"
        ),
        1
    );
    assert_eq!(
        sample(
            &text,
            "llm_upstream_attempts_total{provider=\"anthropic\",outcome=\"success\"}"
        ),
        1
    );
    assert_eq!(
        sample(
            &text,
            "llm_upstream_errors_total{provider=\"openai\",class=\"server_error\"}"
        ),
        1
    );
    assert!(
        !text.contains("llm_upstream_errors_total{provider=\"anthropic\""),
        "{text}"
    );
    assert_eq!(
        sample(&text, "llm_refusals_total{reason=\"budget_exceeded\"}"),
        1
    );
    assert_eq!(sample(&text, "llm_cache_hits_total"), 1);
    // Three answers of alice's and bob's refusal: one usage entry each.
    assert_eq!(
        sample(&text, "llm_usage_records_total{result=\"recorded\"}"),
        4
    );
    assert_eq!(sample(&text, "llm_generations_in_flight"), 0);
    assert_eq!(sample(&text, "llm_usage_queue_depth"), 0);

    // The histogram: cumulative buckets, +Inf and _count equal to the requests.
    let prefix = format!("llm_http_request_duration_seconds_bucket{{{g},le=\"");
    let buckets: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|rest| rest.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(buckets.len(), 13, "{text}");
    assert!(
        buckets.windows(2).all(|w| w[0] <= w[1]),
        "not cumulative: {buckets:?}"
    );
    assert_eq!(buckets.last(), Some(&4));
    assert_eq!(
        sample(
            &text,
            &format!("llm_http_request_duration_seconds_count{{{g}}}")
        ),
        4
    );

    for secret in [
        "METRICSOPENAIMARKER",
        "METRICSANTHROPICMARKER",
        "alice",
        "bob",
        "llmk_",
        "count users",
    ] {
        assert!(!text.contains(secret), "{secret} in the exposition");
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        !logged.contains("METRICSOPENAIMARKER"),
        "a key reached the log"
    );
}

#[tokio::test]
async fn metrics_off_serves_no_route() {
    let (openai, anthropic) = (MockServer::start().await, MockServer::start().await);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let _ = token(&data, "alice", false);
    let srv = server(&data, &log, &openai, &anthropic, &[("LLM_METRICS", "off")]);
    let r = reqwest::get(format!("{}/metrics", srv.base)).await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let health = reqwest::get(format!("{}/health", srv.base)).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
}
