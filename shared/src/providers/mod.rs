//! Provider adapters: one file per wire format, each a pair of pure halves around one
//! shared transport (the rust-genai shape): `chat_request` builds `{url, headers, body}`
//! from a [`ChatRequest`]; `parse_chat` turns `(status, headers, bytes)` into a
//! [`Generation`] or a classified [`ProviderError`]; a [`StreamParser`] does the same
//! for streamed bodies. Nothing in an adapter does I/O, so each is tested against the
//! provider's documented bodies without a network, and against a local server speaking
//! its wire format for the transport.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod chat;
pub mod embed;
pub mod endpoints;
pub mod error;
pub mod facade;
pub mod google;
pub mod openai;
pub mod params;
pub mod ratelimit;
pub mod registry;
pub mod sse;
pub mod titan;
pub mod transport;

#[cfg(test)]
pub mod behaviours;

pub use chat::{
    ChatRequest, FinishReason, Generation, ImageSource, Logprobs, Message, Part, ReasoningEffort,
    ResponseFormat, Role, StreamEvent, Tool, ToolCall, ToolCallDelta, ToolChoice,
};
pub use error::{ErrorKind, ProviderError};
pub use facade::{EventStream, ProviderApi, ReportsLimits, Route, key_required};
pub use ratelimit::RateLimitState;
pub use registry::{Providers, ProvidersInitError};

use crate::provider::Provider;
use crate::secret::ApiKey;
use http::{HeaderMap, HeaderValue, Method};

/// Where an adapter sends requests: the base URL from the allow-list or the operator's
/// override, never from a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub base_url: String,
}

/// An HTTP request an adapter wants sent. Header values that carry a key are marked
/// sensitive so no HTTP layer prints them.
#[derive(Debug)]
pub struct WireRequest {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
}

impl WireRequest {
    pub fn get(url: String) -> Self {
        WireRequest {
            method: Method::GET,
            url,
            headers: HeaderMap::new(),
            body: None,
        }
    }

    pub fn post_json(url: String, body: &serde_json::Value) -> Result<Self, ProviderError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ProviderError::new(ErrorKind::InvalidRequest, e.to_string()))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(WireRequest {
            method: Method::POST,
            url,
            headers,
            body: Some(bytes),
        })
    }

    /// Adds a header carrying a secret; the value is flagged sensitive.
    pub fn secret_header(&mut self, name: &'static str, value: &str) -> Result<(), ProviderError> {
        let mut v = HeaderValue::from_str(value).map_err(|_| {
            ProviderError::new(ErrorKind::InvalidKey, "key is not a valid header value")
        })?;
        v.set_sensitive(true);
        self.headers.insert(name, v);
        Ok(())
    }

    pub fn header(&mut self, name: &'static str, value: &'static str) {
        self.headers.insert(name, HeaderValue::from_static(value));
    }
}

/// Incremental parser of a streamed response body. Fed arbitrary chunks (an event may
/// be split anywhere); returns the events completed so far.
pub trait StreamParser: Send {
    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<StreamEvent>, ProviderError>;
    /// The body ended; flush what is left. A stream that ended without its terminal
    /// event is a network error (the connection was cut).
    fn finish(&mut self) -> Result<Vec<StreamEvent>, ProviderError>;
}

/// One provider wire format.
pub trait ChatWire: Send + Sync {
    fn provider(&self) -> Provider;

    fn chat_request(
        &self,
        endpoint: &Endpoint,
        key: Option<&ApiKey>,
        request: &ChatRequest,
    ) -> Result<WireRequest, ProviderError>;

    fn parse_chat(
        &self,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Generation, ProviderError>;

    /// Classifies a non-2xx response (used for streams, whose error arrives before any
    /// event).
    fn classify_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError;

    /// What an answer's headers (received at `now`) say about the key's rate limits,
    /// whatever its status. Nothing, for a wire format that sends none.
    fn rate_limit(
        &self,
        _headers: &HeaderMap,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> RateLimitState {
        RateLimitState::default()
    }

    fn stream_parser(&self) -> Box<dyn StreamParser>;

    /// The cheapest call that proves a key works: a model listing where the provider
    /// has one, else a one-token completion of `model`.
    fn probe_request(
        &self,
        endpoint: &Endpoint,
        key: Option<&ApiKey>,
        model: &str,
    ) -> Result<WireRequest, ProviderError>;

    /// `Ok` when the probe's answer shows the key works (and can see `model`, where
    /// the answer says so).
    fn parse_probe(
        &self,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
        model: &str,
    ) -> Result<(), ProviderError>;

    /// Whether the provider has an embeddings API this wire format speaks.
    fn embeds(&self) -> bool {
        false
    }

    /// The embeddings request ([`embed`]'s OpenAI shape); an `invalid_request` naming
    /// the provider where it has no embeddings API.
    fn embed_request(
        &self,
        _endpoint: &Endpoint,
        _key: Option<&ApiKey>,
        _request: &embed::EmbedRequest,
    ) -> Result<WireRequest, ProviderError> {
        Err(no_embeddings(self.provider()))
    }
}

/// The refusal of an embeddings call to a provider without an embeddings API.
pub fn no_embeddings(provider: Provider) -> ProviderError {
    ProviderError::new(
        ErrorKind::InvalidRequest,
        format!("{provider} has no embeddings API on this gateway"),
    )
}

/// Joins a base URL and a path with exactly one slash.
pub fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}
