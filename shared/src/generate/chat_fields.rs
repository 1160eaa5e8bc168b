//! The chat fields both faces accept, in OpenAI's shapes: messages with text and image
//! parts, assistant tool calls and tool results, tool definitions, tool choice and the
//! response format. `POST /v1/chat/completions` takes them as OpenAI names them;
//! `POST /api/llm-generate` takes the same shapes under camelCase top-level names
//! (`toolChoice`, `responseFormat`, and `toolCalls` / `toolCallId` in a message).
//! Validation names the field that is wrong, and never echoes a value.

use super::error::GenerateError;
use crate::providers::{
    ImageSource, Message, Part, ResponseFormat, Role, Tool, ToolCall, ToolChoice,
};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

const MAX_TOOLS: usize = 128;
const MAX_IMAGE_URL_BYTES: usize = 2048;
/// The image types every vision provider here takes.
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageIn {
    pub role: String,
    #[serde(default)]
    pub content: Option<ContentIn>,
    /// A participant's name: accepted, not forwarded (few providers have it).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, alias = "toolCalls")]
    pub tool_calls: Option<Vec<ToolCallIn>>,
    #[serde(default, alias = "toolCallId")]
    pub tool_call_id: Option<String>,
    /// An earlier answer's refusal, sent back by SDKs that replay whole messages.
    #[serde(default)]
    pub refusal: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ContentIn {
    Text(String),
    Parts(Vec<PartIn>),
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PartIn {
    Text { text: String },
    ImageUrl { image_url: ImageUrlIn },
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageUrlIn {
    pub url: String,
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolCallIn {
    pub id: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub function: FunctionCallIn,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionCallIn {
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolIn {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionIn,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionIn {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub strict: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ToolChoiceIn {
    Mode(String),
    Named(NamedChoiceIn),
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedChoiceIn {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: ChoiceFunctionIn,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChoiceFunctionIn {
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResponseFormatIn {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaIn },
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonSchemaIn {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub schema: Option<Value>,
    #[serde(default)]
    pub strict: Option<bool>,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> GenerateError {
    GenerateError::invalid(field, message)
}

/// OpenAI's rule for function names, which every provider here accepts.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The messages in neutral form. Images are allowed in user messages only; a tool
/// result must name the call it answers.
pub fn messages(input: Vec<MessageIn>) -> Result<Vec<Message>, GenerateError> {
    input
        .into_iter()
        .enumerate()
        .map(|(i, m)| message(i, m))
        .collect()
}

fn message(i: usize, m: MessageIn) -> Result<Message, GenerateError> {
    let at = |f: &str| format!("messages[{i}].{f}");
    let _ = (m.name, m.refusal);
    let role = match m.role.as_str() {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        _ => {
            return Err(invalid(
                at("role"),
                "must be system, developer, user, assistant or tool",
            ));
        }
    };
    let parts = match m.content {
        None => Vec::new(),
        Some(ContentIn::Text(t)) => vec![Part::Text { text: t }],
        Some(ContentIn::Parts(parts)) => parts
            .into_iter()
            .enumerate()
            .map(|(j, p)| part(&format!("messages[{i}].content[{j}]"), role, p))
            .collect::<Result<_, _>>()?,
    };
    let tool_calls: Vec<ToolCall> = m
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(j, c)| {
            let field = |f: &str| format!("messages[{i}].tool_calls[{j}].{f}");
            if c.kind.as_deref().is_some_and(|k| k != "function") {
                return Err(invalid(field("type"), "must be function"));
            }
            if c.id.is_empty() || c.id.len() > 256 {
                return Err(invalid(field("id"), "must be 1 to 256 characters"));
            }
            if !valid_name(&c.function.name) {
                return Err(invalid(
                    field("function.name"),
                    "must be 1 to 64 letters, digits, _ or -",
                ));
            }
            Ok(ToolCall {
                id: c.id,
                name: c.function.name,
                arguments: c.function.arguments,
            })
        })
        .collect::<Result<_, _>>()?;
    if !tool_calls.is_empty() && role != Role::Assistant {
        return Err(invalid(
            at("tool_calls"),
            "only assistant messages make calls",
        ));
    }
    match (role, &m.tool_call_id) {
        (Role::Tool, None) => {
            return Err(invalid(
                at("tool_call_id"),
                "a tool message must name the call it answers",
            ));
        }
        (Role::Tool, Some(id)) if id.is_empty() => {
            return Err(invalid(at("tool_call_id"), "must not be empty"));
        }
        (Role::Tool, _) => {}
        (_, Some(_)) => {
            return Err(invalid(
                at("tool_call_id"),
                "only tool messages answer calls",
            ));
        }
        (_, None) => {}
    }
    if parts.is_empty() && tool_calls.is_empty() && role != Role::Assistant {
        return Err(invalid(at("content"), "is required"));
    }
    Ok(Message {
        role,
        parts,
        tool_calls,
        tool_call_id: m.tool_call_id,
    })
}

fn part(field: &str, role: Role, p: PartIn) -> Result<Part, GenerateError> {
    match p {
        PartIn::Text { text } => Ok(Part::Text { text }),
        PartIn::ImageUrl { .. } if role != Role::User => Err(invalid(
            format!("{field}.type"),
            "images are allowed in user messages only",
        )),
        PartIn::ImageUrl { image_url } => {
            if image_url
                .detail
                .as_deref()
                .is_some_and(|d| !matches!(d, "auto" | "low" | "high"))
            {
                return Err(invalid(
                    format!("{field}.image_url.detail"),
                    "must be auto, low or high",
                ));
            }
            Ok(Part::Image {
                source: image_source(&format!("{field}.image_url.url"), image_url.url)?,
                detail: image_url.detail,
            })
        }
    }
}

/// A data URL (`data:image/png;base64,...`) or an https URL. Plain http, other schemes
/// and other media types are refused: the provider, not the gateway, fetches a URL.
pub(crate) fn image_source(field: &str, url: String) -> Result<ImageSource, GenerateError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (header, data) = rest
            .split_once(',')
            .ok_or_else(|| invalid(field, "a data URL needs a comma before its data"))?;
        let media_type = header
            .strip_suffix(";base64")
            .ok_or_else(|| invalid(field, "a data URL must be base64 (`;base64,`)"))?;
        if !IMAGE_TYPES.contains(&media_type) {
            return Err(invalid(
                field,
                format!("image type must be one of {}", IMAGE_TYPES.join(", ")),
            ));
        }
        if data.is_empty()
            || !data
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            return Err(invalid(field, "the data is not base64"));
        }
        return Ok(ImageSource::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        });
    }
    let parsed = url::Url::parse(&url).map_err(|_| invalid(field, "not a URL"))?;
    if parsed.scheme() != "https" || parsed.host_str().is_none() {
        return Err(invalid(field, "must be a data URL or an https URL"));
    }
    if url.len() > MAX_IMAGE_URL_BYTES {
        return Err(invalid(
            field,
            format!("at most {MAX_IMAGE_URL_BYTES} bytes"),
        ));
    }
    Ok(ImageSource::Url { url })
}

/// The tool definitions: functions with unique, valid names and object schemas.
pub fn tools(input: Vec<ToolIn>) -> Result<Vec<Tool>, GenerateError> {
    if input.len() > MAX_TOOLS {
        return Err(invalid("tools", format!("at most {MAX_TOOLS} tools")));
    }
    let mut out: Vec<Tool> = Vec::with_capacity(input.len());
    for (i, t) in input.into_iter().enumerate() {
        let field = |f: &str| format!("tools[{i}].{f}");
        if t.kind != "function" {
            return Err(invalid(field("type"), "must be function"));
        }
        let f = t.function;
        if !valid_name(&f.name) {
            return Err(invalid(
                field("function.name"),
                "must be 1 to 64 letters, digits, _ or -",
            ));
        }
        if out.iter().any(|o| o.name == f.name) {
            return Err(invalid(field("function.name"), "is defined twice"));
        }
        let parameters = match f.parameters {
            // OpenAI's default: a function that takes no arguments.
            None => serde_json::json!({"type": "object", "properties": {}}),
            Some(p @ Value::Object(_)) => p,
            Some(_) => {
                return Err(invalid(
                    field("function.parameters"),
                    "must be a JSON Schema object",
                ));
            }
        };
        out.push(Tool {
            name: f.name,
            description: f.description,
            parameters,
            strict: f.strict,
        });
    }
    Ok(out)
}

/// The tool choice; one naming a tool must name a defined one. `field` is the face's
/// name for it (`tool_choice` or `toolChoice`).
pub fn tool_choice(
    field: &str,
    input: ToolChoiceIn,
    tools: &[Tool],
) -> Result<ToolChoice, GenerateError> {
    let choice = match input {
        ToolChoiceIn::Mode(m) => match m.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            _ => {
                return Err(invalid(
                    field,
                    "must be auto, none, required or a named function",
                ));
            }
        },
        ToolChoiceIn::Named(n) => {
            if n.kind != "function" {
                return Err(invalid(format!("{field}.type"), "must be function"));
            }
            ToolChoice::Tool(n.function.name)
        }
    };
    if tools.is_empty() && choice != ToolChoice::None {
        return Err(invalid(field, "needs tools to choose from"));
    }
    if let ToolChoice::Tool(name) = &choice
        && !tools.iter().any(|t| &t.name == name)
    {
        return Err(invalid(
            format!("{field}.function.name"),
            "names no tool in `tools`",
        ));
    }
    Ok(choice)
}

/// The response format; a JSON schema needs a valid name and an object schema.
pub fn response_format(
    field: &str,
    input: ResponseFormatIn,
) -> Result<ResponseFormat, GenerateError> {
    Ok(match input {
        ResponseFormatIn::Text => ResponseFormat::Text,
        ResponseFormatIn::JsonObject => ResponseFormat::JsonObject,
        ResponseFormatIn::JsonSchema { json_schema } => {
            if !valid_name(&json_schema.name) {
                return Err(invalid(
                    format!("{field}.json_schema.name"),
                    "must be 1 to 64 letters, digits, _ or -",
                ));
            }
            let schema = match json_schema.schema {
                Some(s @ Value::Object(_)) => s,
                _ => {
                    return Err(invalid(
                        format!("{field}.json_schema.schema"),
                        "must be a JSON Schema object",
                    ));
                }
            };
            ResponseFormat::JsonSchema {
                name: json_schema.name,
                description: json_schema.description,
                schema,
                strict: json_schema.strict.unwrap_or(false),
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Vec<Message>, GenerateError> {
        messages(serde_json::from_str(json).unwrap())
    }

    fn field_of(e: GenerateError) -> String {
        match e {
            GenerateError::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parts_calls_and_results_become_neutral_messages() {
        let m = parse(
            r#"[{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
                 {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"}]"#,
        )
        .unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[0].parts[1],
            Part::Image {
                source: ImageSource::Base64 {
                    media_type: "image/png".into(),
                    data: "iVBORw0KGgo=".into()
                },
                detail: Some("low".into())
            }
        );
        assert!(
            matches!(&m[0].parts[2], Part::Image { source: ImageSource::Url { url }, .. } if url == "https://example.com/cat.jpg")
        );
        assert_eq!(m[1].tool_calls[0].name, "get_weather");
        assert_eq!(m[1].tool_calls[0].arguments, r#"{"city":"Paris"}"#);
        assert_eq!(m[2].role, Role::Tool);
        assert_eq!(m[2].tool_call_id.as_deref(), Some("call_1"));
        // The native face's camelCase names are the same fields.
        let native = parse(r#"[{"role": "tool", "toolCallId": "c", "content": "x"}]"#).unwrap();
        assert_eq!(native[0].tool_call_id.as_deref(), Some("c"));
    }

    #[test]
    fn bad_messages_name_their_field() {
        for (json, field) in [
            (
                r#"[{"role": "tool", "content": "x"}]"#,
                "messages[0].tool_call_id",
            ),
            (
                r#"[{"role": "user", "tool_call_id": "c", "content": "x"}]"#,
                "messages[0].tool_call_id",
            ),
            (r#"[{"role": "robot", "content": "x"}]"#, "messages[0].role"),
            (r#"[{"role": "user"}]"#, "messages[0].content"),
            (
                r#"[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x.test/a.png"}}]}]"#,
                "messages[0].content[0].image_url.url",
            ),
            (
                r#"[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]}]"#,
                "messages[0].content[0].image_url.url",
            ),
            (
                r#"[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,AAAA"}}]}]"#,
                "messages[0].content[0].image_url.url",
            ),
            (
                r#"[{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}]"#,
                "messages[0].content[0].type",
            ),
            (
                r#"[{"role": "user", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}], "content": "x"}]"#,
                "messages[0].tool_calls",
            ),
            (
                r#"[{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "bad name", "arguments": "{}"}}]}]"#,
                "messages[0].tool_calls[0].function.name",
            ),
        ] {
            assert_eq!(field_of(parse(json).unwrap_err()), field, "{json}");
        }
    }

    #[test]
    fn tools_choice_and_format_are_checked() {
        let t: Vec<ToolIn> = serde_json::from_str(
            r#"[{"type": "function", "function": {"name": "get_weather", "description": "d",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}},
                {"type": "function", "function": {"name": "now"}}]"#,
        )
        .unwrap();
        let t = tools(t).unwrap();
        assert_eq!(t[1].parameters["type"], "object");
        let named: ToolChoiceIn =
            serde_json::from_str(r#"{"type": "function", "function": {"name": "now"}}"#).unwrap();
        assert_eq!(
            tool_choice("tool_choice", named, &t).unwrap(),
            ToolChoice::Tool("now".into())
        );
        let missing: ToolChoiceIn =
            serde_json::from_str(r#"{"type": "function", "function": {"name": "later"}}"#).unwrap();
        assert_eq!(
            field_of(tool_choice("tool_choice", missing, &t).unwrap_err()),
            "tool_choice.function.name"
        );
        assert_eq!(
            field_of(
                tool_choice("toolChoice", ToolChoiceIn::Mode("required".into()), &[]).unwrap_err()
            ),
            "toolChoice"
        );
        let twice: Vec<ToolIn> = serde_json::from_str(
            r#"[{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "a"}}]"#,
        )
        .unwrap();
        assert_eq!(
            field_of(tools(twice).unwrap_err()),
            "tools[1].function.name"
        );
        let bad_schema: Vec<ToolIn> = serde_json::from_str(
            r#"[{"type": "function", "function": {"name": "a", "parameters": "x"}}]"#,
        )
        .unwrap();
        assert_eq!(
            field_of(tools(bad_schema).unwrap_err()),
            "tools[0].function.parameters"
        );
        let f: ResponseFormatIn = serde_json::from_str(
            r#"{"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}}"#,
        )
        .unwrap();
        assert!(matches!(
            response_format("response_format", f).unwrap(),
            ResponseFormat::JsonSchema { strict: true, .. }
        ));
        let no_schema: ResponseFormatIn =
            serde_json::from_str(r#"{"type": "json_schema", "json_schema": {"name": "answer"}}"#)
                .unwrap();
        assert_eq!(
            field_of(response_format("response_format", no_schema).unwrap_err()),
            "response_format.json_schema.schema"
        );
        assert!(serde_json::from_str::<ResponseFormatIn>(r#"{"type": "xml"}"#).is_err());
    }
}
