//! Logging set-up. Whatever the level asked for, the crates which carry requests on the
//! wire (the AWS SDK, hyper, reqwest, rustls, the Lambda runtime) never log below
//! `info`: at `debug`/`trace` they print request and response bodies, and those carry
//! secret values (Secrets Manager's `SecretString`), API keys in settings bodies and
//! bearer tokens in event headers.
//!
//! - `llm-local` filters with [`env_filter`]: `RUST_LOG` (default `info`), the wire
//!   crates' directives capped.
//! - The Lambda functions use the runtime's default subscriber ([`init_lambda`]), so
//!   that Lambda's logging controls apply (`AWS_LAMBDA_LOG_FORMAT`,
//!   `AWS_LAMBDA_LOG_LEVEL`). Its filter cannot be amended, so the cap is applied where
//!   events are written instead ([`writable`]).

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
#[cfg(feature = "aws")]
use tracing_subscriber::fmt::writer::MakeWriterExt;

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

/// Whether an event is written: a wire crate's only at `info` and above.
pub fn writable(meta: &Metadata<'_>) -> bool {
    *meta.level() <= Level::INFO || !WIRE_CRATES.iter().any(|p| meta.target().starts_with(p))
}

/// The Lambda functions' subscriber: `lambda_runtime`'s default (JSON lines when
/// `AWS_LAMBDA_LOG_FORMAT` is `JSON`, else text; the level from `AWS_LAMBDA_LOG_LEVEL`,
/// else `RUST_LOG`, else `info`; `RUST_LOG`, when set, also gives per-target
/// directives, and then it decides alone) on stdout, through [`writable`]. A wire
/// crate's debug event is still formatted before it is dropped; that costs only when an
/// operator asked for `debug`.
#[cfg(feature = "aws")]
pub fn init_lambda() {
    lambda_http::tracing::init_default_subscriber_with_writer(
        std::io::stdout.with_filter(writable),
    );
}

pub fn env_filter() -> EnvFilter {
    let wanted = std::env::var("RUST_LOG").ok();
    EnvFilter::try_new(directives(wanted.as_deref()))
        .unwrap_or_else(|_| EnvFilter::new(directives(None)))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(not(feature = "aws"))]
    use tracing_subscriber::fmt::writer::MakeWriterExt;

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

    /// What the Lambda subscriber's writer lets through, whatever its level enables.
    #[test]
    fn wire_crates_debug_events_are_not_written() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Buffer::default();
        let writer = {
            let out = out.clone();
            move || out.clone()
        };
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_writer(writer.with_filter(writable))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "aws_smithy_runtime::client", "SecretString=hunter2");
            tracing::trace!(target: "hyper::proto", "authorization: Bearer abc");
            tracing::info!(target: "aws_config", "credentials loaded");
            tracing::debug!(target: "shared::usage", "our own debug line");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(
            !text.contains("hunter2") && !text.contains("Bearer"),
            "{text}"
        );
        assert!(text.contains("credentials loaded"), "{text}");
        assert!(text.contains("our own debug line"), "{text}");
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
