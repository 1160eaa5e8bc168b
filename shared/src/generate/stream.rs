//! Streamed generation. Failover is possible until the first byte of an answer; after
//! that, text deltas flow to the client through a channel. A client that disconnects
//! does not stop the accounting: the upstream stream is read to its end so the usage
//! entry carries the provider's own token counts.

use super::request::Generate;
use super::{Attempt, Call, Candidate, GenerateResponse, GenerateState, UsageView, ms};
use crate::error::ApiError;
use crate::money::NanoUsd;
use crate::pricing::{ModelPrice, TokenCounts};
use crate::provider::Provider;
use crate::providers::{ErrorKind, ProviderError, StreamEvent, StreamParser};
use crate::settings::BudgetAction;
use crate::usage::UsageStatus;
use tokio::sync::mpsc;

/// How long before its reservation's lease ends a stream is cut.
const STREAM_LEASE_MARGIN: std::time::Duration = std::time::Duration::from_secs(3);

#[derive(Debug)]
pub enum Event {
    Delta(String),
    Done(Box<GenerateResponse>),
    /// Before any delta: the request failed as a whole. After: the stream broke.
    Failed(ApiError),
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
    lifecycle.spawn(&id, async move {
        run(&st, &user_id, request_id, req, &tx).await
    });
    rx
}

async fn run(
    st: &GenerateState,
    user_id: &str,
    request_id: String,
    req: Generate,
    tx: &mpsc::Sender<Event>,
) {
    let mut call = match Call::begin(st, user_id, request_id, req).await {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Event::Failed(e)).await;
            return;
        }
    };
    let plan = match call.plan() {
        Ok(p) => p,
        Err(e) => {
            let _ = tx.send(Event::Failed(e)).await;
            return;
        }
    };
    let mut last: Option<(ModelPrice, ProviderError)> = None;
    for (i, model) in plan.iter().enumerate() {
        if call.out_of_time() {
            last.get_or_insert_with(|| (model.clone(), super::out_of_time()));
            break;
        }
        let prepared = match call.prepare(model, true).await {
            Ok(None)
                if i == 0
                    && call.prefs().budget_action == BudgetAction::Downgrade
                    && call
                        .attempts
                        .last()
                        .is_some_and(|a| a.error == "budget_exceeded") =>
            {
                call.downgrade(true).await
            }
            other => other,
        };
        let c = match prepared {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                let _ = tx.send(Event::Failed(e)).await;
                return;
            }
        };
        let opened = if c.model.provider == Provider::Bedrock {
            // Bedrock's ConverseStream is not wired: its whole answer is one delta.
            call.complete(&c).await.map(Opened::Whole)
        } else {
            let st2 = call.st;
            let azure = call.prefs().azure_resource.clone();
            call.with_retries(&c, || open_once(st2, azure.as_deref(), &c))
                .await
        };
        match opened {
            Ok(opened) => {
                pump(&mut call, c, opened, tx).await;
                return;
            }
            Err(e) => {
                if let Err(err) = call.release(&c).await {
                    tracing::error!(error = %err, "reservation not released");
                }
                let client_fault = matches!(
                    e.kind,
                    ErrorKind::InvalidRequest | ErrorKind::ContextLengthExceeded
                );
                last = Some((c.model.clone(), e));
                if client_fault {
                    break;
                }
            }
        }
    }
    let err = call
        .fail(last.as_ref().map(|(m, e)| (m, e.clone())), &plan)
        .await;
    let _ = tx.send(Event::Failed(err)).await;
}

pub enum Opened {
    Stream(reqwest::Response, Box<dyn StreamParser>),
    Whole(crate::providers::Generation),
}

async fn open_once(
    st: &GenerateState,
    azure: Option<&str>,
    c: &Candidate,
) -> Result<Opened, ProviderError> {
    let providers = &st.app.providers;
    let wire = crate::providers::registry::wire(c.model.provider)
        .ok_or_else(|| ProviderError::new(ErrorKind::InvalidRequest, "no adapter"))?;
    let endpoint = providers.endpoint(c.model.provider, azure)?;
    let request = wire.chat_request(&endpoint, c.key.as_ref(), &c.chat)?;
    let response = providers.transport.open_stream(request).await?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        return Err(wire.classify_error(status, &headers, &body));
    }
    Ok(Opened::Stream(response, wire.stream_parser()))
}

/// Forwards deltas, then records the one usage entry and sends the final event.
async fn pump(call: &mut Call<'_>, c: Candidate, opened: Opened, tx: &mpsc::Sender<Event>) {
    let mut client_gone = false;
    let mut tokens: Option<TokenCounts> = None;
    let mut failure: Option<ProviderError> = None;
    match opened {
        Opened::Whole(g) => {
            client_gone = tx.send(Event::Delta(g.content)).await.is_err();
            tokens = Some(g.tokens);
        }
        Opened::Stream(mut response, mut parser) => {
            let transport = &call.st.app.providers.transport;
            // A stream may outlive the deadline (it answered in time), not its lease: it
            // is cut before its reservation could stop counting, or at shutdown.
            let cut_at = tokio::time::Instant::from_std(
                call.started + call.st.config.lease.saturating_sub(STREAM_LEASE_MARGIN),
            );
            let shutdown = call.st.lifecycle.shutdown.clone();
            loop {
                let next = tokio::select! {
                    r = transport.next_chunk(&mut response) => r,
                    () = tokio::time::sleep_until(cut_at) => Err(ProviderError::new(
                        ErrorKind::Timeout, "the stream outlived its reservation's lease")),
                    () = shutdown.cancelled() => Err(ProviderError::new(
                        ErrorKind::Timeout, "the gateway is shutting down")),
                };
                let events = match next {
                    Ok(Some(chunk)) => parser.feed(&chunk),
                    Ok(None) => {
                        let done = parser.finish();
                        match done {
                            Ok(events) => {
                                forward(events, tx, &mut client_gone, &mut tokens).await;
                            }
                            Err(e) => failure = Some(e),
                        }
                        break;
                    }
                    Err(e) => Err(e),
                };
                match events {
                    Ok(events) => forward(events, tx, &mut client_gone, &mut tokens).await,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
    }
    if let Some(e) = failure {
        call.st.breakers.failure(c.breaker, e.kind);
        call.note(&c.model, e.kind.as_str(), std::time::Duration::ZERO);
        tracing::info!(request_id = %call.request_id, kind = e.kind.as_str(), detail = %super::scrub(&e.detail, &c), "stream broke");
        // The provider's counts never arrived; the reservation is released and the
        // entry says what happened.
        let settlement = call.settlement(&c, NanoUsd::ZERO);
        let entry = call.entry(
            &c.model,
            TokenCounts::default(),
            Some(NanoUsd::ZERO),
            UsageStatus::Error,
            Some(e.kind.as_str().to_owned()),
        );
        if let Err(err) = call.finish(entry, Some(settlement)).await {
            tracing::error!(error = %err, "usage entry of a broken stream not written");
        }
        let _ = tx
            .send(Event::Failed(ApiError::Upstream {
                status: axum::http::StatusCode::BAD_GATEWAY,
                code: "provider_error",
                message: "the provider's stream broke off".into(),
                retry_after_secs: None,
                attempts: serde_json::to_value(&call.attempts).unwrap_or_default(),
            }))
            .await;
        return;
    }
    let tokens = tokens.unwrap_or_default();
    let cost = call
        .st
        .app
        .catalog
        .cost(c.model.provider, &c.model.id, &tokens);
    let settlement = call.settlement(&c, cost.unwrap_or(NanoUsd::ZERO));
    let error_type = client_gone.then(|| "client_disconnected".to_owned());
    let entry = call.entry(&c.model, tokens, cost, UsageStatus::Success, error_type);
    if let Err(err) = call.finish(entry, Some(settlement)).await {
        tracing::error!(error = %err, "usage entry of a stream not written");
    }
    if client_gone {
        tracing::info!(request_id = %call.request_id, "client left mid-stream; usage recorded");
        return;
    }
    let attempts: Vec<Attempt> = call.attempts.clone();
    let response = GenerateResponse {
        content: String::new(),
        provider: c.model.provider,
        model: c.model.id.clone(),
        usage: UsageView {
            input_tokens: tokens.input_tokens,
            output_tokens: tokens.output_tokens,
            total_tokens: tokens.input_tokens + tokens.output_tokens,
            cached_input_tokens: tokens.cached_input_tokens,
            cost_usd: cost,
            latency_ms: ms(call.started.elapsed()),
            model: c.model.id.clone(),
            provider: c.model.provider,
        },
        request_id: call.request_id.clone(),
        cached: false,
        attempts,
    };
    let _ = tx.send(Event::Done(Box::new(response))).await;
}

async fn forward(
    events: Vec<StreamEvent>,
    tx: &mpsc::Sender<Event>,
    client_gone: &mut bool,
    tokens: &mut Option<TokenCounts>,
) {
    for event in events {
        match event {
            StreamEvent::Delta(d) => {
                if !*client_gone && tx.send(Event::Delta(d)).await.is_err() {
                    // Keep reading upstream: its final usage is what gets recorded.
                    *client_gone = true;
                }
            }
            StreamEvent::Usage(u) => *tokens = Some(u),
            StreamEvent::Done { .. } => {}
        }
    }
}
