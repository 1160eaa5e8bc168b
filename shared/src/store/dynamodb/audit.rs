//! The audit table: pk `month` (`YYYY-MM` of the event), sk `<timestamp>#<id>`; a range
//! is listed by querying each month's partition in order.

use super::{
    DynamoUsageStore, Item, backend, build_error, corrupt, n, names, query_all, s, string, values,
};
use crate::store::{AuditEvent, AuditQuery, AuditStore, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
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

/// The item of an event: the event's fields, its partition `month`, its sort key, and
/// the TTL that ends it after the retention.
pub(super) fn audit_item(event: &AuditEvent) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(event).map_err(corrupt)?;
    item.insert(
        "month".to_owned(),
        s(event.timestamp.get(..7).unwrap_or("")),
    );
    item.insert("sk".to_owned(), s(event.sort_key()));
    item.insert("ttl".to_owned(), n(event.expires_unix()));
    Ok(item)
}

/// Audit events as `Put`s of a caller's transaction (the change they describe).
pub(super) fn audit_puts(
    table: &str,
    events: &[AuditEvent],
) -> Result<Vec<TransactWriteItem>, StoreError> {
    events
        .iter()
        .map(|e| {
            let put = Put::builder()
                .table_name(table)
                .set_item(Some(audit_item(e)?))
                .build()
                .map_err(build_error)?;
            Ok(TransactWriteItem::builder().put(put).build())
        })
        .collect()
}

#[async_trait]
impl AuditStore for DynamoAuditStore {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(audit_item(event)?))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn query(&self, q: &AuditQuery) -> Result<(Vec<AuditEvent>, Option<String>), StoreError> {
        if q.limit == 0 || q.start >= q.end {
            return Ok((Vec::new(), None));
        }
        // The upper bound: below the cursor when there is one, else below `end`.
        let upper = match &q.before {
            Some(b) if b.as_str() < q.end.as_str() => b.clone(),
            _ => q.end.clone(),
        };
        let filtered = q.actor.is_some() || q.target.is_some() || q.action.is_some();
        let mut events = Vec::new();
        let mut months = months_between(&q.start, &upper)?;
        months.reverse();
        for month in months {
            // BETWEEN is inclusive: an item whose sk is exactly `upper` is dropped below.
            // Filters are applied here, so a filtered page reads its months whole.
            let want = (!filtered).then(|| q.limit + 1 - events.len());
            let items = query_all(
                &self.client,
                &self.table,
                "#pk = :m AND #sk BETWEEN :start AND :upper",
                &names(&[("#pk", "month"), ("#sk", "sk")]),
                &values(vec![
                    (":m", s(month)),
                    (":start", s(q.start.as_str())),
                    (":upper", s(upper.as_str())),
                ]),
                false,
                want,
            )
            .await?;
            for item in items {
                if string(&item, "sk")? >= upper.as_str() {
                    continue;
                }
                let event = serde_dynamo::from_item::<_, AuditEvent>(item).map_err(corrupt)?;
                if !event.matches(q) {
                    continue;
                }
                events.push(event);
                if events.len() > q.limit {
                    events.truncate(q.limit);
                    let next = events.last().map(AuditEvent::sort_key);
                    return Ok((events, next));
                }
            }
        }
        Ok((events, None))
    }
}

/// The usage store also answers for its audit table, as it always has.
#[async_trait]
impl AuditStore for DynamoUsageStore {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.audit.append(event).await
    }

    async fn query(&self, q: &AuditQuery) -> Result<(Vec<AuditEvent>, Option<String>), StoreError> {
        self.audit.query(q).await
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
