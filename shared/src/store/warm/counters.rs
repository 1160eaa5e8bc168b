//! Rate counters in process memory, for a store with one owner (`llm-local` serves every
//! request of its data directory, so its memory is the whole deployment's count). The
//! Lambda functions, many processes, count in DynamoDB instead.

use crate::store::{RateCounters, StoreError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct MemoryCounters {
    /// key -> (window start, count): only the current window of a key is kept.
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

#[async_trait]
impl RateCounters for MemoryCounters {
    async fn hit(
        &self,
        key: &str,
        window_start: i64,
        window_secs: i64,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > 10_000 {
            windows.retain(|_, (start, _)| *start + window_secs > window_start);
        }
        let slot = windows.entry(key.to_owned()).or_insert((window_start, 0));
        if slot.0 != window_start {
            *slot = (window_start, 0);
        }
        if slot.1 >= limit {
            return Ok(false);
        }
        slot.1 += 1;
        Ok(true)
    }
}
