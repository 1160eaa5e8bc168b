//! `nextToken`: an opaque cursor bound to the user and the query that produced it. It
//! carries the last sort key returned, and an HMAC over it, the user and the query's
//! filters, so a token replayed against another user or another filter, or edited, is
//! refused (400) instead of silently paging through something else.

use super::UsageError;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl TokenKey {
    pub fn new(key: &[u8]) -> Self {
        TokenKey(key.to_vec())
    }

    fn mac(&self, user: &str, query: &str, cursor: &str) -> Option<HmacSha256> {
        let mut mac = HmacSha256::new_from_slice(&self.0).ok()?;
        for part in [user, query, cursor] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        Some(mac)
    }

    pub fn seal(&self, user: &str, query: &str, cursor: &str) -> String {
        let tag = self
            .mac(user, query, cursor)
            .map(|m| m.finalize().into_bytes().to_vec())
            .unwrap_or_default();
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}", engine.encode(cursor), engine.encode(tag))
    }

    pub fn open(&self, user: &str, query: &str, token: &str) -> Result<String, UsageError> {
        let bad = || UsageError::invalid("nextToken", "is not a token from this query");
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (c, t) = token.split_once('.').ok_or_else(bad)?;
        let cursor = String::from_utf8(engine.decode(c).map_err(|_| bad())?).map_err(|_| bad())?;
        let tag = engine.decode(t).map_err(|_| bad())?;
        let mac = self.mac(user, query, &cursor).ok_or_else(bad)?;
        mac.verify_slice(&tag).map_err(|_| bad())?;
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_user_and_query() {
        let k = TokenKey::new(b"secret");
        let t = k.seal("alice", "provider=openai", "2026-11-20T10:00:00.000Z#req-1");
        assert_eq!(
            k.open("alice", "provider=openai", &t).unwrap(),
            "2026-11-20T10:00:00.000Z#req-1"
        );
        assert!(k.open("bob", "provider=openai", &t).is_err());
        assert!(k.open("alice", "provider=google", &t).is_err());
        assert!(
            TokenKey::new(b"other")
                .open("alice", "provider=openai", &t)
                .is_err()
        );
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (_, tag) = t.split_once('.').unwrap();
        let forged = format!("{}.{tag}", engine.encode("2099-01-01#x"));
        assert!(k.open("alice", "provider=openai", &forged).is_err());
        assert!(k.open("alice", "provider=openai", "garbage").is_err());
    }
}
