//! The behaviours every adapter must show, written once. `adapter_behaviours!(Fixture)`
//! instantiates all of them for one adapter, so a new provider cannot skip one: its
//! fixture must supply a documented success body, a stream, and a real error body for
//! every error class, and the requests it builds are asserted against a local server
//! speaking its wire format.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::transport::{Transport, TransportConfig};
use super::{
    ChatRequest, ChatWire, Endpoint, ErrorKind, FinishReason, ImageSource, Message, Part,
    ResponseFormat, Role, StreamEvent, Tool, ToolCall, ToolChoice,
};
use crate::pricing::TokenCounts;
use crate::secret::ApiKey;
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// An error response as the provider sends it.
pub struct ErrorCase {
    pub status: u16,
    pub body: &'static str,
    pub headers: Vec<(&'static str, &'static str)>,
}

impl ErrorCase {
    pub fn new(status: u16, body: &'static str) -> Self {
        ErrorCase {
            status,
            body,
            headers: Vec::new(),
        }
    }
    pub fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }
}

pub trait WireFixture {
    fn wire() -> Box<dyn ChatWire>;
    /// `None` for keyless providers.
    fn key() -> Option<ApiKey>;
    fn model() -> &'static str;
    /// The exact path the adapter must call (the mock server's base URL is the endpoint;
    /// a fixture whose provider has a path prefix in its base URL returns it here too).
    fn base_path() -> &'static str {
        ""
    }
    fn chat_path(stream: bool) -> String;
    /// Asserts method-independent details of a chat request: headers, body fields.
    fn assert_chat_request(request: &wiremock::Request, stream: bool);
    /// A documented success body, the text it carries and its token counts.
    fn success() -> (&'static str, &'static str, TokenCounts);
    /// A documented streamed body, its concatenated text and its token counts.
    fn stream() -> (&'static str, &'static str, TokenCounts);
    /// A real error body and status for every class that comes from a response.
    fn error(kind: ErrorKind) -> ErrorCase;
    /// The probe's path and a successful answer (listing `model()` where it lists).
    fn probe() -> (http::Method, String, &'static str);
    /// Asserts the body built from [`sampled`] carries each sampling parameter the
    /// format has, under the provider's own name, and none it lacks.
    fn assert_sampling(body: &serde_json::Value);
}

/// The tool, image and structured-output cases, for a wire format that carries them
/// (`tool_behaviours!`): the bodies it builds, and its documented answers and streams
/// that call a tool.
pub trait ToolFixture: WireFixture {
    /// Asserts the body built from [`tooled`] carries, in the provider's own form: the
    /// tool definition, the forced choice, the user's text and image, the assistant's
    /// call and the tool's result.
    fn assert_tools(body: &serde_json::Value);
    /// Asserts the body built from [`structured`] asks for the JSON schema the
    /// provider's documented way.
    fn assert_structured(body: &serde_json::Value);
    /// A documented answer that calls a tool, and the call it holds.
    fn tool_answer() -> (&'static str, ToolCall);
    /// A documented stream that calls a tool, and the call its fragments assemble to.
    fn tool_stream() -> (&'static str, ToolCall);
}

/// The tool every tool case offers.
pub fn weather_tool() -> Tool {
    Tool {
        name: "get_weather".into(),
        description: Some("Current weather for a city".into()),
        parameters: serde_json::json!({
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"]
        }),
        strict: None,
    }
}

/// A conversation with a tool: the user asks (with an image), the assistant called
/// `get_weather`, the tool answered; the next call is forced to `get_weather`.
pub fn tooled(stream: bool) -> ChatRequest {
    ChatRequest {
        system: Some("You are a weather bot.".into()),
        messages: vec![
            Message {
                role: Role::User,
                parts: vec![
                    Part::Text {
                        text: "What is the weather in Paris, and where is this?".into(),
                    },
                    Part::Image {
                        source: ImageSource::Base64 {
                            media_type: "image/png".into(),
                            data: "iVBORw0KGgo=".into(),
                        },
                        detail: None,
                    },
                ],
                ..Message::default()
            },
            Message {
                role: Role::Assistant,
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Paris"}"#.into(),
                }],
                ..Message::default()
            },
            Message {
                role: Role::Tool,
                parts: vec![Part::Text {
                    text: "18C and sunny".into(),
                }],
                tool_call_id: Some("call_1".into()),
                ..Message::default()
            },
        ],
        tools: vec![weather_tool()],
        tool_choice: Some(ToolChoice::Tool("get_weather".into())),
        max_tokens: 256,
        temperature: Some(0.0),
        stream,
        ..ChatRequest::default()
    }
}

/// The schema every structured-output case asks for.
pub fn weather_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}},
        "required": ["city", "celsius"],
        "additionalProperties": false
    })
}

/// A request for a JSON answer matching [`weather_schema`], strictly.
pub fn structured(stream: bool) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::text(Role::User, "Paris is at 18 degrees.")],
        response_format: Some(ResponseFormat::JsonSchema {
            name: "weather".into(),
            description: None,
            schema: weather_schema(),
            strict: true,
        }),
        max_tokens: 256,
        stream,
        ..ChatRequest::default()
    }
}

fn built_body<F: WireFixture>(req: ChatRequest) -> serde_json::Value {
    let req = ChatRequest {
        model: F::model().into(),
        ..req
    };
    let endpoint = Endpoint {
        base_url: "http://127.0.0.1:9".into(),
    };
    let wire = F::wire()
        .chat_request(&endpoint, F::key().as_ref(), &req)
        .unwrap();
    serde_json::from_slice(&wire.body.unwrap()).unwrap()
}

pub fn tools_on_the_wire<F: ToolFixture>() {
    F::assert_tools(&built_body::<F>(tooled(false)));
    // Without tools, nothing about them is sent.
    let plain = serde_json::to_string(&built_body::<F>(chat::<F>(false))).unwrap();
    for name in ["tool", "function", "Tool", "Function"] {
        assert!(!plain.contains(name), "{name} sent unset: {plain}");
    }
}

pub fn structured_on_the_wire<F: ToolFixture>() {
    F::assert_structured(&built_body::<F>(structured(false)));
}

pub fn tool_answer<F: ToolFixture>() {
    let (body, call) = F::tool_answer();
    let g = F::wire()
        .parse_chat(200, &http::HeaderMap::new(), body.as_bytes())
        .unwrap();
    assert_eq!(g.tool_calls.len(), 1, "{g:?}");
    assert_eq!(g.tool_calls[0].id, call.id);
    assert_eq!(g.tool_calls[0].name, call.name);
    let got: serde_json::Value = serde_json::from_str(&g.tool_calls[0].arguments).unwrap();
    let want: serde_json::Value = serde_json::from_str(&call.arguments).unwrap();
    assert_eq!(got, want);
    assert_eq!(g.finish(), FinishReason::ToolCalls);
}

/// Fragments assembled by index, as a client does; split anywhere on the way in.
pub fn tool_stream<F: ToolFixture>() {
    let (body, call) = F::tool_stream();
    let bytes = body.as_bytes();
    for step in [bytes.len(), 5, 1] {
        let mut parser = F::wire().stream_parser();
        let mut events = Vec::new();
        for piece in bytes.chunks(step) {
            events.extend(parser.feed(piece).unwrap());
        }
        events.extend(parser.finish().unwrap());
        let (mut id, mut name, mut args) = (None, None, String::new());
        let mut finish = None;
        for e in events {
            match e {
                StreamEvent::ToolCall(d) => {
                    assert_eq!(d.index, 0);
                    if d.id.is_some() {
                        assert!(id.is_none(), "the id comes once");
                        id = d.id;
                    }
                    if d.name.is_some() {
                        name = d.name;
                    }
                    args.push_str(&d.arguments);
                }
                StreamEvent::Done { finish_reason } => finish = finish_reason,
                _ => {}
            }
        }
        assert_eq!(id.as_deref(), Some(call.id.as_str()));
        assert_eq!(name.as_deref(), Some(call.name.as_str()));
        let got: serde_json::Value = serde_json::from_str(&args).unwrap();
        let want: serde_json::Value = serde_json::from_str(&call.arguments).unwrap();
        assert_eq!(got, want);
        assert_eq!(finish, Some(FinishReason::ToolCalls));
    }
}

/// The OpenAI shape of [`tooled`], shared by the compatible family and Azure.
pub fn assert_openai_tools(b: &serde_json::Value) {
    assert_eq!(
        b["tools"],
        serde_json::json!([{"type": "function", "function": {
            "name": "get_weather", "description": "Current weather for a city",
            "parameters": weather_tool().parameters}}])
    );
    assert_eq!(
        b["tool_choice"],
        serde_json::json!({"type": "function", "function": {"name": "get_weather"}})
    );
    let m = &b["messages"];
    assert_eq!(
        m[0],
        serde_json::json!({"role": "system", "content": "You are a weather bot."})
    );
    assert_eq!(
        m[1]["content"],
        serde_json::json!([
            {"type": "text", "text": "What is the weather in Paris, and where is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        ])
    );
    assert_eq!(
        m[2]["tool_calls"],
        serde_json::json!([{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}])
    );
    assert_eq!(
        m[3],
        serde_json::json!({"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"})
    );
}

pub fn assert_openai_structured(b: &serde_json::Value) {
    assert_eq!(
        b["response_format"],
        serde_json::json!({"type": "json_schema", "json_schema": {
            "name": "weather", "schema": weather_schema(), "strict": true}})
    );
}

/// The shared request with every sampling parameter set.
pub fn sampled(stream: bool) -> ChatRequest {
    ChatRequest {
        top_p: Some(0.5),
        stop: vec!["END".into(), "STOP".into()],
        seed: Some(7),
        presence_penalty: Some(0.25),
        frequency_penalty: Some(-0.5),
        ..request(stream)
    }
}

/// OpenAI's names, shared by the compatible family and Azure.
pub fn assert_openai_sampling(b: &serde_json::Value) {
    assert_eq!(b["top_p"], 0.5);
    assert_eq!(b["stop"], serde_json::json!(["END", "STOP"]));
    assert_eq!(b["seed"], 7);
    assert_eq!(b["presence_penalty"], 0.25);
    assert_eq!(b["frequency_penalty"], -0.5);
}

pub fn sampling<F: WireFixture>() {
    let req = ChatRequest {
        model: F::model().into(),
        ..sampled(false)
    };
    let endpoint = Endpoint {
        base_url: "http://127.0.0.1:9".into(),
    };
    let wire = F::wire()
        .chat_request(&endpoint, F::key().as_ref(), &req)
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&wire.body.unwrap()).unwrap();
    F::assert_sampling(&body);
    // Unset, none of them is sent.
    let plain = F::wire()
        .chat_request(&endpoint, F::key().as_ref(), &chat::<F>(false))
        .unwrap();
    let text = String::from_utf8(plain.body.unwrap()).unwrap();
    for name in ["top_p", "topP", "stop", "seed", "penalty", "Penalty"] {
        assert!(!text.contains(name), "{name} sent unset: {text}");
    }
}

pub fn request(stream: bool) -> ChatRequest {
    ChatRequest {
        model: String::new(),
        system: Some("You write SQL.".into()),
        messages: vec![
            Message::text(Role::User, "Show me failed login attempts"),
            Message::text(Role::Assistant, "Which table?"),
            Message::text(Role::User, "cloudtrail"),
        ],
        max_tokens: 256,
        temperature: Some(0.0),
        stream,
        ..ChatRequest::default()
    }
}

fn chat<F: WireFixture>(stream: bool) -> ChatRequest {
    ChatRequest {
        model: F::model().into(),
        ..request(stream)
    }
}

fn transport(total: Duration) -> Transport {
    Transport::new(TransportConfig {
        connect_timeout: Duration::from_secs(1),
        total_timeout: total,
    })
    .unwrap()
}

fn endpoint<F: WireFixture>(server: &MockServer) -> Endpoint {
    Endpoint {
        base_url: format!("{}{}", server.uri(), F::base_path()),
    }
}

fn assert_no_key_in_url<F: WireFixture>(url: &str) {
    if let Some(k) = F::key() {
        assert!(
            !url.contains(k.expose()),
            "the key must never be in a URL: {url}"
        );
    }
}

pub async fn success<F: WireFixture>() {
    let server = MockServer::start().await;
    let (body, text, tokens) = F::success();
    Mock::given(method("POST"))
        .and(path(F::chat_path(false)))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    let wire = F::wire();
    let req = wire
        .chat_request(
            &endpoint::<F>(&server),
            F::key().as_ref(),
            &chat::<F>(false),
        )
        .unwrap();
    assert_no_key_in_url::<F>(&req.url);
    let raw = transport(Duration::from_secs(5)).send(req).await.unwrap();
    let generation = wire
        .parse_chat(raw.status, &raw.headers, &raw.body)
        .unwrap();
    assert_eq!(generation.content, text);
    assert_eq!(generation.tokens, tokens);
    assert!(!generation.model.is_empty());
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    F::assert_chat_request(&received[0], false);
}

fn collect(
    events: Vec<StreamEvent>,
    text: &mut String,
    usage: &mut Option<TokenCounts>,
    done: &mut bool,
) {
    for e in events {
        match e {
            StreamEvent::Delta(d) => {
                assert!(!*done, "delta after done");
                text.push_str(&d);
            }
            StreamEvent::ToolCall(_) => assert!(!*done, "tool call after done"),
            StreamEvent::Usage(u) => *usage = Some(u),
            StreamEvent::Done { .. } => *done = true,
        }
    }
}

pub async fn stream<F: WireFixture>() {
    let server = MockServer::start().await;
    let (body, text, tokens) = F::stream();
    Mock::given(method("POST"))
        .and(path(F::chat_path(true)))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .expect(1)
        .mount(&server)
        .await;
    let wire = F::wire();
    let req = wire
        .chat_request(&endpoint::<F>(&server), F::key().as_ref(), &chat::<F>(true))
        .unwrap();
    assert_no_key_in_url::<F>(&req.url);
    let t = transport(Duration::from_secs(5));
    let mut response = t.open_stream(req).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut parser = wire.stream_parser();
    let (mut got, mut usage, mut done) = (String::new(), None, false);
    while let Some(chunk) = t.next_chunk(&mut response).await.unwrap() {
        collect(
            parser.feed(&chunk).unwrap(),
            &mut got,
            &mut usage,
            &mut done,
        );
    }
    collect(parser.finish().unwrap(), &mut got, &mut usage, &mut done);
    assert_eq!(got, text);
    assert_eq!(usage, Some(tokens));
    assert!(done, "the stream must end with Done");
    let received = server.received_requests().await.unwrap();
    F::assert_chat_request(&received[0], true);
}

/// The same stream fed in every possible two-piece split, and byte by byte.
pub fn stream_split_anywhere<F: WireFixture>() {
    let (body, text, tokens) = F::stream();
    let bytes = body.as_bytes();
    let mut splits: Vec<Vec<&[u8]>> = (0..bytes.len())
        .step_by(7)
        .map(|i| vec![&bytes[..i], &bytes[i..]])
        .collect();
    splits.push(bytes.chunks(1).collect());
    for pieces in splits {
        let mut parser = F::wire().stream_parser();
        let (mut got, mut usage, mut done) = (String::new(), None, false);
        for p in pieces {
            collect(parser.feed(p).unwrap(), &mut got, &mut usage, &mut done);
        }
        collect(parser.finish().unwrap(), &mut got, &mut usage, &mut done);
        assert_eq!(got, text);
        assert_eq!(usage, Some(tokens));
        assert!(done);
    }
}

/// A stream cut before its terminal event is an error, not a short success.
pub fn stream_cut_midway<F: WireFixture>() {
    let (body, _, _) = F::stream();
    let cut = &body.as_bytes()[..body.len() / 2];
    let mut parser = F::wire().stream_parser();
    let _ = parser.feed(cut);
    let err = parser
        .finish()
        .expect_err("a cut stream must not finish cleanly");
    assert_eq!(err.kind, ErrorKind::Network);
}

pub async fn error<F: WireFixture>(kind: ErrorKind) {
    let case = F::error(kind);
    let server = MockServer::start().await;
    let mut template =
        ResponseTemplate::new(case.status).set_body_raw(case.body, "application/json");
    for (name, value) in &case.headers {
        template = template.insert_header(*name, *value);
    }
    Mock::given(method("POST"))
        .and(path(F::chat_path(false)))
        .respond_with(template)
        .mount(&server)
        .await;
    let wire = F::wire();
    let req = wire
        .chat_request(
            &endpoint::<F>(&server),
            F::key().as_ref(),
            &chat::<F>(false),
        )
        .unwrap();
    let raw = transport(Duration::from_secs(5)).send(req).await.unwrap();
    let err = wire
        .parse_chat(raw.status, &raw.headers, &raw.body)
        .expect_err("an error status must not parse");
    assert_eq!(err.kind, kind, "status {} body {}", case.status, case.body);
    assert_eq!(err.status, Some(case.status));
    assert_eq!(err.kind.retryable(), kind.retryable());
    if case
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("retry-after"))
    {
        assert!(err.retry_after.is_some(), "retry-after must be kept");
    }
    // The same classification for a stream's error answer.
    let streamed = wire.classify_error(raw.status, &raw.headers, &raw.body);
    assert_eq!(streamed.kind, kind);
}

pub async fn timeout<F: WireFixture>() {
    let server = MockServer::start().await;
    let (body, _, _) = F::success();
    Mock::given(method("POST"))
        .and(path(F::chat_path(false)))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(body, "application/json")
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let wire = F::wire();
    let req = wire
        .chat_request(
            &endpoint::<F>(&server),
            F::key().as_ref(),
            &chat::<F>(false),
        )
        .unwrap();
    let err = transport(Duration::from_millis(200))
        .send(req)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert!(err.kind.retryable());
}

pub async fn network<F: WireFixture>() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = Endpoint {
        base_url: format!("http://127.0.0.1:{port}{}", F::base_path()),
    };
    let wire = F::wire();
    let req = wire
        .chat_request(&endpoint, F::key().as_ref(), &chat::<F>(false))
        .unwrap();
    let err = transport(Duration::from_secs(2))
        .send(req)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Network);
    assert!(err.kind.retryable());
}

pub async fn probe<F: WireFixture>() {
    let server = MockServer::start().await;
    let (m, p, body) = F::probe();
    Mock::given(method(m.as_str()))
        .and(path(p.clone()))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;
    let wire = F::wire();
    let req = wire
        .probe_request(&endpoint::<F>(&server), F::key().as_ref(), F::model())
        .unwrap();
    assert_no_key_in_url::<F>(&req.url);
    let raw = transport(Duration::from_secs(5)).send(req).await.unwrap();
    wire.parse_probe(raw.status, &raw.headers, &raw.body, F::model())
        .unwrap();

    // A revoked key answers the probe with the provider's invalid-key error.
    let server = MockServer::start().await;
    let case = F::error(ErrorKind::InvalidKey);
    Mock::given(method(m.as_str()))
        .and(path(p))
        .respond_with(
            ResponseTemplate::new(case.status).set_body_raw(case.body, "application/json"),
        )
        .mount(&server)
        .await;
    let req = wire
        .probe_request(&endpoint::<F>(&server), F::key().as_ref(), F::model())
        .unwrap();
    let raw = transport(Duration::from_secs(5)).send(req).await.unwrap();
    let err = wire
        .parse_probe(raw.status, &raw.headers, &raw.body, F::model())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidKey);
}

/// Instantiates the tool, image and structured-output behaviours for one fixture.
#[macro_export]
macro_rules! tool_behaviours {
    ($fixture:ty) => {
        mod tool_behaviours {
            use super::*;
            use $crate::providers::behaviours as b;

            #[test]
            fn tools_on_the_wire() {
                b::tools_on_the_wire::<$fixture>()
            }
            #[test]
            fn structured_on_the_wire() {
                b::structured_on_the_wire::<$fixture>()
            }
            #[test]
            fn tool_answer() {
                b::tool_answer::<$fixture>()
            }
            #[test]
            fn tool_stream() {
                b::tool_stream::<$fixture>()
            }
        }
    };
}

/// Instantiates every behaviour for one adapter's fixture.
#[macro_export]
macro_rules! adapter_behaviours {
    ($fixture:ty) => {
        mod behaviours {
            #![allow(unused_imports)]
            use super::*;
            use $crate::providers::ErrorKind;
            use $crate::providers::behaviours as b;

            #[tokio::test]
            async fn success() {
                b::success::<$fixture>().await
            }
            #[tokio::test]
            async fn stream() {
                b::stream::<$fixture>().await
            }
            #[test]
            fn stream_split_anywhere() {
                b::stream_split_anywhere::<$fixture>()
            }
            #[test]
            fn stream_cut_midway() {
                b::stream_cut_midway::<$fixture>()
            }
            #[tokio::test]
            async fn invalid_key() {
                b::error::<$fixture>(ErrorKind::InvalidKey).await
            }
            #[tokio::test]
            async fn permission_denied() {
                b::error::<$fixture>(ErrorKind::PermissionDenied).await
            }
            #[tokio::test]
            async fn model_not_found() {
                b::error::<$fixture>(ErrorKind::ModelNotFound).await
            }
            #[tokio::test]
            async fn rate_limited() {
                b::error::<$fixture>(ErrorKind::RateLimited).await
            }
            #[tokio::test]
            async fn quota_exceeded() {
                b::error::<$fixture>(ErrorKind::QuotaExceeded).await
            }
            #[tokio::test]
            async fn invalid_request() {
                b::error::<$fixture>(ErrorKind::InvalidRequest).await
            }
            #[tokio::test]
            async fn context_length_exceeded() {
                b::error::<$fixture>(ErrorKind::ContextLengthExceeded).await
            }
            #[tokio::test]
            async fn server_error() {
                b::error::<$fixture>(ErrorKind::ServerError).await
            }
            #[tokio::test]
            async fn timeout() {
                b::timeout::<$fixture>().await
            }
            #[tokio::test]
            async fn network() {
                b::network::<$fixture>().await
            }
            #[tokio::test]
            async fn probe() {
                b::probe::<$fixture>().await
            }
            #[test]
            fn sampling() {
                b::sampling::<$fixture>()
            }
        }
    };
}
