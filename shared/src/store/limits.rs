//! Per-user limits an admin sets (a hard monthly budget and a request rate that the
//! user's own preferences cannot raise), and the counters that enforce the rate across
//! every process of the deployment.

use super::StoreError;
use super::audit::AuditEvent;
use crate::money::NanoUsd;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One user's limits as stored; `None` fields are not limited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_budget_usd: Option<NanoUsd>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// 0 for a user without limits; grows by one on every write.
    #[serde(default)]
    pub version: u64,
}

#[async_trait]
pub trait LimitsStore: Send + Sync {
    async fn get_limits(&self, user_id: &str) -> Result<Option<UserLimits>, StoreError>;

    /// Writes `limits` with its audit event as one atomic write, only if the stored
    /// version is still `expected_version` (0: none yet); else [`StoreError::Conflict`].
    async fn put_limits(
        &self,
        user_id: &str,
        limits: &UserLimits,
        expected_version: u64,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
}

/// Fixed-window counters shared by every process that enforces a limit.
#[async_trait]
pub trait RateCounters: Send + Sync {
    /// Counts one request in `key`'s window starting at `window_start` (Unix seconds),
    /// unless the window already holds `limit`: `Ok(false)` then, and nothing counted.
    async fn hit(
        &self,
        key: &str,
        window_start: i64,
        window_secs: i64,
        limit: u32,
    ) -> Result<bool, StoreError>;
}
