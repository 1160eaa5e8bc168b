//! What "durable before answered" costs a request locally (`make bench`; not a test).
//!
//! The write path of `llm-local serve`, alone: a budget reservation in memory
//! (`OwnedBudgets`), then the usage entry with its settlement submitted to the background
//! writer, which commits it to SQLite (WAL, a file in a temp dir) and only then lets the
//! request go on. Measured: the reservation's latency, and the submit-to-durable latency
//! at concurrency 1 (p50/p99) and 32 (p50/p99, entries/s), which is what a generate
//! request waits for before it answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use shared::generate::alerts::Alerts;
use shared::generate::recorder::{AlertRule, Job, Recorder, Writer};
use shared::money::NanoUsd;
use shared::provider::Provider;
use shared::store::BudgetStore;
use shared::store::sqlite::SqliteStore;
use shared::store::warm::budget::OwnedBudgets;
use shared::usage::{Reservation, Settlement, UsageEntry, UsageStatus, month_of, timestamp};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USER: &str = "bench-user";

fn entry(i: u64) -> UsageEntry {
    let now = chrono::Utc::now();
    UsageEntry {
        user_id: USER.into(),
        timestamp: timestamp(now),
        request_id: format!("req-{i:032x}"),
        provider: Provider::OpenAi,
        model: "gpt-4o-mini".into(),
        operation_type: "conversation".into(),
        input_tokens: 9,
        output_tokens: 12,
        cached_input_tokens: 0,
        total_tokens: 21,
        cost_usd: Some(NanoUsd(8_550)),
        latency_ms: 0.4,
        status: UsageStatus::Success,
        error_type: None,
        price_version: "bench".into(),
        metadata: Default::default(),
        key_source: None,
        tenant_id: None,
        ttl: now.timestamp() + 90 * 86_400,
    }
}

/// One request's budget and usage work: reserve, then wait until the entry is durable.
/// Returns (reservation, submit-to-durable) latencies.
async fn one(budgets: &OwnedBudgets, recorder: &Recorder, i: u64) -> (Duration, Duration) {
    let now = chrono::Utc::now();
    let r = Reservation {
        id: format!("req-{i:032x}#0"),
        month: month_of(now),
        amount: NanoUsd(60_000),
        expires_unix: now.timestamp() + 88,
    };
    let t = Instant::now();
    assert!(
        budgets
            .reserve(USER, &r, Some(NanoUsd(1_000_000_000_000)), now.timestamp())
            .await
            .unwrap()
    );
    let reserved = t.elapsed();
    let job = Job::Record {
        entry: Box::new(entry(i)),
        settlement: Some(Settlement {
            month: r.month.clone(),
            reservation_id: r.id.clone(),
            reserved: r.amount,
            actual: NanoUsd(8_550),
            tenant: None,
        }),
        rule: Some(AlertRule {
            limit: NanoUsd(1_000_000_000_000),
            thresholds: vec![50, 80, 100],
        }),
        tenant_rule: None,
    };
    let t = Instant::now();
    recorder.submit(job).await.unwrap();
    (reserved, t.elapsed())
}

fn pct(v: &mut [Duration], q: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteStore::open(&dir.path().join("bench.sqlite3")).unwrap();
    let db = Arc::new(db);
    let budgets = Arc::new(OwnedBudgets::new(db.clone(), db.clone()));
    let writer = Arc::new(Writer {
        usage: budgets.clone(),
        budgets: budgets.clone(),
        alerts: Arc::new(Alerts::new(db.clone(), Vec::new())),
        journal: Some(dir.path().join("journal.ndjson")),
    });
    let (recorder, handle) = Recorder::background(writer, 4096);
    let mut next = 0u64;
    for _ in 0..500 {
        next += 1;
        one(&budgets, &recorder, next).await;
    }

    let (mut reserve, mut durable) = (Vec::new(), Vec::new());
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        next += 1;
        let (r, d) = one(&budgets, &recorder, next).await;
        reserve.push(r);
        durable.push(d);
    }
    let n1 = durable.len();
    println!(
        "bench_write: concurrency 1: {n1} requests; reservation p50 {:.4} ms p99 {:.4} ms; \
         usage entry durable p50 {:.3} ms p99 {:.3} ms",
        pct(&mut reserve, 0.5),
        pct(&mut reserve, 0.99),
        pct(&mut durable, 0.5),
        pct(&mut durable, 0.99)
    );

    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let (budgets, recorder) = (budgets.clone(), recorder.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 1_000_000_000 * (t + 1);
            while started.elapsed() < Duration::from_secs(3) {
                i += 1;
                lat.push(one(&budgets, &recorder, i).await.1);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "bench_write: concurrency 32: {:.0} entries/s; usage entry durable p50 {:.3} ms p99 {:.3} ms",
        all.len() as f64 / secs,
        pct(&mut all, 0.5),
        pct(&mut all, 0.99)
    );
    let m = budgets
        .month(
            USER,
            &month_of(chrono::Utc::now()),
            chrono::Utc::now().timestamp(),
        )
        .await
        .unwrap();
    assert_eq!(m.reserved, NanoUsd(0), "every reservation settled");
    drop(recorder);
    handle.await.unwrap();
}
