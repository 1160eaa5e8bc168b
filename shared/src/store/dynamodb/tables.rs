//! The five DynamoDB tables, defined once: what `infra/dynamodb.tf` declares (a unit
//! test reads the Terraform and fails when the two disagree), and what the emulator
//! tests and the benchmark create. Keys, attribute types, indexes and TTL attributes
//! only; encryption, backups and deletion protection are deployment concerns and stay
//! in `infra/`.

use super::{backend, build_error};
use crate::store::StoreError;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

#[cfg(test)]
mod terraform;

/// A key attribute's type, as DynamoDB (and Terraform) spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    S,
    N,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::S => "S",
            AttrType::N => "N",
        }
    }
}

/// A global secondary index. Every index projects all attributes (`ALL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    pub name: &'static str,
    pub hash_key: &'static str,
    pub range_key: Option<&'static str>,
}

/// A table's shape. Billing is on demand (`PAY_PER_REQUEST`) for every table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// The Terraform resource name (`aws_dynamodb_table.<resource>`), which is also the
    /// suffix of the deployed table's name.
    pub resource: &'static str,
    pub hash_key: &'static str,
    pub range_key: Option<&'static str>,
    /// Every attribute a key of the table or of an index uses, and no other.
    pub attributes: &'static [(&'static str, AttrType)],
    pub indexes: &'static [Index],
    /// The attribute DynamoDB expires items by, if any.
    pub ttl: Option<&'static str>,
}

/// Settings: pk `user_id`, sk `setting_type`.
pub const SETTINGS: Table = Table {
    resource: "settings",
    hash_key: "user_id",
    range_key: Some("setting_type"),
    attributes: &[("user_id", AttrType::S), ("setting_type", AttrType::S)],
    indexes: &[],
    ttl: None,
};

/// Usage entries, rollups, budget counters, reservations and alert markers (see the
/// module documentation of [`super`]); the indexes are sparse, only entries carry their keys.
pub const USAGE: Table = Table {
    resource: "usage",
    hash_key: "user_id",
    range_key: Some("sk"),
    attributes: &[
        ("user_id", AttrType::S),
        ("sk", AttrType::S),
        ("provider", AttrType::S),
        ("operation_type", AttrType::S),
        ("timestamp", AttrType::S),
    ],
    indexes: &[
        Index {
            name: "ProviderIndex",
            hash_key: "provider",
            range_key: Some("timestamp"),
        },
        Index {
            name: "OperationTypeIndex",
            hash_key: "operation_type",
            range_key: Some("timestamp"),
        },
    ],
    ttl: Some("ttl"),
};

/// The response cache: pk `key`, expired by `expires_at`.
pub const CACHE: Table = Table {
    resource: "cache",
    hash_key: "key",
    range_key: None,
    attributes: &[("key", AttrType::S)],
    indexes: &[],
    ttl: Some("expires_at"),
};

/// The audit log: pk `month`, sk `<timestamp>#<id>`, each event expired by its `ttl`
/// after [`crate::store::AUDIT_RETENTION_DAYS`].
pub const AUDIT: Table = Table {
    resource: "audit",
    hash_key: "month",
    range_key: Some("sk"),
    attributes: &[("month", AttrType::S), ("sk", AttrType::S)],
    indexes: &[],
    ttl: Some("ttl"),
};

/// The model registry: one partition, pk `pk` = `registry`, sk `llm#<id>` (entries),
/// `name#<name>` (name locks), `meta#seeded` (see [`super::registry`]).
pub const REGISTRY: Table = Table {
    resource: "registry",
    hash_key: "pk",
    range_key: Some("sk"),
    attributes: &[("pk", AttrType::S), ("sk", AttrType::S)],
    indexes: &[],
    ttl: None,
};

pub const ALL: [Table; 5] = [SETTINGS, USAGE, CACHE, AUDIT, REGISTRY];

fn key_schema(hash: &str, range: Option<&str>) -> Result<Vec<KeySchemaElement>, StoreError> {
    let element = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(build_error)
    };
    let mut keys = vec![element(hash, KeyType::Hash)?];
    if let Some(range) = range {
        keys.push(element(range, KeyType::Range)?);
    }
    Ok(keys)
}

impl Table {
    /// Creates the table as `name` and, when it has one, turns on its TTL.
    pub async fn create(&self, client: &Client, name: &str) -> Result<(), StoreError> {
        let mut request = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema(self.hash_key, self.range_key)?));
        for (attribute, attr_type) in self.attributes {
            request = request.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(*attribute)
                    .attribute_type(ScalarAttributeType::from(attr_type.as_str()))
                    .build()
                    .map_err(build_error)?,
            );
        }
        for index in self.indexes {
            request = request.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .set_key_schema(Some(key_schema(index.hash_key, index.range_key)?))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .map_err(build_error)?,
            );
        }
        request.send().await.map_err(backend)?;
        if let Some(ttl) = self.ttl {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .enabled(true)
                        .attribute_name(ttl)
                        .build()
                        .map_err(build_error)?,
                )
                .send()
                .await
                .map_err(backend)?;
        }
        Ok(())
    }
}

/// The deployed names of the five tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub settings: String,
    pub usage: String,
    pub cache: String,
    pub audit: String,
    pub registry: String,
}

impl TableNames {
    /// `<prefix>-settings`, `<prefix>-usage`, ...: how `infra/` names them after
    /// `var.name_prefix`.
    pub fn with_prefix(prefix: &str) -> Self {
        let name = |t: Table| format!("{prefix}-{}", t.resource);
        TableNames {
            settings: name(SETTINGS),
            usage: name(USAGE),
            cache: name(CACHE),
            audit: name(AUDIT),
            registry: name(REGISTRY),
        }
    }
}

/// Creates all five tables (tests and benchmarks against an emulator; a deployment's
/// tables come from `infra/`).
pub async fn create_tables(client: &Client, names: &TableNames) -> Result<(), StoreError> {
    SETTINGS.create(client, &names.settings).await?;
    USAGE.create(client, &names.usage).await?;
    CACHE.create(client, &names.cache).await?;
    AUDIT.create(client, &names.audit).await?;
    REGISTRY.create(client, &names.registry).await
}
