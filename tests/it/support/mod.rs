//! Test harness: runs the real `edesk` binary on loopback with a temporary
//! data directory and ephemeral ports, and talks to it over real sockets.
//!
//! Everything here is Rust: `lmtp` is the LMTP client, `smtp_sink` the SMTP
//! server the outbox delivers to. `cargo test` needs no other tool; the
//! interop runs against swaks and aiosmtpd are in `tests/it/interop.rs`.
#![allow(dead_code)]

pub mod app;
pub mod lmtp;
pub mod pg;
pub mod smtp_sink;

#[allow(unused_imports)]
pub use app::{App, spawn_app, spawn_app_at};
#[allow(unused_imports)]
pub use smtp_sink::Sink;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_edesk");

pub struct Daemon {
    pub child: Child,
    pub http: SocketAddr,
    pub lmtp: SocketAddr,
    pub data_dir: PathBuf,
    pub log: Arc<Mutex<String>>,
}

/// Starts `edesk serve` on `data_dir` with extra environment variables.
pub fn spawn_daemon(data_dir: &Path, env: &[(&str, &str)]) -> Daemon {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("EDESK_HTTP__BIND", "127.0.0.1:0")
        .env("EDESK_LMTP__BIND", "127.0.0.1:0")
        .env("EDESK_INBOUND__POLL_MS", "100")
        .env("EDESK_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    // A daemon killed earlier on this directory left its files behind.
    let http_file = data_dir.join(edesk::daemon::HTTP_ADDR_FILE);
    let lmtp_file = data_dir.join(edesk::daemon::LMTP_ADDR_FILE);
    let _ = std::fs::remove_file(&http_file);
    let _ = std::fs::remove_file(&lmtp_file);
    let mut child = cmd.spawn().expect("spawn edesk");
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(String::new()));
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
    }
    // The daemon writes the bound addresses once its listeners are up (the
    // LMTP one last), the files the command line reads too.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (http, lmtp) = loop {
        if let (Some(h), Some(l)) = (read_addr(&http_file), read_addr(&lmtp_file)) {
            break (h, l);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("daemon exited ({status}); log:\n{}", log.lock().unwrap());
        }
        if Instant::now() >= deadline {
            // A hung daemon must not outlive the test (CI once found one
            // still running after the run).
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "daemon did not start within 60 s (killed); log:\n{}",
                log.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Daemon {
        child,
        http,
        lmtp,
        data_dir: data_dir.to_path_buf(),
        log,
    }
}

fn read_addr(path: &Path) -> Option<SocketAddr> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// An SMTP sink in `tmp/sink` and a daemon on `tmp/data` that delivers its
/// mail there, with extra environment variables.
pub fn spawn_with_sink(tmp: &Path, env: &[(&str, &str)]) -> (Sink, Daemon) {
    let sink = Sink::start(&tmp.join("sink"));
    let url = sink.url();
    let mut all = vec![("EDESK_SMTP__URL", url.as_str())];
    all.extend_from_slice(env);
    let d = spawn_daemon(&tmp.join("data"), &all);
    (sink, d)
}

impl Daemon {
    pub fn sigkill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit; returns the exit status success.
    pub fn terminate(mut self) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Served for Daemon {
    fn http_addr(&self) -> SocketAddr {
        self.http
    }
    fn lmtp_addr(&self) -> SocketAddr {
        self.lmtp
    }
    fn diagnostics(&self) -> String {
        format!("log:\n{}", self.log())
    }
}

/// A daemon under test, in this process ([`App`]) or a child process
/// ([`Daemon`]): one set of client helpers for both.
pub trait Served {
    fn http_addr(&self) -> SocketAddr;
    fn lmtp_addr(&self) -> SocketAddr;
    /// What to print when a wait times out (the child's log).
    fn diagnostics(&self) -> String {
        String::new()
    }

    fn get(&self, path: &str) -> (u16, String) {
        http(self.http_addr(), "GET", path, None)
    }

    fn post_json(&self, path: &str, body: &str) -> (u16, String) {
        http(self.http_addr(), "POST", path, Some(body))
    }

    /// `POST /v1/orders` with one order, which must be accepted (201).
    fn import_order(&self, order: &serde_json::Value) {
        let (status, body) = self.post_json("/v1/orders", &order.to_string());
        assert_eq!(status, 201, "{body}");
    }

    /// Polls `f` until it returns Some, or panics after 30 s.
    fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; {}", self.diagnostics());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP request (Connection: close) with edesk's own client, the one the
/// command line uses to talk to a running daemon.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let resp = edesk::ctl::client::Client::new(addr)
        .request(method, path, body.map(str::as_bytes))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    (
        resp.status,
        String::from_utf8_lossy(&resp.body).into_owned(),
    )
}

pub fn config(data: &Path, smtp: Option<String>) -> edesk::config::Config {
    let mut c = edesk::config::Config {
        data_dir: data.to_path_buf(),
        ..Default::default()
    };
    c.smtp.url = smtp;
    c.outbox.backoff_base_ms = 20;
    c.outbox.backoff_max_ms = 100;
    c.outbox.max_attempts = 3;
    c
}

pub fn header<'a>(m: &'a mail_parser::Message<'a>, name: &str) -> Option<String> {
    m.header_raw(name).map(|s| s.trim().to_string())
}
