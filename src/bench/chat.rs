//! `edesk bench chat`: chat messages per second through `POST /v1/chat`
//! (FAQ questions from the dev set, many web sessions within their rate
//! limits), from keep-alive HTTP clients on this machine; p50/p99 latency.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{BenchError, OwnDaemon, err, ms, new_run_id, percentile};

/// The questions sent, when no file is given.
const DEV_SET: &str = include_str!("../../tests/fixtures/faq/faq-dev.jsonl");

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Messages in total.
    #[arg(long, default_value_t = 40_000)]
    pub messages: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Messages per web session (kept under the web bot's per-user limit).
    #[arg(long, default_value_t = 25)]
    pub per_session: usize,
    /// HTTP API of a running daemon. Unset: start `edesk serve` of our own.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// One JSON object on stdout instead of the text report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    messages: usize,
    errors: usize,
    clients: usize,
    sessions: usize,
    seconds: f64,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    answered_share: f64,
}

/// A keep-alive HTTP/1.1 connection that sends JSON and reads one
/// `Content-Length` response at a time.
struct Conn {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
    addr: SocketAddr,
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        Ok(Conn {
            r: BufReader::new(r),
            w,
            addr,
        })
    }

    async fn post(&mut self, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.w.write_all(req.as_bytes()).await?;
        let mut status = 0u16;
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if self.r.read_line(&mut line).await? == 0 {
                return Err(std::io::Error::other("connection closed"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if status == 0 {
                status = l
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
            } else if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut buf = vec![0u8; len];
        self.r.read_exact(&mut buf).await?;
        Ok((status, String::from_utf8_lossy(&buf).into_owned()))
    }
}

fn questions() -> Vec<String> {
    DEV_SET
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("q")?.as_str().map(str::to_string))
        .collect()
}

async fn sessions(addr: SocketAddr, n: usize) -> Result<Vec<String>, BenchError> {
    let mut c = Conn::open(addr)
        .await
        .map_err(|e| err(format!("connect {addr}: {e}")))?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let (status, body) = c
            .post("/v1/chat/session", "{}")
            .await
            .map_err(|e| err(format!("session: {e}")))?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| err(format!("session {status}: {e}")))?;
        let s = v["session"]
            .as_str()
            .ok_or_else(|| err(format!("session {status}: {body}")))?;
        out.push(s.to_string());
    }
    Ok(out)
}

/// One client: its share of the messages; latencies, errors, answered.
async fn client(addr: SocketAddr, work: Vec<(String, String)>) -> (Vec<Duration>, usize, usize) {
    let (mut lat, mut errors, mut answered) = (Vec::with_capacity(work.len()), 0, 0);
    let Ok(mut c) = Conn::open(addr).await else {
        return (lat, work.len(), 0);
    };
    for (session, text) in work {
        let body = serde_json::json!({"session": session, "text": text}).to_string();
        let t0 = Instant::now();
        match c.post("/v1/chat", &body).await {
            Ok((200, body)) => {
                lat.push(t0.elapsed());
                if body.contains("\"rate\":\"") {
                    answered += 1;
                }
            }
            Ok(_) => errors += 1,
            Err(_) => {
                errors += 1;
                match Conn::open(addr).await {
                    Ok(n) => c = n,
                    Err(_) => return (lat, errors, answered),
                }
            }
        }
    }
    (lat, errors, answered)
}

async fn load(addr: SocketAddr, args: &ChatArgs) -> Result<Report, BenchError> {
    let qs = questions();
    if qs.is_empty() {
        return Err(err("no questions in the dev set"));
    }
    let n_sessions = args.messages.div_ceil(args.per_session.max(1));
    let sess = Arc::new(sessions(addr, n_sessions).await?);
    // Message k goes to session k % n, so each session's messages spread
    // over the run (as real users' do) and stay under its per-minute limit.
    let mut work: Vec<Vec<(String, String)>> = vec![Vec::new(); args.clients.max(1)];
    let n = work.len();
    for k in 0..args.messages {
        work[k % n].push((sess[k % sess.len()].clone(), qs[k % qs.len()].clone()));
    }
    let t0 = Instant::now();
    let handles: Vec<_> = work
        .into_iter()
        .map(|w| tokio::spawn(client(addr, w)))
        .collect();
    let (mut lat, mut errors, mut answered) = (Vec::new(), 0, 0);
    for h in handles {
        let (l, e, a) = h.await.map_err(|e| err(format!("client task: {e}")))?;
        lat.extend(l);
        errors += e;
        answered += a;
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(Report {
        messages: lat.len(),
        errors,
        clients: args.clients,
        sessions: n_sessions,
        seconds: (secs * 1000.0).round() / 1000.0,
        per_sec: (lat.len() as f64 / secs).round(),
        p50_ms: ms(percentile(&mut lat, 0.50)),
        p99_ms: ms(percentile(&mut lat, 0.99)),
        max_ms: ms(lat.iter().max().copied().unwrap_or_default()),
        answered_share: (answered as f64 / lat.len().max(1) as f64 * 1000.0).round() / 1000.0,
    })
}

pub fn run(args: &ChatArgs, data_dir: Option<&Path>) -> Result<ExitCode, BenchError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| err(format!("runtime: {e}")))?;
    let (own, tmp) = match args.http {
        Some(_) => (None, None),
        None => {
            let tmp = std::env::temp_dir().join(format!("edesk-bench-chat-{}", new_run_id()));
            let dir = data_dir
                .map(Path::to_path_buf)
                .unwrap_or_else(|| tmp.clone());
            (
                Some(OwnDaemon::spawn(&dir)?),
                data_dir.is_none().then_some(tmp),
            )
        }
    };
    let addr = args
        .http
        .or_else(|| own.as_ref().map(|d| d.http))
        .ok_or_else(|| err("no daemon"))?;
    let report = rt.block_on(load(addr, args));
    if let Some(d) = own {
        d.terminate(Duration::from_secs(15));
    }
    if let Some(t) = tmp {
        let _ = std::fs::remove_dir_all(t);
    }
    let r = report?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&r).map_err(|e| err(e.to_string()))?
        );
    } else {
        println!(
            "chat: {} messages in {:.2} s over {} connections and {} sessions: {:.0} messages/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {:.1} % answered from the FAQ, {} errors",
            r.messages,
            r.seconds,
            r.clients,
            r.sessions,
            r.per_sec,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.answered_share * 100.0,
            r.errors
        );
    }
    Ok(if r.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
