//! The settings router, route by route and error by error, driven with `oneshot` on an
//! in-memory deployment with local bearer tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::http::{Method, StatusCode};
use serde_json::json;
use shared::http::{app, settings_router};
use shared::identity::issue_token;
use support::{local_deployment, request, send};

const ANTHROPIC_KEY: &str = "sk-ant-api03-ROUTERTESTKEY0123456789abcdefghijklmnopqrstuvwxyzf3Qa";

struct Fixture {
    router: axum::Router,
    alice: String,
    bob: String,
    admin: String,
}

async fn fixture() -> Fixture {
    let d = local_deployment();
    let alice = issue_token(&d.db, "alice", false).await.unwrap();
    let bob = issue_token(&d.db, "bob", false).await.unwrap();
    let admin = issue_token(&d.db, "root", true).await.unwrap();
    Fixture {
        router: app(settings_router(d.state)),
        alice,
        bob,
        admin,
    }
}

async fn put(f: &Fixture, token: &str, user: &str, body: serde_json::Value) -> support::Reply {
    send(
        &f.router,
        request(
            Method::PUT,
            &format!("/api/llm-settings/{user}"),
            Some(token),
            Some(body.to_string()),
        ),
    )
    .await
}

async fn get(f: &Fixture, token: Option<&str>, path: &str) -> support::Reply {
    send(&f.router, request(Method::GET, path, token, None)).await
}

#[tokio::test]
async fn health_needs_no_token() {
    let f = fixture().await;
    let r = get(&f, None, "/health").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], "ok");
}

#[tokio::test]
async fn new_user_gets_defaults_and_every_provider_listed() {
    let f = fixture().await;
    let r = get(&f, Some(&f.alice), "/api/llm-settings/alice").await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["preferences"]["defaultProvider"], "anthropic");
    assert_eq!(v["preferences"]["maxTokens"], 2000);
    assert_eq!(v["preferences"]["budgetAction"], "block");
    assert_eq!(
        v["preferences"]["monthlyBudgetUsd"],
        serde_json::Value::Null
    );
    assert_eq!(v["version"], 0);
    let has = v["hasApiKeys"].as_object().unwrap();
    for p in shared::provider::Provider::ALL {
        assert_eq!(has[p.as_str()], false, "{p}");
    }
    assert_eq!(v["keyHints"], json!({}));
}

#[tokio::test]
async fn put_merges_stores_keys_and_never_returns_them() {
    let f = fixture().await;
    let r = put(
        &f,
        &f.alice,
        "alice",
        json!({"preferences": {"maxTokens": 512, "monthlyBudgetUsd": 50.25,
                               "fallbackProviders": ["openai", "google"],
                               "models": {"conversation": "gpt-4"}},
               "apiKeys": {"anthropic": ANTHROPIC_KEY}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    assert_eq!(v["preferences"]["maxTokens"], 512);
    assert_eq!(v["preferences"]["monthlyBudgetUsd"], 50.25);
    assert_eq!(
        v["preferences"]["temperature"], 0.0,
        "untouched fields keep their value"
    );
    assert_eq!(v["hasApiKeys"]["anthropic"], true);
    assert_eq!(v["keyHints"]["anthropic"], "…f3Qa");
    assert_eq!(v["version"], 1);
    assert!(v["updatedAt"].as_str().unwrap().ends_with('Z'));
    assert!(!r.text.contains("ROUTERTESTKEY"));

    // A second partial PUT keeps the first one's fields.
    let r = put(
        &f,
        &f.alice,
        "alice",
        json!({"preferences": {"temperature": 0.7}}),
    )
    .await;
    let v = r.json();
    assert_eq!(v["preferences"]["maxTokens"], 512);
    assert_eq!(v["preferences"]["temperature"], 0.7);
    assert_eq!(v["hasApiKeys"]["anthropic"], true);
    assert_eq!(v["version"], 2);

    let r = get(&f, Some(&f.alice), "/api/llm-settings/alice").await;
    assert!(!r.text.contains("ROUTERTESTKEY"));
    assert_eq!(
        r.json()["preferences"]["fallbackProviders"],
        json!(["openai", "google"])
    );

    // null deletes a key.
    let r = put(
        &f,
        &f.alice,
        "alice",
        json!({"apiKeys": {"anthropic": null}}),
    )
    .await;
    assert_eq!(r.json()["hasApiKeys"]["anthropic"], false);
    assert_eq!(r.json()["keyHints"], json!({}));
}

#[tokio::test]
async fn delete_key_route() {
    let f = fixture().await;
    put(
        &f,
        &f.alice,
        "alice",
        json!({"apiKeys": {"anthropic": ANTHROPIC_KEY}}),
    )
    .await;
    let r = send(
        &f.router,
        request(
            Method::DELETE,
            "/api/llm-settings/alice/keys/anthropic",
            Some(&f.alice),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.text.is_empty());
    let v = get(&f, Some(&f.alice), "/api/llm-settings/alice")
        .await
        .json();
    assert_eq!(v["hasApiKeys"]["anthropic"], false);
    // Idempotent.
    let r = send(
        &f.router,
        request(
            Method::DELETE,
            "/api/llm-settings/alice/keys/anthropic",
            Some(&f.alice),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Unknown provider names the path parameter.
    let r = send(
        &f.router,
        request(
            Method::DELETE,
            "/api/llm-settings/alice/keys/acme",
            Some(&f.alice),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error_message().starts_with("provider:"), "{}", r.text);
    // Someone else's key: 403.
    let r = send(
        &f.router,
        request(
            Method::DELETE,
            "/api/llm-settings/alice/keys/anthropic",
            Some(&f.bob),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn authentication_and_authorization() {
    let f = fixture().await;
    for path in ["/api/llm-settings/alice", "/api/llm-models"] {
        let r = get(&f, None, path).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.error_code(), "unauthorized");
        assert_eq!(r.headers["www-authenticate"], "Bearer");
        let r = get(&f, Some("llmk_not-a-real-token"), path).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    // Another user's settings: 403 for reads and writes; nothing written.
    let r = get(&f, Some(&f.bob), "/api/llm-settings/alice").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error_code(), "forbidden");
    let r = put(
        &f,
        &f.bob,
        "alice",
        json!({"preferences": {"maxTokens": 1}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // An admin may act on anyone.
    let r = put(
        &f,
        &f.admin,
        "alice",
        json!({"preferences": {"maxTokens": 3}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = get(&f, Some(&f.alice), "/api/llm-settings/alice")
        .await
        .json();
    assert_eq!(v["preferences"]["maxTokens"], 3);
}

#[tokio::test]
async fn bad_input_is_400_naming_the_field() {
    let f = fixture().await;
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            json!({"preferences": {"maxTokens": -5}}),
            "preferences.maxTokens",
        ),
        (
            json!({"preferences": {"maxTokens": 0}}),
            "preferences.maxTokens",
        ),
        (
            json!({"preferences": {"maxTokens": "many"}}),
            "preferences.maxTokens",
        ),
        (
            json!({"preferences": {"temperature": 9}}),
            "preferences.temperature",
        ),
        (
            json!({"preferences": {"defaultProvider": "acme"}}),
            "preferences.defaultProvider",
        ),
        (
            json!({"preferences": {"queryModel": "gpt-17"}}),
            "preferences.queryModel",
        ),
        (
            json!({"preferences": {"budgetAction": "explode"}}),
            "preferences.budgetAction",
        ),
        (
            json!({"preferences": {"monthlyBudgetUsd": 0.0000000001}}),
            "preferences.monthlyBudgetUsd",
        ),
        (
            json!({"preferences": {"fallbackProviders": ["nope"]}}),
            "preferences.fallbackProviders",
        ),
        (
            json!({"preferences": {"trackUsage": "yes"}}),
            "preferences.trackUsage",
        ),
        (json!({"preferences": {"maxTokenz": 1}}), "preferences"),
        (json!({"prefs": {}}), "prefs"),
        (json!({"apiKeys": {"acme": "x"}}), "apiKeys"),
        (
            json!({"apiKeys": {"openai": "not-a-key"}}),
            "apiKeys.openai",
        ),
        (
            json!({"apiKeys": {"anthropic": "sk-ant-api03-with space-0123456789abcdefghij"}}),
            "apiKeys.anthropic",
        ),
        (
            json!({"apiKeys": {"ollama": "sk-whatever-0123456789"}}),
            "apiKeys.ollama",
        ),
        (json!({"version": "seven"}), "version"),
        (json!([1, 2]), "body"),
    ];
    for (body, field) in cases {
        let r = put(&f, &f.alice, "alice", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.error_code(), "invalid_request", "{body}");
        assert!(r.error_message().starts_with(field), "{body}: {}", r.text);
    }
    // Nothing was written by any of them.
    let v = get(&f, Some(&f.alice), "/api/llm-settings/alice")
        .await
        .json();
    assert_eq!(v["version"], 0);
}

#[tokio::test]
async fn malformed_and_oversized_bodies() {
    let f = fixture().await;
    for body in ["{", "", "not json", "{\"preferences\": {}} trailing"] {
        let r = send(
            &f.router,
            request(
                Method::PUT,
                "/api/llm-settings/alice",
                Some(&f.alice),
                Some(body.into()),
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(r.error_code(), "malformed_json");
    }
    let big = format!(
        "{{\"preferences\": {{\"queryModel\": \"{}\"}}}}",
        "x".repeat(1024 * 1024 + 1)
    );
    let r = send(
        &f.router,
        request(
            Method::PUT,
            "/api/llm-settings/alice",
            Some(&f.alice),
            Some(big),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.error_code(), "payload_too_large");
}

#[tokio::test]
async fn a_key_sent_in_the_wrong_place_is_not_echoed() {
    let f = fixture().await;
    let r = put(&f, &f.alice, "alice", json!({"apiKeys": ANTHROPIC_KEY})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!r.text.contains("ROUTERTESTKEY"), "{}", r.text);
    let r = put(
        &f,
        &f.alice,
        "alice",
        json!({"preferences": {"queryModel": ANTHROPIC_KEY}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!r.text.contains("ROUTERTESTKEY"), "{}", r.text);
}

#[tokio::test]
async fn version_makes_the_write_conditional() {
    let f = fixture().await;
    let r = put(
        &f,
        &f.alice,
        "alice",
        json!({"version": 0, "preferences": {"maxTokens": 10}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = put(
        &f,
        &f.alice,
        "alice",
        json!({"version": 0, "preferences": {"maxTokens": 20}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error_code(), "version_conflict");
    let v = get(&f, Some(&f.alice), "/api/llm-settings/alice")
        .await
        .json();
    assert_eq!(v["preferences"]["maxTokens"], 10);
    let r = put(
        &f,
        &f.alice,
        "alice",
        json!({"version": 1, "preferences": {"maxTokens": 20}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn user_ids_are_url_decoded_and_checked() {
    let d = local_deployment();
    let token = issue_token(&d.db, "user@example.com", false).await.unwrap();
    let router = app(settings_router(d.state));
    let r = send(
        &router,
        request(
            Method::GET,
            "/api/llm-settings/user%40example.com",
            Some(&token),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(
        &router,
        request(Method::GET, "/api/llm-settings/a%2Fb", Some(&token), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error_message().starts_with("userId"));
    let r = send(
        &router,
        request(Method::GET, "/api/llm-settings/%FF", Some(&token), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let f = fixture().await;
    let r = get(&f, Some(&f.alice), "/api/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "not_found");
    let r = send(
        &f.router,
        request(
            Method::POST,
            "/api/llm-settings/alice",
            Some(&f.alice),
            Some("{}".into()),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.error_code(), "method_not_allowed");
    assert!(
        r.headers["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req-")
    );
}

#[tokio::test]
async fn model_catalog() {
    let f = fixture().await;
    let r = get(&f, Some(&f.alice), "/api/llm-models").await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    let models = v["models"].as_array().unwrap();
    let sonnet = models
        .iter()
        .find(|m| m["id"] == "claude-3-5-sonnet-20241022")
        .unwrap();
    assert_eq!(sonnet["provider"], "anthropic");
    assert_eq!(sonnet["display_name"], "Claude 3.5 Sonnet");
    assert_eq!(sonnet["input_per_1m"], 3.0);
    assert_eq!(sonnet["output_per_1m"], 15.0);
    assert_eq!(sonnet["cached_input_per_1m"], 0.3);
    assert_eq!(sonnet["cache_write_per_1m"], 3.75);
    assert_eq!(sonnet["context_window"], 200000);
    assert_eq!(sonnet["enabled"], true);
    assert!(
        sonnet["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("streaming"))
    );
    for provider in ["anthropic", "openai", "google", "bedrock"] {
        assert!(
            models.iter().any(|m| m["provider"] == provider),
            "{provider}"
        );
    }
}
