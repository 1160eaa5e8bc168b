//! The one HTTP client every adapter's requests go through, built once per process:
//! rustls, TCP_NODELAY, pooled connections, no redirects, a connect timeout and a total
//! timeout kept under the Lambda and API Gateway limits (API Gateway gives up at 30 s).

use super::{ErrorKind, ProviderError, WireRequest};
use bytes::Bytes;
use http::HeaderMap;
use std::time::Duration;

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(25);
/// The operator may shorten (or lengthen) the total upstream timeout, in seconds.
pub const TIMEOUT_ENV: &str = "LLM_PROVIDER_TIMEOUT_SECS";

#[derive(Debug, Clone, Copy)]
pub struct TransportConfig {
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            total_timeout: DEFAULT_TOTAL_TIMEOUT,
        }
    }
}

impl TransportConfig {
    /// The defaults, with `LLM_PROVIDER_TIMEOUT_SECS` applied when set to a number.
    pub fn from_env() -> Self {
        let mut c = TransportConfig::default();
        if let Some(secs) = std::env::var(TIMEOUT_ENV)
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0 && *s <= 900.0)
        {
            c.total_timeout = Duration::from_millis((secs * 1000.0) as u64);
        }
        c
    }
}

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
    config: TransportConfig,
}

#[derive(Debug, thiserror::Error)]
#[error("HTTP client could not be built: {0}")]
pub struct TransportInitError(String);

impl Transport {
    pub fn new(config: TransportConfig) -> Result<Self, TransportInitError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            // Never follow a redirect: the next host would receive the user's key (in
            // `x-api-key`, `api-key`, `x-goog-api-key` ...) and the prompt. A 3xx is
            // answered as it is, and adapters classify it as a provider error.
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("llm-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportInitError(e.to_string()))?;
        Ok(Transport { client, config })
    }

    pub fn config(&self) -> TransportConfig {
        self.config
    }

    fn prepare(&self, req: WireRequest) -> reqwest::RequestBuilder {
        let mut builder = self
            .client
            .request(req.method, req.url)
            .headers(req.headers);
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        builder
    }

    /// Sends a request and reads the whole answer, within the total timeout.
    pub async fn send(&self, req: WireRequest) -> Result<RawResponse, ProviderError> {
        let exchange = async {
            let response = self.prepare(req).send().await.map_err(classify)?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(classify)?;
            Ok(RawResponse {
                status,
                headers,
                body,
            })
        };
        match tokio::time::timeout(self.config.total_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ProviderError::new(
                ErrorKind::Timeout,
                "upstream total timeout",
            )),
        }
    }

    /// Sends a request whose answer is streamed. The wait for the response head is bound
    /// by the total timeout; after that the caller reads chunks with
    /// [`Transport::next_chunk`], each bound by the same timeout.
    pub async fn open_stream(&self, req: WireRequest) -> Result<reqwest::Response, ProviderError> {
        match tokio::time::timeout(self.config.total_timeout, self.prepare(req).send()).await {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(ProviderError::new(
                ErrorKind::Timeout,
                "upstream did not answer in time",
            )),
        }
    }

    pub async fn next_chunk(
        &self,
        response: &mut reqwest::Response,
    ) -> Result<Option<Bytes>, ProviderError> {
        match tokio::time::timeout(self.config.total_timeout, response.chunk()).await {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(ProviderError::new(
                ErrorKind::Timeout,
                "upstream stream stalled",
            )),
        }
    }
}

/// Transport failures: no response at all. The message is reqwest's, which names the
/// URL (never a key: keys travel in headers).
fn classify(e: reqwest::Error) -> ProviderError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Network
    };
    ProviderError::new(kind, e.to_string())
}
