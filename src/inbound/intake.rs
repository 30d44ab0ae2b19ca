//! The durable spool of inbound mail. Every way a message arrives (LMTP,
//! Maildir, `edesk mail deliver`) ends in [`Spool::accept`], which returns only
//! once the raw bytes are on disk; only then may the transport acknowledge.
//!
//! Layout (sled trees):
//! - `mail_raw`:     id → raw bytes (kept until retention purges them)
//! - `mail_meta`:    id → [`MailMeta`] JSON (envelope, state, decision)
//! - `mail_dedup`:   dedup key → id (Message-ID, or SHA-256 of the bytes)
//! - `mail_pending`: id → () for messages accepted but not yet processed
//!
//! Ids are sled's monotonic ids, big-endian, so iteration is arrival order.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("mail store: {0}")]
    Store(#[from] sled::Error),
    #[error("mail store: corrupt record {id}: {message}")]
    Corrupt { id: u64, message: String },
}

impl From<TransactionError<IntakeError>> for IntakeError {
    fn from(e: TransactionError<IntakeError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => IntakeError::Store(e),
        }
    }
}

/// How the message reached us.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Envelope {
    /// `lmtp`, `maildir` or `pipe`.
    pub source: String,
    pub mail_from: Option<String>,
    pub rcpt_to: Vec<String>,
    pub received_at: DateTime<Utc>,
}

impl Envelope {
    pub fn new(source: &str) -> Self {
        Envelope {
            source: source.to_string(),
            mail_from: None,
            rcpt_to: Vec::new(),
            received_at: Utc::now(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailState {
    /// Stored, not yet looked at.
    Pending,
    /// Looked at; `decision` says what was done.
    Processed,
    /// Processing failed; kept for an operator, with the reason.
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MailMeta {
    pub id: u64,
    pub envelope: Envelope,
    pub size: usize,
    pub dedup_key: String,
    pub state: MailState,
    /// What the daemon decided, as the `mail inspect` JSON, once processed.
    #[serde(default)]
    pub decision: Option<serde_json::Value>,
    #[serde(default)]
    pub error: Option<String>,
    /// Set when retention removed the raw bytes.
    #[serde(default)]
    pub raw_purged: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// First time we see this message.
    New(u64),
    /// Same Message-ID (or same bytes) as an earlier message: stored once.
    Duplicate(u64),
}

impl Accepted {
    pub fn id(self) -> u64 {
        match self {
            Accepted::New(id) | Accepted::Duplicate(id) => id,
        }
    }
}

#[derive(Clone)]
pub struct Spool {
    db: sled::Db,
    raw: sled::Tree,
    meta: sled::Tree,
    dedup: sled::Tree,
    pending: sled::Tree,
}

impl Spool {
    pub fn open(db: &sled::Db) -> Result<Spool, IntakeError> {
        Ok(Spool {
            db: db.clone(),
            raw: db.open_tree("mail_raw")?,
            meta: db.open_tree("mail_meta")?,
            dedup: db.open_tree("mail_dedup")?,
            pending: db.open_tree("mail_pending")?,
        })
    }

    /// Stores the message durably (flushed to disk) and queues it for
    /// processing, unless it is a duplicate of one already stored.
    pub async fn accept(&self, raw: &[u8], envelope: Envelope) -> Result<Accepted, IntakeError> {
        let accepted = self.insert(raw, envelope)?;
        self.db.flush_async().await?;
        Ok(accepted)
    }

    /// [`Spool::accept`] for synchronous callers.
    pub fn accept_blocking(&self, raw: &[u8], envelope: Envelope) -> Result<Accepted, IntakeError> {
        let accepted = self.insert(raw, envelope)?;
        self.db.flush()?;
        Ok(accepted)
    }

    fn insert(&self, raw: &[u8], envelope: Envelope) -> Result<Accepted, IntakeError> {
        let key = dedup_key(raw);
        let id = self.db.generate_id()?;
        let meta = MailMeta {
            id,
            envelope,
            size: raw.len(),
            dedup_key: key.clone(),
            state: MailState::Pending,
            decision: None,
            error: None,
            raw_purged: false,
        };
        let meta_json = encode(id, &meta)?;
        let result = (&self.raw, &self.meta, &self.dedup, &self.pending).transaction(
            |(raw_t, meta_t, dedup_t, pending_t)| {
                if let Some(existing) = dedup_t.get(key.as_bytes())? {
                    return Ok(Accepted::Duplicate(id_from(&existing)));
                }
                let k = id.to_be_bytes();
                raw_t.insert(&k, raw)?;
                meta_t.insert(&k, meta_json.as_slice())?;
                dedup_t.insert(key.as_bytes(), &k)?;
                pending_t.insert(&k, &[])?;
                Ok::<_, ConflictableTransactionError<IntakeError>>(Accepted::New(id))
            },
        )?;
        Ok(result)
    }

    /// Messages accepted but not processed yet, oldest first (after a crash,
    /// these are what the daemon picks up again).
    pub fn pending(&self) -> Result<Vec<u64>, IntakeError> {
        self.pending
            .iter()
            .keys()
            .map(|k| Ok(id_from(&k?)))
            .collect()
    }

    pub fn raw(&self, id: u64) -> Result<Option<Vec<u8>>, IntakeError> {
        Ok(self.raw.get(id.to_be_bytes())?.map(|v| v.to_vec()))
    }

    pub fn meta(&self, id: u64) -> Result<Option<MailMeta>, IntakeError> {
        self.meta
            .get(id.to_be_bytes())?
            .map(|v| decode(id, &v))
            .transpose()
    }

    /// Records the outcome and takes the message off the pending list, durably.
    pub async fn finish(
        &self,
        id: u64,
        state: MailState,
        decision: Option<serde_json::Value>,
        error: Option<String>,
    ) -> Result<(), IntakeError> {
        self.record_outcome(id, state, decision, error)?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// [`Spool::finish`] for synchronous callers.
    pub fn finish_blocking(
        &self,
        id: u64,
        state: MailState,
        decision: Option<serde_json::Value>,
        error: Option<String>,
    ) -> Result<(), IntakeError> {
        self.record_outcome(id, state, decision, error)?;
        self.db.flush()?;
        Ok(())
    }

    fn record_outcome(
        &self,
        id: u64,
        state: MailState,
        decision: Option<serde_json::Value>,
        error: Option<String>,
    ) -> Result<(), IntakeError> {
        let Some(mut meta) = self.meta(id)? else {
            return Err(IntakeError::Corrupt {
                id,
                message: "no metadata".into(),
            });
        };
        meta.state = state;
        meta.decision = decision;
        meta.error = error;
        let json = encode(id, &meta)?;
        (&self.meta, &self.pending).transaction(|(meta_t, pending_t)| {
            let k = id.to_be_bytes();
            meta_t.insert(&k, json.as_slice())?;
            pending_t.remove(&k)?;
            Ok::<_, ConflictableTransactionError<IntakeError>>(())
        })?;
        Ok(())
    }

    /// Puts a processed or failed message back on the pending list (an
    /// operator retrying after fixing what made it fail). Its actions are
    /// idempotent per message, so nothing already sent is sent again.
    pub fn requeue(&self, id: u64) -> Result<bool, IntakeError> {
        let Some(mut meta) = self.meta(id)? else {
            return Ok(false);
        };
        if self.raw(id)?.is_none() {
            return Ok(false);
        }
        meta.state = MailState::Pending;
        meta.error = None;
        let json = encode(id, &meta)?;
        (&self.meta, &self.pending).transaction(|(meta_t, pending_t)| {
            let k = id.to_be_bytes();
            meta_t.insert(&k, json.as_slice())?;
            pending_t.insert(&k, &[])?;
            Ok::<_, ConflictableTransactionError<IntakeError>>(())
        })?;
        self.db.flush()?;
        Ok(true)
    }

    /// All stored messages' metadata, newest first, at most `limit`.
    pub fn list(&self, limit: usize) -> Result<Vec<MailMeta>, IntakeError> {
        let mut out = Vec::new();
        for item in self.meta.iter().rev().take(limit) {
            let (k, v) = item?;
            out.push(decode(id_from(&k), &v)?);
        }
        Ok(out)
    }

    /// Drops the raw bytes of processed messages received before `cutoff`;
    /// metadata and decisions stay. Returns how many were purged.
    pub fn purge_raw_before(&self, cutoff: DateTime<Utc>) -> Result<usize, IntakeError> {
        let mut purged = 0;
        for item in self.meta.iter() {
            let (k, v) = item?;
            let id = id_from(&k);
            let mut meta = decode(id, &v)?;
            if meta.raw_purged
                || meta.state == MailState::Pending
                || meta.envelope.received_at >= cutoff
            {
                continue;
            }
            meta.raw_purged = true;
            let json = encode(id, &meta)?;
            self.raw.remove(&k)?;
            self.meta.insert(&k, json)?;
            purged += 1;
        }
        self.db.flush()?;
        Ok(purged)
    }
}

fn encode(id: u64, meta: &MailMeta) -> Result<Vec<u8>, IntakeError> {
    serde_json::to_vec(meta).map_err(|e| IntakeError::Corrupt {
        id,
        message: e.to_string(),
    })
}

fn decode(id: u64, bytes: &[u8]) -> Result<MailMeta, IntakeError> {
    serde_json::from_slice(bytes).map_err(|e| IntakeError::Corrupt {
        id,
        message: e.to_string(),
    })
}

fn id_from(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[8 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    u64::from_be_bytes(b)
}

/// The Message-ID when the message has one, else a hash of the bytes: a
/// message redelivered by a retrying MTA is recognised either way.
pub fn dedup_key(raw: &[u8]) -> String {
    match header_message_id(raw) {
        Some(id) => format!("mid:{id}"),
        None => format!("sha256:{}", hex::encode(Sha256::digest(raw))),
    }
}

/// A cheap scan of the header block for `Message-ID:`, tolerant of folding
/// and of bytes that are not UTF-8. Full parsing happens later.
fn header_message_id(raw: &[u8]) -> Option<String> {
    let header_end = find_header_end(raw);
    let header = &raw[..header_end];
    let mut lines = header.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = trim_cr(line);
        if line.len() < 11 || !line[..11].eq_ignore_ascii_case(b"message-id:") {
            continue;
        }
        let mut value = line[11..].to_vec();
        while let Some(next) = lines.peek() {
            if next.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                value.extend_from_slice(trim_cr(next));
                lines.next();
            } else {
                break;
            }
        }
        let v = String::from_utf8_lossy(&value);
        let v = v.trim();
        let v = v
            .strip_prefix('<')
            .and_then(|s| s.split('>').next())
            .unwrap_or(v)
            .trim();
        if v.is_empty() {
            return None;
        }
        return Some(v.to_string());
    }
    None
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn find_header_end(raw: &[u8]) -> usize {
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\n' {
            let rest = &raw[i + 1..];
            if rest.starts_with(b"\n") || rest.starts_with(b"\r\n") {
                return i + 1;
            }
        }
        i += 1;
    }
    raw.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool() -> (tempfile::TempDir, Spool) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        (dir, Spool::open(&db).unwrap())
    }

    #[test]
    fn message_id_is_found_folded_and_case_insensitive() {
        let raw = b"From: a@b\r\nmessage-id:\r\n <abc@x.example>\r\nSubject: s\r\n\r\nbody";
        assert_eq!(dedup_key(raw), "mid:abc@x.example");
        let body_only = b"From: a@b\r\n\r\nMessage-ID: <in-body@x>\r\n";
        assert!(dedup_key(body_only).starts_with("sha256:"));
    }

    #[test]
    fn duplicates_are_stored_once() {
        let (_d, s) = spool();
        let raw = b"Message-ID: <1@x>\r\n\r\nhello";
        let a = s.accept_blocking(raw, Envelope::new("pipe")).unwrap();
        let b = s
            .accept_blocking(
                b"Message-ID: <1@x>\r\n\r\nhello again",
                Envelope::new("lmtp"),
            )
            .unwrap();
        assert!(matches!(a, Accepted::New(_)));
        assert_eq!(b, Accepted::Duplicate(a.id()));
        assert_eq!(s.pending().unwrap(), vec![a.id()]);
        // No Message-ID: identical bytes are duplicates, different bytes are not.
        let c = s.accept_blocking(b"\r\nx", Envelope::new("pipe")).unwrap();
        let d = s.accept_blocking(b"\r\nx", Envelope::new("pipe")).unwrap();
        let e = s.accept_blocking(b"\r\ny", Envelope::new("pipe")).unwrap();
        assert_eq!(d, Accepted::Duplicate(c.id()));
        assert!(matches!(e, Accepted::New(_)));
    }

    #[test]
    fn accepted_mail_survives_reopen_and_stays_pending() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let db = sled::open(dir.path().join("db")).unwrap();
            let s = Spool::open(&db).unwrap();
            s.accept_blocking(b"Message-ID: <2@x>\r\n\r\nbody", Envelope::new("lmtp"))
                .unwrap()
                .id()
        };
        let db = sled::open(dir.path().join("db")).unwrap();
        let s = Spool::open(&db).unwrap();
        assert_eq!(s.pending().unwrap(), vec![id]);
        assert_eq!(
            s.raw(id).unwrap().as_deref(),
            Some(&b"Message-ID: <2@x>\r\n\r\nbody"[..])
        );
    }

    #[tokio::test]
    async fn finish_removes_from_pending_and_keeps_decision() {
        let (_d, s) = spool();
        let id = s
            .accept(b"Message-ID: <3@x>\r\n\r\nb", Envelope::new("lmtp"))
            .await
            .unwrap()
            .id();
        s.finish(
            id,
            MailState::Processed,
            Some(serde_json::json!({"kind": "new"})),
            None,
        )
        .await
        .unwrap();
        assert!(s.pending().unwrap().is_empty());
        assert!(s.requeue(id).unwrap());
        assert_eq!(s.pending().unwrap(), vec![id]);
        s.finish(
            id,
            MailState::Processed,
            Some(serde_json::json!({"kind": "new"})),
            None,
        )
        .await
        .unwrap();
        assert!(!s.requeue(9999).unwrap());
        let m = s.meta(id).unwrap().unwrap();
        assert_eq!(m.state, MailState::Processed);
        assert_eq!(m.decision.unwrap()["kind"], "new");
        // Retention drops raw bytes of processed mail only.
        assert_eq!(
            s.purge_raw_before(Utc::now() + chrono::Duration::days(1))
                .unwrap(),
            1
        );
        assert!(s.raw(id).unwrap().is_none());
        assert!(s.meta(id).unwrap().unwrap().raw_purged);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_stored(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let (_d, s) = spool();
            let id = s.accept_blocking(&raw, Envelope::new("pipe")).unwrap().id();
            proptest::prop_assert_eq!(s.raw(id).unwrap(), Some(raw));
        }
    }
}
