//! The worker's ports implemented over the real services: the FAQ engine
//! ([`EngineOracle`]) and the notifier and its outbox ([`NotifyActions`]).
//! Team addresses and ticket mail are the desk's (`desk::teams`, `desk::service`).

use std::sync::Arc;

use serde_json::json;

use super::ports::{FaqHit, FaqOracle, FaqText};
use super::worker::{ActionError, Actions};
use crate::desk::Desk;
use crate::desk::routing::Route;
use crate::desk::tickets::{Event, EventKind};
use crate::domain::{EmailAddress, Lang, Mailbox, MessageId, OrderId};
use crate::faq;
use crate::inbound::Bounce;
use crate::notify::failures::{BounceReport, DeliveryListener, Failure};
use crate::notify::{AutoSubmitted, EnqueueOutcome, Kind, Notifier, OutgoingMail, RestoreOutcome};

/// The FAQ engine as the inbound analysis sees it.
pub struct EngineOracle {
    /// The FAQ engine the chat bots share.
    pub engine: Arc<faq::Engine>,
    /// `inbound.faq_threshold`: the confidence a mail needs to be answered.
    pub threshold: f64,
}

impl FaqOracle for EngineOracle {
    fn ask(&self, text: &str, lang: Lang) -> FaqHit {
        let (a, runners_up) = self
            .engine
            .ask_ranked(text, Some(lang), super::ports::RUNNERS_UP);
        let entry = a.id.as_deref().and_then(|id| self.engine.entry(id, a.lang));
        FaqHit {
            answered: a.id.is_some() && a.confidence >= self.threshold,
            id: a.id.clone(),
            question: a.question.clone(),
            confidence: a.confidence,
            needs_person: entry.is_some_and(|e| e.needs_person),
            team: entry.and_then(|e| e.team.parse::<Route>().ok()),
            referral: entry.is_some_and(|e| super::route::is_referral(&e.answer)),
            runners_up,
        }
    }

    fn entry(&self, id: &str, lang: Lang) -> Option<FaqText> {
        self.engine.entry(id, lang).map(|e| FaqText {
            question: e.question.clone(),
            answer: e.answer.clone(),
            needs_person: e.needs_person,
        })
    }

    fn route_model(&self) -> Option<&super::route::learned::Models> {
        Some(super::route::learned::shipped())
    }

    fn vocabulary(&self, text: &str) -> (usize, usize) {
        self.engine.langid().evidence(text)
    }
}

/// Bounces and mail commands through the notifier and its store.
pub struct NotifyActions {
    /// Records bounces, restores orders and queues resends.
    pub notifier: Notifier,
}

fn failed(e: impl std::fmt::Display) -> ActionError {
    ActionError::Failed(e.to_string())
}

impl Actions for NotifyActions {
    fn suppress(&self, address: &EmailAddress, reason: &str) -> Result<(), ActionError> {
        // A team address is never suppressed automatically (logged instead).
        self.notifier
            .suppress_failed(address, reason)
            .map(|_| ())
            .map_err(failed)
    }

    fn bounced(
        &self,
        mail: u64,
        raw: &[u8],
        bounce: &Bounce,
    ) -> Result<Option<String>, ActionError> {
        let d = crate::inbound::dsn::details(raw);
        let report = BounceReport {
            message_ids: d.message_ids,
            token: bounce.token.clone(),
            recipient: bounce.address.clone(),
            hard: bounce.hard,
            status: bounce.status.clone(),
            diagnostic: d.diagnostic,
            reference: format!("mail:{mail}"),
        };
        let item = self.notifier.record_bounce(&report).map_err(failed)?;
        Ok(item.map(|i| i.message_id))
    }

    fn unsubscribe(&self, address: &EmailAddress) -> Result<(), ActionError> {
        self.notifier
            .store()
            .set_preference(address, None, false)
            .map_err(failed)
    }

    fn restore(&self, so: &OrderId, by: &str) -> Result<bool, ActionError> {
        // The one restore path (also behind the API, the CLI and the order
        // page): the requester gets the `order_restored` mail.
        let outcome = self.notifier.restore(so, by).map_err(failed)?;
        Ok(matches!(outcome, RestoreOutcome::Restored { .. }))
    }

    fn resend(&self, so: &OrderId, to: &EmailAddress, key: &str) -> Result<bool, ActionError> {
        let Some(order) = self.notifier.store().order(so).map_err(failed)? else {
            return Ok(false);
        };
        if order.archived || order.has_open_hold() {
            return Ok(false);
        }
        let lang = order
            .recipients
            .iter()
            .find(|r| r.email == *to)
            .map(|r| order.lang_for(r))
            .unwrap_or(order.lang);
        let to = Mailbox {
            name: None,
            email: to.clone(),
        };
        let outcome = self
            .notifier
            .enqueue(OutgoingMail {
                kind: Kind::OrderAvailable,
                to,
                lang,
                so: Some(so.clone()),
                extra: json!({}),
                in_reply_to: None,
                references: vec![],
                auto: AutoSubmitted::AutoGenerated,
                idempotency_key: key.to_string(),
                requested_by: "RESEND by mail".into(),
            })
            .map_err(failed)?;
        Ok(matches!(outcome, EnqueueOutcome::Queued { .. }))
    }
}

/// Records an undeliverable escalation on its ticket (found by ticket id,
/// or by the escalation's Message-ID in the ticket's thread), so the desk
/// sees that the team never got it.
pub struct TicketFailures {
    /// The desk whose tickets record the failure.
    pub desk: Desk,
}

impl TicketFailures {
    fn ticket(&self, f: &Failure) -> Option<crate::desk::Ticket> {
        let by_id = f
            .ticket
            .as_deref()
            .and_then(|t| t.parse().ok())
            .and_then(|id| self.desk.get(id).ok());
        let by_thread = || {
            let mid: MessageId = f.message_id.as_deref()?.parse().ok()?;
            self.desk.by_thread(&[mid]).ok().flatten()
        };
        by_id.or_else(by_thread)
    }
}

impl DeliveryListener for TicketFailures {
    fn undeliverable(&self, f: &Failure) {
        if f.kind != Kind::TeamEscalation.as_str() {
            return;
        }
        let Some(ticket) = self.ticket(f) else {
            tracing::error!(to = %f.to, "undeliverable escalation belongs to no ticket");
            return;
        };
        let event = Event {
            at: chrono::Utc::now(),
            kind: EventKind::Note,
            by: "edesk".into(),
            text: format!(
                "ESCALATION NOT DELIVERED to {} ({}): {}. The team does not have this ticket; forward it by hand or fix the address.",
                f.to, f.how, f.detail
            ),
            reference: f.message_id.clone(),
        };
        if let Err(e) = self.desk.record(ticket.id, event, None, None) {
            tracing::error!(error = %e, ticket = %ticket.id, "cannot record an undeliverable escalation on its ticket");
        }
    }
}
