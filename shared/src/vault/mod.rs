//! Where provider API keys live. Keys go in as [`ApiKey`] and come out as [`ApiKey`];
//! nothing here logs or formats one. Backends: [`local::LocalVault`] (AES-256-GCM in the
//! embedded database); Secrets Manager on AWS.

pub mod local;

#[cfg(feature = "aws")]
pub mod secrets_manager;

use crate::provider::Provider;
use crate::secret::ApiKey;
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault backend failed: {0}")]
    Backend(String),
    /// The ciphertext did not decrypt: wrong master key or tampered data.
    #[error("stored secret {0} could not be decrypted")]
    Undecryptable(String),
    #[error("vault configuration: {0}")]
    Config(String),
}

/// The secret name of a user's key for a provider: `users/<id>/llm/<provider>`.
pub fn secret_name(prefix: &str, user_id: &str, provider: Provider) -> String {
    format!("{prefix}users/{user_id}/llm/{provider}")
}

#[async_trait]
pub trait KeyVault: Send + Sync {
    /// Creates or replaces the key.
    async fn put_key(
        &self,
        user_id: &str,
        provider: Provider,
        key: &ApiKey,
    ) -> Result<(), VaultError>;
    async fn get_key(
        &self,
        user_id: &str,
        provider: Provider,
    ) -> Result<Option<ApiKey>, VaultError>;
    /// Removes the key; removing a key that is not there succeeds.
    async fn delete_key(&self, user_id: &str, provider: Provider) -> Result<(), VaultError>;
}
