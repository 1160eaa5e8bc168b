//! Start-up of the Lambda shape: the AWS SDK configuration and clients are built once per
//! cold start from the environment, never per request.

use crate::http::AppState;
use crate::identity::IdentityMode;
use crate::providers::Providers;
use crate::store::dynamodb::DynamoSettingsStore;
use crate::vault::secrets_manager::SecretsManagerVault;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {0}: {1}")]
    Invalid(&'static str, String),
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
    #[error(transparent)]
    Pricing(#[from] crate::pricing::PricingError),
    #[error(transparent)]
    Providers(#[from] crate::providers::ProvidersInitError),
}

fn required(name: &'static str) -> Result<String, InitError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(InitError::Missing(name))
}

fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The settings function's state, from `SETTINGS_TABLE`, `SECRET_PREFIX`,
/// `SECRETS_KMS_KEY_ID`, `SECRET_RECOVERY_DAYS`, `ADMIN_GROUP_CLAIM`, `ADMIN_GROUP`.
pub async fn settings_state_from_env() -> Result<AppState, InitError> {
    let table = required("SETTINGS_TABLE")?;
    let prefix = optional("SECRET_PREFIX").unwrap_or_default();
    let kms_key_id = optional("SECRETS_KMS_KEY_ID");
    let recovery_days = match optional("SECRET_RECOVERY_DAYS") {
        Some(v) => v.parse::<i64>().map_err(|_| {
            InitError::Invalid(
                "SECRET_RECOVERY_DAYS",
                "must be a whole number of days".into(),
            )
        })?,
        None => 7,
    };
    let config = crate::sdk::sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    Ok(AppState {
        settings: Arc::new(DynamoSettingsStore::new(dynamodb, table)),
        vault: Arc::new(SecretsManagerVault::new(
            secrets,
            prefix,
            kms_key_id,
            recovery_days,
        )?),
        catalog: crate::pricing::catalog()?,
        identity: IdentityMode::api_gateway(optional("ADMIN_GROUP_CLAIM"), optional("ADMIN_GROUP")),
        providers: Arc::new(Providers::from_env(config)?),
        test_limiter: AppState::default_test_limiter(),
    })
}
