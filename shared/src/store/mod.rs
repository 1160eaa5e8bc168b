//! Storage traits, each in a file beside the records it persists. Each is narrow and
//! shaped after what DynamoDB does well (key lookups, conditional writes, range queries
//! on a sort key, atomic counters), so that no embedded backend can offer something the
//! DynamoDB one cannot. Every backend runs the same [`conformance`] suite.
//!
//! Layering: this module and its backends import nothing of the services above them
//! (`settings`, `usage`, `generate`, `http`); those re-export the records from here.

pub mod sqlite;
pub mod warm;

#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "aws")]
pub use dynamodb::DynamoUsageStore;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

mod audit;
mod budget;
mod cache;
pub mod health;
mod limits;
pub mod ratelimits;
mod registry;
mod settings;
pub mod tenant_rollup;
mod tokens;
mod usage;

pub use audit::{AUDIT_RETENTION_DAYS, AuditEvent, AuditQuery, AuditStore};
pub use budget::{BudgetStore, MonthCounters, Reservation, Settlement};
pub use cache::ResponseCache;
pub use health::{Granularity, HealthCounters};
pub use limits::{LimitsStore, RateCounters, UserLimits, capped};
pub use ratelimits::{KeyRef, RateLimitBook, RateLimitReport, RateLimitState};
pub use registry::{
    ANY_OPERATION, AuthMeta, EntryConfig, GLOBAL_SCOPE, LlmEntry, PriceOverride, RegistryStore,
    RegistryWrite,
};
pub use settings::{BudgetAction, KeyMeta, Preferences, SettingsRecord, SettingsStore};
pub use tokens::{TokenRecord, TokenStore};
pub use usage::{
    DailyRollup, KeySource, Totals, UsageEntry, UsageStatus, UsageStore, add_to_groups, rollup_keys,
};

/// A stored time: RFC 3339 UTC with milliseconds, which sorts as text.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: the item changed (or appeared) since it was read.
    #[error("conditional write failed")]
    Conflict,
    #[error("store backend failed: {0}")]
    Backend(String),
    /// The backend is throttling, unreachable or timing out, or a write kept losing to
    /// concurrent ones, after the retries: worth trying again shortly (a `503`), unlike
    /// [`StoreError::Backend`].
    #[error("store backend unavailable: {0}")]
    Unavailable(String),
    #[error("stored item is unreadable: {0}")]
    Corrupt(String),
}
