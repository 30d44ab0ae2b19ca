//! Scheduled-job bookkeeping and the scans the jobs make.
//!
//! - `job_state`: job name → [`JobState`] (last claimed slot, the run in
//!   progress, the last result, counters)
//! - `job_runs`:  job name ++ 0 ++ seq (u64 BE) → [`RunRecord`], oldest first
//!
//! A slot is claimed (written and flushed) before the job does anything, so
//! a slot runs at most once across crashes and restarts; the claim and the
//! run records it implies (skipped slots, an overlap) are one write on the
//! owner thread. The trees are opened by name on first use, so stores
//! written by earlier versions need no migration.
//!
//! [`Store::order_heads`] streams the fields of every order the jobs select
//! on, without decoding lines and recipients and without holding all orders
//! in memory.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::engine::Trees;
use super::{HistoryEntry, Store, StoreError, decode};
use crate::domain::OrderId;

const STATE: &str = "job_state";
const RUNS: &str = "job_runs";

/// How a run came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// Its slot came.
    Schedule,
    /// The latest of several slots missed while the daemon was down.
    CatchUp,
    /// `jobs run NAME --now`.
    Manual,
    /// A run cut short by a crash, resumed once at start.
    Resume,
}

/// What became of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    /// Claimed, not finished yet.
    Running,
    /// Finished without error.
    Ok,
    /// The job returned an error (kept in `error`); it runs again at its
    /// next slot.
    Failed,
    /// Missed while the daemon was down; a later slot ran instead.
    Skipped,
    /// The slot came while the previous run was still going: not started.
    Overlap,
    /// The process stopped during the run (found at the next start).
    Interrupted,
}

/// One slot of one job: scheduled, skipped, overlapping or manual.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The job's name (`Job::name`, e.g. `archive`).
    pub job: String,
    /// The slot (for a manual run, the time it was asked for).
    pub slot: DateTime<Utc>,
    /// Why the run happened.
    pub trigger: Trigger,
    /// What became of it.
    pub outcome: RunOutcome,
    /// When the job started; `None` for a slot that never ran.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended; `None` while running or for a slot that never ran.
    pub finished_at: Option<DateTime<Utc>>,
    /// Items looked at.
    #[serde(default)]
    pub examined: u64,
    /// Effects queued (mails, state changes).
    #[serde(default)]
    pub effects: u64,
    /// What the job says it did, for people.
    #[serde(default)]
    pub note: String,
    /// The job's error, when it failed.
    pub error: Option<String>,
    /// For a catch-up run: how many missed slots it stands for.
    #[serde(default)]
    pub skipped_slots: u64,
    /// While it runs on a daemon sharing the store: the last sign of life
    /// of that daemon's run (another daemon leaves a live run alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_at: Option<DateTime<Utc>>,
}

impl RunRecord {
    /// A record for `slot` with nothing run yet.
    pub fn new(job: &str, slot: DateTime<Utc>, trigger: Trigger, outcome: RunOutcome) -> Self {
        RunRecord {
            job: job.to_string(),
            slot,
            trigger,
            outcome,
            started_at: None,
            finished_at: None,
            examined: 0,
            effects: 0,
            note: String::new(),
            error: None,
            skipped_slots: 0,
            heartbeat_at: None,
        }
    }
}

/// What the scheduler keeps per job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobState {
    /// When the scheduler first saw this job: slots before are not "missed".
    pub since: Option<DateTime<Utc>>,
    /// The latest scheduled slot claimed (run, skipped or overlapped).
    pub last_slot: Option<DateTime<Utc>>,
    /// The run in progress (claimed, not finished). Still set at start
    /// means the process stopped during it.
    pub running: Option<RunRecord>,
    /// The last finished run (ok or failed).
    pub last_run: Option<RunRecord>,
    /// The last error, kept until a run succeeds.
    pub last_error: Option<String>,
    /// Runs finished, ok or failed.
    pub runs: u64,
    /// Runs that failed.
    pub failures: u64,
    /// Slots not started because the previous run was still going.
    pub overlaps: u64,
    /// Slots missed while the daemon was down.
    pub skipped: u64,
    /// Runs cut short by a stop of the process.
    pub interrupted: u64,
}

/// The fields of an order the jobs select on (decoded from the order JSON,
/// skipping lines and recipients).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OrderHead {
    /// The order number.
    pub so: OrderId,
    /// As [`Order::available_at`](crate::domain::Order::available_at).
    #[serde(default)]
    pub available_at: Option<DateTime<FixedOffset>>,
    /// As [`Order::archived`](crate::domain::Order::archived).
    #[serde(default)]
    pub archived: bool,
    /// As [`Order::early_ship`](crate::domain::Order::early_ship); `true` when absent.
    #[serde(default = "yes")]
    pub early_ship: bool,
    /// As [`Order::requested_date`](crate::domain::Order::requested_date).
    #[serde(default)]
    pub requested_date: Option<NaiveDate>,
    /// As [`Order::pak_registered`](crate::domain::Order::pak_registered).
    #[serde(default)]
    pub pak_registered: Option<bool>,
}

fn yes() -> bool {
    true
}

fn run_key(job: &str, seq: u64) -> Vec<u8> {
    let mut k = job.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn state_in(t: &Trees, job: &str) -> Result<JobState, StoreError> {
    Ok(t.job_state
        .get(job.as_bytes())?
        .map(|v| decode(STATE, &v))
        .transpose()?
        .unwrap_or_default())
}

/// Appends run records to `job_runs` (owner thread).
fn append_runs(t: &Trees, records: &[RunRecord]) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let runs = &t.job_runs;
    let mut seq = t.counter("job_runs")?;
    for r in records {
        seq += 1;
        runs.insert(run_key(&r.job, seq), serde_json::to_vec(r)?)?;
    }
    t.raise_counter("job_runs", seq)
}

impl Store {
    /// The scheduler's state of one job (default when never seen).
    pub fn job_state(&self, job: &str) -> Result<JobState, StoreError> {
        state_in(&*self.trees()?, job)
    }

    /// Changes a job's state and appends run records, as one durable write
    /// on the owner thread (two schedulers cannot both claim a slot).
    /// `change` returns its answer and the records to append.
    pub fn job_update<R, F>(&self, job: &str, change: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut JobState) -> (R, Vec<RunRecord>) + Send + 'static,
    {
        let job = job.to_string();
        self.engine.write(true, move |t| {
            let mut state = state_in(t, &job)?;
            let (answer, records) = change(&mut state);
            append_runs(t, &records)?;
            t.job_state
                .insert(job.as_bytes(), serde_json::to_vec(&state)?)?;
            Ok(answer)
        })
    }

    /// The last `limit` run records of a job, newest first.
    pub fn job_runs(&self, job: &str, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let mut prefix = job.as_bytes().to_vec();
        prefix.push(0);
        self.trees()?
            .job_runs
            .scan_prefix(prefix)
            .rev()
            .values()
            .take(limit)
            .map(|v| decode(RUNS, &v?))
            .collect()
    }

    /// Removes run records of slots before `cutoff`; returns how many.
    pub fn purge_job_runs_before(&self, cutoff: DateTime<Utc>) -> Result<usize, StoreError> {
        let runs = self.trees()?.job_runs.clone();
        let mut due = Vec::new();
        for item in runs.iter() {
            let (k, v) = item?;
            let r: RunRecord = decode(RUNS, &v)?;
            if r.slot < cutoff && r.outcome != RunOutcome::Running {
                due.push(k.to_vec());
            }
        }
        self.remove_keys(RUNS, due)
    }

    /// Removes notification-history lines older than `cutoff`, a chunk at a
    /// time (the tree is scanned, never loaded whole). Outbox items and
    /// idempotency keys stay: they are what keeps a mail from going twice.
    pub fn purge_history_before(&self, cutoff: DateTime<Utc>) -> Result<usize, StoreError> {
        let history = self.trees()?.history.clone();
        let mut due = Vec::new();
        let mut purged = 0;
        for item in history.iter() {
            let (k, v) = item?;
            let e: HistoryEntry = decode("history", &v)?;
            if e.at < cutoff {
                due.push(k.to_vec());
            }
            if due.len() >= 1024 {
                purged += self.remove_keys("history", std::mem::take(&mut due))?;
            }
        }
        Ok(purged + self.remove_keys("history", due)?)
    }

    /// Removes keys of a tree in one durable write per call.
    fn remove_keys(&self, tree: &'static str, keys: Vec<Vec<u8>>) -> Result<usize, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.engine.write(true, move |t| {
            let target = t.named(tree).ok_or(StoreError::Corrupt {
                tree,
                message: "no such tree".into(),
            })?;
            let mut n = 0;
            for k in keys {
                if target.remove(k)?.is_some() {
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    /// Every order's [`OrderHead`], in key order, streamed from the store.
    pub fn order_heads(&self) -> impl Iterator<Item = Result<OrderHead, StoreError>> + '_ {
        let iter = self.trees().map(|t| t.orders.iter().values());
        let (iter, err) = match iter {
            Ok(i) => (Some(i), None),
            Err(e) => (None, Some(e)),
        };
        err.into_iter().map(Err).chain(
            iter.into_iter()
                .flatten()
                .map(|v| decode::<OrderHead>("orders", &v?)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_and_runs_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let slot: DateTime<Utc> = "2026-01-31T02:00:00Z".parse().unwrap();
        let claimed = s
            .job_update("archive", move |st| {
                st.last_slot = Some(slot);
                st.running = Some(RunRecord::new(
                    "archive",
                    slot,
                    Trigger::Schedule,
                    RunOutcome::Running,
                ));
                (
                    true,
                    vec![RunRecord::new(
                        "archive",
                        slot - chrono::Duration::days(1),
                        Trigger::Schedule,
                        RunOutcome::Skipped,
                    )],
                )
            })
            .unwrap();
        assert!(claimed);
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        let st = s.job_state("archive").unwrap();
        assert_eq!(st.last_slot, Some(slot));
        assert!(st.running.is_some());
        let runs = s.job_runs("archive", 10).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].outcome, RunOutcome::Skipped);
        assert!(
            s.job_runs("arch", 10).unwrap().is_empty(),
            "prefix is exact"
        );
        assert_eq!(s.purge_job_runs_before(slot).unwrap(), 1);
        assert!(s.job_runs("archive", 10).unwrap().is_empty());
    }
}
