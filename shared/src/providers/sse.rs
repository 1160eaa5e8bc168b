//! Server-Sent Events framing, shared by the adapters whose streams are SSE (Anthropic,
//! OpenAI and its family, Gemini with `alt=sse`). Only framing lives here; what an
//! event means is each adapter's business.

use super::{ErrorKind, ProviderError, StreamEvent, StreamParser};

/// An adapter's reading of its SSE events. The framing, and the rule that a body ending
/// before the terminal event is a cut stream, are the same for every SSE provider: they
/// live in the [`StreamParser`] implementation below.
pub trait SseEvents: Send {
    fn decoder(&mut self) -> &mut SseDecoder;
    /// Reads one event's data, pushing what it completes.
    fn handle(&mut self, data: &str, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError>;
    /// Whether the terminal event has been seen.
    fn finished(&self) -> bool;
    /// What the log says when the body ended without it.
    fn cut_message(&self) -> String;
}

impl<T: SseEvents> StreamParser for T {
    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut out = Vec::new();
        for event in self.decoder().feed(chunk) {
            self.handle(&event.data, &mut out)?;
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut out = Vec::new();
        if let Some(event) = self.decoder().finish() {
            // A last event without its blank line is fine when whole; when the body was
            // cut inside it, it does not parse, and the stream is reported as cut below.
            let _ = self.handle(&event.data, &mut out);
        }
        if !self.finished() {
            return Err(ProviderError::new(ErrorKind::Network, self.cut_message()));
        }
        Ok(out)
    }
}

/// One complete SSE event: its `event:` name (if any) and its joined `data:` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Accumulates bytes and yields complete events. Events end at a blank line; `\r\n`
/// and `\n` are both accepted; comments (`:`) are skipped.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buffer: Vec<u8>,
}

impl SseDecoder {
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some((end, sep)) = find_blank_line(&self.buffer) {
            let block: Vec<u8> = self.buffer.drain(..end + sep).collect();
            if let Some(e) = parse_block(&block[..end]) {
                events.push(e);
            }
        }
        events
    }

    /// What is left once the body ended (a last event without its blank line).
    pub fn finish(&mut self) -> Option<SseEvent> {
        let block = std::mem::take(&mut self.buffer);
        parse_block(&block)
    }
}

fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' && buf[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if buf[i] == b'\n' && buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
            return Some((i, 3));
        }
        i += 1;
    }
    None
}

fn parse_block(block: &[u8]) -> Option<SseEvent> {
    let text = String::from_utf8_lossy(block);
    let mut event = None;
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => data.push(value),
            _ => {}
        }
    }
    if data.is_empty() && event.is_none() {
        return None;
    }
    Some(SseEvent {
        event,
        data: data.join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_are_reassembled() {
        let body = b"event: a\ndata: {\"x\":1}\n\n: comment\n\ndata: line1\ndata: line2\r\n\r\ndata: [DONE]\n\n";
        for split in 0..body.len() {
            let mut d = SseDecoder::default();
            let mut got = d.feed(&body[..split]);
            got.extend(d.feed(&body[split..]));
            assert_eq!(
                got,
                vec![
                    SseEvent {
                        event: Some("a".into()),
                        data: "{\"x\":1}".into()
                    },
                    SseEvent {
                        event: None,
                        data: "line1\nline2".into()
                    },
                    SseEvent {
                        event: None,
                        data: "[DONE]".into()
                    },
                ],
                "split at {split}"
            );
            assert_eq!(d.finish(), None);
        }
    }
}
