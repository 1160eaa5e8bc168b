//! Usage records and what is derived from them at write time: one daily rollup per user
//! and day (so summaries read one item per day, never every entry) and the monthly
//! budget counters.

pub mod admin;
pub mod dashboard;
mod error;
pub mod export;
pub mod query;
pub mod range;
pub mod report;
pub mod token;

pub use error::UsageError;

use crate::money::NanoUsd;
use crate::provider::Provider;
use chrono::{DateTime, Utc};
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
}

impl UsageEntry {
    pub fn day(&self) -> &str {
        self.timestamp.get(..10).unwrap_or("")
    }

    pub fn month(&self) -> &str {
        self.timestamp.get(..7).unwrap_or("")
    }
}

pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The month of a time, `YYYY-MM`: the budget period.
pub fn month_of(t: DateTime<Utc>) -> String {
    t.format("%Y-%m").to_string()
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
}
