//! The socket side of `llm-local`: an accept loop that serves the axum router over
//! hyper's HTTP/1 connection, with the limits a server on an open port needs and
//! `axum::serve` does not give: a request head must arrive in time, a request body must
//! arrive in time, the number of open connections is capped, and shutdown is bounded.
//!
//! Why each limit exists:
//! - Header timeout: a client that opens a socket and never finishes its request head
//!   (slowloris) would otherwise hold a file descriptor forever. hyper's http1
//!   `header_read_timeout` restarts its timer when a keep-alive connection goes idle
//!   after a response, so the same bound also closes idle keep-alive connections; no
//!   separate idle timer is needed (the `e2e_server` tests check both).
//! - Body timeout: hyper has no request-body timeout; a body that trickles one byte a
//!   second would pin a handler. Only request bodies are limited: responses (SSE streams
//!   of generate) may legitimately last long.
//! - Connection cap: past it the loop stops accepting and the kernel's backlog holds new
//!   clients, instead of the process running out of descriptors.
//! - Shutdown: stop accepting, let in-flight requests finish, force-close the rest after
//!   a grace period, so a stuck client cannot keep the process (and the usage writer's
//!   final drain) from finishing.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, header};
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The server's limits, from the environment (see README, "Configuration").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time a client has to send a complete request head, counted from the moment the
    /// connection is accepted or, on keep-alive, from the end of the previous response.
    pub header_timeout: Duration,
    /// Time a client has to send a complete request body, counted from its head.
    pub body_timeout: Duration,
    /// Open connections at most; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Requests per keep-alive connection before the server asks the client to
    /// reconnect (`Connection: close`); `None` for no limit.
    pub max_requests_per_connection: Option<u64>,
    /// How long in-flight requests may run after a shutdown signal before their
    /// connections are closed anyway.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_requests_per_connection: None,
            shutdown_grace: Duration::from_secs(12),
        }
    }
}

impl Limits {
    /// Reads `LLM_HEADER_TIMEOUT_SECS`, `LLM_BODY_TIMEOUT_SECS`, `LLM_MAX_CONNECTIONS`,
    /// `LLM_MAX_REQUESTS_PER_CONNECTION` and `LLM_SHUTDOWN_GRACE_SECS`. A value that is
    /// not a positive integer is logged and replaced by the default: a typo must not
    /// leave the socket without its limits, nor keep the gateway from starting.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let d = Limits::default();
        let positive = |name: &str| -> Option<u64> {
            let raw = get(name)?;
            match raw.trim().parse::<u64>() {
                Ok(v) if v > 0 => Some(v),
                _ => {
                    tracing::warn!(
                        variable = name,
                        value = %raw,
                        "not a positive integer; using the default"
                    );
                    None
                }
            }
        };
        let secs =
            |name: &str, default: Duration| positive(name).map_or(default, Duration::from_secs);
        Limits {
            header_timeout: secs("LLM_HEADER_TIMEOUT_SECS", d.header_timeout),
            body_timeout: secs("LLM_BODY_TIMEOUT_SECS", d.body_timeout),
            max_connections: positive("LLM_MAX_CONNECTIONS")
                .and_then(|v| usize::try_from(v).ok())
                // tokio's semaphore holds at most this many permits.
                .map_or(d.max_connections, |v| v.min(Semaphore::MAX_PERMITS)),
            max_requests_per_connection: positive("LLM_MAX_REQUESTS_PER_CONNECTION"),
            shutdown_grace: secs("LLM_SHUTDOWN_GRACE_SECS", d.shutdown_grace),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets
/// open connections finish their requests for up to `limits.shutdown_grace`, closes
/// whatever is still open, and returns. When it returns no connection is left and every
/// clone of the router it was given has been dropped, so the caller can drain what the
/// handlers left behind (background tasks, the usage writer).
///
/// Accept errors are retried with a short back-off: running out of descriptors
/// (EMFILE/ENFILE) is a condition to wait out, not a reason to stop serving the
/// connections already open. Only an error that says the socket itself is unusable
/// (`InvalidInput`: not a listening socket) ends the loop, after the same drain.
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: F,
) -> Result<(), io::Error>
where
    F: Future<Output = ()> + Send,
{
    let mut shutdown = std::pin::pin!(shutdown);
    let (stop_tx, stop_rx) = watch::channel(());
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let mut backoff = Backoff::default();
    let mut cap_logged = false;
    let mut outcome = Ok(());

    loop {
        // Reap finished connections so the set only holds open ones.
        while connections.try_join_next().is_some() {}

        if permits.available_permits() == 0 && !cap_logged {
            tracing::warn!(
                max_connections = limits.max_connections,
                "connection cap reached; new clients wait in the backlog"
            );
            cap_logged = true;
        }
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                // Never closed while this loop runs; treat it as a stop all the same.
                Err(_) => break,
            },
        };
        if permits.available_permits() > 0 {
            cap_logged = false;
        }

        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, _peer)) => {
                backoff.reset();
                connections.spawn(connection(
                    tcp,
                    router.clone(),
                    limits,
                    stop_rx.clone(),
                    permit,
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                tracing::error!(error = %e, "listener unusable; stopping");
                outcome = Err(e);
                break;
            }
            Err(e) => {
                let wait = backoff.next();
                tracing::warn!(
                    error = %e,
                    retry_in_ms = wait.as_millis() as u64,
                    "accept failed; retrying"
                );
                drop(permit);
                // Still answer a shutdown signal while backing off.
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    // Closing the listener first: new clients are refused while the rest drain.
    drop(listener);
    drop(router);
    let open = connections.len();
    tracing::info!(
        open_connections = open,
        grace_secs = limits.shutdown_grace.as_secs(),
        "stopped accepting; draining connections"
    );
    // Each connection finishes the request it is on, then closes (idle ones at once).
    let _ = stop_tx.send(());
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    let forced = connections.len();
    if !drained {
        // Dropping a connection's task closes its socket and cancels its handler.
        connections.shutdown().await;
    }
    tracing::info!(
        connections = open,
        force_closed = forced,
        "connections drained"
    );
    outcome
}

/// Exponential back-off for accept errors: 10 ms doubling up to 1 s, so a descriptor
/// shortage neither spins the loop nor floods the log.
#[derive(Default)]
struct Backoff {
    last: Option<Duration>,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let next = self.last.map_or(Duration::from_millis(10), |d| {
            (d * 2).min(Duration::from_secs(1))
        });
        self.last = Some(next);
        next
    }

    fn reset(&mut self) {
        self.last = None;
    }
}

/// One connection: HTTP/1 with the header timeout, every request body under the body
/// timeout, until the client leaves, a limit closes it, or shutdown asks it to finish.
async fn connection(
    tcp: TcpStream,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<()>,
    _permit: OwnedSemaphorePermit,
) {
    // Small JSON bodies go out with their headers: no Nagle delay on either side.
    let _ = tcp.set_nodelay(true);
    let served = Arc::new(AtomicU64::new(0));
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        handle(req, router.clone(), limits, served.clone())
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(tcp), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        // The sender lives until every connection is done, so an error here cannot
        // happen; either way the answer is to finish gracefully.
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    // Timeouts, resets and malformed requests are the client's business and common under
    // load: debug, not warn, so a slowloris burst does not flood the log.
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection closed with an error");
    }
}

async fn handle(
    req: Request<Incoming>,
    router: Router,
    limits: Limits,
    served: Arc<AtomicU64>,
) -> Result<Response<Body>, Infallible> {
    let timed_out = Arc::new(AtomicBool::new(false));
    let req = req.map(|body| {
        Body::new(TimedBody {
            inner: body,
            deadline: tokio::time::Instant::now() + limits.body_timeout,
            sleep: None,
            timed_out: timed_out.clone(),
            limit: limits.body_timeout,
        })
    });
    let mut response = match router.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    if timed_out.load(Ordering::Acquire) {
        // The handler saw a failed body read (a 400 of its own); the client is owed the
        // reason. The connection cannot be reused: the rest of the body is still unread.
        response = body_timeout_response(&response, limits.body_timeout);
    }
    let n = served.fetch_add(1, Ordering::Relaxed) + 1;
    if limits
        .max_requests_per_connection
        .is_some_and(|max| n >= max)
    {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// `408` in the API's error shape, with the id the request-id layer gave the request so
/// that the client and the access log agree on it.
fn body_timeout_response(handled: &Response<Body>, limit: Duration) -> Response<Body> {
    let request_id = handled
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    tracing::warn!(
        request_id = %request_id,
        handler_status = handled.status().as_u16(),
        limit_secs = limit.as_secs(),
        "request body not received in time; answered 408"
    );
    let error = shared::ApiError::RequestTimeout(limit.as_secs());
    let body = error.envelope(&request_id);
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = error.status();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if let Some(id) = handled.headers().get("x-request-id") {
        headers.insert("x-request-id", id.clone());
    }
    response
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("request body not received within {} s", .0.as_secs())]
    TimedOut(Duration),
    #[error(transparent)]
    Read(#[from] hyper::Error),
}

/// A request body that fails once its deadline passes. The timer is only armed when the
/// body is first waited on, so requests whose body is never read (or arrives at once)
/// cost no timer.
struct TimedBody {
    inner: Incoming,
    deadline: tokio::time::Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    timed_out: Arc<AtomicBool>,
    limit: Duration,
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BodyError::from)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.timed_out.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(BodyError::TimedOut(this.limit))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn limits(vars: &[(&str, &str)]) -> Limits {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Limits::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(limits(&[]), Limits::default());
        let l = limits(&[
            ("LLM_HEADER_TIMEOUT_SECS", "2"),
            ("LLM_BODY_TIMEOUT_SECS", " 5 "),
            ("LLM_MAX_CONNECTIONS", "7"),
            ("LLM_MAX_REQUESTS_PER_CONNECTION", "100"),
            ("LLM_SHUTDOWN_GRACE_SECS", "3"),
        ]);
        assert_eq!(l.header_timeout, Duration::from_secs(2));
        assert_eq!(l.body_timeout, Duration::from_secs(5));
        assert_eq!(l.max_connections, 7);
        assert_eq!(l.max_requests_per_connection, Some(100));
        assert_eq!(l.shutdown_grace, Duration::from_secs(3));
    }

    #[test]
    fn bad_values_keep_the_defaults() {
        let l = limits(&[
            ("LLM_HEADER_TIMEOUT_SECS", "0"),
            ("LLM_BODY_TIMEOUT_SECS", "ten"),
            ("LLM_MAX_CONNECTIONS", "-1"),
            ("LLM_SHUTDOWN_GRACE_SECS", ""),
        ]);
        assert_eq!(l, Limits::default());
    }

    #[test]
    fn backoff_doubles_up_to_a_second_and_resets() {
        let mut b = Backoff::default();
        assert_eq!(b.next(), Duration::from_millis(10));
        assert_eq!(b.next(), Duration::from_millis(20));
        for _ in 0..10 {
            b.next();
        }
        assert_eq!(b.next(), Duration::from_secs(1));
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(10));
    }
}
