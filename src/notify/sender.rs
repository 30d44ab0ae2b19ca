//! Delivers the outbox. SMTP when `smtp.url` is set, else `.eml` files under
//! `data/outgoing/`.
//!
//! Speed: lettre's pooled transport leaves Nagle on and stalls ~40 ms per
//! message on a reused connection; we open the TCP socket ourselves with
//! TCP_NODELAY and hand it to `AsyncSmtpConnection::connect_with_transport`,
//! keeping a small pool of such connections.
//!
//! Exactly once across a crash: after the server accepts a message, its id is
//! appended to `outbox.journal` (a plain `write`, which survives a killed
//! process) before anything else; a batch is then marked sent in sled, flushed,
//! and the journal truncated. At start the journal is replayed first, so a
//! message accepted just before a kill is not sent again. The remaining window
//! is between the server's 250 and that `write` (microseconds).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use lettre::address::Envelope;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use rand::Rng;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Notifier, NotifyError};
use crate::config::{Config, OutboxConfig};
use crate::store::{OutboxItem, Store, now_ms};

const BATCH: usize = 512;
/// Items one daemon claims at a time when several share the store.
const SHARED_BATCH: usize = 32;
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// The result of one delivery attempt of an outbox item.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// The server accepted it (or the `.eml` file was written); it is
    /// journaled, then marked sent.
    Sent,
    /// 4xx or connection trouble: try again later.
    Transient(String),
    /// 5xx. `address` when the server refused the recipient itself.
    Permanent {
        /// The server's reply.
        message: String,
        /// The recipient itself was refused (550/551/553, 5.1.x): it is suppressed.
        address: bool,
    },
}

enum Transport {
    Files(PathBuf),
    Smtp(SmtpPool),
}

/// An open SMTP session, when it was last used, and whether it has carried
/// a message already (a reused session may have been closed by the server
/// meanwhile, without our knowing until the next command).
struct Session {
    conn: AsyncSmtpConnection,
    last_used: Instant,
    reused: bool,
}

/// The relay and the sessions kept open to it between messages.
struct SmtpPool {
    addr: String,
    tls_host: Option<String>,
    hello: ClientId,
    /// Sessions unused this long are closed by us (`smtp.idle_timeout_ms`),
    /// before the relay's own idle limit closes them under our feet.
    idle: Duration,
    idle_sessions: Mutex<Vec<Session>>,
}

impl SmtpPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Session>> {
        self.idle_sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A pooled session still inside the idle limit, else a new one.
    async fn checkout(&self) -> Result<Session, String> {
        loop {
            let pooled = self.lock().pop();
            match pooled {
                Some(s) if s.last_used.elapsed() < self.idle => return Ok(s),
                Some(stale) => close(stale),
                None => return self.open().await,
            }
        }
    }

    fn checkin(&self, s: Session) {
        if !s.conn.has_broken() {
            self.lock().push(s);
        }
    }

    async fn open(&self) -> Result<Session, String> {
        match connect(&self.addr, self.tls_host.as_deref(), &self.hello).await {
            Ok(conn) => Ok(Session {
                conn,
                last_used: Instant::now(),
                reused: false,
            }),
            Err(e) => {
                tracing::warn!(addr = %self.addr, error = %e, "SMTP connection failed");
                Err(e)
            }
        }
    }

    /// Closes (QUIT) the pooled sessions that reached the idle limit;
    /// returns when the next one will, if any is left.
    fn close_idle(&self) -> Option<Duration> {
        let mut pool = self.lock();
        let (stale, keep): (Vec<Session>, Vec<Session>) = pool
            .drain(..)
            .partition(|s| s.last_used.elapsed() >= self.idle);
        *pool = keep;
        let next = pool
            .iter()
            .map(|s| self.idle.saturating_sub(s.last_used.elapsed()))
            .min();
        drop(pool);
        for s in stale {
            close(s);
        }
        next
    }

    async fn close_all(&self) {
        let sessions: Vec<Session> = self.lock().drain(..).collect();
        for mut s in sessions {
            let _ = tokio::time::timeout(Duration::from_secs(5), s.conn.quit()).await;
        }
    }

    /// Sends one message on `session` (opened or taken from the pool when
    /// empty or past the idle limit). A reused session that fails without
    /// an answer from the server, or with `421` (the server closed it for
    /// idleness), is not a delivery attempt: we reconnect and send now.
    async fn send(
        &self,
        session: &mut Option<Session>,
        envelope: &Envelope,
        raw: &[u8],
    ) -> Delivery {
        let mut s = match session.take() {
            Some(s) if s.last_used.elapsed() < self.idle => s,
            other => {
                if let Some(old) = other {
                    close(old);
                }
                match self.checkout().await {
                    Ok(s) => s,
                    Err(e) => return Delivery::Transient(e),
                }
            }
        };
        let (mut result, mut stale) = attempt(&mut s.conn, envelope, raw).await;
        if s.reused && stale {
            tracing::warn!(addr = %self.addr, result = ?result, "reused SMTP connection was closed by the server; reconnecting to send now");
            s = match self.open().await {
                Ok(fresh) => fresh,
                Err(e) => return Delivery::Transient(e),
            };
            (result, stale) = attempt(&mut s.conn, envelope, raw).await;
        }
        if stale {
            tracing::warn!(addr = %self.addr, result = ?result, "SMTP connection failed");
        }
        if matches!(result, Delivery::Sent) && !s.conn.has_broken() {
            s.last_used = Instant::now();
            s.reused = true;
            *session = Some(s);
        }
        result
    }
}

/// Ends a session politely in the background (QUIT, then close).
fn close(mut s: Session) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(5), s.conn.quit()).await;
    });
}

/// One SMTP transaction. The flag says the failure came from the
/// connection rather than from the server's judgement of this message: no
/// reply at all (closed, reset, timed out) or `421` (service closing).
async fn attempt(
    conn: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    raw: &[u8],
) -> (Delivery, bool) {
    match tokio::time::timeout(IO_TIMEOUT, conn.send(envelope, raw)).await {
        Ok(Ok(_)) => (Delivery::Sent, false),
        Ok(Err(e)) if e.is_permanent() => {
            let code = e.status().map(|c| c.to_string()).unwrap_or_default();
            // 550/551/553 and 5.1.x name the mailbox; other 5xx are about the message.
            let address =
                matches!(code.as_str(), "550" | "551" | "553") || e.to_string().contains("5.1.");
            (
                Delivery::Permanent {
                    message: e.to_string(),
                    address,
                },
                false,
            )
        }
        Ok(Err(e)) => {
            let code = e.status().map(|c| c.to_string());
            let stale = !e.is_client() && matches!(code.as_deref(), None | Some("421"));
            (Delivery::Transient(e.to_string()), stale)
        }
        Err(_) => (Delivery::Transient("SMTP timeout".into()), true),
    }
}

struct RateLimit {
    interval: Option<Duration>,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl RateLimit {
    async fn acquire(&self) {
        let Some(iv) = self.interval else { return };
        let slot = {
            let mut next = self.next.lock().await;
            let (slot, following) = rate_slot(*next, tokio::time::Instant::now(), iv);
            *next = following;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// When the next send may start (`slot`) and when the one after it may:
/// sends are spaced by `interval`, and idle time is not saved up as a burst.
fn rate_slot<T: Copy + Ord + std::ops::Add<Duration, Output = T>>(
    next: T,
    now: T,
    interval: Duration,
) -> (T, T) {
    let slot = next.max(now);
    (slot, slot + interval)
}

/// Splits one destination domain's items over at most `concurrency`
/// connections, round robin, so a domain never sees more than that many.
fn domain_chunks<T>(items: Vec<T>, concurrency: usize) -> Vec<Vec<T>> {
    let workers = concurrency.max(1).min(items.len().max(1));
    let mut chunks: Vec<Vec<T>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, it) in items.into_iter().enumerate() {
        chunks[i % workers].push(it);
    }
    chunks.retain(|c| !c.is_empty());
    chunks
}

/// The delivery task over the outbox: SMTP to `smtp.url` or `.eml` files,
/// paced by `outbox.rate_per_sec`, with retries and backoff. The daemon
/// runs it as a task ([`Sender::run`]); `edesk outbox flush` drains once.
pub struct Sender {
    notifier: Notifier,
    cfg: OutboxConfig,
    transport: Transport,
    journal_path: PathBuf,
    journal: Mutex<Option<std::fs::File>>,
    rate: RateLimit,
}

/// What one pass delivered.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PassStats {
    /// Accepted by the server (or written as files).
    pub sent: usize,
    /// Failed transiently and rescheduled.
    pub retried: usize,
    /// Given up: refused permanently, or attempts exhausted.
    pub dead: usize,
}

impl Sender {
    /// The sender the configuration describes; first replays `outbox.journal`,
    /// so a mail accepted just before a crash is not sent again. An error means
    /// the `smtp.url` is invalid or the data directory unusable.
    pub fn new(notifier: Notifier, config: &Config) -> Result<Arc<Sender>, NotifyError> {
        let transport = match &config.smtp.url {
            Some(url) => {
                let endpoint = crate::config::SmtpEndpoint::parse(url).map_err(|e| {
                    NotifyError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
                })?;
                Transport::Smtp(SmtpPool {
                    addr: endpoint.addr(),
                    tls_host: endpoint.tls.then(|| endpoint.tls_name()),
                    hello: ClientId::Domain(config.mail.domain.clone()),
                    idle: Duration::from_millis(config.smtp.idle_timeout_ms.max(1)),
                    idle_sessions: Mutex::new(Vec::new()),
                })
            }
            None => {
                let dir = super::data_path(config, "outgoing");
                std::fs::create_dir_all(&dir)?;
                Transport::Files(dir)
            }
        };
        let journal_path = super::data_path(config, "outbox.journal");
        let sender = Sender {
            notifier,
            cfg: config.outbox.clone(),
            transport,
            journal: Mutex::new(None),
            journal_path,
            rate: RateLimit {
                interval: (config.outbox.rate_per_sec > 0)
                    .then(|| Duration::from_secs_f64(1.0 / f64::from(config.outbox.rate_per_sec))),
                next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
            },
        };
        sender.replay_journal()?;
        Ok(Arc::new(sender))
    }

    fn store(&self) -> &Store {
        self.notifier.store()
    }

    /// Applies deliveries journaled before a crash.
    fn replay_journal(&self) -> Result<(), NotifyError> {
        let ids = match std::fs::File::open(&self.journal_path) {
            Ok(f) => std::io::BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.trim().parse::<u64>().ok())
                .collect::<Vec<_>>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        if !ids.is_empty() {
            tracing::info!(count = ids.len(), "replaying delivery journal");
            let now = Utc::now();
            let mark = self.store().write_mark();
            self.store()
                .mark_sent_many(&ids.iter().map(|id| (*id, now)).collect::<Vec<_>>())?;
            self.store().flush(mark)?;
        }
        self.reset_journal()
    }

    fn reset_journal(&self) -> Result<(), NotifyError> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.journal_path)?;
        *self.journal.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
        Ok(())
    }

    /// Records a message the server accepted, before anything else. With a
    /// shared store the record goes to the database at once (another
    /// daemon must see it, a local file would not do); alone, to the
    /// journal file, and the store in one write per pass.
    fn record_delivery(&self, id: u64) {
        if !self.store().is_shared() {
            return self.journal(id);
        }
        let mark = self.store().write_mark();
        let recorded = self
            .store()
            .mark_sent_many(&[(id, Utc::now())])
            .and_then(|()| self.store().flush(mark));
        if let Err(e) = recorded {
            tracing::error!(error = %e, id, "cannot record a delivery; it may be sent again after its claim expires");
        }
    }

    fn journal(&self, id: u64) {
        let mut guard = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = guard.as_mut()
            && let Err(e) = f.write_all(format!("{id}\n").as_bytes())
        {
            tracing::error!(error = %e, id, "cannot journal a delivery");
        }
    }

    /// Runs until cancelled: delivers due items, sleeps until new work or the
    /// next retry. (Early-ship orders are released by the `release-held` job.)
    pub async fn run(self: Arc<Self>, token: CancellationToken) {
        loop {
            if token.is_cancelled() {
                break;
            }
            match self.clone().pass().await {
                Ok(stats) if stats.sent + stats.retried + stats.dead > 0 => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "outbox pass failed");
                    // Do not spin on a failing store.
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {},
                    }
                    continue;
                }
            }
            let mut wait = match self.store().next_due_ms() {
                Ok(Some(due)) => {
                    Duration::from_millis(due.saturating_sub(now_ms()).clamp(10, 60_000))
                }
                Ok(None) => Duration::from_secs(60),
                // The store is recovering (disk full, reopening): the outbox
                // pauses and looks again soon, so it resumes within seconds.
                Err(_) => Duration::from_secs(1),
            };
            // Idle sessions are closed on time even when no mail is due.
            if let Transport::Smtp(pool) = &self.transport
                && let Some(next) = pool.close_idle()
            {
                wait = wait.min(next.max(Duration::from_millis(10)));
            }
            tokio::select! {
                _ = token.cancelled() => break,
                _ = self.notifier.woken() => {},
                _ = tokio::time::sleep(wait) => {},
            }
        }
        if let Transport::Smtp(pool) = &self.transport {
            pool.close_all().await;
        }
    }

    /// Delivers everything due now, once (one batch per call until empty).
    pub async fn drain(self: &Arc<Self>) -> Result<PassStats, NotifyError> {
        let mut total = PassStats::default();
        loop {
            let s = self.clone().pass().await?;
            if s.sent + s.retried + s.dead == 0 {
                return Ok(total);
            }
            total.sent += s.sent;
            total.retried += s.retried;
            total.dead += s.dead;
        }
    }

    async fn pass(self: Arc<Self>) -> Result<PassStats, NotifyError> {
        // One daemon alone claims for no time: the sending pass is the only
        // reader of the queue, and a restart resends nothing it recorded.
        let lease = if self.store().is_shared() {
            self.cfg.claim_lease_secs.saturating_mul(1000)
        } else {
            0
        };
        // Shared: smaller claims, so the daemons split the queue between them.
        let batch = if lease > 0 { SHARED_BATCH } else { BATCH };
        let items = self.store().claim_due(now_ms(), batch, lease)?;
        if items.is_empty() {
            return Ok(PassStats::default());
        }
        let mut by_domain: HashMap<String, Vec<OutboxItem>> = HashMap::new();
        for it in items {
            by_domain
                .entry(it.to.domain().to_string())
                .or_default()
                .push(it);
        }
        let mut set = JoinSet::new();
        for (_, items) in by_domain {
            for chunk in domain_chunks(items, self.cfg.per_domain_concurrency) {
                let me = self.clone();
                set.spawn(async move { me.deliver_chunk(chunk).await });
            }
        }
        let mut stats = PassStats::default();
        let mut done = Vec::new();
        while let Some(r) = set.join_next().await {
            match r {
                Ok((sent, s)) => {
                    done.extend(sent);
                    stats.retried += s.retried;
                    stats.dead += s.dead;
                }
                Err(e) => tracing::error!(error = %e, "delivery task failed"),
            }
        }
        stats.sent = done.len();
        if self.store().is_shared() {
            // Recorded one by one as they were accepted (`record_delivery`).
            return Ok(stats);
        }
        let now = Utc::now();
        let mark = self.store().write_mark();
        self.store()
            .mark_sent_many(&done.iter().map(|id| (*id, now)).collect::<Vec<_>>())?;
        self.store().flush_async(mark).await?;
        self.reset_journal()?;
        Ok(stats)
    }

    async fn deliver_chunk(self: Arc<Self>, items: Vec<OutboxItem>) -> (Vec<u64>, PassStats) {
        let mut sent = Vec::new();
        let mut stats = PassStats::default();
        let mut session: Option<Session> = None;
        for item in items {
            self.rate.acquire().await;
            let result = self.deliver(&item, &mut session).await;
            match result {
                Delivery::Sent => {
                    self.record_delivery(item.id);
                    sent.push(item.id);
                }
                Delivery::Transient(msg) => {
                    let attempts = item.attempts + 1;
                    if attempts >= self.cfg.max_attempts {
                        stats.dead += 1;
                        let why = format!("{msg} (after {attempts} attempts)");
                        self.dead(item, why);
                    } else {
                        stats.retried += 1;
                        let next = now_ms() + self.backoff(attempts);
                        if let Err(e) = self.store().reschedule(item.id, next, &msg) {
                            tracing::error!(error = %e, "cannot record a failed delivery");
                        }
                    }
                }
                Delivery::Permanent { message, address } => {
                    stats.dead += 1;
                    if address && let Err(e) = self.notifier.suppress_failed(&item.to, &message) {
                        tracing::error!(error = %e, "cannot suppress address");
                    }
                    self.dead(item, message);
                }
            }
        }
        if let (Some(s), Transport::Smtp(pool)) = (session, &self.transport) {
            pool.checkin(s);
        }
        (sent, stats)
    }

    /// Marks an item dead and reports it (error log, counter and ticket
    /// for an escalation: see `failures`).
    fn dead(&self, item: OutboxItem, why: String) {
        match self.store().mark_dead(item.id, &why) {
            Ok(item) => self
                .notifier
                .undeliverable(super::failures::Failure::of_item(&item, "relay", why)),
            Err(e) => {
                tracing::error!(error = %e, id = item.id, "cannot record a failed delivery")
            }
        }
    }

    /// Exponential backoff with jitter: base·2^(n−1), then a random point in
    /// its upper half, capped.
    fn backoff(&self, attempts: u32) -> u64 {
        let exp = self
            .cfg
            .backoff_base_ms
            .saturating_mul(1u64 << attempts.saturating_sub(1).min(30));
        let capped = exp.min(self.cfg.backoff_max_ms).max(1);
        rand::thread_rng().gen_range(capped / 2..=capped)
    }

    async fn deliver(&self, item: &OutboxItem, session: &mut Option<Session>) -> Delivery {
        match &self.transport {
            Transport::Files(dir) => match write_eml(dir, item) {
                Ok(()) => Delivery::Sent,
                Err(e) => Delivery::Transient(format!("cannot write .eml: {e}")),
            },
            Transport::Smtp(pool) => {
                let envelope = match (item.envelope_from.parse(), item.to.as_str().parse()) {
                    (Ok(from), Ok(to)) => match Envelope::new(Some(from), vec![to]) {
                        Ok(e) => e,
                        Err(e) => {
                            return Delivery::Permanent {
                                message: format!("bad envelope: {e}"),
                                address: false,
                            };
                        }
                    },
                    _ => {
                        return Delivery::Permanent {
                            message: "bad envelope address".into(),
                            address: false,
                        };
                    }
                };
                pool.send(session, &envelope, item.raw.as_bytes()).await
            }
        }
    }
}

async fn connect(
    addr: &str,
    tls_host: Option<&str>,
    hello: &ClientId,
) -> Result<AsyncSmtpConnection, String> {
    if let Some(host) = tls_host {
        let params = lettre::transport::smtp::client::TlsParameters::new(host.to_string())
            .map_err(|e| e.to_string())?;
        return AsyncSmtpConnection::connect_tokio1(
            addr.to_string(),
            Some(IO_TIMEOUT),
            hello,
            Some(params),
            None,
        )
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"));
    }
    let stream = open_socket(addr).await?;
    tokio::time::timeout(
        IO_TIMEOUT,
        AsyncSmtpConnection::connect_with_transport(Box::new(stream), hello),
    )
    .await
    .map_err(|_| format!("SMTP greeting from {addr} timed out"))?
    .map_err(|e| format!("SMTP session with {addr}: {e}"))
}

/// The plain-SMTP socket: TCP_NODELAY on, or every message on a reused
/// connection waits ~40 ms for Nagle + delayed ACK (22 mails/s instead of
/// thousands).
async fn open_socket(addr: &str) -> Result<tokio::net::TcpStream, String> {
    let stream = tokio::time::timeout(IO_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connect to {addr} timed out"))?
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// Writes `ID.eml` atomically; the name is the outbox id, so a replay
/// overwrites instead of duplicating.
fn write_eml(dir: &Path, item: &OutboxItem) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{}.eml.tmp", item.id));
    std::fs::write(&tmp, item.raw.as_bytes())?;
    std::fs::rename(tmp, dir.join(format!("{}.eml", item.id)))
}

#[cfg(test)]
mod limit_tests {
    use std::time::Duration;

    use super::{domain_chunks, rate_slot};

    #[test]
    fn sends_are_spaced_by_the_rate_and_idle_time_is_not_a_burst() {
        let iv = Duration::from_millis(100);
        let t0 = std::time::Instant::now();
        let mut next = t0;
        let mut slots = Vec::new();
        for _ in 0..5 {
            let (slot, following) = rate_slot(next, t0, iv);
            slots.push(slot - t0);
            next = following;
        }
        assert_eq!(
            slots,
            [0, 100, 200, 300, 400].map(Duration::from_millis).to_vec()
        );
        // After a long pause the next send goes at once, then spacing resumes.
        let later = t0 + Duration::from_secs(10);
        let (slot, following) = rate_slot(next, later, iv);
        assert_eq!(slot, later);
        assert_eq!(following, later + iv);
    }

    #[test]
    fn a_domain_gets_at_most_its_concurrency() {
        let chunks = domain_chunks((0..10).collect::<Vec<_>>(), 4);
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 10);
        assert_eq!(domain_chunks(vec![1, 2], 4).len(), 2);
        assert_eq!(
            domain_chunks(vec![1, 2, 3], 0).len(),
            1,
            "0 means one connection"
        );
        assert!(domain_chunks(Vec::<u8>::new(), 4).is_empty());
    }
}

#[cfg(test)]
mod socket_tests {
    #[tokio::test]
    async fn smtp_sockets_have_nagle_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stream = super::open_socket(&addr).await.unwrap();
        assert!(stream.nodelay().unwrap(), "TCP_NODELAY must be set");
    }
}
