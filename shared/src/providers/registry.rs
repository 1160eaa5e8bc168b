//! Which adapter serves which provider, where it lives, and the one transport and Bedrock
//! client set they share: built once per process. Calls go through [`super::facade`].

use super::anthropic::Anthropic;
use super::azure::AzureOpenAi;
use super::bedrock::Bedrock;
use super::endpoints::{BadOverride, ProviderUrls};
use super::google::Google;
use super::openai::OpenAiCompatible;
use super::transport::{Transport, TransportConfig, TransportInitError};
use super::{ChatWire, Endpoint, ErrorKind, ProviderError};
use crate::provider::Provider;

#[derive(Debug, thiserror::Error)]
pub enum ProvidersInitError {
    #[error(transparent)]
    Url(#[from] BadOverride),
    #[error(transparent)]
    Transport(#[from] TransportInitError),
}

pub struct Providers {
    pub transport: Transport,
    pub urls: ProviderUrls,
    pub bedrock: Bedrock,
}

/// The wire format of every HTTP provider (Bedrock goes through its SDK instead).
pub fn wire(provider: Provider) -> Option<Box<dyn ChatWire>> {
    match provider {
        Provider::Anthropic => Some(Box::new(Anthropic)),
        Provider::Google => Some(Box::new(Google)),
        Provider::AzureOpenAi => Some(Box::new(AzureOpenAi::default())),
        Provider::Bedrock => None,
        p @ (Provider::OpenAi
        | Provider::Groq
        | Provider::OpenRouter
        | Provider::Fireworks
        | Provider::Mistral
        | Provider::DeepSeek
        | Provider::Together
        | Provider::Ollama) => Some(Box::new(OpenAiCompatible::new(p))),
    }
}

/// Whether `provider` has an embeddings API the gateway speaks (Bedrock's is Titan's,
/// through the SDK: `titan.rs`).
pub fn embeds(provider: Provider) -> bool {
    provider == Provider::Bedrock || wire(provider).is_some_and(|w| w.embeds())
}

impl Providers {
    /// From the operator's environment: `LLM_PROVIDER_URL_*` and
    /// `LLM_PROVIDER_TIMEOUT_SECS`. A malformed override stops start-up.
    pub fn from_env(sdk: aws_config::SdkConfig) -> Result<Self, ProvidersInitError> {
        let urls = ProviderUrls::from_env()?;
        let transport = Transport::new(TransportConfig::from_env())?;
        let bedrock = Bedrock::new(sdk, urls.overridden(Provider::Bedrock).map(str::to_owned));
        Ok(Providers {
            transport,
            urls,
            bedrock,
        })
    }

    pub(super) fn endpoint(
        &self,
        provider: Provider,
        azure_resource: Option<&str>,
    ) -> Result<Endpoint, ProviderError> {
        self.urls
            .base_url(provider, azure_resource)
            .map(|base_url| Endpoint { base_url })
            .ok_or_else(|| {
                ProviderError::new(
                    ErrorKind::InvalidRequest,
                    format!("no endpoint for {provider}"),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_has_an_adapter_of_its_own() {
        for p in Provider::ALL {
            if p == Provider::Bedrock {
                continue; // the SDK, not a wire format
            }
            let w = wire(p).unwrap_or_else(|| panic!("{p} has no adapter"));
            assert_eq!(w.provider(), p);
        }
    }
}
