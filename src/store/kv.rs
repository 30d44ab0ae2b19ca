//! The storage seam under the typed store: ordered trees of byte keys and
//! values, with the handful of operations the store's modules use (get,
//! insert, remove, ordered scans). Two engines implement it:
//!
//! - sled (embedded, the default): a [`Tree`] is a `sled::Tree`;
//! - redb (embedded, one file): a [`Tree`] is a redb table (see `rdb`);
//! - PostgreSQL (several daemons sharing one database): a [`Tree`] is a
//!   slice of one `edesk_kv (tree, k, v)` table, keyed by `(tree, k)`, whose
//!   `bytea` ordering is the same byte order sled uses (see `pg`).
//!
//! Everything above this module is written once against [`Tree`], so both
//! engines run the same record layouts, the same write ordering and the same
//! tests. Values are `sled::IVec` on both sides (a cheap byte buffer) so call
//! sites read the same whatever the engine.

use super::StoreError;
use super::pg::{PgIter, PgTree};
use super::rdb::{RedbIter, RedbTree};

/// Bytes of a key or value.
pub(super) type Bytes = sled::IVec;

/// One ordered tree of the store.
#[derive(Clone)]
pub(super) enum Tree {
    Sled(sled::Tree),
    Redb(RedbTree),
    Pg(PgTree),
}

impl Tree {
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, StoreError> {
        match self {
            Tree::Sled(t) => Ok(t.get(key)?),
            Tree::Redb(t) => t.get(key.as_ref()),
            Tree::Pg(t) => t.get(key.as_ref()),
        }
    }

    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), StoreError> {
        match self {
            Tree::Sled(t) => {
                t.insert(key.as_ref(), value.as_ref())?;
                Ok(())
            }
            Tree::Redb(t) => t.insert(key.as_ref(), value.as_ref()),
            Tree::Pg(t) => t.insert(key.as_ref(), value.as_ref()),
        }
    }

    /// Reads a value this write will change, unless another writer holds
    /// it: on a shared database, a row another daemon has locked is
    /// skipped (`FOR UPDATE SKIP LOCKED`), so claimers never wait for each
    /// other; sled has one writer and reads it as [`Tree::get`].
    pub fn claim(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, StoreError> {
        match self {
            Tree::Sled(t) => Ok(t.get(key)?),
            Tree::Redb(t) => t.get(key.as_ref()),
            Tree::Pg(t) => t.claim(key.as_ref()),
        }
    }

    /// Inserts only when the key is absent; true when this call created it.
    /// On a shared database the unique key decides between daemons racing.
    pub fn insert_new(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<bool, StoreError> {
        match self {
            Tree::Sled(t) => Ok(t
                .compare_and_swap(key.as_ref(), None::<&[u8]>, Some(value.as_ref()))?
                .is_ok()),
            Tree::Redb(t) => t.insert_new(key.as_ref(), value.as_ref()),
            Tree::Pg(t) => t.insert_new(key.as_ref(), value.as_ref()),
        }
    }

    /// Removes a key; returns the value it had.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, StoreError> {
        match self {
            Tree::Sled(t) => Ok(t.remove(key)?),
            Tree::Redb(t) => t.remove(key.as_ref()),
            Tree::Pg(t) => t.remove(key.as_ref()),
        }
    }

    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool, StoreError> {
        match self {
            Tree::Sled(t) => Ok(t.contains_key(key)?),
            Tree::Redb(t) => Ok(t.get(key.as_ref())?.is_some()),
            Tree::Pg(t) => Ok(t.get(key.as_ref())?.is_some()),
        }
    }

    /// Removes every key.
    pub fn clear(&self) -> Result<(), StoreError> {
        match self {
            Tree::Sled(t) => Ok(t.clear()?),
            Tree::Redb(t) => t.clear(),
            Tree::Pg(t) => t.clear(),
        }
    }

    /// How many keys the tree holds.
    pub fn len(&self) -> Result<usize, StoreError> {
        match self {
            Tree::Sled(t) => Ok(t.len()),
            Tree::Redb(t) => t.len(),
            Tree::Pg(t) => t.len(),
        }
    }

    /// The smallest key and its value.
    pub fn first(&self) -> Result<Option<(Bytes, Bytes)>, StoreError> {
        match self {
            Tree::Sled(t) => Ok(t.first()?),
            Tree::Redb(t) => t.scan(Bounds::all(), false).next().transpose(),
            Tree::Pg(t) => t.scan(Bounds::all(), false).next().transpose(),
        }
    }

    /// Every entry in key order.
    pub fn iter(&self) -> Iter {
        self.scan(Bounds::all())
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        self.scan(Bounds::prefix(prefix.as_ref()))
    }

    /// Entries whose key is below `end` (exclusive), in key order.
    pub fn range_below(&self, end: impl AsRef<[u8]>) -> Iter {
        self.scan(Bounds {
            from: None,
            below: Some(end.as_ref().to_vec()),
        })
    }

    fn scan(&self, bounds: Bounds) -> Iter {
        match self {
            Tree::Sled(t) => {
                let iter = match (bounds.from, bounds.below) {
                    (None, None) => t.iter(),
                    (Some(f), None) => t.range(f..),
                    (None, Some(b)) => t.range(..b),
                    (Some(f), Some(b)) => t.range(f..b),
                };
                Iter {
                    inner: IterInner::Sled(Box::new(iter)),
                    rev: false,
                }
            }
            Tree::Redb(t) => Iter {
                inner: IterInner::Redb(Box::new(t.scan(bounds, false))),
                rev: false,
            },
            Tree::Pg(t) => Iter {
                inner: IterInner::Pg(Box::new(t.scan(bounds, false))),
                rev: false,
            },
        }
    }
}

/// Key bounds of a scan: `from` inclusive, `below` exclusive.
#[derive(Debug, Clone, Default)]
pub(super) struct Bounds {
    pub from: Option<Vec<u8>>,
    pub below: Option<Vec<u8>>,
}

impl Bounds {
    fn all() -> Bounds {
        Bounds::default()
    }

    fn prefix(prefix: &[u8]) -> Bounds {
        Bounds {
            from: (!prefix.is_empty()).then(|| prefix.to_vec()),
            below: prefix_end(prefix),
        }
    }
}

/// The smallest key above every key that starts with `prefix` (None when
/// there is none: the prefix is empty or all 0xFF).
pub(super) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// An ordered scan. [`Iter::rev`] turns it around before it starts.
pub(super) struct Iter {
    inner: IterInner,
    rev: bool,
}

enum IterInner {
    Sled(Box<sled::Iter>),
    Redb(Box<RedbIter>),
    Pg(Box<PgIter>),
}

impl Iter {
    /// The same entries, largest key first.
    pub fn rev(mut self) -> Iter {
        self.rev = !self.rev;
        self.inner = match self.inner {
            IterInner::Pg(mut p) => {
                p.set_descending(self.rev);
                IterInner::Pg(p)
            }
            IterInner::Redb(r) => IterInner::Redb(Box::new(r.reverse())),
            sled => sled,
        };
        self
    }

    pub fn keys(self) -> impl Iterator<Item = Result<Bytes, StoreError>> {
        self.map(|r| r.map(|(k, _)| k))
    }

    pub fn values(self) -> impl Iterator<Item = Result<Bytes, StoreError>> {
        self.map(|r| r.map(|(_, v)| v))
    }
}

impl Iterator for Iter {
    type Item = Result<(Bytes, Bytes), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            IterInner::Sled(i) => {
                let next = if self.rev { i.next_back() } else { i.next() };
                next.map(|r| r.map_err(StoreError::from))
            }
            IterInner::Redb(r) => r.next(),
            IterInner::Pg(p) => p.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end(b"po/"), Some(b"po0".to_vec()));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn sled_scans_in_both_directions_within_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let t = Tree::Sled(db.open_tree("t").unwrap());
        for k in ["a/1", "a/2", "a/3", "b/1", "a"] {
            t.insert(k, k).unwrap();
        }
        scans_in_both_directions_within_bounds(&t);
    }

    /// The same operations on redb, once through the writer's open
    /// transaction (what a job sees of its own batch) and once through a
    /// reader's snapshot after the commit.
    #[test]
    fn redb_scans_in_both_directions_within_bounds() {
        use super::super::rdb::{Core, RedbTree};
        let dir = tempfile::tempdir().unwrap();
        let core = Core::open(&dir.path().join("s.redb"), 1 << 20).unwrap();
        let writer = Tree::Redb(RedbTree::new(core.clone(), "t", true));
        let reader = Tree::Redb(RedbTree::new(core.clone(), "t", false));
        assert_eq!(
            reader.len().unwrap(),
            0,
            "a table nothing wrote reads as empty"
        );
        for k in ["a/1", "a/2", "a/3", "b/1", "a"] {
            writer.insert(k, k).unwrap();
        }
        assert!(
            reader.get("a").unwrap().is_some(),
            "an applied write is visible before the commit, as on sled"
        );
        assert!(!writer.insert_new("b/1", "x").unwrap());
        assert!(writer.insert_new("c", "c").unwrap());
        writer.remove("c").unwrap();
        let before_commit: Vec<_> = writer.iter().keys().map(|k| k.unwrap()).collect();
        core.commit(false).unwrap();
        let after: Vec<_> = reader.iter().keys().map(|k| k.unwrap()).collect();
        assert_eq!(before_commit, after);
        scans_in_both_directions_within_bounds(&writer);
        core.commit(true).unwrap();
        for k in ["a/1", "a/2", "a/3", "b/1", "a"] {
            writer.insert(k, k).unwrap();
        }
        core.commit(true).unwrap();
        assert_eq!(reader.range_below("a/2").keys().count(), 2);
        assert!(reader.insert("z", "z").is_err(), "readers do not write");
        assert_eq!(reader.first().unwrap().unwrap().0.as_ref(), b"a");
        assert_eq!(reader.len().unwrap(), 5);
        let keys: Vec<_> = reader
            .scan_prefix("a/")
            .rev()
            .keys()
            .map(|k| k.unwrap())
            .collect();
        assert_eq!(keys, [&b"a/3"[..], b"a/2", b"a/1"]);
        writer.clear().unwrap();
        core.commit(true).unwrap();
        assert_eq!(reader.len().unwrap(), 0);
    }

    fn scans_in_both_directions_within_bounds(t: &Tree) {
        let keys = |i: Iter| -> Vec<String> {
            i.keys()
                .map(|k| String::from_utf8(k.unwrap().to_vec()).unwrap())
                .collect()
        };
        assert_eq!(keys(t.scan_prefix("a/")), ["a/1", "a/2", "a/3"]);
        assert_eq!(keys(t.scan_prefix("a/").rev()), ["a/3", "a/2", "a/1"]);
        assert_eq!(keys(t.range_below("a/2")), ["a", "a/1"]);
        assert_eq!(t.len().unwrap(), 5);
        assert_eq!(t.remove("a").unwrap().as_deref(), Some(&b"a"[..]));
        assert!(!t.contains_key("a").unwrap());
        assert_eq!(t.first().unwrap().unwrap().0.as_ref(), b"a/1");
    }
}
