//! The inbound spool: raw mail stored before anything acknowledges it.
//! Knows bytes and envelopes, not what a mail means.
//!
//! - `mail_raw`:     id → raw bytes (kept until retention purges them)
//! - `mail_meta`:    id → [`MailMeta`] JSON (envelope, state, decision)
//! - `mail_dedup`:   `sha256:HASH` → id for every message; `mid:MESSAGE-ID` →
//!   the first message that carried that id
//! - `mail_pending`: id → () for messages accepted but not yet processed
//!
//! Ids are big-endian, so iteration is arrival order. A redelivery (same
//! bytes, or same Message-ID with the same sender and body) is stored once.
//! A *different* message reusing a stored Message-ID is stored as its own
//! message with `reuses_message_id_of` set: nobody can pre-empt a customer's
//! mail by guessing its id.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::engine::{Cost, Trees};
use super::{Store, StoreError, decode};

/// How the message reached us.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Envelope {
    /// `lmtp`, `maildir` or `pipe`.
    pub source: String,
    /// SMTP `MAIL FROM` as the transport gave it; `None` when it gave none.
    pub mail_from: Option<String>,
    /// SMTP `RCPT TO` addresses, when the transport gave them.
    pub rcpt_to: Vec<String>,
    /// When edesk received it.
    pub received_at: DateTime<Utc>,
}

impl Envelope {
    /// An envelope for `source`, received now, without sender or recipients.
    pub fn new(source: &str) -> Self {
        Envelope {
            source: source.to_string(),
            mail_from: None,
            rcpt_to: Vec::new(),
            received_at: Utc::now(),
        }
    }
}

/// Where an inbound message is in processing.
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

/// What the spool keeps about one inbound message besides its bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MailMeta {
    /// The spool id (arrival order).
    pub id: u64,
    /// How it reached us.
    pub envelope: Envelope,
    /// Size of the raw message in bytes.
    pub size: usize,
    /// `mid:MESSAGE-ID` when the message has a Message-ID, else `sha256:HASH`
    /// of the bytes (see [`dedup_key`]).
    pub dedup_key: String,
    /// Processing state.
    pub state: MailState,
    /// What the daemon decided, as the `mail inspect` JSON, once processed.
    #[serde(default)]
    pub decision: Option<serde_json::Value>,
    /// Why processing failed (state `failed`).
    #[serde(default)]
    pub error: Option<String>,
    /// Set when retention removed the raw bytes.
    #[serde(default)]
    pub raw_purged: bool,
    /// SHA-256 of sender and body (what makes two deliveries the same mail).
    #[serde(default)]
    pub fingerprint: String,
    /// A different, earlier message carried the same Message-ID.
    #[serde(default)]
    pub reuses_message_id_of: Option<u64>,
}

/// What the spool did with a delivered message; either way the MTA may be
/// told it was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// First time we see this message.
    New(u64),
    /// Same Message-ID (or same bytes) as an earlier message: stored once.
    Duplicate(u64),
}

impl Accepted {
    /// The spool id of the stored message (the earlier one for a duplicate).
    pub fn id(self) -> u64 {
        match self {
            Accepted::New(id) | Accepted::Duplicate(id) => id,
        }
    }
}

fn meta_in(t: &Trees, id: u64) -> Result<Option<MailMeta>, StoreError> {
    t.mail_meta
        .get(id.to_be_bytes())?
        .map(|v| decode("mail_meta", &v))
        .transpose()
}

/// The message a dedup key points at, if its metadata made it to disk (a
/// key without metadata is what a crash mid-write leaves: absent).
fn dedup_target(t: &Trees, key: &str) -> Result<Option<MailMeta>, StoreError> {
    match t.mail_dedup.get(key.as_bytes())? {
        Some(v) => meta_in(t, id_from(&v)),
        None => Ok(None),
    }
}

struct Incoming {
    id: u64,
    raw: Vec<u8>,
    envelope: Envelope,
    sha: String,
    message_id: Option<String>,
    fingerprint: String,
}

impl Incoming {
    fn new(id: u64, raw: Vec<u8>, envelope: Envelope) -> Incoming {
        let sha = hex::encode(Sha256::digest(&raw));
        let message_id = header_message_id(&raw);
        let fingerprint = fingerprint(&raw);
        Incoming {
            id,
            raw,
            envelope,
            sha,
            message_id,
            fingerprint,
        }
    }

    /// Runs on the owner thread: dedup keys first, payload after.
    fn store(self, t: &Trees) -> Result<Accepted, StoreError> {
        let sha_key = format!("sha256:{}", self.sha);
        if let Some(m) = dedup_target(t, &sha_key)? {
            return Ok(Accepted::Duplicate(m.id));
        }
        let mid_key = self.message_id.as_ref().map(|m| format!("mid:{m}"));
        let mut reuses = None;
        if let Some(k) = &mid_key
            && let Some(m) = dedup_target(t, k)?
        {
            if m.fingerprint.is_empty() || m.fingerprint == self.fingerprint {
                return Ok(Accepted::Duplicate(m.id));
            }
            reuses = Some(m.id);
        }
        let id = self.id;
        t.note_ids_used(id)?;
        let k = id.to_be_bytes();
        if !t.mail_dedup.insert_new(sha_key.as_bytes(), k)? {
            // Another daemon sharing the store took this message meanwhile,
            // or a crash left a key without its message (then it is ours).
            if let Some(m) = dedup_target(t, &sha_key)? {
                return Ok(Accepted::Duplicate(m.id));
            }
            t.mail_dedup.insert(sha_key.as_bytes(), k)?;
        }
        if let (Some(mk), None) = (&mid_key, reuses) {
            t.mail_dedup.insert(mk.as_bytes(), k)?;
        }
        let meta = MailMeta {
            id,
            envelope: self.envelope,
            size: self.raw.len(),
            dedup_key: mid_key.unwrap_or(sha_key),
            state: MailState::Pending,
            decision: None,
            error: None,
            raw_purged: false,
            fingerprint: self.fingerprint,
            reuses_message_id_of: reuses,
        };
        t.mail_raw.insert(k, self.raw)?;
        t.mail_meta.insert(k, serde_json::to_vec(&meta)?)?;
        t.mail_pending.insert(k, b"")?;
        Ok(Accepted::New(id))
    }
}

impl Store {
    /// Stores the message durably (after the group flush) and queues it for
    /// processing, unless it is a redelivery of one already stored. Refused
    /// with [`StoreError::Unavailable`] while the disk is (almost) full.
    pub async fn mail_accept(
        &self,
        raw: Vec<u8>,
        envelope: Envelope,
    ) -> Result<Accepted, StoreError> {
        let (incoming, cost) = self.incoming(raw, envelope)?;
        self.engine
            .write_async(true, cost, move |t| incoming.store(t))
            .await
    }

    /// [`Store::mail_accept`] for synchronous callers.
    pub fn mail_accept_blocking(
        &self,
        raw: Vec<u8>,
        envelope: Envelope,
    ) -> Result<Accepted, StoreError> {
        let (incoming, cost) = self.incoming(raw, envelope)?;
        self.engine
            .write_costing(true, cost, move |t| incoming.store(t))
    }

    /// Refuses at once while the store cannot grow (so a full disk costs no
    /// hashing or queueing); otherwise the message with its id and cost.
    fn incoming(&self, raw: Vec<u8>, envelope: Envelope) -> Result<(Incoming, Cost), StoreError> {
        if let Some(reason) = self.refuse_growth() {
            return Err(StoreError::Unavailable(reason));
        }
        let cost = Cost::Grows(raw.len() as u64);
        Ok((Incoming::new(self.engine.alloc_id()?, raw, envelope), cost))
    }

    /// Messages accepted but not processed yet, oldest first.
    pub fn mail_pending(&self) -> Result<Vec<u64>, StoreError> {
        self.trees()?
            .mail_pending
            .iter()
            .keys()
            .map(|k| Ok(id_from(&k?)))
            .collect()
    }

    /// Claims a pending message for this daemon's worker for `lease_ms`:
    /// false when it is no longer pending, or another daemon sharing the
    /// store holds an unexpired claim on it (the claim lapses by itself if
    /// that daemon dies). A lease of 0 (one daemon alone) claims nothing.
    pub fn mail_claim(&self, id: u64, lease_ms: u64) -> Result<bool, StoreError> {
        if lease_ms == 0 {
            return Ok(true);
        }
        self.engine.write(true, move |t| {
            let k = id.to_be_bytes();
            let Some(v) = t.mail_pending.claim(k)? else {
                return Ok(false);
            };
            let now = super::now_ms();
            let until = <[u8; 8]>::try_from(v.as_ref()).map_or(0, u64::from_be_bytes);
            if until > now {
                return Ok(false);
            }
            t.mail_pending
                .insert(k, now.saturating_add(lease_ms).to_be_bytes())?;
            Ok(true)
        })
    }

    /// The raw message bytes; `None` when unknown or purged by retention.
    pub fn mail_raw(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees()?
            .mail_raw
            .get(id.to_be_bytes())?
            .map(|v| v.to_vec()))
    }

    /// The spool's record of message `id`, `None` when unknown.
    pub fn mail_meta(&self, id: u64) -> Result<Option<MailMeta>, StoreError> {
        meta_in(&*self.trees()?, id)
    }

    /// Records the outcome and takes the message off the pending list, durably.
    pub async fn mail_finish(&self, id: u64, outcome: MailOutcome) -> Result<(), StoreError> {
        self.engine
            .write_async(true, Cost::Small, move |t| outcome.apply(t, id))
            .await
    }

    /// [`Store::mail_finish`] for synchronous callers.
    pub fn mail_finish_blocking(&self, id: u64, outcome: MailOutcome) -> Result<(), StoreError> {
        self.engine.write(true, move |t| outcome.apply(t, id))
    }

    /// Puts a processed or failed message back on the pending list. False
    /// when there is no such message or its raw bytes were purged.
    pub fn mail_requeue(&self, id: u64) -> Result<bool, StoreError> {
        self.engine.write(true, move |t| {
            let Some(mut meta) = meta_in(t, id)? else {
                return Ok(false);
            };
            if !t.mail_raw.contains_key(id.to_be_bytes())? {
                return Ok(false);
            }
            meta.state = MailState::Pending;
            meta.error = None;
            let k = id.to_be_bytes();
            t.mail_meta.insert(k, serde_json::to_vec(&meta)?)?;
            t.mail_pending.insert(k, b"")?;
            Ok(true)
        })
    }

    /// All stored messages' metadata, newest first, at most `limit`.
    pub fn mail_list(&self, limit: usize) -> Result<Vec<MailMeta>, StoreError> {
        let mut out = Vec::new();
        for item in self.trees()?.mail_meta.iter().rev().take(limit) {
            let (_, v) = item?;
            out.push(decode("mail_meta", &v)?);
        }
        Ok(out)
    }

    /// Drops the raw bytes of processed messages received before `cutoff`;
    /// metadata and decisions stay. Scans on the caller's thread and writes
    /// in small batches so intake is never held up behind a long purge.
    pub fn mail_purge_raw_before(&self, cutoff: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut due = Vec::new();
        for item in self.trees()?.mail_meta.iter() {
            let (_, v) = item?;
            let meta: MailMeta = decode("mail_meta", &v)?;
            if !meta.raw_purged
                && meta.state != MailState::Pending
                && meta.envelope.received_at < cutoff
            {
                due.push(meta.id);
            }
        }
        let mut purged = 0;
        for chunk in due.chunks(256) {
            let chunk = chunk.to_vec();
            purged += self.engine.write(true, move |t| {
                let mut n = 0;
                for id in chunk {
                    let Some(mut meta) = meta_in(t, id)? else {
                        continue;
                    };
                    if meta.raw_purged || meta.state == MailState::Pending {
                        continue;
                    }
                    meta.raw_purged = true;
                    let k = id.to_be_bytes();
                    t.mail_raw.remove(k)?;
                    t.mail_meta.insert(k, serde_json::to_vec(&meta)?)?;
                    n += 1;
                }
                Ok(n)
            })?;
        }
        Ok(purged)
    }
}

/// What processing a message came to.
#[derive(Debug, Clone)]
pub struct MailOutcome {
    /// `Processed` or `Failed`.
    pub state: MailState,
    /// The `mail inspect` JSON of the decision, stored in [`MailMeta::decision`].
    pub decision: Option<serde_json::Value>,
    /// Why processing failed.
    pub error: Option<String>,
}

impl MailOutcome {
    fn apply(self, t: &Trees, id: u64) -> Result<(), StoreError> {
        let Some(mut meta) = meta_in(t, id)? else {
            return Err(StoreError::Corrupt {
                tree: "mail_meta",
                message: format!("no metadata for mail {id}"),
            });
        };
        meta.state = self.state;
        meta.decision = self.decision;
        meta.error = self.error;
        let k = id.to_be_bytes();
        t.mail_meta.insert(k, serde_json::to_vec(&meta)?)?;
        t.mail_pending.remove(k)?;
        Ok(())
    }
}

fn id_from(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[8 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    u64::from_be_bytes(b)
}

/// SHA-256 of the `From:` value and the body: equal for two deliveries of
/// one mail (transit headers differ), different for another mail that
/// reuses its Message-ID.
fn fingerprint(raw: &[u8]) -> String {
    let end = find_header_end(raw);
    let mut h = Sha256::new();
    h.update(header_value(&raw[..end], b"from:").unwrap_or_default());
    h.update([0u8]);
    h.update(&raw[end..]);
    hex::encode(h.finalize())
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
    let header = &raw[..find_header_end(raw)];
    let value = header_value(header, b"message-id:")?;
    let v = String::from_utf8_lossy(&value);
    let v = v.trim();
    let v = v
        .strip_prefix('<')
        .and_then(|s| s.split('>').next())
        .unwrap_or(v)
        .trim();
    (!v.is_empty()).then(|| v.to_string())
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

/// The unfolded value of the first header named `name` (lower case, with
/// the colon), from a header block.
fn header_value(header: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let mut lines = header.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = trim_cr(line);
        if line.len() < name.len() || !line[..name.len()].eq_ignore_ascii_case(name) {
            continue;
        }
        let mut value = line[name.len()..].to_vec();
        while let Some(next) = lines.peek() {
            if next.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                value.extend_from_slice(trim_cr(next));
                lines.next();
            } else {
                break;
            }
        }
        return Some(value);
    }
    None
}
