//! The price table and exact cost arithmetic.
//!
//! Rates are `rust_decimal` per 1M tokens; a call's cost is computed exactly and rounded
//! once, half-up, to whole nano-dollars, which is what every sum works in. A model whose
//! price is unknown costs `None`, never a silent zero.

use crate::money::NanoUsd;
use crate::provider::Provider;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

const CATALOG_TOML: &str = include_str!("catalog.toml");

#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("the compiled-in price catalog is invalid: {0}")]
    Invalid(String),
}

/// Per-1M-token rates. `cached_read` / `cache_write` fall back to the input rate when the
/// provider does not bill them separately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongContextTier {
    pub above_input_tokens: u64,
    pub input: Decimal,
    pub output: Decimal,
    #[serde(default)]
    pub cached_read: Option<Decimal>,
    #[serde(default)]
    pub cache_write: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub provider: Provider,
    pub id: String,
    pub display_name: String,
    pub input: Decimal,
    pub output: Decimal,
    #[serde(default)]
    pub cached_read: Option<Decimal>,
    #[serde(default)]
    pub cache_write: Option<Decimal>,
    #[serde(default)]
    pub long_context: Option<LongContextTier>,
    pub context_window: u64,
    pub max_output_tokens: u64,
    pub capabilities: Vec<String>,
    pub effective_date: String,
    pub source: String,
    #[serde(default)]
    pub default: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Recorded on every usage record as `price_version`.
    pub version: String,
    #[serde(rename = "model")]
    pub models: Vec<ModelPrice>,
}

/// Token counts of one call, normalized across providers: `input_tokens` is the whole
/// prompt, of which `cached_input_tokens` were read from the provider's cache and
/// `cache_write_tokens` were written to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCounts {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
}

static CATALOG: LazyLock<Result<Catalog, String>> = LazyLock::new(|| parse(CATALOG_TOML));

fn parse(text: &str) -> Result<Catalog, String> {
    let catalog: Catalog = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut seen = std::collections::HashSet::new();
    for m in &catalog.models {
        if !seen.insert((m.provider, m.id.as_str())) {
            return Err(format!("duplicate model {}/{}", m.provider, m.id));
        }
        let mut rates = vec![Some(m.input), Some(m.output), m.cached_read, m.cache_write];
        if let Some(t) = &m.long_context {
            rates.extend([Some(t.input), Some(t.output), t.cached_read, t.cache_write]);
            if t.above_input_tokens >= m.context_window {
                return Err(format!(
                    "{}/{}: long-context tier starts beyond the context window",
                    m.provider, m.id
                ));
            }
        }
        if rates.iter().flatten().any(|r| r.is_sign_negative()) {
            return Err(format!("negative price for {}/{}", m.provider, m.id));
        }
    }
    for p in Provider::ALL {
        let defaults = catalog
            .models
            .iter()
            .filter(|m| m.provider == p && m.default)
            .count();
        if defaults > 1 {
            return Err(format!("more than one default model for {p}"));
        }
    }
    Ok(catalog)
}

/// The compiled-in catalog. Binaries call this once at start-up so that a broken data
/// file stops the process there, not in a request.
pub fn catalog() -> Result<&'static Catalog, PricingError> {
    CATALOG
        .as_ref()
        .map_err(|e| PricingError::Invalid(e.clone()))
}

/// Where a model id is looked up: the compiled-in catalog, or the registry's enabled
/// entries (what users may pick).
pub trait ModelLookup: Send + Sync {
    /// A model users may pick, by id, optionally within one provider.
    fn find_model(&self, provider: Option<Provider>, model: &str) -> Option<&ModelPrice>;

    /// A chat or an embedding model users may call (an Azure deployment may serve
    /// either).
    fn find_any_model(&self, provider: Option<Provider>, model: &str) -> Option<&ModelPrice> {
        self.find_model(provider, model)
    }
}

impl ModelLookup for Catalog {
    fn find_model(&self, provider: Option<Provider>, model: &str) -> Option<&ModelPrice> {
        self.find(provider, model)
    }
}

impl Catalog {
    /// Looks a model up by id, optionally within one provider.
    pub fn find(&self, provider: Option<Provider>, model: &str) -> Option<&ModelPrice> {
        self.models
            .iter()
            .find(|m| m.id == model && provider.is_none_or(|p| p == m.provider))
    }

    pub fn default_model(&self, provider: Provider) -> Option<&ModelPrice> {
        self.models
            .iter()
            .find(|m| m.provider == provider && m.default)
    }

    /// The exact cost of a call, or `None` when the model's price is unknown.
    pub fn cost(&self, provider: Provider, model: &str, tokens: &TokenCounts) -> Option<NanoUsd> {
        self.find(Some(provider), model)
            .and_then(|m| m.cost(tokens))
    }
}

impl ModelPrice {
    /// `cost = Σ tokens / 1e6 × rate`, exact, rounded once to the nano-dollar.
    pub fn cost(&self, t: &TokenCounts) -> Option<NanoUsd> {
        let tier = self
            .long_context
            .as_ref()
            .filter(|tier| t.input_tokens > tier.above_input_tokens);
        let (input, output, cached_read, cache_write) = match tier {
            Some(tier) => (
                tier.input,
                tier.output,
                tier.cached_read.or(self.cached_read),
                tier.cache_write.or(self.cache_write),
            ),
            None => (self.input, self.output, self.cached_read, self.cache_write),
        };
        let cached = t.cached_input_tokens.min(t.input_tokens);
        let written = t.cache_write_tokens.min(t.input_tokens - cached);
        let uncached = t.input_tokens - cached - written;
        // Checked: `Decimal`'s operators panic on overflow, and a registry price override
        // is admin input. A cost past what nano-USD can hold is no cost (flagged unpriced),
        // never a crash of the request that would have recorded it.
        let terms = [
            (uncached, input),
            (cached, cached_read.unwrap_or(input)),
            (written, cache_write.unwrap_or(input)),
            (t.output_tokens, output),
        ];
        let per_million = terms.iter().try_fold(Decimal::ZERO, |sum, (n, rate)| {
            sum.checked_add(Decimal::from(*n).checked_mul(*rate)?)
        })?;
        NanoUsd::from_decimal_rounded(per_million.checked_div(Decimal::from(1_000_000u32))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(input: u64, output: u64) -> TokenCounts {
        TokenCounts {
            input_tokens: input,
            output_tokens: output,
            ..Default::default()
        }
    }

    #[test]
    fn compiled_catalog_parses_and_has_a_default_for_seed_providers() {
        let c = catalog().unwrap();
        for p in [
            Provider::Anthropic,
            Provider::OpenAi,
            Provider::Google,
            Provider::Bedrock,
        ] {
            assert!(c.default_model(p).is_some(), "{p} has no default model");
        }
    }

    #[test]
    fn a_cost_past_the_decimal_range_is_unpriced_not_a_panic() {
        // Found by the `prices` fuzz target: an admin's price override at Decimal::MAX
        // overflowed the multiplication, which panics.
        let mut m = catalog().unwrap().models[0].clone();
        m.input = Decimal::MAX;
        assert_eq!(m.cost(&counts(2, 0)), None);
        m.input = Decimal::ONE;
        m.output = Decimal::MAX;
        assert_eq!(m.cost(&counts(0, u64::MAX)), None);
    }

    #[test]
    fn spec_worked_example_is_exact() {
        // 1,500 in / 500 out on Claude 3.5 Sonnet at $3 / $15 = $0.0120 exactly.
        let c = catalog().unwrap();
        let cost = c
            .cost(
                Provider::Anthropic,
                "claude-3-5-sonnet-20241022",
                &counts(1500, 500),
            )
            .unwrap();
        assert_eq!(cost, NanoUsd(12_000_000));
        assert_eq!(cost.to_decimal().to_string(), "0.012");
    }

    #[test]
    fn cached_tokens_use_their_own_rates() {
        let c = catalog().unwrap();
        let t = TokenCounts {
            input_tokens: 10_000,
            cached_input_tokens: 8_000,
            cache_write_tokens: 1_000,
            output_tokens: 100,
        };
        // 1,000 uncached × $3 + 8,000 × $0.30 + 1,000 × $3.75 + 100 × $15, per 1M.
        let expected = (1_000 * 3_000) + (8_000 * 300) + (1_000 * 3_750) + (100 * 15_000);
        let cost = c
            .cost(Provider::Anthropic, "claude-3-5-sonnet-20241022", &t)
            .unwrap();
        assert_eq!(cost, NanoUsd(expected));
    }

    #[test]
    fn long_context_tier_applies_above_its_threshold() {
        let c = catalog().unwrap();
        let at = c
            .cost(Provider::Google, "gemini-1.5-pro", &counts(128_000, 1_000))
            .unwrap();
        assert_eq!(at, NanoUsd(128_000 * 3_500 + 1_000 * 10_500));
        let above = c
            .cost(Provider::Google, "gemini-1.5-pro", &counts(128_001, 1_000))
            .unwrap();
        assert_eq!(above, NanoUsd(128_001 * 7_000 + 1_000 * 21_000));
    }

    #[test]
    fn sub_nano_costs_round_half_up_once_per_call() {
        // 1 token at $0.50 / 1M = 500 nano-USD exactly; 1 token of $0.0005 rounds.
        let c = catalog().unwrap();
        let cost = c
            .cost(Provider::OpenAi, "gpt-3.5-turbo", &counts(1, 0))
            .unwrap();
        assert_eq!(cost, NanoUsd(500));
    }

    #[test]
    fn unknown_model_has_no_price() {
        let c = catalog().unwrap();
        assert_eq!(c.cost(Provider::OpenAi, "gpt-unknown", &counts(1, 1)), None);
        // A model id is only priced under its own provider.
        assert_eq!(
            c.cost(
                Provider::OpenAi,
                "claude-3-5-sonnet-20241022",
                &counts(1, 1)
            ),
            None
        );
    }

    #[test]
    fn broken_catalogs_are_refused() {
        assert!(parse("version = \"x\"\n[[model]]\nprovider = \"nope\"").is_err());
        let dup = format!("version = \"x\"\n{0}\n{0}", ONE_MODEL);
        assert!(parse(&dup).unwrap_err().contains("duplicate"));
    }

    #[test]
    fn every_builtin_provider_has_exactly_one_default() {
        let c = catalog().unwrap();
        for p in Provider::ALL {
            let n = c
                .models
                .iter()
                .filter(|m| m.provider == p && m.default)
                .count();
            assert_eq!(n, 1, "{p} must have exactly one default model");
            assert!(c.default_model(p).is_some(), "{p} has no default model");
        }
    }

    #[test]
    fn every_row_has_an_https_source_and_a_calendar_effective_date() {
        let c = catalog().unwrap();
        for m in &c.models {
            assert!(
                m.source.starts_with("https://") && m.source.len() > "https://".len(),
                "{}/{}: source {:?} is not an https URL",
                m.provider,
                m.id,
                m.source
            );
            assert_eq!(m.effective_date.len(), 10, "{}/{}", m.provider, m.id);
            assert!(
                chrono::NaiveDate::parse_from_str(&m.effective_date, "%Y-%m-%d").is_ok(),
                "{}/{}: effective_date {:?} is not YYYY-MM-DD",
                m.provider,
                m.id,
                m.effective_date
            );
        }
    }

    #[test]
    fn seed_defaults_are_unchanged() {
        let c = catalog().unwrap();
        let id = |p| c.default_model(p).unwrap().id.as_str();
        assert_eq!(id(Provider::Anthropic), "claude-3-5-sonnet-20241022");
        assert_eq!(id(Provider::OpenAi), "gpt-4-turbo");
        assert_eq!(id(Provider::Google), "gemini-1.5-pro");
        assert_eq!(
            id(Provider::Bedrock),
            "anthropic.claude-3-5-sonnet-20241022-v2:0"
        );
    }

    // Hand-calculated costs. A rate of $R per 1M tokens is R × 1,000 nano-USD per token.

    #[test]
    fn claude_sonnet_4_cache_read_and_write() {
        let c = catalog().unwrap();
        let t = TokenCounts {
            input_tokens: 20_000,
            cached_input_tokens: 15_000,
            cache_write_tokens: 2_000,
            output_tokens: 700,
        };
        // 3,000 × $3 + 15,000 × $0.30 + 2,000 × $3.75 + 700 × $15.
        let expected = 3_000 * 3_000 + 15_000 * 300 + 2_000 * 3_750 + 700 * 15_000;
        assert_eq!(expected, 31_500_000);
        let cost = c
            .cost(Provider::Anthropic, "claude-sonnet-4-20250514", &t)
            .unwrap();
        assert_eq!(cost, NanoUsd(expected));
    }

    #[test]
    fn claude_sonnet_4_long_context_above_200k() {
        let c = catalog().unwrap();
        let at = c
            .cost(
                Provider::Anthropic,
                "claude-sonnet-4-20250514",
                &counts(200_000, 1_000),
            )
            .unwrap();
        assert_eq!(at, NanoUsd(200_000 * 3_000 + 1_000 * 15_000));
        let t = TokenCounts {
            input_tokens: 250_000,
            cached_input_tokens: 100_000,
            cache_write_tokens: 0,
            output_tokens: 2_000,
        };
        // Whole request at $6 / $22.50, cache reads at $0.60.
        let expected = 150_000 * 6_000 + 100_000 * 600 + 2_000 * 22_500;
        assert_eq!(expected, 1_005_000_000);
        let above = c
            .cost(Provider::Anthropic, "claude-sonnet-4-20250514", &t)
            .unwrap();
        assert_eq!(above, NanoUsd(expected));
    }

    #[test]
    fn gemini_2_5_pro_long_context_with_cache() {
        let c = catalog().unwrap();
        let at = c
            .cost(Provider::Google, "gemini-2.5-pro", &counts(200_000, 2_000))
            .unwrap();
        assert_eq!(at, NanoUsd(200_000 * 1_250 + 2_000 * 10_000));
        let t = TokenCounts {
            input_tokens: 300_000,
            cached_input_tokens: 100_000,
            cache_write_tokens: 0,
            output_tokens: 2_000,
        };
        // 200,000 × $2.50 + 100,000 × $0.25 + 2,000 × $15.
        let expected = 200_000 * 2_500 + 100_000 * 250 + 2_000 * 15_000;
        assert_eq!(expected, 555_000_000);
        let above = c.cost(Provider::Google, "gemini-2.5-pro", &t).unwrap();
        assert_eq!(above, NanoUsd(expected));
    }

    #[test]
    fn openai_cached_input() {
        let c = catalog().unwrap();
        let t = TokenCounts {
            input_tokens: 10_000,
            cached_input_tokens: 4_000,
            cache_write_tokens: 0,
            output_tokens: 1_000,
        };
        // gpt-4.1-mini: 6,000 × $0.40 + 4,000 × $0.10 + 1,000 × $1.60.
        let expected = 6_000 * 400 + 4_000 * 100 + 1_000 * 1_600;
        assert_eq!(expected, 4_400_000);
        let cost = c.cost(Provider::OpenAi, "gpt-4.1-mini", &t).unwrap();
        assert_eq!(cost, NanoUsd(expected));
    }

    #[test]
    fn deepseek_cache_hit() {
        let c = catalog().unwrap();
        let t = TokenCounts {
            input_tokens: 100_000,
            cached_input_tokens: 90_000,
            cache_write_tokens: 0,
            output_tokens: 1_000,
        };
        // 10,000 misses × $0.28 + 90,000 hits × $0.028 + 1,000 × $0.42.
        let expected = 10_000 * 280 + 90_000 * 28 + 1_000 * 420;
        assert_eq!(expected, 5_740_000);
        let cost = c.cost(Provider::DeepSeek, "deepseek-chat", &t).unwrap();
        assert_eq!(cost, NanoUsd(expected));
    }

    #[test]
    fn bedrock_nova_micro_cache_read_is_exact_to_the_nano() {
        let c = catalog().unwrap();
        let t = TokenCounts {
            input_tokens: 1_000,
            cached_input_tokens: 400,
            cache_write_tokens: 0,
            output_tokens: 100,
        };
        // $0.00875 is 8.75 nano-USD per token: 400 × 8.75 = 3,500 exactly.
        let expected = 600 * 35 + 400 * 875 / 100 + 100 * 140;
        assert_eq!(expected, 38_500);
        let cost = c
            .cost(Provider::Bedrock, "amazon.nova-micro-v1:0", &t)
            .unwrap();
        assert_eq!(cost, NanoUsd(expected));
    }

    #[test]
    fn bedrock_claude_3_5_haiku_cache_prices() {
        let c = catalog().unwrap();
        let t = TokenCounts {
            input_tokens: 5_000,
            cached_input_tokens: 3_000,
            cache_write_tokens: 1_000,
            output_tokens: 200,
        };
        // 1,000 × $0.80 + 3,000 × $0.08 + 1,000 × $1 + 200 × $4.
        let expected = 1_000 * 800 + 3_000 * 80 + 1_000 * 1_000 + 200 * 4_000;
        let cost = c
            .cost(
                Provider::Bedrock,
                "anthropic.claude-3-5-haiku-20241022-v1:0",
                &t,
            )
            .unwrap();
        assert_eq!(cost, NanoUsd(expected));
    }

    #[test]
    fn ollama_local_models_cost_exactly_zero() {
        let c = catalog().unwrap();
        let cost = c
            .cost(Provider::Ollama, "llama3.2", &counts(1_000_000, 1_000_000))
            .unwrap();
        assert_eq!(cost, NanoUsd::ZERO);
    }

    #[test]
    fn long_context_cache_writes_use_the_tier_rate() {
        // Claude Sonnet 4 above 200k input: cache writes at $7.50 (1.25 x $6), not $3.75.
        let c = catalog().unwrap();
        let t = TokenCounts {
            input_tokens: 300_000,
            cached_input_tokens: 0,
            cache_write_tokens: 100_000,
            output_tokens: 0,
        };
        let cost = c
            .cost(Provider::Anthropic, "claude-sonnet-4-20250514", &t)
            .unwrap();
        assert_eq!(cost, NanoUsd(200_000 * 6_000 + 100_000 * 7_500));
    }

    #[test]
    fn tier_rates_are_validated() {
        let bad = format!(
            "version = \"x\"\n{ONE_MODEL}\nlong_context = {{ above_input_tokens = 0, input = \"-1\", output = \"1\" }}"
        );
        assert!(parse(&bad).is_err());
    }

    const ONE_MODEL: &str = r#"[[model]]
provider = "openai"
id = "m"
display_name = "M"
input = "1"
output = "2"
context_window = 1
max_output_tokens = 1
capabilities = []
effective_date = "2024-01-01"
source = "x""#;
}
