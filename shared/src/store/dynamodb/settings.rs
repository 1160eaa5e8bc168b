//! The settings table: pk `user_id`, sk `setting_type`, one preferences item per user,
//! written conditionally on its version.

use super::audit::audit_puts;
use super::txn::{Txn, failed, transact};
use super::{Item, backend, build_error};
use crate::provider::Provider;
use crate::store::{AuditEvent, KeyMeta, Preferences, SettingsRecord, SettingsStore, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The sort-key value of the preferences item (the table has room for other setting
/// types per user).
pub const SETTING_TYPE: &str = "llm_preferences";

/// The settings table: pk `user_id`, sk `setting_type`; a change's audit events go to
/// the audit table in the same transaction.
#[derive(Clone)]
pub struct DynamoSettingsStore {
    client: Client,
    table: String,
    audit_table: String,
}

impl DynamoSettingsStore {
    pub fn new(client: Client, table: impl Into<String>, audit_table: impl Into<String>) -> Self {
        DynamoSettingsStore {
            client,
            table: table.into(),
            audit_table: audit_table.into(),
        }
    }

    /// The conditional write with its audit events, as one transaction.
    async fn put_audited(
        &self,
        item: Item,
        expected_version: u64,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        put_versioned(
            &self.client,
            (&self.table, &self.audit_table),
            item,
            expected_version,
            audit,
        )
        .await
    }
}

/// Puts a settings-table item (a user's preferences, or their admin limits) with its
/// audit events as one transaction, only if the stored item is still
/// `expected_version` (0: there is none); else [`StoreError::Conflict`].
pub(super) async fn put_versioned(
    client: &Client,
    (table, audit_table): (&str, &str),
    item: Item,
    expected_version: u64,
    audit: &[AuditEvent],
) -> Result<(), StoreError> {
    let put = Put::builder().table_name(table).set_item(Some(item));
    let put = if expected_version == 0 {
        put.condition_expression("attribute_not_exists(user_id)")
    } else {
        put.condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(
                ":expected",
                AttributeValue::N(expected_version.to_string()),
            )
    };
    let mut items = vec![
        TransactWriteItem::builder()
            .put(put.build().map_err(build_error)?)
            .build(),
    ];
    items.extend(audit_puts(audit_table, audit)?);
    match transact(client, &items, 4).await? {
        Txn::Committed => Ok(()),
        Txn::Cancelled(codes) if codes.is_empty() || failed(&codes, 0) => Err(StoreError::Conflict),
        Txn::Cancelled(codes) => Err(StoreError::Backend(format!(
            "settings transaction cancelled: {codes:?}"
        ))),
    }
}

#[derive(Serialize, Deserialize)]
struct SettingsItem {
    user_id: String,
    setting_type: String,
    version: u64,
    preferences: Preferences,
    keys: BTreeMap<Provider, KeyMeta>,
    updated_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    saved_fields: Option<std::collections::BTreeSet<String>>,
}

#[async_trait]
impl SettingsStore for DynamoSettingsStore {
    async fn get_settings(&self, user_id: &str) -> Result<Option<SettingsRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("user_id", AttributeValue::S(user_id.to_owned()))
            .key("setting_type", AttributeValue::S(SETTING_TYPE.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let item: SettingsItem =
            serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some(SettingsRecord {
            preferences: item.preferences,
            keys: item.keys,
            version: item.version,
            updated_at: item.updated_at,
            saved_fields: item.saved_fields,
        }))
    }

    async fn put_settings(
        &self,
        user_id: &str,
        record: &SettingsRecord,
        expected_version: u64,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let item = SettingsItem {
            user_id: user_id.to_owned(),
            setting_type: SETTING_TYPE.to_owned(),
            version: record.version,
            preferences: record.preferences.clone(),
            keys: record.keys.clone(),
            updated_at: record.updated_at,
            saved_fields: record.saved_fields.clone(),
        };
        let item: Item =
            serde_dynamo::to_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if !audit.is_empty() {
            return self.put_audited(item, expected_version, audit).await;
        }
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let request = if expected_version == 0 {
            request.condition_expression("attribute_not_exists(user_id)")
        } else {
            request
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(
                    ":expected",
                    AttributeValue::N(expected_version.to_string()),
                )
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(backend(e)),
        }
    }
}
