//! `POST /v1/embeddings` on the generate engine's machinery: the same [`Call`] as a chat
//! (rate limits, the caller's key else their tenant's, circuit breaker, the worst-case
//! budget reservation, retries within the deadline), one model and no failover, and
//! exactly one usage entry (`operation_type: embedding`, no output tokens), also when
//! the call fails.

use super::call::Call;
use super::error::GenerateError;
use super::request::Generate;
use super::{GenerateState, OPERATION_EMBEDDING};
use crate::money::NanoUsd;
use crate::pricing::TokenCounts;
use crate::providers::embed::{EmbedRequest, Embeddings};
use crate::providers::{Message, Role};
use crate::registry::Resolved;
use crate::usage::UsageStatus;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the caller is answered: the vectors and what the call counted and cost.
#[derive(Debug)]
pub struct Embedded {
    pub embeddings: Embeddings,
    pub cost: Option<NanoUsd>,
}

/// The inputs as the engine's request: one user message of all of them, so that the
/// reservation (every byte a token, at the input price; the output price is zero) and
/// the provider's tokens-per-minute estimate bound what embedding them can cost.
fn as_generate(llm: &Resolved, input: &[String], tenant: Option<String>) -> Generate {
    Generate {
        system: None,
        messages: vec![Message::text(Role::User, input.join("\n"))],
        operation_type: OPERATION_EMBEDDING.to_owned(),
        provider: Some(llm.model.provider),
        model: Some(llm.model.id.clone()),
        llm_id: Some(llm.entry.id.clone()),
        max_tokens: Some(1),
        temperature: None,
        sampling: Default::default(),
        tooling: Default::default(),
        drop_params: false,
        stream: false,
        cache: Some(false),
        metadata: BTreeMap::new(),
        tenant,
    }
}

/// Embeds `request` with `llm` (an embedding model the caller may reach), on a task of
/// its own so that a client leaving changes nothing about what is recorded and settled.
pub async fn embed_detached(
    st: &GenerateState,
    user_id: &str,
    request_id: String,
    tenant: Option<String>,
    llm: Arc<Resolved>,
    request: EmbedRequest,
) -> Result<Embedded, GenerateError> {
    let id = request_id.clone();
    let (task_st, user_id) = (st.clone(), user_id.to_owned());
    let handle = st.lifecycle.spawn(
        &id,
        Box::pin(async move { embed(&task_st, &user_id, request_id, tenant, llm, request).await }),
    );
    handle.await.unwrap_or_else(|e| {
        tracing::error!(request_id = %id, error = %e, "embeddings task failed");
        Err(GenerateError::Internal("embeddings task failed".into()))
    })
}

async fn embed(
    st: &GenerateState,
    user_id: &str,
    request_id: String,
    tenant: Option<String>,
    llm: Arc<Resolved>,
    request: EmbedRequest,
) -> Result<Embedded, GenerateError> {
    let req = as_generate(&llm, &request.input, tenant);
    let mut call = Call::begin(st, user_id, request_id, req).await?;
    let plan = [llm.clone()];
    let Some(c) = call.prepare(&llm, false).await? else {
        // No key, circuit open or over budget: `fail` writes the error entry.
        return Err(for_input(call.fail(None, &plan).await));
    };
    let providers = st.providers.as_ref();
    let route = c.route();
    match call
        .with_retries(&c, || providers.embed(&route, &request))
        .await
    {
        Ok(embeddings) => {
            let tokens = TokenCounts {
                input_tokens: embeddings.prompt_tokens,
                ..TokenCounts::default()
            };
            let cost = c.model.cost(&tokens);
            let settlement = call.settlement(&c, cost.unwrap_or(NanoUsd::ZERO));
            let entry = call.entry_for(&c, tokens, cost, UsageStatus::Success, None);
            call.finish(entry, Some(settlement)).await?;
            Ok(Embedded { embeddings, cost })
        }
        Err(e) => {
            // A release that cannot be written only delays the budget: the lease ends it.
            if let Err(err) = call.release(&c).await {
                tracing::error!(request_id = %call.request_id, error = %err, "reservation not released");
            }
            Err(for_input(call.fail(Some((&llm, e)), &plan).await))
        }
    }
}

/// The engine names a refused prompt `messages`; here the caller sent `input`.
fn for_input(e: GenerateError) -> GenerateError {
    match e {
        GenerateError::Invalid { field, message } if field == "messages" => {
            GenerateError::Invalid {
                field: "input".into(),
                message,
            }
        }
        other => other,
    }
}
