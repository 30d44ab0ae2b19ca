//! What happens when a mail does not arrive: a refusal or exhausted retries
//! at the relay (the sender), or a bounce that comes back later (inbound).
//!
//! Both end here, so the rules hold in one place: a configured team address
//! is never suppressed automatically (a team that stops receiving
//! escalations is an incident, not a bad customer address), an undeliverable
//! escalation is logged at error level and counted for `/metrics`, and the
//! [`DeliveryListener`] the daemon installs records it on the ticket.

use std::sync::Arc;

use chrono::Utc;

use super::{Kind, Notifier, NotifyError};
use crate::domain::{EmailAddress, OrderId};
use crate::store::{BounceRecord, OutboxItem};

/// The `/metrics` counter of escalations that could not be delivered.
pub const ESCALATION_UNDELIVERABLE: &str = "escalation_undeliverable";

/// A mail that will not arrive.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The mail's kind (`team_escalation`…).
    pub kind: String,
    /// The address it does not reach.
    pub to: EmailAddress,
    /// Its Message-ID, when it was queued.
    pub message_id: Option<String>,
    /// The ticket it is about, when the mail says (`extra.ticket`).
    pub ticket: Option<String>,
    /// `not sent` (refused by the outbox: suppressed address), `relay`
    /// (refused at SMTP time, or retries exhausted) or `bounce`.
    pub how: &'static str,
    /// What the outbox, the relay or the report said.
    pub detail: String,
}

impl Failure {
    /// A queued mail that failed later.
    pub fn of_item(item: &OutboxItem, how: &'static str, detail: String) -> Failure {
        Failure {
            kind: item.kind.clone(),
            to: item.to.clone(),
            message_id: Some(item.message_id.clone()),
            ticket: item.ticket.clone(),
            how,
            detail,
        }
    }
}

/// Told about every mail that will not arrive (installed by the daemon, which
/// records failed escalations on their ticket).
pub trait DeliveryListener: Send + Sync {
    /// Called for every failure, after the log (and, for an escalation, the
    /// counter); errors are the listener's to log.
    fn undeliverable(&self, failure: &Failure);
}

/// A delivery report as inbound read it, before it is matched to a mail.
#[derive(Debug, Clone, Default)]
pub struct BounceReport {
    /// Message-IDs quoted in the report (the returned message's first).
    pub message_ids: Vec<String>,
    /// The VERP token of `bounces+TOKEN@`, when the report came back that way.
    pub token: Option<String>,
    /// The address the report says failed.
    pub recipient: Option<String>,
    /// Permanent failure (5.x.x): the mail is reported undeliverable.
    pub hard: bool,
    /// The enhanced status code (`5.1.1`) when the report gave one.
    pub status: Option<String>,
    /// The remote server's words (`Diagnostic-Code`), when given.
    pub diagnostic: Option<String>,
    /// The inbound message carrying the report (`mail:ID`).
    pub reference: String,
}

impl Notifier {
    /// Installs the listener told about undeliverable mail (once).
    pub fn set_listener(&self, listener: Arc<dyn DeliveryListener>) {
        let _ = self.inner.listener.set(listener);
    }

    /// Addresses never suppressed automatically (the configured teams').
    pub fn set_protected<'a>(&self, addresses: impl IntoIterator<Item = &'a str>) {
        let list = addresses
            .into_iter()
            .filter_map(|a| a.parse::<EmailAddress>().ok())
            .map(|a| a.key())
            .collect();
        *self
            .inner
            .protected
            .write()
            .unwrap_or_else(|p| p.into_inner()) = list;
    }

    /// Whether `email` is a configured team address.
    pub fn is_protected(&self, email: &EmailAddress) -> bool {
        let key = email.key();
        self.inner
            .protected
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
    }

    /// Puts `email` on the suppression list after a permanent failure,
    /// unless it is a team address (then it is logged at error level and
    /// mailed again next time). Returns whether it was suppressed.
    pub fn suppress_failed(&self, email: &EmailAddress, reason: &str) -> Result<bool, NotifyError> {
        if self.is_protected(email) {
            tracing::error!(address = %email, %reason, "team address failed permanently; not suppressed (fix the team's mailbox or desk.teams)");
            return Ok(false);
        }
        self.store().suppress(email, reason)?;
        Ok(true)
    }

    /// Reports a mail that will not arrive: error log and counter for an
    /// escalation, then the listener.
    pub fn undeliverable(&self, failure: Failure) {
        let f = &failure;
        if f.kind == Kind::TeamEscalation.as_str() {
            tracing::error!(to = %f.to, ticket = ?f.ticket, mid = ?f.message_id, how = f.how, detail = %f.detail, "escalation could not be delivered to the team");
            if let Err(e) = self.store().bump_stat(ESCALATION_UNDELIVERABLE) {
                tracing::error!(error = %e, "cannot count an undeliverable escalation");
            }
        } else {
            tracing::warn!(to = %f.to, kind = %f.kind, mid = ?f.message_id, how = f.how, detail = %f.detail, "mail could not be delivered");
        }
        if let Some(l) = self.inner.listener.get() {
            l.undeliverable(&failure);
        }
    }

    /// Records a bounce on the mail it reports on: the one whose Message-ID
    /// it quotes, else the latest one to the failed recipient under its VERP
    /// token. Returns that mail, or `None` when nothing matches. A hard
    /// bounce makes the mail undeliverable (reported once per report).
    pub fn record_bounce(&self, r: &BounceReport) -> Result<Option<OutboxItem>, NotifyError> {
        let Some(item) = self.bounced_item(r)? else {
            return Ok(None);
        };
        let record = BounceRecord {
            hard: r.hard,
            status: r.status.clone(),
            diagnostic: r.diagnostic.clone(),
            recipient: r.recipient.clone(),
            at: Utc::now(),
            reference: Some(r.reference.clone()),
        };
        let new = self.store().record_bounce(item.id, record)?;
        if new && r.hard {
            let detail = [r.status.as_deref(), r.diagnostic.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            self.undeliverable(Failure::of_item(&item, "bounce", detail));
        }
        Ok(Some(item))
    }

    /// An escalation the outbox would not queue (its address is
    /// suppressed: by an operator, or by an earlier version): reported like
    /// one that fails later. Other skipped mail is ordinary (preferences).
    pub(crate) fn skipped(&self, m: &super::OutgoingMail, reason: &str) {
        if m.kind != Kind::TeamEscalation {
            return;
        }
        self.undeliverable(Failure {
            kind: m.kind.as_str().to_string(),
            to: m.to.email.clone(),
            message_id: None,
            ticket: m.extra["ticket"].as_str().map(str::to_string),
            how: "not sent",
            detail: reason.to_string(),
        });
    }

    fn bounced_item(&self, r: &BounceReport) -> Result<Option<OutboxItem>, NotifyError> {
        let store = self.store();
        for mid in &r.message_ids {
            if let Some(item) = store.outbox_by_message_id(mid)? {
                return Ok(Some(item));
            }
        }
        let Some(target) = r
            .token
            .as_deref()
            .map(|t| store.order_by_token(t))
            .transpose()?
            .flatten()
        else {
            return Ok(None);
        };
        let so: Option<&OrderId> = target.so.as_ref();
        Ok(store.last_mail_to(so, &target.email)?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::domain::Mailbox;
    use crate::notify::{AutoSubmitted, EnqueueOutcome, OutgoingMail};

    #[derive(Default)]
    struct Seen(Mutex<Vec<(String, &'static str)>>);
    impl DeliveryListener for Seen {
        fn undeliverable(&self, f: &Failure) {
            self.0.lock().unwrap().push((f.kind.clone(), f.how));
        }
    }

    fn escalation(n: &Notifier, to: &str) -> (u64, String) {
        let out = n
            .enqueue(OutgoingMail {
                kind: Kind::TeamEscalation,
                to: to.parse::<Mailbox>().unwrap(),
                lang: crate::domain::Lang::En,
                so: None,
                extra: serde_json::json!({"ticket": "T-000001"}),
                in_reply_to: None,
                references: vec![],
                auto: AutoSubmitted::AutoGenerated,
                idempotency_key: format!("esc:{to}"),
                requested_by: "test".into(),
            })
            .unwrap();
        match out {
            EnqueueOutcome::Queued {
                outbox_id,
                message_id,
            } => (outbox_id, message_id.to_string()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_team_address_is_never_suppressed_and_its_bounce_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let n = crate::notify::tests::notifier(dir.path());
        n.set_protected(["ExportOps@Cisco.example"]);
        let seen = Arc::new(Seen::default());
        n.set_listener(seen.clone());
        let team: EmailAddress = "exportops@cisco.example".parse().unwrap();
        let customer: EmailAddress = "ana@example.org".parse().unwrap();
        assert!(!n.suppress_failed(&team, "550 5.1.1").unwrap());
        assert!(!n.store().is_suppressed(&team).unwrap());
        assert!(n.suppress_failed(&customer, "550 5.1.1").unwrap());
        assert!(n.store().is_suppressed(&customer).unwrap());

        let (id, mid) = escalation(&n, "exportops@cisco.example");
        let report = BounceReport {
            message_ids: vec!["someone-else@x".into(), mid.trim_matches(['<', '>']).into()],
            token: None,
            recipient: Some(team.to_string()),
            hard: true,
            status: Some("5.2.2".into()),
            diagnostic: Some("smtp; 552 mailbox full".into()),
            reference: "mail:9".into(),
        };
        let item = n.record_bounce(&report).unwrap().unwrap();
        assert_eq!(item.id, id);
        // The same report processed again (after a crash) counts once.
        n.record_bounce(&report).unwrap();
        assert_eq!(n.store().stat(ESCALATION_UNDELIVERABLE).unwrap(), 1);
        assert_eq!(
            *seen.0.lock().unwrap(),
            vec![("team_escalation".to_string(), "bounce")]
        );
        let b = n.store().outbox_item(id).unwrap().unwrap().bounce.unwrap();
        assert_eq!(b.status.as_deref(), Some("5.2.2"));
        // A report that names nothing we sent matches nothing.
        let stray = BounceReport {
            message_ids: vec!["nope@x".into()],
            reference: "mail:10".into(),
            ..report
        };
        assert!(n.record_bounce(&stray).unwrap().is_none());
    }
}
