//! The entries route: one page of a user's entries, newest first, filtered, with a
//! `nextToken` bound to the user and to the query's own parameters (see [`super::token`]),
//! and the parameter parsing the other usage reports share.

use super::range::{MAX_RANGE_DAYS, Range};
use super::token::TokenKey;
use super::{UsageEntry, UsageError, UsageStatus};
use crate::provider::{Provider, UnknownProvider};
use crate::store::{StoreError, UsageStore};
use chrono::{DateTime, Utc};

/// The entries route's parameters as the client gave them, empty ones absent. They are
/// parsed here, and a page token is bound to their text.
#[derive(Debug, Clone, Copy, Default)]
pub struct EntriesParams<'a> {
    pub start: Option<&'a str>,
    pub end: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub operation_type: Option<&'a str>,
    pub model: Option<&'a str>,
    pub status: Option<&'a str>,
    pub limit: Option<&'a str>,
    pub next_token: Option<&'a str>,
}

impl EntriesParams<'_> {
    /// The text a `nextToken` is bound to: every parameter that selects entries, so a
    /// token replayed with other filters is refused instead of paging through them.
    fn binding(&self) -> String {
        format!(
            "start={}&end={}&provider={}&operationType={}&model={}&status={}",
            self.start.unwrap_or(""),
            self.end.unwrap_or(""),
            self.provider.unwrap_or(""),
            self.operation_type.unwrap_or(""),
            self.model.unwrap_or(""),
            self.status.unwrap_or(""),
        )
    }
}

/// One page of entries, and the token of the next one if more may follow.
#[derive(Debug, Clone, PartialEq)]
pub struct EntriesPage {
    pub entries: Vec<UsageEntry>,
    pub next_token: Option<String>,
}

/// Store pages one request reads at most to fill a page under a sparse filter.
const MAX_STORE_PAGES: usize = 20;

/// One page of `user_id`'s unexpired entries matching `params`, newest first.
pub async fn entries_page(
    usage: &dyn UsageStore,
    token_key: &TokenKey,
    user_id: &str,
    params: &EntriesParams<'_>,
    now: DateTime<Utc>,
) -> Result<EntriesPage, UsageError> {
    let range = Range::parse(params.start, params.end, MAX_RANGE_DAYS - 1, now)?;
    let filters = Filters::parse(params)?;
    let limit = usize::try_from(whole_number("limit", params.limit, 1, 500, 50)?).unwrap_or(50);
    let bound_to = params.binding();
    let after = params
        .next_token
        .map(|t| token_key.open(user_id, &bound_to, t))
        .transpose()?;
    let (entries, next) = fill_page(
        usage,
        user_id,
        &range,
        &filters,
        limit,
        after,
        now.timestamp(),
    )
    .await?;
    let next_token = next.map(|k| token_key.seal(user_id, &bound_to, &k));
    Ok(EntriesPage {
        entries,
        next_token,
    })
}

/// Reads store pages from `cursor` on until `limit` entries pass the filters, the range
/// ends, or [`MAX_STORE_PAGES`] were read. Returns the entries and the sort key the next
/// page resumes below: always the last key examined, so nothing is skipped or repeated.
async fn fill_page(
    usage: &dyn UsageStore,
    user_id: &str,
    range: &Range,
    filters: &Filters,
    limit: usize,
    mut cursor: Option<String>,
    now_unix: i64,
) -> Result<(Vec<UsageEntry>, Option<String>), StoreError> {
    let (start, end) = (range.start_key(), range.end_key());
    let mut out: Vec<UsageEntry> = Vec::with_capacity(limit);
    for pages_read in 1..=MAX_STORE_PAGES {
        let (page, more) = usage
            .entries(user_id, &start, &end, limit.max(100), cursor.as_deref())
            .await?;
        let read = page.len();
        let mut filled_at = None;
        for (i, e) in page.into_iter().enumerate() {
            // The store's sort key: the next page continues below it.
            cursor = Some(e.sort_key());
            if e.ttl > now_unix && filters.matches(&e) {
                out.push(e);
                if out.len() == limit {
                    filled_at = Some(i);
                    break;
                }
            }
        }
        if out.len() == limit {
            let unread_here = filled_at.is_some_and(|i| i + 1 < read);
            let next = if unread_here || more.is_some() {
                cursor
            } else {
                None
            };
            return Ok((out, next));
        }
        if more.is_none() {
            return Ok((out, None));
        }
        if pages_read == MAX_STORE_PAGES {
            return Ok((out, cursor));
        }
    }
    Ok((out, None))
}

/// What the entries route filters on. Filters are applied after reading, so a sparse
/// one may need several store pages per answer (bounded by [`MAX_STORE_PAGES`]).
struct Filters {
    provider: Option<Provider>,
    operation: Option<String>,
    model: Option<String>,
    status: Option<UsageStatus>,
}

impl Filters {
    fn parse(p: &EntriesParams<'_>) -> Result<Filters, UsageError> {
        let provider = provider(p.provider)?;
        let status = match p.status {
            None => None,
            Some("success") => Some(UsageStatus::Success),
            Some("error") => Some(UsageStatus::Error),
            Some("cached") => Some(UsageStatus::Cached),
            Some(_) => {
                return Err(UsageError::invalid(
                    "status",
                    "must be success, error or cached",
                ));
            }
        };
        let bounded = |name: &str, value: Option<&str>| -> Result<Option<String>, UsageError> {
            match value {
                Some(v) if v.len() > 128 => {
                    Err(UsageError::invalid(name, "is longer than 128 characters"))
                }
                other => Ok(other.map(str::to_owned)),
            }
        };
        Ok(Filters {
            provider,
            operation: bounded("operationType", p.operation_type)?,
            model: bounded("model", p.model)?,
            status,
        })
    }

    fn matches(&self, e: &UsageEntry) -> bool {
        self.provider.is_none_or(|p| p == e.provider)
            && self
                .operation
                .as_deref()
                .is_none_or(|o| o == e.operation_type)
            && self.model.as_deref().is_none_or(|m| m == e.model)
            && self.status.is_none_or(|s| s == e.status)
    }
}

/// An optional `provider` parameter.
pub fn provider(value: Option<&str>) -> Result<Option<Provider>, UsageError> {
    value
        .map(|v| {
            v.parse()
                .map_err(|e: UnknownProvider| UsageError::invalid("provider", e.to_string()))
        })
        .transpose()
}

/// An optional whole-number parameter within `min..=max`.
pub fn whole_number(
    field: &str,
    value: Option<&str>,
    min: i64,
    max: i64,
    default: i64,
) -> Result<i64, UsageError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                UsageError::invalid(field, format!("must be a whole number from {min} to {max}"))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    fn entry(i: usize, provider: Provider, now: DateTime<Utc>) -> UsageEntry {
        UsageEntry {
            user_id: "alice".into(),
            timestamp: super::super::timestamp(now - chrono::Duration::seconds(i as i64 + 1)),
            request_id: format!("req-{i:04}"),
            provider,
            model: "m".into(),
            operation_type: "conversation".into(),
            input_tokens: 1,
            output_tokens: 1,
            cached_input_tokens: 0,
            total_tokens: 2,
            cost_usd: None,
            latency_ms: 1.0,
            status: UsageStatus::Success,
            error_type: None,
            price_version: "test".into(),
            metadata: Default::default(),
            key_source: None,
            tenant_id: None,
            ttl: now.timestamp() + 3600,
        }
    }

    /// A filter that matches nothing in the first 20 store pages answers with what it
    /// found and a token to go on, instead of reading the whole range in one request;
    /// following the tokens finds the one match, exactly once.
    #[tokio::test]
    async fn a_sparse_filter_reads_a_bounded_number_of_store_pages() {
        let db = SqliteStore::open_in_memory().unwrap();
        let now = Utc::now();
        // limit 1 reads store pages of 100: the match sits past 20 of them.
        let n = 100 * MAX_STORE_PAGES + 50;
        let batch: Vec<_> = (0..n)
            .map(|i| {
                let p = if i == n - 1 {
                    Provider::Google
                } else {
                    Provider::OpenAi
                };
                (entry(i, p, now), None)
            })
            .collect();
        db.record_batch(&batch).await.unwrap();
        let key = TokenKey::new(b"k");
        let mut params = EntriesParams {
            provider: Some("google"),
            limit: Some("1"),
            ..Default::default()
        };
        let first = entries_page(&db, &key, "alice", &params, now)
            .await
            .unwrap();
        assert!(first.entries.is_empty());
        let token = first.next_token.expect("a token after 20 empty pages");
        params.next_token = Some(&token);
        let second = entries_page(&db, &key, "alice", &params, now)
            .await
            .unwrap();
        assert_eq!(second.entries.len(), 1);
        assert_eq!(second.entries[0].request_id, format!("req-{:04}", n - 1));
        assert_eq!(second.next_token, None);
    }

    #[test]
    fn parameters_are_checked_by_name() {
        let bad = |p: EntriesParams<'_>| Filters::parse(&p).err().map(|e| e.to_string());
        assert_eq!(
            bad(EntriesParams {
                status: Some("done"),
                ..Default::default()
            }),
            Some("status: must be success, error or cached".into())
        );
        let long = "x".repeat(129);
        assert_eq!(
            bad(EntriesParams {
                model: Some(&long),
                ..Default::default()
            }),
            Some("model: is longer than 128 characters".into())
        );
        assert!(provider(Some("acme")).is_err());
        assert_eq!(whole_number("limit", None, 1, 500, 50).unwrap(), 50);
        assert!(whole_number("limit", Some("0"), 1, 500, 50).is_err());
        assert!(whole_number("limit", Some("2.5"), 1, 500, 50).is_err());
    }
}
