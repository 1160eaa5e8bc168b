//! The `PUT` body: a partial preferences object and key changes. Shape errors (unknown
//! fields, wrong types) are caught by serde with the field's path; value rules (ranges,
//! known models) are checked here, each error naming its field.

use super::error::SettingsError;
use super::{BudgetAction, OPERATION_TYPES, Preferences};
use crate::money::NanoUsd;
use crate::pricing::ModelLookup;
use crate::provider::Provider;
use crate::secret::ApiKey;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

pub const MAX_TOKENS_LIMIT: u32 = 1_000_000;
pub const MAX_BUDGET_USD: i64 = 1_000_000;

/// A settings write: preferences to change, keys to save (`null` deletes one), and an
/// optional version that makes the write conditional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SettingsUpdate {
    #[serde(default)]
    pub preferences: Option<PreferencesPatch>,
    /// A key per provider id; `null` deletes the saved key.
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, Option<String>>>)]
    pub api_keys: Option<BTreeMap<Provider, Option<KeyInput>>>,
    /// When given, the write only happens if the stored version still equals it.
    #[serde(default)]
    pub version: Option<u64>,
}

/// A key as it arrives in a request: already wrapped, so that even a `Debug` of the
/// whole request body cannot print it.
#[derive(Debug)]
pub struct KeyInput(pub ApiKey);

impl<'de> Deserialize<'de> for KeyInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|s| KeyInput(ApiKey::new(s)))
    }
}

/// `Clone`: an unconditional write that lost a race applies it again on the fresh record.
/// Only the fields given change.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PreferencesPatch {
    pub default_provider: Option<Provider>,
    pub query_model: Option<String>,
    pub detection_model: Option<String>,
    pub models: Option<BTreeMap<String, String>>,
    pub fallback_providers: Option<Vec<Provider>>,
    pub auto_failover: Option<bool>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub enable_caching: Option<bool>,
    pub track_usage: Option<bool>,
    /// Absent: unchanged; `null`: no budget; a number: the budget in USD.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>)]
    pub monthly_budget_usd: Option<Option<NanoUsd>>,
    pub budget_action: Option<BudgetAction>,
    pub alert_thresholds: Option<Vec<u32>>,
    /// Absent: unchanged; `null`: cleared.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub azure_resource: Option<Option<String>>,
    pub azure_deployments: Option<BTreeMap<String, String>>,
}

/// Tells an explicit `null` (`Some(None)`) from an absent field (`None`).
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

fn field(name: &str) -> String {
    format!("preferences.{name}")
}

fn check_model(catalog: &dyn ModelLookup, name: &str, model: &str) -> Result<(), SettingsError> {
    if catalog.find_model(None, model).is_none() {
        return Err(SettingsError::invalid(
            field(name),
            "unknown or disabled model; GET /api/llm-models lists the models you may pick",
        ));
    }
    Ok(())
}

impl PreferencesPatch {
    /// The fields this patch sets (camelCase, as stored in
    /// [`crate::settings::SettingsRecord::saved_fields`]).
    pub fn given(&self) -> Vec<&'static str> {
        [
            ("defaultProvider", self.default_provider.is_some()),
            ("queryModel", self.query_model.is_some()),
            ("detectionModel", self.detection_model.is_some()),
            ("models", self.models.is_some()),
            ("fallbackProviders", self.fallback_providers.is_some()),
            ("autoFailover", self.auto_failover.is_some()),
            ("maxTokens", self.max_tokens.is_some()),
            ("temperature", self.temperature.is_some()),
            ("enableCaching", self.enable_caching.is_some()),
            ("trackUsage", self.track_usage.is_some()),
            ("monthlyBudgetUsd", self.monthly_budget_usd.is_some()),
            ("budgetAction", self.budget_action.is_some()),
            ("alertThresholds", self.alert_thresholds.is_some()),
            ("azureResource", self.azure_resource.is_some()),
            ("azureDeployments", self.azure_deployments.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    /// Applies the patch over `current`, validating every given field.
    pub fn apply(
        self,
        current: &Preferences,
        catalog: &dyn ModelLookup,
    ) -> Result<Preferences, SettingsError> {
        let mut p = current.clone();
        if let Some(v) = self.default_provider {
            p.default_provider = v;
        }
        if let Some(v) = self.query_model {
            check_model(catalog, "queryModel", &v)?;
            p.query_model = v;
        }
        if let Some(v) = self.detection_model {
            check_model(catalog, "detectionModel", &v)?;
            p.detection_model = v;
        }
        if let Some(models) = self.models {
            for (op, model) in &models {
                if !OPERATION_TYPES.contains(&op.as_str()) {
                    return Err(SettingsError::invalid(
                        field("models"),
                        format!(
                            "unknown operation type; expected one of: {}",
                            OPERATION_TYPES.join(", ")
                        ),
                    ));
                }
                check_model(catalog, &format!("models.{op}"), model)?;
            }
            p.models = models;
        }
        if let Some(v) = self.fallback_providers {
            let mut seen = std::collections::BTreeSet::new();
            if !v.iter().all(|provider| seen.insert(*provider)) {
                return Err(SettingsError::invalid(
                    field("fallbackProviders"),
                    "must not list a provider twice",
                ));
            }
            p.fallback_providers = v;
        }
        if let Some(v) = self.auto_failover {
            p.auto_failover = v;
        }
        if let Some(v) = self.max_tokens {
            if !(1..=MAX_TOKENS_LIMIT).contains(&v) {
                return Err(SettingsError::invalid(
                    field("maxTokens"),
                    format!("must be between 1 and {MAX_TOKENS_LIMIT}"),
                ));
            }
            p.max_tokens = v;
        }
        if let Some(v) = self.temperature {
            if !(0.0..=2.0).contains(&v) {
                return Err(SettingsError::invalid(
                    field("temperature"),
                    "must be between 0.0 and 2.0",
                ));
            }
            p.temperature = v;
        }
        if let Some(v) = self.enable_caching {
            p.enable_caching = v;
        }
        if let Some(v) = self.track_usage {
            p.track_usage = v;
        }
        if let Some(v) = self.monthly_budget_usd {
            if let Some(budget) = v {
                let max = NanoUsd(MAX_BUDGET_USD * crate::money::NANOS_PER_USD);
                if budget < NanoUsd::ZERO || budget > max {
                    return Err(SettingsError::invalid(
                        field("monthlyBudgetUsd"),
                        format!("must be between 0 and {MAX_BUDGET_USD}, or null for no budget"),
                    ));
                }
            }
            p.monthly_budget_usd = v;
        }
        if let Some(v) = self.budget_action {
            p.budget_action = v;
        }
        if let Some(mut v) = self.alert_thresholds {
            if v.len() > 10 || v.iter().any(|t| !(1..=100).contains(t)) {
                return Err(SettingsError::invalid(
                    field("alertThresholds"),
                    "must be at most 10 percentages between 1 and 100",
                ));
            }
            v.sort_unstable();
            v.dedup();
            p.alert_thresholds = v;
        }
        if let Some(v) = self.azure_resource {
            if v.as_deref()
                .is_some_and(|r| !crate::providers::endpoints::valid_azure_resource(r))
            {
                return Err(SettingsError::invalid(
                    field("azureResource"),
                    "must be an Azure resource name: 2-64 lowercase letters, digits and hyphens",
                ));
            }
            p.azure_resource = v;
        }
        if let Some(v) = self.azure_deployments {
            for (model, deployment) in &v {
                if catalog
                    .find_any_model(Some(Provider::AzureOpenAi), model)
                    .is_none()
                {
                    return Err(SettingsError::invalid(
                        field("azureDeployments"),
                        "keys must be azure_openai models: chat models from GET /api/llm-models, embedding models from GET /v1/models",
                    ));
                }
                let ok = (1..=64).contains(&deployment.len())
                    && deployment
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
                if !ok {
                    return Err(SettingsError::invalid(
                        format!("preferences.azureDeployments.{model}"),
                        "must be 1-64 of A-Z a-z 0-9 . _ -",
                    ));
                }
            }
            p.azure_deployments = v;
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::catalog;

    fn patch(json: &str) -> PreferencesPatch {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn merges_only_given_fields() {
        let base = Preferences::default();
        let p = patch(r#"{"maxTokens": 512, "monthlyBudgetUsd": 12.5}"#)
            .apply(&base, catalog().unwrap())
            .unwrap();
        assert_eq!(p.max_tokens, 512);
        assert_eq!(p.monthly_budget_usd, Some(NanoUsd(12_500_000_000)));
        assert_eq!(p.query_model, base.query_model);
        let cleared = patch(r#"{"monthlyBudgetUsd": null}"#)
            .apply(&p, catalog().unwrap())
            .unwrap();
        assert_eq!(cleared.monthly_budget_usd, None);
        assert_eq!(cleared.max_tokens, 512);
    }

    #[test]
    fn each_value_error_names_its_field() {
        let c = catalog().unwrap();
        let base = Preferences::default();
        for (json, name) in [
            (r#"{"maxTokens": 0}"#, "preferences.maxTokens"),
            (r#"{"temperature": 2.5}"#, "preferences.temperature"),
            (r#"{"queryModel": "gpt-9"}"#, "preferences.queryModel"),
            (
                r#"{"models": {"conversation": "nope"}}"#,
                "preferences.models.conversation",
            ),
            (r#"{"models": {"poetry": "gpt-4"}}"#, "preferences.models"),
            (
                r#"{"fallbackProviders": ["openai", "openai"]}"#,
                "preferences.fallbackProviders",
            ),
            (
                r#"{"monthlyBudgetUsd": -1}"#,
                "preferences.monthlyBudgetUsd",
            ),
            (r#"{"alertThresholds": [0]}"#, "preferences.alertThresholds"),
            (
                r#"{"azureResource": "evil.com/x"}"#,
                "preferences.azureResource",
            ),
        ] {
            match patch(json).apply(&base, c) {
                Err(SettingsError::InvalidField { field, .. }) => assert_eq!(field, name, "{json}"),
                other => panic!("{json}: expected a field error, got {other:?}"),
            }
        }
    }
}
