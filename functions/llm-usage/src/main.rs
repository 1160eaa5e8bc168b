//! The `llm-usage` Lambda: `GET /api/llm-usage/{userId}` (entries, `/summary`, `/daily`,
//! `/budget`, `/export`) and `GET /api/admin/usage/summary` behind API Gateway's JWT
//! authorizer, reading (never writing) the usage table and its `ProviderIndex` GSI and
//! the settings table. Clients and the page-token key (from Secrets Manager) are read
//! once, at cold start, so every instance signs and accepts the same `nextToken`s.

use shared::http::{app, usage_router};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(shared::logging::env_filter())
        .with_current_span(false)
        .without_time()
        .init();
    let state = shared::aws::usage_state_from_env().await.map_err(|e| {
        tracing::error!(error = %e, "start-up failed");
        e
    })?;
    lambda_http::run(app(usage_router(state))).await
}
