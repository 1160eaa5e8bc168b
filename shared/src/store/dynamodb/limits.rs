//! Admin limits: one item per user in the settings table (pk `user_id`, sk
//! `setting_type` = [`LIMITS_TYPE`]), beside the user's preferences item, written
//! conditionally on its version with its audit event in the same transaction.

use super::settings::put_versioned;
use super::{Item, backend, corrupt, s};
use crate::store::{AuditEvent, LimitsStore, StoreError, UserLimits};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use serde::Serialize;

/// The sort-key value of a user's limits item. Only `llm-settings` may write the
/// settings table (see `infra/iam.tf`), so users never set their own limits.
pub const LIMITS_TYPE: &str = "admin_limits";

/// Per-user limits in the settings table; a change's audit event goes to the audit
/// table in the same transaction.
#[derive(Clone)]
pub struct DynamoLimitsStore {
    client: Client,
    table: String,
    audit_table: String,
}

impl DynamoLimitsStore {
    pub fn new(
        client: Client,
        settings_table: impl Into<String>,
        audit_table: impl Into<String>,
    ) -> Self {
        DynamoLimitsStore {
            client,
            table: settings_table.into(),
            audit_table: audit_table.into(),
        }
    }
}

/// The stored item: the limits' fields beside the table's keys.
#[derive(Serialize)]
struct LimitsItem<'a> {
    user_id: &'a str,
    setting_type: &'static str,
    #[serde(flatten)]
    limits: &'a UserLimits,
}

#[async_trait]
impl LimitsStore for DynamoLimitsStore {
    async fn get_limits(&self, user_id: &str) -> Result<Option<UserLimits>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("user_id", s(user_id))
            .key("setting_type", s(LIMITS_TYPE))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        // The keys are read past: `UserLimits` ignores attributes it does not know.
        out.item
            .map(|item| serde_dynamo::from_item(item).map_err(corrupt))
            .transpose()
    }

    async fn put_limits(
        &self,
        user_id: &str,
        limits: &UserLimits,
        expected_version: u64,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let item: Item = serde_dynamo::to_item(LimitsItem {
            user_id,
            setting_type: LIMITS_TYPE,
            limits,
        })
        .map_err(corrupt)?;
        put_versioned(
            &self.client,
            (&self.table, &self.audit_table),
            item,
            expected_version,
            std::slice::from_ref(audit),
        )
        .await
    }
}
