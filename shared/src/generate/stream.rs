//! Streamed generation. The run loop (`run.rs`) fails over until a stream opens; after
//! that, text deltas flow to the client through a channel. A client that disconnects
//! does not stop the accounting: the upstream stream is read to its end so the usage
//! entry carries the provider's own token counts.

use super::GenerateState;
use super::call::{Call, Candidate, scrub};
use super::error::{AttemptError, GenerateError, UpstreamFailure};
use super::request::Generate;
use super::response::GenerateResponse;
use super::run::{Delivery, run};
use crate::money::NanoUsd;
use crate::pricing::TokenCounts;
use crate::providers::{
    ErrorKind, EventStream, FinishReason, Generation, ProviderError, StreamEvent, ToolCallDelta,
};
use crate::usage::UsageStatus;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug)]
pub enum Event {
    /// The stream opened at a candidate: before any delta, what it dropped (the faces
    /// name it in `x-gateway-dropped-params`, a header, so it must come first).
    Opened {
        dropped: Vec<&'static str>,
    },
    Delta(String),
    /// A fragment of a tool call (its id and name first, then pieces of its arguments).
    ToolCall(ToolCallDelta),
    Done(Box<GenerateResponse>),
    /// Before any delta: the request failed as a whole. After: the stream broke.
    Failed(GenerateError),
}

/// Starts a streamed generation on its own task and returns its events.
pub fn start(
    st: GenerateState,
    user_id: String,
    request_id: String,
    req: Generate,
) -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel(64);
    let lifecycle = st.lifecycle.clone();
    let id = request_id.clone();
    lifecycle.spawn(
        &id,
        Box::pin(async move {
            let outcome = async {
                let mut call = Call::begin(&st, &user_id, request_id, req).await?;
                run(&mut call, Delivery::Stream(&tx)).await
            }
            .await;
            let last = match outcome {
                Ok(done) => Event::Done(Box::new(done)),
                Err(e) => Event::Failed(e),
            };
            // A client that left no longer reads: nothing to tell it.
            let _ = tx.send(last).await;
        }),
    );
    rx
}

/// Forwards an opened stream's deltas, then records the one usage entry. Returns the
/// final answer (its text already sent), or the stream's break.
pub(super) async fn pump(
    call: &mut Call<'_>,
    c: &Candidate,
    mut events: Box<dyn EventStream>,
    tx: &mpsc::Sender<Event>,
) -> Result<GenerateResponse, GenerateError> {
    let mut seen = Seen::default();
    // A stream may outlive the deadline (it answered in time), up to its ceiling, which
    // ends before its reservation could stop counting; or it is cut at shutdown. Such
    // cuts are ours and say nothing about the provider's health.
    let cut_at = tokio::time::Instant::from_std(call.started + call.st.config.stream_ceiling());
    let shutdown = call.st.lifecycle.shutdown.clone();
    let mut cut_by_us = false;
    if tx
        .send(Event::Opened {
            dropped: c.dropped.clone(),
        })
        .await
        .is_err()
    {
        seen.client_gone = true;
    }
    let failure: Option<ProviderError> = loop {
        let next = tokio::select! {
            r = events.next_events() => r,
            () = tokio::time::sleep_until(cut_at) => {
                cut_by_us = true;
                Err(ProviderError::new(ErrorKind::Timeout, "the stream reached its ceiling (LLM_STREAM_MAX_SECS)"))
            }
            () = shutdown.cancelled() => {
                cut_by_us = true;
                Err(ProviderError::new(ErrorKind::Timeout, "the gateway is shutting down"))
            }
        };
        match next {
            Ok(Some(batch)) => forward(batch, tx, &mut seen).await,
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    if let Some(e) = failure {
        if !cut_by_us {
            call.st.breakers.failure(c.breaker, e.kind);
        }
        call.note(&c.model, AttemptError::Provider(e.kind), Duration::ZERO);
        tracing::info!(request_id = %call.request_id, kind = e.kind.as_str(), detail = %scrub(&e.detail, c), "stream broke");
        // The provider's counts never arrived; the reservation is released and the
        // entry says what happened.
        let settlement = call.settlement(c, NanoUsd::ZERO);
        let entry = call.entry_for(
            c,
            TokenCounts::default(),
            Some(NanoUsd::ZERO),
            UsageStatus::Error,
            Some(e.kind.as_str().to_owned()),
        );
        if let Err(err) = call.finish(entry, Some(settlement)).await {
            tracing::error!(error = %err, "usage entry of a broken stream not written");
        }
        return Err(GenerateError::Upstream {
            failure: UpstreamFailure::StreamBroke,
            message: "the provider's stream broke off".into(),
            attempts: call.attempts.clone(),
        });
    }
    let client_gone = seen.client_gone;
    let tokens = seen.tokens.unwrap_or_default();
    let cost = c.model.cost(&tokens);
    let settlement = call.settlement(c, cost.unwrap_or(NanoUsd::ZERO));
    let error_type = client_gone.then(|| "client_disconnected".to_owned());
    let entry = call.entry_for(c, tokens, cost, UsageStatus::Success, error_type);
    if let Err(err) = call.finish(entry, Some(settlement)).await {
        tracing::error!(error = %err, "usage entry of a stream not written");
    }
    if client_gone {
        tracing::debug!(request_id = %call.request_id, "client left mid-stream; usage recorded");
    }
    // The text and the calls went out as deltas; the final answer carries the rest.
    let finish_reason = match seen.finish_reason {
        Some(r) => Some(r),
        None if seen.tool_calls => Some(FinishReason::ToolCalls),
        None => None,
    };
    let done = Generation {
        content: String::new(),
        tool_calls: Vec::new(),
        model: c.model.id.clone(),
        tokens,
        finish_reason,
        logprobs: None,
        rate_limit: None,
    };
    Ok(call.answer(c, done, cost))
}

/// What a stream has shown so far.
#[derive(Default)]
struct Seen {
    client_gone: bool,
    tokens: Option<TokenCounts>,
    finish_reason: Option<FinishReason>,
    tool_calls: bool,
}

async fn forward(events: Vec<StreamEvent>, tx: &mpsc::Sender<Event>, seen: &mut Seen) {
    for event in events {
        let out = match event {
            StreamEvent::Delta(d) if d.is_empty() => continue,
            StreamEvent::Delta(d) => Event::Delta(d),
            StreamEvent::ToolCall(t) => {
                seen.tool_calls = true;
                Event::ToolCall(t)
            }
            StreamEvent::Usage(u) => {
                seen.tokens = Some(u);
                continue;
            }
            StreamEvent::Done { finish_reason } => {
                seen.finish_reason = finish_reason;
                continue;
            }
        };
        if !seen.client_gone && tx.send(out).await.is_err() {
            // Keep reading upstream: its final usage is what gets recorded.
            seen.client_gone = true;
        }
    }
}
