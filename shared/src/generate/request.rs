//! The `POST /api/llm-generate/{userId}` body, its validation, and model choice:
//! the request's `model`, else the preference for the operation, else the provider's
//! default model.

use super::error::GenerateError;
use crate::pricing::{Catalog, ModelPrice};
use crate::provider::Provider;
use crate::providers::{ChatRequest, Message, Role};
use crate::settings::{OPERATION_TYPES, Preferences};
use serde::Deserialize;
use std::collections::BTreeMap;

const MAX_METADATA_KEYS: usize = 16;
const MAX_METADATA_BYTES: usize = 4096;
const MAX_MESSAGES: usize = 500;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GenerateBody {
    pub prompt: Option<String>,
    pub messages: Option<Vec<Message>>,
    pub system: Option<String>,
    pub operation_type: Option<String>,
    pub provider: Option<Provider>,
    pub model: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub stream: Option<bool>,
    pub cache: Option<bool>,
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
}

/// A validated request, before routing.
#[derive(Debug, Clone)]
pub struct Generate {
    pub system: Option<String>,
    pub messages: Vec<Message>,
    pub operation_type: String,
    pub provider: Option<Provider>,
    pub model: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub stream: bool,
    pub cache: Option<bool>,
    pub metadata: BTreeMap<String, serde_json::Value>,
}

impl GenerateBody {
    pub fn validate(self, catalog: &Catalog) -> Result<Generate, GenerateError> {
        let messages = match (self.prompt, self.messages) {
            (Some(p), None) => vec![Message {
                role: Role::User,
                content: p,
            }],
            (None, Some(m)) => m,
            _ => {
                return Err(GenerateError::invalid(
                    "prompt",
                    "give exactly one of `prompt` or `messages`",
                ));
            }
        };
        if messages.is_empty() || messages.len() > MAX_MESSAGES {
            return Err(GenerateError::invalid(
                "messages",
                format!("must hold 1 to {MAX_MESSAGES} messages"),
            ));
        }
        if !messages.iter().any(|m| m.role == Role::User) {
            return Err(GenerateError::invalid(
                "messages",
                "must include a user message",
            ));
        }
        let operation_type = self.operation_type.unwrap_or_else(|| "conversation".into());
        if !OPERATION_TYPES.contains(&operation_type.as_str()) {
            return Err(GenerateError::invalid(
                "operationType",
                format!(
                    "unknown operation type; expected one of: {}",
                    OPERATION_TYPES.join(", ")
                ),
            ));
        }
        if let Some(model) = &self.model {
            if catalog.find(self.provider, model).is_none() {
                return Err(GenerateError::invalid(
                    "model",
                    "unknown model; GET /api/llm-models lists the models you may pick",
                ));
            }
        }
        if let Some(m) = self.max_tokens {
            if m == 0 {
                return Err(GenerateError::invalid("maxTokens", "must be at least 1"));
            }
        }
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) {
                return Err(GenerateError::invalid(
                    "temperature",
                    "must be between 0.0 and 2.0",
                ));
            }
        }
        let metadata = self.metadata.unwrap_or_default();
        let size = serde_json::to_vec(&metadata)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if metadata.len() > MAX_METADATA_KEYS || size > MAX_METADATA_BYTES {
            return Err(GenerateError::invalid(
                "metadata",
                format!("at most {MAX_METADATA_KEYS} keys and {MAX_METADATA_BYTES} bytes"),
            ));
        }
        Ok(Generate {
            system: self.system,
            messages,
            operation_type,
            provider: self.provider,
            model: self.model,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            stream: self.stream.unwrap_or(false),
            cache: self.cache,
            metadata,
        })
    }
}

/// The preference for an operation type, if any.
pub fn preferred_model<'a>(prefs: &'a Preferences, operation: &str) -> Option<&'a str> {
    match operation {
        "query_generation" => Some(prefs.query_model.as_str()),
        "detection_rule" => Some(prefs.detection_model.as_str()),
        op => prefs.models.get(op).map(String::as_str),
    }
}

/// The model a provider should use for an operation: the user's preference when it
/// belongs to that provider, else the provider's default.
pub fn model_for<'c>(
    catalog: &'c Catalog,
    prefs: &Preferences,
    provider: Provider,
    operation: &str,
) -> Option<&'c ModelPrice> {
    preferred_model(prefs, operation)
        .and_then(|m| catalog.find(Some(provider), m))
        .or_else(|| catalog.default_model(provider))
}

/// The first choice for a request.
pub fn primary<'c>(
    catalog: &'c Catalog,
    prefs: &Preferences,
    req: &Generate,
) -> Result<&'c ModelPrice, GenerateError> {
    if let Some(model) = &req.model {
        return catalog
            .find(req.provider, model)
            .ok_or_else(|| GenerateError::invalid("model", "unknown model"));
    }
    if req.provider.is_none() {
        if let Some(m) =
            preferred_model(prefs, &req.operation_type).and_then(|m| catalog.find(None, m))
        {
            return Ok(m);
        }
    }
    let provider = req.provider.unwrap_or(prefs.default_provider);
    model_for(catalog, prefs, provider, &req.operation_type).ok_or_else(|| {
        GenerateError::invalid(
            "provider",
            format!("{provider} has no model in the catalog"),
        )
    })
}

impl Generate {
    /// The provider-neutral request for one candidate model.
    pub fn chat_request(
        &self,
        model: &ModelPrice,
        prefs: &Preferences,
        stream: bool,
    ) -> ChatRequest {
        let max_tokens = self
            .max_tokens
            .unwrap_or(prefs.max_tokens)
            .min(u32::try_from(model.max_output_tokens).unwrap_or(u32::MAX))
            .max(1);
        ChatRequest {
            model: model.id.clone(),
            system: self.system.clone(),
            messages: self.messages.clone(),
            max_tokens,
            temperature: Some(self.temperature.unwrap_or(prefs.temperature)),
            stream,
        }
    }

    pub fn temperature(&self, prefs: &Preferences) -> f64 {
        self.temperature.unwrap_or(prefs.temperature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::catalog;

    fn body(json: &str) -> GenerateBody {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn exactly_one_of_prompt_or_messages() {
        let c = catalog().unwrap();
        assert!(body(r#"{"prompt": "hi"}"#).validate(c).is_ok());
        assert!(
            body(r#"{"messages": [{"role": "user", "content": "hi"}]}"#)
                .validate(c)
                .is_ok()
        );
        for bad in [
            r#"{}"#,
            r#"{"prompt": "a", "messages": [{"role": "user", "content": "b"}]}"#,
            r#"{"messages": []}"#,
        ] {
            assert!(
                matches!(body(bad).validate(c), Err(GenerateError::Invalid { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn model_choice_order() {
        let c = catalog().unwrap();
        let mut prefs = Preferences::default();
        prefs.models.insert("conversation".into(), "gpt-4".into());
        // 1. the request's model
        let r = body(r#"{"prompt": "x", "model": "gpt-3.5-turbo"}"#)
            .validate(c)
            .unwrap();
        assert_eq!(primary(c, &prefs, &r).unwrap().id, "gpt-3.5-turbo");
        // 2. the preference for the operation
        let r = body(r#"{"prompt": "x"}"#).validate(c).unwrap();
        assert_eq!(primary(c, &prefs, &r).unwrap().id, "gpt-4");
        let r = body(r#"{"prompt": "x", "operationType": "query_generation"}"#)
            .validate(c)
            .unwrap();
        assert_eq!(
            primary(c, &prefs, &r).unwrap().id,
            "claude-3-5-sonnet-20241022"
        );
        // 3. the provider's default when the preference is another provider's
        let r = body(r#"{"prompt": "x", "provider": "google"}"#)
            .validate(c)
            .unwrap();
        assert_eq!(primary(c, &prefs, &r).unwrap().id, "gemini-1.5-pro");
        let r = body(r#"{"prompt": "x", "operationType": "rule_enrichment"}"#)
            .validate(c)
            .unwrap();
        assert_eq!(
            primary(c, &prefs, &r).unwrap().id,
            "claude-3-5-sonnet-20241022"
        );
    }
}
