//! `llm-local`: the single-machine shape of the gateway. Every router on one socket, on
//! an embedded SQLite store, keys sealed with a local master key; plus the token CLI.

mod admin_cli;
mod metrics_route;
mod otel;
mod owner;
mod server;

use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};
use shared::generate::alerts::{AlertSink, Alerts, WebhookSink};
use shared::generate::breaker::Breakers;
use shared::generate::keys::KeyCache;
use shared::generate::recorder::{Recorder, Writer};
use shared::generate::{GenerateConfig, GenerateState, rpm_limiter_from_env};
use shared::http::{
    AppState, GenerateApi, UsageState, app_with_metrics, generate_router, settings_router,
    usage_router,
};
use shared::identity::{CachedTokens, IdentityMode};
use shared::providers::Providers;
use shared::registry::RegistryCache;
use shared::store::LimitsStore;
use shared::store::sqlite::SqliteStore;
use shared::store::warm::budget::OwnedBudgets;
use shared::store::warm::counters::MemoryCounters;
use shared::store::warm::limits::LimitsCache;
use shared::store::warm::ratelimits::MemoryRateLimits;
use shared::store::warm::settings::SettingsCache;
use shared::usage::token::TokenKey;
use shared::vault::local::{LocalVault, MASTER_KEY_ENV, load_master_key};
use shared::vault::operator::EnvOperatorKeys;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

const DB_FILE: &str = "gateway.sqlite3";
/// Usage jobs the store refused, kept for the next start (see generate::recorder).
const JOURNAL_FILE: &str = "usage-journal.ndjson";

#[derive(Parser)]
#[command(name = "llm-local", version, about = "BYOK LLM gateway on one machine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every route on an embedded store.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        #[arg(long, env = "LLM_LOCAL_DATA_DIR", default_value = ".llm-local")]
        data_dir: PathBuf,
    },
    /// Manage bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The model registry: list, enable, disable, set-default, priority.
    Llms {
        #[command(subcommand)]
        command: admin_cli::LlmsCommand,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Per-user hard limits.
    Limits {
        #[command(subcommand)]
        command: admin_cli::LimitsCommand,
        #[command(flatten)]
        dir: DataDir,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: admin_cli::AuditCommand,
        #[command(flatten)]
        dir: DataDir,
    },
}

/// `--data-dir` of the admin commands, given before or after their subcommand.
#[derive(clap::Args)]
struct DataDir {
    #[arg(
        long = "data-dir",
        env = "LLM_LOCAL_DATA_DIR",
        default_value = ".llm-local",
        global = true
    )]
    path: PathBuf,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a new bearer token for a user on stdout; only its hash is stored.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long)]
        admin: bool,
        /// The tenant the user belongs to.
        #[arg(long)]
        tenant: Option<String>,
        /// An admin of that tenant.
        #[arg(long, requires = "tenant")]
        tenant_admin: bool,
        /// How long the token is valid: a number with d, h or m (`30d`, `12h`).
        #[arg(long)]
        expires_in: Option<String>,
        #[arg(long, env = "LLM_LOCAL_DATA_DIR", default_value = ".llm-local")]
        data_dir: PathBuf,
    },
    /// Every token (by id: the start of its hash; the token itself is never stored).
    List {
        #[arg(long, env = "LLM_LOCAL_DATA_DIR", default_value = ".llm-local")]
        data_dir: PathBuf,
    },
    /// Revoke a token by its id (as `token list` shows it), or every token of a user.
    Revoke {
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        id: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long, env = "LLM_LOCAL_DATA_DIR", default_value = ".llm-local")]
        data_dir: PathBuf,
    },
}

#[derive(Debug, thiserror::Error)]
enum LocalError {
    #[error("data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error(transparent)]
    Owner(#[from] owner::OwnerError),
    #[error(transparent)]
    Store(#[from] shared::store::StoreError),
    #[error(transparent)]
    Vault(#[from] shared::vault::VaultError),
    #[error(transparent)]
    Pricing(#[from] shared::pricing::PricingError),
    #[error(transparent)]
    Token(#[from] shared::identity::IssueError),
    #[error(transparent)]
    Providers(#[from] shared::providers::ProvidersInitError),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Cli(#[from] admin_cli::CliError),
    #[error("no token has that id (or that user has no token); `llm-local token list` shows them")]
    NoToken,
    #[error("--expires-in {0:?}: give a whole number with d, h or m, like 30d or 12h")]
    Lifetime(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(shared::logging::env_filter()),
    );
    let (spans, traces) = match otel::layer() {
        Ok(Some((layer, traces))) => (Some(layer), Some(traces)),
        Ok(None) => (None, None),
        Err(e) => {
            eprintln!("llm-local: cannot export traces (OTEL_EXPORTER_OTLP_*): {e}");
            return ExitCode::FAILURE;
        }
    };
    logs.with(spans).init();
    let code = run_to_end(cli);
    if let Some(t) = traces {
        t.shutdown();
    }
    code
}

fn run_to_end(cli: Cli) -> ExitCode {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    // tokio's own TOKIO_WORKER_THREADS wins when set.
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        runtime.worker_threads(worker_threads());
    }
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("llm-local: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llm-local: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Half the cores for the async workers (at least one). A request's own work is short;
/// what a request costs beyond it is waking threads: each hop of a request between
/// workers is a context switch, which on a small machine costs more than the work it
/// hands over (measured in `make bench`: one worker instead of two on 2 cores, the same
/// throughput, lower CPU per request and a p99 at concurrency 32 a tenth as long). The
/// other cores go to the SQLite writer (a blocking thread) and the kernel's network work.
fn worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

async fn run(command: Command) -> Result<(), LocalError> {
    match command {
        Command::Serve { addr, data_dir } => serve(addr, &data_dir).await,
        Command::Token { command } => tokens(command).await,
        Command::Llms { command, dir } => {
            admin_cli::llms(Arc::new(open_store(&dir.path)?), command).await
        }
        Command::Limits { command, dir } => {
            admin_cli::limits(Arc::new(open_store(&dir.path)?), command).await
        }
        Command::Audit { command, dir } => {
            admin_cli::audit(Arc::new(open_store(&dir.path)?), command).await
        }
    }
}

async fn tokens(command: TokenCommand) -> Result<(), LocalError> {
    use shared::store::TokenStore;
    match command {
        TokenCommand::Create {
            user,
            admin,
            tenant,
            tenant_admin,
            expires_in,
            data_dir,
        } => {
            let expires_at = expires_in
                .map(|e| parse_lifetime(&e).map(|d| chrono::Utc::now() + d))
                .transpose()?;
            let db = open_store(&data_dir)?;
            let spec = shared::identity::NewToken {
                user_id: &user,
                is_admin: admin,
                tenant_id: tenant.as_deref(),
                is_tenant_admin: tenant_admin,
                expires_at,
            };
            say(&shared::identity::issue(&db, &spec).await?);
        }
        TokenCommand::List { data_dir } => {
            let db = open_store(&data_dir)?;
            let now = chrono::Utc::now();
            for t in db.list_tokens().await? {
                let state = if t.expired(now) { "expired" } else { "valid" };
                say(&format!(
                    "{}  user={}  admin={}  tenant={}  tenant_admin={}  created={}  expires={}  {state}",
                    t.id(),
                    t.user_id,
                    t.is_admin,
                    t.tenant_id.as_deref().unwrap_or("-"),
                    t.is_tenant_admin,
                    t.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
                    t.expires_at.map_or_else(
                        || "never".to_owned(),
                        |e| e.format("%Y-%m-%dT%H:%M:%SZ").to_string()
                    ),
                ));
            }
        }
        TokenCommand::Revoke { id, user, data_dir } => {
            let db = open_store(&data_dir)?;
            let all = db.list_tokens().await?;
            let chosen: Vec<_> = match (&id, &user) {
                (Some(id), _) => all.iter().filter(|t| t.id() == id).collect(),
                (None, Some(u)) => all.iter().filter(|t| &t.user_id == u).collect(),
                (None, None) => Vec::new(),
            };
            if chosen.is_empty() {
                return Err(LocalError::NoToken);
            }
            for t in chosen {
                db.delete_token(&t.token_hash).await?;
                say(&format!("revoked {}  user={}", t.id(), t.user_id));
            }
        }
    }
    Ok(())
}

/// `30d`, `12h`, `90m`: a token's lifetime.
fn parse_lifetime(text: &str) -> Result<chrono::Duration, LocalError> {
    let bad = || LocalError::Lifetime(text.to_owned());
    // Split before the last character (a char boundary, whatever was typed).
    let cut = text.char_indices().last().map_or(0, |(i, _)| i);
    let (n, unit) = text.split_at(cut);
    let n: i64 = n.parse().map_err(|_| bad())?;
    if !(1..=36_500).contains(&n) {
        return Err(bad());
    }
    match unit {
        "d" => Ok(chrono::Duration::days(n)),
        "h" => Ok(chrono::Duration::hours(n)),
        "m" => Ok(chrono::Duration::minutes(n)),
        _ => Err(bad()),
    }
}

/// How soon a running server sees registry and limit changes made beside it (the CLI);
/// its own admin routes' changes it sees at once.
const SHARED_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// Seeds the registry from the catalog the first time a data directory is used.
pub(crate) async fn seed_registry(
    db: &SqliteStore,
    catalog: &shared::pricing::Catalog,
) -> Result<(), LocalError> {
    let seeds = shared::registry::seed::seed_entries(catalog);
    if shared::store::RegistryStore::seed_llms(db, &seeds).await? {
        tracing::info!(
            entries = seeds.len(),
            "model registry seeded from the catalog"
        );
    }
    Ok(())
}

/// Creates the data directory (0700) on first start and opens the database in it.
fn open_store(data_dir: &Path) -> Result<SqliteStore, LocalError> {
    create_data_dir(data_dir)?;
    Ok(SqliteStore::open(&data_dir.join(DB_FILE))?)
}

fn create_data_dir(data_dir: &Path) -> Result<(), LocalError> {
    if !data_dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode_private()
            .create(data_dir)
            .map_err(|e| LocalError::DataDir(data_dir.to_path_buf(), e))?;
    }
    Ok(())
}

trait PrivateDir {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateDir for std::fs::DirBuilder {
    #[cfg(unix)]
    fn mode_private(&mut self) -> &mut Self {
        std::os::unix::fs::DirBuilderExt::mode(self, 0o700)
    }
    #[cfg(not(unix))]
    fn mode_private(&mut self) -> &mut Self {
        self
    }
}

async fn serve(addr: SocketAddr, data_dir: &Path) -> Result<(), LocalError> {
    create_data_dir(data_dir)?;
    // Before anything is read: what this process keeps in memory is exact only while it
    // is the one serving this directory. Held until serve returns.
    let _owner = owner::take(data_dir)?;
    let db = open_store(data_dir)?;
    let master_key = load_master_key(std::env::var(MASTER_KEY_ENV).ok(), data_dir)?;
    let vault = LocalVault::new(db.clone(), &master_key)?;
    let db = Arc::new(db);
    let vault: Arc<dyn shared::vault::KeyVault> = Arc::new(vault);
    let providers = Arc::new(Providers::from_env(shared::sdk::local_sdk_config().await)?);
    // The warm path (the directory is ours): settings and budget counters served from
    // memory, every write to SQLite before it is acknowledged.
    let settings = Arc::new(SettingsCache::owned(db.clone()));
    let budgets = Arc::new(OwnedBudgets::new(db.clone(), db.clone()));
    let catalog = shared::pricing::catalog()?;
    seed_registry(&db, catalog).await?;
    let registry = Arc::new(RegistryCache::load(db.clone(), catalog, SHARED_WINDOW).await?);
    let limits: Arc<dyn LimitsStore> = Arc::new(LimitsCache::new(db.clone(), SHARED_WINDOW));
    let state = AppState {
        settings,
        vault: vault.clone(),
        catalog,
        // Short: `token revoke` runs in another process, and a revoked token must stop
        // working within a second.
        identity: IdentityMode::LocalTokens(Arc::new(CachedTokens::new(db.clone(), SHARED_WINDOW))),
        providers: providers.clone(),
        test_limiter: AppState::default_test_limiter(),
        key_changes: Default::default(),
        registry,
        operator_keys: Arc::new(EnvOperatorKeys),
        limits,
    };
    // Reservations live in this process's memory; any the database still holds belong to
    // requests of a process that is gone (the lock says so, and older versions kept them
    // there): all released now, whatever their lease.
    match shared::store::warm::adopt::release_every_held(&db).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(released = n, "reservations of an earlier run released"),
        Err(e) => tracing::error!(error = %e, "reservations of an earlier run not released"),
    }
    let (mut generate_state, usage_writer) = generate_state(
        state.clone(),
        db.clone(),
        budgets.clone(),
        vault,
        &providers,
        data_dir,
    )
    .await;
    let lifecycle = generate_state.lifecycle.clone();
    let (metrics, metrics_route) = metrics_route::local(&generate_state);
    generate_state.metrics = metrics.clone();
    let sweep = tokio::spawn(release_expired_reservations(db.clone(), budgets.clone()));
    let usage_state = UsageState {
        identity: state.identity.clone(),
        settings: state.settings.clone(),
        usage: budgets.clone(),
        budgets,
        limits: state.limits.clone(),
        audit: db.clone(),
        // The generate state's own book: one process, one memory of every answer.
        rate_limits: generate_state.rate_limits.clone(),
        // The registry every route of this process shares: insights suggest from it.
        registry: state.registry.clone(),
        // Page tokens are signed with a key derived from the master key: stable across
        // restarts, different per installation.
        token_key: TokenKey::new(&Sha256::digest(
            [b"llm-usage-token:".as_slice(), master_key.as_slice()].concat(),
        )),
    };
    let purge = tokio::spawn(purge_expired_usage(db));
    let identity = state.identity.clone();
    let router = app_with_metrics(
        settings_router(state)
            .merge(generate_router(GenerateApi {
                engine: generate_state,
                identity,
            }))
            .merge(usage_router(usage_state))
            .merge(metrics_route),
        metrics,
    );

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| LocalError::Bind(addr, e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| LocalError::Bind(addr, e))?;
    // A closed stdout (a supervisor that stopped reading) must not take the server down,
    // so these lines ignore write errors instead of panicking like `println!`.
    say(&format!("llm-local listening on http://{bound}"));
    say(&format!(
        "get a token: llm-local token create --user <id> [--admin] --data-dir {}",
        data_dir.display()
    ));
    tracing::info!(addr = %bound, data_dir = %data_dir.display(), "listening");

    // On the signal the server stops accepting and gives requests its grace. Generations
    // still waiting on an upstream a few seconds before the grace ends are cut short, so
    // that each still records its outcome, settles and answers before its connection is
    // closed.
    let limits = server::Limits::from_env();
    let stopping = tokio_util::sync::CancellationToken::new();
    let cut_generations = {
        let (stopping, lifecycle) = (stopping.clone(), lifecycle.clone());
        let cut_after = limits.shutdown_grace.saturating_sub(GENERATIONS_GRACE);
        tokio::spawn(async move {
            shutdown_signal().await;
            stopping.cancel();
            tokio::time::sleep(cut_after).await;
            lifecycle.shutdown.cancel();
        })
    };
    // Returns once every connection is closed (at most the shutdown grace after the signal).
    let served = server::serve(listener, router, limits, stopping.cancelled_owned())
        .await
        .map_err(LocalError::Serve);
    cut_generations.abort();
    purge.abort();
    sweep.abort();
    // Generations whose clients left are still running on their own tasks: they finish
    // (each records and settles) within the deadline, or are cut short after it.
    lifecycle.tasks.close();
    if tokio::time::timeout(GENERATIONS_GRACE, lifecycle.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("in-flight generations cut short by shutdown");
        lifecycle.shutdown.cancel();
        let _ = tokio::time::timeout(GENERATIONS_GRACE, lifecycle.tasks.wait()).await;
    }
    drop(lifecycle);
    // Every sender went with the router: the writer finishes what is queued, then stops.
    // Bounded so that the grace plus this stays near 20 s, what a supervisor waits.
    match tokio::time::timeout(std::time::Duration::from_secs(5), usage_writer).await {
        Ok(_) => tracing::info!("usage writer drained"),
        Err(_) => tracing::error!("usage writer did not drain within 5 s"),
    }
    served
}

/// Retention on the embedded store: entries past their TTL (90 days by default,
/// `USAGE_RETENTION_DAYS`), rollups older than 13 months and provider health buckets past
/// theirs (an hour, two days) are deleted at start-up and every ten minutes; reads filter
/// expired entries in between.
async fn purge_expired_usage(db: Arc<SqliteStore>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        let now = chrono::Utc::now();
        let keep_from = (now - chrono::Duration::days(396))
            .format("%Y-%m-%d")
            .to_string();
        match shared::store::UsageStore::purge_expired(db.as_ref(), now.timestamp(), &keep_from)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "expired usage purged"),
            Err(e) => tracing::error!(error = %e, "usage purge failed"),
        }
        let audit_from = shared::store::timestamp(
            now - chrono::Duration::days(shared::store::AUDIT_RETENTION_DAYS),
        );
        match shared::store::AuditStore::purge_audit(db.as_ref(), &audit_from).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "audit events past retention purged"),
            Err(e) => tracing::error!(error = %e, "audit purge failed"),
        }
    }
}

/// How long before the end of the shutdown grace in-flight generations are cut short,
/// and how long, after the server stopped, shutdown waits for the ones whose clients
/// left (twice: before and after cutting them short).
const GENERATIONS_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Every 15 s: releases reservations whose lease ended (a request that never settled)
/// and forgets their markers in memory, and purges settled markers older than a day
/// from the database.
async fn release_expired_reservations(db: Arc<SqliteStore>, budgets: Arc<OwnedBudgets>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
    loop {
        tick.tick().await;
        let now = chrono::Utc::now().timestamp();
        let released = budgets.sweep(now);
        if released > 0 {
            tracing::info!(released, "expired reservations released");
        }
        if let Err(e) = db.release_all_expired(now).await {
            tracing::error!(error = %e, "old reservation markers not purged");
        }
    }
}

/// The generate engine on the embedded store. Usage is written by a background writer
/// that commits each request's record before the request answers; what an earlier run
/// journaled is written first.
async fn generate_state(
    app: AppState,
    db: Arc<SqliteStore>,
    budgets: Arc<OwnedBudgets>,
    vault: Arc<dyn shared::vault::KeyVault>,
    providers: &Providers,
    data_dir: &Path,
) -> (GenerateState, tokio::task::JoinHandle<()>) {
    let mut sinks: Vec<Arc<dyn AlertSink>> = Vec::new();
    if let Ok(url) = std::env::var("LLM_BUDGET_WEBHOOK_URL") {
        sinks.push(Arc::new(WebhookSink {
            transport: providers.transport.clone(),
            url,
        }));
    }
    let alerts = Arc::new(Alerts::new(db.clone(), sinks));
    let writer = Arc::new(Writer {
        usage: budgets.clone(),
        budgets: budgets.clone(),
        alerts,
        journal: Some(data_dir.join(JOURNAL_FILE)),
    });
    match writer.replay_journal().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(replayed = n, "journaled usage written"),
        Err(e) => {
            tracing::error!(error = %e, "journaled usage not written yet; kept for the next start")
        }
    }
    let (recorder, handle) = Recorder::background(writer, 4096);
    let keys = Arc::new(KeyCache::new(vault, std::time::Duration::from_secs(300)));
    app.key_changes.subscribe(keys.clone());
    let state = GenerateState {
        settings: app.settings.clone(),
        catalog: app.catalog,
        providers: app.providers.clone(),
        budgets,
        cache: db,
        keys,
        breakers: Arc::new(Breakers::new(5, std::time::Duration::from_secs(30))),
        rpm: rpm_limiter_from_env(),
        recorder,
        config: GenerateConfig::from_env(),
        lifecycle: Default::default(),
        registry: app.registry.clone(),
        limits: app.limits.clone(),
        counters: Arc::new(MemoryCounters::default()),
        operator_keys: app.operator_keys.clone(),
        // This process makes every call of its deployment: its memory knows every answer.
        rate_limits: Arc::new(MemoryRateLimits::default()),
        // Set by `serve` once the `/metrics` registry (which reads this state's queues)
        // exists.
        metrics: shared::metrics::Metrics::off(),
    };
    (state, handle)
}

pub(crate) fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
