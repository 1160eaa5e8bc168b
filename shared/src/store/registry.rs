//! The model registry and its store: which models users may pick, which one is the
//! default per operation, in which order failover tries them (lower priority first),
//! which are switched off, and which operator credentials (by reference) an entry may
//! serve with. Admins curate it; every generate request routes through it.

use super::StoreError;
use super::audit::AuditEvent;
use crate::provider::Provider;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The scope of entries every caller sees; other scopes are tenant ids.
pub const GLOBAL_SCOPE: &str = "global";

/// The wildcard operation type of a default: every operation without its own default.
pub const ANY_OPERATION: &str = "*";

/// Request parameters an entry fills in when a request leaves them out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

/// Operator credentials, by reference only: the name of an environment variable (local
/// shape) or of a Secrets Manager secret (AWS). Never a key: a field holding one is
/// refused, since `deny_unknown_fields` makes `api_key` itself a `400`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret: Option<String>,
}

/// A price that replaces the catalog's for this entry, per 1M tokens, exact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceOverride {
    pub input: Decimal,
    pub output: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_read: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<Decimal>,
}

/// One registry entry as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmEntry {
    pub id: String,
    /// Unique across the registry.
    pub name: String,
    pub provider: Provider,
    pub model_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub config: EntryConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_meta: Option<AuthMeta>,
    pub enabled: bool,
    /// The operation types this entry is the default for in its scope ([`ANY_OPERATION`]
    /// for every operation without a default of its own). At most one entry per scope
    /// and operation type.
    #[serde(default)]
    pub default_for: Vec<String>,
    /// Failover order: lower first.
    pub priority: i64,
    pub scope: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_override: Option<PriceOverride>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Grows by one on every write; writes are conditional on it.
    pub version: u64,
}

impl LlmEntry {
    pub fn is_default(&self) -> bool {
        !self.default_for.is_empty()
    }
}

/// One change of an atomic registry write. `previous` is the entry as read: the write
/// applies only if the stored entry is still exactly that version (or, for `None`, if
/// the id is unused), and backends use it to release the old name.
// A change holds a handful of writes, briefly: boxing the larger variant saves nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryWrite {
    Put {
        entry: LlmEntry,
        previous: Option<LlmEntry>,
    },
    Delete {
        previous: LlmEntry,
    },
}

#[async_trait]
pub trait RegistryStore: Send + Sync {
    /// Every entry of every scope (a registry holds hundreds at most), in no order.
    async fn list_llms(&self) -> Result<Vec<LlmEntry>, StoreError>;

    async fn get_llm(&self, id: &str) -> Result<Option<LlmEntry>, StoreError>;

    /// Applies every write and appends every audit event as one atomic write, or nothing:
    /// [`StoreError::Conflict`] when an entry is not the version its write expects, or a
    /// name is held by another entry.
    async fn write_llms(
        &self,
        writes: &[RegistryWrite],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;

    /// Writes the seed entries once in the store's life: `Ok(false)` when the registry
    /// was seeded before (even if its entries have since been deleted). Entries whose id
    /// or name is taken are skipped, so two processes seeding at once end with one set.
    async fn seed_llms(&self, entries: &[LlmEntry]) -> Result<bool, StoreError>;
}
