//! The tenant analytics routes in-process against SQLite: who may read a tenant's usage
//! (its members and global admins only), totals that are the sum of the members' own,
//! and the last 24 hours per model with error classes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use shared::http::{UsageState, app, usage_router};
use shared::identity::{NewToken, issue, issue_token};
use shared::money::NanoUsd;
use shared::provider::Provider;
use shared::store::UsageStore;
use shared::store::sqlite::SqliteStore;
use shared::usage::token::TokenKey;
use shared::usage::{UsageEntry, UsageStatus, timestamp};
use std::collections::BTreeMap;
use std::sync::Arc;
use support::{local_deployment, request, send};

struct Fixture {
    router: axum::Router,
    /// Tokens: a member of acme, a member of globex, a user with no tenant, an admin.
    acme: String,
    globex: String,
    loner: String,
    admin: String,
    entries: Vec<UsageEntry>,
}

async fn member(db: &SqliteStore, user: &str, tenant: &str) -> String {
    let spec = NewToken {
        user_id: user,
        is_admin: false,
        tenant_id: Some(tenant),
        is_tenant_admin: false,
        expires_at: None,
    };
    issue(db, &spec).await.unwrap()
}

#[allow(clippy::too_many_arguments)]
fn entry(
    user: &str,
    tenant: Option<&str>,
    at: DateTime<Utc>,
    provider: Provider,
    model: &str,
    cost: i64,
    status: UsageStatus,
    error: Option<&str>,
) -> UsageEntry {
    UsageEntry {
        user_id: user.into(),
        timestamp: timestamp(at),
        request_id: format!("req-{}", uuid::Uuid::new_v4().simple()),
        provider,
        model: model.into(),
        operation_type: "query_generation".into(),
        input_tokens: 300,
        output_tokens: 100,
        cached_input_tokens: 0,
        total_tokens: 400,
        cost_usd: Some(NanoUsd(cost)),
        latency_ms: 100.0,
        status,
        error_type: error.map(str::to_owned),
        price_version: "test".into(),
        metadata: BTreeMap::new(),
        key_source: None,
        tenant_id: tenant.map(str::to_owned),
        ttl: at.timestamp() + 86_400 * 365,
    }
}

async fn fixture() -> Fixture {
    let d = local_deployment();
    let acme = member(&d.db, "a1", "acme").await;
    let globex = member(&d.db, "g1", "globex").await;
    let loner = issue_token(&d.db, "loner", false).await.unwrap();
    let admin = issue_token(&d.db, "ops", true).await.unwrap();
    let now = Utc::now();
    let (ok, err) = (UsageStatus::Success, UsageStatus::Error);
    let (claude, gpt) = ("claude-3-5-sonnet-20241022", "gpt-4o");
    let (ant, oai) = (Provider::Anthropic, Provider::OpenAi);
    let h = Duration::hours;
    let acme_t = Some("acme");
    let entries = vec![
        // acme, within the last 24 hours.
        entry(
            "a1",
            acme_t,
            now - Duration::minutes(10),
            ant,
            claude,
            1_000,
            ok,
            None,
        ),
        entry(
            "a2",
            acme_t,
            now - h(2),
            ant,
            claude,
            2_000,
            err,
            Some("rate_limited"),
        ),
        entry(
            "a2",
            acme_t,
            now - h(5),
            ant,
            claude,
            3_000,
            err,
            Some("rate_limited"),
        ),
        entry(
            "a1",
            acme_t,
            now - h(22),
            oai,
            gpt,
            4_000,
            err,
            Some("timeout"),
        ),
        entry("a2", acme_t, now - h(3), oai, gpt, 5_000, ok, None),
        // acme, before the window.
        entry("a1", acme_t, now - h(26), oai, gpt, 6_000, ok, None),
        entry(
            "a2",
            acme_t,
            now - Duration::days(4),
            ant,
            claude,
            7_000,
            ok,
            None,
        ),
        // Others: globex's member, and a1 once before joining (no tenant).
        entry("g1", Some("globex"), now - h(1), oai, gpt, 8_000, ok, None),
        entry("a1", None, now - h(4), oai, gpt, 9_000, ok, None),
    ];
    for e in &entries {
        d.db.record(e, None).await.unwrap();
    }
    // A repeat write counts once.
    d.db.record(&entries[0], None).await.unwrap();
    let state = UsageState {
        identity: d.state.identity.clone(),
        settings: Arc::new(d.db.clone()),
        usage: Arc::new(d.db.clone()),
        budgets: Arc::new(d.db.clone()),
        token_key: TokenKey::new(b"test-key"),
        limits: Arc::new(d.db.clone()),
        audit: Arc::new(d.db.clone()),
        rate_limits: Arc::new(shared::store::warm::ratelimits::MemoryRateLimits::default()),
        registry: d.state.registry.clone(),
    };
    Fixture {
        router: app(usage_router(state)),
        acme,
        globex,
        loner,
        admin,
        entries,
    }
}

async fn get(f: &Fixture, token: &str, path: &str) -> (StatusCode, Value) {
    let r = send(&f.router, request(Method::GET, path, Some(token), None)).await;
    (
        r.status,
        serde_json::from_str(&r.text).unwrap_or(Value::Null),
    )
}

fn nanos(v: &Value) -> i64 {
    (v.as_f64().unwrap() * 1e9).round() as i64
}

const ROUTES: [&str; 3] = ["summary", "daily", "last24h"];

#[tokio::test]
async fn only_members_and_global_admins_read_a_tenant() {
    let f = fixture().await;
    for route in ROUTES {
        let acme = format!("/api/tenants/acme/llm-usage/{route}");
        let globex = format!("/api/tenants/globex/llm-usage/{route}");
        assert_eq!(get(&f, &f.acme, &acme).await.0, StatusCode::OK, "{route}");
        assert_eq!(get(&f, &f.globex, &globex).await.0, StatusCode::OK);
        // Another tenant's member, and a user with no tenant: 403.
        let (status, body) = get(&f, &f.acme, &globex).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{route}");
        assert_eq!(body["error"]["code"], "forbidden");
        assert_eq!(get(&f, &f.globex, &acme).await.0, StatusCode::FORBIDDEN);
        assert_eq!(get(&f, &f.loner, &acme).await.0, StatusCode::FORBIDDEN);
        // A global admin reads both.
        assert_eq!(get(&f, &f.admin, &acme).await.0, StatusCode::OK);
        assert_eq!(get(&f, &f.admin, &globex).await.0, StatusCode::OK);
        // Unknown parameters are refused, as on the user routes.
        let (status, _) = get(&f, &f.acme, &format!("{acme}?bogus=1")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{route}");
    }
    let r = send(
        &f.router,
        request(
            Method::GET,
            "/api/tenants/acme/llm-usage/summary",
            None,
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tenant_totals_are_the_sum_of_its_members_entries() {
    let f = fixture().await;
    let acme: Vec<&UsageEntry> = f
        .entries
        .iter()
        .filter(|e| e.tenant_id.as_deref() == Some("acme"))
        .collect();
    let start = (Utc::now() - Duration::days(10))
        .format("%Y-%m-%d")
        .to_string();
    let path = format!("/api/tenants/acme/llm-usage/summary?start={start}");
    let (status, v) = get(&f, &f.acme, &path).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["total_requests"], acme.len());
    let cost: i64 = acme.iter().map(|e| e.cost_usd.unwrap().0).sum();
    assert_eq!(nanos(&v["total_cost_usd"]), cost);
    assert_eq!(v["total_tokens"], 400 * acme.len());
    let errors = acme
        .iter()
        .filter(|e| e.status == UsageStatus::Error)
        .count();
    let expected_rate = (acme.len() - errors) as f64 / acme.len() as f64;
    assert!((v["success_rate"].as_f64().unwrap() - expected_rate).abs() < 1e-12);
    assert_eq!(v["by_provider"]["anthropic"]["requests"], 4);
    assert_eq!(v["by_model"]["gpt-4o"]["requests"], 3);
    assert_eq!(v["by_operation"]["query_generation"]["requests"], 7);
    assert_eq!(v["read"]["entries"], 0);
    // Another tenant's usage and a member's usage outside the tenant are not in it.
    let (_, g) = get(&f, &f.globex, "/api/tenants/globex/llm-usage/summary").await;
    assert_eq!(g["total_requests"], 1);
    assert_eq!(nanos(&g["total_cost_usd"]), 8_000);

    // Daily: one row per day; each day the sum of the members' entries of the tenant.
    let (status, d) = get(&f, &f.admin, "/api/tenants/acme/llm-usage/daily?days=7").await;
    assert_eq!(status, StatusCode::OK);
    let rows = d["days"].as_array().unwrap();
    assert_eq!(rows.len(), 7);
    for row in rows {
        let date = row["date"].as_str().unwrap();
        let day: Vec<&&UsageEntry> = acme.iter().filter(|e| e.day() == date).collect();
        assert_eq!(row["requests"], day.len(), "{date}");
        let cost: i64 = day.iter().map(|e| e.cost_usd.unwrap().0).sum();
        assert_eq!(nanos(&row["cost_usd"]), cost, "{date}");
        let errors = day
            .iter()
            .filter(|e| e.status == UsageStatus::Error)
            .count();
        assert_eq!(row["errors"], errors, "{date}");
    }
    let (status, _) = get(&f, &f.acme, "/api/tenants/acme/llm-usage/daily?days=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn last24h_is_per_model_with_error_classes() {
    let f = fixture().await;
    let (status, v) = get(&f, &f.acme, "/api/tenants/acme/llm-usage/last24h").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["window"]["start"].as_str().unwrap() < v["window"]["end"].as_str().unwrap());
    let models = v["models"].as_array().unwrap();
    assert_eq!(models.len(), 2, "{v}");
    let claude = &models[0];
    assert_eq!(
        (&claude["provider"], &claude["model"]),
        (
            &Value::from("anthropic"),
            &Value::from("claude-3-5-sonnet-20241022")
        )
    );
    assert_eq!(claude["requests"], 3);
    assert_eq!(claude["tokens"], 1200);
    assert_eq!(nanos(&claude["cost_usd"]), 6_000);
    assert_eq!(claude["avg_latency_ms"], 100.0);
    assert!((claude["success_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(claude["errors"], serde_json::json!({"rate_limited": 2}));
    let gpt = &models[1];
    assert_eq!(
        (&gpt["provider"], &gpt["model"]),
        (&Value::from("openai"), &Value::from("gpt-4o"))
    );
    // The one 26 hours ago is outside; a1's usage without the tenant is not the tenant's.
    assert_eq!(gpt["requests"], 2);
    assert_eq!(nanos(&gpt["cost_usd"]), 9_000);
    assert_eq!(gpt["success_rate"], 0.5);
    assert_eq!(gpt["errors"], serde_json::json!({"timeout": 1}));
    let (_, g) = get(&f, &f.globex, "/api/tenants/globex/llm-usage/last24h").await;
    assert_eq!(g["models"][0]["requests"], 1);
    assert_eq!(g["models"][0]["errors"], serde_json::json!({}));
}
