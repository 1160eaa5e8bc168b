//! The redacting key type. A provider API key lives in memory only as [`ApiKey`], whose
//! `Debug`, `Display` and `Serialize` print `*****`, and whose buffer is zeroed on drop.
//! The one way to the plaintext is [`ApiKey::expose`], called where a key is encrypted or
//! put into an upstream request header.

use serde::{Serialize, Serializer};
use std::fmt;
use zeroize::Zeroizing;

pub const REDACTED: &str = "*****";

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(Zeroizing<String>);

impl ApiKey {
    pub fn new(key: String) -> Self {
        ApiKey(Zeroizing::new(key))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of this key, and of each long part of a paired key
    /// (Bedrock's `<access key id>:<secret>`), replaced by `*****`. For provider text
    /// that is logged: a provider may quote what it was sent.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        let whole = self.expose();
        if !whole.is_empty() {
            out = out.replace(whole, REDACTED);
        }
        for part in whole.split(':').filter(|p| p.len() >= 16 && *p != whole) {
            out = out.replace(part, REDACTED);
        }
        out
    }

    /// The hint shown to users: an ellipsis and the last four characters.
    pub fn hint(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
        format!("…{tail}")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for ApiKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_key() {
        let key = ApiKey::new("sk-ant-api03-supersecretvalue-f3Qa".into());
        assert_eq!(format!("{key}"), REDACTED);
        assert_eq!(format!("{key:?}"), REDACTED);
        assert_eq!(format!("{:?}", Some(&key)), "Some(*****)");
        assert_eq!(serde_json::to_string(&key).unwrap(), "\"*****\"");
        assert_eq!(key.hint(), "…f3Qa");
        assert_eq!(key.expose(), "sk-ant-api03-supersecretvalue-f3Qa");
    }

    #[test]
    fn scrub_removes_the_key_and_the_parts_of_a_pair() {
        let key = ApiKey::new("sk-ant-api03-supersecretvalue-f3Qa".into());
        assert_eq!(
            key.scrub("bad key sk-ant-api03-supersecretvalue-f3Qa!"),
            "bad key *****!"
        );
        let pair = ApiKey::new(format!("AKIAIOSFODNN7EXAMPLE:{}", "s".repeat(40)));
        let text = format!("id AKIAIOSFODNN7EXAMPLE, secret {}", "s".repeat(40));
        assert_eq!(pair.scrub(&text), "id *****, secret *****");
        assert_eq!(pair.scrub("nothing here"), "nothing here");
    }
}
