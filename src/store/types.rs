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
    /// The first import of the order; later re-imports keep it.
    pub imported_at: Option<DateTime<Utc>>,
    /// The last import or state change (`notify` lifecycle).
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
    /// Who asked for the last restore (see `restored_at`).
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
    /// When the last PAK reminder was queued; the PAK job counts its interval from here.
    pub pak_reminded_at: Option<DateTime<Utc>>,
    /// The download-window warning (before day 90) was queued.
    pub window_warned_at: Option<DateTime<Utc>>,
}

/// An Order-Based Access grant: one person may see and download some lines of
/// the order. Grants only grow; a later grant to the same address adds lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    /// Who was granted access (compared by [`EmailAddress::key`]).
    pub email: EmailAddress,
    /// The order line numbers (`1.1`) the person may access.
    pub lines: Vec<String>,
    /// Who sent the first OBA request (`sent_by`); later grants keep it.
    pub granted_by: String,
    /// When the grant was first made.
    pub at: DateTime<Utc>,
}

/// What a reply token stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenTarget {
    /// The order the token gives access to; `None` when the mail it was minted
    /// for is about no order.
    pub so: Option<OrderId>,
    /// The recipient the token was minted for.
    pub email: EmailAddress,
}

/// Where an outbox item is in its delivery (JSON field `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum OutboxStatus {
    /// Queued: the sender tries it at `next_attempt_ms`.
    Pending,
    /// The relay accepted it (`sent_at`); a later bounce can still arrive.
    Sent,
    /// Failed permanently or ran out of attempts; `retry` puts it back in the queue.
    Dead,
}

/// A rendered mail waiting for (or done with) delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// The outbox id, from the store's id sequence (shared with history entries).
    pub id: u64,
    /// The idempotency key the mail was committed under.
    pub key: String,
    /// The order the mail is about, `None` for mail not tied to one order.
    pub so: Option<OrderId>,
    /// The mail kind (`notify::Kind` name, e.g. `order_available`).
    pub kind: String,
    /// The mail's Message-ID, bracketed (`<…>`).
    pub message_id: String,
    /// SMTP `MAIL FROM`: a VERP address (`bounces+TOKEN@domain`) so a bounce names the recipient.
    pub envelope_from: String,
    /// The single recipient.
    pub to: EmailAddress,
    /// The complete RFC 5322 message. Kept in its own tree (`bodies`) so that
    /// status updates do not rewrite it: empty unless loaded by `due` or
    /// `outbox_body`.
    #[serde(skip)]
    pub raw: String,
    /// The delivery state.
    pub status: OutboxStatus,
    /// Delivery attempts so far; `retry` resets it to 0.
    pub attempts: u32,
    /// When the sender tries next, unix milliseconds.
    pub next_attempt_ms: u64,
    /// The error of the last failed attempt.
    pub last_error: Option<String>,
    /// When the mail was rendered and queued.
    pub created_at: DateTime<Utc>,
    /// When the relay accepted it; `None` until sent.
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
    /// When the report was matched.
    pub at: DateTime<Utc>,
    /// The inbound message that carried the report (`mail:ID`).
    pub reference: Option<String>,
}

/// One line of an order's notification history: a mail queued, or a mail
/// that was not sent and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The id the mail got; equals `outbox_id` when the mail was queued.
    pub id: u64,
    /// The order the mail is about (the history is keyed by it).
    pub so: Option<OrderId>,
    /// The mail kind (`notify::Kind` name).
    pub kind: String,
    /// The recipient addresses.
    pub to: Vec<String>,
    /// The order lines the mail is about.
    pub lines: Vec<String>,
    /// Who or what asked for the mail (a user, `edesk chat`, `RESEND by mail`, a job).
    pub requested_by: String,
    /// When the mail was queued or skipped.
    pub at: DateTime<Utc>,
    /// `None` when the mail was queued; the reason when it was skipped.
    pub skipped: Option<String>,
    /// The outbox item, `None` when skipped.
    pub outbox_id: Option<u64>,
    /// The queued mail's Message-ID (bracketed), `None` when skipped.
    pub message_id: Option<String>,
}

/// A unit of mail work: its idempotency key, the outbox item (none when
/// skipped) and the history line.
#[derive(Debug, Clone)]
pub struct MailRecord {
    /// Idempotency key: a record whose key was committed before is dropped.
    pub key: String,
    /// The mail to queue, `None` when it is skipped.
    pub item: Option<OutboxItem>,
    /// The history line, written in both cases.
    pub entry: HistoryEntry,
}

/// Everything one event writes, committed atomically by `Store::commit`.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    /// The order to write (an import or a change), if any.
    pub order: Option<Order>,
    /// The order meta to write, if any.
    pub meta: Option<(OrderId, OrderMeta)>,
    /// Reply tokens to index (`tok/TOKEN`).
    pub tokens: Vec<(String, TokenTarget)>,
    /// Message-IDs to thread to an order (`mid/MESSAGE-ID`).
    pub message_ids: Vec<(String, OrderId)>,
    /// Mails to queue or record as skipped.
    pub mails: Vec<MailRecord>,
}

/// What [`Commit`] did with its mails.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitOutcome {
    /// Outbox ids queued, in commit order.
    pub queued: Vec<u64>,
    /// Mails recorded as skipped (history only).
    pub skipped: usize,
    /// Keys of mail records dropped because they were committed before.
    pub duplicates: Vec<String>,
}

/// An address that gets no more mail (a hard bounce, a permanent refusal), keyed by
/// [`EmailAddress::key`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suppression {
    /// The suppressed address.
    pub email: EmailAddress,
    /// Why, e.g. `hard bounce` or the remote server's status.
    pub reason: String,
    /// When it was suppressed.
    pub at: DateTime<Utc>,
}
