//! The settings store and the record it keeps: one item per user holding the
//! preferences and the metadata of the saved keys (so that `hasApiKeys` never has to
//! ask the vault). The settings service above builds on these; nothing here knows HTTP.

use super::StoreError;
use super::audit::AuditEvent;
use crate::money::NanoUsd;
use crate::provider::Provider;
use crate::vault::KeyVersion;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BudgetAction {
    Block,
    Downgrade,
    AlertOnly,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Preferences {
    pub default_provider: Provider,
    pub query_model: String,
    pub detection_model: String,
    /// Model per operation type, for operations without a dedicated field.
    pub models: BTreeMap<String, String>,
    pub fallback_providers: Vec<Provider>,
    pub auto_failover: bool,
    pub max_tokens: u32,
    pub temperature: f64,
    pub enable_caching: bool,
    pub track_usage: bool,
    /// USD; `null`: no budget.
    #[schema(value_type = Option<f64>)]
    pub monthly_budget_usd: Option<NanoUsd>,
    pub budget_action: BudgetAction,
    /// Percentages of the monthly budget at which to alert, ascending.
    pub alert_thresholds: Vec<u32>,
    /// The Azure OpenAI resource name; the host is always `<name>.openai.azure.com`.
    #[serde(default)]
    pub azure_resource: Option<String>,
    /// Azure deployment name per catalog model id (a deployment is named by its owner);
    /// a model without one is sent to a deployment named like the model.
    #[serde(default)]
    pub azure_deployments: BTreeMap<String, String>,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences {
            default_provider: Provider::Anthropic,
            query_model: "claude-3-5-sonnet-20241022".into(),
            detection_model: "claude-3-5-sonnet-20241022".into(),
            models: BTreeMap::new(),
            fallback_providers: Vec::new(),
            auto_failover: true,
            max_tokens: 2000,
            temperature: 0.0,
            enable_caching: true,
            track_usage: true,
            monthly_budget_usd: None,
            budget_action: BudgetAction::Block,
            alert_thresholds: vec![50, 80, 100],
            azure_resource: None,
            azure_deployments: BTreeMap::new(),
        }
    }
}

/// What is known about a saved key without reading it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    pub hint: String,
    pub updated_at: DateTime<Utc>,
    /// The vault version holding this key: readers fetch exactly this one, so the key
    /// used always matches the hint. `None` in records written before key versions,
    /// which read the legacy unversioned key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<KeyVersion>,
}

/// One user's settings as stored. `version` is 0 for a user with nothing saved and grows
/// by one on every write; writes are conditional on it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SettingsRecord {
    pub preferences: Preferences,
    pub keys: BTreeMap<Provider, KeyMeta>,
    pub version: u64,
    pub updated_at: Option<DateTime<Utc>>,
    /// The preference fields (camelCase names) this owner has saved: a tenant member
    /// inherits the tenant's value of every other field. `None` in records written before
    /// this was kept; then the fields that differ from the defaults count as saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_fields: Option<std::collections::BTreeSet<String>>,
}

impl SettingsRecord {
    /// The preference fields this owner has saved (see [`SettingsRecord::saved_fields`]).
    pub fn saved(&self) -> std::collections::BTreeSet<String> {
        if let Some(saved) = &self.saved_fields {
            return saved.clone();
        }
        let (Ok(serde_json::Value::Object(mine)), Ok(serde_json::Value::Object(defaults))) = (
            serde_json::to_value(&self.preferences),
            serde_json::to_value(Preferences::default()),
        ) else {
            return Default::default();
        };
        mine.into_iter()
            .filter(|(k, v)| defaults.get(k) != Some(v))
            .map(|(k, _)| k)
            .collect()
    }
}

/// Settings, keyed like the DynamoDB table: pk `user_id`, one item per user.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn get_settings(&self, user_id: &str) -> Result<Option<SettingsRecord>, StoreError>;

    /// The user's settings, or the defaults (version 0) for a user who saved none.
    async fn settings_or_default(&self, user_id: &str) -> Result<SettingsRecord, StoreError> {
        Ok(self.get_settings(user_id).await?.unwrap_or_default())
    }

    /// Writes `record`, with its audit events, as one atomic write, only if the stored
    /// version is still `expected_version` (0 meaning "no item yet"); otherwise
    /// [`StoreError::Conflict`] and nothing is written.
    async fn put_settings(
        &self,
        user_id: &str,
        record: &SettingsRecord,
        expected_version: u64,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_saved_before_versions_still_loads_and_names_the_legacy_key() {
        let old = r#"{"hint": "…f3Qa", "updated_at": "2025-11-22T10:30:00Z"}"#;
        let meta: KeyMeta = serde_json::from_str(old).unwrap();
        assert_eq!(meta.version, None);
        assert!(
            !serde_json::to_string(&meta).unwrap().contains("version"),
            "a legacy key is written back as it was"
        );
        let v = KeyVersion::fresh();
        let meta = KeyMeta {
            version: Some(v.clone()),
            ..meta
        };
        let back: KeyMeta = serde_json::from_str(&serde_json::to_string(&meta).unwrap()).unwrap();
        assert_eq!(back.version, Some(v));
    }
}
