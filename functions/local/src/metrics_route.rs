//! `GET /metrics`: the Prometheus exposition of this process, on llm-local only (a
//! Lambda writes EMF lines instead). Unauthenticated, like `/health`: it holds counts
//! by route, provider and error class, never a user, key, tenant or prompt; an operator
//! who would rather not expose even those sets `LLM_METRICS=off`.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use shared::generate::GenerateState;
use shared::metrics::prometheus::{CONTENT_TYPE, Registry};
use shared::metrics::{Metrics, enabled_by_env};
use std::sync::Arc;

/// The metrics handle for the routers and the engine, and the `/metrics` route; both
/// off (and no route) under `LLM_METRICS=off`.
pub fn local(engine: &GenerateState) -> (Metrics, Router) {
    if !enabled_by_env() {
        return (Metrics::off(), Router::new());
    }
    let registry = Arc::new(Registry::new());
    let tasks = engine.lifecycle.tasks.clone();
    registry.gauge(
        "llm_generations_in_flight",
        "Generations (and embeddings) running on their own tasks now.",
        move || u64::try_from(tasks.len()).unwrap_or(u64::MAX),
    );
    let recorder = engine.recorder.clone();
    registry.gauge(
        "llm_usage_queue_depth",
        "Usage jobs queued for the background writer and not yet taken.",
        move || u64::try_from(recorder.pending()).unwrap_or(u64::MAX),
    );
    let routes = Router::new()
        .route("/metrics", get(exposition))
        .with_state(registry.clone());
    (Metrics::to(registry), routes)
}

async fn exposition(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], registry.render())
}
