//! The generate function behind a streaming front door (API Gateway REST API with
//! `responseTransferMode = STREAM`, which invokes it through `InvokeWithResponseStream`).
//! lambda_http's streaming runner sends each answer as Lambda's HTTP integration
//! response: a JSON prelude (status, headers, cookies), eight NUL bytes, then the body
//! as it is produced, so an SSE delta leaves when the provider's delta arrives. A JSON
//! answer is a stream of one chunk.
//!
//! The runtime polls for the next event as soon as the response is sent, and the
//! execution environment may be frozen from then on. A client that leaves mid-stream
//! ends the response early while its generation task is still reading the provider and
//! recording usage, so every invocation waits for the generation tasks it started
//! (bounded by the stream ceiling) before the runtime may ask for the next one.

use lambda_http::lambda_runtime::LambdaInvocation;
use lambda_http::tower::{Layer, Service};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio_util::task::TaskTracker;

/// How the function answers, from `LAMBDA_RESPONSE_MODE`: `buffered` (the default, for
/// an HTTP API integration, which reads one whole response) or `streaming` (for the REST
/// API's streaming integration). A function in one mode cannot serve the other's front
/// door, so Terraform sets it with the integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    Buffered,
    Streaming,
}

impl ResponseMode {
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim) {
            None | Some("") | Some("buffered") => Ok(ResponseMode::Buffered),
            Some("streaming") => Ok(ResponseMode::Streaming),
            Some(other) => Err(format!("{other:?} is neither buffered nor streaming")),
        }
    }
}

/// Makes each invocation wait, after its response is sent (or cut), for every task on
/// `tasks` to finish: the generations, their usage entries and their settlements.
#[derive(Clone)]
pub struct DrainTasks {
    pub tasks: TaskTracker,
}

impl<S> Layer<S> for DrainTasks {
    type Service = Drained<S>;

    fn layer(&self, inner: S) -> Drained<S> {
        Drained {
            inner,
            tasks: self.tasks.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Drained<S> {
    inner: S,
    tasks: TaskTracker,
}

type BoxError = lambda_http::Error;

impl<S> Service<LambdaInvocation> for Drained<S>
where
    S: Service<LambdaInvocation, Response = (), Error = BoxError>,
    S::Future: 'static,
{
    type Response = ();
    type Error = BoxError;
    // Not `Send`: lambda_http's streaming service future is not, and the sequential
    // runner polls it on its own task.
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let sent = self.inner.call(invocation);
        let tasks = self.tasks.clone();
        Box::pin(async move {
            let outcome = sent.await;
            // One invocation at a time (the runner is sequential): closing, waiting and
            // reopening the tracker waits for exactly this invocation's tasks.
            if !tasks.is_empty() {
                tracing::info!(
                    tasks = tasks.len(),
                    "response sent; waiting for its generation to record usage"
                );
            }
            tasks.close();
            tasks.wait().await;
            tasks.reopen();
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_anything_else_is_refused() {
        assert_eq!(ResponseMode::parse(None), Ok(ResponseMode::Buffered));
        assert_eq!(ResponseMode::parse(Some("")), Ok(ResponseMode::Buffered));
        assert_eq!(
            ResponseMode::parse(Some("streaming")),
            Ok(ResponseMode::Streaming)
        );
        assert!(ResponseMode::parse(Some("STREAM")).is_err());
    }
}
