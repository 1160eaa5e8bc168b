//! The audit log: who changed what, when, and from what to what. Settings changes, key
//! set and delete (provider and hint, never the key), registry changes, limit changes and
//! budget alerts each leave one event. Changes write their event in the same atomic write
//! as the change itself where the backend allows (see the `audit` parameters of the
//! stores' mutating methods), so nothing is ever "changed but not audited".

use super::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// How long events are kept: 13 months (DynamoDB TTL; purged locally).
pub const AUDIT_RETENTION_DAYS: i64 = 396;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// RFC 3339 UTC with milliseconds; sorts as text.
    pub timestamp: String,
    pub id: String,
    /// The user id of whoever made the change (`system` for budget alerts).
    pub actor: String,
    /// What was changed: `user:<id>`, `llm:<id>`, `limits:<id>`, ...
    pub target: String,
    /// `settings_update`, `key_set`, `key_delete`, `llm_create`, `budget_alert`, ...
    pub action: String,
    /// The state before and after, with every secret removed (keys appear as hints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
    /// The request that made the change, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl AuditEvent {
    /// A new event stamped now, with a fresh id and the current request's id.
    pub fn now(actor: &str, target: String, action: &str) -> AuditEvent {
        AuditEvent {
            timestamp: crate::store::timestamp(chrono::Utc::now()),
            id: uuid::Uuid::new_v4().to_string(),
            actor: actor.to_owned(),
            target,
            action: action.to_owned(),
            before: None,
            after: None,
            request_id: crate::context::request_id(),
        }
    }

    /// The target naming a settings owner: `user:<id>`, or `tenant:<id>` for a tenant's
    /// owner id (`tenant/<id>`).
    pub fn owner_target(owner: &str) -> String {
        match owner.strip_prefix(crate::identity::TENANT_OWNER_PREFIX) {
            Some(tenant) => format!("tenant:{tenant}"),
            None => format!("user:{owner}"),
        }
    }

    pub fn with_change(
        mut self,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> AuditEvent {
        self.before = before;
        self.after = after;
        self
    }

    /// The event's position in the log, `<timestamp>#<id>`: the sort key of the DynamoDB
    /// item and the cursor of pages (which continue below it).
    pub fn sort_key(&self) -> String {
        format!("{}#{}", self.timestamp, self.id)
    }

    /// When the event expires (Unix seconds): the DynamoDB TTL attribute.
    pub fn expires_unix(&self) -> i64 {
        chrono::DateTime::parse_from_rfc3339(&self.timestamp)
            .map(|t| t.timestamp())
            .unwrap_or_else(|_| chrono::Utc::now().timestamp())
            + AUDIT_RETENTION_DAYS * 86_400
    }

    pub fn matches(&self, q: &AuditQuery) -> bool {
        q.actor.as_ref().is_none_or(|a| *a == self.actor)
            && q.target.as_ref().is_none_or(|t| *t == self.target)
            && q.action.as_ref().is_none_or(|a| *a == self.action)
            && self.timestamp.as_str() >= q.start.as_str()
            && self.timestamp.as_str() < q.end.as_str()
            && q.before.as_ref().is_none_or(|b| self.sort_key() < *b)
    }
}

/// A page of the log: exact-match filters, `start <= timestamp < end`, newest first,
/// continuing below the sort key `before`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub target: Option<String>,
    pub action: Option<String>,
    pub start: String,
    pub end: String,
    pub limit: usize,
    pub before: Option<String>,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event that is not part of a change (a budget alert). Idempotent on
    /// `(timestamp, id)`.
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// The events matching `q`, newest first, at most `q.limit`, and the sort key to
    /// continue from when more may follow.
    async fn query(&self, q: &AuditQuery) -> Result<(Vec<AuditEvent>, Option<String>), StoreError>;

    /// Deletes events older than `before` (a timestamp). DynamoDB's TTL does this by
    /// itself; readers never see expired events either way, since the query's range
    /// starts inside the retention.
    async fn purge_audit(&self, _before: &str) -> Result<u64, StoreError> {
        Ok(0)
    }
}
