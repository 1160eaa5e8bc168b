//! A request in flight: its settings, its plan of candidate models, and each step of
//! trying one (key, circuit, budget reservation, retries within the deadline), up to
//! the one usage entry it leaves behind.

use super::GenerateState;
use super::breaker::BreakerKey;
use super::budget;
use super::error::{Attempt, AttemptError, GenerateError, UpstreamFailure};
use super::recorder;
use super::request::{self, Generate};
use super::response::{Answered, GenerateResponse, ms};
use crate::metrics::Refusal;
use crate::money::NanoUsd;
use crate::pricing::{ModelPrice, TokenCounts};
use crate::providers::params;
use crate::providers::{
    ChatRequest, ErrorKind, Generation, ProviderError, ReportsLimits, Route, key_required,
};
use crate::registry::{RegistryView, Resolved};
use crate::settings::{BudgetAction, Preferences, SettingsRecord};
use crate::store::KeyRef;
use crate::store::ratelimits::fingerprint;
use crate::usage::{KeySource, Reservation, Settlement, UsageEntry, UsageStatus};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument as _;

/// The least time a usage write is given, even past the deadline (the `generate`
/// Lambda's timeout is 2 s after the default deadline).
const MIN_RECORD_BUDGET: Duration = Duration::from_secs(1);

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
    /// The registry as it was when the request arrived: one request routes on one view.
    pub view: Arc<RegistryView>,
    /// The earliest reset of the candidates skipped as rate limited: when every one was,
    /// the client is told to come back then.
    rate_limited_until: Option<chrono::DateTime<chrono::Utc>>,
    /// The caller's tenant, whose keys serve where the member has none.
    pub tenant: Option<Tenant>,
    /// The request's fingerprint, once known ([`Call::note_prompt`]): recorded on its
    /// usage entry as `metadata.prompt_hash`.
    prompt_hash: Option<String>,
}

/// The usage-entry metadata key of a request's fingerprint.
pub const PROMPT_HASH: &str = "prompt_hash";

/// 16 hex digits of a SHA-256 over the cache material's digest (what the cache key is),
/// domain-separated so that it is not a prefix of the cache key itself: equal for equal
/// requests, and nothing of the prompt can be read back from it.
pub fn prompt_hash(material_digest: &[u8]) -> String {
    let digest = Sha256::digest([b"prompt_hash\0".as_slice(), material_digest].concat());
    hex::encode(&digest[..8])
}

/// The tenant side of a member's request.
pub struct Tenant {
    pub id: String,
    /// The owner id its settings, keys and budget are stored under (`tenant/<id>`).
    pub owner: String,
    pub settings: SettingsRecord,
}

/// One model to try, with its key and its reservation.
pub struct Candidate {
    pub llm: Arc<Resolved>,
    pub model: ModelPrice,
    /// Whose key the call uses.
    pub key_source: KeySource,
    pub key: Option<crate::secret::ApiKey>,
    /// Who owns that key, for its rate-limit state: the user id for the user's own key,
    /// `operator` for the operator's, `tenant/<id>` for a tenant's.
    pub key_owner: String,
    /// [`crate::store::ratelimits::fingerprint`] of the key: never the key itself.
    pub fingerprint: String,
    pub chat: ChatRequest,
    /// Parameters left out of `chat` because its provider cannot honour them.
    pub dropped: Vec<&'static str>,
    pub breaker: BreakerKey,
    pub reserved: NanoUsd,
    /// The id its settlement carries (also when nothing was reserved).
    pub reservation_id: String,
    azure: AzureRouting,
}

/// A candidate's Azure resource and deployments (other providers carry none).
type AzureRouting = Option<(Option<String>, std::collections::BTreeMap<String, String>)>;

impl Candidate {
    /// The key's name in the rate-limit book.
    pub fn key_ref(&self) -> KeyRef {
        KeyRef {
            owner: self.key_owner.clone(),
            provider: self.model.provider,
            fingerprint: self.fingerprint.clone(),
        }
    }

    /// Where this candidate's calls go, as whom.
    pub fn route(&self) -> Route<'_> {
        let mut route = Route::new(self.model.provider, self.key.as_ref());
        if let Some((resource, deployments)) = &self.azure {
            route.azure_resource = resource.as_deref();
            route.azure_deployments = Some(deployments);
        }
        route
    }
}

impl<'a> Call<'a> {
    /// Rate limit, settings, validation of the choice: everything before any provider.
    pub async fn begin(
        st: &'a GenerateState,
        user_id: &str,
        request_id: String,
        req: Generate,
    ) -> Result<Call<'a>, GenerateError> {
        if let Err(wait) = st.rpm.check(user_id) {
            st.metrics.refused(Refusal::RateLimit);
            return Err(GenerateError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        let started = Instant::now();
        let mut settings = st.settings.settings_or_default(user_id).await?;
        let limits = st.limits.get_limits(user_id).await?;
        if let Some(rpm) = limits.as_ref().and_then(|l| l.requests_per_minute) {
            let now = chrono::Utc::now().timestamp();
            let window = now - now.rem_euclid(60);
            if !st.counters.hit(user_id, window, 60, rpm).await? {
                st.metrics.refused(Refusal::RateLimit);
                return Err(GenerateError::RateLimited {
                    retry_after_secs: u64::try_from(window + 60 - now).unwrap_or(1).max(1),
                });
            }
        }
        let tenant = match &req.tenant {
            Some(id) => {
                let owner = crate::identity::tenant_owner(id);
                let record = st.settings.settings_or_default(&owner).await?;
                settings.preferences = crate::settings::inherit::effective(&settings, &record);
                Some(Tenant {
                    id: id.clone(),
                    owner,
                    settings: record,
                })
            }
            None => None,
        };
        crate::store::capped(&mut settings.preferences, limits.as_ref());
        let view = st.registry.view().await;
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
            view,
            rate_limited_until: None,
            prompt_hash: None,
            tenant,
        })
    }

    pub fn prefs(&self) -> &Preferences {
        &self.settings.preferences
    }

    /// Whether a refused reservation moves to a cheaper model: the member's budget
    /// action, or their tenant's (whichever budget refused, a cheaper model helps both).
    pub fn downgrades(&self) -> bool {
        self.prefs().budget_action == BudgetAction::Downgrade
            || self
                .tenant
                .as_ref()
                .is_some_and(|t| t.settings.preferences.budget_action == BudgetAction::Downgrade)
    }

    fn scope(&self) -> Option<&str> {
        self.tenant.as_ref().map(|t| t.id.as_str())
    }

    /// Whether the member, or their tenant, saved a key for `provider`.
    fn has_key(&self, provider: crate::provider::Provider) -> bool {
        self.settings.keys.contains_key(&provider)
            || self
                .tenant
                .as_ref()
                .is_some_and(|t| t.settings.keys.contains_key(&provider))
    }

    /// The primary entry, then, with failover on, one per fallback provider the user
    /// named, or (naming none, for a request that does not name its model) every other
    /// enabled registry entry the user can reach, in priority order: the registry's
    /// failover chain.
    pub fn plan(&self) -> Result<Vec<Arc<Resolved>>, GenerateError> {
        let view = self.view.as_ref();
        let prefs = self.prefs();
        let reachable =
            |r: &Resolved| self.has_key(r.entry.provider) || r.entry.auth_meta.is_some();
        let primary = request::primary(view, prefs, &self.req, &reachable)?.clone();
        let mut plan = vec![primary];
        if !prefs.auto_failover {
            return Ok(plan);
        }
        if prefs.fallback_providers.is_empty() {
            // A request that names its model (`llmId`, `model`, `provider`) gets that
            // model: the registry's chain is for requests that leave the choice to it.
            let pinned = self.req.llm_id.is_some()
                || self.req.model.is_some()
                || self.req.provider.is_some();
            if pinned {
                return Ok(plan);
            }
            for r in view.usable(self.scope()) {
                if reachable(r) && !plan.iter().any(|p| p.entry.id == r.entry.id) {
                    plan.push(r.clone());
                }
            }
            return Ok(plan);
        }
        for p in &prefs.fallback_providers {
            if plan.iter().any(|m| m.model.provider == *p) {
                continue;
            }
            if let Some(m) =
                request::model_for(view, prefs, *p, &self.req.operation_type, self.scope())
            {
                plan.push(m.clone());
            }
        }
        Ok(plan)
    }

    /// Whether a parameter the provider cannot honour may be dropped: the caller's
    /// `x-gateway-drop-params: true`, or the operator's `LLM_UNSUPPORTED_PARAMS=drop`.
    fn drops_params(&self) -> bool {
        self.req.drop_params || self.st.config.drop_unsupported_params
    }

    /// Fits `chat` to `provider`: drops what it cannot honour when dropping is allowed
    /// (returning the names dropped), else refuses naming the first such parameter.
    pub fn params_for(
        &self,
        llm: &Resolved,
        chat: &mut ChatRequest,
    ) -> Result<Vec<&'static str>, GenerateError> {
        let provider = llm.model.provider;
        let capabilities = &llm.entry.capabilities;
        if self.drops_params() {
            let dropped = params::drop_unhonoured(provider, capabilities, chat);
            return Ok(dropped.into_iter().map(params::Param::name).collect());
        }
        match params::unhonoured(provider, capabilities, chat).first() {
            None => Ok(Vec::new()),
            Some(p) => Err(GenerateError::UnsupportedParameter {
                param: p.name(),
                provider,
                model: llm.model.id.clone(),
            }),
        }
    }

    /// The response cache's key, from the digest [`Call::note_prompt`] returned: the
    /// request is serialized and hashed once for both.
    pub fn cache_key(&self, llm: &Resolved, material_digest: &[u8]) -> Option<String> {
        let prefs = self.prefs();
        let wanted = match self.req.cache {
            Some(explicit) => explicit,
            None => self.req.temperature(llm, prefs) == 0.0,
        };
        if !prefs.enable_caching || !wanted {
            return None;
        }
        Some(hex::encode(material_digest))
    }

    /// What the response cache keys an answer by: the whole neutral request (every
    /// field that can change an answer: parts, tools, tool choice, response format,
    /// sampling), not a hand-kept list of it, for this user and model.
    fn cache_material(&self, llm: &Resolved, chat: &ChatRequest) -> String {
        let model = &llm.model;
        serde_json::json!({
            "user": self.user_id, "provider": model.provider, "model": model.id,
            "request": chat,
        })
        .to_string()
    }

    /// Notes the request's fingerprint for its usage entry ([`PROMPT_HASH`]), whether
    /// or not caching is on, so the usage insights can tell what the cache would have
    /// saved.
    /// Returns the SHA-256 of the cache material, which [`Call::cache_key`] takes.
    pub fn note_prompt(&mut self, llm: &Resolved, chat: &ChatRequest) -> [u8; 32] {
        let digest: [u8; 32] = Sha256::digest(self.cache_material(llm, chat).as_bytes()).into();
        self.prompt_hash = Some(prompt_hash(&digest));
        digest
    }

    fn month(&self) -> String {
        crate::usage::month_of(self.started_at)
    }

    /// Resolves a candidate's key and reserves its worst-case cost. `Ok(None)` when the
    /// candidate cannot be used (no key, circuit open, over budget), with an attempt noted.
    pub async fn prepare(
        &mut self,
        llm: &Arc<Resolved>,
        stream: bool,
    ) -> Result<Option<Candidate>, GenerateError> {
        let model = &llm.model;
        let provider = model.provider;
        let mut key_source = KeySource::User;
        let mut key = self
            .st
            .keys
            .get(&self.user_id, &self.settings, provider)
            .await?;
        if let (None, Some(t)) = (&key, &self.tenant) {
            // The member has no key of their own: the tenant's serves them.
            key = self.st.keys.get(&t.owner, &t.settings, provider).await?;
            if key.is_some() {
                key_source = KeySource::Tenant;
            }
        }
        if key.is_none() {
            // An entry with operator credentials serves users without a key of their own.
            if let Some(meta) = &llm.entry.auth_meta {
                key = self.st.operator_keys.key(meta).await?;
                key_source = KeySource::Operator;
            }
        }
        if key.is_none() && key_required(provider) {
            self.note(model, AttemptError::NoApiKey, Duration::ZERO);
            return Ok(None);
        }
        let breaker = BreakerKey::new(provider, &self.user_id, key.as_ref());
        if !self.st.breakers.allows(breaker) {
            self.note(model, AttemptError::CircuitOpen, Duration::ZERO);
            return Ok(None);
        }
        let mut chat = self.req.chat_request(llm, self.prefs(), stream);
        // The primary was checked up front (`check_params`); a fallback that cannot
        // honour a parameter is skipped unless dropping is allowed.
        let Ok(dropped) = self.params_for(llm, &mut chat) else {
            self.note(model, AttemptError::UnsupportedParameter, Duration::ZERO);
            return Ok(None);
        };
        // Whose key it is names its rate-limit state: a tenant key's limits are the
        // tenant's (`tenant/<tenantId>`), whichever member calls.
        let key_owner = match (key_source, &self.tenant) {
            // Not a user id (those never contain `/`).
            (KeySource::Operator, _) => "operator/".to_owned(),
            (KeySource::Tenant, Some(t)) => t.owner.clone(),
            (KeySource::User | KeySource::Tenant, _) => self.user_id.clone(),
        };
        let key_ref = KeyRef {
            owner: key_owner,
            provider,
            fingerprint: fingerprint(key.as_ref()),
        };
        if let Some(reset) = self.rate_limited(&key_ref, &chat).await {
            self.note(
                model,
                AttemptError::Provider(ErrorKind::RateLimited),
                Duration::ZERO,
            );
            self.rate_limited_until = Some(self.rate_limited_until.map_or(reset, |t| t.min(reset)));
            return Ok(None);
        }
        // A reservation only matters where a limit can refuse the request; without one
        // the settlement alone (reserved 0, actual cost) keeps the month's spend, and the
        // hot path saves a write.
        let limit = enforced(self.prefs());
        let tenant_limit = self
            .tenant
            .as_ref()
            .and_then(|t| enforced(&t.settings.preferences));
        let mut reserved = NanoUsd::ZERO;
        let reservation_id = format!("{}#{}", self.request_id, self.reservations);
        self.reservations += 1;
        if limit.is_some() || tenant_limit.is_some() {
            let amount = budget::worst_case(model, &chat).unwrap_or(NanoUsd::ZERO);
            let now = chrono::Utc::now().timestamp();
            let lease = Reservation {
                id: reservation_id.clone(),
                month: self.month(),
                amount,
                expires_unix: now + i64::try_from(self.lease().as_secs()).unwrap_or(i64::MAX / 2),
            };
            // A member's reservation is also their tenant's, granted in both or neither:
            // the tenant then holds exactly what the member does, and one settlement
            // (naming the tenant) settles both.
            let granted = match &self.tenant {
                Some(t) => {
                    let holders = [
                        (self.user_id.as_str(), limit),
                        (t.owner.as_str(), tenant_limit),
                    ];
                    self.st.budgets.reserve_joint(&holders, &lease, now).await?
                }
                None => {
                    self.st
                        .budgets
                        .reserve(&self.user_id, &lease, limit, now)
                        .await?
                }
            };
            if !granted {
                self.note(model, AttemptError::BudgetExceeded, Duration::ZERO);
                return Ok(None);
            }
            reserved = amount;
        }
        Ok(Some(Candidate {
            llm: llm.clone(),
            model: model.clone(),
            key_source,
            key,
            key_owner: key_ref.owner,
            fingerprint: key_ref.fingerprint,
            chat,
            dropped,
            breaker,
            reserved,
            reservation_id,
            azure: (provider == crate::provider::Provider::AzureOpenAi).then(|| {
                let prefs = self.prefs();
                (
                    prefs.azure_resource.clone(),
                    prefs.azure_deployments.clone(),
                )
            }),
        }))
    }

    /// Until when the provider said `key` cannot take `chat`, if it did. A book that
    /// cannot be read blocks nothing: the provider itself will say no if it must.
    async fn rate_limited(
        &self,
        key: &KeyRef,
        chat: &ChatRequest,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let needed = tokens_needed(chat);
        match self
            .st
            .rate_limits
            .blocked(key, needed, chrono::Utc::now())
            .await
        {
            Ok(until) => until,
            Err(e) => {
                tracing::warn!(request_id = %self.request_id, provider = %key.provider, error = %e,
                    "rate-limit state not read");
                None
            }
        }
    }

    /// Records what an answer said about the candidate's key's limits. Best effort: a
    /// state that cannot be written costs at most a call that a provider refuses.
    async fn observe(&self, c: &Candidate, outcome: Option<&crate::providers::RateLimitState>) {
        let Some(state) = outcome else {
            return;
        };
        if let Err(e) = self
            .st
            .rate_limits
            .observe(&c.key_ref(), state, chrono::Utc::now())
            .await
        {
            tracing::warn!(request_id = %self.request_id, provider = %c.model.provider, error = %e,
                "rate-limit state not recorded");
        }
    }

    /// For `downgrade`: the cheapest enabled model the user can reach that fits the budget.
    pub async fn downgrade(&mut self, stream: bool) -> Result<Option<Candidate>, GenerateError> {
        let view = self.view.clone();
        let mut options: Vec<(NanoUsd, &Arc<Resolved>)> = view
            .usable(self.scope())
            // Only providers the user has a key for: the downgrade must be reachable.
            .filter(|r| self.has_key(r.model.provider))
            .filter_map(|r| {
                let chat = self.req.chat_request(r, self.prefs(), stream);
                budget::worst_case(&r.model, &chat).map(|c| (c, r))
            })
            .collect();
        options.sort_by_key(|(cost, r)| (*cost, r.model.id.clone()));
        if let Some((_, cheapest)) = options.first() {
            let cheapest = (*cheapest).clone();
            return self.prepare(&cheapest, stream).await;
        }
        Ok(None)
    }

    pub fn note(&mut self, model: &ModelPrice, error: AttemptError, latency: Duration) {
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

    /// How long this request's reservations hold: a stream's may run to its ceiling.
    fn lease(&self) -> Duration {
        if self.req.stream {
            self.st.config.stream_lease()
        } else {
            self.st.config.lease
        }
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
        T: ReportsLimits,
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
            // The attempt's trace span (exported only when llm-local's traces are on):
            // provider, model and, once known, the failure's class.
            let span = tracing::debug_span!(
                "upstream",
                otel.name = "upstream",
                gen_ai.system = c.model.provider.as_str(),
                gen_ai.request.model = %c.model.id,
                retry,
                error.r#type = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
            );
            let outcome = tokio::select! {
                r = tokio::time::timeout(budget, op()).instrument(span.clone()) => r.unwrap_or_else(|_| {
                    cut_by_us = true;
                    Err(ProviderError::new(ErrorKind::Timeout, "the request deadline was reached"))
                }),
                () = st.lifecycle.shutdown.cancelled() => {
                    (cut_by_us, shutting_down) = (true, true);
                    Err(ProviderError::new(ErrorKind::Timeout, "the gateway is shutting down"))
                }
            };
            match &outcome {
                Ok(v) => self.observe(c, v.rate_limit()).await,
                Err(e) => self.observe(c, e.rate_limit()).await,
            }
            st.metrics.attempt(
                c.model.provider,
                outcome.as_ref().err().map(|e| e.kind),
                attempt_started.elapsed(),
            );
            if let Err(e) = &outcome {
                span.record("error.type", e.kind.as_str());
                span.record("otel.status_code", "ERROR");
            }
            match outcome {
                Ok(v) => {
                    st.breakers.success(c.breaker);
                    return Ok(v);
                }
                Err(e) => {
                    if !cut_by_us {
                        st.breakers.failure(c.breaker, e.kind);
                    }
                    self.note(
                        &c.model,
                        AttemptError::Provider(e.kind),
                        attempt_started.elapsed(),
                    );
                    tracing::info!(request_id = %self.request_id, provider = %c.model.provider,
                        model = %c.model.id, kind = e.kind.as_str(), status = ?e.status, detail = %scrub(&e.detail, c),
                        "attempt failed");
                    let wait = self.backoff(retry, e.retry_after);
                    let in_time = self
                        .attempt_budget()
                        .is_some_and(|left| left > wait + Duration::from_millis(100));
                    // Told to stay away for longer than a retry would wait: fail over.
                    let blocked = e.rate_limit.as_ref().is_some_and(|s| {
                        s.blocked(tokens_needed(&c.chat), chrono::Utc::now())
                            .is_some_and(|until| until > chrono::Utc::now() + st.config.backoff_cap)
                    });
                    if !e.kind.retryable()
                        || blocked
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

    /// The usage entry of this request.
    pub fn entry(
        &self,
        llm: &Resolved,
        tokens: TokenCounts,
        cost: Option<NanoUsd>,
        status: UsageStatus,
        error_type: Option<String>,
    ) -> UsageEntry {
        let now = self.started_at;
        let model = &llm.model;
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
            price_version: llm.price_version.clone(),
            metadata: self.metadata(),
            ttl: now.timestamp() + self.st.config.retention_days * 86_400,
            key_source: None,
            tenant_id: self.tenant.as_ref().map(|t| t.id.clone()),
        }
    }

    /// The client's metadata, with the request's fingerprint. The name is reserved: a
    /// client value of it is dropped even where there is no fingerprint (embeddings), so
    /// the insights can trust every one they read.
    fn metadata(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        let mut m = self.req.metadata.clone();
        m.remove(PROMPT_HASH);
        if let Some(h) = &self.prompt_hash {
            m.insert(PROMPT_HASH.to_owned(), serde_json::Value::String(h.clone()));
        }
        m
    }

    /// The usage entry of a call candidate `c` made.
    pub fn entry_for(
        &self,
        c: &Candidate,
        tokens: TokenCounts,
        cost: Option<NanoUsd>,
        status: UsageStatus,
        error_type: Option<String>,
    ) -> UsageEntry {
        UsageEntry {
            key_source: Some(c.key_source),
            ..self.entry(&c.llm, tokens, cost, status, error_type)
        }
    }

    /// Records the request's one usage entry (carrying the settlement of the winning
    /// candidate's reservation), or only settles when usage tracking is off. Budget
    /// alerts are checked once the write has landed.
    pub async fn finish(
        &self,
        entry: UsageEntry,
        settlement: Option<Settlement>,
    ) -> Result<(), GenerateError> {
        let rule = alert_rule(self.prefs());
        let tenant_rule = self
            .tenant
            .as_ref()
            .and_then(|t| alert_rule(&t.settings.preferences));
        let job = if self.prefs().track_usage {
            recorder::Job::Record {
                entry: Box::new(entry),
                settlement,
                rule,
                tenant_rule,
            }
        } else if let Some(s) = settlement {
            recorder::Job::Settle {
                user_id: self.user_id.clone(),
                settlement: s,
                rule,
                tenant_rule,
            }
        } else {
            return Ok(());
        };
        let recording = matches!(job, recorder::Job::Record { .. });
        let written = self
            .st
            .recorder
            .submit_within(job, self.record_budget())
            .await;
        if recording {
            self.st.metrics.usage_record(written.is_ok());
        }
        written?;
        Ok(())
    }

    /// How long writing the outcome may take: what is left of the deadline, and at
    /// least [`MIN_RECORD_BUDGET`] (a stream's entry is written after its deadline). A
    /// store that keeps throttling then fails the request with a `503` before the
    /// Lambda's own timeout stops it without an answer.
    fn record_budget(&self) -> Duration {
        self.deadline_at
            .saturating_duration_since(Instant::now())
            .max(MIN_RECORD_BUDGET)
    }

    pub async fn release(&self, c: &Candidate) -> Result<(), GenerateError> {
        if c.reserved > NanoUsd::ZERO {
            let settlement = self.settlement(c, NanoUsd::ZERO);
            self.st
                .recorder
                .submit_within(
                    recorder::Job::Settle {
                        user_id: self.user_id.clone(),
                        settlement,
                        rule: None,
                        tenant_rule: None,
                    },
                    self.record_budget(),
                )
                .await?;
        }
        Ok(())
    }

    /// The answer of candidate `c` (a stream's final answer has no `content`: its text
    /// went out as deltas).
    pub fn answer(&self, c: &Candidate, g: Generation, cost: Option<NanoUsd>) -> GenerateResponse {
        let a = Answered {
            model: &c.model,
            model_name: c.model.id.clone(),
            finish_reason: g.finish(),
            content: g.content,
            tool_calls: g.tool_calls,
            logprobs: g.logprobs,
            tokens: g.tokens,
            cost,
            cached: false,
        };
        let mut r = GenerateResponse::new(
            a,
            &self.request_id,
            self.started.elapsed(),
            self.attempts.clone(),
        );
        r.dropped_params = c.dropped.clone();
        r
    }

    pub fn settlement(&self, c: &Candidate, actual: NanoUsd) -> Settlement {
        Settlement {
            month: self.month(),
            reservation_id: c.reservation_id.clone(),
            reserved: c.reserved,
            actual,
            tenant: self.tenant.as_ref().map(|t| t.id.clone()),
        }
    }

    /// The client's answer when nothing worked, after its error usage entry.
    pub async fn fail(
        &self,
        last: Option<(&Arc<Resolved>, ProviderError)>,
        plan: &[Arc<Resolved>],
    ) -> GenerateError {
        let (llm, kind, retry_after) = match &last {
            Some((m, e)) => ((*m).clone(), Some(e.kind), e.retry_after),
            None => (plan[0].clone(), None, None),
        };
        let model = &llm.model;
        // Whole seconds until the first reset of a candidate skipped as rate limited.
        let skipped_for = self.rate_limited_until.map(|t| {
            let ms = (t - chrono::Utc::now()).num_milliseconds().max(0);
            u64::try_from(ms).unwrap_or(0).div_ceil(1000).max(1)
        });
        let budget_only = last.is_none()
            && self
                .attempts
                .iter()
                .all(|a| a.error == AttemptError::BudgetExceeded);
        let error_type = match kind {
            Some(k) => k.as_str(),
            None if budget_only => AttemptError::BudgetExceeded.as_str(),
            None => self
                .attempts
                .last()
                .map_or("no_provider", |a| a.error.as_str()),
        };
        let entry = self.entry(
            &llm,
            TokenCounts::default(),
            Some(NanoUsd::ZERO),
            UsageStatus::Error,
            Some(error_type.to_owned()),
        );
        if let Err(e) = self.finish(entry, None).await {
            tracing::error!(request_id = %self.request_id, error = %e, "error usage entry not written");
        }
        let upstream = |failure, message: &str| GenerateError::Upstream {
            failure,
            message: message.to_owned(),
            attempts: self.attempts.clone(),
        };
        if kind.is_none() && budget_only {
            self.st.metrics.refused(Refusal::Budget);
        }
        match kind {
            None if budget_only => GenerateError::BudgetExceeded,
            None if self
                .attempts
                .iter()
                .all(|a| a.error == AttemptError::NoApiKey) =>
            {
                GenerateError::NoKey(model.provider)
            }
            // Skipped as rate limited (and the rest unusable): come back at the first reset.
            None if skipped_for.is_some() => upstream(
                UpstreamFailure::RateLimited {
                    retry_after_secs: skipped_for.unwrap_or(1),
                },
                ErrorKind::RateLimited.user_message(),
            ),
            None => upstream(
                UpstreamFailure::Failed,
                "no provider could take the request",
            ),
            Some(k @ (ErrorKind::InvalidRequest | ErrorKind::ContextLengthExceeded)) => {
                GenerateError::invalid("messages", k.user_message())
            }
            Some(k @ ErrorKind::Timeout) => upstream(UpstreamFailure::Timeout, k.user_message()),
            Some(k @ ErrorKind::RateLimited) => upstream(
                UpstreamFailure::RateLimited {
                    retry_after_secs: retry_after
                        .map(|d| d.as_secs().max(1))
                        .into_iter()
                        .chain(skipped_for)
                        .min()
                        .unwrap_or(1),
                },
                k.user_message(),
            ),
            Some(k) => upstream(UpstreamFailure::Failed, k.user_message()),
        }
    }
}

/// The threshold alerts of a budget, if one is set.
fn alert_rule(prefs: &Preferences) -> Option<recorder::AlertRule> {
    prefs.monthly_budget_usd.map(|limit| recorder::AlertRule {
        limit,
        thresholds: prefs.alert_thresholds.clone(),
    })
}

/// The budget a request must stay under: a monthly budget whose action refuses or
/// downgrades (an `alert_only` budget never refuses, so it needs no reservation).
fn enforced(prefs: &Preferences) -> Option<NanoUsd> {
    match (prefs.monthly_budget_usd, prefs.budget_action) {
        (Some(limit), BudgetAction::Block | BudgetAction::Downgrade) => Some(limit),
        _ => None,
    }
}

/// The tokens a request may count against a provider's tokens-per-minute limit: the
/// prompt at about four bytes a token (no tokenizer on the hot path; providers estimate
/// the same way before counting) plus all of `max_tokens`, which OpenAI reserves up
/// front. An over-estimate only means failing over a little early near the limit.
pub(crate) fn tokens_needed(chat: &ChatRequest) -> u64 {
    // An image at about 1,000 tokens (a typical high-detail figure); the budget's worst
    // case uses the ceiling instead.
    let images = u64::try_from(chat.image_count()).unwrap_or(u64::MAX);
    u64::try_from(chat.prompt_bytes().div_ceil(4))
        .unwrap_or(u64::MAX)
        .saturating_add(images.saturating_mul(1000))
        .saturating_add(u64::from(chat.max_tokens))
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
