//! The one way to call a provider (the rust-genai shape): adapters stay pure, and this
//! facade joins them to the transport once. It owns everything between "this model,
//! this key" and an answer: the wire format, the endpoint (Azure's resource and
//! deployment), the transport, the Bedrock SDK branch, and which providers need a key.
//! The engine and the connection test only see [`ProviderApi`], so the engine is tested
//! in-process against a fake backend.

use super::embed::{EmbedRequest, Embeddings};
use super::registry::{Providers, wire};
use super::transport::Transport;
use super::{
    ChatRequest, ChatWire, ErrorKind, Generation, ProviderError, RateLimitState, StreamEvent,
    StreamParser, no_embeddings,
};
use crate::provider::Provider;
use crate::secret::ApiKey;
use async_trait::async_trait;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Where a call goes and as whom: the provider, the caller's key (none for Ollama, or for
/// Bedrock on the function's role), and the caller's Azure resource and deployments.
#[derive(Clone, Copy)]
pub struct Route<'a> {
    pub provider: Provider,
    pub key: Option<&'a ApiKey>,
    pub azure_resource: Option<&'a str>,
    /// Catalog model id -> Azure deployment name.
    pub azure_deployments: Option<&'a BTreeMap<String, String>>,
}

impl<'a> Route<'a> {
    pub fn new(provider: Provider, key: Option<&'a ApiKey>) -> Self {
        Route {
            provider,
            key,
            azure_resource: None,
            azure_deployments: None,
        }
    }

    /// The model name the provider is sent: Azure calls a model by its deployment.
    fn model_name<'m>(&self, model: &'m str) -> &'m str
    where
        'a: 'm,
    {
        if self.provider != Provider::AzureOpenAi {
            return model;
        }
        self.azure_deployments
            .and_then(|d| d.get(model))
            .map_or(model, String::as_str)
    }
}

/// Whether a call to `provider` needs a key of the caller's own. Ollama takes none;
/// Bedrock falls back to the function's own role.
pub fn key_required(provider: Provider) -> bool {
    provider.takes_key() && provider != Provider::Bedrock
}

/// A streamed answer, read event batch by event batch.
#[async_trait]
pub trait EventStream: Send {
    /// The events that arrived next (possibly none); `Ok(None)` once the stream ended
    /// with its terminal event. A cut stream is an error.
    async fn next_events(&mut self) -> Result<Option<Vec<StreamEvent>>, ProviderError>;

    /// What the stream's opening answer said about the key's rate limits.
    fn rate_limit(&self) -> Option<&RateLimitState> {
        None
    }
}

/// An outcome that may carry the key's rate-limit state: what the engine records after
/// every answer, whole or streamed, success or failure.
pub trait ReportsLimits {
    fn rate_limit(&self) -> Option<&RateLimitState>;
}

impl ReportsLimits for Generation {
    fn rate_limit(&self) -> Option<&RateLimitState> {
        self.rate_limit.as_ref()
    }
}

impl ReportsLimits for Embeddings {
    fn rate_limit(&self) -> Option<&RateLimitState> {
        self.rate_limit.as_ref()
    }
}

impl ReportsLimits for Box<dyn EventStream> {
    fn rate_limit(&self) -> Option<&RateLimitState> {
        self.as_ref().rate_limit()
    }
}

impl ReportsLimits for ProviderError {
    fn rate_limit(&self) -> Option<&RateLimitState> {
        self.rate_limit.as_ref()
    }
}

/// Attaches an answer's rate-limit state to its outcome.
fn reporting(
    outcome: Result<Generation, ProviderError>,
    state: RateLimitState,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Generation, ProviderError> {
    match outcome {
        Ok(mut g) => {
            g.rate_limit = (!state.is_empty()).then_some(state);
            Ok(g)
        }
        Err(e) => Err(e.reporting(state, now)),
    }
}

/// Calls to providers. Implemented by [`Providers`]; tests implement it with scripts.
#[async_trait]
pub trait ProviderApi: Send + Sync {
    /// Sends `chat` and reads the whole answer.
    async fn complete(
        &self,
        route: &Route<'_>,
        chat: &ChatRequest,
    ) -> Result<Generation, ProviderError>;

    /// Sends `chat` and returns once the answer's head arrived: a non-2xx answer is an
    /// error here, before any event.
    async fn open_stream(
        &self,
        route: &Route<'_>,
        chat: &ChatRequest,
    ) -> Result<Box<dyn EventStream>, ProviderError>;

    /// The cheapest call that proves the route's key works for `model`.
    async fn probe(&self, route: &Route<'_>, model: &str) -> Result<(), ProviderError>;

    /// The preference a route cannot do without before any call (so a connection test
    /// can name the field): Azure needs a resource unless the operator pinned its URL.
    fn missing_preference(&self, route: &Route<'_>) -> Option<&'static str>;

    /// Embeds `request`'s inputs. By default no provider embeds (test backends that do
    /// not script embeddings refuse them like a provider without the API).
    async fn embed(
        &self,
        route: &Route<'_>,
        _request: &EmbedRequest,
    ) -> Result<Embeddings, ProviderError> {
        Err(no_embeddings(route.provider))
    }
}

/// `chat` as the provider is sent it (only Azure renames the model).
fn for_route<'c>(route: &Route<'_>, chat: &'c ChatRequest) -> Cow<'c, ChatRequest> {
    let name = route.model_name(&chat.model);
    if name == chat.model {
        return Cow::Borrowed(chat);
    }
    let mut renamed = chat.clone();
    renamed.model = name.to_owned();
    Cow::Owned(renamed)
}

impl Providers {
    fn http_wire(
        &self,
        route: &Route<'_>,
    ) -> Result<(Box<dyn ChatWire>, super::Endpoint), ProviderError> {
        let wire = wire(route.provider).ok_or_else(|| {
            ProviderError::new(
                ErrorKind::InvalidRequest,
                format!("{} has no adapter", route.provider),
            )
        })?;
        let endpoint = self.endpoint(route.provider, route.azure_resource)?;
        Ok((wire, endpoint))
    }
}

#[async_trait]
impl ProviderApi for Providers {
    async fn complete(
        &self,
        route: &Route<'_>,
        chat: &ChatRequest,
    ) -> Result<Generation, ProviderError> {
        let chat = for_route(route, chat);
        if route.provider == Provider::Bedrock {
            // No headers through the SDK, and its throttling names no wait (today):
            // a wait it did name would still block the key.
            let outcome = self.bedrock.converse(route.key, &chat).await;
            return reporting(outcome, RateLimitState::default(), chrono::Utc::now());
        }
        let (wire, endpoint) = self.http_wire(route)?;
        let request = wire.chat_request(&endpoint, route.key, &chat)?;
        let raw = self.transport.send(request).await?;
        let now = chrono::Utc::now();
        let state = wire.rate_limit(&raw.headers, now);
        reporting(
            wire.parse_chat(raw.status, &raw.headers, &raw.body),
            state,
            now,
        )
    }

    async fn open_stream(
        &self,
        route: &Route<'_>,
        chat: &ChatRequest,
    ) -> Result<Box<dyn EventStream>, ProviderError> {
        let chat = for_route(route, chat);
        if route.provider == Provider::Bedrock {
            // ConverseStream: deltas as Bedrock sends them.
            return Ok(Box::new(
                self.bedrock.converse_stream(route.key, &chat).await?,
            ));
        }
        let (wire, endpoint) = self.http_wire(route)?;
        let request = wire.chat_request(&endpoint, route.key, &chat)?;
        let response = self.transport.open_stream(request).await?;
        let status = response.status().as_u16();
        let now = chrono::Utc::now();
        let state = wire.rate_limit(response.headers(), now);
        if !(200..300).contains(&status) {
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap_or_default();
            return Err(wire
                .classify_error(status, &headers, &body)
                .reporting(state, now));
        }
        Ok(Box::new(HttpStream {
            rate_limit: (!state.is_empty()).then_some(state),
            response,
            parser: wire.stream_parser(),
            transport: self.transport.clone(),
            ended: false,
        }))
    }

    async fn probe(&self, route: &Route<'_>, model: &str) -> Result<(), ProviderError> {
        let model = route.model_name(model);
        if route.provider == Provider::Bedrock {
            return self.bedrock.probe(route.key, model).await;
        }
        let (wire, endpoint) = self.http_wire(route)?;
        let request = wire.probe_request(&endpoint, route.key, model)?;
        let raw = self.transport.send(request).await?;
        wire.parse_probe(raw.status, &raw.headers, &raw.body, model)
    }

    async fn embed(
        &self,
        route: &Route<'_>,
        request: &EmbedRequest,
    ) -> Result<Embeddings, ProviderError> {
        if route.provider == Provider::Bedrock {
            return self.bedrock.embed(route.key, request).await;
        }
        let (wire, endpoint) = self.http_wire(route)?;
        // Azure calls a model by the user's deployment name, as for chat.
        let renamed;
        let request = match route.model_name(&request.model) {
            name if name == request.model => request,
            name => {
                renamed = EmbedRequest {
                    model: name.to_owned(),
                    ..request.clone()
                };
                &renamed
            }
        };
        let request_out = wire.embed_request(&endpoint, route.key, request)?;
        let raw = self.transport.send(request_out).await?;
        let now = chrono::Utc::now();
        let state = wire.rate_limit(&raw.headers, now);
        let outcome = if (200..300).contains(&raw.status) {
            super::embed::parse(route.provider.as_str(), &raw.body, request.input.len())
        } else {
            Err(wire.classify_error(raw.status, &raw.headers, &raw.body))
        };
        match outcome {
            Ok(mut e) => {
                e.rate_limit = (!state.is_empty()).then_some(state);
                Ok(e)
            }
            Err(e) => Err(e.reporting(state, now)),
        }
    }

    fn missing_preference(&self, route: &Route<'_>) -> Option<&'static str> {
        let needs_resource = route.provider == Provider::AzureOpenAi
            && self.urls.overridden(route.provider).is_none()
            && route.azure_resource.is_none();
        needs_resource.then_some("preferences.azureResource")
    }
}

/// A streamed HTTP body and its wire format's parser.
struct HttpStream {
    response: reqwest::Response,
    parser: Box<dyn StreamParser>,
    transport: Transport,
    ended: bool,
    rate_limit: Option<RateLimitState>,
}

#[async_trait]
impl EventStream for HttpStream {
    async fn next_events(&mut self) -> Result<Option<Vec<StreamEvent>>, ProviderError> {
        if self.ended {
            return Ok(None);
        }
        match self.transport.next_chunk(&mut self.response).await? {
            Some(chunk) => self.parser.feed(&chunk).map(Some),
            None => {
                self.ended = true;
                self.parser.finish().map(Some)
            }
        }
    }

    fn rate_limit(&self) -> Option<&RateLimitState> {
        self.rate_limit.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_calls_a_model_by_its_deployment_and_nobody_else_does() {
        let deployments = BTreeMap::from([("gpt-4o".to_owned(), "prod-4o".to_owned())]);
        let mut route = Route::new(Provider::AzureOpenAi, None);
        route.azure_deployments = Some(&deployments);
        assert_eq!(route.model_name("gpt-4o"), "prod-4o");
        assert_eq!(route.model_name("gpt-4o-mini"), "gpt-4o-mini");
        route.provider = Provider::OpenAi;
        assert_eq!(route.model_name("gpt-4o"), "gpt-4o");
    }

    #[test]
    fn only_bedrock_and_ollama_go_without_a_key() {
        for p in Provider::ALL {
            let expected = !matches!(p, Provider::Bedrock | Provider::Ollama);
            assert_eq!(key_required(p), expected, "{p}");
        }
    }
}
