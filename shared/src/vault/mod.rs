//! Where provider API keys live. Keys go in as [`ApiKey`] and come out as [`ApiKey`];
//! nothing here logs or formats one. Backends: [`local::LocalVault`] (AES-256-GCM; the
//! sealed bytes are kept by a [`local::SealedStore`], which the embedded database
//! implements, so the vault never imports the store); Secrets Manager on AWS.
//!
//! Every write stores a new *version* of a user's key for a provider, under a fresh
//! [`KeyVersion`] the caller chose; the settings record names the one version in use.
//! Versions are never overwritten in place, so a reader holding a record always gets the
//! key that record describes, whatever concurrent writes are doing. A record written
//! before versions existed names none: that reads the *legacy* unversioned key.

pub mod local;
pub mod operator;

#[cfg(feature = "aws")]
pub mod secrets_manager;

use crate::provider::Provider;
use crate::secret::ApiKey;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, Weak};

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault backend failed: {0}")]
    Backend(String),
    /// The vault is throttling, unreachable or failing on its side, after the retries:
    /// worth trying again shortly (a `503`).
    #[error("vault backend unavailable: {0}")]
    Unavailable(String),
    /// The ciphertext did not decrypt: wrong master key or tampered data.
    #[error("stored secret {0} could not be decrypted")]
    Undecryptable(String),
    #[error("vault configuration: {0}")]
    Config(String),
}

/// The secret name of an owner's key for a provider: `users/<id>/llm/<provider>` for a
/// user, `tenants/<id>/llm/<provider>` for a tenant (owner id `tenant/<id>`).
pub fn secret_name(prefix: &str, owner: &str, provider: Provider) -> String {
    match owner.strip_prefix(crate::identity::TENANT_OWNER_PREFIX) {
        Some(tenant) => format!("{prefix}tenants/{tenant}/llm/{provider}"),
        None => format!("{prefix}users/{owner}/llm/{provider}"),
    }
}

/// The id of one stored version of a key: a random UUID (36 characters, which is also a
/// valid Secrets Manager `ClientRequestToken`, so it becomes the secret's `VersionId`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyVersion(String);

impl KeyVersion {
    /// A version id no one has used before.
    pub fn fresh() -> Self {
        KeyVersion(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the settings record names for the provider once a version is gone. It lets a
/// backend that keeps all versions in one container (a Secrets Manager secret) remove the
/// container with the last version; per-version backends ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remaining {
    /// The record names a key for this provider (another version, or the legacy one).
    Named,
    /// The record names no key for this provider.
    Nothing,
}

#[async_trait]
pub trait KeyVault: Send + Sync {
    /// Stores `key` as `version`. Writing the same version again with the same key
    /// succeeds (a retried or repaired write).
    async fn put_key(
        &self,
        user_id: &str,
        provider: Provider,
        version: &KeyVersion,
        key: &ApiKey,
    ) -> Result<(), VaultError>;
    /// The key stored as `version` (`None`: the legacy unversioned key), or `None` when
    /// there is no such version.
    async fn get_key(
        &self,
        user_id: &str,
        provider: Provider,
        version: Option<&KeyVersion>,
    ) -> Result<Option<ApiKey>, VaultError>;
    /// Removes one version (`None`: the legacy key); removing one that is not there
    /// succeeds. Never touches another version, except that with
    /// [`Remaining::Nothing`] a backend may drop whatever is left that nothing names.
    async fn delete_key(
        &self,
        user_id: &str,
        provider: Provider,
        version: Option<&KeyVersion>,
        remaining: Remaining,
    ) -> Result<(), VaultError>;
}

/// Told about every key change, so in-memory copies of the old key can be dropped.
pub trait KeyChangeListener: Send + Sync {
    fn key_changed(&self, user_id: &str, provider: Provider);
}

/// The listeners of one process (the local binary's key cache). The settings service
/// notifies them after each committed key change. Holds them weakly: a listener that is
/// gone is skipped and pruned.
#[derive(Clone, Default)]
pub struct KeyChanges {
    listeners: Arc<Mutex<Vec<Weak<dyn KeyChangeListener>>>>,
}

impl KeyChanges {
    pub fn subscribe(&self, listener: Arc<dyn KeyChangeListener>) {
        let mut all = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|l| l.strong_count() > 0);
        all.push(Arc::downgrade(&listener));
    }

    pub fn notify(&self, user_id: &str, provider: Provider) {
        let live: Vec<Arc<dyn KeyChangeListener>> = {
            let all = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
            all.iter().filter_map(Weak::upgrade).collect()
        };
        for l in live {
            l.key_changed(user_id, provider);
        }
    }
}
