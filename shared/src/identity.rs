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
pub const DEFAULT_TENANT_CLAIM: &str = "custom:tenant";
pub const DEFAULT_TENANT_ADMIN_GROUP: &str = "llm-tenant-admin";
const TOKEN_PREFIX: &str = "llmk_";

/// The authenticated caller, as handlers receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub is_admin: bool,
    /// The one tenant the caller belongs to, if any.
    pub tenant_id: Option<String>,
    /// An admin of that tenant.
    pub is_tenant_admin: bool,
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

    /// `/api/tenants/{tenantId}/*` reads: the tenant's members and admins, and global
    /// admins.
    pub fn authorize_tenant_read(&self, tenant_id: &str) -> Result<(), Forbidden> {
        if self.is_admin || self.tenant_id.as_deref() == Some(tenant_id) {
            Ok(())
        } else {
            Err(Forbidden)
        }
    }

    /// Tenant writes: the tenant's admins and global admins (members read only).
    pub fn authorize_tenant_write(&self, tenant_id: &str) -> Result<(), Forbidden> {
        if self.is_admin || (self.is_tenant_admin && self.tenant_id.as_deref() == Some(tenant_id)) {
            Ok(())
        } else {
            Err(Forbidden)
        }
    }

    /// The tenant whose keys and preferences a request for `user_id` inherits: the
    /// caller's own, when the caller acts for themself. A global admin acting for another
    /// user does not know that user's tenant (it lives in their token), so inherits none.
    pub fn tenant_for(&self, user_id: &str) -> Option<String> {
        (self.user_id == user_id)
            .then(|| self.tenant_id.clone())
            .flatten()
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
    ApiGatewayJwt(ClaimNames),
}

/// Which JWT claims say what: admin and tenant-admin are groups in `admin_claim`
/// (Cognito's `cognito:groups`), the tenant is the claim `tenant_claim`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub admin_claim: String,
    pub admin_group: String,
    pub tenant_claim: String,
    pub tenant_admin_group: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            admin_claim: DEFAULT_ADMIN_CLAIM.into(),
            admin_group: DEFAULT_ADMIN_GROUP.into(),
            tenant_claim: DEFAULT_TENANT_CLAIM.into(),
            tenant_admin_group: DEFAULT_TENANT_ADMIN_GROUP.into(),
        }
    }
}

impl IdentityMode {
    /// The JWT identity with the default claim names, or those given.
    pub fn api_gateway(admin_claim: Option<String>, admin_group: Option<String>) -> Self {
        let d = ClaimNames::default();
        IdentityMode::ApiGatewayJwt(ClaimNames {
            admin_claim: admin_claim.unwrap_or(d.admin_claim),
            admin_group: admin_group.unwrap_or(d.admin_group),
            ..d
        })
    }

    /// Sets the tenant claim and tenant-admin group of a JWT identity.
    pub fn with_tenants(
        self,
        tenant_claim: Option<String>,
        tenant_admin_group: Option<String>,
    ) -> Self {
        match self {
            IdentityMode::ApiGatewayJwt(names) => IdentityMode::ApiGatewayJwt(ClaimNames {
                tenant_claim: tenant_claim.unwrap_or(names.tenant_claim),
                tenant_admin_group: tenant_admin_group.unwrap_or(names.tenant_admin_group),
                ..names
            }),
            local => local,
        }
    }
}

/// Reads the caller from verified JWT claims. `None` when there is no usable `sub`. A
/// tenant claim that is not a valid id is ignored (the caller has no tenant), never
/// trusted in part.
pub fn caller_from_claims(
    claims: &std::collections::HashMap<String, String>,
    names: &ClaimNames,
) -> Option<Caller> {
    let user_id = claims.get("sub").filter(|s| valid_user_id(s))?.clone();
    let in_group = |group: &str| {
        claims
            .get(&names.admin_claim)
            .is_some_and(|groups| parse_groups(groups).any(|g| g == group))
    };
    let tenant_id = claims
        .get(&names.tenant_claim)
        .filter(|t| valid_tenant_id(t))
        .cloned();
    Some(Caller {
        is_admin: in_group(&names.admin_group),
        is_tenant_admin: tenant_id.is_some() && in_group(&names.tenant_admin_group),
        tenant_id,
        user_id,
    })
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

/// A tenant's settings, keys, budget counters and usage rollups are stored under this
/// owner id, beside users' own: a user id never contains `/`, so no user can be a
/// tenant's owner id, and every store and the vault serve both unchanged.
pub const TENANT_OWNER_PREFIX: &str = "tenant/";

pub fn tenant_owner(tenant_id: &str) -> String {
    format!("{TENANT_OWNER_PREFIX}{tenant_id}")
}

/// Tenant ids follow the rules of user ids (they appear in paths and secret names);
/// `global` is the registry's scope of entries every tenant sees, so it names no tenant.
pub fn valid_tenant_id(id: &str) -> bool {
    valid_user_id(id) && id != crate::store::GLOBAL_SCOPE
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
    let spec = NewToken {
        user_id,
        is_admin,
        tenant_id: None,
        is_tenant_admin: false,
        expires_at: None,
    };
    issue(store, &spec).await
}

/// What a new local token says about its caller.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub user_id: &'a str,
    pub is_admin: bool,
    pub tenant_id: Option<&'a str>,
    pub is_tenant_admin: bool,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Issues a new local bearer token as `spec` says and stores only its hash.
pub async fn issue(store: &dyn TokenStore, spec: &NewToken<'_>) -> Result<String, IssueError> {
    let user_id = spec.user_id;
    if !valid_user_id(user_id) {
        return Err(IssueError::InvalidUser);
    }
    if spec.tenant_id.is_some_and(|t| !valid_tenant_id(t)) {
        return Err(IssueError::InvalidTenant);
    }
    if spec.is_tenant_admin && spec.tenant_id.is_none() {
        return Err(IssueError::TenantAdminWithoutTenant);
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
            is_admin: spec.is_admin,
            created_at: chrono::Utc::now(),
            tenant_id: spec.tenant_id.map(str::to_owned),
            is_tenant_admin: spec.is_tenant_admin,
            expires_at: spec.expires_at,
        })
        .await?;
    Ok(token)
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("user id must be 1-128 printable characters without spaces or '/'")]
    InvalidUser,
    #[error("tenant id must be 1-128 printable characters without spaces or '/'")]
    InvalidTenant,
    #[error("--tenant-admin needs --tenant")]
    TenantAdminWithoutTenant,
    #[error("no randomness available: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Positive token lookups kept in memory, so a request does not pay a store read to
/// authenticate. `token revoke` runs in another process, so a revoked token still
/// authenticates here for at most `ttl` (the local server keeps it short). Unknown
/// tokens are never cached, so guessing cannot fill it.
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

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.inner.list_tokens().await
    }

    async fn delete_token(&self, token_hash: &str) -> Result<bool, StoreError> {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token_hash);
        self.inner.delete_token(token_hash).await
    }

    async fn get_token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((record, at)) = known.get(token_hash)
                && at.elapsed() < self.ttl
            {
                return Ok(Some(record.clone()));
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
    let now = chrono::Utc::now();
    Ok(store
        .get_token(&hash_token(token))
        .await?
        .filter(|t| !t.expired(now))
        .map(|t| Caller {
            user_id: t.user_id,
            is_admin: t.is_admin,
            tenant_id: t.tenant_id,
            is_tenant_admin: t.is_tenant_admin,
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
        let names = ClaimNames::default();
        let c = caller_from_claims(&claims, &names).unwrap();
        assert_eq!(
            c,
            Caller {
                user_id: "user-1".into(),
                is_admin: true,
                tenant_id: None,
                is_tenant_admin: false,
            }
        );
        // A group that merely contains the admin name is not the admin group.
        let claims: HashMap<String, String> = [
            ("sub".to_string(), "user-1".to_string()),
            ("cognito:groups".to_string(), "[not-llm-admin]".to_string()),
        ]
        .into();
        assert!(!caller_from_claims(&claims, &names).unwrap().is_admin);
        assert!(caller_from_claims(&HashMap::new(), &names).is_none());
    }

    #[test]
    fn tenant_claims_to_caller() {
        let names = ClaimNames::default();
        let claims = |tenant: &str, groups: &str| -> HashMap<String, String> {
            [
                ("sub".to_string(), "user-1".to_string()),
                ("custom:tenant".to_string(), tenant.to_string()),
                ("cognito:groups".to_string(), groups.to_string()),
            ]
            .into()
        };
        let c = caller_from_claims(&claims("acme", "[llm-tenant-admin]"), &names).unwrap();
        assert_eq!(c.tenant_id.as_deref(), Some("acme"));
        assert!(c.is_tenant_admin && !c.is_admin);
        let member = caller_from_claims(&claims("acme", "[readers]"), &names).unwrap();
        assert!(!member.is_tenant_admin);
        // A tenant claim that is no valid id gives no tenant, and so no tenant admin.
        let bad = caller_from_claims(&claims("a/b", "[llm-tenant-admin]"), &names).unwrap();
        assert_eq!((bad.tenant_id, bad.is_tenant_admin), (None, false));
        // Configured names are honoured.
        let custom = ClaimNames {
            tenant_claim: "org".into(),
            ..ClaimNames::default()
        };
        let mut c = claims("x", "[]");
        c.insert("org".into(), "globex".into());
        assert_eq!(
            caller_from_claims(&c, &custom)
                .unwrap()
                .tenant_id
                .as_deref(),
            Some("globex")
        );
    }

    #[tokio::test]
    async fn tenant_tokens_expire_and_revoke() {
        let store = std::sync::Arc::new(SqliteStore::open_in_memory().unwrap());
        let cached = CachedTokens::new(store.clone(), std::time::Duration::from_secs(60));
        let spec = NewToken {
            user_id: "bob",
            is_admin: false,
            tenant_id: Some("acme"),
            is_tenant_admin: true,
            expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
        };
        let token = issue(&cached, &spec).await.unwrap();
        let c = caller_from_token(&cached, &token).await.unwrap().unwrap();
        assert_eq!(
            (c.tenant_id.as_deref(), c.is_tenant_admin),
            (Some("acme"), true)
        );
        let listed = cached.list_tokens().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(cached.delete_token(&listed[0].token_hash).await.unwrap());
        assert!(
            caller_from_token(&cached, &token).await.unwrap().is_none(),
            "revoked"
        );
        let gone = NewToken {
            expires_at: Some(chrono::Utc::now() - chrono::Duration::seconds(1)),
            ..spec.clone()
        };
        let expired = issue(&cached, &gone).await.unwrap();
        assert!(
            caller_from_token(&cached, &expired)
                .await
                .unwrap()
                .is_none(),
            "expired"
        );
        let orphan = NewToken {
            tenant_id: None,
            ..spec
        };
        assert!(matches!(
            issue(&cached, &orphan).await,
            Err(IssueError::TenantAdminWithoutTenant)
        ));
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
                is_admin: false,
                tenant_id: None,
                is_tenant_admin: false,
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
                    is_admin: true,
                    tenant_id: None,
                    is_tenant_admin: false,
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
