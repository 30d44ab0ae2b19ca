//! Scheduled jobs: cron schedules (`cron` crate, read in
//! `calendar.time_zone`), at most one run per (job, slot), missed-slot
//! catch-up, overlap and failure records, and the built-in jobs.
//!
//! - [`schedule`]: cron expression → slots (DST-safe).
//! - [`scheduler::Scheduler`]: claims slots durably, runs and records them.
//! - [`clock`]: the time source (system, or driven by tests).
//! - [`builtin`]: `archive`, `release-held`, `pak-reminder`,
//!   `download-window`, `sla`, `retention`.
//! - [`cmd`]: `edesk jobs list|run|history` (the daemon path is `crate::ctl::jobs`).
//! - [`run_daemon`]: the tick loop inside `edesk serve`.
//!
//! Every job streams the orders (never all in memory) and makes each effect
//! idempotent per item (state change and mail in one commit, or an
//! idempotency key per item and stage), so a restart in the middle of a run
//! never repeats a reminder.
#![warn(missing_docs)]

pub mod builtin;
pub mod clock;
pub mod cmd;
pub mod schedule;
pub mod scheduler;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use tokio_util::sync::CancellationToken;

pub use clock::{Clock, ManualClock, SystemClock};
pub use scheduler::{Claim, JobInfo, Scheduler};

use crate::store::{StoreError, Trigger};

/// The names of the built-in jobs (the `jobs` contract).
pub const JOB_NAMES: [&str; 6] = [
    "archive",
    "release-held",
    "pak-reminder",
    "download-window",
    "sla",
    "retention",
];

/// What a run of a job is given.
pub struct RunContext {
    /// The slot being run (for a manual run, when it was asked for).
    pub slot: DateTime<Utc>,
    /// Why the run happens (its slot, catch-up, by hand, resume after a crash).
    pub trigger: Trigger,
    /// The clock at the start of the run.
    pub now: DateTime<Utc>,
    /// `calendar.time_zone`: "today" for date rules is taken there.
    pub tz: Tz,
    stopping: Arc<AtomicBool>,
}

impl RunContext {
    /// A context for running a job by hand (tests, benchmarks).
    pub fn new(slot: DateTime<Utc>, now: DateTime<Utc>, tz: Tz) -> RunContext {
        RunContext {
            slot,
            trigger: Trigger::Manual,
            now,
            tz,
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The business date of the run.
    pub fn today(&self) -> NaiveDate {
        self.now.with_timezone(&self.tz).date_naive()
    }

    /// Err([`JobError::Stopped`]) once the daemon is shutting down: jobs
    /// call it between items.
    pub fn check_stop(&self) -> Result<(), JobError> {
        if self.stopping.load(Ordering::SeqCst) {
            Err(JobError::Stopped)
        } else {
            Ok(())
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Items looked at (orders, tickets, records).
    pub examined: u64,
    /// Effects (state changes, mails queued, records purged).
    pub effects: u64,
    /// One line for people (`jobs history`, the run record), e.g. "3 orders archived".
    pub note: String,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Reading or writing the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Queueing a notification failed.
    #[error(transparent)]
    Notify(#[from] crate::notify::NotifyError),
    /// The desk service refused or failed (SLA job).
    #[error(transparent)]
    Desk(#[from] crate::desk::DeskError),
    /// Any other failure, with its message.
    #[error("{0}")]
    Failed(String),
    /// The daemon is shutting down; the run resumes at the next start.
    #[error("stopped by shutdown")]
    Stopped,
}

/// A scheduled job.
pub trait Job: Send + Sync {
    /// One of [`JOB_NAMES`].
    fn name(&self) -> &'static str;
    /// Does the work of one slot. Must be idempotent per item: running the
    /// same slot again (after a crash) repeats no effect.
    fn run(&self, ctx: &RunContext) -> Result<Progress, JobError>;
}

/// Errors of the scheduler and its commands.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// Reading or writing job state or run records failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("jobs.schedule.{job}: {message}")]
    /// A `jobs.schedule.<job>` value is not a valid schedule.
    Schedule {
        /// The job whose schedule is bad.
        job: String,
        /// The cron parser's complaint.
        message: String,
    },
    #[error("no job {name:?} (jobs: {known})")]
    /// A command named a job that does not exist.
    NoSuchJob {
        /// The name given.
        name: String,
        /// The known job names, comma-separated, for the message.
        known: String,
    },
    #[error("job {0} is running; not started twice (recorded as an overlap)")]
    /// `jobs run` on a job that is already running here (the job's name).
    Running(String),
    /// The services a job needs could not be set up (holidays file).
    #[error("{0}")]
    Setup(String),
}

/// The daemon's tick loop: resumes interrupted runs, then claims due slots
/// and runs each on a blocking thread, sleeping until the next slot.
pub async fn run_daemon(scheduler: Arc<Scheduler>, token: CancellationToken) {
    let tracker = tokio_util::task::TaskTracker::new();
    let s = scheduler.clone();
    match tokio::task::spawn_blocking(move || s.recover()).await {
        Ok(Ok(claims)) => spawn_claims(&scheduler, &tracker, claims),
        Ok(Err(e)) => tracing::error!(error = %e, "jobs: cannot recover interrupted runs"),
        Err(e) => tracing::error!(error = %e, "jobs: recover task failed"),
    }
    loop {
        let s = scheduler.clone();
        match tokio::task::spawn_blocking(move || s.due()).await {
            Ok(Ok(claims)) => spawn_claims(&scheduler, &tracker, claims),
            Ok(Err(e)) => tracing::error!(error = %e, "jobs: cannot claim due slots"),
            Err(e) => tracing::error!(error = %e, "jobs: claim task failed"),
        }
        let now = scheduler.now();
        let wait = scheduler
            .next_wake()
            .map(|at| (at - now).to_std().unwrap_or_default())
            .unwrap_or(std::time::Duration::from_secs(60))
            .clamp(
                std::time::Duration::from_millis(200),
                std::time::Duration::from_secs(60),
            );
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(wait + std::time::Duration::from_millis(20)) => {}
        }
    }
    // Runs stop between items; their claims stay for the next start.
    scheduler.stop();
    tracker.close();
    tracker.wait().await;
}

fn spawn_claims(
    scheduler: &Arc<Scheduler>,
    tracker: &tokio_util::task::TaskTracker,
    claims: Vec<Claim>,
) {
    for claim in claims {
        let s = scheduler.clone();
        tracker.spawn(async move {
            let job = claim.job;
            if let Err(e) = tokio::task::spawn_blocking(move || s.execute(claim)).await {
                tracing::error!(error = %e, job, "jobs: run task failed");
            }
        });
    }
}
