//! The Lambdas' sink: each observation as one CloudWatch Embedded Metric Format line on
//! stdout, which the Lambda runtime ships to CloudWatch Logs and CloudWatch turns into
//! metrics (no API call, no IAM permission beyond the log group every function has).
//! Dimensions are the same bounded labels as `/metrics` (the status as its class, so the
//! metric count stays small); a Lambda has no queue of its own, so there are no gauges.

use super::{Observation, Sink, outcome_label, status_class};
use serde_json::{Value, json};
use std::io::Write;

/// The CloudWatch namespace every metric goes to.
pub const NAMESPACE: &str = "LlmGateway";

type Out = Box<dyn Fn(&str) + Send + Sync>;

pub struct Emf {
    out: Out,
}

impl Emf {
    /// Lines to stdout.
    pub fn stdout() -> Emf {
        Emf::to(Box::new(|line: &str| {
            let mut o = std::io::stdout().lock();
            // A metric line that cannot be written must not fail the request.
            let _ = writeln!(o, "{line}");
        }))
    }

    /// Lines to `out` (tests).
    pub fn to(out: Out) -> Emf {
        Emf { out }
    }
}

impl Sink for Emf {
    fn observe(&self, o: &Observation<'_>) {
        let now = chrono::Utc::now().timestamp_millis();
        (self.out)(&line(o, now).to_string());
    }
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The EMF document of one observation at `timestamp_ms`.
pub fn line(o: &Observation<'_>, timestamp_ms: i64) -> Value {
    let (dimensions, metrics, mut fields): (&[&str], &[(&str, &str)], Value) = match *o {
        Observation::Request {
            route,
            method,
            status,
            latency,
        } => (
            &["Route", "Method", "StatusClass"],
            &[("Requests", "Count"), ("Latency", "Milliseconds")],
            json!({"Route": route, "Method": method, "StatusClass": status_class(status),
                   "Status": status, "Requests": 1, "Latency": ms(latency)}),
        ),
        Observation::Attempt {
            provider,
            error,
            latency,
        } => (
            &["Provider", "Outcome"],
            &[
                ("UpstreamAttempts", "Count"),
                ("UpstreamErrors", "Count"),
                ("UpstreamLatency", "Milliseconds"),
            ],
            json!({"Provider": provider.as_str(), "Outcome": outcome_label(error),
                   "UpstreamAttempts": 1, "UpstreamErrors": u8::from(error.is_some()),
                   "UpstreamLatency": ms(latency)}),
        ),
        Observation::Refused(why) => (
            &["Reason"],
            &[("Refusals", "Count")],
            json!({"Reason": why.as_str(), "Refusals": 1}),
        ),
        Observation::CacheHit => (&[], &[("CacheHits", "Count")], json!({"CacheHits": 1})),
        Observation::UsageRecord { recorded } => (
            &["Result"],
            &[("UsageRecords", "Count")],
            json!({"Result": if recorded { "recorded" } else { "failed" }, "UsageRecords": 1}),
        ),
    };
    let metrics: Vec<Value> = metrics
        .iter()
        .map(|(name, unit)| json!({"Name": name, "Unit": unit}))
        .collect();
    fields["_aws"] = json!({
        "Timestamp": timestamp_ms,
        "CloudWatchMetrics": [{
            "Namespace": NAMESPACE,
            "Dimensions": [dimensions],
            "Metrics": metrics,
        }],
    });
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::provider::Provider;
    use crate::providers::ErrorKind;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Every declared metric and dimension is a member of the document, as EMF requires.
    fn assert_well_formed(v: &Value) {
        let spec = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], NAMESPACE);
        assert!(v["_aws"]["Timestamp"].as_i64().is_some());
        for d in spec["Dimensions"][0].as_array().unwrap() {
            assert!(v[d.as_str().unwrap()].is_string(), "dimension {d} in {v}");
        }
        for m in spec["Metrics"].as_array().unwrap() {
            assert!(
                v[m["Name"].as_str().unwrap()].is_number(),
                "metric {m} in {v}"
            );
            assert!(m["Unit"].is_string());
        }
    }

    #[test]
    fn a_request_is_one_line_with_bounded_dimensions() {
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let m = Metrics::to(Arc::new(Emf::to(Box::new(move |l: &str| {
            sink.lock().unwrap().push(l.to_owned());
        }))));
        m.observe(Observation::Request {
            route: "/v1/generate",
            method: "POST",
            status: 402,
            latency: Duration::from_millis(12),
        });
        m.attempt(
            Provider::Anthropic,
            Some(ErrorKind::Timeout),
            Duration::from_millis(3),
        );
        m.cache_hit();
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 3);
        let v: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_well_formed(&v);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Route", "Method", "StatusClass"]])
        );
        assert_eq!(v["Route"], "/v1/generate");
        assert_eq!(v["StatusClass"], "4xx");
        assert_eq!(v["Requests"], 1);
        assert_eq!(v["Latency"], 12);
        let a: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_well_formed(&a);
        assert_eq!(a["Outcome"], "timeout");
        assert_eq!(a["UpstreamErrors"], 1);
        let c: Value = serde_json::from_str(&lines[2]).unwrap();
        assert_well_formed(&c);
        assert_eq!(c["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
    }
}
