//! Emulator faults on the AWS shape (issue 15): DynamoDB throttling and transaction
//! conflicts, answers lost after the write landed, Secrets Manager errors and a
//! ministack restart mid-run. Each test drives the settings and generate routers on the
//! DynamoDB and Secrets Manager backends through a fault-injecting proxy
//! (`aws_support::fault_proxy`) and asserts what a user would notice: the request
//! succeeds, or fails with a clear `503` that carries no internal detail and no key;
//! nothing is counted twice. `make test-aws` runs it against ministack.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod aws_support;

use aws_support::fault_proxy::{
    Fault, FaultProxy, GET_ITEM, GET_SECRET_VALUE, PUT_SECRET_VALUE, Rule, TRANSACT_WRITE_ITEMS,
};
use aws_support::gateway::{COST, Gateway, OPENAI_KEY, Options, Reply};
use aws_support::logs::Logs;
use aws_support::ministack::Ministack;
use shared::generate::GenerateConfig;
use std::time::{Duration, Instant};

async fn proxy() -> FaultProxy {
    FaultProxy::start(&std::env::var("AWS_ENDPOINT_URL").unwrap()).await
}

/// The usage transaction: the entry, its rollups and its settlement.
fn usage_write() -> Rule {
    Rule::on(TRANSACT_WRITE_ITEMS, Fault::Reset).containing("rollup#")
}

/// The reservation: a new `resv#` item and the month's counter (a usage transaction
/// names `resv#` too, to settle it, but always with `rollup#`).
fn reservation() -> Rule {
    Rule::on(TRANSACT_WRITE_ITEMS, Fault::Reset)
        .containing("resv#")
        .excluding("rollup#")
        .excluding("settled")
}

/// A settlement on its own (usage tracking off): the reservation moves to `settled`.
fn settlement() -> Rule {
    Rule::on(TRANSACT_WRITE_ITEMS, Fault::Reset)
        .containing("settled")
        .excluding("rollup#")
}

fn with(rule: Rule, fault: Fault) -> Rule {
    rule.with_fault(fault)
}

/// A generation that succeeded, and whose answer holds no key.
fn assert_answered(r: &Reply) {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["content"], "an answer", "{}", r.text);
    assert!(!r.text.contains(OPENAI_KEY));
}

/// What a client sees of a backend that stays unavailable: a `503` in the one error
/// envelope, `Retry-After`, and nothing of what failed inside.
fn assert_unavailable(r: &Reply) {
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.code(), "service_unavailable", "{}", r.text);
    assert_eq!(r.retry_after.as_deref(), Some("2"));
    let id = r.json["error"]["requestId"].as_str().unwrap_or("");
    assert!(id.starts_with("req-"), "{}", r.text);
    for internal in [
        OPENAI_KEY,
        "DynamoDB",
        "dynamodb",
        "Throttl",
        "Provisioned",
        "TransactionCanceled",
        "secretsmanager",
        "InternalServ",
        "conformance-",
        "/llm/openai",
        "127.0.0.1",
    ] {
        assert!(!r.text.contains(internal), "{internal} in {}", r.text);
    }
}

/// Exactly `n` answers recorded, each once: entries, rollups and spend agree, and no
/// reservation is left held.
async fn assert_counted(gw: &Gateway, n: usize) {
    assert_recorded(gw, n, n).await;
}

/// `answered` answers among `entries` usage entries (a refused request has one too, at
/// no cost), each counted once; no reservation left held.
async fn assert_recorded(gw: &Gateway, answered: usize, entries: usize) {
    let all = gw.entries().await;
    assert_eq!(all.len(), entries);
    let ok = all
        .iter()
        .filter(|e| e.status == shared::store::UsageStatus::Success)
        .count();
    assert_eq!(ok, answered);
    let mut ids: Vec<&str> = all.iter().map(|e| e.request_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), entries, "one entry per request");
    assert_eq!(gw.rolled_up_requests().await, entries as u64);
    let m = gw.month().await;
    assert_eq!(m.spent.0, COST.0 * answered as i64);
    assert_eq!(m.reserved.0, 0, "every reservation settled");
}

fn assert_no_key_logged() {
    assert!(!Logs::capture().text().contains(OPENAI_KEY));
}

/// A short deadline: a backend that stays unavailable fails the request within it.
fn short_deadline() -> Options {
    let deadline = Duration::from_secs(4);
    Options {
        config: GenerateConfig {
            deadline,
            lease: deadline + shared::generate::MIN_LEASE_MARGIN,
            ..GenerateConfig::default()
        },
        ..Options::default()
    }
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test-aws`"]
async fn throttled_writes_are_retried_and_counted_once() {
    Logs::capture();
    let proxy = proxy().await;
    let gw = Gateway::start(&proxy, Options::default()).await;
    assert_eq!(gw.save_settings(Some("10"), true).await.status, 200);
    let throttled_usage = with(usage_write(), Fault::ProvisionedThroughputExceeded).times(2);
    let throttled_reservation = with(reservation(), Fault::Throttling).times(1);
    proxy.add(throttled_usage.clone());
    proxy.add(throttled_reservation.clone());
    let started = Instant::now();
    let r = gw.generate().await;
    println!(
        "FAULTS throttled writes answered in {:?}",
        started.elapsed()
    );
    assert_answered(&r);
    // The SDK's standard retry took them; nothing retried them again on top.
    assert_eq!(proxy.count(&throttled_usage), 3);
    assert_eq!(proxy.count(&throttled_reservation), 2);
    assert_counted(&gw, 1).await;
    assert_no_key_logged();
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test-aws`"]
async fn persistent_throttling_is_a_503_within_the_deadline_and_counts_nothing() {
    Logs::capture();
    let proxy = proxy().await;
    let options = short_deadline();
    let deadline = options.config.deadline;
    let lease = options.config.lease;
    let gw = Gateway::start(&proxy, options).await;
    assert_eq!(gw.save_settings(Some("10"), true).await.status, 200);

    // The reservation throttled: refused before any provider call, nothing held.
    proxy.add(with(reservation(), Fault::Throttling));
    let started = Instant::now();
    let r = gw.generate().await;
    println!(
        "FAULTS reservation throttled: {} in {:?}",
        r.status,
        started.elapsed()
    );
    assert_unavailable(&r);
    assert!(started.elapsed() < deadline + Duration::from_secs(4));
    assert_eq!(gw.upstream_calls().await, 0);
    assert_counted(&gw, 0).await;

    // The usage write throttled: the provider answered, but the answer goes out only
    // once its usage is durable, so the request fails (before the Lambda's timeout) and
    // nothing is counted. Its reservation stays held until its lease ends.
    proxy.clear();
    let throttled = with(usage_write(), Fault::Throttling);
    proxy.add(throttled.clone());
    let started = Instant::now();
    let r = gw.generate().await;
    let took = started.elapsed();
    println!(
        "FAULTS usage write throttled: {} in {took:?} after {} attempts",
        r.status,
        proxy.count(&throttled)
    );
    assert_unavailable(&r);
    assert!(took < deadline + Duration::from_secs(2), "{took:?}");
    assert_eq!(gw.upstream_calls().await, 1);
    assert!(gw.entries().await.is_empty());
    assert_eq!(gw.rolled_up_requests().await, 0);
    let m = gw.month().await;
    assert_eq!(m.spent.0, 0);
    assert!(m.reserved.0 > 0, "held until its lease ends");

    // Throttling over: the next request is answered and counted once; the lapsed lease
    // no longer counts.
    proxy.clear();
    assert_answered(&gw.generate().await);
    tokio::time::sleep(lease).await;
    assert_counted(&gw, 1).await;
    assert_no_key_logged();
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test-aws`"]
async fn a_conflicting_reservation_is_retried_or_refused_cleanly() {
    let proxy = proxy().await;
    let gw = Gateway::start(&proxy, short_deadline()).await;
    assert_eq!(gw.save_settings(Some("10"), true).await.status, 200);
    let conflicted = with(reservation(), Fault::TransactionConflict).times(3);
    proxy.add(conflicted.clone());
    assert_answered(&gw.generate().await);
    assert_eq!(proxy.count(&conflicted), 4);
    assert_counted(&gw, 1).await;

    // A conflict that never clears: refused as unavailable, no provider call, nothing
    // reserved.
    proxy.add(with(reservation(), Fault::TransactionConflict));
    let r = gw.generate().await;
    assert_unavailable(&r);
    assert_eq!(gw.upstream_calls().await, 1);
    assert_counted(&gw, 1).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test-aws`"]
async fn concurrent_reservations_under_conflicts_never_pass_the_limit() {
    let proxy = proxy().await;
    let gw = std::sync::Arc::new(Gateway::start(&proxy, Options::default()).await);
    // Each answer costs 33,000 nano-USD and reserves its worst case (about 43,000)
    // first: $0.00015 has room for 4 answers, never 5, and for 3 reservations at once.
    let limit: i64 = 150_000;
    assert_eq!(gw.save_settings(Some("0.00015"), true).await.status, 200);
    let mut answered = 0;
    let mut refused = 0;
    for round in 0..2 {
        // Conflicts spread over the burst: no one reservation meets more than its
        // attempts allow.
        proxy.add(with(reservation(), Fault::TransactionConflict).times(6));
        proxy.add(with(usage_write(), Fault::TransactionConflict).times(3));
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let gw = gw.clone();
            tasks.push(tokio::spawn(async move { gw.generate().await }));
        }
        for t in tasks {
            let r = t.await.unwrap();
            match r.status.as_u16() {
                200 => answered += 1,
                402 => {
                    assert_eq!(r.code(), "budget_exceeded", "{}", r.text);
                    refused += 1;
                }
                _ => panic!("neither answered nor refused: {}", r.text),
            }
        }
        println!(
            "FAULTS round {round} of 12 concurrent under conflicts: {answered} answered, {refused} refused in all"
        );
        assert!(gw.month().await.spent.0 <= limit);
    }
    assert_eq!(answered, 4, "as many as the budget holds, and no more");
    assert_recorded(&gw, answered, 24).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test-aws`"]
async fn answers_lost_after_the_write_landed_count_once() {
    let proxy = proxy().await;
    let gw = Gateway::start(&proxy, Options::default()).await;
    assert_eq!(gw.save_settings(Some("10"), true).await.status, 200);

    // The usage transaction (with its settlement) and the reservation both land, and
    // their answers are lost: the SDK sends each again.
    let usage = with(usage_write(), Fault::ForwardThenDrop).times(1);
    let reserved = with(reservation(), Fault::ForwardThenDrop).times(1);
    proxy.add(usage.clone());
    proxy.add(reserved.clone());
    assert_answered(&gw.generate().await);
    assert_eq!(proxy.count(&usage), 2, "the usage write was sent again");
    assert_eq!(proxy.count(&reserved), 2, "the reservation was sent again");
    assert_counted(&gw, 1).await;

    // Usage tracking off: the settlement is a transaction of its own.
    assert_eq!(gw.save_settings(Some("10"), false).await.status, 200);
    // The settings window (5 s) passes before generate reads the new preferences.
    tokio::time::sleep(shared::store::warm::settings::DEFAULT_WINDOW).await;
    let settled = with(settlement(), Fault::ForwardThenDrop).times(1);
    proxy.add(settled.clone());
    assert_answered(&gw.generate().await);
    assert_eq!(proxy.count(&settled), 2, "the settlement was sent again");
    assert_eq!(gw.entries().await.len(), 1, "tracking is off");
    let m = gw.month().await;
    assert_eq!(m.spent.0, 2 * COST.0, "settled once");
    assert_eq!(m.reserved.0, 0);
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test-aws`"]
async fn resets_and_server_errors_are_retried() {
    let proxy = proxy().await;
    let gw = Gateway::start(&proxy, Options::default()).await;
    assert_eq!(gw.save_settings(Some("10"), true).await.status, 200);
    proxy.take_seen();
    let settings_read = Rule::on(GET_ITEM, Fault::Reset)
        .containing("llm_preferences")
        .times(1);
    proxy.add(settings_read.clone());
    proxy.add(with(reservation(), Fault::Reset).times(1));
    proxy.add(with(usage_write(), Fault::InternalServerError).times(2));
    assert_answered(&gw.generate().await);
    assert_eq!(proxy.count(&settings_read), 2);
    assert_counted(&gw, 1).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test-aws`"]
async fn secrets_manager_errors_reading_a_key_are_retried_or_a_clean_503() {
    Logs::capture();
    let proxy = proxy().await;
    // Every request reads the key from Secrets Manager.
    let options = Options {
        key_ttl: Duration::ZERO,
        ..short_deadline()
    };
    let gw = Gateway::start(&proxy, options).await;
    assert_eq!(gw.save_settings(Some("10"), true).await.status, 200);

    let read = Rule::on(GET_SECRET_VALUE, Fault::SecretsInternalError);
    proxy.add(read.clone().times(1));
    assert_answered(&gw.generate().await);
    proxy.add(read.clone().with_fault(Fault::SecretsThrottling).times(2));
    assert_answered(&gw.generate().await);
    assert_counted(&gw, 2).await;

    for fault in [Fault::SecretsInternalError, Fault::SecretsThrottling] {
        proxy.clear();
        proxy.add(read.clone().with_fault(fault));
        let r = gw.generate().await;
        println!("FAULTS persistent {fault:?} reading the key: {}", r.text);
        assert_unavailable(&r);
    }
    assert_eq!(gw.upstream_calls().await, 2, "no call without the key");
    assert_counted(&gw, 2).await;

    // Saving a key while Secrets Manager fails: a 503 without the key, and nothing
    // changed; once it recovers, the save goes through.
    proxy.clear();
    proxy.add(Rule::on(PUT_SECRET_VALUE, Fault::SecretsInternalError));
    let r = gw.save_settings(Some("20"), true).await;
    assert_unavailable(&r);
    let kept = gw.settings().await;
    assert_eq!(
        kept.json["preferences"]["monthlyBudgetUsd"], 10.0,
        "{}",
        kept.text
    );
    proxy.clear();
    let r = gw.save_settings(Some("20"), true).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.text.contains(OPENAI_KEY));
    assert_no_key_logged();
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test-aws`"]
async fn a_ministack_restart_mid_run_loses_nothing_and_counts_nothing_twice() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const REQUESTS: usize = 40;
    let mut emulator = Ministack::start().await;
    let proxy = FaultProxy::start(&emulator.url()).await;
    let mut options = short_deadline();
    options.config.deadline = Duration::from_secs(8);
    options.config.lease = options.config.deadline + shared::generate::MIN_LEASE_MARGIN;
    let lease = options.config.lease;
    let gw = Arc::new(Gateway::start_on(&emulator.url(), &proxy, options).await);
    assert_eq!(gw.save_settings(Some("10"), true).await.status, 200);

    let issued = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let down = Arc::new(AtomicBool::new(false));
    let sent_while_down = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (gw, issued, answered) = (gw.clone(), issued.clone(), answered.clone());
        let (down, sent_while_down) = (down.clone(), sent_while_down.clone());
        workers.push(tokio::spawn(async move {
            let mut replies = Vec::new();
            while issued.fetch_add(1, Ordering::SeqCst) < REQUESTS {
                if down.load(Ordering::SeqCst) {
                    sent_while_down.fetch_add(1, Ordering::SeqCst);
                }
                let r = gw.generate().await;
                if r.status == 200 {
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                replies.push(r);
            }
            replies
        }));
    }
    // Mid-run: stopped (its state saved), down for 2 s, started again on its port.
    while answered.load(Ordering::SeqCst) < 10 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    down.store(true, Ordering::SeqCst);
    emulator.down().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    emulator.up().await;
    down.store(false, Ordering::SeqCst);

    let mut replies = Vec::new();
    for w in workers {
        replies.extend(w.await.unwrap());
    }
    let ok: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    let failed: Vec<&Reply> = replies.iter().filter(|r| r.status != 200).collect();
    println!(
        "FAULTS restart: {} requests, {} answered, {} unavailable, {} sent while it was down",
        replies.len(),
        ok.len(),
        failed.len(),
        sent_while_down.load(Ordering::SeqCst)
    );
    assert_eq!(replies.len(), REQUESTS);
    assert!(sent_while_down.load(Ordering::SeqCst) >= 1);
    for r in &ok {
        assert_answered(r);
    }
    for r in &failed {
        assert_unavailable(r);
    }

    // Every answer has exactly one entry, written before or after the restart; a request
    // that failed may have one too (its write landed, its answer did not), never two.
    let entries = gw.entries().await;
    let mut ids: Vec<&str> = entries.iter().map(|e| e.request_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), entries.len(), "no request recorded twice");
    for r in &ok {
        let id = r.json["requestId"].as_str().unwrap();
        assert!(
            ids.binary_search(&id).is_ok(),
            "answer {id} has no usage entry"
        );
    }
    assert!(entries.len() <= REQUESTS);
    assert_eq!(gw.rolled_up_requests().await, entries.len() as u64);
    // Leases of failed requests lapse; then spend is exactly the recorded answers'.
    tokio::time::sleep(lease).await;
    let m = gw.month().await;
    assert_eq!(m.spent.0, COST.0 * entries.len() as i64);
    assert_eq!(m.reserved.0, 0);
    assert_no_key_logged();
}
