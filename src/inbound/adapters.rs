//! The worker's ports implemented over the real services: the FAQ engine
//! ([`EngineOracle`]) and the notifier and its outbox ([`NotifyActions`]).
//! Team addresses and ticket mail are the desk's (`desk::teams`, `desk::service`).

use std::sync::Arc;

use serde_json::json;

use super::ports::{FaqHit, FaqOracle};
use super::worker::{ActionError, Actions, AutoKind, AutoMail, Sent};
use crate::desk::routing::Route;
use crate::domain::{EmailAddress, Lang, Mailbox, OrderId};
use crate::faq;
use crate::notify::{AutoSubmitted, EnqueueOutcome, ImportReport, Kind, Notifier, OutgoingMail};

/// The FAQ engine as the inbound analysis sees it.
pub struct EngineOracle(pub Arc<faq::Engine>);

impl FaqOracle for EngineOracle {
    fn ask(&self, text: &str, lang: Lang) -> FaqHit {
        let a = self.0.ask(text, Some(lang));
        let entry = a.id.as_deref().and_then(|id| self.0.entry(id, a.lang));
        FaqHit {
            answered: a.answered,
            id: a.id.clone(),
            question: a.question.clone(),
            confidence: a.confidence,
            needs_person: entry.is_some_and(|e| e.needs_person),
            team: entry.and_then(|e| e.team.parse::<Route>().ok()),
        }
    }
}

/// Side effects through the notifier: every mail goes through the durable
/// outbox with the worker's idempotency key.
pub struct NotifyActions {
    pub notifier: Notifier,
    pub faq: Arc<faq::Engine>,
    /// Where "reach a person" points in an FAQ answer.
    pub support_address: String,
}

fn failed(e: impl std::fmt::Display) -> ActionError {
    ActionError::Failed(e.to_string())
}

impl Actions for NotifyActions {
    fn send(&self, mail: AutoMail) -> Result<Sent, ActionError> {
        let to: Mailbox = mail.to.parse().map_err(failed)?;
        let so: Option<OrderId> = mail.orders.first().and_then(|s| s.parse().ok());
        let (kind, extra, auto) = match &mail.kind {
            AutoKind::FaqAnswer { entry_id } => {
                let entry = self
                    .faq
                    .entry(entry_id, mail.lang)
                    .ok_or_else(|| failed(format!("no FAQ entry {entry_id}")))?;
                (
                    Kind::FaqAnswer,
                    json!({
                        "question": entry.question,
                        "text": entry.answer,
                        "support": self.support_address,
                        "subject": bare_subject(&mail.subject),
                    }),
                    AutoSubmitted::AutoReplied,
                )
            }
            AutoKind::CommandDone { command, so, ok } => (
                Kind::CommandDone,
                json!({
                    "command": command,
                    "command_name": command.to_uppercase(),
                    "ok": ok,
                    "so_ref": so,
                }),
                AutoSubmitted::AutoReplied,
            ),
        };
        let outcome = self
            .notifier
            .enqueue(OutgoingMail {
                kind,
                to,
                lang: mail.lang,
                // Team mails describe the order; customer mails only when
                // the analysis authorized the sender (orders are empty else).
                so,
                extra,
                in_reply_to: mail.in_reply_to.clone(),
                references: mail.references.clone(),
                auto,
                idempotency_key: mail.key.clone(),
                requested_by: "edesk inbound".into(),
            })
            .map_err(failed)?;
        Ok(match outcome {
            EnqueueOutcome::Queued { message_id, .. } => Sent::Queued(message_id),
            // Queued by an earlier run of the same message (crash, restart).
            EnqueueOutcome::Duplicate => Sent::Queued(
                self.notifier
                    .store()
                    .message_id_for_key(&mail.key)
                    .map_err(failed)?
                    .unwrap_or_default(),
            ),
            EnqueueOutcome::Skipped { reason } => Sent::Skipped(reason),
        })
    }

    fn suppress(&self, address: &str, reason: &str) -> Result<(), ActionError> {
        let email: EmailAddress = address.parse().map_err(failed)?;
        self.notifier
            .store()
            .suppress(&email, reason)
            .map_err(failed)
    }

    fn unsubscribe(&self, address: &str) -> Result<(), ActionError> {
        let email: EmailAddress = address.parse().map_err(failed)?;
        self.notifier
            .store()
            .set_preference(&email, None, false)
            .map_err(failed)
    }

    fn restore(&self, so: &str, by: &str) -> Result<bool, ActionError> {
        let so: OrderId = so.parse().map_err(failed)?;
        let Some(mut order) = self.notifier.store().order(&so).map_err(failed)? else {
            return Ok(false);
        };
        if !order.archived {
            return Ok(false);
        }
        order.archived = false;
        let mut report = ImportReport::default();
        self.notifier
            .import(vec![order], by, &mut report)
            .map_err(failed)?;
        Ok(true)
    }

    fn resend(&self, so: &str, to: &str, key: &str) -> Result<bool, ActionError> {
        let so: OrderId = so.parse().map_err(failed)?;
        let to: Mailbox = to.parse().map_err(failed)?;
        let Some(order) = self.notifier.store().order(&so).map_err(failed)? else {
            return Ok(false);
        };
        if order.archived || order.has_open_hold() {
            return Ok(false);
        }
        let lang = order
            .recipients
            .iter()
            .find(|r| r.email == to.email)
            .map(|r| order.lang_for(r))
            .unwrap_or(order.lang);
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

/// The customer's subject without the reply prefixes it already carries.
fn bare_subject(s: &str) -> String {
    let b = crate::inbound::command::bare_subject(s).trim();
    b.to_string()
}
