//! Bedrock's ConverseStream in neutral stream events. The SDK decodes AWS's event-stream
//! framing (`application/vnd.amazon.eventstream`) into typed events: `messageStart`,
//! `contentBlockStart` (a tool use's id and name), `contentBlockDelta` (text, or a piece
//! of a tool's input JSON), `contentBlockStop`, `messageStop` (the stop reason), then
//! `metadata` (usage); an exception event may arrive mid-stream.

use super::{kind_for_code, stop_reason, token_counts};
use crate::pricing::TokenCounts;
use crate::providers::anthropic::is_answer_tool;
use crate::providers::facade::EventStream;
use crate::providers::{ErrorKind, FinishReason, ProviderError, StreamEvent, ToolCallDelta};
use async_trait::async_trait;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;
use aws_sdk_bedrockruntime::types::{ContentBlockDelta, ContentBlockStart, ConverseStreamOutput};

/// What a content block is, by its index: deltas name only the block.
#[derive(Clone, Copy)]
enum Block {
    Call(u32),
    /// The structured-output tool: its input is the answer's text.
    Answer,
}

/// The state of one ConverseStream between events.
#[derive(Default)]
pub(super) struct ConverseEvents {
    blocks: Vec<(i32, Block)>,
    /// Calls numbered from 0, as clients number them (content blocks count text too).
    calls: u32,
    answered: bool,
    stop: Option<FinishReason>,
    done: bool,
}

impl ConverseEvents {
    pub(super) fn map(&mut self, event: ConverseStreamOutput) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        match event {
            ConverseStreamOutput::ContentBlockStart(e) => {
                if let Some(ContentBlockStart::ToolUse(t)) = e.start {
                    if is_answer_tool(&t.name) {
                        self.answered = true;
                        self.blocks.push((e.content_block_index, Block::Answer));
                    } else {
                        let call = self.calls;
                        self.calls += 1;
                        self.blocks.push((e.content_block_index, Block::Call(call)));
                        out.push(StreamEvent::ToolCall(ToolCallDelta {
                            index: call,
                            id: Some(t.tool_use_id),
                            name: Some(t.name),
                            arguments: String::new(),
                        }));
                    }
                }
            }
            ConverseStreamOutput::ContentBlockDelta(e) => {
                let block = self
                    .blocks
                    .iter()
                    .find(|(i, _)| *i == e.content_block_index)
                    .map(|b| b.1);
                match e.delta {
                    Some(ContentBlockDelta::Text(t)) if !t.is_empty() => {
                        out.push(StreamEvent::Delta(t));
                    }
                    Some(ContentBlockDelta::ToolUse(t)) if !t.input.is_empty() => match block {
                        Some(Block::Call(call)) => out.push(StreamEvent::ToolCall(ToolCallDelta {
                            index: call,
                            id: None,
                            name: None,
                            arguments: t.input,
                        })),
                        Some(Block::Answer) => out.push(StreamEvent::Delta(t.input)),
                        None => {}
                    },
                    // Reasoning and citations have no neutral event (yet).
                    _ => {}
                }
            }
            ConverseStreamOutput::MessageStop(e) => {
                let mut reason = stop_reason(&e.stop_reason);
                // The answer tool's use is the answer ending, not a call to make.
                if self.answered && self.calls == 0 && reason == FinishReason::ToolCalls {
                    reason = FinishReason::Stop;
                }
                self.stop = Some(reason);
            }
            ConverseStreamOutput::Metadata(e) if self.stop.is_some() => {
                out.push(StreamEvent::Usage(
                    e.usage.as_ref().map(token_counts).unwrap_or_default(),
                ));
                out.push(self.finish());
            }
            _ => {}
        }
        out
    }

    fn finish(&mut self) -> StreamEvent {
        self.done = true;
        StreamEvent::Done {
            finish_reason: self.stop,
        }
    }

    /// The events owed when the stream ends: none after `metadata`; a stream that
    /// stopped without it ends with zero usage; one that never stopped was cut.
    pub(super) fn end(&mut self) -> Result<Vec<StreamEvent>, ProviderError> {
        if self.done {
            return Ok(Vec::new());
        }
        if self.stop.is_none() {
            return Err(ProviderError::new(
                ErrorKind::Network,
                "bedrock stream ended before messageStop",
            ));
        }
        tracing::warn!("bedrock stream ended without its metadata event: usage unknown");
        Ok(vec![
            StreamEvent::Usage(TokenCounts::default()),
            self.finish(),
        ])
    }
}

type Receiver = aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver<
    ConverseStreamOutput,
    ConverseStreamOutputError,
>;

/// An open ConverseStream, read event by event.
pub struct ConverseStream {
    pub(super) receiver: Receiver,
    pub(super) events: ConverseEvents,
    pub(super) ended: bool,
}

#[async_trait]
impl EventStream for ConverseStream {
    async fn next_events(&mut self) -> Result<Option<Vec<StreamEvent>>, ProviderError> {
        if self.ended {
            return Ok(None);
        }
        match self.receiver.recv().await {
            Ok(Some(event)) => Ok(Some(self.events.map(event))),
            Ok(None) => {
                self.ended = true;
                self.events.end().map(Some)
            }
            Err(e) => {
                self.ended = true;
                Err(classify_event_error(e))
            }
        }
    }
}

/// A mid-stream exception event (throttling, a model error), or a broken stream.
fn classify_event_error<R: std::fmt::Debug>(
    e: SdkError<ConverseStreamOutputError, R>,
) -> ProviderError {
    let detail = aws_sdk_bedrockruntime::error::DisplayErrorContext(&e).to_string();
    let kind = match &e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            // An exception event names its type in a header, which the SDK decodes
            // into the variant, not into the error's code.
            let code = err.code().unwrap_or(match err {
                ConverseStreamOutputError::ThrottlingException(_) => "ThrottlingException",
                ConverseStreamOutputError::ValidationException(_) => "ValidationException",
                ConverseStreamOutputError::ServiceUnavailableException(_) => {
                    "ServiceUnavailableException"
                }
                _ => "InternalServerException",
            });
            kind_for_code(code, err.message().unwrap_or_default()).unwrap_or(ErrorKind::ServerError)
        }
        SdkError::TimeoutError(_) => ErrorKind::Timeout,
        _ => ErrorKind::Network,
    };
    ProviderError::new(kind, format!("bedrock stream: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::super::Bedrock;
    use super::*;
    use crate::providers::{ChatRequest, Message, Role};
    use crate::secret::ApiKey;
    use wiremock::matchers::{body_partial_json, method, path_regex};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    /// One message of AWS's event-stream framing, written out byte by byte (not with
    /// the SDK's writer, so the SDK's decoder checks our reading of the format): total
    /// length, headers length, the prelude's CRC32, headers (name length, name, type 7 =
    /// string, value length, value), the JSON payload, the whole message's CRC32.
    fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
        let mut h = Vec::new();
        for (name, value) in headers {
            h.push(u8::try_from(name.len()).unwrap());
            h.extend_from_slice(name.as_bytes());
            h.push(7);
            h.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
            h.extend_from_slice(value.as_bytes());
        }
        let total = 12 + h.len() + payload.len() + 4;
        let mut m = Vec::with_capacity(total);
        m.extend_from_slice(&u32::try_from(total).unwrap().to_be_bytes());
        m.extend_from_slice(&u32::try_from(h.len()).unwrap().to_be_bytes());
        let prelude_crc = crc32fast::hash(&m);
        m.extend_from_slice(&prelude_crc.to_be_bytes());
        m.extend_from_slice(&h);
        m.extend_from_slice(payload);
        let crc = crc32fast::hash(&m);
        m.extend_from_slice(&crc.to_be_bytes());
        m
    }

    fn event(kind: &str, payload: serde_json::Value) -> Vec<u8> {
        frame(
            &[
                (":event-type", kind),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload.to_string().as_bytes(),
        )
    }

    /// The event sequence of AWS's ConverseStream documentation: text deltas, a tool
    /// use whose input arrives in pieces, the stop reason, then usage and metrics.
    fn tool_turn() -> Vec<u8> {
        use serde_json::json;
        [
            event("messageStart", json!({"role": "assistant"})),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "Let me check "}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "the weather."}}),
            ),
            event("contentBlockStop", json!({"contentBlockIndex": 0})),
            event(
                "contentBlockStart",
                json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "top_song"}}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"sign\": "}}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"WZPZ\"}"}}}),
            ),
            event("contentBlockStop", json!({"contentBlockIndex": 1})),
            event("messageStop", json!({"stopReason": "tool_use"})),
            event(
                "metadata",
                json!({"usage": {"inputTokens": 375, "outputTokens": 36, "totalTokens": 411}, "metrics": {"latencyMs": 2613}}),
            ),
        ]
        .concat()
    }

    fn bedrock_at(url: &str) -> Bedrock {
        let config = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("us-east-1"))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        Bedrock::new(config, Some(url.to_owned()))
    }

    fn request() -> ChatRequest {
        ChatRequest {
            model: "anthropic.claude-3-haiku-20240307-v1:0".into(),
            messages: vec![Message::text(
                Role::User,
                "What is the most popular song on WZPZ?",
            )],
            max_tokens: 200,
            stream: true,
            ..ChatRequest::default()
        }
    }

    async fn drain(mut s: ConverseStream) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut all = Vec::new();
        while let Some(batch) = s.next_events().await? {
            all.extend(batch);
        }
        Ok(all)
    }

    async fn serving(body: Vec<u8>) -> MockServer {
        let upstream = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path_regex(r"^/model/anthropic\.claude-3-haiku-20240307-v1(:|%3A)0/converse-stream$"))
            .and(body_partial_json(serde_json::json!({
                "messages": [{"role": "user", "content": [{"text": "What is the most popular song on WZPZ?"}]}],
                "inferenceConfig": {"maxTokens": 200}
            })))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "application/vnd.amazon.eventstream")
                    .set_body_bytes(body),
            )
            .expect(1)
            .mount(&upstream)
            .await;
        upstream
    }

    #[tokio::test]
    async fn the_event_stream_framing_decodes_to_deltas_tool_calls_usage_and_the_end() {
        let upstream = serving(tool_turn()).await;
        let key =
            ApiKey::new("AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into());
        let stream = bedrock_at(&upstream.uri())
            .converse_stream(Some(&key), &request())
            .await
            .unwrap();
        let events = drain(stream).await.unwrap();
        assert_eq!(
            events,
            vec![
                StreamEvent::Delta("Let me check ".into()),
                StreamEvent::Delta("the weather.".into()),
                StreamEvent::ToolCall(ToolCallDelta {
                    index: 0,
                    id: Some("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q".into()),
                    name: Some("top_song".into()),
                    arguments: String::new(),
                }),
                StreamEvent::ToolCall(ToolCallDelta {
                    index: 0,
                    id: None,
                    name: None,
                    arguments: "{\"sign\": ".into(),
                }),
                StreamEvent::ToolCall(ToolCallDelta {
                    index: 0,
                    id: None,
                    name: None,
                    arguments: "\"WZPZ\"}".into(),
                }),
                StreamEvent::Usage(TokenCounts {
                    input_tokens: 375,
                    output_tokens: 36,
                    ..TokenCounts::default()
                }),
                StreamEvent::Done {
                    finish_reason: Some(FinishReason::ToolCalls)
                },
            ]
        );
        // The request was signed with the user's key pair, not anything ambient.
        let sent = &upstream.received_requests().await.unwrap()[0];
        let auth = sent.headers.get("authorization").unwrap().to_str().unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/"),
            "{auth}"
        );
    }

    #[tokio::test]
    async fn a_stream_cut_before_message_stop_is_an_error_and_an_exception_event_is_classified() {
        use serde_json::json;
        let mut cut = tool_turn();
        // Only the opening event: no messageStop, no metadata.
        cut.truncate(event("messageStart", json!({"role": "assistant"})).len());
        let upstream = serving(cut).await;
        let key = ApiKey::new("AKID:SECRET".into());
        let stream = bedrock_at(&upstream.uri())
            .converse_stream(Some(&key), &request())
            .await
            .unwrap();
        let err = drain(stream).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Network, "{}", err.detail);

        let throttled = [
            event("messageStart", json!({"role": "assistant"})),
            frame(
                &[
                    (":exception-type", "throttlingException"),
                    (":content-type", "application/json"),
                    (":message-type", "exception"),
                ],
                br#"{"message":"Too many tokens, please wait before trying again."}"#,
            ),
        ]
        .concat();
        let upstream = serving(throttled).await;
        let stream = bedrock_at(&upstream.uri())
            .converse_stream(Some(&key), &request())
            .await
            .unwrap();
        let err = drain(stream).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::RateLimited, "{}", err.detail);
        assert!(!err.detail.contains("SECRET"));
    }

    #[test]
    fn the_answer_tool_streams_as_text_and_ends_as_a_stop() {
        use aws_sdk_bedrockruntime::types::{
            ContentBlockDeltaEvent, ContentBlockStartEvent, ConverseStreamMetadataEvent,
            MessageStopEvent, StopReason, TokenUsage, ToolUseBlockDelta, ToolUseBlockStart,
        };
        let mut e = ConverseEvents::default();
        let start = ContentBlockStartEvent::builder()
            .content_block_index(0)
            .start(ContentBlockStart::ToolUse(
                ToolUseBlockStart::builder()
                    .tool_use_id("t1")
                    .name("json_answer_weather")
                    .build()
                    .unwrap(),
            ))
            .build()
            .unwrap();
        assert!(
            e.map(ConverseStreamOutput::ContentBlockStart(start))
                .is_empty()
        );
        let piece = ContentBlockDeltaEvent::builder()
            .content_block_index(0)
            .delta(ContentBlockDelta::ToolUse(
                ToolUseBlockDelta::builder()
                    .input("{\"t\":1}")
                    .build()
                    .unwrap(),
            ))
            .build()
            .unwrap();
        assert_eq!(
            e.map(ConverseStreamOutput::ContentBlockDelta(piece)),
            vec![StreamEvent::Delta("{\"t\":1}".into())]
        );
        let stop = MessageStopEvent::builder()
            .stop_reason(StopReason::ToolUse)
            .build()
            .unwrap();
        assert!(e.map(ConverseStreamOutput::MessageStop(stop)).is_empty());
        let usage = TokenUsage::builder()
            .input_tokens(10)
            .output_tokens(5)
            .total_tokens(115)
            .cache_read_input_tokens(100)
            .build()
            .unwrap();
        let meta = ConverseStreamMetadataEvent::builder().usage(usage).build();
        assert_eq!(
            e.map(ConverseStreamOutput::Metadata(meta)),
            vec![
                StreamEvent::Usage(TokenCounts {
                    input_tokens: 110,
                    output_tokens: 5,
                    cached_input_tokens: 100,
                    cache_write_tokens: 0,
                }),
                StreamEvent::Done {
                    finish_reason: Some(FinishReason::Stop)
                },
            ]
        );
        assert_eq!(e.end().unwrap(), Vec::new());
    }
}
