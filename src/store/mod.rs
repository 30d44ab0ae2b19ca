//! Durable state in sled, with typed access. Knows nothing about mail or chat:
//! outbox items are opaque bytes with an envelope, kinds are strings.
//!
//! Opened once from the data directory (`Store::open(data_dir)`), cheap to
//! clone (sled handles are reference-counted) and shareable across tasks.
//!
//! Trees and key layout:
//! - `orders`: `SO` → order JSON (the DESIGN.md shape)
//! - `order_meta`: `SO` → [`OrderMeta`] (state edesk owns: event counters, grants)
//! - `index`: `po/PO/SO`, `tok/TOKEN` → [`TokenTarget`], `mid/MESSAGE-ID` → `SO`
//! - `outbox`: id (u64 BE) → [`OutboxItem`]; `bodies`: id → raw message; `queue`: due-ms BE ++ id BE → ()
//! - `keys`: idempotency key → outbox id (0 when the mail was skipped)
//! - `history`: `SO` ++ 0 ++ id BE → [`HistoryEntry`]
//! - `prefs`: `address-key/kind` (`*` = all) → "no" | "yes"
//! - `suppress`: address key → [`Suppression`]
//! - `counters`: `address-key/hour` → u64 BE
//! - `meta`: `schema_version` → u32 BE
//!
//! Every method that acknowledges a write to a caller (`set_*`, `suppress`,
//! outbox transitions) flushes before returning, except `commit` (callers
//! batch, then `flush`) and `mark_sent_many` (the sender journals first, see
//! `notify::sender`).

mod history;
mod outbox;
mod prefs;
mod types;

use std::path::Path;
use std::sync::Arc;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

pub use types::*;

use crate::domain::{EmailAddress, Order, OrderId};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store: corrupt record in {tree}: {message}")]
    Corrupt { tree: &'static str, message: String },
    #[error(
        "the data directory {0} is in use by a running edesk daemon (sled allows one process): stop it, or use the HTTP API"
    )]
    Locked(String),
    #[error("store schema version {found} is newer than this edesk ({supported})")]
    Schema { found: u32, supported: u32 },
    #[error("store: cannot encode: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("no outbox item {0}")]
    NoSuchItem(u64),
}

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    orders: sled::Tree,
    order_meta: sled::Tree,
    index: sled::Tree,
    outbox: sled::Tree,
    bodies: sled::Tree,
    queue: sled::Tree,
    keys: sled::Tree,
    history: sled::Tree,
    prefs: sled::Tree,
    suppress: sled::Tree,
    counters: sled::Tree,
    /// Serializes read-modify-write sequences (order import) so two imports of
    /// the same order cannot both see the old state.
    write_lock: Arc<std::sync::Mutex<()>>,
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

pub fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

impl Store {
    /// Opens (or creates) the store under `data_dir/store`.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(data_dir.join("store"))
            .open()
            .map_err(|e| match e {
                // sled reports the file lock held by another process as an
                // I/O error whose text is the only distinguishing mark.
                sled::Error::Io(ref io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("could not acquire lock") =>
                {
                    StoreError::Locked(data_dir.display().to_string())
                }
                other => StoreError::Sled(other),
            })?;
        let tree = |n: &str| db.open_tree(n);
        let store = Store {
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
            db,
            write_lock: Arc::new(std::sync::Mutex::new(())),
        };
        match store.db.get("schema_version")? {
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
                store
                    .db
                    .insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
                store.db.flush()?;
            }
        }
        Ok(store)
    }

    /// The underlying database, for modules that keep their own trees in
    /// the same store (inbound spool, desk): one database, one lock, one flush.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    pub async fn flush_async(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// Runs `f` while holding the store's write lock (one import at a time).
    pub fn exclusive<T>(&self, f: impl FnOnce() -> T) -> T {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        f()
    }

    pub fn order(&self, so: &OrderId) -> Result<Option<Order>, StoreError> {
        self.orders
            .get(so.as_str())?
            .map(|b| decode("orders", &b))
            .transpose()
    }

    pub fn order_meta(&self, so: &OrderId) -> Result<OrderMeta, StoreError> {
        Ok(self
            .order_meta
            .get(so.as_str())?
            .map(|b| decode("order_meta", &b))
            .transpose()?
            .unwrap_or_default())
    }

    /// Every order id, in key order.
    pub fn order_ids(&self) -> impl Iterator<Item = Result<OrderId, StoreError>> + '_ {
        self.orders.iter().keys().map(|k| {
            let k = k?;
            String::from_utf8_lossy(&k)
                .parse()
                .map_err(|_| StoreError::Corrupt {
                    tree: "orders",
                    message: "bad key".into(),
                })
        })
    }

    /// Orders carrying this customer PO number (case-insensitive).
    pub fn orders_by_po(&self, po: &str) -> Result<Vec<OrderId>, StoreError> {
        let prefix = format!("po/{}/", po.trim().to_lowercase());
        self.index
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
        self.index
            .get(format!("tok/{}", token.to_ascii_lowercase()))?
            .map(|b| decode("index", &b))
            .transpose()
    }

    /// The order a Message-ID we sent (or a migrated `notification_ids` entry) belongs to.
    /// Accepts the id with or without angle brackets.
    pub fn order_by_message_id(&self, message_id: &str) -> Result<Option<OrderId>, StoreError> {
        let id = message_id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>');
        match self.index.get(format!("mid/{id}"))? {
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
        // generate_id starts at 0; 0 is reserved for "skipped" in `keys`.
        Ok(self.db.generate_id()? + 1)
    }

    /// Writes a unit of work atomically: order, its meta, index entries and
    /// mail records. Not flushed: the caller flushes (once per batch) before
    /// acknowledging. A mail record whose idempotency key was seen
    /// before is dropped (returned in `duplicates`).
    pub fn commit(&self, c: Commit) -> Result<CommitOutcome, StoreError> {
        let order_bytes = c.order.as_ref().map(serde_json::to_vec).transpose()?;
        let meta_bytes = c
            .meta
            .as_ref()
            .map(|(so, m)| Ok::<_, serde_json::Error>((so.clone(), serde_json::to_vec(m)?)))
            .transpose()?;
        let mut mails = Vec::with_capacity(c.mails.len());
        for m in &c.mails {
            let item = m.item.as_ref().map(serde_json::to_vec).transpose()?;
            mails.push((m, item, serde_json::to_vec(&m.entry)?));
        }
        let mut index_puts: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        if let Some(o) = &c.order
            && let Some(po) = &o.po
        {
            index_puts.push((
                format!("po/{}/{}", po.as_str().to_lowercase(), o.so).into_bytes(),
                Vec::new(),
            ));
        }
        for (tok, target) in &c.tokens {
            index_puts.push((
                format!("tok/{}", tok.to_ascii_lowercase()).into_bytes(),
                serde_json::to_vec(target)?,
            ));
        }
        for (mid, so) in &c.message_ids {
            let id = mid.trim().trim_start_matches('<').trim_end_matches('>');
            index_puts.push((
                format!("mid/{id}").into_bytes(),
                so.as_str().as_bytes().to_vec(),
            ));
        }
        for (m, _, _) in &mails {
            if let Some(item) = &m.item
                && let Some(so) = &item.so
            {
                let id = item
                    .message_id
                    .trim_start_matches('<')
                    .trim_end_matches('>');
                index_puts.push((
                    format!("mid/{id}").into_bytes(),
                    so.as_str().as_bytes().to_vec(),
                ));
            }
        }

        let result = (
            &self.orders,
            &self.order_meta,
            &self.index,
            &self.outbox,
            &self.bodies,
            &self.queue,
            &self.keys,
            &self.history,
        )
            .transaction(
                |(orders, order_meta, index, outbox, bodies, queue, keys, history)| {
                    let mut outcome = CommitOutcome::default();
                    if let (Some(o), Some(b)) = (&c.order, &order_bytes) {
                        orders.insert(o.so.as_str().as_bytes(), b.as_slice())?;
                    }
                    if let Some((so, b)) = &meta_bytes {
                        order_meta.insert(so.as_str().as_bytes(), b.as_slice())?;
                    }
                    for (k, v) in &index_puts {
                        index.insert(k.as_slice(), v.as_slice())?;
                    }
                    for (m, item_bytes, entry_bytes) in &mails {
                        if keys.get(m.key.as_bytes())?.is_some() {
                            outcome.duplicates.push(m.key.clone());
                            continue;
                        }
                        let id = m.item.as_ref().map_or(0, |i| i.id);
                        keys.insert(m.key.as_bytes(), &id.to_be_bytes())?;
                        if let (Some(item), Some(b)) = (&m.item, item_bytes) {
                            outbox.insert(&item.id.to_be_bytes(), b.as_slice())?;
                            bodies.insert(&item.id.to_be_bytes(), item.raw.as_bytes())?;
                            queue
                                .insert(queue_key(item.next_attempt_ms, item.id).as_slice(), &[])?;
                            outcome.queued.push(item.id);
                        } else {
                            outcome.skipped += 1;
                        }
                        history.insert(
                            history_key(m.entry.so.as_ref(), m.entry.id).as_slice(),
                            entry_bytes.as_slice(),
                        )?;
                    }
                    Ok::<_, ConflictableTransactionError<()>>(outcome)
                },
            );
        let outcome = match result {
            Ok(o) => o,
            Err(TransactionError::Storage(e)) => return Err(e.into()),
            Err(TransactionError::Abort(())) => {
                return Err(StoreError::Corrupt {
                    tree: "commit",
                    message: "aborted".into(),
                });
            }
        };
        Ok(outcome)
    }

    /// Whether this idempotency key was committed before.
    pub fn seen_key(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.keys.contains_key(key)?)
    }

    /// The Message-ID of the mail queued under an idempotency key, if one was
    /// queued (not skipped).
    pub fn message_id_for_key(&self, key: &str) -> Result<Option<String>, StoreError> {
        let Some(v) = self.keys.get(key)? else {
            return Ok(None);
        };
        let Ok(bytes) = <[u8; 8]>::try_from(v.as_ref()) else {
            return Ok(None);
        };
        match u64::from_be_bytes(bytes) {
            0 => Ok(None),
            id => Ok(self.outbox_item(id)?.map(|i| i.message_id)),
        }
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
        s.db.insert("schema_version", &(SCHEMA_VERSION + 1).to_be_bytes())
            .unwrap();
        s.flush().unwrap();
        drop(s);
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::Schema { .. })
        ));
    }
}
