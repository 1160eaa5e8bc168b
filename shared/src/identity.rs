//! Who is calling. Two sources, chosen per deployment and never mixed:
//! - on AWS, the claims that API Gateway's JWT authorizer already verified, read from the
//!   Lambda request context (`sub` is the user id; admin is a group claim);
//! - locally, a bearer token issued by `llm-local token create`, of which only the
//!   SHA-256 is stored.

use crate::store::{StoreError, TokenRecord, TokenStore};
use base64::Engine;
use sha2::{Digest, Sha256};

pub const DEFAULT_ADMIN_CLAIM: &str = "cognito:groups";
pub const DEFAULT_ADMIN_GROUP: &str = "llm-admin";
const TOKEN_PREFIX: &str = "llmk_";

/// The authenticated caller, as handlers receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub is_admin: bool,
}

/// The caller may not act on the resource: answered `403`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not allowed to act on this resource")]
pub struct Forbidden;

impl Caller {
    /// A caller may act on `user_id` when it is their own, or when they are admin.
    pub fn authorize_user(&self, user_id: &str) -> Result<(), Forbidden> {
        if self.is_admin || self.user_id == user_id {
            Ok(())
        } else {
            Err(Forbidden)
        }
    }

    pub fn require_admin(&self) -> Result<(), Forbidden> {
        if self.is_admin {
            Ok(())
        } else {
            Err(Forbidden)
        }
    }
}

#[derive(Clone)]
pub enum IdentityMode {
    /// Bearer tokens checked against the token store (the local shape only).
    LocalTokens(std::sync::Arc<dyn TokenStore>),
    /// JWT authorizer claims from the API Gateway HTTP API request context.
    ApiGatewayJwt {
        admin_claim: String,
        admin_group: String,
    },
}

impl IdentityMode {
    pub fn api_gateway(admin_claim: Option<String>, admin_group: Option<String>) -> Self {
        IdentityMode::ApiGatewayJwt {
            admin_claim: admin_claim.unwrap_or_else(|| DEFAULT_ADMIN_CLAIM.into()),
            admin_group: admin_group.unwrap_or_else(|| DEFAULT_ADMIN_GROUP.into()),
        }
    }
}

/// Reads the caller from verified JWT claims. `None` when there is no usable `sub`.
pub fn caller_from_claims(
    claims: &std::collections::HashMap<String, String>,
    admin_claim: &str,
    admin_group: &str,
) -> Option<Caller> {
    let user_id = claims.get("sub").filter(|s| valid_user_id(s))?.clone();
    let is_admin = claims
        .get(admin_claim)
        .is_some_and(|groups| parse_groups(groups).any(|g| g == admin_group));
    Some(Caller { user_id, is_admin })
}

/// API Gateway flattens array claims into strings: `"[llm-admin]"`, `"[a b]"`. A JSON
/// array string (`["a","b"]`) or a comma list is accepted too.
pub fn parse_groups(raw: &str) -> impl Iterator<Item = &str> {
    raw.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(|c: char| c.is_whitespace() || c == ',')
        .map(|g| g.trim_matches('"'))
        .filter(|g| !g.is_empty())
}

/// User ids appear in paths and secret names: non-empty, bounded, printable, no `/`.
pub fn valid_user_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && c != '/')
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Issues a new local bearer token for `user_id` and stores only its hash. The token
/// carries 256 random bits, so a fast hash is enough to make the stored value useless.
pub async fn issue_token(
    store: &dyn TokenStore,
    user_id: &str,
    is_admin: bool,
) -> Result<String, IssueError> {
    if !valid_user_id(user_id) {
        return Err(IssueError::InvalidUser);
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| IssueError::Random(e.to_string()))?;
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    store
        .put_token(&TokenRecord {
            token_hash: hash_token(&token),
            user_id: user_id.to_owned(),
            is_admin,
            created_at: chrono::Utc::now(),
        })
        .await?;
    Ok(token)
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("user id must be 1-128 printable characters without spaces or '/'")]
    InvalidUser,
    #[error("no randomness available: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Positive token lookups kept in memory, so a request does not pay a store read to
/// authenticate. Tokens cannot be revoked today; a revocation command must clear this.
/// Unknown tokens are never cached, so guessing cannot fill it.
pub struct CachedTokens {
    inner: std::sync::Arc<dyn TokenStore>,
    ttl: std::time::Duration,
    known: std::sync::Mutex<std::collections::HashMap<String, (TokenRecord, std::time::Instant)>>,
}

impl CachedTokens {
    pub fn new(inner: std::sync::Arc<dyn TokenStore>, ttl: std::time::Duration) -> Self {
        CachedTokens {
            inner,
            ttl,
            known: Default::default(),
        }
    }
}

#[async_trait::async_trait]
impl TokenStore for CachedTokens {
    async fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        self.inner.put_token(token).await
    }

    async fn get_token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((record, at)) = known.get(token_hash) {
                if at.elapsed() < self.ttl {
                    return Ok(Some(record.clone()));
                }
            }
        }
        let found = self.inner.get_token(token_hash).await?;
        if let Some(record) = &found {
            let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            if known.len() > 10_000 {
                let ttl = self.ttl;
                known.retain(|_, (_, at)| at.elapsed() < ttl);
            }
            known.insert(
                token_hash.to_owned(),
                (record.clone(), std::time::Instant::now()),
            );
        }
        Ok(found)
    }
}

/// Looks a presented bearer token up. Unknown tokens are `None`.
pub async fn caller_from_token(
    store: &dyn TokenStore,
    token: &str,
) -> Result<Option<Caller>, StoreError> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
        return Ok(None);
    }
    Ok(store.get_token(&hash_token(token)).await?.map(|t| Caller {
        user_id: t.user_id,
        is_admin: t.is_admin,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use std::collections::HashMap;

    #[test]
    fn cognito_group_strings() {
        assert_eq!(
            parse_groups("[llm-admin]").collect::<Vec<_>>(),
            ["llm-admin"]
        );
        assert_eq!(
            parse_groups("[a llm-admin]").collect::<Vec<_>>(),
            ["a", "llm-admin"]
        );
        assert_eq!(
            parse_groups("[\"a\",\"b\"]").collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(parse_groups("[]").count(), 0);
    }

    #[test]
    fn claims_to_caller() {
        let claims: HashMap<String, String> = [
            ("sub".to_string(), "user-1".to_string()),
            (
                "cognito:groups".to_string(),
                "[readers llm-admin]".to_string(),
            ),
        ]
        .into();
        let c = caller_from_claims(&claims, DEFAULT_ADMIN_CLAIM, DEFAULT_ADMIN_GROUP).unwrap();
        assert_eq!(
            c,
            Caller {
                user_id: "user-1".into(),
                is_admin: true
            }
        );
        // A group that merely contains the admin name is not the admin group.
        let claims: HashMap<String, String> = [
            ("sub".to_string(), "user-1".to_string()),
            ("cognito:groups".to_string(), "[not-llm-admin]".to_string()),
        ]
        .into();
        assert!(
            !caller_from_claims(&claims, DEFAULT_ADMIN_CLAIM, DEFAULT_ADMIN_GROUP)
                .unwrap()
                .is_admin
        );
        assert!(
            caller_from_claims(&HashMap::new(), DEFAULT_ADMIN_CLAIM, DEFAULT_ADMIN_GROUP).is_none()
        );
    }

    #[tokio::test]
    async fn tokens_are_stored_hashed_and_resolve() {
        let store = SqliteStore::open_in_memory().unwrap();
        let token = issue_token(&store, "alice", false).await.unwrap();
        assert!(
            store.get_token(&token).await.unwrap().is_none(),
            "plaintext must not be a key"
        );
        let caller = caller_from_token(&store, &token).await.unwrap().unwrap();
        assert_eq!(
            caller,
            Caller {
                user_id: "alice".into(),
                is_admin: false
            }
        );
        assert!(
            caller_from_token(&store, "llmk_forged")
                .await
                .unwrap()
                .is_none()
        );
        assert!(issue_token(&store, "a/b", false).await.is_err());
    }

    #[tokio::test]
    async fn the_token_cache_answers_like_the_store() {
        let store = std::sync::Arc::new(SqliteStore::open_in_memory().unwrap());
        let cached = CachedTokens::new(store.clone(), std::time::Duration::from_secs(60));
        let token = issue_token(&cached, "alice", true).await.unwrap();
        for _ in 0..2 {
            let c = caller_from_token(&cached, &token).await.unwrap().unwrap();
            assert_eq!(
                c,
                Caller {
                    user_id: "alice".into(),
                    is_admin: true
                }
            );
        }
        assert!(
            caller_from_token(&cached, "llmk_unknown")
                .await
                .unwrap()
                .is_none()
        );
        crate::store::conformance::tokens_suite(&cached).await;
    }
}
