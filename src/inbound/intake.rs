//! The durable spool of inbound mail. Every way a message arrives (LMTP,
//! Maildir, `edesk mail deliver`) ends in [`Spool::accept`], which returns only
//! once the raw bytes are on disk; only then may the transport acknowledge.
//!
//! The bytes and their metadata live in the store (`store::mail`); this is
//! inbound's view of it.

use chrono::{DateTime, Utc};

pub use crate::store::{Accepted, Envelope, MailMeta, MailState, dedup_key};
use crate::store::{MailOutcome, Store, StoreError, WriteMark};

/// The spool could not store or read a message.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The store failed; see [`IntakeError::is_storage_full`] for whether to
    /// ask the MTA to retry.
    #[error("mail store: {0}")]
    Store(#[from] StoreError),
}

impl IntakeError {
    /// The disk is (almost) full: the MTA should keep the mail and retry.
    pub fn is_storage_full(&self) -> bool {
        let IntakeError::Store(e) = self;
        e.is_storage_full()
    }
}

/// How long a daemon sharing the store holds a message it is processing
/// (processing takes well under a second; answers go through the outbox).
pub const CLAIM_LEASE_MS: u64 = 120_000;

/// Inbound's handle on the mail tables of the store; cheap to clone.
#[derive(Clone)]
pub struct Spool {
    store: Store,
}

impl Spool {
    /// Wraps a store (cloned handle, nothing opened).
    pub fn open(store: &Store) -> Spool {
        Spool {
            store: store.clone(),
        }
    }

    /// Stores the message durably (flushed to disk) and queues it for
    /// processing, unless it is a redelivery of one already stored.
    pub async fn accept(&self, raw: &[u8], envelope: Envelope) -> Result<Accepted, IntakeError> {
        Ok(self.store.mail_accept(raw.to_vec(), envelope).await?)
    }

    /// [`Spool::accept`] for synchronous callers.
    pub fn accept_blocking(&self, raw: &[u8], envelope: Envelope) -> Result<Accepted, IntakeError> {
        Ok(self.store.mail_accept_blocking(raw.to_vec(), envelope)?)
    }

    /// Why the store cannot take the writes processing makes (answers,
    /// tickets) right now, if it cannot: the worker then leaves mail pending
    /// instead of failing it.
    pub fn paused(&self) -> Option<String> {
        self.store.refuse_growth()
    }

    /// Messages accepted but not processed yet, oldest first (after a crash,
    /// these are what the daemon picks up again).
    pub fn pending(&self) -> Result<Vec<u64>, IntakeError> {
        Ok(self.store.mail_pending()?)
    }

    /// Takes a pending message for this daemon's worker. With a shared
    /// store another daemon may be processing it: then false, and it is
    /// theirs for [`CLAIM_LEASE_MS`] (or until they finish it).
    pub fn claim(&self, id: u64) -> Result<bool, IntakeError> {
        let lease = if self.store.is_shared() {
            CLAIM_LEASE_MS
        } else {
            0
        };
        Ok(self.store.mail_claim(id, lease)?)
    }

    /// Starts a batch of processing whose writes one [`Spool::flush`] makes durable.
    pub fn write_mark(&self) -> WriteMark {
        self.store.write_mark()
    }

    /// Makes every write since `mark` durable, or fails when the store
    /// failed meanwhile (some of them may be lost).
    pub fn flush(&self, mark: WriteMark) -> Result<(), IntakeError> {
        Ok(self.store.flush(mark)?)
    }

    /// Whether the store failed since `mark` (writes since may be lost).
    pub fn failed_since(&self, mark: WriteMark) -> bool {
        self.store.failed_since(mark)
    }

    /// Runs `f` with its writes applied without waiting for a flush each;
    /// see [`Store::deferring_flushes`].
    pub fn deferring_flushes<T>(&self, f: impl FnOnce() -> T) -> T {
        self.store.deferring_flushes(f)
    }

    /// The raw bytes of a stored message; `None` when the id is unknown.
    pub fn raw(&self, id: u64) -> Result<Option<Vec<u8>>, IntakeError> {
        Ok(self.store.mail_raw(id)?)
    }

    /// Envelope and state of a stored message; `None` when the id is unknown.
    pub fn meta(&self, id: u64) -> Result<Option<MailMeta>, IntakeError> {
        Ok(self.store.mail_meta(id)?)
    }

    /// Records the outcome and takes the message off the pending list, durably.
    pub async fn finish(
        &self,
        id: u64,
        state: MailState,
        decision: Option<serde_json::Value>,
        error: Option<String>,
    ) -> Result<(), IntakeError> {
        let outcome = MailOutcome {
            state,
            decision,
            error,
        };
        Ok(self.store.mail_finish(id, outcome).await?)
    }

    /// [`Spool::finish`] for synchronous callers.
    pub fn finish_blocking(
        &self,
        id: u64,
        state: MailState,
        decision: Option<serde_json::Value>,
        error: Option<String>,
    ) -> Result<(), IntakeError> {
        let outcome = MailOutcome {
            state,
            decision,
            error,
        };
        Ok(self.store.mail_finish_blocking(id, outcome)?)
    }

    /// Puts a processed or failed message back on the pending list (an
    /// operator retrying after fixing what made it fail). Its actions are
    /// idempotent per message, so nothing already sent is sent again.
    pub fn requeue(&self, id: u64) -> Result<bool, IntakeError> {
        Ok(self.store.mail_requeue(id)?)
    }

    /// All stored messages' metadata, newest first, at most `limit`.
    pub fn list(&self, limit: usize) -> Result<Vec<MailMeta>, IntakeError> {
        Ok(self.store.mail_list(limit)?)
    }

    /// Drops the raw bytes of processed messages received before `cutoff`;
    /// metadata and decisions stay. Returns how many were purged.
    pub fn purge_raw_before(&self, cutoff: DateTime<Utc>) -> Result<usize, IntakeError> {
        Ok(self.store.mail_purge_raw_before(cutoff)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool() -> (tempfile::TempDir, Spool) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, Spool::open(&store))
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
        // The same mail again through another path (a transit header added).
        let b = s
            .accept_blocking(
                b"Received: from mx2\r\nMessage-ID: <1@x>\r\n\r\nhello",
                Envelope::new("lmtp"),
            )
            .unwrap();
        assert!(matches!(a, Accepted::New(_)));
        assert_eq!(b, Accepted::Duplicate(a.id()));
        assert_eq!(s.pending().unwrap(), vec![a.id()]);
        // A different mail reusing the id is its own message, flagged.
        let forged = s
            .accept_blocking(
                b"From: mallory@evil.example\r\nMessage-ID: <1@x>\r\n\r\nhello again",
                Envelope::new("lmtp"),
            )
            .unwrap();
        let Accepted::New(fid) = forged else {
            panic!("a different message with a known id must be stored: {forged:?}");
        };
        assert_eq!(
            s.meta(fid).unwrap().unwrap().reuses_message_id_of,
            Some(a.id())
        );
        assert_eq!(s.pending().unwrap(), vec![a.id(), fid]);
        // Its redelivery is a duplicate of it, not of the first.
        assert_eq!(
            s.accept_blocking(
                b"From: mallory@evil.example\r\nMessage-ID: <1@x>\r\n\r\nhello again",
                Envelope::new("lmtp"),
            )
            .unwrap(),
            Accepted::Duplicate(fid)
        );
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
            let store = Store::open(dir.path()).unwrap();
            let s = Spool::open(&store);
            s.accept_blocking(b"Message-ID: <2@x>\r\n\r\nbody", Envelope::new("lmtp"))
                .unwrap()
                .id()
        };
        let store = Store::open(dir.path()).unwrap();
        let s = Spool::open(&store);
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
