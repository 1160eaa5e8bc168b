//! The AWS key vault: one secret per user and provider, named
//! `<prefix>users/<userId>/llm/<provider>`, encrypted with the configured KMS key and
//! tagged with the user id. Nothing here lists secrets: whether a user has a key is
//! answered from the settings record.
//!
//! Each key write is a new version of that one secret (`PutSecretValue` with our
//! [`KeyVersion`] as `ClientRequestToken`, which becomes its `VersionId`); reads ask for
//! the `VersionId` the settings record names.

use super::{KeyVault, KeyVersion, Remaining, VaultError, secret_name};
use crate::provider::Provider;
use crate::secret::ApiKey;
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::Tag;

pub struct SecretsManagerVault {
    client: Client,
    prefix: String,
    kms_key_id: Option<String>,
    /// 0 deletes at once (no recovery); otherwise 7-30 days, as Secrets Manager allows.
    recovery_window_days: i64,
}

impl SecretsManagerVault {
    pub fn new(
        client: Client,
        prefix: impl Into<String>,
        kms_key_id: Option<String>,
        recovery_window_days: i64,
    ) -> Result<Self, VaultError> {
        if recovery_window_days != 0 && !(7..=30).contains(&recovery_window_days) {
            return Err(VaultError::Config(
                "the secret recovery window must be 0 (delete at once) or 7-30 days".into(),
            ));
        }
        Ok(SecretsManagerVault {
            client,
            prefix: prefix.into(),
            kms_key_id,
            recovery_window_days,
        })
    }

    /// Secret names allow `A-Za-z0-9/_+=.@-`; a user id with anything else cannot
    /// have a secret (Cognito `sub`s are UUIDs, so this only stops odd identity setups).
    fn name(&self, user_id: &str, provider: Provider) -> Result<String, VaultError> {
        let name = secret_name(&self.prefix, user_id, provider);
        if name.len() > 512
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
        {
            return Err(VaultError::Config(
                "the user id cannot be part of a Secrets Manager secret name".into(),
            ));
        }
        Ok(name)
    }
}

/// The error code of a service error (`ResourceNotFoundException`, ...), if any.
fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// A failed call: [`VaultError::Unavailable`] when it is worth trying again shortly
/// (throttled, `InternalServiceError`, unreachable; the SDK's own retries are spent).
pub(crate) fn backend<E: std::error::Error + ProvideErrorMetadata + 'static>(
    e: SdkError<E>,
) -> VaultError {
    if crate::sdk::is_transient(&e) {
        VaultError::Unavailable(DisplayErrorContext(e).to_string())
    } else {
        VaultError::Backend(DisplayErrorContext(e).to_string())
    }
}

const NOT_FOUND: &str = "ResourceNotFoundException";
/// Also what Secrets Manager answers for a secret scheduled for deletion.
const INVALID_REQUEST: &str = "InvalidRequestException";
const EXISTS: &str = "ResourceExistsException";

/// Each version carries a staging label of its own while it is written or named, so
/// Secrets Manager never treats it as deprecated (deprecated versions may be purged) and
/// so "is anything here still in use?" can be answered from the secret alone.
const LABEL_PREFIX: &str = "gw-";

fn label(version: &KeyVersion) -> String {
    format!("{LABEL_PREFIX}{}", version.as_str())
}

type PutResult = Result<
    (),
    SdkError<
        aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueError,
        aws_sdk_secretsmanager::config::http::HttpResponse,
    >,
>;

impl SecretsManagerVault {
    /// Adds `version` with only its own label: `AWSCURRENT` does not move, so a write
    /// that never commits changes nothing a name-only read sees.
    async fn put_value(&self, name: &str, version: &KeyVersion, key: &ApiKey) -> PutResult {
        self.client
            .put_secret_value()
            .secret_id(name)
            .client_request_token(version.as_str())
            .secret_string(key.expose())
            .version_stages(label(version))
            .send()
            .await
            .map(|_| ())
    }

    /// Creates the secret without a value (so its first version is ours, with our id),
    /// then writes the version. Created concurrently by another request: just write.
    async fn create(
        &self,
        name: &str,
        user_id: &str,
        version: &KeyVersion,
        key: &ApiKey,
    ) -> Result<(), VaultError> {
        let tag = Tag::builder().key("user_id").value(user_id).build();
        let created = self
            .client
            .create_secret()
            .name(name)
            .set_kms_key_id(self.kms_key_id.clone())
            .tags(tag)
            .description("A user's LLM provider API key (BYOK gateway)")
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e) if code(&e) == Some(EXISTS) => {}
            Err(e) => return Err(backend(e)),
        }
        self.put_value(name, version, key).await.map_err(backend)
    }

    /// The staging labels per version id; `None` when the secret does not exist.
    async fn labels(
        &self,
        name: &str,
    ) -> Result<Option<std::collections::HashMap<String, Vec<String>>>, VaultError> {
        match self.client.describe_secret().secret_id(name).send().await {
            Ok(out) => Ok(Some(out.version_ids_to_stages.unwrap_or_default())),
            Err(e) if code(&e) == Some(NOT_FOUND) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    async fn delete_secret(&self, name: &str) -> Result<(), VaultError> {
        let request = self.client.delete_secret().secret_id(name);
        let request = if self.recovery_window_days == 0 {
            request.force_delete_without_recovery(true)
        } else {
            request.recovery_window_in_days(self.recovery_window_days)
        };
        match request.send().await {
            Ok(_) => Ok(()),
            // Absent, or already scheduled for deletion: the key is gone either way.
            Err(e) if matches!(code(&e), Some(NOT_FOUND | INVALID_REQUEST)) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }
}

#[async_trait]
impl KeyVault for SecretsManagerVault {
    async fn put_key(
        &self,
        user_id: &str,
        provider: Provider,
        version: &KeyVersion,
        key: &ApiKey,
    ) -> Result<(), VaultError> {
        let name = self.name(user_id, provider)?;
        match self.put_value(&name, version, key).await {
            Ok(()) => Ok(()),
            Err(e) if code(&e) == Some(NOT_FOUND) => {
                self.create(&name, user_id, version, key).await
            }
            Err(e) if code(&e) == Some(INVALID_REQUEST) => {
                // Scheduled for deletion by an earlier removal: bring it back, then write.
                self.client
                    .restore_secret()
                    .secret_id(&name)
                    .send()
                    .await
                    .map_err(backend)?;
                self.put_value(&name, version, key).await.map_err(backend)
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn get_key(
        &self,
        user_id: &str,
        provider: Provider,
        version: Option<&KeyVersion>,
    ) -> Result<Option<ApiKey>, VaultError> {
        let name = self.name(user_id, provider)?;
        // The legacy key is whatever `AWSCURRENT` holds, as before versions.
        let request = self
            .client
            .get_secret_value()
            .secret_id(&name)
            .set_version_id(version.map(|v| v.as_str().to_owned()));
        match request.send().await {
            // A version whose own label is gone was deleted (deprecated, kept by Secrets
            // Manager for a while): it reads as absent, like a deleted local row.
            Ok(out) => match version {
                Some(v) if !out.version_stages().contains(&label(v)) => Ok(None),
                _ => Ok(out.secret_string.map(ApiKey::new)),
            },
            Err(e) if matches!(code(&e), Some(NOT_FOUND | INVALID_REQUEST)) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    /// Removes the version's own label, which leaves it deprecated: no record names it
    /// again, and Secrets Manager may purge it. (The legacy version cannot lose its
    /// `AWSCURRENT` label without another version taking it, so it is left as it is.)
    /// With [`Remaining::Nothing`] the whole secret is deleted, but only when no version
    /// still carries a label of ours: a label means a write in flight that may yet be
    /// committed. The residual race is described in `settings::service`.
    async fn delete_key(
        &self,
        user_id: &str,
        provider: Provider,
        version: Option<&KeyVersion>,
        remaining: Remaining,
    ) -> Result<(), VaultError> {
        let name = self.name(user_id, provider)?;
        let Some(mut labels) = self.labels(&name).await? else {
            return Ok(());
        };
        if let Some(v) = version {
            let own = label(v);
            let attached = labels
                .get(v.as_str())
                .is_some_and(|stages| stages.contains(&own));
            if attached {
                let removed = self
                    .client
                    .update_secret_version_stage()
                    .secret_id(&name)
                    .version_stage(&own)
                    .remove_from_version_id(v.as_str())
                    .send()
                    .await;
                match removed {
                    Ok(_) => {}
                    // Deleted or scheduled for deletion meanwhile: nothing left to remove.
                    Err(e) if matches!(code(&e), Some(NOT_FOUND | INVALID_REQUEST)) => {
                        return Ok(());
                    }
                    Err(e) => return Err(backend(e)),
                }
            }
            labels.remove(v.as_str());
        }
        let in_use = labels
            .values()
            .flatten()
            .any(|stage| stage.starts_with(LABEL_PREFIX));
        if remaining == Remaining::Nothing && !in_use {
            self.delete_secret(&name).await?;
        }
        Ok(())
    }
}
