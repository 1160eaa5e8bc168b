//! Storage traits. Each is narrow and shaped after what DynamoDB does well (key lookups,
//! conditional writes; range queries and atomic counters arrive with the usage stores),
//! so that no embedded backend can offer something the DynamoDB one cannot.
//! Every backend runs the same [`conformance`] suite.

pub mod sqlite;
mod sqlite_usage;
pub mod warm;

#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "aws")]
mod dynamodb_usage;
#[cfg(feature = "aws")]
pub use dynamodb_usage::DynamoUsageStore;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use crate::money::NanoUsd;
use crate::provider::Provider;
use crate::settings::SettingsRecord;
use crate::usage::{DailyRollup, MonthCounters, Reservation, Settlement, Totals, UsageEntry};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: the item changed (or appeared) since it was read.
    #[error("conditional write failed")]
    Conflict,
    #[error("store backend failed: {0}")]
    Backend(String),
    #[error("stored item is unreadable: {0}")]
    Corrupt(String),
}

/// Settings, keyed like the DynamoDB table: pk `user_id`, one item per user.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn get_settings(&self, user_id: &str) -> Result<Option<SettingsRecord>, StoreError>;

    /// Writes `record` only if the stored version is still `expected_version` (0 meaning
    /// "no item yet"); otherwise [`StoreError::Conflict`].
    async fn put_settings(
        &self,
        user_id: &str,
        record: &SettingsRecord,
        expected_version: u64,
    ) -> Result<(), StoreError>;
}

/// A bearer token of the local shape. Only the SHA-256 of the token is ever stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub token_hash: String,
    pub user_id: String,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Creates the token; [`StoreError::Conflict`] if that hash exists already.
    async fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError>;
    async fn get_token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError>;
}

/// Usage entries, their daily rollups, and budget settlement, written together. Laid out
/// like the DynamoDB usage table: pk `user_id`, sk `timestamp#request_id`.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Writes the entry, adds it to its day's rollup and, when given, settles its budget
    /// reservation, as one atomic write. Idempotent on `(user_id, request_id)`: recording
    /// a request a second time changes nothing and succeeds.
    async fn record(
        &self,
        entry: &UsageEntry,
        settlement: Option<&Settlement>,
    ) -> Result<(), StoreError>;

    /// A user's entries with `start <= timestamp < end`, newest first, at most `limit`,
    /// continuing below the sort key `before` when given. Returns the entries and the
    /// sort key to continue from, if more may follow.
    async fn entries(
        &self,
        user_id: &str,
        start: &str,
        end: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<(Vec<UsageEntry>, Option<String>), StoreError>;

    /// The user's rollups for days `from..=to` (`YYYY-MM-DD`); days without usage are absent.
    async fn rollups(
        &self,
        user_id: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<DailyRollup>, StoreError>;

    /// Records many requests, each exactly as [`UsageStore::record`] would. Backends that
    /// can write them in one transaction do (the local writer batches under load).
    async fn record_batch(
        &self,
        batch: &[(UsageEntry, Option<Settlement>)],
    ) -> Result<(), StoreError> {
        for (entry, settlement) in batch {
            self.record(entry, settlement.as_ref()).await?;
        }
        Ok(())
    }

    /// Every user's unexpired entries of `provider` with `start <= timestamp < end`,
    /// read through the provider index (never a scan), totalled by group and by user.
    /// Returns the groups and how many entries were read.
    async fn provider_totals(
        &self,
        provider: Provider,
        start: &str,
        end: &str,
        now_unix: i64,
    ) -> Result<(BTreeMap<String, Totals>, usize), StoreError>;

    /// Deletes entries whose TTL has passed and rollups of days before `rollups_before`.
    /// DynamoDB's TTL does this by itself, so a backend with native expiry keeps this
    /// default; readers filter expired entries either way, since expiry is lazy.
    async fn purge_expired(
        &self,
        _now_unix: i64,
        _rollups_before: &str,
    ) -> Result<u64, StoreError> {
        Ok(0)
    }
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

/// Exact-match response cache. Values are opaque JSON text; expired entries are misses.
#[async_trait]
pub trait ResponseCache: Send + Sync {
    async fn get_cached(&self, key: &str, now_unix: i64) -> Result<Option<String>, StoreError>;
    async fn put_cached(&self, key: &str, value: &str, expires_unix: i64)
    -> Result<(), StoreError>;
}

/// Who changed what, when: settings changes, key set/delete (never the key), registry
/// changes, budget alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub timestamp: String,
    pub id: String,
    pub actor: String,
    pub target: String,
    pub action: String,
    pub detail: serde_json::Value,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// Events with `start <= timestamp < end`, oldest first, at most `limit`.
    async fn list(
        &self,
        start: &str,
        end: &str,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError>;
}
