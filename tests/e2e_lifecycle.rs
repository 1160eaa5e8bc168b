//! The request lifecycle of SPEC.md ("Request lifecycle"), each guarantee tried by
//! really cutting, hanging or killing something, against the built `llm-local` on
//! 127.0.0.1: clients that give up, an upstream that hangs or redirects, the process
//! killed under load or stopped with work in flight, one user's failing key, a hanging
//! budget webhook, tiny budgets, file permissions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod local_support;

use local_support::{Server, start_with_env, token};
use serde_json::{Value, json};
use shared::store::sqlite::SqliteStore;
use shared::store::{BudgetStore, UsageStore};
use shared::usage::{UsageEntry, UsageStatus};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ANTHROPIC_KEY: &str = "sk-ant-api03-LIFECYCLEKEYMARKER-0123456789abcdefghijklmnop";
const BOB_KEY: &str = "sk-ant-api03-BOBSOWNKEYMARKER-0123456789abcdefghijklmnopqr";

/// 100 input and 100 output tokens of Claude 3.5 Sonnet: $0.0018.
fn anthropic_body() -> Value {
    json!({"id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant",
           "model": "claude-3-5-sonnet-20241022",
           "content": [{"type": "text", "text": "SELECT 1"}],
           "stop_reason": "end_turn", "stop_sequence": null,
           "usage": {"input_tokens": 100, "output_tokens": 100}})
}

struct Gateway {
    server: Option<Server>,
    data: PathBuf,
    log: PathBuf,
    env: Vec<(&'static str, String)>,
    http: reqwest::Client,
    token: String,
    _tmp: tempfile::TempDir,
}

impl Gateway {
    /// `alice` with an Anthropic key and `prefs`, Anthropic pointed at `upstream`.
    async fn start(upstream: &str, prefs: Value, extra: &[(&'static str, &str)]) -> Gateway {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let log = tmp.path().join("server.log");
        let token = token(&data, "alice", false);
        let mut env = vec![
            ("LLM_PROVIDER_URL_ANTHROPIC", upstream.to_owned()),
            ("LLM_REQUESTS_PER_MINUTE", "100000".to_owned()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let server = start_with_env(&data, &log, &env);
        let g = Gateway {
            server: Some(server),
            data,
            log,
            env,
            http: reqwest::Client::new(),
            token,
            _tmp: tmp,
        };
        let mut preferences = json!({"defaultProvider": "anthropic", "fallbackProviders": [],
                                     "maxTokens": 100});
        preferences
            .as_object_mut()
            .unwrap()
            .extend(prefs.as_object().unwrap().clone());
        let (s, v) = g
            .put_settings(
                json!({"preferences": preferences, "apiKeys": {"anthropic": ANTHROPIC_KEY}}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        g
    }

    fn base(&self) -> String {
        self.server.as_ref().unwrap().base.clone()
    }

    fn pid(&self) -> u32 {
        self.server.as_ref().unwrap().child.id()
    }

    async fn put_settings(&self, body: Value) -> (u16, Value) {
        let r = self
            .http
            .put(format!("{}/api/llm-settings/alice", self.base()))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn generate(&self, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/api/llm-generate/alice", self.base()))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, route: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{route}", self.base()))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.data.join("gateway.sqlite3")).unwrap()
    }

    async fn entries(&self) -> Vec<UsageEntry> {
        self.store()
            .entries("alice", "2000", "9999", 1_000_000, None)
            .await
            .unwrap()
            .0
    }

    /// Kills the server with SIGKILL (by its own PID), or stops it with SIGTERM and
    /// returns how long it took to exit.
    fn kill(&mut self) {
        let mut server = self.server.take().unwrap();
        server.child.kill().unwrap();
        server.child.wait().unwrap();
    }

    fn terminate(&mut self) -> (Duration, std::process::ExitStatus) {
        let mut server = self.server.take().unwrap();
        let started = Instant::now();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &server.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                return (started.elapsed(), status);
            }
            assert!(
                started.elapsed() < Duration::from_secs(40),
                "still running after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn restart(&mut self) {
        assert!(self.server.is_none());
        self.server = Some(start_with_env(&self.data, &self.log, &self.env));
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

async fn anthropic(template: ResponseTemplate) -> MockServer {
    let a = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(template)
        .mount(&a)
        .await;
    a
}

fn month() -> String {
    shared::usage::month_of(chrono::Utc::now())
}

#[tokio::test]
async fn abandoned_requests_are_recorded_and_settled_and_never_block_the_budget() {
    // Each call costs $0.0018 and reserves 100 + 4 prompt bytes + 100 output tokens of
    // worst case; a $0.03 budget would be exhausted by leaked reservations after ~15.
    let a = anthropic(
        ResponseTemplate::new(200)
            .set_body_json(anthropic_body())
            .set_delay(Duration::from_millis(1500)),
    )
    .await;
    let g = Gateway::start(
        &a.uri(),
        json!({"monthlyBudgetUsd": 0.03, "budgetAction": "block"}),
        &[],
    )
    .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    for _ in 0..3 {
        let r = impatient
            .post(format!("{}/api/llm-generate/alice", g.base()))
            .bearer_auth(&g.token)
            .json(&json!({"prompt": "x".repeat(96), "cache": false}))
            .send()
            .await;
        assert!(r.is_err(), "the client gave up before the answer");
    }
    // The generations went on without their clients: each is recorded and settled.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut entries = g.entries().await;
    while entries.len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        entries = g.entries().await;
    }
    assert_eq!(entries.len(), 3, "one entry per abandoned request");
    for e in &entries {
        assert_eq!(e.status, UsageStatus::Success);
        assert_eq!(e.cost_usd.map(|c| c.0), Some(1_800_000));
    }
    let budget = g.get("/api/llm-usage/alice/budget").await;
    assert_eq!(budget["reserved_usd"], 0.0, "{budget}");
    assert_eq!(budget["spent_usd"], 0.0054, "{budget}");
    let (s, v) = g.generate(json!({"prompt": "again", "cache": false})).await;
    assert_eq!(s, 200, "the budget still has room: {v}");
    assert_eq!(a.received_requests().await.unwrap().len(), 4);
}

#[tokio::test]
async fn a_hung_upstream_answers_504_within_the_deadline_and_is_not_retried() {
    let a = anthropic(
        ResponseTemplate::new(200)
            .set_body_json(anthropic_body())
            .set_delay(Duration::from_secs(30)),
    )
    .await;
    let g = Gateway::start(
        &a.uri(),
        json!({"monthlyBudgetUsd": 5.0}),
        &[
            ("LLM_REQUEST_DEADLINE_SECS", "3"),
            ("LLM_MAX_RETRIES", "2"),
            ("LLM_PROVIDER_TIMEOUT_SECS", "25"),
        ],
    )
    .await;
    let started = Instant::now();
    let (s, v) = g.generate(json!({"prompt": "hi", "cache": false})).await;
    let took = started.elapsed();
    assert_eq!(s, 504, "{v}");
    assert_eq!(v["error"]["code"], "provider_timeout");
    assert!(
        took < Duration::from_secs(3),
        "answered in {took:?}, deadline 3 s"
    );
    assert!(
        took > Duration::from_millis(1500),
        "the attempt had the deadline's time: {took:?}"
    );
    let attempts = v["error"]["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.len(),
        1,
        "a timed-out generation is not sent again: {v}"
    );
    assert_eq!(attempts[0]["error"], "timeout");
    assert_eq!(a.received_requests().await.unwrap().len(), 1);
    // Durable before answered: the entry is there the moment the answer is.
    let entries = g.entries().await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].error_type.as_deref(), Some("timeout"));
    assert_eq!(
        entries[0].request_id,
        v["error"]["requestId"].as_str().unwrap()
    );
    let budget = g.get("/api/llm-usage/alice/budget").await;
    assert_eq!(budget["reserved_usd"], 0.0, "{budget}");
}

#[tokio::test]
async fn upstream_redirects_are_never_followed() {
    // A second host that records whatever reaches it: it must see nothing.
    let elsewhere = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_body()))
        .mount(&elsewhere)
        .await;
    let redirecting = MockServer::start().await;
    for status in [307u16, 308] {
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .respond_with(
                ResponseTemplate::new(status)
                    .insert_header("location", format!("{}/v1/messages", elsewhere.uri())),
            )
            .up_to_n_times(3)
            .mount(&redirecting)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/v1/models", elsewhere.uri())),
        )
        .mount(&redirecting)
        .await;
    let g = Gateway::start(&redirecting.uri(), json!({}), &[("LLM_MAX_RETRIES", "0")]).await;
    let (s, v) = g
        .generate(json!({"prompt": "secret prompt", "cache": false}))
        .await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["error"]["code"], "provider_error");
    let (s, v) = g
        .generate(json!({"prompt": "secret prompt", "stream": true, "cache": false}))
        .await;
    assert_eq!(s, 502, "{v}");
    let r = g
        .http
        .post(format!("{}/api/llm-settings/alice/test", g.base()))
        .bearer_auth(&g.token)
        .json(&json!({"provider": "anthropic"}))
        .send()
        .await
        .unwrap();
    let test: Value = r.json().await.unwrap();
    assert_eq!(test["success"], false, "{test}");
    assert!(
        elsewhere.received_requests().await.unwrap().is_empty(),
        "the redirect target received the key or the prompt"
    );
    assert!(!g.log_text().contains("LIFECYCLEKEYMARKER"));
}

#[tokio::test]
async fn a_sigkill_under_load_loses_no_answered_request_and_no_reservation() {
    let a = anthropic(
        ResponseTemplate::new(200)
            .set_body_json(anthropic_body())
            .set_delay(Duration::from_millis(5)),
    )
    .await;
    let mut g = Gateway::start(
        &a.uri(),
        json!({"monthlyBudgetUsd": 1000.0}),
        &[
            ("LLM_REQUEST_DEADLINE_SECS", "2"),
            ("LLM_RESERVATION_LEASE_SECS", "7"),
        ],
    )
    .await;
    let (base, token) = (g.base(), g.token.clone());
    let stop = Instant::now() + Duration::from_secs(3);
    let mut clients = Vec::new();
    for _ in 0..32 {
        let (http, base, token) = (reqwest::Client::new(), base.clone(), token.clone());
        clients.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            // Bounded: at most 400 requests per client, and it stops when the server dies.
            for _ in 0..400 {
                let r = http
                    .post(format!("{base}/api/llm-generate/alice"))
                    .bearer_auth(&token)
                    .json(&json!({"prompt": "load", "cache": false}))
                    .send()
                    .await;
                let Ok(r) = r else { break };
                if r.status() != 200 {
                    continue;
                }
                let Ok(v) = r.json::<Value>().await else {
                    break;
                };
                answered.push(v["requestId"].as_str().unwrap().to_owned());
                if Instant::now() > stop + Duration::from_secs(5) {
                    break;
                }
            }
            answered
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    g.kill();
    let mut answered = Vec::new();
    for c in clients {
        answered.extend(c.await.unwrap());
    }
    assert!(
        answered.len() > 200,
        "the load ran: {} answered",
        answered.len()
    );
    let recorded: std::collections::HashSet<String> = g
        .entries()
        .await
        .into_iter()
        .map(|e| e.request_id)
        .collect();
    let lost: Vec<&String> = answered
        .iter()
        .filter(|id| !recorded.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered requests have no usage entry after SIGKILL",
        lost.len(),
        answered.len()
    );
    // Requests in flight at the kill held reservations; after a restart and the end of
    // their lease they no longer count.
    g.restart();
    // The lease is the deadline (2 s) plus the 5 s minimum margin.
    let until = Instant::now() + Duration::from_secs(12);
    let mut budget = g.get("/api/llm-usage/alice/budget").await;
    while budget["reserved_usd"] != 0.0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        budget = g.get("/api/llm-usage/alice/budget").await;
    }
    assert_eq!(budget["reserved_usd"], 0.0, "{budget}");
    let store = g.store();
    let counters = store
        .month("alice", &month(), chrono::Utc::now().timestamp())
        .await
        .unwrap();
    let entries = g.entries().await;
    let spent: i64 = entries.iter().filter_map(|e| e.cost_usd).map(|c| c.0).sum();
    assert_eq!(
        counters.spent.0, spent,
        "counters equal the sum of the entries"
    );
    let (s, _) = g.generate(json!({"prompt": "after", "cache": false})).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn sigterm_lets_an_abandoned_generation_finish_and_record() {
    let a = anthropic(
        ResponseTemplate::new(200)
            .set_body_json(anthropic_body())
            .set_delay(Duration::from_millis(1500)),
    )
    .await;
    let mut g = Gateway::start(&a.uri(), json!({"monthlyBudgetUsd": 1.0}), &[]).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let r = impatient
        .post(format!("{}/api/llm-generate/alice", g.base()))
        .bearer_auth(&g.token)
        .json(&json!({"prompt": "x", "cache": false}))
        .send()
        .await;
    assert!(r.is_err());
    let (took, status) = g.terminate();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(20), "shutdown took {took:?}");
    let entries = g.entries().await;
    assert_eq!(
        entries.len(),
        1,
        "the generation in flight was recorded before exit"
    );
    assert_eq!(entries[0].status, UsageStatus::Success);
    let counters = g
        .store()
        .month("alice", &month(), chrono::Utc::now().timestamp())
        .await
        .unwrap();
    assert_eq!((counters.spent.0, counters.reserved.0), (1_800_000, 0));
}

#[tokio::test]
async fn one_users_failing_key_never_opens_a_circuit_for_another_user() {
    let a = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", ANTHROPIC_KEY))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}),
        ))
        .mount(&a)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", BOB_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_body()))
        .mount(&a)
        .await;
    let g = Gateway::start(&a.uri(), json!({}), &[("LLM_MAX_RETRIES", "0")]).await;
    // Alice's key fails until her circuit opens (five provider failures in a row).
    let mut opened = false;
    for _ in 0..8 {
        let (s, v) = g.generate(json!({"prompt": "hi", "cache": false})).await;
        assert_eq!(s, 502, "{v}");
        if v["error"]["attempts"][0]["error"] == "circuit_open" {
            opened = true;
            break;
        }
    }
    assert!(opened, "alice's circuit opened");
    // Bob, same provider, his own key: served at once.
    let bob = token(&g.data, "bob", false);
    let r = g
        .http
        .put(format!("{}/api/llm-settings/bob", g.base()))
        .bearer_auth(&bob)
        .json(&json!({"preferences": {"defaultProvider": "anthropic"}, "apiKeys": {"anthropic": BOB_KEY}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = g
        .http
        .post(format!("{}/api/llm-generate/bob", g.base()))
        .bearer_auth(&bob)
        .json(&json!({"prompt": "hi", "cache": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["attempts"], json!([]), "no circuit_open for bob: {v}");
}

#[tokio::test]
async fn a_hanging_budget_webhook_never_stalls_the_usage_writer() {
    let a = anthropic(ResponseTemplate::new(200).set_body_json(anthropic_body())).await;
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&hook)
        .await;
    let hook_url = hook.uri();
    let g = Gateway::start(
        &a.uri(),
        json!({"monthlyBudgetUsd": 0.01, "alertThresholds": [1, 2, 3, 50]}),
        &[("LLM_BUDGET_WEBHOOK_URL", &hook_url)],
    )
    .await;
    for i in 0..4 {
        let started = Instant::now();
        let (s, v) = g
            .generate(json!({"prompt": format!("p{i}"), "cache": false}))
            .await;
        assert_eq!(s, 200, "{v}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "request {i} waited for the webhook: {:?}",
            started.elapsed()
        );
    }
    assert_eq!(g.entries().await.len(), 4);
    assert!(
        !hook.received_requests().await.unwrap().is_empty(),
        "alerts were posted"
    );
}

#[tokio::test]
async fn a_positive_budget_below_a_nano_dollar_is_refused() {
    let a = anthropic(ResponseTemplate::new(200).set_body_json(anthropic_body())).await;
    let g = Gateway::start(&a.uri(), json!({"monthlyBudgetUsd": 5.0}), &[]).await;
    for tiny in ["1e-400", "1e-10", "0.0000000001"] {
        let body = format!(r#"{{"preferences": {{"monthlyBudgetUsd": {tiny}}}}}"#);
        let r = g
            .http
            .put(format!("{}/api/llm-settings/alice", g.base()))
            .bearer_auth(&g.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{tiny}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("monthlyBudgetUsd"),
            "{v}"
        );
    }
    let settings = g.get("/api/llm-settings/alice").await;
    assert_eq!(
        settings["preferences"]["monthlyBudgetUsd"], 5.0,
        "unchanged"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn data_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let a = anthropic(ResponseTemplate::new(200).set_body_json(anthropic_body())).await;
    let g = Gateway::start(&a.uri(), json!({}), &[]).await;
    let (s, _) = g.generate(json!({"prompt": "hi"})).await;
    assert_eq!(s, 200);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&g.data), 0o700, "data dir");
    let mut files = 0;
    for entry in std::fs::read_dir(&g.data).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            files += 1;
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
    assert!(files >= 3, "database, its WAL and the master key at least");
    let _ = g.pid();
}
