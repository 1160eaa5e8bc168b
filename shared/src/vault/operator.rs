//! Operator credentials that registry entries name by reference (`auth_meta`): an
//! environment variable of the local server, or a Secrets Manager secret under a fixed
//! prefix on AWS (so IAM can grant exactly those). A reference is checked when an admin
//! writes it; the key itself is read only when a request needs it, and never leaves
//! the process except in the provider's authentication header.

use super::VaultError;
use crate::secret::ApiKey;
use crate::store::AuthMeta;
use async_trait::async_trait;

/// A refused reference: the field and why.
pub type RefError = (&'static str, String);

#[async_trait]
pub trait OperatorKeys: Send + Sync {
    /// Refuses a reference this deployment cannot resolve, or one that is not a name.
    fn check(&self, meta: &AuthMeta) -> Result<(), RefError>;

    /// The key a reference names; `None` when it names nothing (an unset variable, a
    /// missing secret): the entry then serves only users with a key of their own.
    async fn key(&self, meta: &AuthMeta) -> Result<Option<ApiKey>, VaultError>;
}

/// An environment variable name as shells write them: never a key (keys hold lowercase
/// letters or `-`, or start with a digit).
fn env_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The local shape: keys from the server's own environment.
pub struct EnvOperatorKeys;

#[async_trait]
impl OperatorKeys for EnvOperatorKeys {
    fn check(&self, meta: &AuthMeta) -> Result<(), RefError> {
        if meta.api_key_secret.is_some() {
            return Err((
                "auth_meta.api_key_secret",
                "this deployment reads operator keys from its environment: use api_key_env".into(),
            ));
        }
        match &meta.api_key_env {
            None => Err((
                "auth_meta.api_key_env",
                "name the environment variable that holds the operator key".into(),
            )),
            Some(name) if !env_name(name) => Err((
                "auth_meta.api_key_env",
                "must be an environment variable name (A-Z, 0-9, _), never a key".into(),
            )),
            Some(_) => Ok(()),
        }
    }

    async fn key(&self, meta: &AuthMeta) -> Result<Option<ApiKey>, VaultError> {
        Ok(meta
            .api_key_env
            .as_deref()
            .and_then(|name| std::env::var(name).ok())
            .filter(|k| !k.trim().is_empty())
            .map(ApiKey::new))
    }
}

/// Whether `name` is a Secrets Manager secret name under `prefix`.
pub fn secret_ref_ok(prefix: &str, name: &str) -> bool {
    name.len() <= 512
        && name.len() > prefix.len()
        && name.starts_with(prefix)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
}

#[cfg(feature = "aws")]
pub use aws::SecretsOperatorKeys;

#[cfg(feature = "aws")]
mod aws {
    use super::{OperatorKeys, RefError, secret_ref_ok};
    use crate::secret::ApiKey;
    use crate::store::AuthMeta;
    use crate::vault::VaultError;
    use async_trait::async_trait;
    use aws_sdk_secretsmanager::Client;
    use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// How long a read operator key is reused: a rotated secret is picked up this late.
    const CACHE_FOR: Duration = Duration::from_secs(300);

    /// The AWS shape: secrets whose names start with `OPERATOR_SECRET_PREFIX`.
    pub struct SecretsOperatorKeys {
        client: Client,
        prefix: String,
        cache: Mutex<HashMap<String, (Instant, Option<ApiKey>)>>,
    }

    impl SecretsOperatorKeys {
        pub fn new(client: Client, prefix: String) -> Self {
            SecretsOperatorKeys {
                client,
                prefix,
                cache: Mutex::new(HashMap::new()),
            }
        }
    }

    #[async_trait]
    impl OperatorKeys for SecretsOperatorKeys {
        fn check(&self, meta: &AuthMeta) -> Result<(), RefError> {
            if meta.api_key_env.is_some() {
                return Err((
                    "auth_meta.api_key_env",
                    "Lambda functions take no keys from their environment: use api_key_secret"
                        .into(),
                ));
            }
            match &meta.api_key_secret {
                Some(name) if secret_ref_ok(&self.prefix, name) => Ok(()),
                Some(_) => Err((
                    "auth_meta.api_key_secret",
                    format!(
                        "must be a Secrets Manager secret name under {}",
                        self.prefix
                    ),
                )),
                None => Err((
                    "auth_meta.api_key_secret",
                    "name the Secrets Manager secret that holds the operator key".into(),
                )),
            }
        }

        async fn key(&self, meta: &AuthMeta) -> Result<Option<ApiKey>, VaultError> {
            let Some(name) = meta
                .api_key_secret
                .as_deref()
                .filter(|n| secret_ref_ok(&self.prefix, n))
            else {
                return Ok(None);
            };
            {
                let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((at, key)) = cache.get(name)
                    && at.elapsed() < CACHE_FOR
                {
                    return Ok(key.clone());
                }
            }
            let key = match self.client.get_secret_value().secret_id(name).send().await {
                Ok(out) => out
                    .secret_string
                    .filter(|k| !k.trim().is_empty())
                    .map(ApiKey::new),
                Err(e) if e.code() == Some("ResourceNotFoundException") => None,
                Err(e) => return Err(crate::vault::secrets_manager::backend(e)),
            };
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.insert(name.to_owned(), (Instant::now(), key.clone()));
            Ok(key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> AuthMeta {
        AuthMeta {
            api_key_env: Some(name.into()),
            api_key_secret: None,
        }
    }

    #[test]
    fn references_are_names_never_keys() {
        let k = EnvOperatorKeys;
        assert!(k.check(&env("OPENAI_API_KEY")).is_ok());
        for bad in ["sk-proj-abc123", "sk_live_x", "lower", "", "1ABC", "A B"] {
            assert!(k.check(&env(bad)).is_err(), "{bad}");
        }
        let secret = AuthMeta {
            api_key_env: None,
            api_key_secret: Some("operator/llm/openai".into()),
        };
        assert_eq!(k.check(&secret).unwrap_err().0, "auth_meta.api_key_secret");
        assert!(secret_ref_ok("operator/llm/", "operator/llm/openai"));
        assert!(!secret_ref_ok("operator/llm/", "users/u/llm/openai"));
        assert!(!secret_ref_ok("operator/llm/", "operator/llm/"));
        assert!(!secret_ref_ok("operator/llm/", "operator/llm/sk key"));
    }
}
