//! Start-up of the Lambda shape: the AWS SDK configuration and clients are built once per
//! cold start from the environment, never per request, and each function builds only
//! what its router uses.

use crate::generate::alerts::{AlertSink, Alerts, SnsSink};
use crate::generate::breaker::Breakers;
use crate::generate::keys::KeyCache;
use crate::generate::recorder::{Recorder, Writer};
use crate::generate::{GenerateConfig, GenerateState, rpm_limiter_from_env};
use crate::http::{AppState, GenerateApi, UsageState};
use crate::identity::IdentityMode;
use crate::providers::Providers;
use crate::registry::RegistryCache;
use crate::store::DynamoUsageStore;
use crate::store::dynamodb::{
    DynamoLimitsStore, DynamoRateCounters, DynamoRateLimits, DynamoRegistryStore,
    DynamoSettingsStore,
};
use crate::store::warm::limits::LimitsCache;
use crate::store::warm::ratelimits::{self, RateLimitWindow};
use crate::store::warm::settings::SettingsCache;
use crate::store::warm::spend::SpendWindow;
use crate::usage::token::TokenKey;
use crate::vault::operator::SecretsOperatorKeys;
use crate::vault::secrets_manager::SecretsManagerVault;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {0}: {1}")]
    Invalid(&'static str, String),
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
    #[error(transparent)]
    Pricing(#[from] crate::pricing::PricingError),
    #[error(transparent)]
    Providers(#[from] crate::providers::ProvidersInitError),
    /// The page-token key could not be read. Carries the secret's ARN and the SDK's
    /// error, never the key material.
    #[error("page-token key secret {0}: {1}")]
    TokenKey(String, String),
    #[error("model registry: {0}")]
    Registry(#[from] crate::store::StoreError),
}

fn required(name: &'static str) -> Result<String, InitError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(InitError::Missing(name))
}

fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The SDK configuration and the DynamoDB client every function uses, built once per
/// cold start. Other clients (Secrets Manager, SNS, Bedrock) are built from `config`
/// only by the functions that call them.
struct Clients {
    config: aws_config::SdkConfig,
    dynamodb: aws_sdk_dynamodb::Client,
}

async fn clients() -> Clients {
    let config = crate::sdk::sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    Clients { config, dynamodb }
}

/// Callers are who API Gateway's JWT authorizer says: `ADMIN_GROUP_CLAIM`, `ADMIN_GROUP`,
/// `TENANT_CLAIM` (default `custom:tenant`), `TENANT_ADMIN_GROUP` (default
/// `llm-tenant-admin`).
fn identity_from_env() -> IdentityMode {
    IdentityMode::api_gateway(optional("ADMIN_GROUP_CLAIM"), optional("ADMIN_GROUP"))
        .with_tenants(optional("TENANT_CLAIM"), optional("TENANT_ADMIN_GROUP"))
}

/// The usage store's tables: `USAGE_TABLE`, `CACHE_TABLE`, `AUDIT_TABLE`.
struct UsageTables {
    usage: String,
    cache: String,
    audit: String,
}

impl UsageTables {
    fn from_env() -> Result<Self, InitError> {
        Ok(UsageTables {
            usage: required("USAGE_TABLE")?,
            cache: required("CACHE_TABLE")?,
            audit: required("AUDIT_TABLE")?,
        })
    }

    fn store(self, dynamodb: aws_sdk_dynamodb::Client) -> Arc<DynamoUsageStore> {
        Arc::new(DynamoUsageStore::new(
            dynamodb, self.usage, self.cache, self.audit,
        ))
    }
}

/// Where operator credentials named by registry entries must live.
const DEFAULT_OPERATOR_SECRET_PREFIX: &str = "operator/llm/";

/// What the settings and generate functions share: settings, users' keys in Secrets
/// Manager, the pricing catalog, the model registry (`REGISTRY_TABLE`; changes made by
/// other instances show within `LLM_SETTINGS_CACHE_SECS`), admin limits, operator
/// credentials under `OPERATOR_SECRET_PREFIX`, and the provider transport and Bedrock
/// client (the connection test and generation call providers).
async fn app_state(clients: &Clients) -> Result<AppState, InitError> {
    let table = required("SETTINGS_TABLE")?;
    let audit_table = required("AUDIT_TABLE")?;
    let registry_table = required("REGISTRY_TABLE")?;
    let operator_prefix = optional("OPERATOR_SECRET_PREFIX")
        .unwrap_or_else(|| DEFAULT_OPERATOR_SECRET_PREFIX.to_owned());
    let window = crate::store::warm::settings::window_from_env();
    let catalog = crate::pricing::catalog()?;
    let registry = Arc::new(
        RegistryCache::load(
            Arc::new(DynamoRegistryStore::new(
                clients.dynamodb.clone(),
                registry_table,
                audit_table.clone(),
            )),
            catalog,
            window,
        )
        .await?,
    );
    let limits = Arc::new(LimitsCache::new(
        Arc::new(DynamoLimitsStore::new(
            clients.dynamodb.clone(),
            table.clone(),
            audit_table.clone(),
        )),
        window,
    ));
    let prefix = optional("SECRET_PREFIX").unwrap_or_default();
    let kms_key_id = optional("SECRETS_KMS_KEY_ID");
    let recovery_days = match optional("SECRET_RECOVERY_DAYS") {
        Some(v) => v.parse::<i64>().map_err(|_| {
            InitError::Invalid(
                "SECRET_RECOVERY_DAYS",
                "must be a whole number of days".into(),
            )
        })?,
        None => 7,
    };
    let secrets = aws_sdk_secretsmanager::Client::new(&clients.config);
    Ok(AppState {
        settings: Arc::new(DynamoSettingsStore::new(
            clients.dynamodb.clone(),
            table,
            audit_table,
        )),
        vault: Arc::new(SecretsManagerVault::new(
            secrets.clone(),
            prefix,
            kms_key_id,
            recovery_days,
        )?),
        catalog,
        identity: identity_from_env(),
        providers: Arc::new(Providers::from_env(clients.config.clone())?),
        test_limiter: AppState::default_test_limiter(),
        key_changes: Default::default(),
        registry,
        operator_keys: Arc::new(SecretsOperatorKeys::new(secrets, operator_prefix)),
        limits,
    })
}

/// The settings function's state, from `SETTINGS_TABLE`, `SECRET_PREFIX`,
/// `SECRETS_KMS_KEY_ID`, `SECRET_RECOVERY_DAYS`, `ADMIN_GROUP_CLAIM`, `ADMIN_GROUP`.
/// The settings function serves the admin routes and alone may write the registry: it
/// seeds it from the catalog on its first start.
pub async fn settings_state_from_env() -> Result<AppState, InitError> {
    let state = app_state(&clients().await).await?;
    let seeds = crate::registry::seed::seed_entries(state.catalog);
    if state.registry.store().seed_llms(&seeds).await? {
        tracing::info!(
            entries = seeds.len(),
            "model registry seeded from the catalog"
        );
        state.registry.refresh().await?;
    }
    Ok(state)
}

/// The generate function's state: the settings state's variables plus `USAGE_TABLE`,
/// `CACHE_TABLE`, `AUDIT_TABLE`, optionally `BUDGET_ALERT_TOPIC_ARN` (budget alerts
/// are then also published there) and `LLM_SETTINGS_CACHE_SECS` (default 5). Usage is
/// written inline, before the answer leaves: a Lambda may be frozen as soon as it has
/// answered.
pub async fn generate_state_from_env() -> Result<GenerateApi, InitError> {
    let tables = UsageTables::from_env()?;
    let topic = optional("BUDGET_ALERT_TOPIC_ARN");
    let clients = clients().await;
    let mut app = app_state(&clients).await?;
    // The warm path: settings (written by llm-settings) may be a few seconds old here,
    // and budget alerts compare against a spend read at most that often. Reservations
    // are still one conditional write each. See store::warm.
    let window = crate::store::warm::settings::window_from_env();
    app.settings = Arc::new(SettingsCache::window(app.settings.clone(), window));
    let counters = Arc::new(DynamoRateCounters::new(
        clients.dynamodb.clone(),
        tables.usage.clone(),
    ));
    // Shared by every instance, read at most once a second per key by each.
    let rate_limits = Arc::new(RateLimitWindow::new(
        Arc::new(DynamoRateLimits::new(
            clients.dynamodb.clone(),
            tables.usage.clone(),
        )),
        ratelimits::READ_WINDOW,
    ));
    let store = tables.store(clients.dynamodb);
    let written = Arc::new(SpendWindow::new(store.clone(), store.clone(), window));
    let mut sinks: Vec<Arc<dyn AlertSink>> = Vec::new();
    if let Some(topic_arn) = topic {
        sinks.push(Arc::new(SnsSink {
            client: aws_sdk_sns::Client::new(&clients.config),
            topic_arn,
        }));
    }
    let alerts = Arc::new(Alerts::new(store.clone(), sinks));
    let writer = Arc::new(Writer {
        usage: written.clone(),
        budgets: written,
        alerts,
        // A Lambda writes inline before answering; it has no disk that outlives it.
        journal: None,
    });
    let keys = Arc::new(KeyCache::new(
        app.vault.clone(),
        std::time::Duration::from_secs(300),
    ));
    app.key_changes.subscribe(keys.clone());
    let engine = GenerateState {
        settings: app.settings.clone(),
        catalog: app.catalog,
        providers: app.providers.clone(),
        keys,
        budgets: store.clone(),
        cache: store,
        breakers: Arc::new(Breakers::new(5, std::time::Duration::from_secs(30))),
        rpm: rpm_limiter_from_env(),
        recorder: Recorder::Inline(writer),
        config: GenerateConfig::from_env(),
        lifecycle: Default::default(),
        registry: app.registry.clone(),
        limits: app.limits.clone(),
        counters,
        operator_keys: app.operator_keys.clone(),
        rate_limits,
        metrics: crate::metrics::lambda_metrics(),
    };
    Ok(GenerateApi {
        engine,
        identity: app.identity,
    })
}

/// The page-token key must be at least this long (HMAC-SHA256: 32 bytes of key or more).
const MIN_TOKEN_KEY_LEN: usize = 32;

/// Reads the page-token key (the secret string of `arn`) once, at cold start. The key
/// material is never logged or put in an error.
async fn token_key_from_secret(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<TokenKey, InitError> {
    use aws_sdk_secretsmanager::error::DisplayErrorContext;
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| InitError::TokenKey(arn.to_owned(), DisplayErrorContext(&e).to_string()))?;
    let key = zeroize::Zeroizing::new(
        out.secret_string()
            .ok_or_else(|| InitError::TokenKey(arn.to_owned(), "has no secret string".into()))?
            .as_bytes()
            .to_vec(),
    );
    if key.len() < MIN_TOKEN_KEY_LEN {
        return Err(InitError::TokenKey(
            arn.to_owned(),
            format!("the key must be at least {MIN_TOKEN_KEY_LEN} bytes"),
        ));
    }
    Ok(TokenKey::new(&key))
}

/// The llm-usage function's state: `SETTINGS_TABLE` (budget limits are a preference),
/// `USAGE_TABLE`, `CACHE_TABLE`, `AUDIT_TABLE` (the usage store's tables; this function
/// only reads the usage table), `ADMIN_GROUP_CLAIM`, `ADMIN_GROUP` and
/// `USAGE_TOKEN_KEY_SECRET_ARN`, the Secrets Manager secret whose string is the key that
/// signs `nextToken`s (read once here, so every instance shares it), and
/// `REGISTRY_TABLE`, the model registry the insights suggest cheaper models from (read
/// only, on the first insights request, then within `LLM_SETTINGS_CACHE_SECS`). Reports
/// only: no key vault, provider transport or Bedrock client is built.
pub async fn usage_state_from_env() -> Result<UsageState, InitError> {
    let settings_table = required("SETTINGS_TABLE")?;
    let tables = UsageTables::from_env()?;
    let tables_audit = tables.audit.clone();
    let token_secret_arn = required("USAGE_TOKEN_KEY_SECRET_ARN")?;
    let registry_table = required("REGISTRY_TABLE")?;
    let catalog = crate::pricing::catalog()?;
    let Clients { config, dynamodb } = clients().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let token_key = token_key_from_secret(&secrets, &token_secret_arn).await?;
    let rate_limits = Arc::new(DynamoRateLimits::new(
        dynamodb.clone(),
        tables.usage.clone(),
    ));
    let store = tables.store(dynamodb.clone());
    let window = crate::store::warm::settings::window_from_env();
    let limits = Arc::new(LimitsCache::new(
        Arc::new(DynamoLimitsStore::new(
            dynamodb.clone(),
            settings_table.clone(),
            tables_audit.clone(),
        )),
        window,
    ));
    // Not loaded here: only the insights read it, so the other reports never wait for it
    // (and a registry that cannot be read fails those requests alone).
    let registry = Arc::new(RegistryCache::new(
        Arc::new(DynamoRegistryStore::new(
            dynamodb.clone(),
            registry_table,
            tables_audit.clone(),
        )),
        catalog,
        window,
    ));
    Ok(UsageState {
        identity: identity_from_env(),
        // Reads only: the audit table is named for the type's sake.
        settings: Arc::new(DynamoSettingsStore::new(
            dynamodb,
            settings_table,
            tables_audit,
        )),
        usage: store.clone(),
        budgets: store.clone(),
        token_key,
        limits,
        audit: store,
        // Read-only here (a tenant's last24h): generate writes what providers report.
        rate_limits,
        registry,
    })
}

/// A Lambda function's `main`: installs the log subscriber (see
/// [`crate::logging::init_lambda`]), builds the function's state, and serves `router`
/// on it behind the layers every deployment shares. A start-up failure is logged and
/// returned, so the runtime reports the init error.
pub async fn serve<S>(
    state: impl Future<Output = Result<S, InitError>>,
    router: impl FnOnce(S) -> axum::Router,
) -> Result<(), lambda_http::Error> {
    crate::logging::init_lambda();
    let state = state.await.map_err(|e| {
        tracing::error!(error = %e, "start-up failed");
        e
    })?;
    let metrics = crate::metrics::lambda_metrics();
    lambda_http::run(crate::http::app_with_metrics(router(state), metrics)).await
}

/// The generate function's `main`: as [`serve`], in the response mode
/// `LAMBDA_RESPONSE_MODE` names (see [`crate::lambda_streaming`]). Streaming, each
/// invocation also waits for the generations it started before the next one.
pub async fn serve_generate() -> Result<(), lambda_http::Error> {
    use crate::lambda_streaming::{DrainTasks, ResponseMode};
    crate::logging::init_lambda();
    let started = async {
        let mode = ResponseMode::parse(optional("LAMBDA_RESPONSE_MODE").as_deref())
            .map_err(|e| InitError::Invalid("LAMBDA_RESPONSE_MODE", e))?;
        Ok::<_, InitError>((mode, generate_state_from_env().await?))
    };
    let (mode, api) = started.await.map_err(|e| {
        tracing::error!(error = %e, "start-up failed");
        e
    })?;
    let tasks = api.engine.lifecycle.tasks.clone();
    let metrics = crate::metrics::lambda_metrics();
    let app = crate::http::app_with_metrics(crate::http::generate_router(api), metrics);
    match mode {
        ResponseMode::Buffered => lambda_http::run(app).await,
        ResponseMode::Streaming => {
            lambda_http::streaming_runtime(app)
                .layer(DrainTasks { tasks })
                .run()
                .await
        }
    }
}
