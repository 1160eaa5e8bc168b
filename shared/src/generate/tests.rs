//! The engine in-process, against a scripted provider backend and the embedded store:
//! failover, retries, budgets, streams and their failures, without a socket.

use super::breaker::Breakers;
use super::keys::KeyCache;
use super::recorder::{Recorder, Writer};
use super::request::GenerateBody;
use super::stream::{self, Event};
use super::*;
use crate::money::NanoUsd;
use crate::pricing::TokenCounts;
use crate::provider::Provider;
use crate::providers::{
    ChatRequest, ErrorKind, EventStream, Generation, ProviderError, Route, StreamEvent,
};
use crate::secret::ApiKey;
use crate::settings::{BudgetAction, KeyMeta, SettingsRecord};
use crate::store::sqlite::SqliteStore;
use crate::store::{BudgetStore, SettingsStore, UsageStore};
use crate::usage::UsageStatus;
use crate::vault::{KeyVault, KeyVersion, Remaining, VaultError};
use async_trait::async_trait;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// What the fake provider does on its next call.
#[derive(Clone)]
enum Step {
    Answer(&'static str),
    Fail(ErrorKind),
    Hang,
    /// Streams these deltas, then breaks off (`true`) or ends with usage (`false`).
    Stream(Vec<&'static str>, bool),
    /// Streams this text from a head saying no requests remain for this long.
    StreamExhausted(&'static str, Duration),
}

#[derive(Default)]
struct Script {
    steps: Mutex<HashMap<Provider, VecDeque<Step>>>,
    /// (provider, model, whether a key came along) per call.
    calls: Mutex<Vec<(Provider, String, bool)>>,
}

impl Script {
    fn then(&self, provider: Provider, step: Step) -> &Self {
        let mut steps = self.steps.lock().unwrap();
        steps.entry(provider).or_default().push_back(step);
        self
    }

    fn next(&self, route: &Route<'_>, chat: &ChatRequest) -> Step {
        let mut calls = self.calls.lock().unwrap();
        calls.push((route.provider, chat.model.clone(), route.key.is_some()));
        let mut steps = self.steps.lock().unwrap();
        steps
            .get_mut(&route.provider)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Step::Fail(ErrorKind::ServerError))
    }

    fn calls(&self) -> Vec<(Provider, String, bool)> {
        self.calls.lock().unwrap().clone()
    }
}

const TOKENS: TokenCounts = TokenCounts {
    input_tokens: 1000,
    output_tokens: 500,
    cached_input_tokens: 0,
    cache_write_tokens: 0,
};

struct Scripted(
    VecDeque<Result<Option<Vec<StreamEvent>>, ProviderError>>,
    Option<crate::store::RateLimitState>,
);

#[async_trait]
impl EventStream for Scripted {
    async fn next_events(&mut self) -> Result<Option<Vec<StreamEvent>>, ProviderError> {
        self.0.pop_front().unwrap_or(Ok(None))
    }

    fn rate_limit(&self) -> Option<&crate::store::RateLimitState> {
        self.1.as_ref()
    }
}

#[async_trait]
impl ProviderApi for Script {
    async fn complete(
        &self,
        route: &Route<'_>,
        chat: &ChatRequest,
    ) -> Result<Generation, ProviderError> {
        match self.next(route, chat) {
            Step::Answer(text) => Ok(Generation {
                content: text.into(),
                model: chat.model.clone(),
                tokens: TOKENS,
                finish_reason: Some(crate::providers::FinishReason::Stop),
                tool_calls: Vec::new(),
                logprobs: None,
                rate_limit: None,
            }),
            Step::Fail(kind) => Err(ProviderError::new(kind, "scripted")),
            Step::Hang => std::future::pending().await,
            Step::Stream(..) | Step::StreamExhausted(..) => {
                Err(ProviderError::new(ErrorKind::ServerError, "a stream"))
            }
        }
    }

    async fn open_stream(
        &self,
        route: &Route<'_>,
        chat: &ChatRequest,
    ) -> Result<Box<dyn EventStream>, ProviderError> {
        match self.next(route, chat) {
            Step::Stream(deltas, breaks) => {
                let mut events: VecDeque<_> = deltas
                    .into_iter()
                    .map(|d| Ok(Some(vec![StreamEvent::Delta(d.into())])))
                    .collect();
                if breaks {
                    events.push_back(Err(ProviderError::new(ErrorKind::Network, "cut")));
                } else {
                    events.push_back(Ok(Some(vec![
                        StreamEvent::Usage(TOKENS),
                        StreamEvent::Done {
                            finish_reason: None,
                        },
                    ])));
                }
                Ok(Box::new(Scripted(events, None)))
            }
            Step::StreamExhausted(text, reset) => {
                let events = VecDeque::from([Ok(Some(vec![
                    StreamEvent::Delta(text.into()),
                    StreamEvent::Usage(TOKENS),
                    StreamEvent::Done {
                        finish_reason: None,
                    },
                ]))]);
                let state = crate::store::RateLimitState {
                    requests_remaining: Some(0),
                    requests_reset: Some(
                        chrono::Utc::now() + chrono::TimeDelta::from_std(reset).unwrap(),
                    ),
                    ..Default::default()
                };
                Ok(Box::new(Scripted(events, Some(state))))
            }
            Step::Fail(kind) => Err(ProviderError::new(kind, "scripted")),
            Step::Hang => std::future::pending().await,
            Step::Answer(_) => Err(ProviderError::new(ErrorKind::ServerError, "whole")),
        }
    }

    async fn probe(&self, _route: &Route<'_>, _model: &str) -> Result<(), ProviderError> {
        Ok(())
    }

    fn missing_preference(&self, _route: &Route<'_>) -> Option<&'static str> {
        None
    }
}

/// Keys in memory, every version readable.
#[derive(Default)]
struct MapVault(Mutex<HashMap<(String, Provider), ApiKey>>);

#[async_trait]
impl KeyVault for MapVault {
    async fn put_key(
        &self,
        user_id: &str,
        provider: Provider,
        _version: &KeyVersion,
        key: &ApiKey,
    ) -> Result<(), VaultError> {
        let mut keys = self.0.lock().unwrap();
        keys.insert((user_id.into(), provider), key.clone());
        Ok(())
    }

    async fn get_key(
        &self,
        user_id: &str,
        provider: Provider,
        _version: Option<&KeyVersion>,
    ) -> Result<Option<ApiKey>, VaultError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .get(&(user_id.into(), provider))
            .cloned())
    }

    async fn delete_key(
        &self,
        _user_id: &str,
        _provider: Provider,
        _version: Option<&KeyVersion>,
        _remaining: Remaining,
    ) -> Result<(), VaultError> {
        Ok(())
    }
}

struct Engine {
    st: GenerateState,
    script: Arc<Script>,
    db: Arc<SqliteStore>,
}

const USER: &str = "u1";

/// An engine whose user has keys for `providers` (the first is the default), failover
/// to the others, and `budget` as a blocking monthly limit.
async fn engine(providers: &[Provider], budget: Option<NanoUsd>) -> Engine {
    engine_with(providers, budget, false).await
}

/// [`engine`], with the response cache on or off.
async fn engine_with(providers: &[Provider], budget: Option<NanoUsd>, caching: bool) -> Engine {
    let db = Arc::new(SqliteStore::open_in_memory().unwrap());
    let vault = Arc::new(MapVault::default());
    let mut record = SettingsRecord::default();
    for p in providers {
        let key = ApiKey::new(format!("sk-test-key-for-{p}-0123456789abcdef"));
        let version = KeyVersion::fresh();
        vault.put_key(USER, *p, &version, &key).await.unwrap();
        record.keys.insert(
            *p,
            KeyMeta {
                hint: key.hint(),
                updated_at: chrono::Utc::now(),
                version: Some(version),
            },
        );
    }
    let prefs = &mut record.preferences;
    prefs.default_provider = providers[0];
    prefs.fallback_providers = providers[1..].to_vec();
    prefs.auto_failover = true;
    prefs.enable_caching = caching;
    prefs.monthly_budget_usd = budget;
    prefs.budget_action = BudgetAction::Block;
    db.put_settings(USER, &record, 0, &[]).await.unwrap();
    let script = Arc::new(Script::default());
    let writer = Arc::new(Writer {
        usage: db.clone(),
        budgets: db.clone(),
        alerts: Arc::new(alerts::Alerts::new(db.clone(), Vec::new())),
        journal: None,
    });
    let config = GenerateConfig {
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(5),
        deadline: Duration::from_secs(2),
        lease: Duration::from_secs(10),
        ..GenerateConfig::default()
    };
    let st = GenerateState {
        settings: db.clone(),
        catalog: crate::pricing::catalog().unwrap(),
        providers: script.clone(),
        budgets: db.clone(),
        cache: db.clone(),
        keys: Arc::new(KeyCache::new(vault, Duration::from_secs(60))),
        breakers: Arc::new(Breakers::new(100, Duration::from_secs(30))),
        rpm: Arc::new(crate::ratelimit::RateLimiter::new(
            1000,
            Duration::from_secs(60),
        )),
        recorder: Recorder::Inline(writer),
        config,
        lifecycle: Lifecycle::default(),
        registry: Arc::new(
            crate::registry::RegistryCache::load(
                db.clone(),
                crate::pricing::catalog().unwrap(),
                Duration::from_secs(3600),
            )
            .await
            .unwrap(),
        ),
        limits: db.clone(),
        counters: Arc::new(crate::store::warm::counters::MemoryCounters::default()),
        operator_keys: Arc::new(crate::vault::operator::EnvOperatorKeys),
        rate_limits: Arc::new(crate::store::warm::ratelimits::MemoryRateLimits::default()),
        metrics: crate::metrics::Metrics::off(),
    };
    Engine { st, script, db }
}

fn prompt(extra: &str) -> request::Generate {
    let body: GenerateBody =
        serde_json::from_str(&format!(r#"{{"prompt": "hello"{extra}}}"#)).unwrap();
    let view = crate::registry::RegistryView::build(
        crate::registry::seed::seed_entries(crate::pricing::catalog().unwrap()),
        crate::pricing::catalog().unwrap(),
        false,
    );
    body.validate(&view).unwrap()
}

impl Engine {
    async fn entries(&self) -> Vec<crate::usage::UsageEntry> {
        let (entries, _) = self.db.entries(USER, "0", "9", 100, None).await.unwrap();
        entries
    }

    async fn spent(&self) -> NanoUsd {
        let month = crate::usage::month_of(chrono::Utc::now());
        let now = chrono::Utc::now().timestamp();
        let m = self.db.month(USER, &month, now).await.unwrap();
        assert_eq!(m.reserved, NanoUsd::ZERO, "a reservation was left held");
        m.spent
    }
}

#[tokio::test]
async fn a_failing_provider_is_retried_then_failed_over_with_every_attempt_told() {
    let e = engine(&[Provider::OpenAi, Provider::Anthropic], None).await;
    e.script
        .then(Provider::OpenAi, Step::Fail(ErrorKind::ServerError))
        .then(Provider::OpenAi, Step::Fail(ErrorKind::ServerError))
        .then(Provider::OpenAi, Step::Fail(ErrorKind::ServerError))
        .then(Provider::Anthropic, Step::Answer("from claude"));
    let r = generate(&e.st, USER, "req-1".into(), prompt(""))
        .await
        .unwrap();
    assert_eq!(r.content, "from claude");
    assert_eq!(r.provider, Provider::Anthropic);
    // 1 + max_retries (2) tries of OpenAI, then Anthropic; every call carried a key.
    let calls = e.script.calls();
    assert_eq!(calls.len(), 4);
    assert!(calls.iter().all(|(_, _, keyed)| *keyed));
    assert_eq!(r.attempts.len(), 3);
    assert!(r.attempts.iter().all(|a| a.provider == Provider::OpenAi
        && a.error == AttemptError::Provider(ErrorKind::ServerError)));
    let entries = e.entries().await;
    assert_eq!(entries.len(), 1, "exactly one usage entry");
    assert_eq!(entries[0].status, UsageStatus::Success);
    assert_eq!(entries[0].provider, Provider::Anthropic);
    let cost = r.usage.cost_usd.unwrap();
    assert!(cost > NanoUsd::ZERO);
    assert_eq!(e.spent().await, cost);
}

#[tokio::test]
async fn a_request_the_provider_refuses_is_not_failed_over() {
    let e = engine(&[Provider::OpenAi, Provider::Anthropic], None).await;
    e.script
        .then(Provider::OpenAi, Step::Fail(ErrorKind::InvalidRequest));
    let err = generate(&e.st, USER, "req-1".into(), prompt(""))
        .await
        .unwrap_err();
    assert!(matches!(err, GenerateError::Invalid { ref field, .. } if field == "messages"));
    assert_eq!(e.script.calls().len(), 1);
    let entries = e.entries().await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].status, UsageStatus::Error);
    assert_eq!(entries[0].error_type.as_deref(), Some("invalid_request"));
}

#[tokio::test]
async fn a_hung_provider_times_out_once_and_is_never_resent() {
    let e = engine(&[Provider::OpenAi], None).await;
    e.script.then(Provider::OpenAi, Step::Hang);
    let err = generate(&e.st, USER, "req-1".into(), prompt(""))
        .await
        .unwrap_err();
    let GenerateError::Upstream {
        failure, attempts, ..
    } = err
    else {
        panic!("expected an upstream failure, got {err:?}");
    };
    assert_eq!(failure, UpstreamFailure::Timeout);
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        e.script.calls().len(),
        1,
        "a timed-out call is not sent again"
    );
}

#[tokio::test]
async fn without_a_key_nothing_is_called() {
    let e = engine(&[Provider::OpenAi], None).await;
    let err = generate(
        &e.st,
        USER,
        "req-1".into(),
        prompt(r#", "provider": "anthropic""#),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, GenerateError::NoKey(Provider::Anthropic)),
        "{err:?}"
    );
    assert!(e.script.calls().is_empty());
}

#[tokio::test]
async fn a_budget_that_cannot_cover_the_worst_case_refuses_before_any_call() {
    let e = engine(&[Provider::OpenAi], Some(NanoUsd(1))).await;
    let err = generate(&e.st, USER, "req-1".into(), prompt(""))
        .await
        .unwrap_err();
    assert!(matches!(err, GenerateError::BudgetExceeded), "{err:?}");
    assert!(e.script.calls().is_empty());
    assert_eq!(e.spent().await, NanoUsd::ZERO);
}

async fn collect(mut rx: tokio::sync::mpsc::Receiver<Event>) -> (String, Option<Event>) {
    let mut text = String::new();
    while let Some(event) = rx.recv().await {
        match event {
            Event::Delta(d) => text.push_str(&d),
            // Before the first delta: what the candidate dropped (nothing here).
            Event::Opened { dropped } => assert!(dropped.is_empty()),
            last => return (text, Some(last)),
        }
    }
    (text, None)
}

#[tokio::test]
async fn a_stream_fails_over_before_its_first_byte_and_settles_its_cost() {
    let e = engine(&[Provider::OpenAi, Provider::Anthropic], None).await;
    e.script
        .then(Provider::OpenAi, Step::Fail(ErrorKind::InvalidKey))
        .then(Provider::Anthropic, Step::Stream(vec!["he", "llo"], false));
    let rx = stream::start(e.st.clone(), USER.into(), "req-1".into(), prompt(""));
    let (text, last) = collect(rx).await;
    assert_eq!(text, "hello");
    let Some(Event::Done(done)) = last else {
        panic!("expected the final event");
    };
    assert_eq!(done.provider, Provider::Anthropic);
    assert_eq!(done.usage.input_tokens, 1000);
    assert_eq!(done.attempts.len(), 1);
    e.st.lifecycle.tasks.close();
    e.st.lifecycle.tasks.wait().await;
    let entries = e.entries().await;
    assert_eq!(entries.len(), 1);
    assert_eq!(e.spent().await, done.usage.cost_usd.unwrap());
}

#[tokio::test]
async fn a_stream_head_saying_no_requests_remain_skips_that_key_until_its_reset() {
    let e = engine(&[Provider::OpenAi, Provider::Anthropic], None).await;
    let reset = Duration::from_millis(300);
    e.script
        .then(Provider::OpenAi, Step::StreamExhausted("first", reset))
        .then(Provider::Anthropic, Step::Stream(vec!["second"], false))
        .then(Provider::OpenAi, Step::Stream(vec!["third"], false));
    let told = std::time::Instant::now();
    let mut done = Vec::new();
    for i in 0..3 {
        if i == 2 {
            tokio::time::sleep((reset + Duration::from_millis(20)).saturating_sub(told.elapsed()))
                .await;
        }
        let rx = stream::start(e.st.clone(), USER.into(), format!("req-{i}"), prompt(""));
        let (text, last) = collect(rx).await;
        let Some(Event::Done(d)) = last else {
            panic!("expected the final event");
        };
        done.push((text, d.provider, d.attempts));
    }
    assert_eq!((done[0].0.as_str(), done[0].1), ("first", Provider::OpenAi));
    assert_eq!(
        (done[1].0.as_str(), done[1].1),
        ("second", Provider::Anthropic)
    );
    let skipped = &done[1].2;
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].provider, Provider::OpenAi);
    assert_eq!(
        skipped[0].error,
        AttemptError::Provider(ErrorKind::RateLimited)
    );
    assert_eq!(skipped[0].latency_ms, 0.0);
    assert_eq!((done[2].0.as_str(), done[2].1), ("third", Provider::OpenAi));
    assert!(done[2].2.is_empty());
    let calls: Vec<_> = e.script.calls().into_iter().map(|c| c.0).collect();
    assert_eq!(
        calls,
        [Provider::OpenAi, Provider::Anthropic, Provider::OpenAi],
        "openai was not called while exhausted"
    );
}

#[tokio::test]
async fn every_candidate_rate_limited_is_rate_limited_until_the_first_reset() {
    let e = engine(&[Provider::OpenAi, Provider::Anthropic], None).await;
    let now = chrono::Utc::now();
    for (p, secs) in [(Provider::OpenAi, 30), (Provider::Anthropic, 9)] {
        let key = ApiKey::new(format!("sk-test-key-for-{p}-0123456789abcdef"));
        let key_ref = crate::store::KeyRef {
            owner: USER.into(),
            provider: p,
            fingerprint: crate::store::ratelimits::fingerprint(Some(&key)),
        };
        let state = crate::store::RateLimitState {
            blocked_until: Some(now + chrono::TimeDelta::seconds(secs)),
            ..Default::default()
        };
        e.st.rate_limits
            .observe(&key_ref, &state, now)
            .await
            .unwrap();
    }
    let err = generate(&e.st, USER, "req-1".into(), prompt(""))
        .await
        .unwrap_err();
    let GenerateError::Upstream {
        failure, attempts, ..
    } = err
    else {
        panic!("expected an upstream failure, got {err:?}");
    };
    assert_eq!(
        failure,
        UpstreamFailure::RateLimited {
            retry_after_secs: 9
        }
    );
    assert_eq!(attempts.len(), 2);
    assert!(e.script.calls().is_empty(), "nothing called");
    let entries = e.entries().await;
    assert_eq!(entries[0].error_type.as_deref(), Some("rate_limited"));
}

#[tokio::test]
async fn a_stream_that_breaks_ends_in_an_error_event_with_its_attempts() {
    let e = engine(&[Provider::OpenAi], None).await;
    e.script
        .then(Provider::OpenAi, Step::Stream(vec!["par"], true));
    let rx = stream::start(e.st.clone(), USER.into(), "req-1".into(), prompt(""));
    let (text, last) = collect(rx).await;
    assert_eq!(text, "par");
    let Some(Event::Failed(GenerateError::Upstream {
        failure, attempts, ..
    })) = last
    else {
        panic!("expected a failure event");
    };
    assert_eq!(failure, UpstreamFailure::StreamBroke);
    assert_eq!(
        attempts[0].error,
        AttemptError::Provider(ErrorKind::Network)
    );
    e.st.lifecycle.tasks.close();
    e.st.lifecycle.tasks.wait().await;
    let entries = e.entries().await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].status, UsageStatus::Error);
    assert_eq!(e.spent().await, NanoUsd::ZERO);
}

/// The embedded store, except that settling a reservation without a usage entry fails.
struct SettleFails(Arc<SqliteStore>);

#[async_trait]
impl BudgetStore for SettleFails {
    async fn reserve(
        &self,
        user_id: &str,
        r: &crate::usage::Reservation,
        limit: Option<NanoUsd>,
        now_unix: i64,
    ) -> Result<bool, crate::store::StoreError> {
        self.0.reserve(user_id, r, limit, now_unix).await
    }
    async fn reserve_joint(
        &self,
        holders: &[(&str, Option<NanoUsd>)],
        r: &crate::usage::Reservation,
        now_unix: i64,
    ) -> Result<bool, crate::store::StoreError> {
        self.0.reserve_joint(holders, r, now_unix).await
    }
    async fn settle(
        &self,
        _user_id: &str,
        _settlement: &crate::usage::Settlement,
    ) -> Result<(), crate::store::StoreError> {
        Err(crate::store::StoreError::Backend("injected".into()))
    }
    async fn month(
        &self,
        user_id: &str,
        month: &str,
        now_unix: i64,
    ) -> Result<crate::usage::MonthCounters, crate::store::StoreError> {
        self.0.month(user_id, month, now_unix).await
    }
    async fn release_expired(
        &self,
        user_id: &str,
        month: &str,
        now_unix: i64,
    ) -> Result<u64, crate::store::StoreError> {
        self.0.release_expired(user_id, month, now_unix).await
    }
    async fn mark_alerted(
        &self,
        user_id: &str,
        month: &str,
        threshold: u32,
    ) -> Result<bool, crate::store::StoreError> {
        self.0.mark_alerted(user_id, month, threshold).await
    }
    async fn alerted(
        &self,
        user_id: &str,
        month: &str,
    ) -> Result<Vec<u32>, crate::store::StoreError> {
        self.0.alerted(user_id, month).await
    }
}

#[tokio::test]
async fn a_release_that_cannot_be_written_still_fails_over_to_an_answer() {
    let mut e = engine(
        &[Provider::OpenAi, Provider::Anthropic],
        Some(NanoUsd(1_000_000_000)),
    )
    .await;
    e.st.recorder = Recorder::Inline(Arc::new(Writer {
        usage: e.db.clone(),
        budgets: Arc::new(SettleFails(e.db.clone())),
        alerts: Arc::new(alerts::Alerts::new(e.db.clone(), Vec::new())),
        journal: None,
    }));
    e.script
        .then(Provider::OpenAi, Step::Fail(ErrorKind::InvalidKey))
        .then(Provider::Anthropic, Step::Answer("still answered"));
    let r = generate(&e.st, USER, "req-1".into(), prompt(""))
        .await
        .unwrap();
    assert_eq!(r.content, "still answered");
    let entries = e.entries().await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].status, UsageStatus::Success);
}

#[tokio::test]
async fn a_seed_the_primary_cannot_honour_is_refused_before_any_call() {
    let e = engine(&[Provider::Anthropic], None).await;
    let err = generate(
        &e.st,
        USER,
        "req-1".into(),
        prompt(r#", "provider": "anthropic", "seed": 7"#),
    )
    .await
    .unwrap_err();
    match &err {
        GenerateError::UnsupportedParameter {
            param, provider, ..
        } => {
            assert_eq!((*param, *provider), ("seed", Provider::Anthropic));
        }
        other => panic!("{other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("seed") && message.contains("anthropic"),
        "{message}"
    );
    assert!(e.script.calls().is_empty());
}

#[tokio::test]
async fn with_dropping_allowed_the_seed_is_dropped_and_named() {
    let e = engine(&[Provider::Anthropic], None).await;
    e.script.then(Provider::Anthropic, Step::Answer("ok"));
    let mut req = prompt(r#", "provider": "anthropic", "seed": 7, "topP": 0.5"#);
    req.drop_params = true;
    let r = generate(&e.st, USER, "req-1".into(), req).await.unwrap();
    assert_eq!(r.content, "ok");
    assert_eq!(r.dropped_params, ["seed"]);
}

#[tokio::test]
async fn a_fallback_that_cannot_honour_a_parameter_is_skipped_unless_dropping() {
    let e = engine(&[Provider::OpenAi, Provider::Anthropic], None).await;
    for _ in 0..3 {
        e.script
            .then(Provider::OpenAi, Step::Fail(ErrorKind::ServerError));
    }
    let err = generate(&e.st, USER, "req-1".into(), prompt(r#", "seed": 7"#))
        .await
        .unwrap_err();
    let GenerateError::Upstream { attempts, .. } = err else {
        panic!("{err:?}");
    };
    assert!(attempts.iter().any(
        |a| a.provider == Provider::Anthropic && a.error == AttemptError::UnsupportedParameter
    ));
    assert!(
        e.script
            .calls()
            .iter()
            .all(|(p, _, _)| *p == Provider::OpenAi)
    );
}

#[tokio::test]
async fn requests_differing_only_in_seed_or_stop_do_not_share_a_cache_entry() {
    let e = engine_with(&[Provider::OpenAi], None, true).await;
    for text in ["one", "two", "three"] {
        e.script.then(Provider::OpenAi, Step::Answer(text));
    }
    let ask = |extra: &'static str| generate(&e.st, USER, "req-1".into(), prompt(extra));
    let base = r#", "temperature": 0, "seed": 1, "stop": ["END"]"#;
    assert_eq!(ask(base).await.unwrap().content, "one");
    let again = ask(base).await.unwrap();
    assert!(again.cached, "the same request is a hit");
    let seed = ask(r#", "temperature": 0, "seed": 2, "stop": ["END"]"#)
        .await
        .unwrap();
    assert!(!seed.cached);
    assert_eq!(seed.content, "two");
    let stop = ask(r##", "temperature": 0, "seed": 1, "stop": "END""##)
        .await
        .unwrap();
    assert!(stop.cached, "a single string is the same stop list");
    let stop = ask(r#", "temperature": 0, "seed": 1, "stop": ["FIN"]"#)
        .await
        .unwrap();
    assert!(!stop.cached);
    assert_eq!(stop.content, "three");
}
