//! Budget arithmetic for one request: the worst case it may cost (reserved before the
//! call), and the once-a-month threshold alerts after it.

use crate::money::NanoUsd;
use crate::pricing::{ModelPrice, TokenCounts};
use crate::providers::ChatRequest;

/// The most tokens one image can be billed as. The largest published figure is OpenAI's
/// gpt-4o-mini at high detail (2,833 base + 5,667 a tile, up to 6 tiles: 36,835 tokens);
/// Anthropic caps an image near 1,600 and Gemini bills 258 a tile.
pub const IMAGE_TOKEN_CEILING: u64 = 40_000;

/// The most this request can cost: every byte of the prompt (text, tool definitions,
/// schema) counted as a token (a token is at least one byte, so this never
/// underestimates), each image at [`IMAGE_TOKEN_CEILING`], and `max_tokens` of output.
pub fn worst_case(model: &ModelPrice, request: &ChatRequest) -> Option<NanoUsd> {
    let text = u64::try_from(request.prompt_bytes()).unwrap_or(u64::MAX);
    let images = u64::try_from(request.image_count())
        .unwrap_or(u64::MAX)
        .saturating_mul(IMAGE_TOKEN_CEILING);
    model.cost(&TokenCounts {
        input_tokens: text.saturating_add(images),
        output_tokens: u64::from(request.max_tokens),
        cached_input_tokens: 0,
        cache_write_tokens: 0,
    })
}

/// The thresholds (percent of `limit`) that `spent` has reached.
pub fn reached(thresholds: &[u32], spent: NanoUsd, limit: NanoUsd) -> Vec<u32> {
    if limit.0 <= 0 {
        return thresholds.to_vec();
    }
    thresholds
        .iter()
        .copied()
        .filter(|t| i128::from(spent.0) * 100 >= i128::from(*t) * i128::from(limit.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::catalog;
    use crate::provider::Provider;
    use crate::providers::{Message, Role};

    #[test]
    fn worst_case_bounds_the_real_cost() {
        let c = catalog().unwrap();
        let m = c
            .find(Some(Provider::Anthropic), "claude-3-5-sonnet-20241022")
            .unwrap();
        let req = ChatRequest {
            model: m.id.clone(),
            system: None,
            messages: vec![Message::text(Role::User, "x".repeat(96))],
            max_tokens: 100,
            temperature: None,
            stream: false,
            ..ChatRequest::default()
        };
        // 100 bytes of prompt at $3/M + 100 output tokens at $15/M.
        assert_eq!(
            worst_case(m, &req),
            Some(NanoUsd(100 * 3_000 + 100 * 15_000))
        );
    }

    #[test]
    fn thresholds_reached_exactly() {
        let limit = NanoUsd(50_000_000_000);
        assert_eq!(
            reached(&[50, 80, 100], NanoUsd(24_999_999_999), limit),
            Vec::<u32>::new()
        );
        assert_eq!(
            reached(&[50, 80, 100], NanoUsd(25_000_000_000), limit),
            vec![50]
        );
        assert_eq!(
            reached(&[50, 80, 100], NanoUsd(50_000_000_000), limit),
            vec![50, 80, 100]
        );
    }
}
