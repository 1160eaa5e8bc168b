//! The provider-neutral chat request and answer: what every wire format translates to
//! and from. Text and image parts, tool definitions and calls, tool results, a response
//! format, the sampling parameters and reasoning effort; answers carry text and/or tool
//! calls and a finish reason in one vocabulary.

use super::RateLimitState;
use crate::pricing::TokenCounts;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    #[default]
    User,
    Assistant,
    /// A tool's result, answering the assistant's call `tool_call_id`.
    Tool,
}

/// Where an image's bytes are: inline (a data URL's base64) or at an https URL the
/// provider fetches itself (the gateway never fetches a caller's URL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text {
        text: String,
    },
    Image {
        source: ImageSource,
        detail: Option<String>,
    },
}

/// A call the assistant made: `arguments` is the JSON text the model wrote (kept as
/// text, like OpenAI's API, since a model may write invalid JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
    /// The assistant's calls (assistant messages only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool message answers (tool messages only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A message of one text part.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Message {
            role,
            parts: vec![Part::Text { text: text.into() }],
            ..Message::default()
        }
    }

    /// The text parts joined (what a format without parts, or a count, needs).
    pub fn joined_text(&self) -> String {
        let mut out = String::new();
        for p in &self.parts {
            if let Part::Text { text } = p {
                out.push_str(text);
            }
        }
        out
    }

    /// Bytes of text, tool-call names and arguments, and the call id a result answers:
    /// what size estimates count (images are counted apart, in tokens).
    pub fn text_len(&self) -> usize {
        let parts: usize = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Text { text } => text.len(),
                Part::Image { .. } => 0,
            })
            .sum();
        parts
            + self
                .tool_calls
                .iter()
                .map(|c| c.id.len() + c.name.len() + c.arguments.len())
                .sum::<usize>()
            + self.tool_call_id.as_ref().map_or(0, String::len)
    }

    pub fn image_count(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| matches!(p, Part::Image { .. }))
            .count()
    }

    pub fn has_images(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Image { .. }))
    }
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// A JSON Schema object (`{"type":"object",...}`).
    pub parameters: Value,
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "name", rename_all = "snake_case")]
pub enum ToolChoice {
    Auto,
    /// Never call a tool.
    None,
    /// Call at least one tool.
    Required,
    /// Call this tool.
    Tool(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        description: Option<String>,
        schema: Value,
        strict: bool,
    },
}

impl ResponseFormat {
    /// Whether the answer must be JSON (a plain `text` format asks nothing).
    pub fn wants_json(&self) -> bool {
        !matches!(self, ResponseFormat::Text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningEffort {
    Minimal,
    Low,
    Medium,
    High,
}

impl ReasoningEffort {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasoningEffort::Minimal => "minimal",
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
        }
    }
}

/// Log probabilities of the output tokens, `top` alternatives each (0 to 20).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Logprobs {
    pub top: Option<u8>,
}

/// A chat completion request, in provider-neutral form. `Serialize` is what the
/// response cache hashes: every field that can change an answer is in it.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ChatRequest {
    /// The provider's model id (for Azure, the deployment name).
    pub model: String,
    pub system: Option<String>,
    pub messages: Vec<Message>,
    pub max_tokens: u32,
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0 to 1.
    pub top_p: Option<f64>,
    /// Up to four stop sequences (empty: none).
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    /// -2 to 2.
    pub presence_penalty: Option<f64>,
    /// -2 to 2.
    pub frequency_penalty: Option<f64>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    /// `Some(false)`: at most one tool call per answer.
    pub parallel_tool_calls: Option<bool>,
    pub response_format: Option<ResponseFormat>,
    pub logprobs: Option<Logprobs>,
    /// Token id to bias, -100 to 100 (OpenAI's tokenizer ids).
    pub logit_bias: std::collections::BTreeMap<String, i32>,
    pub reasoning_effort: Option<ReasoningEffort>,
    #[serde(skip)]
    pub stream: bool,
}

impl ChatRequest {
    /// Bytes of everything the provider counts as prompt text: the system prompt, the
    /// messages (4 bytes of framing each), the tool definitions and the response schema.
    pub fn prompt_bytes(&self) -> usize {
        let json_len = |v: &Value| serde_json::to_vec(v).map_or(0, |b| b.len());
        self.system.as_ref().map_or(0, String::len)
            + self
                .messages
                .iter()
                .map(|m| m.text_len() + 4)
                .sum::<usize>()
            + self
                .tools
                .iter()
                .map(|t| {
                    t.name.len()
                        + t.description.as_ref().map_or(0, String::len)
                        + json_len(&t.parameters)
                })
                .sum::<usize>()
            + match &self.response_format {
                Some(ResponseFormat::JsonSchema { name, schema, .. }) => {
                    name.len() + json_len(schema)
                }
                _ => 0,
            }
    }

    pub fn image_count(&self) -> usize {
        self.messages.iter().map(Message::image_count).sum()
    }

    pub fn has_images(&self) -> bool {
        self.messages.iter().any(Message::has_images)
    }

    pub fn has_image_urls(&self) -> bool {
        self.messages.iter().any(|m| {
            m.parts.iter().any(|p| {
                matches!(
                    p,
                    Part::Image {
                        source: ImageSource::Url { .. },
                        ..
                    }
                )
            })
        })
    }

    /// Whether tools are in play: offered now, or called or answered in the history.
    pub fn uses_tools(&self) -> bool {
        !self.tools.is_empty()
            || self
                .messages
                .iter()
                .any(|m| !m.tool_calls.is_empty() || m.role == Role::Tool)
    }
}

/// Why an answer ended, in OpenAI's vocabulary (each wire format maps its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

impl FinishReason {
    pub fn as_openai(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
        }
    }
}

/// A finished completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    /// The model the provider says answered (may be more specific than requested).
    pub model: String,
    pub tokens: TokenCounts,
    pub finish_reason: Option<FinishReason>,
    /// OpenAI's `choices[0].logprobs`, passed through where a provider has them.
    pub logprobs: Option<Value>,
    /// What the answer said about the key's rate limits, when it said anything.
    pub rate_limit: Option<RateLimitState>,
}

impl Generation {
    /// The finish reason an answer with tool calls has, whatever the provider said.
    pub fn finish(&self) -> FinishReason {
        match self.finish_reason {
            Some(r) => r,
            None if !self.tool_calls.is_empty() => FinishReason::ToolCalls,
            None => FinishReason::Stop,
        }
    }
}

/// A fragment of a streamed tool call: the first fragment of call `index` carries its
/// `id` and `name`, later ones pieces of its `arguments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCallDelta {
    pub index: u32,
    pub id: Option<String>,
    pub name: Option<String>,
    pub arguments: String,
}

/// What a streamed body yields, in order: text and tool-call deltas, then usage, then
/// the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    Delta(String),
    ToolCall(ToolCallDelta),
    Usage(TokenCounts),
    Done { finish_reason: Option<FinishReason> },
}
