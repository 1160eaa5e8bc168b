//! Fuzz targets: each takes arbitrary bytes and checks what must hold for every input,
//! not only that nothing panics. `src/main.rs` mutates the committed corpus
//! (`fuzz/corpus/<target>/`) against them for a fixed time (`make fuzz`); `tests/corpus.rs`
//! replays the corpus, the crash reproducers among it, on every `cargo test`.
//!
//! A target that finds a violation panics with what it found; the harness catches it and
//! saves the input.
#![allow(clippy::panic)] // a fuzz target reports a violated property by panicking

mod bodies;
mod events;
mod prices;
mod streams;
mod tokens;

pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

pub const TARGETS: &[Target] = &[
    Target {
        name: "route_bodies",
        run: bodies::route_bodies,
    },
    Target {
        name: "provider_streams",
        run: streams::provider_streams,
    },
    Target {
        name: "provider_answers",
        run: streams::provider_answers,
    },
    Target {
        name: "page_tokens",
        run: tokens::page_tokens,
    },
    Target {
        name: "apigw_events",
        run: events::apigw_events,
    },
    Target {
        name: "prices",
        run: prices::prices,
    },
];

pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Reads little-endian integers off the front of the input, zero past its end.
pub(crate) struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Bytes(data)
    }

    pub(crate) fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let n = self.0.len().min(8);
        b[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        u64::from_le_bytes(b)
    }

    pub(crate) fn u8(&mut self) -> u8 {
        let v = self.0.first().copied().unwrap_or(0);
        self.0 = self.0.get(1..).unwrap_or(&[]);
        v
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.0
    }
}
