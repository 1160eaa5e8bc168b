//! One user's dashboard: the summary of a range, the daily trend and the month's
//! budget, from their parameters as the client gave them (empty ones absent).

use super::query::whole_number;
use super::range::{Range, day_key, day_start};
use super::report::{
    DayRow, ReadStats, Summary, daily_rows, group_totals, projected, summary_from,
};
use super::{UsageError, month_of};
use crate::money::NanoUsd;
use crate::store::{BudgetStore, LimitsStore, SettingsStore, UsageStore};
use chrono::{DateTime, Utc};

/// The summary of a range, and what was read to answer it.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryReport {
    pub summary: Summary,
    pub range: Range,
    /// One rollup item per whole day, entries only for the partial days at the edges.
    pub read: ReadStats,
}

/// Without `start` and `end`, the last 30 whole days (today included), so that the
/// default view is answered from rollups alone.
pub async fn summary(
    usage: &dyn UsageStore,
    user_id: &str,
    start: Option<&str>,
    end: Option<&str>,
    now: DateTime<Utc>,
) -> Result<SummaryReport, UsageError> {
    let range = match (start, end) {
        (None, None) => Range::last_days(30, now),
        _ => Range::parse(start, end, 30, now)?,
    };
    let (groups, read) = group_totals(usage, user_id, &range, now.timestamp()).await?;
    Ok(SummaryReport {
        summary: summary_from(&groups),
        range,
        read,
    })
}

/// One row per day of the last `days` (1 to 396, 30 by default), today included.
pub async fn daily(
    usage: &dyn UsageStore,
    user_id: &str,
    days: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<DayRow>, UsageError> {
    let days = whole_number("days", days, 1, 396, 30)?;
    daily_rows_of(usage, user_id, days, now).await
}

/// The rows of [`daily`] for a number of days already checked.
pub async fn daily_rows_of(
    usage: &dyn UsageStore,
    user_id: &str,
    days: i64,
    now: DateTime<Utc>,
) -> Result<Vec<DayRow>, UsageError> {
    let today = day_start(now);
    let from = today - chrono::Duration::days(days - 1);
    let rollups = usage
        .rollups(user_id, &day_key(from), &day_key(today))
        .await?;
    Ok(daily_rows(&rollups, today, days))
}

/// The month's budget: limit, counters, what is left and where the month is heading.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetReport {
    pub month: String,
    pub limit: Option<NanoUsd>,
    pub spent: NanoUsd,
    pub reserved: NanoUsd,
    /// `None` without a limit; never below zero.
    pub remaining: Option<NanoUsd>,
    pub projected: NanoUsd,
    pub alerted_thresholds: Vec<u32>,
}

pub async fn budget(
    settings: &dyn SettingsStore,
    limits: &dyn LimitsStore,
    budgets: &dyn BudgetStore,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<BudgetReport, UsageError> {
    let month = month_of(now);
    // A user who never saved settings has the defaults: no limit.
    let mut record = settings.settings_or_default(user_id).await?;
    // The limit that holds: the user's own, capped by the admin's.
    crate::store::capped(
        &mut record.preferences,
        limits.get_limits(user_id).await?.as_ref(),
    );
    let counters = budgets.month(user_id, &month, now.timestamp()).await?;
    let limit = record.preferences.monthly_budget_usd;
    let remaining = limit.map(|l| NanoUsd((l.0 - counters.spent.0 - counters.reserved.0).max(0)));
    let alerted_thresholds = budgets.alerted(user_id, &month).await?;
    Ok(BudgetReport {
        month,
        limit,
        spent: counters.spent,
        reserved: counters.reserved,
        remaining,
        projected: projected(counters.spent, now),
        alerted_thresholds,
    })
}
