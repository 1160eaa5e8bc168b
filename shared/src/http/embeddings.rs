//! `POST /v1/embeddings`: OpenAI's shape (`input` a string or a list of strings), so
//! `client.embeddings.create` of the official SDKs works with `base_url` at the gateway.
//! `model` is an embedding model of the catalog (or registry), by id or
//! `provider/model`; chat models are not embedding models and are refused.

use super::error::{ApiError, current_request_id};
use super::extract::JsonBody;
use super::generate::GenerateApi;
use crate::generate::GenerateState;
use crate::generate::embed::embed_detached;
use crate::identity::Caller;
use crate::provider::Provider;
use crate::providers::embed::EmbedRequest;
use crate::providers::registry::embeds;
use crate::registry::{RegistryView, Resolved};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// OpenAI's limit on inputs per request.
const MAX_INPUTS: usize = 2048;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsBody {
    model: String,
    input: Input,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<u32>,
    /// OpenAI's end-user id; the gateway's user is the token's, so it is not forwarded.
    #[serde(default)]
    user: Option<String>,
}

/// Token-id arrays (OpenAI also takes those) are not accepted: the gateway prices and
/// reserves by text, and a token id means nothing across providers.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
}

pub fn embeddings_routes() -> Router<GenerateApi> {
    Router::new().route("/v1/embeddings", post(embeddings))
}

/// `provider/model` first, then a plain id; embedding models only.
fn resolve(view: &RegistryView, model: &str, tenant: Option<&str>) -> Option<Arc<Resolved>> {
    if let Some((p, rest)) = model.split_once('/')
        && let Ok(provider) = p.parse::<Provider>()
        && let Some(r) = view.find_embedder(tenant, Some(provider), rest)
    {
        return Some(r.clone());
    }
    view.find_embedder(tenant, None, model).cloned()
}

impl EmbeddingsBody {
    pub fn validate(self) -> Result<(String, EmbedRequest), ApiError> {
        let _ = self.user;
        let input = match self.input {
            Input::One(s) => vec![s],
            Input::Many(v) => v,
        };
        if input.is_empty() || input.len() > MAX_INPUTS {
            return Err(ApiError::invalid(
                "input",
                format!("must hold 1 to {MAX_INPUTS} strings"),
            ));
        }
        if input.iter().any(String::is_empty) {
            return Err(ApiError::invalid("input", "strings must not be empty"));
        }
        if let Some(f) = &self.encoding_format
            && f != "float"
            && f != "base64"
        {
            return Err(ApiError::invalid(
                "encoding_format",
                "must be float or base64",
            ));
        }
        if self.dimensions == Some(0) {
            return Err(ApiError::invalid("dimensions", "must be at least 1"));
        }
        let request = EmbedRequest {
            model: String::new(),
            input,
            encoding_format: self.encoding_format,
            dimensions: self.dimensions,
        };
        Ok((self.model, request))
    }
}

#[utoipa::path(
    post,
    path = "/v1/embeddings",
    tag = "openai",
    summary = "OpenAI Embeddings",
    request_body(content = Object, description = "OpenAI's embeddings request; input a string or a list", content_type = "application/json", example = json!({"model": "text-embedding-3-small", "input": "The food was delicious"})),
    security(("bearer" = [])),
    responses((status = 200, description = "OpenAI's embeddings list", body = Object), (status = 400, description = "Invalid field, malformed JSON or unknown field (the message names it)", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "No or invalid bearer token", body = crate::http::openapi::ErrorEnvelope), (status = 402, description = "Monthly budget exceeded (`budget_exceeded`)", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Not the caller's own resource, or not admin", body = crate::http::openapi::ErrorEnvelope), (status = 413, description = "Body over 1 MiB", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited (`rate_limited`, with `Retry-After`)", body = crate::http::openapi::ErrorEnvelope), (status = 502, description = "Every provider tried failed (`provider_error`)", body = crate::http::openapi::ErrorEnvelope), (status = 504, description = "The providers timed out (`provider_timeout`)", body = crate::http::openapi::ErrorEnvelope))
)]
pub async fn embeddings(
    caller: Caller,
    State(st): State<GenerateState>,
    JsonBody(body): JsonBody<EmbeddingsBody>,
) -> Result<Json<Value>, ApiError> {
    let (requested_model, mut request) = body.validate()?;
    let tenant = caller.tenant_id.clone();
    let llm = resolve(
        &*st.registry.view().await,
        &requested_model,
        tenant.as_deref(),
    )
    .ok_or_else(|| {
        ApiError::invalid(
            "model",
            "not an embedding model you may pick; GET /v1/models lists them",
        )
    })?;
    let provider = llm.model.provider;
    if !embeds(provider) {
        return Err(ApiError::invalid(
            "model",
            format!("{provider} has no embeddings API on this gateway"),
        ));
    }
    request.model = llm.model.id.clone();
    let request_id = current_request_id();
    let done = embed_detached(&st, &caller.user_id, request_id, tenant, llm, request).await?;
    let e = done.embeddings;
    let data: Vec<Value> = e
        .vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v}))
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": requested_model,
        "usage": {"prompt_tokens": e.prompt_tokens, "total_tokens": e.prompt_tokens},
    })))
}

/// This router's operations in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(embeddings))]
pub(crate) struct Doc;
