//! The `generate` Lambda: `POST /api/llm-generate/{userId}`, `POST /v1/chat/completions`
//! and `GET /v1/models` behind API Gateway's JWT authorizer, with usage, budgets, the
//! response cache and the audit log on DynamoDB, keys in Secrets Manager and budget
//! alerts on SNS. Clients are built once, at cold start; usage is written before the
//! answer leaves (the process may be frozen right after it).
//!
//! API Gateway HTTP APIs buffer Lambda responses: a streamed (SSE) answer reaches the
//! client in one piece, after the function has finished.

use shared::http::{app, generate_router};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(shared::logging::env_filter())
        .with_current_span(false)
        .without_time()
        .init();
    let state = shared::aws::generate_state_from_env().await.map_err(|e| {
        tracing::error!(error = %e, "start-up failed");
        e
    })?;
    lambda_http::run(app(generate_router(state))).await
}
