//! Benchmark of the usage analytics read path (`make bench`; not a test).
//!
//! Embedded store: one user with 1,000,000 entries over 90 days; the 30-day summary and
//! the 30-day trend, median of repeated runs, with how many records each read.
//! DynamoDB (`--dynamodb`, against the emulator): the same query shape at two volumes,
//! showing that the items read depend on the number of days, not of requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{Duration, Utc};
use shared::money::NanoUsd;
use shared::provider::Provider;
use shared::store::UsageStore;
use shared::usage::range::{Range, day_key, day_start};
use shared::usage::report::{daily_rows, group_totals};
use shared::usage::{UsageEntry, UsageStatus, timestamp};
use std::time::Instant;

fn entries(user: &str, n: usize, days: i64) -> impl Iterator<Item = UsageEntry> + '_ {
    let now = Utc::now();
    let span = days * 86_400;
    (0..n).map(move |i| {
        let at = now - Duration::seconds((i as i64 * 7919) % span);
        let provider = [Provider::Anthropic, Provider::OpenAi, Provider::Google][i % 3];
        UsageEntry {
            user_id: user.to_owned(),
            timestamp: timestamp(at),
            request_id: format!("req-{i:08}"),
            provider,
            model: format!("{provider}-model-{}", i % 4),
            operation_type: ["query_generation", "conversation"][i % 2].into(),
            input_tokens: 1500,
            output_tokens: 500,
            cached_input_tokens: 0,
            total_tokens: 2000,
            cost_usd: Some(NanoUsd(12_000_000)),
            latency_ms: 342.5,
            status: if i % 50 == 0 {
                UsageStatus::Error
            } else {
                UsageStatus::Success
            },
            error_type: None,
            price_version: "bench".into(),
            metadata: Default::default(),
            key_source: None,
            tenant_id: None,
            ttl: now.timestamp() + 91 * 86_400,
        }
    })
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn measure(
    store: &dyn UsageStore,
    user: &str,
    runs: usize,
) -> (f64, f64, usize, usize, usize) {
    let now = Utc::now();
    let range = Range::last_days(30, now);
    let mut summary = Vec::new();
    let mut stats = Default::default();
    for _ in 0..runs {
        let t = Instant::now();
        let (_, s) = group_totals(store, user, &range, now.timestamp())
            .await
            .unwrap();
        summary.push(t.elapsed().as_secs_f64() * 1000.0);
        stats = s;
    }
    let mut trend = Vec::new();
    let mut days_read = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let today = day_start(now);
        let rollups = store
            .rollups(user, &day_key(today - Duration::days(29)), &day_key(today))
            .await
            .unwrap();
        days_read = rollups.len();
        let rows = daily_rows(&rollups, today, 30);
        assert_eq!(rows.len(), 30);
        trend.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    (
        median_ms(summary),
        median_ms(trend),
        stats.rollup_days,
        stats.entries,
        days_read,
    )
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--dynamodb") {
        return dynamodb().await;
    }
    let dir = tempfile::tempdir().unwrap();
    let store =
        shared::store::sqlite::SqliteStore::open(&dir.path().join("bench.sqlite3")).unwrap();
    let n = 1_000_000;
    let t = Instant::now();
    let all: Vec<UsageEntry> = entries("bench-user", n, 90).collect();
    for chunk in all.chunks(50_000) {
        store.record_many(chunk.to_vec()).await.unwrap();
    }
    println!(
        "loaded {n} entries over 90 days in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let (summary, trend, rollup_days, entries_read, days_read) =
        measure(&store, "bench-user", 50).await;
    println!(
        "\nusage analytics on the embedded store, one user, {n} entries over 90 days (median of 50)"
    );
    println!(
        "  30-day summary        {summary:>8.3} ms   (target < 10 ms)  read {rollup_days} rollup days, {entries_read} entries"
    );
    println!(
        "  30-day daily trend    {trend:>8.3} ms   (target < 10 ms)  read {days_read} rollup days"
    );
}

#[cfg(feature = "aws")]
async fn dynamodb() {
    use shared::store::dynamodb::tables::{TableNames, create_tables};
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("run under tools/with_ministack.sh");
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "loopback emulator only"
    );
    let config = shared::sdk::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    // The tables as infra/ deploys them, from the one definition in store/dynamodb.
    let names = TableNames::with_prefix(&format!("bench-{}", uuid::Uuid::new_v4().simple()));
    create_tables(&client, &names).await.unwrap();
    let store = shared::store::DynamoUsageStore::new(client, names.usage, names.cache, names.audit);
    println!("\nthe same query shape on DynamoDB (emulator): items read against volume");
    for (user, n) in [("small", 600), ("large", 3000)] {
        for e in entries(user, n, 30) {
            store.record(&e, None).await.unwrap();
        }
        let (summary, trend, rollup_days, entries_read, days_read) = measure(&store, user, 5).await;
        println!(
            "  {n:>5} entries: summary read {rollup_days} rollup items + {entries_read} entries ({summary:.1} ms); trend read {days_read} items ({trend:.1} ms)"
        );
    }
    println!("  -> the items read follow the days in range, not the number of requests");
}

#[cfg(not(feature = "aws"))]
async fn dynamodb() {
    eprintln!("build with --features aws for the DynamoDB run");
}
