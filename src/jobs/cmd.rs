//! `edesk jobs list|run|history`: the commands, the local runner and the
//! printing shared with the daemon path (`crate::ctl::jobs`), so both print
//! the same.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use serde_json::Value;

use super::{JobsError, Scheduler, SystemClock, builtin};
use crate::config::Config;
use crate::notify::Notifier;
use crate::store::{RunOutcome, RunRecord};

/// `edesk jobs …`.
#[derive(Debug, Subcommand)]
pub enum JobsCmd {
    /// Every job: schedule, next run, last run and its result.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run a job now, outside its schedule (waits for the end of the run).
    Run {
        /// The job's name (`edesk jobs list` shows them).
        name: String,
        /// Run at once (the only mode: scheduled runs happen in `serve`).
        #[arg(long, required = true)]
        now: bool,
        /// Print the run record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The last runs of a job, skipped slots and overlaps included.
    History {
        /// The job's name (`edesk jobs list` shows them).
        name: String,
        /// Show at most this many records, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// The scheduler with every built-in job, as `serve` runs it, over
/// `notifier`'s store (for commands run without the daemon).
pub fn build(notifier: &Notifier, config: &Config) -> Result<Scheduler, JobsError> {
    let desk = crate::desk::service(config, notifier.store(), Arc::new(notifier.clone()))
        .map_err(|e| JobsError::Setup(e.to_string()))?;
    Scheduler::new(
        notifier.store().clone(),
        Arc::new(SystemClock),
        config.calendar.tz(),
        builtin::all(notifier, &Arc::new(desk), config),
    )
}

/// `edesk jobs …` on the store (no daemon running); the daemon path is
/// `crate::ctl::jobs`, printing the same through the functions below.
pub fn run_local(cmd: JobsCmd, s: &Scheduler) -> Result<ExitCode, JobsError> {
    match cmd {
        JobsCmd::List { json } => {
            let list = s.list()?;
            print_list(&serde_json::to_value(&list).unwrap_or_default(), json);
            Ok(ExitCode::SUCCESS)
        }
        JobsCmd::Run { name, json, .. } => {
            let r = s.run_now(&name)?;
            Ok(print_run(
                &serde_json::to_value(&r).unwrap_or_default(),
                json,
            ))
        }
        JobsCmd::History { name, limit, json } => {
            let h = s.history(&name, limit)?;
            print_history(&serde_json::to_value(&h).unwrap_or_default(), json);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn short(v: &Value) -> String {
    v.as_str()
        .map(|s| s.get(..16).unwrap_or(s).replace('T', " "))
        .unwrap_or_else(|| "-".into())
}

/// Prints `jobs list` (the `GET /v1/jobs` array).
pub fn print_list(v: &Value, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return;
    }
    println!(
        "{:<16} {:<20} {:<17} {:<17} RESULT",
        "JOB", "SCHEDULE", "NEXT RUN", "LAST RUN"
    );
    for j in v.as_array().into_iter().flatten() {
        let last = &j["last_run"];
        let result = match last["outcome"].as_str() {
            None => "never run".to_string(),
            Some("failed") => format!("failed: {}", last["error"].as_str().unwrap_or("")),
            Some(o) => format!("{o} ({})", last["note"].as_str().unwrap_or("")),
        };
        println!(
            "{:<16} {:<20} {:<17} {:<17} {}{}",
            j["name"].as_str().unwrap_or(""),
            j["schedule"].as_str().unwrap_or(""),
            short(&j["next_run"]),
            short(&last["slot"]),
            if j["running"].as_bool() == Some(true) {
                "running; last "
            } else {
                ""
            },
            result
        );
    }
}

/// Prints a run record; the exit code says whether it succeeded.
pub fn print_run(v: &Value, json: bool) -> ExitCode {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        println!("{}", run_line(v));
    }
    match serde_json::from_value::<RunRecord>(v.clone()) {
        Ok(r) if r.outcome == RunOutcome::Ok => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn run_line(r: &Value) -> String {
    let mut s = format!(
        "{} {} {} {}",
        r["job"].as_str().unwrap_or(""),
        short(&r["slot"]),
        r["trigger"].as_str().unwrap_or(""),
        r["outcome"].as_str().unwrap_or("")
    );
    if let Some(n) = r["note"].as_str().filter(|n| !n.is_empty()) {
        s.push_str(&format!(": {n}"));
    }
    if let Some(e) = r["error"].as_str() {
        s.push_str(&format!(": {e}"));
    }
    if let Some(k) = r["skipped_slots"].as_u64().filter(|k| *k > 0) {
        s.push_str(&format!(" ({k} missed slots skipped)"));
    }
    s
}

/// Prints `jobs history` (run records, newest first).
pub fn print_history(v: &Value, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return;
    }
    let runs = v.as_array().cloned().unwrap_or_default();
    if runs.is_empty() {
        println!("no runs");
    }
    for r in runs {
        println!("{}", run_line(&r));
    }
}
