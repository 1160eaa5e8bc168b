//! Per-user limits an admin sets (a hard monthly budget and a request rate that the
//! user's own preferences cannot raise), and the counters that enforce the rate across
//! every process of the deployment.

use super::StoreError;
use super::audit::AuditEvent;
use super::settings::{BudgetAction, Preferences};
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

/// The preferences generation works with: the user's own, with the admin's cap over
/// the budget. A cap always holds: under it `alert_only` becomes `block` (the user's
/// `downgrade` still downgrades, within the cap).
pub fn capped(prefs: &mut Preferences, limits: Option<&UserLimits>) {
    let Some(cap) = limits.and_then(|l| l.monthly_budget_usd) else {
        return;
    };
    prefs.monthly_budget_usd = Some(match prefs.monthly_budget_usd {
        Some(own) if own.0 <= cap.0 => own,
        _ => cap,
    });
    if prefs.budget_action == BudgetAction::AlertOnly {
        prefs.budget_action = BudgetAction::Block;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::NanoUsd;
    use crate::store::{BudgetAction, Preferences};

    #[test]
    fn a_cap_lowers_the_budget_and_blocks() {
        let limits = UserLimits {
            monthly_budget_usd: Some(NanoUsd(10)),
            ..Default::default()
        };
        let mut p = Preferences {
            monthly_budget_usd: Some(NanoUsd(50)),
            budget_action: BudgetAction::AlertOnly,
            ..Default::default()
        };
        capped(&mut p, Some(&limits));
        assert_eq!(p.monthly_budget_usd, Some(NanoUsd(10)));
        assert_eq!(p.budget_action, BudgetAction::Block);
        // A lower budget of the user's own stays; no budget at all gets the cap.
        let mut p = Preferences {
            monthly_budget_usd: Some(NanoUsd(3)),
            ..Default::default()
        };
        capped(&mut p, Some(&limits));
        assert_eq!(p.monthly_budget_usd, Some(NanoUsd(3)));
        let mut p = Preferences::default();
        capped(&mut p, Some(&limits));
        assert_eq!(p.monthly_budget_usd, Some(NanoUsd(10)));
        let mut p = Preferences::default();
        capped(&mut p, None);
        assert_eq!(p.monthly_budget_usd, None);
    }
}
