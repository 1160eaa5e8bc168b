//! The audit table: pk `month` (`YYYY-MM` of the event), sk `<timestamp>#<id>`; a range
//! is listed by querying each month's partition in order.

use super::{DynamoUsageStore, Item, backend, corrupt, names, query_all, s, string, values};
use crate::store::{AuditEvent, AuditStore, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use chrono::{Datelike, NaiveDate};

/// The audit table.
#[derive(Clone)]
pub struct DynamoAuditStore {
    client: Client,
    table: String,
}

impl DynamoAuditStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoAuditStore {
            client,
            table: table.into(),
        }
    }
}

/// The months `YYYY-MM` from `start`'s to `end`'s, in order.
fn months_between(start: &str, end: &str) -> Result<Vec<String>, StoreError> {
    let parse = |t: &str| {
        t.get(..7)
            .and_then(|m| NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").ok())
            .ok_or_else(|| StoreError::Backend(format!("audit range bound is not a date: {t}")))
    };
    let (mut month, last) = (parse(start)?, parse(end)?);
    let mut months = Vec::new();
    while month <= last {
        months.push(format!("{:04}-{:02}", month.year(), month.month()));
        month = match month.checked_add_months(chrono::Months::new(1)) {
            Some(m) => m,
            None => break,
        };
    }
    Ok(months)
}

#[async_trait]
impl AuditStore for DynamoAuditStore {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut item: Item = serde_dynamo::to_item(event).map_err(corrupt)?;
        item.insert(
            "month".to_owned(),
            s(event.timestamp.get(..7).unwrap_or("")),
        );
        item.insert(
            "sk".to_owned(),
            s(format!("{}#{}", event.timestamp, event.id)),
        );
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list(
        &self,
        start: &str,
        end: &str,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        if limit == 0 || start >= end {
            return Ok(Vec::new());
        }
        let mut events = Vec::new();
        for month in months_between(start, end)? {
            // BETWEEN is inclusive: an item whose sk is exactly `end` is dropped below.
            let items = query_all(
                &self.client,
                &self.table,
                "#pk = :m AND #sk BETWEEN :start AND :end",
                &names(&[("#pk", "month"), ("#sk", "sk")]),
                &values(vec![
                    (":m", s(month)),
                    (":start", s(start)),
                    (":end", s(end)),
                ]),
                true,
                Some(limit - events.len() + 1),
            )
            .await?;
            for item in items {
                if string(&item, "sk")? >= end {
                    continue;
                }
                events.push(serde_dynamo::from_item::<_, AuditEvent>(item).map_err(corrupt)?);
                if events.len() == limit {
                    return Ok(events);
                }
            }
        }
        Ok(events)
    }
}

/// The usage store also answers for its audit table, as it always has.
#[async_trait]
impl AuditStore for DynamoUsageStore {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.audit.append(event).await
    }

    async fn list(
        &self,
        start: &str,
        end: &str,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.audit.list(start, end, limit).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn audit_months_span_the_range_in_order() {
        assert_eq!(
            months_between("2030-11-15", "2031-02-01T00:00:00.000Z").unwrap(),
            ["2030-11", "2030-12", "2031-01", "2031-02"]
        );
        assert!(months_between("", "2031-02").is_err());
    }
}
