//! Tenants in the usage and budget stores: joint reservations of a member and their
//! tenant, settlements that move both, and the tenant's rollups (the sum of its members'
//! entries, with the hourly groups `last24h` reads).

use super::{NOW, fresh_user, reservation, settlement, usage_entry};
use crate::identity::tenant_owner;
use crate::money::NanoUsd;
use crate::provider::Provider;
use crate::store::tenant_rollup::is_hourly;
use crate::store::{BudgetStore, Settlement, UsageStatus, UsageStore};
use std::sync::Arc;

const MONTH: &str = "2026-11";

async fn counters(budget: &dyn BudgetStore, holder: &str, now: i64) -> (i64, i64) {
    let m = budget.month(holder, MONTH, now).await.unwrap();
    (m.spent.0, m.reserved.0)
}

fn with_tenant(s: Settlement, tenant: &str) -> Settlement {
    Settlement {
        tenant: Some(tenant.to_owned()),
        ..s
    }
}

pub async fn tenant_suite(usage: &dyn UsageStore, budget: Arc<dyn BudgetStore>) {
    let tenant = fresh_user("tenant");
    let owner = tenant_owner(&tenant);
    let members = [fresh_user("member-a"), fresh_user("member-b")];
    let (member_limit, tenant_limit) = (Some(NanoUsd(90)), Some(NanoUsd(150)));

    // 20 concurrent joint reservations of 10, ten per member: each member could hold 90,
    // together 180, but the tenant holds at most 150. Neither limit is ever passed, and
    // each grant is held by both its member and the tenant.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (b, member, owner) = (budget.clone(), members[i % 2].clone(), owner.clone());
        tasks.push(tokio::spawn(async move {
            let r = reservation(&format!("joint{i}"), MONTH, 10, NOW + 60);
            let holders = [
                (member.as_str(), member_limit),
                (owner.as_str(), tenant_limit),
            ];
            (i, b.reserve_joint(&holders, &r, NOW).await.unwrap())
        }));
    }
    let mut granted = [Vec::new(), Vec::new()];
    for t in tasks {
        let (i, ok) = t.await.unwrap();
        if ok {
            granted[i % 2].push(i);
        }
    }
    assert_eq!(granted[0].len() + granted[1].len(), 15, "{granted:?}");
    assert_eq!(counters(budget.as_ref(), &owner, NOW).await, (0, 150));
    for (m, got) in members.iter().zip(&granted) {
        assert!(got.len() <= 9);
        let held = i64::try_from(got.len()).unwrap() * 10;
        assert_eq!(counters(budget.as_ref(), m, NOW).await, (0, held));
    }

    // A refused joint reservation changes neither: refused by the tenant (the member has
    // room) and by the member (a new member with a small limit; the tenant has none left
    // either way, so a third member with no limit shows the tenant's refusal alone).
    let (a, b) = (&members[0], &members[1]);
    let roomy = if granted[0].len() < 9 { a } else { b };
    let before = counters(budget.as_ref(), roomy, NOW).await;
    let over = reservation("over", MONTH, 10, NOW + 60);
    let holders = [
        (roomy.as_str(), member_limit),
        (owner.as_str(), tenant_limit),
    ];
    assert!(!budget.reserve_joint(&holders, &over, NOW).await.unwrap());
    assert_eq!(counters(budget.as_ref(), roomy, NOW).await, before);
    assert_eq!(counters(budget.as_ref(), &owner, NOW).await, (0, 150));
    let small = fresh_user("member-small");
    let tiny = [(small.as_str(), Some(NanoUsd(5))), (owner.as_str(), None)];
    assert!(!budget.reserve_joint(&tiny, &over, NOW).await.unwrap());
    assert_eq!(counters(budget.as_ref(), &small, NOW).await, (0, 0));
    assert_eq!(counters(budget.as_ref(), &owner, NOW).await, (0, 150));

    // A granted joint reservation asked for again is granted and counted once.
    let first = reservation(&format!("joint{}", granted[0][0]), MONTH, 10, NOW + 60);
    let holders = [(a.as_str(), member_limit), (owner.as_str(), tenant_limit)];
    assert!(budget.reserve_joint(&holders, &first, NOW).await.unwrap());
    assert_eq!(counters(budget.as_ref(), &owner, NOW).await, (0, 150));

    // Settling with the tenant moves both: on its own, and in the usage write.
    let a_held = counters(budget.as_ref(), a, NOW).await.1;
    let settle_first = with_tenant(settlement(&first, 3), &tenant);
    budget.settle(a, &settle_first).await.unwrap();
    budget.settle(a, &settle_first).await.unwrap();
    assert_eq!(counters(budget.as_ref(), a, NOW).await, (3, a_held - 10));
    assert_eq!(counters(budget.as_ref(), &owner, NOW).await, (3, 140));
    let second = reservation(&format!("joint{}", granted[0][1]), MONTH, 10, NOW + 60);
    let mut e = usage_entry(
        a,
        "2026-11-20T10:00:00.000Z",
        Provider::Anthropic,
        Some(4),
        UsageStatus::Success,
    );
    e.tenant_id = Some(tenant.clone());
    let settle_second = with_tenant(settlement(&second, 4), &tenant);
    usage.record(&e, Some(&settle_second)).await.unwrap();
    usage.record(&e, Some(&settle_second)).await.unwrap();
    budget.settle(a, &settle_second).await.unwrap();
    assert_eq!(counters(budget.as_ref(), a, NOW).await, (7, a_held - 20));
    assert_eq!(counters(budget.as_ref(), &owner, NOW).await, (7, 130));

    // A lapsed joint lease stops counting for both, and a refused joint reservation
    // releases it and retries.
    let late = reservation("late", MONTH, 130, NOW + 200);
    let free = [(b.as_str(), None), (owner.as_str(), tenant_limit)];
    assert!(!budget.reserve_joint(&free, &late, NOW + 30).await.unwrap());
    assert!(budget.reserve_joint(&free, &late, NOW + 61).await.unwrap());
    assert_eq!(counters(budget.as_ref(), &owner, NOW + 61).await, (7, 130));
    assert_eq!(counters(budget.as_ref(), b, NOW + 61).await, (0, 130));

    tenant_rollups(usage, &tenant, &members, &e).await;
}

/// The tenant's rollups are the sum of its members' entries (a repeat counted once), and
/// only the tenant's carry the hourly groups.
async fn tenant_rollups(
    usage: &dyn UsageStore,
    tenant: &str,
    members: &[String; 2],
    recorded: &crate::store::UsageEntry,
) {
    let owner = tenant_owner(tenant);
    let entry = |user: &str, ts: &str, provider: Provider, status: UsageStatus| {
        let mut e = usage_entry(user, ts, provider, Some(100), status);
        e.tenant_id = Some(tenant.to_owned());
        e
    };
    let (ok, err) = (UsageStatus::Success, UsageStatus::Error);
    let b1 = entry(
        &members[1],
        "2026-11-20T10:30:00.000Z",
        Provider::Anthropic,
        err,
    );
    let mut b2 = entry(
        &members[1],
        "2026-11-20T13:00:00.000Z",
        Provider::OpenAi,
        err,
    );
    b2.error_type = Some("timeout".into());
    let a2 = entry(
        &members[0],
        "2026-11-21T08:00:00.000Z",
        Provider::OpenAi,
        ok,
    );
    // Not a member: counts for its user only.
    let outsider = usage_entry(
        &fresh_user("outsider"),
        "2026-11-20T10:00:00.000Z",
        Provider::Anthropic,
        Some(100),
        ok,
    );
    let batch = [&b1, &b2, &b1].map(|e| (e.clone(), None));
    usage.record_batch(&batch).await.unwrap();
    for e in [&a2, &b2, &outsider] {
        usage.record(e, None).await.unwrap();
    }

    let days = usage
        .rollups(&owner, "2026-11-19", "2026-11-22")
        .await
        .unwrap();
    assert_eq!(
        days.iter().map(|d| d.day.as_str()).collect::<Vec<_>>(),
        ["2026-11-20", "2026-11-21"]
    );
    // The tenant's user groups are the sum of the members' own rollups.
    for day in &days {
        let mut sum = std::collections::BTreeMap::new();
        for m in members {
            for r in usage.rollups(m, &day.day, &day.day).await.unwrap() {
                assert!(r.groups.keys().all(|g| !is_hourly(g)), "{:?}", r.groups);
                for (g, t) in r.groups {
                    sum.entry(g)
                        .or_insert_with(crate::store::Totals::default)
                        .add(&t);
                }
            }
        }
        let user_groups: std::collections::BTreeMap<_, _> = day
            .groups
            .iter()
            .filter(|(g, _)| !is_hourly(g))
            .map(|(g, t)| (g.clone(), *t))
            .collect();
        assert_eq!(user_groups, sum, "{}", day.day);
    }
    let d20 = &days[0].groups;
    assert_eq!(d20["all"].requests, 3);
    assert_eq!(d20["all"].errors, 2);
    assert_eq!(d20["all"].cost_nanos, 4 + 100 + 100);
    let claude = format!("{}/{}", Provider::Anthropic, recorded.model);
    assert_eq!(d20[&format!("hour:10|{claude}")].requests, 2);
    assert_eq!(d20[&format!("hour:10|{claude}")].errors, 1);
    assert_eq!(d20[&format!("hour:10|{claude}")].tokens, 4000);
    assert_eq!(d20[&format!("hour:10|{claude}")].latency_us, 25_000);
    assert_eq!(
        d20[&format!("hour_error:10|{claude}|rate_limited")].requests,
        1
    );
    assert_eq!(d20["hour:13|openai/gpt-4o"].requests, 1);
    assert_eq!(d20["hour_error:13|openai/gpt-4o|timeout"].requests, 1);
    assert_eq!(d20.keys().filter(|g| is_hourly(g)).count(), 4, "{d20:?}");
    assert_eq!(days[1].groups["hour:08|openai/gpt-4o"].requests, 1);
    // The tenant owns rollups only, never entries.
    let (entries, _) = usage
        .entries(&owner, "2000", "9999", 10, None)
        .await
        .unwrap();
    assert!(entries.is_empty());
}
