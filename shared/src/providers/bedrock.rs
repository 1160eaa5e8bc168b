//! Amazon Bedrock through the Converse API of `aws-sdk-bedrockruntime`. Credentials are
//! the function's role by default, or the access key pair a user saved
//! (`<access key id>:<secret access key>`). Clients share the one HTTP connector of the
//! process-wide SDK configuration; only the credentials differ per user.

use super::error::mentions_context_length;
use super::{ChatRequest, ErrorKind, FinishReason, Generation, ProviderError, Role};
use crate::pricing::TokenCounts;
use crate::secret::ApiKey;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::Credentials;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseOutput, InferenceConfiguration, Message,
    SystemContentBlock,
};

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
    fn client(&self, key: Option<&ApiKey>) -> Result<Client, ProviderError> {
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
        let mut system: Vec<SystemContentBlock> = request
            .system
            .iter()
            .map(|s| SystemContentBlock::Text(s.clone()))
            .collect();
        let mut messages = Vec::new();
        for m in &request.messages {
            let role = match m.role {
                Role::System => {
                    system.push(SystemContentBlock::Text(m.joined_text()));
                    continue;
                }
                Role::User | Role::Tool => ConversationRole::User,
                Role::Assistant => ConversationRole::Assistant,
            };
            messages.push(
                Message::builder()
                    .role(role)
                    .content(ContentBlock::Text(m.joined_text()))
                    .build()
                    .map_err(|e| ProviderError::new(ErrorKind::InvalidRequest, e.to_string()))?,
            );
        }
        let inference = inference_config(request);
        let out = client
            .converse()
            .model_id(&request.model)
            .set_system((!system.is_empty()).then_some(system))
            .set_messages(Some(messages))
            .inference_config(inference)
            .send()
            .await
            .map_err(classify)?;
        let content = match out.output() {
            Some(ConverseOutput::Message(m)) => m
                .content()
                .iter()
                .filter_map(|b| b.as_text().ok().map(String::as_str))
                .collect(),
            _ => String::new(),
        };
        let tokens = out
            .usage()
            .map(|u| {
                let read = non_negative(u.cache_read_input_tokens().unwrap_or(0));
                let written = non_negative(u.cache_write_input_tokens().unwrap_or(0));
                // Converse's inputTokens counts only uncached input.
                TokenCounts {
                    input_tokens: non_negative(u.input_tokens()) + read + written,
                    output_tokens: non_negative(u.output_tokens()),
                    cached_input_tokens: read,
                    cache_write_tokens: written,
                }
            })
            .unwrap_or_default();
        Ok(Generation {
            content,
            tool_calls: Vec::new(),
            model: request.model.clone(),
            tokens,
            finish_reason: Some(stop_reason(out.stop_reason())),
            logprobs: None,
            rate_limit: None,
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

fn non_negative(v: i32) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Bedrock's error codes, which also cover IAM's answers to bad credentials.
fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
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
        SdkError::ServiceError(s) => {
            let message = s.err().message().unwrap_or_default();
            match s.err().code().unwrap_or_default() {
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
                | "ModelNotReadyException" => ErrorKind::ServerError,
                _ => super::error::kind_for_status(s.raw().status().as_u16()),
            }
        }
        _ => ErrorKind::ServerError,
    };
    let mut err = ProviderError::new(kind, format!("bedrock: {detail}"));
    if let Some(s) = status {
        err = err.with_status(s);
    }
    err
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
