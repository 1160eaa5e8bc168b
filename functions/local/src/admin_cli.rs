//! The admin commands of `llm-local`, for a terminal next to the data directory: the
//! model registry, per-user limits and the audit log. They write the store directly,
//! with the same validation and audit events as the admin routes (actor `local-cli`);
//! a running `serve` picks the change up within a second.

use crate::LocalError;
use clap::Subcommand;
use shared::registry::RegistryCache;
use shared::registry::admin::{Admin, ListQuery};
use shared::registry::input::{LlmPatch, SetDefault};
use shared::settings::limits::{self, LimitsBody};
use shared::store::sqlite::SqliteStore;
use shared::store::{AuditQuery, AuditStore};
use shared::vault::operator::EnvOperatorKeys;
use std::sync::Arc;

const ACTOR: &str = "local-cli";

#[derive(Subcommand)]
pub enum LlmsCommand {
    /// Every registry entry, by priority.
    List,
    /// Let users route to an entry (by id or name).
    Enable { entry: String },
    /// Take an entry out of routing and out of users' model lists.
    Disable { entry: String },
    /// Make an entry the default for an operation type (all without their own default
    /// when none is given).
    SetDefault {
        entry: String,
        #[arg(long)]
        operation: Option<String>,
    },
    /// Set an entry's priority (lower is tried first in failover).
    Priority { entry: String, priority: i64 },
}

#[derive(Subcommand)]
pub enum LimitsCommand {
    /// Set a user's hard limits; an omitted one is lifted.
    Set {
        #[arg(long)]
        user: String,
        #[arg(long)]
        monthly_budget_usd: Option<String>,
        #[arg(long)]
        requests_per_minute: Option<u32>,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// The newest audit events, oldest of them first, one JSON object per line.
    Tail {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        action: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Registry(#[from] shared::registry::RegistryError),
    #[error("{0}")]
    Settings(#[from] shared::settings::SettingsError),
    #[error("no registry entry has the id or name {0:?}")]
    NoEntry(String),
    #[error("--monthly-budget-usd: {0}")]
    Budget(String),
}

async fn registry(db: Arc<SqliteStore>) -> Result<RegistryCache, LocalError> {
    let catalog = shared::pricing::catalog()?;
    crate::seed_registry(db.as_ref(), catalog).await?;
    Ok(RegistryCache::load(db, catalog, std::time::Duration::ZERO).await?)
}

/// The id of the entry named `entry` by id or by name.
async fn resolve(admin: &Admin<'_>, entry: &str) -> Result<String, LocalError> {
    let page = admin
        .list(&ListQuery {
            limit: usize::MAX,
            ..Default::default()
        })
        .await
        .map_err(CliError::from)?;
    page.llms
        .iter()
        .find(|v| v.entry.id == entry)
        .or_else(|| page.llms.iter().find(|v| v.entry.name == entry))
        .map(|v| v.entry.id.clone())
        .ok_or_else(|| CliError::NoEntry(entry.to_owned()).into())
}

pub async fn llms(db: Arc<SqliteStore>, command: LlmsCommand) -> Result<(), LocalError> {
    let cache = registry(db).await?;
    let admin = Admin {
        cache: &cache,
        operator: &EnvOperatorKeys,
        actor: ACTOR,
    };
    let changed = match command {
        LlmsCommand::List => {
            let page = admin
                .list(&ListQuery {
                    limit: usize::MAX,
                    ..Default::default()
                })
                .await
                .map_err(CliError::from)?;
            crate::say(&format!(
                "{:>8}  {:<8}  {:<24}  {:<22}  name",
                "priority", "enabled", "default for", "id"
            ));
            for v in page.llms {
                let e = v.entry;
                crate::say(&format!(
                    "{:>8}  {:<8}  {:<24}  {:<22}  {}",
                    e.priority,
                    if e.enabled { "yes" } else { "no" },
                    e.default_for.join(","),
                    e.id,
                    e.name
                ));
            }
            return Ok(());
        }
        LlmsCommand::Enable { entry } => {
            let id = resolve(&admin, &entry).await?;
            let patch = LlmPatch {
                enabled: Some(true),
                ..Default::default()
            };
            admin.update(&id, patch).await
        }
        LlmsCommand::Disable { entry } => {
            let id = resolve(&admin, &entry).await?;
            let patch = LlmPatch {
                enabled: Some(false),
                ..Default::default()
            };
            admin.update(&id, patch).await
        }
        LlmsCommand::SetDefault { entry, operation } => {
            let id = resolve(&admin, &entry).await?;
            let body = SetDefault {
                operation_type: operation,
            };
            admin.set_default(&id, body).await
        }
        LlmsCommand::Priority { entry, priority } => {
            let id = resolve(&admin, &entry).await?;
            let patch = LlmPatch {
                priority: Some(priority),
                ..Default::default()
            };
            admin.update(&id, patch).await
        }
    }
    .map_err(CliError::from)?;
    let e = changed.entry;
    crate::say(&format!(
        "{}  {}  priority {}  enabled {}  default for [{}]",
        e.id,
        e.name,
        e.priority,
        e.enabled,
        e.default_for.join(",")
    ));
    Ok(())
}

pub async fn limits(db: Arc<SqliteStore>, command: LimitsCommand) -> Result<(), LocalError> {
    let LimitsCommand::Set {
        user,
        monthly_budget_usd,
        requests_per_minute,
    } = command;
    let budget = monthly_budget_usd
        .map(|v| {
            serde_json::from_str::<shared::money::NanoUsd>(&v)
                .map_err(|_| CliError::Budget("must be an amount in USD, like 25 or 12.50".into()))
        })
        .transpose()?;
    let body = LimitsBody {
        monthly_budget_usd: budget,
        requests_per_minute,
        version: None,
    };
    let l = limits::put(db.as_ref(), ACTOR, &user, body)
        .await
        .map_err(CliError::from)?;
    let view = limits::LimitsView::new(&user, Some(l));
    crate::say(&serde_json::to_string(&view).unwrap_or_default());
    Ok(())
}

pub async fn audit(db: Arc<SqliteStore>, command: AuditCommand) -> Result<(), LocalError> {
    let AuditCommand::Tail {
        limit,
        actor,
        action,
    } = command;
    let now = chrono::Utc::now();
    let q = AuditQuery {
        actor,
        action,
        target: None,
        start: shared::store::timestamp(
            now - chrono::Duration::days(shared::store::AUDIT_RETENTION_DAYS),
        ),
        end: shared::store::timestamp(now + chrono::Duration::seconds(1)),
        limit: limit.clamp(1, 10_000),
        before: None,
    };
    let (mut events, _) = db.query(&q).await?;
    events.reverse();
    for e in events {
        crate::say(&serde_json::to_string(&e).unwrap_or_default());
    }
    Ok(())
}
