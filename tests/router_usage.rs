//! The usage routes against an independent recomputation: randomized usage histories
//! are recorded through the store, and every number the summary, daily and budget
//! routes give is checked against a brute-force pass over the raw entries. Pagination
//! walks every entry exactly once; tokens from another user or query are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use shared::http::{UsageState, app, usage_router};
use shared::identity::issue_token;
use shared::money::NanoUsd;
use shared::provider::Provider;
use shared::store::UsageStore;
use shared::usage::token::TokenKey;
use shared::usage::{Settlement, UsageEntry, UsageStatus, month_of, timestamp};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use support::{local_deployment, request, send};

/// A small deterministic generator, so a failing history can be replayed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_entry(rng: &mut Lcg, user: &str, now: DateTime<Utc>, i: usize) -> UsageEntry {
    let at = now - Duration::seconds(i64::try_from(rng.below(40 * 86_400)).unwrap());
    let provider = [Provider::Anthropic, Provider::OpenAi, Provider::Google][rng.below(3) as usize];
    let model = format!("{}-model-{}", provider, rng.below(2));
    let status = match rng.below(10) {
        0 => UsageStatus::Error,
        1 => UsageStatus::Cached,
        _ => UsageStatus::Success,
    };
    let (input, output) = (rng.below(5000), rng.below(2000));
    let cost = match status {
        UsageStatus::Success if rng.below(20) == 0 => None, // an unpriced model
        UsageStatus::Success => Some(NanoUsd(i64::try_from(rng.below(50_000_000)).unwrap())),
        _ => Some(NanoUsd(0)),
    };
    UsageEntry {
        user_id: user.into(),
        timestamp: timestamp(at),
        request_id: format!("req-{i:06}-{}", rng.below(1_000_000)),
        provider,
        model,
        operation_type: ["query_generation", "conversation", "detection_rule"]
            [rng.below(3) as usize]
            .into(),
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: input / 3,
        total_tokens: input + output,
        cost_usd: cost,
        latency_ms: f64::from(u32::try_from(rng.below(5_000_000)).unwrap()) / 1000.0,
        status,
        error_type: (status == UsageStatus::Error).then(|| "server_error".into()),
        price_version: "test".into(),
        metadata: BTreeMap::from([("n".to_string(), serde_json::json!(i))]),
        key_source: None,
        tenant_id: None,
        ttl: now.timestamp() + 86_400 * 365,
    }
}

struct Fixture {
    router: axum::Router,
    token: String,
    other: String,
    entries: Vec<UsageEntry>,
    now: DateTime<Utc>,
}

async fn fixture(seed: u64, n: usize) -> Fixture {
    let d = local_deployment();
    let token = issue_token(&d.db, "alice", false).await.unwrap();
    let other = issue_token(&d.db, "bob", false).await.unwrap();
    let now = Utc::now();
    let mut rng = Lcg(seed);
    let mut entries = Vec::new();
    for i in 0..n {
        let e = random_entry(&mut rng, "alice", now, i);
        let settlement = Settlement {
            month: e.month().to_owned(),
            reservation_id: e.request_id.clone(),
            reserved: NanoUsd(0),
            actual: e.cost_usd.unwrap_or(NanoUsd(0)),
            tenant: None,
        };
        d.db.record(&e, Some(&settlement)).await.unwrap();
        entries.push(e);
    }
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
        token,
        other,
        entries,
        now,
    }
}

async fn get(f: &Fixture, path: &str) -> (StatusCode, Value, String) {
    let r = send(&f.router, request(Method::GET, path, Some(&f.token), None)).await;
    let v = serde_json::from_str(&r.text).unwrap_or(Value::Null);
    (r.status, v, r.text)
}

fn nanos(v: &Value) -> i64 {
    // Dollars as JSON numbers; exact to the nano-dollar for these magnitudes.
    (v.as_f64().unwrap() * 1e9).round() as i64
}

/// Totals, error and cache counts, latency sum and per-group (requests, tokens, cost),
/// computed straight from the entries.
type Brute = (
    u64,
    u64,
    i64,
    u64,
    u64,
    u64,
    BTreeMap<String, (u64, u64, i64)>,
);

fn brute(entries: &[&UsageEntry]) -> Brute {
    let mut groups = BTreeMap::new();
    let (mut req, mut tok, mut cost, mut err, mut cached, mut lat) = (0, 0, 0, 0, 0, 0u64);
    for e in entries {
        req += 1;
        tok += e.total_tokens;
        let c = e.cost_usd.map_or(0, |c| c.0);
        cost += c;
        err += u64::from(e.status == UsageStatus::Error);
        cached += u64::from(e.status == UsageStatus::Cached);
        lat += (e.latency_ms * 1000.0) as u64;
        for key in [
            format!("p:{}", e.provider),
            format!("o:{}", e.operation_type),
            format!("m:{}", e.model),
        ] {
            let g = groups.entry(key).or_insert((0, 0, 0));
            g.0 += 1;
            g.1 += e.total_tokens;
            g.2 += c;
        }
    }
    (req, tok, cost, err, cached, lat, groups)
}

#[tokio::test]
async fn summary_matches_a_brute_force_recomputation_over_random_ranges() {
    for seed in [1, 7, 42] {
        let f = fixture(seed, 600).await;
        let mut rng = Lcg(seed + 100);
        for _ in 0..8 {
            // Ranges that start and end mid-day, anywhere in the history.
            let a = f.now - Duration::seconds(i64::try_from(rng.below(41 * 86_400)).unwrap());
            let b = f.now - Duration::seconds(i64::try_from(rng.below(41 * 86_400)).unwrap());
            let (start, end) = if a < b { (a, b) } else { (b, a) };
            if start == end {
                continue;
            }
            let (s, e) = (timestamp(start), timestamp(end));
            let (status, v, text) = get(
                &f,
                &format!("/api/llm-usage/alice/summary?start={s}&end={e}"),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{text}");
            let inside: Vec<&UsageEntry> = f
                .entries
                .iter()
                .filter(|x| x.timestamp >= s && x.timestamp < e)
                .collect();
            let (req, tok, cost, err, cached, lat, groups) = brute(&inside);
            assert_eq!(v["total_requests"], req, "seed {seed} {s}..{e}");
            assert_eq!(v["total_tokens"], tok);
            assert_eq!(nanos(&v["total_cost_usd"]), cost);
            if req > 0 {
                // Ratios are display values (money is compared exactly, in nanos); the JSON
                // parser's float rounding may differ by one ulp.
                let close = |a: &Value, b: f64| (a.as_f64().unwrap() - b).abs() < 1e-12;
                assert!(close(&v["success_rate"], (req - err) as f64 / req as f64));
                assert!(close(&v["cache_hit_rate"], cached as f64 / req as f64));
                assert!(close(
                    &v["avg_latency_ms"],
                    lat as f64 / req as f64 / 1000.0
                ));
                let avg = (2 * i128::from(cost) + i128::from(req)) / (2 * i128::from(req));
                assert_eq!(
                    nanos(&v["avg_cost_per_request"]),
                    i64::try_from(avg).unwrap()
                );
            }
            for (key, (r, t, c)) in &groups {
                let (field, name) = key.split_once(':').unwrap();
                let field = match field {
                    "p" => "by_provider",
                    "o" => "by_operation",
                    _ => "by_model",
                };
                assert_eq!(v[field][name]["requests"], *r, "{field} {name}");
                assert_eq!(v[field][name]["tokens"], *t);
                assert_eq!(nanos(&v[field][name]["cost_usd"]), *c);
            }
            let unpriced = inside.iter().filter(|x| x.cost_usd.is_none()).count();
            assert_eq!(v["unpriced_requests"], unpriced);
        }
    }
}

#[tokio::test]
async fn daily_and_budget_match_the_entries() {
    let f = fixture(3, 500).await;
    let (status, v, _) = get(&f, "/api/llm-usage/alice/daily?days=30").await;
    assert_eq!(status, StatusCode::OK);
    let days = v["days"].as_array().unwrap();
    assert_eq!(days.len(), 30, "one row per day, zero days included");
    let today = f.now.format("%Y-%m-%d").to_string();
    assert_eq!(days[29]["date"], today.as_str());
    for row in days {
        let date = row["date"].as_str().unwrap();
        let inside: Vec<&UsageEntry> = f.entries.iter().filter(|x| x.day() == date).collect();
        let (req, tok, cost, err, ..) = brute(&inside);
        assert_eq!(row["requests"], req, "{date}");
        assert_eq!(row["tokens"], tok);
        assert_eq!(nanos(&row["cost_usd"]), cost);
        assert_eq!(row["errors"], err);
    }
    let (status, v, _) = get(&f, "/api/llm-usage/alice/budget").await;
    assert_eq!(status, StatusCode::OK);
    let month = month_of(Utc::now());
    let spent: i64 = f
        .entries
        .iter()
        .filter(|x| x.month() == month)
        .map(|x| x.cost_usd.map_or(0, |c| c.0))
        .sum();
    assert_eq!(v["month"], month.as_str());
    assert_eq!(nanos(&v["spent_usd"]), spent);
    assert_eq!(v["limit_usd"], Value::Null);
    assert_eq!(v["remaining_usd"], Value::Null);
    assert_eq!(
        nanos(&v["projected_usd"]),
        shared::usage::report::projected(NanoUsd(spent), Utc::now()).0
    );
    for (bad, field) in [
        ("?days=0", "days"),
        ("?days=1000", "days"),
        ("?days=x", "days"),
        ("?weeks=2", "weeks"),
    ] {
        let (status, v, _) = get(&f, &format!("/api/llm-usage/alice/daily{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            v["error"]["message"].as_str().unwrap().starts_with(field),
            "{v}"
        );
    }
}

#[tokio::test]
async fn pagination_walks_every_entry_exactly_once_with_filters() {
    let f = fixture(11, 700).await;
    for query in [
        "",
        "&provider=openai",
        "&status=error",
        "&model=google-model-1&operationType=conversation",
    ] {
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut path = format!("/api/llm-usage/alice?limit=37{query}");
            if let Some(t) = &token {
                path.push_str(&format!("&nextToken={t}"));
            }
            let (status, v, text) = get(&f, &path).await;
            assert_eq!(status, StatusCode::OK, "{text}");
            for e in v["entries"].as_array().unwrap() {
                seen.push(e["request_id"].as_str().unwrap().to_owned());
            }
            pages += 1;
            assert!(pages < 100);
            match v["nextToken"].as_str() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        let mut expected: Vec<&UsageEntry> = f
            .entries
            .iter()
            .filter(|e| match query {
                "&provider=openai" => e.provider == Provider::OpenAi,
                "&status=error" => e.status == UsageStatus::Error,
                "" => true,
                _ => e.model == "google-model-1" && e.operation_type == "conversation",
            })
            .collect();
        expected.sort_by(|a, b| (&b.timestamp, &b.request_id).cmp(&(&a.timestamp, &a.request_id)));
        let expected: Vec<String> = expected.iter().map(|e| e.request_id.clone()).collect();
        assert_eq!(
            seen.len(),
            seen.iter().collect::<HashSet<_>>().len(),
            "no entry twice ({query})"
        );
        assert_eq!(seen, expected, "every entry once, newest first ({query})");
    }
}

#[tokio::test]
async fn tokens_bound_to_user_and_query_and_input_errors() {
    let f = fixture(5, 120).await;
    let (_, v, _) = get(&f, "/api/llm-usage/alice?limit=10&provider=openai").await;
    let token = v["nextToken"].as_str().unwrap().to_owned();
    // Another filter, another user's path (as admin would), a tampered token: 400.
    let (status, _, _) = get(
        &f,
        &format!("/api/llm-usage/alice?limit=10&provider=google&nextToken={token}"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let tampered = format!("{}x", token);
    let (status, v, _) = get(
        &f,
        &format!("/api/llm-usage/alice?limit=10&provider=openai&nextToken={tampered}"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("nextToken")
    );
    let r = send(
        &f.router,
        request(
            Method::GET,
            &format!("/api/llm-usage/bob?limit=10&provider=openai&nextToken={token}"),
            Some(&f.other),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // Someone else's usage: 403.
    let r = send(
        &f.router,
        request(
            Method::GET,
            "/api/llm-usage/alice/summary",
            Some(&f.other),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for (q, field) in [
        ("?start=yesterday", "start"),
        ("?start=2026-11-05&end=2026-11-01", "start"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?provider=acme", "provider"),
        ("?status=fine", "status"),
        ("?colour=red", "colour"),
    ] {
        let (status, v, _) = get(&f, &format!("/api/llm-usage/alice{q}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}");
        assert!(
            v["error"]["message"].as_str().unwrap().starts_with(field),
            "{q}: {v}"
        );
    }
}

#[tokio::test]
async fn export_streams_every_entry_as_csv_or_ndjson() {
    let f = fixture(9, 1300).await;
    let start = timestamp(f.now - Duration::days(41));
    let r = send(
        &f.router,
        request(
            Method::GET,
            &format!("/api/llm-usage/alice/export?format=csv&start={start}"),
            Some(&f.token),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let lines: Vec<&str> = r.text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("user_id,timestamp,request_id,provider,model"));
    assert_eq!(lines.len(), 1 + f.entries.len(), "a header and every entry");
    // Metadata is JSON with quotes and commas: quoted per RFC 4180.
    assert!(lines[1].ends_with("\"{\"\"n\"\":") || lines[1].contains("\"{\"\"n\"\":"));
    let r = send(
        &f.router,
        request(
            Method::GET,
            &format!("/api/llm-usage/alice/export?format=ndjson&start={start}"),
            Some(&f.token),
            None,
        ),
    )
    .await;
    let ids: HashSet<String> = r
        .text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["request_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), f.entries.len());
    let (status, _, _) = get(&f, "/api/llm-usage/alice/export?format=xlsx").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn expired_entries_are_not_read_and_are_purged() {
    let d = local_deployment();
    let token = issue_token(&d.db, "alice", false).await.unwrap();
    let now = Utc::now();
    let mut rng = Lcg(99);
    let mut fresh = random_entry(&mut rng, "alice", now, 1);
    fresh.timestamp = timestamp(now - Duration::hours(1));
    let mut old = random_entry(&mut rng, "alice", now, 2);
    old.timestamp = timestamp(now - Duration::hours(2));
    old.ttl = now.timestamp() - 10;
    d.db.record(&fresh, None).await.unwrap();
    d.db.record(&old, None).await.unwrap();
    let state = UsageState {
        identity: d.state.identity.clone(),
        settings: Arc::new(d.db.clone()),
        usage: Arc::new(d.db.clone()),
        budgets: Arc::new(d.db.clone()),
        token_key: TokenKey::new(b"k"),
        limits: Arc::new(d.db.clone()),
        audit: Arc::new(d.db.clone()),
        rate_limits: Arc::new(shared::store::warm::ratelimits::MemoryRateLimits::default()),
        registry: d.state.registry.clone(),
    };
    let router = app(usage_router(state));
    let r = send(
        &router,
        request(Method::GET, "/api/llm-usage/alice", Some(&token), None),
    )
    .await;
    let v: Value = serde_json::from_str(&r.text).unwrap();
    assert_eq!(
        v["entries"].as_array().unwrap().len(),
        1,
        "expired entries are filtered on read"
    );
    assert_eq!(
        d.db.purge_expired(now.timestamp(), "2000-01-01")
            .await
            .unwrap(),
        1
    );
    let (left, _) =
        d.db.entries("alice", "2000", "9999", 10, None)
            .await
            .unwrap();
    assert_eq!(left.len(), 1);
}

#[tokio::test]
async fn admins_see_every_users_usage_through_the_provider_index() {
    let d = local_deployment();
    let admin = issue_token(&d.db, "ops", true).await.unwrap();
    let user = issue_token(&d.db, "alice", false).await.unwrap();
    let now = Utc::now();
    let mut rng = Lcg(77);
    let mut all = Vec::new();
    for (i, who) in ["alice", "bob", "carol"]
        .iter()
        .cycle()
        .take(90)
        .enumerate()
    {
        let e = random_entry(&mut rng, who, now, i);
        d.db.record(&e, None).await.unwrap();
        all.push(e);
    }
    let state = UsageState {
        identity: d.state.identity.clone(),
        settings: Arc::new(d.db.clone()),
        usage: Arc::new(d.db.clone()),
        budgets: Arc::new(d.db.clone()),
        token_key: TokenKey::new(b"k"),
        limits: Arc::new(d.db.clone()),
        audit: Arc::new(d.db.clone()),
        rate_limits: Arc::new(shared::store::warm::ratelimits::MemoryRateLimits::default()),
        registry: d.state.registry.clone(),
    };
    let router = app(usage_router(state));
    let start = timestamp(now - Duration::days(41));
    let r = send(
        &router,
        request(
            Method::GET,
            &format!("/api/admin/usage/summary?start={start}&provider=openai"),
            Some(&admin),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v: Value = serde_json::from_str(&r.text).unwrap();
    let openai: Vec<&UsageEntry> = all
        .iter()
        .filter(|e| e.provider == Provider::OpenAi)
        .collect();
    assert_eq!(v["total_requests"], openai.len());
    assert_eq!(
        v["entries_read"],
        openai.len(),
        "only that provider's entries are read"
    );
    for who in ["alice", "bob", "carol"] {
        let n = openai.iter().filter(|e| e.user_id == who).count();
        assert_eq!(v["by_user"][who]["requests"], n, "{who}");
    }
    let r = send(
        &router,
        request(
            Method::GET,
            &format!("/api/admin/usage/summary?start={start}"),
            Some(&admin),
            None,
        ),
    )
    .await;
    let v: Value = serde_json::from_str(&r.text).unwrap();
    assert_eq!(v["total_requests"], all.len());
    let r = send(
        &router,
        request(Method::GET, "/api/admin/usage/summary", Some(&user), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_default_summary_reads_rollups_only_and_matches() {
    let f = fixture(21, 800).await;
    let (status, v, text) = get(&f, "/api/llm-usage/alice/summary").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        v["read"]["entries"], 0,
        "no raw entry is read for a day-aligned range"
    );
    assert!(v["read"]["rollup_days"].as_u64().unwrap() <= 30);
    let start = v["start"].as_str().unwrap().to_owned();
    assert!(start.ends_with("T00:00:00.000Z"));
    let inside: Vec<&UsageEntry> = f.entries.iter().filter(|x| x.timestamp >= start).collect();
    let (req, tok, cost, ..) = brute(&inside);
    assert_eq!(v["total_requests"], req);
    assert_eq!(v["total_tokens"], tok);
    assert_eq!(nanos(&v["total_cost_usd"]), cost);
}

/// The nearest-rank percentile of `sorted` latencies, as the upper bound of its bin:
/// recomputed from the raw values, not from a histogram.
fn percentile_bound(sorted: &[f64], p: usize) -> Value {
    use shared::store::health::LATENCY_BOUNDS_MS;
    if sorted.is_empty() {
        return Value::Null;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    let v = sorted[rank - 1];
    let bound = LATENCY_BOUNDS_MS
        .iter()
        .find(|b| v <= f64::from(**b))
        .unwrap_or(LATENCY_BOUNDS_MS.last().unwrap());
    serde_json::json!(bound)
}

/// Compares a health view with its recomputation; rates within float noise (serde_json
/// does not parse floats to the last bit).
fn assert_health(got: &Value, want: &Value, what: &str) {
    for rate in ["success_rate", "cache_hit_rate"] {
        let (g, w) = (got[rate].as_f64().unwrap(), want[rate].as_f64().unwrap());
        assert!((g - w).abs() < 1e-12, "{what} {rate}: {g} vs {w}");
    }
    for exact in ["requests", "latency_p50_ms", "latency_p95_ms", "errors"] {
        assert_eq!(got[exact], want[exact], "{what} {exact}: {got}");
    }
    assert_eq!(got.as_object().unwrap().len(), 6, "{what}: {got}");
}

/// What a health view must say about `entries`, computed from them directly.
fn expected_health(entries: &[&UsageEntry]) -> Value {
    let n = entries.len();
    let count = |s: UsageStatus| entries.iter().filter(|e| e.status == s).count();
    let mut errors = BTreeMap::new();
    for e in entries.iter().filter(|e| e.status == UsageStatus::Error) {
        *errors
            .entry(e.error_type.clone().unwrap_or_else(|| "unknown".into()))
            .or_insert(0u64) += 1;
    }
    let mut latencies: Vec<f64> = entries
        .iter()
        .filter(|e| e.status != UsageStatus::Cached)
        .map(|e| e.latency_ms)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let rate = |k: usize| k as f64 / n as f64;
    serde_json::json!({
        "requests": n,
        "success_rate": rate(count(UsageStatus::Success) + count(UsageStatus::Cached)),
        "cache_hit_rate": rate(count(UsageStatus::Cached)),
        "latency_p50_ms": percentile_bound(&latencies, 50),
        "latency_p95_ms": percentile_bound(&latencies, 95),
        "errors": errors,
    })
}

#[tokio::test]
async fn provider_health_matches_a_recomputation_from_the_entries() {
    let d = local_deployment();
    let admin = issue_token(&d.db, "ops", true).await.unwrap();
    let user = issue_token(&d.db, "alice", false).await.unwrap();
    let now = Utc::now();
    let mut rng = Lcg(2024);
    let mut all = Vec::new();
    for (i, who) in ["alice", "bob"].iter().cycle().take(400).enumerate() {
        let mut e = random_entry(&mut rng, who, now, i);
        // Within the last 30 hours, so both windows and what lies before them are hit.
        let ago = i64::try_from(rng.below(30 * 3600)).unwrap();
        e.timestamp = timestamp(now - Duration::seconds(ago));
        if e.status == UsageStatus::Error {
            e.error_type = [Some("server_error"), Some("rate_limited"), None]
                [rng.below(3) as usize]
                .map(str::to_owned);
        }
        d.db.record(&e, None).await.unwrap();
        if i % 7 == 0 {
            d.db.record(&e, None).await.unwrap(); // a retried write counts once
        }
        all.push(e);
    }
    let state = UsageState {
        identity: d.state.identity.clone(),
        settings: Arc::new(d.db.clone()),
        usage: Arc::new(d.db.clone()),
        budgets: Arc::new(d.db.clone()),
        token_key: TokenKey::new(b"k"),
        limits: Arc::new(d.db.clone()),
        audit: Arc::new(d.db.clone()),
        rate_limits: Arc::new(shared::store::warm::ratelimits::MemoryRateLimits::default()),
        registry: d.state.registry.clone(),
    };
    let router = app(usage_router(state));
    let path = "/api/admin/providers/health";
    let r = send(&router, request(Method::GET, path, Some(&admin), None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v: Value = serde_json::from_str(&r.text).unwrap();
    assert!(v["generated_at"].is_string());
    let mut compared = 0;
    for (name, len) in [("15m", 15 * 60), ("24h", 24 * 3600)] {
        let w = &v["windows"][name];
        // The span the window reports, bucket-aligned, is what it is held to.
        let start = w["start"].as_str().unwrap();
        let end = w["end"].as_str().unwrap();
        let span = DateTime::parse_from_rfc3339(end).unwrap()
            - DateTime::parse_from_rfc3339(start).unwrap();
        assert_eq!(span.num_seconds(), len, "{name}");
        let inside: Vec<&UsageEntry> = all
            .iter()
            .filter(|e| e.timestamp.as_str() >= start && e.timestamp.as_str() < end)
            .collect();
        let providers: std::collections::BTreeSet<Provider> =
            inside.iter().map(|e| e.provider).collect();
        assert_eq!(w["providers"].as_object().unwrap().len(), providers.len());
        for p in providers {
            let of: Vec<&UsageEntry> = inside.iter().copied().filter(|e| e.provider == p).collect();
            let what = format!("{name} {p}");
            assert_health(&w["providers"][p.as_str()], &expected_health(&of), &what);
            compared += of.len();
        }
        let models: std::collections::BTreeSet<String> = inside
            .iter()
            .map(|e| format!("{}/{}", e.provider, e.model))
            .collect();
        assert_eq!(w["models"].as_object().unwrap().len(), models.len());
        for m in models {
            let of: Vec<&UsageEntry> = inside
                .iter()
                .copied()
                .filter(|e| format!("{}/{}", e.provider, e.model) == m)
                .collect();
            assert_health(
                &w["models"][&m],
                &expected_health(&of),
                &format!("{name} {m}"),
            );
        }
    }
    assert!(compared > 250, "both windows hold entries: {compared}");

    let r = send(&router, request(Method::GET, path, Some(&user), None)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = send(&router, request(Method::GET, path, None, None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = send(
        &router,
        request(
            Method::GET,
            &format!("{path}?window=1h"),
            Some(&admin),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}
