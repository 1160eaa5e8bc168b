//! The sampling parameters beyond `temperature` and `max_tokens`, and which provider's
//! wire format can carry each. The gateway refuses (or, when asked, drops) a parameter
//! the chosen provider would otherwise ignore, so a caller never believes a `seed` was
//! honoured when it was not.

use super::{ChatRequest, ImageSource, Message, Part, ResponseFormat, Role};
use crate::provider::Provider;

/// At most this many stop sequences (OpenAI's limit).
pub const MAX_STOP: usize = 4;
/// At most this many bytes per stop sequence.
pub const MAX_STOP_BYTES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    TopP,
    Stop,
    Seed,
    PresencePenalty,
    FrequencyPenalty,
    /// Tool definitions, tool choice, and tool calls or results in the history.
    Tools,
    /// `parallel_tool_calls: false` (true is every provider's default).
    ParallelToolCalls,
    /// `json_object` or `json_schema`.
    ResponseFormat,
    /// Image parts of any source.
    Images,
    /// Image parts by https URL (some providers take only inline bytes).
    ImageUrls,
    Logprobs,
    LogitBias,
    ReasoningEffort,
}

/// The OpenAI-compatible family, whose wire format carries every OpenAI field.
fn openai_family(provider: Provider) -> bool {
    !matches!(
        provider,
        Provider::Anthropic | Provider::Bedrock | Provider::Google
    )
}

impl Param {
    pub const ALL: [Param; 13] = [
        Param::TopP,
        Param::Stop,
        Param::Seed,
        Param::PresencePenalty,
        Param::FrequencyPenalty,
        Param::Tools,
        Param::ParallelToolCalls,
        Param::ResponseFormat,
        Param::Images,
        Param::ImageUrls,
        Param::Logprobs,
        Param::LogitBias,
        Param::ReasoningEffort,
    ];

    /// The name in OpenAI's Chat Completions API (what the refusal and the dropped
    /// header name).
    pub fn name(self) -> &'static str {
        match self {
            Param::TopP => "top_p",
            Param::Stop => "stop",
            Param::Seed => "seed",
            Param::PresencePenalty => "presence_penalty",
            Param::FrequencyPenalty => "frequency_penalty",
            Param::Tools => "tools",
            Param::ParallelToolCalls => "parallel_tool_calls",
            Param::ResponseFormat => "response_format",
            Param::Images => "image_url",
            Param::ImageUrls => "image_url.url",
            Param::Logprobs => "logprobs",
            Param::LogitBias => "logit_bias",
            Param::ReasoningEffort => "reasoning_effort",
        }
    }

    /// The name in `POST /api/llm-generate`'s camelCase body.
    pub fn camel(self) -> &'static str {
        match self {
            Param::TopP => "topP",
            Param::Stop => "stop",
            Param::Seed => "seed",
            Param::PresencePenalty => "presencePenalty",
            Param::FrequencyPenalty => "frequencyPenalty",
            Param::Tools => "tools",
            Param::ParallelToolCalls => "parallelToolCalls",
            Param::ResponseFormat => "responseFormat",
            Param::Images => "image_url",
            Param::ImageUrls => "image_url.url",
            Param::Logprobs => "logprobs",
            Param::LogitBias => "logitBias",
            Param::ReasoningEffort => "reasoningEffort",
        }
    }

    /// The catalog capability a model needs for it (`None`: any model).
    pub fn capability(self) -> Option<&'static str> {
        match self {
            Param::Tools => Some("tools"),
            Param::Images | Param::ImageUrls => Some("vision"),
            Param::ReasoningEffort => Some("reasoning"),
            _ => None,
        }
    }

    /// Whether `provider`'s API has a field for it (the README's parameter table).
    /// Anthropic's Messages API and Bedrock's Converse API have no seed or penalties;
    /// Bedrock takes images as bytes only; Gemini has no switch for parallel calls;
    /// log probabilities come back only in the OpenAI family's format.
    pub fn honoured_by(self, provider: Provider) -> bool {
        match self {
            Param::TopP | Param::Stop | Param::Tools | Param::ResponseFormat | Param::Images => {
                true
            }
            Param::Seed | Param::PresencePenalty | Param::FrequencyPenalty => {
                !matches!(provider, Provider::Anthropic | Provider::Bedrock)
            }
            Param::ImageUrls => !matches!(provider, Provider::Bedrock | Provider::Ollama),
            Param::ParallelToolCalls => {
                provider == Provider::Anthropic
                    || (openai_family(provider)
                        && !matches!(provider, Provider::DeepSeek | Provider::Ollama))
            }
            Param::Logprobs => matches!(
                provider,
                Provider::OpenAi
                    | Provider::AzureOpenAi
                    | Provider::Together
                    | Provider::Fireworks
                    | Provider::OpenRouter
                    | Provider::DeepSeek
            ),
            // Token ids are a tokenizer's: only OpenAI's own models (and Azure's copies,
            // and OpenRouter passing them on) know them.
            Param::LogitBias => matches!(
                provider,
                Provider::OpenAi | Provider::AzureOpenAi | Provider::OpenRouter
            ),
            Param::ReasoningEffort => matches!(
                provider,
                Provider::OpenAi
                    | Provider::AzureOpenAi
                    | Provider::Groq
                    | Provider::OpenRouter
                    | Provider::Google
            ),
        }
    }

    fn set_in(self, req: &ChatRequest) -> bool {
        match self {
            Param::TopP => req.top_p.is_some(),
            Param::Stop => !req.stop.is_empty(),
            Param::Seed => req.seed.is_some(),
            Param::PresencePenalty => req.presence_penalty.is_some(),
            Param::FrequencyPenalty => req.frequency_penalty.is_some(),
            Param::Tools => req.uses_tools(),
            Param::ParallelToolCalls => req.parallel_tool_calls == Some(false),
            Param::ResponseFormat => req
                .response_format
                .as_ref()
                .is_some_and(ResponseFormat::wants_json),
            Param::Images => req.has_images(),
            Param::ImageUrls => req.has_image_urls(),
            Param::Logprobs => req.logprobs.is_some(),
            Param::LogitBias => !req.logit_bias.is_empty(),
            Param::ReasoningEffort => req.reasoning_effort.is_some(),
        }
    }

    /// Whether a model of `provider` with `capabilities` can honour it in `req`. An
    /// entry that lists no capabilities is not gated by them (an admin's custom model).
    fn honoured(self, provider: Provider, capabilities: &[String], req: &ChatRequest) -> bool {
        if !self.honoured_by(provider) {
            return false;
        }
        // Log probabilities are passed through on whole answers only.
        if self == Param::Logprobs && req.stream {
            return false;
        }
        // Anthropic and Bedrock answer a JSON format through a forced tool of their own,
        // which cannot sit beside the caller's tools.
        if self == Param::ResponseFormat
            && matches!(provider, Provider::Anthropic | Provider::Bedrock)
            && req.uses_tools()
        {
            return false;
        }
        match self.capability() {
            Some(c) if !capabilities.is_empty() => capabilities.iter().any(|have| have == c),
            _ => true,
        }
    }

    fn clear(self, req: &mut ChatRequest) {
        match self {
            Param::TopP => req.top_p = None,
            Param::Stop => req.stop.clear(),
            Param::Seed => req.seed = None,
            Param::PresencePenalty => req.presence_penalty = None,
            Param::FrequencyPenalty => req.frequency_penalty = None,
            Param::Tools => {
                // Without tools the history's calls and results become plain text, so
                // the conversation still reads the same to the model.
                req.tools.clear();
                req.tool_choice = None;
                req.parallel_tool_calls = None;
                for m in &mut req.messages {
                    flatten_tool_turn(m);
                }
            }
            Param::ParallelToolCalls => req.parallel_tool_calls = None,
            Param::ResponseFormat => req.response_format = None,
            Param::Images => {
                for m in &mut req.messages {
                    m.parts.retain(|p| !matches!(p, Part::Image { .. }));
                }
            }
            Param::ImageUrls => {
                for m in &mut req.messages {
                    m.parts.retain(|p| {
                        !matches!(
                            p,
                            Part::Image {
                                source: ImageSource::Url { .. },
                                ..
                            }
                        )
                    });
                }
            }
            Param::Logprobs => req.logprobs = None,
            Param::LogitBias => req.logit_bias.clear(),
            Param::ReasoningEffort => req.reasoning_effort = None,
        }
    }
}

/// A tool call or result rewritten as text, for a model that is sent no tools.
fn flatten_tool_turn(m: &mut Message) {
    for call in std::mem::take(&mut m.tool_calls) {
        m.parts.push(Part::Text {
            text: format!("[called {}({})]", call.name, call.arguments),
        });
    }
    if m.role == Role::Tool {
        m.role = Role::User;
        let id = m.tool_call_id.take().unwrap_or_default();
        m.parts.insert(
            0,
            Part::Text {
                text: format!("[result of {id}] "),
            },
        );
    }
}

/// The parameters `req` sets that a model of `provider` with `capabilities` cannot
/// honour, in a fixed order.
pub fn unhonoured(provider: Provider, capabilities: &[String], req: &ChatRequest) -> Vec<Param> {
    Param::ALL
        .into_iter()
        .filter(|p| p.set_in(req) && !p.honoured(provider, capabilities, req))
        .collect()
}

/// Removes the parameters such a model cannot honour; returns what was removed.
pub fn drop_unhonoured(
    provider: Provider,
    capabilities: &[String],
    req: &mut ChatRequest,
) -> Vec<Param> {
    let dropped = unhonoured(provider, capabilities, req);
    for p in &dropped {
        p.clear(req);
    }
    dropped
}

/// `stop` as OpenAI takes it: one string or a list.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

/// The sampling parameters as a caller gave them, before any provider is chosen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sampling {
    pub top_p: Option<f64>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
}

impl Sampling {
    /// Checks the ranges; on failure, the parameter and why (never the value itself).
    pub fn validate(&self) -> Result<(), (Param, String)> {
        if self.top_p.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
            return Err((Param::TopP, "must be between 0 and 1".into()));
        }
        for (param, v) in [
            (Param::PresencePenalty, self.presence_penalty),
            (Param::FrequencyPenalty, self.frequency_penalty),
        ] {
            if v.is_some_and(|v| !(-2.0..=2.0).contains(&v)) {
                return Err((param, "must be between -2 and 2".into()));
            }
        }
        if self.stop.len() > MAX_STOP
            || self
                .stop
                .iter()
                .any(|s| s.is_empty() || s.len() > MAX_STOP_BYTES)
        {
            return Err((
                Param::Stop,
                format!("at most {MAX_STOP} sequences, each 1 to {MAX_STOP_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_and_bedrock_refuse_seed_and_penalties_only() {
        let req = ChatRequest {
            top_p: Some(0.5),
            stop: vec!["END".into()],
            seed: Some(7),
            presence_penalty: Some(0.1),
            frequency_penalty: Some(0.2),
            ..ChatRequest::default()
        };
        for p in [Provider::Anthropic, Provider::Bedrock] {
            assert_eq!(
                unhonoured(p, &[], &req),
                [Param::Seed, Param::PresencePenalty, Param::FrequencyPenalty]
            );
        }
        for p in [
            Provider::OpenAi,
            Provider::Google,
            Provider::AzureOpenAi,
            Provider::Groq,
        ] {
            assert!(unhonoured(p, &[], &req).is_empty());
        }
        let mut dropped = req.clone();
        drop_unhonoured(Provider::Anthropic, &[], &mut dropped);
        assert_eq!(dropped.seed, None);
        assert_eq!(dropped.presence_penalty, None);
        assert_eq!(dropped.top_p, Some(0.5));
        assert_eq!(dropped.stop, ["END"]);
        assert!(unhonoured(Provider::Anthropic, &[], &ChatRequest::default()).is_empty());
    }

    #[test]
    fn a_json_format_beside_tools_is_refused_where_it_is_a_forced_tool() {
        let req = ChatRequest {
            tools: vec![super::super::Tool {
                name: "f".into(),
                description: None,
                parameters: serde_json::json!({"type": "object"}),
                strict: None,
            }],
            response_format: Some(ResponseFormat::JsonObject),
            ..ChatRequest::default()
        };
        for p in [Provider::Anthropic, Provider::Bedrock] {
            assert_eq!(unhonoured(p, &[], &req), [Param::ResponseFormat]);
        }
        assert!(unhonoured(Provider::OpenAi, &[], &req).is_empty());
        assert!(unhonoured(Provider::Google, &[], &req).is_empty());
    }

    #[test]
    fn capabilities_gate_tools_images_and_reasoning() {
        let mut req = ChatRequest {
            messages: vec![Message {
                role: Role::User,
                parts: vec![Part::Image {
                    source: ImageSource::Url {
                        url: "https://x.test/a.png".into(),
                    },
                    detail: None,
                }],
                ..Message::default()
            }],
            ..ChatRequest::default()
        };
        let text_only = ["chat".to_owned()];
        assert_eq!(
            unhonoured(Provider::OpenAi, &text_only, &req),
            [Param::Images, Param::ImageUrls]
        );
        let vision = ["chat".to_owned(), "vision".to_owned()];
        assert!(unhonoured(Provider::OpenAi, &vision, &req).is_empty());
        // Bedrock takes bytes only; dropping removes the URL image and nothing else.
        assert_eq!(
            unhonoured(Provider::Bedrock, &vision, &req),
            [Param::ImageUrls]
        );
        drop_unhonoured(Provider::Bedrock, &vision, &mut req);
        assert!(req.messages[0].parts.is_empty());
        // An entry listing no capabilities is not gated by them.
        req.reasoning_effort = Some(super::super::ReasoningEffort::Low);
        assert!(unhonoured(Provider::OpenAi, &[], &req).is_empty());
        assert_eq!(
            unhonoured(Provider::OpenAi, &vision, &req),
            [Param::ReasoningEffort]
        );
    }

    #[test]
    fn dropped_tools_leave_the_history_readable() {
        let mut req = ChatRequest {
            messages: vec![
                Message {
                    role: Role::Assistant,
                    tool_calls: vec![super::super::ToolCall {
                        id: "c1".into(),
                        name: "get_weather".into(),
                        arguments: "{}".into(),
                    }],
                    ..Message::default()
                },
                Message {
                    role: Role::Tool,
                    parts: vec![Part::Text { text: "18C".into() }],
                    tool_call_id: Some("c1".into()),
                    ..Message::default()
                },
            ],
            ..ChatRequest::default()
        };
        let caps = ["chat".to_owned()];
        assert_eq!(
            drop_unhonoured(Provider::OpenAi, &caps, &mut req),
            [Param::Tools]
        );
        assert!(!req.uses_tools());
        assert_eq!(req.messages[0].joined_text(), "[called get_weather({})]");
        assert_eq!(req.messages[1].role, Role::User);
        assert_eq!(req.messages[1].joined_text(), "[result of c1] 18C");
    }

    #[test]
    fn ranges() {
        let ok = Sampling {
            top_p: Some(1.0),
            stop: vec!["a".into(); 4],
            seed: Some(i64::MIN),
            presence_penalty: Some(-2.0),
            frequency_penalty: Some(2.0),
        };
        assert!(ok.validate().is_ok());
        let bad = [
            (
                Sampling {
                    top_p: Some(1.5),
                    ..Sampling::default()
                },
                Param::TopP,
            ),
            (
                Sampling {
                    presence_penalty: Some(-2.1),
                    ..Sampling::default()
                },
                Param::PresencePenalty,
            ),
            (
                Sampling {
                    frequency_penalty: Some(3.0),
                    ..Sampling::default()
                },
                Param::FrequencyPenalty,
            ),
            (
                Sampling {
                    stop: vec!["a".into(); 5],
                    ..Sampling::default()
                },
                Param::Stop,
            ),
            (
                Sampling {
                    stop: vec!["x".repeat(257)],
                    ..Sampling::default()
                },
                Param::Stop,
            ),
        ];
        for (s, p) in bad {
            assert_eq!(s.validate().unwrap_err().0, p);
        }
    }
}
