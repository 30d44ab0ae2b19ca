//! `edesk bench intake`: a load generator and proof harness for the inbound
//! path. It talks to a daemon only over sockets (LMTP and HTTP), so it works
//! against any build, including one that hangs: a watchdog turns "no reply for
//! N seconds" into a failed run with a report instead of a stuck terminal.
//!
//! The pieces are public so that `tests/it/stress_intake.rs` drives the real
//! binary with the same client code: [`run_load`] (concurrent LMTP clients and
//! an order poster), [`wait_drained`], [`verify`], [`http_request`].
#![warn(missing_docs)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

mod chat;
mod jobs;
mod scale;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::sync::CancellationToken;

/// `edesk bench …`.
#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Concurrent LMTP clients (and optional order posts) against a daemon;
    /// fails when the daemon stops answering.
    Intake(IntakeArgs),
    /// What a large store costs: notifications/s and peak memory while
    /// importing N orders, bytes per order, `serve` start-up and idle memory,
    /// `/metrics` and `/healthz` latency.
    Scale(scale::ScaleArgs),
    /// One pass of the order jobs (archive, PAK reminders, download window,
    /// held orders) over N generated orders: time per job, peak memory.
    Jobs(jobs::JobsArgs),
    /// Chat messages/s through `POST /v1/chat` (FAQ questions, many web
    /// sessions), p50/p99 latency.
    Chat(chat::ChatArgs),
}

/// Options of `edesk bench intake`.
#[derive(Debug, Args)]
pub struct IntakeArgs {
    /// Concurrent LMTP connections.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Messages in total, spread over the clients.
    #[arg(long, default_value_t = 3000)]
    pub messages: usize,
    /// LMTP address of a running daemon. Unset: start `edesk serve` on a
    /// fresh data directory (or `--data-dir`) and stop it afterwards.
    #[arg(long)]
    pub lmtp: Option<SocketAddr>,
    /// HTTP API of that daemon (default 127.0.0.1:7070 with `--lmtp`).
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Orders to post to `POST /v1/orders` while the mail flows (outbox work).
    #[arg(long, default_value_t = 0)]
    pub orders: usize,
    /// Fail when no message got a reply for this long.
    #[arg(long, default_value_t = 10)]
    pub watchdog_secs: u64,
    /// Pad each message to about this many bytes (default: short mails).
    #[arg(long)]
    pub size: Option<usize>,
    /// How long the daemon may take to process what it accepted.
    #[arg(long, default_value_t = 300)]
    pub drain_secs: u64,
    /// Check `/v1/mail`: each acknowledged Message-ID stored exactly once;
    /// with a daemon of our own, again after a SIGTERM and a restart.
    #[arg(long)]
    pub verify: bool,
    /// One JSON object on stdout instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Keep the temporary data directory of a daemon of our own.
    #[arg(long)]
    pub keep_data: bool,
    /// On a hang, leave our daemon running (to attach a debugger) instead of killing it.
    #[arg(long)]
    pub keep_on_hang: bool,
}

/// A benchmark could not run or its daemon misbehaved; the message is for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchError(pub String);

fn err(what: impl std::fmt::Display) -> BenchError {
    BenchError(what.to_string())
}

/// What one load run does.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// The daemon's LMTP address.
    pub lmtp: SocketAddr,
    /// Needed for order posts and the `/healthz` probe on a stall.
    pub http: Option<SocketAddr>,
    /// Concurrent LMTP connections.
    pub clients: usize,
    /// Messages in total, spread over the clients.
    pub messages: usize,
    /// Orders posted to `POST /v1/orders` during the run (needs `http`).
    pub orders: usize,
    /// The run stops as stalled when no message got a final reply for this long.
    pub watchdog: Duration,
    /// Pad each message to about this many bytes; `None`: short mails.
    pub size: Option<usize>,
    /// Prefix of every Message-ID of this run; [`verify`] counts only these.
    pub run_id: String,
}

impl LoadPlan {
    /// The defaults of `bench intake` (8 clients, 3000 messages, no orders, 10 s watchdog)
    /// with a fresh run id.
    pub fn new(lmtp: SocketAddr, http: Option<SocketAddr>) -> LoadPlan {
        LoadPlan {
            lmtp,
            http,
            clients: 8,
            messages: 3000,
            orders: 0,
            watchdog: Duration::from_secs(10),
            size: None,
            run_id: new_run_id(),
        }
    }
}

/// Unique per run (time and pid), usable in a Message-ID's left part.
pub fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("bench{}x{}", nanos % 1_000_000_000_000, std::process::id())
}

/// How the daemon answered one message.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every recipient got 250; `duplicate` when the daemon said it had the
    /// message already (it should not: each Message-ID is new).
    Acked {
        /// A reply said the message was there already.
        duplicate: bool,
    },
    /// A 4xx reply (or the connection broke): the reply text.
    TempFailed(String),
    /// A 5xx reply: the reply text.
    Failed(String),
}

/// One message as sent and answered.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Without angle brackets.
    pub message_id: String,
    /// Bytes of the message as the daemon should store it (before dot-stuffing).
    pub size: usize,
    /// From the start of the attempt (connecting, when needed) to the last reply.
    pub latency: Duration,
    /// How the daemon answered.
    pub outcome: Outcome,
}

/// What the watchdog saw when it stopped a run that no longer got replies.
#[derive(Debug, Clone, Serialize)]
pub struct Stall {
    /// Messages acknowledged (250) before the stall.
    pub acknowledged_before_stall: usize,
    /// Messages with any final reply before the stall.
    pub replies_before_stall: usize,
    /// Seconds since the last final reply, when the watchdog fired.
    pub idle_secs: f64,
    /// What `GET /healthz` answered within 2 s (or why not).
    pub healthz: String,
}

/// The order posts of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OrderStats {
    /// Posts answered 2xx.
    pub posted: usize,
    /// Posts answered otherwise, or that failed.
    pub failed: usize,
    /// The first failure (status and body, or the error); `None` when none failed.
    pub first_error: Option<String>,
}

/// The result of [`run_load`].
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Every message attempted, in no particular order.
    pub sent: Vec<Sent>,
    /// Length of the load phase.
    pub elapsed: Duration,
    /// The order posts.
    pub orders: OrderStats,
    /// Set when the watchdog stopped the run.
    pub stall: Option<Stall>,
    /// Messages never attempted (their client gave up or was stopped).
    pub not_sent: usize,
}

impl LoadReport {
    /// Messages whose outcome matches `f`.
    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.sent.iter().filter(|s| f(&s.outcome)).count()
    }
    /// Messages acknowledged with 250, duplicates included.
    pub fn acknowledged(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Acked { .. }))
    }
    /// Acknowledged messages the daemon said it had already.
    pub fn duplicate_acks(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Acked { duplicate: true }))
    }
    /// Messages refused with a 4xx reply.
    pub fn temp_failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::TempFailed(_)))
    }
    /// Messages refused with a 5xx reply.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }
    /// Acknowledged messages per second of the load phase.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.acknowledged() as f64 / secs
        } else {
            0.0
        }
    }
    /// Latency quantile (a fraction, 0.99 for p99) over acknowledged messages.
    pub fn percentile(&self, p: f64) -> Duration {
        let mut l: Vec<Duration> = self
            .sent
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Acked { .. }))
            .map(|s| s.latency)
            .collect();
        percentile(&mut l, p)
    }
    /// The acknowledged messages: (Message-ID without brackets, size).
    pub fn acked(&self) -> Vec<(String, usize)> {
        self.sent
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Acked { .. }))
            .map(|s| (s.message_id.clone(), s.size))
            .collect()
    }
    /// A few distinct failure reasons, for the report.
    pub fn error_samples(&self, n: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in &self.sent {
            if let Outcome::TempFailed(e) | Outcome::Failed(e) = &s.outcome {
                if !out.contains(e) {
                    out.push(e.clone());
                }
                if out.len() >= n {
                    break;
                }
            }
        }
        out
    }
}

/// The `q` quantile (a fraction: 0.5 is the median, 0.99 the 99th
/// percentile, as in `faq::eval`) of the latencies; sorts them.
fn percentile(v: &mut [Duration], q: f64) -> Duration {
    debug_assert!((0.0..=1.0).contains(&q), "a fraction, not a percent: {q}");
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    let rank = (q * (v.len() - 1) as f64).round() as usize;
    v[rank.min(v.len() - 1)]
}

/// State shared by the clients and the watchdog.
struct Shared {
    start: Instant,
    /// Milliseconds since `start` of the last final reply to a message.
    last_reply_ms: AtomicU64,
    replies: AtomicUsize,
    acked: AtomicUsize,
    sent: Mutex<Vec<Sent>>,
}

impl Shared {
    fn record(&self, s: Sent, replied: bool) {
        if replied {
            let ms = self.start.elapsed().as_millis() as u64;
            self.last_reply_ms.fetch_max(ms, Ordering::Relaxed);
            self.replies.fetch_add(1, Ordering::Relaxed);
        }
        if matches!(s.outcome, Outcome::Acked { .. }) {
            self.acked.fetch_add(1, Ordering::Relaxed);
        }
        // A poisoned lock only means another client panicked mid-push; the
        // vector itself is still usable.
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    }
}

/// Runs the clients (and the order poster) to completion or until the
/// watchdog sees no LMTP reply for `plan.watchdog`.
pub async fn run_load(plan: &LoadPlan) -> LoadReport {
    let shared = Arc::new(Shared {
        start: Instant::now(),
        last_reply_ms: AtomicU64::new(0),
        replies: AtomicUsize::new(0),
        acked: AtomicUsize::new(0),
        sent: Mutex::new(Vec::with_capacity(plan.messages)),
    });
    let cancel = CancellationToken::new();
    let mut clients = spawn_clients(plan, &shared, &cancel);
    let orders = spawn_order_poster(plan, &cancel);
    let (stall, not_sent) = watch_clients(plan, &shared, &cancel, &mut clients).await;
    // After a hang, the load ran until the last reply; the idle time is in
    // the stall report, not in the rate.
    let elapsed = match stall {
        Some(_) => Duration::from_millis(shared.last_reply_ms.load(Ordering::Relaxed)),
        None => shared.start.elapsed(),
    };
    if stall.is_some() {
        while clients.join_next().await.is_some() {}
    }
    let order_stats = finish_order_poster(plan, orders).await;
    let sent = std::mem::take(&mut *shared.sent.lock().unwrap_or_else(|e| e.into_inner()));
    let attempted = sent.len();
    LoadReport {
        sent,
        elapsed,
        orders: order_stats,
        stall,
        not_sent: not_sent.max(plan.messages.saturating_sub(attempted)),
    }
}

/// One task per client, each sending its share of the messages; a task
/// returns how many of its messages it never attempted.
fn spawn_clients(
    plan: &LoadPlan,
    shared: &Arc<Shared>,
    cancel: &CancellationToken,
) -> tokio::task::JoinSet<usize> {
    let clients = plan.clients.max(1);
    let mut set = tokio::task::JoinSet::new();
    let mut next = 0usize;
    for c in 0..clients {
        // Spread the remainder over the first clients.
        let n = plan.messages / clients + usize::from(c < plan.messages % clients);
        let (plan2, shared2, cancel2) = (plan.clone(), shared.clone(), cancel.clone());
        let first = next;
        next += n;
        set.spawn(async move {
            tokio::select! {
                _ = cancel2.cancelled() => 0,
                left = client(c, first, n, &plan2, &shared2) => left,
            }
        });
    }
    set
}

/// Posts the plan's orders over HTTP alongside the mail, when there is an
/// HTTP address and orders to post.
fn spawn_order_poster(
    plan: &LoadPlan,
    cancel: &CancellationToken,
) -> Option<tokio::task::JoinHandle<OrderStats>> {
    match plan.http {
        Some(http) if plan.orders > 0 => {
            let (plan2, cancel2) = (plan.clone(), cancel.clone());
            Some(tokio::spawn(async move {
                let stats = Arc::new(Mutex::new(OrderStats::default()));
                let s2 = stats.clone();
                tokio::select! {
                    _ = cancel2.cancelled() => {}
                    _ = post_orders(http, &plan2, &s2) => {}
                }
                stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
            }))
        }
        _ => None,
    }
}

/// Waits for the clients while the watchdog checks, every 200 ms, that
/// LMTP replies still come; on a stall it stops the clients and reports
/// what the daemon's `/healthz` says. Returns the stall (if any) and the
/// messages the finished clients never attempted.
async fn watch_clients(
    plan: &LoadPlan,
    shared: &Shared,
    cancel: &CancellationToken,
    set: &mut tokio::task::JoinSet<usize>,
) -> (Option<Stall>, usize) {
    let mut not_sent = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let stall = loop {
        tokio::select! {
            joined = set.join_next() => match joined {
                None => break None,
                Some(Ok(left)) => not_sent += left,
                Some(Err(_)) => {}
            },
            _ = tick.tick() => {
                let last = Duration::from_millis(shared.last_reply_ms.load(Ordering::Relaxed));
                let idle = shared.start.elapsed().saturating_sub(last);
                if idle >= plan.watchdog {
                    cancel.cancel();
                    set.abort_all();
                    let healthz = match plan.http {
                        Some(h) => probe_healthz(h).await,
                        None => "not probed (no HTTP address)".into(),
                    };
                    break Some(Stall {
                        acknowledged_before_stall: shared.acked.load(Ordering::Relaxed),
                        replies_before_stall: shared.replies.load(Ordering::Relaxed),
                        idle_secs: idle.as_secs_f64(),
                        healthz,
                    });
                }
            }
        }
    };
    (stall, not_sent)
}

async fn finish_order_poster(
    plan: &LoadPlan,
    orders: Option<tokio::task::JoinHandle<OrderStats>>,
) -> OrderStats {
    let Some(handle) = orders else {
        return OrderStats::default();
    };
    // The posts go on after the mail is done; give them the watchdog
    // period to finish, not forever.
    let abort = handle.abort_handle();
    match tokio::time::timeout(plan.watchdog, handle).await {
        Ok(Ok(stats)) => stats,
        _ => {
            abort.abort();
            OrderStats {
                first_error: Some("order posting did not finish".into()),
                ..Default::default()
            }
        }
    }
}

/// `GET /healthz` with a 2 s limit, as one line for the report.
pub async fn probe_healthz(http: SocketAddr) -> String {
    match http_request(http, "GET", "/healthz", None, Duration::from_secs(2)).await {
        Ok((status, body)) => format!("{status} {}", body.trim()),
        Err(e) => format!("no answer: {e}"),
    }
}

// ---- the LMTP client ----

/// One LMTP connection, past the greeting and LHLO.
struct Conn {
    rd: AsyncBufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
}

struct Reply {
    code: u16,
    text: String,
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        // Commands are small writes answered one by one: without NODELAY,
        // Nagle and delayed ACK would add ~40 ms to some of them.
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        let mut conn = Conn {
            rd: AsyncBufReader::new(rd),
            wr,
        };
        let greeting = conn.reply().await?;
        if greeting.code != 220 {
            return Err(io_other(format!("greeting: {}", greeting.text)));
        }
        let lhlo = conn.command("LHLO bench.example.net\r\n").await?;
        if lhlo.code != 250 {
            return Err(io_other(format!("LHLO: {}", lhlo.text)));
        }
        Ok(conn)
    }

    /// A reply, multi-line aware ("250-…" continues, "250 …" ends).
    async fn reply(&mut self) -> std::io::Result<Reply> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = self.rd.read_line(&mut line).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed by the daemon",
                ));
            }
            let line = line.trim_end();
            text.push_str(line);
            let last = line.as_bytes().get(3) != Some(&b'-');
            if last {
                let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                return Ok(Reply { code, text });
            }
            text.push('\n');
        }
    }

    async fn command(&mut self, line: &str) -> std::io::Result<Reply> {
        self.wr.write_all(line.as_bytes()).await?;
        self.reply().await
    }

    /// One transaction. `Ok((outcome, usable))`: `usable` is false when the
    /// daemon closed the session (421).
    async fn send(&mut self, m: &Message) -> std::io::Result<(Outcome, bool)> {
        let r = self
            .command(&format!("MAIL FROM:<{}>\r\n", m.mail_from))
            .await?;
        if r.code / 100 != 2 {
            return self.abandon(r).await;
        }
        let mut accepted = 0usize;
        let mut last = r;
        for rcpt in &m.rcpt_to {
            let r = self.command(&format!("RCPT TO:<{rcpt}>\r\n")).await?;
            if r.code / 100 == 2 {
                accepted += 1;
            }
            last = r;
        }
        if accepted == 0 {
            return self.abandon(last).await;
        }
        let r = self.command("DATA\r\n").await?;
        if r.code != 354 {
            return self.abandon(r).await;
        }
        self.wr.write_all(&dot_stuff(&m.raw)).await?;
        // RFC 2033: one reply per accepted recipient after the final dot.
        let mut outcome = Outcome::Acked { duplicate: false };
        let mut usable = true;
        for _ in 0..accepted {
            let r = self.reply().await?;
            usable &= r.code != 421;
            outcome = match (outcome, r.code / 100) {
                (Outcome::Acked { duplicate }, 2) => Outcome::Acked {
                    duplicate: duplicate || r.text.contains("already"),
                },
                (Outcome::Failed(e), _) => Outcome::Failed(e),
                (_, 5) => Outcome::Failed(r.text),
                (Outcome::TempFailed(e), _) => Outcome::TempFailed(e),
                (_, _) => Outcome::TempFailed(r.text),
            };
        }
        Ok((outcome, usable))
    }

    /// A refused step: classify it and reset the session for the next message.
    async fn abandon(&mut self, r: Reply) -> std::io::Result<(Outcome, bool)> {
        let outcome = if r.code / 100 == 5 {
            Outcome::Failed(r.text)
        } else {
            Outcome::TempFailed(r.text)
        };
        if r.code == 421 {
            return Ok((outcome, false));
        }
        let rset = self.command("RSET\r\n").await?;
        Ok((outcome, rset.code == 250))
    }

    async fn quit(mut self) {
        let _ = self.command("QUIT\r\n").await;
    }
}

fn io_other(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

/// SMTP transparency (RFC 5321 4.5.2) and the final dot. `raw` ends with CRLF.
pub fn dot_stuff(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 64);
    let mut at_line_start = true;
    for &b in raw {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Sends messages `first..first+n`; returns how many it never attempted.
async fn client(c: usize, first: usize, n: usize, plan: &LoadPlan, shared: &Shared) -> usize {
    let mut conn: Option<Conn> = None;
    let mut connect_failures = 0u32;
    for (done, seq) in (first..first + n).enumerate() {
        let m = compose(plan, c, seq);
        let t0 = Instant::now();
        let conn_now = match conn.as_mut() {
            Some(cn) => cn,
            None => match Conn::open(plan.lmtp).await {
                Ok(cn) => {
                    connect_failures = 0;
                    conn.insert(cn)
                }
                Err(e) => {
                    connect_failures += 1;
                    shared.record(
                        m.sent(t0, Outcome::TempFailed(format!("connect: {e}"))),
                        false,
                    );
                    if connect_failures >= 3 {
                        return n - done - 1;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        match conn_now.send(&m).await {
            Ok((outcome, usable)) => {
                shared.record(m.sent(t0, outcome), true);
                if !usable {
                    conn = None;
                }
            }
            Err(e) => {
                shared.record(m.sent(t0, Outcome::TempFailed(format!("i/o: {e}"))), false);
                conn = None;
            }
        }
    }
    if let Some(cn) = conn {
        cn.quit().await;
    }
    0
}

// ---- real-looking messages ----

/// A message ready to send.
#[derive(Debug, Clone)]
pub struct Message {
    /// Without angle brackets.
    pub message_id: String,
    /// The envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO`).
    pub rcpt_to: Vec<String>,
    /// CRLF line endings, ends with CRLF, not dot-stuffed.
    pub raw: Vec<u8>,
}

impl Message {
    fn sent(&self, t0: Instant, outcome: Outcome) -> Sent {
        Sent {
            message_id: self.message_id.clone(),
            size: self.raw.len(),
            latency: t0.elapsed(),
            outcome,
        }
    }
}

/// A small deterministic generator (SplitMix64): the same run id, client and
/// sequence number always give the same message.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[(self.next() % v.len() as u64) as usize]
    }
}

const CUSTOMERS: &[(&str, &str)] = &[
    ("John Harper", "j.harper@acme.example.com"),
    ("Priya Raman", "priya.raman@northwind.example.net"),
    ("Marc Dubois", "marc.dubois@reseau-alpin.example.fr"),
    ("Amélie Lefèvre", "a.lefevre@lefevre.example.fr"),
    ("Tom Becker", "tbecker@contoso.example.org"),
    ("Sofia Martins", "sofia@fabrikam.example.com"),
    ("Kenji Ito", "k.ito@globex.example.jp"),
    ("Laura Chen", "laura.chen@initech.example.com"),
];

/// (subject, body) in English and French; `{so}` is an order number.
const QUESTIONS: &[(&str, &str)] = &[
    (
        "Cannot download my software",
        "Hello,\n\nI received the notification for order SO# {so} but the download link \
         says the order is not available yet. Can you check what is blocking it?\n",
    ),
    (
        "Second download of an image",
        "Hi,\n\nOur server crashed and we lost the image we downloaded last month. How do \
         I download it a second time? It is within 90 days.\n",
    ),
    (
        "PAK registration fails",
        "Good morning,\n\nRegistering the PAK from order {so} fails with \"invalid PAK\". \
         Could you help us? We need the license this week.\n",
    ),
    (
        "Where is my license file?",
        "Hello support,\n\nThe order shipped but I cannot find the license documents. \
         Where are they sent?\n",
    ),
    (
        "Order {so} on hold?",
        "Hi team,\n\nThe order page shows a hold on SO {so}. What kind of hold is it and \
         how long does it usually take to release?\n",
    ),
    (
        "MD5 does not match",
        "Hello,\n\nThe MD5 of asa-9.20.2-lfbff-k8.SPA does not match the one in the \
         notification mail. Is the file corrupted?\n",
    ),
    (
        "Commande {so} : téléchargement impossible",
        "Bonjour,\n\nJe n'arrive pas à télécharger le logiciel de la commande {so}. \
         Pouvez-vous vérifier ?\n",
    ),
    (
        "Accès pour un collègue",
        "Bonjour,\n\nComment donner accès à la commande à un collègue qui n'a pas de compte ?\n",
    ),
];

const SIGNATURES: &[&str] = &[
    "Best regards,\n{name}\n",
    "Thanks,\n{name}\n-- \n{name}\nIT operations\n",
    "Cordialement,\n{name}\n",
    "Kind regards\n{name}\n",
];

/// The SO number of the `k`th order of this run: 10 digits, unique per run.
pub fn order_so(plan: &LoadPlan, k: usize) -> String {
    let mut h = Mix(fxhash(&plan.run_id));
    let base = 1_000_000_000 + h.next() % 8_000_000_000;
    format!("{}", base + k as u64)
}

/// The recipient of the `k`th order (the sender of the mail about it).
fn order_recipient(k: usize) -> (&'static str, &'static str) {
    CUSTOMERS[k % CUSTOMERS.len()]
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Message `seq` of client `c`: a support question from a customer, with a
/// unique Message-ID; some mention an order of this run, some have lines
/// starting with a dot (to exercise dot-stuffing), some go to two recipients.
pub fn compose(plan: &LoadPlan, c: usize, seq: usize) -> Message {
    let mut r = Mix(fxhash(&plan.run_id) ^ ((c as u64) << 40) ^ seq as u64);
    let (subject, body) = *r.pick(QUESTIONS);
    let (so, (name, email)) = if plan.orders > 0 {
        let k = (r.next() % plan.orders as u64) as usize;
        (order_so(plan, k), order_recipient(k))
    } else {
        (
            format!("{}", 10_000_000 + r.next() % 89_999_999),
            *r.pick(CUSTOMERS),
        )
    };
    let message_id = format!("{}.{c}.{seq}@mail.example.net", plan.run_id);
    let mut rcpt_to = vec!["support@edesk.example.com".to_string()];
    if seq % 7 == 3 {
        rcpt_to.push("orders@edesk.example.com".to_string());
    }
    let mut text = body.replace("{so}", &so);
    if seq % 5 == 1 {
        text.push_str(".SPA is the file type we were given, in case it matters.\n");
    }
    if seq % 11 == 2 {
        text.push_str(".\n");
    }
    text.push('\n');
    text.push_str(&r.pick(SIGNATURES).replace("{name}", name));
    let subject = subject.replace("{so}", &so);
    let date = chrono::Utc::now().to_rfc2822();
    let mut raw = format!(
        "From: {name} <{email}>\nTo: support@edesk.example.com\nSubject: {subject}\n\
         Date: {date}\nMessage-ID: <{message_id}>\nMIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{text}"
    );
    if let Some(size) = plan.size {
        let filler = "> Your order is available for download. Use the access-order link to \
                      see the images, their MD5 and the license documents.\n";
        let mut i = 0;
        while raw.len() < size {
            if i == 0 {
                raw.push_str("\nOn a previous day, edesk wrote:\n");
            }
            raw.push_str(filler);
            i += 1;
        }
    }
    let raw = raw.replace('\n', "\r\n").into_bytes();
    Message {
        message_id,
        mail_from: email.to_string(),
        rcpt_to,
        raw,
    }
}

// ---- orders ----

/// Order `k` of this run in DESIGN.md's Order JSON, with one recipient so the
/// outbox has a notification to send.
pub fn order_json(plan: &LoadPlan, k: usize) -> String {
    let (name, email) = order_recipient(k);
    let lang = if email.ends_with(".fr") { "fr" } else { "en" };
    serde_json::json!({
        "so": order_so(plan, k),
        "po": format!("PO-{}-{k}", plan.run_id),
        "lang": lang,
        "bill_to": "Bench Networks",
        "lines": [{"line": "1.1", "pid": "L-ASA5516-TD-1Y", "qty": 1,
                   "images": [{"file": "asa-9.20.2-lfbff-k8.SPA",
                               "md5": "9fb4c92d620d4be2a9f190e7fa6332b3"}]}],
        "recipients": [{"name": name, "email": email, "lang": lang, "role": "end-user"}],
    })
    .to_string()
}

async fn post_orders(http: SocketAddr, plan: &LoadPlan, stats: &Mutex<OrderStats>) {
    for k in 0..plan.orders {
        let body = order_json(plan, k);
        let result = http_request(http, "POST", "/v1/orders", Some(&body), plan.watchdog).await;
        let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok((status, _)) if (200..300).contains(&status) => s.posted += 1,
            Ok((status, body)) => {
                s.failed += 1;
                s.first_error
                    .get_or_insert_with(|| format!("{status} {}", body.trim()));
            }
            Err(e) => {
                s.failed += 1;
                s.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

// ---- HTTP ----

/// A minimal HTTP/1.1 request (`Connection: close`) with an overall time
/// limit; returns the status and the (de-chunked) body.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    limit: Duration,
) -> Result<(u16, String), BenchError> {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await?;
        let body = body.unwrap_or("");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).await?;
        Ok::<_, std::io::Error>(resp)
    };
    let resp = tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| err(format!("{method} {path}: no answer within {limit:?}")))?
        .map_err(|e| err(format!("{method} {path}: {e}")))?;
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| err(format!("{method} {path}: not an HTTP response")))?;
    let (head, rest) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The value of one gauge in `GET /metrics`.
pub async fn metric(http: SocketAddr, name: &str) -> Result<u64, BenchError> {
    let (status, body) =
        http_request(http, "GET", "/metrics", None, Duration::from_secs(10)).await?;
    if status != 200 {
        return Err(err(format!("GET /metrics: {status} {body}")));
    }
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .ok_or_else(|| err(format!("GET /metrics has no {name}")))
}

/// Waits until the daemon has processed every accepted message
/// (`edesk_inbound_pending 0`); returns how long that took.
pub async fn wait_drained(http: SocketAddr, limit: Duration) -> Result<Duration, BenchError> {
    let t0 = Instant::now();
    let mut last = None;
    loop {
        match metric(http, "edesk_inbound_pending").await {
            Ok(0) => return Ok(t0.elapsed()),
            Ok(n) => last = Some(n),
            Err(e) if t0.elapsed() >= limit => return Err(e),
            Err(_) => {}
        }
        if t0.elapsed() >= limit {
            return Err(err(format!(
                "the daemon still had {} inbound messages pending after {limit:?}",
                last.map_or("?".into(), |n| n.to_string())
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How `/v1/mail` compares with what was acknowledged.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    /// Messages of this run stored (counting duplicates).
    pub stored: usize,
    /// Messages of this run acknowledged by the daemon.
    pub acknowledged: usize,
    /// Acknowledged but not stored.
    pub lost: usize,
    /// Extra copies of a Message-ID of this run.
    pub duplicated: usize,
    /// Stored but never acknowledged (e.g. the connection broke after storing).
    pub unacknowledged_stored: usize,
    /// Stored size differs from what was sent (dot-stuffing, truncation).
    pub size_mismatch: usize,
    /// Stored without an `envelope` object.
    pub missing_envelope: usize,
    /// `/v1/mail` returned as many messages as the limit: some may be missing.
    pub truncated: bool,
    /// Up to 5 lost Message-IDs.
    pub lost_sample: Vec<String>,
    /// Up to 5 duplicated Message-IDs.
    pub duplicated_sample: Vec<String>,
}

impl Verification {
    /// Nothing lost, duplicated, resized, stored without envelope, or cut off by the page
    /// limit (stored but unacknowledged messages are allowed).
    pub fn ok(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.size_mismatch == 0
            && self.missing_envelope == 0
            && !self.truncated
    }
}

/// `GET /v1/mail?limit=100000`: every acknowledged Message-ID of `run_id`
/// stored exactly once, with its envelope and the size that was sent.
pub async fn verify(
    http: SocketAddr,
    run_id: &str,
    acked: &[(String, usize)],
) -> Result<Verification, BenchError> {
    const LIMIT: usize = 100_000;
    let (status, body) = http_request(
        http,
        "GET",
        &format!("/v1/mail?limit={LIMIT}"),
        None,
        Duration::from_secs(120),
    )
    .await?;
    if status != 200 {
        return Err(err(format!("GET /v1/mail: {status} {}", body.trim())));
    }
    let list: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| err(format!("GET /v1/mail: {e}")))?;
    let messages = list["messages"]
        .as_array()
        .ok_or_else(|| err("GET /v1/mail: no \"messages\" array"))?;
    let prefix = format!("{run_id}.");
    let mut stored: HashMap<String, Vec<&serde_json::Value>> = HashMap::new();
    for m in messages {
        if let Some(id) = m["dedup_key"].as_str().and_then(|k| k.strip_prefix("mid:"))
            && id.starts_with(&prefix)
        {
            stored.entry(id.to_string()).or_default().push(m);
        }
    }
    let sizes: HashMap<&str, usize> = acked.iter().map(|(id, n)| (id.as_str(), *n)).collect();
    let mut v = Verification {
        stored: stored.values().map(Vec::len).sum(),
        acknowledged: sizes.len(),
        ..Default::default()
    };
    for (id, size) in &sizes {
        match stored.get(*id) {
            None => {
                v.lost += 1;
                if v.lost_sample.len() < 5 {
                    v.lost_sample.push((*id).to_string());
                }
            }
            Some(copies) => {
                v.size_mismatch += copies
                    .iter()
                    .filter(|m| m["size"].as_u64() != Some(*size as u64))
                    .count();
            }
        }
    }
    for (id, copies) in &stored {
        if copies.len() > 1 {
            v.duplicated += copies.len() - 1;
            if v.duplicated_sample.len() < 5 {
                v.duplicated_sample.push(id.clone());
            }
        }
        if !sizes.contains_key(id.as_str()) {
            v.unacknowledged_stored += 1;
        }
        v.missing_envelope += copies.iter().filter(|m| !m["envelope"].is_object()).count();
    }
    // The daemon caps the limit (10,000, newest first): with a full page,
    // "lost" may only mean "older than the page".
    v.truncated = v.lost > 0 && messages.len() >= 10_000;
    Ok(v)
}

// ---- a daemon of our own ----

/// `edesk serve` started from this executable on ephemeral ports.
pub struct OwnDaemon {
    child: Child,
    /// Where its HTTP API listens.
    pub http: SocketAddr,
    /// Where its LMTP server listens.
    pub lmtp: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
}

const LOG_KEEP: usize = 400;

impl OwnDaemon {
    /// Starts the daemon and waits (up to 60 s) for both listening addresses.
    pub fn spawn(data_dir: &Path) -> Result<OwnDaemon, BenchError> {
        let exe = std::env::current_exe().map_err(|e| err(format!("current executable: {e}")))?;
        // A daemon killed earlier on this directory left its files behind.
        let http_file = data_dir.join(crate::config::HTTP_ADDR_FILE);
        let lmtp_file = data_dir.join(crate::config::LMTP_ADDR_FILE);
        let _ = std::fs::remove_file(&http_file);
        let _ = std::fs::remove_file(&lmtp_file);
        let mut child = std::process::Command::new(exe)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .env("EDESK_HTTP__BIND", "127.0.0.1:0")
            .env("EDESK_LMTP__BIND", "127.0.0.1:0")
            .env("EDESK_LOG", "info,tantivy=warn,sled=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| err(format!("cannot start edesk serve: {e}")))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| err("edesk serve: no stderr pipe"))?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
                    if l.len() >= LOG_KEEP {
                        l.pop_front();
                    }
                    l.push_back(line);
                }
            });
        }
        // The daemon publishes the bound addresses once its listeners are up.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let (Some(http), Some(lmtp)) = (read_addr(&http_file), read_addr(&lmtp_file)) {
                return Ok(OwnDaemon {
                    child,
                    http,
                    lmtp,
                    log,
                });
            }
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let tail = tail(&log, 30);
                return Err(err(format!("edesk serve did not start; log:\n{tail}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `n` log lines.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// SIGTERM, then wait up to `within` for the exit; on a timeout the
    /// process is killed. Returns the time to exit and the status.
    pub fn terminate(mut self, within: Duration) -> (Duration, Option<ExitStatus>) {
        let t0 = Instant::now();
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (t0.elapsed(), Some(status));
            }
            if t0.elapsed() > within {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return (t0.elapsed(), None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Leaves the process running (for a debugger) and forgets it.
    pub fn detach(self) -> u32 {
        let pid = self.child.id();
        std::mem::forget(self);
        pid
    }
}

impl Drop for OwnDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address a starting daemon wrote to `path`, once it is complete.
fn read_addr(path: &std::path::Path) -> Option<SocketAddr> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn tail(log: &Mutex<VecDeque<String>>, n: usize) -> String {
    let l = log.lock().unwrap_or_else(|e| e.into_inner());
    let skip = l.len().saturating_sub(n);
    l.iter().skip(skip).cloned().collect::<Vec<_>>().join("\n")
}

// ---- the command ----

#[derive(Debug, Serialize)]
struct Shutdown {
    clean: bool,
    secs: f64,
}

#[derive(Debug, Serialize)]
struct JsonReport {
    ok: bool,
    problems: Vec<String>,
    clients: usize,
    messages: usize,
    acknowledged: usize,
    duplicate_acks: usize,
    temp_failed: usize,
    failed: usize,
    not_sent: usize,
    elapsed_secs: f64,
    accepted_per_sec: f64,
    latency_ms: serde_json::Value,
    orders: OrderStats,
    stalled: bool,
    stall: Option<Stall>,
    drain_secs: Option<f64>,
    verify: Option<Verification>,
    verify_after_restart: Option<Verification>,
    shutdown: Option<Shutdown>,
    data_dir: Option<String>,
    errors: Vec<String>,
}

/// Runs `edesk bench …`. A failed check is an exit code, not an error (`intake`: 1, or 2
/// when the daemon stalled); `data_dir` is `--data-dir`.
pub fn run(cmd: BenchCmd, data_dir: Option<&Path>) -> Result<ExitCode, BenchError> {
    match cmd {
        BenchCmd::Intake(args) => intake(&args, data_dir),
        BenchCmd::Scale(args) => scale::run(&args, data_dir),
        BenchCmd::Jobs(args) => jobs::run(&args, data_dir),
        BenchCmd::Chat(args) => chat::run(&args, data_dir),
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn intake(args: &IntakeArgs, data_dir: Option<&Path>) -> Result<ExitCode, BenchError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| err(format!("cannot start the async runtime: {e}")))?;
    let (own_dir, temp_dir) = intake_data_dir(args, data_dir)?;
    let mut daemon = own_dir.as_deref().map(start_own_daemon).transpose()?;
    let (lmtp, http) = intake_addresses(args, daemon.as_ref())?;
    let plan = LoadPlan {
        clients: args.clients,
        messages: args.messages,
        orders: args.orders,
        watchdog: Duration::from_secs(args.watchdog_secs.max(1)),
        size: args.size,
        ..LoadPlan::new(lmtp, Some(http))
    };
    eprintln!(
        "bench: {} messages over {} LMTP connections to {lmtp}, {} orders to {http}",
        plan.messages, plan.clients, plan.orders
    );
    let load = rt.block_on(run_load(&plan));
    let mut after = Aftermath::default();
    if let Some(stall) = &load.stall {
        after.stop_after_stall(args, &plan, stall, daemon.take());
    } else {
        after.drain_verify_and_restart(
            &rt,
            args,
            (http, &plan, &load),
            daemon.take(),
            own_dir.as_deref(),
        )?;
    }
    after.check_verifications();
    let not_acked = plan.messages - load.acknowledged().min(plan.messages);
    if load.stall.is_none() && not_acked > 0 {
        after
            .problems
            .push(format!("{not_acked} messages not acknowledged"));
    }
    let ok = after.problems.is_empty();
    let keep = args.keep_data || !ok;
    if let (true, false, Some(d)) = (temp_dir, keep, &own_dir) {
        // Only our own temporary directory, and only after a clean run.
        let _ = std::fs::remove_dir_all(d);
    }
    // A removed directory is not worth showing.
    let shown_dir = if keep || !temp_dir {
        own_dir.as_ref().map(|d| d.display().to_string())
    } else {
        None
    };
    let report = intake_report(&plan, &load, after, shown_dir);
    print_intake_report(args.json, &report)
}

/// The data directory of a daemon we start ourselves (none when the
/// operator names an LMTP address), and whether it is our own temporary
/// one, removed at the end of a good run.
fn intake_data_dir(
    args: &IntakeArgs,
    data_dir: Option<&Path>,
) -> Result<(Option<PathBuf>, bool), BenchError> {
    Ok(match (&args.lmtp, data_dir) {
        (Some(_), _) => (None, false),
        (None, Some(d)) => (Some(d.to_path_buf()), false),
        (None, None) => {
            let d = std::env::temp_dir().join(format!("edesk-{}", new_run_id()));
            std::fs::create_dir_all(&d)
                .map_err(|e| err(format!("cannot create {}: {e}", d.display())))?;
            (Some(d), true)
        }
    })
}

fn start_own_daemon(dir: &Path) -> Result<OwnDaemon, BenchError> {
    eprintln!("bench: starting edesk serve --data-dir {}", dir.display());
    OwnDaemon::spawn(dir)
}

/// The (LMTP, HTTP) addresses to load: our own daemon's, or the operator's.
fn intake_addresses(
    args: &IntakeArgs,
    daemon: Option<&OwnDaemon>,
) -> Result<(SocketAddr, SocketAddr), BenchError> {
    match (daemon, args.lmtp) {
        (Some(d), _) => Ok((d.lmtp, d.http)),
        (None, Some(l)) => Ok((
            l,
            args.http
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7070))),
        )),
        (None, None) => Err(err("no LMTP address")),
    }
}

/// What the run found after the load phase, in the order it was found.
#[derive(Default)]
struct Aftermath {
    problems: Vec<String>,
    drain: Option<f64>,
    verification: Option<Verification>,
    after_restart: Option<Verification>,
    shutdown: Option<Shutdown>,
}

impl Aftermath {
    /// The daemon hung: report it, show its log, and stop it (or leave it
    /// running for a debugger when asked).
    fn stop_after_stall(
        &mut self,
        args: &IntakeArgs,
        plan: &LoadPlan,
        stall: &Stall,
        daemon: Option<OwnDaemon>,
    ) {
        self.problems.push(format!(
            "the daemon stopped making progress: no LMTP reply for {:.1} s after {} of {} messages \
             were acknowledged; /healthz: {}",
            stall.idle_secs, stall.acknowledged_before_stall, plan.messages, stall.healthz
        ));
        let Some(d) = daemon else {
            return;
        };
        eprintln!("bench: daemon log (last lines):\n{}", d.log_tail(40));
        if args.keep_on_hang {
            let pid = d.detach();
            eprintln!("bench: daemon left running for inspection: pid {pid}");
        } else {
            let (t, status) = d.terminate(Duration::from_secs(5));
            self.shutdown = Some(Shutdown {
                clean: status.is_some_and(|s| s.success()),
                secs: t.as_secs_f64(),
            });
        }
    }

    /// The load finished: wait for processing to drain, verify what was
    /// stored, stop our daemon with SIGTERM and, when verifying, verify
    /// again after a restart (what was acknowledged must survive it).
    fn drain_verify_and_restart(
        &mut self,
        rt: &tokio::runtime::Runtime,
        args: &IntakeArgs,
        (http, plan, load): (SocketAddr, &LoadPlan, &LoadReport),
        daemon: Option<OwnDaemon>,
        own_dir: Option<&Path>,
    ) -> Result<(), BenchError> {
        match rt.block_on(wait_drained(http, Duration::from_secs(args.drain_secs))) {
            Ok(t) => self.drain = Some(t.as_secs_f64()),
            Err(e) => self
                .problems
                .push(format!("processing did not finish: {e}")),
        }
        let acked = load.acked();
        if args.verify {
            match rt.block_on(verify(http, &plan.run_id, &acked)) {
                Ok(v) => self.verification = Some(v),
                Err(e) => self.problems.push(format!("verification failed: {e}")),
            }
        }
        let Some(d) = daemon else {
            return Ok(());
        };
        let (t, status) = d.terminate(Duration::from_secs(15));
        let clean = status.is_some_and(|s| s.success());
        if !clean {
            self.problems.push(format!(
                "SIGTERM: the daemon did not exit cleanly within 15 s ({status:?})"
            ));
        }
        self.shutdown = Some(Shutdown {
            clean,
            secs: t.as_secs_f64(),
        });
        if let (true, Some(dir)) = (args.verify, own_dir) {
            let restarted = OwnDaemon::spawn(dir)?;
            match rt.block_on(verify(restarted.http, &plan.run_id, &acked)) {
                Ok(v) => self.after_restart = Some(v),
                Err(e) => self
                    .problems
                    .push(format!("verification after restart failed: {e}")),
            }
            let (_, status) = restarted.terminate(Duration::from_secs(15));
            if !status.is_some_and(|s| s.success()) {
                self.problems
                    .push("the restarted daemon did not exit cleanly".into());
            }
        }
        Ok(())
    }

    fn check_verifications(&mut self) {
        for (what, v) in [
            ("", &self.verification),
            (" after restart", &self.after_restart),
        ] {
            if let Some(v) = v
                && !v.ok()
            {
                self.problems.push(format!(
                    "verification{what}: {} lost, {} duplicated, {} size mismatches, {} without envelope{}",
                    v.lost,
                    v.duplicated,
                    v.size_mismatch,
                    v.missing_envelope,
                    if v.truncated { ", list truncated" } else { "" }
                ));
            }
        }
    }
}

fn intake_report(
    plan: &LoadPlan,
    load: &LoadReport,
    after: Aftermath,
    data_dir: Option<String>,
) -> JsonReport {
    JsonReport {
        ok: after.problems.is_empty(),
        problems: after.problems,
        clients: plan.clients,
        messages: plan.messages,
        acknowledged: load.acknowledged(),
        duplicate_acks: load.duplicate_acks(),
        temp_failed: load.temp_failed(),
        failed: load.failed(),
        not_sent: load.not_sent,
        elapsed_secs: load.elapsed.as_secs_f64(),
        accepted_per_sec: (load.rate() * 10.0).round() / 10.0,
        latency_ms: serde_json::json!({
            "p50": ms(load.percentile(0.50)),
            "p99": ms(load.percentile(0.99)),
            "max": ms(load.percentile(1.0)),
        }),
        orders: load.orders.clone(),
        stalled: load.stall.is_some(),
        stall: load.stall.clone(),
        drain_secs: after.drain,
        verify: after.verification,
        verify_after_restart: after.after_restart,
        shutdown: after.shutdown,
        data_dir,
        errors: load.error_samples(5),
    }
}

/// Prints the report (JSON or text); the exit code tells a hang (2) from
/// other failures (1).
fn print_intake_report(json: bool, report: &JsonReport) -> Result<ExitCode, BenchError> {
    if json {
        println!(
            "{}",
            serde_json::to_string(report).map_err(|e| err(e.to_string()))?
        );
    } else {
        print_text(report);
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else if report.stalled {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    })
}

fn print_text(r: &JsonReport) {
    println!(
        "messages: {} acknowledged (250), {} temp-failed (4xx), {} failed, {} not sent, of {} over {} clients",
        r.acknowledged, r.temp_failed, r.failed, r.not_sent, r.messages, r.clients
    );
    if r.duplicate_acks > 0 {
        println!(
            "  {} acknowledged as \"already accepted\"",
            r.duplicate_acks
        );
    }
    println!(
        "elapsed: {:.2} s, {:.1} accepted messages/s, latency p50 {} ms, p99 {} ms, max {} ms",
        r.elapsed_secs,
        r.accepted_per_sec,
        r.latency_ms["p50"],
        r.latency_ms["p99"],
        r.latency_ms["max"]
    );
    if r.orders.posted + r.orders.failed > 0 {
        println!(
            "orders: {} posted, {} failed{}",
            r.orders.posted,
            r.orders.failed,
            r.orders
                .first_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
    }
    if let Some(d) = r.drain_secs {
        println!("processed everything {d:.2} s after the last reply");
    }
    for (what, v) in [
        ("verify", &r.verify),
        ("after restart", &r.verify_after_restart),
    ] {
        if let Some(v) = v {
            println!(
                "{what}: {} stored for {} acknowledged: {} lost, {} duplicated, {} stored unacknowledged, {} size mismatches",
                v.stored,
                v.acknowledged,
                v.lost,
                v.duplicated,
                v.unacknowledged_stored,
                v.size_mismatch
            );
        }
    }
    if let Some(s) = &r.shutdown {
        println!(
            "SIGTERM: {} after {:.2} s",
            if s.clean {
                "clean exit"
            } else {
                "NOT a clean exit"
            },
            s.secs
        );
    }
    for e in &r.errors {
        println!("error sample: {e}");
    }
    if let Some(d) = &r.data_dir {
        println!("data directory: {d}");
    }
    if r.ok {
        println!("OK");
    } else {
        for p in &r.problems {
            println!("FAIL: {p}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_ends_with_a_dot_line() {
        assert_eq!(
            dot_stuff(b"a\r\n.b\r\n.\r\n"),
            b"a\r\n..b\r\n..\r\n.\r\n".to_vec()
        );
        assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n.\r\n".to_vec());
    }

    #[test]
    fn messages_are_unique_crlf_and_padded() {
        let plan = LoadPlan {
            size: Some(2000),
            orders: 3,
            ..LoadPlan::new(
                SocketAddr::from(([127, 0, 0, 1], 1)),
                Some(SocketAddr::from(([127, 0, 0, 1], 2))),
            )
        };
        let a = compose(&plan, 0, 1);
        let b = compose(&plan, 1, 1);
        assert_ne!(a.message_id, b.message_id);
        assert!(a.raw.len() >= 2000);
        let text = String::from_utf8(a.raw.clone()).unwrap();
        assert!(!text.replace("\r\n", "").contains('\n'));
        assert!(text.contains(&format!("Message-ID: <{}>", a.message_id)));
        let so = order_so(&plan, 2);
        assert!((8..=10).contains(&so.len()));
        let order: serde_json::Value = serde_json::from_str(&order_json(&plan, 2)).unwrap();
        assert_eq!(order["so"], so);
    }

    #[test]
    fn percentiles_of_latencies() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&mut v, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&mut v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&mut v, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&mut [], 0.5), Duration::ZERO);
    }
}
