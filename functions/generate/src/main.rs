//! The `generate` Lambda: `POST /api/llm-generate/{userId}`, `POST /v1/chat/completions`
//! and `GET /v1/models` behind API Gateway's JWT authorizer, with usage, budgets, the
//! response cache and the audit log on DynamoDB, keys in Secrets Manager and budget
//! alerts on SNS. Clients are built once, at cold start; usage is written before the
//! answer leaves (the process may be frozen right after it).
//!
//! API Gateway HTTP APIs buffer Lambda responses: a streamed (SSE) answer reaches the
//! client in one piece, after the function has finished.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::aws::serve(
        shared::aws::generate_state_from_env(),
        shared::http::generate_router,
    )
    .await
}
