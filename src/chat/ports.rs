//! What chat needs from the desk and the outbox, as two small traits, and
//! their implementation over the real services ([`ServiceDesk`],
//! [`NotifierActions`]). Tests use the same implementations on a
//! temporary store.

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;

use crate::desk::service::{Acknowledge, Customer, Relay, TeamReply, TicketRequest};
use crate::desk::tickets::{ChatUser, Event, EventKind, FaqRef};
use crate::desk::{DeskError, DeskService, Ticket, TicketId};
use crate::domain::{EmailAddress, Lang, Mailbox, OrderId, Team};
use crate::notify::{AutoSubmitted, EnqueueOutcome, Kind, Notifier, OutgoingMail, RestoreOutcome};

/// A port could not do its work (store failure, mail refused).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PortError(pub String);

fn failed(e: impl std::fmt::Display) -> PortError {
    PortError(e.to_string())
}

/// A ticket a chat conversation asks for.
#[derive(Debug, Clone)]
pub struct Escalation {
    /// Idempotency key of the request (unique per chat message).
    pub key: String,
    /// The team routing chose (eDelivery support when no rule matched).
    pub team: Team,
    /// The chat account (`platform`, `user`).
    pub user: ChatUser,
    /// The verified address linked to the account, if any.
    pub email: Option<EmailAddress>,
    /// The conversation's language, which becomes the ticket's.
    pub lang: Lang,
    /// The request's first line, at most 120 characters.
    pub subject: String,
    /// The transcript: recent messages of the conversation, then the request.
    pub text: String,
    /// Orders named in the request that the linked address may see.
    pub orders: Vec<OrderId>,
    /// The FAQ entry closest to the request, when there is one.
    pub faq: Option<FaqRef>,
    /// Why the ticket exists and how it was routed, for the team.
    pub reasons: Vec<String>,
}

/// Tickets, through the desk.
pub trait DeskPort: Send + Sync {
    /// Opens a ticket and tells the team (the chat acknowledges in session).
    fn open(&self, e: Escalation) -> Result<Ticket, PortError>;
    /// The ticket, `None` when it does not exist.
    fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, PortError>;
    /// A customer's message in a conversation with an answered ticket.
    fn customer_message(&self, id: TicketId, by: &str, text: &str) -> Result<(), PortError>;
    /// A team member's answer typed in the chat platform (a ticket thread).
    fn team_reply(
        &self,
        id: TicketId,
        by: &str,
        text: &str,
        key: &str,
    ) -> Result<Ticket, PortError>;
}

/// Mail and order actions, through the notifier's durable outbox.
pub trait Actions: Send + Sync {
    /// Mails a link code; `key` makes a retry send it once.
    fn mail_code(
        &self,
        to: &EmailAddress,
        lang: Lang,
        code: &str,
        minutes: u64,
        key: &str,
    ) -> Result<(), PortError>;
    /// Restores an archived order for `requester` (a verified recipient),
    /// who is told by mail: the addresses told, or `None` when the order was
    /// not archived.
    fn restore(
        &self,
        so: &OrderId,
        requester: &EmailAddress,
    ) -> Result<Option<Vec<String>>, PortError>;
    /// Queues the order's notification for `to` again, once per `key`.
    fn resend(&self, so: &OrderId, to: &EmailAddress, key: &str) -> Result<bool, PortError>;
    /// Stops order notifications to the address.
    fn unsubscribe(&self, email: &EmailAddress) -> Result<(), PortError>;
}

/// The desk service: the same ticket flow as mail (team mail, SLA,
/// relays), with the chat account as the customer.
pub struct ServiceDesk {
    /// The daemon's desk.
    pub service: Arc<DeskService>,
}

impl DeskPort for ServiceDesk {
    fn open(&self, e: Escalation) -> Result<Ticket, PortError> {
        let outcome = self
            .service
            .open_or_follow_up(TicketRequest {
                key: e.key.clone(),
                reference: Some(e.key),
                customer: Customer::Chat {
                    user: e.user,
                    email: e.email,
                },
                lang: e.lang,
                subject: e.subject,
                text: e.text,
                team: e.team,
                authorized: true,
                orders: e.orders,
                purchase_orders: Vec::new(),
                faq: e.faq,
                reasons: e.reasons,
                message_id: None,
                thread: Vec::new(),
                ticket: None,
                acknowledge: Acknowledge::Withhold(
                    "the chat acknowledges in the conversation".into(),
                ),
            })
            .map_err(failed)?;
        Ok(outcome.ticket)
    }

    fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, PortError> {
        match self.service.desk().get(id) {
            Ok(t) => Ok(Some(t)),
            Err(DeskError::NotFound(_)) => Ok(None),
            Err(e) => Err(failed(e)),
        }
    }

    fn customer_message(&self, id: TicketId, by: &str, text: &str) -> Result<(), PortError> {
        let event = Event {
            at: Utc::now(),
            kind: EventKind::CustomerMail,
            by: by.to_string(),
            text: text.to_string(),
            reference: Some("chat".into()),
        };
        self.service
            .desk()
            .record(id, event, None, None)
            .map(|_| ())
            .map_err(failed)
    }

    fn team_reply(
        &self,
        id: TicketId,
        by: &str,
        text: &str,
        key: &str,
    ) -> Result<Ticket, PortError> {
        let relay = self
            .service
            .relay_team_reply(TeamReply {
                ticket: id,
                by: by.to_string(),
                text: text.to_string(),
                key: Some(key.to_string()),
            })
            .map_err(failed)?;
        match relay {
            Relay::Sent { ticket, .. } | Relay::Recorded(ticket) => Ok(ticket),
            Relay::NotSent { to, reason, .. } => {
                Err(PortError(format!("answer not delivered to {to}: {reason}")))
            }
        }
    }
}

/// Order and mail actions over the notifier.
pub struct NotifierActions {
    /// The daemon's notifier.
    pub notifier: Notifier,
}

impl Actions for NotifierActions {
    fn mail_code(
        &self,
        to: &EmailAddress,
        lang: Lang,
        code: &str,
        minutes: u64,
        key: &str,
    ) -> Result<(), PortError> {
        let to: Mailbox = to.as_str().parse().map_err(failed)?;
        let outcome = self
            .notifier
            .enqueue(OutgoingMail {
                kind: Kind::AccountLinkCode,
                to,
                lang,
                so: None,
                extra: json!({ "code": code, "expires_minutes": minutes }),
                in_reply_to: None,
                references: vec![],
                auto: AutoSubmitted::AutoGenerated,
                idempotency_key: key.to_string(),
                requested_by: "edesk chat".into(),
            })
            .map_err(failed)?;
        match outcome {
            EnqueueOutcome::Skipped { reason } => Err(PortError(reason)),
            _ => Ok(()),
        }
    }

    /// The jobs' restore: the order's archive state and the
    /// `order_restored` mail are one durable change in the notifier.
    fn restore(
        &self,
        so: &OrderId,
        requester: &EmailAddress,
    ) -> Result<Option<Vec<String>>, PortError> {
        match self
            .notifier
            .restore(so, requester.as_str())
            .map_err(failed)?
        {
            RestoreOutcome::Restored { notified, .. } => Ok(Some(notified)),
            RestoreOutcome::NotArchived | RestoreOutcome::NoOrder => Ok(None),
        }
    }

    fn resend(&self, so: &OrderId, to: &EmailAddress, key: &str) -> Result<bool, PortError> {
        let Some(order) = self.notifier.store().order(so).map_err(failed)? else {
            return Ok(false);
        };
        if order.archived || order.has_open_hold() {
            return Ok(false);
        }
        let lang = order
            .recipients
            .iter()
            .find(|r| r.email.key() == to.key())
            .map(|r| order.lang_for(r))
            .unwrap_or(order.lang);
        let outcome = self
            .notifier
            .enqueue(OutgoingMail {
                kind: Kind::OrderAvailable,
                to: to.as_str().parse().map_err(failed)?,
                lang,
                so: Some(so.clone()),
                extra: json!({}),
                in_reply_to: None,
                references: vec![],
                auto: AutoSubmitted::AutoGenerated,
                idempotency_key: key.to_string(),
                requested_by: "resend from chat".into(),
            })
            .map_err(failed)?;
        Ok(matches!(outcome, EnqueueOutcome::Queued { .. }))
    }

    fn unsubscribe(&self, email: &EmailAddress) -> Result<(), PortError> {
        self.notifier
            .store()
            .set_preference(email, None, false)
            .map_err(failed)
    }
}
