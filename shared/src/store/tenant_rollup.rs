//! A tenant's day rollup: every entry of a member (`tenant_id` set) is added, in the same
//! write as the entry, to the rollup of the tenant's owner id as well as to the member's
//! own. The tenant's rollup keeps the user groups (so the user summary and daily code
//! read it unchanged) and, for `last24h`, per hour and `provider/model`:
//! `hour:<HH>|<provider>/<model>` (all counters) and, for errors,
//! `hour_error:<HH>|<provider>/<model>|<class>`. That is at most 24 hours times the
//! models used per day, so the item stays bounded. Users' rollups are unchanged.

use super::health::UNKNOWN_ERROR;
use super::usage::{UsageEntry, UsageStatus, rollup_keys};
use crate::identity::tenant_owner;

pub const HOUR_PREFIX: &str = "hour:";
pub const HOUR_ERROR_PREFIX: &str = "hour_error:";

/// Whether a group is one of the tenant's hourly groups. A backend that writes counters
/// one attribute each skips their zero counters (an absent counter reads as zero), which
/// keeps the tenant's item small.
pub fn is_hourly(group: &str) -> bool {
    group.starts_with(HOUR_PREFIX) || group.starts_with(HOUR_ERROR_PREFIX)
}

/// The rollups an entry is added to: its user's (the user groups) and, for a member, its
/// tenant's (the user groups and the hourly ones), as `(owner id, groups)`.
pub fn rollup_targets(entry: &UsageEntry) -> Vec<(String, Vec<String>)> {
    let mut targets = vec![(entry.user_id.clone(), rollup_keys(entry).to_vec())];
    if let Some(tenant) = &entry.tenant_id {
        let mut groups = rollup_keys(entry).to_vec();
        let hour = entry.timestamp.get(11..13).unwrap_or("00");
        let model = format!("{}/{}", entry.provider, entry.model);
        groups.push(format!("{HOUR_PREFIX}{hour}|{model}"));
        if entry.status == UsageStatus::Error {
            let class = entry.error_type.as_deref().unwrap_or(UNKNOWN_ERROR);
            groups.push(format!("{HOUR_ERROR_PREFIX}{hour}|{model}|{class}"));
        }
        targets.push((tenant_owner(tenant), groups));
    }
    targets
}

/// One hourly group, parsed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourGroup<'a> {
    /// The UTC hour of the rollup's day, 0 to 23.
    pub hour: u32,
    pub provider: &'a str,
    pub model: &'a str,
    /// `Some(class)` for an error group.
    pub error_class: Option<&'a str>,
}

/// Parses `hour:<HH>|<provider>/<model>` or `hour_error:<HH>|<provider>/<model>|<class>`;
/// `None` for any other group.
pub fn parse_hour_group(group: &str) -> Option<HourGroup<'_>> {
    let (rest, is_error) = match group.strip_prefix(HOUR_ERROR_PREFIX) {
        Some(rest) => (rest, true),
        None => (group.strip_prefix(HOUR_PREFIX)?, false),
    };
    let (hour, rest) = rest.split_once('|')?;
    let hour: u32 = hour.parse().ok().filter(|h| *h < 24)?;
    let (model_part, error_class) = if is_error {
        let (m, class) = rest.rsplit_once('|')?;
        (m, Some(class))
    } else {
        (rest, None)
    };
    let (provider, model) = model_part.split_once('/')?;
    Some(HourGroup {
        hour,
        provider,
        model,
        error_class,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Provider;
    use crate::store::conformance::usage_entry;

    #[test]
    fn a_member_entry_also_counts_in_its_tenant_hourly_groups() {
        let mut e = usage_entry(
            "u1",
            "2026-11-20T13:05:00.000Z",
            Provider::Anthropic,
            Some(5),
            UsageStatus::Error,
        );
        assert_eq!(rollup_targets(&e).len(), 1, "no tenant, no tenant rollup");
        e.tenant_id = Some("acme".into());
        let targets = rollup_targets(&e);
        assert_eq!(
            targets[0].1,
            rollup_keys(&e).to_vec(),
            "user groups unchanged"
        );
        assert_eq!(targets[1].0, "tenant/acme");
        let hourly: Vec<&String> = targets[1].1.iter().filter(|g| is_hourly(g)).collect();
        assert_eq!(
            hourly,
            [
                "hour:13|anthropic/claude-3-5-sonnet-20241022",
                "hour_error:13|anthropic/claude-3-5-sonnet-20241022|rate_limited"
            ]
        );
        assert_eq!(
            parse_hour_group(hourly[1]),
            Some(HourGroup {
                hour: 13,
                provider: "anthropic",
                model: "claude-3-5-sonnet-20241022",
                error_class: Some("rate_limited"),
            })
        );
        assert_eq!(
            parse_hour_group("hour:07|openai/meta/llama-3").map(|g| (g.hour, g.model)),
            Some((7, "meta/llama-3"))
        );
        assert_eq!(parse_hour_group("model:gpt-4o"), None);
        assert_eq!(parse_hour_group("hour:24|openai/gpt-4o"), None);
    }
}
