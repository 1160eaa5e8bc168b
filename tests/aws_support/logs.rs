//! Every log line the test process writes, kept in memory (through the product's own
//! level caps, `shared::logging::directives`) so a test can assert that no key reached
//! one.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// The process-wide capture, installed by the first caller at `debug`.
    pub fn capture() -> Logs {
        static LOGS: OnceLock<Logs> = OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Logs::default();
            let sink = logs.clone();
            let filter =
                tracing_subscriber::EnvFilter::new(shared::logging::directives(Some("debug")));
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(move || sink.clone())
                .try_init();
            logs
        })
        .clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
