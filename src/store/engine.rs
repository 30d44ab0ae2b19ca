//! The one owner of the sled database.
//!
//! sled 0.34.7 deadlocks when several threads mix `flush`/`flush_async`,
//! transactions and batches (upstream #1412, #1308, #1301): a flushing I/O
//! thread holds the concurrency-control read lock, a transaction waits for
//! the write lock, and everything else queues behind it. Two rules make that
//! impossible here:
//!
//! - one thread (the owner, started by [`Engine::open`]) applies every write
//!   and is the only caller of `flush`; sled's own background flusher is off;
//! - nothing in the process uses sled transactions or `apply_batch`. Those are
//!   the only operations that take the concurrency-control *write* lock (a
//!   process-wide static in sled); while it is never taken, readers on other
//!   threads go through a lock-free counter and cannot block.
//!
//! Writers send a closure and wait for its answer. The owner drains what is
//! waiting (up to [`MAX_BATCH`] jobs), applies it in arrival order, flushes
//! once (group commit) and only then answers the jobs that asked for
//! durability. Multi-key writes are ordered so that any prefix of them is
//! safe: the guard record (idempotency key, dedup key) first, the payload
//! after, and a guard whose payload is missing counts as absent.
//!
//! When sled reports an I/O error it refuses every later operation (its
//! "global error" never clears). The owner then drops the database, answers
//! with [`StoreError::Unavailable`], and reopens it every
//! [`REOPEN_EVERY`] until a probe write and flush succeed: a full disk that
//! gets space back recovers without a restart. Unflushed writes of the failed
//! batch were never acknowledged; callers that batch several writes behind one
//! [`Engine::barrier`] learn about the failure through the epoch.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::StoreError;

/// Most jobs applied between two flushes.
const MAX_BATCH: usize = 512;
/// Requests waiting for the owner before callers block (back-pressure).
const QUEUE: usize = 8192;
/// How often a failed store tries to reopen.
const REOPEN_EVERY: Duration = Duration::from_millis(500);
/// How often the owner looks at the free space of the data directory.
const SPACE_EVERY: Duration = Duration::from_millis(500);

/// Every sled tree of the daemon. Only the store module sees it.
pub(super) struct Trees {
    pub db: sled::Db,
    pub orders: sled::Tree,
    pub order_meta: sled::Tree,
    pub index: sled::Tree,
    pub outbox: sled::Tree,
    pub bodies: sled::Tree,
    pub queue: sled::Tree,
    pub keys: sled::Tree,
    pub history: sled::Tree,
    pub prefs: sled::Tree,
    pub suppress: sled::Tree,
    pub counters: sled::Tree,
    pub mail_raw: sled::Tree,
    pub mail_meta: sled::Tree,
    pub mail_dedup: sled::Tree,
    pub mail_pending: sled::Tree,
    pub tickets: sled::Tree,
    pub ticket_threads: sled::Tree,
    pub ticket_meta: sled::Tree,
    pub auto_mail: sled::Tree,
    pub downloads: sled::Tree,
    /// Chat accounts, link codes, rate windows, feedback (`store::chat`).
    pub chat: sled::Tree,
}

impl Trees {
    fn open(path: &Path, cache_bytes: u64) -> Result<Trees, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            // Only the owner flushes: a background flusher is a second
            // thread inside sled's locks.
            .flush_every_ms(None)
            .open()
            .map_err(|e| match e {
                // sled reports the file lock held by another process as an
                // I/O error whose text is the only distinguishing mark.
                sled::Error::Io(ref io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("could not acquire lock") =>
                {
                    StoreError::Locked(path.display().to_string())
                }
                other => StoreError::Sled(other),
            })?;
        let tree = |n: &str| db.open_tree(n);
        Ok(Trees {
            orders: tree("orders")?,
            order_meta: tree("order_meta")?,
            index: tree("index")?,
            outbox: tree("outbox")?,
            bodies: tree("bodies")?,
            queue: tree("queue")?,
            keys: tree("keys")?,
            history: tree("history")?,
            prefs: tree("prefs")?,
            suppress: tree("suppress")?,
            counters: tree("counters")?,
            mail_raw: tree("mail_raw")?,
            mail_meta: tree("mail_meta")?,
            mail_dedup: tree("mail_dedup")?,
            mail_pending: tree("mail_pending")?,
            tickets: tree("tickets")?,
            ticket_threads: tree("ticket_threads")?,
            ticket_meta: tree("ticket_meta")?,
            auto_mail: tree("auto_mail")?,
            downloads: tree("downloads")?,
            chat: tree("chat")?,
            db,
        })
    }

    /// A big-endian u64 of the `counters` tree (0 when absent).
    pub fn count(&self, key: &str) -> Result<u64, StoreError> {
        Ok(self
            .counters
            .get(key)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    pub fn counter(&self, name: &str) -> Result<u64, StoreError> {
        self.count(&format!("seq/{name}"))
    }

    /// Raises a counter so that it will never hand out `floor` or less:
    /// ids in use are persisted this way, and stores written by an earlier
    /// version (sled's own id generator) start above what it handed out.
    pub fn raise_counter(&self, name: &str, floor: u64) -> Result<(), StoreError> {
        if self.counter(name)? < floor {
            self.counters
                .insert(format!("seq/{name}"), &floor.to_be_bytes())?;
        }
        Ok(())
    }
}

type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Apply = Box<dyn FnOnce(Result<&Trees, StoreError>) -> Reply + Send>;

/// How much a job may write, for the free-space budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cost {
    /// Writes nothing (liveness ping, flush barrier): always runs.
    Nothing,
    /// A small update (state change, counter): refused only near the hard floor.
    Small,
    /// Adds about this many bytes (mail, orders): refused below the free-space floor.
    Grows(u64),
}

struct Job {
    apply: Apply,
    /// Answer only after the flush that follows the apply.
    durable: bool,
    cost: Cost,
}

/// What a job costs against the budget: sled writes values to its log and
/// rewrites pages later, so count twice the bytes plus a page.
fn charge(cost: Cost) -> u64 {
    match cost {
        Cost::Nothing => 0,
        Cost::Small => 8 << 10,
        Cost::Grows(n) => n.saturating_mul(2).saturating_add(8 << 10),
    }
}

/// What `/healthz` and `/readyz` look at.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    /// The store accepts writes.
    pub writable: bool,
    /// Why not, when it does not (I/O error, disk full, reopening).
    pub reason: Option<String>,
    /// Free bytes in the data directory at the last look.
    pub free_bytes: Option<u64>,
    /// Milliseconds the owner has been inside one batch (0 when idle).
    pub busy_ms: u64,
    /// Batches applied and flushes done since start.
    pub batches: u64,
    pub flushes: u64,
    /// Times the database was reopened after a failure.
    pub reopens: u64,
}

struct Shared {
    trees: RwLock<Option<Arc<Trees>>>,
    /// Next id for mail and outbox items: handed out without a round trip;
    /// every write that uses one raises the persisted counter past it.
    next_id: AtomicU64,
    /// Bumped every time the database fails: writes acknowledged as
    /// "applied" under an older epoch may be lost.
    epoch: AtomicU64,
    /// `Instant`-based milliseconds when the current batch started; 0 idle.
    busy_since: AtomicU64,
    batches: AtomicU64,
    flushes: AtomicU64,
    reopens: AtomicU64,
    failure: Mutex<Option<String>>,
    free_bytes: AtomicU64,
    started: Instant,
    min_free_bytes: u64,
}

impl Shared {
    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn set_failure(&self, reason: Option<String>) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = reason;
    }

    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn low_space(&self) -> bool {
        self.free_bytes.load(Ordering::Relaxed) < self.min_free_bytes
    }
}

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// sled's page cache, in bytes (sled's own default is 1 GiB).
    pub cache_bytes: u64,
    /// Below this many free bytes in the data directory, writes that add
    /// data are refused (before sled hits ENOSPC) and the store is not ready.
    pub min_free_bytes: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            cache_bytes: 64 << 20,
            min_free_bytes: 16 << 20,
        }
    }
}

/// Handle to the owner thread. Dropping the last handle stops the owner
/// after it has applied and flushed what was queued.
pub(super) struct Engine {
    tx: Option<SyncSender<Job>>,
    shared: Arc<Shared>,
    owner: Option<std::thread::JoinHandle<()>>,
}

impl Engine {
    pub fn open(path: &Path, settings: &EngineSettings) -> Result<Engine, StoreError> {
        let trees = Trees::open(path, settings.cache_bytes)?;
        let shared = Arc::new(Shared {
            trees: RwLock::new(Some(Arc::new(trees))),
            next_id: AtomicU64::new(1),
            epoch: AtomicU64::new(1),
            busy_since: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            reopens: AtomicU64::new(0),
            failure: Mutex::new(None),
            free_bytes: AtomicU64::new(u64::MAX),
            started: Instant::now(),
            min_free_bytes: settings.min_free_bytes,
        });
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let owner = Owner {
            rx,
            shared: shared.clone(),
            path: path.to_path_buf(),
            cache_bytes: settings.cache_bytes,
            last_space_check: None,
            last_reopen: None,
            dirty: false,
        };
        let handle = std::thread::Builder::new()
            .name("edesk-store".into())
            .spawn(move || owner.run())
            .map_err(|e| StoreError::Unavailable(format!("cannot start the store thread: {e}")))?;
        Ok(Engine {
            tx: Some(tx),
            shared,
            owner: Some(handle),
        })
    }

    /// The trees for a direct read (safe: see the module comment).
    pub fn trees(&self) -> Result<Arc<Trees>, StoreError> {
        self.shared
            .trees
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Unavailable(self.unavailable_reason()))
    }

    fn unavailable_reason(&self) -> String {
        self.shared
            .failure()
            .unwrap_or_else(|| "the store is reopening".into())
    }

    /// Starts handing out ids after `persisted` (the counter on disk).
    pub fn init_ids(&self, persisted: u64) {
        self.shared
            .next_id
            .fetch_max(persisted.saturating_add(1), Ordering::SeqCst);
    }

    /// A fresh id, unique for this store's lifetime (gaps are fine).
    pub fn alloc_id(&self) -> u64 {
        self.shared.next_id.fetch_add(1, Ordering::SeqCst)
    }

    pub fn epoch(&self) -> u64 {
        self.shared.epoch.load(Ordering::SeqCst)
    }

    /// Whether writes that add data should be refused now (low disk space
    /// or a failed store), and why.
    pub fn refuse_growth(&self) -> Option<String> {
        if let Some(f) = self.shared.failure() {
            return Some(f);
        }
        self.shared.low_space().then(|| {
            format!(
                "disk almost full: {} bytes free in the data directory (minimum {})",
                self.shared.free_bytes.load(Ordering::Relaxed),
                self.shared.min_free_bytes
            )
        })
    }

    pub fn health(&self) -> Health {
        let busy = self.shared.busy_since.load(Ordering::SeqCst);
        let free = self.shared.free_bytes.load(Ordering::Relaxed);
        let reason = self.refuse_growth();
        Health {
            writable: reason.is_none(),
            reason,
            free_bytes: (free != u64::MAX).then_some(free),
            busy_ms: if busy == 0 {
                0
            } else {
                self.shared.elapsed_ms().saturating_sub(busy)
            },
            batches: self.shared.batches.load(Ordering::Relaxed),
            flushes: self.shared.flushes.load(Ordering::Relaxed),
            reopens: self.shared.reopens.load(Ordering::Relaxed),
        }
    }

    fn submit<R: Send + 'static>(
        &self,
        durable: bool,
        cost: Cost,
        f: impl FnOnce(&Trees) -> Result<R, StoreError> + Send + 'static,
        done: impl FnOnce(Result<R, StoreError>) + Send + 'static,
    ) -> Result<(), StoreError> {
        let apply: Apply = Box::new(move |trees: Result<&Trees, StoreError>| {
            let result = trees.and_then(f);
            Box::new(move |flushed: Result<(), StoreError>| done(flushed.and(result)))
        });
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        match tx.try_send(Job {
            apply,
            durable,
            cost,
        }) {
            Ok(()) => Ok(()),
            // Back-pressure: the owner is behind; wait for room.
            Err(TrySendError::Full(job)) => tx.send(job).map_err(|_| StoreError::Closed),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::Closed),
        }
    }

    /// Runs `f` on the owner thread and waits for its result; with
    /// `durable`, waits for the flush too.
    pub fn write<R: Send + 'static>(
        &self,
        durable: bool,
        f: impl FnOnce(&Trees) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.write_costing(durable, Cost::Small, f)
    }

    /// [`Engine::write`] with the job's cost against the free-space budget.
    pub fn write_costing<R: Send + 'static>(
        &self,
        durable: bool,
        cost: Cost,
        f: impl FnOnce(&Trees) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.submit(durable, cost, f, move |r| {
            let _ = tx.send(r);
        })?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    /// [`Engine::write`] for async callers: does not block the runtime.
    pub async fn write_async<R: Send + 'static>(
        &self,
        durable: bool,
        cost: Cost,
        f: impl FnOnce(&Trees) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(durable, cost, f, move |r| {
            let _ = tx.send(r);
        })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Waits until everything applied before it is flushed, and fails when
    /// the store failed since `epoch` (some of those writes may be lost).
    pub fn barrier(&self, epoch: u64) -> Result<(), StoreError> {
        let shared = self.shared.clone();
        self.write_costing(true, Cost::Nothing, move |_| Ok(()))?;
        check_epoch(&shared, epoch)
    }

    pub async fn barrier_async(&self, epoch: u64) -> Result<(), StoreError> {
        let shared = self.shared.clone();
        self.write_async(true, Cost::Nothing, move |_| Ok(()))
            .await?;
        check_epoch(&shared, epoch)
    }

    /// A no-op through the owner, for liveness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.write_async(false, Cost::Nothing, |_| Ok(())).await
    }
}

fn check_epoch(shared: &Shared, epoch: u64) -> Result<(), StoreError> {
    if shared.epoch.load(Ordering::SeqCst) == epoch {
        Ok(())
    } else {
        Err(StoreError::Unavailable(
            "the store failed while this work was being written; it was not saved, try again"
                .into(),
        ))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Closing the channel ends the owner after its last flush; joining
        // releases sled's file lock before a caller reopens the directory.
        drop(self.tx.take());
        if let Some(h) = self.owner.take() {
            let _ = h.join();
        }
    }
}

struct Owner {
    rx: Receiver<Job>,
    shared: Arc<Shared>,
    path: PathBuf,
    cache_bytes: u64,
    last_space_check: Option<Instant>,
    last_reopen: Option<Instant>,
    /// Writes applied since the last flush.
    dirty: bool,
}

impl Owner {
    fn run(mut self) {
        loop {
            self.check_space();
            let first = match self.rx.recv_timeout(REOPEN_EVERY) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    self.maybe_reopen();
                    if self.dirty {
                        // Writes nobody waited for still reach the disk
                        // within a second of going quiet.
                        self.run_batch(Vec::new());
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.maybe_reopen();
            self.run_batch(batch);
        }
        if let Some(t) = self.current()
            && let Err(e) = t.db.flush()
        {
            tracing::error!(error = %e, "final store flush failed");
        }
    }

    fn current(&self) -> Option<Arc<Trees>> {
        self.shared
            .trees
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn run_batch(&mut self, batch: Vec<Job>) {
        self.shared
            .busy_since
            .store(self.shared.elapsed_ms().max(1), Ordering::SeqCst);
        let trees = self.current();
        self.last_space_check = None;
        self.check_space();
        let mut budget = Budget::new(&self.shared);
        let mut waiting: Vec<Reply> = Vec::new();
        let idle_flush = batch.is_empty();
        for job in batch {
            self.dirty |= job.cost != Cost::Nothing;
            let input = match (&trees, budget.admit(job.cost)) {
                (_, Err(e)) => Err(e),
                (Some(t), Ok(())) => Ok(&**t),
                (None, Ok(())) => Err(StoreError::Unavailable(
                    self.shared
                        .failure()
                        .unwrap_or_else(|| "the store is reopening".into()),
                )),
            };
            let reply = (job.apply)(input);
            if job.durable {
                waiting.push(reply);
            } else {
                reply(Ok(()));
            }
        }
        self.shared.batches.fetch_add(1, Ordering::Relaxed);
        // Flush only for someone who waits for it (a durable write or a
        // barrier): an import's many small writes share one flush at its end.
        if waiting.is_empty() && !idle_flush {
            self.shared.busy_since.store(0, Ordering::SeqCst);
            return;
        }
        self.dirty = false;
        let flushed = match &trees {
            Some(t) => {
                self.shared.flushes.fetch_add(1, Ordering::Relaxed);
                t.db.flush().map(|_| ()).map_err(StoreError::from)
            }
            None => Err(StoreError::Unavailable(
                self.shared
                    .failure()
                    .unwrap_or_else(|| "the store is reopening".into()),
            )),
        };
        let failure = match &flushed {
            Ok(()) => None,
            Err(e) => Some(describe(e)),
        };
        if let (Some(reason), Some(_)) = (&failure, &trees) {
            self.fail(reason.clone());
        }
        for reply in waiting {
            reply(match &failure {
                None => Ok(()),
                Some(r) => Err(StoreError::Unavailable(r.clone())),
            });
        }
        self.shared.busy_since.store(0, Ordering::SeqCst);
    }

    /// Drops the database after an I/O error; readers holding the old trees
    /// finish with it, then sled's file lock is released.
    fn fail(&mut self, reason: String) {
        tracing::error!(%reason, "store write failed; refusing writes until it recovers");
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        self.shared.set_failure(Some(reason));
        *self.shared.trees.write().unwrap_or_else(|p| p.into_inner()) = None;
        self.last_reopen = Some(Instant::now());
    }

    fn maybe_reopen(&mut self) {
        if self.current().is_some() {
            return;
        }
        if self.last_reopen.is_some_and(|t| t.elapsed() < REOPEN_EVERY) {
            return;
        }
        self.last_reopen = Some(Instant::now());
        match Trees::open(&self.path, self.cache_bytes).and_then(|t| probe(&t).map(|()| t)) {
            Ok(t) => {
                *self.shared.trees.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(t));
                self.shared.reopens.fetch_add(1, Ordering::Relaxed);
                self.shared.set_failure(None);
                tracing::info!("store writable again");
            }
            Err(e) => {
                let reason = describe(&e);
                tracing::debug!(%reason, "store still failing");
                self.shared.set_failure(Some(reason));
            }
        }
    }

    fn check_space(&mut self) {
        if self
            .last_space_check
            .is_some_and(|t| t.elapsed() < SPACE_EVERY)
        {
            return;
        }
        self.last_space_check = Some(Instant::now());
        if let Ok(free) = fs2::available_space(&self.path) {
            self.shared.free_bytes.store(free, Ordering::Relaxed);
        }
    }
}

/// Free space a batch may still use. sled 0.34 does not survive ENOSPC (a
/// flush then waits forever in `make_stable`, seen on a full tmpfs), so the
/// store must never get there: writes that add data stop at
/// `min_free_bytes`, small updates at half of it.
struct Budget {
    growth: u64,
    small: u64,
    free: u64,
}

impl Budget {
    fn new(shared: &Shared) -> Budget {
        let free = shared.free_bytes.load(Ordering::Relaxed);
        let floor = shared.min_free_bytes;
        Budget {
            growth: free.saturating_sub(floor),
            small: free.saturating_sub(floor / 2),
            free,
        }
    }

    fn admit(&mut self, cost: Cost) -> Result<(), StoreError> {
        let n = charge(cost);
        let room = match cost {
            Cost::Nothing => return Ok(()),
            Cost::Small => self.small,
            Cost::Grows(_) => self.growth,
        };
        if n > room {
            return Err(StoreError::Unavailable(format!(
                "disk almost full: {} bytes free in the data directory",
                self.free
            )));
        }
        self.growth = self.growth.saturating_sub(n);
        self.small = self.small.saturating_sub(n);
        Ok(())
    }
}

/// A write and a flush that must succeed before the store is called writable.
fn probe(t: &Trees) -> Result<(), StoreError> {
    t.counters.insert("probe", vec![0u8; 64])?;
    t.db.flush()?;
    Ok(())
}

fn describe(e: &StoreError) -> String {
    match e {
        StoreError::Sled(sled::Error::Io(io)) if io.kind() == std::io::ErrorKind::StorageFull => {
            "disk full: the data directory has no space left".into()
        }
        StoreError::Sled(sled::Error::Io(io))
            if io.kind() == std::io::ErrorKind::ReadOnlyFilesystem
                || io.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            format!("the data directory is not writable: {io}")
        }
        StoreError::Unavailable(r) => r.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> (tempfile::TempDir, Arc<Engine>) {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(&dir.path().join("db"), &EngineSettings::default()).unwrap();
        (dir, Arc::new(e))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_owner_fails_the_liveness_ping() {
        let (_d, e) = engine();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let blocker = e.clone();
        let stuck = std::thread::spawn(move || {
            blocker.write(false, move |_| {
                let _ = hold.recv_timeout(Duration::from_secs(30));
                Ok(())
            })
        });
        // Wait until the owner is inside the blocking job.
        while e.health().busy_ms == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let ping = tokio::time::timeout(Duration::from_millis(200), e.ping()).await;
        assert!(ping.is_err(), "a stuck owner must not answer");
        release.send(()).unwrap();
        stuck.join().unwrap().unwrap();
        tokio::time::timeout(Duration::from_secs(5), e.ping())
            .await
            .expect("the owner answers again")
            .unwrap();
        assert_eq!(e.health().busy_ms, 0);
    }

    /// Many writers and readers at once, with a watchdog: the shape that hung
    /// sled 0.34 when every thread flushed and ran transactions itself.
    #[test]
    fn concurrent_writers_and_readers_make_progress() {
        let (_d, e) = engine();
        let done = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for w in 0..8u64 {
            let (e, done) = (e.clone(), done.clone());
            handles.push(std::thread::spawn(move || {
                for i in 0..200u64 {
                    let key = format!("w{w}/{i}");
                    let durable = i % 4 == 0;
                    e.write(durable, move |t| {
                        t.counters.insert(key.as_bytes(), &i.to_be_bytes())?;
                        Ok(())
                    })
                    .unwrap();
                    // A direct read of what was just written.
                    let t = e.trees().unwrap();
                    assert!(t.counters.get(format!("w{w}/{i}")).unwrap().is_some());
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let mut last = 0;
        let mut last_change = Instant::now();
        while handles.iter().any(|h| !h.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
            let now = done.load(Ordering::Relaxed);
            if now != last {
                last = now;
                last_change = Instant::now();
            }
            assert!(
                last_change.elapsed() < Duration::from_secs(10),
                "no progress for 10 s at {now} writes: the store hangs"
            );
        }
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(done.load(Ordering::Relaxed), 8 * 200);
        assert!(e.barrier(e.epoch()).is_ok());
        let h = e.health();
        assert!(h.flushes >= 1 && h.flushes <= h.batches, "{h:?}");
    }
}
