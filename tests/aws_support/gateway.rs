//! The settings and generate routers on the AWS backends, wired as `shared::aws` wires
//! the Lambdas (settings behind the warm window, the usage writer behind the spend
//! window, reservations straight to the table, keys in Secrets Manager behind the key
//! cache), with every SDK call going through a [`FaultProxy`] in front of ministack and
//! OpenAI answered by a wiremock upstream. Tables are fresh per gateway; what the tests
//! assert is read straight from the emulator, around the proxy.

use super::fault_proxy::FaultProxy;
use super::{config, registry_table, settings_table, usage_tables};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use shared::generate::alerts::Alerts;
use shared::generate::breaker::Breakers;
use shared::generate::keys::KeyCache;
use shared::generate::recorder::{Recorder, Writer};
use shared::generate::{GenerateConfig, GenerateState, rpm_limiter_from_env};
use shared::http::{AppState, GenerateApi, app, generate_router, settings_router};
use shared::identity::{IdentityMode, issue_token};
use shared::money::NanoUsd;
use shared::providers::Providers;
use shared::providers::endpoints::ProviderUrls;
use shared::store::dynamodb::{
    DynamoLimitsStore, DynamoRateCounters, DynamoRateLimits, DynamoRegistryStore,
    DynamoSettingsStore,
};
use shared::store::sqlite::SqliteStore;
use shared::store::warm::limits::LimitsCache;
use shared::store::warm::ratelimits::{READ_WINDOW, RateLimitWindow};
use shared::store::warm::settings::{DEFAULT_WINDOW, SettingsCache};
use shared::store::warm::spend::SpendWindow;
use shared::store::{BudgetStore, DynamoUsageStore, MonthCounters, UsageEntry, UsageStore};
use shared::vault::secrets_manager::SecretsManagerVault;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const MODEL: &str = "gpt-4o-mini";
/// The user's OpenAI key: no response, log line or error may ever contain it.
pub const OPENAI_KEY: &str = "sk-faults-0123456789abcdefghijklmnopqrstuvwxyzKEY9";
/// What the upstream reports per answer: 20 input and 50 output tokens of gpt-4o-mini at
/// $0.15 / $0.60 per 1M tokens cost exactly 33,000 nano-USD.
pub const COST: NanoUsd = NanoUsd(33_000);
pub const MAX_TOKENS: u32 = 64;

pub struct Gateway {
    pub user: String,
    pub token: String,
    settings: axum::Router,
    /// The generate router as llm-local serves it (in process, on these backends).
    pub generate: axum::Router,
    /// The usage store on a client straight to the emulator: what the tests read.
    pub direct: DynamoUsageStore,
    pub upstream: MockServer,
    /// What a `generate` Lambda needs in its environment to serve this gateway's user:
    /// the tables and the secret prefix (as infra/lambda.tf sets them).
    pub lambda_env: Vec<(&'static str, String)>,
}

/// What each gateway is built with.
pub struct Options {
    /// How long generate keeps a user's key from Secrets Manager (300 s in the Lambda).
    pub key_ttl: Duration,
    pub config: GenerateConfig,
    /// OpenAI's base URL (with `/v1`) instead of the gateway's wiremock upstream.
    pub openai_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            key_ttl: Duration::from_secs(300),
            config: GenerateConfig::default(),
            openai_url: None,
        }
    }
}

/// One HTTP answer: status, the `Retry-After` header and the body as text and JSON.
pub struct Reply {
    pub status: StatusCode,
    pub retry_after: Option<String>,
    pub text: String,
    pub json: serde_json::Value,
}

impl Gateway {
    /// A gateway whose every AWS call goes through `proxy`, in front of the emulator of
    /// `AWS_ENDPOINT_URL`.
    pub async fn start(proxy: &FaultProxy, options: Options) -> Gateway {
        let emulator = std::env::var("AWS_ENDPOINT_URL").unwrap();
        Gateway::start_on(&emulator, proxy, options).await
    }

    /// A gateway on the emulator at `emulator` (its tables made there), through `proxy`.
    pub async fn start_on(emulator: &str, proxy: &FaultProxy, options: Options) -> Gateway {
        let sdk = config().await;
        let plain = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .endpoint_url(emulator)
                .build(),
        );
        let settings_name = settings_table(&plain).await;
        let (usage, cache, audit) = usage_tables(&plain).await;
        let registry_name = registry_table(&plain).await;
        let direct = DynamoUsageStore::new(plain.clone(), &usage, &cache, &audit);
        let seeds = shared::registry::seed::seed_entries(shared::pricing::catalog().unwrap());
        let seeder = DynamoRegistryStore::new(plain, registry_name.clone(), audit.clone());
        shared::store::RegistryStore::seed_llms(&seeder, &seeds)
            .await
            .unwrap();

        // The endpoint is set on each service's config: AWS_ENDPOINT_URL (the emulator,
        // in the environment) would win over one set on the shared SdkConfig. Each
        // gateway is a Lambda of its own: its own retry partition, so the retry quota
        // that one test's persistent throttling drains is not another test's.
        let partition = format!("faults-{}", uuid::Uuid::new_v4().simple());
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .endpoint_url(proxy.url())
                .retry_partition(aws_sdk_dynamodb::config::retry::RetryPartition::new(
                    format!("{partition}-dynamodb"),
                ))
                .build(),
        );
        let secrets = aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(&sdk)
                .endpoint_url(proxy.url())
                .retry_partition(aws_sdk_secretsmanager::config::retry::RetryPartition::new(
                    format!("{partition}-secretsmanager"),
                ))
                .build(),
        );
        let prefix = format!("faults-{}/", uuid::Uuid::new_v4().simple());
        let lambda_env = vec![
            ("SETTINGS_TABLE", settings_name.clone()),
            ("USAGE_TABLE", usage.clone()),
            ("CACHE_TABLE", cache.clone()),
            ("AUDIT_TABLE", audit.clone()),
            ("REGISTRY_TABLE", registry_name.clone()),
            ("SECRET_PREFIX", prefix.clone()),
        ];
        let vault = Arc::new(SecretsManagerVault::new(secrets.clone(), prefix, None, 0).unwrap());
        let upstream = MockServer::start().await;
        let mut providers = Providers::from_env(sdk.clone()).unwrap();
        providers.urls = ProviderUrls::from_vars(std::iter::once((
            "LLM_PROVIDER_URL_OPENAI".to_owned(),
            options
                .openai_url
                .clone()
                .unwrap_or_else(|| format!("{}/v1", upstream.uri())),
        )))
        .unwrap();
        let catalog = shared::pricing::catalog().unwrap();
        let user = format!("faults-{}", uuid::Uuid::new_v4().simple());
        let tokens = Arc::new(SqliteStore::open_in_memory().unwrap());
        let token = issue_token(tokens.as_ref(), &user, false).await.unwrap();
        let registry = Arc::new(
            shared::registry::RegistryCache::load(
                Arc::new(DynamoRegistryStore::new(
                    dynamodb.clone(),
                    registry_name,
                    audit.clone(),
                )),
                catalog,
                DEFAULT_WINDOW,
            )
            .await
            .unwrap(),
        );
        let limits = Arc::new(LimitsCache::new(
            Arc::new(DynamoLimitsStore::new(
                dynamodb.clone(),
                settings_name.clone(),
                audit.clone(),
            )),
            DEFAULT_WINDOW,
        ));
        let app_state = AppState {
            settings: Arc::new(DynamoSettingsStore::new(
                dynamodb.clone(),
                settings_name,
                audit.clone(),
            )),
            vault: vault.clone(),
            catalog,
            identity: IdentityMode::LocalTokens(tokens),
            providers: Arc::new(providers),
            test_limiter: AppState::default_test_limiter(),
            key_changes: Default::default(),
            registry,
            operator_keys: Arc::new(shared::vault::operator::SecretsOperatorKeys::new(
                secrets,
                "operator/llm/".to_owned(),
            )),
            limits,
        };
        let settings = app(settings_router(app_state.clone()));

        let store = Arc::new(DynamoUsageStore::new(
            dynamodb.clone(),
            &usage,
            cache,
            audit,
        ));
        let written = Arc::new(SpendWindow::new(
            store.clone(),
            store.clone(),
            DEFAULT_WINDOW,
        ));
        let writer = Arc::new(Writer {
            usage: written.clone(),
            budgets: written,
            alerts: Arc::new(Alerts::new(store.clone(), Vec::new())),
            journal: None,
        });
        let keys = Arc::new(KeyCache::new(vault, options.key_ttl));
        app_state.key_changes.subscribe(keys.clone());
        let engine = GenerateState {
            keys,
            settings: Arc::new(SettingsCache::window(
                app_state.settings.clone(),
                DEFAULT_WINDOW,
            )),
            catalog,
            providers: app_state.providers.clone(),
            budgets: store.clone(),
            cache: store,
            breakers: Arc::new(Breakers::new(5, Duration::from_secs(30))),
            rpm: rpm_limiter_from_env(),
            recorder: Recorder::Inline(writer),
            config: options.config,
            lifecycle: Default::default(),
            registry: app_state.registry.clone(),
            limits: app_state.limits.clone(),
            counters: Arc::new(DynamoRateCounters::new(dynamodb.clone(), usage.clone())),
            operator_keys: app_state.operator_keys.clone(),
            rate_limits: Arc::new(RateLimitWindow::new(
                Arc::new(DynamoRateLimits::new(dynamodb, usage)),
                READ_WINDOW,
            )),
            metrics: shared::metrics::Metrics::off(),
        };
        let generate = app(generate_router(GenerateApi {
            engine,
            identity: app_state.identity,
        }));
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "id": "chatcmpl-faults", "object": "chat.completion", "created": 1_700_000_000,
                "model": MODEL,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "an answer"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 50, "total_tokens": 70}})))
            .mount(&upstream)
            .await;
        Gateway {
            user,
            token,
            settings,
            generate,
            direct,
            upstream,
            lambda_env,
        }
    }

    /// Saves the user's OpenAI key and preferences (`budget_usd`: the monthly budget,
    /// blocking) through the settings router: the key goes to Secrets Manager.
    pub async fn save_settings(&self, budget_usd: Option<&str>, track_usage: bool) -> Reply {
        let budget: serde_json::Value = match budget_usd {
            Some(b) => serde_json::from_str(b).unwrap(),
            None => serde_json::Value::Null,
        };
        let body = serde_json::json!({
            "preferences": {"defaultProvider": "openai", "queryModel": MODEL,
                            "monthlyBudgetUsd": budget, "budgetAction": "block",
                            "enableCaching": false, "trackUsage": track_usage,
                            "autoFailover": false},
            "apiKeys": {"openai": OPENAI_KEY},
        });
        let path = format!("/api/llm-settings/{}", self.user);
        self.call(&self.settings, "PUT", &path, body).await
    }

    /// The user's settings as `GET /api/llm-settings/{userId}` shows them.
    pub async fn settings(&self) -> Reply {
        let path = format!("/api/llm-settings/{}", self.user);
        self.call(&self.settings, "GET", &path, serde_json::Value::Null)
            .await
    }

    /// One generation of the user's, answered by the upstream.
    pub async fn generate(&self) -> Reply {
        let body = serde_json::json!({"prompt": "Show me failed login attempts",
                                      "provider": "openai", "model": MODEL,
                                      "maxTokens": MAX_TOKENS, "cache": false});
        let path = format!("/api/llm-generate/{}", self.user);
        self.call(&self.generate, "POST", &path, body).await
    }

    async fn call(
        &self,
        router: &axum::Router,
        verb: &str,
        path: &str,
        body: serde_json::Value,
    ) -> Reply {
        let req = Request::builder()
            .method(verb)
            .uri(path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", self.token))
            .body(if body.is_null() {
                Body::empty()
            } else {
                Body::from(body.to_string())
            })
            .unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Reply {
            status,
            retry_after,
            text,
            json,
        }
    }

    /// How many calls the provider upstream received.
    pub async fn upstream_calls(&self) -> usize {
        self.upstream
            .received_requests()
            .await
            .map_or(0, |r| r.len())
    }

    /// Every usage entry of the user's today, read straight from the emulator.
    pub async fn entries(&self) -> Vec<UsageEntry> {
        let (entries, more) = self
            .direct
            .entries(&self.user, "", "9999", 10_000, None)
            .await
            .unwrap();
        assert!(more.is_none());
        entries
    }

    /// The month's budget counters (spent, reserved), read straight from the emulator.
    pub async fn month(&self) -> MonthCounters {
        let now = chrono::Utc::now();
        self.direct
            .month(&self.user, &shared::usage::month_of(now), now.timestamp())
            .await
            .unwrap()
    }

    /// How many requests today's rollup counts for the user (every group holds `all`).
    pub async fn rolled_up_requests(&self) -> u64 {
        let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
        let rollups = self.direct.rollups(&self.user, &day, &day).await.unwrap();
        rollups
            .iter()
            .map(|r| r.groups.get("all").map_or(0, |t| t.requests))
            .sum()
    }
}

impl Reply {
    /// The error envelope's code.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}
