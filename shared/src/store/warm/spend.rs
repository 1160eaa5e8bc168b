//! The month's spend for budget *alerts* on AWS, without a read per request.
//!
//! After each settlement the alert check compares the month's spend with the alert
//! thresholds. On DynamoDB that read is a round trip of its own, after the usage write.
//! This wrapper answers it from the last read, at most the window old, plus the
//! settlements this process wrote since: a lower bound of the true spend (spend only
//! grows, and other instances' settlements are missing until the next read). So an alert
//! can fire late (by the window, at the first settlement after it), never early, and
//! still fires once (the mark is a conditional write).
//!
//! Only the usage writer is given this wrapper. Reservations, the one check that guards
//! the limit, go straight to the store as one conditional write, never through a cache.

use super::KnownMarks;
use crate::identity::tenant_owner;
use crate::money::NanoUsd;
use crate::provider::Provider;
use crate::store::{BudgetStore, Granularity, HealthCounters, StoreError, UsageStore};
use crate::usage::{DailyRollup, MonthCounters, Reservation, Settlement, Totals, UsageEntry};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Seen {
    counters: MonthCounters,
    read_at: Instant,
}

pub struct SpendWindow {
    usage: Arc<dyn UsageStore>,
    budgets: Arc<dyn BudgetStore>,
    window: Duration,
    /// user -> month -> what was read, plus this process's settlements since.
    seen: Mutex<HashMap<String, HashMap<String, Seen>>>,
    alerted: KnownMarks,
}

impl SpendWindow {
    pub fn new(
        usage: Arc<dyn UsageStore>,
        budgets: Arc<dyn BudgetStore>,
        window: Duration,
    ) -> Self {
        SpendWindow {
            usage,
            budgets,
            window,
            seen: Mutex::new(HashMap::new()),
            alerted: KnownMarks::default(),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Seen>>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds what this process just wrote to the spend it last read: the user's and, for
    /// a settlement with a tenant, the tenant principal's.
    fn settled(&self, user: &str, s: &Settlement) {
        let tenant = s.tenant.as_deref().map(tenant_owner);
        let mut seen = self.seen();
        for holder in std::iter::once(user).chain(tenant.as_deref()) {
            if let Some(m) = seen.get_mut(holder).and_then(|u| u.get_mut(&s.month)) {
                m.counters.spent = NanoUsd(m.counters.spent.0.saturating_add(s.actual.0));
            }
        }
    }
}

#[async_trait]
impl BudgetStore for SpendWindow {
    async fn reserve(
        &self,
        user_id: &str,
        r: &Reservation,
        limit: Option<NanoUsd>,
        now_unix: i64,
    ) -> Result<bool, StoreError> {
        self.budgets.reserve(user_id, r, limit, now_unix).await
    }

    /// The store's own (atomic where it can be), never the sequential default.
    async fn reserve_joint(
        &self,
        holders: &[(&str, Option<NanoUsd>)],
        r: &Reservation,
        now_unix: i64,
    ) -> Result<bool, StoreError> {
        self.budgets.reserve_joint(holders, r, now_unix).await
    }

    async fn settle(&self, user_id: &str, settlement: &Settlement) -> Result<(), StoreError> {
        self.budgets.settle(user_id, settlement).await?;
        self.settled(user_id, settlement);
        Ok(())
    }

    async fn month(
        &self,
        user_id: &str,
        month: &str,
        now_unix: i64,
    ) -> Result<MonthCounters, StoreError> {
        {
            let seen = self.seen();
            if let Some(m) = seen.get(user_id).and_then(|u| u.get(month))
                && m.read_at.elapsed() < self.window
            {
                return Ok(m.counters);
            }
        }
        let counters = self.budgets.month(user_id, month, now_unix).await?;
        if !self.window.is_zero() {
            let mut seen = self.seen();
            if seen.len() >= 10_000 {
                let window = self.window;
                seen.retain(|_, u| u.values().any(|m| m.read_at.elapsed() < window));
            }
            let months = seen.entry(user_id.to_owned()).or_default();
            months.retain(|m, _| m.as_str() >= month);
            months.insert(
                month.to_owned(),
                Seen {
                    counters,
                    read_at: Instant::now(),
                },
            );
        }
        Ok(counters)
    }

    async fn release_expired(
        &self,
        user_id: &str,
        month: &str,
        now_unix: i64,
    ) -> Result<u64, StoreError> {
        self.budgets.release_expired(user_id, month, now_unix).await
    }

    async fn mark_alerted(
        &self,
        user_id: &str,
        month: &str,
        threshold: u32,
    ) -> Result<bool, StoreError> {
        self.alerted
            .mark(self.budgets.as_ref(), user_id, month, threshold)
            .await
    }

    async fn alerted(&self, user_id: &str, month: &str) -> Result<Vec<u32>, StoreError> {
        self.budgets.alerted(user_id, month).await
    }
}

#[async_trait]
impl UsageStore for SpendWindow {
    async fn record(
        &self,
        entry: &UsageEntry,
        settlement: Option<&Settlement>,
    ) -> Result<(), StoreError> {
        self.usage.record(entry, settlement).await?;
        if let Some(s) = settlement {
            self.settled(&entry.user_id, s);
        }
        Ok(())
    }

    async fn record_batch(
        &self,
        batch: &[(UsageEntry, Option<Settlement>)],
    ) -> Result<(), StoreError> {
        self.usage.record_batch(batch).await?;
        for (entry, settlement) in batch {
            if let Some(s) = settlement {
                self.settled(&entry.user_id, s);
            }
        }
        Ok(())
    }

    async fn entries(
        &self,
        user_id: &str,
        start: &str,
        end: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<(Vec<UsageEntry>, Option<String>), StoreError> {
        self.usage.entries(user_id, start, end, limit, before).await
    }

    async fn rollups(
        &self,
        user_id: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<DailyRollup>, StoreError> {
        self.usage.rollups(user_id, from, to).await
    }

    async fn provider_totals(
        &self,
        provider: Provider,
        start: &str,
        end: &str,
        now_unix: i64,
    ) -> Result<(BTreeMap<String, Totals>, usize), StoreError> {
        self.usage
            .provider_totals(provider, start, end, now_unix)
            .await
    }

    async fn health(
        &self,
        granularity: Granularity,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<String, HealthCounters>, StoreError> {
        self.usage.health(granularity, from, to).await
    }

    async fn purge_expired(&self, now_unix: i64, rollups_before: &str) -> Result<u64, StoreError> {
        self.usage.purge_expired(now_unix, rollups_before).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn spend_is_a_lower_bound_refreshed_after_the_window() {
        let db = SqliteStore::open_in_memory().unwrap();
        let w = SpendWindow::new(
            Arc::new(db.clone()),
            Arc::new(db.clone()),
            Duration::from_millis(80),
        );
        let r = |id: &str| conformance::reservation(id, "2026-11", 0, 2_000_000_000);
        assert_eq!(w.month("u", "2026-11", 1).await.unwrap().spent.0, 0);
        // Our own settlement shows at once; another instance's (written to the store
        // directly) only after the window.
        w.settle("u", &conformance::settlement(&r("mine"), 10))
            .await
            .unwrap();
        db.settle("u", &conformance::settlement(&r("theirs"), 5))
            .await
            .unwrap();
        assert_eq!(w.month("u", "2026-11", 1).await.unwrap().spent.0, 10);
        tokio::time::sleep(Duration::from_millis(90)).await;
        assert_eq!(w.month("u", "2026-11", 1).await.unwrap().spent.0, 15);
    }

    #[tokio::test]
    async fn reservations_and_settlements_keep_the_contract() {
        let db = SqliteStore::open_in_memory().unwrap();
        // A zero window reads every time: the wrapper then is the store.
        let w = Arc::new(SpendWindow::new(
            Arc::new(db.clone()),
            Arc::new(db),
            Duration::ZERO,
        ));
        conformance::budget_suite(w.clone()).await;
        conformance::tenant_suite(w.as_ref(), w.clone()).await;
    }
}
