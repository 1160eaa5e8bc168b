//! The built-in providers and the shape of each one's API key.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Provider {
    Anthropic,
    OpenAi,
    Google,
    Bedrock,
    AzureOpenAi,
    Groq,
    OpenRouter,
    Fireworks,
    Mistral,
    DeepSeek,
    Together,
    Ollama,
}

/// How a provider's key must look before it is stored. Checks are deliberately about
/// shape only (a live check is the `test` endpoint's job) and their messages never
/// include the key.
struct KeyShape {
    prefix: &'static [&'static str],
    min_len: usize,
    max_len: usize,
}

impl Provider {
    pub const ALL: [Provider; 12] = [
        Provider::Anthropic,
        Provider::OpenAi,
        Provider::Google,
        Provider::Bedrock,
        Provider::AzureOpenAi,
        Provider::Groq,
        Provider::OpenRouter,
        Provider::Fireworks,
        Provider::Mistral,
        Provider::DeepSeek,
        Provider::Together,
        Provider::Ollama,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::OpenAi => "openai",
            Provider::Google => "google",
            Provider::Bedrock => "bedrock",
            Provider::AzureOpenAi => "azure_openai",
            Provider::Groq => "groq",
            Provider::OpenRouter => "openrouter",
            Provider::Fireworks => "fireworks",
            Provider::Mistral => "mistral",
            Provider::DeepSeek => "deepseek",
            Provider::Together => "together",
            Provider::Ollama => "ollama",
        }
    }

    /// Whether the provider takes a user key at all (`ollama` is self-hosted, keyless).
    pub fn takes_key(self) -> bool {
        self != Provider::Ollama
    }

    fn key_shape(self) -> KeyShape {
        let shape = |prefix, min_len, max_len| KeyShape {
            prefix,
            min_len,
            max_len,
        };
        match self {
            Provider::Anthropic => shape(&["sk-ant-"], 32, 256),
            Provider::OpenAi => shape(&["sk-"], 20, 256),
            // Google API keys are always 39 characters starting with "AIza".
            Provider::Google => shape(&["AIza"], 39, 39),
            // "<access key id>:<secret access key>", checked further below.
            Provider::Bedrock => shape(&["AKIA", "ASIA"], 58, 256),
            Provider::AzureOpenAi => shape(&[], 32, 128),
            Provider::Groq => shape(&["gsk_"], 20, 256),
            Provider::OpenRouter => shape(&["sk-or-"], 20, 256),
            Provider::Fireworks => shape(&["fw_"], 16, 256),
            Provider::Mistral => shape(&[], 32, 128),
            Provider::DeepSeek => shape(&["sk-"], 20, 256),
            Provider::Together => shape(&[], 32, 256),
            Provider::Ollama => shape(&[], 0, 0),
        }
    }

    /// Checks a key's shape. The error says what is expected, never what was given.
    pub fn check_key_shape(self, key: &str) -> Result<(), String> {
        if !self.takes_key() {
            return Err(format!("{self} takes no API key"));
        }
        if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain whitespace".into());
        }
        if !key.is_ascii() {
            return Err("must contain only ASCII characters".into());
        }
        let shape = self.key_shape();
        if !shape.prefix.is_empty() && !shape.prefix.iter().any(|p| key.starts_with(p)) {
            let expected: Vec<String> = shape.prefix.iter().map(|p| format!("`{p}`")).collect();
            return Err(format!("must start with {}", expected.join(" or ")));
        }
        if key.len() < shape.min_len || key.len() > shape.max_len {
            return Err(if shape.min_len == shape.max_len {
                format!("must be {} characters long", shape.min_len)
            } else {
                format!(
                    "must be between {} and {} characters long",
                    shape.min_len, shape.max_len
                )
            });
        }
        if self == Provider::Bedrock {
            let well_formed = key.split_once(':').is_some_and(|(id, secret)| {
                (16..=128).contains(&id.len())
                    && id.chars().all(|c| c.is_ascii_alphanumeric())
                    && secret.len() >= 40
            });
            if !well_formed {
                return Err("must be `<access key id>:<secret access key>`".into());
            }
        }
        Ok(())
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider; expected one of: {}", Provider::ALL.map(|p| p.as_str()).join(", "))]
pub struct UnknownProvider;

impl FromStr for Provider {
    type Err = UnknownProvider;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or(UnknownProvider)
    }
}

impl Serialize for Provider {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Provider {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// In `/openapi.json`: a string, one of the provider ids.
impl utoipa::PartialSchema for Provider {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Provider::ALL.map(Provider::as_str)))
            .description(Some("A provider id"))
            .into()
    }
}

impl utoipa::ToSchema for Provider {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>(), Ok(p));
        }
        assert!("OpenAI".parse::<Provider>().is_err());
    }

    #[test]
    fn key_shapes() {
        let ant = format!("sk-ant-api03-{}", "a".repeat(40));
        assert!(Provider::Anthropic.check_key_shape(&ant).is_ok());
        assert!(Provider::Anthropic.check_key_shape("sk-ant-short").is_err());
        assert!(
            Provider::Anthropic
                .check_key_shape(&format!("sk-proj-{}", "a".repeat(40)))
                .is_err()
        );
        assert!(
            Provider::OpenAi
                .check_key_shape(&format!("sk-proj-{} x", "a".repeat(40)))
                .is_err()
        );
        assert!(
            Provider::Google
                .check_key_shape(&format!("AIza{}", "b".repeat(35)))
                .is_ok()
        );
        assert!(
            Provider::Google
                .check_key_shape(&format!("AIza{}", "b".repeat(36)))
                .is_err()
        );
        let bedrock = format!("AKIAIOSFODNN7EXAMPLE:{}", "w".repeat(40));
        assert!(Provider::Bedrock.check_key_shape(&bedrock).is_ok());
        assert!(
            Provider::Bedrock
                .check_key_shape(&format!("AKIAIOSFODNN7EXAMPLE{}", "w".repeat(40)))
                .is_err()
        );
        assert!(Provider::Ollama.check_key_shape("anything").is_err());
    }

    #[test]
    fn shape_errors_never_contain_the_key() {
        let key = "sk-ant-THIS-IS-SECRET";
        for p in Provider::ALL {
            if let Err(msg) = p.check_key_shape(key) {
                assert!(!msg.contains("SECRET"), "{p}: {msg}");
            }
        }
    }
}
