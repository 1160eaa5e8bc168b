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
    /// Applies queued jobs: every usage entry of the batch in one write, then the
    /// settlements, then the alerts, which need the writes to have landed.
    async fn apply_batch(&self, jobs: &[Job]) -> Result<(), ApiError> {
        if jobs.len() == 1 {
            return self.apply(&jobs[0]).await;
        }
        let records: Vec<(UsageEntry, Option<Settlement>)> = jobs
            .iter()
            .filter_map(|j| match j {
                Job::Record {
                    entry, settlement, ..
                } => Some(((**entry).clone(), settlement.clone())),
                Job::Settle { .. } => None,
            })
            .collect();
        let mut tries = 0;
        while let Err(e) = self.usage.record_batch(&records).await {
            if tries >= 3 {
                return Err(e.into());
            }
            tries += 1;
            tracing::warn!(error = %e, tries, "usage batch write failed; retrying");
            tokio::time::sleep(std::time::Duration::from_millis(50 << tries)).await;
        }
        for job in jobs {
            if let Job::Settle { .. } = job {
                self.apply(job).await?;
            } else {
                self.alert(job).await;
            }
        }
        Ok(())
    }

    async fn alert(&self, job: &Job) {
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
    }

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
        self.alert(job).await;
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
            // Under load, whatever queued up while the last write ran goes in one write.
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < 256 {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                if let Err(e) = writer.apply_batch(&batch).await {
                    // After retries: say exactly what was lost.
                    for job in &batch {
                        tracing::error!(error = %e, job = ?job_summary(job), "usage write lost");
                    }
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
