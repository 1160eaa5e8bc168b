//! The bodies of the admin registry routes and their validation: every field checked,
//! unknown fields refused (a typo must not be silently ignored), errors naming the field.

use super::error::RegistryError;
use crate::pricing::Catalog;
use crate::provider::Provider;
use crate::store::{ANY_OPERATION, AuthMeta, EntryConfig, GLOBAL_SCOPE, LlmEntry, PriceOverride};
use crate::vault::operator::OperatorKeys;
use rust_decimal::Decimal;
use serde::Deserialize;

/// `POST /api/admin/llms`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLlm {
    pub name: String,
    pub provider: Provider,
    pub model_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub config: EntryConfig,
    #[serde(default)]
    pub auth_meta: Option<AuthMeta>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_priority")]
    pub priority: i64,
    #[serde(default = "global")]
    pub scope: String,
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    #[serde(default)]
    pub price_override: Option<PriceOverride>,
}

fn yes() -> bool {
    true
}
fn default_priority() -> i64 {
    100
}
fn global() -> String {
    GLOBAL_SCOPE.to_owned()
}

/// `PUT /api/admin/llms/{id}`: the fields to change; `null` clears an optional one.
/// `version`, when given, makes the write conditional (`409` when stale).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmPatch {
    pub name: Option<String>,
    pub provider: Option<Provider>,
    pub model_name: Option<String>,
    pub description: Option<String>,
    pub config: Option<EntryConfig>,
    #[serde(default, deserialize_with = "crate::settings::present")]
    pub auth_meta: Option<Option<AuthMeta>>,
    pub enabled: Option<bool>,
    pub priority: Option<i64>,
    pub scope: Option<String>,
    pub capabilities: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::settings::present")]
    pub price_override: Option<Option<PriceOverride>>,
    pub version: Option<u64>,
}

/// `POST /api/admin/llms/{id}/set-default`; absent: the default for every operation
/// without one of its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SetDefault {
    pub operation_type: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    Enable,
    Disable,
    Delete,
}

/// `POST /api/admin/llms/bulk`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bulk {
    pub action: BulkAction,
    pub ids: Vec<String>,
}

pub const MAX_BULK: usize = 100;
const MAX_PRIORITY: i64 = 1_000_000;

fn text(field: &str, v: &str, max: usize, empty_ok: bool) -> Result<(), RegistryError> {
    if (!empty_ok && v.trim().is_empty()) || v.chars().count() > max {
        return Err(RegistryError::invalid(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(RegistryError::invalid(
            field,
            "must not hold control characters",
        ));
    }
    Ok(())
}

pub fn check_operation(field: &str, op: &str) -> Result<(), RegistryError> {
    if op == ANY_OPERATION || crate::settings::OPERATION_TYPES.contains(&op) {
        return Ok(());
    }
    Err(RegistryError::invalid(
        field,
        format!(
            "unknown operation type; expected one of: {}",
            crate::settings::OPERATION_TYPES.join(", ")
        ),
    ))
}

/// Checks an entry as it would be stored (after a create or a patch).
/// The highest rate (USD per 1M tokens) a price override may set: far above any real
/// price, and low enough that a call's cost always fits the nano-USD counters.
pub const MAX_RATE_USD: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

pub fn check_entry(
    e: &LlmEntry,
    catalog: &Catalog,
    operator: &dyn OperatorKeys,
) -> Result<(), RegistryError> {
    text("name", &e.name, 128, false)?;
    text("description", &e.description, 1024, true)?;
    text("model_name", &e.model_name, 256, false)?;
    if e.model_name.chars().any(char::is_whitespace) {
        return Err(RegistryError::invalid(
            "model_name",
            "must not hold whitespace",
        ));
    }
    if catalog.find(Some(e.provider), &e.model_name).is_none() && e.price_override.is_none() {
        return Err(RegistryError::invalid(
            "price_override",
            format!(
                "the catalog has no price for {}/{}: give price_override, so costs are never a silent $0",
                e.provider, e.model_name
            ),
        ));
    }
    if let Some(t) = e.config.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(RegistryError::invalid(
            "config.temperature",
            "must be between 0.0 and 2.0",
        ));
    }
    if let Some(m) = e.config.max_tokens
        && !(1..=1_000_000).contains(&m)
    {
        return Err(RegistryError::invalid(
            "config.max_tokens",
            "must be between 1 and 1000000",
        ));
    }
    if let Some(meta) = &e.auth_meta {
        operator
            .check(meta)
            .map_err(|(field, message)| RegistryError::invalid(field, message))?;
    }
    if !(0..=MAX_PRIORITY).contains(&e.priority) {
        return Err(RegistryError::invalid(
            "priority",
            format!("must be between 0 and {MAX_PRIORITY}"),
        ));
    }
    if e.scope != GLOBAL_SCOPE && !crate::identity::valid_tenant_id(&e.scope) {
        return Err(RegistryError::invalid(
            "scope",
            "must be \"global\" or a tenant id",
        ));
    }
    if e.capabilities.len() > 16
        || e.capabilities.iter().any(|c| {
            !(1..=32).contains(&c.len())
                || !c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_')
        })
    {
        return Err(RegistryError::invalid(
            "capabilities",
            "at most 16 names of 1 to 32 lowercase letters or _",
        ));
    }
    if let Some(p) = &e.price_override {
        let rates = [Some(p.input), Some(p.output), p.cached_read, p.cache_write];
        if rates.iter().flatten().any(|r| r.is_sign_negative()) {
            return Err(RegistryError::invalid(
                "price_override",
                "rates must not be negative",
            ));
        }
        if rates.iter().flatten().any(|r| *r > MAX_RATE_USD) {
            return Err(RegistryError::invalid(
                "price_override",
                "rates are USD per 1M tokens, at most 1000000",
            ));
        }
    }
    Ok(())
}
