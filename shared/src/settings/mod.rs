//! User settings: the partial update a `PUT` carries, the view a `GET` returns, the
//! two-store write and the connection test. The stored record (preferences with their
//! defaults, key metadata) lives with its store in [`crate::store`], re-exported here.

pub mod connection_test;
mod error;
pub mod inherit;
pub mod limits;
mod patch;
pub mod service;

pub use error::SettingsError;
pub use patch::{PreferencesPatch, SettingsUpdate, present};

pub use crate::store::{BudgetAction, KeyMeta, Preferences, SettingsRecord};

use crate::provider::Provider;
use serde::Serialize;
use std::collections::BTreeMap;

/// The operation types every deployment knows. Admin-defined ones come with the registry.
pub const OPERATION_TYPES: [&str; 4] = [
    "query_generation",
    "detection_rule",
    "conversation",
    "rule_enrichment",
];

/// The body of `GET /api/llm-settings/{userId}` (and of a successful `PUT`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettingsView {
    pub preferences: Preferences,
    /// Every provider id, and whether a key is saved for it.
    #[schema(value_type = BTreeMap<String, bool>)]
    pub has_api_keys: BTreeMap<&'static str, bool>,
    /// The last characters of each saved key, to tell keys apart (never the key).
    #[schema(value_type = BTreeMap<String, String>)]
    pub key_hints: BTreeMap<&'static str, String>,
    pub version: u64,
    pub updated_at: Option<String>,
}

impl From<SettingsRecord> for SettingsView {
    fn from(record: SettingsRecord) -> Self {
        let has_api_keys = Provider::ALL
            .iter()
            .map(|p| (p.as_str(), record.keys.contains_key(p)))
            .collect();
        let key_hints = record
            .keys
            .iter()
            .map(|(p, meta)| (p.as_str(), meta.hint.clone()))
            .collect();
        SettingsView {
            preferences: record.preferences,
            has_api_keys,
            key_hints,
            version: record.version,
            updated_at: record
                .updated_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        }
    }
}
