//! `edesk order|oba|outbox|suppress|notify` subcommands: their arguments, and
//! the ones that open the store directly (import, OBA, flush, preview, bench;
//! run them while the daemon is stopped — sled allows one process). The read
//! and maintenance commands that also work through a running daemon are in
//! `crate::ctl`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Subcommand;
use serde_json::{Value, json};

use super::{ImportReport, Kind, Notifier, NotifyError, ObaError, ObaRequest, sender::Sender};
use crate::config::Config;
use crate::domain::{Lang, OrderId, parse_order};

/// Why one of these commands failed (printed, non-zero exit).
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// Opening the notifier or queuing failed.
    #[error(transparent)]
    Notify(#[from] NotifyError),
    /// The OBA request was refused.
    #[error(transparent)]
    Oba(#[from] ObaError),
    /// The store failed (e.g. the daemon holds it).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A bad argument or input (SO number, kind, language, JSON); the message says which.
    #[error("{0}")]
    Usage(String),
    /// An input file (or stdin) cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file, or `-` for stdin.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The tokio runtime for flush or bench could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// `edesk order …`.
#[derive(Debug, Subcommand)]
pub enum OrderCmd {
    /// Import orders: a JSON array or JSON Lines file (`-` for stdin).
    Import {
        /// The file to import.
        file: PathBuf,
    },
    /// Show an order as JSON.
    Show {
        /// The order's SO number.
        so: String,
    },
    /// Every mail sent or skipped for an order.
    History {
        /// The order's SO number.
        so: String,
    },
    /// Restore an archived order (downloadable again) and tell the
    /// requester (`--by` an address allowed to see the order; otherwise the
    /// order's recipients).
    Restore {
        /// The order's SO number.
        so: String,
        /// Who asks: an address gets the mail if it may see the order.
        #[arg(long, default_value = "operator")]
        by: String,
    },
}

/// `edesk oba …`.
#[derive(Debug, Subcommand)]
pub enum ObaCmd {
    /// Send Order-Based Access mails (the OBA request JSON).
    Send {
        /// The order's SO number.
        so: String,
        /// The OBA request JSON (`-` for stdin).
        #[arg(long)]
        file: PathBuf,
    },
}

/// `edesk outbox …`.
#[derive(Debug, Subcommand)]
pub enum OutboxCmd {
    /// List outbox items (pending and dead by default).
    List {
        /// Include sent items.
        #[arg(long)]
        all: bool,
    },
    /// Put a dead item (or every dead item) back in the queue.
    Retry {
        /// The dead item's id.
        id: Option<u64>,
        /// Every dead item instead of one.
        #[arg(long)]
        all_dead: bool,
    },
    /// Deliver everything due now and exit.
    Flush,
}

/// `edesk suppress …`.
#[derive(Debug, Subcommand)]
pub enum SuppressCmd {
    /// List suppressed addresses and why.
    List,
    /// Mail an address again.
    Remove {
        /// The suppressed address.
        addr: String,
    },
}

/// `edesk notify …`.
#[derive(Debug, Subcommand)]
pub enum NotifyCmd {
    /// Benchmark: N orders imported → rendered → outbox → delivered, and render-only speed.
    Bench {
        /// Orders to import for the end-to-end run.
        #[arg(long, default_value_t = 2000)]
        orders: usize,
        /// Deliver to this SMTP server instead of `smtp.url` / files.
        #[arg(long)]
        smtp: Option<String>,
        /// Deliver to a built-in SMTP sink that discards (measures edesk alone).
        #[arg(long)]
        sink: bool,
    },
    /// Render one kind for an order to stdout (`--part txt|html|subject`).
    Preview {
        /// The stored order's SO number.
        so: String,
        /// The notification kind (`order_available`, `order_on_hold`, …).
        kind: String,
        /// Which part to print: `subject`, `txt` or `html`.
        #[arg(long, default_value = "html")]
        part: String,
        /// `en` or `fr` (default: the order's language).
        #[arg(long)]
        lang: Option<String>,
    },
}

fn read_input(file: &std::path::Path) -> Result<String, CmdError> {
    let mut s = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|source| CmdError::Read {
                path: "-".into(),
                source,
            })?;
    } else {
        s = std::fs::read_to_string(file).map_err(|source| CmdError::Read {
            path: file.display().to_string(),
            source,
        })?;
    }
    Ok(s)
}

/// A JSON array, one object, or JSON Lines. A line that is not JSON becomes a
/// rejection naming the line instead of failing the whole file.
pub fn parse_orders_text(text: &str) -> (Vec<Value>, Vec<crate::domain::OrderRejection>) {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return match v {
            Value::Array(a) => (a, Vec::new()),
            other => (vec![other], Vec::new()),
        };
    }
    let mut vals = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) => vals.push(v),
            Err(e) => bad.push(crate::domain::OrderRejection {
                so: None,
                errors: vec![crate::domain::FieldError {
                    field: format!("line {}", i + 1),
                    message: format!("not JSON: {e}"),
                    value: Value::Null,
                }],
            }),
        }
    }
    (vals, bad)
}

fn so(s: &str) -> Result<OrderId, CmdError> {
    s.parse()
        .map_err(|e: crate::domain::IdError| CmdError::Usage(e.to_string()))
}

fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// `edesk order import`: parses the file (JSON array, object or JSON Lines)
/// and imports it into the store. `show` and `history` are in `crate::ctl`
/// (they also work through a running daemon).
pub fn import_orders(file: &std::path::Path, config: &Config) -> Result<ExitCode, CmdError> {
    let n = super::open_for_cli(config)?;
    let text = read_input(file)?;
    let (vals, bad) = parse_orders_text(&text);
    let mut report = n.import_value(&Value::Array(vals), "cli")?;
    report.rejected.extend(bad);
    println!("{}", report.summary());
    Ok(if report.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// `edesk oba send`: validates the request and queues the access mails;
/// prints the outcome as JSON.
pub fn run_oba(cmd: ObaCmd, config: &Config) -> Result<ExitCode, CmdError> {
    let n = super::open_for_cli(config)?;
    let ObaCmd::Send { so: s, file } = cmd;
    let text = read_input(&file)?;
    let req: ObaRequest = serde_json::from_str(&text)
        .map_err(|e| CmdError::Usage(format!("{}: {e}", file.display())))?;
    let out = n.send_oba(&so(&s)?, &req)?;
    print_json(&out);
    Ok(ExitCode::SUCCESS)
}

/// `edesk outbox flush`: delivers everything due now with this process's
/// own sender, then exits. `list` and `retry` are in `crate::ctl`.
pub fn flush_outbox(config: &Config) -> Result<ExitCode, CmdError> {
    let n = super::open_for_cli(config)?;
    let rt = runtime()?;
    let stats = rt.block_on(async {
        let s = Sender::new(n.clone(), config)?;
        s.drain().await
    })?;
    println!(
        "sent {}, retried {}, dead {}",
        stats.sent, stats.retried, stats.dead
    );
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> Result<tokio::runtime::Runtime, CmdError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CmdError::Runtime)
}

/// A realistic order for benchmarks and previews.
pub fn sample_order(so: &str, email: &str, lang: Lang) -> Value {
    json!({
        "so": so, "po": format!("PO-{so}"), "lang": lang.as_str(), "bill_to": "ACME Networks",
        "lines": [
            {"line": "1.1", "pid": "L-ASA5516-TD-1Y", "qty": 1, "images": [{"file": "asa-9.20.2-lfbff-k8.SPA", "md5": "9fb4c92d620d4be2a9f190e7fa6332b3"}]},
            {"line": "2.1", "pid": "R-ISE-BASE-100", "qty": 5, "images": [{"file": "ise-3.3.0.430.SPA.x86_64.iso", "md5": "0cc175b9c0f1b6a831c399e269772661"}, {"file": "ise-patch-3.3-4.tar.gz", "md5": "92eb5ffee6ae2fec3ad71c777531578f"}]}
        ],
        "recipients": [{"name": "John Harper", "email": email, "lang": lang.as_str(), "role": "end-user"}]
    })
}

/// `edesk notify preview|bench`.
pub fn run_notify(cmd: NotifyCmd, config: &Config) -> Result<ExitCode, CmdError> {
    match cmd {
        NotifyCmd::Preview {
            so: s,
            kind,
            part,
            lang,
        } => preview(config, &s, &kind, &part, lang),
        NotifyCmd::Bench { orders, smtp, sink } => bench(config, orders, smtp, sink),
    }
}

/// `notify preview`: renders one notification of a stored order to stdout.
fn preview(
    config: &Config,
    s: &str,
    kind: &str,
    part: &str,
    lang: Option<String>,
) -> Result<ExitCode, CmdError> {
    let n = super::open_for_cli(config)?;
    let kind: Kind = kind.parse().map_err(CmdError::Usage)?;
    let order = n
        .store()
        .order(&so(s)?)?
        .ok_or_else(|| CmdError::Usage(format!("no order {s}")))?;
    let lang = match lang {
        Some(l) => l
            .parse()
            .map_err(|e: crate::domain::ParseLangError| CmdError::Usage(e.to_string()))?,
        None => order.lang,
    };
    let r = n.render_preview(kind, &order, lang)?;
    match part {
        "subject" => println!("{}", r.subject),
        "txt" | "text" => print!("{}", r.text),
        _ => print!("{}", r.html),
    }
    Ok(ExitCode::SUCCESS)
}

/// `notify bench`: the rendering rate alone, then import → queue → delivery
/// end to end (to `--smtp`, an in-process sink with `--sink`, or files).
fn bench(
    config: &Config,
    orders: usize,
    smtp: Option<String>,
    sink: bool,
) -> Result<ExitCode, CmdError> {
    let mut config = config.clone();
    if smtp.is_some() {
        config.smtp.url = smtp;
    }
    let rt = runtime()?;
    let bench_sink = if sink {
        let s = rt
            .block_on(super::bench_sink::start())
            .map_err(CmdError::Runtime)?;
        config.smtp.url = Some(format!("smtp://{}", s.addr));
        Some(s)
    } else {
        None
    };
    let n = super::open_for_cli(&config)?;
    bench_render(&n, orders.max(1))?;
    bench_end_to_end(&n, &config, &rt, orders)?;
    if let Some(s) = bench_sink {
        println!(
            "sink received {}",
            s.received.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Renders one sample order `renders` times (alternating languages) and
/// prints the rate: the template cost without store or network.
fn bench_render(n: &Notifier, renders: usize) -> Result<(), CmdError> {
    let now = chrono::Utc::now().fixed_offset();
    let sample = parse_order(
        &sample_order("99000001", "bench@example.com", Lang::En),
        now,
    )
    .map_err(|e| CmdError::Usage(e.to_string()))?;
    let t = Instant::now();
    for i in 0..renders {
        let lang = if i % 2 == 0 { Lang::En } else { Lang::Fr };
        n.render_preview(Kind::OrderAvailable, &sample, lang)?;
    }
    let render_rate = renders as f64 / t.elapsed().as_secs_f64();
    println!(
        "render only: {renders} notifications (text+html+subject) in {:.3}s = {render_rate:.0}/s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Imports `orders` fresh orders while the sender runs alongside (as in the
/// daemon), waits until the outbox is drained and prints the rate.
fn bench_end_to_end(
    n: &Notifier,
    config: &Config,
    rt: &tokio::runtime::Runtime,
    orders: usize,
) -> Result<(), CmdError> {
    let base: u64 = 90_000_000 + u64::from(rand::random::<u16>()) * 10_000;
    // Generated a chunk at a time: the benchmark's own memory must
    // not be what `bench scale` reports as the import's peak.
    let order_at = |i: usize| {
        sample_order(
            &format!("{}", base + i as u64),
            &format!("user{i}@bench{}.example.com", i % 8),
            Lang::En,
        )
    };
    // The data directory may hold earlier runs' mail: count this run's.
    let (_, sent_before, _) = n.store().outbox_counts()?;
    let sender: Arc<Sender> = Sender::new(n.clone(), config)?;
    let stop = tokio_util::sync::CancellationToken::new();
    let task = rt.spawn(sender.run(stop.clone()));
    let t = Instant::now();
    let mut report = ImportReport::default();
    for start in (0..orders).step_by(100) {
        let chunk: Vec<Value> = (start..(start + 100).min(orders)).map(order_at).collect();
        let r = n.import_value(&Value::Array(chunk), "bench")?;
        report.queued += r.queued;
        report.rejected.extend(r.rejected);
    }
    let import_s = t.elapsed().as_secs_f64();
    while n.store().next_due_ms()?.is_some() {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let total = t.elapsed().as_secs_f64();
    stop.cancel();
    let _ = rt.block_on(task);
    let (_, sent_after, _) = n.store().outbox_counts()?;
    let sent = sent_after.saturating_sub(sent_before);
    println!(
        "end to end: {orders} orders imported+rendered+queued in {import_s:.3}s, {sent} delivered ({}) in {total:.3}s total = {:.0} notifications/s",
        config.smtp.url.as_deref().unwrap_or("files"),
        report.queued as f64 / total
    );
    Ok(())
}
