//! Starts, wires and stops the services (HTTP, LMTP, Maildir, inbound
//! worker, outbox sender, the jobs scheduler): one cancellation token for all of
//! them, a task tracker to wait for their drain.
#![warn(missing_docs)]

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::faq;
use crate::inbound::adapters::{EngineOracle, NotifyActions, TicketFailures};
use crate::inbound::store_dir::StoreDirectory;
use crate::inbound::worker::Worker;
use crate::inbound::{intake, lmtp, maildir};

/// Why the daemon could not start (or its state could not be built for a command).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// `data_dir` could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The configured `data_dir`.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The FAQ index could not be opened or built.
    #[error("FAQ: {0}")]
    Faq(#[from] faq::FaqError),
    /// A listener could not bind (address in use, permission).
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener: `http` or `lmtp`.
        what: &'static str,
        /// The configured address (`http.bind`, `lmtp.bind`).
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The desk service could not be set up.
    #[error("desk: {0}")]
    Desk(#[from] crate::desk::DeskError),
    /// `calendar.holidays_file` could not be read or parsed.
    #[error("calendar: {0}")]
    Calendar(#[from] crate::desk::sla::CalendarError),
    /// The inbound mail spool in the store failed.
    #[error("inbound mail store: {0}")]
    Intake(#[from] intake::IntakeError),
    /// Any other I/O failure while starting or serving.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The store failed (locked by another process, database unreachable).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The notifier or the outbox sender could not be set up (templates, keys).
    #[error(transparent)]
    Notify(#[from] crate::notify::NotifyError),
    /// The scheduler could not be set up (a bad `jobs.schedule.*`).
    #[error(transparent)]
    Jobs(#[from] crate::jobs::JobsError),
    /// The chat bots could not be set up (bot definitions, session key).
    #[error("chat: {0}")]
    Chat(#[from] crate::chat::ChatError),
    /// Mail authentication could not be set up: `inbound.auth_records` unreadable or
    /// malformed, or no DNS resolver.
    #[error("inbound.verify_auth: {0}")]
    Verify(#[from] crate::inbound::verify::VerifyError),
}

/// sled replays its log at open, so a large sled store opens slowly (34 s
/// at 1,000,000 orders, README *The embedded engine*); the operator hears
/// of it, and of the way out, before it becomes an outage.
fn report_open_time(store: &crate::store::Store, took: std::time::Duration) {
    const SLOW: std::time::Duration = std::time::Duration::from_secs(5);
    let engine = store.schema().map(|(e, _)| e).unwrap_or("unknown");
    if engine == "sled" && took >= SLOW {
        tracing::warn!(
            engine,
            seconds = took.as_secs_f64(),
            "the store took long to open (sled replays its log at every start); \
             a store this size opens at once on redb: `edesk store copy --from sled DIR --to redb DIR`"
        );
    } else {
        tracing::info!(engine, seconds = took.as_secs_f64(), "store opened");
    }
}

/// Everything the services share, built once at start.
pub fn build_state(config: &Config) -> Result<AppState, DaemonError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| DaemonError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let faq = faq::Engine::open(
        &faq::Sources::resolve(config.faq.dir.as_deref()),
        &config.data_dir,
        config.faq.threshold,
    )?;
    let faq = Arc::new(faq);
    let opening = std::time::Instant::now();
    let store = crate::store::Store::open_with(&config.data_dir, &config.store.engine_settings())?;
    report_open_time(&store, opening.elapsed());
    let spool = intake::Spool::open(&store);
    let notifier = crate::notify::Notifier::new(store.clone(), config)?;
    let desk_service = Arc::new(crate::desk::service(
        config,
        &store,
        Arc::new(notifier.clone()),
    )?);
    let desk = desk_service.desk().clone();
    // Escalations that fail after they were queued are noted on the ticket.
    notifier.set_listener(Arc::new(TicketFailures { desk: desk.clone() }));
    let jobs = Arc::new(crate::jobs::Scheduler::new(
        store.clone(),
        Arc::new(crate::jobs::SystemClock),
        config.calendar.tz(),
        crate::jobs::builtin::all(&notifier, &desk_service, config),
    )?);
    let worker = Arc::new(Worker {
        spool: spool.clone(),
        directory: Arc::new(StoreDirectory::new(
            store,
            &config.mail.domain,
            config.desk.company_domains,
        )),
        faq: Arc::new(EngineOracle {
            engine: faq.clone(),
            threshold: config.inbound.faq_threshold,
        }),
        desk: desk_service.clone(),
        outbox: Arc::new(notifier.clone()),
        actions: Arc::new(NotifyActions {
            notifier: notifier.clone(),
        }),
        support_address: config
            .desk
            .teams
            .get("edelivery-support")
            .cloned()
            .unwrap_or_default(),
        verifier: crate::inbound::verify::from_config(config)?.map(Arc::new),
    });
    let chat = crate::chat::build(config, faq.clone(), desk_service.clone(), notifier.clone())?;
    Ok(AppState {
        chat,
        config: Arc::new(config.clone()),
        faq,
        notifier,
        spool,
        desk,
        desk_service,
        worker,
        new_mail: Arc::new(tokio::sync::Notify::new()),
        jobs,
    })
}

/// Runs until SIGINT/SIGTERM, then drains for at most `shutdown.grace_ms`
/// (HTTP requests in flight finish, LMTP sessions get `421 4.3.2`).
pub async fn serve(config: Config) -> Result<(), DaemonError> {
    let signalled = cancel_on_signal();
    let running = start(config).await?;
    running.run_until(signalled.cancelled()).await;
    Ok(())
}

/// A started daemon: every service runs on the current tokio runtime.
///
/// Tests and embedders get the bound addresses from here (configure port 0 and
/// read them back). Dropping it without [`Running::stop`] cancels the services
/// but does not wait for them.
pub struct Running {
    /// The address the HTTP API is bound to.
    pub http: std::net::SocketAddr,
    /// The address the LMTP intake is bound to.
    pub lmtp: std::net::SocketAddr,
    token: CancellationToken,
    tracker: TaskTracker,
    grace: std::time::Duration,
    // Held to the end: dropping it removes the files the CLI reads.
    _addr_files: (AddrFile, AddrFile),
}

/// Binds the listeners and starts every service (HTTP, outbox sender, LMTP,
/// Maildir watch, inbound worker, jobs unless `jobs.enabled = false`, chat
/// bots). Returns once the listeners are bound, so connections made after it
/// returns are served.
pub async fn start(config: Config) -> Result<Running, DaemonError> {
    let state = build_state(&config)?;
    let spool = state.spool.clone();
    let worker = state.worker.clone();
    let jobs = state.jobs.clone();
    let new_mail = state.new_mail.clone();
    let state_chat = state.chat.clone();
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let grace = std::time::Duration::from_millis(config.shutdown.grace_ms);

    let (http, http_file) = start_http_and_sender(&config, state, &tracker, &token).await?;
    let (lmtp, lmtp_file) =
        start_mail_intake(&config, spool, new_mail.clone(), grace, &tracker, &token).await?;
    tracker.spawn(worker.run(new_mail, token.clone()));
    // Archive, reminders, SLA clocks and retention (raw mail included).
    if config.jobs.enabled {
        tracker.spawn(crate::jobs::run_daemon(jobs, token.clone()));
    } else {
        tracing::info!("jobs.enabled = false: no scheduled jobs in this daemon");
    }
    crate::chat::daemon::start(&config, &state_chat, &tracker, token.clone());
    tracker.close();
    Ok(Running {
        http,
        lmtp,
        token,
        tracker,
        grace,
        _addr_files: (http_file, lmtp_file),
    })
}

impl Running {
    /// Serves until `stop_requested` completes (or every service stopped on its
    /// own), then drains within the grace period.
    pub async fn run_until(self, stop_requested: impl std::future::Future<Output = ()>) {
        tokio::select! {
            _ = stop_requested => tracing::info!("shutdown requested, draining"),
            _ = self.tracker.wait() => tracing::warn!("all services stopped"),
        }
        self.stop().await;
    }

    /// Stops accepting, drains within `shutdown.grace_ms` (plus a moment for
    /// the listeners to let go) and returns; tasks still running after that are
    /// dropped with the runtime.
    pub async fn stop(self) {
        self.token.cancel();
        // The listeners abandon their connections at the end of the grace
        // period on their own; this bound is for everything else (an outbox
        // send to a stalled SMTP server, a long worker step).
        let slack = std::time::Duration::from_millis(500);
        if tokio::time::timeout(self.grace + slack, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_ms = self.grace.as_millis() as u64,
                "services did not stop within the grace period; exiting anyway"
            );
            return;
        }
        tracing::info!("stopped");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Signals are caught from the first instant (the handlers are
/// registered here, synchronously): a SIGTERM during start-up still
/// drains instead of killing the process mid-write.
fn cancel_on_signal() -> CancellationToken {
    let signalled = CancellationToken::new();
    let signals = Signals::install();
    {
        let signalled = signalled.clone();
        tokio::spawn(async move {
            signals.recv().await;
            signalled.cancel();
        });
    }
    signalled
}

/// Binds the HTTP API, publishes its address for the CLI, and starts the
/// outbox sender and the API server.
async fn start_http_and_sender(
    config: &Config,
    state: AppState,
    tracker: &TaskTracker,
    token: &CancellationToken,
) -> Result<(std::net::SocketAddr, AddrFile), DaemonError> {
    let listener = tokio::net::TcpListener::bind(config.http.bind)
        .await
        .map_err(|source| DaemonError::Bind {
            what: "http",
            addr: config.http.bind,
            source,
        })?;
    let http_addr = listener.local_addr()?;
    tracing::info!(addr = %http_addr, "HTTP API listening");
    let addr_file = AddrFile::write(&config.data_dir, HTTP_ADDR_FILE, http_addr);
    let sender = crate::notify::sender::Sender::new(state.notifier.clone(), config)?;
    let sender_token = token.clone();
    tracker.spawn(async move { sender.run(sender_token).await });

    let http_token = token.clone();
    tracker.spawn(async move {
        if let Err(e) = api::run(listener, state, http_token).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    Ok((http_addr, addr_file))
}

/// The two ways mail comes in: the LMTP listener and the Maildir watch.
async fn start_mail_intake(
    config: &Config,
    spool: intake::Spool,
    new_mail: Arc<tokio::sync::Notify>,
    grace: std::time::Duration,
    tracker: &TaskTracker,
    token: &CancellationToken,
) -> Result<(std::net::SocketAddr, AddrFile), DaemonError> {
    let lmtp_listener = tokio::net::TcpListener::bind(config.lmtp.bind)
        .await
        .map_err(|source| DaemonError::Bind {
            what: "lmtp",
            addr: config.lmtp.bind,
            source,
        })?;
    let lmtp_addr = lmtp_listener.local_addr()?;
    tracing::info!(addr = %lmtp_addr, "LMTP intake listening");
    let addr_file = AddrFile::write(&config.data_dir, LMTP_ADDR_FILE, lmtp_addr);
    tracker.spawn(lmtp::run(
        lmtp_listener,
        spool.clone(),
        lmtp::LmtpSettings {
            hostname: config.mail.domain.clone(),
            max_message_bytes: config.lmtp.max_message_bytes,
            max_connections: config.lmtp.max_connections,
            idle_timeout: std::time::Duration::from_millis(config.lmtp.idle_timeout_ms),
            shutdown_grace: grace,
        },
        new_mail.clone(),
        token.clone(),
    ));
    tracker.spawn(maildir::watch(
        config.maildir(),
        spool,
        std::time::Duration::from_millis(config.inbound.poll_ms),
        new_mail,
        token.clone(),
    ));
    Ok((lmtp_addr, addr_file))
}

pub use crate::config::{HTTP_ADDR_FILE, LMTP_ADDR_FILE};

/// `DATA_DIR/http.addr` and `DATA_DIR/lmtp.addr`: the addresses the listeners
/// are bound to (the configuration may say port 0), for the command line
/// (`edesk outbox list` … while the daemon holds the store) and for scripts
/// and tests that start a daemon. Removed when the daemon stops.
struct AddrFile(Option<std::path::PathBuf>);

impl AddrFile {
    fn write(data_dir: &std::path::Path, name: &str, addr: std::net::SocketAddr) -> AddrFile {
        let path = data_dir.join(name);
        let tmp = data_dir.join(format!("{name}.tmp"));
        // Written then renamed: a command never reads half an address.
        match std::fs::write(&tmp, format!("{addr}\n")).and_then(|()| std::fs::rename(&tmp, &path))
        {
            Ok(()) => AddrFile(Some(path)),
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "cannot write the address file; commands will use the configured address");
                AddrFile(None)
            }
        }
    }
}

impl Drop for AddrFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// SIGINT and SIGTERM, registered as soon as this value exists.
struct Signals {
    #[cfg(unix)]
    handlers: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(int), Ok(term)) => Signals {
                    handlers: Some((int, term)),
                },
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "cannot install signal handlers; using Ctrl-C only");
                    Signals { handlers: None }
                }
            }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    async fn recv(self) {
        #[cfg(unix)]
        if let Some((mut int, mut term)) = self.handlers {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
