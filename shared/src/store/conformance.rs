//! The behaviour every store backend must show, written once and called from each
//! backend's tests (embedded here, DynamoDB and Secrets Manager against an emulator).
//! Test code: it asserts, so the no-panic lints do not apply.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::{
    AuditEvent, AuditQuery, AuditStore, KeyMeta, SettingsRecord, SettingsStore, StoreError,
    TokenRecord, TokenStore,
};
use crate::money::NanoUsd;
use crate::provider::Provider;
use crate::secret::ApiKey;
use crate::vault::KeyVault;
use std::sync::Arc;

mod tenant;
pub use tenant::tenant_suite;

/// A user id unique to this run, so suites can share a long-lived backend.
fn fresh_user(tag: &str) -> String {
    format!("conf-{tag}-{}", uuid::Uuid::new_v4())
}

fn record(version: u64, max_tokens: u32) -> SettingsRecord {
    let mut r = SettingsRecord {
        version,
        updated_at: Some(chrono::Utc::now()),
        ..Default::default()
    };
    r.preferences.max_tokens = max_tokens;
    r.preferences.monthly_budget_usd = Some(NanoUsd(12_345_678_901));
    // Which fields were saved round-trips too (a tenant member inherits the others).
    r.saved_fields = Some(["maxTokens".to_owned(), "monthlyBudgetUsd".to_owned()].into());
    r.keys.insert(
        Provider::OpenAi,
        KeyMeta {
            hint: "…abcd".into(),
            updated_at: chrono::Utc::now(),
            version: None,
        },
    );
    // Both a legacy key (no version) and a versioned one round-trip.
    r.keys.insert(
        Provider::Anthropic,
        KeyMeta {
            hint: "…wxyz".into(),
            updated_at: chrono::Utc::now(),
            version: Some(crate::vault::KeyVersion::fresh()),
        },
    );
    r
}

/// An audit event by `actor` (a fresh user id), stamped now.
/// An event stamped strictly after every earlier one from this helper: two events made in
/// the same millisecond would otherwise list in the order of their random ids, and the
/// suites assert "newest first".
fn event(actor: &str, action: &str) -> AuditEvent {
    static LAST_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now = chrono::Utc::now().timestamp_millis();
    let prev = LAST_MS
        .fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |last| Some(last.max(now - 1) + 1),
        )
        .unwrap_or(now);
    let at = chrono::DateTime::from_timestamp_millis(prev.max(now - 1) + 1).unwrap();
    let mut e = AuditEvent::now(actor, format!("user:{actor}"), action)
        .with_change(None, Some(serde_json::json!({"maxTokens": 400})));
    e.timestamp = super::timestamp(at);
    e
}

/// Every event `actor` made in the last day, newest first.
async fn events_of(audit: &dyn AuditStore, actor: &str) -> Vec<AuditEvent> {
    let now = chrono::Utc::now();
    let q = AuditQuery {
        actor: Some(actor.to_owned()),
        start: super::timestamp(now - chrono::Duration::days(1)),
        end: super::timestamp(now + chrono::Duration::minutes(1)),
        limit: 100,
        ..Default::default()
    };
    audit.query(&q).await.unwrap().0
}

pub async fn settings_suite(store: Arc<dyn SettingsStore>, audit: &dyn AuditStore) {
    let user = fresh_user("settings");

    // A tenant's record lives under its owner id, apart from any user's.
    let tenant = crate::identity::tenant_owner(&user);
    let t1 = record(1, 77);
    store.put_settings(&tenant, &t1, 0, &[]).await.unwrap();
    assert_eq!(store.get_settings(&tenant).await.unwrap(), Some(t1));

    // A user with nothing saved has no item.
    assert_eq!(store.get_settings(&user).await.unwrap(), None);

    // First write expects version 0; it round-trips exactly.
    let v1 = record(1, 100);
    store.put_settings(&user, &v1, 0, &[]).await.unwrap();
    let got = store.get_settings(&user).await.unwrap().unwrap();
    assert_eq!(got.version, 1);
    assert_eq!(got.preferences, v1.preferences);
    assert_eq!(got.keys, v1.keys);

    // A second "first write" loses.
    assert!(matches!(
        store.put_settings(&user, &record(1, 200), 0, &[]).await,
        Err(StoreError::Conflict)
    ));
    // A write on a stale version loses and changes nothing.
    assert!(matches!(
        store
            .put_settings(&user, &record(6, 300), 5, &[event(&user, "lost")])
            .await,
        Err(StoreError::Conflict)
    ));
    // A write that lost wrote no audit event either; one that won wrote its own.
    assert!(events_of(audit, &user).await.is_empty());
    assert_eq!(
        store
            .get_settings(&user)
            .await
            .unwrap()
            .unwrap()
            .preferences
            .max_tokens,
        100
    );
    // The current version wins.
    let won = event(&user, "settings_update");
    store
        .put_settings(&user, &record(2, 400), 1, std::slice::from_ref(&won))
        .await
        .unwrap();
    assert_eq!(store.get_settings(&user).await.unwrap().unwrap().version, 2);
    assert_eq!(events_of(audit, &user).await, vec![won]);

    // Users are isolated.
    let other = fresh_user("settings-other");
    assert_eq!(store.get_settings(&other).await.unwrap(), None);

    // Under concurrency exactly one writer of a given version wins.
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let store = store.clone();
        let user = user.clone();
        tasks.push(tokio::spawn(async move {
            store
                .put_settings(&user, &record(3, 1000 + i), 2, &[])
                .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => wins += 1,
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("unexpected error under concurrency: {e}"),
        }
    }
    assert_eq!(wins, 1, "exactly one conditional write must win");
    assert_eq!(store.get_settings(&user).await.unwrap().unwrap().version, 3);
}

pub async fn tokens_suite(store: &dyn TokenStore) {
    let hash = format!("{:0>64}", uuid::Uuid::new_v4().simple());
    assert_eq!(store.get_token(&hash).await.unwrap(), None);
    let token = TokenRecord {
        token_hash: hash.clone(),
        user_id: fresh_user("token"),
        is_admin: true,
        created_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        tenant_id: None,
        is_tenant_admin: false,
        expires_at: None,
    };
    store.put_token(&token).await.unwrap();
    assert_eq!(store.get_token(&hash).await.unwrap(), Some(token.clone()));
    // A hash is never silently re-bound to another user.
    let hijack = TokenRecord {
        user_id: "someone-else".into(),
        ..token.clone()
    };
    assert!(matches!(
        store.put_token(&hijack).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get_token(&hash).await.unwrap(), Some(token));
}

pub async fn vault_suite(vault: &dyn KeyVault) {
    use crate::vault::{KeyVersion, Remaining};
    let user = fresh_user("vault");
    let other = fresh_user("vault-other");
    let k1 = ApiKey::new(format!("sk-ant-api03-{}", "a".repeat(40)));
    let k2 = ApiKey::new(format!("sk-ant-api03-{}", "b".repeat(40)));
    let k3 = ApiKey::new(format!("sk-ant-api03-{}", "c".repeat(40)));
    let (v1, v2, v3) = (
        KeyVersion::fresh(),
        KeyVersion::fresh(),
        KeyVersion::fresh(),
    );
    let ant = Provider::Anthropic;

    assert_eq!(vault.get_key(&user, ant, Some(&v1)).await.unwrap(), None);
    assert_eq!(vault.get_key(&user, ant, None).await.unwrap(), None);
    vault.put_key(&user, ant, &v1, &k1).await.unwrap();
    assert_eq!(
        vault.get_key(&user, ant, Some(&v1)).await.unwrap(),
        Some(k1.clone())
    );
    // Per provider, per user and per version.
    assert_eq!(
        vault
            .get_key(&user, Provider::OpenAi, Some(&v1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(vault.get_key(&other, ant, Some(&v1)).await.unwrap(), None);
    assert_eq!(vault.get_key(&user, ant, Some(&v2)).await.unwrap(), None);

    // A second version lives next to the first; neither replaces the other.
    vault.put_key(&user, ant, &v2, &k2).await.unwrap();
    assert_eq!(
        vault.get_key(&user, ant, Some(&v2)).await.unwrap(),
        Some(k2.clone())
    );
    assert_eq!(
        vault.get_key(&user, ant, Some(&v1)).await.unwrap(),
        Some(k1.clone())
    );
    // Writing a version again with the same key (a retry) is fine.
    vault.put_key(&user, ant, &v2, &k2).await.unwrap();

    // Deleting one version leaves the other, and is idempotent.
    vault
        .delete_key(&user, ant, Some(&v1), Remaining::Named)
        .await
        .unwrap();
    assert_eq!(vault.get_key(&user, ant, Some(&v1)).await.unwrap(), None);
    assert_eq!(
        vault.get_key(&user, ant, Some(&v2)).await.unwrap(),
        Some(k2.clone())
    );
    vault
        .delete_key(&user, ant, Some(&v1), Remaining::Named)
        .await
        .unwrap();

    // A version in flight (written, not yet named by any record) survives the removal
    // of the last named version, even when the record then names nothing.
    vault.put_key(&user, ant, &v3, &k3).await.unwrap();
    vault
        .delete_key(&user, ant, Some(&v2), Remaining::Nothing)
        .await
        .unwrap();
    assert_eq!(vault.get_key(&user, ant, Some(&v2)).await.unwrap(), None);
    assert_eq!(
        vault.get_key(&user, ant, Some(&v3)).await.unwrap(),
        Some(k3.clone())
    );

    // The last version goes; deleting it again, or a version never written, succeeds;
    // a new version can be written after that.
    vault
        .delete_key(&user, ant, Some(&v3), Remaining::Nothing)
        .await
        .unwrap();
    assert_eq!(vault.get_key(&user, ant, Some(&v3)).await.unwrap(), None);
    vault
        .delete_key(&user, ant, Some(&v3), Remaining::Nothing)
        .await
        .unwrap();
    vault
        .delete_key(&other, ant, Some(&KeyVersion::fresh()), Remaining::Nothing)
        .await
        .unwrap();
    let v4 = KeyVersion::fresh();
    vault.put_key(&user, ant, &v4, &k1).await.unwrap();
    assert_eq!(
        vault.get_key(&user, ant, Some(&v4)).await.unwrap(),
        Some(k1)
    );
    assert_eq!(vault.get_key(&user, ant, Some(&v3)).await.unwrap(), None);
    vault
        .delete_key(&user, ant, Some(&v4), Remaining::Nothing)
        .await
        .unwrap();
    assert_eq!(vault.get_key(&user, ant, Some(&v4)).await.unwrap(), None);
}

use super::{
    BudgetStore, Reservation, ResponseCache, Settlement, UsageEntry, UsageStatus, UsageStore,
};

pub fn usage_entry(
    user: &str,
    timestamp: &str,
    provider: Provider,
    cost: Option<i64>,
    status: UsageStatus,
) -> UsageEntry {
    UsageEntry {
        user_id: user.to_owned(),
        timestamp: timestamp.to_owned(),
        request_id: format!("req-{}", uuid::Uuid::new_v4().simple()),
        provider,
        model: if provider == Provider::OpenAi {
            "gpt-4o".into()
        } else {
            "claude-3-5-sonnet-20241022".into()
        },
        operation_type: "query_generation".into(),
        input_tokens: 1500,
        output_tokens: 500,
        cached_input_tokens: 100,
        total_tokens: 2000,
        cost_usd: cost.map(NanoUsd),
        latency_ms: 12.5,
        status,
        error_type: (status == UsageStatus::Error).then(|| "rate_limited".to_owned()),
        price_version: "2026-11-22".into(),
        metadata: [("table".to_string(), serde_json::json!("cloudtrail"))].into(),
        key_source: None,
        tenant_id: None,
        ttl: 1_900_000_000,
    }
}

pub async fn usage_suite(usage: &dyn UsageStore, budget: &dyn BudgetStore) {
    let user = fresh_user("usage");
    let month = "2026-11";
    let lease = reservation("r1", month, 50_000_000, NOW + 60);
    assert!(
        budget
            .reserve(&user, &lease, Some(NanoUsd(100_000_000)), NOW)
            .await
            .unwrap()
    );

    let e1 = usage_entry(
        &user,
        "2026-11-20T10:00:00.000Z",
        Provider::Anthropic,
        Some(12_000_000),
        UsageStatus::Success,
    );
    let settle = settlement(&lease, 12_000_000);
    usage.record(&e1, Some(&settle)).await.unwrap();
    // Recording the same request again changes nothing: not the entry, the rollup or the budget.
    usage.record(&e1, Some(&settle)).await.unwrap();
    // Nor does a separate settlement of the same reservation (a retried write).
    budget.settle(&user, &settle).await.unwrap();
    let m = budget.month(&user, month, NOW).await.unwrap();
    assert_eq!((m.spent, m.reserved), (NanoUsd(12_000_000), NanoUsd(0)));

    let e2 = usage_entry(
        &user,
        "2026-11-20T11:00:00.000Z",
        Provider::OpenAi,
        None,
        UsageStatus::Success,
    );
    let e3 = usage_entry(
        &user,
        "2026-11-21T09:00:00.000Z",
        Provider::Anthropic,
        Some(0),
        UsageStatus::Error,
    );
    let e4 = usage_entry(
        &user,
        "2026-11-22T23:59:59.999Z",
        Provider::Anthropic,
        Some(0),
        UsageStatus::Cached,
    );
    for e in [&e2, &e3, &e4] {
        usage.record(e, None).await.unwrap();
    }

    // Entries: newest first, end exclusive, start inclusive, paginated.
    let (all, next) = usage
        .entries(&user, "2026-11-01", "2026-12-01", 10, None)
        .await
        .unwrap();
    assert_eq!(
        all.iter()
            .map(|e| e.request_id.as_str())
            .collect::<Vec<_>>(),
        [&e4, &e3, &e2, &e1].map(|e| e.request_id.as_str())
    );
    assert_eq!(next, None);
    assert_eq!(all[3], e1, "an entry round-trips exactly");
    let (page1, next) = usage
        .entries(&user, "2026-11-01", "2026-12-01", 3, None)
        .await
        .unwrap();
    assert_eq!(page1.len(), 3);
    let (page2, next2) = usage
        .entries(&user, "2026-11-01", "2026-12-01", 3, next.as_deref())
        .await
        .unwrap();
    assert_eq!(page2, vec![e1.clone()]);
    assert_eq!(next2, None);
    let (range, _) = usage
        .entries(&user, "2026-11-20T11:00:00.000Z", "2026-11-22", 10, None)
        .await
        .unwrap();
    assert_eq!(
        range
            .iter()
            .map(|e| e.request_id.as_str())
            .collect::<Vec<_>>(),
        [&e3, &e2].map(|e| e.request_id.as_str())
    );
    let (none, _) = usage
        .entries(&fresh_user("nobody"), "2026-11-01", "2026-12-01", 10, None)
        .await
        .unwrap();
    assert!(none.is_empty());

    // Rollups: one per day with usage, per group, additive.
    let days = usage
        .rollups(&user, "2026-11-19", "2026-11-22")
        .await
        .unwrap();
    assert_eq!(
        days.iter().map(|d| d.day.as_str()).collect::<Vec<_>>(),
        ["2026-11-20", "2026-11-21", "2026-11-22"]
    );
    let d20 = &days[0].groups;
    assert_eq!(d20["all"].requests, 2);
    assert_eq!(d20["all"].tokens, 4000);
    assert_eq!(d20["all"].cost_nanos, 12_000_000);
    assert_eq!(d20["all"].unpriced, 1);
    assert_eq!(d20["all"].latency_us, 25_000);
    assert_eq!(d20["provider:anthropic"].requests, 1);
    assert_eq!(d20["provider:openai"].requests, 1);
    assert_eq!(d20["model:gpt-4o"].unpriced, 1);
    assert_eq!(d20["operation:query_generation"].requests, 2);
    assert_eq!(days[1].groups["all"].errors, 1);
    assert_eq!(days[2].groups["all"].cached, 1);
    assert!(
        usage
            .rollups(&user, "2026-11-23", "2026-11-30")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Provider health buckets: a known mix of entries around a chosen "now", read back
/// per window. Health is counted across all users, so "now" is a random hour in the
/// 2030s: a backend shared with other runs has nothing else in these buckets.
pub async fn health_suite(usage: &dyn UsageStore) {
    use super::health::{Granularity, HealthCounters, latency_bin};
    let hour = 1_893_456_000 + i64::from(getrandom::u32().unwrap() % 87_600) * 3600;
    let now = hour + 30 * 60 + 20; // hh:30:20
    let minute_span = (Granularity::Minute.bucket_start(now) - 14 * 60, now);
    let hour_span = (hour - 23 * 3600, now);
    let read = |g: Granularity, (from, to): (i64, i64)| usage.health(g, from, to);
    assert!(
        read(Granularity::Minute, minute_span)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(read(Granularity::Hour, hour_span).await.unwrap().is_empty());

    let user = fresh_user("health");
    let entry = |offset: i64, provider: Provider, status: UsageStatus, latency_ms: f64| {
        let at = chrono::DateTime::from_timestamp(now + offset, 0).unwrap();
        let ts = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut e = usage_entry(&user, &ts, provider, Some(0), status);
        e.latency_ms = latency_ms;
        e.ttl = now + 86_400 * 90;
        e
    };
    let (openai, anthropic) = (Provider::OpenAi, Provider::Anthropic);
    let (ok, err, hit) = (
        UsageStatus::Success,
        UsageStatus::Error,
        UsageStatus::Cached,
    );
    let ok_now = entry(-10, openai, ok, 40.0);
    let ok_5m = entry(-300, openai, ok, 40.0);
    // hh:16:20, in the first minute bucket of the 15-minute window.
    let limited_14m = entry(-14 * 60, openai, err, 300.0);
    // hh:15:20: one bucket before the 15-minute window, inside the current hour.
    let mut unclassified_15m = entry(-15 * 60, openai, err, 2000.0);
    unclassified_15m.error_type = None;
    let mut hit_1m = entry(-60, openai, hit, 0.5);
    hit_1m.model = "gpt-4o-mini".into();
    // A writer whose clock runs ahead: after the minute window, inside the current hour.
    let ahead = entry(120, openai, ok, 40.0);
    let ok_3h = entry(-3 * 3600, anthropic, ok, 12.5);
    let mut timeout_23h = entry(-23 * 3600, anthropic, err, 25_000.0);
    timeout_23h.error_type = Some("timeout".into());
    let ok_24h = entry(-24 * 3600, anthropic, ok, 12.5);
    // Four in one batch (one transaction where the backend has them: they share buckets
    // and groups), the rest one by one.
    let batch = [&ok_now, &ok_5m, &limited_14m, &unclassified_15m].map(|e| (e.clone(), None));
    usage.record_batch(&batch).await.unwrap();
    for e in [&hit_1m, &ahead, &ok_3h, &timeout_23h, &ok_24h] {
        usage.record(e, None).await.unwrap();
    }
    // Recorded again, alone or in a batch (twice in it): counted once.
    usage.record(&ok_now, None).await.unwrap();
    let again = (ok_5m.clone(), None);
    usage.record_batch(&[again.clone(), again]).await.unwrap();

    let bins = |ms: &[f64]| {
        let mut latency = [0; super::health::LATENCY_BINS];
        for m in ms {
            latency[latency_bin(*m)] += 1;
        }
        latency
    };
    let classes = |c: &[(&str, u64)]| c.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect();

    let minutes = read(Granularity::Minute, minute_span).await.unwrap();
    let gpt4o = HealthCounters {
        successes: 2,
        errors: 1,
        cached: 0,
        errors_by_class: classes(&[("rate_limited", 1)]),
        latency: bins(&[40.0, 40.0, 300.0]),
    };
    let mini = HealthCounters {
        cached: 1,
        ..Default::default()
    };
    let mut provider = gpt4o.clone();
    provider.add(&mini);
    assert_eq!(minutes["model:openai/gpt-4o"], gpt4o);
    assert_eq!(minutes["model:openai/gpt-4o-mini"], mini);
    assert_eq!(minutes["provider:openai"], provider);
    assert_eq!(minutes["provider:openai"].requests(), 4);
    assert_eq!(minutes.len(), 3, "nothing of anthropic: {minutes:?}");

    let hours = read(Granularity::Hour, hour_span).await.unwrap();
    let openai_24h = HealthCounters {
        successes: 3,
        errors: 2,
        cached: 1,
        errors_by_class: classes(&[("rate_limited", 1), ("unknown", 1)]),
        latency: bins(&[40.0, 40.0, 40.0, 300.0, 2000.0]),
    };
    assert_eq!(hours["provider:openai"], openai_24h);
    let anthropic_24h = HealthCounters {
        successes: 1,
        errors: 1,
        errors_by_class: classes(&[("timeout", 1)]),
        latency: bins(&[12.5, 25_000.0]),
        ..Default::default()
    };
    assert_eq!(hours["provider:anthropic"], anthropic_24h);
    assert_eq!(
        hours["model:anthropic/claude-3-5-sonnet-20241022"],
        anthropic_24h
    );
    assert_eq!(hours["model:openai/gpt-4o"].requests(), 5);
    assert_eq!(hours.len(), 5, "{hours:?}");

    // A span's edges take in whole buckets: the second before the window's first
    // minute bucket reads one more (hh:15, holding the unclassified error).
    let wider = read(Granularity::Minute, (minute_span.0 - 1, now))
        .await
        .unwrap();
    assert_eq!(wider["provider:openai"].errors_by_class["unknown"], 1);
    // Health is not a user's: their entries and rollups hold only what they recorded.
    let (entries, _) = usage
        .entries(&user, "2000", "9999", 100, None)
        .await
        .unwrap();
    assert_eq!(entries.len(), 9);
}

/// "Now" of the budget suite: leases are judged against the time given, so expiry is
/// tested without waiting.
const NOW: i64 = 1_800_000_000;

pub fn reservation(id: &str, month: &str, amount: i64, expires_unix: i64) -> Reservation {
    Reservation {
        id: id.into(),
        month: month.into(),
        amount: NanoUsd(amount),
        expires_unix,
    }
}

pub fn settlement(r: &Reservation, actual: i64) -> Settlement {
    Settlement {
        month: r.month.clone(),
        reservation_id: r.id.clone(),
        reserved: r.amount,
        actual: NanoUsd(actual),
        tenant: None,
    }
}

pub async fn budget_suite(budget: Arc<dyn BudgetStore>) {
    let user = fresh_user("budget");
    let month = "2026-11";
    let limit = Some(NanoUsd(200));
    let counters = |b: &Arc<dyn BudgetStore>, now: i64| {
        let (b, u) = (b.clone(), user.clone());
        async move {
            let m = b.month(&u, month, now).await.unwrap();
            (m.spent.0, m.reserved.0)
        }
    };
    assert_eq!(counters(&budget, NOW).await, (0, 0));
    // Under concurrency, reservations never pass the limit together.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let b = budget.clone();
        let u = user.clone();
        tasks.push(tokio::spawn(async move {
            let r = reservation(&format!("burst{i}"), month, 10, NOW + 60);
            (i, b.reserve(&u, &r, limit, NOW).await.unwrap())
        }));
    }
    let mut granted = Vec::new();
    for t in tasks {
        let (i, ok) = t.await.unwrap();
        if ok {
            granted.push(i);
        }
    }
    assert_eq!(granted.len(), 20);
    assert_eq!(counters(&budget, NOW).await, (0, 200));
    // A granted reservation asked for again (a retried call that had landed) is granted
    // and counted once; a refused one stays refused.
    let again = reservation(&format!("burst{}", granted[0]), month, 10, NOW + 60);
    assert!(budget.reserve(&user, &again, limit, NOW).await.unwrap());
    assert_eq!(counters(&budget, NOW).await, (0, 200));
    // Settling frees what the actual cost did not use; settling twice changes nothing.
    let first = reservation(&format!("burst{}", granted[0]), month, 10, NOW + 60);
    budget.settle(&user, &settlement(&first, 3)).await.unwrap();
    budget.settle(&user, &settlement(&first, 3)).await.unwrap();
    assert_eq!(counters(&budget, NOW).await, (3, 190));
    for i in &granted[1..] {
        let r = reservation(&format!("burst{i}"), month, 10, NOW + 60);
        budget.settle(&user, &settlement(&r, 0)).await.unwrap();
    }
    assert_eq!(counters(&budget, NOW).await, (3, 0));
    // A settlement with no reservation behind it (nothing was reserved) adds its cost
    // once.
    let unreserved = reservation("unreserved", month, 0, NOW + 60);
    budget
        .settle(&user, &settlement(&unreserved, 27))
        .await
        .unwrap();
    budget
        .settle(&user, &settlement(&unreserved, 27))
        .await
        .unwrap();
    assert_eq!(counters(&budget, NOW).await, (30, 0));

    // Leases: a reservation nobody settles stops counting when its lease ends ...
    let abandoned = reservation("abandoned", month, 170, NOW + 60);
    assert!(budget.reserve(&user, &abandoned, limit, NOW).await.unwrap());
    let blocked = reservation("blocked", month, 1, NOW + 90);
    assert!(
        !budget
            .reserve(&user, &blocked, limit, NOW + 30)
            .await
            .unwrap()
    );
    assert_eq!(counters(&budget, NOW + 30).await, (30, 170));
    assert_eq!(counters(&budget, NOW + 61).await, (30, 0));
    // ... and no longer refuses anyone: the refused reservation releases it and retries.
    let later = reservation("later", month, 170, NOW + 130);
    assert!(
        budget
            .reserve(&user, &later, limit, NOW + 70)
            .await
            .unwrap()
    );
    assert_eq!(counters(&budget, NOW + 70).await, (30, 170));
    // The abandoned request's settlement arriving after its release adds only its cost.
    budget
        .settle(&user, &settlement(&abandoned, 5))
        .await
        .unwrap();
    assert_eq!(counters(&budget, NOW + 70).await, (35, 170));
    // release_expired sweeps explicitly, once.
    assert_eq!(
        budget
            .release_expired(&user, month, NOW + 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        budget
            .release_expired(&user, month, NOW + 131)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        budget
            .release_expired(&user, month, NOW + 131)
            .await
            .unwrap(),
        0
    );
    assert_eq!(counters(&budget, NOW + 131).await, (35, 0));
    budget.settle(&user, &settlement(&later, 0)).await.unwrap();
    assert_eq!(counters(&budget, NOW + 131).await, (35, 0));
    // Spend plus what is held never passes the limit.
    let fill = reservation("fill", month, 165, NOW + 200);
    assert!(
        budget
            .reserve(&user, &fill, limit, NOW + 140)
            .await
            .unwrap()
    );
    let over = reservation("over", month, 1, NOW + 200);
    assert!(
        !budget
            .reserve(&user, &over, limit, NOW + 140)
            .await
            .unwrap()
    );
    // No limit: always granted. Months are separate.
    let december = reservation("december", "2026-12", 1_000_000, NOW + 60);
    assert!(budget.reserve(&user, &december, None, NOW).await.unwrap());
    assert_eq!(
        budget.month(&user, "2026-12", NOW).await.unwrap().reserved,
        NanoUsd(1_000_000)
    );
    // Alerts fire once per threshold and month.
    assert!(budget.mark_alerted(&user, month, 50).await.unwrap());
    assert!(!budget.mark_alerted(&user, month, 50).await.unwrap());
    assert!(budget.mark_alerted(&user, month, 80).await.unwrap());
    assert!(budget.mark_alerted(&user, "2026-12", 50).await.unwrap());
    assert_eq!(budget.alerted(&user, month).await.unwrap(), vec![50, 80]);
}

pub async fn cache_suite(cache: &dyn ResponseCache) {
    let key = format!("k-{}", uuid::Uuid::new_v4().simple());
    assert_eq!(cache.get_cached(&key, 1000).await.unwrap(), None);
    cache
        .put_cached(&key, "{\"content\":\"a\"}", 2000)
        .await
        .unwrap();
    assert_eq!(
        cache.get_cached(&key, 1999).await.unwrap().as_deref(),
        Some("{\"content\":\"a\"}")
    );
    assert_eq!(
        cache.get_cached(&key, 2000).await.unwrap(),
        None,
        "expired at its expiry time"
    );
    cache
        .put_cached(&key, "{\"content\":\"b\"}", 3000)
        .await
        .unwrap();
    assert_eq!(
        cache.get_cached(&key, 2500).await.unwrap().as_deref(),
        Some("{\"content\":\"b\"}")
    );
}

pub async fn audit_suite(audit: &dyn AuditStore) {
    let actor = fresh_user("audit");
    let other = fresh_user("audit-other");
    let at = |ts: &str, who: &str, action: &str| AuditEvent {
        timestamp: ts.into(),
        id: uuid::Uuid::new_v4().to_string(),
        actor: who.to_owned(),
        target: format!("llm:{who}"),
        action: action.into(),
        before: Some(serde_json::json!({"enabled": true})),
        after: Some(serde_json::json!({"enabled": false})),
        request_id: Some("req-1".into()),
    };
    // Spread over two months, appended out of order.
    let a = at("2031-01-02T00:00:00.000Z", &actor, "budget_alert");
    let b = at("2031-01-03T00:00:00.000Z", &actor, "llm_update");
    let c = at("2031-02-01T00:00:00.000Z", &actor, "llm_update");
    let d = at("2031-02-02T00:00:00.000Z", &other, "llm_update");
    for e in [&c, &a, &d, &b] {
        audit.append(e).await.unwrap();
    }
    // Appending again changes nothing.
    audit.append(&a).await.unwrap();
    let q = |actor: Option<&str>, action: Option<&str>, end: &str, limit| AuditQuery {
        actor: actor.map(str::to_owned),
        action: action.map(str::to_owned),
        start: "2031-01-01".into(),
        end: end.into(),
        limit,
        ..Default::default()
    };
    // Newest first, across months, only this actor's, within the range.
    let (got, next) = audit
        .query(&q(Some(&actor), None, "2031-03-01", 100))
        .await
        .unwrap();
    assert_eq!(got, vec![c.clone(), b.clone(), a.clone()]);
    assert_eq!(next, None);
    let (got, _) = audit
        .query(&q(Some(&actor), None, "2031-01-03", 100))
        .await
        .unwrap();
    assert_eq!(got, vec![a.clone()], "end is exclusive");
    // Pages: two, then the rest below the cursor.
    let (page, next) = audit
        .query(&q(Some(&actor), None, "2031-03-01", 2))
        .await
        .unwrap();
    assert_eq!(page, vec![c.clone(), b.clone()]);
    let cursor = next.expect("a second page");
    let mut rest = q(Some(&actor), None, "2031-03-01", 2);
    rest.before = Some(cursor);
    let (page, next) = audit.query(&rest).await.unwrap();
    assert_eq!(page, vec![a.clone()]);
    assert_eq!(next, None);
    // Filters by action and target.
    let (got, _) = audit
        .query(&q(Some(&actor), Some("llm_update"), "2031-03-01", 100))
        .await
        .unwrap();
    assert_eq!(got, vec![c.clone(), b.clone()]);
    let mut by_target = q(None, None, "2031-03-01", 100);
    by_target.target = Some(format!("llm:{other}"));
    assert_eq!(audit.query(&by_target).await.unwrap().0, vec![d]);
}

/// A registry entry with a name and id unique to this run.
pub fn llm_entry(tag: &str, priority: i64) -> super::LlmEntry {
    let now = chrono::Utc::now();
    super::LlmEntry {
        id: format!("conf-{tag}-{}", uuid::Uuid::new_v4().simple()),
        name: format!("conf {tag} {}", uuid::Uuid::new_v4().simple()),
        provider: Provider::OpenAi,
        model_name: "gpt-4o-mini".into(),
        description: "a conformance entry".into(),
        config: super::EntryConfig {
            temperature: Some(0.25),
            max_tokens: Some(512),
        },
        auth_meta: Some(super::AuthMeta {
            api_key_env: Some("CONF_OPENAI_KEY".into()),
            api_key_secret: None,
        }),
        enabled: true,
        default_for: Vec::new(),
        priority,
        scope: super::GLOBAL_SCOPE.into(),
        capabilities: vec!["chat".into(), "tools".into()],
        price_override: Some(super::PriceOverride {
            input: "0.15".parse().unwrap(),
            output: "0.6".parse().unwrap(),
            cached_read: Some("0.075".parse().unwrap()),
            cache_write: None,
        }),
        created_at: now,
        updated_at: now,
        version: 1,
    }
}

pub async fn registry_suite(store: &dyn super::RegistryStore, audit: &dyn AuditStore) {
    use super::RegistryWrite::{Delete, Put};
    let actor = fresh_user("registry");
    let a = llm_entry("a", 10);
    assert_eq!(store.get_llm(&a.id).await.unwrap(), None);

    // A create round-trips exactly, with its audit event.
    let created = event(&actor, "llm_create");
    store
        .write_llms(
            &[Put {
                entry: a.clone(),
                previous: None,
            }],
            std::slice::from_ref(&created),
        )
        .await
        .unwrap();
    assert_eq!(store.get_llm(&a.id).await.unwrap(), Some(a.clone()));
    assert!(store.list_llms().await.unwrap().contains(&a));
    assert_eq!(events_of(audit, &actor).await, vec![created.clone()]);

    // The id and the name are each unique.
    let mut same_id = llm_entry("same-id", 20);
    same_id.id = a.id.clone();
    let mut same_name = llm_entry("same-name", 20);
    same_name.name = a.name.clone();
    for taken in [same_id, same_name] {
        let put = Put {
            entry: taken.clone(),
            previous: None,
        };
        assert!(matches!(
            store.write_llms(&[put], &[event(&actor, "lost")]).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(store.get_llm(&taken.id).await.unwrap().as_ref(), {
            if taken.id == a.id { Some(&a) } else { None }
        });
    }
    assert_eq!(events_of(audit, &actor).await, vec![created.clone()]);

    // An update on the current version wins and frees the old name; a stale one loses.
    let mut a2 = a.clone();
    a2.name = format!("{} renamed", a.name);
    a2.enabled = false;
    a2.version = 2;
    let stale = Put {
        entry: a2.clone(),
        previous: Some(super::LlmEntry {
            version: 7,
            ..a.clone()
        }),
    };
    assert!(matches!(
        store.write_llms(&[stale], &[]).await,
        Err(StoreError::Conflict)
    ));
    store
        .write_llms(
            &[Put {
                entry: a2.clone(),
                previous: Some(a.clone()),
            }],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(store.get_llm(&a.id).await.unwrap(), Some(a2.clone()));
    let mut reuses_name = llm_entry("reuse", 30);
    reuses_name.name = a.name.clone();
    store
        .write_llms(
            &[Put {
                entry: reuses_name.clone(),
                previous: None,
            }],
            &[],
        )
        .await
        .unwrap();

    // Several writes are all or nothing: a move of the default with one stale half
    // changes neither entry.
    let mut b = llm_entry("b", 40);
    b.default_for = vec!["conversation".into()];
    store
        .write_llms(
            &[Put {
                entry: b.clone(),
                previous: None,
            }],
            &[],
        )
        .await
        .unwrap();
    let mut b_cleared = b.clone();
    b_cleared.default_for.clear();
    b_cleared.version = 2;
    let mut a3 = a2.clone();
    a3.default_for = vec!["conversation".into()];
    a3.version = 3;
    let half_stale = [
        Put {
            entry: b_cleared.clone(),
            previous: Some(b.clone()),
        },
        Put {
            entry: a3.clone(),
            previous: Some(a.clone()), // version 1: stale
        },
    ];
    assert!(matches!(
        store
            .write_llms(&half_stale, &[event(&actor, "lost")])
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get_llm(&b.id).await.unwrap(), Some(b.clone()));
    assert_eq!(store.get_llm(&a.id).await.unwrap(), Some(a2.clone()));
    let moved = event(&actor, "llm_set_default");
    store
        .write_llms(
            &[
                Put {
                    entry: b_cleared.clone(),
                    previous: Some(b.clone()),
                },
                Put {
                    entry: a3.clone(),
                    previous: Some(a2.clone()),
                },
            ],
            std::slice::from_ref(&moved),
        )
        .await
        .unwrap();
    assert_eq!(store.get_llm(&a.id).await.unwrap(), Some(a3.clone()));
    assert_eq!(store.get_llm(&b.id).await.unwrap(), Some(b_cleared.clone()));

    // A delete on the current version removes the entry and frees its name.
    assert!(matches!(
        store
            .write_llms(
                &[Delete {
                    previous: a2.clone()
                }],
                &[]
            )
            .await,
        Err(StoreError::Conflict)
    ));
    store
        .write_llms(
            &[Delete {
                previous: a3.clone(),
            }],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(store.get_llm(&a.id).await.unwrap(), None);
    let mut c = llm_entry("c", 50);
    c.name = a3.name.clone();
    store
        .write_llms(
            &[Put {
                entry: c.clone(),
                previous: None,
            }],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        events_of(audit, &actor).await,
        vec![moved, created],
        "only the writes that landed were audited"
    );
    for e in [reuses_name, b_cleared, c] {
        store
            .write_llms(&[Delete { previous: e }], &[])
            .await
            .unwrap();
    }
}

/// Seeding happens once in a store's life, even after its entries are deleted. Run it
/// on a store of its own: it seeds that store's registry.
pub async fn registry_seed_suite(store: &dyn super::RegistryStore) {
    let seeds = [llm_entry("seed-a", 1), llm_entry("seed-b", 2)];
    assert!(store.seed_llms(&seeds).await.unwrap());
    let listed = store.list_llms().await.unwrap();
    for s in &seeds {
        assert!(listed.contains(s));
    }
    store
        .write_llms(
            &[super::RegistryWrite::Delete {
                previous: seeds[0].clone(),
            }],
            &[],
        )
        .await
        .unwrap();
    assert!(!store.seed_llms(&seeds).await.unwrap());
    assert_eq!(store.get_llm(&seeds[0].id).await.unwrap(), None);
}

pub async fn limits_suite(store: &dyn super::LimitsStore, audit: &dyn AuditStore) {
    let user = fresh_user("limits");
    assert_eq!(store.get_limits(&user).await.unwrap(), None);
    let v1 = super::UserLimits {
        monthly_budget_usd: Some(NanoUsd(100_000_000_001)),
        requests_per_minute: Some(60),
        updated_at: Some(chrono::Utc::now()),
        version: 1,
    };
    let set = event(&user, "limits_update");
    store.put_limits(&user, &v1, 0, &set).await.unwrap();
    assert_eq!(store.get_limits(&user).await.unwrap(), Some(v1.clone()));
    // A second first write, and a stale one, lose and audit nothing.
    assert!(matches!(
        store.put_limits(&user, &v1, 0, &event(&user, "lost")).await,
        Err(StoreError::Conflict)
    ));
    let v2 = super::UserLimits {
        monthly_budget_usd: None,
        requests_per_minute: Some(5),
        version: 2,
        ..v1.clone()
    };
    assert!(matches!(
        store.put_limits(&user, &v2, 9, &event(&user, "lost")).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(events_of(audit, &user).await, vec![set.clone()]);
    let lifted = event(&user, "limits_update");
    store.put_limits(&user, &v2, 1, &lifted).await.unwrap();
    assert_eq!(store.get_limits(&user).await.unwrap(), Some(v2));
    assert_eq!(events_of(audit, &user).await, vec![lifted, set]);
}

pub async fn counters_suite(counters: Arc<dyn super::RateCounters>) {
    let key = fresh_user("rate");
    let window = 1_900_000_020;
    // 20 concurrent hits on a limit of 7: exactly 7 counted.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (c, k) = (counters.clone(), key.clone());
        tasks.push(tokio::spawn(async move { c.hit(&k, window, 60, 7).await }));
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += u32::from(t.await.unwrap().unwrap());
    }
    assert_eq!(allowed, 7);
    // The next window starts from zero; other keys are apart.
    assert!(counters.hit(&key, window + 60, 60, 7).await.unwrap());
    assert!(
        counters
            .hit(&format!("{key}-b"), window, 60, 1)
            .await
            .unwrap()
    );
    assert!(
        !counters
            .hit(&format!("{key}-b"), window, 60, 1)
            .await
            .unwrap()
    );
}

/// The rate-limit book: states replace each other per key, block until their reset,
/// stay apart per owner, provider and key, and are reported per provider without the
/// key's fingerprint.
pub async fn rate_limits_suite(book: &dyn super::RateLimitBook) {
    use super::{KeyRef, RateLimitState};
    use chrono::{DurationRound, TimeDelta};
    let owner = fresh_user("rl");
    // Whole milliseconds: what every backend keeps.
    let now = chrono::Utc::now()
        .duration_trunc(TimeDelta::milliseconds(1))
        .unwrap();
    let secs = |s: i64| now + TimeDelta::seconds(s);
    let key = |provider, fp: &str| KeyRef {
        owner: owner.clone(),
        provider,
        fingerprint: fp.to_owned(),
    };
    let openai = key(Provider::OpenAi, "f-one");
    assert_eq!(book.last(&openai, now).await.unwrap(), None);
    assert_eq!(book.blocked(&openai, 1, now).await.unwrap(), None);
    assert!(book.reported(&owner, now).await.unwrap().is_empty());

    let exhausted = RateLimitState {
        requests_remaining: Some(0),
        requests_reset: Some(secs(2)),
        tokens_remaining: Some(40_000),
        tokens_reset: Some(secs(6)),
        blocked_until: None,
    };
    book.observe(&openai, &exhausted, now).await.unwrap();
    assert_eq!(
        book.last(&openai, now).await.unwrap(),
        Some(exhausted.clone())
    );
    assert_eq!(book.blocked(&openai, 10, now).await.unwrap(), Some(secs(2)));
    assert_eq!(
        book.blocked(&openai, 50_000, now).await.unwrap(),
        Some(secs(6)),
        "too few tokens for this request: until the tokens reset"
    );
    assert_eq!(book.blocked(&openai, 10, secs(2)).await.unwrap(), None);
    // Apart per key, provider and owner.
    let rotated = key(Provider::OpenAi, "f-two");
    assert_eq!(book.blocked(&rotated, 10, now).await.unwrap(), None);
    assert_eq!(
        book.blocked(&key(Provider::Groq, "f-one"), 10, now)
            .await
            .unwrap(),
        None
    );
    let stranger = KeyRef {
        owner: fresh_user("rl-other"),
        ..openai.clone()
    };
    assert_eq!(book.blocked(&stranger, 10, now).await.unwrap(), None);

    // A 429's block; then a newer answer replaces it, an older one does not.
    let anthropic = key(Provider::Anthropic, "f-three");
    let told = RateLimitState {
        blocked_until: Some(secs(30)),
        ..Default::default()
    };
    book.observe(&anthropic, &told, now).await.unwrap();
    assert_eq!(
        book.blocked(&anthropic, 0, secs(1)).await.unwrap(),
        Some(secs(30))
    );
    let recovered = RateLimitState {
        requests_remaining: Some(49),
        requests_reset: Some(secs(40)),
        ..Default::default()
    };
    book.observe(&anthropic, &recovered, secs(3)).await.unwrap();
    book.observe(&anthropic, &told, secs(2)).await.unwrap();
    assert_eq!(book.blocked(&anthropic, 0, secs(3)).await.unwrap(), None);
    assert_eq!(
        book.last(&anthropic, secs(3)).await.unwrap(),
        Some(recovered.clone())
    );

    // Reported: the newest per provider, sorted, without fingerprints.
    book.observe(&rotated, &recovered, secs(4)).await.unwrap();
    let reports = book.reported(&owner, secs(4)).await.unwrap();
    let seen: Vec<_> = reports
        .iter()
        .map(|r| (r.provider, r.observed_at, r.state.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (Provider::Anthropic, secs(3), recovered.clone()),
            (Provider::OpenAi, secs(4), recovered.clone()),
        ]
    );
    let json = serde_json::to_string(&reports).unwrap();
    assert!(!json.contains("f-"), "no fingerprint in a report: {json}");
    assert!(json.contains("\"requests_remaining\":49"), "{json}");
    // Forgotten a while past the latest reset.
    let later = secs(40) + super::ratelimits::KEEP_PAST_RESET + TimeDelta::seconds(1);
    assert_eq!(book.last(&anthropic, later).await.unwrap(), None);
    assert!(book.reported(&owner, later).await.unwrap().is_empty());
}
