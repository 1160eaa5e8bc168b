//! The aggregating sink behind llm-local's `GET /metrics`, and its Prometheus text
//! exposition (format 0.0.4). Hand-written: a dozen families with fixed label sets need
//! a map and a formatter, less code than adapting a metrics crate's registry and types.

use super::{Observation, Sink, outcome_label};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// What `/metrics` answers with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the latency buckets, in milliseconds (rendered in seconds): from a
/// cached answer (a few ms) to the 28 s request deadline.
const BUCKETS_MS: [u64; 12] = [
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000,
];

#[derive(Default, Clone)]
struct Histogram {
    /// Observations per bucket, not cumulative (the exposition sums them).
    buckets: [u64; BUCKETS_MS.len()],
    count: u64,
    /// In microseconds: integer, so the sum never drifts.
    sum_micros: u64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        // `le` is inclusive: 5 ms falls in the 0.005 bucket.
        if let Some(i) = BUCKETS_MS.iter().position(|b| ms <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_micros = self
            .sum_micros
            .saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }
}

#[derive(Default)]
struct RouteStats {
    by_status: BTreeMap<(&'static str, u16), u64>,
    latency: BTreeMap<&'static str, Histogram>,
}

#[derive(Default)]
struct Counts {
    /// By route template: a closed set (the routers' templates and `unmatched`).
    routes: BTreeMap<String, RouteStats>,
    attempts: BTreeMap<(&'static str, &'static str), u64>,
    attempt_latency: BTreeMap<&'static str, Histogram>,
    refusals: BTreeMap<&'static str, u64>,
    cache_hits: u64,
    usage_records: BTreeMap<&'static str, u64>,
}

/// A value read when `/metrics` is scraped (a queue's depth).
struct Gauge {
    name: &'static str,
    help: &'static str,
    read: Box<dyn Fn() -> u64 + Send + Sync>,
}

/// Every observation of this process, summed.
#[derive(Default)]
pub struct Registry {
    counts: Mutex<Counts>,
    gauges: Mutex<Vec<Gauge>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds a gauge, read at each scrape (`name` must be a valid metric name).
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> u64 + Send + Sync + 'static,
    ) {
        let mut g = self.gauges.lock().unwrap_or_else(|e| e.into_inner());
        g.push(Gauge {
            name,
            help,
            read: Box::new(read),
        });
    }

    /// The Prometheus text exposition of everything so far.
    pub fn render(&self) -> String {
        let mut out = String::new();
        {
            let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            render_counts(&c, &mut out);
        }
        let gauges = self.gauges.lock().unwrap_or_else(|e| e.into_inner());
        for g in gauges.iter() {
            header(&mut out, g.name, g.help, "gauge");
            let _ = writeln!(out, "{} {}", g.name, (g.read)());
        }
        out
    }
}

impl Sink for Registry {
    fn observe(&self, o: &Observation<'_>) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        match *o {
            Observation::Request {
                route,
                method,
                status,
                latency,
            } => {
                if !c.routes.contains_key(route) {
                    c.routes.insert(route.to_owned(), RouteStats::default());
                }
                if let Some(r) = c.routes.get_mut(route) {
                    *r.by_status.entry((method, status)).or_default() += 1;
                    r.latency.entry(method).or_default().observe(latency);
                }
            }
            Observation::Attempt {
                provider,
                error,
                latency,
            } => {
                let p = provider.as_str();
                *c.attempts.entry((p, outcome_label(error))).or_default() += 1;
                c.attempt_latency.entry(p).or_default().observe(latency);
            }
            Observation::Refused(why) => *c.refusals.entry(why.as_str()).or_default() += 1,
            Observation::CacheHit => c.cache_hits += 1,
            Observation::UsageRecord { recorded } => {
                let result = if recorded { "recorded" } else { "failed" };
                *c.usage_records.entry(result).or_default() += 1;
            }
        }
    }
}

fn render_counts(c: &Counts, out: &mut String) {
    header(
        out,
        "llm_http_requests_total",
        "HTTP requests answered, by route template, method and status code.",
        "counter",
    );
    for (route, r) in &c.routes {
        for ((method, status), n) in &r.by_status {
            let labels = format!(
                "route=\"{}\",method=\"{method}\",status=\"{status}\"",
                escape(route)
            );
            let _ = writeln!(out, "llm_http_requests_total{{{labels}}} {n}");
        }
    }
    header(
        out,
        "llm_http_request_duration_seconds",
        "HTTP request latency, by route template and method.",
        "histogram",
    );
    for (route, r) in &c.routes {
        for (method, h) in &r.latency {
            let labels = format!("route=\"{}\",method=\"{method}\"", escape(route));
            histogram(out, "llm_http_request_duration_seconds", &labels, h);
        }
    }
    header(
        out,
        "llm_upstream_attempts_total",
        "Calls to providers, by provider and outcome (success or the error class).",
        "counter",
    );
    for ((provider, outcome), n) in &c.attempts {
        let _ = writeln!(
            out,
            "llm_upstream_attempts_total{{provider=\"{provider}\",outcome=\"{outcome}\"}} {n}"
        );
    }
    header(
        out,
        "llm_upstream_errors_total",
        "Failed calls to providers, by provider and error class.",
        "counter",
    );
    for ((provider, outcome), n) in c.attempts.iter().filter(|((_, o), _)| *o != "success") {
        let _ = writeln!(
            out,
            "llm_upstream_errors_total{{provider=\"{provider}\",class=\"{outcome}\"}} {n}"
        );
    }
    header(
        out,
        "llm_upstream_attempt_duration_seconds",
        "Latency of calls to providers, by provider.",
        "histogram",
    );
    for (provider, h) in &c.attempt_latency {
        let labels = format!("provider=\"{provider}\"");
        histogram(out, "llm_upstream_attempt_duration_seconds", &labels, h);
    }
    header(
        out,
        "llm_refusals_total",
        "Requests the gateway refused before any provider: budget_exceeded, rate_limited.",
        "counter",
    );
    for (reason, n) in &c.refusals {
        let _ = writeln!(out, "llm_refusals_total{{reason=\"{reason}\"}} {n}");
    }
    header(
        out,
        "llm_cache_hits_total",
        "Generations answered from the response cache.",
        "counter",
    );
    let _ = writeln!(out, "llm_cache_hits_total {}", c.cache_hits);
    header(
        out,
        "llm_usage_records_total",
        "Usage entries made durable (recorded) or not (failed).",
        "counter",
    );
    for (result, n) in &c.usage_records {
        let _ = writeln!(out, "llm_usage_records_total{{result=\"{result}\"}} {n}");
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let mut cumulative = 0u64;
    for (bound, n) in BUCKETS_MS.iter().zip(h.buckets) {
        cumulative += n;
        let le = seconds(bound * 1000);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", seconds(h.sum_micros));
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

/// Microseconds as decimal seconds without floating point (`2500000` → `2.5`).
fn seconds(micros: u64) -> String {
    let (whole, frac) = (micros / 1_000_000, micros % 1_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Metrics, Refusal};
    use crate::provider::Provider;
    use crate::providers::ErrorKind;
    use std::sync::Arc;

    fn request(m: &Metrics, route: &str, status: u16, ms: u64) {
        m.observe(Observation::Request {
            route,
            method: "POST",
            status,
            latency: Duration::from_millis(ms),
        });
    }

    #[test]
    fn histograms_are_cumulative_and_count_every_request() {
        let reg = Arc::new(Registry::new());
        let m = Metrics::to(reg.clone());
        for ms in [1, 5, 6, 300, 40_000] {
            request(&m, "/v1/generate", 200, ms);
        }
        request(&m, "/v1/generate", 402, 2);
        let text = reg.render();
        let line = |needle: &str| {
            text.lines()
                .find(|l| l.starts_with(needle))
                .unwrap_or_else(|| panic!("{needle} missing in\n{text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_owned()
        };
        let base =
            "llm_http_request_duration_seconds_bucket{route=\"/v1/generate\",method=\"POST\"";
        assert_eq!(line(&format!("{base},le=\"0.005\"}}")), "3");
        assert_eq!(line(&format!("{base},le=\"0.01\"}}")), "4");
        assert_eq!(line(&format!("{base},le=\"0.5\"}}")), "5");
        assert_eq!(line(&format!("{base},le=\"30\"}}")), "5");
        assert_eq!(line(&format!("{base},le=\"+Inf\"}}")), "6");
        assert_eq!(
            line("llm_http_request_duration_seconds_count{route=\"/v1/generate\",method=\"POST\"}"),
            "6"
        );
        assert_eq!(
            line("llm_http_request_duration_seconds_sum{route=\"/v1/generate\",method=\"POST\"}"),
            "40.314"
        );
        assert_eq!(
            line("llm_http_requests_total{route=\"/v1/generate\",method=\"POST\",status=\"402\"}"),
            "1"
        );
    }

    #[test]
    fn upstream_errors_refusals_and_gauges_are_exposed() {
        let reg = Arc::new(Registry::new());
        let m = Metrics::to(reg.clone());
        m.attempt(
            Provider::OpenAi,
            Some(ErrorKind::ServerError),
            Duration::ZERO,
        );
        m.attempt(Provider::OpenAi, None, Duration::ZERO);
        m.refused(Refusal::Budget);
        m.cache_hit();
        m.usage_record(true);
        reg.gauge("llm_test_depth", "A test gauge.", || 7);
        let text = reg.render();
        for want in [
            "llm_upstream_attempts_total{provider=\"openai\",outcome=\"server_error\"} 1",
            "llm_upstream_attempts_total{provider=\"openai\",outcome=\"success\"} 1",
            "llm_upstream_errors_total{provider=\"openai\",class=\"server_error\"} 1",
            "llm_refusals_total{reason=\"budget_exceeded\"} 1",
            "llm_cache_hits_total 1",
            "llm_usage_records_total{result=\"recorded\"} 1",
            "# TYPE llm_test_depth gauge",
            "llm_test_depth 7",
        ] {
            assert!(text.lines().any(|l| l == want), "{want} missing in\n{text}");
        }
        assert!(!text.contains("class=\"success\""));
    }

    #[test]
    fn seconds_render_without_floats() {
        assert_eq!(seconds(5_000), "0.005");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(30_000_000), "30");
        assert_eq!(escape("a\"b\\"), "a\\\"b\\\\");
    }
}
