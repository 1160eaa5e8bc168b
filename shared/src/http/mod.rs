//! One router per function, plus what every router shares: state, the request-id and
//! access-log middleware, the 1 MiB body limit and JSON fallbacks for unknown routes.
//! A Lambda main hands its router to `lambda_http::run`; the local binary merges them
//! all and serves them on a socket.

pub mod admin;
pub mod embeddings;
pub mod error;
pub mod extract;
mod failures;
pub mod generate;
pub mod messages;
pub mod openai;
pub mod openapi;
pub mod pages;
pub mod settings;
mod sse;
mod tenant_usage;
pub mod tenants;
pub mod usage;

use crate::identity::IdentityMode;
use crate::metrics::{Metrics, Observation, method_label};
use crate::pricing::Catalog;
use crate::providers::Providers;
use crate::ratelimit::RateLimiter;
use crate::store::SettingsStore;
use crate::vault::{KeyChanges, KeyVault};
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use error::{ApiError, REQUEST_ID};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument as _;

pub use generate::{GenerateApi, generate_router};
pub use settings::settings_router;
pub use usage::{UsageState, usage_router};

/// Bodies over this are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Everything a handler may use. Cheap to clone; built once per process.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<dyn SettingsStore>,
    pub vault: Arc<dyn KeyVault>,
    pub catalog: &'static Catalog,
    pub identity: IdentityMode,
    pub providers: Arc<Providers>,
    /// Bounds how often one user may press "test" (each one calls a provider).
    pub test_limiter: Arc<RateLimiter>,
    /// Key caches of this process, told about every key change.
    pub key_changes: KeyChanges,
    /// The model registry: what users may pick, and the admin routes' store.
    pub registry: Arc<crate::registry::RegistryCache>,
    /// Checks the operator-credential references registry entries carry.
    pub operator_keys: Arc<dyn crate::vault::operator::OperatorKeys>,
    /// Per-user admin limits.
    pub limits: Arc<dyn crate::store::LimitsStore>,
}

/// A router's state names how callers are identified; that is all [`extract`]'s `Caller`
/// needs, so a router whose state has no [`AppState`] (llm-usage: no vault, no
/// providers) still authenticates.
impl axum::extract::FromRef<AppState> for IdentityMode {
    fn from_ref(st: &AppState) -> IdentityMode {
        st.identity.clone()
    }
}

impl AppState {
    /// Ten connection tests per user per minute.
    pub fn default_test_limiter() -> Arc<RateLimiter> {
        Arc::new(RateLimiter::new(10, std::time::Duration::from_secs(60)))
    }
}

/// Wraps the merged routers of a deployment with the layers every route shares, counting
/// nothing.
pub fn app(routes: Router) -> Router {
    app_with_metrics(routes, Metrics::off())
}

/// [`app`], with every request counted in `metrics` (route template, method, status,
/// latency).
pub fn app_with_metrics(routes: Router, metrics: Metrics) -> Router {
    routes
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(metrics, request_context))
}

/// Gives each request an id (in errors, in the `x-request-id` header, in the log) and
/// writes one access-log line. Only method, route template, status and latency are
/// logged: never headers (tokens) or bodies (keys, prompts).
///
/// The line is at `debug` under the target `access` (`RUST_LOG=info,access=debug` turns
/// it on): every request passes here, and a formatted line and a write to stderr per
/// request is most of what this layer would cost. Its fields are only evaluated when
/// the line is enabled, so off it costs a level check.
async fn request_context(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = format!("req-{}", uuid::Uuid::new_v4().simple());
    let method = req.method().clone();
    // An `Arc<str>` inside: cloning it allocates nothing.
    let route = req.extensions().get::<MatchedPath>().cloned();
    // The request's trace span: DEBUG, so it exists only when llm-local's traces are on
    // (no other layer enables it); its fields are not even evaluated otherwise.
    let span = tracing::debug_span!(
        "request",
        otel.name = format!("{method} {}", route.as_ref().map_or("unmatched", |p| p.as_str())),
        otel.kind = "server",
        http.request.method = %method,
        http.route = route.as_ref().map_or("unmatched", |p| p.as_str()),
        http.response.status_code = tracing::field::Empty,
        request_id = %id,
    );
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(req))
        .instrument(span.clone())
        .await;
    span.record("http.response.status_code", response.status().as_u16());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    tracing::debug!(
        target: "access",
        request_id = %id,
        method = %method,
        route = route.as_ref().map_or("-", |p| p.as_str()),
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    metrics.observe(Observation::Request {
        // The template, never the path: a path no route matched is the caller's text.
        route: route.as_ref().map_or("unmatched", |p| p.as_str()),
        method: method_label(&method),
        status: response.status().as_u16(),
        latency: started.elapsed(),
    });
    response
}
