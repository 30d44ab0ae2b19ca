//! The daemon in the test process (`spawn_app`, as zero-to-production does):
//! every service of `edesk serve` on its own runtime, on ports the code binds
//! and hands back. Faster to start than the binary and no log to scrape; use
//! `spawn_daemon` instead when a test must kill the process or read its log.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A running in-process daemon; dropping it drains and stops it.
pub struct App {
    pub http: SocketAddr,
    pub lmtp: SocketAddr,
    pub data_dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts the daemon with `config` (its `http.bind`/`lmtp.bind` are set to
/// port 0 on loopback here) on a runtime of its own thread, so sync and async
/// tests alike can use it.
pub fn spawn_app(mut config: edesk::config::Config) -> App {
    config.http.bind = "127.0.0.1:0".parse().unwrap();
    config.lmtp.bind = "127.0.0.1:0".parse().unwrap();
    config.inbound.poll_ms = 100;
    let data_dir = config.data_dir.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            match edesk::daemon::start(config).await {
                Ok(running) => {
                    let _ = ready_tx.send(Ok((running.http, running.lmtp)));
                    running
                        .run_until(async {
                            let _ = stop_rx.await;
                        })
                        .await;
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                }
            }
        });
    });
    let (http, lmtp) = ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("daemon did not start within 60 s")
        .unwrap_or_else(|e| panic!("daemon did not start: {e}"));
    App {
        http,
        lmtp,
        data_dir,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

/// `spawn_app` on `data` with the test defaults of `support::config`.
pub fn spawn_app_at(data: &Path, smtp: Option<String>) -> App {
    spawn_app(super::config(data, smtp))
}

impl super::Served for App {
    fn http_addr(&self) -> SocketAddr {
        self.http
    }
    fn lmtp_addr(&self) -> SocketAddr {
        self.lmtp
    }
}

impl App {
    /// Drains like SIGTERM would and waits for every service to stop.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.shutdown();
    }
}
