//! What registry operations can refuse; `http/failures.rs` maps each to a status.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("no registry entry with this id")]
    NotFound,
    /// A stale version, a concurrent change that won.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NameTaken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RegistryError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        RegistryError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
