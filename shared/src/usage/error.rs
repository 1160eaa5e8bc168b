//! What the usage reports can fail with. The usage layer knows nothing of HTTP: the
//! one mapping to a status and a body is `From<UsageError> for ApiError` in `http/`.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// A query parameter is malformed or out of range. `field` is its name, as the
    /// client gave it (`start`, `operationType`, `nextToken`, ...).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl UsageError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        UsageError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
