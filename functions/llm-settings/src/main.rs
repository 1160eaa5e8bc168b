//! The `llm-settings` Lambda: the settings router behind API Gateway's JWT authorizer,
//! on DynamoDB and Secrets Manager. Clients are built once, at cold start.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::aws::serve(
        shared::aws::settings_state_from_env(),
        shared::http::settings_router,
    )
    .await
}
