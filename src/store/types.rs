use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{EmailAddress, Order, OrderId};

/// State edesk owns about an order (kept across re-imports). Fields added
/// later default, so metas written by earlier versions still decode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderMeta {
    /// Bumped once per detected event; part of idempotency keys.
    pub event_seq: u64,
    /// How many times the order became available and was announced.
    pub available_count: u64,
    /// The order is deliverable-but-waiting (early ship "No" before its date).
    pub early_ship_pending: bool,
    /// Order-Based Access grants.
    pub grants: Vec<Grant>,
    pub imported_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// When the order went to the archive (the archive job, or an import
    /// that said `archived: true`); `None` while it is not archived.
    pub archived_at: Option<DateTime<Utc>>,
    /// Who archived it (`archive job`, `import`).
    pub archived_by: Option<String>,
    /// The last restore from the archive, and who asked for it. The archive
    /// age counts from here again (a restored order stays restored for the
    /// same 15 months).
    pub restored_at: Option<DateTime<Utc>>,
    pub restored_by: Option<String>,
    /// edesk changed the archive state (archive job or restore): from then
    /// on the `archived` value of a re-import is ignored, so an ordering
    /// system resending its stale copy neither restores nor re-archives.
    pub archive_owned: bool,
    /// When the PAKs were marked registered (`POST …/pak-registered`, or an
    /// import with `pak_registered: true`): reminders stop.
    pub pak_registered_at: Option<DateTime<Utc>>,
    /// PAK reminders queued so far, and when the last one was.
    pub pak_reminders: u32,
    pub pak_reminded_at: Option<DateTime<Utc>>,
    /// The download-window warning (before day 90) was queued.
    pub window_warned_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub email: EmailAddress,
    pub lines: Vec<String>,
    pub granted_by: String,
    pub at: DateTime<Utc>,
}

/// What a reply token stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenTarget {
    pub so: Option<OrderId>,
    pub email: EmailAddress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum OutboxStatus {
    Pending,
    Sent,
    Dead,
}

/// A rendered mail waiting for (or done with) delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    pub id: u64,
    pub key: String,
    pub so: Option<OrderId>,
    pub kind: String,
    pub message_id: String,
    pub envelope_from: String,
    pub to: EmailAddress,
    /// The complete RFC 5322 message. Kept in its own tree (`bodies`) so that
    /// status updates do not rewrite it: empty unless loaded by `due` or
    /// `outbox_body`.
    #[serde(skip)]
    pub raw: String,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub next_attempt_ms: u64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// A delivery report that came back after the relay accepted the mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounce: Option<BounceRecord>,
    /// The desk ticket the mail is about (escalations, acknowledgements,
    /// relays), so a failure can be noted there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// A bounce (DSN or non-delivery report) matched to the notification it
/// reports on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BounceRecord {
    /// Permanent failure (5.x.x); `false` for a temporary one (4.x.x).
    pub hard: bool,
    /// The enhanced status code (`5.1.1`) when the report gave one.
    pub status: Option<String>,
    /// The remote server's words (`Diagnostic-Code`), when given.
    pub diagnostic: Option<String>,
    /// The address the report says failed.
    pub recipient: Option<String>,
    pub at: DateTime<Utc>,
    /// The inbound message that carried the report (`mail:ID`).
    pub reference: Option<String>,
}

/// One line of an order's notification history: a mail queued, or a mail
/// that was not sent and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: u64,
    pub so: Option<OrderId>,
    pub kind: String,
    pub to: Vec<String>,
    pub lines: Vec<String>,
    pub requested_by: String,
    pub at: DateTime<Utc>,
    /// `None` when the mail was queued; the reason when it was skipped.
    pub skipped: Option<String>,
    pub outbox_id: Option<u64>,
    pub message_id: Option<String>,
}

/// A unit of mail work: its idempotency key, the outbox item (none when
/// skipped) and the history line.
#[derive(Debug, Clone)]
pub struct MailRecord {
    pub key: String,
    pub item: Option<OutboxItem>,
    pub entry: HistoryEntry,
}

/// Everything one event writes, committed atomically by `Store::commit`.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    pub order: Option<Order>,
    pub meta: Option<(OrderId, OrderMeta)>,
    pub tokens: Vec<(String, TokenTarget)>,
    pub message_ids: Vec<(String, OrderId)>,
    pub mails: Vec<MailRecord>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitOutcome {
    pub queued: Vec<u64>,
    pub skipped: usize,
    /// Keys of mail records dropped because they were committed before.
    pub duplicates: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suppression {
    pub email: EmailAddress,
    pub reason: String,
    pub at: DateTime<Utc>,
}
