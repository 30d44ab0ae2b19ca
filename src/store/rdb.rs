//! The redb engine under [`super::kv::Tree`]: one file, `DATA_DIR/store.redb`,
//! a copy-on-write B-tree with one table per tree.
//!
//! redb has one writer at a time and makes a write visible only when its
//! transaction commits. The store's owner thread is the only writer: it
//! begins one write transaction per batch (lazily, at the batch's first
//! operation through the write trees), applies every job of the batch in
//! it, and commits at the end of the batch ([`Core::commit`]): durably
//! (`Durability::Immediate`, one fsync) when a caller waits for durability,
//! otherwise non-durably, which redb makes durable at the next durable
//! commit. Readers on other threads each open a read transaction, a
//! consistent snapshot that never waits for the writer.
//!
//! Inside a batch the owner's closures read through the same transaction,
//! so they see the batch's earlier writes (the read-modify-write the store's
//! records rely on). A scan inside the transaction collects its rows first:
//! redb lets only one handle on a table be open in a transaction, and a
//! closure may write to the table it scans.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, TableError, WriteTransaction,
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

    /// Commits the batch's writes: visible to readers on return, and on
    /// disk when `durable` (together with every earlier non-durable commit).
    /// A durable commit with nothing pending still runs, to persist those.
    pub fn commit(&self, durable: bool) -> Result<(), StoreError> {
        let pending = self.txn().take();
        let mut txn = match pending {
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
        txn.commit().map_err(err)
    }

    /// Drops uncommitted writes (the store failed mid-batch).
    pub fn abort(&self) {
        if let Some(t) = self.txn().take() {
            let _ = t.abort();
        }
    }

    fn read(&self) -> Result<ReadTransaction, StoreError> {
        self.db.begin_read().map_err(err)
    }
}

/// One table: writes (and the owner's reads) through the batch's write
/// transaction, other readers through a read transaction of their own.
#[derive(Clone)]
pub(super) struct RedbTree {
    core: Arc<Core>,
    name: &'static str,
    writer: bool,
}

type Row = (Bytes, Bytes);

fn row(k: &[u8], v: &[u8]) -> Row {
    (Bytes::from(k), Bytes::from(v))
}

impl RedbTree {
    pub fn new(core: Arc<Core>, name: &'static str, writer: bool) -> RedbTree {
        RedbTree { core, name, writer }
    }

    /// A read outside the writer: a snapshot of the last commit. A table
    /// nothing has written to yet reads as empty.
    fn snapshot<R>(
        &self,
        empty: R,
        f: impl FnOnce(redb::ReadOnlyTable<&'static [u8], &'static [u8]>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        match self.core.read()?.open_table(table(self.name)) {
            Ok(t) => f(t),
            Err(TableError::TableDoesNotExist(_)) => Ok(empty),
            Err(e) => Err(err(e)),
        }
    }

    fn write<R>(
        &self,
        f: impl FnOnce(&mut redb::Table<'_, &'static [u8], &'static [u8]>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        if !self.writer {
            // Only the owner's batch commits; a write from elsewhere would
            // ride along with whichever batch comes next.
            return Err(StoreError::Backend(format!(
                "a write to {} outside the store's owner",
                self.name
            )));
        }
        self.core.in_txn(|txn| {
            let mut t = txn.open_table(table(self.name)).map_err(err)?;
            f(&mut t)
        })
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let found =
            |g: Option<redb::AccessGuard<'_, &'static [u8]>>| g.map(|v| Bytes::from(v.value()));
        if self.writer {
            return self.write(|t| Ok(found(t.get(key).map_err(err)?)));
        }
        self.snapshot(None, |t| Ok(found(t.get(key).map_err(err)?)))
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
        let n = if self.writer {
            self.write(|t| t.len().map_err(err))?
        } else {
            self.snapshot(0, |t| t.len().map_err(err))?
        };
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// The entries within `bounds`, in key order or reversed.
    pub fn scan(&self, bounds: Bounds, rev: bool) -> RedbIter {
        let scanned = if self.writer {
            self.write(|t| collect(t.range::<&[u8]>(range(&bounds)).map_err(err)?, rev))
                .map(RedbIter::Rows)
        } else {
            self.snapshot(RedbIter::Rows(Vec::new().into_iter()), |t| {
                let r = t.range::<&[u8]>(range(&bounds)).map_err(err)?;
                Ok(RedbIter::Live {
                    range: Box::new(r),
                    rev,
                })
            })
        };
        scanned.unwrap_or_else(|e| RedbIter::Failed(Some(e)))
    }
}

fn range(b: &Bounds) -> (std::ops::Bound<&[u8]>, std::ops::Bound<&[u8]>) {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    (
        b.from.as_deref().map_or(Unbounded, Included),
        b.below.as_deref().map_or(Unbounded, Excluded),
    )
}

fn collect(
    r: redb::Range<'_, &'static [u8], &'static [u8]>,
    rev: bool,
) -> Result<std::vec::IntoIter<Row>, StoreError> {
    let entries: Box<dyn Iterator<Item = _>> = if rev { Box::new(r.rev()) } else { Box::new(r) };
    let mut rows = Vec::new();
    for e in entries {
        let (k, v) = e.map_err(err)?;
        rows.push(row(k.value(), v.value()));
    }
    Ok(rows.into_iter())
}

/// A scan: rows collected inside the writer's transaction, or a live
/// range over a reader's snapshot.
pub(super) enum RedbIter {
    Rows(std::vec::IntoIter<Row>),
    Live {
        range: Box<redb::Range<'static, &'static [u8], &'static [u8]>>,
        rev: bool,
    },
    Failed(Option<StoreError>),
}

impl RedbIter {
    /// Turns the scan around; only before it has started.
    pub fn reverse(self) -> RedbIter {
        match self {
            RedbIter::Rows(rows) => {
                let mut v: Vec<Row> = rows.collect();
                v.reverse();
                RedbIter::Rows(v.into_iter())
            }
            RedbIter::Live { range, rev } => RedbIter::Live { range, rev: !rev },
            failed => failed,
        }
    }
}

impl Iterator for RedbIter {
    type Item = Result<Row, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            RedbIter::Rows(rows) => rows.next().map(Ok),
            RedbIter::Live { range, rev } => {
                let next = if *rev {
                    range.next_back()
                } else {
                    range.next()
                };
                next.map(|e| e.map(|(k, v)| row(k.value(), v.value())).map_err(err))
            }
            RedbIter::Failed(e) => e.take().map(Err),
        }
    }
}
