//! The Anthropic Messages request body and its translation into the neutral request.
//! Content blocks are read one by one (not by an untagged serde enum) so that a bad
//! block is a 400 naming it in Anthropic's dotted paths (`messages.0.content.1.source`).

use crate::generate::GenerateError;
use crate::generate::chat_fields::{
    self, ChoiceFunctionIn, FunctionIn, NamedChoiceIn, ToolChoiceIn, ToolIn,
};
use crate::generate::request::GenerateBody;
use crate::http::error::ApiError;
use crate::http::extract::redact_values;
use crate::providers::{Message, Part, Role, ToolCall};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Every documented Messages request field (the beta-only ones excepted). Anything else
/// is a 400, so a typo is never silently ignored. `max_tokens` is optional here only
/// because `count_tokens` shares the body; `POST /v1/messages` requires it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesBody {
    pub model: String,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    pub messages: Vec<Value>,
    #[serde(default)]
    pub system: Option<Value>,
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoiceParam>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub top_k: Option<u32>,
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub metadata: Option<MetadataParam>,
    #[serde(default)]
    pub thinking: Option<ThinkingParam>,
    /// Anthropic's capacity tier: meaningless behind a gateway that picks the provider.
    #[serde(default, rename = "service_tier")]
    pub _service_tier: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataParam {
    /// Anthropic's end-user id. Accepted, not forwarded: the gateway's user is the
    /// token's, as with the OpenAI face's `user`.
    #[serde(default, rename = "user_id")]
    pub _user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ThinkingParam {
    Disabled,
    Enabled {
        #[serde(rename = "budget_tokens")]
        _budget_tokens: u32,
    },
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ToolChoiceParam {
    Auto {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Tool {
        name: String,
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    None {},
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomTool {
    name: String,
    #[serde(default)]
    description: Option<String>,
    input_schema: Value,
    /// `"custom"`, or absent.
    #[serde(default, rename = "type")]
    _kind: Option<String>,
    /// Prompt caching is Anthropic's own; accepted and ignored so cached prompts work.
    #[serde(default, rename = "cache_control")]
    _cache_control: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageParam {
    role: String,
    content: Value,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Block {
    Text {
        text: String,
        #[serde(default, rename = "cache_control")]
        _cache_control: Option<Value>,
        /// Sent back by SDKs that replay an earlier answer's blocks.
        #[serde(default, rename = "citations")]
        _citations: Option<Value>,
    },
    Image {
        source: Value,
        #[serde(default, rename = "cache_control")]
        _cache_control: Option<Value>,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
        #[serde(default, rename = "cache_control")]
        _cache_control: Option<Value>,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<Value>,
        /// Not carried: the neutral tool message has no error flag.
        #[serde(default, rename = "is_error")]
        _is_error: Option<bool>,
        #[serde(default, rename = "cache_control")]
        _cache_control: Option<Value>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ImageSourceParam {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum TextOnly {
    Text {
        text: String,
        #[serde(default, rename = "cache_control")]
        _cache_control: Option<Value>,
        #[serde(default, rename = "citations")]
        _citations: Option<Value>,
    },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::invalid(field, message)
}

/// One JSON value read as `T`; serde's complaint (values redacted) names `field`.
fn read<T: DeserializeOwned>(field: &str, v: Value) -> Result<T, ApiError> {
    serde_json::from_value(v).map_err(|e| invalid(field, redact_values(&e.to_string())))
}

/// A string, or a list of text blocks, as one text.
fn text_or_blocks(field: &str, v: Value, sep: &str) -> Result<String, ApiError> {
    match v {
        Value::String(s) => Ok(s),
        Value::Array(items) => {
            let mut texts = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let TextOnly::Text { text, .. } = read(&format!("{field}.{i}"), item)?;
                texts.push(text);
            }
            Ok(texts.join(sep))
        }
        _ => Err(invalid(field, "must be a string or a list of text blocks")),
    }
}

/// The neutral messages: a user message's `tool_result` blocks become one tool message
/// each (in order), then a user message with its other blocks; an assistant message's
/// `tool_use` blocks become its tool calls.
fn messages(input: Vec<Value>) -> Result<Vec<Message>, ApiError> {
    let mut out = Vec::with_capacity(input.len());
    for (i, m) in input.into_iter().enumerate() {
        let MessageParam { role, content } = read(&format!("messages.{i}"), m)?;
        let role = match role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => {
                return Err(invalid(
                    format!("messages.{i}.role"),
                    "must be user or assistant",
                ));
            }
        };
        let blocks = match content {
            Value::String(text) => {
                out.push(Message::text(role, text));
                continue;
            }
            Value::Array(blocks) if !blocks.is_empty() => blocks,
            _ => {
                return Err(invalid(
                    format!("messages.{i}.content"),
                    "must be a string or a non-empty list of blocks",
                ));
            }
        };
        let mut msg = Message {
            role,
            ..Message::default()
        };
        for (j, b) in blocks.into_iter().enumerate() {
            let at = format!("messages.{i}.content.{j}");
            match (read::<Block>(&at, b)?, role) {
                (Block::Text { text, .. }, _) => msg.parts.push(Part::Text { text }),
                (Block::Image { source, .. }, Role::User) => {
                    msg.parts.push(image(&format!("{at}.source"), source)?);
                }
                (
                    Block::ToolUse {
                        id, name, input, ..
                    },
                    Role::Assistant,
                ) => {
                    if id.is_empty() || id.len() > 256 {
                        return Err(invalid(format!("{at}.id"), "must be 1 to 256 characters"));
                    }
                    if !chat_fields::valid_name(&name) {
                        return Err(invalid(
                            format!("{at}.name"),
                            "must be 1 to 64 letters, digits, _ or -",
                        ));
                    }
                    msg.tool_calls.push(ToolCall {
                        id,
                        name,
                        arguments: input.to_string(),
                    });
                }
                (
                    Block::ToolResult {
                        tool_use_id,
                        content,
                        ..
                    },
                    Role::User,
                ) => {
                    if tool_use_id.is_empty() {
                        return Err(invalid(format!("{at}.tool_use_id"), "must not be empty"));
                    }
                    let text = match content {
                        None => String::new(),
                        Some(c) => text_or_blocks(&format!("{at}.content"), c, "\n")?,
                    };
                    out.push(Message {
                        role: Role::Tool,
                        parts: vec![Part::Text { text }],
                        tool_call_id: Some(tool_use_id),
                        ..Message::default()
                    });
                }
                (Block::Image { .. }, _) => {
                    return Err(invalid(
                        format!("{at}.type"),
                        "images are allowed in user messages only",
                    ));
                }
                (Block::ToolUse { .. }, _) => {
                    return Err(invalid(
                        format!("{at}.type"),
                        "tool_use blocks belong in assistant messages",
                    ));
                }
                (Block::ToolResult { .. }, _) => {
                    return Err(invalid(
                        format!("{at}.type"),
                        "tool_result blocks belong in user messages",
                    ));
                }
            }
        }
        // A user message of tool results only has nothing left to say.
        if !msg.parts.is_empty() || !msg.tool_calls.is_empty() {
            out.push(msg);
        }
    }
    Ok(out)
}

/// An image block's source, checked like the OpenAI face's image URLs (the same types,
/// base64 only, https only).
fn image(field: &str, source: Value) -> Result<Part, ApiError> {
    let url = match read::<ImageSourceParam>(field, source)? {
        ImageSourceParam::Base64 { media_type, data } => {
            format!("data:{media_type};base64,{data}")
        }
        ImageSourceParam::Url { url } => url,
    };
    let source = chat_fields::image_source(field, url).map_err(ApiError::from)?;
    Ok(Part::Image {
        source,
        detail: None,
    })
}

/// Anthropic's tools as the shared validation's OpenAI-shaped ones. Server tools
/// (`web_search_...`, `bash_...`, ...) run at Anthropic and have no neutral form.
fn tools(input: Vec<Value>) -> Result<Vec<ToolIn>, ApiError> {
    input
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let kind = t.get("type").and_then(Value::as_str);
            if kind.is_some_and(|k| k != "custom") {
                return Err(invalid(
                    format!("tools.{i}.type"),
                    "server tools are not supported: only custom tools (name, description, input_schema)",
                ));
            }
            let t: CustomTool = read(&format!("tools.{i}"), t)?;
            Ok(ToolIn {
                kind: "function".into(),
                function: FunctionIn {
                    name: t.name,
                    description: t.description,
                    parameters: Some(t.input_schema),
                    strict: None,
                },
            })
        })
        .collect()
}

/// The tool choice and whether parallel calls are off.
fn tool_choice(c: ToolChoiceParam) -> (ToolChoiceIn, Option<bool>) {
    let no_parallel = |d: Option<bool>| d.filter(|d| *d).map(|_| false);
    match c {
        ToolChoiceParam::Auto {
            disable_parallel_tool_use: d,
        } => (ToolChoiceIn::Mode("auto".into()), no_parallel(d)),
        ToolChoiceParam::Any {
            disable_parallel_tool_use: d,
        } => (ToolChoiceIn::Mode("required".into()), no_parallel(d)),
        ToolChoiceParam::Tool {
            name,
            disable_parallel_tool_use: d,
        } => (
            ToolChoiceIn::Named(NamedChoiceIn {
                kind: "function".into(),
                function: ChoiceFunctionIn { name },
            }),
            no_parallel(d),
        ),
        ToolChoiceParam::None {} => (ToolChoiceIn::Mode("none".into()), None),
    }
}

/// The Anthropic name of a field the shared validation names in the native body's terms
/// (`tools[0].function.name`, `toolChoice`, `topP`).
pub fn anthropic_field(field: &str) -> String {
    const RENAMED: [(&str, &str); 6] = [
        ("toolChoice.function.name", "tool_choice.name"),
        ("toolChoice", "tool_choice"),
        ("maxTokens", "max_tokens"),
        ("topP", "top_p"),
        ("stop", "stop_sequences"),
        ("parallelToolCalls", "tool_choice.disable_parallel_tool_use"),
    ];
    if let Some(rest) = field.strip_prefix("tools[")
        && let Some((i, rest)) = rest.split_once(']')
    {
        let rest = rest
            .replace(".function.parameters", ".input_schema")
            .replace(".function.", ".");
        return format!("tools.{i}{rest}");
    }
    for (native, ours) in RENAMED {
        if let Some(rest) = field.strip_prefix(native)
            && (rest.is_empty() || rest.starts_with('.'))
        {
            return format!("{ours}{rest}");
        }
    }
    field.to_owned()
}

/// A validation error renamed into this face's field names.
pub fn renamed(e: GenerateError) -> GenerateError {
    match e {
        GenerateError::Invalid { field, message } => GenerateError::Invalid {
            field: anthropic_field(&field),
            message,
        },
        other => other,
    }
}

impl MessagesBody {
    /// The engine's body for a model already resolved from the catalog: everything
    /// Anthropic-specific is translated or refused here, the rest is the shared validation.
    pub fn into_body(
        self,
        provider: crate::provider::Provider,
        model_id: String,
    ) -> Result<GenerateBody, ApiError> {
        if self.top_k.is_some() {
            // The neutral request has no top_k (OpenAI and Azure have none to map it to).
            return Err(ApiError::UnsupportedParameter(
                "top_k is not supported by this gateway; use temperature or top_p".into(),
            ));
        }
        if let Some(ThinkingParam::Enabled { .. }) = self.thinking {
            return Err(ApiError::UnsupportedParameter(
                "thinking.type: enabled is not supported yet; send {\"type\": \"disabled\"} or leave it out".into(),
            ));
        }
        let system = self
            .system
            .map(|s| text_or_blocks("system", s, "\n\n"))
            .transpose()?;
        let messages = messages(self.messages)?;
        let tools = self.tools.map(tools).transpose()?;
        let (tool_choice, parallel_tool_calls) = match self.tool_choice.map(tool_choice) {
            Some((c, p)) => (Some(c), p),
            None => (None, None),
        };
        Ok(GenerateBody {
            neutral_messages: Some(messages),
            system,
            operation_type: Some("conversation".into()),
            provider: Some(provider),
            model: Some(model_id),
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            stop: self
                .stop_sequences
                .map(crate::providers::params::Stop::Many),
            tools,
            tool_choice,
            parallel_tool_calls,
            stream: self.stream,
            ..Default::default()
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::providers::ImageSource;
    use serde_json::json;

    fn convert(v: Value) -> Result<GenerateBody, ApiError> {
        let body: MessagesBody = serde_json::from_value(v).unwrap();
        body.into_body(crate::provider::Provider::OpenAi, "gpt-4o".into())
    }

    fn field_of(r: Result<GenerateBody, ApiError>) -> String {
        match r {
            Err(ApiError::InvalidField { field, .. }) => field,
            other => panic!("expected a field error, got {:?}", other.err()),
        }
    }

    #[test]
    fn tool_results_split_into_tool_messages_then_the_rest() {
        let b = convert(json!({"model": "m", "max_tokens": 10,
            "system": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "b"}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
                {"role": "assistant", "content": [{"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"}]},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "ok", "is_error": true},
                    {"type": "text", "text": "thanks"}]}]}))
        .unwrap();
        assert_eq!(b.system.as_deref(), Some("a\n\nb"));
        let m = b.neutral_messages.unwrap();
        assert_eq!(m.len(), 5);
        assert!(matches!(
            &m[0].parts[1],
            Part::Image { source: ImageSource::Base64 { media_type, .. }, .. } if media_type == "image/png"
        ));
        assert_eq!(m[1].tool_calls[0].arguments, r#"{"city":"Paris"}"#);
        assert_eq!(m[2].role, Role::Tool);
        assert_eq!(m[2].tool_call_id.as_deref(), Some("toolu_1"));
        assert_eq!(m[2].joined_text(), "18C");
        assert_eq!(m[3].tool_call_id.as_deref(), Some("toolu_2"));
        assert_eq!(m[4].role, Role::User);
        assert_eq!(m[4].joined_text(), "thanks");
    }

    #[test]
    fn bad_blocks_and_unsupported_fields_name_the_field() {
        let msg = |content: Value| json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}, {"role": "user", "content": content}]});
        assert_eq!(
            field_of(convert(msg(json!([{"type": "text", "text": "a"},
                {"type": "image", "source": {"type": "url", "url": "http://x.test/a.png"}}])))),
            "messages.1.content.1.source"
        );
        assert_eq!(
            field_of(convert(msg(
                json!([{"type": "image", "source": {"type": "file", "file_id": "f"}}])
            ))),
            "messages.1.content.0.source"
        );
        assert_eq!(
            field_of(convert(msg(
                json!([{"type": "tool_use", "id": "a", "name": "f", "input": {}}])
            ))),
            "messages.1.content.0.type"
        );
        assert_eq!(
            field_of(convert(msg(json!([{"type": "video"}])))),
            "messages.1.content.0"
        );
        assert_eq!(field_of(convert(msg(json!([])))), "messages.1.content");
        let server_tool = json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}]});
        assert_eq!(field_of(convert(server_tool)), "tools.0.type");
        let top_k = json!({"model": "m", "messages": [], "top_k": 5});
        assert!(matches!(
            convert(top_k),
            Err(ApiError::UnsupportedParameter(_))
        ));
        let thinking = json!({"model": "m", "messages": [], "thinking": {"type": "enabled", "budget_tokens": 1024}});
        assert!(matches!(
            convert(thinking),
            Err(ApiError::UnsupportedParameter(_))
        ));
        let off = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "thinking": {"type": "disabled"}});
        assert!(convert(off).is_ok());
        assert!(
            serde_json::from_value::<MessagesBody>(json!({"model": "m", "messages": [], "n": 1}))
                .is_err()
        );
    }

    #[test]
    fn tools_and_choice_become_the_shared_shapes() {
        let b = convert(json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": "get_weather", "description": "d", "input_schema": {"type": "object"},
                       "cache_control": {"type": "ephemeral"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true}}))
        .unwrap();
        assert_eq!(b.tools.as_ref().unwrap()[0].function.name, "get_weather");
        assert!(matches!(b.tool_choice, Some(ToolChoiceIn::Mode(ref m)) if m == "required"));
        assert_eq!(b.parallel_tool_calls, Some(false));
        assert_eq!(
            anthropic_field("tools[2].function.parameters"),
            "tools.2.input_schema"
        );
        assert_eq!(anthropic_field("tools[0].function.name"), "tools.0.name");
        assert_eq!(
            anthropic_field("toolChoice.function.name"),
            "tool_choice.name"
        );
        assert_eq!(anthropic_field("stop"), "stop_sequences");
        assert_eq!(anthropic_field("messages"), "messages");
    }
}
