//! The AWS key vault: one secret per user and provider, named
//! `<prefix>users/<userId>/llm/<provider>`, encrypted with the configured KMS key and
//! tagged with the user id. Nothing here lists secrets: whether a user has a key is
//! answered from the settings record.

use super::{KeyVault, VaultError, secret_name};
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

fn backend<E: std::error::Error + 'static, R: std::fmt::Debug>(e: SdkError<E, R>) -> VaultError {
    VaultError::Backend(DisplayErrorContext(e).to_string())
}

const NOT_FOUND: &str = "ResourceNotFoundException";
/// Also what Secrets Manager answers for a secret scheduled for deletion.
const INVALID_REQUEST: &str = "InvalidRequestException";
const EXISTS: &str = "ResourceExistsException";

impl SecretsManagerVault {
    async fn put_value(
        &self,
        name: &str,
        key: &ApiKey,
    ) -> Result<
        (),
        SdkError<
            aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueError,
            aws_sdk_secretsmanager::config::http::HttpResponse,
        >,
    > {
        self.client
            .put_secret_value()
            .secret_id(name)
            .secret_string(key.expose())
            .send()
            .await
            .map(|_| ())
    }

    async fn create(&self, name: &str, user_id: &str, key: &ApiKey) -> Result<(), VaultError> {
        let tag = Tag::builder().key("user_id").value(user_id).build();
        let created = self
            .client
            .create_secret()
            .name(name)
            .secret_string(key.expose())
            .set_kms_key_id(self.kms_key_id.clone())
            .tags(tag)
            .description("A user's LLM provider API key (BYOK gateway)")
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Created concurrently by another request: store our value as its new version.
            Err(e) if code(&e) == Some(EXISTS) => self.put_value(name, key).await.map_err(backend),
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
        key: &ApiKey,
    ) -> Result<(), VaultError> {
        let name = self.name(user_id, provider)?;
        match self.put_value(&name, key).await {
            Ok(()) => Ok(()),
            Err(e) if code(&e) == Some(NOT_FOUND) => self.create(&name, user_id, key).await,
            Err(e) if code(&e) == Some(INVALID_REQUEST) => {
                // Scheduled for deletion by an earlier removal: bring it back, then write.
                self.client
                    .restore_secret()
                    .secret_id(&name)
                    .send()
                    .await
                    .map_err(backend)?;
                self.put_value(&name, key).await.map_err(backend)
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn get_key(
        &self,
        user_id: &str,
        provider: Provider,
    ) -> Result<Option<ApiKey>, VaultError> {
        let name = self.name(user_id, provider)?;
        match self.client.get_secret_value().secret_id(&name).send().await {
            Ok(out) => Ok(out.secret_string.map(ApiKey::new)),
            Err(e) if matches!(code(&e), Some(NOT_FOUND | INVALID_REQUEST)) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    async fn delete_key(&self, user_id: &str, provider: Provider) -> Result<(), VaultError> {
        let name = self.name(user_id, provider)?;
        let request = self.client.delete_secret().secret_id(&name);
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
