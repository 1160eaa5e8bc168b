//! Budget counters and reservations in memory, for a process that owns its store
//! (`llm-local serve`, which holds the data directory's lock).
//!
//! A reservation only has to outlive the request that made it, and with one owner
//! process every reservation belongs to that process: when it dies, so do all of its
//! requests. So reservations live here only, never in the database: `reserve` is a check
//! and an insert under a mutex (never held across an await), with no disk write on the
//! request path. What must survive a crash is written through, before it is
//! acknowledged: every settlement (in the same transaction as its usage entry, or on its
//! own), so the durable `spent` is exact, and the memory's `spent` follows it.
//!
//! Guarantees, as the [`BudgetStore`] contract states them:
//! - exact limits: `spent + held <= limit` is checked and the reservation added in one
//!   critical section, so concurrent reservations never pass the limit together; a
//!   joint reservation (a member and their tenant) checks and holds in every holder's
//!   month in one critical section, so it is granted in all or none;
//! - leases: a held reservation past its lease stops counting (and is released on the
//!   next refusal or sweep), as in the durable backends;
//! - idempotency: a reservation id seen before is granted again without counting twice
//!   (while held, and afterwards while its lease runs, up to [`MARKERS_PER_MONTH`] per
//!   user and month; a repeat past that is held again, which can refuse early but never
//!   lets spend pass the limit); settling twice is the durable store's idempotency.
//!
//! Every write of usage, settlements and alerts must go through this wrapper (the owner
//! process wires nothing else to the store's budget side), and at start-up the owner
//! releases whatever reservations an older version left in the database.

use super::KnownMarks;
use crate::identity::tenant_owner;
use crate::money::NanoUsd;
use crate::provider::Provider;
use crate::store::{BudgetStore, Granularity, HealthCounters, StoreError, UsageStore};
use crate::usage::{DailyRollup, MonthCounters, Reservation, Settlement, Totals, UsageEntry};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Markers of settled or released reservations kept per user and month (about 100 bytes
/// each): bounded memory under any request rate.
pub const MARKERS_PER_MONTH: usize = 16_384;

#[derive(Clone, Copy)]
struct Lease {
    amount: i64,
    expires: i64,
}

/// One user's month.
#[derive(Default)]
struct Month {
    /// The durable `spent`, as of the last settlement written through here.
    spent: i64,
    /// `true` when a settlement was written whose effect on `spent` this wrapper cannot
    /// tell (a repeat, or a reservation it no longer holds): re-read before use.
    stale: bool,
    held: HashMap<String, Lease>,
    /// Sum of `held`, lapsed leases included until they are released.
    reserved: i64,
    /// Ids settled or released, with their lease end: a repeated reserve is a no-op.
    markers: HashMap<String, i64>,
}

impl Month {
    fn fits(&self, amount: i64, limit: Option<NanoUsd>) -> bool {
        limit.is_none_or(|l| {
            i128::from(self.spent) + i128::from(self.reserved) + i128::from(amount)
                <= i128::from(l.0)
        })
    }

    fn reserve(&mut self, r: &Reservation, limit: Option<NanoUsd>, now: i64) -> bool {
        if self.knows(&r.id) {
            return true;
        }
        if !self.admits(r, limit, now) {
            return false;
        }
        self.hold(r);
        true
    }

    /// The id was reserved here before (held, or settled or released since).
    fn knows(&self, id: &str) -> bool {
        self.held.contains_key(id) || self.markers.contains_key(id)
    }

    /// Whether `r` fits, once lapsed leases are released if it does not at first.
    fn admits(&mut self, r: &Reservation, limit: Option<NanoUsd>, now: i64) -> bool {
        let amount = r.amount.0;
        self.fits(amount, limit) || (self.release_expired(now) > 0 && self.fits(amount, limit))
    }

    fn hold(&mut self, r: &Reservation) {
        self.held.insert(
            r.id.clone(),
            Lease {
                amount: r.amount.0,
                expires: r.expires_unix,
            },
        );
        self.reserved += r.amount.0;
    }

    fn lapsed(&self, now: i64) -> i64 {
        self.held
            .values()
            .filter(|l| l.expires <= now)
            .map(|l| l.amount)
            .sum()
    }

    fn release_expired(&mut self, now: i64) -> u64 {
        let lapsed: Vec<String> = self
            .held
            .iter()
            .filter(|(_, l)| l.expires <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &lapsed {
            if let Some(l) = self.held.remove(id) {
                self.reserved -= l.amount;
                self.mark(id.clone(), l.expires, now);
            }
        }
        u64::try_from(lapsed.len()).unwrap_or(u64::MAX)
    }

    fn mark(&mut self, id: String, expires: i64, now: i64) {
        if self.markers.len() >= MARKERS_PER_MONTH {
            self.markers.retain(|_, e| *e > now);
            if self.markers.len() >= MARKERS_PER_MONTH {
                self.markers.clear();
            }
        }
        self.markers.insert(id, expires);
    }

    /// After `s` was written durably: moves a held reservation to spent. Anything else
    /// (a repeat, a lease released meanwhile, nothing reserved) leaves `spent` unknown
    /// to this wrapper, so the month is re-read before it is used.
    fn settled(&mut self, s: &Settlement, now: i64) {
        match self.held.remove(&s.reservation_id) {
            Some(l) => {
                self.reserved -= l.amount;
                self.spent += s.actual.0;
                self.mark(s.reservation_id.clone(), l.expires, now);
            }
            None => self.stale = true,
        }
    }
}

pub struct OwnedBudgets {
    usage: Arc<dyn UsageStore>,
    budgets: Arc<dyn BudgetStore>,
    /// user -> month -> counters. Looked up by `&str`, so a hit allocates nothing.
    months: Mutex<HashMap<String, HashMap<String, Month>>>,
    alerted: KnownMarks,
    /// Serialises durable writes with the reads that (re)load a month, so that a month
    /// is never loaded from a `spent` a settlement is about to change.
    writes: tokio::sync::Mutex<()>,
}

impl OwnedBudgets {
    pub fn new(usage: Arc<dyn UsageStore>, budgets: Arc<dyn BudgetStore>) -> Self {
        OwnedBudgets {
            usage,
            budgets,
            months: Mutex::new(HashMap::new()),
            alerted: KnownMarks::default(),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    fn months(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Month>>> {
        self.months.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the month when it is loaded and its `spent` is known.
    fn with_month<R>(&self, user: &str, month: &str, f: impl FnOnce(&mut Month) -> R) -> Option<R> {
        let mut months = self.months();
        let m = months.get_mut(user)?.get_mut(month)?;
        if m.stale {
            return None;
        }
        Some(f(m))
    }

    /// Loads the month's durable `spent` (first use, or after a settlement it could not
    /// follow), keeping the reservations held in memory.
    async fn load(&self, user: &str, month: &str, now: i64) -> Result<(), StoreError> {
        let _writes = self.writes.lock().await;
        {
            let months = self.months();
            if let Some(m) = months.get(user).and_then(|u| u.get(month))
                && !m.stale
            {
                return Ok(());
            }
        }
        let durable = self.budgets.month(user, month, now).await?;
        let mut months = self.months();
        let m = months
            .entry(user.to_owned())
            .or_default()
            .entry(month.to_owned())
            .or_default();
        m.spent = durable.spent.0;
        m.stale = false;
        Ok(())
    }

    /// After settlements were written durably: the user's month and, for a settlement
    /// with a tenant, the tenant principal's.
    fn settled<'a>(&self, settled: impl Iterator<Item = (&'a str, &'a Settlement)>) {
        let now = chrono::Utc::now().timestamp();
        let mut months = self.months();
        for (user, s) in settled {
            let tenant = s.tenant.as_deref().map(tenant_owner);
            for holder in std::iter::once(user).chain(tenant.as_deref()) {
                // A month not loaded has nothing held here: the durable store is the truth.
                if let Some(m) = months.get_mut(holder).and_then(|u| u.get_mut(&s.month)) {
                    m.settled(s, now);
                }
            }
        }
    }

    /// The joint reservation, in one critical section over months all loaded: the
    /// holders that know the id already are skipped (granted before), the others are
    /// held only if every one of them admits it. `Err(holder)`: that holder's month
    /// must be loaded first.
    fn reserve_joint_loaded(
        &self,
        holders: &[(&str, Option<NanoUsd>)],
        r: &Reservation,
        now: i64,
    ) -> Result<bool, String> {
        let mut months = self.months();
        let mut pending = Vec::with_capacity(holders.len());
        for (holder, limit) in holders {
            let m = months
                .get_mut(*holder)
                .and_then(|u| u.get_mut(&r.month))
                .filter(|m| !m.stale)
                .ok_or_else(|| (*holder).to_owned())?;
            if !m.knows(&r.id) {
                pending.push((*holder, *limit));
            }
        }
        for (holder, limit) in &pending {
            let admitted = months
                .get_mut(*holder)
                .and_then(|u| u.get_mut(&r.month))
                .is_some_and(|m| m.admits(r, *limit, now));
            if !admitted {
                return Ok(false);
            }
        }
        for (holder, _) in &pending {
            if let Some(m) = months.get_mut(*holder).and_then(|u| u.get_mut(&r.month)) {
                m.hold(r);
            }
        }
        Ok(true)
    }

    /// Releases every lapsed lease, forgets markers whose lease ended and months that
    /// hold nothing and are not the current one. Returns how many were released.
    pub fn sweep(&self, now: i64) -> u64 {
        let current = crate::usage::month_of(chrono::Utc::now());
        let mut released = 0;
        let mut months = self.months();
        for user in months.values_mut() {
            for m in user.values_mut() {
                released += m.release_expired(now);
                m.markers.retain(|_, e| *e > now);
            }
            user.retain(|month, m| {
                month.as_str() >= current.as_str() || !m.held.is_empty() || !m.markers.is_empty()
            });
        }
        months.retain(|_, u| !u.is_empty());
        released
    }
}

#[async_trait]
impl BudgetStore for OwnedBudgets {
    async fn reserve(
        &self,
        user_id: &str,
        r: &Reservation,
        limit: Option<NanoUsd>,
        now_unix: i64,
    ) -> Result<bool, StoreError> {
        loop {
            if let Some(granted) =
                self.with_month(user_id, &r.month, |m| m.reserve(r, limit, now_unix))
            {
                return Ok(granted);
            }
            self.load(user_id, &r.month, now_unix).await?;
        }
    }

    async fn reserve_joint(
        &self,
        holders: &[(&str, Option<NanoUsd>)],
        r: &Reservation,
        now_unix: i64,
    ) -> Result<bool, StoreError> {
        loop {
            match self.reserve_joint_loaded(holders, r, now_unix) {
                Ok(granted) => return Ok(granted),
                Err(holder) => self.load(&holder, &r.month, now_unix).await?,
            }
        }
    }

    async fn settle(&self, user_id: &str, settlement: &Settlement) -> Result<(), StoreError> {
        let _writes = self.writes.lock().await;
        self.budgets.settle(user_id, settlement).await?;
        self.settled(std::iter::once((user_id, settlement)));
        Ok(())
    }

    async fn month(
        &self,
        user_id: &str,
        month: &str,
        now_unix: i64,
    ) -> Result<MonthCounters, StoreError> {
        loop {
            let loaded = {
                let months = self.months();
                months.get(user_id).and_then(|u| u.get(month)).map(|m| {
                    (!m.stale).then(|| MonthCounters {
                        spent: NanoUsd(m.spent),
                        reserved: NanoUsd(m.reserved - m.lapsed(now_unix)),
                    })
                })
            };
            match loaded {
                Some(Some(counters)) => return Ok(counters),
                Some(None) => self.load(user_id, month, now_unix).await?,
                // Nothing is held here for a month never loaded: the durable counters
                // are exact.
                None => return self.budgets.month(user_id, month, now_unix).await,
            }
        }
    }

    async fn release_expired(
        &self,
        user_id: &str,
        month: &str,
        now_unix: i64,
    ) -> Result<u64, StoreError> {
        let here = {
            let mut months = self.months();
            months
                .get_mut(user_id)
                .and_then(|u| u.get_mut(month))
                .map_or(0, |m| m.release_expired(now_unix))
        };
        let durable = self
            .budgets
            .release_expired(user_id, month, now_unix)
            .await?;
        Ok(here + durable)
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
impl UsageStore for OwnedBudgets {
    async fn record(
        &self,
        entry: &UsageEntry,
        settlement: Option<&Settlement>,
    ) -> Result<(), StoreError> {
        let _writes = self.writes.lock().await;
        self.usage.record(entry, settlement).await?;
        if let Some(s) = settlement {
            self.settled(std::iter::once((entry.user_id.as_str(), s)));
        }
        Ok(())
    }

    async fn record_batch(
        &self,
        batch: &[(UsageEntry, Option<Settlement>)],
    ) -> Result<(), StoreError> {
        let _writes = self.writes.lock().await;
        self.usage.record_batch(batch).await?;
        self.settled(
            batch
                .iter()
                .filter_map(|(e, s)| s.as_ref().map(|s| (e.user_id.as_str(), s))),
        );
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

    fn wrapped() -> (SqliteStore, Arc<OwnedBudgets>) {
        let db = SqliteStore::open_in_memory().unwrap();
        let w = OwnedBudgets::new(Arc::new(db.clone()), Arc::new(db.clone()));
        (db, Arc::new(w))
    }

    #[tokio::test]
    async fn passes_the_usage_and_budget_conformance_suites() {
        let (_, w) = wrapped();
        conformance::usage_suite(w.as_ref(), w.as_ref()).await;
        conformance::health_suite(w.as_ref()).await;
        conformance::budget_suite(w.clone()).await;
        conformance::tenant_suite(w.as_ref(), w.clone()).await;
    }

    #[tokio::test]
    async fn reservations_never_touch_the_database_and_settlements_always_do() {
        let (db, w) = wrapped();
        let r = conformance::reservation("r1", "2026-11", 500, 2_000_000_000);
        assert!(w.reserve("u", &r, Some(NanoUsd(1_000)), 1).await.unwrap());
        // Held in memory only: the database has neither a reservation nor a counter.
        let durable = db.month("u", "2026-11", 1).await.unwrap();
        assert_eq!((durable.spent.0, durable.reserved.0), (0, 0));
        let seen = w.month("u", "2026-11", 1).await.unwrap();
        assert_eq!((seen.spent.0, seen.reserved.0), (0, 500));
        let e = conformance::usage_entry(
            "u",
            "2026-11-20T10:00:00.000Z",
            Provider::Anthropic,
            Some(120),
            crate::usage::UsageStatus::Success,
        );
        w.record(&e, Some(&conformance::settlement(&r, 120)))
            .await
            .unwrap();
        let durable = db.month("u", "2026-11", 1).await.unwrap();
        assert_eq!((durable.spent.0, durable.reserved.0), (120, 0));
        let seen = w.month("u", "2026-11", 1).await.unwrap();
        assert_eq!((seen.spent.0, seen.reserved.0), (120, 0));
        // A restart (a new wrapper on the same file) starts from the durable spend.
        let again = OwnedBudgets::new(Arc::new(db.clone()), Arc::new(db.clone()));
        let big = conformance::reservation("r2", "2026-11", 881, 2_000_000_000);
        assert!(
            !again
                .reserve("u", &big, Some(NanoUsd(1_000)), 1)
                .await
                .unwrap()
        );
        let fits = conformance::reservation("r3", "2026-11", 880, 2_000_000_000);
        assert!(
            again
                .reserve("u", &fits, Some(NanoUsd(1_000)), 1)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn the_sweep_releases_lapsed_leases_and_forgets_their_markers() {
        let (_, w) = wrapped();
        let month = crate::usage::month_of(chrono::Utc::now());
        for i in 0..3 {
            let r = conformance::reservation(&format!("r{i}"), &month, 10, 100 + i);
            assert!(w.reserve("u", &r, Some(NanoUsd(100)), 50).await.unwrap());
        }
        assert_eq!(w.sweep(101), 2);
        assert_eq!(w.month("u", &month, 101).await.unwrap().reserved.0, 10);
        assert_eq!(w.sweep(200), 1);
        let months = w.months();
        let m = &months["u"][&month];
        assert!(m.held.is_empty() && m.markers.is_empty() && m.reserved == 0);
    }

    #[tokio::test]
    async fn markers_stay_bounded() {
        let (_, w) = wrapped();
        for i in 0..(MARKERS_PER_MONTH + 10) {
            let r = conformance::reservation(&format!("r{i}"), "2026-11", 0, 2_000_000_000);
            assert!(w.reserve("u", &r, None, 1).await.unwrap());
            w.settle("u", &conformance::settlement(&r, 0))
                .await
                .unwrap();
        }
        assert!(w.months()["u"]["2026-11"].markers.len() <= MARKERS_PER_MONTH);
    }

    #[tokio::test]
    async fn a_known_alert_mark_needs_no_write() {
        let (db, w) = wrapped();
        assert!(w.mark_alerted("u", "2026-11", 50).await.unwrap());
        assert!(!w.mark_alerted("u", "2026-11", 50).await.unwrap());
        assert_eq!(db.alerted("u", "2026-11").await.unwrap(), vec![50]);
    }
}
