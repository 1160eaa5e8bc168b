//! Generation: a user's request goes out with their own key to the chosen model,
//! survives a failing provider (bounded retries, then failover), stays inside the budget
//! (a worst-case reservation before the call, settled to the actual cost after), and
//! leaves exactly one usage record behind.

pub mod alerts;
pub mod breaker;
pub mod budget;
pub mod keys;
pub mod recorder;
pub mod request;
pub mod stream;

use crate::error::ApiError;
use crate::http::AppState;
use crate::money::NanoUsd;
use crate::pricing::{ModelPrice, TokenCounts};
use crate::provider::Provider;
use crate::providers::{ChatRequest, ErrorKind, Generation, ProviderError};
use crate::ratelimit::RateLimiter;
use crate::settings::{BudgetAction, Preferences, SettingsRecord};
use crate::store::{BudgetStore, ResponseCache, UsageStore};
use crate::usage::{Reservation, Settlement, UsageEntry, UsageStatus};
use breaker::{BreakerKey, Breakers};
use keys::KeyCache;
use recorder::Recorder;
use request::Generate;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A lease outlives the deadline by at least this: streams, which may run past the
/// deadline, are cut `stream::STREAM_LEASE_MARGIN` before their lease ends.
pub const MIN_LEASE_MARGIN: Duration = Duration::from_secs(5);

/// Operator settings of the generate path.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    /// Retries per provider of a retryable failure (so `1 + max_retries` attempts).
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// The whole request, every attempt included, answers within this
    /// (`LLM_REQUEST_DEADLINE_SECS`, default 28: API Gateway gives up at 30 s). Each
    /// attempt gets what is left of it, less a margin to record the outcome.
    pub deadline: Duration,
    /// How long a budget reservation holds without being settled: past it, the
    /// reservation stops counting (a process that died cannot block a user's month).
    pub lease: Duration,
    pub cache_ttl: Duration,
    pub retention_days: i64,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            max_retries: 2,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(2),
            deadline: Duration::from_secs(28),
            lease: Duration::from_secs(28 + 60),
            cache_ttl: Duration::from_secs(3600),
            retention_days: 90,
        }
    }
}

impl GenerateConfig {
    /// The defaults with `LLM_MAX_RETRIES`, `LLM_CACHE_TTL_SECS`,
    /// `USAGE_RETENTION_DAYS`, `LLM_REQUEST_DEADLINE_SECS` and
    /// `LLM_RESERVATION_LEASE_SECS` applied when set.
    pub fn from_env() -> Self {
        let mut c = GenerateConfig::default();
        let num = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let secs = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.5 && *s <= 900.0)
                .map(Duration::from_secs_f64)
        };
        if let Some(d) = secs("LLM_REQUEST_DEADLINE_SECS") {
            c.deadline = d;
        }
        // At least the deadline plus what a stream may run past it (a shorter lease could
        // release a reservation mid-request); at most the deadline plus a minute (SPEC).
        c.lease = secs("LLM_RESERVATION_LEASE_SECS")
            .unwrap_or(c.deadline + Duration::from_secs(60))
            .clamp(
                c.deadline + MIN_LEASE_MARGIN,
                c.deadline + Duration::from_secs(60),
            );
        if let Some(v) = num("LLM_MAX_RETRIES") {
            c.max_retries = u32::try_from(v.min(5)).unwrap_or(2);
        }
        if let Some(v) = num("LLM_CACHE_TTL_SECS") {
            c.cache_ttl = Duration::from_secs(v);
        }
        if let Some(v) = num("USAGE_RETENTION_DAYS") {
            c.retention_days = i64::try_from(v.clamp(1, 3650)).unwrap_or(90);
        }
        c
    }
}

/// What the generate router needs beyond the settings state.
#[derive(Clone)]
pub struct GenerateState {
    pub app: AppState,
    pub usage: Arc<dyn UsageStore>,
    pub budgets: Arc<dyn BudgetStore>,
    pub cache: Arc<dyn ResponseCache>,
    pub keys: Arc<KeyCache>,
    pub breakers: Arc<Breakers>,
    pub rpm: Arc<RateLimiter>,
    pub recorder: Recorder,
    pub config: GenerateConfig,
    pub lifecycle: Lifecycle,
}

/// Generations run on tasks of their own, so that a client leaving changes nothing about
/// what is called, recorded and settled. The tracker lets shutdown wait for them; the
/// token cuts their upstream calls short when shutdown cannot wait any longer (each
/// still records its outcome and settles its reservation).
#[derive(Clone, Default)]
pub struct Lifecycle {
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
}

impl axum::extract::FromRef<GenerateState> for AppState {
    fn from_ref(st: &GenerateState) -> AppState {
        st.app.clone()
    }
}

/// The per-user requests-per-minute limit: `LLM_REQUESTS_PER_MINUTE`, default 120.
pub fn rpm_limiter_from_env() -> Arc<RateLimiter> {
    let rpm = std::env::var("LLM_REQUESTS_PER_MINUTE")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(120);
    Arc::new(RateLimiter::new(rpm, Duration::from_secs(60)))
}

#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub provider: Provider,
    pub model: String,
    pub error: &'static str,
    pub latency_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct UsageView {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cached_input_tokens: u64,
    pub cost_usd: Option<NanoUsd>,
    pub latency_ms: f64,
    pub model: String,
    pub provider: Provider,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateResponse {
    pub content: String,
    pub provider: Provider,
    pub model: String,
    pub usage: UsageView,
    pub request_id: String,
    pub cached: bool,
    pub attempts: Vec<Attempt>,
}

/// The cached part of an answer.
#[derive(Debug, serde::Deserialize, Serialize)]
struct CachedAnswer {
    content: String,
    model: String,
}

pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// A request in flight: who, what, and everything known so far.
pub struct Call<'a> {
    pub st: &'a GenerateState,
    pub user_id: String,
    pub request_id: String,
    pub settings: SettingsRecord,
    pub req: Generate,
    pub started: Instant,
    /// When the request arrived: its usage entry's timestamp and its budget month, so the
    /// reservation, the settlement and the entry can never fall in different months.
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub attempts: Vec<Attempt>,
    /// `started + deadline`: the answer (and its usage entry) must be out by then.
    pub deadline_at: Instant,
    /// How many reservations this request has made: each gets its own id.
    reservations: u32,
}

/// One model to try, with its key and its reservation.
pub struct Candidate {
    pub model: ModelPrice,
    pub key: Option<crate::secret::ApiKey>,
    pub chat: ChatRequest,
    pub breaker: BreakerKey,
    pub reserved: NanoUsd,
    /// The id its settlement carries (also when nothing was reserved).
    pub reservation_id: String,
}

impl<'a> Call<'a> {
    /// Rate limit, settings, validation of the choice: everything before any provider.
    pub async fn begin(
        st: &'a GenerateState,
        user_id: &str,
        request_id: String,
        req: Generate,
    ) -> Result<Call<'a>, ApiError> {
        if let Err(wait) = st.rpm.check(user_id) {
            return Err(ApiError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        let started = Instant::now();
        let settings = crate::settings::service::read(st.app.settings.as_ref(), user_id).await?;
        Ok(Call {
            st,
            user_id: user_id.to_owned(),
            request_id,
            settings,
            req,
            started,
            started_at: chrono::Utc::now(),
            deadline_at: started + st.config.deadline,
            attempts: Vec::new(),
            reservations: 0,
        })
    }

    pub fn prefs(&self) -> &Preferences {
        &self.settings.preferences
    }

    /// The primary model, then one per fallback provider when failover is on.
    pub fn plan(&self) -> Result<Vec<ModelPrice>, ApiError> {
        let catalog = self.st.app.catalog;
        let primary = request::primary(catalog, self.prefs(), &self.req)?.clone();
        let mut plan = vec![primary];
        if self.prefs().auto_failover {
            for p in &self.prefs().fallback_providers {
                if plan.iter().any(|m| m.provider == *p) {
                    continue;
                }
                if let Some(m) =
                    request::model_for(catalog, self.prefs(), *p, &self.req.operation_type)
                {
                    plan.push(m.clone());
                }
            }
        }
        Ok(plan)
    }

    pub fn cache_key(&self, model: &ModelPrice, chat: &ChatRequest) -> Option<String> {
        let prefs = self.prefs();
        let wanted = match self.req.cache {
            Some(explicit) => explicit,
            None => self.req.temperature(prefs) == 0.0,
        };
        if !prefs.enable_caching || !wanted {
            return None;
        }
        let canonical = serde_json::json!({
            "user": self.user_id, "provider": model.provider, "model": model.id,
            "system": chat.system, "messages": chat.messages,
            "max_tokens": chat.max_tokens, "temperature": chat.temperature,
        });
        Some(hex::encode(Sha256::digest(
            canonical.to_string().as_bytes(),
        )))
    }

    fn month(&self) -> String {
        crate::usage::month_of(self.started_at)
    }

    /// Resolves a candidate's key and reserves its worst-case cost. `Ok(None)` when the
    /// candidate cannot be used (no key, circuit open, over budget), with an attempt noted.
    pub async fn prepare(
        &mut self,
        model: &ModelPrice,
        stream: bool,
    ) -> Result<Option<Candidate>, ApiError> {
        let provider = model.provider;
        let key = self
            .st
            .keys
            .get(&self.user_id, &self.settings, provider)
            .await?;
        if key.is_none() && provider.takes_key() && provider != Provider::Bedrock {
            self.note(model, "no_api_key", Duration::ZERO);
            return Ok(None);
        }
        let breaker = BreakerKey::new(provider, &self.user_id, key.as_ref());
        if !self.st.breakers.allows(breaker) {
            self.note(model, "circuit_open", Duration::ZERO);
            return Ok(None);
        }
        let mut chat = self.req.chat_request(model, self.prefs(), stream);
        if provider == Provider::AzureOpenAi {
            if let Some(deployment) = self.prefs().azure_deployments.get(&model.id) {
                chat.model = deployment.clone();
            }
        }
        // A reservation only matters where a limit can refuse the request; without one
        // the settlement alone (reserved 0, actual cost) keeps the month's spend, and the
        // hot path saves a write.
        let limit = match (self.prefs().monthly_budget_usd, self.prefs().budget_action) {
            (Some(limit), BudgetAction::Block | BudgetAction::Downgrade) => Some(limit),
            _ => None,
        };
        let mut reserved = NanoUsd::ZERO;
        let reservation_id = format!("{}#{}", self.request_id, self.reservations);
        self.reservations += 1;
        if limit.is_some() {
            let amount = budget::worst_case(model, &chat).unwrap_or(NanoUsd::ZERO);
            let now = chrono::Utc::now().timestamp();
            let lease = Reservation {
                id: reservation_id.clone(),
                month: self.month(),
                amount,
                expires_unix: now
                    + i64::try_from(self.st.config.lease.as_secs()).unwrap_or(i64::MAX / 2),
            };
            if !self
                .st
                .budgets
                .reserve(&self.user_id, &lease, limit, now)
                .await?
            {
                self.note(model, "budget_exceeded", Duration::ZERO);
                return Ok(None);
            }
            reserved = amount;
        }
        Ok(Some(Candidate {
            model: model.clone(),
            key,
            chat,
            breaker,
            reserved,
            reservation_id,
        }))
    }

    /// For `downgrade`: the cheapest model the user can reach that fits the budget.
    pub async fn downgrade(&mut self, stream: bool) -> Result<Option<Candidate>, ApiError> {
        let catalog = self.st.app.catalog;
        let mut options: Vec<(NanoUsd, &ModelPrice)> = catalog
            .models
            .iter()
            // Only providers the user has a key for: the downgrade must be reachable.
            .filter(|m| self.settings.keys.contains_key(&m.provider))
            .filter_map(|m| {
                let chat = self.req.chat_request(m, self.prefs(), stream);
                budget::worst_case(m, &chat).map(|c| (c, m))
            })
            .collect();
        options.sort_by_key(|(cost, m)| (*cost, m.id.clone()));
        if let Some((_, cheapest)) = options.first() {
            let cheapest = (*cheapest).clone();
            return self.prepare(&cheapest, stream).await;
        }
        Ok(None)
    }

    pub fn note(&mut self, model: &ModelPrice, error: &'static str, latency: Duration) {
        self.attempts.push(Attempt {
            provider: model.provider,
            model: model.id.clone(),
            error,
            latency_ms: ms(latency),
        });
    }

    fn backoff(&self, retry: u32, hint: Option<Duration>) -> Duration {
        let cfg = &self.st.config;
        let exp = cfg
            .backoff_base
            .saturating_mul(1 << retry.min(10))
            .min(cfg.backoff_cap);
        // Full jitter: a random point in [exp/2, exp], so retries of many clients spread out.
        let mut byte = [0u8; 1];
        let jitter = if getrandom::fill(&mut byte).is_ok() {
            f64::from(byte[0]) / 255.0
        } else {
            0.5
        };
        let wait = exp.mul_f64(0.5 + jitter / 2.0);
        hint.map_or(wait, |h| h.max(wait)).min(cfg.backoff_cap)
    }

    /// What an attempt starting now may use: the rest of the deadline less the margin
    /// that recording the outcome and answering need. `None`: no time for another.
    pub fn attempt_budget(&self) -> Option<Duration> {
        let margin = (self.st.config.deadline / 4).min(Duration::from_secs(1));
        self.deadline_at
            .checked_duration_since(Instant::now())
            .and_then(|left| left.checked_sub(margin))
            .filter(|d| *d >= Duration::from_millis(50))
    }

    /// Runs `op` against one candidate, retrying retryable failures within the deadline;
    /// every failure is noted as an attempt and told to the circuit breaker. Each
    /// attempt is cut at the deadline; a timed-out generation is never sent again to
    /// the same provider (it may have run, and been billed, upstream).
    pub async fn with_retries<T, F, Fut>(
        &mut self,
        c: &Candidate,
        mut op: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let st = self.st;
        let mut retry = 0;
        loop {
            let Some(budget) = self.attempt_budget() else {
                return Err(ProviderError::new(
                    ErrorKind::Timeout,
                    "the request deadline left no time for an attempt",
                ));
            };
            let attempt_started = Instant::now();
            // Set when the gateway itself cut the attempt (its deadline, shutdown): that
            // says nothing about the provider, so the breaker is not told.
            let mut cut_by_us = false;
            let mut shutting_down = false;
            let outcome = tokio::select! {
                r = tokio::time::timeout(budget, op()) => r.unwrap_or_else(|_| {
                    cut_by_us = true;
                    Err(ProviderError::new(ErrorKind::Timeout, "the request deadline was reached"))
                }),
                () = st.lifecycle.shutdown.cancelled() => {
                    (cut_by_us, shutting_down) = (true, true);
                    Err(ProviderError::new(ErrorKind::Timeout, "the gateway is shutting down"))
                }
            };
            match outcome {
                Ok(v) => {
                    st.breakers.success(c.breaker);
                    return Ok(v);
                }
                Err(e) => {
                    if !cut_by_us {
                        st.breakers.failure(c.breaker, e.kind);
                    }
                    self.note(&c.model, e.kind.as_str(), attempt_started.elapsed());
                    tracing::info!(request_id = %self.request_id, provider = %c.model.provider,
                        model = %c.model.id, kind = e.kind.as_str(), status = ?e.status, detail = %scrub(&e.detail, c),
                        "attempt failed");
                    let wait = self.backoff(retry, e.retry_after);
                    let in_time = self
                        .attempt_budget()
                        .is_some_and(|left| left > wait + Duration::from_millis(100));
                    if !e.kind.retryable()
                        || e.kind == ErrorKind::Timeout
                        || retry >= st.config.max_retries
                        || !in_time
                        || shutting_down
                    {
                        return Err(e);
                    }
                    retry += 1;
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// No time left for another candidate (or shutting down): stop failing over.
    pub fn out_of_time(&self) -> bool {
        self.attempt_budget().is_none() || self.st.lifecycle.shutdown.is_cancelled()
    }

    /// Sends to one candidate and reads the whole answer, with retries.
    pub async fn complete(&mut self, c: &Candidate) -> Result<Generation, ProviderError> {
        let st = self.st;
        let azure = self.prefs().azure_resource.clone();
        self.with_retries(c, || send_once(st, azure.as_deref(), c))
            .await
    }

    /// The usage entry of this request.
    pub fn entry(
        &self,
        model: &ModelPrice,
        tokens: TokenCounts,
        cost: Option<NanoUsd>,
        status: UsageStatus,
        error_type: Option<String>,
    ) -> UsageEntry {
        let now = self.started_at;
        UsageEntry {
            user_id: self.user_id.clone(),
            timestamp: crate::usage::timestamp(now),
            request_id: self.request_id.clone(),
            provider: model.provider,
            model: model.id.clone(),
            operation_type: self.req.operation_type.clone(),
            input_tokens: tokens.input_tokens,
            output_tokens: tokens.output_tokens,
            cached_input_tokens: tokens.cached_input_tokens,
            total_tokens: tokens.input_tokens + tokens.output_tokens,
            cost_usd: cost,
            latency_ms: ms(self.started.elapsed()),
            status,
            error_type,
            price_version: self.st.app.catalog.version.clone(),
            metadata: self.req.metadata.clone(),
            ttl: now.timestamp() + self.st.config.retention_days * 86_400,
        }
    }

    /// Records the request's one usage entry (carrying the settlement of the winning
    /// candidate's reservation), or only settles when usage tracking is off. Budget
    /// alerts are checked once the write has landed.
    pub async fn finish(
        &self,
        entry: UsageEntry,
        settlement: Option<Settlement>,
    ) -> Result<(), ApiError> {
        let rule = self
            .prefs()
            .monthly_budget_usd
            .map(|limit| recorder::AlertRule {
                limit,
                thresholds: self.prefs().alert_thresholds.clone(),
            });
        let job = if self.prefs().track_usage {
            recorder::Job::Record {
                entry: Box::new(entry),
                settlement,
                rule,
            }
        } else if let Some(s) = settlement {
            recorder::Job::Settle {
                user_id: self.user_id.clone(),
                settlement: s,
                rule,
            }
        } else {
            return Ok(());
        };
        self.st.recorder.submit(job).await
    }

    pub async fn release(&self, c: &Candidate) -> Result<(), ApiError> {
        if c.reserved > NanoUsd::ZERO {
            let settlement = self.settlement(c, NanoUsd::ZERO);
            self.st
                .recorder
                .submit(recorder::Job::Settle {
                    user_id: self.user_id.clone(),
                    settlement,
                    rule: None,
                })
                .await?;
        }
        Ok(())
    }

    pub fn settlement(&self, c: &Candidate, actual: NanoUsd) -> Settlement {
        Settlement {
            month: self.month(),
            reservation_id: c.reservation_id.clone(),
            reserved: c.reserved,
            actual,
        }
    }

    fn attempts_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.attempts).unwrap_or_default()
    }

    /// The client's answer when nothing worked, after its error usage entry.
    pub async fn fail(
        &self,
        last: Option<(&ModelPrice, ProviderError)>,
        plan: &[ModelPrice],
    ) -> ApiError {
        let (model, kind, retry_after) = match &last {
            Some((m, e)) => ((*m).clone(), Some(e.kind), e.retry_after),
            None => (plan[0].clone(), None, None),
        };
        let budget_only =
            last.is_none() && self.attempts.iter().all(|a| a.error == "budget_exceeded");
        let error_type = match kind {
            Some(k) => k.as_str().to_owned(),
            None if budget_only => "budget_exceeded".into(),
            None => self
                .attempts
                .last()
                .map(|a| a.error.to_owned())
                .unwrap_or_else(|| "no_provider".into()),
        };
        let entry = self.entry(
            &model,
            TokenCounts::default(),
            Some(NanoUsd::ZERO),
            UsageStatus::Error,
            Some(error_type.clone()),
        );
        if let Err(e) = self.finish(entry, None).await {
            tracing::error!(request_id = %self.request_id, error = %e, "error usage entry not written");
        }
        let attempts = self.attempts_json();
        match kind {
            None if budget_only => {
                ApiError::BudgetExceeded("the monthly budget does not allow this request".into())
            }
            None if self.attempts.iter().all(|a| a.error == "no_api_key") => ApiError::invalid(
                "provider",
                format!(
                    "no API key is saved for {}; save one with PUT /api/llm-settings/{{userId}}",
                    model.provider
                ),
            ),
            None => ApiError::Upstream {
                status: axum::http::StatusCode::BAD_GATEWAY,
                code: "provider_error",
                message: "no provider could take the request".into(),
                retry_after_secs: None,
                attempts,
            },
            Some(k @ (ErrorKind::InvalidRequest | ErrorKind::ContextLengthExceeded)) => {
                ApiError::invalid("messages", k.user_message())
            }
            Some(ErrorKind::Timeout) => ApiError::Upstream {
                status: axum::http::StatusCode::GATEWAY_TIMEOUT,
                code: "provider_timeout",
                message: ErrorKind::Timeout.user_message().into(),
                retry_after_secs: None,
                attempts,
            },
            Some(ErrorKind::RateLimited) => ApiError::Upstream {
                status: axum::http::StatusCode::TOO_MANY_REQUESTS,
                code: "rate_limited",
                message: ErrorKind::RateLimited.user_message().into(),
                retry_after_secs: Some(retry_after.map_or(1, |d| d.as_secs().max(1))),
                attempts,
            },
            Some(k) => ApiError::Upstream {
                status: axum::http::StatusCode::BAD_GATEWAY,
                code: "provider_error",
                message: k.user_message().into(),
                retry_after_secs: None,
                attempts,
            },
        }
    }
}

async fn send_once(
    st: &GenerateState,
    azure: Option<&str>,
    c: &Candidate,
) -> Result<Generation, ProviderError> {
    let providers = &st.app.providers;
    if c.model.provider == Provider::Bedrock {
        return providers.bedrock.converse(c.key.as_ref(), &c.chat).await;
    }
    let wire = crate::providers::registry::wire(c.model.provider)
        .ok_or_else(|| ProviderError::new(ErrorKind::InvalidRequest, "no adapter"))?;
    let endpoint = providers.endpoint(c.model.provider, azure)?;
    let request = wire.chat_request(&endpoint, c.key.as_ref(), &c.chat)?;
    let raw = providers.transport.send(request).await?;
    wire.parse_chat(raw.status, &raw.headers, &raw.body)
}

/// What a request that ran out of time (or was cut by shutdown) before an attempt could
/// start failed with: answered `504 provider_timeout`, like a hung upstream.
pub(crate) fn out_of_time() -> ProviderError {
    ProviderError::new(
        ErrorKind::Timeout,
        "the request deadline left no time for an attempt",
    )
}

/// Provider text may quote what it was sent; never let the key through to a log.
pub(crate) fn scrub(detail: &str, c: &Candidate) -> String {
    c.key
        .as_ref()
        .map_or_else(|| detail.to_owned(), |k| k.scrub(detail))
}

/// The whole non-streaming request on a task of its own: if the client leaves (the
/// handler's future is dropped), the generation still runs to its end, records its
/// usage entry and settles its reservation.
pub async fn generate_detached(
    st: &GenerateState,
    user_id: &str,
    request_id: String,
    req: Generate,
) -> Result<GenerateResponse, ApiError> {
    let id = request_id.clone();
    let (task_st, user_id) = (st.clone(), user_id.to_owned());
    let handle = st.lifecycle.spawn(&id, async move {
        generate(&task_st, &user_id, request_id, req).await
    });
    handle.await.unwrap_or_else(|e| {
        tracing::error!(request_id = %id, error = %e, "generation task failed");
        Err(ApiError::internal("generation task failed"))
    })
}

impl Lifecycle {
    /// Spawns a request's task on the tracker, inside the request-id scope so that its
    /// errors and logs carry the id.
    pub fn spawn<F, T>(&self, request_id: &str, task: F) -> tokio::task::JoinHandle<T>
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.tasks
            .spawn(crate::error::REQUEST_ID.scope(request_id.to_owned(), task))
    }
}

/// The whole non-streaming request.
pub async fn generate(
    st: &GenerateState,
    user_id: &str,
    request_id: String,
    req: Generate,
) -> Result<GenerateResponse, ApiError> {
    let mut call = Call::begin(st, user_id, request_id, req).await?;
    let plan = call.plan()?;

    // The cache answers for the primary choice only: a hit costs nothing.
    let primary_chat = call.req.chat_request(&plan[0], call.prefs(), false);
    let cache_key = call.cache_key(&plan[0], &primary_chat);
    if let Some(key) = &cache_key {
        if let Some(hit) = st
            .cache
            .get_cached(key, chrono::Utc::now().timestamp())
            .await?
        {
            if let Ok(answer) = serde_json::from_str::<CachedAnswer>(&hit) {
                let entry = call.entry(
                    &plan[0],
                    TokenCounts::default(),
                    Some(NanoUsd::ZERO),
                    UsageStatus::Cached,
                    None,
                );
                call.finish(entry, None).await?;
                return Ok(GenerateResponse {
                    content: answer.content,
                    provider: plan[0].provider,
                    model: answer.model.clone(),
                    usage: UsageView {
                        input_tokens: 0,
                        output_tokens: 0,
                        total_tokens: 0,
                        cached_input_tokens: 0,
                        cost_usd: Some(NanoUsd::ZERO),
                        latency_ms: ms(call.started.elapsed()),
                        model: answer.model,
                        provider: plan[0].provider,
                    },
                    request_id: call.request_id.clone(),
                    cached: true,
                    attempts: Vec::new(),
                });
            }
        }
    }

    let mut last: Option<(ModelPrice, ProviderError)> = None;
    for (i, model) in plan.iter().enumerate() {
        if call.out_of_time() {
            last.get_or_insert_with(|| (model.clone(), out_of_time()));
            break;
        }
        let mut candidate = call.prepare(model, false).await?;
        if candidate.is_none()
            && i == 0
            && call.prefs().budget_action == BudgetAction::Downgrade
            && call
                .attempts
                .last()
                .is_some_and(|a| a.error == "budget_exceeded")
        {
            candidate = call.downgrade(false).await?;
        }
        let Some(c) = candidate else { continue };
        match call.complete(&c).await {
            Ok(g) => {
                let cost = st
                    .app
                    .catalog
                    .cost(c.model.provider, &c.model.id, &g.tokens);
                let settlement = call.settlement(&c, cost.unwrap_or(NanoUsd::ZERO));
                let entry = call.entry(&c.model, g.tokens, cost, UsageStatus::Success, None);
                call.finish(entry, Some(settlement)).await?;
                if let Some(key) = &cache_key {
                    if c.model.id == plan[0].id && c.model.provider == plan[0].provider {
                        let value =
                            serde_json::json!({"content": g.content, "model": g.model}).to_string();
                        let expires = chrono::Utc::now().timestamp()
                            + i64::try_from(st.config.cache_ttl.as_secs()).unwrap_or(3600);
                        if let Err(e) = st.cache.put_cached(key, &value, expires).await {
                            tracing::warn!(error = %e, "cache write failed");
                        }
                    }
                }
                let failed: Vec<Attempt> = call.attempts.clone();
                return Ok(GenerateResponse {
                    content: g.content,
                    provider: c.model.provider,
                    model: c.model.id.clone(),
                    usage: UsageView {
                        input_tokens: g.tokens.input_tokens,
                        output_tokens: g.tokens.output_tokens,
                        total_tokens: g.tokens.input_tokens + g.tokens.output_tokens,
                        cached_input_tokens: g.tokens.cached_input_tokens,
                        cost_usd: cost,
                        latency_ms: ms(call.started.elapsed()),
                        model: c.model.id.clone(),
                        provider: c.model.provider,
                    },
                    request_id: call.request_id.clone(),
                    cached: false,
                    attempts: failed,
                });
            }
            Err(e) => {
                call.release(&c).await?;
                let client_fault = matches!(
                    e.kind,
                    ErrorKind::InvalidRequest | ErrorKind::ContextLengthExceeded
                );
                last = Some((c.model.clone(), e));
                if client_fault {
                    break; // the same request would be refused by any provider
                }
            }
        }
    }
    Err(call
        .fail(last.as_ref().map(|(m, e)| (m, e.clone())), &plan)
        .await)
}
