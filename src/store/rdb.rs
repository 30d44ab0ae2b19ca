//! The redb engine under [`super::kv::Tree`]: one file, `DATA_DIR/store.redb`,
//! a copy-on-write B-tree with one table per tree.
//!
//! redb has one writer at a time and makes a write visible to its read
//! transactions only when the write transaction commits, and a commit costs
//! page writes. The store's owner thread is the only writer. It keeps one
//! write transaction open from its first write until the next flush
//! ([`Core::commit`], `Durability::Immediate`: one fsync for every write
//! since the last one), which is the group commit sled's flush gives.
//!
//! So that a write is visible as soon as the owner applied it (what callers
//! get on sled, and rely on: write, answer, read back), readers look at the
//! open transaction when there is one, under its mutex, and at a snapshot
//! of the last commit otherwise. Each read holds the mutex for one lookup
//! or one chunk of a scan ([`CHUNK`] rows), so a long scan never stops the
//! owner for long; like sled's iterators, a scan is not one snapshot.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    TableError, WriteTransaction,
};

use super::StoreError;
use super::kv::{Bounds, Bytes};

/// The open database and the owner's current write transaction.
pub(super) struct Core {
    db: Database,
    txn: Mutex<Option<WriteTransaction>>,
}

fn table(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

pub(super) fn err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Redb(Box::new(e.into()))
}

impl Core {
    /// Opens (or creates) the file. `cache_bytes` is redb's page cache.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Arc<Core>, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(redb::StorageError::Io(e)))?;
        }
        let db = redb::Builder::new()
            .set_cache_size(usize::try_from(cache_bytes).unwrap_or(usize::MAX))
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    StoreError::Locked(path.display().to_string())
                }
                other => err(other),
            })?;
        Ok(Arc::new(Core {
            db,
            txn: Mutex::new(None),
        }))
    }

    fn txn(&self) -> MutexGuard<'_, Option<WriteTransaction>> {
        self.txn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in the batch's write transaction, beginning it if needed.
    fn in_txn<R>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut slot = self.txn();
        if slot.is_none() {
            *slot = Some(self.db.begin_write().map_err(err)?);
        }
        match slot.as_ref() {
            Some(t) => f(t),
            None => Err(StoreError::Unavailable("no write transaction".into())),
        }
    }

    /// Commits what was written since the last commit: on disk on return
    /// when `durable` (with every earlier non-durable commit; a durable
    /// commit with nothing pending still runs, to persist those).
    pub fn commit(&self, durable: bool) -> Result<(), StoreError> {
        // The slot stays locked until the commit is done: a reader that
        // found it empty before then would read a snapshot without writes
        // the owner has already answered for.
        let mut slot = self.txn();
        let mut txn = match slot.take() {
            Some(t) => t,
            None if durable => self.db.begin_write().map_err(err)?,
            None => return Ok(()),
        };
        let level = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        txn.set_durability(level)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let committed = txn.commit().map_err(err);
        drop(slot);
        committed
    }

    /// Drops uncommitted writes (the store failed).
    pub fn abort(&self) {
        if let Some(t) = self.txn().take() {
            let _ = t.abort();
        }
    }
}

/// Rows a scan reads per visit to the table.
const CHUNK: usize = 256;

/// One table: writes (and the owner's reads) through the open write
/// transaction; reads elsewhere through it too while it is open (under its
/// mutex), through a snapshot of the last commit otherwise.
#[derive(Clone)]
pub(super) struct RedbTree {
    core: Arc<Core>,
    name: &'static str,
    writer: bool,
}

type Row = (Bytes, Bytes);
type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;

fn row(k: &[u8], v: &[u8]) -> Row {
    (Bytes::from(k), Bytes::from(v))
}

/// A table as a reader sees it.
enum View<'t> {
    Open(redb::Table<'t, &'static [u8], &'static [u8]>),
    Committed(redb::ReadOnlyTable<&'static [u8], &'static [u8]>),
    Absent,
}

impl View<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let g = match self {
            View::Open(t) => t.get(key).map_err(err)?.map(|v| Bytes::from(v.value())),
            View::Committed(t) => t.get(key).map_err(err)?.map(|v| Bytes::from(v.value())),
            View::Absent => None,
        };
        Ok(g)
    }

    fn len(&self) -> Result<u64, StoreError> {
        match self {
            View::Open(t) => t.len().map_err(err),
            View::Committed(t) => t.len().map_err(err),
            View::Absent => Ok(0),
        }
    }

    /// Up to `n` rows within `bounds`, from the low end or (`rev`) the high end.
    fn chunk(&self, bounds: &Bounds, rev: bool, n: usize) -> Result<Vec<Row>, StoreError> {
        match self {
            View::Open(t) => take(t.range::<&[u8]>(range(bounds)).map_err(err)?, rev, n),
            View::Committed(t) => take(t.range::<&[u8]>(range(bounds)).map_err(err)?, rev, n),
            View::Absent => Ok(Vec::new()),
        }
    }
}

impl RedbTree {
    pub fn new(core: Arc<Core>, name: &'static str, writer: bool) -> RedbTree {
        RedbTree { core, name, writer }
    }

    fn def(&self) -> Def {
        table(self.name)
    }

    /// Runs a read on the freshest state: the open write transaction (the
    /// owner begins one if it has none), or the last commit.
    fn read<R>(&self, f: impl FnOnce(&View<'_>) -> Result<R, StoreError>) -> Result<R, StoreError> {
        if self.writer {
            return self.core.in_txn(|txn| {
                let t = txn.open_table(self.def()).map_err(err)?;
                f(&View::Open(t))
            });
        }
        let slot = self.core.txn();
        if let Some(txn) = slot.as_ref() {
            let t = txn.open_table(self.def()).map_err(err)?;
            return f(&View::Open(t));
        }
        // Begun under the mutex: no write can be answered between our look
        // at the slot and the snapshot without being in the snapshot.
        let snapshot = self.core.db.begin_read().map_err(err);
        drop(slot);
        let view = match snapshot?.open_table(self.def()) {
            Ok(t) => View::Committed(t),
            Err(TableError::TableDoesNotExist(_)) => View::Absent,
            Err(e) => return Err(err(e)),
        };
        f(&view)
    }

    fn write<R>(
        &self,
        f: impl FnOnce(&mut redb::Table<'_, &'static [u8], &'static [u8]>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        if !self.writer {
            // Only the owner writes: its flush is what makes a write durable.
            return Err(StoreError::Backend(format!(
                "a write to {} outside the store's owner",
                self.name
            )));
        }
        self.core.in_txn(|txn| {
            let mut t = txn.open_table(self.def()).map_err(err)?;
            f(&mut t)
        })
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        self.read(|v| v.get(key))
    }

    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.write(|t| t.insert(key, value).map(|_| ()).map_err(err))
    }

    pub fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        self.write(|t| {
            if t.get(key).map_err(err)?.is_some() {
                return Ok(false);
            }
            t.insert(key, value).map_err(err)?;
            Ok(true)
        })
    }

    pub fn remove(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        self.write(|t| Ok(t.remove(key).map_err(err)?.map(|v| Bytes::from(v.value()))))
    }

    pub fn clear(&self) -> Result<(), StoreError> {
        self.write(|t| t.retain(|_, _| false).map_err(err))
    }

    pub fn len(&self) -> Result<usize, StoreError> {
        let n = self.read(|v| v.len())?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// The entries within `bounds`, in key order or reversed, read a chunk
    /// at a time.
    pub fn scan(&self, bounds: Bounds, rev: bool) -> RedbIter {
        RedbIter {
            tree: self.clone(),
            bounds,
            rev,
            buf: Vec::new().into_iter(),
            done: false,
        }
    }
}

fn range(b: &Bounds) -> (std::ops::Bound<&[u8]>, std::ops::Bound<&[u8]>) {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    (
        b.from.as_deref().map_or(Unbounded, Included),
        b.below.as_deref().map_or(Unbounded, Excluded),
    )
}

fn take(
    r: redb::Range<'_, &'static [u8], &'static [u8]>,
    rev: bool,
    n: usize,
) -> Result<Vec<Row>, StoreError> {
    let entries: Box<dyn Iterator<Item = _>> = if rev { Box::new(r.rev()) } else { Box::new(r) };
    let mut rows = Vec::new();
    for e in entries.take(n) {
        let (k, v) = e.map_err(err)?;
        rows.push(row(k.value(), v.value()));
    }
    Ok(rows)
}

/// A scan that reads [`CHUNK`] rows per visit and resumes after the last
/// key it returned, so it holds no transaction between visits.
pub(super) struct RedbIter {
    tree: RedbTree,
    bounds: Bounds,
    rev: bool,
    buf: std::vec::IntoIter<Row>,
    done: bool,
}

impl RedbIter {
    /// Turns the scan around; only before it has started.
    pub fn reverse(mut self) -> RedbIter {
        self.rev = !self.rev;
        self
    }

    fn refill(&mut self) -> Result<(), StoreError> {
        let rows = self.tree.read(|v| v.chunk(&self.bounds, self.rev, CHUNK))?;
        self.done = rows.len() < CHUNK;
        if let Some((last, _)) = rows.last() {
            if self.rev {
                self.bounds.below = Some(last.to_vec());
            } else {
                // The smallest key above `last`.
                let mut next = last.to_vec();
                next.push(0);
                self.bounds.from = Some(next);
            }
        }
        self.buf = rows.into_iter();
        Ok(())
    }
}

impl Iterator for RedbIter {
    type Item = Result<Row, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(r) = self.buf.next() {
            return Some(Ok(r));
        }
        if self.done {
            return None;
        }
        if let Err(e) = self.refill() {
            self.done = true;
            return Some(Err(e));
        }
        self.buf.next().map(Ok)
    }
}
