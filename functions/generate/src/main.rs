//! The `generate` Lambda: `POST /api/llm-generate/{userId}`, `POST /v1/chat/completions`,
//! `POST /v1/messages`, `POST /v1/embeddings` and `GET /v1/models`, with usage, budgets,
//! the response cache and the audit log on DynamoDB, keys in Secrets Manager and budget
//! alerts on SNS. Clients are built once, at cold start; usage is written before the
//! function returns (the process may be frozen right after it).
//!
//! `LAMBDA_RESPONSE_MODE=streaming` (behind the REST API's streaming integration):
//! answers stream as they are produced, SSE deltas as the provider's arrive.
//! `buffered` (behind an HTTP API, which reads one whole response): a streamed answer
//! reaches the client in one piece, after the function has finished.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::aws::serve_generate().await
}
