//! The audit log.

use super::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Who changed what, when: settings changes, key set/delete (never the key), registry
/// changes, budget alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub timestamp: String,
    pub id: String,
    pub actor: String,
    pub target: String,
    pub action: String,
    pub detail: serde_json::Value,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// Events with `start <= timestamp < end`, oldest first, at most `limit`.
    async fn list(
        &self,
        start: &str,
        end: &str,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError>;
}
