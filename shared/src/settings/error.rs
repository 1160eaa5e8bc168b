//! What reading, changing or testing settings can fail with; `http/` maps it to status
//! codes (400 naming the field, 409, 503, 500).

use crate::store::StoreError;
use crate::vault::VaultError;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A field is missing, of the wrong type or out of range; `field` is its JSON path
    /// (`preferences.maxTokens`).
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    /// The settings changed since the caller (or this request) read them.
    #[error("{0}")]
    Conflict(String),
    /// The store or vault is throttling or unreachable, after the retries: logged,
    /// never shown; the client is told to retry shortly.
    #[error("{0}")]
    Unavailable(String),
    /// A store or vault failure: logged, never shown.
    #[error("{0}")]
    Internal(String),
}

impl SettingsError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        SettingsError::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<StoreError> for SettingsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => SettingsError::Conflict(
                "settings were changed by another request; reload and retry".into(),
            ),
            e @ StoreError::Unavailable(_) => SettingsError::Unavailable(e.to_string()),
            other => SettingsError::Internal(other.to_string()),
        }
    }
}

impl From<VaultError> for SettingsError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Unavailable(_) => SettingsError::Unavailable(e.to_string()),
            other => SettingsError::Internal(other.to_string()),
        }
    }
}
