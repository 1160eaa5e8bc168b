//! Each provider wire format's answer and stream parsers, on bytes from anywhere. A
//! stream must parse the same however the network splits it; a non-2xx answer is never a
//! generation.

use crate::Bytes;
use http::HeaderMap;
use shared::providers::anthropic::Anthropic;
use shared::providers::azure::AzureOpenAi;
use shared::providers::google::Google;
use shared::providers::openai::OpenAiCompatible;
use shared::providers::{ChatWire, ErrorKind, StreamEvent, StreamParser};

fn wires() -> Vec<(&'static str, Box<dyn ChatWire>)> {
    vec![
        ("openai", Box::new(OpenAiCompatible::openai())),
        ("anthropic", Box::new(Anthropic)),
        ("google", Box::new(Google)),
        ("azure", Box::new(AzureOpenAi::new("2024-10-21"))),
    ]
}

/// The events until the first error, and that error's kind.
#[derive(Debug)]
struct Outcome {
    events: Vec<StreamEvent>,
    error: Option<ErrorKind>,
}

fn parse(parser: &mut dyn StreamParser, chunks: &[&[u8]]) -> Outcome {
    let mut events = Vec::new();
    for chunk in chunks {
        match parser.feed(chunk) {
            Ok(more) => events.extend(more),
            Err(e) => {
                return Outcome {
                    events,
                    error: Some(e.kind),
                };
            }
        }
    }
    match parser.finish() {
        Ok(more) => {
            events.extend(more);
            Outcome {
                events,
                error: None,
            }
        }
        Err(e) => Outcome {
            events,
            error: Some(e.kind),
        },
    }
}

/// The body split into chunks of 1 to 16 bytes, sizes drawn from the input's head.
fn split<'a>(sizes: &[u8], body: &'a [u8]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = (1 + usize::from(sizes.get(i % sizes.len().max(1)).copied().unwrap_or(0) % 16))
            .min(rest.len());
        chunks.push(&rest[..n]);
        rest = &rest[n..];
        i += 1;
    }
    chunks
}

pub fn provider_streams(data: &[u8]) {
    let mut input = Bytes::new(data);
    let sizes = input.u64().to_le_bytes();
    let body = input.rest();
    for (name, wire) in wires() {
        let whole = parse(wire.stream_parser().as_mut(), &[body]);
        let pieces = parse(wire.stream_parser().as_mut(), &split(&sizes, body));
        if whole.error != pieces.error {
            panic!("{name}: whole body ended {whole:?}, split body {pieces:?}");
        }
        // A feed that fails drops what it held: in one piece, the events before the
        // error are lost with it; split, they came out of earlier chunks.
        let agree = if whole.error.is_none() {
            whole.events == pieces.events
        } else {
            pieces.events.starts_with(&whole.events)
        };
        if !agree {
            panic!("{name}: split body gave other events: {whole:?} vs {pieces:?}");
        }
    }
}

pub fn provider_answers(data: &[u8]) {
    let mut input = Bytes::new(data);
    let status = 100 + (input.u64() % 500) as u16;
    let body = input.rest();
    let headers = HeaderMap::new();
    for (name, wire) in wires() {
        let parsed = wire.parse_chat(status, &headers, body);
        if !(200..300).contains(&status) && parsed.is_ok() {
            panic!("{name}: a {status} answer parsed as a generation");
        }
        let e = wire.classify_error(status, &headers, body);
        if e.status.is_some_and(|s| s != status) {
            panic!(
                "{name}: a {status} answer classified with status {:?}",
                e.status
            );
        }
        let _ = wire.parse_probe(status, &headers, body, "gpt-4o-mini");
        let _ = wire.rate_limit(&headers, chrono::Utc::now());
    }
}
