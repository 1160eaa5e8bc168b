//! `POST /v1/embeddings` end to end through the `llm-local` binary, against a local
//! upstream that speaks OpenAI's embeddings API: the body sent upstream, the answer's
//! shape, the one usage entry (`operation_type: embedding`, exact cost), budgets, and the
//! key never in a body or the log. Usage entries are read back from the server's store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod local_support;

use local_support::{Client, Server, start_with_env, token};
use serde_json::{Value, json};
use shared::money::NanoUsd;
use shared::provider::Provider;
use shared::store::UsageStore;
use shared::store::sqlite::SqliteStore;
use shared::usage::{KeySource, UsageEntry, UsageStatus};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OPENAI_KEY: &str = "sk-proj-EMBOPENAIKEYMARKER-0123456789abcdefghijklmnop";

struct Gateway {
    _server: Server,
    data: PathBuf,
    log: PathBuf,
    client: Client,
    token: String,
    _tmp: tempfile::TempDir,
}

async fn gateway(openai: &MockServer, prefs: Value) -> Gateway {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let token = token(&data, "alice", false);
    let env = vec![
        ("LLM_PROVIDER_URL_OPENAI", format!("{}/v1", openai.uri())),
        ("LLM_PROVIDER_TIMEOUT_SECS", "2".to_string()),
        ("LLM_MAX_RETRIES", "1".to_string()),
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
            Some(json!({"preferences": prefs, "apiKeys": {"openai": OPENAI_KEY}})),
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
    async fn embed(&mut self, body: Value) -> (u16, Value) {
        let token = self.token.clone();
        self.client
            .call(
                reqwest::Method::POST,
                "/v1/embeddings",
                Some(&token),
                Some(body),
            )
            .await
    }

    async fn usage(&self, expected: usize) -> Vec<UsageEntry> {
        usage_entries(&self.data, expected).await
    }

    fn assert_no_key_leaked(&self) {
        let text = std::fs::read_to_string(&self.log).unwrap();
        assert!(
            !text.contains("EMBOPENAIKEYMARKER"),
            "a key reached the log"
        );
        for b in &self.client.bodies {
            assert!(
                !b.contains("EMBOPENAIKEYMARKER"),
                "a key reached a response"
            );
        }
    }
}

async fn usage_entries(data: &Path, expected: usize) -> Vec<UsageEntry> {
    let store = SqliteStore::open(&data.join("gateway.sqlite3")).unwrap();
    for _ in 0..100 {
        let (entries, _) = store
            .entries("alice", "2000", "9999", 100_000, None)
            .await
            .unwrap();
        if entries.len() >= expected {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store
        .entries("alice", "2000", "9999", 100_000, None)
        .await
        .unwrap()
        .0
}

/// OpenAI's documented answer shape, two vectors of three floats.
fn answer(prompt_tokens: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": [0.0023064255, -0.009327292, 0.015797347], "index": 0},
            {"object": "embedding", "embedding": [-0.0069292834, 0.0053364597, -0.021418862], "index": 1}
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    }))
}

async fn upstream(response: ResponseTemplate) -> MockServer {
    let o = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .and(header(
            "authorization",
            format!("Bearer {OPENAI_KEY}").as_str(),
        ))
        .respond_with(response)
        .mount(&o)
        .await;
    o
}

#[tokio::test]
async fn embeddings_answer_openais_shape_with_one_exactly_priced_usage_entry() {
    let o = upstream(answer(12_345)).await;
    let mut g = gateway(&o, json!({})).await;
    let (s, v) = g
        .embed(json!({"model": "openai/text-embedding-3-small",
                      "input": ["failed logins", "root console sign-in"], "dimensions": 3}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "openai/text-embedding-3-small");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][0]["object"], "embedding");
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(
        v["data"][0]["embedding"],
        json!([0.0023064255, -0.009327292, 0.015797347])
    );
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 12_345, "total_tokens": 12_345})
    );

    let sent = o.received_requests().await.unwrap();
    assert_eq!(sent.len(), 1);
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(
        body,
        json!({"model": "text-embedding-3-small",
               "input": ["failed logins", "root console sign-in"], "dimensions": 3})
    );

    let entries = g.usage(1).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(e.operation_type, "embedding");
    assert_eq!(e.provider, Provider::OpenAi);
    assert_eq!(e.model, "text-embedding-3-small");
    assert_eq!(
        (e.input_tokens, e.output_tokens, e.total_tokens),
        (12_345, 0, 12_345)
    );
    // $0.02 per 1M tokens is 20 nano-USD a token.
    assert_eq!(e.cost_usd, Some(NanoUsd(246_900)));
    assert_eq!(e.status, UsageStatus::Success);
    assert_eq!(e.key_source, Some(KeySource::User));
    g.assert_no_key_leaked();
}

#[tokio::test]
async fn a_single_string_input_and_base64_pass_through() {
    let o = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list",
            "data": [{"object": "embedding", "embedding": "AAAAAAAAgD8=", "index": 0}],
            "model": "text-embedding-3-large",
            "usage": {"prompt_tokens": 3, "total_tokens": 3}
        })))
        .mount(&o)
        .await;
    let mut g = gateway(&o, json!({})).await;
    let (s, v) = g
        .embed(
            json!({"model": "text-embedding-3-large", "input": "one string",
                      "encoding_format": "base64", "user": "end-user-1"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"][0]["embedding"], "AAAAAAAAgD8=");
    let sent = o.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(
        body,
        json!({"model": "text-embedding-3-large", "input": ["one string"], "encoding_format": "base64"})
    );
    let e = &g.usage(1).await[0];
    // $0.13 per 1M: 130 nano-USD a token.
    assert_eq!(e.cost_usd, Some(NanoUsd(390)));
}

#[tokio::test]
async fn chat_models_unknown_fields_and_token_arrays_are_400_without_a_call() {
    let o = upstream(answer(1)).await;
    let mut g = gateway(&o, json!({})).await;
    for body in [
        json!({"model": "gpt-4o-mini", "input": ["x"]}),
        json!({"model": "text-embedding-3-small", "input": ["x"], "temperature": 0}),
        json!({"model": "text-embedding-3-small", "input": [[1, 2, 3]]}),
        json!({"model": "text-embedding-3-small", "input": []}),
        json!({"model": "text-embedding-3-small", "input": ["x"], "encoding_format": "int8"}),
    ] {
        let (s, v) = g.embed(body.clone()).await;
        assert_eq!(s, 400, "{body} -> {v}");
    }
    assert!(o.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_embedding_model_is_never_a_chat_default_or_fallback() {
    let o = upstream(answer(1)).await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&o)
        .await;
    let mut g = gateway(
        &o,
        json!({"defaultProvider": "openai", "autoFailover": true}),
    )
    .await;
    let token = g.token.clone();
    let (_, _) = g
        .client
        .call(
            reqwest::Method::POST,
            "/api/llm-generate/alice",
            Some(&token),
            Some(json!({"prompt": "hi"})),
        )
        .await;
    let sent = o.received_requests().await.unwrap();
    assert!(
        sent.iter().all(|r| r.url.path() == "/v1/chat/completions"),
        "a chat went to the embeddings API"
    );
    for r in &sent {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert!(
            !body["model"].as_str().unwrap().contains("embedding"),
            "{body}"
        );
    }
    let (s, v) = g
        .client
        .call(reqwest::Method::GET, "/v1/models", Some(&token), None)
        .await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(ids.contains(&"openai/text-embedding-3-small"), "{ids:?}");
}

#[tokio::test]
async fn a_failing_upstream_leaves_one_error_entry_and_no_key() {
    let o = upstream(ResponseTemplate::new(500).set_body_json(json!({"error": {
        "message": "The server had an error while processing your request.",
        "type": "server_error", "param": null, "code": null}})))
    .await;
    let mut g = gateway(&o, json!({})).await;
    let (s, v) = g
        .embed(json!({"model": "text-embedding-3-small", "input": ["x"]}))
        .await;
    assert!(s >= 500, "{s} {v}");
    let entries = g.usage(1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let entries_later = usage_entries(&g.data, 1).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries_later.len(), 1, "exactly one entry per request");
    let e = &entries[0];
    assert_eq!(e.operation_type, "embedding");
    assert_eq!(e.status, UsageStatus::Error);
    assert_eq!(e.cost_usd, Some(NanoUsd::ZERO));
    g.assert_no_key_leaked();
}

#[tokio::test]
async fn a_refused_reservation_is_402_budget_exceeded_without_a_call() {
    let o = upstream(answer(1)).await;
    // 0.00001 USD is 10,000 nano-USD; 2,000 bytes reserve 2,004 tokens at 20 each.
    let mut g = gateway(
        &o,
        json!({"monthlyBudgetUsd": 0.00001, "budgetAction": "block"}),
    )
    .await;
    let (s, v) = g
        .embed(json!({"model": "text-embedding-3-small", "input": ["x".repeat(2000)]}))
        .await;
    assert_eq!(s, 402, "{v}");
    assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
    assert!(o.received_requests().await.unwrap().is_empty());
    let entries = g.usage(1).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].operation_type, "embedding");
    assert_eq!(entries[0].error_type.as_deref(), Some("budget_exceeded"));
}

#[tokio::test]
async fn azure_embeds_at_the_users_deployment_without_model_in_the_body() {
    const AZURE_KEY: &str = "0123456789abcdef0123456789abcdef";
    let azure = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/deployments/prod-embed/embeddings"))
        .and(header("api-key", AZURE_KEY))
        .respond_with(answer(6))
        .expect(1)
        .mount(&azure)
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let token = token(&data, "alice", false);
    let env = [
        ("LLM_PROVIDER_URL_AZURE_OPENAI", azure.uri()),
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
            Some(json!({"preferences": {"azureResource": "contoso",
                            "azureDeployments": {"text-embedding-3-small": "prod-embed"}},
                        "apiKeys": {"azure_openai": AZURE_KEY}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = client
        .call(
            reqwest::Method::POST,
            "/v1/embeddings",
            Some(&token),
            Some(json!({"model": "azure_openai/text-embedding-3-small", "input": ["a", "b"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let sent: Value =
        serde_json::from_slice(&azure.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(sent, json!({"input": ["a", "b"]}));
    let entries = usage_entries(&data, 1).await;
    assert_eq!(entries[0].provider, Provider::AzureOpenAi);
    assert_eq!(entries[0].operation_type, "embedding");
    // 6 tokens at $0.02 / 1M.
    assert_eq!(entries[0].cost_usd, Some(NanoUsd(120)));
    drop(server);
}

#[tokio::test]
async fn bedrock_titan_embeds_one_input_per_call_with_its_token_counts() {
    use wiremock::matchers::{body_json, path_regex};
    // A loopback endpoint in Bedrock's place: the SDK signs and sends InvokeModel to it.
    let bedrock = MockServer::start().await;
    for (text, vector, tokens) in [
        ("a", json!([0.5, -0.25]), 3),
        ("bb", json!([0.125, 1.0]), 4),
    ] {
        Mock::given(method("POST"))
            .and(path_regex(
                r"^/model/amazon\.titan-embed-text-v2(:|%3A)0/invoke$",
            ))
            .and(body_json(json!({"inputText": text, "dimensions": 256})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "embedding": vector, "inputTextTokenCount": tokens,
                "embeddingsByType": {"float": vector}})))
            .expect(1)
            .mount(&bedrock)
            .await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let token = token(&data, "alice", false);
    let env = [
        ("LLM_PROVIDER_URL_BEDROCK", bedrock.uri()),
        ("LLM_REQUESTS_PER_MINUTE", "100000".to_string()),
    ];
    let server = start_with_env(&data, &log, &env);
    let mut client = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        bodies: Vec::new(),
    };
    let secret = format!("TITANSECRETMARKER{}", "s".repeat(23));
    let (s, v) = client
        .call(
            reqwest::Method::PUT,
            "/api/llm-settings/alice",
            Some(&token),
            Some(json!({"apiKeys": {"bedrock": format!("AKIAIOSFODNN7EXAMPLE:{secret}")}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = client
        .call(
            reqwest::Method::POST,
            "/v1/embeddings",
            Some(&token),
            Some(
                json!({"model": "amazon.titan-embed-text-v2:0", "input": ["a", "bb"],
                        "dimensions": 256, "encoding_format": "float"}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"][0]["embedding"], json!([0.5, -0.25]));
    assert_eq!(v["data"][1]["embedding"], json!([0.125, 1.0]));
    assert_eq!(v["usage"]["prompt_tokens"], 7);
    // The SDK signed with the saved pair; the secret went nowhere.
    let received = bedrock.received_requests().await.unwrap();
    let auth = received[0]
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/"),
        "{auth}"
    );
    let entries = usage_entries(&data, 1).await;
    assert_eq!(entries[0].provider, Provider::Bedrock);
    assert_eq!(entries[0].input_tokens, 7);
    // 7 tokens at $0.02 / 1M.
    assert_eq!(entries[0].cost_usd, Some(NanoUsd(140)));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("TITANSECRETMARKER"),
        "the secret reached the log"
    );
    for b in &client.bodies {
        assert!(
            !b.contains("TITANSECRETMARKER"),
            "the secret reached a response"
        );
    }
    drop(server);
}
