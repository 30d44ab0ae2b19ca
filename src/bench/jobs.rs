//! `edesk bench jobs`: one pass of the order jobs (`archive`,
//! `pak-reminder`, `download-window`, `release-held`) over a store of N
//! generated orders — time per job and peak memory of the pass.
//!
//! The store is generated directly (orders and their meta, as if earlier
//! daily runs had happened: orders past 15 months already archived, earlier
//! reminders and warnings done), so a pass finds what a daily run finds: a
//! day's worth of orders to archive, remind and warn among N to scan. The
//! pass runs in a child process (`--pass-only`) that reports its own peak
//! resident memory, so generating the store does not count.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::{BenchError, err, ms, new_run_id};
use crate::config::Config;
use crate::domain::{Image, Lang, Order, OrderLine, Recipient, archive_due};
use crate::jobs::{RunContext, builtin};
use crate::store::{Commit, OrderMeta, Store};

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Orders to generate.
    #[arg(long, default_value_t = 100_000)]
    pub orders: usize,
    /// Use the store already in the data directory (from a `--keep-data` run).
    #[arg(long)]
    pub reuse: bool,
    /// Keep the data directory (default: removed at the end).
    #[arg(long)]
    pub keep_data: bool,
    /// One JSON object on stdout instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Internal: run the pass on the data directory and report as JSON.
    #[arg(long, hide = true)]
    pub pass_only: bool,
}

/// One job's part of the pass.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct JobFigure {
    job: String,
    ms: f64,
    examined: u64,
    effects: u64,
    orders_per_sec: f64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PassReport {
    orders: usize,
    generate_ms: Option<f64>,
    jobs: Vec<JobFigure>,
    pass_ms: f64,
    pass_peak_rss_mb: f64,
    data_dir: Option<PathBuf>,
}

/// Where the days of the generated orders fall (the last 20 months).
const SPREAD_DAYS: i64 = 600;

pub fn run(args: &JobsArgs, data_dir: Option<&Path>) -> Result<ExitCode, BenchError> {
    let (dir, temporary) = match data_dir {
        Some(d) => (d.to_path_buf(), false),
        None => (
            std::env::temp_dir().join(format!("edesk-jobs-{}", new_run_id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    let config = Config {
        data_dir: dir.clone(),
        ..Config::default()
    };
    if args.pass_only {
        let report = pass(&config)?;
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    let generate_ms = if args.reuse {
        None
    } else {
        let t0 = Instant::now();
        generate(&config, args.orders)?;
        Some(ms(t0.elapsed()))
    };
    let mut report = pass_in_child(&dir)?;
    report.generate_ms = generate_ms;
    if temporary && !args.keep_data {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        report.data_dir = Some(dir);
    }
    print(&report, args.json);
    Ok(ExitCode::SUCCESS)
}

fn pass_in_child(dir: &Path) -> Result<PassReport, BenchError> {
    let exe = std::env::current_exe().map_err(|e| err(format!("own executable: {e}")))?;
    let out = std::process::Command::new(exe)
        .arg("--data-dir")
        .arg(dir)
        .args(["bench", "jobs", "--pass-only"])
        .env("EDESK_LOG", "warn")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| err(format!("cannot run the pass: {e}")))?;
    if !out.status.success() {
        return Err(err(format!("the pass failed ({})", out.status)));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| err(format!("pass report: {e}")))
}

fn store_err(e: impl std::fmt::Display) -> BenchError {
    err(format!("store: {e}"))
}

/// The generated order `k`, available `age` days ago.
fn order(k: usize, now: DateTime<Utc>, age: i64) -> Result<Order, BenchError> {
    let so = format!("{}", 100_000_000 + k).parse().map_err(store_err)?;
    let email = format!("user{}@customer{}.example.com", k % 9973, k % 101)
        .parse()
        .map_err(store_err)?;
    Ok(Order {
        so,
        po: None,
        lang: if k.is_multiple_of(4) {
            Lang::Fr
        } else {
            Lang::En
        },
        bill_to: Some(format!("Customer {}", k % 101)),
        available_at: Some(
            (now - Duration::days(age) - Duration::minutes((k % 600) as i64)).fixed_offset(),
        ),
        early_ship: true,
        requested_date: None,
        archived: false,
        pak_registered: k.is_multiple_of(3).then_some(false),
        holds: Vec::new(),
        lines: vec![OrderLine {
            line: "1.1".into(),
            pid: "L-ASA5516-TD-1Y".into(),
            qty: 1,
            images: vec![Image {
                file: "asa-9.20.2-lfbff-k8.SPA".into(),
                md5: "9fb4c92d620d4be2a9f190e7fa6332b3".into(),
            }],
        }],
        recipients: vec![Recipient {
            name: Some(format!("User {k}")),
            email,
            lang: None,
            role: None,
            reply_token: None,
        }],
        notification_ids: Vec::new(),
    })
}

/// State as earlier daily runs left it: archived when due before today,
/// PAK reminders and the window warning done when due before today.
fn history(order: &mut Order, meta: &mut OrderMeta, now: DateTime<Utc>, s: &builtin::Settings) {
    let today = now.date_naive();
    let yesterday = today - Duration::days(1);
    let Some(av) = order.available_at.map(|a| a.date_naive()) else {
        return;
    };
    meta.available_count = 1;
    meta.event_seq = 1;
    if archive_due(av, yesterday) {
        order.archived = true;
        meta.archived_at = Some(now - Duration::days(1));
        meta.archived_by = Some("archive job".into());
        meta.archive_owned = true;
        return;
    }
    if builtin::window_warning_due(av, yesterday, s.window_warn_days).is_some()
        || av + Duration::days(crate::domain::SECOND_DOWNLOAD_DAYS) < yesterday
    {
        meta.window_warned_at = Some(now - Duration::days(1));
    }
    if order.pak_registered == Some(false) {
        let mut day: NaiveDate = av + Duration::days(i64::from(s.pak_after_days));
        while day <= yesterday && meta.pak_reminders < s.pak_max {
            meta.pak_reminders += 1;
            meta.pak_reminded_at = day.and_hms_opt(9, 0, 0).map(|t| t.and_utc());
            day += Duration::days(i64::from(s.pak_every_days));
        }
    }
}

fn generate(config: &Config, n: usize) -> Result<(), BenchError> {
    let store =
        Store::open_with(&config.data_dir, &config.store.engine_settings()).map_err(store_err)?;
    let settings = builtin::Settings::from_config(config);
    let now = Utc::now();
    let mut mark = store.write_mark();
    for k in 0..n {
        // Spread over the days without a pattern the jobs could exploit.
        let age = (k as i64).wrapping_mul(7919).rem_euclid(SPREAD_DAYS);
        let mut o = order(k, now, age)?;
        let mut meta = OrderMeta::default();
        history(&mut o, &mut meta, now, &settings);
        store
            .commit(Commit {
                meta: Some((o.so.clone(), meta)),
                order: Some(o),
                ..Commit::default()
            })
            .map_err(store_err)?;
        if k % 4096 == 4095 {
            store.flush(mark).map_err(store_err)?;
            mark = store.write_mark();
        }
    }
    store.flush(mark).map_err(store_err)
}

fn pass(config: &Config) -> Result<PassReport, BenchError> {
    let store =
        Store::open_with(&config.data_dir, &config.store.engine_settings()).map_err(store_err)?;
    let orders = store.order_count().map_err(store_err)?;
    let notifier = crate::notify::Notifier::new(store.clone(), config).map_err(store_err)?;
    let desk = std::sync::Arc::new(
        crate::desk::service(config, &store, std::sync::Arc::new(notifier.clone()))
            .map_err(store_err)?,
    );
    let now = Utc::now();
    let mut report = PassReport {
        orders,
        ..PassReport::default()
    };
    let t_pass = Instant::now();
    for (job, _) in builtin::all(&notifier, &desk, config) {
        if !matches!(
            job.name(),
            "archive" | "pak-reminder" | "download-window" | "release-held"
        ) {
            continue;
        }
        let ctx = RunContext::new(now, now, chrono_tz::Tz::UTC);
        let t0 = Instant::now();
        let p = job
            .run(&ctx)
            .map_err(|e| err(format!("{}: {e}", job.name())))?;
        let elapsed = t0.elapsed();
        report.jobs.push(JobFigure {
            job: job.name().to_string(),
            ms: ms(elapsed),
            examined: p.examined,
            effects: p.effects,
            orders_per_sec: (orders as f64 / elapsed.as_secs_f64().max(1e-9)).round(),
        });
    }
    report.pass_ms = ms(t_pass.elapsed());
    report.pass_peak_rss_mb = self_status_kb("VmHWM:").unwrap_or(0) as f64 / 1024.0;
    Ok(report)
}

fn self_status_kb(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn print(r: &PassReport, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
        return;
    }
    println!("orders in the store        {}", r.orders);
    if let Some(g) = r.generate_ms {
        println!("generated in               {:.1} s", g / 1000.0);
    }
    for j in &r.jobs {
        println!(
            "{:<26} {:>9.1} ms  {:>9} orders/s  {} changed",
            j.job, j.ms, j.orders_per_sec, j.effects
        );
    }
    println!("whole pass                 {:.1} s", r.pass_ms / 1000.0);
    println!("peak RSS of the pass       {:.1} MB", r.pass_peak_rss_mb);
    if let Some(d) = &r.data_dir {
        println!("data directory             {}", d.display());
    }
}
