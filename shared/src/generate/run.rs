//! The one run loop of a generation, JSON or streamed: the cache (JSON only), then each
//! candidate of the plan in order (key, circuit, budget, retries) until one answers;
//! failover is possible until a stream's first byte. Every path ends in exactly one
//! usage entry and a settled reservation.

use super::call::{Call, Candidate, out_of_time};
use super::error::{AttemptError, GenerateError};
use super::response::{Answered, GenerateResponse};
use super::stream::{Event, pump};
use crate::money::NanoUsd;
use crate::pricing::TokenCounts;
use crate::provider::Provider;
use crate::providers::{ErrorKind, FinishReason, Generation, ProviderError, ToolCall};
use crate::registry::Resolved;
use crate::usage::UsageStatus;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::mpsc;

/// How the answer leaves: whole, or as events on a channel.
#[derive(Clone, Copy)]
pub enum Delivery<'t> {
    Whole,
    Stream(&'t mpsc::Sender<Event>),
}

/// The cached part of an answer (an entry written before tool calls existed reads as
/// a text answer).
#[derive(Debug, Deserialize, Serialize)]
struct CachedAnswer {
    content: String,
    model: String,
    #[serde(default)]
    tool_calls: Vec<CachedCall>,
    #[serde(default)]
    finish_reason: Option<FinishReason>,
}

#[derive(Debug, Deserialize, Serialize)]
struct CachedCall {
    id: String,
    name: String,
    arguments: String,
}

pub async fn run(
    call: &mut Call<'_>,
    delivery: Delivery<'_>,
) -> Result<GenerateResponse, GenerateError> {
    let streaming = matches!(delivery, Delivery::Stream(_));
    let plan = call.plan()?;
    // A parameter the primary cannot honour is refused before anything is spent (the
    // fallbacks are checked as they come, in `prepare`).
    let mut primary_chat = call.req.chat_request(&plan[0], call.prefs(), false);
    let dropped = call.params_for(&plan[0], &mut primary_chat)?;
    let material = call.note_prompt(&plan[0], &primary_chat);
    // The cache answers for the primary choice only, and only whole answers.
    let cache_key = if streaming {
        None
    } else {
        call.cache_key(&plan[0], &material)
    };
    if let Some(key) = &cache_key
        && let Some(mut hit) = cached(call, &plan[0], key).await?
    {
        hit.dropped_params = dropped;
        return Ok(hit);
    }

    let mut last: Option<(Arc<Resolved>, ProviderError)> = None;
    // Providers that failed for a reason that is not the model's (the key, the service,
    // the network): the chain moves on to the next provider instead of trying each of
    // their other models in turn.
    let mut left: Vec<Provider> = Vec::new();
    let mut model_faults: Vec<Provider> = Vec::new();
    for (i, llm) in plan.iter().enumerate() {
        if call.out_of_time() {
            last.get_or_insert_with(|| (llm.clone(), out_of_time()));
            break;
        }
        if left.contains(&llm.model.provider) {
            continue;
        }
        let mut candidate = call.prepare(llm, streaming).await?;
        if candidate.is_none()
            && i == 0
            && call.downgrades()
            && call
                .attempts
                .last()
                .is_some_and(|a| a.error == AttemptError::BudgetExceeded)
        {
            candidate = call.downgrade(streaming).await?;
        }
        let Some(c) = candidate else {
            // Unusable here (no key, circuit open, over budget): so are the provider's
            // other entries. Over budget, the registry's chain stops: the limit is the
            // user's, whatever the provider (`downgrade` is the way to a cheaper model).
            left.push(llm.model.provider);
            let over_budget = call
                .attempts
                .last()
                .is_some_and(|a| a.error == AttemptError::BudgetExceeded);
            if over_budget && call.prefs().fallback_providers.is_empty() {
                break;
            }
            continue;
        };
        let st = call.st;
        let providers = st.providers.as_ref();
        let route = c.route();
        let failed = match delivery {
            Delivery::Whole => {
                match call
                    .with_retries(&c, || providers.complete(&route, &c.chat))
                    .await
                {
                    Ok(g) => {
                        let primary = c.llm.entry.id == plan[0].entry.id;
                        let key = cache_key.as_deref().filter(|_| primary);
                        return answered(call, &c, g, key).await;
                    }
                    Err(e) => e,
                }
            }
            Delivery::Stream(tx) => {
                match call
                    .with_retries(&c, || providers.open_stream(&route, &c.chat))
                    .await
                {
                    Ok(events) => return pump(call, &c, events, tx).await,
                    Err(e) => e,
                }
            }
        };
        // A release that cannot be written only delays the budget: the lease ends it.
        // Failing over (and the request's one usage entry) matter more.
        if let Err(e) = call.release(&c).await {
            tracing::error!(request_id = %call.request_id, error = %e, "reservation not released");
        }
        let client_fault = matches!(
            failed.kind,
            ErrorKind::InvalidRequest | ErrorKind::ContextLengthExceeded
        );
        let models_fault = matches!(
            failed.kind,
            ErrorKind::ModelNotFound | ErrorKind::PermissionDenied
        );
        // After a model's own failure the provider's next entry is tried, but only once:
        // a key that sees none of them would otherwise walk every model it has.
        let second_model_fault = models_fault && model_faults.contains(&c.model.provider);
        if models_fault {
            model_faults.push(c.model.provider);
        }
        if !models_fault || second_model_fault {
            left.push(c.model.provider);
        }
        last = Some((c.llm.clone(), failed));
        if client_fault {
            break; // the same request would be refused by any provider
        }
    }
    Err(call
        .fail(last.as_ref().map(|(m, e)| (m, e.clone())), &plan)
        .await)
}

/// A cache hit: answered at no cost, with its own usage entry.
async fn cached(
    call: &Call<'_>,
    primary: &Resolved,
    key: &str,
) -> Result<Option<GenerateResponse>, GenerateError> {
    let now = chrono::Utc::now().timestamp();
    let Some(hit) = call.st.cache.get_cached(key, now).await? else {
        return Ok(None);
    };
    let Ok(answer) = serde_json::from_str::<CachedAnswer>(&hit) else {
        return Ok(None);
    };
    call.st.metrics.cache_hit();
    let entry = call.entry(
        primary,
        TokenCounts::default(),
        Some(NanoUsd::ZERO),
        UsageStatus::Cached,
        None,
    );
    call.finish(entry, None).await?;
    let a = Answered {
        model: &primary.model,
        model_name: answer.model,
        content: answer.content,
        tool_calls: answer
            .tool_calls
            .into_iter()
            .map(|c| ToolCall {
                id: c.id,
                name: c.name,
                arguments: c.arguments,
            })
            .collect(),
        finish_reason: answer.finish_reason.unwrap_or(FinishReason::Stop),
        logprobs: None,
        tokens: TokenCounts::default(),
        cost: Some(NanoUsd::ZERO),
        cached: true,
    };
    Ok(Some(GenerateResponse::new(
        a,
        &call.request_id,
        call.started.elapsed(),
        Vec::new(),
    )))
}

/// A whole answer: its usage entry (carrying the settlement), the cache, the response.
async fn answered(
    call: &Call<'_>,
    c: &Candidate,
    g: Generation,
    cache_key: Option<&str>,
) -> Result<GenerateResponse, GenerateError> {
    let st = call.st;
    let cost = c.model.cost(&g.tokens);
    let settlement = call.settlement(c, cost.unwrap_or(NanoUsd::ZERO));
    let entry = call.entry_for(c, g.tokens, cost, UsageStatus::Success, None);
    call.finish(entry, Some(settlement)).await?;
    if let Some(key) = cache_key {
        let answer = CachedAnswer {
            content: g.content.clone(),
            model: g.model.clone(),
            tool_calls: g
                .tool_calls
                .iter()
                .map(|c| CachedCall {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                })
                .collect(),
            finish_reason: Some(g.finish()),
        };
        let value = serde_json::to_string(&answer).unwrap_or_default();
        let expires = chrono::Utc::now().timestamp()
            + i64::try_from(st.config.cache_ttl.as_secs()).unwrap_or(3600);
        if let Err(e) = st.cache.put_cached(key, &value, expires).await {
            tracing::warn!(error = %e, "cache write failed");
        }
    }
    Ok(call.answer(c, g, cost))
}
