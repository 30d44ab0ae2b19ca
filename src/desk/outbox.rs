//! The desk's mail port: where acknowledgements, escalations to a team and
//! relayed team replies go. The daemon plugs in the notifier (durable
//! outbox, templates, MIME); tests plug in a recorder. The desk only knows
//! this trait and the shared [`OutgoingMail`] type, never the sender.

use crate::domain::MessageId;
use crate::notify::{EnqueueOutcome, Notifier, OutgoingMail};

/// The outbox could not take the mail (store or template failure). Not a
/// skip: the caller fails and the work is retried.
#[derive(Debug, Clone, thiserror::Error)]
#[error("outbox: {0}")]
pub struct OutboxError(pub String);

/// What became of a mail handed to [`Outbox::send`].
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// Durably queued with this Message-ID (or queued earlier under the
    /// same idempotency key: the first one's Message-ID).
    Queued(MessageId),
    /// Not sent, for this reason (suppressed address, preference).
    Skipped(String),
}

/// Enqueues mail durably; the same idempotency key twice sends once.
pub trait Outbox: Send + Sync {
    /// Queues `mail`, or says why it is not sent.
    fn send(&self, mail: OutgoingMail) -> Result<Sent, OutboxError>;
}

fn failed(e: impl std::fmt::Display) -> OutboxError {
    OutboxError(e.to_string())
}

impl Outbox for Notifier {
    fn send(&self, mail: OutgoingMail) -> Result<Sent, OutboxError> {
        let key = mail.idempotency_key.clone();
        match self.enqueue(mail).map_err(failed)? {
            EnqueueOutcome::Queued { message_id, .. } => Ok(Sent::Queued(message_id)),
            // Queued by an earlier run of the same request (crash, restart):
            // the caller links and records the first mail's id.
            EnqueueOutcome::Duplicate => {
                let mid = self.store().message_id_for_key(&key).map_err(failed)?;
                match mid {
                    Some(m) => m.parse().map(Sent::Queued).map_err(failed),
                    None => Ok(Sent::Skipped("skipped earlier".into())),
                }
            }
            EnqueueOutcome::Skipped { reason } => Ok(Sent::Skipped(reason)),
        }
    }
}
