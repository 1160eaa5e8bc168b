//! The `llm-usage` function's router: entries, summary, daily trend, budget, export.

use super::AppState;
use super::extract::UserId;
use crate::error::ApiError;
use crate::identity::Caller;
use crate::money::NanoUsd;
use crate::provider::Provider;
use crate::store::{BudgetStore, UsageStore};
use crate::usage::range::{Range, day_start};
use crate::usage::report::{daily_rows, group_totals, projected, summary_from};
use crate::usage::token::TokenKey;
use crate::usage::{UsageEntry, UsageStatus};
use axum::body::Body;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone)]
pub struct UsageState {
    pub app: AppState,
    pub usage: Arc<dyn UsageStore>,
    pub budgets: Arc<dyn BudgetStore>,
    pub token_key: TokenKey,
}

impl FromRef<UsageState> for AppState {
    fn from_ref(st: &UsageState) -> AppState {
        st.app.clone()
    }
}

pub fn usage_router(state: UsageState) -> Router {
    Router::new()
        .route("/api/llm-usage/{user_id}", get(entries))
        .route("/api/llm-usage/{user_id}/summary", get(summary))
        .route("/api/llm-usage/{user_id}/daily", get(daily))
        .route("/api/llm-usage/{user_id}/budget", get(budget))
        .route("/api/llm-usage/{user_id}/export", get(export))
        .route("/api/admin/usage/summary", get(admin_summary))
        .with_state(state)
}

/// Query parameters, each checked by name: an unknown one is a 400, not ignored.
struct Params(BTreeMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(query)?;
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            if map.insert(k.clone(), v).is_some() {
                return Err(ApiError::invalid(k, "is given more than once"));
            }
        }
        Ok(Params(map))
    }
}

fn serde_urlencoded_pairs(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::invalid("query", "is not a valid query string"))?,
    )
    .map(|q| q.0)
    .map_err(|_| ApiError::invalid("query", "is not a valid query string"))
}

impl Params {
    fn allow(&self, names: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !names.contains(&k.as_str())) {
            Some(k) => Err(ApiError::invalid(
                k.clone(),
                format!("unknown parameter; expected one of: {}", names.join(", ")),
            )),
            None => Ok(()),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn number(&self, name: &str, min: i64, max: i64, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(name, format!("must be a whole number from {min} to {max}"))
                }),
        }
    }

    fn range(&self, default_days: i64) -> Result<Range, ApiError> {
        Range::parse(
            self.get("start"),
            self.get("end"),
            default_days,
            chrono::Utc::now(),
        )
    }
}

/// The filters of the entries route, and the text a `nextToken` is bound to.
struct Filters {
    provider: Option<Provider>,
    operation: Option<String>,
    model: Option<String>,
    status: Option<UsageStatus>,
}

impl Filters {
    fn parse(p: &Params) -> Result<Filters, ApiError> {
        let provider = p
            .get("provider")
            .map(|v| {
                v.parse().map_err(|e: crate::provider::UnknownProvider| {
                    ApiError::invalid("provider", e.to_string())
                })
            })
            .transpose()?;
        let status = match p.get("status") {
            None => None,
            Some("success") => Some(UsageStatus::Success),
            Some("error") => Some(UsageStatus::Error),
            Some("cached") => Some(UsageStatus::Cached),
            Some(_) => {
                return Err(ApiError::invalid(
                    "status",
                    "must be success, error or cached",
                ));
            }
        };
        let bounded = |name: &str| -> Result<Option<String>, ApiError> {
            match p.get(name) {
                Some(v) if v.len() > 128 => {
                    Err(ApiError::invalid(name, "is longer than 128 characters"))
                }
                other => Ok(other.map(str::to_owned)),
            }
        };
        Ok(Filters {
            provider,
            operation: bounded("operationType")?,
            model: bounded("model")?,
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

fn sort_key(e: &UsageEntry) -> String {
    e.sort_key()
}

async fn entries(
    caller: Caller,
    UserId(user_id): UserId,
    State(st): State<UsageState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    caller.authorize_user(&user_id)?;
    params.allow(&[
        "start",
        "end",
        "provider",
        "operationType",
        "model",
        "status",
        "limit",
        "nextToken",
    ])?;
    let range = params.range(crate::usage::range::MAX_RANGE_DAYS - 1)?;
    let filters = Filters::parse(&params)?;
    let limit = usize::try_from(params.number("limit", 1, 500, 50)?).unwrap_or(50);
    let bound_to = format!(
        "start={}&end={}&provider={}&operationType={}&model={}&status={}",
        params.get("start").unwrap_or(""),
        params.get("end").unwrap_or(""),
        params.get("provider").unwrap_or(""),
        params.get("operationType").unwrap_or(""),
        params.get("model").unwrap_or(""),
        params.get("status").unwrap_or(""),
    );
    let mut before = params
        .get("nextToken")
        .map(|t| st.token_key.open(&user_id, &bound_to, t))
        .transpose()?;
    let now = chrono::Utc::now().timestamp();
    let (start, end) = (range.start_key(), range.end_key());
    let mut out: Vec<UsageEntry> = Vec::with_capacity(limit);
    // Filters are applied here, so a sparse filter may need several store pages: a
    // bounded number per request. `cursor` is always the last key read, so the next
    // token resumes exactly after what this page has examined.
    let mut cursor = before.take();
    let mut next: Option<String> = None;
    for pages_read in 1..=20 {
        let (page, more) = st
            .usage
            .entries(&user_id, &start, &end, limit.max(100), cursor.as_deref())
            .await?;
        let read = page.len();
        let mut filled_at = None;
        for (i, e) in page.into_iter().enumerate() {
            cursor = Some(sort_key(&e));
            if e.ttl > now && filters.matches(&e) {
                out.push(e);
                if out.len() == limit {
                    filled_at = Some(i);
                    break;
                }
            }
        }
        let unread_here = filled_at.is_some_and(|i| i + 1 < read);
        if out.len() == limit {
            next = (unread_here || more.is_some())
                .then(|| cursor.clone())
                .flatten();
            break;
        }
        if more.is_none() {
            break;
        }
        if pages_read == 20 {
            next = cursor.clone();
        }
    }
    let next_token = next.map(|k| st.token_key.seal(&user_id, &bound_to, &k));
    Ok(Json(json!({"entries": out, "nextToken": next_token})))
}

async fn summary(
    caller: Caller,
    UserId(user_id): UserId,
    State(st): State<UsageState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    caller.authorize_user(&user_id)?;
    params.allow(&["start", "end"])?;
    let range = match (params.get("start"), params.get("end")) {
        (None, None) => Range::last_days(30, chrono::Utc::now()),
        _ => params.range(30)?,
    };
    let (groups, stats) = group_totals(
        st.usage.as_ref(),
        &user_id,
        &range,
        chrono::Utc::now().timestamp(),
    )
    .await?;
    let mut body = serde_json::to_value(summary_from(&groups)).map_err(ApiError::internal)?;
    body["start"] = json!(range.start_key());
    body["end"] = json!(range.end_key());
    // What was read to answer: one rollup item per day, entries only for partial days.
    body["read"] = json!(stats);
    Ok(Json(body))
}

async fn daily(
    caller: Caller,
    UserId(user_id): UserId,
    State(st): State<UsageState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    caller.authorize_user(&user_id)?;
    params.allow(&["days"])?;
    let days = params.number("days", 1, 396, 30)?;
    let today = day_start(chrono::Utc::now());
    let from = today - chrono::Duration::days(days - 1);
    let rollups = st
        .usage
        .rollups(
            &user_id,
            &crate::usage::range::day_key(from),
            &crate::usage::range::day_key(today),
        )
        .await?;
    Ok(Json(json!({"days": daily_rows(&rollups, today, days)})))
}

async fn budget(
    caller: Caller,
    UserId(user_id): UserId,
    State(st): State<UsageState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    caller.authorize_user(&user_id)?;
    params.allow(&[])?;
    let now = chrono::Utc::now();
    let month = crate::usage::month_of(now);
    let settings = crate::settings::service::read(st.app.settings.as_ref(), &user_id).await?;
    let counters = st.budgets.month(&user_id, &month, now.timestamp()).await?;
    let limit = settings.preferences.monthly_budget_usd;
    let remaining = limit.map(|l| NanoUsd((l.0 - counters.spent.0 - counters.reserved.0).max(0)));
    Ok(Json(json!({
        "month": month,
        "limit_usd": limit,
        "spent_usd": counters.spent,
        "reserved_usd": counters.reserved,
        "remaining_usd": remaining,
        "projected_usd": projected(counters.spent, now),
        "alerted_thresholds": st.budgets.alerted(&user_id, &month).await?,
    })))
}

/// Every user's usage, for admins: read through the provider index, one query per
/// provider (or just the one asked for), never a scan of the table.
async fn admin_summary(
    caller: Caller,
    State(st): State<UsageState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    params.allow(&["start", "end", "provider"])?;
    let range = params.range(30)?;
    let providers: Vec<Provider> = match params.get("provider") {
        Some(p) => vec![p.parse().map_err(|e: crate::provider::UnknownProvider| {
            ApiError::invalid("provider", e.to_string())
        })?],
        None => Provider::ALL.to_vec(),
    };
    let now = chrono::Utc::now().timestamp();
    let mut groups = BTreeMap::new();
    let mut read = 0;
    for p in providers {
        let (g, n) = st
            .usage
            .provider_totals(p, &range.start_key(), &range.end_key(), now)
            .await?;
        read += n;
        for (k, t) in g {
            groups
                .entry(k)
                .or_insert_with(crate::usage::Totals::default)
                .add(&t);
        }
    }
    let mut body = serde_json::to_value(summary_from(&groups)).map_err(ApiError::internal)?;
    let by_user: BTreeMap<&str, Value> = groups
        .iter()
        .filter_map(|(k, t)| k.strip_prefix("user:").map(|u| (u, json!({"requests": t.requests, "tokens": t.tokens, "cost_usd": NanoUsd(t.cost_nanos)}))))
        .collect();
    body["by_user"] = json!(by_user);
    body["start"] = json!(range.start_key());
    body["end"] = json!(range.end_key());
    body["entries_read"] = json!(read);
    Ok(Json(body))
}

const CSV_COLUMNS: [&str; 16] = [
    "user_id",
    "timestamp",
    "request_id",
    "provider",
    "model",
    "operation_type",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "total_tokens",
    "cost_usd",
    "latency_ms",
    "status",
    "error_type",
    "price_version",
    "metadata",
];

/// RFC 4180 quoting, and text that a spreadsheet would run as a formula is defused.
fn csv_field(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

fn csv_row(e: &UsageEntry) -> String {
    let cost = e
        .cost_usd
        .map(|c| c.to_decimal().to_string())
        .unwrap_or_default();
    let metadata = serde_json::to_string(&e.metadata).unwrap_or_default();
    let fields = [
        csv_field(&e.user_id),
        csv_field(&e.timestamp),
        csv_field(&e.request_id),
        e.provider.to_string(),
        csv_field(&e.model),
        csv_field(&e.operation_type),
        e.input_tokens.to_string(),
        e.output_tokens.to_string(),
        e.cached_input_tokens.to_string(),
        e.total_tokens.to_string(),
        cost,
        e.latency_ms.to_string(),
        e.status.as_str().to_owned(),
        csv_field(e.error_type.as_deref().unwrap_or("")),
        csv_field(&e.price_version),
        csv_field(&metadata),
    ];
    let mut line = fields.join(",");
    line.push_str("\r\n");
    line
}

/// Every entry in range, newest first, streamed page by page: never built in memory.
async fn export(
    caller: Caller,
    UserId(user_id): UserId,
    State(st): State<UsageState>,
    params: Params,
) -> Result<Response, ApiError> {
    caller.authorize_user(&user_id)?;
    params.allow(&["start", "end", "format"])?;
    let csv = match params.get("format").unwrap_or("csv") {
        "csv" => true,
        "ndjson" => false,
        _ => return Err(ApiError::invalid("format", "must be csv or ndjson")),
    };
    let range = params.range(30)?;
    let now = chrono::Utc::now().timestamp();
    let (start, end) = (range.start_key(), range.end_key());
    let header_row = csv.then(|| Bytes::from(format!("{}\r\n", CSV_COLUMNS.join(","))));
    struct Cursor {
        before: Option<String>,
        done: bool,
    }
    let usage = st.usage.clone();
    let user = user_id.clone();
    let pages = futures_util::stream::unfold(
        Cursor {
            before: None,
            done: false,
        },
        move |mut cur| {
            let (usage, user, start, end) =
                (usage.clone(), user.clone(), start.clone(), end.clone());
            async move {
                if cur.done {
                    return None;
                }
                match usage
                    .entries(&user, &start, &end, 500, cur.before.as_deref())
                    .await
                {
                    Ok((page, next)) => {
                        let mut chunk = String::new();
                        for e in page.iter().filter(|e| e.ttl > now) {
                            if csv {
                                chunk.push_str(&csv_row(e));
                            } else if let Ok(line) = serde_json::to_string(e) {
                                chunk.push_str(&line);
                                chunk.push('\n');
                            }
                        }
                        cur.done = next.is_none();
                        cur.before = next;
                        Some((
                            Ok::<Bytes, std::convert::Infallible>(Bytes::from(chunk)),
                            cur,
                        ))
                    }
                    Err(e) => {
                        // Mid-stream the status is sent already: end the body and say why in the log.
                        tracing::error!(error = %e, "export stopped early");
                        None
                    }
                }
            }
        },
    );
    use futures_util::StreamExt;
    let body = futures_util::stream::iter(header_row.map(Ok)).chain(pages);
    let mut response = Body::from_stream(body).into_response();
    let (content_type, ext) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/x-ndjson", "ndjson")
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"usage.{ext}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
    }
}
