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

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::StoreError;
use super::kv::Tree;
use super::pg;
use super::rdb;

mod sled_open;
#[cfg(test)]
pub(super) use sled_open::SPOOL_SEGMENT;
use sled_open::open_sled;
pub(super) use sled_open::spool_path;

/// Most jobs applied between two flushes.
const MAX_BATCH: usize = 512;
/// Requests waiting for the owner before callers block (back-pressure).
const QUEUE: usize = 8192;
/// How often a failed store tries to reopen.
const REOPEN_EVERY: Duration = Duration::from_millis(500);
/// Longest a busy owner goes without a flush. It bounds what a crash can
/// take of writes nobody waited for, and on redb how much space freed pages
/// hold: redb reuses a page freed by a non-durable commit only after the
/// next durable one, so without it a long import grows the file.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Free space above `min_free_bytes` below which the store calls itself
/// not ready: a write is charged about twice its size, so from here on an
/// ordinary message (up to ~500 KB) may already be refused, and `/readyz`
/// must say so before a client finds out.
const READY_HEADROOM: u64 = 1 << 20;
/// How often the owner looks at the free space of the data directory.
const SPACE_EVERY: Duration = Duration::from_millis(500);

/// Every tree of the daemon, on whichever engine. Only the store module sees it.
pub(super) struct Trees {
    /// Store-wide values (`schema_version`): sled's default tree.
    pub meta: Tree,
    pub orders: Tree,
    pub order_meta: Tree,
    pub index: Tree,
    pub outbox: Tree,
    pub bodies: Tree,
    pub queue: Tree,
    pub keys: Tree,
    pub history: Tree,
    pub prefs: Tree,
    pub suppress: Tree,
    pub counters: Tree,
    pub mail_raw: Tree,
    pub mail_meta: Tree,
    pub mail_dedup: Tree,
    pub mail_pending: Tree,
    pub tickets: Tree,
    pub ticket_threads: Tree,
    pub ticket_meta: Tree,
    pub auto_mail: Tree,
    pub downloads: Tree,
    /// Chat accounts, link codes, rate windows, feedback (`store::chat`).
    pub chat: Tree,
    /// The scheduler's state per job and its run records (`store::jobs`).
    pub job_state: Tree,
    pub job_runs: Tree,
    /// Several daemons share these trees (PostgreSQL): ids come from the
    /// database's sequence, not from a counter this process keeps.
    pool: Option<Arc<pg::Pool>>,
    /// Above every id sled's own generator handed out (stores written
    /// before the owner thread numbered with it); 0 elsewhere.
    pub legacy_id_floor: u64,
    /// On sled, bodies live in a database of their own (the spool, see
    /// [`open_sled_once`]); a sent item's body is removed only after the
    /// flush that made "sent" durable, so these wait for it.
    spent_bodies: Option<Mutex<Vec<u64>>>,
}

impl Trees {
    fn build(
        meta: Tree,
        legacy_id_floor: u64,
        open: impl Fn(&'static str) -> Result<Tree, StoreError>,
    ) -> Result<Trees, StoreError> {
        Ok(Trees {
            meta,
            orders: open("orders")?,
            order_meta: open("order_meta")?,
            index: open("index")?,
            outbox: open("outbox")?,
            bodies: open("bodies")?,
            queue: open("queue")?,
            keys: open("keys")?,
            history: open("history")?,
            prefs: open("prefs")?,
            suppress: open("suppress")?,
            counters: open("counters")?,
            mail_raw: open("mail_raw")?,
            mail_meta: open("mail_meta")?,
            mail_dedup: open("mail_dedup")?,
            mail_pending: open("mail_pending")?,
            tickets: open("tickets")?,
            ticket_threads: open("ticket_threads")?,
            ticket_meta: open("ticket_meta")?,
            auto_mail: open("auto_mail")?,
            downloads: open("downloads")?,
            chat: open("chat")?,
            job_state: open("job_state")?,
            job_runs: open("job_runs")?,
            pool: None,
            legacy_id_floor,
            spent_bodies: None,
        })
    }

    fn sled(db: &sled::Db, bodies: &sled::Db) -> Result<Trees, StoreError> {
        let default: &sled::Tree = db;
        let floor = db.generate_id()? + 1;
        let mut trees = Trees::build(Tree::Sled(default.clone()), floor, |n| {
            let home = if n == "bodies" { bodies } else { db };
            Ok(Tree::Sled(home.open_tree(n)?))
        })?;
        trees.spent_bodies = Some(Mutex::new(Vec::new()));
        Ok(trees)
    }

    fn redb(core: &Arc<rdb::Core>, writer: bool) -> Result<Trees, StoreError> {
        let open = |n: &'static str| Tree::Redb(rdb::RedbTree::new(core.clone(), n, writer));
        Trees::build(open("meta"), 0, |n| Ok(open(n)))
    }

    fn pg(via: pg::Via, pool: Option<Arc<pg::Pool>>) -> Trees {
        let open = |n: &'static str| Tree::Pg(pg::PgTree::new(n, via.clone()));
        Trees {
            meta: open("meta"),
            orders: open("orders"),
            order_meta: open("order_meta"),
            index: open("index"),
            outbox: open("outbox"),
            bodies: open("bodies"),
            queue: open("queue"),
            keys: open("keys"),
            history: open("history"),
            prefs: open("prefs"),
            suppress: open("suppress"),
            counters: open("counters"),
            mail_raw: open("mail_raw"),
            mail_meta: open("mail_meta"),
            mail_dedup: open("mail_dedup"),
            mail_pending: open("mail_pending"),
            tickets: open("tickets"),
            ticket_threads: open("ticket_threads"),
            ticket_meta: open("ticket_meta"),
            auto_mail: open("auto_mail"),
            downloads: open("downloads"),
            chat: open("chat"),
            job_state: open("job_state"),
            job_runs: open("job_runs"),
            pool,
            legacy_id_floor: 0,
            spent_bodies: None,
        }
    }

    /// Drops the body of an item that was sent. On sled the removal waits
    /// for the next flush (see [`Trees::release_spent_bodies`]): the spool
    /// is flushed before the main database, and a body removed in the same
    /// flush as its item's "sent" could be gone while "sent" is not.
    pub fn drop_body(&self, id: u64) -> Result<(), StoreError> {
        match &self.spent_bodies {
            Some(spent) => {
                spent.lock().unwrap_or_else(|p| p.into_inner()).push(id);
                Ok(())
            }
            None => self.bodies.remove(id.to_be_bytes()).map(|_| ()),
        }
    }

    /// Removes the bodies of items whose "sent" a flush has just made
    /// durable. The removals reach the disk with the next flush; a crash
    /// before it leaves bodies that the sweep at open removes.
    fn release_spent_bodies(&self) -> Result<usize, StoreError> {
        let Some(spent) = &self.spent_bodies else {
            return Ok(0);
        };
        let ids = std::mem::take(&mut *spent.lock().unwrap_or_else(|p| p.into_inner()));
        for id in &ids {
            self.bodies.remove(id.to_be_bytes())?;
        }
        Ok(ids.len())
    }

    /// Every tree with its name, for copies between engines.
    pub fn all(&self) -> [(&'static str, &Tree); 24] {
        [
            ("meta", &self.meta),
            ("orders", &self.orders),
            ("order_meta", &self.order_meta),
            ("index", &self.index),
            ("outbox", &self.outbox),
            ("bodies", &self.bodies),
            ("queue", &self.queue),
            ("keys", &self.keys),
            ("history", &self.history),
            ("prefs", &self.prefs),
            ("suppress", &self.suppress),
            ("counters", &self.counters),
            ("mail_raw", &self.mail_raw),
            ("mail_meta", &self.mail_meta),
            ("mail_dedup", &self.mail_dedup),
            ("mail_pending", &self.mail_pending),
            ("tickets", &self.tickets),
            ("ticket_threads", &self.ticket_threads),
            ("ticket_meta", &self.ticket_meta),
            ("auto_mail", &self.auto_mail),
            ("downloads", &self.downloads),
            ("chat", &self.chat),
            ("job_state", &self.job_state),
            ("job_runs", &self.job_runs),
        ]
    }

    /// The tree called `name`.
    pub fn named(&self, name: &str) -> Option<&Tree> {
        self.all()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t)
    }

    /// Whether several daemons may share these trees (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.pool.is_some()
    }

    /// Moves the shared id sequence past `floor` (ids in a copied store).
    fn raise_shared_ids(&self, floor: u64) -> Option<Result<(), StoreError>> {
        self.pool
            .as_ref()
            .map(|p| p.call(move |c| c.raise_ids(floor)))
    }

    /// A fresh id from the database's sequence, when the trees are shared.
    fn shared_id(&self) -> Option<Result<u64, StoreError>> {
        self.pool.as_ref().map(|p| p.call(|c| c.next_id()))
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
                .insert(format!("seq/{name}"), floor.to_be_bytes())?;
        }
        Ok(())
    }

    /// Records that ids up to `max` are in use. Shared trees take ids from
    /// the database's sequence, and a counter row every write touched would
    /// serialize the daemons on one lock.
    pub fn note_ids_used(&self, max: u64) -> Result<(), StoreError> {
        if self.is_shared() {
            return Ok(());
        }
        self.raise_counter("id", max)
    }
}

/// The open database the owner writes to.
enum Db {
    /// The main database and the spool holding outgoing bodies.
    Sled(sled::Db, sled::Db),
    Redb(Arc<rdb::Core>),
    Pg(Arc<Mutex<pg::Conn>>, Arc<pg::Pool>),
}

/// What opening the store gives the owner: the database, the trees its
/// writes go through and the trees direct readers use (the same on sled).
struct Opened {
    db: Db,
    write: Arc<Trees>,
    read: Arc<Trees>,
}

/// Which engine holds the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Backend {
    /// Embedded sled under the data directory (the default).
    #[default]
    Sled,
    /// Embedded redb: one file, `store.redb`, in the data directory.
    Redb,
    /// A PostgreSQL database several daemons may share.
    Postgres {
        /// The connection URL (`postgres://…`).
        url: String,
    },
}

fn open_redb(path: &Path, cache_bytes: u64) -> Result<Opened, StoreError> {
    let core = rdb::Core::open(path, cache_bytes)?;
    Ok(Opened {
        write: Arc::new(Trees::redb(&core, true)?),
        read: Arc::new(Trees::redb(&core, false)?),
        db: Db::Redb(core),
    })
}

fn open_pg(url: &str) -> Result<Opened, StoreError> {
    // The synchronous client runs a runtime of its own, which cannot start
    // on a thread that drives the daemon's: connect on a thread of ours.
    let url_owned = url.to_string();
    let writer = std::thread::Builder::new()
        .name("edesk-pg-open".into())
        .spawn(move || -> Result<pg::Conn, StoreError> {
            let mut writer = pg::Conn::connect(&url_owned)?;
            writer.migrate()?;
            Ok(writer)
        })
        .map_err(|e| StoreError::Unavailable(format!("cannot start a thread: {e}")))?
        .join()
        .map_err(|_| StoreError::Unavailable("connecting to PostgreSQL failed".into()))??;
    let writer = Arc::new(Mutex::new(writer));
    let pool = pg::Pool::start(url)?;
    Ok(Opened {
        db: Db::Pg(writer.clone(), pool.clone()),
        write: Arc::new(Trees::pg(pg::Via::Txn(writer), Some(pool.clone()))),
        read: Arc::new(Trees::pg(pg::Via::Pool(pool.clone()), Some(pool))),
    })
}

impl Db {
    fn with_writer<R>(
        c: &Mutex<pg::Conn>,
        f: impl FnOnce(&mut pg::Conn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        f(&mut c.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Starts one job: on PostgreSQL, its own transaction. A batch of jobs
    /// in one transaction would hold each job's locks until the last one
    /// ends, and two daemons' batches would deadlock on each other's keys.
    fn job_start(&self) -> Result<(), StoreError> {
        match self {
            Db::Sled(..) | Db::Redb(_) => Ok(()),
            Db::Pg(c, _) => Db::with_writer(c, pg::Conn::begin),
        }
    }

    /// Ends one job: PostgreSQL commits it (durable on return) or rolls
    /// back a job that failed, so it leaves nothing half-written.
    fn job_end(&self, ok: bool) -> Result<(), StoreError> {
        match self {
            Db::Sled(..) | Db::Redb(_) => Ok(()),
            Db::Pg(c, _) if ok => Db::with_writer(c, pg::Conn::commit),
            Db::Pg(c, _) => Db::with_writer(c, pg::Conn::rollback),
        }
    }

    /// Whether the database still answers (PostgreSQL: a round trip), so
    /// an idle daemon notices a database that went away and says it is
    /// not ready before a client finds out.
    fn check(&self) -> Result<(), StoreError> {
        match self {
            Db::Sled(..) | Db::Redb(_) => Ok(()),
            Db::Pg(c, _) => Db::with_writer(c, |c| c.batch("SELECT 1")),
        }
    }

    /// Each job is durable when it ends (PostgreSQL).
    fn commits_per_job(&self) -> bool {
        matches!(self, Db::Pg(..))
    }

    /// Makes the batch durable: sled's flush, redb's durable commit
    /// (PostgreSQL committed each job).
    fn flush(&self) -> Result<(), StoreError> {
        match self {
            // The spool first: an item must never be durable without its body.
            Db::Sled(db, spool) => {
                spool.flush()?;
                db.flush()?;
                Ok(())
            }
            Db::Redb(core) => core.commit(true),
            Db::Pg(..) => Ok(()),
        }
    }

    fn close(&self) {
        match self {
            Db::Pg(_, pool) => pool.close(),
            Db::Redb(core) => core.abort(),
            Db::Sled(..) => {}
        }
    }
}

type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// Applies a job; says whether it succeeded (a failed job's writes are undone
/// where the engine can) and how to answer it.
type Apply = Box<dyn FnOnce(Result<&Trees, StoreError>) -> (bool, Reply) + Send>;

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
    /// Batches applied since start.
    pub batches: u64,
    /// Group flushes done since start.
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

    /// Near the free-space floor: within [`READY_HEADROOM`] of it, where an
    /// ordinary message no longer fits the write budget ([`charge`]).
    fn low_space(&self) -> bool {
        self.free_bytes.load(Ordering::Relaxed) < self.min_free_bytes.saturating_add(READY_HEADROOM)
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
    /// Which engine holds the store.
    pub backend: Backend,
}

/// A write queued by [`Engine::write_deferred`]; dropping it does not
/// cancel the write, it only forgoes its result.
#[must_use = "a deferred write's result (an error) is only seen through wait"]
pub struct Deferred<R>(std::sync::mpsc::Receiver<Result<R, StoreError>>);

impl<R> Deferred<R> {
    /// Waits until the owner applied the write (and flushed it, when it was
    /// queued durable) and returns its result.
    pub fn wait(self) -> Result<R, StoreError> {
        self.0.recv().map_err(|_| StoreError::Closed)?
    }
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            cache_bytes: 64 << 20,
            min_free_bytes: 16 << 20,
            backend: Backend::Sled,
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
        let source = Source {
            path: path.to_path_buf(),
            cache_bytes: settings.cache_bytes,
            backend: settings.backend.clone(),
        };
        let opened = source.open()?;
        let shared = Arc::new(Shared {
            trees: RwLock::new(Some(opened.read.clone())),
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
            source,
            db: Some((opened.db, opened.write)),
            last_space_check: None,
            last_reopen: None,
            last_flush: Instant::now(),
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
    pub fn init_ids(&self, persisted: u64) -> Result<(), StoreError> {
        if let Some(raised) = self.trees()?.raise_shared_ids(persisted) {
            return raised;
        }
        self.shared
            .next_id
            .fetch_max(persisted.saturating_add(1), Ordering::SeqCst);
        Ok(())
    }

    /// A fresh id, unique for this store's lifetime (gaps are fine); on a
    /// shared database, unique across the daemons sharing it.
    pub fn alloc_id(&self) -> Result<u64, StoreError> {
        if let Some(id) = self.trees()?.shared_id() {
            return id;
        }
        Ok(self.shared.next_id.fetch_add(1, Ordering::SeqCst))
    }

    pub fn epoch(&self) -> u64 {
        self.shared.epoch.load(Ordering::SeqCst)
    }

    /// What a failure does to the epoch, without the failure.
    #[cfg(test)]
    pub fn simulate_failure(&self) {
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether writes that add data should be refused now (low disk space
    /// or a failed store), and why.
    pub fn refuse_growth(&self) -> Option<String> {
        if let Some(f) = self.shared.failure() {
            return Some(f);
        }
        self.shared.low_space().then(|| {
            format!(
                "disk almost full: {} bytes free in the data directory (minimum {} and {} of headroom)",
                self.shared.free_bytes.load(Ordering::Relaxed),
                self.shared.min_free_bytes,
                READY_HEADROOM
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
        // Inside `deferring_flushes` the caller flushes once for the lot.
        let durable = durable && !DEFERRING.with(Cell::get);
        // Near the floor a write that adds data is refused before it queues,
        // by the same test `/readyz` uses: not ready and refusing agree.
        if let Cost::Grows(_) = cost
            && let Some(reason) = self.refuse_growth()
        {
            return Err(StoreError::Unavailable(reason));
        }
        let apply: Apply = Box::new(move |trees: Result<&Trees, StoreError>| {
            let result = trees.and_then(f);
            let ok = result.is_ok();
            let reply: Reply =
                Box::new(move |flushed: Result<(), StoreError>| done(flushed.and(result)));
            (ok, reply)
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

    /// [`Engine::write_costing`] without waiting: the job is queued and the
    /// caller goes on (preparing the next one while the owner applies this
    /// one); [`Deferred::wait`] gives its result. Jobs of one caller are
    /// applied in the order they were queued.
    pub fn write_deferred<R: Send + 'static>(
        &self,
        durable: bool,
        cost: Cost,
        f: impl FnOnce(&Trees) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<Deferred<R>, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.submit(durable, cost, f, move |r| {
            let _ = tx.send(r);
        })?;
        Ok(Deferred(rx))
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

thread_local! {
    /// Set while this thread runs inside [`deferring_flushes`].
    static DEFERRING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every write this thread makes answered once applied, not
/// once flushed: a caller doing many operations that each wait for their
/// own flush (the inbound worker: ticket, outbox, loop guard…) makes them
/// durable with one [`Engine::barrier`] instead, and must acknowledge
/// nothing before it. Reads, and the order of writes, are as without it.
/// Synchronous on purpose: the flag is per thread, so `f` cannot hop
/// threads at an `.await` and leave it behind.
pub fn deferring_flushes<T>(f: impl FnOnce() -> T) -> T {
    /// Restores the flag also when `f` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            DEFERRING.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(DEFERRING.with(|d| d.replace(true)));
    f()
}

/// Answers jobs with the outcome of the commit or flush they waited for.
fn answer(replies: Vec<Reply>, outcome: &Result<(), String>) {
    for reply in replies {
        reply(match outcome {
            Ok(()) => Ok(()),
            Err(r) => Err(StoreError::Unavailable(r.clone())),
        });
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

/// Where the store lives, to open it again after a failure.
struct Source {
    path: PathBuf,
    cache_bytes: u64,
    backend: Backend,
}

impl Source {
    fn open(&self) -> Result<Opened, StoreError> {
        match &self.backend {
            Backend::Sled => open_sled(&self.path, self.cache_bytes),
            Backend::Redb => open_redb(&self.path.with_extension("redb"), self.cache_bytes),
            Backend::Postgres { url } => open_pg(url),
        }
    }

    /// Free space matters to the embedded engines only.
    fn local(&self) -> bool {
        matches!(self.backend, Backend::Sled | Backend::Redb)
    }
}

struct Owner {
    rx: Receiver<Job>,
    shared: Arc<Shared>,
    source: Source,
    /// The database and the trees writes go through; None while failed.
    db: Option<(Db, Arc<Trees>)>,
    last_space_check: Option<Instant>,
    last_reopen: Option<Instant>,
    /// When the last flush ended.
    last_flush: Instant,
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
                    self.check_alive();
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
        if self.db.is_some() {
            // Twice: the second carries the removal of bodies the first
            // made durably sent.
            if let Err(e) = self.flush().and_then(|()| self.flush()) {
                tracing::error!(error = %e, "final store flush failed");
            }
        }
        if let Some((db, _)) = &self.db {
            db.close();
        }
    }

    fn unavailable(&self) -> StoreError {
        StoreError::Unavailable(
            self.shared
                .failure()
                .unwrap_or_else(|| "the store is reopening".into()),
        )
    }

    fn run_batch(&mut self, batch: Vec<Job>) {
        self.shared
            .busy_since
            .store(self.shared.elapsed_ms().max(1), Ordering::SeqCst);
        self.last_space_check = None;
        self.check_space();
        let idle_flush = batch.is_empty();
        let waiting = self.apply_jobs(batch);
        self.shared.batches.fetch_add(1, Ordering::Relaxed);
        // Flush only for someone who waits for it (a durable write or a
        // barrier) or when the last flush is FLUSH_EVERY old: an import's
        // many small writes share a few flushes.
        let overdue = self.dirty && self.last_flush.elapsed() >= FLUSH_EVERY;
        if waiting.is_empty() && !idle_flush && !overdue {
            self.shared.busy_since.store(0, Ordering::SeqCst);
            return;
        }
        self.dirty = false;
        let failure = self.flush().map_err(|e| describe(&e));
        // Not busy any more before anyone hears back: a caller that reads
        // health right after its answer must not see this batch as stuck.
        self.shared.busy_since.store(0, Ordering::SeqCst);
        answer(waiting, &failure);
    }

    /// Applies each job of a batch in arrival order; returns the answers
    /// that wait for the flush.
    fn apply_jobs(&mut self, batch: Vec<Job>) -> Vec<Reply> {
        let mut budget = Budget::new(&self.shared);
        let mut waiting: Vec<Reply> = Vec::new();
        for job in batch {
            self.dirty |= job.cost != Cost::Nothing;
            let admitted = budget.admit(job.cost);
            let start = match (&self.db, &admitted) {
                (Some((db, _)), Ok(())) => Some(db.job_start()),
                _ => None,
            };
            if let Some(Err(e)) = &start {
                // The connection is gone: reconnect before the next job.
                self.fail(describe(e));
            }
            let input = match (&self.db, admitted, start) {
                (_, Err(e), _) => Err(e),
                (_, _, Some(Err(e))) => Err(StoreError::Unavailable(describe(&e))),
                (Some((_, t)), Ok(()), _) => Ok(&**t),
                (None, Ok(()), _) => Err(self.unavailable()),
            };
            let started = input.is_ok();
            let (ok, reply) = (job.apply)(input);
            let per_job = self.db.as_ref().is_some_and(|(db, _)| db.commits_per_job());
            if per_job && started {
                let ended = self.db.as_ref().map_or(Ok(()), |(db, _)| db.job_end(ok));
                if let Err(e) = &ended
                    && !matches!(e, StoreError::Backend(_))
                {
                    self.fail(describe(e));
                }
                reply(ended.map_err(|e| StoreError::Unavailable(describe(&e))));
            } else if job.durable && !per_job {
                waiting.push(reply);
            } else {
                reply(Ok(()));
            }
        }
        waiting
    }

    /// Makes the batch durable, or fails the store when that is impossible.
    fn flush(&mut self) -> Result<(), StoreError> {
        let Some((db, _)) = &self.db else {
            return Err(self.unavailable());
        };
        self.shared.flushes.fetch_add(1, Ordering::Relaxed);
        let flushed = db.flush();
        self.last_flush = Instant::now();
        let released = flushed.and_then(|()| self.release_spent_bodies());
        if let Err(e) = &released {
            self.fail(describe(e));
        }
        released
    }

    /// After a flush: the bodies of items it made durably sent can go.
    fn release_spent_bodies(&mut self) -> Result<(), StoreError> {
        let Some((_, trees)) = &self.db else {
            return Ok(());
        };
        // The removals are writes the next flush carries.
        self.dirty |= trees.release_spent_bodies()? > 0;
        Ok(())
    }

    /// Drops the database after an I/O error; readers holding the old trees
    /// finish with it, then sled's file lock is released.
    fn fail(&mut self, reason: String) {
        tracing::error!(%reason, "store write failed; refusing writes until it recovers");
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        self.shared.set_failure(Some(reason));
        *self.shared.trees.write().unwrap_or_else(|p| p.into_inner()) = None;
        if let Some((db, _)) = self.db.take() {
            db.close();
        }
        self.last_reopen = Some(Instant::now());
    }

    fn maybe_reopen(&mut self) {
        if self.db.is_some() {
            return;
        }
        if self.last_reopen.is_some_and(|t| t.elapsed() < REOPEN_EVERY) {
            return;
        }
        self.last_reopen = Some(Instant::now());
        match self.source.open().and_then(|o| probe(&o).map(|()| o)) {
            Ok(o) => {
                *self.shared.trees.write().unwrap_or_else(|p| p.into_inner()) = Some(o.read);
                self.db = Some((o.db, o.write));
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

    fn check_alive(&mut self) {
        let failed = match &self.db {
            Some((db, _)) => db.check().err(),
            None => None,
        };
        if let Some(e) = failed {
            self.fail(describe(&e));
        }
    }

    fn check_space(&mut self) {
        if !self.source.local()
            || self
                .last_space_check
                .is_some_and(|t| t.elapsed() < SPACE_EVERY)
        {
            return;
        }
        self.last_space_check = Some(Instant::now());
        // The data directory: sled's `store/` is in it, redb's `store.redb`
        // beside it (a path that may not exist yet, and fails the call).
        let dir = self.source.path.parent().unwrap_or(&self.source.path);
        if let Ok(free) = fs2::available_space(dir) {
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
fn probe(o: &Opened) -> Result<(), StoreError> {
    o.db.job_start()?;
    o.write.counters.insert("probe", [0u8; 64])?;
    o.db.job_end(true)?;
    o.db.flush()
}

fn describe(e: &StoreError) -> String {
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem, StorageFull};
    if let StoreError::Unavailable(r) = e {
        return r.clone();
    }
    match e.io() {
        Some(io) if io.kind() == StorageFull => {
            "disk full: the data directory has no space left".into()
        }
        Some(io) if matches!(io.kind(), ReadOnlyFilesystem | PermissionDenied) => {
            format!("the data directory is not writable: {io}")
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> (tempfile::TempDir, Arc<Engine>) {
        engine_on(Backend::Sled)
    }

    fn engine_on(backend: Backend) -> (tempfile::TempDir, Arc<Engine>) {
        let dir = tempfile::tempdir().unwrap();
        let settings = EngineSettings {
            backend,
            ..EngineSettings::default()
        };
        let e = Engine::open(&dir.path().join("db"), &settings).unwrap();
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
        // The owner's periodic idle flush may be running at any instant, so
        // wait for "not busy" rather than sampling once.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while e.health().busy_ms != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the owner still reports busy after it answered"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Many writers and readers at once, with a watchdog: the shape that hung
    /// sled 0.34 when every thread flushed and ran transactions itself.
    #[test]
    fn concurrent_writers_and_readers_make_progress() {
        writers_and_readers_make_progress(Backend::Sled);
    }

    /// redb shows a write to other threads only when its batch commits:
    /// the same test proves an answered write is already visible there.
    #[test]
    fn concurrent_writers_and_readers_make_progress_on_redb() {
        writers_and_readers_make_progress(Backend::Redb);
    }

    fn writers_and_readers_make_progress(backend: Backend) {
        let (_d, e) = engine_on(backend);
        let done = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for w in 0..8u64 {
            let (e, done) = (e.clone(), done.clone());
            handles.push(std::thread::spawn(move || {
                for i in 0..200u64 {
                    let key = format!("w{w}/{i}");
                    let durable = i % 4 == 0;
                    e.write(durable, move |t| {
                        t.counters.insert(key.as_bytes(), i.to_be_bytes())?;
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
