//! Moving a whole store from one engine to another (`edesk store copy`):
//! sled to PostgreSQL when a site grows to several daemons, and back.
//! Every tree is copied row by row (the record layouts are the same on both
//! engines) and then verified: the target must hold the same number of rows
//! with the same SHA-256 over keys and values, in key order.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Store, StoreError};

/// What one tree holds: the logical size, before the engine's own overhead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeStats {
    /// The tree's name.
    pub tree: &'static str,
    /// Keys it holds.
    pub rows: u64,
    /// Sum of key lengths.
    pub key_bytes: u64,
    /// Sum of value lengths.
    pub value_bytes: u64,
}

/// Rows written per store write while copying.
const CHUNK: usize = 512;

/// What was copied, per tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeCopy {
    /// The tree's name (`orders`, `outbox`, …).
    pub tree: &'static str,
    /// Rows copied.
    pub rows: u64,
    /// SHA-256 of every (key, value) in key order, each length-prefixed.
    pub sha256: String,
}

fn mismatch(tree: &'static str, message: String) -> StoreError {
    StoreError::Corrupt { tree, message }
}

impl Store {
    /// Whether the store holds no business data yet (orders, outbox,
    /// inbound mail, tickets, chat): a copy refuses to merge into one that does.
    pub fn holds_data(&self) -> Result<bool, StoreError> {
        let t = self.trees()?;
        for tree in [&t.orders, &t.outbox, &t.mail_meta, &t.tickets, &t.chat] {
            if tree.first()?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Copies every tree of this store into `target` (which must hold no
    /// data: see [`Store::holds_data`]), verifies each by row count and
    /// checksum, and moves the target's id counters past every copied id.
    pub fn copy_into(&self, target: &Store) -> Result<Vec<TreeCopy>, StoreError> {
        let source = self.trees()?;
        let mut report = Vec::new();
        for (name, tree) in source.all() {
            target.clear_tree(name)?;
            let mut digest = Digest256::default();
            let mut chunk = Vec::with_capacity(CHUNK);
            for row in tree.iter() {
                let (k, v) = row?;
                digest.add(&k, &v);
                chunk.push((k.to_vec(), v.to_vec()));
                if chunk.len() >= CHUNK {
                    target.put_rows(name, std::mem::take(&mut chunk))?;
                }
            }
            target.put_rows(name, chunk)?;
            let copied = digest.finish(name);
            let found = target.tree_digest(name)?;
            if found != copied {
                return Err(mismatch(
                    name,
                    format!(
                        "the copy differs: {} rows ({}) copied, {} rows ({}) found",
                        copied.rows, copied.sha256, found.rows, found.sha256
                    ),
                ));
            }
            report.push(copied);
        }
        let persisted = target.trees()?.counter("id")?;
        target.engine.init_ids(persisted)?;
        Ok(report)
    }

    /// Rows and logical bytes per tree (`edesk store stats`): what the
    /// engine has to keep, so its on-disk size can be judged against it.
    pub fn stats(&self) -> Result<Vec<TreeStats>, StoreError> {
        let t = self.trees()?;
        let mut out = Vec::new();
        for (tree, rows) in t.all() {
            let mut s = TreeStats {
                tree,
                rows: 0,
                key_bytes: 0,
                value_bytes: 0,
            };
            for row in rows.iter() {
                let (k, v) = row?;
                s.rows += 1;
                s.key_bytes += k.len() as u64;
                s.value_bytes += v.len() as u64;
            }
            out.push(s);
        }
        Ok(out)
    }

    /// Row count and checksum of one tree, as [`Store::copy_into`] reports them.
    pub fn tree_digest(&self, name: &str) -> Result<TreeCopy, StoreError> {
        let t = self.trees()?;
        let (name, tree) = t
            .all()
            .into_iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| mismatch("meta", format!("no tree called {name}")))?;
        let mut digest = Digest256::default();
        for row in tree.iter() {
            let (k, v) = row?;
            digest.add(&k, &v);
        }
        Ok(digest.finish(name))
    }

    fn clear_tree(&self, name: &'static str) -> Result<(), StoreError> {
        self.engine.write(true, move |t| {
            t.named(name)
                .ok_or_else(|| mismatch(name, "no such tree".into()))?
                .clear()
        })
    }

    fn put_rows(
        &self,
        name: &'static str,
        rows: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.engine.write(true, move |t| {
            let tree = t
                .named(name)
                .ok_or_else(|| mismatch(name, "no such tree".into()))?;
            for (k, v) in rows {
                tree.insert(k, v)?;
            }
            Ok(())
        })
    }
}

#[derive(Default)]
struct Digest256 {
    hash: Sha256,
    rows: u64,
}

impl Digest256 {
    fn add(&mut self, k: &[u8], v: &[u8]) {
        for part in [k, v] {
            self.hash.update((part.len() as u64).to_be_bytes());
            self.hash.update(part);
        }
        self.rows += 1;
    }

    fn finish(self, tree: &'static str) -> TreeCopy {
        TreeCopy {
            tree,
            rows: self.rows,
            sha256: hex::encode(self.hash.finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Envelope;

    #[test]
    fn a_copy_between_two_sled_stores_is_verified_and_complete() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let src = Store::open(a.path()).unwrap();
        let raw = b"Message-ID: <c1@x>\r\n\r\nhello".to_vec();
        let id = src
            .mail_accept_blocking(raw.clone(), Envelope::new("lmtp"))
            .unwrap()
            .id();
        src.bump_stat("answered").unwrap();
        let dst = Store::open(b.path()).unwrap();
        assert!(!dst.holds_data().unwrap());
        let report = src.copy_into(&dst).unwrap();
        assert!(dst.holds_data().unwrap());
        let mail = report.iter().find(|r| r.tree == "mail_raw").unwrap();
        assert_eq!(mail.rows, 1);
        assert_eq!(dst.mail_raw(id).unwrap().unwrap(), raw);
        assert_eq!(dst.stat("answered").unwrap(), 1);
        assert_eq!(dst.mail_pending().unwrap(), [id]);
        for r in &report {
            assert_eq!(&dst.tree_digest(r.tree).unwrap(), r);
        }
        // Ids handed out by the copy never reuse the source's.
        assert!(dst.next_id().unwrap() > id);
    }

    /// The migration from sled to redb (`edesk store copy --from sled DIR
    /// --to redb DIR`): same rows, and the copy is a working store after a
    /// restart.
    #[test]
    fn a_sled_store_moves_to_redb_in_the_same_directory() {
        use crate::store::{Backend, EngineSettings};
        let dir = tempfile::tempdir().unwrap();
        let redb = EngineSettings {
            backend: Backend::Redb,
            ..EngineSettings::default()
        };
        let src = Store::open(dir.path()).unwrap();
        let mut ids = Vec::new();
        for i in 0..700 {
            let raw = format!("Message-ID: <m{i}@x>\r\n\r\nhello {i}").into_bytes();
            ids.push(
                src.mail_accept_blocking(raw, Envelope::new("lmtp"))
                    .unwrap()
                    .id(),
            );
        }
        let dst = Store::open_with(dir.path(), &redb).unwrap();
        let report = src.copy_into(&dst).unwrap();
        assert_eq!(
            report.iter().find(|r| r.tree == "mail_raw").unwrap().rows,
            700
        );
        drop((src, dst));
        assert!(dir.path().join("store.redb").is_file());
        let reopened = Store::open_with(dir.path(), &redb).unwrap();
        assert_eq!(reopened.schema().unwrap().0, "redb");
        for r in &report {
            assert_eq!(&reopened.tree_digest(r.tree).unwrap(), r, "{}", r.tree);
        }
        assert_eq!(
            reopened.mail_raw(ids[699]).unwrap().unwrap(),
            b"Message-ID: <m699@x>\r\n\r\nhello 699"
        );
        assert!(reopened.next_id().unwrap() > ids[699]);
    }
}
