//! What the gateway counts about itself: requests and their latency per route, upstream
//! attempts by provider and error class, refusals, cache hits, usage records, and the
//! depth of its queues. Every label comes from a small closed set (route templates,
//! methods, status codes, providers, error kinds): never a user, key, tenant or prompt,
//! for privacy and so the series stay few.
//!
//! The engine and the HTTP layer report [`Observation`]s to a [`Metrics`] handle; where
//! they go depends on the shape: llm-local aggregates them for `GET /metrics`
//! ([`prometheus::Registry`]), a Lambda writes each as a CloudWatch EMF line
//! ([`emf::Emf`]), and tests or a disabled setup drop them ([`Metrics::off`]).

pub mod emf;
pub mod prometheus;

use crate::provider::Provider;
use crate::providers::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

/// Why the gateway itself refused a request before any provider was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// 402 `budget_exceeded`: the user's (or tenant's) monthly budget.
    Budget,
    /// 429 `rate_limited` from the gateway's own per-user limits (not a provider's).
    RateLimit,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Budget => "budget_exceeded",
            Refusal::RateLimit => "rate_limited",
        }
    }
}

/// One thing that happened, with its bounded labels only.
#[derive(Debug, Clone, Copy)]
pub enum Observation<'a> {
    /// One HTTP request answered. `route` is the matched template (`/v1/generate`), or
    /// `unmatched` for paths no route knows (never the raw path: callers choose it).
    Request {
        route: &'a str,
        method: &'static str,
        status: u16,
        latency: Duration,
    },
    /// One call to a provider: `None` when it answered, else the class of its failure.
    Attempt {
        provider: Provider,
        error: Option<ErrorKind>,
        latency: Duration,
    },
    Refused(Refusal),
    CacheHit,
    /// A request's usage entry made durable (`true`), or not (`false`).
    UsageRecord {
        recorded: bool,
    },
}

/// Where observations go.
pub trait Sink: Send + Sync {
    fn observe(&self, o: &Observation<'_>);
}

/// The handle the routers and the engine hold. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    sink: Option<Arc<dyn Sink>>,
}

impl Metrics {
    /// Drops every observation (`LLM_METRICS=off`, tests).
    pub fn off() -> Metrics {
        Metrics { sink: None }
    }

    pub fn to(sink: Arc<dyn Sink>) -> Metrics {
        Metrics { sink: Some(sink) }
    }

    pub fn observe(&self, o: Observation<'_>) {
        if let Some(s) = &self.sink {
            s.observe(&o);
        }
    }

    pub fn attempt(&self, provider: Provider, error: Option<ErrorKind>, latency: Duration) {
        self.observe(Observation::Attempt {
            provider,
            error,
            latency,
        });
    }

    pub fn refused(&self, why: Refusal) {
        self.observe(Observation::Refused(why));
    }

    pub fn cache_hit(&self) {
        self.observe(Observation::CacheHit);
    }

    pub fn usage_record(&self, recorded: bool) {
        self.observe(Observation::UsageRecord { recorded });
    }
}

/// `LLM_METRICS=off` (or `false`, `0`) turns every sink off.
pub fn enabled_by_env() -> bool {
    !std::env::var("LLM_METRICS").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "off" | "false" | "0" | "no"
        )
    })
}

/// A Lambda's metrics: EMF lines on stdout, unless `LLM_METRICS=off`.
pub fn lambda_metrics() -> Metrics {
    if enabled_by_env() {
        Metrics::to(Arc::new(emf::Emf::stdout()))
    } else {
        Metrics::off()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::off()
    }
}

/// A request method as a label: the standard ones by name, anything else (a client may
/// send any token as a method) as `other`.
pub fn method_label(m: &http::Method) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    KNOWN
        .into_iter()
        .find(|k| *k == m.as_str())
        .unwrap_or("other")
}

/// The label of an attempt's outcome: `success`, or the provider error class.
pub fn outcome_label(error: Option<ErrorKind>) -> &'static str {
    error.map_or("success", ErrorKind::as_str)
}

/// `2xx`, `4xx`, ...: the status class, for dimensions that must stay few (EMF).
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_collapse_to_one_label() {
        assert_eq!(method_label(&http::Method::POST), "POST");
        let odd = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "other");
        assert_eq!(status_class(402), "4xx");
        assert_eq!(status_class(504), "5xx");
        assert_eq!(outcome_label(None), "success");
        assert_eq!(outcome_label(Some(ErrorKind::ServerError)), "server_error");
    }
}
