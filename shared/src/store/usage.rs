//! The usage store and what it keeps: one entry per request, and what is derived from
//! entries at write time (one daily rollup per user and day, so summaries read one item
//! per day, never every entry; and the cross-user provider health buckets of
//! [`super::health`]).

use super::StoreError;
use super::budget::Settlement;
use super::health::{Granularity, HealthCounters};
use crate::money::NanoUsd;
use crate::provider::Provider;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageStatus {
    Success,
    Error,
    Cached,
}

impl UsageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageStatus::Success => "success",
            UsageStatus::Error => "error",
            UsageStatus::Cached => "cached",
        }
    }
}

/// Whose key a call used: the user's own, their tenant's, or an operator's (a registry
/// entry's credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    User,
    Tenant,
    Operator,
}

/// One request's usage, exactly as `GET /api/llm-usage/{userId}` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageEntry {
    pub user_id: String,
    /// RFC 3339 UTC with milliseconds; sorts as text.
    pub timestamp: String,
    pub request_id: String,
    pub provider: Provider,
    pub model: String,
    pub operation_type: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub total_tokens: u64,
    /// `None` when the model's price is unknown: flagged, never a silent zero.
    pub cost_usd: Option<NanoUsd>,
    pub latency_ms: f64,
    pub status: UsageStatus,
    pub error_type: Option<String>,
    pub price_version: String,
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// When the entry expires (Unix seconds): the DynamoDB TTL attribute.
    pub ttl: i64,
    /// Whose key the answering call used; absent when no call was made (a cache hit,
    /// a refusal) and on entries written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_source: Option<KeySource>,
    /// The tenant the caller belonged to: the entry also counts in that tenant's
    /// rollups (and its settlement in the tenant's budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

impl UsageEntry {
    /// The entry's key within its user's entries, `<timestamp>#<request_id>`: the sort
    /// key of the DynamoDB item and of the SQLite row, and the cursor of entry pages
    /// (which continue below it). Timestamps sort as text, so keys sort by time.
    pub fn sort_key(&self) -> String {
        format!("{}#{}", self.timestamp, self.request_id)
    }

    pub fn day(&self) -> &str {
        self.timestamp.get(..10).unwrap_or("")
    }

    pub fn month(&self) -> &str {
        self.timestamp.get(..7).unwrap_or("")
    }
}

/// Totals for one group (all requests of a day, or one provider's, model's, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub requests: u64,
    pub tokens: u64,
    pub cost_nanos: i64,
    pub errors: u64,
    pub cached: u64,
    /// Sum of latencies in microseconds, for averages.
    pub latency_us: u64,
    /// Requests whose cost is unknown (unpriced models).
    pub unpriced: u64,
}

impl Totals {
    pub fn of(entry: &UsageEntry) -> Totals {
        Totals {
            requests: 1,
            tokens: entry.total_tokens,
            cost_nanos: entry.cost_usd.map(|c| c.0).unwrap_or(0),
            errors: u64::from(entry.status == UsageStatus::Error),
            cached: u64::from(entry.status == UsageStatus::Cached),
            latency_us: (entry.latency_ms.max(0.0) * 1000.0) as u64,
            unpriced: u64::from(entry.cost_usd.is_none()),
        }
    }

    pub fn add(&mut self, o: &Totals) {
        self.requests += o.requests;
        self.tokens += o.tokens;
        self.cost_nanos += o.cost_nanos;
        self.errors += o.errors;
        self.cached += o.cached;
        self.latency_us += o.latency_us;
        self.unpriced += o.unpriced;
    }
}

/// The groups a rollup keeps per day, each an additive counter set.
pub fn rollup_keys(entry: &UsageEntry) -> [String; 4] {
    [
        "all".to_string(),
        format!("provider:{}", entry.provider),
        format!("operation:{}", entry.operation_type),
        format!("model:{}", entry.model),
    ]
}

/// Adds an entry to group totals keyed like rollups, and by user when asked (the
/// cross-user admin view).
pub fn add_to_groups(groups: &mut BTreeMap<String, Totals>, entry: &UsageEntry, by_user: bool) {
    let t = Totals::of(entry);
    for key in rollup_keys(entry) {
        groups.entry(key).or_default().add(&t);
    }
    if by_user {
        groups
            .entry(format!("user:{}", entry.user_id))
            .or_default()
            .add(&t);
    }
}

/// One user's day, by group (`all`, `provider:anthropic`, `operation:...`, `model:...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DailyRollup {
    pub day: String,
    pub groups: BTreeMap<String, Totals>,
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

    /// Provider health across all users: the counters of every `granularity` bucket
    /// holding a second of `from..=to` (Unix seconds), summed per group
    /// (`provider:<p>`, `model:<p>/<model>`). Buckets are written with each newly
    /// recorded entry (a repeat adds nothing), keyed by the entry's timestamp.
    async fn health(
        &self,
        granularity: Granularity,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<String, HealthCounters>, StoreError>;

    /// Deletes entries whose TTL has passed, rollups of days before `rollups_before` and
    /// health buckets past their retention; returns how many entries and rollups (and,
    /// for a backend that keeps one, expired cache rows) went. DynamoDB's TTL does this
    /// by itself, so a backend with native expiry keeps this default; readers filter
    /// expired entries either way, since expiry is lazy.
    async fn purge_expired(
        &self,
        _now_unix: i64,
        _rollups_before: &str,
    ) -> Result<u64, StoreError> {
        Ok(0)
    }
}
