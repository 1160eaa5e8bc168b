//! Amazon Bedrock through the Converse and ConverseStream APIs of `aws-sdk-bedrockruntime`. Credentials are
//! the function's role by default, or the access key pair a user saved
//! (`<access key id>:<secret access key>`). Clients share the one HTTP connector of the
//! process-wide SDK configuration; only the credentials differ per user.

mod stream;

use super::anthropic::{answer_tool, call_input, is_answer_tool, result_id};
use super::error::mentions_context_length;
use super::{
    ChatRequest, ErrorKind, FinishReason, Generation, ImageSource, Part, ProviderError, Role,
    ToolCall,
};
use crate::pricing::TokenCounts;
use crate::secret::ApiKey;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::Credentials;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse::ConverseOutput as ConverseAnswer;
use aws_sdk_bedrockruntime::types::{
    AnyToolChoice, AutoToolChoice, ContentBlock, ConversationRole, ConverseOutput, ImageBlock,
    ImageFormat, InferenceConfiguration, Message, SpecificToolChoice, SystemContentBlock, Tool,
    ToolChoice, ToolConfiguration, ToolInputSchema, ToolResultBlock, ToolResultContentBlock,
    ToolSpecification, ToolUseBlock,
};
use aws_smithy_types::Blob;
use aws_smithy_types::error::operation::BuildError;
use base64::Engine as _;
use stream::ConverseEvents;
pub use stream::ConverseStream;

/// Sends `request` through a Converse or ConverseStream builder: the two take the same
/// input through builders of different types, with no trait in common.
macro_rules! send {
    ($builder:expr, $request:expr) => {{
        let input = converse_input($request)?;
        $builder
            .model_id(&$request.model)
            .set_system((!input.system.is_empty()).then_some(input.system))
            .set_messages(Some(input.messages))
            .set_tool_config(input.tool_config)
            .inference_config(input.inference)
            .send()
            .await
            .map_err(classify)?
    }};
}

/// Builds Bedrock clients from one SDK configuration.
#[derive(Clone)]
pub struct Bedrock {
    config: aws_config::SdkConfig,
    /// `LLM_PROVIDER_URL_BEDROCK`, for an emulator or a VPC endpoint.
    endpoint_url: Option<String>,
}

impl Bedrock {
    pub fn new(config: aws_config::SdkConfig, endpoint_url: Option<String>) -> Self {
        Bedrock {
            config,
            endpoint_url,
        }
    }

    /// A client with the user's key pair, or the ambient credentials without one.
    pub(crate) fn client(&self, key: Option<&ApiKey>) -> Result<Client, ProviderError> {
        let mut builder = aws_sdk_bedrockruntime::config::Builder::from(&self.config);
        if let Some(url) = &self.endpoint_url {
            builder = builder.endpoint_url(url);
        }
        if let Some(key) = key {
            let (id, secret) = key.expose().split_once(':').ok_or_else(|| {
                ProviderError::new(ErrorKind::InvalidKey, "bedrock key is not id:secret")
            })?;
            builder = builder.credentials_provider(Credentials::new(
                id,
                secret,
                None,
                None,
                "user-saved-key",
            ));
        }
        Ok(Client::from_conf(builder.build()))
    }

    pub async fn converse(
        &self,
        key: Option<&ApiKey>,
        request: &ChatRequest,
    ) -> Result<Generation, ProviderError> {
        let client = self.client(key)?;
        let out = send!(client.converse(), request);
        Ok(generation(&request.model, &out))
    }

    /// Opens a ConverseStream: returns once the answer's head arrived (a refusal is an
    /// error here, before any event); its events then arrive as Bedrock sends them.
    pub async fn converse_stream(
        &self,
        key: Option<&ApiKey>,
        request: &ChatRequest,
    ) -> Result<ConverseStream, ProviderError> {
        let client = self.client(key)?;
        let out = send!(client.converse_stream(), request);
        Ok(ConverseStream {
            receiver: out.stream,
            events: ConverseEvents::default(),
            ended: false,
        })
    }

    /// The cheapest call that proves the credentials can use `model`: a one-token
    /// Converse (the model listing is a different, control-plane API and permission).
    pub async fn probe(&self, key: Option<&ApiKey>, model: &str) -> Result<(), ProviderError> {
        let request = ChatRequest {
            model: model.to_owned(),
            system: None,
            messages: vec![super::Message::text(Role::User, "ping")],
            max_tokens: 1,
            temperature: None,
            stream: false,
            ..ChatRequest::default()
        };
        self.converse(key, &request).await.map(|_| ())
    }
}

/// What one Converse call sends, built apart from the client so it can be checked
/// without a network.
struct ConverseInput {
    system: Vec<SystemContentBlock>,
    messages: Vec<Message>,
    tool_config: Option<ToolConfiguration>,
    inference: InferenceConfiguration,
}

fn converse_input(request: &ChatRequest) -> Result<ConverseInput, ProviderError> {
    let (system, messages) = conversation(request)?;
    Ok(ConverseInput {
        system,
        messages,
        tool_config: tool_config(request)?,
        inference: inference_config(request),
    })
}

/// The SDK's builders refuse only missing required fields: a request the neutral form
/// let through without one is the caller's to fix.
fn built<T>(r: Result<T, BuildError>) -> Result<T, ProviderError> {
    r.map_err(|e| ProviderError::new(ErrorKind::InvalidRequest, format!("bedrock: {e}")))
}

fn invalid(message: String) -> ProviderError {
    ProviderError::new(ErrorKind::InvalidRequest, message)
}

/// One turn being built. `open`: a user turn of tool results that further results and
/// the user's next words still join, since Converse, like Anthropic, wants every result
/// of an assistant turn in the one user turn after it, and turns that alternate.
struct Turn {
    role: ConversationRole,
    blocks: Vec<ContentBlock>,
    open: bool,
}

/// The system prompt's pieces (system turns in the conversation join it) and the
/// messages as Converse content blocks.
fn conversation(
    request: &ChatRequest,
) -> Result<(Vec<SystemContentBlock>, Vec<Message>), ProviderError> {
    let mut system: Vec<SystemContentBlock> = request
        .system
        .iter()
        .map(|s| SystemContentBlock::Text(s.clone()))
        .collect();
    let mut turns: Vec<Turn> = Vec::new();
    for m in &request.messages {
        match m.role {
            Role::System => system.push(SystemContentBlock::Text(m.joined_text())),
            Role::Tool => {
                let block = tool_result(m)?;
                match turns.last_mut() {
                    Some(last) if last.open => last.blocks.push(block),
                    _ => turns.push(Turn {
                        role: ConversationRole::User,
                        blocks: vec![block],
                        open: true,
                    }),
                }
            }
            Role::User => {
                let blocks = content_blocks(&m.parts)?;
                match turns.last_mut() {
                    Some(last) if last.open => {
                        last.blocks.extend(blocks);
                        last.open = false;
                    }
                    _ => turns.push(Turn {
                        role: ConversationRole::User,
                        blocks,
                        open: false,
                    }),
                }
            }
            Role::Assistant => {
                let mut blocks = content_blocks(&m.parts)?;
                for c in &m.tool_calls {
                    blocks.push(ContentBlock::ToolUse(built(
                        ToolUseBlock::builder()
                            .tool_use_id(&c.id)
                            .name(&c.name)
                            .input(document::from_json(&call_input(c, "bedrock")?))
                            .build(),
                    )?));
                }
                turns.push(Turn {
                    role: ConversationRole::Assistant,
                    blocks,
                    open: false,
                });
            }
        }
    }
    let messages = turns
        .into_iter()
        .map(|t| {
            // Converse wants content in every message; an empty one fails upstream
            // with its own message either way.
            let blocks = if t.blocks.is_empty() {
                vec![ContentBlock::Text(String::new())]
            } else {
                t.blocks
            };
            built(
                Message::builder()
                    .role(t.role)
                    .set_content(Some(blocks))
                    .build(),
            )
        })
        .collect::<Result<_, _>>()?;
    Ok((system, messages))
}

/// Text and image parts as blocks; empty text is left out (clients send `""` beside
/// tool calls, and Converse refuses blank text blocks).
fn content_blocks(parts: &[Part]) -> Result<Vec<ContentBlock>, ProviderError> {
    let mut blocks = Vec::with_capacity(parts.len());
    for p in parts {
        match p {
            Part::Text { text } if text.is_empty() => {}
            Part::Text { text } => blocks.push(ContentBlock::Text(text.clone())),
            Part::Image { source, .. } => blocks.push(ContentBlock::Image(image(source)?)),
        }
    }
    Ok(blocks)
}

/// An image as Converse takes it: decoded bytes and one of its four formats. `params`
/// refuses image URLs for Bedrock before a request gets here; one that slipped through
/// is refused rather than fetched (the gateway never fetches a caller's URL).
fn image(source: &ImageSource) -> Result<ImageBlock, ProviderError> {
    let (media_type, data) = match source {
        ImageSource::Base64 { media_type, data } => (media_type, data),
        ImageSource::Url { .. } => {
            return Err(invalid("bedrock takes images as bytes, not URLs".into()));
        }
    };
    let format = match media_type.to_ascii_lowercase().as_str() {
        "image/png" => ImageFormat::Png,
        "image/jpeg" | "image/jpg" => ImageFormat::Jpeg,
        "image/gif" => ImageFormat::Gif,
        "image/webp" => ImageFormat::Webp,
        other => {
            return Err(invalid(format!(
                "bedrock: image type {other} is not png, jpeg, gif or webp"
            )));
        }
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| invalid(format!("bedrock: the image is not valid base64: {e}")))?;
    built(
        ImageBlock::builder()
            .format(format)
            .source(aws_sdk_bedrockruntime::types::ImageSource::Bytes(
                Blob::new(bytes),
            ))
            .build(),
    )
}

/// A tool's answer: its text, and any images it holds.
fn tool_result(m: &super::Message) -> Result<ContentBlock, ProviderError> {
    let id = result_id(m, "bedrock")?;
    let mut content = vec![ToolResultContentBlock::Text(m.joined_text())];
    for p in &m.parts {
        if let Part::Image { source, .. } = p {
            content.push(ToolResultContentBlock::Image(image(source)?));
        }
    }
    Ok(ContentBlock::ToolResult(built(
        ToolResultBlock::builder()
            .tool_use_id(id)
            .set_content(Some(content))
            .build(),
    )?))
}

fn tool_spec(
    name: &str,
    description: Option<&str>,
    schema: &serde_json::Value,
) -> Result<Tool, ProviderError> {
    Ok(Tool::ToolSpec(built(
        ToolSpecification::builder()
            .name(name)
            .set_description(description.map(str::to_owned))
            .input_schema(ToolInputSchema::Json(document::from_json(schema)))
            .build(),
    )?))
}

/// Converse's `toolConfig`: the tools, the choice, and the forced tool a JSON response
/// format goes through (as for Anthropic, whose tool it shares: its use comes back as
/// the answer's content). Converse has no "none" choice, so `ToolChoice::None` leaves
/// the tools out altogether, unless the conversation already holds tool calls or
/// results: Converse refuses those without a `toolConfig`, so then the tools go with no
/// choice (the model may still call one; nothing can forbid it here).
fn tool_config(request: &ChatRequest) -> Result<Option<ToolConfiguration>, ProviderError> {
    let answer = answer_tool(request, "bedrock")?;
    let history_has_tools = request
        .messages
        .iter()
        .any(|m| !m.tool_calls.is_empty() || m.role == Role::Tool);
    let mut choice = match &request.tool_choice {
        None | Some(super::ToolChoice::None) => None,
        Some(super::ToolChoice::Auto) => Some(ToolChoice::Auto(AutoToolChoice::builder().build())),
        Some(super::ToolChoice::Required) => {
            Some(ToolChoice::Any(AnyToolChoice::builder().build()))
        }
        Some(super::ToolChoice::Tool(name)) => Some(ToolChoice::Tool(built(
            SpecificToolChoice::builder().name(name).build(),
        )?)),
    };
    let mut tools = Vec::with_capacity(request.tools.len() + 1);
    if request.tool_choice != Some(super::ToolChoice::None) || history_has_tools {
        for t in &request.tools {
            tools.push(tool_spec(&t.name, t.description.as_deref(), &t.parameters)?);
        }
    }
    if let Some(a) = answer {
        tools.push(tool_spec(&a.name, Some(&a.description), &a.schema)?);
        choice = Some(ToolChoice::Tool(built(
            SpecificToolChoice::builder().name(a.name).build(),
        )?));
    }
    if tools.is_empty() {
        return Ok(None);
    }
    Ok(Some(built(
        ToolConfiguration::builder()
            .set_tools(Some(tools))
            .set_tool_choice(choice)
            .build(),
    )?))
}

/// A Converse answer as a [`Generation`]: its text, its tool calls (input as compact
/// JSON), or the forced answer tool's input as the content.
fn generation(model: &str, out: &ConverseAnswer) -> Generation {
    let mut content = String::new();
    let mut tool_calls = Vec::new();
    let mut answer = None;
    if let Some(ConverseOutput::Message(m)) = out.output() {
        for b in m.content() {
            match b {
                ContentBlock::Text(t) => content.push_str(t),
                ContentBlock::ToolUse(u) => {
                    let input = match document::to_json(u.input()) {
                        serde_json::Value::Null => "{}".to_owned(),
                        v => v.to_string(),
                    };
                    if is_answer_tool(u.name()) {
                        answer = Some(input);
                    } else {
                        tool_calls.push(ToolCall {
                            id: u.tool_use_id().to_owned(),
                            name: u.name().to_owned(),
                            arguments: input,
                        });
                    }
                }
                _ => {}
            }
        }
    }
    let mut finish_reason = stop_reason(out.stop_reason());
    if let Some(json) = answer {
        // The forced tool's input is what was asked for; text beside it would break
        // the JSON.
        content = json;
        if tool_calls.is_empty() && finish_reason == FinishReason::ToolCalls {
            finish_reason = FinishReason::Stop;
        }
    }
    let tokens = out.usage().map(token_counts).unwrap_or_default();
    Generation {
        content,
        tool_calls,
        model: model.to_owned(),
        tokens,
        finish_reason: Some(finish_reason),
        logprobs: None,
        rate_limit: None,
    }
}

/// JSON to and from Smithy's `Document`, which tool schemas and inputs travel as; the
/// SDK has no conversion of its own.
mod document {
    use aws_smithy_types::{Document, Number};
    use serde_json::Value;

    pub(super) fn from_json(v: &Value) -> Document {
        match v {
            Value::Null => Document::Null,
            Value::Bool(b) => Document::Bool(*b),
            Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
                Number::PosInt(u)
            } else if let Some(i) = n.as_i64() {
                Number::NegInt(i)
            } else {
                Number::Float(n.as_f64().unwrap_or(0.0))
            }),
            Value::String(s) => Document::String(s.clone()),
            Value::Array(a) => Document::Array(a.iter().map(from_json).collect()),
            Value::Object(o) => {
                Document::Object(o.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
            }
        }
    }

    pub(super) fn to_json(d: &Document) -> Value {
        match d {
            Document::Null => Value::Null,
            Document::Bool(b) => Value::Bool(*b),
            Document::Number(Number::PosInt(u)) => Value::from(*u),
            Document::Number(Number::NegInt(i)) => Value::from(*i),
            // JSON has no NaN or infinity: such a number becomes null.
            Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Document::String(s) => Value::String(s.clone()),
            Document::Array(a) => Value::Array(a.iter().map(to_json).collect()),
            Document::Object(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
            }
        }
    }
}

/// Converse's usage as token counts: its `inputTokens` counts only uncached input.
fn token_counts(u: &aws_sdk_bedrockruntime::types::TokenUsage) -> TokenCounts {
    let read = non_negative(u.cache_read_input_tokens().unwrap_or(0));
    let written = non_negative(u.cache_write_input_tokens().unwrap_or(0));
    TokenCounts {
        input_tokens: non_negative(u.input_tokens()) + read + written,
        output_tokens: non_negative(u.output_tokens()),
        cached_input_tokens: read,
        cache_write_tokens: written,
    }
}

fn non_negative(v: i32) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Bedrock's error codes, which also cover IAM's answers to bad credentials.
pub(crate) fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: SdkError<E, aws_sdk_bedrockruntime::config::http::HttpResponse>,
) -> ProviderError {
    let detail = aws_sdk_bedrockruntime::error::DisplayErrorContext(&e).to_string();
    let status = match &e {
        SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        _ => None,
    };
    let kind = match &e {
        SdkError::TimeoutError(_) => ErrorKind::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => ErrorKind::Timeout,
        SdkError::DispatchFailure(_) => ErrorKind::Network,
        SdkError::ServiceError(s) => kind_for_code(
            s.err().code().unwrap_or_default(),
            s.err().message().unwrap_or_default(),
        )
        .unwrap_or_else(|| super::error::kind_for_status(s.raw().status().as_u16())),
        _ => ErrorKind::ServerError,
    };
    let mut err = ProviderError::new(kind, format!("bedrock: {detail}"));
    if let Some(s) = status {
        err = err.with_status(s);
    }
    err
}

/// Bedrock's error codes (and IAM's, for bad credentials) in the neutral vocabulary;
/// `None` for a code it does not name, which its HTTP status then classifies.
fn kind_for_code(code: &str, message: &str) -> Option<ErrorKind> {
    Some(match code {
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "ExpiredTokenException" => ErrorKind::InvalidKey,
        "AccessDeniedException" => ErrorKind::PermissionDenied,
        "ResourceNotFoundException" => ErrorKind::ModelNotFound,
        "ThrottlingException" | "TooManyRequestsException" => ErrorKind::RateLimited,
        "ServiceQuotaExceededException" => ErrorKind::QuotaExceeded,
        "ModelTimeoutException" => ErrorKind::Timeout,
        "ValidationException" if mentions_context_length(message) => {
            ErrorKind::ContextLengthExceeded
        }
        "ValidationException" => ErrorKind::InvalidRequest,
        "InternalServerException"
        | "ServiceUnavailableException"
        | "ModelErrorException"
        | "ModelStreamErrorException"
        | "ModelNotReadyException" => ErrorKind::ServerError,
        _ => return None,
    })
}

/// Converse's `inferenceConfig`. It has no seed and no penalties: `params` refuses or
/// drops those before a request gets here.
fn inference_config(request: &ChatRequest) -> InferenceConfiguration {
    let max_tokens = i32::try_from(request.max_tokens).unwrap_or(i32::MAX);
    InferenceConfiguration::builder()
        .max_tokens(max_tokens)
        .set_temperature(request.temperature.map(|t| t as f32))
        .set_top_p(request.top_p.map(|p| p as f32))
        .set_stop_sequences((!request.stop.is_empty()).then(|| request.stop.clone()))
        .build()
}

/// Converse's stop reasons in the neutral vocabulary.
fn stop_reason(r: &aws_sdk_bedrockruntime::types::StopReason) -> FinishReason {
    use aws_sdk_bedrockruntime::types::StopReason;
    match r {
        StopReason::MaxTokens => FinishReason::Length,
        StopReason::ToolUse => FinishReason::ToolCalls,
        StopReason::ContentFiltered | StopReason::GuardrailIntervened => {
            FinishReason::ContentFilter
        }
        _ => FinishReason::Stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_goes_into_the_inference_config() {
        let c = inference_config(&crate::providers::behaviours::sampled(false));
        assert_eq!(c.top_p(), Some(0.5));
        assert_eq!(c.stop_sequences(), ["END", "STOP"]);
        assert_eq!(c.max_tokens(), Some(256));
        let plain = inference_config(&crate::providers::behaviours::request(false));
        assert_eq!(plain.top_p(), None);
        assert!(plain.stop_sequences().is_empty());
    }
    use aws_sdk_bedrockruntime::config::http::HttpResponse;
    use aws_sdk_bedrockruntime::operation::converse::ConverseError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service_error(status: u16, code: &str, message: &str) -> ProviderError {
        let err =
            ConverseError::generic(ErrorMetadata::builder().code(code).message(message).build());
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        classify(SdkError::service_error(err, raw))
    }

    #[test]
    fn error_codes_map_to_kinds() {
        let cases = [
            (
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
                ErrorKind::InvalidKey,
            ),
            (
                403,
                "AccessDeniedException",
                "You don't have access to the model with the specified model ID.",
                ErrorKind::PermissionDenied,
            ),
            (
                404,
                "ResourceNotFoundException",
                "Could not resolve the foundation model from the provided model identifier.",
                ErrorKind::ModelNotFound,
            ),
            (
                429,
                "ThrottlingException",
                "Too many requests, please wait before trying again.",
                ErrorKind::RateLimited,
            ),
            (
                400,
                "ServiceQuotaExceededException",
                "Your request exceeded the service quota.",
                ErrorKind::QuotaExceeded,
            ),
            (
                400,
                "ValidationException",
                "Input is too long for requested model.",
                ErrorKind::ContextLengthExceeded,
            ),
            (
                400,
                "ValidationException",
                "The model returned the following errors: temperature: range: 0..1",
                ErrorKind::InvalidRequest,
            ),
            (
                408,
                "ModelTimeoutException",
                "Model has timed out in processing the request.",
                ErrorKind::Timeout,
            ),
            (
                500,
                "InternalServerException",
                "The server encountered an error.",
                ErrorKind::ServerError,
            ),
            (
                503,
                "ServiceUnavailableException",
                "Bedrock is unable to process your request.",
                ErrorKind::ServerError,
            ),
        ];
        for (status, code, message, kind) in cases {
            let e = service_error(status, code, message);
            assert_eq!(e.kind, kind, "{code}");
            assert_eq!(e.status, Some(status));
        }
    }

    use crate::providers::behaviours::{structured, tooled, weather_schema, weather_tool};
    use aws_sdk_bedrockruntime::types::{ConverseMetrics, StopReason, TokenUsage};
    use serde_json::json;

    fn tool_use(b: &ContentBlock) -> &ToolUseBlock {
        b.as_tool_use().unwrap()
    }

    fn spec(t: &Tool) -> &ToolSpecification {
        t.as_tool_spec().unwrap()
    }

    fn schema_of(t: &Tool) -> serde_json::Value {
        match spec(t).input_schema().unwrap() {
            ToolInputSchema::Json(d) => document::to_json(d),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_tool_conversation_in_converse_blocks() {
        let (system, messages) = conversation(&tooled(false)).unwrap();
        assert_eq!(
            system,
            [SystemContentBlock::Text("You are a weather bot.".into())]
        );
        assert_eq!(messages.len(), 3);
        let user = &messages[0];
        assert_eq!(user.role(), &ConversationRole::User);
        assert_eq!(
            user.content()[0],
            ContentBlock::Text("What is the weather in Paris, and where is this?".into())
        );
        let img = user.content()[1].as_image().unwrap();
        assert_eq!(img.format(), &ImageFormat::Png);
        let Some(aws_sdk_bedrockruntime::types::ImageSource::Bytes(bytes)) = img.source() else {
            panic!("{img:?}")
        };
        assert_eq!(
            bytes.as_ref(),
            b"\x89PNG\r\n\x1a\n",
            "the base64 decoded to bytes"
        );
        let assistant = &messages[1];
        assert_eq!(assistant.role(), &ConversationRole::Assistant);
        assert_eq!(assistant.content().len(), 1);
        let call = tool_use(&assistant.content()[0]);
        assert_eq!(call.tool_use_id(), "call_1");
        assert_eq!(call.name(), "get_weather");
        assert_eq!(document::to_json(call.input()), json!({"city": "Paris"}));
        let results = &messages[2];
        assert_eq!(results.role(), &ConversationRole::User);
        let r = results.content()[0].as_tool_result().unwrap();
        assert_eq!(r.tool_use_id(), "call_1");
        assert_eq!(
            r.content(),
            [ToolResultContentBlock::Text("18C and sunny".into())]
        );
    }

    #[test]
    fn the_tools_and_the_forced_choice_in_the_tool_config() {
        let c = tool_config(&tooled(false)).unwrap().unwrap();
        assert_eq!(c.tools().len(), 1);
        let s = spec(&c.tools()[0]);
        assert_eq!(s.name(), "get_weather");
        assert_eq!(s.description(), Some("Current weather for a city"));
        assert_eq!(schema_of(&c.tools()[0]), weather_tool().parameters);
        assert_eq!(
            c.tool_choice().unwrap().as_tool().unwrap().name(),
            "get_weather"
        );
        // Without tools, no tool config at all.
        assert!(
            tool_config(&crate::providers::behaviours::request(false))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn tool_choices_map_to_converse_choices() {
        let mut r = ChatRequest {
            messages: vec![super::super::Message::text(Role::User, "Weather?")],
            tools: vec![weather_tool()],
            ..ChatRequest::default()
        };
        assert!(tool_config(&r).unwrap().unwrap().tool_choice().is_none());
        r.tool_choice = Some(super::super::ToolChoice::Auto);
        assert!(
            tool_config(&r)
                .unwrap()
                .unwrap()
                .tool_choice()
                .unwrap()
                .is_auto()
        );
        r.tool_choice = Some(super::super::ToolChoice::Required);
        assert!(
            tool_config(&r)
                .unwrap()
                .unwrap()
                .tool_choice()
                .unwrap()
                .is_any()
        );
        // No "none" in Converse: the tools stay home.
        r.tool_choice = Some(super::super::ToolChoice::None);
        assert!(tool_config(&r).unwrap().is_none());
        // Unless the history already holds calls, which Converse refuses without them.
        let mut history = tooled(false);
        history.tool_choice = Some(super::super::ToolChoice::None);
        let c = tool_config(&history).unwrap().unwrap();
        assert_eq!(c.tools().len(), 1);
        assert!(c.tool_choice().is_none());
    }

    #[test]
    fn structured_output_is_a_forced_answer_tool() {
        let c = tool_config(&structured(false)).unwrap().unwrap();
        assert_eq!(c.tools().len(), 1);
        assert_eq!(spec(&c.tools()[0]).name(), "json_answer_weather");
        assert_eq!(schema_of(&c.tools()[0]), weather_schema());
        assert_eq!(
            c.tool_choice().unwrap().as_tool().unwrap().name(),
            "json_answer_weather"
        );
        let both = ChatRequest {
            tools: vec![weather_tool()],
            ..structured(false)
        };
        assert_eq!(
            tool_config(&both).unwrap_err().kind,
            ErrorKind::InvalidRequest
        );
    }

    fn result(id: &str, text: &str) -> super::super::Message {
        super::super::Message {
            tool_call_id: Some(id.into()),
            ..super::super::Message::text(Role::Tool, text)
        }
    }

    #[test]
    fn parallel_results_and_the_next_words_share_one_user_turn() {
        let mut r = tooled(false);
        r.messages[1].tool_calls.push(ToolCall {
            id: "call_2".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Rome"}"#.into(),
        });
        r.messages.push(result("call_2", "24C"));
        r.messages
            .push(super::super::Message::text(Role::User, "Which is warmer?"));
        let (_, messages) = conversation(&r).unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1].content().len(), 2);
        let last = messages[2].content();
        assert_eq!(last.len(), 3);
        assert_eq!(last[0].as_tool_result().unwrap().tool_use_id(), "call_1");
        assert_eq!(last[1].as_tool_result().unwrap().tool_use_id(), "call_2");
        assert_eq!(last[2], ContentBlock::Text("Which is warmer?".into()));
    }

    #[test]
    fn images_need_bytes_of_a_known_format() {
        let with = |source: ImageSource| {
            let mut r = tooled(false);
            r.messages[0].parts[1] = Part::Image {
                source,
                detail: None,
            };
            conversation(&r).map(|(_, m)| m)
        };
        let jpeg = with(ImageSource::Base64 {
            media_type: "image/jpeg".into(),
            data: "/9j/4AAQ".into(),
        })
        .unwrap();
        assert_eq!(
            jpeg[0].content()[1].as_image().unwrap().format(),
            &ImageFormat::Jpeg
        );
        for bad in [
            ImageSource::Url {
                url: "https://example.com/a.png".into(),
            },
            ImageSource::Base64 {
                media_type: "image/tiff".into(),
                data: "AAAA".into(),
            },
            ImageSource::Base64 {
                media_type: "image/png".into(),
                data: "not base64!".into(),
            },
        ] {
            assert_eq!(with(bad).unwrap_err().kind, ErrorKind::InvalidRequest);
        }
    }

    #[test]
    fn unparseable_arguments_are_refused() {
        let mut r = tooled(false);
        r.messages[1].tool_calls[0].arguments = "{city".into();
        assert_eq!(
            conversation(&r).unwrap_err().kind,
            ErrorKind::InvalidRequest
        );
    }

    fn answer(blocks: Vec<ContentBlock>, stop: StopReason) -> ConverseAnswer {
        let message = Message::builder()
            .role(ConversationRole::Assistant)
            .set_content(Some(blocks))
            .build()
            .unwrap();
        ConverseAnswer::builder()
            .output(ConverseOutput::Message(message))
            .stop_reason(stop)
            .usage(
                TokenUsage::builder()
                    .input_tokens(400)
                    .output_tokens(30)
                    .total_tokens(430)
                    .build()
                    .unwrap(),
            )
            .metrics(ConverseMetrics::builder().latency_ms(100).build().unwrap())
            .build()
            .unwrap()
    }

    fn use_block(id: &str, name: &str, input: serde_json::Value) -> ContentBlock {
        ContentBlock::ToolUse(
            ToolUseBlock::builder()
                .tool_use_id(id)
                .name(name)
                .input(document::from_json(&input))
                .build()
                .unwrap(),
        )
    }

    #[test]
    fn tool_use_comes_back_as_tool_calls() {
        let out = answer(
            vec![
                ContentBlock::Text("Let me check.".into()),
                use_block(
                    "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                    "get_weather",
                    json!({"city": "Paris"}),
                ),
            ],
            StopReason::ToolUse,
        );
        let g = generation("anthropic.claude-3-5-sonnet-20240620-v1:0", &out);
        assert_eq!(g.content, "Let me check.");
        assert_eq!(
            g.tool_calls,
            [ToolCall {
                id: "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q".into(),
                name: "get_weather".into(),
                arguments: r#"{"city":"Paris"}"#.into(),
            }]
        );
        assert_eq!(g.finish(), FinishReason::ToolCalls);
        assert_eq!(g.tokens.input_tokens, 400);
    }

    #[test]
    fn a_structured_answer_comes_back_as_content() {
        let out = answer(
            vec![use_block(
                "tooluse_1",
                "json_answer_weather",
                json!({"city": "Paris", "celsius": 18}),
            )],
            StopReason::ToolUse,
        );
        let g = generation("m", &out);
        assert!(g.tool_calls.is_empty());
        let v: serde_json::Value = serde_json::from_str(&g.content).unwrap();
        assert_eq!(v, json!({"city": "Paris", "celsius": 18}));
        assert_eq!(g.finish(), FinishReason::Stop);
    }

    #[test]
    fn documents_round_trip_json() {
        let v = json!({"a": [1, -2, 2.5, true, null, "s"], "b": {"c": u64::MAX}});
        assert_eq!(document::to_json(&document::from_json(&v)), v);
    }

    #[test]
    fn a_malformed_key_pair_is_an_invalid_key() {
        let b = Bedrock::new(aws_config::SdkConfig::builder().build(), None);
        let err = b
            .client(Some(&ApiKey::new("no-colon".into())))
            .err()
            .unwrap();
        assert_eq!(err.kind, ErrorKind::InvalidKey);
    }
}
