//! Writes usage entries (with their budget settlement) and settlements, then checks the
//! budget alerts. Inline in a Lambda (whose process may be frozen as soon as it has
//! answered, so nothing may be left for later); locally, a background writer takes the
//! write off the response path, and is drained before the process exits.

use super::alerts::Alerts;
use crate::error::ApiError;
use crate::money::NanoUsd;
use crate::store::{BudgetStore, UsageStore};
use crate::usage::{Settlement, UsageEntry};
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct AlertRule {
    pub limit: NanoUsd,
    pub thresholds: Vec<u32>,
}

#[derive(Debug)]
pub enum Job {
    Record {
        entry: Box<UsageEntry>,
        settlement: Option<Settlement>,
        rule: Option<AlertRule>,
    },
    Settle {
        user_id: String,
        settlement: Settlement,
        rule: Option<AlertRule>,
    },
}

pub struct Writer {
    pub usage: Arc<dyn UsageStore>,
    pub budgets: Arc<dyn BudgetStore>,
    pub alerts: Arc<Alerts>,
}

impl Writer {
    /// Applies a job, retrying a failing store a few times before giving up loudly.
    async fn apply(&self, job: &Job) -> Result<(), ApiError> {
        let mut tries = 0;
        loop {
            let result = match job {
                Job::Record {
                    entry, settlement, ..
                } => self.usage.record(entry, settlement.as_ref()).await,
                Job::Settle {
                    user_id,
                    settlement,
                    ..
                } => self.budgets.settle(user_id, settlement).await,
            };
            match result {
                Ok(()) => break,
                Err(e) if tries < 3 => {
                    tries += 1;
                    tracing::warn!(error = %e, tries, "usage write failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(50 << tries)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let (user, settlement, rule) = match job {
            Job::Record {
                entry,
                settlement,
                rule,
            } => (&entry.user_id, settlement.as_ref(), rule.as_ref()),
            Job::Settle {
                user_id,
                settlement,
                rule,
            } => (user_id, Some(settlement), rule.as_ref()),
        };
        if let (Some(s), Some(rule)) = (settlement, rule) {
            if s.actual > NanoUsd::ZERO {
                self.alerts
                    .check(
                        self.budgets.as_ref(),
                        user,
                        &s.month,
                        rule.limit,
                        &rule.thresholds,
                    )
                    .await;
            }
        }
        Ok(())
    }
}

#[derive(Clone)]
pub enum Recorder {
    Inline(Arc<Writer>),
    Background(mpsc::Sender<Job>),
}

impl Recorder {
    /// A background writer with a bounded queue (back-pressure instead of unbounded
    /// memory), and the handle to await once every sender is gone.
    pub fn background(
        writer: Arc<Writer>,
        capacity: usize,
    ) -> (Recorder, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Job>(capacity);
        let handle = tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                if let Err(e) = writer.apply(&job).await {
                    // After retries: say exactly what was lost.
                    tracing::error!(error = %e, job = ?job_summary(&job), "usage write lost");
                }
            }
        });
        (Recorder::Background(tx), handle)
    }

    pub async fn submit(&self, job: Job) -> Result<(), ApiError> {
        match self {
            Recorder::Inline(w) => w.apply(&job).await,
            Recorder::Background(tx) => tx
                .send(job)
                .await
                .map_err(|_| ApiError::internal("usage writer stopped")),
        }
    }
}

fn job_summary(job: &Job) -> String {
    match job {
        Job::Record { entry, .. } => format!("record {} {}", entry.user_id, entry.request_id),
        Job::Settle {
            user_id,
            settlement,
            ..
        } => format!("settle {user_id} {}", settlement.month),
    }
}
