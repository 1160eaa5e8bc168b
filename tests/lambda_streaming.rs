//! The `generate` binary in `LAMBDA_RESPONSE_MODE=streaming`, as API Gateway's REST API
//! streaming integration runs it, driven through a fake Lambda Runtime API on loopback
//! (the interface Lambda gives a custom runtime), on DynamoDB and Secrets Manager in
//! ministack, against a fake OpenAI upstream that holds its last deltas until the test
//! lets them go. What the function sends to the Runtime API is read byte by byte:
//! Lambda's HTTP integration response (JSON prelude, eight NUL bytes, then the body as it
//! is produced).
//!
//! Checked: the first delta reaches the Runtime API while the upstream has not yet sent
//! its last delta; the prelude carries the status and headers a client gets; a response
//! cut mid-stream (the client left) still leaves its usage entry, with the provider's
//! counts, before the function asks for its next event; JSON answers and refusals come
//! as one-chunk streams; a REST API Cognito authorizer's claims name the caller; the
//! streamed bytes equal what the same router sends over axum (llm-local's transport);
//! the saved key appears in no output of the function.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod aws_support;

use aws_support::fault_proxy::FaultProxy;
use aws_support::gateway::{Gateway, OPENAI_KEY, Options};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};
use tower::ServiceExt;

const MODEL: &str = aws_support::gateway::MODEL;
const FIRST: &str = "Failed logins ";
const LAST: &str = "by source IP.";

// ---------------------------------------------------------------------------------------
// The upstream: OpenAI's chat completions stream (its documented chunk shapes), whose
// second half waits for the test's release.

#[derive(Clone, Default)]
struct Upstream {
    release: Arc<Notify>,
    /// Set once the upstream sent its last delta: the proof that a chunk came earlier.
    finished: Arc<Mutex<Option<Instant>>>,
}

fn chunk(delta: serde_json::Value, finish: Option<&str>) -> String {
    let v = serde_json::json!({
        "id": "chatcmpl-stream", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": MODEL, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    });
    format!("data: {v}\n\n")
}

async fn completions(State(up): State<Upstream>, body: Bytes) -> Response {
    let req: serde_json::Value = serde_json::from_slice(&body).unwrap();
    if req["stream"] != true {
        return axum::Json(serde_json::json!({
            "id": "chatcmpl-json", "object": "chat.completion", "created": 1_700_000_000,
            "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "a whole answer"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 50, "total_tokens": 70}
        }))
        .into_response();
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::spawn(async move {
        let head = chunk(
            serde_json::json!({"role": "assistant", "content": ""}),
            None,
        ) + &chunk(serde_json::json!({"content": FIRST}), None);
        let _ = tx.send(Ok(Bytes::from(head))).await;
        up.release.notified().await;
        let tail = chunk(serde_json::json!({"content": LAST}), None)
            + &chunk(serde_json::json!({}), Some("stop"))
            + &format!(
                "data: {}\n\n",
                serde_json::json!({"id": "chatcmpl-stream", "object": "chat.completion.chunk",
                    "created": 1_700_000_000, "model": MODEL, "choices": [],
                    "usage": {"prompt_tokens": 20, "completion_tokens": 50, "total_tokens": 70}})
            )
            + "data: [DONE]\n\n";
        *up.finished.lock().unwrap() = Some(Instant::now());
        let _ = tx.send(Ok(Bytes::from(tail))).await;
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(tokio_stream_of(rx)))
        .unwrap()
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr.to_string()
}

// ---------------------------------------------------------------------------------------
// The Runtime API: hands out queued events, records every byte of each response as it
// arrives, and can cut a response after its first delta (a client that left).

#[derive(Debug)]
enum Seen {
    /// The function asked for its next event.
    Polled,
    /// The response's request headers.
    Opened(String, HeaderMap),
    Chunk(String, Bytes),
    Ended(String),
    Error(String, String),
}

#[derive(Clone)]
struct Runtime {
    events: Arc<tokio::sync::Mutex<mpsc::Receiver<(String, serde_json::Value)>>>,
    seen: mpsc::UnboundedSender<Seen>,
    cut: Arc<Mutex<Vec<String>>>,
}

async fn next(State(rt): State<Runtime>) -> Response {
    rt.seen.send(Seen::Polled).unwrap();
    let Some((id, event)) = rt.events.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline = chrono::Utc::now().timestamp_millis() + 900_000;
    Response::builder()
        .header("lambda-runtime-aws-request-id", &id)
        .header("lambda-runtime-deadline-ms", deadline.to_string())
        .header(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:generate",
        )
        .header(
            "lambda-runtime-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793",
        )
        .body(Body::from(event.to_string()))
        .unwrap()
}

async fn response(
    State(rt): State<Runtime>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    rt.seen.send(Seen::Opened(id.clone(), headers)).unwrap();
    let cut = rt.cut.lock().unwrap().contains(&id);
    let mut stream = body.into_data_stream();
    let mut so_far = Vec::new();
    while let Some(piece) = stream.next().await {
        let Ok(piece) = piece else { break };
        so_far.extend_from_slice(&piece);
        rt.seen.send(Seen::Chunk(id.clone(), piece)).unwrap();
        if cut && String::from_utf8_lossy(&so_far).contains(FIRST) {
            // The client is gone: the body is dropped unread and the connection closed.
            drop(stream);
            return ([("connection", "close")], StatusCode::ACCEPTED).into_response();
        }
    }
    rt.seen.send(Seen::Ended(id)).unwrap();
    StatusCode::ACCEPTED.into_response()
}

async fn error(State(rt): State<Runtime>, Path(id): Path<String>, body: String) -> StatusCode {
    rt.seen.send(Seen::Error(id, body)).unwrap();
    StatusCode::ACCEPTED
}

async fn init_error(State(rt): State<Runtime>, body: String) -> StatusCode {
    rt.seen.send(Seen::Error("init".into(), body)).unwrap();
    StatusCode::ACCEPTED
}

/// A REST API (v1) proxy event as API Gateway sends it behind a Cognito user-pool
/// authorizer, at stage `stream` (infra/streaming.tf).
fn rest_event(
    user: &str,
    path: &str,
    resource: &str,
    body: serde_json::Value,
    claims: bool,
) -> serde_json::Value {
    let authorizer = if claims {
        serde_json::json!({"claims": {"sub": user, "cognito:groups": "users",
                                      "token_use": "id", "email_verified": "true"}})
    } else {
        serde_json::Value::Null
    };
    serde_json::json!({
        "resource": resource, "path": path, "httpMethod": "POST",
        "headers": {"content-type": "application/json", "accept": "text/event-stream",
                    "Host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
                    "X-Forwarded-Proto": "https"},
        "multiValueHeaders": {"content-type": ["application/json"], "accept": ["text/event-stream"],
                              "Host": ["abcdef1234.execute-api.us-east-1.amazonaws.com"],
                              "X-Forwarded-Proto": ["https"]},
        "queryStringParameters": null, "multiValueQueryStringParameters": null,
        "pathParameters": null, "stageVariables": null,
        "requestContext": {"resourceId": "abc123", "resourcePath": resource, "httpMethod": "POST",
            "requestId": uuid::Uuid::new_v4().to_string(), "path": format!("/stream{path}"),
            "accountId": "123456789012", "protocol": "HTTP/1.1", "stage": "stream",
            "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com", "apiId": "abcdef1234",
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "openai-python/1.0"},
            "authorizer": authorizer},
        "body": body.to_string(), "isBase64Encoded": false
    })
}

/// One response as the Runtime API received it.
struct Streamed {
    headers: HeaderMap,
    prelude: serde_json::Value,
    body: Vec<u8>,
}

struct Harness {
    seen: mpsc::UnboundedReceiver<Seen>,
    events: mpsc::Sender<(String, serde_json::Value)>,
    cut: Arc<Mutex<Vec<String>>>,
}

impl Harness {
    async fn next_seen(&mut self, within: Duration) -> Option<Seen> {
        tokio::time::timeout(within, self.seen.recv())
            .await
            .ok()
            .flatten()
    }

    async fn expect_poll(&mut self) {
        match self.next_seen(Duration::from_secs(60)).await {
            Some(Seen::Polled) => {}
            other => panic!("expected the function to poll for its next event, got {other:?}"),
        }
    }

    async fn invoke(&mut self, id: &str, event: serde_json::Value) {
        self.events.send((id.to_owned(), event)).await.unwrap();
    }

    /// Invokes a streamed generation of `user`'s as `id` and reads its response up to the
    /// first delta.
    async fn stream_to_first_delta(
        &mut self,
        id: &str,
        user: &str,
        body: &serde_json::Value,
    ) -> Streamed {
        let path = format!("/api/llm-generate/{user}");
        let event = rest_event(
            user,
            &path,
            "/api/llm-generate/{userId}",
            body.clone(),
            true,
        );
        self.invoke(id, event).await;
        self.read(id, None, |b, _| String::from_utf8_lossy(b).contains(FIRST))
            .await
    }

    /// Reads the response to `id` until `until` holds for the body so far (or it ends).
    async fn read(
        &mut self,
        id: &str,
        mut r: Option<Streamed>,
        until: impl Fn(&[u8], bool) -> bool,
    ) -> Streamed {
        let mut raw = Vec::new();
        let mut headers = r.as_ref().map(|s| s.headers.clone());
        let mut ended = false;
        loop {
            if r.as_ref().is_some_and(|s| until(&s.body, ended)) {
                return r.unwrap();
            }
            match self.next_seen(Duration::from_secs(30)).await {
                Some(Seen::Opened(i, h)) if i == id => headers = Some(h),
                Some(Seen::Chunk(i, b)) if i == id => match &mut r {
                    Some(s) => s.body.extend_from_slice(&b),
                    None => {
                        raw.extend_from_slice(&b);
                        if let Some(at) = raw.windows(8).position(|w| w == [0u8; 8]) {
                            r = Some(Streamed {
                                headers: headers.clone().unwrap(),
                                prelude: serde_json::from_slice(&raw[..at]).unwrap(),
                                body: raw[at + 8..].to_vec(),
                            });
                        }
                    }
                },
                Some(Seen::Ended(i)) if i == id => {
                    ended = true;
                    if r.is_none() {
                        panic!("response {id} ended without a prelude: {raw:?}");
                    }
                }
                Some(Seen::Error(i, b)) => panic!("invocation {i} failed: {b}"),
                other => panic!("unexpected while reading {id}: {other:?}"),
            }
        }
    }
}

/// Cuts the varying parts (request ids, timings, times) out of a generate stream, so two
/// runs of the same upstream events compare equal.
fn normalized(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body).into_owned();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            out.push(line.to_owned());
            continue;
        };
        let mut v: serde_json::Value =
            serde_json::from_str(data).unwrap_or(serde_json::Value::Null);
        scrub(&mut v);
        out.push(format!("data: {v}"));
    }
    out.join("\n")
}

fn scrub(v: &mut serde_json::Value) {
    if let Some(map) = v.as_object_mut() {
        for (k, x) in map.iter_mut() {
            if [
                "requestId",
                "request_id",
                "latencyMs",
                "latency_ms",
                "timestamp",
                "created",
            ]
            .contains(&k.as_str())
            {
                *x = serde_json::Value::Null;
            } else {
                scrub(x);
            }
        }
    } else if let Some(items) = v.as_array_mut() {
        items.iter_mut().for_each(scrub);
    }
}

fn generate_binary() -> std::path::PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/generate
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("generate");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p generate`; make test-aws does)",
        bin.display()
    );
    bin
}

#[tokio::test]
#[ignore = "needs the AWS emulator and the generate binary; run by `make test-aws`"]
async fn the_generate_lambda_streams_deltas_as_they_arrive_and_records_before_its_next_event() {
    let emulator = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let upstream = Upstream::default();
    let upstream_url = serve(
        Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(upstream.clone()),
    )
    .await;
    let proxy = FaultProxy::start(&emulator).await;
    let gw = Gateway::start(
        &proxy,
        Options {
            openai_url: Some(format!("http://{upstream_url}/v1")),
            ..Options::default()
        },
    )
    .await;
    assert_eq!(gw.save_settings(None, true).await.status, StatusCode::OK);

    let (seen_tx, seen) = mpsc::unbounded_channel();
    let (events, events_rx) = mpsc::channel(4);
    let cut = Arc::new(Mutex::new(Vec::new()));
    let runtime = Runtime {
        events: Arc::new(tokio::sync::Mutex::new(events_rx)),
        seen: seen_tx,
        cut: cut.clone(),
    };
    let runtime_addr = serve(
        Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(runtime),
    )
    .await;
    let mut h = Harness { seen, events, cut };

    let log = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = tokio::process::Command::new(generate_binary());
    cmd.envs(gw.lambda_env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("AWS_ENDPOINT_URL", &emulator)
        .env(
            "LLM_PROVIDER_URL_OPENAI",
            format!("http://{upstream_url}/v1"),
        )
        .env("LAMBDA_RESPONSE_MODE", "streaming")
        .env("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true")
        .env("LLM_STREAM_MAX_SECS", "840")
        .env("AWS_LAMBDA_RUNTIME_API", &runtime_addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", "generate")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/generate")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::from(log.reopen().unwrap()))
        .stderr(Stdio::from(log.reopen().unwrap()))
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    h.expect_poll().await;

    // 1. A streamed generation: the first delta arrives while the upstream holds the rest.
    let user = gw.user.clone();
    let path = format!("/api/llm-generate/{user}");
    let body = serde_json::json!({"prompt": "Show me failed login attempts", "provider": "openai",
                                  "model": MODEL, "maxTokens": 64, "stream": true, "cache": false});
    let first = h.stream_to_first_delta("inv-1", &user, &body).await;
    assert!(
        upstream.finished.lock().unwrap().is_none(),
        "the first delta must leave before the upstream's last one exists"
    );
    assert_eq!(
        first.headers["lambda-runtime-function-response-mode"], "streaming",
        "{:?}",
        first.headers
    );
    assert_eq!(
        first.headers["content-type"],
        "application/vnd.awslambda.http-integration-response"
    );
    assert_eq!(first.prelude["statusCode"], 200, "{}", first.prelude);
    assert_eq!(
        first.prelude["headers"]["content-type"],
        "text/event-stream"
    );
    upstream.release.notify_one();
    let whole = h.read("inv-1", Some(first), |_, ended| ended).await;
    let text = String::from_utf8_lossy(&whole.body).into_owned();
    assert!(
        text.contains(LAST) && text.contains("event: done"),
        "{text}"
    );
    h.expect_poll().await;
    let entries = gw.entries().await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (entries[0].input_tokens, entries[0].output_tokens),
        (20, 50)
    );

    // The same upstream events through the same router over axum (llm-local's transport):
    // the same bytes, once the ids and timings are cut out.
    let local = {
        let req = Request::builder()
            .method("POST")
            .uri(&path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", gw.token))
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = gw.generate.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let release = upstream.release.clone();
        let collected =
            tokio::spawn(async move { resp.into_body().collect().await.unwrap().to_bytes() });
        tokio::time::sleep(Duration::from_millis(200)).await;
        release.notify_one();
        collected.await.unwrap()
    };
    assert_eq!(normalized(&whole.body), normalized(&local));

    // 2. The client leaves after the first delta: the Runtime API drops the response.
    // The function must not ask for its next event before the generation, still reading
    // the held upstream, has recorded its usage.
    h.cut.lock().unwrap().push("inv-2".into());
    let _ = h.stream_to_first_delta("inv-2", &user, &body).await;
    match h.next_seen(Duration::from_millis(1500)).await {
        None => {}
        Some(other) => panic!("the function moved on while its generation was running: {other:?}"),
    }
    assert_eq!(
        gw.entries().await.len(),
        2,
        "nothing recorded yet for the cut stream"
    );
    upstream.release.notify_one();
    h.expect_poll().await;
    let entries = gw.entries().await;
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert!(
        entries
            .iter()
            .all(|e| (e.input_tokens, e.output_tokens) == (20, 50)),
        "the cut stream was read to its end and counted: {entries:?}"
    );

    // 3. A JSON request through the OpenAI face: a one-chunk stream with its prelude.
    let json = serde_json::json!({"model": format!("openai/{MODEL}"), "max_tokens": 64,
                                  "messages": [{"role": "user", "content": "hi"}]});
    h.invoke(
        "inv-3",
        rest_event(
            &user,
            "/v1/chat/completions",
            "/v1/chat/completions",
            json.clone(),
            true,
        ),
    )
    .await;
    let answer = h.read("inv-3", None, |_, ended| ended).await;
    assert_eq!(answer.prelude["statusCode"], 200, "{}", answer.prelude);
    assert_eq!(
        answer.prelude["headers"]["content-type"],
        "application/json"
    );
    let v: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "a whole answer");
    h.expect_poll().await;

    // 4. No authorizer claims: refused, as a stream of one chunk.
    h.invoke(
        "inv-4",
        rest_event(
            &user,
            "/v1/chat/completions",
            "/v1/chat/completions",
            json,
            false,
        ),
    )
    .await;
    let refused = h.read("inv-4", None, |_, ended| ended).await;
    assert_eq!(refused.prelude["statusCode"], 401, "{}", refused.prelude);
    h.expect_poll().await;

    child.start_kill().unwrap();
    let _ = child.wait().await;
    let logged = std::fs::read_to_string(log.path()).unwrap();
    assert!(logged.contains("waiting for its generation"), "{logged}");
    assert!(
        !logged.contains(OPENAI_KEY),
        "the saved key reached the function's log"
    );
    for s in [&whole.body, &answer.body, &refused.body] {
        assert!(!String::from_utf8_lossy(s).contains(OPENAI_KEY));
    }
}
