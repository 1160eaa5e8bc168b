//! One `TransactWriteItems`, with conflicts retried, and what a cancellation means: a
//! failed condition is an answer about the items' state, a conflict (or an item's
//! throttle) is worth another attempt. A throttled or failed call as a whole is the
//! SDK's to retry (its standard strategy backs off on throttling); retrying it here too
//! multiplied the attempts (5 x 4 per usage write, then the writer's own tries: 80
//! attempts over more than a minute, well past the request's deadline).

use super::{DynamoUsageStore, backend};
use crate::store::StoreError;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::TransactWriteItem;
use std::time::Duration;

/// A few milliseconds, doubling per attempt, with full jitter.
async fn backoff(attempt: u32) {
    let cap_ms = 20u64 << attempt.min(6);
    let jitter = u64::from(getrandom::u32().unwrap_or(0)) % cap_ms.max(1);
    tokio::time::sleep(Duration::from_millis(jitter + 5)).await;
}

/// What a cancelled transaction means.
#[derive(Debug, PartialEq, Eq)]
enum Cancellation {
    /// A condition failed: each item's code ("None" where its condition held), in
    /// request order; empty when the service gave no reasons.
    Conditions(Vec<String>),
    /// Lost to a concurrent transaction, or an item throttled: worth another attempt.
    Retry,
    Fatal,
}

const CONDITION_FAILED: &str = "ConditionalCheckFailed";

fn classify_cancellation(reasons: &[aws_sdk_dynamodb::types::CancellationReason]) -> Cancellation {
    let codes: Vec<String> = reasons
        .iter()
        .map(|r| r.code().unwrap_or("None").to_owned())
        .collect();
    // A failed condition is an answer about the items' state (another attempt would
    // fail it again), even when another item also conflicted.
    if codes.is_empty() || codes.iter().any(|c| c == CONDITION_FAILED) {
        return Cancellation::Conditions(codes);
    }
    let retryable = codes.iter().any(|c| {
        matches!(
            c.as_str(),
            "TransactionConflict"
                | "ThrottlingError"
                | "ProvisionedThroughputExceeded"
                | "RequestLimitExceeded"
        )
    });
    if retryable {
        Cancellation::Retry
    } else {
        Cancellation::Fatal
    }
}

/// Whether item `i` of a cancelled transaction failed its condition.
pub(super) fn failed(codes: &[String], i: usize) -> bool {
    codes.get(i).is_some_and(|c| c == CONDITION_FAILED)
}

/// How a transaction ended, once conflicts and throttling were retried.
pub(super) enum Txn {
    Committed,
    /// Nothing was written: a condition failed (the codes of [`Cancellation::Conditions`]).
    Cancelled(Vec<String>),
}

impl DynamoUsageStore {
    /// Runs one transaction, retrying conflicts up to `attempts` times.
    pub(super) async fn transact(
        &self,
        items: &[TransactWriteItem],
        attempts: u32,
    ) -> Result<Txn, StoreError> {
        transact(&self.client, items, attempts).await
    }
}

/// Runs one transaction, retrying conflicts up to `attempts` times. Conflicts that
/// outlast them are [`StoreError::Unavailable`]: contention, worth retrying shortly.
pub(super) async fn transact(
    client: &Client,
    items: &[TransactWriteItem],
    attempts: u32,
) -> Result<Txn, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = client
            .transact_write_items()
            .set_transact_items(Some(items.to_vec()))
            // The SDK resends this token when it retries a call that timed out, and
            // DynamoDB answers a resent token with the first call's outcome instead
            // of applying it again: that saves a cancelled retry and a re-read.
            // Correctness does not rest on it (the conditions carry it). A fresh
            // one per attempt: a token sent again with other items is refused.
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Txn::Committed),
            Err(e) => e,
        };
        // Only a cancellation is ours to retry: the SDK does not retry those. Anything
        // else (throttling included) comes back after the SDK's own retries.
        let conflicted = match &err {
            SdkError::ServiceError(se) => match se.err() {
                TransactWriteItemsError::TransactionCanceledException(c) => {
                    match classify_cancellation(c.cancellation_reasons()) {
                        Cancellation::Conditions(codes) => return Ok(Txn::Cancelled(codes)),
                        Cancellation::Retry => true,
                        Cancellation::Fatal => false,
                    }
                }
                _ => false,
            },
            _ => false,
        };
        if !conflicted {
            return Err(backend(err));
        }
        if attempt >= attempts {
            return Err(StoreError::Unavailable(format!(
                "transaction still conflicting after {attempts} attempts: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&err)
            )));
        }
        backoff(attempt).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::CancellationReason;

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    #[test]
    fn cancellations_are_classified() {
        let codes = |c: &[&str]| c.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
        let already = [reason("ConditionalCheckFailed"), reason("None")];
        assert_eq!(
            classify_cancellation(&already),
            Cancellation::Conditions(codes(&["ConditionalCheckFailed", "None"]))
        );
        // A failed condition is an answer even when another item conflicted.
        let both = [
            reason("TransactionConflict"),
            reason("ConditionalCheckFailed"),
        ];
        assert!(matches!(
            classify_cancellation(&both),
            Cancellation::Conditions(c) if failed(&c, 1) && !failed(&c, 0)
        ));
        assert_eq!(classify_cancellation(&[]), Cancellation::Conditions(vec![]));
        let conflict = [reason("None"), reason("TransactionConflict")];
        assert_eq!(classify_cancellation(&conflict), Cancellation::Retry);
        let invalid = [reason("None"), reason("ValidationError")];
        assert_eq!(classify_cancellation(&invalid), Cancellation::Fatal);
    }
}
