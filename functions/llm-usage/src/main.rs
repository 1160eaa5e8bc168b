//! The `llm-usage` Lambda: `GET /api/llm-usage/{userId}` (entries, `/summary`, `/daily`,
//! `/budget`, `/export`), `GET /api/admin/usage/summary` and
//! `GET /api/admin/providers/health` behind API Gateway's JWT authorizer, reading (never
//! writing) the usage table and its `ProviderIndex` GSI and the settings table. Clients
//! and the page-token key (from Secrets Manager) are read once, at cold start, so every
//! instance signs and accepts the same `nextToken`s.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::aws::serve(
        shared::aws::usage_state_from_env(),
        shared::http::usage_router,
    )
    .await
}
