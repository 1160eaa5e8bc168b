//! The price arithmetic: for any token counts and rates a registry entry may hold, the
//! cost is exact (checked against integer arithmetic), grows with every token, and past
//! what the counters hold it is no cost, never a panic or a wrapped number.

use crate::Bytes;
use rust_decimal::Decimal;
use shared::money::NanoUsd;
use shared::pricing::{ModelPrice, TokenCounts};
use shared::registry::input::MAX_RATE_USD;

fn model(rates: [Decimal; 4]) -> Option<ModelPrice> {
    let mut m = shared::pricing::catalog().ok()?.models.first()?.clone();
    m.input = rates[0];
    m.output = rates[1];
    m.cached_read = Some(rates[2]);
    m.cache_write = Some(rates[3]);
    m.long_context = None;
    Some(m)
}

/// The cost in nano-USD from integers alone: rates are `mantissa / 10^6` USD per 1M
/// tokens, so a term is `tokens × mantissa / 10^12` USD, `/ 10^3` nano-USD.
fn exact(t: &TokenCounts, mantissas: [u64; 4]) -> Option<i64> {
    let cached = t.cached_input_tokens.min(t.input_tokens);
    let written = t.cache_write_tokens.min(t.input_tokens - cached);
    let uncached = t.input_tokens - cached - written;
    let sum: i128 = [
        (uncached, mantissas[0]),
        (t.output_tokens, mantissas[1]),
        (cached, mantissas[2]),
        (written, mantissas[3]),
    ]
    .iter()
    .map(|(n, m)| i128::from(*n) * i128::from(*m))
    .sum();
    // Half away from zero, as the gateway rounds.
    let nanos = (sum + 500) / 1000;
    i64::try_from(nanos).ok()
}

pub fn prices(data: &[u8]) {
    let mut b = Bytes::new(data);
    // Registry-accepted rates with up to 6 decimals, token counts up to 2^40.
    let max = u64::try_from(MAX_RATE_USD.mantissa()).unwrap_or(0) * 1_000_000;
    let mantissas = [b.u64(), b.u64(), b.u64(), b.u64()].map(|m| m % (max + 1));
    let mut t = TokenCounts {
        input_tokens: b.u64() >> 24,
        output_tokens: b.u64() >> 24,
        cached_input_tokens: b.u64() >> 24,
        cache_write_tokens: b.u64() >> 24,
    };
    let Some(m) = model(mantissas.map(|x| Decimal::new(x as i64, 6))) else {
        return;
    };
    let got = m.cost(&t);
    let want = exact(&t, mantissas);
    if got.map(|c| c.0) != want {
        panic!("cost of {t:?} at {mantissas:?} (1e-6 USD per 1M) is {got:?}, exactly {want:?}");
    }
    // One more output token never costs less.
    t.output_tokens += 1;
    if let (Some(before), Some(after)) = (got, m.cost(&t))
        && after < before
    {
        panic!("one more output token made {t:?} cheaper: {before:?} -> {after:?}");
    }
    // Any rate at all, any count: a cost or none, never a panic.
    let wild = [0u8; 4].map(|_| {
        let (lo, mid, hi) = (b.u64() as u32, b.u64() as u32, b.u64() as u32);
        Decimal::from_parts(lo, mid, hi, false, u32::from(b.u8() % 29))
    });
    if let Some(m) = model(wild) {
        let t = TokenCounts {
            input_tokens: b.u64(),
            output_tokens: b.u64(),
            cached_input_tokens: b.u64(),
            cache_write_tokens: b.u64(),
        };
        let _: Option<NanoUsd> = m.cost(&t);
    }
}
