//! The warm path: what every `generate` request reads, served from memory, with every
//! write still going to the durable store before it is acknowledged.
//!
//! - [`settings::SettingsCache`]: settings, exact for the store's owner (`llm-local`),
//!   within a short window for a reader of a table others write (the `generate` Lambda).
//! - [`budget::OwnedBudgets`]: budget counters and leased reservations in memory, for the
//!   store's owner only; settlements and usage written through.
//! - [`spend::SpendWindow`]: on AWS, the month's spend that budget alerts compare
//!   against, read at most once per window; reservations stay one conditional write.
//! - [`counters::MemoryCounters`]: per-user request rates, for the store's owner.
//! - [`limits::LimitsCache`]: per-user admin limits, within a window.
//! - [`ratelimits::MemoryRateLimits`]: providers' rate-limit states, per process; and
//!   [`ratelimits::RateLimitWindow`], the same in front of the shared book on AWS.

pub mod adopt;
pub mod budget;
pub mod counters;
pub mod limits;
pub mod ratelimits;
pub mod settings;
pub mod spend;

use crate::store::{BudgetStore, StoreError};
use std::collections::HashMap;
use std::sync::Mutex;

/// Alert thresholds known to be marked: a mark is permanent for its month, so one known
/// here is refused again without a write (the alert check asks for every threshold the
/// spend has reached, on every settlement that adds cost).
#[derive(Default)]
pub(crate) struct KnownMarks {
    /// user -> month -> thresholds; looked up by `&str`, so a hit allocates nothing.
    marks: Mutex<HashMap<String, HashMap<String, Vec<u32>>>>,
}

impl KnownMarks {
    fn known(&self, user: &str, month: &str, threshold: u32) -> bool {
        let marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        marks
            .get(user)
            .and_then(|m| m.get(month))
            .is_some_and(|t| t.contains(&threshold))
    }

    pub(crate) async fn mark(
        &self,
        inner: &dyn BudgetStore,
        user: &str,
        month: &str,
        threshold: u32,
    ) -> Result<bool, StoreError> {
        if self.known(user, month, threshold) {
            return Ok(false);
        }
        let first = inner.mark_alerted(user, month, threshold).await?;
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        let months = marks.entry(user.to_owned()).or_default();
        // Only the current months matter; older ones go when a new month starts.
        if !months.contains_key(month) {
            months.retain(|m, _| m.as_str() > month);
        }
        let known = months.entry(month.to_owned()).or_default();
        if !known.contains(&threshold) {
            known.push(threshold);
        }
        Ok(first)
    }
}
