//! The `POST /api/llm-generate/{userId}` body, its validation, and model choice:
//! the request's `model`, else the preference for the operation, else the provider's
//! default model.

use super::chat_fields::{self, MessageIn, ResponseFormatIn, ToolChoiceIn, ToolIn};
use super::error::GenerateError;
use crate::provider::Provider;
use crate::providers::params::{Sampling, Stop};
use crate::providers::{
    ChatRequest, Logprobs, Message, ReasoningEffort, ResponseFormat, Role, Tool, ToolChoice,
};
use crate::registry::{RegistryView, Resolved};
use crate::settings::{OPERATION_TYPES, Preferences};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

const MAX_METADATA_KEYS: usize = 16;
const MAX_METADATA_BYTES: usize = 4096;
const MAX_MESSAGES: usize = 500;

/// A generation request: a prompt or messages, and the optional routing, sampling, tool
/// and output fields.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GenerateBody {
    pub prompt: Option<String>,
    pub messages: Option<Vec<MessageIn>>,
    pub system: Option<String>,
    pub operation_type: Option<String>,
    pub provider: Option<Provider>,
    pub model: Option<String>,
    /// A registry entry id: routes to exactly that entry.
    pub llm_id: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Option<Stop>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub tools: Option<Vec<ToolIn>>,
    pub tool_choice: Option<ToolChoiceIn>,
    pub parallel_tool_calls: Option<bool>,
    pub response_format: Option<ResponseFormatIn>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u8>,
    pub logit_bias: Option<BTreeMap<String, i32>>,
    pub reasoning_effort: Option<ReasoningEffort>,
    pub stream: Option<bool>,
    pub cache: Option<bool>,
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
    /// Messages another face has already put in neutral form (the Anthropic face, whose
    /// blocks do not map one to one onto OpenAI-shaped messages); never from a body.
    #[serde(skip)]
    pub neutral_messages: Option<Vec<Message>>,
}

/// The tool, format and reasoning fields of a request, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tooling {
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub response_format: Option<ResponseFormat>,
    pub logprobs: Option<Logprobs>,
    pub logit_bias: BTreeMap<String, i32>,
    pub reasoning_effort: Option<ReasoningEffort>,
}

/// A validated request, before routing.
#[derive(Debug, Clone)]
pub struct Generate {
    pub system: Option<String>,
    pub messages: Vec<Message>,
    pub operation_type: String,
    pub provider: Option<Provider>,
    pub model: Option<String>,
    pub llm_id: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub sampling: Sampling,
    pub tooling: Tooling,
    /// The caller's `x-gateway-drop-params: true` (a header, so never from the body):
    /// parameters the chosen provider cannot honour are dropped instead of refused.
    pub drop_params: bool,
    pub stream: bool,
    pub cache: Option<bool>,
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// The caller's tenant (from their identity, never the body): its keys, preferences
    /// and registry entries serve the request, and its budget and rollups count it.
    pub tenant: Option<String>,
}

impl GenerateBody {
    pub fn validate(self, models: &RegistryView) -> Result<Generate, GenerateError> {
        self.validate_for(models, None)
    }

    /// Validates the body for a member of `tenant` (whose registry entries they may name).
    pub fn validate_for(
        self,
        models: &RegistryView,
        tenant: Option<String>,
    ) -> Result<Generate, GenerateError> {
        let scope = tenant.as_deref();
        let messages = match (self.prompt, self.messages, self.neutral_messages) {
            (Some(p), None, None) => vec![Message::text(Role::User, p)],
            (None, Some(m), None) => chat_fields::messages(m)?,
            (None, None, Some(m)) => m,
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
        if let Some(id) = &self.llm_id {
            if self.model.is_some() || self.provider.is_some() {
                return Err(GenerateError::invalid(
                    "llmId",
                    "names the model already: give llmId, or provider and model, not both",
                ));
            }
            if !models.by_id(id).is_some_and(|r| r.usable_by(scope)) {
                return Err(GenerateError::invalid(
                    "llmId",
                    "unknown or disabled registry entry; GET /api/llm-models lists the entries you may pick",
                ));
            }
        }
        if let Some(model) = &self.model
            && models.find(scope, self.provider, model).is_none()
        {
            return Err(GenerateError::invalid(
                "model",
                "unknown or disabled model; GET /api/llm-models lists the models you may pick",
            ));
        }
        if let Some(m) = self.max_tokens
            && m == 0
        {
            return Err(GenerateError::invalid("maxTokens", "must be at least 1"));
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(GenerateError::invalid(
                "temperature",
                "must be between 0.0 and 2.0",
            ));
        }
        let sampling = Sampling {
            top_p: self.top_p,
            stop: self.stop.map(Stop::into_vec).unwrap_or_default(),
            seed: self.seed,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
        };
        sampling
            .validate()
            .map_err(|(param, message)| GenerateError::invalid(param.camel(), message))?;
        let tooling = Tooling::validate(
            self.tools,
            self.tool_choice,
            self.parallel_tool_calls,
            self.response_format,
            (self.logprobs, self.top_logprobs),
            self.logit_bias,
            self.reasoning_effort,
        )?;
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
            llm_id: self.llm_id,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            sampling,
            tooling,
            drop_params: false,
            stream: self.stream.unwrap_or(false),
            cache: self.cache,
            metadata,
            tenant,
        })
    }
}

impl Tooling {
    /// Checks the fields together (a tool choice needs tools, `top_logprobs` needs
    /// `logprobs`). Names are the native body's; the OpenAI face renames them.
    pub fn validate(
        tools: Option<Vec<ToolIn>>,
        tool_choice: Option<ToolChoiceIn>,
        parallel_tool_calls: Option<bool>,
        response_format: Option<ResponseFormatIn>,
        (logprobs, top_logprobs): (Option<bool>, Option<u8>),
        logit_bias: Option<BTreeMap<String, i32>>,
        reasoning_effort: Option<ReasoningEffort>,
    ) -> Result<Tooling, GenerateError> {
        let logit_bias = logit_bias.unwrap_or_default();
        if logit_bias.len() > 300
            || logit_bias.iter().any(|(token, bias)| {
                token.is_empty()
                    || !token.bytes().all(|b| b.is_ascii_digit())
                    || !(-100..=100).contains(bias)
            })
        {
            return Err(GenerateError::invalid(
                "logitBias",
                "at most 300 token ids (digits), each biased -100 to 100",
            ));
        }
        let tools = chat_fields::tools(tools.unwrap_or_default())?;
        let tool_choice = tool_choice
            .map(|c| chat_fields::tool_choice("toolChoice", c, &tools))
            .transpose()?;
        let response_format = response_format
            .map(|f| chat_fields::response_format("responseFormat", f))
            .transpose()?;
        if top_logprobs.is_some_and(|n| n > 20) {
            return Err(GenerateError::invalid("topLogprobs", "must be 0 to 20"));
        }
        let logprobs = match (logprobs, top_logprobs) {
            (Some(true), top) => Some(Logprobs { top }),
            (_, Some(_)) => {
                return Err(GenerateError::invalid(
                    "topLogprobs",
                    "needs logprobs: true",
                ));
            }
            _ => None,
        };
        Ok(Tooling {
            tools,
            tool_choice,
            parallel_tool_calls,
            response_format,
            logprobs,
            logit_bias,
            reasoning_effort,
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
/// belongs to that provider and is enabled, else the provider's default in the registry.
pub fn model_for<'v>(
    view: &'v RegistryView,
    prefs: &Preferences,
    provider: Provider,
    operation: &str,
    tenant: Option<&str>,
) -> Option<&'v Arc<Resolved>> {
    preferred_model(prefs, operation)
        .and_then(|m| view.find(tenant, Some(provider), m))
        .or_else(|| view.provider_default(tenant, provider, operation))
}

/// The first choice for a request: the entry it names (`llmId`, or `model`); else, for
/// a request naming a provider, that provider's model; else the user's preference for
/// the operation, when enabled; else the registry's default for the operation (or, with
/// none set for it, the default provider's model, then the registry's general default).
/// A disabled or unknown preference falls through to the defaults, so a model an admin
/// switches off never breaks the requests of users who preferred it.
pub fn primary<'v>(
    view: &'v RegistryView,
    prefs: &Preferences,
    req: &Generate,
    reachable: &dyn Fn(&Resolved) -> bool,
) -> Result<&'v Arc<Resolved>, GenerateError> {
    let tenant = req.tenant.as_deref();
    if let Some(id) = &req.llm_id {
        return view
            .by_id(id)
            .filter(|r| r.usable_by(tenant))
            .ok_or_else(|| GenerateError::invalid("llmId", "unknown or disabled registry entry"));
    }
    if let Some(model) = &req.model {
        return view
            .find(tenant, req.provider, model)
            .ok_or_else(|| GenerateError::invalid("model", "unknown or disabled model"));
    }
    let op = req.operation_type.as_str();
    let chosen = match req.provider {
        Some(p) => model_for(view, prefs, p, op, tenant),
        // A model id several providers serve (gpt-4o: OpenAI and Azure) is taken from
        // one the user can reach.
        None => preferred_model(prefs, op)
            .and_then(|m| {
                let mut serving = view.usable(tenant).filter(|r| r.entry.model_name == m);
                let first = serving.next()?;
                Some(
                    std::iter::once(first)
                        .chain(serving)
                        .find(|r| reachable(r))
                        .unwrap_or(first),
                )
            })
            .or_else(|| view.explicit_default(tenant, op))
            .or_else(|| model_for(view, prefs, prefs.default_provider, op, tenant))
            .or_else(|| view.default_for(tenant, op))
            .or_else(|| view.usable(tenant).next()),
    };
    chosen.ok_or_else(|| {
        GenerateError::invalid(
            "provider",
            format!(
                "no enabled model for {}",
                req.provider.unwrap_or(prefs.default_provider)
            ),
        )
    })
}

impl Generate {
    /// The provider-neutral request for one candidate model.
    /// What the request leaves out comes from the entry's config, then the user's
    /// preferences.
    pub fn chat_request(&self, llm: &Resolved, prefs: &Preferences, stream: bool) -> ChatRequest {
        let model = &llm.model;
        let config = &llm.entry.config;
        let max_tokens = self
            .max_tokens
            .or(config.max_tokens)
            .unwrap_or(prefs.max_tokens)
            .min(u32::try_from(model.max_output_tokens).unwrap_or(u32::MAX))
            .max(1);
        ChatRequest {
            model: model.id.clone(),
            system: self.system.clone(),
            messages: self.messages.clone(),
            max_tokens,
            temperature: Some(self.temperature(llm, prefs)),
            top_p: self.sampling.top_p,
            stop: self.sampling.stop.clone(),
            seed: self.sampling.seed,
            presence_penalty: self.sampling.presence_penalty,
            frequency_penalty: self.sampling.frequency_penalty,
            tools: self.tooling.tools.clone(),
            tool_choice: self.tooling.tool_choice.clone(),
            parallel_tool_calls: self.tooling.parallel_tool_calls,
            response_format: self.tooling.response_format.clone(),
            logprobs: self.tooling.logprobs,
            logit_bias: self.tooling.logit_bias.clone(),
            reasoning_effort: self.tooling.reasoning_effort,
            stream,
        }
    }

    pub fn temperature(&self, llm: &Resolved, prefs: &Preferences) -> f64 {
        self.temperature
            .or(llm.entry.config.temperature)
            .unwrap_or(prefs.temperature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::catalog;
    use crate::registry::seed::seed_entries;

    fn seeded() -> RegistryView {
        RegistryView::build(seed_entries(catalog().unwrap()), catalog().unwrap(), false)
    }

    fn body(json: &str) -> GenerateBody {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn exactly_one_of_prompt_or_messages() {
        let c = &seeded();
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
        let c = &seeded();
        let mut prefs = Preferences::default();
        prefs.models.insert("conversation".into(), "gpt-4".into());
        // 1. the request's model
        let r = body(r#"{"prompt": "x", "model": "gpt-3.5-turbo"}"#)
            .validate(c)
            .unwrap();
        assert_eq!(
            primary(c, &prefs, &r, &|_| true).unwrap().model.id,
            "gpt-3.5-turbo"
        );
        // 2. the preference for the operation
        let r = body(r#"{"prompt": "x"}"#).validate(c).unwrap();
        assert_eq!(primary(c, &prefs, &r, &|_| true).unwrap().model.id, "gpt-4");
        let r = body(r#"{"prompt": "x", "operationType": "query_generation"}"#)
            .validate(c)
            .unwrap();
        assert_eq!(
            primary(c, &prefs, &r, &|_| true).unwrap().model.id,
            "claude-3-5-sonnet-20241022"
        );
        // 3. the provider's default when the preference is another provider's
        let r = body(r#"{"prompt": "x", "provider": "google"}"#)
            .validate(c)
            .unwrap();
        assert_eq!(
            primary(c, &prefs, &r, &|_| true).unwrap().model.id,
            "gemini-1.5-pro"
        );
        let r = body(r#"{"prompt": "x", "operationType": "rule_enrichment"}"#)
            .validate(c)
            .unwrap();
        assert_eq!(
            primary(c, &prefs, &r, &|_| true).unwrap().model.id,
            "claude-3-5-sonnet-20241022"
        );
    }

    #[test]
    fn a_disabled_preference_falls_back_and_llm_id_picks_an_entry() {
        let cat = catalog().unwrap();
        let mut entries = seed_entries(cat);
        entries
            .iter_mut()
            .find(|e| e.model_name == "gpt-4")
            .unwrap()
            .enabled = false;
        let view = RegistryView::build(entries, cat, false);
        let mut prefs = Preferences::default();
        prefs.models.insert("conversation".into(), "gpt-4".into());
        let r = body(r#"{"prompt": "x"}"#).validate(&view).unwrap();
        assert_eq!(
            primary(&view, &prefs, &r, &|_| true).unwrap().model.id,
            "claude-3-5-sonnet-20241022",
            "the registry default for the operation"
        );
        // Named explicitly, a disabled model is refused.
        assert!(
            body(r#"{"prompt": "x", "model": "gpt-4"}"#)
                .validate(&view)
                .is_err()
        );
        let id = crate::registry::seed::seed_id(Provider::Google, "gemini-1.5-flash");
        let r = body(&format!(r#"{{"prompt": "x", "llmId": "{id}"}}"#))
            .validate(&view)
            .unwrap();
        assert_eq!(
            primary(&view, &prefs, &r, &|_| true).unwrap().model.id,
            "gemini-1.5-flash"
        );
        assert!(
            body(r#"{"prompt": "x", "llmId": "nope"}"#)
                .validate(&view)
                .is_err()
        );
        assert!(
            body(&format!(
                r#"{{"prompt": "x", "llmId": "{id}", "model": "gpt-4o"}}"#
            ))
            .validate(&view)
            .is_err()
        );
    }
}
