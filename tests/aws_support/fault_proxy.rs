//! A fault-injecting HTTP proxy between the AWS SDK and the emulator, on loopback. It
//! forwards every request to ministack unless a rule of its plan matches the request's
//! `X-Amz-Target` (and, optionally, a string in its body): then it answers as DynamoDB
//! or Secrets Manager does when they throttle, conflict or fail, resets the connection,
//! or (the nasty one) forwards the request and drops the answer, so the write landed and
//! the SDK, seeing only a reset, sends it again.
//!
//! The SDK is pointed at it with `endpoint_url`; both services share the one port, as
//! they do in the emulator.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub const TRANSACT_WRITE_ITEMS: &str = "DynamoDB_20120810.TransactWriteItems";
pub const PUT_ITEM: &str = "DynamoDB_20120810.PutItem";
pub const GET_ITEM: &str = "DynamoDB_20120810.GetItem";
pub const UPDATE_ITEM: &str = "DynamoDB_20120810.UpdateItem";
pub const GET_SECRET_VALUE: &str = "secretsmanager.GetSecretValue";
pub const PUT_SECRET_VALUE: &str = "secretsmanager.PutSecretValue";

/// What the proxy does instead of (or after) forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// DynamoDB's `ThrottlingException` (400), as an on-demand table sends past its
    /// throughput.
    Throttling,
    /// DynamoDB's `ProvisionedThroughputExceededException` (400).
    ProvisionedThroughputExceeded,
    /// `TransactionCanceledException` (400): the first item lost to a concurrent
    /// transaction (`TransactionConflict`), the others `None`. Nothing was written.
    TransactionConflict,
    /// DynamoDB's `InternalServerError` (500).
    InternalServerError,
    /// Secrets Manager's `InternalServiceError` (500).
    SecretsInternalError,
    /// Secrets Manager's `ThrottlingException` (400).
    SecretsThrottling,
    /// The connection is reset (RST) before any answer; nothing is forwarded.
    Reset,
    /// The request is forwarded and applied; its answer is dropped and the connection
    /// reset, so the caller cannot tell that the write happened.
    ForwardThenDrop,
}

/// Which requests a rule matches, what it does to them, and how many more times.
#[derive(Debug, Clone)]
pub struct Rule {
    target: String,
    body_contains: Option<String>,
    body_lacks: Option<String>,
    fault: Fault,
    /// `None`: every matching request.
    remaining: Option<u32>,
}

impl Rule {
    /// Every request to the `X-Amz-Target` operation `target`.
    pub fn on(target: &str, fault: Fault) -> Self {
        Rule {
            target: target.to_owned(),
            body_contains: None,
            body_lacks: None,
            fault,
            remaining: None,
        }
    }

    /// Only requests whose body contains `s` (a sort key prefix tells a usage
    /// transaction, `rollup#`, from a reservation, `resv#`).
    pub fn containing(mut self, s: &str) -> Self {
        self.body_contains = Some(s.to_owned());
        self
    }

    /// Only requests whose body does not contain `s` (a usage transaction also settles
    /// its reservation, so it names `resv#` too: a reservation is `resv#` without
    /// `rollup#`).
    pub fn excluding(mut self, s: &str) -> Self {
        self.body_lacks = Some(s.to_owned());
        self
    }

    /// The same requests, another fault.
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = fault;
        self
    }

    /// The first `n` matching requests; later ones pass.
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    fn matches(&self, target: &str, body: &[u8]) -> bool {
        self.remaining != Some(0)
            && self.target == target
            && self
                .body_contains
                .as_ref()
                .is_none_or(|s| contains(body, s.as_bytes()))
            && self
                .body_lacks
                .as_ref()
                .is_none_or(|s| !contains(body, s.as_bytes()))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// One request the proxy saw: its operation, its body and the fault it got (`None`:
/// forwarded).
#[derive(Debug, Clone)]
pub struct Seen {
    pub target: String,
    pub body: Bytes,
    pub fault: Option<Fault>,
}

impl Seen {
    pub fn contains(&self, s: &str) -> bool {
        contains(&self.body, s.as_bytes())
    }
}

#[derive(Default)]
struct Plan {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
}

#[derive(Clone)]
pub struct FaultProxy {
    url: String,
    plan: Arc<Mutex<Plan>>,
    stop: Arc<Notify>,
}

impl FaultProxy {
    /// A proxy on a free loopback port forwarding to `upstream` (`http://127.0.0.1:port`),
    /// until [`FaultProxy::stop`] or the end of the test process.
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let proxy = FaultProxy {
            url,
            plan: Arc::new(Mutex::new(Plan::default())),
            stop: Arc::new(Notify::new()),
        };
        let forward = Forward {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            plan: proxy.plan.clone(),
        };
        let stop = proxy.stop.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                    () = stop.notified() => return,
                };
                // A dropped connection is then a reset (RST), not an orderly close.
                let _ = stream.set_zero_linger();
                let forward = forward.clone();
                tokio::spawn(async move { forward.serve(stream).await });
            }
        });
        proxy
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn add(&self, rule: Rule) {
        self.plan.lock().unwrap().rules.push(rule);
    }

    /// Removes every rule (the requests seen stay).
    pub fn clear(&self) {
        self.plan.lock().unwrap().rules.clear();
    }

    /// Every request seen so far, in order, and forgets them.
    pub fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut self.plan.lock().unwrap().seen)
    }

    /// How many requests `rule` would match (ignoring its count) were seen.
    pub fn count(&self, rule: &Rule) -> usize {
        let rule = Rule {
            remaining: None,
            ..rule.clone()
        };
        self.plan
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|r| rule.matches(&r.target, &r.body))
            .count()
    }

    pub fn stop(&self) {
        self.stop.notify_one();
    }
}

#[derive(Clone)]
struct Forward {
    upstream: String,
    client: reqwest::Client,
    plan: Arc<Mutex<Plan>>,
}

/// What to do with one request.
enum Action {
    Answer(Response<Full<Bytes>>),
    /// Drop the connection without answering.
    Reset,
}

impl Forward {
    async fn serve(self, stream: tokio::net::TcpStream) {
        // Set by a request whose fault is a reset: the connection is dropped at once.
        let kill = Arc::new(Notify::new());
        let service = {
            let kill = kill.clone();
            hyper::service::service_fn(move |req: Request<Incoming>| {
                let this = self.clone();
                let kill = kill.clone();
                async move {
                    match this.handle(req).await {
                        Action::Answer(r) => Ok::<_, Infallible>(r),
                        Action::Reset => {
                            kill.notify_one();
                            std::future::pending().await
                        }
                    }
                }
            })
        };
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        tokio::select! {
            _ = conn => {}
            () = kill.notified() => {}
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Action {
        let (parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return Action::Reset,
        };
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let fault = {
            let mut plan = self.plan.lock().unwrap();
            let fault = plan
                .rules
                .iter_mut()
                .find(|r| r.matches(&target, &body))
                .map(|r| {
                    if let Some(n) = r.remaining.as_mut() {
                        *n -= 1;
                    }
                    r.fault
                });
            plan.seen.push(Seen {
                target: target.clone(),
                body: body.clone(),
                fault,
            });
            fault
        };
        match fault {
            None => match self.forward(&parts, body).await {
                Some(r) => Action::Answer(r),
                None => Action::Reset,
            },
            Some(Fault::ForwardThenDrop) => {
                // Wait for the emulator to have applied it, then lose the answer.
                let _ = self.forward(&parts, body).await;
                Action::Reset
            }
            Some(Fault::Reset) => Action::Reset,
            Some(f) => Action::Answer(fault_response(f, &body)),
        }
    }

    /// The emulator's answer, or `None` when it could not be reached (then the caller's
    /// connection is reset, as if nothing listened).
    async fn forward(
        &self,
        parts: &hyper::http::request::Parts,
        body: Bytes,
    ) -> Option<Response<Full<Bytes>>> {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = self
            .client
            .request(parts.method.clone(), format!("{}{path}", self.upstream))
            .body(body);
        for (name, value) in &parts.headers {
            if !matches!(
                name.as_str(),
                "content-length" | "transfer-encoding" | "connection"
            ) {
                request = request.header(name, value);
            }
        }
        let answer = request.send().await.ok()?;
        let mut response = Response::builder().status(answer.status());
        for (name, value) in answer.headers() {
            if !matches!(
                name.as_str(),
                "content-length" | "transfer-encoding" | "connection"
            ) {
                response = response.header(name, value);
            }
        }
        let bytes = answer.bytes().await.ok()?;
        response.body(Full::new(bytes)).ok()
    }
}

/// The answer DynamoDB (awsJson 1.0) or Secrets Manager (awsJson 1.1) sends for `fault`.
fn fault_response(fault: Fault, request: &[u8]) -> Response<Full<Bytes>> {
    const DYNAMODB: &str = "com.amazonaws.dynamodb.v20120810#";
    let (status, content_type, error_type, body) = match fault {
        Fault::Throttling => (
            StatusCode::BAD_REQUEST,
            "application/x-amz-json-1.0",
            "ThrottlingException",
            serde_json::json!({
                "__type": "com.amazon.coral.availability#ThrottlingException",
                "message": "Throughput exceeds the current capacity of your table or index.",
            }),
        ),
        Fault::ProvisionedThroughputExceeded => (
            StatusCode::BAD_REQUEST,
            "application/x-amz-json-1.0",
            "ProvisionedThroughputExceededException",
            serde_json::json!({
                "__type": format!("{DYNAMODB}ProvisionedThroughputExceededException"),
                "message": "The level of configured provisioned throughput for the table was exceeded.",
            }),
        ),
        Fault::TransactionConflict => {
            let items = serde_json::from_slice::<serde_json::Value>(request)
                .ok()
                .and_then(|v| v["TransactItems"].as_array().map(Vec::len))
                .unwrap_or(1)
                .max(1);
            let mut reasons = vec![serde_json::json!({
                "Code": "TransactionConflict",
                "Message": "Transaction is ongoing for the item",
            })];
            reasons.extend((1..items).map(|_| serde_json::json!({"Code": "None"})));
            let codes: Vec<&str> = std::iter::once("TransactionConflict")
                .chain((1..items).map(|_| "None"))
                .collect();
            (
                StatusCode::BAD_REQUEST,
                "application/x-amz-json-1.0",
                "TransactionCanceledException",
                serde_json::json!({
                    "__type": format!("{DYNAMODB}TransactionCanceledException"),
                    "Message": format!(
                        "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                        codes.join(", ")
                    ),
                    "CancellationReasons": reasons,
                }),
            )
        }
        Fault::InternalServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/x-amz-json-1.0",
            "InternalServerError",
            serde_json::json!({
                "__type": format!("{DYNAMODB}InternalServerError"),
                "message": "Internal server error",
            }),
        ),
        Fault::SecretsInternalError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/x-amz-json-1.1",
            "InternalServiceError",
            serde_json::json!({
                "__type": "InternalServiceError",
                "Message": "An error occurred on the server side.",
            }),
        ),
        Fault::SecretsThrottling => (
            StatusCode::BAD_REQUEST,
            "application/x-amz-json-1.1",
            "ThrottlingException",
            serde_json::json!({"__type": "ThrottlingException", "Message": "Rate exceeded"}),
        ),
        Fault::Reset | Fault::ForwardThenDrop => unreachable!("not an answer"),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-amzn-errortype", format!("{error_type}:"))
        .header("x-amzn-requestid", uuid::Uuid::new_v4().to_string())
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}
