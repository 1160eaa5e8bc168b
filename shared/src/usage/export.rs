//! The export: every unexpired entry of a range, newest first, as CSV or NDJSON, read
//! page by page while the answer is sent, so an export is never built in memory.

use super::range::Range;
use super::{UsageEntry, UsageError};
use crate::store::UsageStore;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Ndjson,
}

impl ExportFormat {
    /// The `format` parameter; CSV by default.
    pub fn parse(value: Option<&str>) -> Result<ExportFormat, UsageError> {
        match value.unwrap_or("csv") {
            "csv" => Ok(ExportFormat::Csv),
            "ndjson" => Ok(ExportFormat::Ndjson),
            _ => Err(UsageError::invalid("format", "must be csv or ndjson")),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Ndjson => "application/x-ndjson",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Ndjson => "ndjson",
        }
    }
}

/// An export, checked and ready to stream: nothing is read until `chunks` is polled.
pub struct Export {
    pub format: ExportFormat,
    /// The CSV header row, then one chunk per store page (possibly empty). A store
    /// failure ends the stream early and is logged: by then the status has been sent.
    pub chunks: BoxStream<'static, Bytes>,
}

/// Checks the parameters (`format` first, then the range; by default the last 30
/// days) and returns the export of `user_id`'s entries.
pub fn export(
    usage: Arc<dyn UsageStore>,
    user_id: String,
    format: Option<&str>,
    start: Option<&str>,
    end: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Export, UsageError> {
    let format = ExportFormat::parse(format)?;
    let range = Range::parse(start, end, 30, now)?;
    let pages = pages(usage, user_id, range, format, now.timestamp());
    let header = (format == ExportFormat::Csv)
        .then(|| Bytes::from(format!("{}\r\n", CSV_COLUMNS.join(","))));
    Ok(Export {
        format,
        chunks: futures_util::stream::iter(header).chain(pages).boxed(),
    })
}

struct Cursor {
    before: Option<String>,
    done: bool,
}

/// One chunk per store page of 500, read as the stream is polled.
fn pages(
    usage: Arc<dyn UsageStore>,
    user_id: String,
    range: Range,
    format: ExportFormat,
    now_unix: i64,
) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
    let (start, end) = (range.start_key(), range.end_key());
    let first = Cursor {
        before: None,
        done: false,
    };
    futures_util::stream::unfold(first, move |mut cur| {
        let (usage, user, start, end) =
            (usage.clone(), user_id.clone(), start.clone(), end.clone());
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
                    for e in page.iter().filter(|e| e.ttl > now_unix) {
                        write_entry(&mut chunk, e, format);
                    }
                    cur.done = next.is_none();
                    cur.before = next;
                    Some((Bytes::from(chunk), cur))
                }
                Err(e) => {
                    tracing::error!(error = %e, "export stopped early");
                    None
                }
            }
        }
    })
}

fn write_entry(chunk: &mut String, e: &UsageEntry, format: ExportFormat) {
    match format {
        ExportFormat::Csv => chunk.push_str(&csv_row(e)),
        ExportFormat::Ndjson => {
            if let Ok(line) = serde_json::to_string(e) {
                chunk.push_str(&line);
                chunk.push('\n');
            }
        }
    }
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
