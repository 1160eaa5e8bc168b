//! The budget store: monthly counters and the leased reservations that keep concurrent
//! requests under a limit.

use super::StoreError;
use crate::money::NanoUsd;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// The budget counters of a user's month. `committed` = `spent` + `reserved`, kept as
/// its own counter so that a reservation can be one conditional add.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonthCounters {
    pub spent: NanoUsd,
    pub reserved: NanoUsd,
}

/// A budget reservation with a lease. Until `expires_unix` it counts against the limit;
/// after that it stops counting and is released, so a reservation left behind by a
/// process that died (or a settlement that never arrived) cannot block a user for the
/// rest of the month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Unique per request and candidate (`<request_id>#<n>`). Reserving or settling
    /// the same id twice (a retried write that had landed) changes nothing.
    pub id: String,
    pub month: String,
    pub amount: NanoUsd,
    /// Unix seconds: the end of the lease.
    pub expires_unix: i64,
}

/// How a request's reservation is settled, in the same write as its usage entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub month: String,
    /// The reservation this settles (its id also when nothing was reserved, so that a
    /// settlement is applied once however often it is retried).
    pub reservation_id: String,
    pub reserved: NanoUsd,
    pub actual: NanoUsd,
    /// The tenant whose budget holds the same reservation (reserved with
    /// [`BudgetStore::reserve_joint`]): settled there too, in the same write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// Monthly budget counters with leased reservations. A reservation is one conditional
/// add on `committed` (= spent + reserved), so concurrent requests can never together
/// pass the limit; each carries an id (retries are idempotent) and a lease (a
/// reservation nobody settles stops counting when the lease ends).
#[async_trait]
pub trait BudgetStore: Send + Sync {
    /// Reserves `r.amount` if `committed + amount <= limit` (always, without a limit).
    /// `false`: it would pass the limit; nothing was changed. A reservation whose id is
    /// already stored was granted before: `true`, and nothing changes. Before refusing,
    /// the user's expired leases of the month are released and the reservation retried.
    async fn reserve(
        &self,
        user_id: &str,
        r: &Reservation,
        limit: Option<NanoUsd>,
        now_unix: i64,
    ) -> Result<bool, StoreError>;

    /// Reserves `r` in every holder's month at once (a member and their tenant, each with
    /// its own limit): granted in all or in none, and a refusal changes nothing. No
    /// default: reserving one holder after another would let a concurrent request see a
    /// half-made reservation, so every backend writes the holders together.
    async fn reserve_joint(
        &self,
        holders: &[(&str, Option<NanoUsd>)],
        r: &Reservation,
        now_unix: i64,
    ) -> Result<bool, StoreError>;

    /// Settles a reservation to the actual cost when no usage entry carries it (usage
    /// tracking off, or a failed candidate released with `actual` 0). Idempotent on
    /// `reservation_id`; a reservation already released by its expired lease only adds
    /// the actual cost.
    async fn settle(&self, user_id: &str, settlement: &Settlement) -> Result<(), StoreError>;

    /// The month's counters; `reserved` counts only leases that have not ended.
    async fn month(
        &self,
        user_id: &str,
        month: &str,
        now_unix: i64,
    ) -> Result<MonthCounters, StoreError>;

    /// Releases the user's reservations of `month` whose lease ended by `now_unix`;
    /// returns how many.
    async fn release_expired(
        &self,
        user_id: &str,
        month: &str,
        now_unix: i64,
    ) -> Result<u64, StoreError>;

    /// Marks `threshold` (percent) as alerted for the month: `true` only the first time.
    async fn mark_alerted(
        &self,
        user_id: &str,
        month: &str,
        threshold: u32,
    ) -> Result<bool, StoreError>;

    async fn alerted(&self, user_id: &str, month: &str) -> Result<Vec<u32>, StoreError>;
}
