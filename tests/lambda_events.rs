//! The Lambda path, proven before any AWS backend exists: real API Gateway HTTP API
//! (payload 2.0) events carrying JWT authorizer claims are parsed by `lambda_http` and
//! served by the same settings and usage routers, with identity taken from the claims.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::http::StatusCode;
use http_body_util::BodyExt;
use shared::http::{UsageState, app, settings_router, usage_router};
use shared::identity::IdentityMode;
use shared::store::sqlite::SqliteStore;
use shared::usage::token::TokenKey;
use std::sync::Arc;
use tower::ServiceExt;

fn fixture(name: &str) -> String {
    let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn invoke(router: &axum::Router, name: &str) -> (StatusCode, serde_json::Value) {
    invoke_event(router, &fixture(name)).await
}

async fn invoke_event(router: &axum::Router, event: &str) -> (StatusCode, serde_json::Value) {
    let request = lambda_http::request::from_str(event).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

fn lambda_router() -> axum::Router {
    let d = support::lambda_deployment(IdentityMode::api_gateway(None, None));
    app(settings_router(d.state))
}

#[tokio::test]
async fn sub_claim_is_the_user() {
    let router = lambda_router();
    let (status, body) = invoke(&router, "apigw_v2_get_own_settings.json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 0);
}

#[tokio::test]
async fn another_users_settings_are_forbidden() {
    let router = lambda_router();
    let (status, body) = invoke(&router, "apigw_v2_get_other_settings.json").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "forbidden");
    // A group whose name only resembles the admin group grants nothing.
    let (status, _) = invoke(&router, "apigw_v2_lookalike_group.json").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn cognito_groups_string_makes_an_admin() {
    let router = lambda_router();
    let (status, body) = invoke(&router, "apigw_v2_admin_get_other_settings.json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_custom_admin_claim_is_honoured() {
    let d = support::lambda_deployment(IdentityMode::api_gateway(
        Some("custom:roles".into()),
        Some("llm-admin".into()),
    ));
    let router = app(settings_router(d.state));
    // The fixture's admin group is in cognito:groups, which this deployment ignores.
    let (status, _) = invoke(&router, "apigw_v2_admin_get_other_settings.json").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn no_authorizer_claims_is_401_and_bearer_headers_are_not_trusted() {
    // The fixture carries an Authorization header but no verified claims.
    let router = lambda_router();
    let (status, body) = invoke(&router, "apigw_v2_no_authorizer.json").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
}

#[tokio::test]
async fn the_dashboard_page_is_public_and_self_contained() {
    // `GET /` reaches llm-settings without an authorizer (infra: public_api_routes).
    let router = lambda_router();
    let request = lambda_http::request::from_str(&fixture("apigw_v2_get_dashboard.json")).unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("connect-src 'self'") && csp.contains("script-src 'self'"));
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let html = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(
        html.contains("<script type=\"module\" src=\"/assets/app.js\">"),
        "{html}"
    );
}

#[tokio::test]
async fn put_through_the_lambda_path_plain_and_base64() {
    let router = lambda_router();
    let (status, body) = invoke(&router, "apigw_v2_put_own_settings.json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["preferences"]["maxTokens"], 777);
    assert_eq!(body["hasApiKeys"]["openai"], true);
    assert_eq!(body["keyHints"]["openai"], "…wxyz");
    assert!(!body.to_string().contains("LAMBDAFIXTUREKEY"));
    let (status, body) = invoke(&router, "apigw_v2_put_own_settings_base64.json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["preferences"]["temperature"], 0.5);
    assert_eq!(body["preferences"]["maxTokens"], 777);
    assert_eq!(body["version"], 2);
}

/// The usage router as llm-usage builds it: a state of stores, identity and the
/// page-token key and the registry, with no key vault or provider transport. Callers
/// still come from the verified claims.
#[tokio::test]
async fn usage_routes_take_the_caller_from_the_claims() {
    let db = SqliteStore::open_in_memory().unwrap();
    let router = app(usage_router(UsageState {
        identity: IdentityMode::api_gateway(None, None),
        settings: Arc::new(db.clone()),
        usage: Arc::new(db.clone()),
        budgets: Arc::new(db),
        token_key: TokenKey::new(b"lambda-events"),
        limits: Arc::new(SqliteStore::open_in_memory().unwrap()),
        audit: Arc::new(SqliteStore::open_in_memory().unwrap()),
        rate_limits: Arc::new(shared::store::warm::ratelimits::MemoryRateLimits::default()),
        registry: Arc::new(shared::registry::RegistryCache::new(
            Arc::new(SqliteStore::open_in_memory().unwrap()),
            shared::pricing::catalog().unwrap(),
            std::time::Duration::from_secs(5),
        )),
    }));
    // The settings fixtures, sent to a usage route instead.
    let to = |name: &str, path: &str| {
        fixture(name)
            .replace("/api/llm-settings/user-1", path)
            .replace("/api/llm-settings/user-2", path)
    };
    let own = to(
        "apigw_v2_get_own_settings.json",
        "/api/llm-usage/user-1/budget",
    );
    let (status, body) = invoke_event(&router, &own).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["limit_usd"], serde_json::Value::Null);
    let other = to("apigw_v2_get_other_settings.json", "/api/llm-usage/user-2");
    assert_eq!(invoke_event(&router, &other).await.0, StatusCode::FORBIDDEN);
    let anonymous = to("apigw_v2_no_authorizer.json", "/api/llm-usage/user-1");
    assert_eq!(
        invoke_event(&router, &anonymous).await.0,
        StatusCode::UNAUTHORIZED
    );
    let admin = to(
        "apigw_v2_admin_get_other_settings.json",
        "/api/admin/usage/summary",
    );
    let (status, body) = invoke_event(&router, &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["entries_read"], 0);
    let lookalike = to("apigw_v2_lookalike_group.json", "/api/admin/usage/summary");
    assert_eq!(
        invoke_event(&router, &lookalike).await.0,
        StatusCode::FORBIDDEN
    );
}
