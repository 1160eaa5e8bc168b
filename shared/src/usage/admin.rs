//! Every user's usage, for admins: read through the provider index, one query per
//! provider (or just the one asked for), never a scan of the table.

use super::query::provider;
use super::range::Range;
use super::report::{GroupView, Summary, summary_from, view};
use super::{Totals, UsageError};
use crate::provider::Provider;
use crate::store::UsageStore;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct AdminReport {
    pub summary: Summary,
    /// Totals per user id.
    pub by_user: BTreeMap<String, GroupView>,
    pub range: Range,
    /// Entries read through the index: bounds the cost of the answer.
    pub entries_read: usize,
}

/// The summary over `[start, end)` (by default the last 30 days) of every user, of one
/// provider when `provider` is given.
pub async fn summary(
    usage: &dyn UsageStore,
    start: Option<&str>,
    end: Option<&str>,
    provider_param: Option<&str>,
    now: DateTime<Utc>,
) -> Result<AdminReport, UsageError> {
    let range = Range::parse(start, end, 30, now)?;
    let providers: Vec<Provider> = match provider(provider_param)? {
        Some(p) => vec![p],
        None => Provider::ALL.to_vec(),
    };
    let (from, to) = (range.start_key(), range.end_key());
    let mut groups: BTreeMap<String, Totals> = BTreeMap::new();
    let mut entries_read = 0;
    for p in providers {
        let (g, n) = usage
            .provider_totals(p, &from, &to, now.timestamp())
            .await?;
        entries_read += n;
        for (k, t) in g {
            groups.entry(k).or_default().add(&t);
        }
    }
    let by_user = groups
        .iter()
        .filter_map(|(k, t)| k.strip_prefix("user:").map(|u| (u.to_owned(), view(t))))
        .collect();
    Ok(AdminReport {
        summary: summary_from(&groups),
        by_user,
        range,
        entries_read,
    })
}
