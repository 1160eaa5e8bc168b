//! Usage: what the usage routes read back from the usage store (entry pages, dashboard,
//! admin totals, provider health, export; ranges, page tokens, summaries). The records themselves
//! (entries, rollups, budget counters) live with the traits that persist them in
//! [`crate::store`] and are re-exported here.

pub mod admin;
pub mod audit;
pub mod dashboard;
mod error;
pub mod export;
pub mod health;
pub mod insights;
pub mod query;
pub mod range;
pub mod report;
pub mod tenant;
pub mod token;

pub use error::UsageError;

pub use crate::store::{
    DailyRollup, KeySource, MonthCounters, Reservation, Settlement, Totals, UsageEntry,
    UsageStatus, add_to_groups, rollup_keys, timestamp,
};

use chrono::{DateTime, Utc};

/// The month of a time, `YYYY-MM`: the budget period.
pub fn month_of(t: DateTime<Utc>) -> String {
    t.format("%Y-%m").to_string()
}
