//! Durable state in sled (or redb, or PostgreSQL: see `kv`), with typed
//! access. Knows nothing about mail or chat:
//! outbox items are opaque bytes with an envelope, kinds are strings.
//!
//! Opened once from the data directory (`Store::open(data_dir)`), cheap to
//! clone and shareable across tasks. One thread owns the database and
//! applies every write with a group flush (see `engine`); reads are direct.
//!
//! Trees and key layout:
//! - `orders`: `SO` → order JSON (the DESIGN.md shape)
//! - `order_meta`: `SO` → [`OrderMeta`] (state edesk owns: event counters, grants)
//! - `index`: `po/PO/SO`, `tok/TOKEN` → [`TokenTarget`], `mid/MESSAGE-ID` → `SO`, `out/MESSAGE-ID` → outbox id
//! - `outbox`: id (u64 BE) → [`OutboxItem`]; `bodies`: id → raw message (until sent; on sled in
//!   a database of its own, `DATA_DIR/store-spool/`); `queue`: due-ms BE ++ id BE → ()
//! - `keys`: idempotency key → outbox id (0 when the mail was skipped)
//! - `history`: `SO` ++ 0 ++ id BE → [`HistoryEntry`]
//! - `prefs`: `address-key/kind` (`*` = all) → "no" | "yes"
//! - `suppress`: address key → [`Suppression`]
//! - `counters`: `address-key/hour` → u64 BE
//! - `meta`: `schema_version` → u32 BE
//!
//! - `mail_raw`, `mail_meta`, `mail_dedup`, `mail_pending`: the inbound spool (`mail`)
//! - `tickets`, `ticket_threads`, `ticket_meta`: desk tickets as opaque records (`records`);
//!   `ticket_meta` holds `seq` and the indexes `open/` ++ due day BE ++ n BE and
//!   `cust/` ++ customer (ASCII lowercase) ++ `/` ++ n BE (see [`TicketIndex`])
//! - `auto_mail`: per-address times of automatic mails (the loop guard)
//! - `downloads`: `SO` ++ 0 ++ n BE → [`DownloadRecord`] (download requests, `downloads`)
//! - `job_state`, `job_runs`: the scheduler's claimed slots and run history (`jobs`)
//! - `chat`: chat accounts, link codes, rate windows, FAQ feedback, chat tickets (`chat`, see [`ChatKey`])
//!
//! Every method that acknowledges a write to a caller (`set_*`, `suppress`,
//! outbox transitions, mail intake) returns after the group flush, except
//! `commit` and `mark_sent_many` (callers batch behind one `write_mark` and
//! `flush`; the sender journals deliveries first, see `notify::sender`), and
//! except inside [`Store::deferring_flushes`] (the inbound worker's batches,
//! made durable by one `flush` before anything of them counts as done).

#![warn(missing_docs)]

mod chat;
mod copy;
mod downloads;
mod engine;
mod history;
mod jobs;
mod kv;
mod mail;
mod outbox;
mod pg;
mod prefs;
mod rdb;
mod records;
mod types;

use std::path::Path;
use std::sync::Arc;

pub use chat::{ChatKey, ChatNs};
pub use copy::{TreeCopy, TreeStats};
pub use downloads::DownloadRecord;
pub use engine::{Backend, Deferred, EngineSettings, Health};
pub use jobs::{JobState, OrderHead, RunOutcome, RunRecord, Trigger};
pub use mail::{Accepted, Envelope, MailMeta, MailOutcome, MailState, dedup_key};
pub use pg::PG_SCHEMA_VERSION;
pub use records::{AdmitCount, TicketIndex};
pub use types::*;

use crate::domain::{EmailAddress, Order, OrderId};
use engine::{Cost, Engine, Trees};

/// The sled key layout this edesk writes (`meta/schema_version`); a store
/// with a newer version refuses to open ([`StoreError::Schema`]).
pub const SCHEMA_VERSION: u32 = 1;

/// What can go wrong in the store. [`StoreError::is_transient`] tells the
/// caller whether to answer "try again later".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The sled database failed (I/O errors count as transient).
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    /// The redb database failed (I/O errors count as transient).
    #[error("store: {0}")]
    Redb(Box<redb::Error>),
    /// A stored value does not decode.
    #[error("store: corrupt record in {tree}: {message}")]
    Corrupt {
        /// The tree (or table) the record is in.
        tree: &'static str,
        /// The decoder's error.
        message: String,
    },
    /// Another process holds the sled database; holds the directory.
    #[error(
        "the data directory {0} is in use by a running edesk daemon (sled allows one process): stop it, or use the HTTP API"
    )]
    Locked(String),
    /// The store was written by a newer edesk.
    #[error("store schema version {found} is newer than this edesk ({supported})")]
    Schema {
        /// The version in the store.
        found: u32,
        /// [`SCHEMA_VERSION`] of this build.
        supported: u32,
    },
    /// A value does not serialize to JSON.
    #[error("store: cannot encode: {0}")]
    Encode(#[from] serde_json::Error),
    /// The outbox id is unknown.
    #[error("no outbox item {0}")]
    NoSuchItem(u64),
    /// The store cannot write now (disk full, read-only, reopening after an
    /// I/O error); it recovers by itself. Callers answer "try again later".
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The owner thread is gone (shutdown); transient for callers.
    #[error("store: shut down")]
    Closed,
    /// The database refused an operation (a constraint, a bad statement).
    #[error("store: {0}")]
    Backend(String),
}

impl StoreError {
    /// A condition that passes by itself (temporary failure for clients).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Closed) || self.io().is_some()
    }

    /// The I/O error under an embedded engine's failure (sled or redb).
    pub(crate) fn io(&self) -> Option<&std::io::Error> {
        match self {
            StoreError::Sled(sled::Error::Io(io)) => Some(io),
            StoreError::Redb(e) => match &**e {
                redb::Error::Io(io) => Some(io),
                _ => None,
            },
            _ => None,
        }
    }

    /// Out of space (disk full or below the configured free-space floor).
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::Unavailable(r) => r.starts_with("disk"),
            other => other
                .io()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull),
        }
    }
}

/// Marks the start of a group of unflushed writes; [`Store::flush`] fails
/// when the store failed since (some of the group may be lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteMark(u64);

/// Typed access to the daemon's state. Cheap to clone; every clone talks to
/// the same owner thread (see `engine`).
#[derive(Clone)]
pub struct Store {
    engine: Arc<Engine>,
    /// Serializes read-modify-write sequences (order import) so two imports of
    /// the same order cannot both see the old state.
    write_lock: Arc<std::sync::Mutex<()>>,
    /// Several daemons may share this store (PostgreSQL).
    shared: bool,
    /// The embedded engine's name otherwise (`sled`, `redb`).
    embedded: &'static str,
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        message: e.to_string(),
    })
}

/// Bytes the embedded store occupies on disk under `data_dir` (its files,
/// recursively; 0 when there are none, as on PostgreSQL).
pub fn disk_bytes(data_dir: &Path) -> u64 {
    fn under(dir: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            // A single file (redb's store.redb), or nothing.
            return std::fs::metadata(dir).map_or(0, |m| m.len());
        };
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => under(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    }
    let store = data_dir.join("store");
    under(&store) + under(&engine::spool_path(&store)) + under(&data_dir.join("store.redb"))
}

/// The current time in unix milliseconds, the unit of outbox due times
/// (0 before 1970).
pub fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

fn strip_brackets(id: &str) -> &str {
    id.trim().trim_start_matches('<').trim_end_matches('>')
}

impl Store {
    /// Opens (or creates) the store under `data_dir/store` with default settings.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(data_dir, &EngineSettings::default())
    }

    /// Opens (or creates) the store under `data_dir/store` with the given engine
    /// (sled or PostgreSQL) and tuning; fails on a newer schema or a locked directory.
    pub fn open_with(data_dir: &Path, settings: &EngineSettings) -> Result<Store, StoreError> {
        let engine = Engine::open(&data_dir.join("store"), settings)?;
        let store = Store {
            engine: Arc::new(engine),
            write_lock: Arc::new(std::sync::Mutex::new(())),
            shared: matches!(settings.backend, Backend::Postgres { .. }),
            embedded: match settings.backend {
                Backend::Redb => "redb",
                _ => "sled",
            },
        };
        // Bookkeeping of a few bytes, admitted whatever the free space (the
        // engine's probe wrote and flushed as much): a daemon restarted on
        // an almost full disk must come up degraded (not ready, refusing
        // what adds data), not exit.
        let persisted = store
            .engine
            .write_costing(true, Cost::Nothing, check_schema)?;
        store.engine.init_ids(persisted)?;
        if !store.shared {
            // Several daemons on PostgreSQL write an item and its body in
            // one transaction: there is nothing to sweep, and a scan at
            // each start would read every pending body.
            // Housekeeping that may wait for the next start: charged as a
            // small update, so a disk under the floor skips it (sled never
            // returns from a flush that meets a full disk).
            match store
                .engine
                .write_costing(true, Cost::Small, outbox::sweep_bodies)
            {
                Ok(0) => {}
                Ok(swept) => tracing::info!(swept, "removed outgoing bodies no item needs"),
                Err(e) => {
                    tracing::warn!(error = %e, "outgoing bodies not swept; next start tries again")
                }
            }
        }
        Ok(store)
    }

    fn trees(&self) -> Result<Arc<Trees>, StoreError> {
        self.engine.trees()
    }

    /// The engine's name and its schema version (`edesk store migrate`).
    pub fn schema(&self) -> Result<(&'static str, u32), StoreError> {
        if self.shared {
            return Ok(("postgres", PG_SCHEMA_VERSION.unsigned_abs()));
        }
        let t = self.trees()?;
        let v = t
            .meta
            .get("schema_version")?
            .and_then(|b| <[u8; 4]>::try_from(b.as_ref()).ok())
            .map_or(0, u32::from_be_bytes);
        Ok((self.embedded, v))
    }

    /// What `/healthz` and `/readyz` report.
    pub fn health(&self) -> Health {
        self.engine.health()
    }

    /// A round trip through the store's owner thread (liveness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.engine.ping().await
    }

    /// Why writes that add data are refused now, if they are.
    pub fn refuse_growth(&self) -> Option<String> {
        self.engine.refuse_growth()
    }

    /// Starts a group of writes that one [`Store::flush`] makes durable.
    pub fn write_mark(&self) -> WriteMark {
        WriteMark(self.engine.epoch())
    }

    /// Makes every write since `mark` durable (one group flush), or fails
    /// when the store failed meanwhile and some may be lost.
    pub fn flush(&self, mark: WriteMark) -> Result<(), StoreError> {
        self.engine.barrier(mark.0)
    }

    /// Whether the store failed since `mark`: writes made since may be
    /// lost, and [`Store::flush`] with it will fail.
    pub fn failed_since(&self, mark: WriteMark) -> bool {
        self.engine.epoch() != mark.0
    }

    /// Runs `f` with every write this thread makes (through any handle of
    /// any store) answered once applied instead of once flushed. The caller
    /// takes a [`Store::write_mark`] first and [`Store::flush`]es once after,
    /// and acknowledges nothing `f` did before that flush. Readers see the
    /// writes as soon as they are applied, as always; the outbox sender
    /// sends only what a flush covers (its claim is a durable write).
    pub fn deferring_flushes<T>(&self, f: impl FnOnce() -> T) -> T {
        engine::deferring_flushes(f)
    }

    /// [`Store::flush`] for async callers: waits without blocking the runtime.
    pub async fn flush_async(&self, mark: WriteMark) -> Result<(), StoreError> {
        self.engine.barrier_async(mark.0).await
    }

    /// Runs `f` while holding the store's write lock (one import at a time).
    pub fn exclusive<T>(&self, f: impl FnOnce() -> T) -> T {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        f()
    }

    /// The order as last imported, `None` when unknown.
    pub fn order(&self, so: &OrderId) -> Result<Option<Order>, StoreError> {
        self.trees()?
            .orders
            .get(so.as_str())?
            .map(|b| decode("orders", &b))
            .transpose()
    }

    /// The state edesk owns about the order; the default when none was written.
    pub fn order_meta(&self, so: &OrderId) -> Result<OrderMeta, StoreError> {
        Ok(self
            .trees()?
            .order_meta
            .get(so.as_str())?
            .map(|b| decode("order_meta", &b))
            .transpose()?
            .unwrap_or_default())
    }

    /// Every order id, in key order.
    pub fn order_ids(&self) -> impl Iterator<Item = Result<OrderId, StoreError>> + '_ {
        let iter = match self.trees() {
            Ok(t) => Ok(t.orders.iter().keys()),
            Err(e) => Err(e),
        };
        let (iter, err) = match iter {
            Ok(i) => (Some(i), None),
            Err(e) => (None, Some(e)),
        };
        err.into_iter()
            .map(Err)
            .chain(iter.into_iter().flatten().map(|k| {
                let k = k?;
                String::from_utf8_lossy(&k)
                    .parse()
                    .map_err(|_| StoreError::Corrupt {
                        tree: "orders",
                        message: "bad key".into(),
                    })
            }))
    }

    /// How many orders the store holds.
    pub fn order_count(&self) -> Result<usize, StoreError> {
        self.trees()?.orders.len()
    }

    /// Orders carrying this customer PO number (case-insensitive).
    pub fn orders_by_po(&self, po: &str) -> Result<Vec<OrderId>, StoreError> {
        let prefix = format!("po/{}/", po.trim().to_lowercase());
        self.trees()?
            .index
            .scan_prefix(prefix.as_bytes())
            .keys()
            .map(|k| {
                let k = k?;
                String::from_utf8_lossy(&k[prefix.len()..])
                    .parse()
                    .map_err(|_| StoreError::Corrupt {
                        tree: "index",
                        message: "bad po key".into(),
                    })
            })
            .collect()
    }

    /// The order and recipient a reply token was issued for (minted or migrated).
    pub fn order_by_token(&self, token: &str) -> Result<Option<TokenTarget>, StoreError> {
        self.trees()?
            .index
            .get(format!("tok/{}", token.to_ascii_lowercase()))?
            .map(|b| decode("index", &b))
            .transpose()
    }

    /// The order a Message-ID we sent (or a migrated `notification_ids` entry) belongs to.
    /// Accepts the id with or without angle brackets.
    pub fn order_by_message_id(&self, message_id: &str) -> Result<Option<OrderId>, StoreError> {
        let id = strip_brackets(message_id);
        match self.trees()?.index.get(format!("mid/{id}"))? {
            Some(b) => Ok(String::from_utf8_lossy(&b).parse().ok()),
            None => Ok(None),
        }
    }

    /// Addresses allowed to write about an order: its recipients and every
    /// address granted Order-Based Access.
    pub fn authorized_senders(&self, so: &OrderId) -> Result<Vec<EmailAddress>, StoreError> {
        let mut out: Vec<EmailAddress> = self
            .order(so)?
            .map(|o| o.recipients.into_iter().map(|r| r.email).collect())
            .unwrap_or_default();
        for g in self.order_meta(so)?.grants {
            if !out.iter().any(|e| e.key() == g.email.key()) {
                out.push(g.email);
            }
        }
        Ok(out)
    }

    /// Whether `email` is among [`Store::authorized_senders`] (case-insensitive).
    pub fn is_authorized_sender(
        &self,
        so: &OrderId,
        email: &EmailAddress,
    ) -> Result<bool, StoreError> {
        Ok(self
            .authorized_senders(so)?
            .iter()
            .any(|e| e.key() == email.key()))
    }

    /// A fresh unique id (outbox items, history entries).
    pub fn next_id(&self) -> Result<u64, StoreError> {
        self.engine.alloc_id()
    }

    /// Writes a unit of work: order, its meta, index entries and mail
    /// records, in that order. Not flushed: the caller takes a
    /// [`Store::write_mark`] first and [`Store::flush`]es once per batch
    /// before acknowledging. A mail record whose idempotency key was seen
    /// before is dropped (returned in `duplicates`).
    pub fn commit(&self, c: Commit) -> Result<CommitOutcome, StoreError> {
        self.write_commit(c, false)
    }

    /// [`Store::commit`] and its flush in one step: durable on return, and
    /// grouped with whatever else is waiting for the same flush.
    pub fn commit_durable(&self, c: Commit) -> Result<CommitOutcome, StoreError> {
        self.write_commit(c, true)
    }

    /// [`Store::commit`] queued without waiting for the owner to apply it:
    /// a caller importing many orders prepares the next while this one is
    /// written. Reads see it only once [`Deferred::wait`] returned.
    pub fn commit_deferred(&self, c: Commit) -> Result<Deferred<CommitOutcome>, StoreError> {
        let encoded = EncodedCommit::new(&c)?;
        let cost = Cost::Grows(encoded.size());
        self.engine
            .write_deferred(false, cost, move |t| encoded.apply(t))
    }

    /// Test hook: counts as a store failure for every [`WriteMark`] taken
    /// before (as after a failed and reopened database), losing nothing.
    #[cfg(test)]
    pub(crate) fn simulate_failure(&self) {
        self.engine.simulate_failure();
    }

    /// Test hook: blocks the owner thread until the sender is used or
    /// dropped, so that the writes queued meanwhile stay unapplied.
    #[cfg(test)]
    pub(crate) fn stall_owner(
        &self,
    ) -> Result<(std::sync::mpsc::Sender<()>, Deferred<()>), StoreError> {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let stalled = self.engine.write_deferred(false, Cost::Small, move |_| {
            let _ = rx.recv();
            Ok(())
        })?;
        Ok((tx, stalled))
    }

    fn write_commit(&self, c: Commit, durable: bool) -> Result<CommitOutcome, StoreError> {
        let encoded = EncodedCommit::new(&c)?;
        let cost = Cost::Grows(encoded.size());
        self.engine
            .write_costing(durable, cost, move |t| encoded.apply(t))
    }

    /// Whether this idempotency key was committed before.
    pub fn seen_key(&self, key: &str) -> Result<bool, StoreError> {
        let t = self.trees()?;
        Ok(key_target(&t, key)?.is_some())
    }

    /// The Message-ID of the mail queued under an idempotency key, if one was
    /// queued (not skipped).
    pub fn message_id_for_key(&self, key: &str) -> Result<Option<String>, StoreError> {
        let t = self.trees()?;
        match key_target(&t, key)? {
            None | Some(0) => Ok(None),
            Some(id) => Ok(self.outbox_item(id)?.map(|i| i.message_id)),
        }
    }
}

/// The outbox id an idempotency key points at (0 = skipped). A key whose
/// outbox item is missing belongs to a commit cut short by a crash before it
/// was acknowledged: it counts as never seen.
fn key_target(t: &Trees, key: &str) -> Result<Option<u64>, StoreError> {
    let Some(v) = t.keys.get(key)? else {
        return Ok(None);
    };
    let Ok(bytes) = <[u8; 8]>::try_from(v.as_ref()) else {
        return Ok(None);
    };
    match u64::from_be_bytes(bytes) {
        0 => Ok(Some(0)),
        id if t.outbox.contains_key(id.to_be_bytes())? => Ok(Some(id)),
        _ => Ok(None),
    }
}

/// Checks the schema version and returns the persisted id counter.
fn check_schema(t: &Trees) -> Result<u64, StoreError> {
    match t.meta.get("schema_version")? {
        Some(v) => {
            let found =
                u32::from_be_bytes(v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    tree: "meta",
                    message: "schema_version".into(),
                })?);
            if found > SCHEMA_VERSION {
                return Err(StoreError::Schema {
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
        }
        None => {
            t.meta
                .insert("schema_version", SCHEMA_VERSION.to_be_bytes())?;
        }
    }
    // Stores written before the owner thread numbered with sled's id
    // generator: start our counters above anything it handed out.
    t.raise_counter("id", t.legacy_id_floor)?;
    outbox::init_counts(t)?;
    t.counter("id")
}

/// A [`Commit`] serialized on the caller's thread, so the owner only writes.
struct EncodedCommit {
    order: Option<(String, Vec<u8>)>,
    meta: Option<(String, Vec<u8>)>,
    index: Vec<(Vec<u8>, Vec<u8>)>,
    mails: Vec<EncodedMail>,
}

struct EncodedMail {
    /// The largest id the record uses (item and history entry).
    max_id: u64,
    key: String,
    item: Option<(u64, u64, Vec<u8>, String)>,
    history_key: Vec<u8>,
    entry: Vec<u8>,
}

impl EncodedCommit {
    /// Bytes this commit writes (for the free-space budget).
    fn size(&self) -> u64 {
        let pair = |(k, v): &(String, Vec<u8>)| k.len() + v.len();
        let mut n = self.order.as_ref().map_or(0, pair) + self.meta.as_ref().map_or(0, pair);
        n += self
            .index
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
        for m in &self.mails {
            n += m.key.len() + m.history_key.len() + m.entry.len();
            n += m.item.as_ref().map_or(0, |i| i.2.len() + i.3.len() + 32);
        }
        n as u64
    }

    fn new(c: &Commit) -> Result<EncodedCommit, StoreError> {
        let mut index: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        if let Some(o) = &c.order
            && let Some(po) = &o.po
        {
            index.push((
                format!("po/{}/{}", po.as_str().to_lowercase(), o.so).into_bytes(),
                Vec::new(),
            ));
        }
        for (tok, target) in &c.tokens {
            index.push((
                format!("tok/{}", tok.to_ascii_lowercase()).into_bytes(),
                serde_json::to_vec(target)?,
            ));
        }
        for (mid, so) in &c.message_ids {
            index.push((
                format!("mid/{}", strip_brackets(mid)).into_bytes(),
                so.as_str().as_bytes().to_vec(),
            ));
        }
        let mut mails = Vec::with_capacity(c.mails.len());
        for m in &c.mails {
            if let Some(item) = &m.item {
                if let Some(so) = &item.so {
                    index.push((
                        format!("mid/{}", strip_brackets(&item.message_id)).into_bytes(),
                        so.as_str().as_bytes().to_vec(),
                    ));
                }
                // Bounces name the Message-ID they report on.
                index.push((
                    outbox::message_key(&item.message_id),
                    item.id.to_be_bytes().to_vec(),
                ));
            }
            mails.push(EncodedMail {
                max_id: m.entry.id.max(m.item.as_ref().map_or(0, |i| i.id)),
                key: m.key.clone(),
                item: m
                    .item
                    .as_ref()
                    .map(|i| {
                        Ok::<_, serde_json::Error>((
                            i.id,
                            i.next_attempt_ms,
                            serde_json::to_vec(i)?,
                            i.raw.clone(),
                        ))
                    })
                    .transpose()?,
                history_key: history_key(m.entry.so.as_ref(), m.entry.id),
                entry: serde_json::to_vec(&m.entry)?,
            });
        }
        Ok(EncodedCommit {
            order: c
                .order
                .as_ref()
                .map(|o| Ok::<_, serde_json::Error>((o.so.to_string(), serde_json::to_vec(o)?)))
                .transpose()?,
            meta: c
                .meta
                .as_ref()
                .map(|(so, m)| Ok::<_, serde_json::Error>((so.to_string(), serde_json::to_vec(m)?)))
                .transpose()?,
            index,
            mails,
        })
    }

    /// Runs on the owner thread. Order: guard (key) before payload, so a
    /// crash between the two leaves a key `key_target` ignores.
    fn apply(self, t: &Trees) -> Result<CommitOutcome, StoreError> {
        let mut outcome = CommitOutcome::default();
        if let Some((so, b)) = self.order {
            t.orders.insert(so.as_bytes(), b)?;
        }
        if let Some((so, b)) = self.meta {
            t.order_meta.insert(so.as_bytes(), b)?;
        }
        for (k, v) in self.index {
            t.index.insert(k, v)?;
        }
        if let Some(max) = self.mails.iter().map(|m| m.max_id).max() {
            t.note_ids_used(max)?;
        }
        for m in self.mails {
            if key_target(t, &m.key)?.is_some() {
                outcome.duplicates.push(m.key);
                continue;
            }
            let id = m.item.as_ref().map_or(0, |i| i.0);
            t.keys.insert(m.key.as_bytes(), id.to_be_bytes())?;
            if let Some((id, due, item, raw)) = m.item {
                // The queue entry last: the sender reads without the owner
                // and must never meet a queue entry before its item.
                t.bodies.insert(id.to_be_bytes(), raw.as_bytes())?;
                if !t.outbox.contains_key(id.to_be_bytes())? {
                    outbox::bump(t, OutboxStatus::Pending, 1)?;
                }
                t.outbox.insert(id.to_be_bytes(), item)?;
                t.queue.insert(queue_key(due, id), b"")?;
                outcome.queued.push(id);
            } else {
                outcome.skipped += 1;
            }
            t.history.insert(m.history_key, m.entry)?;
        }
        Ok(outcome)
    }
}

pub(crate) fn queue_key(due_ms: u64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&due_ms.to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

pub(crate) fn history_key(so: Option<&OrderId>, id: u64) -> Vec<u8> {
    let mut k = so
        .map(|s| s.as_str().as_bytes().to_vec())
        .unwrap_or_else(|| b"-".to_vec());
    k.push(0);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferences_counters_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let a: EmailAddress = "Ana@Example.com".parse().unwrap();
        let same: EmailAddress = "ana@EXAMPLE.COM".parse().unwrap();
        assert!(s.wants(&a, "order_available").unwrap());
        s.set_preference(&a, None, false).unwrap();
        s.set_preference(&a, Some("order_available"), true).unwrap();
        assert!(
            s.wants(&same, "order_available").unwrap(),
            "per-kind setting wins"
        );
        assert!(
            !s.wants(&same, "order_on_hold").unwrap(),
            "global No applies to the rest"
        );
        assert_eq!(s.count_auto_mail(&a).unwrap(), 1);
        assert_eq!(s.count_auto_mail(&same).unwrap(), 2);
        drop(s);
        // Reopen: schema version present, data kept.
        let s = Store::open(dir.path()).unwrap();
        assert!(!s.wants(&a, "pak_reminder").unwrap());
        s.engine
            .write(true, |t| {
                t.meta
                    .insert("schema_version", (SCHEMA_VERSION + 1).to_be_bytes())?;
                Ok(())
            })
            .unwrap();
        drop(s);
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::Schema { .. })
        ));
    }

    #[test]
    fn a_store_dropped_and_reopened_at_once_opens() {
        // sled's I/O threads release its file lock a moment after the last
        // handle goes (CI once saw `Locked` here): the reopen waits for it.
        let dir = tempfile::tempdir().unwrap();
        for round in 0..20u64 {
            let s = Store::open(dir.path()).unwrap();
            s.count_auto_mail(&format!("r{round}@example.com").parse().unwrap())
                .unwrap();
            drop(s);
        }
    }

    #[test]
    fn ids_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = Vec::new();
        for round in 0..3 {
            let s = Store::open(dir.path()).unwrap();
            // Ids handed out but never written are gaps, not reuse.
            let _ = s.next_id().unwrap();
            for i in 0..3 {
                let raw = format!("Message-ID: <{round}.{i}@x>\r\n\r\nbody").into_bytes();
                let id = s
                    .mail_accept_blocking(raw, Envelope::new("test"))
                    .unwrap()
                    .id();
                assert!(seen.iter().all(|&old| old < id), "{id} after {seen:?}");
                seen.push(id);
            }
        }
    }
}
