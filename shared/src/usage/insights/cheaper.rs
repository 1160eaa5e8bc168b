//! What the period's successful calls would have cost on the cheapest model the caller
//! may use that can do what theirs did.

use crate::money::NanoUsd;
use crate::pricing::ModelPrice;
use crate::provider::Provider;
use crate::usage::{UsageEntry, UsageStatus};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;

/// Capabilities an alternative must share with the model it replaces.
pub const REQUIRED_CAPABILITIES: [&str; 2] = ["tools", "vision"];
/// Suggestions listed at most.
pub const MAX_SUGGESTIONS: usize = 5;

/// One model's successful, priced calls of the period, summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelUsage {
    pub provider: Provider,
    pub model: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cost: NanoUsd,
    /// The largest single request's input: an alternative's context window must hold it.
    pub largest_input: u64,
}

/// Per (provider, model), the entries that were answered by a provider (`success`) and
/// priced: a cache hit cost nothing, an error produced nothing, and an unpriced call has
/// no actual cost to compare with.
pub fn model_usage<'e>(entries: impl IntoIterator<Item = &'e UsageEntry>) -> Vec<ModelUsage> {
    let mut groups: BTreeMap<(Provider, &str), ModelUsage> = BTreeMap::new();
    for e in entries {
        let (UsageStatus::Success, Some(cost)) = (e.status, e.cost_usd) else {
            continue;
        };
        let g = groups
            .entry((e.provider, e.model.as_str()))
            .or_insert_with(|| ModelUsage {
                provider: e.provider,
                model: e.model.clone(),
                requests: 0,
                input_tokens: 0,
                output_tokens: 0,
                cached_input_tokens: 0,
                cost: NanoUsd::ZERO,
                largest_input: 0,
            });
        g.requests += 1;
        g.input_tokens = g.input_tokens.saturating_add(e.input_tokens);
        g.output_tokens = g.output_tokens.saturating_add(e.output_tokens);
        g.cached_input_tokens = g.cached_input_tokens.saturating_add(e.cached_input_tokens);
        g.cost = NanoUsd(g.cost.0.saturating_add(cost.0));
        g.largest_input = g.largest_input.max(e.input_tokens);
    }
    groups.into_values().collect()
}

/// A model the caller may switch to.
#[derive(Debug, Clone, Copy)]
pub struct Alternative<'a> {
    pub price: &'a ModelPrice,
    /// What the registry entry says the model can do (what routing checks).
    pub capabilities: &'a [String],
    /// The caller has no key for its provider and the entry no operator credentials.
    pub needs_key: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheaperModel {
    pub provider: Provider,
    pub model: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cost_usd: NanoUsd,
    pub alternative_provider: Provider,
    pub alternative_model: String,
    pub alternative_cost_usd: NanoUsd,
    pub saving_usd: NanoUsd,
    pub needs_key: bool,
}

/// For each used model, the cheapest alternative (first in `alternatives`' order on a
/// tie) that is not the same model, charges something (a $0 model is self-hosted: its
/// cost is the operator's hardware, not nothing), holds the largest request and has
/// every [`REQUIRED_CAPABILITIES`] the used model has. `capabilities_of` gives the used
/// model's capabilities; `None` (a model neither the registry nor the catalog knows)
/// requires them all. Listed when the saving is positive, largest first, at most 5.
pub fn cheaper_models(
    usage: &[ModelUsage],
    capabilities_of: impl Fn(Provider, &str) -> Option<Vec<String>>,
    alternatives: &[Alternative<'_>],
) -> Vec<CheaperModel> {
    let mut out: Vec<CheaperModel> = usage
        .iter()
        .filter_map(|u| {
            let provider = u.provider;
            let caps = capabilities_of(provider, &u.model);
            let required: Vec<&str> = REQUIRED_CAPABILITIES
                .into_iter()
                .filter(|c| caps.as_ref().is_none_or(|caps| caps.iter().any(|x| x == c)))
                .collect();
            let (alt, alt_cost) = alternatives
                .iter()
                .filter(|a| (a.price.provider, a.price.id.as_str()) != (provider, &u.model))
                .filter(|a| !(a.price.input.is_zero() && a.price.output.is_zero()))
                .filter(|a| a.price.context_window >= u.largest_input)
                .filter(|a| {
                    required
                        .iter()
                        .all(|r| a.capabilities.iter().any(|c| c == r))
                })
                .filter_map(|a| cost_on(a.price, u).map(|c| (a, c)))
                // `min_by_key` keeps the last of equals: reversed, the first.
                .rev()
                .min_by_key(|(_, c)| *c)?;
            let saving = u.cost.0.checked_sub(alt_cost.0)?;
            (saving > 0).then(|| CheaperModel {
                provider,
                model: u.model.clone(),
                requests: u.requests,
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                cached_input_tokens: u.cached_input_tokens,
                cost_usd: u.cost,
                alternative_provider: alt.price.provider,
                alternative_model: alt.price.id.clone(),
                alternative_cost_usd: alt_cost,
                saving_usd: NanoUsd(saving),
                needs_key: alt.needs_key,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.saving_usd
            .cmp(&a.saving_usd)
            .then_with(|| (a.provider, &a.model).cmp(&(b.provider, &b.model)))
    });
    out.truncate(MAX_SUGGESTIONS);
    out
}

/// The summed tokens at `m`'s rates, exact, rounded once half up: cached input at its
/// cached rate when it has one, else the input rate. A long-context tier is applied to
/// every token once the largest request exceeds it: the alternative is then priced high
/// rather than low, so a saving is never overstated.
pub fn cost_on(m: &ModelPrice, u: &ModelUsage) -> Option<NanoUsd> {
    let tier = m
        .long_context
        .as_ref()
        .filter(|t| u.largest_input > t.above_input_tokens);
    let (input, output, cached_rate) = match tier {
        Some(t) => (t.input, t.output, t.cached_read.or(m.cached_read)),
        None => (m.input, m.output, m.cached_read),
    };
    let cached = u.cached_input_tokens.min(u.input_tokens);
    let uncached = u.input_tokens - cached;
    let per_million = Decimal::from(uncached)
        .checked_mul(input)?
        .checked_add(Decimal::from(cached).checked_mul(cached_rate.unwrap_or(input))?)?
        .checked_add(Decimal::from(u.output_tokens).checked_mul(output)?)?;
    NanoUsd::from_decimal_rounded(per_million / Decimal::from(1_000_000u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::catalog;

    fn price(provider: Provider, id: &str, input: &str, output: &str) -> ModelPrice {
        let base = catalog().unwrap().find(Some(Provider::OpenAi), "gpt-4o");
        let mut m = base.unwrap().clone();
        m.provider = provider;
        m.id = id.into();
        m.input = input.parse().unwrap();
        m.output = output.parse().unwrap();
        m.cached_read = None;
        m.long_context = None;
        m
    }

    fn used(model: &str, input: u64, output: u64, cached: u64, cost: i64) -> ModelUsage {
        ModelUsage {
            provider: Provider::OpenAi,
            model: model.into(),
            requests: 1,
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            cost: NanoUsd(cost),
            largest_input: input,
        }
    }

    fn caps(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_million_input_and_half_a_million_output_save_exactly() {
        // $2.50 / $10: 2.50 + 5 = $7.50. At $0.15 / $0.60: 0.15 + 0.30 = $0.45.
        let big = price(Provider::OpenAi, "big", "2.50", "10");
        let small = price(Provider::OpenAi, "small", "0.15", "0.60");
        // Over 100 requests, the largest of 10,000 input tokens.
        let u = ModelUsage {
            requests: 100,
            largest_input: 10_000,
            ..used("big", 1_000_000, 500_000, 0, 7_500_000_000)
        };
        assert_eq!(cost_on(&big, &u), Some(NanoUsd(7_500_000_000)));
        let all = caps(&["chat", "tools", "vision"]);
        let alts = [
            Alternative {
                price: &big,
                capabilities: &all,
                needs_key: false,
            },
            Alternative {
                price: &small,
                capabilities: &all,
                needs_key: true,
            },
        ];
        let found = cheaper_models(&[u], |_, _| Some(all.clone()), &alts);
        assert_eq!(found.len(), 1);
        let s = &found[0];
        assert_eq!((s.alternative_model.as_str(), s.needs_key), ("small", true));
        assert_eq!(s.alternative_cost_usd, NanoUsd(450_000_000));
        assert_eq!(s.saving_usd, NanoUsd(7_050_000_000));
    }

    #[test]
    fn cached_input_is_priced_at_the_cached_rate_when_there_is_one() {
        let mut m = price(Provider::OpenAi, "m", "0.15", "0.60");
        // 1,000 input of which 400 cached, 100 output.
        let u = used("x", 1_000, 100, 400, 0);
        // 600 × 0.15 + 400 × 0.15 + 100 × 0.60 = 210 per million: 210 nano-dollars × 1000.
        assert_eq!(cost_on(&m, &u), Some(NanoUsd(210_000)));
        m.cached_read = Some("0.075".parse().unwrap());
        // 600 × 0.15 + 400 × 0.075 + 100 × 0.60 = 90 + 30 + 60 = 180.
        assert_eq!(cost_on(&m, &u), Some(NanoUsd(180_000)));
    }

    #[test]
    fn a_long_context_tier_prices_every_token_once_the_largest_request_exceeds_it() {
        let mut m = price(Provider::Google, "tiered", "1", "2");
        m.long_context = Some(crate::pricing::LongContextTier {
            above_input_tokens: 1_000,
            input: "10".parse().unwrap(),
            output: "20".parse().unwrap(),
            cached_read: None,
            cache_write: None,
        });
        // Summed input over the tier, every request under it: base rates, 3,000 × 1 + 100 × 2.
        let under = ModelUsage {
            largest_input: 1_000,
            ..used("x", 3_000, 100, 0, 0)
        };
        assert_eq!(cost_on(&m, &under), Some(NanoUsd(3_200_000)));
        // One request over it: the tier for all, 3,000 × 10 + 100 × 20.
        let over = ModelUsage {
            largest_input: 1_001,
            ..under
        };
        assert_eq!(cost_on(&m, &over), Some(NanoUsd(32_000_000)));
    }

    #[test]
    fn alternatives_must_fit_the_context_and_keep_tools_and_vision() {
        let cheap_text = price(Provider::Groq, "text", "0.05", "0.08");
        let mut small_window = price(Provider::Google, "window", "0.06", "0.10");
        small_window.context_window = 1_000;
        let vision = price(Provider::Mistral, "vision", "0.10", "0.30");
        let tools = caps(&["chat", "tools"]);
        let both = caps(&["chat", "tools", "vision"]);
        let alts = [
            Alternative {
                price: &cheap_text,
                capabilities: &tools,
                needs_key: false,
            },
            Alternative {
                price: &small_window,
                capabilities: &both,
                needs_key: false,
            },
            Alternative {
                price: &vision,
                capabilities: &both,
                needs_key: false,
            },
        ];
        let u = used("gpt-4o", 2_000, 1_000, 0, 15_000_000);
        // With vision required, only the model with vision and a large window is left:
        // 2,000 × 0.10 + 1,000 × 0.30 = 500 per million = 500,000 nanos.
        let found = cheaper_models(std::slice::from_ref(&u), |_, _| Some(both.clone()), &alts);
        assert_eq!(found[0].alternative_model, "vision");
        assert_eq!(found[0].saving_usd, NanoUsd(15_000_000 - 500_000));
        // A text-only model may go to the cheapest: 2,000 × 0.05 + 1,000 × 0.08 = 180.
        let found = cheaper_models(std::slice::from_ref(&u), |_, _| Some(tools.clone()), &alts);
        assert_eq!(found[0].alternative_model, "text");
        assert_eq!(found[0].alternative_cost_usd, NanoUsd(180_000));
        // An unknown model requires both.
        let found = cheaper_models(&[u], |_, _| None, &alts);
        assert_eq!(found[0].alternative_model, "vision");
    }

    #[test]
    fn no_saving_free_models_and_the_same_model_are_not_listed() {
        let same = price(Provider::OpenAi, "gpt-4o", "0.01", "0.01");
        let free = price(Provider::Ollama, "llama", "0", "0");
        let dear = price(Provider::Anthropic, "dear", "3", "15");
        let all = caps(&["chat", "tools", "vision"]);
        let alts = [
            Alternative {
                price: &same,
                capabilities: &all,
                needs_key: false,
            },
            Alternative {
                price: &free,
                capabilities: &all,
                needs_key: false,
            },
            Alternative {
                price: &dear,
                capabilities: &all,
                needs_key: false,
            },
        ];
        let u = used("gpt-4o", 1_000, 500, 0, 7_500_000);
        assert!(cheaper_models(&[u], |_, _| Some(all.clone()), &alts).is_empty());
    }

    #[test]
    fn suggestions_are_sorted_by_saving_and_at_most_five() {
        let small = price(Provider::OpenAi, "small", "0.15", "0.60");
        let all = caps(&["chat", "tools", "vision"]);
        let alts = [Alternative {
            price: &small,
            capabilities: &all,
            needs_key: false,
        }];
        let usage: Vec<ModelUsage> = (1..=7)
            .map(|i| used(&format!("m{i}"), 1_000, 0, 0, i * 1_000_000))
            .collect();
        let found = cheaper_models(&usage, |_, _| Some(all.clone()), &alts);
        // 1,000 × 0.15 = 150,000 nanos on the alternative.
        assert_eq!(
            found.iter().map(|s| s.saving_usd.0).collect::<Vec<_>>(),
            [6_850_000, 5_850_000, 4_850_000, 3_850_000, 2_850_000]
        );
    }

    #[test]
    fn only_successful_priced_calls_are_summed() {
        let now = chrono::Utc::now();
        let entry = |status, cost: Option<i64>, input| UsageEntry {
            user_id: "u".into(),
            timestamp: crate::usage::timestamp(now),
            request_id: "r".into(),
            provider: Provider::OpenAi,
            model: "gpt-4o".into(),
            operation_type: "conversation".into(),
            input_tokens: input,
            output_tokens: 10,
            cached_input_tokens: 1,
            total_tokens: input + 10,
            cost_usd: cost.map(NanoUsd),
            latency_ms: 1.0,
            status,
            error_type: None,
            price_version: "t".into(),
            metadata: Default::default(),
            ttl: 0,
            key_source: None,
            tenant_id: None,
        };
        let entries = [
            entry(UsageStatus::Success, Some(5), 100),
            entry(UsageStatus::Success, Some(7), 300),
            entry(UsageStatus::Cached, Some(0), 900),
            entry(UsageStatus::Error, Some(0), 900),
            entry(UsageStatus::Success, None, 900),
        ];
        let groups = model_usage(&entries);
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!(
            (
                g.requests,
                g.input_tokens,
                g.output_tokens,
                g.cached_input_tokens
            ),
            (2, 400, 20, 2)
        );
        assert_eq!((g.cost, g.largest_input), (NanoUsd(12), 300));
    }
}
