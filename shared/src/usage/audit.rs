//! `GET /api/admin/audit`: the audit log, newest first, filtered by actor, target and
//! action, over at most the 13 months it is kept, in pages whose `nextToken` is signed
//! and bound to the filters it was issued for.

use super::UsageError;
use super::query::whole_number;
use super::range::{MAX_RANGE_DAYS, Range};
use super::token::TokenKey;
use crate::store::{AUDIT_RETENTION_DAYS, AuditEvent, AuditQuery, AuditStore};
use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Default)]
pub struct AuditParams<'a> {
    pub actor: Option<&'a str>,
    pub target: Option<&'a str>,
    pub action: Option<&'a str>,
    pub start: Option<&'a str>,
    pub end: Option<&'a str>,
    pub limit: Option<&'a str>,
    pub next_token: Option<&'a str>,
}

/// Tokens are sealed for this "user": they open on this route only.
const TOKEN_SCOPE: &str = "admin-audit";

pub async fn page(
    audit: &dyn AuditStore,
    key: &TokenKey,
    p: &AuditParams<'_>,
    now: DateTime<Utc>,
) -> Result<(Vec<AuditEvent>, Option<String>), UsageError> {
    // Up to a second ahead by default: an event stamped this millisecond is included.
    let end = p.end.map(str::to_owned);
    let default_end = super::timestamp(now + Duration::seconds(1));
    let range = Range::parse(
        p.start,
        Some(end.as_deref().unwrap_or(&default_end)),
        AUDIT_RETENTION_DAYS.min(MAX_RANGE_DAYS),
        now,
    )?;
    for (field, v) in [
        ("actor", p.actor),
        ("target", p.target),
        ("action", p.action),
    ] {
        if v.is_some_and(|v| v.len() > 256) {
            return Err(UsageError::invalid(field, "at most 256 characters"));
        }
    }
    let limit = usize::try_from(whole_number("limit", p.limit, 1, 500, 100)?).unwrap_or(100);
    // Bound to the parameters as given (a default range moves with the clock; the
    // cursor keeps later pages below the first).
    let bound_to = format!(
        "actor={:?}&target={:?}&action={:?}&start={:?}&end={:?}&limit={limit}",
        p.actor, p.target, p.action, p.start, p.end
    );
    let before = p
        .next_token
        .map(|t| key.open(TOKEN_SCOPE, &bound_to, t))
        .transpose()?;
    let q = AuditQuery {
        actor: p.actor.map(str::to_owned),
        target: p.target.map(str::to_owned),
        action: p.action.map(str::to_owned),
        start: range.start_key(),
        end: range.end_key(),
        limit,
        before,
    };
    let (events, next) = audit.query(&q).await?;
    Ok((events, next.map(|c| key.seal(TOKEN_SCOPE, &bound_to, &c))))
}
