//! OpenTelemetry traces, off unless the operator sets `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), the variables every OpenTelemetry SDK reads.
//! Spans are the `tracing` spans the shared code opens (`request`, `generate`,
//! `upstream`), exported in batches over OTLP/HTTP JSON; their attributes are the same
//! bounded labels as the metrics (route template, method, status, provider, model,
//! outcome) and the request id: never a user, key, tenant or prompt.
//!
//! The spans are DEBUG-level and only this layer enables them, so with traces off they
//! cost nothing (their call sites are disabled), whatever `RUST_LOG` says.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterExt, FilterFn, Targets};
use tracing_subscriber::registry::LookupSpan;

/// The tracer provider, kept to flush the last spans at exit.
pub struct Traces(SdkTracerProvider);

/// Whether the operator asked for traces.
pub fn requested() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
}

/// The layer exporting this process's spans, and the handle that flushes them; `None`
/// when traces are off. Called before the async runtime starts: the exporter's blocking
/// HTTP client belongs on the batch processor's own thread, not on an async worker.
pub fn layer<S>() -> Result<Option<(impl Layer<S>, Traces)>, opentelemetry_otlp::ExporterBuildError>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if !requested() {
        return Ok(None);
    }
    // The endpoint, headers and timeout come from the standard OTEL_* variables.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .build()?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "llm-local".into());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    let tracer = provider.tracer("llm-local");
    // Spans only (no log events as span events: logs go to stderr already), and only the
    // gateway's own: a wire crate's spans would describe its internals.
    let filter = Targets::new()
        .with_target("shared", tracing::Level::DEBUG)
        .with_target("llm_local", tracing::Level::DEBUG)
        .and(FilterFn::new(|m| m.is_span()));
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(filter);
    Ok(Some((layer, Traces(provider))))
}

impl Traces {
    /// Exports what is still buffered; called once the server has stopped.
    pub fn shutdown(self) {
        if let Err(e) = self.0.shutdown() {
            eprintln!("llm-local: the last traces were not exported: {e}");
        }
    }
}
