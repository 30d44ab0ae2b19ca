//! The PostgreSQL engine: the store's trees as rows of one table,
//! `edesk_kv (tree text, k bytea, v bytea, PRIMARY KEY (tree, k))`, shared by
//! every daemon pointed at the same database.
//!
//! Why one key/value table rather than a table per record kind: the typed
//! store above (`store::*`) already owns the record layouts, their indexes
//! and the order in which multi-key writes land; running the same code on
//! both engines keeps one set of semantics and one test suite. `bytea`
//! compares bytewise, so key order (and every prefix and range scan) is the
//! one sled has.
//!
//! Concurrency, per daemon (see `engine`): one owner thread applies every
//! write inside a transaction, a batch of callers per transaction (group
//! commit: `COMMIT` is the flush), each caller inside its own savepoint so a
//! failing write rolls back alone. Reads that a write depends on take row
//! locks (`SELECT … FOR UPDATE`), so read-modify-write sequences (ticket
//! updates, counters, job slot claims, rate windows) are atomic across
//! daemons too; a key that must be created once (inbound dedup, idempotency)
//! is inserted with `ON CONFLICT DO NOTHING` and the unique key decides.
//! Direct reads go to a small pool of reader threads, each with its own
//! connection: the synchronous client cannot run inside the async runtime,
//! so callers hand the query over and wait, as they do for sled writes.
//!
//! Versioned migrations (`MIGRATIONS`) are applied at open under an advisory
//! lock, so two daemons starting together migrate once; a database whose
//! schema is newer than this binary is refused.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::{Client, NoTls, Statement};

use super::StoreError;
use super::kv::{Bounds, Bytes};

/// Schema migrations, in order. Never edit a released one: add the next.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE edesk_kv (
         tree text NOT NULL,
         k bytea NOT NULL,
         v bytea NOT NULL,
         PRIMARY KEY (tree, k)
     );
     CREATE SEQUENCE edesk_ids;",
)];

/// The newest schema this binary knows.
pub const PG_SCHEMA_VERSION: i32 = 1;

/// Arbitrary, fixed: the advisory lock that serializes migrations.
const MIGRATION_LOCK: i64 = 0x6564_6573_6b00_0001;

/// Rows fetched per round trip by a scan.
const PAGE: i64 = 512;

/// Reader connections per daemon.
const READERS: usize = 4;

fn pg_err(e: postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else {
        // The driver's own text ("error connecting to server") hides why.
        let why = std::error::Error::source(&e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        return StoreError::Unavailable(format!("PostgreSQL: {e}{why}"));
    };
    let message = format!("PostgreSQL: {} ({})", db.message(), db.code().code());
    // Lock waits that ended in a deadlock or a timeout, serialization
    // failures and a server going away pass by themselves: try again.
    let class = db.code().code().get(..2).unwrap_or_default();
    if e.is_closed() || matches!(class, "40" | "55" | "57" | "08" | "53") {
        StoreError::Unavailable(message)
    } else {
        StoreError::Backend(message)
    }
}

/// One connection with its prepared statements.
pub(super) struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    /// Upserts of the open transaction not sent yet: a write of many keys
    /// (an order with its mails) goes as one statement, sent before the
    /// transaction reads anything or commits.
    pending: Vec<(&'static str, Vec<u8>, Vec<u8>)>,
}

impl Conn {
    pub fn connect(url: &str) -> Result<Conn, StoreError> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("store.url: {e}")))?;
        config
            .connect_timeout(Duration::from_secs(5))
            .application_name("edesk")
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        let mut client = config.connect(NoTls).map_err(pg_err)?;
        // A lock held by a stuck daemon or a runaway query must not hang
        // this one: give up, answer "try again", and let the caller retry.
        client
            .batch_execute("SET lock_timeout = '10s'; SET statement_timeout = '60s'")
            .map_err(pg_err)?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
            pending: Vec::new(),
        })
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    fn statement(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).map_err(pg_err)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, StoreError> {
        let s = self.statement(sql)?;
        self.client.query(&s, params).map_err(pg_err)
    }

    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let s = self.statement(sql)?;
        self.client.execute(&s, params).map_err(pg_err)
    }

    pub fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.client.batch_execute(sql).map_err(pg_err)
    }

    /// Starts a transaction (the owner's, one per store write).
    pub fn begin(&mut self) -> Result<(), StoreError> {
        self.pending.clear();
        self.batch("BEGIN")
    }

    /// Sends the buffered upserts, then commits.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        if let Err(e) = self.send_pending() {
            // The transaction is aborted: end it, so the next one starts clean.
            let _ = self.batch("ROLLBACK");
            return Err(e);
        }
        self.batch("COMMIT")
    }

    pub fn rollback(&mut self) -> Result<(), StoreError> {
        self.pending.clear();
        self.batch("ROLLBACK")
    }

    /// Sends the buffered upserts as one statement; the last value of a key
    /// wins, as it would have one statement at a time.
    fn send_pending(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut rows = std::mem::take(&mut self.pending);
        // Keep each key's last write: one INSERT may not touch a row twice.
        let mut seen = std::collections::HashSet::new();
        rows.reverse();
        rows.retain(|(t, k, _)| seen.insert((*t, k.clone())));
        rows.reverse();
        let trees: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let keys: Vec<&[u8]> = rows.iter().map(|r| r.1.as_slice()).collect();
        let values: Vec<&[u8]> = rows.iter().map(|r| r.2.as_slice()).collect();
        self.execute(
            "INSERT INTO edesk_kv (tree, k, v)
             SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[])
             ON CONFLICT (tree, k) DO UPDATE SET v = EXCLUDED.v",
            &[&trees, &keys, &values],
        )?;
        Ok(())
    }

    /// Applies the migrations this database lacks; refuses a newer schema.
    pub fn migrate(&mut self) -> Result<i32, StoreError> {
        let mut tx = self.client.transaction().map_err(pg_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(pg_err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS edesk_schema (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .map_err(pg_err)?;
        let found: i32 = tx
            .query_one("SELECT coalesce(max(version), 0) FROM edesk_schema", &[])
            .map_err(pg_err)?
            .get(0);
        if found > PG_SCHEMA_VERSION {
            return Err(StoreError::Schema {
                found: found.unsigned_abs(),
                supported: PG_SCHEMA_VERSION.unsigned_abs(),
            });
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
            tx.batch_execute(sql).map_err(pg_err)?;
            tx.execute("INSERT INTO edesk_schema (version) VALUES ($1)", &[version])
                .map_err(pg_err)?;
            tracing::info!(version, "PostgreSQL store migrated");
        }
        tx.commit().map_err(pg_err)?;
        Ok(PG_SCHEMA_VERSION.max(found))
    }

    /// A fresh id from the shared sequence (unique across daemons).
    pub fn next_id(&mut self) -> Result<u64, StoreError> {
        let rows = self.query("SELECT nextval('edesk_ids')", &[])?;
        let n: i64 = rows
            .first()
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::Backend("nextval returned nothing".into()))?;
        Ok(n.unsigned_abs())
    }

    /// Moves the id sequence past `floor` (ids copied from another store).
    pub fn raise_ids(&mut self, floor: u64) -> Result<(), StoreError> {
        let floor = i64::try_from(floor).unwrap_or(i64::MAX);
        self.query(
            "SELECT setval('edesk_ids', greatest($1, (SELECT last_value FROM edesk_ids)))",
            &[&floor],
        )?;
        Ok(())
    }
}

type Request = Box<dyn FnOnce(&mut Option<Conn>) + Send>;

/// Reader threads, each with its own connection, fed from one queue.
pub(super) struct Pool {
    tx: Mutex<Option<SyncSender<Request>>>,
    url: String,
}

impl Pool {
    pub fn start(url: &str) -> Result<Arc<Pool>, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Request>(1024);
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..READERS {
            let rx = rx.clone();
            let url = url.to_string();
            std::thread::Builder::new()
                .name(format!("edesk-pg-read-{n}"))
                .spawn(move || reader(&rx, &url))
                .map_err(|e| StoreError::Unavailable(format!("cannot start a reader: {e}")))?;
        }
        Ok(Arc::new(Pool {
            tx: Mutex::new(Some(tx)),
            url: url.to_string(),
        }))
    }

    /// Runs `f` on a reader connection and waits for its answer.
    pub fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let url = self.url.clone();
        let request: Request = Box::new(move |slot: &mut Option<Conn>| {
            let result = with_connection(slot, &url, f);
            let _ = reply.send(result);
        });
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(StoreError::Closed)?;
        tx.send(request).map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    /// Stops the readers once they have answered what is queued.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// Runs `f` on the slot's connection, (re)connecting first when needed; a
/// connection that failed is dropped so the next request reconnects.
fn with_connection<R>(
    slot: &mut Option<Conn>,
    url: &str,
    f: impl FnOnce(&mut Conn) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    if slot.as_ref().is_none_or(Conn::is_closed) {
        *slot = Some(Conn::connect(url)?);
    }
    let conn = slot.as_mut().ok_or(StoreError::Closed)?;
    let result = f(conn);
    if conn.is_closed() {
        *slot = None;
    }
    result
}

fn reader(rx: &Mutex<Receiver<Request>>, _url: &str) {
    let mut conn: Option<Conn> = None;
    loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        match next {
            Ok(request) => request(&mut conn),
            Err(_) => break,
        }
    }
}

/// Where a tree's statements run: a reader from the pool, or the owner's
/// open transaction (whose reads lock the rows they return).
#[derive(Clone)]
pub(super) enum Via {
    Pool(Arc<Pool>),
    Txn(Arc<Mutex<Conn>>),
}

impl Via {
    fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn, bool) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        match self {
            Via::Pool(p) => p.call(move |c| f(c, false)),
            Via::Txn(c) => {
                let mut c = c.lock().unwrap_or_else(|p| p.into_inner());
                // What this transaction wrote must be visible to what it reads.
                c.send_pending()?;
                f(&mut c, true)
            }
        }
    }
}

/// The advisory lock of one key: FNV-1a over tree and key, stable across
/// builds and machines (every daemon must compute the same number; a
/// collision only makes two keys wait for each other).
fn key_lock(tree: &str, key: &[u8]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tree.as_bytes().iter().chain([0u8].iter()).chain(key) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// One tree: the rows of `edesk_kv` with this `tree`.
#[derive(Clone)]
pub(super) struct PgTree {
    name: &'static str,
    via: Via,
}

impl PgTree {
    pub fn new(name: &'static str, via: Via) -> PgTree {
        PgTree { name, via }
    }

    /// Reads a value. Inside the owner's transaction the key is locked
    /// first, present or not (an advisory lock on its hash, held to the
    /// commit), so a read-modify-write of one key, including "create it
    /// when absent", runs once at a time across daemons. The lock comes
    /// in its own statement: a READ COMMITTED statement reads from the
    /// snapshot taken when it started, before a lock wait ended.
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let (name, key) = (self.name, key.to_vec());
        self.via.run(move |c, locking| {
            if locking {
                c.query("SELECT pg_advisory_xact_lock($1)", &[&key_lock(name, &key)])?;
            }
            let rows = c.query(
                "SELECT v FROM edesk_kv WHERE tree = $1 AND k = $2",
                &[&name, &key],
            )?;
            Ok(rows.first().map(|r| Bytes::from(r.get::<_, Vec<u8>>(0))))
        })
    }

    /// [`PgTree::get`] that skips a key another transaction holds (None),
    /// the advisory-lock form of `FOR UPDATE SKIP LOCKED`.
    pub fn claim(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let (name, key) = (self.name, key.to_vec());
        self.via.run(move |c, locking| {
            if locking {
                let rows = c.query(
                    "SELECT pg_try_advisory_xact_lock($1)",
                    &[&key_lock(name, &key)],
                )?;
                if !rows.first().is_some_and(|r| r.get::<_, bool>(0)) {
                    return Ok(None);
                }
            }
            let rows = c.query(
                "SELECT v FROM edesk_kv WHERE tree = $1 AND k = $2",
                &[&name, &key],
            )?;
            Ok(rows.first().map(|r| Bytes::from(r.get::<_, Vec<u8>>(0))))
        })
    }

    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let (name, key, value) = (self.name, key.to_vec(), value.to_vec());
        if let Via::Txn(c) = &self.via {
            c.lock()
                .unwrap_or_else(|p| p.into_inner())
                .pending
                .push((name, key, value));
            return Ok(());
        }
        self.via.run(move |c, _| {
            c.execute(
                "INSERT INTO edesk_kv (tree, k, v) VALUES ($1, $2, $3)
                 ON CONFLICT (tree, k) DO UPDATE SET v = EXCLUDED.v",
                &[&name, &key, &value],
            )?;
            Ok(())
        })
    }

    /// Inserts only when the key is absent; true when this call created it.
    /// Two daemons racing on one key: the primary key lets one win.
    pub fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        let (name, key, value) = (self.name, key.to_vec(), value.to_vec());
        self.via.run(move |c, _| {
            let n = c.execute(
                "INSERT INTO edesk_kv (tree, k, v) VALUES ($1, $2, $3)
                 ON CONFLICT (tree, k) DO NOTHING",
                &[&name, &key, &value],
            )?;
            Ok(n == 1)
        })
    }

    pub fn remove(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let (name, key) = (self.name, key.to_vec());
        self.via.run(move |c, _| {
            let rows = c.query(
                "DELETE FROM edesk_kv WHERE tree = $1 AND k = $2 RETURNING v",
                &[&name, &key],
            )?;
            Ok(rows.first().map(|r| Bytes::from(r.get::<_, Vec<u8>>(0))))
        })
    }

    pub fn clear(&self) -> Result<(), StoreError> {
        let name = self.name;
        self.via.run(move |c, _| {
            c.execute("DELETE FROM edesk_kv WHERE tree = $1", &[&name])?;
            Ok(())
        })
    }

    pub fn len(&self) -> Result<usize, StoreError> {
        let name = self.name;
        self.via.run(move |c, _| {
            let rows = c.query("SELECT count(*) FROM edesk_kv WHERE tree = $1", &[&name])?;
            let n: i64 = rows.first().map_or(0, |r| r.get(0));
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    pub fn scan(&self, bounds: Bounds, descending: bool) -> PgIter {
        PgIter {
            tree: self.clone(),
            bounds,
            descending,
            last: None,
            buffer: VecDeque::new(),
            done: false,
        }
    }

    /// One page of a scan after `last` (exclusive), in the scan's direction.
    fn page(
        &self,
        bounds: &Bounds,
        descending: bool,
        last: Option<&[u8]>,
    ) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        let name = self.name;
        let from = bounds.from.clone().unwrap_or_default();
        let below = bounds.below.clone();
        let last = last.map(<[u8]>::to_vec);
        self.via.run(move |c, _| {
            let rows = match (descending, last, below) {
                (false, None, None) => c.query(
                    "SELECT k, v FROM edesk_kv WHERE tree = $1 AND k >= $2 ORDER BY k LIMIT $3",
                    &[&name, &from, &PAGE],
                )?,
                (false, None, Some(b)) => c.query(
                    "SELECT k, v FROM edesk_kv WHERE tree = $1 AND k >= $2 AND k < $3
                     ORDER BY k LIMIT $4",
                    &[&name, &from, &b, &PAGE],
                )?,
                (false, Some(l), None) => c.query(
                    "SELECT k, v FROM edesk_kv WHERE tree = $1 AND k > $2 ORDER BY k LIMIT $3",
                    &[&name, &l, &PAGE],
                )?,
                (false, Some(l), Some(b)) => c.query(
                    "SELECT k, v FROM edesk_kv WHERE tree = $1 AND k > $2 AND k < $3
                     ORDER BY k LIMIT $4",
                    &[&name, &l, &b, &PAGE],
                )?,
                // Descending: the upper bound is the last key seen, or `below`.
                (true, upper, below) => match upper.or(below) {
                    None => c.query(
                        "SELECT k, v FROM edesk_kv WHERE tree = $1 AND k >= $2
                         ORDER BY k DESC LIMIT $3",
                        &[&name, &from, &PAGE],
                    )?,
                    Some(u) => c.query(
                        "SELECT k, v FROM edesk_kv WHERE tree = $1 AND k >= $2 AND k < $3
                         ORDER BY k DESC LIMIT $4",
                        &[&name, &from, &u, &PAGE],
                    )?,
                },
            };
            Ok(rows
                .into_iter()
                .map(|r| {
                    (
                        Bytes::from(r.get::<_, Vec<u8>>(0)),
                        Bytes::from(r.get::<_, Vec<u8>>(1)),
                    )
                })
                .collect())
        })
    }
}

/// A scan fetched a page at a time, so a tree of millions of rows streams.
pub(super) struct PgIter {
    tree: PgTree,
    bounds: Bounds,
    descending: bool,
    last: Option<Vec<u8>>,
    buffer: VecDeque<(Bytes, Bytes)>,
    done: bool,
}

impl PgIter {
    /// Sets the direction; only before the first entry is read.
    pub fn set_descending(&mut self, descending: bool) {
        if self.last.is_none() && self.buffer.is_empty() {
            self.descending = descending;
        }
    }
}

impl Iterator for PgIter {
    type Item = Result<(Bytes, Bytes), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() && !self.done {
            match self
                .tree
                .page(&self.bounds, self.descending, self.last.as_deref())
            {
                Ok(rows) => {
                    self.done = (rows.len() as i64) < PAGE;
                    self.buffer.extend(rows);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        let (k, v) = self.buffer.pop_front()?;
        self.last = Some(k.to_vec());
        Some(Ok((k, v)))
    }
}
