//! The answer of a generation, built in one place for JSON, streams and cache hits.

use super::error::Attempt;
use crate::money::NanoUsd;
use crate::pricing::{ModelPrice, TokenCounts};
use crate::provider::Provider;
use crate::providers::{FinishReason, ToolCall};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageView {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cached_input_tokens: u64,
    /// USD (exact to the nano-dollar); `null` when the model has no price.
    #[schema(value_type = Option<f64>)]
    pub cost_usd: Option<NanoUsd>,
    pub latency_ms: f64,
    pub model: String,
    pub provider: Provider,
}

/// A finished generation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenerateResponse {
    /// The whole text; empty in a stream's final event (the text went out as deltas).
    pub content: String,
    /// The calls the model made, in OpenAI's shape (`arguments` a JSON string); none in
    /// a stream's final event (they went out as deltas).
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "openai_calls")]
    #[schema(value_type = Vec<Object>)]
    pub tool_calls: Vec<ToolCall>,
    /// Why the answer ended: `stop`, `length`, `tool_calls` or `content_filter`.
    pub finish_reason: FinishReason,
    /// OpenAI's log probabilities, where the provider has them and they were asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<Value>,
    pub provider: Provider,
    pub model: String,
    pub usage: UsageView,
    pub request_id: String,
    pub cached: bool,
    /// The candidates that failed before the one that answered.
    pub attempts: Vec<Attempt>,
    /// Parameters left out because the answering provider cannot honour them (sent as
    /// the `x-gateway-dropped-params` header, not in the body).
    #[serde(skip)]
    pub dropped_params: Vec<&'static str>,
}

/// Tool calls as OpenAI's API writes them.
pub fn openai_call(c: &ToolCall) -> Value {
    serde_json::json!({"id": c.id, "type": "function",
                       "function": {"name": c.name, "arguments": c.arguments}})
}

fn openai_calls<S: serde::Serializer>(calls: &[ToolCall], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(calls.iter().map(openai_call))
}

/// What a finished generation is made of.
pub struct Answered<'a> {
    pub model: &'a ModelPrice,
    /// The model name reported (a cache hit reports the one it was stored under).
    pub model_name: String,
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: FinishReason,
    pub logprobs: Option<Value>,
    pub tokens: TokenCounts,
    pub cost: Option<NanoUsd>,
    pub cached: bool,
}

impl GenerateResponse {
    pub fn new(
        a: Answered<'_>,
        request_id: &str,
        elapsed: Duration,
        attempts: Vec<Attempt>,
    ) -> Self {
        GenerateResponse {
            content: a.content,
            tool_calls: a.tool_calls,
            finish_reason: a.finish_reason,
            logprobs: a.logprobs,
            provider: a.model.provider,
            model: a.model_name.clone(),
            usage: UsageView {
                input_tokens: a.tokens.input_tokens,
                output_tokens: a.tokens.output_tokens,
                total_tokens: a.tokens.input_tokens + a.tokens.output_tokens,
                cached_input_tokens: a.tokens.cached_input_tokens,
                cost_usd: a.cost,
                latency_ms: ms(elapsed),
                model: a.model_name,
                provider: a.model.provider,
            },
            request_id: request_id.to_owned(),
            cached: a.cached,
            attempts,
            dropped_params: Vec::new(),
        }
    }
}

/// Milliseconds with microsecond precision, as every latency is reported.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}
