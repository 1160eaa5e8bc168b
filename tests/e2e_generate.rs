//! Generation end to end through the `llm-local` binary, against local upstreams that
//! speak each provider's wire format, with faults injected: failover on 500s, 429s and
//! hangs; every provider down; budgets under a burst of concurrent requests; streams,
//! including a client that leaves midway; the cache. Usage entries are read back from
//! the server's own store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod local_support;

use local_support::{Client, Server, start_with_env, token};
use serde_json::{Value, json};
use shared::provider::Provider;
use shared::store::UsageStore;
use shared::store::sqlite::SqliteStore;
use shared::usage::UsageEntry;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OPENAI_KEY: &str = "sk-proj-GENOPENAIKEYMARKER-0123456789abcdefghijklmnop";
const ANTHROPIC_KEY: &str = "sk-ant-api03-GENANTHROPICMARKER-0123456789abcdefghijklmnop";

fn anthropic_body(input: u64, output: u64) -> Value {
    json!({"id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant",
           "model": "claude-3-5-sonnet-20241022",
           "content": [{"type": "text", "text": "SELECT * FROM cloudtrail WHERE errorcode IS NOT NULL"}],
           "stop_reason": "end_turn", "stop_sequence": null,
           "usage": {"input_tokens": input, "output_tokens": output}})
}

fn openai_error(status: u16) -> ResponseTemplate {
    let body = match status {
        429 => {
            json!({"error": {"message": "Rate limit reached for gpt-4-turbo", "type": "requests", "param": null, "code": "rate_limit_exceeded"}})
        }
        _ => {
            json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}})
        }
    };
    let t = ResponseTemplate::new(status).set_body_json(body);
    if status == 429 {
        t.insert_header("retry-after", "1")
    } else {
        t
    }
}

struct Gateway {
    /// Kept alive for the test; dropped (killed) at its end.
    _server: Server,
    data: PathBuf,
    log: PathBuf,
    client: Client,
    token: String,
    _tmp: tempfile::TempDir,
}

/// A gateway whose openai and anthropic point at the two mock servers, with user
/// `alice` holding both keys, openai first and anthropic as the fallback.
async fn gateway(
    openai: &MockServer,
    anthropic: &MockServer,
    prefs: Value,
    extra_env: &[(&str, &str)],
) -> Gateway {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let token = token(&data, "alice", false);
    let mut env = vec![
        ("LLM_PROVIDER_URL_OPENAI", format!("{}/v1", openai.uri())),
        ("LLM_PROVIDER_URL_ANTHROPIC", anthropic.uri()),
        ("LLM_PROVIDER_TIMEOUT_SECS", "1".to_string()),
        ("LLM_MAX_RETRIES", "1".to_string()),
        ("LLM_REQUESTS_PER_MINUTE", "100000".to_string()),
    ];
    for (k, v) in extra_env {
        env.push((k, v.to_string()));
    }
    let server = start_with_env(&data, &log, &env);
    let mut client = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        bodies: Vec::new(),
    };
    let mut preferences = json!({"defaultProvider": "openai", "fallbackProviders": ["anthropic"], "autoFailover": true});
    if let (Some(p), Some(extra)) = (preferences.as_object_mut(), prefs.as_object()) {
        p.extend(extra.clone());
    }
    let (s, v) = client
        .call(
            reqwest::Method::PUT,
            "/api/llm-settings/alice",
            Some(&token),
            Some(json!({
            "preferences": preferences,
            "apiKeys": {"openai": OPENAI_KEY, "anthropic": ANTHROPIC_KEY}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    Gateway {
        _server: server,
        data,
        log,
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

    /// The usage entries, once the background writer has written `expected` of them.
    async fn usage(&self, expected: usize) -> Vec<UsageEntry> {
        usage_entries(&self.data, "alice", expected).await
    }

    fn assert_no_key_logged(&self) {
        let text = std::fs::read_to_string(&self.log).unwrap();
        for marker in ["GENOPENAIKEYMARKER", "GENANTHROPICMARKER"] {
            assert!(!text.contains(marker), "a key reached the log");
            for b in &self.client.bodies {
                assert!(!b.contains(marker), "a key reached a response");
            }
        }
    }
}

async fn usage_entries(data: &Path, user: &str, expected: usize) -> Vec<UsageEntry> {
    let store = SqliteStore::open(&data.join("gateway.sqlite3")).unwrap();
    for _ in 0..100 {
        let (entries, _) = store
            .entries(user, "2000", "9999", 100_000, None)
            .await
            .unwrap();
        if entries.len() >= expected {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store
        .entries(user, "2000", "9999", 100_000, None)
        .await
        .unwrap()
        .0
}

async fn mocks(openai: ResponseTemplate, anthropic: ResponseTemplate) -> (MockServer, MockServer) {
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
    (o, a)
}

#[tokio::test]
async fn primary_500s_fail_over_to_the_fallback_with_exact_usage() {
    let (o, a) = mocks(
        openai_error(500),
        ResponseTemplate::new(200).set_body_json(anthropic_body(1500, 500)),
    )
    .await;
    let mut g = gateway(&o, &a, json!({}), &[]).await;
    let (s, v) = g
        .generate(
            json!({"prompt": "Show me failed login attempts", "operationType": "query_generation",
                                   "provider": "openai", "metadata": {"table": "cloudtrail"}}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["provider"], "anthropic");
    assert_eq!(v["model"], "claude-3-5-sonnet-20241022");
    assert_eq!(
        v["content"],
        "SELECT * FROM cloudtrail WHERE errorcode IS NOT NULL"
    );
    assert_eq!(v["cached"], false);
    assert_eq!(v["usage"]["input_tokens"], 1500);
    assert_eq!(v["usage"]["output_tokens"], 500);
    assert_eq!(v["usage"]["total_tokens"], 2000);
    assert_eq!(v["usage"]["cost_usd"], 0.012);
    let attempts = v["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "one try and one retry on openai: {v}");
    for at in attempts {
        assert_eq!(at["provider"], "openai");
        assert_eq!(at["error"], "server_error");
        assert!(at["latency_ms"].as_f64().is_some());
    }
    assert_eq!(o.received_requests().await.unwrap().len(), 2);

    let entries = g.usage(1).await;
    assert_eq!(entries.len(), 1, "exactly one usage entry per request");
    let e = &entries[0];
    assert_eq!(e.request_id, v["requestId"].as_str().unwrap());
    assert_eq!(e.status, shared::usage::UsageStatus::Success);
    assert_eq!(e.cost_usd, Some(shared::money::NanoUsd(12_000_000)));
    assert_eq!(e.operation_type, "query_generation");
    assert_eq!(e.metadata["table"], "cloudtrail");
    assert_eq!(e.price_version, shared::pricing::catalog().unwrap().version);
    // No budget is set, so nothing was reserved; the month's spend still counts the cost.
    let store = SqliteStore::open(&g.data.join("gateway.sqlite3")).unwrap();
    let month = shared::usage::month_of(chrono::Utc::now());
    let counters =
        shared::store::BudgetStore::month(&store, "alice", &month, chrono::Utc::now().timestamp())
            .await
            .unwrap();
    assert_eq!((counters.spent.0, counters.reserved.0), (12_000_000, 0));
    g.assert_no_key_logged();
}

#[tokio::test]
async fn primary_429_fails_over() {
    let (o, a) = mocks(
        openai_error(429),
        ResponseTemplate::new(200).set_body_json(anthropic_body(10, 5)),
    )
    .await;
    let mut g = gateway(&o, &a, json!({}), &[]).await;
    let (s, v) = g.generate(json!({"prompt": "hi"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["provider"], "anthropic");
    assert_eq!(v["attempts"][0]["error"], "rate_limited");
}

#[tokio::test]
async fn a_hanging_primary_times_out_and_fails_over() {
    let hang = ResponseTemplate::new(200).set_delay(Duration::from_secs(5));
    let (o, a) = mocks(
        hang,
        ResponseTemplate::new(200).set_body_json(anthropic_body(10, 5)),
    )
    .await;
    let mut g = gateway(&o, &a, json!({}), &[]).await;
    let (s, v) = g.generate(json!({"prompt": "hi"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["provider"], "anthropic");
    assert_eq!(v["attempts"][0]["error"], "timeout");
    assert!(v["attempts"][0]["latency_ms"].as_f64().unwrap() >= 900.0);
}

#[tokio::test]
async fn every_provider_down_is_a_502_with_attempts_and_an_error_entry() {
    let (o, a) = mocks(openai_error(500), ResponseTemplate::new(529).set_body_json(
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))).await;
    let mut g = gateway(&o, &a, json!({}), &[]).await;
    let (s, v) = g.generate(json!({"prompt": "hi"})).await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["error"]["code"], "provider_error");
    let attempts = v["error"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 4, "two tries on each provider: {v}");
    assert_eq!(attempts[3]["provider"], "anthropic");
    let entries = g.usage(1).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].status, shared::usage::UsageStatus::Error);
    assert_eq!(entries[0].error_type.as_deref(), Some("server_error"));
    assert_eq!(
        entries[0].request_id,
        v["error"]["requestId"].as_str().unwrap()
    );
    g.assert_no_key_logged();
}

#[tokio::test]
async fn every_provider_hanging_is_a_504() {
    let hang = || ResponseTemplate::new(200).set_delay(Duration::from_secs(5));
    let (o, a) = mocks(hang(), hang()).await;
    let mut g = gateway(&o, &a, json!({}), &[("LLM_MAX_RETRIES", "0")]).await;
    let (s, v) = g.generate(json!({"prompt": "hi"})).await;
    assert_eq!(s, 504, "{v}");
    assert_eq!(v["error"]["code"], "provider_timeout");
}

#[tokio::test]
async fn a_bad_request_is_not_failed_over_and_is_a_400() {
    let bad = ResponseTemplate::new(400).set_body_json(json!({"error": {"message": "This model's maximum context length is 128000 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}));
    let (o, a) = mocks(
        bad,
        ResponseTemplate::new(200).set_body_json(anthropic_body(1, 1)),
    )
    .await;
    let mut g = gateway(&o, &a, json!({}), &[]).await;
    let (s, v) = g.generate(json!({"prompt": "a very long prompt"})).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        a.received_requests().await.unwrap().is_empty(),
        "the fallback was not bothered"
    );
}

#[tokio::test]
async fn input_errors_name_the_field() {
    let (o, a) = mocks(openai_error(500), openai_error(500)).await;
    let mut g = gateway(&o, &a, json!({}), &[]).await;
    for (body, field) in [
        (json!({}), "prompt"),
        (
            json!({"prompt": "a", "messages": [{"role": "user", "content": "b"}]}),
            "prompt",
        ),
        (json!({"prompt": "a", "model": "gpt-17"}), "model"),
        (
            json!({"prompt": "a", "operationType": "poetry"}),
            "operationType",
        ),
        (json!({"prompt": "a", "temperature": 7}), "temperature"),
        (json!({"prompt": "a", "maxTokenz": 7}), "maxTokenz"),
        (
            json!({"messages": [{"role": "robot", "content": "b"}]}),
            "messages",
        ),
    ] {
        let (s, v) = g.generate(body.clone()).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().starts_with(field),
            "{body}: {v}"
        );
    }
}

#[tokio::test]
async fn identical_requests_at_temperature_zero_hit_the_cache() {
    let o = MockServer::start().await;
    let a = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_body(1500, 500)))
        .expect(2)
        .mount(&a)
        .await;
    let mut g = gateway(
        &o,
        &a,
        json!({"defaultProvider": "anthropic", "fallbackProviders": []}),
        &[],
    )
    .await;
    let body = json!({"prompt": "Show me failed login attempts", "temperature": 0.0});
    let (s, first) = g.generate(body.clone()).await;
    assert_eq!(
        (s, first["cached"].as_bool()),
        (200, Some(false)),
        "{first}"
    );
    let (s, second) = g.generate(body).await;
    assert_eq!(s, 200);
    assert_eq!(second["cached"], true);
    assert_eq!(second["content"], first["content"]);
    assert_eq!(second["usage"]["cost_usd"], 0.0);
    // Another temperature is not cached: it goes upstream (the second of two calls).
    let (s, third) = g
        .generate(json!({"prompt": "Show me failed login attempts", "temperature": 0.5}))
        .await;
    assert_eq!(
        (s, third["cached"].as_bool()),
        (200, Some(false)),
        "{third}"
    );
    let entries = g.usage(3).await;
    assert_eq!(entries.len(), 3);
    let statuses: Vec<_> = entries.iter().map(|e| e.status.as_str()).collect();
    assert!(
        statuses.contains(&"cached") && statuses.contains(&"success"),
        "{statuses:?}"
    );
    let cached = entries
        .iter()
        .find(|e| e.status.as_str() == "cached")
        .unwrap();
    assert_eq!(cached.cost_usd, Some(shared::money::NanoUsd(0)));
    assert_eq!(cached.request_id, second["requestId"].as_str().unwrap());
}

#[tokio::test]
async fn budget_holds_under_200_concurrent_requests() {
    // Each request reserves exactly what it then costs: 100 prompt bytes at $3/M plus
    // 100 output tokens at $15/M = $0.0018, so a $0.05 budget allows exactly 27.
    let o = MockServer::start().await;
    let a = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(anthropic_body(100, 100))
                .set_delay(Duration::from_millis(20)),
        )
        .mount(&a)
        .await;
    let g = gateway(&o, &a, json!({"defaultProvider": "anthropic", "fallbackProviders": [],
                                      "monthlyBudgetUsd": 0.05, "budgetAction": "block", "maxTokens": 100}), &[]).await;
    let prompt = "x".repeat(96);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let http = g.client.http.clone();
        let url = format!("{}/api/llm-generate/alice", g.client.base);
        let token = g.token.clone();
        let body = json!({"prompt": prompt, "cache": false});
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        let (status, v) = t.await.unwrap();
        match status {
            200 => ok += 1,
            402 => {
                assert_eq!(v["error"]["code"], "budget_exceeded");
                refused += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(ok, 27, "the budget allows exactly 27");
    assert_eq!(refused, 173);
    let entries = g.usage(200).await;
    assert_eq!(
        entries.len(),
        200,
        "every request, refused ones too, has one entry"
    );
    let spent: i64 = entries.iter().filter_map(|e| e.cost_usd).map(|c| c.0).sum();
    assert_eq!(spent, 27 * 1_800_000);
    assert!(spent <= 50_000_000, "spend never passes the limit");
    let store = SqliteStore::open(&g.data.join("gateway.sqlite3")).unwrap();
    let month = shared::usage::month_of(chrono::Utc::now());
    let counters =
        shared::store::BudgetStore::month(&store, "alice", &month, chrono::Utc::now().timestamp())
            .await
            .unwrap();
    assert_eq!(
        counters.spent.0, spent,
        "counters equal the sum of the usage entries"
    );
    assert_eq!(
        counters.reserved.0, 0,
        "every reservation settled or released"
    );
    // The 50% and 80% thresholds alerted once each: in the log and the audit store.
    let log = std::fs::read_to_string(&g.log).unwrap();
    assert_eq!(log.matches("budget threshold reached").count(), 2, "{log}");
    let q = shared::store::AuditQuery {
        action: Some("budget_alert".into()),
        start: "2000".into(),
        end: "9999".into(),
        limit: 100,
        ..Default::default()
    };
    let (audit, _) = shared::store::AuditStore::query(&store, &q).await.unwrap();
    let mut thresholds: Vec<i64> = audit
        .iter()
        .map(|e| e.after.as_ref().unwrap()["threshold"].as_i64().unwrap())
        .collect();
    thresholds.sort();
    assert_eq!(thresholds, vec![50, 80]);
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
            (!data.is_empty()).then(|| {
                (
                    event,
                    serde_json::from_str(&data).unwrap_or(Value::String(data)),
                )
            })
        })
        .collect()
}

const ANTHROPIC_STREAM: &str = "event: message_start\ndata: {\"type\": \"message_start\", \"message\": {\"id\": \"msg_1\", \"type\": \"message\", \"role\": \"assistant\", \"content\": [], \"model\": \"claude-3-5-sonnet-20241022\", \"stop_reason\": null, \"stop_sequence\": null, \"usage\": {\"input_tokens\": 25, \"output_tokens\": 1}}}\n\nevent: content_block_start\ndata: {\"type\": \"content_block_start\", \"index\": 0, \"content_block\": {\"type\": \"text\", \"text\": \"\"}}\n\nevent: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"Hello\"}}\n\nevent: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"!\"}}\n\nevent: content_block_stop\ndata: {\"type\": \"content_block_stop\", \"index\": 0}\n\nevent: message_delta\ndata: {\"type\": \"message_delta\", \"delta\": {\"stop_reason\": \"end_turn\", \"stop_sequence\":null}, \"usage\": {\"output_tokens\": 15}}\n\nevent: message_stop\ndata: {\"type\": \"message_stop\"}\n\n";

#[tokio::test]
async fn streaming_sends_deltas_then_usage_after_failing_over() {
    let o = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(openai_error(500))
        .mount(&o)
        .await;
    let a = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(ANTHROPIC_STREAM, "text/event-stream"),
        )
        .mount(&a)
        .await;
    let g = gateway(&o, &a, json!({}), &[]).await;
    let r = g
        .client
        .http
        .post(format!("{}/api/llm-generate/alice", g.client.base))
        .bearer_auth(&g.token)
        .json(&json!({"prompt": "hi", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse_events(&r.text().await.unwrap());
    let text: String = events
        .iter()
        .filter(|(e, _)| e == "delta")
        .map(|(_, d)| d["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Hello!");
    let (last, done) = events.last().unwrap();
    assert_eq!(last, "done");
    assert_eq!(done["provider"], "anthropic");
    assert_eq!(done["usage"]["input_tokens"], 25);
    assert_eq!(done["usage"]["output_tokens"], 15);
    assert_eq!(done["usage"]["cost_usd"], 0.0003);
    assert_eq!(done["attempts"][0]["error"], "server_error");
    let entries = g.usage(1).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].request_id, done["requestId"].as_str().unwrap());
    assert_eq!(
        entries[0].cost_usd,
        Some(shared::money::NanoUsd(25 * 3000 + 15 * 15000))
    );
}

/// An upstream that streams Anthropic events slowly over a raw socket, so that the
/// client can leave in the middle.
async fn slow_anthropic() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n").await;
                let mut events: Vec<String> = ANTHROPIC_STREAM
                    .split_inclusive("\n\n")
                    .map(str::to_owned)
                    .collect();
                // Many deltas, so the stream lasts about a second.
                let delta = events[2].clone();
                for _ in 0..20 {
                    events.insert(3, delta.clone());
                }
                for e in events {
                    let chunk = format!("{:x}\r\n{}\r\n", e.len(), e);
                    if sock.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
                let _ = sock.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_client_leaving_mid_stream_still_leaves_an_exact_usage_entry() {
    let o = MockServer::start().await;
    let slow = slow_anthropic().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let token = token(&data, "alice", false);
    let server = start_with_env(
        &data,
        &log,
        &[
            ("LLM_PROVIDER_URL_ANTHROPIC", slow),
            ("LLM_PROVIDER_URL_OPENAI", format!("{}/v1", o.uri())),
            ("LLM_REQUESTS_PER_MINUTE", "1000".into()),
        ],
    );
    let http = reqwest::Client::new();
    let r = http.put(format!("{}/api/llm-settings/alice", server.base)).bearer_auth(&token)
        .json(&json!({"preferences": {"defaultProvider": "anthropic"}, "apiKeys": {"anthropic": ANTHROPIC_KEY}}))
        .send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut r = http
        .post(format!("{}/api/llm-generate/alice", server.base))
        .bearer_auth(&token)
        .json(&json!({"prompt": "hi", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("delta"));
    drop(r); // the client leaves after its first delta
    let entries = usage_entries(&data, "alice", 1).await;
    assert_eq!(
        entries.len(),
        1,
        "the stream's usage is recorded after the client left"
    );
    let e = &entries[0];
    assert_eq!(e.input_tokens, 25);
    assert_eq!(
        e.output_tokens, 15,
        "the provider's own count, read after the client left"
    );
    assert_eq!(e.error_type.as_deref(), Some("client_disconnected"));
    drop(server);
}

fn openai_body(model: &str) -> Value {
    json!({"id": "chatcmpl-abc123", "object": "chat.completion", "created": 1677858242, "model": model,
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "cheap answer"}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 100, "completion_tokens": 100, "total_tokens": 200}})
}

#[tokio::test]
async fn downgrade_picks_the_cheapest_keyed_model_that_fits() {
    // $0.001 does not fit the primary's worst case ($0.0018 for Claude 3.5 Sonnet here),
    // so the request goes to the cheapest model among the providers alice has keys for.
    let catalog = shared::pricing::catalog().unwrap();
    let cheapest = catalog
        .models
        .iter()
        .filter(|m| matches!(m.provider, Provider::OpenAi | Provider::Anthropic))
        // Embedding models are cheaper still, but cannot answer a chat: never a downgrade.
        .filter(|m| !m.capabilities.iter().any(|c| c == "embeddings"))
        .min_by_key(|m| {
            (
                m.cost(&shared::pricing::TokenCounts {
                    input_tokens: 100,
                    output_tokens: 100,
                    ..Default::default()
                })
                .unwrap(),
                m.id.clone(),
            )
        })
        .unwrap();
    let o = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_body(&cheapest.id)))
        .mount(&o)
        .await;
    let a = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_body(100, 100)))
        .mount(&a)
        .await;
    let mut g = gateway(
        &o,
        &a,
        json!({"defaultProvider": "anthropic", "fallbackProviders": [], "maxTokens": 100,
                                      "monthlyBudgetUsd": 0.001, "budgetAction": "downgrade"}),
        &[],
    )
    .await;
    let (s, v) = g
        .generate(json!({"prompt": "x".repeat(96), "cache": false}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["model"], cheapest.id.as_str(), "{v}");
    assert_eq!(v["provider"], cheapest.provider.as_str());
    assert_eq!(
        v["attempts"][0]["error"], "budget_exceeded",
        "the primary was refused first"
    );
    assert!(
        a.received_requests().await.unwrap().is_empty(),
        "the primary was never called"
    );
}

#[tokio::test]
async fn alert_only_never_blocks_but_alerts() {
    let (o, a) = mocks(
        openai_error(500),
        ResponseTemplate::new(200).set_body_json(anthropic_body(100, 100)),
    )
    .await;
    let mut g = gateway(
        &o,
        &a,
        json!({"defaultProvider": "anthropic", "fallbackProviders": [], "maxTokens": 100,
                                      "monthlyBudgetUsd": 0.001, "budgetAction": "alert_only",
                                      "alertThresholds": [100]}),
        &[],
    )
    .await;
    for _ in 0..2 {
        let (s, v) = g
            .generate(json!({"prompt": "x".repeat(96), "cache": false}))
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["provider"], "anthropic");
    }
    let entries = g.usage(2).await;
    assert_eq!(entries.len(), 2);
    // Past 100 % of the budget: alerted exactly once this month.
    let mut alerts = 0;
    for _ in 0..50 {
        alerts = std::fs::read_to_string(&g.log)
            .unwrap()
            .matches("budget threshold reached")
            .count();
        if alerts > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(alerts, 1);
}

#[tokio::test]
async fn azure_requests_go_to_the_users_deployment() {
    use wiremock::matchers::{header, query_param};
    let azure = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/deployments/prod-4o-mini/chat/completions"))
        .and(query_param("api-version", "2024-10-21"))
        .and(header("api-key", "0123456789abcdef0123456789abcdef"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_body("gpt-4o-mini")))
        .expect(1)
        .mount(&azure)
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let token = token(&data, "alice", false);
    let server = start_with_env(
        &data,
        &tmp.path().join("log"),
        &[("LLM_PROVIDER_URL_AZURE_OPENAI", azure.uri())],
    );
    let mut c = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        bodies: Vec::new(),
    };
    let (s, v) = c
        .call(
            reqwest::Method::PUT,
            "/api/llm-settings/alice",
            Some(&token),
            Some(json!({
        "preferences": {"defaultProvider": "azure_openai", "azureResource": "contoso",
                        "azureDeployments": {"gpt-4o-mini": "prod-4o-mini"}},
        "apiKeys": {"azure_openai": "0123456789abcdef0123456789abcdef"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = c
        .call(
            reqwest::Method::POST,
            "/api/llm-generate/alice",
            Some(&token),
            Some(json!({"prompt": "hi", "model": "gpt-4o-mini", "provider": "azure_openai"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["provider"], "azure_openai");
    assert_eq!(v["content"], "cheap answer");
}

/// The nearest-rank percentile of the entries' provider latencies (cache hits are not
/// measured), as the upper bound of its latency bin: recomputed from the raw entries.
fn latency_bound(entries: &[UsageEntry], p: usize) -> Value {
    use shared::store::health::LATENCY_BOUNDS_MS;
    let mut ms: Vec<f64> = entries
        .iter()
        .filter(|e| e.status != shared::usage::UsageStatus::Cached)
        .map(|e| e.latency_ms)
        .collect();
    ms.sort_by(f64::total_cmp);
    let v = ms[(p * ms.len()).div_ceil(100) - 1];
    let bound = LATENCY_BOUNDS_MS.iter().find(|b| v <= f64::from(**b));
    json!(bound.unwrap_or(LATENCY_BOUNDS_MS.last().unwrap()))
}

#[tokio::test]
async fn provider_health_reports_what_was_sent() {
    use wiremock::matchers::body_string_contains;
    let o = MockServer::start().await;
    let a = MockServer::start().await;
    // Faults by prompt, over the answer every other prompt gets.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("upstream-500"))
        .respond_with(openai_error(500))
        .with_priority(1)
        .mount(&o)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("upstream-429"))
        .respond_with(openai_error(429))
        .with_priority(1)
        .mount(&o)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_body("gpt-4o")))
        .mount(&o)
        .await;
    // OpenAI only: no failover (no fallback providers would mean the registry's chain),
    // so every failure is openai's.
    let mut g = gateway(&o, &a, json!({"autoFailover": false}), &[]).await;
    let mut model = None;
    for i in 0..6 {
        let (s, v) = g.generate(json!({"prompt": format!("ok {i}")})).await;
        assert_eq!((s, v["cached"].as_bool()), (200, Some(false)), "{v}");
        model = v["model"].as_str().map(str::to_owned);
    }
    let (s, v) = g.generate(json!({"prompt": "ok 0"})).await;
    assert_eq!((s, v["cached"].as_bool()), (200, Some(true)), "{v}");
    for _ in 0..2 {
        let (s, v) = g.generate(json!({"prompt": "upstream-500"})).await;
        assert_eq!(s, 502, "the retry got a 500 too: {v}");
    }
    let (s, v) = g.generate(json!({"prompt": "upstream-429"})).await;
    assert_eq!(s, 429, "{v}");
    let entries = g.usage(10).await;
    assert_eq!(entries.len(), 10);
    // Upstream saw 6 answers and two tries of each failing request; not the cache hit.
    assert_eq!(o.received_requests().await.unwrap().len(), 6 + 2 * 3);

    let ops = token(&g.data, "ops", true);
    let path = "/api/admin/providers/health";
    let (s, v) = g
        .client
        .call(reqwest::Method::GET, path, Some(&ops), None)
        .await;
    assert_eq!(s, 200, "{v}");
    let model = format!("openai/{}", model.unwrap());
    for window in ["15m", "24h"] {
        let w = &v["windows"][window];
        assert_eq!(w["providers"].as_object().unwrap().len(), 1, "{w}");
        assert_eq!(w["models"].as_object().unwrap().len(), 1, "{w}");
        for view in [&w["providers"]["openai"], &w["models"][&model]] {
            assert_eq!(view["requests"], 10, "{window}: {view}");
            assert_eq!(
                view["success_rate"], 0.7,
                "6 answers and a cache hit: {view}"
            );
            assert_eq!(view["cache_hit_rate"], 0.1, "{view}");
            assert_eq!(
                view["errors"],
                json!({"server_error": 2, "rate_limited": 1}),
                "{view}"
            );
            assert_eq!(view["latency_p50_ms"], latency_bound(&entries, 50));
            assert_eq!(view["latency_p95_ms"], latency_bound(&entries, 95));
        }
    }
    let token = g.token.clone();
    let (s, _) = g
        .client
        .call(reqwest::Method::GET, path, Some(&token), None)
        .await;
    assert_eq!(s, 403, "not an admin");
    let (s, _) = g.client.call(reqwest::Method::GET, path, None, None).await;
    assert_eq!(s, 401, "no token");
}

/// Sampling parameters arrive at each provider under its own names; one Anthropic has
/// no field for is refused, or dropped and named when the caller allows it.
#[tokio::test]
async fn sampling_parameters_are_translated_refused_or_dropped() {
    use wiremock::matchers::body_partial_json;
    let o = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_partial_json(
            json!({"top_p": 0.5, "stop": ["END"], "seed": 7,
            "presence_penalty": 0.5, "frequency_penalty": -0.5}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_body("gpt-4o")))
        .expect(1)
        .mount(&o)
        .await;
    let a = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_partial_json(
            json!({"top_p": 0.25, "stop_sequences": ["END", "FIN"]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_body(10, 5)))
        .expect(2)
        .mount(&a)
        .await;
    let mut g = gateway(&o, &a, json!({"fallbackProviders": []}), &[]).await;
    let (s, v) = g
        .generate(
            json!({"prompt": "p", "provider": "openai", "topP": 0.5, "stop": "END",
            "seed": 7, "presencePenalty": 0.5, "frequencyPenalty": -0.5}),
        )
        .await;
    assert_eq!((s, v["provider"].as_str()), (200, Some("openai")), "{v}");

    let (s, v) = g
        .generate(json!({"prompt": "p", "provider": "anthropic", "topP": 0.25,
            "stop": ["END", "FIN"], "cache": false}))
        .await;
    assert_eq!((s, v["provider"].as_str()), (200, Some("anthropic")), "{v}");

    let anthropic_seed = json!({"prompt": "p", "provider": "anthropic", "topP": 0.25,
        "stop": ["END", "FIN"], "seed": 7, "cache": false});
    let (s, v) = g.generate(anthropic_seed.clone()).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "unsupported_parameter");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("seed") && message.contains("anthropic"),
        "{message}"
    );

    let resp = g
        .client
        .http
        .post(format!("{}/api/llm-generate/alice", g.client.base))
        .bearer_auth(&g.token)
        .header("x-gateway-drop-params", "true")
        .json(&anthropic_seed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()
            .get("x-gateway-dropped-params")
            .and_then(|v| v.to_str().ok()),
        Some("seed")
    );
    // Out of range is the caller's mistake, named by field.
    let (s, v) = g.generate(json!({"prompt": "p", "topP": 1.5})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("topP"));
}

/// Dollars of a JSON money field as nano-dollars (exact at these magnitudes).
fn nanos(v: &Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) * 1e9).round() as i64
}

#[tokio::test]
async fn insights_show_repeated_prompts_and_a_cheaper_enabled_model() {
    let o = MockServer::start().await;
    let a = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_body(1500, 500)))
        .expect(3)
        .mount(&a)
        .await;
    let mut g = gateway(
        &o,
        &a,
        json!({"defaultProvider": "anthropic", "fallbackProviders": [], "enableCaching": false}),
        &[],
    )
    .await;
    let prompt = "Show me failed logins PROMPTTEXTMARKER";
    for _ in 0..3 {
        // A client's own `prompt_hash` is replaced: the name is the gateway's.
        let (s, v) = g
            .generate(json!({"prompt": prompt, "temperature": 0.0,
                             "metadata": {"prompt_hash": "forged", "table": "t"}}))
            .await;
        assert_eq!((s, v["cached"].as_bool()), (200, Some(false)), "{v}");
    }
    let entries = g.usage(3).await;
    assert_eq!(entries.len(), 3);
    // The fingerprint: the same for the same request, 16 hex digits, no prompt text.
    let hashes: Vec<&str> = entries
        .iter()
        .map(|e| e.metadata["prompt_hash"].as_str().unwrap())
        .collect();
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
    assert_eq!(hashes[0].len(), 16);
    assert!(hashes[0].chars().all(|c| c.is_ascii_hexdigit()));
    for e in &entries {
        assert_eq!(
            e.metadata["table"], "t",
            "the client's other metadata is kept"
        );
        let text = serde_json::to_string(&e.metadata).unwrap();
        assert!(
            !text.contains("PROMPTTEXTMARKER") && !text.contains("failed"),
            "{text}"
        );
    }

    let token = g.token.clone();
    let (s, v) = g
        .client
        .call(
            reqwest::Method::GET,
            "/api/llm-usage/alice/insights",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["period"]["days"], 30);
    assert_eq!(v["truncated"], false);
    // Three calls of 1,500 input and 500 output tokens at $3 / $15: $0.012 each.
    assert_eq!(
        v["repeated_prompts"],
        json!({"repeated_requests": 2, "distinct_prompts": 1, "cost_usd": 0.024,
               "caching_enabled": false})
    );
    let f = &v["forecast"];
    assert_eq!(nanos(&f["spent_usd"]), 36_000_000, "{f}");
    assert_eq!(
        (f["limit_usd"].clone(), f["over_budget"].clone()),
        (Value::Null, json!(false))
    );
    // Today against the 7 zero days before it in the period: at least $0.01, so flagged.
    let anomalies = v["anomalies"].as_array().unwrap();
    assert_eq!(anomalies.len(), 1, "{v}");
    assert_eq!(nanos(&anomalies[0]["cost_usd"]), 36_000_000);
    assert_eq!(anomalies[0]["trailing_mean_usd"], 0.0);
    assert_eq!(
        anomalies[0]["date"].as_str(),
        v["period"]["end"].as_str().and_then(|e| e.get(..10))
    );

    // The cheapest seeded (so enabled) chat model with tools and vision, as Claude 3.5
    // Sonnet has, recomputed from the catalog: 4,500 input and 1,500 output tokens.
    let catalog = shared::pricing::catalog().unwrap();
    let tokens = shared::pricing::TokenCounts {
        input_tokens: 4_500,
        output_tokens: 1_500,
        ..Default::default()
    };
    let has = |m: &shared::pricing::ModelPrice, c: &str| m.capabilities.iter().any(|x| x == c);
    let (best, best_cost) = catalog
        .models
        .iter()
        .filter(|m| has(m, "tools") && has(m, "vision") && !has(m, "embeddings"))
        .filter(|m| !(m.input.is_zero() && m.output.is_zero()))
        .map(|m| (m, m.cost(&tokens).unwrap()))
        .min_by_key(|(m, c)| (*c, m.id.clone()))
        .unwrap();
    // 4,500 × $0.06 + 1,500 × $0.24 per 1M = $0.00063.
    assert_eq!(
        (best.provider, best.id.as_str(), best_cost.0),
        (Provider::Bedrock, "amazon.nova-lite-v1:0", 630_000)
    );
    let suggestions = v["cheaper_models"].as_array().unwrap();
    assert_eq!(suggestions.len(), 1, "{v}");
    let s0 = &suggestions[0];
    assert_eq!(s0["provider"], "anthropic");
    assert_eq!(s0["model"], "claude-3-5-sonnet-20241022");
    assert_eq!(
        (
            s0["requests"].clone(),
            s0["input_tokens"].clone(),
            s0["output_tokens"].clone()
        ),
        (json!(3), json!(4_500), json!(1_500))
    );
    assert_eq!(nanos(&s0["cost_usd"]), 36_000_000);
    assert_eq!(s0["alternative_provider"], "bedrock");
    assert_eq!(s0["alternative_model"], "amazon.nova-lite-v1:0");
    assert_eq!(nanos(&s0["alternative_cost_usd"]), 630_000);
    assert_eq!(nanos(&s0["saving_usd"]), 35_370_000);
    // Bedrock runs on the function's own role: no key to save first.
    assert_eq!(s0["needs_key"], false);

    // Who may ask, and what.
    let bob = token_for(&g, "bob");
    let (s, v) = g
        .client
        .call(
            reqwest::Method::GET,
            "/api/llm-usage/alice/insights",
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(s, 403, "{v}");
    // An admin sees alice's insights: the same repeats.
    let admin = admin_token(&g);
    let (s, v) = g
        .client
        .call(
            reqwest::Method::GET,
            "/api/llm-usage/alice/insights",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["repeated_prompts"]["repeated_requests"], 2);
    // Disabled, it is no longer suggested: the next cheapest is, Gemini 1.5 Flash at
    // $0.075 / $0.30: 4,500 × 0.075 + 1,500 × 0.30 = 787.5 per 1M tokens.
    let nova = shared::registry::seed::seed_id(Provider::Bedrock, "amazon.nova-lite-v1:0");
    let (s, v) = g
        .client
        .call(
            reqwest::Method::POST,
            &format!("/api/admin/llms/{nova}/toggle"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((s, v["enabled"].clone()), (200, json!(false)), "{v}");
    let (s, v) = g
        .client
        .call(
            reqwest::Method::GET,
            "/api/llm-usage/alice/insights",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let s0 = &v["cheaper_models"][0];
    assert_eq!(
        (
            s0["alternative_provider"].as_str(),
            s0["alternative_model"].as_str()
        ),
        (Some("google"), Some("gemini-1.5-flash")),
        "{v}"
    );
    assert_eq!(nanos(&s0["alternative_cost_usd"]), 787_500);
    assert_eq!(nanos(&s0["saving_usd"]), 36_000_000 - 787_500);
    // alice saved keys for openai and anthropic only.
    assert_eq!(s0["needs_key"], true);
    let (s, _) = g
        .client
        .call(
            reqwest::Method::GET,
            "/api/llm-usage/alice/insights",
            None,
            None,
        )
        .await;
    assert_eq!(s, 401);
    for (query, field) in [
        ("days=5", "days"),
        ("days=91", "days"),
        ("days=7.5", "days"),
        ("foo=1", "foo"),
    ] {
        let (s, v) = g
            .client
            .call(
                reqwest::Method::GET,
                &format!("/api/llm-usage/alice/insights?{query}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(s, 400, "{query}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{query}: {v}"
        );
    }
    let (s, v) = g
        .client
        .call(
            reqwest::Method::GET,
            "/api/llm-usage/alice/insights?days=7",
            Some(&token),
            None,
        )
        .await;
    assert_eq!((s, v["period"]["days"].clone()), (200, json!(7)), "{v}");
    g.assert_no_key_logged();
}

fn token_for(g: &Gateway, user: &str) -> String {
    token(&g.data, user, false)
}

fn admin_token(g: &Gateway) -> String {
    token(&g.data, "root", true)
}
