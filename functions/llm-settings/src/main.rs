//! The `llm-settings` Lambda: the settings router behind API Gateway's JWT authorizer,
//! on DynamoDB and Secrets Manager. Clients are built once, at cold start.

use shared::http::{app, settings_router};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(shared::logging::env_filter())
        .with_current_span(false)
        .without_time()
        .init();
    let state = shared::aws::settings_state_from_env().await.map_err(|e| {
        tracing::error!(error = %e, "start-up failed");
        e
    })?;
    lambda_http::run(app(settings_router(state))).await
}
