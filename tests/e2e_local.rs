//! End to end over a socket: the built `llm-local` binary is spawned on a free loopback
//! port, tokens are created with its CLI, and the settings journey is run with a real
//! HTTP client. Afterwards every response body, every log line and the data directory
//! itself are searched for the saved key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

mod local_support;

use local_support::{BIN, Client, start_with_env, token};

const KEY: &str = "sk-ant-api03-E2ESECRETMARKER-0123456789abcdefghijklmnopqrstuvwxyzQ9Zk";

fn read_all_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            all.extend(std::fs::read(path).unwrap());
        }
    }
    all
}

#[tokio::test]
async fn settings_journey_over_a_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let alice = token(&data, "alice", false);
    let bob = token(&data, "bob", false);
    let admin = token(&data, "ops", true);

    // The access log is at debug (nothing per request above it); turned on here so that
    // every line a request can produce is checked for secrets below.
    let access_log = [("RUST_LOG", "info,access=debug".to_owned())];
    let server = start_with_env(&data, &log, &access_log);
    let mut c = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        bodies: Vec::new(),
    };
    use reqwest::Method as M;

    let (s, v) = c.call(M::GET, "/health", None, None).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));

    let (s, v) = c
        .call(M::GET, "/api/llm-settings/alice", Some(&alice), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["hasApiKeys"]["anthropic"], false);

    let (s, v) = c
        .call(M::PUT, "/api/llm-settings/alice", Some(&alice), Some(json!({
            "preferences": {"defaultProvider": "anthropic", "maxTokens": 1024, "monthlyBudgetUsd": 50},
            "apiKeys": {"anthropic": KEY}
        })))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["hasApiKeys"]["anthropic"], true);
    assert_eq!(v["keyHints"]["anthropic"], "…Q9Zk");

    // The second user can neither read, write nor delete the first user's settings.
    let (s, _) = c
        .call(M::GET, "/api/llm-settings/alice", Some(&bob), None)
        .await;
    assert_eq!(s, 403);
    let (s, _) = c
        .call(
            M::PUT,
            "/api/llm-settings/alice",
            Some(&bob),
            Some(json!({"apiKeys": {"anthropic": null}})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = c
        .call(
            M::DELETE,
            "/api/llm-settings/alice/keys/anthropic",
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = c.call(M::GET, "/api/llm-settings/alice", None, None).await;
    assert_eq!(s, 401);

    // An admin can read it, and sees only the hint too.
    let (s, v) = c
        .call(M::GET, "/api/llm-settings/alice", Some(&admin), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["preferences"]["maxTokens"], 1024);
    assert_eq!(v["keyHints"]["anthropic"], "…Q9Zk");

    // Bad input: 400 naming the field, never a 5xx.
    let (s, v) = c
        .call(
            M::PUT,
            "/api/llm-settings/alice",
            Some(&alice),
            Some(json!({"preferences": {"maxTokens": "x"}})),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("preferences.maxTokens")
    );

    let (s, v) = c.call(M::GET, "/api/llm-models", Some(&alice), None).await;
    assert_eq!(s, 200);
    assert!(!v["models"].as_array().unwrap().is_empty());

    // The key survives a restart (the master key file is reused), then is deleted.
    drop(server);
    let server = start_with_env(&data, &log.with_extension("2.log"), &access_log);
    c.base = server.base.clone();
    let (s, v) = c
        .call(M::GET, "/api/llm-settings/alice", Some(&alice), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["hasApiKeys"]["anthropic"], true);
    let (s, _) = c
        .call(
            M::DELETE,
            "/api/llm-settings/alice/keys/anthropic",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (_, v) = c
        .call(M::GET, "/api/llm-settings/alice", Some(&alice), None)
        .await;
    assert_eq!(v["hasApiKeys"]["anthropic"], false);
    drop(server);

    // The key never came back, was never logged, and is not on disk in the clear.
    for body in &c.bodies {
        assert!(
            !body.contains("E2ESECRETMARKER"),
            "key in a response: {body}"
        );
    }
    let mut log_lines = 0;
    for path in [log.clone(), log.with_extension("2.log")] {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            let parsed: Value = serde_json::from_str(line)
                .unwrap_or_else(|_| panic!("log line is not JSON: {line}"));
            assert!(parsed.is_object());
            log_lines += 1;
        }
        assert!(!text.contains("E2ESECRETMARKER"), "key in the log");
        // The local shape never asks a cloud metadata endpoint for a region or credentials.
        assert!(
            !text.contains("IMDS"),
            "llm-local probed the EC2 metadata service"
        );
        for t in [&alice, &bob, &admin] {
            assert!(!text.contains(t.as_str()), "bearer token in the log");
        }
    }
    assert!(
        log_lines >= 10,
        "every request is logged ({log_lines} lines)"
    );
    let disk = read_all_bytes(&data);
    assert!(
        !disk.windows(16).any(|w| w == b"E2ESECRETMARKER-"),
        "key on disk in the clear"
    );
    for t in [&alice, &bob, &admin] {
        assert!(
            !disk.windows(t.len()).any(|w| w == t.as_bytes()),
            "token on disk in the clear"
        );
    }
}

#[test]
fn token_create_rejects_bad_user_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["token", "create", "--user", "a/b", "--data-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("user id"));
}

/// `POST /api/llm-settings/{userId}/test` through the binary, against local upstreams
/// that the operator's `LLM_PROVIDER_URL_*` point at: a key that works, a revoked key,
/// a saved key, an upstream that hangs, one that is unreachable, and the rate limit.
#[tokio::test]
async fn connection_test_against_local_upstreams() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    const GOOD: &str = "sk-ant-api03-GOODKEYMARKER-0123456789abcdefghijklmnopqrstuv";
    const REVOKED: &str = "sk-ant-api03-REVOKEDMARKER-0123456789abcdefghijklmnopqrs";
    const SLOW: &str = "sk-ant-api03-SLOWKEYMARKER-0123456789abcdefghijklmnopqrst";
    let anthropic = MockServer::start().await;
    let listing = r#"{"data":[{"type":"model","id":"claude-3-5-sonnet-20241022","display_name":"Claude 3.5 Sonnet","created_at":"2024-10-22T00:00:00Z"}],"has_more":false}"#;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(header("x-api-key", GOOD))
        .and(header("anthropic-version", "2023-06-01"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(listing, "application/json"))
        .mount(&anthropic)
        .await;
    Mock::given(method("GET")).and(path("/v1/models")).and(header("x-api-key", REVOKED))
        .respond_with(ResponseTemplate::new(401).set_body_raw(r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#, "application/json"))
        .mount(&anthropic).await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(header("x-api-key", SLOW))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(listing, "application/json")
                .set_delay(std::time::Duration::from_secs(5)),
        )
        .mount(&anthropic)
        .await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let alice = token(&data, "alice", false);
    let bob = token(&data, "bob", false);
    let server = start_with_env(
        &data,
        &log,
        &[
            ("LLM_PROVIDER_URL_ANTHROPIC", anthropic.uri()),
            (
                "LLM_PROVIDER_URL_BEDROCK",
                format!("http://127.0.0.1:{closed}"),
            ),
            ("LLM_PROVIDER_TIMEOUT_SECS", "1".into()),
            ("AWS_MAX_ATTEMPTS", "1".into()),
        ],
    );
    let mut c = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        bodies: Vec::new(),
    };
    use reqwest::Method as M;
    let test = "/api/llm-settings/alice/test";

    let (s, v) = c
        .call(
            M::POST,
            test,
            Some(&alice),
            Some(json!({"provider": "anthropic", "apiKey": GOOD})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["success"], true, "{v}");
    assert_eq!(v["provider"], "anthropic");
    assert_eq!(v["message"], "Connection successful");
    assert_eq!(v["model"], "claude-3-5-sonnet-20241022");
    assert!(v["latency_ms"].as_f64().unwrap() > 0.0);

    let (s, v) = c
        .call(
            M::POST,
            test,
            Some(&alice),
            Some(json!({"provider": "anthropic", "apiKey": REVOKED})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["success"], false);
    assert_eq!(v["error"], "invalid_key");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("rejected the API key"),
        "{v}"
    );

    // No key given and none saved: the client must send one.
    let (s, v) = c
        .call(
            M::POST,
            test,
            Some(&alice),
            Some(json!({"provider": "anthropic"})),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("apiKey")
    );
    // The saved key is used when none is sent.
    let (s, _) = c
        .call(
            M::PUT,
            "/api/llm-settings/alice",
            Some(&alice),
            Some(json!({"apiKeys": {"anthropic": GOOD}})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = c
        .call(
            M::POST,
            test,
            Some(&alice),
            Some(json!({"provider": "anthropic"})),
        )
        .await;
    assert_eq!((s, v["success"].as_bool()), (200, Some(true)), "{v}");

    // An upstream that hangs past the operator's 1 s timeout.
    let (s, v) = c
        .call(
            M::POST,
            test,
            Some(&alice),
            Some(json!({"provider": "anthropic", "apiKey": SLOW})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["error"], "timeout", "{v}");
    let latency = v["latency_ms"].as_f64().unwrap();
    assert!((900.0..4000.0).contains(&latency), "{latency}");

    // An unreachable upstream.
    let pair = format!("AKIAIOSFODNN7EXAMPLE:{}", "s".repeat(40));
    let (s, v) = c
        .call(
            M::POST,
            test,
            Some(&alice),
            Some(json!({"provider": "bedrock", "apiKey": pair})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["error"], "network", "{v}");
    assert_eq!(v["model"], "anthropic.claude-3-5-sonnet-20241022-v2:0");

    // Input errors and authorization.
    let (s, v) = c
        .call(
            M::POST,
            test,
            Some(&alice),
            Some(json!({"provider": "acme"})),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("provider"),
        "{v}"
    );
    let (s, v) = c
        .call(
            M::POST,
            test,
            Some(&alice),
            Some(json!({"provider": "anthropic", "apiKey": "nope"})),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("apiKey"),
        "{v}"
    );
    let (s, v) = c
        .call(
            M::POST,
            test,
            Some(&alice),
            Some(json!({"provider": "anthropic", "model": "gpt-4o"})),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"].as_str().unwrap().starts_with("model"),
        "{v}"
    );
    let (s, _) = c
        .call(
            M::POST,
            test,
            Some(&bob),
            Some(json!({"provider": "anthropic", "apiKey": GOOD})),
        )
        .await;
    assert_eq!(s, 403);

    // Ten tests a minute per user, then 429 with Retry-After (the calls above that
    // reached the limiter count too).
    let mut limited = None;
    for _ in 0..12 {
        let resp = c
            .http
            .post(format!("{}{test}", c.base))
            .bearer_auth(&alice)
            .json(&json!({"provider": "anthropic", "apiKey": GOOD}))
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            limited = Some(
                resp.headers()
                    .get("retry-after")
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
            );
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
            break;
        }
    }
    let wait = limited.expect("the 11th test in a minute must be refused");
    assert!((1..=60).contains(&wait));
    // Bob has his own budget.
    let bob_test = "/api/llm-settings/bob/test";
    let (s, _) = c
        .call(
            M::POST,
            bob_test,
            Some(&bob),
            Some(json!({"provider": "anthropic", "apiKey": GOOD})),
        )
        .await;
    assert_eq!(s, 200);
    drop(server);

    let text = std::fs::read_to_string(&log).unwrap();
    for marker in [
        "GOODKEYMARKER",
        "REVOKEDMARKER",
        "SLOWKEYMARKER",
        "ssssssssssssssssssss",
    ] {
        assert!(!text.contains(marker), "a key reached the log: {marker}");
        for body in &c.bodies {
            assert!(!body.contains(marker), "a key reached a response: {body}");
        }
    }
    assert!(
        text.contains("connection test failed"),
        "failures are logged (without keys)"
    );
}

/// Every provider's connection test through the binary, each pointed by its
/// `LLM_PROVIDER_URL_*` at a local server answering in that provider's format.
#[tokio::test]
async fn every_providers_connection_test_reaches_its_own_upstream() {
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let up = MockServer::start().await;
    let listing = |ids: &[&str]| {
        let data: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "object": "model", "created": 1, "owned_by": "x"}))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": data}))
    };
    // OpenAI-compatible listings, each under its own prefix.
    let family = [
        (
            "openai",
            "gpt-4-turbo",
            format!("sk-proj-{}", "a".repeat(40)),
        ),
        (
            "groq",
            "llama-3.1-8b-instant",
            format!("gsk_{}", "b".repeat(40)),
        ),
        (
            "openrouter",
            "openai/gpt-4o-mini",
            format!("sk-or-v1-{}", "c".repeat(40)),
        ),
        (
            "fireworks",
            "accounts/fireworks/models/llama-v3p1-8b-instruct",
            format!("fw_{}", "d".repeat(30)),
        ),
        ("mistral", "mistral-small-latest", "e".repeat(32)),
        (
            "deepseek",
            "deepseek-chat",
            format!("sk-{}", "f".repeat(32)),
        ),
        (
            "together",
            "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo",
            "0123456789abcdef".repeat(4),
        ),
    ];
    let mut env: Vec<(String, String)> = Vec::new();
    for (provider, model, _) in &family {
        Mock::given(method("GET"))
            .and(path(format!("/{provider}/v1/models")))
            .respond_with(listing(&[model]))
            .mount(&up)
            .await;
        env.push((
            format!("LLM_PROVIDER_URL_{}", provider.to_uppercase()),
            format!("{}/{provider}/v1", up.uri()),
        ));
    }
    Mock::given(method("GET"))
        .and(path("/ollama/v1/models"))
        .respond_with(listing(&["llama3.2:latest"]))
        .mount(&up)
        .await;
    env.push((
        "LLM_PROVIDER_URL_OLLAMA".into(),
        format!("{}/ollama/v1", up.uri()),
    ));
    Mock::given(method("GET")).and(path("/google/v1beta/models/gemini-1.5-pro"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"name": "models/gemini-1.5-pro", "version": "001", "displayName": "Gemini 1.5 Pro", "inputTokenLimit": 2097152, "outputTokenLimit": 8192, "supportedGenerationMethods": ["generateContent"]})))
        .mount(&up).await;
    env.push((
        "LLM_PROVIDER_URL_GOOGLE".into(),
        format!("{}/google", up.uri()),
    ));
    Mock::given(method("POST")).and(path("/azure/openai/deployments/my-gpt4o/chat/completions")).and(query_param("api-version", "2024-10-21"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "H"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9}})))
        .mount(&up).await;
    env.push((
        "LLM_PROVIDER_URL_AZURE_OPENAI".into(),
        format!("{}/azure", up.uri()),
    ));

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let ops = token(&data, "ops", true);
    let env_refs: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let server = start_with_env(&data, &log, &env_refs);
    let mut c = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        bodies: Vec::new(),
    };
    // Each user has ten tests a minute, so each provider is tested by its own user (an
    // admin may act on any user).
    let mut cases: Vec<(String, Value)> = family
        .iter()
        .map(|(p, model, key)| {
            (
                p.to_string(),
                json!({"provider": p, "apiKey": key, "model": model}),
            )
        })
        .collect();
    cases.push((
        "google".into(),
        json!({"provider": "google", "apiKey": format!("AIza{}", "g".repeat(35))}),
    ));
    cases.push((
        "ollama".into(),
        json!({"provider": "ollama", "model": "llama3.2"}),
    ));
    cases.push(("azure_openai".into(), json!({"provider": "azure_openai", "apiKey": "0123456789abcdef0123456789abcdef", "model": "my-gpt4o"})));
    for (provider, body) in cases {
        let (s, v) = c
            .call(
                reqwest::Method::POST,
                &format!("/api/llm-settings/user-{provider}/test"),
                Some(&ops),
                Some(body),
            )
            .await;
        assert_eq!(s, 200, "{provider}: {v}");
        assert_eq!(v["success"], true, "{provider}: {v}");
        assert_eq!(v["provider"], provider.as_str());
    }
    // Every upstream was called, and none with a key in its URL.
    let received = up.received_requests().await.unwrap();
    assert_eq!(received.len(), 10);
    for r in &received {
        assert!(
            !r.url.as_str().contains("AIza"),
            "a key in a URL: {}",
            r.url
        );
    }
}

#[tokio::test]
async fn dashboard_pages_and_who_am_i() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let alice = token(&data, "alice", false);
    let admin = token(&data, "ops", true);
    let server = start_with_env(&data, &log, &[]);
    let http = reqwest::Client::new();

    // The page and its files need no token, come from this origin only, and are typed.
    let page = http.get(format!("{}/", server.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.starts_with("default-src 'none'") && csp.contains("connect-src 'self'"));
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page.text().await.unwrap().contains("/assets/app.js"));
    for (file, kind) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
    ] {
        let r = http
            .get(format!("{}/assets/{file}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            (r.status().as_u16(), &r.headers()["content-type"]),
            (200, &kind.parse().unwrap())
        );
    }
    // Only the embedded files: no path reaches the disk.
    for path in [
        "/assets/nope.js",
        "/assets/..%2FCargo.toml",
        "/assets/%2e%2e%2fmain.rs",
    ] {
        let r = http
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"]["code"],
            "not_found"
        );
    }

    // Who the token belongs to, for the pages to choose what to show.
    let mut c = Client {
        http,
        base: server.base.clone(),
        bodies: Vec::new(),
    };
    let (s, v) = c.call(reqwest::Method::GET, "/api/me", None, None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (s, v) = c
        .call(reqwest::Method::GET, "/api/me", Some(&alice), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"userId": "alice", "admin": false, "tenantId": null, "tenantAdmin": false})
    );
    let (_, v) = c
        .call(reqwest::Method::GET, "/api/me", Some(&admin), None)
        .await;
    assert_eq!(
        (v["userId"].as_str(), v["admin"].as_bool()),
        (Some("ops"), Some(true))
    );
}
