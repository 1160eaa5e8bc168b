//! Where each provider lives. Base URLs come from a fixed allow-list in code, or from the
//! operator's `LLM_PROVIDER_URL_<PROVIDER>` (read once at start-up). A user never
//! supplies a host: for Azure they supply only a resource name, and the host is always
//! `<resource>.openai.azure.com`.

use crate::provider::Provider;
use std::collections::BTreeMap;

pub const URL_ENV_PREFIX: &str = "LLM_PROVIDER_URL_";

/// The built-in base URL of each provider (`None` for Bedrock, reached through the AWS
/// SDK's own endpoint resolution, and Azure, whose host depends on the resource).
pub fn default_base_url(provider: Provider) -> Option<&'static str> {
    Some(match provider {
        Provider::Anthropic => "https://api.anthropic.com",
        Provider::OpenAi => "https://api.openai.com/v1",
        Provider::Google => "https://generativelanguage.googleapis.com",
        Provider::Groq => "https://api.groq.com/openai/v1",
        Provider::OpenRouter => "https://openrouter.ai/api/v1",
        Provider::Fireworks => "https://api.fireworks.ai/inference/v1",
        Provider::Mistral => "https://api.mistral.ai/v1",
        Provider::DeepSeek => "https://api.deepseek.com/v1",
        Provider::Together => "https://api.together.xyz/v1",
        // Self-hosted: the usual local port unless the operator says otherwise.
        Provider::Ollama => "http://127.0.0.1:11434/v1",
        Provider::Bedrock | Provider::AzureOpenAi => return None,
    })
}

#[derive(Debug, thiserror::Error)]
#[error("{variable} must be an http:// or https:// URL without credentials, query or fragment")]
pub struct BadOverride {
    pub variable: String,
}

/// The operator's overrides, by provider.
#[derive(Debug, Clone, Default)]
pub struct ProviderUrls {
    overrides: BTreeMap<Provider, String>,
}

impl ProviderUrls {
    /// Reads every `LLM_PROVIDER_URL_<PROVIDER>` from `vars` (the process environment in
    /// production). A malformed override stops start-up rather than being ignored.
    pub fn from_vars(vars: impl Iterator<Item = (String, String)>) -> Result<Self, BadOverride> {
        let mut overrides = BTreeMap::new();
        for (name, value) in vars {
            let Some(suffix) = name.strip_prefix(URL_ENV_PREFIX) else {
                continue;
            };
            let Ok(provider) = suffix.to_ascii_lowercase().parse::<Provider>() else {
                continue;
            };
            if !valid_base_url(&value) {
                return Err(BadOverride { variable: name });
            }
            overrides.insert(provider, value.trim_end_matches('/').to_owned());
        }
        Ok(ProviderUrls { overrides })
    }

    pub fn from_env() -> Result<Self, BadOverride> {
        Self::from_vars(std::env::vars())
    }

    pub fn overridden(&self, provider: Provider) -> Option<&str> {
        self.overrides.get(&provider).map(String::as_str)
    }

    /// The base URL to use for `provider`. For Azure, `azure_resource` names the
    /// resource (validated); for Bedrock there is none unless overridden.
    pub fn base_url(&self, provider: Provider, azure_resource: Option<&str>) -> Option<String> {
        if let Some(url) = self.overridden(provider) {
            return Some(url.to_owned());
        }
        match provider {
            Provider::AzureOpenAi => azure_resource
                .filter(|r| valid_azure_resource(r))
                .map(|r| format!("https://{r}.openai.azure.com")),
            _ => default_base_url(provider).map(str::to_owned),
        }
    }
}

fn valid_base_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split('/').next().unwrap_or("");
        !host.is_empty() && !host.contains('@') && !r.contains('?') && !r.contains('#')
    })
}

/// Azure resource names: 2-64 lowercase letters, digits and hyphens.
pub fn valid_azure_resource(name: &str) -> bool {
    (2..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(v: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn overrides_replace_the_allow_list() {
        let urls = ProviderUrls::from_vars(vars(&[
            ("LLM_PROVIDER_URL_OPENAI", "http://127.0.0.1:9000/v1/"),
            ("LLM_PROVIDER_URL_AZURE_OPENAI", "http://127.0.0.1:9002"),
            ("UNRELATED", "x"),
        ]))
        .unwrap();
        assert_eq!(
            urls.base_url(Provider::OpenAi, None).unwrap(),
            "http://127.0.0.1:9000/v1"
        );
        assert_eq!(
            urls.base_url(Provider::Anthropic, None).unwrap(),
            "https://api.anthropic.com"
        );
        assert_eq!(
            urls.base_url(Provider::AzureOpenAi, Some("myres")).unwrap(),
            "http://127.0.0.1:9002"
        );
    }

    #[test]
    fn azure_host_is_always_built_from_a_resource_name() {
        let urls = ProviderUrls::default();
        assert_eq!(
            urls.base_url(Provider::AzureOpenAi, Some("contoso-east"))
                .unwrap(),
            "https://contoso-east.openai.azure.com"
        );
        for evil in ["evil.com/x", "a.b", "attacker.com#", "UPPER", "-x", ""] {
            assert_eq!(
                urls.base_url(Provider::AzureOpenAi, Some(evil)),
                None,
                "{evil}"
            );
        }
    }

    #[test]
    fn malformed_overrides_are_refused() {
        for bad in [
            "ftp://x",
            "127.0.0.1:9000",
            "http://user:pw@host",
            "http://h/?q=1",
            "http://",
        ] {
            assert!(
                ProviderUrls::from_vars(vars(&[("LLM_PROVIDER_URL_OPENAI", bad)])).is_err(),
                "{bad}"
            );
        }
    }
}
