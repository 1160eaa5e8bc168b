//! Requests that asked exactly what an earlier one had asked, and paid for it again.

use crate::generate::PROMPT_HASH;
use crate::money::NanoUsd;
use crate::usage::{UsageEntry, UsageStatus};
use serde::Serialize;
use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepeatedPrompts {
    /// Provider-answered requests whose fingerprint an earlier answer of the period had.
    pub repeated_requests: u64,
    /// The distinct fingerprints among those repeats.
    pub distinct_prompts: u64,
    /// What those repeats cost: what the response cache would have saved at most.
    pub cost_usd: NanoUsd,
    /// The user's effective `enableCaching`.
    pub caching_enabled: bool,
}

/// Over `entries` oldest first: an answered request (`success` or `cached`) makes its
/// fingerprint seen; a `success` with a fingerprint already seen is a repeat. Errors
/// neither count nor make a prompt seen (nothing was answered that a cache could hold),
/// and a cache hit is never a repeat (the cache did its work).
pub fn repeated_prompts<'e>(
    entries: impl IntoIterator<Item = &'e UsageEntry>,
    caching_enabled: bool,
) -> RepeatedPrompts {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut repeated: HashSet<&str> = HashSet::new();
    let mut out = RepeatedPrompts {
        repeated_requests: 0,
        distinct_prompts: 0,
        cost_usd: NanoUsd::ZERO,
        caching_enabled,
    };
    for e in entries {
        let Some(hash) = e.metadata.get(PROMPT_HASH).and_then(|v| v.as_str()) else {
            continue;
        };
        match e.status {
            UsageStatus::Error => {}
            UsageStatus::Cached => {
                seen.insert(hash);
            }
            UsageStatus::Success => {
                if !seen.insert(hash) {
                    repeated.insert(hash);
                    out.repeated_requests += 1;
                    let cost = e.cost_usd.unwrap_or(NanoUsd::ZERO);
                    out.cost_usd = NanoUsd(out.cost_usd.0.saturating_add(cost.0));
                }
            }
        }
    }
    out.distinct_prompts = u64::try_from(repeated.len()).unwrap_or(u64::MAX);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Provider;

    fn entry(hash: Option<&str>, status: UsageStatus, cost: i64) -> UsageEntry {
        let mut metadata = std::collections::BTreeMap::new();
        if let Some(h) = hash {
            metadata.insert(PROMPT_HASH.to_string(), serde_json::json!(h));
        }
        UsageEntry {
            user_id: "u".into(),
            timestamp: "2026-11-01T00:00:00.000Z".into(),
            request_id: "r".into(),
            provider: Provider::OpenAi,
            model: "m".into(),
            operation_type: "conversation".into(),
            input_tokens: 1,
            output_tokens: 1,
            cached_input_tokens: 0,
            total_tokens: 2,
            cost_usd: Some(NanoUsd(cost)),
            latency_ms: 1.0,
            status,
            error_type: None,
            price_version: "t".into(),
            metadata,
            ttl: 0,
            key_source: None,
            tenant_id: None,
        }
    }

    #[test]
    fn repeats_after_the_first_answer_are_counted_with_their_cost() {
        use UsageStatus::*;
        let entries = [
            entry(Some("a"), Error, 0), // not an answer: the next "a" is the first
            entry(Some("a"), Success, 5),
            entry(Some("a"), Success, 7), // repeat
            entry(Some("a"), Cached, 0),  // served by the cache: not a repeat
            entry(Some("b"), Success, 11),
            entry(Some("a"), Success, 13), // repeat
            entry(None, Success, 17),      // no fingerprint (an older entry)
            entry(None, Success, 19),
            entry(Some("c"), Cached, 0),
            entry(Some("c"), Success, 23), // repeat of a cached answer
        ];
        let r = repeated_prompts(&entries, false);
        assert_eq!(
            r,
            RepeatedPrompts {
                repeated_requests: 3,
                distinct_prompts: 2,
                cost_usd: NanoUsd(7 + 13 + 23),
                caching_enabled: false,
            }
        );
    }
}
