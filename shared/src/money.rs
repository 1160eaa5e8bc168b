//! Money as integers. Sums are nano-USD (`i64`), rates are exact decimals; `f64` appears
//! only at the JSON edge, for display, and never takes part in arithmetic.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::str::FromStr;

/// Nano-USD per USD.
pub const NANOS_PER_USD: i64 = 1_000_000_000;

/// An amount of US dollars held as whole nano-dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NanoUsd(pub i64);

impl NanoUsd {
    pub const ZERO: NanoUsd = NanoUsd(0);

    /// The exact decimal value in dollars.
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, 9).normalize()
    }

    /// Converts an exact dollar amount, refusing anything finer than a nano-dollar or
    /// outside `i64` so that no value is silently rounded.
    pub fn from_decimal_exact(usd: Decimal) -> Option<NanoUsd> {
        let nanos = usd.checked_mul(Decimal::from(NANOS_PER_USD))?;
        if nanos.fract() != Decimal::ZERO {
            return None;
        }
        nanos.to_i64().map(NanoUsd)
    }

    /// Rounds a dollar amount half-up (away from zero) to whole nano-dollars.
    pub fn from_decimal_rounded(usd: Decimal) -> Option<NanoUsd> {
        let nanos = usd.checked_mul(Decimal::from(NANOS_PER_USD))?;
        nanos
            .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
            .to_i64()
            .map(NanoUsd)
    }

    pub fn checked_add(self, other: NanoUsd) -> Option<NanoUsd> {
        self.0.checked_add(other.0).map(NanoUsd)
    }
}

/// Serialized as a JSON number of dollars (`0.012`), the shape frontends expect. The
/// float is produced from the exact decimal only for display.
impl Serialize for NanoUsd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.to_decimal().to_f64() {
            Some(f) => serializer.serialize_f64(f),
            None => Err(serde::ser::Error::custom("amount out of range")),
        }
    }
}

/// Parsed from a JSON number of dollars. The number's shortest round-trip text is the
/// decimal the client wrote (`50.1` stays `50.1`), which is then converted exactly.
impl<'de> Deserialize<'de> for NanoUsd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let number = serde_json::Number::deserialize(deserializer)?;
        let text = number.to_string();
        let usd = Decimal::from_str(&text)
            .or_else(|_| Decimal::from_scientific(&text))
            .map_err(|_| serde::de::Error::custom("must be a decimal amount of USD"))?;
        NanoUsd::from_decimal_exact(usd)
            .ok_or_else(|| serde::de::Error::custom("must have at most 9 decimal places"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_decimals_without_float_drift() {
        let v: NanoUsd = serde_json::from_str("50.1").unwrap();
        assert_eq!(v, NanoUsd(50_100_000_000));
        let v: NanoUsd = serde_json::from_str("0.000000001").unwrap();
        assert_eq!(v, NanoUsd(1));
        let v: NanoUsd = serde_json::from_str("50").unwrap();
        assert_eq!(v, NanoUsd(50 * NANOS_PER_USD));
        assert!(serde_json::from_str::<NanoUsd>("0.0000000001").is_err());
        assert!(serde_json::from_str::<NanoUsd>("\"5\"").is_err());
    }

    #[test]
    fn serializes_as_dollars() {
        assert_eq!(
            serde_json::to_string(&NanoUsd(12_000_000)).unwrap(),
            "0.012"
        );
        assert_eq!(
            serde_json::to_string(&NanoUsd(50 * NANOS_PER_USD)).unwrap(),
            "50.0"
        );
    }

    #[test]
    fn rounding_is_half_up() {
        let d = Decimal::from_str("0.0000000005").unwrap();
        assert_eq!(NanoUsd::from_decimal_rounded(d), Some(NanoUsd(1)));
        let d = Decimal::from_str("0.00000000049").unwrap();
        assert_eq!(NanoUsd::from_decimal_rounded(d), Some(NanoUsd(0)));
    }
}
