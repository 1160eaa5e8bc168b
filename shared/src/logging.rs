//! The log filter every binary uses: `RUST_LOG` (default `info`), except that the
//! crates which carry requests on the wire (the AWS SDK, hyper, reqwest, rustls, the
//! Lambda runtime) never log below `info`. At `debug`/`trace` they print request and
//! response bodies, and those carry secret values (Secrets Manager's `SecretString`),
//! API keys in settings bodies and bearer tokens in event headers.

use tracing_subscriber::EnvFilter;

/// Target prefixes (EnvFilter matches targets by prefix) capped at `info`.
const WIRE_CRATES: &[&str] = &["aws_", "hyper", "h2", "reqwest", "rustls", "lambda_"];

/// The directives of `rust_log`, with any that would open a wire crate below `info`
/// removed and the caps added (a more specific directive would win over a cap).
pub fn directives(rust_log: Option<&str>) -> String {
    let mut kept: Vec<String> = rust_log
        .unwrap_or("info")
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter(|d| {
            let target = d.split(['=', '[']).next().unwrap_or("");
            // A bare level (`trace`) has no target; it is kept, the caps bound it.
            let is_level = d.split('=').count() == 1
                && ["trace", "debug", "info", "warn", "error", "off"]
                    .contains(&target.to_ascii_lowercase().as_str());
            is_level || !WIRE_CRATES.iter().any(|p| target.starts_with(p))
        })
        .map(str::to_owned)
        .collect();
    kept.extend(WIRE_CRATES.iter().map(|p| format!("{p}=info")));
    kept.join(",")
}

pub fn env_filter() -> EnvFilter {
    let wanted = std::env::var("RUST_LOG").ok();
    EnvFilter::try_new(directives(wanted.as_deref()))
        .unwrap_or_else(|_| EnvFilter::new(directives(None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_crates_never_log_below_info() {
        let d = directives(Some(
            "trace,aws_smithy_runtime=trace,shared=debug,hyper::proto=trace",
        ));
        assert!(d.starts_with("trace,shared=debug,"), "{d}");
        assert!(!d.contains("aws_smithy_runtime=trace"), "{d}");
        assert!(!d.contains("hyper::proto"), "{d}");
        assert!(d.contains("aws_=info") && d.contains("hyper=info"), "{d}");
        assert!(directives(None).starts_with("info,"));
        assert!(EnvFilter::try_new(d).is_ok());
    }

    #[test]
    fn a_trace_filter_does_not_enable_aws_debug_events() {
        use tracing_subscriber::layer::SubscriberExt;
        let filter = EnvFilter::new(directives(Some("trace")));
        let subscriber = tracing_subscriber::registry().with(filter);
        tracing::subscriber::with_default(subscriber, || {
            assert!(tracing::enabled!(target: "shared::x", tracing::Level::TRACE));
            assert!(
                !tracing::enabled!(target: "aws_smithy_runtime::client", tracing::Level::DEBUG)
            );
            assert!(!tracing::enabled!(target: "aws_sdk_secretsmanager", tracing::Level::TRACE));
            assert!(tracing::enabled!(target: "aws_config", tracing::Level::INFO));
        });
    }
}
