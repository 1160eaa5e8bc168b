//! A tenant's analytics, read from the rollups kept under its owner id
//! ([`crate::store::tenant_rollup`]): the summary and daily trend in the user shapes,
//! over every member's requests, and the last 24 hours per provider and model.
//!
//! A tenant owns rollups only, never entries, so a summary is answered from whole days:
//! a range is widened to the UTC days it touches, and the response's `start` and `end`
//! say which.

use super::dashboard::SummaryReport;
use super::range::{Range, day_key, day_start};
use super::report::{DayRow, ReadStats, summary_from};
use super::{Totals, UsageError, dashboard, timestamp};
use crate::identity::tenant_owner;
use crate::money::NanoUsd;
use crate::store::UsageStore;
use crate::store::ratelimits::{RateLimitBook, RateLimitReport};
use crate::store::tenant_rollup::parse_hour_group;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// The summary of the whole UTC days that `start..end` touches (by default the last 30,
/// today included).
pub async fn summary(
    usage: &dyn UsageStore,
    tenant_id: &str,
    start: Option<&str>,
    end: Option<&str>,
    now: DateTime<Utc>,
) -> Result<SummaryReport, UsageError> {
    let asked = match (start, end) {
        (None, None) => Range::last_days(30, now),
        _ => Range::parse(start, end, 30, now)?,
    };
    let first = day_start(asked.start);
    let last = if day_start(asked.end) == asked.end {
        day_start(asked.end) - Duration::days(1)
    } else {
        day_start(asked.end)
    };
    let rollups = usage
        .rollups(&tenant_owner(tenant_id), &day_key(first), &day_key(last))
        .await?;
    let mut groups: BTreeMap<String, Totals> = BTreeMap::new();
    for day in &rollups {
        for (k, t) in &day.groups {
            groups.entry(k.clone()).or_default().add(t);
        }
    }
    Ok(SummaryReport {
        summary: summary_from(&groups),
        range: Range {
            start: first,
            end: last + Duration::days(1),
        },
        read: ReadStats {
            rollup_days: rollups.len(),
            entries: 0,
        },
    })
}

/// One row per day of the last `days`, exactly as a user's.
pub async fn daily(
    usage: &dyn UsageStore,
    tenant_id: &str,
    days: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<DayRow>, UsageError> {
    dashboard::daily(usage, &tenant_owner(tenant_id), days, now).await
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Window {
    pub start: String,
    pub end: String,
}

/// One provider and model over the window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelWindow {
    pub provider: String,
    pub model: String,
    pub requests: u64,
    pub tokens: u64,
    pub cost_usd: NanoUsd,
    pub avg_latency_ms: f64,
    pub success_rate: f64,
    /// Error requests by class (`rate_limited`, `timeout`, ..., `unknown`).
    pub errors: BTreeMap<String, u64>,
}

/// `GET /api/tenants/{tenantId}/llm-usage/last24h`. A struct, so that what other parts
/// report for the tenant (the rate-limit state of its keys) is one more field.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Last24h {
    pub window: Window,
    pub models: Vec<ModelWindow>,
    /// What the tenant's keys last reported about their provider's rate limits (newest
    /// per provider, unexpired): remaining requests and tokens, their resets, and a
    /// 429's block.
    pub rate_limits: Vec<RateLimitReport>,
}

#[derive(Default)]
struct ModelTotals {
    totals: Totals,
    errors: BTreeMap<String, u64>,
}

/// The current UTC hour and the 23 before it: the hourly groups of yesterday's and
/// today's tenant rollups that fall in that window, summed per provider and model.
pub async fn last24h(
    usage: &dyn UsageStore,
    book: &dyn RateLimitBook,
    tenant_id: &str,
    now: DateTime<Utc>,
) -> Result<Last24h, UsageError> {
    let hour = Utc
        .timestamp_opt(now.timestamp().div_euclid(3600) * 3600, 0)
        .single()
        .unwrap_or(now);
    let start = hour - Duration::hours(23);
    let rollups = usage
        .rollups(&tenant_owner(tenant_id), &day_key(start), &day_key(now))
        .await?;
    let mut models: BTreeMap<(String, String), ModelTotals> = BTreeMap::new();
    for day in &rollups {
        let Ok(date) = NaiveDate::parse_from_str(&day.day, "%Y-%m-%d") else {
            continue;
        };
        for (group, t) in &day.groups {
            let Some(g) = parse_hour_group(group) else {
                continue;
            };
            let Some(at) = date.and_hms_opt(g.hour, 0, 0) else {
                continue;
            };
            let at = Utc.from_utc_datetime(&at);
            if at < start || at > now {
                continue;
            }
            let m = models
                .entry((g.provider.to_owned(), g.model.to_owned()))
                .or_default();
            match g.error_class {
                Some(class) => *m.errors.entry(class.to_owned()).or_default() += t.requests,
                None => m.totals.add(t),
            }
        }
    }
    let models = models
        .into_iter()
        .map(|((provider, model), m)| model_window(provider, model, m))
        .collect();
    Ok(Last24h {
        window: Window {
            start: timestamp(start),
            end: timestamp(now),
        },
        models,
        rate_limits: book.reported(&tenant_owner(tenant_id), now).await?,
    })
}

fn model_window(provider: String, model: String, m: ModelTotals) -> ModelWindow {
    let t = m.totals;
    // Display values only: the money stays integer nano-USD.
    let per_request = |v: f64| {
        if t.requests == 0 {
            0.0
        } else {
            v / t.requests as f64
        }
    };
    ModelWindow {
        provider,
        model,
        requests: t.requests,
        tokens: t.tokens,
        cost_usd: NanoUsd(t.cost_nanos),
        avg_latency_ms: per_request(t.latency_us as f64) / 1000.0,
        success_rate: if t.requests == 0 {
            0.0
        } else {
            per_request(t.requests.saturating_sub(t.errors) as f64)
        },
        errors: m.errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Provider;
    use crate::store::conformance::usage_entry;
    use crate::store::sqlite::SqliteStore;
    use crate::store::warm::ratelimits::MemoryRateLimits;
    use crate::usage::UsageStatus;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    async fn record(db: &SqliteStore, ts: &str, status: UsageStatus, error: Option<&str>) {
        let mut e = usage_entry("m", ts, Provider::OpenAi, Some(10), status);
        e.tenant_id = Some("acme".into());
        e.error_type = error.map(str::to_owned);
        db.record(&e, None).await.unwrap();
    }

    #[tokio::test]
    async fn last24h_sums_the_hours_in_the_window_only() {
        let db = SqliteStore::open_in_memory().unwrap();
        let now = at("2026-11-21T09:30:00Z");
        // 09:00 yesterday is the 24th hour back: out. 10:00 yesterday is in.
        record(&db, "2026-11-20T09:59:00.000Z", UsageStatus::Success, None).await;
        record(&db, "2026-11-20T10:00:00.000Z", UsageStatus::Success, None).await;
        record(
            &db,
            "2026-11-21T09:10:00.000Z",
            UsageStatus::Error,
            Some("timeout"),
        )
        .await;
        record(&db, "2026-11-21T08:10:00.000Z", UsageStatus::Error, None).await;
        let r = last24h(&db, &MemoryRateLimits::default(), "acme", now)
            .await
            .unwrap();
        assert_eq!(r.window.start, "2026-11-20T10:00:00.000Z");
        assert_eq!(r.window.end, "2026-11-21T09:30:00.000Z");
        assert_eq!(r.models.len(), 1);
        let m = &r.models[0];
        assert_eq!(
            (m.provider.as_str(), m.model.as_str()),
            ("openai", "gpt-4o")
        );
        assert_eq!((m.requests, m.tokens, m.cost_usd), (3, 6000, NanoUsd(30)));
        assert_eq!(m.success_rate, 1.0 / 3.0);
        assert_eq!(m.avg_latency_ms, 12.5);
        let classes: Vec<(&str, u64)> = m.errors.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(classes, [("timeout", 1), ("unknown", 1)]);
        assert!(
            last24h(&db, &MemoryRateLimits::default(), "other", now)
                .await
                .unwrap()
                .models
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_summary_reads_the_whole_days_it_touches() {
        let db = SqliteStore::open_in_memory().unwrap();
        record(&db, "2026-11-20T01:00:00.000Z", UsageStatus::Success, None).await;
        record(&db, "2026-11-21T23:00:00.000Z", UsageStatus::Success, None).await;
        let now = at("2026-11-25T00:00:00Z");
        let r = summary(
            &db,
            "acme",
            Some("2026-11-20T12:00:00Z"),
            Some("2026-11-22"),
            now,
        )
        .await
        .unwrap();
        assert_eq!(r.summary.total_requests, 2);
        assert_eq!(r.range.start_key(), "2026-11-20T00:00:00.000Z");
        assert_eq!(r.range.end_key(), "2026-11-22T00:00:00.000Z");
        assert_eq!(r.read.rollup_days, 2);
    }
}
