//! The scheduler: which slot of which job is due, claimed durably before
//! the job runs, recorded when it ends.
//!
//! Rules (issue 12 §1):
//! - a slot is claimed (written and flushed with the job's state) before the
//!   job runs, so each (job, slot) runs at most once;
//! - after downtime only the latest missed slot runs (trigger `catch-up`);
//!   the others are recorded as `skipped`;
//! - a slot that comes while the job still runs is recorded as `overlap` and
//!   not started;
//! - a failing run keeps its error; the next slot runs as usual;
//! - a run cut short by a crash is found at the next start (`recover`),
//!   recorded as `interrupted` and resumed once for the same slot — the jobs'
//!   effects are idempotent per item, so the resumed run finishes the work
//!   without repeating what was done.
//! - several daemons sharing one store (PostgreSQL): a run carries a
//!   heartbeat; a run whose heartbeat is fresh belongs to another daemon and
//!   is neither resumed nor overlapped, one whose heartbeat stopped
//!   ([`LIVE`]) is recorded `interrupted` by whichever daemon claims next.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, DurationRound, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::clock::Clock;
use super::schedule::JobSchedule;
use super::{Job, JobError, JobsError, RunContext};
use crate::store::{JobState, RunOutcome, RunRecord, Store, Trigger};

/// Missed slots recorded one by one after downtime; more are only counted.
const SKIPPED_RECORDS: usize = 50;
/// Missed slots counted one by one; beyond, the latest is found directly.
const SKIPPED_COUNT: usize = 100_000;

/// How often a run on a shared store shows it is alive.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);
/// A run on a shared store without a heartbeat for this long is dead.
const LIVE_SECS: i64 = 60;

/// A run another daemon sharing the store still holds: its heartbeat (or
/// its start) is recent.
fn held_elsewhere(r: &RunRecord, now: DateTime<Utc>) -> bool {
    let seen = r.heartbeat_at.or(r.started_at).unwrap_or(r.slot);
    now - seen < Duration::seconds(LIVE_SECS)
}

/// A job with its schedule.
struct Entry {
    job: Arc<dyn Job>,
    schedule: JobSchedule,
}

/// A slot claimed for a run.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The job's name (one of [`JOB_NAMES`](super::JOB_NAMES)).
    pub job: &'static str,
    /// The run record, already stored with outcome `running`.
    pub record: RunRecord,
}

/// One line of `jobs list`.
#[derive(Debug, Clone, Serialize)]
pub struct JobInfo {
    /// The job's name (one of [`JOB_NAMES`](super::JOB_NAMES)).
    pub name: &'static str,
    /// The schedule as configured (`off` or a cron expression).
    pub schedule: String,
    /// The next slot after now; `None` when the schedule is `off`.
    pub next_run: Option<DateTime<Utc>>,
    /// A run is going in this process.
    pub running: bool,
    /// The latest finished run; `None` before the first.
    pub last_run: Option<RunRecord>,
    /// The error of the latest run; `None` once a run succeeds.
    pub last_error: Option<String>,
    /// Runs finished so far (counters are kept in the store, across restarts).
    pub runs: u64,
    /// Runs that ended in an error.
    pub failures: u64,
    /// Runs not started because one was still going (a slot or `jobs run`).
    pub overlaps: u64,
    /// Slots missed while the daemon was down and not caught up.
    pub skipped: u64,
    /// Runs cut short by a crash or shutdown.
    pub interrupted: u64,
}

/// Runs the built-in jobs on their slots. Shared (`Arc`) between the
/// daemon's tick loop, the HTTP API and the runs it spawns.
pub struct Scheduler {
    store: Store,
    clock: Arc<dyn Clock>,
    tz: Tz,
    entries: Vec<Entry>,
    /// Jobs running in this process (guards against overlap).
    running: Mutex<HashSet<&'static str>>,
    /// Set at shutdown: jobs stop between items, their claim stays, and
    /// the next start resumes them.
    stopping: Arc<AtomicBool>,
}

fn minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::seconds(1)).unwrap_or(t)
}

impl Scheduler {
    /// A scheduler over `jobs` with their cron expressions.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        tz: Tz,
        jobs: Vec<(Arc<dyn Job>, String)>,
    ) -> Result<Scheduler, JobsError> {
        let mut entries = Vec::new();
        for (job, expr) in jobs {
            let schedule = JobSchedule::parse(&expr).map_err(|message| JobsError::Schedule {
                job: job.name().to_string(),
                message,
            })?;
            entries.push(Entry { job, schedule });
        }
        Ok(Scheduler {
            store,
            clock,
            tz,
            entries,
            running: Mutex::new(HashSet::new()),
            stopping: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The clock the scheduler reads.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Names of the jobs, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.job.name()).collect()
    }

    fn entry(&self, name: &str) -> Result<&Entry, JobsError> {
        self.entries
            .iter()
            .find(|e| e.job.name() == name)
            .ok_or_else(|| JobsError::NoSuchJob {
                name: name.to_string(),
                known: self.names().join(", "),
            })
    }

    /// Asks running jobs to stop between items (shutdown).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashSet<&'static str>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// At start: runs a previous process left claimed but unfinished are
    /// recorded `interrupted`; each is resumed once (the claims returned).
    pub fn recover(&self) -> Result<Vec<Claim>, JobsError> {
        let now = self.clock.now();
        let mut claims = Vec::new();
        for e in &self.entries {
            let name = e.job.name();
            if self.running().contains(name) {
                continue;
            }
            let shared = self.store.is_shared();
            let resumed = self.store.job_update(name, move |st: &mut JobState| {
                let Some(mut r) = st.running.take() else {
                    return (None, vec![]);
                };
                if shared && held_elsewhere(&r, now) {
                    // Another daemon's run, still going.
                    st.running = Some(r);
                    return (None, vec![]);
                }
                let resume = r.trigger != Trigger::Resume;
                r.outcome = RunOutcome::Interrupted;
                r.finished_at = Some(now);
                st.interrupted += 1;
                let mut claim = None;
                if resume {
                    let mut next =
                        RunRecord::new(&r.job, r.slot, Trigger::Resume, RunOutcome::Running);
                    next.started_at = Some(now);
                    st.running = Some(next.clone());
                    claim = Some(next);
                }
                (claim, vec![r])
            })?;
            if let Some(record) = resumed {
                self.running().insert(name);
                claims.push(Claim { job: name, record });
            }
        }
        Ok(claims)
    }

    /// Claims the slots due now (at most one per job), durably. A job still
    /// running gets its due slot recorded as an overlap instead.
    pub fn due(&self) -> Result<Vec<Claim>, JobsError> {
        let now = self.clock.now();
        let mut claims = Vec::new();
        for e in &self.entries {
            if e.schedule.is_off() {
                continue;
            }
            let name = e.job.name();
            // Held across the claim: a manual run cannot slip in between.
            let mut running = self.running();
            let busy = running.contains(name);
            let schedule = e.schedule.clone();
            let tz = self.tz;
            let shared = self.store.is_shared();
            let claim = self.store.job_update(name, move |st: &mut JobState| {
                let mut dead = Vec::new();
                let mut busy = busy;
                if shared
                    && !busy
                    && let Some(mut r) = st.running.take()
                {
                    if held_elsewhere(&r, now) {
                        busy = true;
                        st.running = Some(r);
                    } else {
                        r.outcome = RunOutcome::Interrupted;
                        r.finished_at = Some(now);
                        r.note = "its daemon stopped showing signs of life".into();
                        st.interrupted += 1;
                        dead.push(r);
                    }
                }
                let (claim, mut records) = claim_slot(st, name, &schedule, tz, now, busy);
                dead.append(&mut records);
                (claim, dead)
            })?;
            if let Some(record) = claim {
                running.insert(name);
                claims.push(Claim { job: name, record });
            }
        }
        Ok(claims)
    }

    /// Runs a claimed slot and records how it ended.
    pub fn execute(&self, claim: Claim) -> RunRecord {
        let entry = match self.entry(claim.job) {
            Ok(e) => e,
            Err(e) => {
                let mut r = claim.record;
                r.outcome = RunOutcome::Failed;
                r.error = Some(e.to_string());
                return r;
            }
        };
        let ctx = RunContext {
            slot: claim.record.slot,
            trigger: claim.record.trigger,
            now: self.clock.now(),
            tz: self.tz,
            stopping: self.stopping.clone(),
        };
        let span =
            tracing::info_span!("job", name = claim.job, slot = %ctx.slot, trigger = ?ctx.trigger);
        let _enter = span.enter();
        let result = self
            .with_heartbeat(claim.job, claim.record.slot, || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| entry.job.run(&ctx)))
            })
            .unwrap_or_else(|p| {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                Err(JobError::Failed(format!("the job panicked: {what}")))
            });
        let mut record = claim.record;
        record.finished_at = Some(self.clock.now());
        let stopped = matches!(result, Err(JobError::Stopped));
        match result {
            Ok(p) => {
                record.outcome = RunOutcome::Ok;
                record.examined = p.examined;
                record.effects = p.effects;
                record.note = p.note;
                tracing::info!(examined = p.examined, effects = p.effects, "job done");
            }
            Err(e) => {
                record.outcome = if stopped {
                    RunOutcome::Interrupted
                } else {
                    RunOutcome::Failed
                };
                record.error = Some(e.to_string());
                tracing::warn!(error = %e, "job failed");
            }
        }
        // Stopped by shutdown: the claim stays, the next start resumes it.
        if !stopped {
            let done = record.clone();
            if let Err(e) = self.store.job_update(claim.job, move |st: &mut JobState| {
                st.running = None;
                st.runs += 1;
                if done.outcome == RunOutcome::Failed {
                    st.failures += 1;
                    st.last_error = done.error.clone();
                } else {
                    st.last_error = None;
                }
                st.last_run = Some(done.clone());
                ((), vec![done])
            }) {
                tracing::error!(error = %e, job = claim.job, "cannot record the end of a job run");
            }
        }
        self.running().remove(claim.job);
        record
    }

    /// Runs `f`; on a shared store, records a heartbeat on the run meanwhile
    /// so that other daemons leave it alone.
    fn with_heartbeat<R>(
        &self,
        job: &'static str,
        slot: DateTime<Utc>,
        f: impl FnOnce() -> R,
    ) -> R {
        if !self.store.is_shared() {
            return f();
        }
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut last = std::time::Instant::now();
                while !done.load(Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    if last.elapsed() < HEARTBEAT {
                        continue;
                    }
                    last = std::time::Instant::now();
                    let now = self.clock.now();
                    let beat = self.store.job_update(job, move |st: &mut JobState| {
                        if let Some(r) = st.running.as_mut().filter(|r| r.slot == slot) {
                            r.heartbeat_at = Some(now);
                        }
                        ((), vec![])
                    });
                    if let Err(e) = beat {
                        tracing::warn!(error = %e, job, "cannot record a heartbeat");
                    }
                }
            });
            let out = f();
            done.store(true, Ordering::SeqCst);
            out
        })
    }

    /// Claims what is due and runs it here, one job after the other (tests
    /// and `edesk jobs tick`; the daemon runs claims concurrently).
    pub fn tick(&self) -> Result<Vec<RunRecord>, JobsError> {
        Ok(self.due()?.into_iter().map(|c| self.execute(c)).collect())
    }

    /// `jobs run NAME --now`: runs the job at once, outside its schedule.
    /// A job already running is not started twice (recorded as an overlap).
    pub fn run_now(&self, name: &str) -> Result<RunRecord, JobsError> {
        let entry = self.entry(name)?;
        let name = entry.job.name();
        let now = minute(self.clock.now());
        let mut running = self.running();
        if running.contains(name) {
            let r = RunRecord::new(name, now, Trigger::Manual, RunOutcome::Overlap);
            self.store.job_update(name, move |st: &mut JobState| {
                st.overlaps += 1;
                ((), vec![r])
            })?;
            return Err(JobsError::Running(name.to_string()));
        }
        let mut record = RunRecord::new(name, now, Trigger::Manual, RunOutcome::Running);
        record.started_at = Some(self.clock.now());
        let claimed = record.clone();
        self.store.job_update(name, move |st: &mut JobState| {
            st.running = Some(claimed);
            ((), vec![])
        })?;
        running.insert(name);
        drop(running);
        Ok(self.execute(Claim { job: name, record }))
    }

    /// Every job: schedule, next slot, last run and result, counters.
    pub fn list(&self) -> Result<Vec<JobInfo>, JobsError> {
        let now = self.clock.now();
        let running = self.running().clone();
        let mut out = Vec::new();
        for e in &self.entries {
            let name = e.job.name();
            let st = self.store.job_state(name)?;
            out.push(JobInfo {
                name,
                schedule: e.schedule.expr().to_string(),
                next_run: e.schedule.next_after(now, self.tz),
                running: running.contains(name),
                last_run: st.last_run,
                last_error: st.last_error,
                runs: st.runs,
                failures: st.failures,
                overlaps: st.overlaps,
                skipped: st.skipped,
                interrupted: st.interrupted,
            });
        }
        Ok(out)
    }

    /// The last `limit` records of a job (runs, skipped slots, overlaps),
    /// newest first.
    pub fn history(&self, name: &str, limit: usize) -> Result<Vec<RunRecord>, JobsError> {
        let name = self.entry(name)?.job.name();
        Ok(self.store.job_runs(name, limit)?)
    }

    /// When the next slot of any job comes (the daemon sleeps until then).
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        let now = self.clock.now();
        self.entries
            .iter()
            .filter_map(|e| e.schedule.next_after(now, self.tz))
            .min()
    }
}

/// The scheduler's decision for one job at `now`, applied to its state on
/// the store's owner thread: the claim (if any) and the records to append.
fn claim_slot(
    st: &mut JobState,
    name: &str,
    schedule: &JobSchedule,
    tz: Tz,
    now: DateTime<Utc>,
    busy: bool,
) -> (Option<RunRecord>, Vec<RunRecord>) {
    let Some(since) = st.since else {
        // First sight: slots before today's start are nobody's misses.
        st.since = Some(now);
        return (None, vec![]);
    };
    let start = st.last_slot.map_or(since, |l| l.max(since));
    let mut due: Vec<DateTime<Utc>> = Vec::new();
    let mut count = 0usize;
    for slot in schedule.slots_after(start, tz) {
        if slot > now || count >= SKIPPED_COUNT {
            break;
        }
        count += 1;
        if due.len() < SKIPPED_RECORDS + 1 {
            due.push(slot);
        } else {
            due[SKIPPED_RECORDS] = slot;
        }
    }
    if count == 0 {
        return (None, vec![]);
    }
    // Very long downtime of a frequent job: find the latest slot directly.
    let latest = if count >= SKIPPED_COUNT {
        schedule
            .latest_at_or_before(now, now - start, tz)
            .unwrap_or(due[due.len() - 1])
    } else {
        due[due.len() - 1]
    };
    let missed = (count - 1) as u64;
    let mut records: Vec<RunRecord> = due
        .iter()
        .filter(|s| **s != latest)
        .take(SKIPPED_RECORDS)
        .map(|s| RunRecord::new(name, *s, Trigger::Schedule, RunOutcome::Skipped))
        .collect();
    st.last_slot = Some(latest);
    st.skipped += missed;
    let trigger = if missed > 0 {
        Trigger::CatchUp
    } else {
        Trigger::Schedule
    };
    if busy {
        let mut r = RunRecord::new(name, latest, trigger, RunOutcome::Overlap);
        r.skipped_slots = missed;
        r.note = "the previous run was still going".into();
        st.overlaps += 1;
        records.push(r);
        return (None, records);
    }
    let mut r = RunRecord::new(name, latest, trigger, RunOutcome::Running);
    r.started_at = Some(now);
    r.skipped_slots = missed;
    st.running = Some(r.clone());
    (Some(r), records)
}
