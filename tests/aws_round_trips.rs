//! DynamoDB round trips and capacity units per `generate` request on the AWS shape,
//! measured with an SDK interceptor on the DynamoDB client, against ministack on
//! loopback (`make test-aws`). The generate state is wired as `aws::generate_state_from_env`
//! wires it (settings behind a window cache, the usage writer behind the spend window,
//! reservations straight to the table); the model is Bedrock, answered by the emulator.
//!
//! Target (issue 10): at most 2 round trips on the request path of a warm request with a
//! budget on: the reservation's conditional write and the usage transaction. Provider
//! health (issue 11) then adds its two best-effort counter writes, sent together.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod aws_support;

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
    BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};
use aws_support::{config, settings_table, usage_tables};
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use shared::generate::alerts::Alerts;
use shared::generate::breaker::Breakers;
use shared::generate::keys::KeyCache;
use shared::generate::recorder::{Recorder, Writer};
use shared::generate::{GenerateConfig, GenerateState, rpm_limiter_from_env};
use shared::http::{AppState, GenerateApi, app, generate_router};
use shared::identity::{IdentityMode, issue_token};
use shared::money::NanoUsd;
use shared::settings::{BudgetAction, SettingsRecord};
use shared::store::dynamodb::DynamoSettingsStore;
use shared::store::sqlite::SqliteStore;
use shared::store::warm::settings::SettingsCache;
use shared::store::warm::spend::SpendWindow;
use shared::store::{DynamoUsageStore, SettingsStore};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

/// Every DynamoDB HTTP attempt (SDK retries included) by operation, and the capacity
/// DynamoDB reports for each (asked for on every request by the interceptor).
#[derive(Debug, Default)]
struct Tally {
    calls: BTreeMap<String, u32>,
    write_units: f64,
    read_units: f64,
    /// Units of each call, in order.
    per_call: Vec<f64>,
}

#[derive(Debug, Default, Clone)]
struct Counter(Arc<Mutex<Tally>>);

impl Counter {
    fn take(&self) -> Tally {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    fn add_capacity(&self, c: &ConsumedCapacity, write: bool) {
        let mut t = self.0.lock().unwrap();
        let units = c.capacity_units().unwrap_or(0.0);
        t.per_call.push(units);
        if write {
            t.write_units += units;
        } else {
            t.read_units += units;
        }
    }
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "round-trip counter"
    }

    fn modify_before_serialization(
        &self,
        ctx: &mut BeforeSerializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_dynamodb::operation::{
            get_item::GetItemInput, put_item::PutItemInput, query::QueryInput,
            transact_write_items::TransactWriteItemsInput, update_item::UpdateItemInput,
        };
        let input = ctx.input_mut();
        if let Some(i) = input.downcast_mut::<TransactWriteItemsInput>() {
            i.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
        } else if let Some(i) = input.downcast_mut::<GetItemInput>() {
            i.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
        } else if let Some(i) = input.downcast_mut::<PutItemInput>() {
            i.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
        } else if let Some(i) = input.downcast_mut::<UpdateItemInput>() {
            i.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
        } else if let Some(i) = input.downcast_mut::<QueryInput>() {
            i.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = ctx
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("?")
            .to_owned();
        *self.0.lock().unwrap().calls.entry(op).or_default() += 1;
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_dynamodb::operation::{
            get_item::GetItemOutput, put_item::PutItemOutput, query::QueryOutput,
            transact_write_items::TransactWriteItemsOutput, update_item::UpdateItemOutput,
        };
        let Ok(out) = ctx.output_or_error() else {
            return Ok(());
        };
        if let Some(o) = out.downcast_ref::<TransactWriteItemsOutput>() {
            for c in o.consumed_capacity() {
                self.add_capacity(c, true);
            }
        } else if let Some((c, is_write)) = None
            .or_else(|| {
                tag(
                    true,
                    out.downcast_ref::<PutItemOutput>()?.consumed_capacity(),
                )
            })
            .or_else(|| {
                tag(
                    true,
                    out.downcast_ref::<UpdateItemOutput>()?.consumed_capacity(),
                )
            })
            .or_else(|| {
                tag(
                    false,
                    out.downcast_ref::<GetItemOutput>()?.consumed_capacity(),
                )
            })
            .or_else(|| {
                tag(
                    false,
                    out.downcast_ref::<QueryOutput>()?.consumed_capacity(),
                )
            })
        {
            self.add_capacity(c, is_write);
        }
        Ok(())
    }
}

fn tag(write: bool, c: Option<&ConsumedCapacity>) -> Option<(&ConsumedCapacity, bool)> {
    c.map(|c| (c, write))
}

const USER: &str = "round-trips";

async fn generate(router: &axum::Router, token: &str) -> serde_json::Value {
    let body = serde_json::json!({
        "prompt": "Show me failed login attempts", "provider": "bedrock",
        "model": "anthropic.claude-3-5-sonnet-20241022-v2:0", "maxTokens": 64, "cache": false,
    });
    let req = Request::post(format!("/api/llm-generate/{USER}"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

/// The generate router on `store` and `settings`, wired as
/// `aws::generate_state_from_env` wires it with a cache window of `window` (zero: every
/// read goes to the table, as before the warm path). Identity is local tokens here (the
/// JWT authorizer is API Gateway's); tokens are not in DynamoDB either way.
async fn router(
    sdk: &aws_config::SdkConfig,
    store: Arc<DynamoUsageStore>,
    settings: Arc<DynamoSettingsStore>,
    admin: &AdminTables,
    window: std::time::Duration,
) -> (axum::Router, String) {
    let tokens = Arc::new(SqliteStore::open_in_memory().unwrap());
    let token = issue_token(tokens.as_ref(), USER, false).await.unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(sdk);
    let vault = Arc::new(
        shared::vault::secrets_manager::SecretsManagerVault::new(secrets, "rt/", None, 0).unwrap(),
    );
    let app_state = AppState {
        settings: Arc::new(SettingsCache::window(settings, window)),
        vault: vault.clone(),
        catalog: shared::pricing::catalog().unwrap(),
        identity: IdentityMode::LocalTokens(tokens),
        providers: Arc::new(shared::providers::Providers::from_env(sdk.clone()).unwrap()),
        test_limiter: AppState::default_test_limiter(),
        key_changes: Default::default(),
        registry: Arc::new(
            shared::registry::RegistryCache::load(
                admin.registry.clone(),
                shared::pricing::catalog().unwrap(),
                window,
            )
            .await
            .unwrap(),
        ),
        operator_keys: Arc::new(shared::vault::operator::EnvOperatorKeys),
        limits: Arc::new(shared::store::warm::limits::LimitsCache::new(
            admin.limits.clone(),
            window,
        )),
    };
    let written = Arc::new(SpendWindow::new(store.clone(), store.clone(), window));
    let writer = Arc::new(Writer {
        usage: written.clone(),
        budgets: written,
        alerts: Arc::new(Alerts::new(store.clone(), Vec::new())),
        journal: None,
    });
    let state = GenerateState {
        keys: Arc::new(KeyCache::new(vault, std::time::Duration::from_secs(300))),
        settings: app_state.settings.clone(),
        catalog: app_state.catalog,
        providers: app_state.providers.clone(),
        budgets: store.clone(),
        cache: store,
        breakers: Arc::new(Breakers::new(5, std::time::Duration::from_secs(30))),
        rpm: rpm_limiter_from_env(),
        recorder: Recorder::Inline(writer),
        config: GenerateConfig::default(),
        lifecycle: Default::default(),
        registry: app_state.registry.clone(),
        limits: app_state.limits.clone(),
        counters: admin.counters.clone(),
        operator_keys: app_state.operator_keys.clone(),
        rate_limits: Arc::new(shared::store::warm::ratelimits::MemoryRateLimits::default()),
        metrics: shared::metrics::Metrics::off(),
    };
    let api = GenerateApi {
        engine: state,
        identity: app_state.identity,
    };
    (app(generate_router(api)), token)
}

/// The registry and limits the generate function reads, through the counted client.
struct AdminTables {
    registry: Arc<dyn shared::store::RegistryStore>,
    limits: Arc<dyn shared::store::LimitsStore>,
    counters: Arc<dyn shared::store::RateCounters>,
}

/// One request to warm the caches, then `n` measured ones.
async fn measure(
    router: &axum::Router,
    token: &str,
    counter: &Counter,
    n: usize,
) -> (Tally, Vec<Tally>) {
    counter.take();
    generate(router, token).await;
    let cold = counter.take();
    let mut warm = Vec::new();
    for _ in 0..n {
        let v = generate(router, token).await;
        assert!(v["usage"]["cost_usd"].as_f64().unwrap() > 0.0, "{v}");
        warm.push(counter.take());
    }
    (cold, warm)
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn a_warm_generate_with_a_budget_makes_two_dynamodb_round_trips() {
    let sdk = config().await;
    let plain = aws_sdk_dynamodb::Client::new(&sdk);
    let settings_name = settings_table(&plain).await;
    let counter = Counter::default();
    let counted = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::from(&sdk)
            .to_builder()
            .interceptor(counter.clone())
            .build(),
    );
    let (usage, cache, audit) = usage_tables(&plain).await;
    let store = Arc::new(DynamoUsageStore::new(
        counted.clone(),
        usage,
        cache,
        audit.clone(),
    ));
    let settings = Arc::new(DynamoSettingsStore::new(
        counted.clone(),
        settings_name.clone(),
        audit.clone(),
    ));
    let registry_name = aws_support::registry_table(&plain).await;
    let registry = Arc::new(shared::store::dynamodb::DynamoRegistryStore::new(
        counted.clone(),
        registry_name,
        audit.clone(),
    ));
    let seeds = shared::registry::seed::seed_entries(shared::pricing::catalog().unwrap());
    shared::store::RegistryStore::seed_llms(registry.as_ref(), &seeds)
        .await
        .unwrap();
    let admin = AdminTables {
        registry,
        limits: Arc::new(shared::store::dynamodb::DynamoLimitsStore::new(
            counted.clone(),
            settings_name,
            audit,
        )),
        counters: Arc::new(shared::store::dynamodb::DynamoRateCounters::new(
            counted,
            store.usage_table().to_owned(),
        )),
    };

    let mut record = SettingsRecord {
        version: 1,
        ..Default::default()
    };
    let prefs = &mut record.preferences;
    prefs.default_provider = shared::provider::Provider::Bedrock;
    prefs.track_usage = true;
    prefs.enable_caching = false;
    prefs.monthly_budget_usd = Some(NanoUsd(1_000_000_000_000));
    prefs.budget_action = BudgetAction::Block;
    settings.put_settings(USER, &record, 0, &[]).await.unwrap();

    // Before the warm path: every read goes to the table.
    let (cold_router, token) = router(
        &sdk,
        store.clone(),
        settings.clone(),
        &admin,
        std::time::Duration::ZERO,
    )
    .await;
    let (_, uncached) = measure(&cold_router, &token, &counter, 3).await;
    for t in &uncached {
        println!("ROUND_TRIPS without the warm path: {t:?}");
    }

    // The deployed window is DEFAULT_WINDOW (5 s): each instance then also reads the
    // settings item and the month's counters once per window and user. A minute here
    // keeps a slow run from crossing a refresh mid-measurement.
    let (warm_router, token) = router(
        &sdk,
        store.clone(),
        settings,
        &admin,
        std::time::Duration::from_secs(60),
    )
    .await;
    let (cold, warm) = measure(&warm_router, &token, &counter, 5).await;
    println!("ROUND_TRIPS first request (cold caches): {cold:?}");
    for (i, t) in warm.iter().enumerate() {
        println!("ROUND_TRIPS warm request {i}: {t:?}");
    }
    for t in &warm {
        let total: u32 = t.calls.values().sum();
        assert_eq!(
            t.calls.get("TransactWriteItems"),
            Some(&2),
            "the reservation and the usage transaction: {t:?}"
        );
        // Provider health: one best-effort ADD per granularity after the usage
        // transaction, sent together (one round trip of latency), outside it.
        assert_eq!(
            t.calls.get("UpdateItem"),
            Some(&2),
            "the minute and hour health counters: {t:?}"
        );
        assert!(
            total <= 4,
            "2 sequential round trips per warm request, then the 2 concurrent health writes: {t:?}"
        );
    }
    let m = shared::store::BudgetStore::month(
        store.as_ref(),
        USER,
        &shared::usage::month_of(chrono::Utc::now()),
        chrono::Utc::now().timestamp(),
    )
    .await
    .unwrap();
    assert_eq!(m.reserved, NanoUsd(0), "every reservation settled");
    assert!(m.spent.0 > 0);
}
