//! The admin surface end to end through the `llm-local` binary: the model registry's
//! routes and their authorization, the registry governing users (failover order by
//! priority, a disabled model falling back and leaving the model list, operator
//! credentials), per-user limits, the audit trail with every key searched for, and the
//! CLI beside a running server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod local_support;

use local_support::{BIN, Client, Server, start_with_env, token};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OPENAI_KEY: &str = "sk-proj-ADMOPENAIMARKER-0123456789abcdefghijklmnop";
const ANTHROPIC_KEY: &str = "sk-ant-api03-ADMANTHROPICMARKER-0123456789abcdefghijklmnop";
const GROQ_KEY: &str = "gsk_ADMGROQMARKER0123456789abcdefghijklmnop";
const OPERATOR_KEY: &str = "sk-proj-ADMOPERATORMARKER-0123456789abcdefghijklmnop";
const MARKERS: [&str; 4] = [
    "ADMOPENAIMARKER",
    "ADMANTHROPICMARKER",
    "ADMGROQMARKER",
    "ADMOPERATORMARKER",
];

fn openai_ok(model: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1677858242, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "answer"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}))
}

fn anthropic_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant",
        "model": "claude-3-5-sonnet-20241022",
        "content": [{"type": "text", "text": "answer"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5}}))
}

fn server_error() -> ResponseTemplate {
    ResponseTemplate::new(500).set_body_json(json!({"error": {
        "message": "The server had an error while processing your request.",
        "type": "server_error", "param": null, "code": null}}))
}

struct Gateway {
    server: Server,
    data: PathBuf,
    log: PathBuf,
    client: Client,
    admin: String,
    alice: String,
    _tmp: tempfile::TempDir,
}

/// A gateway whose openai, anthropic and groq point at the mocks, with an admin and
/// `alice` (who holds keys for all three and prefers gpt-4o for conversations).
async fn gateway(openai: &MockServer, anthropic: &MockServer, groq: &MockServer) -> Gateway {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let admin = token(&data, "root", true);
    let alice = token(&data, "alice", false);
    let env = vec![
        ("LLM_PROVIDER_URL_OPENAI", format!("{}/v1", openai.uri())),
        ("LLM_PROVIDER_URL_ANTHROPIC", anthropic.uri()),
        ("LLM_PROVIDER_URL_GROQ", format!("{}/v1", groq.uri())),
        ("LLM_PROVIDER_TIMEOUT_SECS", "2".to_string()),
        ("LLM_MAX_RETRIES", "0".to_string()),
        ("LLM_REQUESTS_PER_MINUTE", "100000".to_string()),
        ("OPERATOR_OPENAI_KEY", OPERATOR_KEY.to_string()),
        ("RUST_LOG", "info,access=debug".to_string()),
    ];
    let server = start_with_env(&data, &log, &env);
    let client = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        bodies: Vec::new(),
    };
    let mut g = Gateway {
        server,
        data,
        log,
        client,
        admin,
        alice,
        _tmp: tmp,
    };
    let (s, v) = g
        .user(
            Method::PUT,
            "/api/llm-settings/alice",
            Some(json!({
                "preferences": {"models": {"conversation": "gpt-4.1"}, "autoFailover": true},
                "apiKeys": {"openai": OPENAI_KEY, "anthropic": ANTHROPIC_KEY, "groq": GROQ_KEY}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    g
}

impl Gateway {
    async fn as_admin(&mut self, m: Method, p: &str, body: Option<Value>) -> (u16, Value) {
        let t = self.admin.clone();
        self.client.call(m, p, Some(&t), body).await
    }

    async fn user(&mut self, m: Method, p: &str, body: Option<Value>) -> (u16, Value) {
        let t = self.alice.clone();
        self.client.call(m, p, Some(&t), body).await
    }

    async fn generate(&mut self) -> (u16, Value) {
        self.user(
            Method::POST,
            "/api/llm-generate/alice",
            Some(json!({"prompt": "hello", "cache": false})),
        )
        .await
    }

    /// The registry entry serving `provider/model`.
    async fn entry(&mut self, provider: &str, model: &str) -> Value {
        let (s, v) = self
            .as_admin(Method::GET, "/api/admin/llms?limit=200", None)
            .await;
        assert_eq!(s, 200, "{v}");
        v["llms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["provider"] == provider && e["model_name"] == model)
            .unwrap_or_else(|| panic!("no entry for {provider}/{model}"))
            .clone()
    }

    async fn set_priority(&mut self, provider: &str, model: &str, priority: i64) {
        let id = self.entry(provider, model).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (s, v) = self
            .as_admin(
                Method::PUT,
                &format!("/api/admin/llms/{id}"),
                Some(json!({"priority": priority})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["priority"], priority);
    }

    /// Every audit event, newest first, following every page.
    async fn audit(&mut self) -> Vec<Value> {
        let mut events = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let p = match &next {
                Some(t) => format!("/api/admin/audit?limit=7&nextToken={t}"),
                None => "/api/admin/audit?limit=7".to_owned(),
            };
            let (s, v) = self.as_admin(Method::GET, &p, None).await;
            assert_eq!(s, 200, "{v}");
            events.extend(v["events"].as_array().unwrap().iter().cloned());
            match v["nextToken"].as_str() {
                Some(t) => next = Some(t.to_owned()),
                None => return events,
            }
        }
    }

    /// No saved key in any response, in the whole audit log, or in the server's log.
    fn assert_no_key_leaked(&self) {
        let log = std::fs::read_to_string(&self.log).unwrap();
        for m in MARKERS {
            assert!(!log.contains(m), "a key reached the log: {m}");
            for b in &self.client.bodies {
                assert!(!b.contains(m), "a key reached a response: {m}");
            }
        }
    }
}

async fn mocks() -> (MockServer, MockServer, MockServer) {
    (
        MockServer::start().await,
        MockServer::start().await,
        MockServer::start().await,
    )
}

#[tokio::test]
async fn every_admin_route_needs_an_admin() {
    let (o, a, q) = mocks().await;
    let mut g = gateway(&o, &a, &q).await;
    let id = "llm-anything";
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/admin/llms".into(), None),
        (
            Method::POST,
            "/api/admin/llms".into(),
            Some(json!({"name": "x", "provider": "openai", "model_name": "gpt-4o"})),
        ),
        (Method::GET, format!("/api/admin/llms/{id}"), None),
        (
            Method::PUT,
            format!("/api/admin/llms/{id}"),
            Some(json!({"priority": 1})),
        ),
        (Method::DELETE, format!("/api/admin/llms/{id}"), None),
        (Method::POST, format!("/api/admin/llms/{id}/toggle"), None),
        (
            Method::POST,
            format!("/api/admin/llms/{id}/set-default"),
            None,
        ),
        (
            Method::POST,
            "/api/admin/llms/bulk".into(),
            Some(json!({"action": "disable", "ids": [id]})),
        ),
        (Method::GET, "/api/admin/users/alice/limits".into(), None),
        (
            Method::PUT,
            "/api/admin/users/alice/limits".into(),
            Some(json!({"monthlyBudgetUsd": 1000})),
        ),
        (Method::GET, "/api/admin/audit".into(), None),
        (Method::GET, "/api/admin/providers/health".into(), None),
    ];
    for (m, p, body) in routes {
        let (s, v) = g.client.call(m.clone(), &p, None, body.clone()).await;
        assert_eq!(s, 401, "{m} {p} without a token: {v}");
        let (s, v) = g.user(m.clone(), &p, body).await;
        assert_eq!(s, 403, "{m} {p} as a user: {v}");
        assert_eq!(v["error"]["code"], "forbidden");
    }
    // Nothing the refused calls sent changed anything.
    let (_, v) = g
        .as_admin(Method::GET, "/api/admin/users/alice/limits", None)
        .await;
    assert_eq!(v["monthlyBudgetUsd"], Value::Null);
    assert_eq!(v["version"], 0);
}

#[tokio::test]
async fn registry_crud_search_defaults_bulk_and_validation() {
    let (o, a, q) = mocks().await;
    let mut g = gateway(&o, &a, &q).await;
    let catalog = shared::pricing::catalog().unwrap();

    // Seeded from the catalog, sorted by priority, paginated.
    let (s, v) = g
        .as_admin(Method::GET, "/api/admin/llms?limit=200", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["total"], catalog.models.len());
    let priorities: Vec<i64> = v["llms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["priority"].as_i64().unwrap())
        .collect();
    assert!(
        priorities.windows(2).all(|w| w[0] <= w[1]),
        "sorted by priority"
    );
    let (_, page1) = g
        .as_admin(Method::GET, "/api/admin/llms?limit=10", None)
        .await;
    assert_eq!(page1["llms"].as_array().unwrap().len(), 10);
    let next = page1["nextToken"].as_str().unwrap().to_owned();
    let (_, page2) = g
        .as_admin(
            Method::GET,
            &format!("/api/admin/llms?limit=10&nextToken={next}"),
            None,
        )
        .await;
    assert_ne!(page1["llms"][0]["id"], page2["llms"][0]["id"]);
    // Search by name, model or description; filters by provider and status.
    let (_, v) = g
        .as_admin(
            Method::GET,
            "/api/admin/llms?search=HAIKU&provider=anthropic",
            None,
        )
        .await;
    let hits = v["llms"].as_array().unwrap();
    assert!(!hits.is_empty());
    assert!(hits.iter().all(
        |e| e["provider"] == "anthropic" && e["model_name"].as_str().unwrap().contains("haiku")
    ));
    let (_, v) = g
        .as_admin(Method::GET, "/api/admin/llms?enabled=false", None)
        .await;
    assert_eq!(v["total"], 0);
    let (s, v) = g
        .as_admin(Method::GET, "/api/admin/llms?enabled=maybe", None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let (s, _) = g
        .as_admin(Method::GET, "/api/admin/llms?color=red", None)
        .await;
    assert_eq!(s, 400);

    // Create, with every field validated and named.
    let good = json!({"name": "Fast OpenAI", "provider": "openai", "model_name": "gpt-4o-mini",
        "description": "cheap and fast", "config": {"temperature": 0.2, "max_tokens": 300},
        "priority": 5, "auth_meta": {"api_key_env": "OPERATOR_OPENAI_KEY"}});
    let (s, created) = g
        .as_admin(Method::POST, "/api/admin/llms", Some(good.clone()))
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["is_default"], false);
    assert_eq!(created["scope"], "global");
    let id = created["id"].as_str().unwrap().to_owned();
    let (s, v) = g
        .as_admin(Method::POST, "/api/admin/llms", Some(good.clone()))
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("name_taken")));
    let invalid = [
        (
            json!({"config": {"temperature": 3.0}}),
            "config.temperature",
        ),
        (json!({"config": {"streaming": true}}), "config"),
        (json!({"priority": -1}), "priority"),
        // A rate past 1M USD per 1M tokens: it once overflowed the cost arithmetic.
        (
            json!({"price_override": {"input": "79228162514264337593543950335", "output": "1"}}),
            "price_override",
        ),
        (
            json!({"model_name": "not-a-catalog-model"}),
            "price_override",
        ),
        (
            json!({"auth_meta": {"api_key_env": OPERATOR_KEY}}),
            "auth_meta.api_key_env",
        ),
        (json!({"auth_meta": {"api_key": OPERATOR_KEY}}), "auth_meta"),
        (
            json!({"auth_meta": {"api_key_secret": "operator/llm/openai"}}),
            "auth_meta.api_key_secret",
        ),
        (json!({"provider": "nope"}), "provider"),
        (json!({"colour": "red"}), "colour"),
    ];
    for (patch, field) in invalid {
        let mut body = good.clone();
        body["name"] = json!(format!("invalid {field}"));
        body.as_object_mut()
            .unwrap()
            .extend(patch.as_object().unwrap().clone());
        let (s, v) = g
            .as_admin(Method::POST, "/api/admin/llms", Some(body))
            .await;
        assert_eq!(s, 400, "{field}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{field}: {message}");
    }
    // A price override makes a model the catalog lacks routable, priced exactly.
    let (s, custom) = g
        .as_admin(
            Method::POST,
            "/api/admin/llms",
            Some(json!({
        "name": "Fine-tune", "provider": "openai", "model_name": "ft:gpt-4o-mini:acme",
        "price_override": {"input": "0.30", "output": "1.20"}})),
        )
        .await;
    assert_eq!(s, 201, "{custom}");
    assert_eq!(custom["price_override"]["input"], "0.30");

    // Read, update (with and without a version), delete.
    let (s, v) = g
        .as_admin(Method::GET, &format!("/api/admin/llms/{id}"), None)
        .await;
    assert_eq!((s, &v["name"]), (200, &json!("Fast OpenAI")));
    let (s, v) = g
        .as_admin(
            Method::PUT,
            &format!("/api/admin/llms/{id}"),
            Some(json!({"description": "renamed", "version": 99})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("version_conflict"))
    );
    let (s, v) = g
        .as_admin(
            Method::PUT,
            &format!("/api/admin/llms/{id}"),
            Some(json!({"name": "Fast OpenAI v2", "version": 1})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 2);
    let (s, _) = g
        .as_admin(Method::GET, "/api/admin/llms/llm-does-not-exist", None)
        .await;
    assert_eq!(s, 404);

    // Toggle, then set-default: one default per scope and operation type.
    let (_, v) = g
        .as_admin(Method::POST, &format!("/api/admin/llms/{id}/toggle"), None)
        .await;
    assert_eq!(v["enabled"], false);
    let (s, v) = g
        .as_admin(
            Method::POST,
            &format!("/api/admin/llms/{id}/set-default"),
            None,
        )
        .await;
    assert_eq!(s, 400, "a disabled entry cannot be a default: {v}");
    let (_, v) = g
        .as_admin(Method::POST, &format!("/api/admin/llms/{id}/toggle"), None)
        .await;
    assert_eq!(v["enabled"], true);
    let (s, v) = g
        .as_admin(
            Method::POST,
            &format!("/api/admin/llms/{id}/set-default"),
            Some(json!({"operationType": "query_generation"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["default_for"], json!(["query_generation"]));
    let haiku = g.entry("anthropic", "claude-3-5-haiku-20241022").await;
    let hid = haiku["id"].as_str().unwrap().to_owned();
    let (_, v) = g
        .as_admin(
            Method::POST,
            &format!("/api/admin/llms/{hid}/set-default"),
            Some(json!({"operationType": "query_generation"})),
        )
        .await;
    assert_eq!(v["is_default"], true);
    let (_, v) = g
        .as_admin(Method::GET, "/api/admin/llms?limit=200", None)
        .await;
    let holders: Vec<&Value> = v["llms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["default_for"]
                .as_array()
                .unwrap()
                .contains(&json!("query_generation"))
        })
        .collect();
    assert_eq!(holders.len(), 1, "the previous default was cleared");
    assert_eq!(holders[0]["id"], json!(hid));
    let (s, _) = g
        .as_admin(
            Method::POST,
            &format!("/api/admin/llms/{hid}/set-default"),
            Some(json!({"operationType": "nonsense"})),
        )
        .await;
    assert_eq!(s, 400);

    // Bulk: per-id results, one failure does not stop the others.
    let (s, v) = g
        .as_admin(
            Method::POST,
            "/api/admin/llms/bulk",
            Some(json!({"action": "disable", "ids": [id, "llm-missing", hid]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["succeeded"], 2);
    assert_eq!(v["failed"], 1);
    assert_eq!(v["results"][1]["error"]["code"], "not_found");
    let (_, v) = g
        .as_admin(Method::GET, "/api/admin/llms?enabled=false", None)
        .await;
    assert_eq!(v["total"], 2);
    let (s, _) = g
        .as_admin(
            Method::POST,
            "/api/admin/llms/bulk",
            Some(json!({"action": "explode", "ids": [id]})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = g
        .as_admin(
            Method::POST,
            "/api/admin/llms/bulk",
            Some(json!({"action": "delete", "ids": []})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, v) = g
        .as_admin(Method::DELETE, &format!("/api/admin/llms/{id}"), None)
        .await;
    assert_eq!(s, 204, "{v}");
    let (s, _) = g
        .as_admin(Method::GET, &format!("/api/admin/llms/{id}"), None)
        .await;
    assert_eq!(s, 404);

    // The audit trail holds each change, with its actor, before and after.
    let events = g.audit().await;
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "llm_create",
        "llm_update",
        "llm_disable",
        "llm_enable",
        "llm_set_default",
        "llm_clear_default",
        "llm_delete",
        "key_set",
        "settings_update",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    let delete = events.iter().find(|e| e["action"] == "llm_delete").unwrap();
    assert_eq!(delete["actor"], "root");
    assert_eq!(delete["target"], json!(format!("llm:{id}")));
    assert!(delete["before"]["name"].is_string() && delete["after"].is_null());
    assert!(delete["request_id"].as_str().unwrap().starts_with("req-"));
    let stamps: Vec<&str> = events
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let (_, v) = g
        .as_admin(
            Method::GET,
            "/api/admin/audit?action=key_set&actor=alice",
            None,
        )
        .await;
    let keys = v["events"].as_array().unwrap();
    assert_eq!(keys.len(), 3, "one event per key saved: {v}");
    assert!(
        keys.iter()
            .all(|e| e["after"]["hint"].as_str().unwrap().starts_with('…'))
    );
    g.assert_no_key_leaked();
}

#[tokio::test]
async fn priorities_reorder_the_failover_chain_both_ways() {
    let (o, a, q) = mocks().await;
    // alice's preferred gpt-4.1 fails; anthropic and groq both answer.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(server_error())
        .mount(&o)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(anthropic_ok())
        .mount(&a)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(openai_ok("llama-3.1-8b-instant"))
        .mount(&q)
        .await;
    let mut g = gateway(&o, &a, &q).await;

    // Seeded order: anthropic's models come before groq's.
    let (s, v) = g.generate().await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["provider"], "anthropic");
    assert_eq!(v["attempts"][0]["provider"], "openai");
    assert_eq!(
        v["attempts"].as_array().unwrap().len(),
        1,
        "openai left after its failure: {v}"
    );

    // Groq's model moved ahead of every anthropic model: groq answers now.
    g.set_priority("groq", "llama-3.1-8b-instant", 1).await;
    let (s, v) = g.generate().await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["provider"], "groq");
    assert_eq!(v["model"], "llama-3.1-8b-instant");

    // And back: anthropic's default model ahead of groq's again.
    g.set_priority("anthropic", "claude-3-5-sonnet-20241022", 0)
        .await;
    let (s, v) = g.generate().await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["provider"], "anthropic");

    // /api/llm-models follows the same order.
    let (_, v) = g.user(Method::GET, "/api/llm-models", None).await;
    let ids: Vec<&str> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        &ids[..2],
        &["claude-3-5-sonnet-20241022", "llama-3.1-8b-instant"]
    );
    g.assert_no_key_leaked();
}

#[tokio::test]
async fn a_disabled_model_falls_back_and_leaves_the_model_list() {
    let (o, a, q) = mocks().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(openai_ok("gpt-4.1"))
        .mount(&o)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(anthropic_ok())
        .mount(&a)
        .await;
    let mut g = gateway(&o, &a, &q).await;
    let (s, v) = g.generate().await;
    assert_eq!((s, v["model"].as_str()), (200, Some("gpt-4.1")), "{v}");

    let id = g.entry("openai", "gpt-4.1").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, v) = g
        .as_admin(Method::POST, &format!("/api/admin/llms/{id}/toggle"), None)
        .await;
    assert_eq!(v["enabled"], false);

    // Gone from both model lists.
    let (_, v) = g.user(Method::GET, "/api/llm-models", None).await;
    assert!(
        !v["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["llm_id"] == json!(id))
    );
    let (_, v) = g.user(Method::GET, "/v1/models", None).await;
    assert!(
        !v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "openai/gpt-4.1")
    );
    // alice still prefers it; her requests fall back to the registry's default.
    let (s, v) = g.generate().await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["model"], "claude-3-5-sonnet-20241022");
    assert_eq!(
        v["attempts"],
        json!([]),
        "nothing was sent to the disabled model"
    );
    // Naming it is refused, and so is choosing it again as a preference.
    let (s, v) = g
        .user(
            Method::POST,
            "/api/llm-generate/alice",
            Some(json!({"prompt": "x", "provider": "openai", "model": "gpt-4.1"})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = g
        .user(
            Method::PUT,
            "/api/llm-settings/alice",
            Some(json!({"preferences": {"queryModel": "gpt-4.1"}})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("preferences.queryModel")
    );
    // llmId picks an entry; a disabled one is refused.
    let mini = g.entry("openai", "gpt-4o-mini").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, v) = g
        .user(
            Method::POST,
            "/api/llm-generate/alice",
            Some(json!({"prompt": "x", "llmId": mini})),
        )
        .await;
    assert_eq!((s, v["provider"].as_str()), (200, Some("openai")), "{v}");
    let (s, _) = g
        .user(
            Method::POST,
            "/api/llm-generate/alice",
            Some(json!({"prompt": "x", "llmId": id})),
        )
        .await;
    assert_eq!(s, 400);

    // Through the CLI beside the running server: enabled again, seen within a second.
    let out = std::process::Command::new(BIN)
        .args(["llms", "enable", "openai/gpt-4.1", "--data-dir"])
        .arg(&g.data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (s, v) = g.generate().await;
    assert_eq!((s, v["model"].as_str()), (200, Some("gpt-4.1")), "{v}");
    let out = std::process::Command::new(BIN)
        .args(["audit", "tail", "--limit", "50", "--data-dir"])
        .arg(&g.data)
        .output()
        .unwrap();
    let tail = String::from_utf8(out.stdout).unwrap();
    let last: Value = serde_json::from_str(tail.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["actor"].as_str(), last["action"].as_str()),
        (Some("local-cli"), Some("llm_update"))
    );
    for m in MARKERS {
        assert!(!tail.contains(m));
    }
    drop(g.server);
}

#[tokio::test]
async fn an_admin_cap_and_rate_hold_over_the_users_own_settings() {
    let (o, a, q) = mocks().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(openai_ok("gpt-4.1"))
        .mount(&o)
        .await;
    let mut g = gateway(&o, &a, &q).await;
    // alice's own budget is $50; the admin caps her at $0.00001.
    let (s, _) = g
        .user(
            Method::PUT,
            "/api/llm-settings/alice",
            Some(json!({"preferences": {"monthlyBudgetUsd": 50.0, "budgetAction": "alert_only"}})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = g
        .as_admin(
            Method::PUT,
            "/api/admin/users/alice/limits",
            Some(json!({"monthlyBudgetUsd": 0.00001})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 1);
    let (_, b) = g
        .user(Method::GET, "/api/llm-usage/alice/budget", None)
        .await;
    assert_eq!(b["limit_usd"], 0.00001, "the effective limit: {b}");
    let (s, v) = g.generate().await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (402, Some("budget_exceeded")),
        "{v}"
    );
    // Raising her own budget changes nothing.
    let (s, _) = g
        .user(
            Method::PUT,
            "/api/llm-settings/alice",
            Some(json!({"preferences": {"monthlyBudgetUsd": 500.0}})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = g.generate().await;
    assert_eq!(s, 402);

    // Lifted budget, 2 requests per minute: the third is a 429 with Retry-After.
    let (s, v) = g
        .as_admin(
            Method::PUT,
            "/api/admin/users/alice/limits",
            Some(json!({"requestsPerMinute": 2})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // The counter's window is the wall-clock minute: wait out a minute's end so that
    // the three requests fall in one window.
    let minute = |t: chrono::DateTime<chrono::Utc>| t.timestamp() / 60;
    if chrono::Utc::now().timestamp() % 60 > 55 {
        tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    }
    let before = chrono::Utc::now();
    let mut replies = Vec::new();
    for _ in 0..3 {
        let r = g
            .client
            .http
            .post(format!("{}/api/llm-generate/alice", g.client.base))
            .bearer_auth(&g.alice)
            .json(&json!({"prompt": "x", "cache": false}))
            .send()
            .await
            .unwrap();
        replies.push((r.status().as_u16(), r.headers().get("retry-after").cloned()));
    }
    assert_eq!(minute(before), minute(chrono::Utc::now()), "one window");
    let statuses: Vec<u16> = replies.iter().map(|r| r.0).collect();
    assert_eq!(statuses, [200, 200, 429]);
    let wait: u64 = replies[2]
        .1
        .as_ref()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let (s, v) = g
        .as_admin(
            Method::PUT,
            "/api/admin/users/alice/limits",
            Some(json!({"requestsPerMinute": 0})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (_, v) = g
        .as_admin(Method::GET, "/api/admin/audit?action=limits_update", None)
        .await;
    assert_eq!(v["events"].as_array().unwrap().len(), 2);
    assert_eq!(v["events"][0]["target"], "limits:alice");
}

#[tokio::test]
async fn operator_credentials_serve_a_user_without_a_key() {
    let (o, a, q) = mocks().await;
    // Only the operator's key is accepted upstream.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header(
            "authorization",
            format!("Bearer {OPERATOR_KEY}").as_str(),
        ))
        .respond_with(openai_ok("gpt-4o-mini"))
        .mount(&o)
        .await;
    let mut g = gateway(&o, &a, &q).await;
    let (s, entry) = g
        .as_admin(
            Method::POST,
            "/api/admin/llms",
            Some(json!({
        "name": "Team OpenAI", "provider": "openai", "model_name": "gpt-4o-mini",
        "auth_meta": {"api_key_env": "OPERATOR_OPENAI_KEY"},
        "price_override": {"input": "1", "output": "2"}})),
        )
        .await;
    assert_eq!(s, 201, "{entry}");
    let id = entry["id"].as_str().unwrap();
    let bob = token(&g.data, "bob", false);
    let (s, v) = g
        .client
        .call(
            Method::POST,
            "/api/llm-generate/bob",
            Some(&bob),
            Some(json!({"prompt": "hello", "llmId": id})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // 10 in at $1 and 5 out at $2 per 1M: the override's price, exactly.
    assert_eq!(v["usage"]["cost_usd"], 0.00002);
    let (_, u) = g
        .client
        .call(Method::GET, "/api/llm-usage/bob", Some(&bob), None)
        .await;
    let e = &u["entries"][0];
    assert_eq!(e["key_source"], "operator");
    assert_eq!(e["price_version"], json!(format!("registry:{id}@1")));
    // Without the entry's credentials (another model) bob has no key.
    let (s, _) = g
        .client
        .call(
            Method::POST,
            "/api/llm-generate/bob",
            Some(&bob),
            Some(json!({"prompt": "hello", "provider": "openai", "model": "gpt-4o"})),
        )
        .await;
    assert_eq!(s, 400);
    g.assert_no_key_leaked();
}
