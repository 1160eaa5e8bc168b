//! Cost insights of one user over the last `days` (7 to 90, 30 by default, today
//! included), computed from what the other usage reports already read:
//!
//! - **forecast**: the month's numbers `/budget` gives (spent, the projection of it to
//!   month end, the limit capped by the admin's); `over_budget` when the projection is
//!   above the limit.
//! - **anomalies**: over the `/daily` rows of the period, a day costing at least 3× the
//!   mean of the 7 days before it (fewer at the start of the period, but at least 3;
//!   zero days count as zero), and at least $0.01. Exact: `cost × n ≥ 3 × sum`.
//!   Newest first. See [`anomalies`].
//! - **cheaper_models**: per model of the period's successful, priced calls, the
//!   cheapest enabled chat model the caller may use (what `GET /api/llm-models` lists)
//!   that holds the largest request, keeps `tools` / `vision` when the used model has
//!   them and charges something, priced on the same tokens; listed when it saves
//!   something, largest saving first, at most 5. See [`cheaper`].
//! - **repeated_prompts**: answered requests whose fingerprint (`metadata.prompt_hash`,
//!   recorded by generate) an earlier answer of the period had, and what they cost: what
//!   the response cache would have saved at most. See [`repeated`].
//!
//! At most [`MAX_ENTRIES`] entries are read, newest first; past that `truncated` is set
//! and the oldest part of the period is left out of the last two insights.

pub mod anomalies;
pub mod cheaper;
pub mod repeated;

use super::dashboard::{self, BudgetReport};
use super::query::whole_number;
use super::range::{Range, day_start};
use super::report::month_bounds;
use super::{UsageEntry, UsageError};
use crate::money::NanoUsd;
use crate::providers::key_required;
use crate::registry::RegistryCache;
use crate::settings::SettingsRecord;
use crate::store::{BudgetStore, LimitsStore, SettingsStore, UsageStore};
use anomalies::Anomaly;
use cheaper::{Alternative, CheaperModel};
use chrono::{DateTime, Datelike, Utc};
use repeated::RepeatedPrompts;
use serde::Serialize;

/// Entries read at most: a bound on the work of one request.
pub const MAX_ENTRIES: usize = 20_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Insights {
    pub period: Period,
    pub forecast: Forecast,
    pub anomalies: Vec<Anomaly>,
    pub cheaper_models: Vec<CheaperModel>,
    pub repeated_prompts: RepeatedPrompts,
    /// More than [`MAX_ENTRIES`] entries in the period: the newest were used.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    pub start: String,
    pub end: String,
    pub days: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forecast {
    pub month: String,
    pub spent_usd: NanoUsd,
    pub projected_usd: NanoUsd,
    pub limit_usd: Option<NanoUsd>,
    pub over_budget: bool,
    /// Days of the month begun so far, today included.
    pub days_elapsed: u32,
    pub days_in_month: i64,
}

/// The stores the insights read.
pub struct Sources<'a> {
    pub usage: &'a dyn UsageStore,
    pub settings: &'a dyn SettingsStore,
    pub limits: &'a dyn LimitsStore,
    pub budgets: &'a dyn BudgetStore,
    pub registry: &'a RegistryCache,
}

/// `tenant` is `Some` with the caller's tenant (or none) when they ask about themselves;
/// `None` for an admin asking about someone else, whose tenant is then taken from their
/// newest entry of the period (a request does not tell another user's tenant).
pub async fn insights(
    src: &Sources<'_>,
    user_id: &str,
    tenant: Option<Option<&str>>,
    days: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Insights, UsageError> {
    let days = whole_number("days", days, 7, 90, 30)?;
    let range = Range::last_days(days, now);
    let budget = dashboard::budget(src.settings, src.limits, src.budgets, user_id, now).await?;
    let rows = dashboard::daily_rows_of(src.usage, user_id, days, now).await?;
    let (entries, truncated) =
        read_entries(src.usage, user_id, &range, now.timestamp(), MAX_ENTRIES).await?;
    let tenant: Option<String> = match tenant {
        Some(known) => known.map(str::to_owned),
        None => entries.last().and_then(|e| e.tenant_id.clone()),
    };
    let record = src.settings.settings_or_default(user_id).await?;
    let tenant_record = match &tenant {
        Some(t) => Some(
            src.settings
                .settings_or_default(&crate::identity::tenant_owner(t))
                .await?,
        ),
        None => None,
    };
    let caching = match &tenant_record {
        Some(t) => crate::settings::inherit::effective(&record, t).enable_caching,
        None => record.preferences.enable_caching,
    };
    let cheaper_models = suggestions(
        src.registry,
        tenant.as_deref(),
        &entries,
        &[Some(&record), tenant_record.as_ref()],
    )
    .await;
    Ok(Insights {
        period: Period {
            start: range.start_key(),
            end: range.end_key(),
            days,
        },
        forecast: forecast(&budget, now),
        anomalies: anomalies::anomalies(&rows),
        cheaper_models,
        repeated_prompts: repeated::repeated_prompts(&entries, caching),
        truncated,
    })
}

/// The forecast part of a `/budget` report.
pub fn forecast(b: &BudgetReport, now: DateTime<Utc>) -> Forecast {
    let (first, next) = month_bounds(now);
    Forecast {
        month: b.month.clone(),
        spent_usd: b.spent,
        projected_usd: b.projected,
        limit_usd: b.limit,
        over_budget: b.limit.is_some_and(|l| b.projected > l),
        days_elapsed: now.day(),
        days_in_month: (day_start(next) - first).num_days(),
    }
}

/// The period's unexpired entries, oldest first, with the store's paged query: the
/// newest `max` at most, and whether more were left.
async fn read_entries(
    usage: &dyn UsageStore,
    user_id: &str,
    range: &Range,
    now_unix: i64,
    max: usize,
) -> Result<(Vec<UsageEntry>, bool), UsageError> {
    let (start, end) = (range.start_key(), range.end_key());
    let mut out: Vec<UsageEntry> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        // One more than `max`, to know whether any was left.
        let want = (max + 1 - out.len()).min(1000);
        let (page, next) = usage
            .entries(user_id, &start, &end, want, before.as_deref())
            .await?;
        out.extend(page.into_iter().filter(|e| e.ttl > now_unix));
        if out.len() > max {
            out.truncate(max);
            out.reverse();
            return Ok((out, true));
        }
        match next {
            Some(n) => before = Some(n),
            None => {
                out.reverse();
                return Ok((out, false));
            }
        }
    }
}

/// The cheaper models, from the registry the caller routes on. `keys` are the records
/// whose saved keys serve the user (their own, their tenant's).
async fn suggestions(
    registry: &RegistryCache,
    tenant: Option<&str>,
    entries: &[UsageEntry],
    keys: &[Option<&SettingsRecord>],
) -> Vec<CheaperModel> {
    let view = registry.view().await;
    let catalog = registry.catalog();
    let has_key = |p| keys.iter().flatten().any(|r| r.keys.contains_key(&p));
    let alternatives: Vec<Alternative<'_>> = view
        .usable(tenant)
        .map(|r| Alternative {
            price: &r.model,
            capabilities: &r.entry.capabilities,
            needs_key: r.entry.auth_meta.is_none()
                && key_required(r.entry.provider)
                && !has_key(r.entry.provider),
        })
        .collect();
    // The used model as routing knows it (the registry entry's capabilities), else as
    // the catalog does (a model since disabled).
    let capabilities_of = |p, model: &str| {
        view.find(tenant, Some(p), model)
            .map(|r| r.entry.capabilities.clone())
            .or_else(|| catalog.find(Some(p), model).map(|m| m.capabilities.clone()))
    };
    cheaper::cheaper_models(
        &cheaper::model_usage(entries),
        capabilities_of,
        &alternatives,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    fn entry(i: i64, now: DateTime<Utc>) -> UsageEntry {
        UsageEntry {
            user_id: "alice".into(),
            timestamp: crate::usage::timestamp(now - chrono::Duration::seconds(i + 1)),
            request_id: format!("req-{i:04}"),
            provider: crate::provider::Provider::OpenAi,
            model: "m".into(),
            operation_type: "conversation".into(),
            input_tokens: 1,
            output_tokens: 1,
            cached_input_tokens: 0,
            total_tokens: 2,
            cost_usd: Some(NanoUsd(1)),
            latency_ms: 1.0,
            status: crate::usage::UsageStatus::Success,
            error_type: None,
            price_version: "test".into(),
            metadata: Default::default(),
            key_source: None,
            tenant_id: None,
            ttl: now.timestamp() + 3600,
        }
    }

    #[tokio::test]
    async fn entries_are_read_newest_first_up_to_the_bound_and_returned_oldest_first() {
        let db = SqliteStore::open_in_memory().unwrap();
        let now = Utc::now();
        let batch: Vec<_> = (0..8).map(|i| (entry(i, now), None)).collect();
        db.record_batch(&batch).await.unwrap();
        let range = Range::last_days(7, now);
        let (read, truncated) = read_entries(&db, "alice", &range, now.timestamp(), 5)
            .await
            .unwrap();
        assert!(truncated);
        // The five newest (req-0000 is the newest), oldest of them first.
        let ids: Vec<&str> = read.iter().map(|e| e.request_id.as_str()).collect();
        assert_eq!(
            ids,
            ["req-0004", "req-0003", "req-0002", "req-0001", "req-0000"]
        );
        let (read, truncated) = read_entries(&db, "alice", &range, now.timestamp(), 8)
            .await
            .unwrap();
        assert_eq!((read.len(), truncated), (8, false));
    }

    #[test]
    fn the_forecast_is_the_budget_with_the_month_counted() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut b = BudgetReport {
            month: "2026-12".into(),
            limit: Some(NanoUsd(10)),
            spent: NanoUsd(1),
            reserved: NanoUsd::ZERO,
            remaining: Some(NanoUsd(9)),
            projected: NanoUsd(10),
            alerted_thresholds: vec![],
        };
        let f = forecast(&b, now);
        assert_eq!((f.days_elapsed, f.days_in_month), (2, 31));
        assert!(
            !f.over_budget,
            "a projection equal to the limit is not over it"
        );
        b.projected = NanoUsd(11);
        assert!(forecast(&b, now).over_budget);
        b.limit = None;
        assert!(!forecast(&b, now).over_budget);
    }
}
