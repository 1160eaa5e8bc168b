//! Azure OpenAI (`POST {base}/openai/deployments/{deployment}/chat/completions
//! ?api-version=...`): the same body, usage, stream and error shapes as OpenAI (the
//! halves in [`super::openai`] are reused), but the model is chosen by the deployment in
//! the path (`ChatRequest::model` is the deployment name), the key goes in an `api-key`
//! header, and errors often carry the HTTP status as a string `code` (`"401"`, `"429"`)
//! or Azure names (`DeploymentNotFound`, `content_filter`). Streams open with a chunk of
//! `prompt_filter_results` and empty `choices`. The data plane has no per-key listing
//! of deployments, so the probe is a one-token completion against the deployment.

use super::openai::{ChatStream, chat_body, classify, parse_completion};
use super::{
    ChatRequest, ChatWire, Endpoint, ErrorKind, Generation, Message, ProviderError, Role,
    StreamParser, WireRequest, join,
};
use crate::provider::Provider;
use crate::secret::ApiKey;
use http::HeaderMap;

/// The latest GA data-plane inference version (supports `stream_options`).
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

const LABEL: &str = "azure_openai";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureOpenAi {
    /// The `api-version` query parameter; [`DEFAULT_API_VERSION`] unless overridden.
    pub api_version: String,
}

impl Default for AzureOpenAi {
    fn default() -> Self {
        AzureOpenAi {
            api_version: DEFAULT_API_VERSION.to_owned(),
        }
    }
}

/// Deployment names are letters, digits, `-`, `_` and `.` (Azure's rule); anything else
/// (a `/`, `?`, `..`) could change the URL's meaning and is refused.
fn valid_deployment(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.chars().any(|c| c.is_ascii_alphanumeric())
}

fn valid_api_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 32
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

impl AzureOpenAi {
    pub fn new(api_version: impl Into<String>) -> Self {
        AzureOpenAi {
            api_version: api_version.into(),
        }
    }

    /// `{base}/openai/deployments/{deployment}/{operation}?api-version=...`, the
    /// deployment (not the body) naming the model.
    fn url(
        &self,
        endpoint: &Endpoint,
        deployment: &str,
        operation: &str,
    ) -> Result<String, ProviderError> {
        if !valid_deployment(deployment) {
            return Err(ProviderError::new(
                ErrorKind::InvalidRequest,
                "azure deployment names are letters, digits, '-', '_' and '.'",
            ));
        }
        if !valid_api_version(&self.api_version) {
            return Err(ProviderError::new(
                ErrorKind::InvalidRequest,
                "azure api-version is malformed",
            ));
        }
        Ok(join(
            &endpoint.base_url,
            &format!(
                "/openai/deployments/{deployment}/{operation}?api-version={}",
                self.api_version
            ),
        ))
    }

    fn post(
        &self,
        endpoint: &Endpoint,
        key: Option<&ApiKey>,
        request: &ChatRequest,
    ) -> Result<WireRequest, ProviderError> {
        // The deployment picks the model; `max_tokens` is what every GA api-version
        // documents for chat completions.
        let body = chat_body(request, None, "max_tokens", true);
        let url = self.url(endpoint, &request.model, "chat/completions")?;
        let mut req = WireRequest::post_json(url, &body)?;
        let key = key.ok_or_else(|| ProviderError::new(ErrorKind::InvalidKey, "no key"))?;
        req.secret_header("api-key", key.expose())?;
        Ok(req)
    }
}

impl ChatWire for AzureOpenAi {
    fn provider(&self) -> Provider {
        Provider::AzureOpenAi
    }

    fn chat_request(
        &self,
        endpoint: &Endpoint,
        key: Option<&ApiKey>,
        request: &ChatRequest,
    ) -> Result<WireRequest, ProviderError> {
        self.post(endpoint, key, request)
    }

    fn parse_chat(
        &self,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Generation, ProviderError> {
        parse_completion(LABEL, status, headers, body)
    }

    fn classify_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        classify(LABEL, status, headers, body)
    }

    fn rate_limit(
        &self,
        headers: &HeaderMap,
        now: chrono::DateTime<chrono::Utc>,
    ) -> super::RateLimitState {
        super::ratelimit::openai_headers(headers, now)
    }

    fn stream_parser(&self) -> Box<dyn StreamParser> {
        Box::new(ChatStream::new(LABEL))
    }

    /// Azure OpenAI's embeddings (its REST reference, 2024-10-21): OpenAI's body
    /// without `model`, at the deployment's `embeddings` path.
    fn embeds(&self) -> bool {
        true
    }

    fn embed_request(
        &self,
        endpoint: &Endpoint,
        key: Option<&ApiKey>,
        request: &super::embed::EmbedRequest,
    ) -> Result<WireRequest, ProviderError> {
        let mut body = super::embed::body(request);
        if let Some(b) = body.as_object_mut() {
            b.remove("model");
        }
        let url = self.url(endpoint, &request.model, "embeddings")?;
        let mut req = WireRequest::post_json(url, &body)?;
        let key = key.ok_or_else(|| ProviderError::new(ErrorKind::InvalidKey, "no key"))?;
        req.secret_header("api-key", key.expose())?;
        Ok(req)
    }

    fn probe_request(
        &self,
        endpoint: &Endpoint,
        key: Option<&ApiKey>,
        model: &str,
    ) -> Result<WireRequest, ProviderError> {
        let request = ChatRequest {
            model: model.to_owned(),
            system: None,
            messages: vec![Message::text(Role::User, "ping")],
            max_tokens: 1,
            temperature: None,
            stream: false,
            ..ChatRequest::default()
        };
        self.post(endpoint, key, &request)
    }

    fn parse_probe(
        &self,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
        _model: &str,
    ) -> Result<(), ProviderError> {
        // A 2xx from the deployment proves both the key and the deployment; a missing
        // deployment answers 404 DeploymentNotFound.
        if !(200..300).contains(&status) {
            return Err(classify(LABEL, status, headers, body));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::TokenCounts;
    use crate::providers::behaviours::{ErrorCase, WireFixture};
    use serde_json::{Value, json};

    struct Fixture;

    const KEY: &str = "0123456789abcdef0123456789abcdef";
    const DEPLOYMENT: &str = "gpt-4o-prod";

    // Bodies from the Azure OpenAI REST reference (chat completions, 2024-10-21), its
    // content-filtering guide and the error bodies the service documents.
    const SUCCESS: &str = r#"{"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}},"finish_reason":"stop","index":0,"logprobs":null,"message":{"content":"SELECT * FROM cloudtrail WHERE errorcode = 'Failed authentication';","refusal":null,"role":"assistant"}}],"created":1730000000,"id":"chatcmpl-AOlMFCbpSzJ3hbcU1Xn0cQAtG9Pd5","model":"gpt-4o-2024-08-06","object":"chat.completion","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}}],"system_fingerprint":"fp_d54531d9eb","usage":{"completion_tokens":17,"completion_tokens_details":{"reasoning_tokens":0},"prompt_tokens":1236,"prompt_tokens_details":{"cached_tokens":1024},"total_tokens":1253}}"#;

    const STREAM: &str = "data: {\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\",\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{\"hate\":{\"filtered\":false,\"severity\":\"safe\"},\"self_harm\":{\"filtered\":false,\"severity\":\"safe\"},\"sexual\":{\"filtered\":false,\"severity\":\"safe\"},\"violence\":{\"filtered\":false,\"severity\":\"safe\"}}}]}\n\ndata: {\"choices\":[{\"content_filter_results\":{},\"delta\":{\"content\":\"\",\"role\":\"assistant\"},\"finish_reason\":null,\"index\":0,\"logprobs\":null}],\"created\":1730000000,\"id\":\"chatcmpl-AOlP1\",\"model\":\"gpt-4o-2024-08-06\",\"object\":\"chat.completion.chunk\",\"system_fingerprint\":\"fp_d54531d9eb\",\"usage\":null}\n\ndata: {\"choices\":[{\"content_filter_results\":{\"hate\":{\"filtered\":false,\"severity\":\"safe\"},\"self_harm\":{\"filtered\":false,\"severity\":\"safe\"},\"sexual\":{\"filtered\":false,\"severity\":\"safe\"},\"violence\":{\"filtered\":false,\"severity\":\"safe\"}},\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null,\"index\":0,\"logprobs\":null}],\"created\":1730000000,\"id\":\"chatcmpl-AOlP1\",\"model\":\"gpt-4o-2024-08-06\",\"object\":\"chat.completion.chunk\",\"system_fingerprint\":\"fp_d54531d9eb\",\"usage\":null}\n\ndata: {\"choices\":[{\"content_filter_results\":{\"hate\":{\"filtered\":false,\"severity\":\"safe\"},\"self_harm\":{\"filtered\":false,\"severity\":\"safe\"},\"sexual\":{\"filtered\":false,\"severity\":\"safe\"},\"violence\":{\"filtered\":false,\"severity\":\"safe\"}},\"delta\":{\"content\":\"!\"},\"finish_reason\":null,\"index\":0,\"logprobs\":null}],\"created\":1730000000,\"id\":\"chatcmpl-AOlP1\",\"model\":\"gpt-4o-2024-08-06\",\"object\":\"chat.completion.chunk\",\"system_fingerprint\":\"fp_d54531d9eb\",\"usage\":null}\n\ndata: {\"choices\":[{\"content_filter_results\":{},\"delta\":{},\"finish_reason\":\"stop\",\"index\":0,\"logprobs\":null}],\"created\":1730000000,\"id\":\"chatcmpl-AOlP1\",\"model\":\"gpt-4o-2024-08-06\",\"object\":\"chat.completion.chunk\",\"system_fingerprint\":\"fp_d54531d9eb\",\"usage\":null}\n\ndata: {\"choices\":[],\"created\":1730000000,\"id\":\"chatcmpl-AOlP1\",\"model\":\"gpt-4o-2024-08-06\",\"object\":\"chat.completion.chunk\",\"system_fingerprint\":\"fp_d54531d9eb\",\"usage\":{\"completion_tokens\":2,\"completion_tokens_details\":{\"reasoning_tokens\":0},\"prompt_tokens\":19,\"prompt_tokens_details\":{\"cached_tokens\":0},\"total_tokens\":21}}\n\ndata: [DONE]\n\n";

    impl WireFixture for Fixture {
        fn wire() -> Box<dyn ChatWire> {
            Box::new(AzureOpenAi::default())
        }
        fn key() -> Option<ApiKey> {
            Some(ApiKey::new(KEY.into()))
        }
        fn model() -> &'static str {
            DEPLOYMENT
        }
        fn chat_path(_stream: bool) -> String {
            format!("/openai/deployments/{DEPLOYMENT}/chat/completions")
        }
        fn assert_sampling(b: &serde_json::Value) {
            crate::providers::behaviours::assert_openai_sampling(b)
        }
        fn assert_chat_request(r: &wiremock::Request, stream: bool) {
            assert_eq!(r.method.as_str(), "POST");
            assert_eq!(r.url.query(), Some("api-version=2024-10-21"));
            assert_eq!(r.headers.get("api-key").unwrap(), KEY);
            assert!(r.headers.get("authorization").is_none());
            let b: Value = serde_json::from_slice(&r.body).unwrap();
            assert!(b.get("model").is_none(), "the deployment picks the model");
            assert_eq!(b["max_tokens"], 256);
            assert_eq!(b["temperature"], 0.0);
            assert_eq!(
                b["messages"][0],
                json!({"role": "system", "content": "You write SQL."})
            );
            assert_eq!(b["messages"].as_array().unwrap().len(), 4);
            assert_eq!(b.get("stream").is_some(), stream);
            assert_eq!(
                b["stream_options"]["include_usage"].as_bool(),
                stream.then_some(true)
            );
        }
        fn success() -> (&'static str, &'static str, TokenCounts) {
            (
                SUCCESS,
                "SELECT * FROM cloudtrail WHERE errorcode = 'Failed authentication';",
                TokenCounts {
                    input_tokens: 1236,
                    output_tokens: 17,
                    cached_input_tokens: 1024,
                    cache_write_tokens: 0,
                },
            )
        }
        fn stream() -> (&'static str, &'static str, TokenCounts) {
            (
                STREAM,
                "Hello!",
                TokenCounts {
                    input_tokens: 19,
                    output_tokens: 2,
                    ..Default::default()
                },
            )
        }
        fn error(kind: ErrorKind) -> ErrorCase {
            match kind {
                ErrorKind::InvalidKey => ErrorCase::new(401, r#"{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}"#),
                ErrorKind::PermissionDenied => ErrorCase::new(403, r#"{"error":{"code":"403","message":"Access denied due to Virtual Network/Firewall rules."}}"#),
                ErrorKind::ModelNotFound => ErrorCase::new(404, r#"{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."}}"#),
                ErrorKind::RateLimited => ErrorCase::new(429, r#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."}}"#).header("retry-after", "6"),
                ErrorKind::QuotaExceeded => ErrorCase::new(403, r#"{"error":{"code":"403","message":"Out of call volume quota for OpenAI API. Quota will be replenished in 2.14:36:52."}}"#),
                ErrorKind::InvalidRequest => ErrorCase::new(400, r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":true,"severity":"medium"}}}}}"#),
                ErrorKind::ContextLengthExceeded => ErrorCase::new(400, r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130412 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#),
                ErrorKind::ServerError => ErrorCase::new(500, r#"{"error":{"code":"InternalServerError","message":"The server had an error processing your request. Sorry about that! You can retry your request, or contact us through an Azure support request at: https://go.microsoft.com/fwlink/?linkid=2213926 if you keep seeing this error.","param":null,"type":null}}"#),
                ErrorKind::Timeout | ErrorKind::Network => unreachable!("made by the transport"),
            }
        }
        fn probe() -> (http::Method, String, &'static str) {
            (
                http::Method::POST,
                format!("/openai/deployments/{DEPLOYMENT}/chat/completions"),
                r#"{"choices":[{"finish_reason":"length","index":0,"logprobs":null,"message":{"content":"Pong","role":"assistant"}}],"created":1730000000,"id":"chatcmpl-AOlQ2","model":"gpt-4o-2024-08-06","object":"chat.completion","usage":{"completion_tokens":1,"prompt_tokens":8,"total_tokens":9}}"#,
            )
        }
    }

    crate::adapter_behaviours!(Fixture);

    // Azure answers tool calls in OpenAI's shape (its function-calling how-to).
    mod tools {
        use super::Fixture;
        crate::providers::openai::tests::openai_tool_fixture!(Fixture);
    }

    fn endpoint() -> Endpoint {
        Endpoint {
            base_url: "https://contoso.openai.azure.com".into(),
        }
    }

    #[test]
    fn the_probe_is_a_one_token_completion_with_a_sensitive_key_header() {
        let key = ApiKey::new(KEY.into());
        let r = AzureOpenAi::default()
            .probe_request(&endpoint(), Some(&key), DEPLOYMENT)
            .unwrap();
        assert_eq!(
            r.url,
            "https://contoso.openai.azure.com/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21"
        );
        assert!(!r.url.contains(KEY));
        assert!(r.headers.get("api-key").unwrap().is_sensitive());
        let b: Value = serde_json::from_slice(&r.body.unwrap()).unwrap();
        assert_eq!(b["max_tokens"], 1);
    }

    #[test]
    fn the_api_version_can_be_overridden() {
        let r = AzureOpenAi::new("2025-01-01-preview")
            .chat_request(
                &endpoint(),
                Some(&ApiKey::new(KEY.into())),
                &ChatRequest {
                    model: DEPLOYMENT.into(),
                    ..crate::providers::behaviours::request(false)
                },
            )
            .unwrap();
        assert!(r.url.ends_with("?api-version=2025-01-01-preview"));
    }

    #[test]
    fn deployment_names_cannot_change_the_url() {
        let key = ApiKey::new(KEY.into());
        for evil in ["../x", "a/b", "a?b=1", "a#b", "..", "", "a b", "dep%2F"] {
            let e = AzureOpenAi::default()
                .probe_request(&endpoint(), Some(&key), evil)
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidRequest, "{evil}");
        }
    }
}
