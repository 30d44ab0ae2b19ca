//! `edesk bench scale`: what a large store costs. Imports N generated orders
//! end to end (a child `edesk notify bench --orders N --sink`, watched for its
//! peak memory), then measures the data directory, how long `serve` takes to
//! be ready on it, its idle memory, and how long `/metrics` and `/healthz`
//! take to answer.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use super::{BenchError, OwnDaemon, err, http_request, ms, new_run_id};

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Orders to generate and import (one notification each).
    #[arg(long, default_value_t = 100_000)]
    pub orders: usize,
    /// Requests per endpoint when timing `/metrics` and `/healthz`.
    #[arg(long, default_value_t = 20)]
    pub probes: usize,
    /// One JSON object on stdout instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Keep the data directory (default: removed at the end).
    #[arg(long)]
    pub keep_data: bool,
    /// Orders of the small-store run the rate is compared with (§6: at
    /// least 0.8 × the 3,000-order rate), run on a fresh directory before
    /// and after the large import; 0 skips it.
    #[arg(long, default_value_t = 3000)]
    pub baseline: usize,
}

#[derive(Debug, Default, Serialize)]
struct ScaleReport {
    orders: usize,
    notifications_per_sec: Option<f64>,
    /// The small-store rate before and after the large import.
    baseline_per_sec: Vec<f64>,
    /// `notifications_per_sec` over the mean of `baseline_per_sec`.
    rate_ratio: Option<f64>,
    import_peak_rss_mb: f64,
    data_dir_mb: f64,
    bytes_per_order: f64,
    serve_ready_ms: f64,
    serve_idle_rss_mb: f64,
    metrics_ms_p50: f64,
    metrics_ms_max: f64,
    healthz_ms_p50: f64,
    healthz_ms_max: f64,
    data_dir: Option<PathBuf>,
}

pub fn run(args: &ScaleArgs, data_dir: Option<&Path>) -> Result<ExitCode, BenchError> {
    let (dir, temporary) = match data_dir {
        Some(d) => (d.to_path_buf(), false),
        None => (
            std::env::temp_dir().join(format!("edesk-scale-{}", new_run_id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    let mut report = ScaleReport {
        orders: args.orders,
        ..ScaleReport::default()
    };
    baseline(args.baseline, &mut report)?;
    let (rate, peak) = import(&dir, args.orders)?;
    (report.notifications_per_sec, report.import_peak_rss_mb) = (rate, peak);
    baseline(args.baseline, &mut report)?;
    let base = &report.baseline_per_sec;
    if !base.is_empty() {
        let mean = base.iter().sum::<f64>() / base.len() as f64;
        report.rate_ratio = rate.map(|r| r / mean);
    }
    report.data_dir_mb = mib(crate::store::disk_bytes(&dir));
    report.bytes_per_order = crate::store::disk_bytes(&dir) as f64 / args.orders.max(1) as f64;
    serve(&dir, args.probes, &mut report)?;
    if temporary && !args.keep_data {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        report.data_dir = Some(dir);
    }
    print(&report, args.json);
    Ok(ExitCode::SUCCESS)
}

/// The rate of a `baseline`-order import on a fresh directory (removed after).
fn baseline(orders: usize, report: &mut ScaleReport) -> Result<(), BenchError> {
    if orders == 0 {
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("edesk-scale-base-{}", new_run_id()));
    let measured = import(&dir, orders);
    let _ = std::fs::remove_dir_all(&dir);
    if let (Some(rate), _) = measured? {
        report.baseline_per_sec.push(rate);
    }
    Ok(())
}

/// Runs the end-to-end notification benchmark in a child and samples its
/// peak resident memory while it runs: (notifications/s, peak RSS in MB).
fn import(dir: &Path, orders: usize) -> Result<(Option<f64>, f64), BenchError> {
    let exe = std::env::current_exe().map_err(|e| err(format!("current executable: {e}")))?;
    let mut child = std::process::Command::new(exe)
        .arg("--data-dir")
        .arg(dir)
        .args(["notify", "bench", "--sink", "--orders"])
        .arg(orders.to_string())
        .env("EDESK_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| err(format!("cannot start notify bench: {e}")))?;
    let mut peak_kb = 0;
    let status = loop {
        if let Some(kb) = status_kb(child.id(), "VmHWM:") {
            peak_kb = peak_kb.max(kb);
        }
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(err(format!("notify bench: {e}"))),
        }
    };
    let mut out = String::new();
    if let Some(mut so) = child.stdout.take() {
        use std::io::Read;
        let _ = so.read_to_string(&mut out);
    }
    if !status.success() {
        return Err(err(format!("notify bench failed ({status}):\n{out}")));
    }
    // "end to end: … = 1234 notifications/s"
    let rate = out
        .lines()
        .find(|l| l.starts_with("end to end"))
        .and_then(|l| l.rsplit_once('=').map(|(_, r)| r.to_string()))
        .and_then(|r| r.split_whitespace().next().and_then(|n| n.parse().ok()));
    Ok((rate, peak_kb as f64 / 1024.0))
}

/// Starts `serve` on the filled directory: time to ready, idle memory,
/// latency of the operator endpoints.
fn serve(dir: &Path, probes: usize, report: &mut ScaleReport) -> Result<(), BenchError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| err(format!("cannot start the async runtime: {e}")))?;
    let started = Instant::now();
    let daemon = OwnDaemon::spawn(dir)?;
    rt.block_on(async {
        loop {
            let r = http_request(daemon.http, "GET", "/readyz", None, Duration::from_secs(5)).await;
            if matches!(r, Ok((200, _))) {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(120) {
                return Err(err("serve not ready within 120 s"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })?;
    report.serve_ready_ms = ms(started.elapsed());
    std::thread::sleep(Duration::from_secs(2));
    report.serve_idle_rss_mb = status_kb(daemon.pid(), "VmRSS:").unwrap_or(0) as f64 / 1024.0;
    let (p50, max) = rt.block_on(latency(daemon.http, "/metrics", probes))?;
    (report.metrics_ms_p50, report.metrics_ms_max) = (p50, max);
    let (p50, max) = rt.block_on(latency(daemon.http, "/healthz", probes))?;
    (report.healthz_ms_p50, report.healthz_ms_max) = (p50, max);
    daemon.terminate(Duration::from_secs(30));
    Ok(())
}

async fn latency(
    http: std::net::SocketAddr,
    path: &str,
    n: usize,
) -> Result<(f64, f64), BenchError> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let t = Instant::now();
        let (status, body) = http_request(http, "GET", path, None, Duration::from_secs(30)).await?;
        if status != 200 {
            return Err(err(format!("GET {path}: {status} {body}")));
        }
        times.push(ms(t.elapsed()));
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], times[times.len() - 1]))
}

/// A `kB` line of `/proc/PID/status` (Linux; None elsewhere).
fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn mib(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0
}

fn print(r: &ScaleReport, json: bool) {
    if json {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    let rate = r
        .notifications_per_sec
        .map_or("?".to_string(), |n| format!("{n:.0}"));
    println!("orders: {}", r.orders);
    println!(
        "import: {rate} notifications/s end to end, peak RSS {:.0} MB",
        r.import_peak_rss_mb
    );
    if let Some(ratio) = r.rate_ratio {
        let base: Vec<String> = r
            .baseline_per_sec
            .iter()
            .map(|b| format!("{b:.0}"))
            .collect();
        println!(
            "rate: {ratio:.2} x the small-store rate ({} notifications/s before and after)",
            base.join(" and ")
        );
    }
    println!(
        "store: {:.1} MB, {:.0} bytes per order",
        r.data_dir_mb, r.bytes_per_order
    );
    println!(
        "serve: ready in {:.0} ms, idle RSS {:.0} MB",
        r.serve_ready_ms, r.serve_idle_rss_mb
    );
    println!(
        "/metrics: p50 {:.2} ms, max {:.2} ms; /healthz: p50 {:.2} ms, max {:.2} ms",
        r.metrics_ms_p50, r.metrics_ms_max, r.healthz_ms_p50, r.healthz_ms_max
    );
}
