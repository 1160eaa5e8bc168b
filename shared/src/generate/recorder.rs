//! Writes usage entries (with their budget settlement) and settlements, then checks the
//! budget alerts. A record is durable before its answer is sent: inline in a Lambda
//! (whose process may be frozen as soon as it has answered); locally, a background
//! writer commits whatever queued up meanwhile in one transaction (group commit in
//! SQLite's WAL, which survives the process being killed) and only then lets each
//! waiting request answer. A job that cannot be written is retried, and past a few
//! tries appended to a journal file that the next start replays: never dropped.

use super::alerts::Alerts;
use crate::money::NanoUsd;
use crate::store::{BudgetStore, StoreError, UsageStore};
use crate::usage::{Settlement, UsageEntry};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The background writer is gone (only at shutdown, after the server stopped).
    #[error("usage writer stopped")]
    WriterStopped,
    #[error("usage journal: {0}")]
    Journal(String),
    /// An inline write (a Lambda's) still failing at the request's deadline: given up so
    /// the request answers (a `503`) before the function is stopped. Every write is
    /// idempotent, so one cut short counts once if it landed, and not at all otherwise.
    #[error("usage write still failing after {0:?}")]
    TimedOut(Duration),
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AlertRule {
    pub limit: NanoUsd,
    pub thresholds: Vec<u32>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum Job {
    Record {
        entry: Box<UsageEntry>,
        settlement: Option<Settlement>,
        rule: Option<AlertRule>,
        /// The alerts of the settlement's tenant, whose budget it also settles.
        #[serde(default)]
        tenant_rule: Option<AlertRule>,
    },
    Settle {
        user_id: String,
        settlement: Settlement,
        rule: Option<AlertRule>,
        #[serde(default)]
        tenant_rule: Option<AlertRule>,
    },
}

pub struct Writer {
    pub usage: Arc<dyn UsageStore>,
    pub budgets: Arc<dyn BudgetStore>,
    pub alerts: Arc<Alerts>,
    /// Where jobs the store keeps refusing are kept until a later start writes them.
    pub journal: Option<PathBuf>,
}

impl Writer {
    /// Applies queued jobs: every usage entry of the batch in one write, then the
    /// settlements, then the alerts, which need the writes to have landed.
    async fn apply_batch(&self, jobs: &[Job]) -> Result<(), RecordError> {
        if jobs.len() == 1 {
            return self.apply_once(&jobs[0]).await;
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
        // Retries are the caller's (apply_durably): every write here is idempotent.
        self.usage.record_batch(&records).await?;
        for job in jobs {
            if let Job::Settle { .. } = job {
                self.apply_once(job).await?;
            } else {
                self.alert(job).await;
            }
        }
        Ok(())
    }

    async fn alert(&self, job: &Job) {
        let (user, settlement, rule, tenant_rule) = match job {
            Job::Record {
                entry,
                settlement,
                rule,
                tenant_rule,
            } => (
                entry.user_id.clone(),
                settlement.as_ref(),
                rule.as_ref(),
                tenant_rule.as_ref(),
            ),
            Job::Settle {
                user_id,
                settlement,
                rule,
                tenant_rule,
            } => (
                user_id.clone(),
                Some(settlement),
                rule.as_ref(),
                tenant_rule.as_ref(),
            ),
        };
        let Some(s) = settlement.filter(|s| s.actual > NanoUsd::ZERO) else {
            return;
        };
        // The member's budget, then their tenant's: each alerts on its own month.
        let tenant = s.tenant.as_deref().map(crate::identity::tenant_owner);
        let checks = [(Some(user), rule), (tenant, tenant_rule)];
        for (holder, rule) in checks {
            if let (Some(holder), Some(rule)) = (holder, rule) {
                self.alerts
                    .check(
                        self.budgets.as_ref(),
                        &holder,
                        &s.month,
                        rule.limit,
                        &rule.thresholds,
                    )
                    .await;
            }
        }
    }

    /// Writes a job once, then checks its alerts.
    async fn apply_once(&self, job: &Job) -> Result<(), RecordError> {
        match job {
            Job::Record {
                entry, settlement, ..
            } => self.usage.record(entry, settlement.as_ref()).await?,
            Job::Settle {
                user_id,
                settlement,
                ..
            } => self.budgets.settle(user_id, settlement).await?,
        }
        self.alert(job).await;
        Ok(())
    }

    /// Applies a job, retrying a failing store a few times (about 0.7 s in all) before
    /// giving up loudly. Every write is idempotent, so a retry of one that had landed
    /// changes nothing.
    async fn apply(&self, job: &Job) -> Result<(), RecordError> {
        let mut tries = 0u32;
        loop {
            match self.apply_once(job).await {
                Ok(()) => return Ok(()),
                Err(e) if tries < 3 => {
                    tries += 1;
                    tracing::warn!(error = %e, tries, "usage write failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50 << tries)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Writer {
    /// Makes every job of `batch` durable: written to the store or, when the store keeps
    /// failing, appended to the journal (a file append: fast, so that waiting requests
    /// still answer within their deadline). Bounded: when the disk refuses the journal
    /// too, each job is written one by one with retries, and one that still fails is
    /// logged whole (entries hold no secrets) as lost: loudly, never silently.
    async fn apply_durably(&self, batch: &[Job]) {
        for tries in 0..3u32 {
            match self.apply_batch(batch).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, tries, jobs = batch.len(), "usage batch write failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50 << tries)).await;
                }
            }
        }
        match self.journal(batch) {
            Ok(()) => {
                tracing::error!(
                    jobs = batch.len(),
                    "usage writes journaled; written at the next start"
                );
                return;
            }
            Err(e) => tracing::error!(error = %e, "usage journal not writable"),
        }
        for job in batch {
            if let Err(e) = self.apply(job).await {
                let line = serde_json::to_string(job).unwrap_or_default();
                tracing::error!(error = %e, job = %line, "usage write lost");
            }
        }
    }

    /// Appends jobs to the journal, one JSON line each, handed to the OS before
    /// returning (what a killed process must not lose). The file is 0600: entries name
    /// users.
    fn journal(&self, jobs: &[Job]) -> Result<(), std::io::Error> {
        use std::io::Write;
        let path = self
            .journal
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no journal"))?;
        let mut text = String::new();
        for job in jobs {
            text.push_str(&serde_json::to_string(job).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        let mut file = private_append(path)?;
        file.write_all(text.as_bytes())?;
        file.flush()
    }

    /// Writes what the journal holds (jobs a previous run could not write) and empties
    /// it. Every job is idempotent (keyed by request and reservation ids), so a job
    /// written twice changes nothing. Returns how many were replayed.
    pub async fn replay_journal(&self) -> Result<usize, RecordError> {
        let Some(path) = &self.journal else {
            return Ok(0);
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(RecordError::Journal(format!("unreadable: {e}"))),
        };
        let mut replayed = 0;
        let mut unreadable = String::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Job>(line) {
                Ok(job) => {
                    self.apply(&job).await?;
                    replayed += 1;
                }
                Err(e) => {
                    tracing::error!(error = %e, "usage journal line unreadable; kept in .rejected");
                    unreadable.push_str(line);
                    unreadable.push('\n');
                }
            }
        }
        if !unreadable.is_empty() {
            let kept = private_append(&path.with_extension("rejected"))
                .and_then(|mut f| std::io::Write::write_all(&mut f, unreadable.as_bytes()));
            if let Err(e) = kept {
                // Keep the journal itself rather than lose those lines.
                return Err(RecordError::Journal(format!("lines not kept: {e}")));
            }
        }

        let done = path.with_extension("replayed");
        std::fs::rename(path, &done)
            .map_err(|e| RecordError::Journal(format!("not rotated: {e}")))?;
        let _ = std::fs::remove_file(&done);
        Ok(replayed)
    }
}

/// Opens `path` for appending, creating it 0600 (or narrowing an existing file to that).
fn private_append(path: &std::path::Path) -> Result<std::fs::File, std::io::Error> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// A queued job and the request waiting for it to be durable.
pub struct Queued {
    job: Job,
    durable: oneshot::Sender<()>,
}

#[derive(Clone)]
pub enum Recorder {
    Inline(Arc<Writer>),
    Background(mpsc::Sender<Queued>),
}

impl Recorder {
    /// A background writer with a bounded queue (back-pressure instead of unbounded
    /// memory), and the handle to await once every sender is gone.
    pub fn background(
        writer: Arc<Writer>,
        capacity: usize,
    ) -> (Recorder, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Queued>(capacity);
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
                let (jobs, waiting): (Vec<Job>, Vec<oneshot::Sender<()>>) =
                    batch.into_iter().map(|q| (q.job, q.durable)).unzip();
                writer.apply_durably(&jobs).await;
                for w in waiting {
                    let _ = w.send(());
                }
            }
        });
        (Recorder::Background(tx), handle)
    }

    /// Jobs queued for the background writer and not yet taken (0 inline).
    pub fn pending(&self) -> usize {
        match self {
            Recorder::Inline(_) => 0,
            Recorder::Background(tx) => tx.max_capacity() - tx.capacity(),
        }
    }

    /// As [`Recorder::submit`], but an inline write gives up after `within`
    /// ([`RecordError::TimedOut`]). The background writer is not cut short: it journals
    /// what it cannot write, within its own bound.
    pub async fn submit_within(&self, job: Job, within: Duration) -> Result<(), RecordError> {
        match self {
            Recorder::Inline(w) => tokio::time::timeout(within, w.apply(&job))
                .await
                .unwrap_or(Err(RecordError::TimedOut(within))),
            Recorder::Background(_) => self.submit(job).await,
        }
    }

    /// Returns once the job is durable (written, or journaled by the background writer).
    pub async fn submit(&self, job: Job) -> Result<(), RecordError> {
        match self {
            Recorder::Inline(w) => w.apply(&job).await,
            Recorder::Background(tx) => {
                let (durable, written) = oneshot::channel();
                tx.send(Queued { job, durable })
                    .await
                    .map_err(|_| RecordError::WriterStopped)?;
                written.await.map_err(|_| RecordError::WriterStopped)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Provider;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{StoreError, conformance};
    use crate::usage::{DailyRollup, Totals, UsageStatus};
    use async_trait::async_trait;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The SQLite store, refusing every write while `down`.
    struct Flaky {
        inner: SqliteStore,
        down: AtomicBool,
    }

    impl Flaky {
        fn check(&self) -> Result<(), StoreError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::Backend("disk unavailable".into()));
            }
            Ok(())
        }
    }

    #[async_trait]
    impl UsageStore for Flaky {
        async fn record(&self, e: &UsageEntry, s: Option<&Settlement>) -> Result<(), StoreError> {
            self.check()?;
            self.inner.record(e, s).await
        }
        async fn record_batch(
            &self,
            batch: &[(UsageEntry, Option<Settlement>)],
        ) -> Result<(), StoreError> {
            self.check()?;
            self.inner.record_batch(batch).await
        }
        async fn entries(
            &self,
            u: &str,
            s: &str,
            e: &str,
            l: usize,
            b: Option<&str>,
        ) -> Result<(Vec<UsageEntry>, Option<String>), StoreError> {
            self.inner.entries(u, s, e, l, b).await
        }
        async fn rollups(&self, u: &str, f: &str, t: &str) -> Result<Vec<DailyRollup>, StoreError> {
            self.inner.rollups(u, f, t).await
        }
        async fn provider_totals(
            &self,
            p: Provider,
            s: &str,
            e: &str,
            n: i64,
        ) -> Result<(BTreeMap<String, Totals>, usize), StoreError> {
            self.inner.provider_totals(p, s, e, n).await
        }
        async fn health(
            &self,
            g: crate::store::Granularity,
            from: i64,
            to: i64,
        ) -> Result<BTreeMap<String, crate::store::HealthCounters>, StoreError> {
            self.inner.health(g, from, to).await
        }
    }

    fn writer(usage: Arc<dyn UsageStore>, db: &SqliteStore, journal: PathBuf) -> Arc<Writer> {
        Arc::new(Writer {
            usage,
            budgets: Arc::new(db.clone()),
            alerts: Arc::new(Alerts::new(Arc::new(db.clone()), Vec::new())),
            journal: Some(journal),
        })
    }

    fn job(user: &str, at: &str) -> Job {
        Job::Record {
            entry: Box::new(conformance::usage_entry(
                user,
                at,
                Provider::Anthropic,
                Some(7),
                UsageStatus::Success,
            )),
            settlement: None,
            rule: None,
            tenant_rule: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_inline_write_gives_up_within_its_budget_then_writes_once_recovered() {
        let db = SqliteStore::open_in_memory().unwrap();
        let flaky = Arc::new(Flaky {
            inner: db.clone(),
            down: AtomicBool::new(true),
        });
        let mut w = writer(flaky.clone(), &db, PathBuf::new());
        Arc::get_mut(&mut w).unwrap().journal = None;
        let recorder = Recorder::Inline(w);
        // Down for good: the retries (50 ms, 100 ms, 200 ms...) are cut at the budget.
        let budget = Duration::from_millis(120);
        let started = tokio::time::Instant::now();
        let job_at = "2026-11-20T10:00:00.000Z";
        let failed = recorder.submit_within(job("u1", job_at), budget).await;
        assert!(matches!(failed, Err(RecordError::TimedOut(b)) if b == budget));
        assert!(started.elapsed() < budget + Duration::from_millis(10));
        flaky.down.store(false, Ordering::SeqCst);
        recorder
            .submit_within(job("u1", job_at), budget)
            .await
            .unwrap();
        let (entries, _) = db.entries("u1", "2000", "9999", 10, None).await.unwrap();
        assert_eq!(entries.len(), 1);
    }

    #[tokio::test]
    async fn a_job_the_store_keeps_refusing_is_journaled_then_replayed_never_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal.ndjson");
        let db = SqliteStore::open_in_memory().unwrap();
        let flaky = Arc::new(Flaky {
            inner: db.clone(),
            down: AtomicBool::new(true),
        });
        let (recorder, handle) =
            Recorder::background(writer(flaky.clone(), &db, journal.clone()), 16);
        // The request waits until its record is durable: here, in the journal.
        recorder
            .submit(job("u1", "2026-11-20T10:00:00.000Z"))
            .await
            .unwrap();
        recorder
            .submit(job("u1", "2026-11-20T11:00:00.000Z"))
            .await
            .unwrap();
        drop(recorder);
        handle.await.unwrap();
        let text = std::fs::read_to_string(&journal).unwrap();
        assert_eq!(text.lines().count(), 2, "both jobs journaled: {text}");
        assert!(
            db.entries("u1", "2000", "9999", 10, None)
                .await
                .unwrap()
                .0
                .is_empty()
        );

        // The next start, with the store back: the journal is written, then emptied.
        flaky.down.store(false, Ordering::SeqCst);
        let again = writer(flaky.clone(), &db, journal.clone());
        assert_eq!(again.replay_journal().await.unwrap(), 2);
        assert_eq!(
            db.entries("u1", "2000", "9999", 10, None)
                .await
                .unwrap()
                .0
                .len(),
            2
        );
        assert!(!journal.exists());
        assert_eq!(again.replay_journal().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn submit_returns_after_the_record_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open_in_memory().unwrap();
        let (recorder, handle) = Recorder::background(
            writer(Arc::new(db.clone()), &db, dir.path().join("j.ndjson")),
            16,
        );
        for i in 0..20 {
            recorder
                .submit(job("u2", &format!("2026-11-20T10:00:{i:02}.000Z")))
                .await
                .unwrap();
            // No waiting, no polling: it is there when submit returns.
            let (entries, _) = db.entries("u2", "2000", "9999", 100, None).await.unwrap();
            assert_eq!(entries.len(), i + 1);
        }
        drop(recorder);
        handle.await.unwrap();
    }
}
