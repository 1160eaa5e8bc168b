//! Per-user limits an admin sets: a hard monthly budget and a request rate. They cap
//! what the user's own preferences say (a user can lower their budget, never raise it
//! past the cap, see [`crate::store::capped`]), and are read by generation on every
//! request (from memory, see [`crate::store::warm::limits`]).

use super::SettingsError;
use crate::money::NanoUsd;
use crate::store::{AuditEvent, LimitsStore, StoreError, UserLimits};
use serde::{Deserialize, Serialize};

/// The largest rate an admin may set; beyond it a limit limits nothing.
pub const MAX_RPM: u32 = 100_000;

/// `PUT /api/admin/users/{userId}/limits`: the whole set; an absent or `null` field is
/// not limited.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LimitsBody {
    /// USD, at most 9 decimal places.
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub monthly_budget_usd: Option<NanoUsd>,
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// Makes the write conditional (`409` when stale).
    #[serde(default)]
    pub version: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsView {
    pub user_id: String,
    /// USD; `null`: not limited.
    #[schema(value_type = Option<f64>)]
    pub monthly_budget_usd: Option<NanoUsd>,
    pub requests_per_minute: Option<u32>,
    pub updated_at: Option<String>,
    pub version: u64,
}

impl LimitsView {
    pub fn new(user_id: &str, l: Option<UserLimits>) -> Self {
        let l = l.unwrap_or_default();
        LimitsView {
            user_id: user_id.to_owned(),
            monthly_budget_usd: l.monthly_budget_usd,
            requests_per_minute: l.requests_per_minute,
            updated_at: l
                .updated_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            version: l.version,
        }
    }
}

pub async fn put(
    store: &dyn LimitsStore,
    actor: &str,
    user_id: &str,
    body: LimitsBody,
) -> Result<UserLimits, SettingsError> {
    if body.monthly_budget_usd.is_some_and(|b| b.0 < 0) {
        return Err(SettingsError::invalid(
            "monthlyBudgetUsd",
            "must not be negative",
        ));
    }
    if body
        .requests_per_minute
        .is_some_and(|r| !(1..=MAX_RPM).contains(&r))
    {
        return Err(SettingsError::invalid(
            "requestsPerMinute",
            format!("must be between 1 and {MAX_RPM}"),
        ));
    }
    let current = store.get_limits(user_id).await?.unwrap_or_default();
    if let Some(v) = body.version
        && v != current.version
    {
        return Err(SettingsError::Conflict(format!(
            "version {v} is stale; the current version is {}",
            current.version
        )));
    }
    let next = UserLimits {
        monthly_budget_usd: body.monthly_budget_usd,
        requests_per_minute: body.requests_per_minute,
        updated_at: Some(chrono::Utc::now()),
        version: current.version + 1,
    };
    let event = AuditEvent::now(actor, format!("limits:{user_id}"), "limits_update").with_change(
        serde_json::to_value(LimitsView::new(user_id, Some(current.clone()))).ok(),
        serde_json::to_value(LimitsView::new(user_id, Some(next.clone()))).ok(),
    );
    match store
        .put_limits(user_id, &next, current.version, &event)
        .await
    {
        Ok(()) => Ok(next),
        Err(StoreError::Conflict) => Err(SettingsError::Conflict(
            "the limits were changed by another request; read them and try again".into(),
        )),
        Err(e) => Err(e.into()),
    }
}
