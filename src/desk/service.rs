//! The desk as one service: open a ticket or follow one up, acknowledge the
//! customer, mail the team, relay a team's answer, record notes, close.
//!
//! Every channel calls this same service: inbound mail (the worker decides
//! to escalate, then hands over a [`TicketRequest`]), chat (`escalate` in a
//! session), jobs, the HTTP API and `edesk desk reply`. It talks to the
//! outside only through two ports: [`Outbox`] (durable mail) and [`Teams`]
//! (team addresses); it never imports inbound or chat.
//!
//! Idempotency: every mail's outbox key derives from the request's `key`
//! and a customer message's `reference` is stored in the ticket, so a
//! request handled again after a crash finds what it did and repeats
//! nothing visible.

use std::sync::Arc;

use chrono::Utc;

use super::guard::{AutoMailGuard, Verdict};
use super::outbox::{Outbox, Sent};
use super::teams::{Teams, team_label};
use super::tickets::{
    ChatUser, Desk, DeskError, Event, EventKind, FaqRef, NewTicket, Ticket, TicketId, TicketStatus,
};
use crate::domain::{EmailAddress, Lang, Mailbox, MessageId, OrderId, Team};
use crate::notify::{OutgoingMail, TicketContext, TicketMail};

/// Who asked: a mail correspondent, a chat user (with the address linked
/// to the account, if any), or a mail sender without a usable address.
#[derive(Debug, Clone, PartialEq)]
pub enum Customer {
    /// Wrote by mail from this address.
    Mail(EmailAddress),
    /// Wrote in a chat; `email` is the verified address linked to the
    /// account (acknowledgements and relays go there), if any.
    Chat {
        /// The chat account.
        user: ChatUser,
        /// The verified address linked to it, if any.
        email: Option<EmailAddress>,
    },
    /// A mail whose sender is missing or not an address: kept as written,
    /// never mailed.
    Unreachable(String),
}

impl Customer {
    /// How the ticket shows and compares the customer: the address, else
    /// `platform:user`, else the sender as written.
    pub fn label(&self) -> String {
        match self {
            Customer::Mail(e) | Customer::Chat { email: Some(e), .. } => e.to_string(),
            Customer::Chat { user, email: None } => user.to_string(),
            Customer::Unreachable(s) => s.clone(),
        }
    }

    /// Where mail for the customer goes.
    pub fn email(&self) -> Option<&EmailAddress> {
        match self {
            Customer::Mail(e) | Customer::Chat { email: Some(e), .. } => Some(e),
            _ => None,
        }
    }

    fn chat(&self) -> Option<ChatUser> {
        match self {
            Customer::Chat { user, .. } => Some(user.clone()),
            _ => None,
        }
    }

    /// What the order history says asked for the mail.
    fn via(&self) -> &'static str {
        match self {
            Customer::Chat { .. } => "edesk chat",
            _ => "edesk inbound",
        }
    }
}

/// Whether the desk mails the customer an acknowledgement of a new ticket.
#[derive(Debug, Clone, PartialEq)]
pub enum Acknowledge {
    /// Mail one (in the customer's thread; loop guard and authorization
    /// still apply).
    ByMail,
    /// Do not, for this reason (machine mail; a chat answers in session).
    Withhold(String),
}

/// A customer's request to a person: opens a ticket, or follows up the
/// open ticket it belongs to.
#[derive(Debug, Clone)]
pub struct TicketRequest {
    /// Idempotency key of the request, unique per incoming message
    /// (`inbound:42`, `chat:discord:123:7`); outbox keys derive from it.
    pub key: String,
    /// Recorded on the customer's event (`mail:42`); a request whose
    /// reference a ticket already holds is a retry and changes nothing.
    pub reference: Option<String>,
    /// Who asked, and whether they can be mailed.
    pub customer: Customer,
    /// The customer's language (acknowledgement and relayed replies).
    pub lang: Lang,
    /// The subject (mail) or a one-line summary (chat).
    pub subject: String,
    /// The customer's text: the new text of a mail, or a chat transcript.
    pub text: String,
    /// The team the routing rules chose.
    pub team: Team,
    /// SO numbers of the store the customer named.
    pub orders: Vec<OrderId>,
    /// PO numbers the customer named that the store does not know, as
    /// written (an order the store knows is in `orders`).
    pub purchase_orders: Vec<String>,
    /// The customer may see these orders' details (recipient or OBA grant).
    /// An unauthorized request about orders gets no automatic mail.
    pub authorized: bool,
    /// The closest FAQ entry, attached for the team.
    pub faq: Option<FaqRef>,
    /// Why it was escalated.
    pub reasons: Vec<String>,
    /// The customer's own Message-ID (mail only).
    pub message_id: Option<MessageId>,
    /// The ids the message answers (In-Reply-To, References): a message in
    /// an open ticket's thread follows that ticket up.
    pub thread: Vec<MessageId>,
    /// The ticket this continues, when the caller knows it (a chat session
    /// that opened one); else found from the thread.
    pub ticket: Option<TicketId>,
    /// Whether a new ticket is acknowledged by mail; a follow-up never is.
    pub acknowledge: Acknowledge,
}

/// What [`DeskService::open_or_follow_up`] did with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// A new ticket.
    Opened,
    /// Added to the customer's open ticket.
    FollowedUp,
    /// The same request was recorded before (a retry): nothing done.
    AlreadyRecorded,
}

/// The ticket a request ended in, and what was done, in words (inbound
/// stores them with the message; chat may show them).
#[derive(Debug, Clone)]
pub struct TicketOutcome {
    /// The ticket as stored after the request.
    pub ticket: Ticket,
    /// Opened, followed up, or found already recorded.
    pub disposition: Disposition,
    /// What was done, one short phrase each (`ticket T-000042 for exportops`,
    /// `acknowledgement sent to …`, `no acknowledgement: …`).
    pub done: Vec<String>,
}

/// A team's answer to relay to the customer.
#[derive(Debug, Clone)]
pub struct TeamReply {
    /// The ticket the answer belongs to.
    pub ticket: TicketId,
    /// Who answered (operator name, or `team <address>` for a mail).
    pub by: String,
    /// The answer as the team wrote it, relayed verbatim.
    pub text: String,
    /// Idempotency key of the reply (`inbound:42:relay` for a team's mail);
    /// `None` for a typed reply: `ticket:T-…:reply:N`, N the event count.
    pub key: Option<String>,
}

/// What became of a team's answer.
#[derive(Debug, Clone)]
pub enum Relay {
    /// Mailed in the customer's thread and recorded.
    Sent {
        /// The ticket with the reply recorded (status answered).
        ticket: Ticket,
        /// The relayed mail's Message-ID, now in the ticket's thread.
        message_id: MessageId,
    },
    /// Recorded only: the customer is a chat user without an address (the
    /// chat delivers it from the ticket).
    Recorded(Ticket),
    /// Not mailed and not recorded, for this reason (suppressed address…).
    NotSent {
        /// The ticket, unchanged.
        ticket: Ticket,
        /// The customer as the ticket shows them (address or `platform:user`).
        to: String,
        /// Why the outbox or the desk did not send it.
        reason: String,
    },
}

/// The template values of a ticket mail; `text` replaces the customer's
/// first message (a relay shows the team's answer).
pub fn ticket_context(t: &Ticket, kind: TicketMail, text: Option<&str>) -> TicketContext {
    TicketContext {
        kind,
        ticket: t.id.to_string(),
        team: team_label(t.team).to_string(),
        business_days: t.sla_business_days,
        due: t.due.to_string(),
        customer: t.customer.clone(),
        text: text
            .map(str::to_string)
            .or_else(|| t.events.first().map(|e| e.text.clone()))
            .unwrap_or_default(),
        question: t.faq.as_ref().map(|f| f.question.clone()),
        reasons: t.reasons.join("; "),
        handed_over: true,
        orders: t.orders.iter().map(ToString::to_string).collect(),
        purchase_orders: t.purchase_orders.clone(),
    }
}

/// How many ids of a mail's thread are looked up (a hostile mail may list
/// thousands).
const MAX_THREAD_IDS: usize = 50;

/// The desk service (cheap to share behind an `Arc`).
pub struct DeskService {
    desk: Desk,
    guard: AutoMailGuard,
    outbox: Arc<dyn Outbox>,
    teams: Arc<dyn Teams>,
}

impl DeskService {
    /// Wires the service over its tickets, loop guard and ports.
    pub fn new(
        desk: Desk,
        guard: AutoMailGuard,
        outbox: Arc<dyn Outbox>,
        teams: Arc<dyn Teams>,
    ) -> Self {
        DeskService {
            desk,
            guard,
            outbox,
            teams,
        }
    }

    /// The tickets (read side: list, show, overdue).
    pub fn desk(&self) -> &Desk {
        &self.desk
    }

    /// The automatic-mail guard (shared with inbound's other answers).
    pub fn guard(&self) -> &AutoMailGuard {
        &self.guard
    }

    /// The team addresses.
    pub fn teams(&self) -> &dyn Teams {
        self.teams.as_ref()
    }

    /// The ticket one of these Message-IDs belongs to.
    pub fn ticket_for_thread(&self, ids: &[MessageId]) -> Result<Option<Ticket>, DeskError> {
        self.desk.by_thread(ids)
    }

    /// The ticket a team's mail answers: the one whose escalation mail to
    /// `team_address` is among `thread` (In-Reply-To, References), with
    /// that mail's Message-ID. Any other id of a ticket's thread proves
    /// nothing: the customer's own ids are chosen by whoever wrote, and our
    /// mails to the customer are seen by the customer.
    pub fn answered_escalation(
        &self,
        team_address: &EmailAddress,
        thread: &[MessageId],
    ) -> Result<Option<(Ticket, MessageId)>, DeskError> {
        for mid in thread.iter().take(MAX_THREAD_IDS) {
            if let Some(t) = self.desk.escalation(mid, team_address)? {
                return Ok(Some((t, mid.clone())));
            }
        }
        Ok(None)
    }

    /// Mail from a team address that is not its answer to an escalation:
    /// recorded as a note on the ticket it names (never relayed), once per
    /// `reference` (a message handled again adds nothing).
    pub fn record_team_mail(
        &self,
        id: TicketId,
        by: &str,
        text: &str,
        reference: &str,
    ) -> Result<Ticket, DeskError> {
        let t = self.desk.get(id)?;
        if t.events
            .iter()
            .any(|e| e.reference.as_deref() == Some(reference))
        {
            return Ok(t);
        }
        let event = Event {
            at: Utc::now(),
            kind: EventKind::Note,
            by: by.to_string(),
            text: text.to_string(),
            reference: Some(reference.to_string()),
        };
        self.desk.record(id, event, None, None)
    }

    /// Opens a ticket for the request, mails the team and acknowledges the
    /// customer; or, when the request continues the customer's open ticket,
    /// adds it there (no new acknowledgement); or, for a retry, does nothing.
    pub fn open_or_follow_up(&self, req: TicketRequest) -> Result<TicketOutcome, DeskError> {
        if let Some(outcome) = self.follow_up(&req)? {
            if outcome.disposition == Disposition::AlreadyRecorded
                && opened_by(&outcome.ticket, &req)
            {
                // A crash may have come between the ticket and its mails.
                return self.finish_opening(outcome, &req);
            }
            return Ok(outcome);
        }
        let ticket = self.desk.open_ticket(
            NewTicket {
                team: req.team,
                customer: req.customer.label(),
                lang: req.lang,
                subject: req.subject.clone(),
                orders: req.orders.clone(),
                purchase_orders: req.purchase_orders.clone(),
                faq: req.faq.clone(),
                reasons: req.reasons.clone(),
                message_id: req.message_id.clone(),
                text: req.text.clone(),
                reference: req.reference.clone(),
                chat: req.customer.chat(),
            },
            Utc::now(),
        )?;
        let done = vec![format!("ticket {} for {}", ticket.id, req.team)];
        self.finish_opening(
            TicketOutcome {
                ticket,
                disposition: Disposition::Opened,
                done,
            },
            &req,
        )
    }

    /// Mails the team and acknowledges the customer for a ticket this
    /// request opened, skipping what the ticket shows as done: run again
    /// after a crash, the outbox keys send each mail once and the ticket
    /// records each once.
    fn finish_opening(
        &self,
        opened: TicketOutcome,
        req: &TicketRequest,
    ) -> Result<TicketOutcome, DeskError> {
        let TicketOutcome {
            ticket,
            disposition,
            mut done,
        } = opened;
        let handed_over = if ticket.escalations.is_empty() {
            self.mail_team(&ticket, req, &mut done)?
        } else {
            true
        };
        let acknowledged = ticket
            .events
            .iter()
            .any(|e| e.kind == EventKind::Acknowledged);
        let ticket = if acknowledged {
            ticket
        } else {
            self.acknowledge_request(ticket, req, handed_over, &mut done)?
        };
        Ok(TicketOutcome {
            ticket,
            disposition,
            done,
        })
    }

    /// The customer's open ticket this request continues, updated; `None`
    /// when it opens a new one.
    fn follow_up(&self, req: &TicketRequest) -> Result<Option<TicketOutcome>, DeskError> {
        let existing = match req.ticket {
            Some(id) => Some(self.desk.get(id)?),
            None => {
                let mut lookup: Vec<MessageId> = req.message_id.iter().cloned().collect();
                lookup.extend(req.thread.iter().cloned());
                self.desk.by_thread(&lookup)?
            }
        };
        let customer = req.customer.label();
        let Some(existing) = existing.filter(|t| {
            t.customer.eq_ignore_ascii_case(&customer) && t.status != TicketStatus::Closed
        }) else {
            return Ok(None);
        };
        if let Some(reference) = &req.reference
            && existing
                .events
                .iter()
                .any(|e| e.reference.as_ref() == Some(reference))
        {
            // This very request, handled again after a crash.
            let done = vec![format!("already recorded in ticket {}", existing.id)];
            return Ok(Some(TicketOutcome {
                ticket: existing,
                disposition: Disposition::AlreadyRecorded,
                done,
            }));
        }
        let event = Event {
            at: Utc::now(),
            kind: EventKind::CustomerMail,
            by: customer,
            text: req.text.clone(),
            reference: req.reference.clone(),
        };
        let mut ticket = self.desk.record(
            existing.id,
            event,
            req.message_id.as_ref(),
            Some(TicketStatus::Open),
        )?;
        // A later message may name another order: it reaches the ticket too.
        let new_orders = req.orders.iter().any(|o| !ticket.orders.contains(o))
            || req.purchase_orders.iter().any(|p| {
                !ticket
                    .purchase_orders
                    .iter()
                    .any(|q| q.eq_ignore_ascii_case(p))
            });
        if new_orders {
            ticket = self
                .desk
                .add_orders(ticket.id, &req.orders, &req.purchase_orders)?;
        }
        let done = vec![format!("added to ticket {}", ticket.id)];
        Ok(Some(TicketOutcome {
            ticket,
            disposition: Disposition::FollowedUp,
            done,
        }))
    }

    /// Mails the escalation to the team's address, if it has one; the
    /// team's answer to that mail then finds the ticket. Returns whether it
    /// was queued (a skip is reported by the outbox: log, metric, ticket).
    fn mail_team(
        &self,
        ticket: &Ticket,
        req: &TicketRequest,
        done: &mut Vec<String>,
    ) -> Result<bool, DeskError> {
        let Some(addr) = self.teams.address_of(ticket.team) else {
            return Ok(false);
        };
        let mut mail = OutgoingMail::new(
            &ticket_context(ticket, TicketMail::TeamEscalation, None),
            mailbox(&addr),
            Lang::En,
            format!("{}:team", req.key),
            req.customer.via(),
        );
        // The team may see the order: its details help it answer.
        mail.so = ticket.orders.first().cloned();
        match self.send(mail)? {
            Sent::Queued(mid) => {
                self.desk.link_escalation(ticket.id, &mid, &addr)?;
                done.push(format!("escalation sent to {addr}"));
                Ok(true)
            }
            Sent::Skipped(r) => {
                done.push(format!("escalation to {addr} not sent: {r}"));
                Ok(false)
            }
        }
    }

    /// The acknowledgement of a new ticket, when the request allows one.
    fn acknowledge_request(
        &self,
        ticket: Ticket,
        req: &TicketRequest,
        handed_over: bool,
        done: &mut Vec<String>,
    ) -> Result<Ticket, DeskError> {
        // A stranger writing about an order gets nothing automatic: a
        // person checks first (no order details may leak).
        if !req.orders.is_empty() && !req.authorized {
            done.push("no acknowledgement: sender not authorized for the order".into());
            return Ok(ticket);
        }
        let to = match (&req.acknowledge, req.customer.email()) {
            (Acknowledge::Withhold(reason), _) if req.customer.chat().is_some() => {
                done.push(format!("no acknowledgement: {reason}"));
                return Ok(ticket);
            }
            (_, None) => {
                done.push("no acknowledgement: no sender address".into());
                return Ok(ticket);
            }
            (Acknowledge::Withhold(reason), Some(_)) => {
                done.push(format!("no acknowledgement: {reason}"));
                return Ok(ticket);
            }
            (Acknowledge::ByMail, Some(to)) => to.clone(),
        };
        let mut references = req.thread.clone();
        references.extend(req.message_id.iter().cloned());
        let ack = Ack {
            key: format!("{}:acknowledgement", req.key),
            to,
            in_reply_to: req.message_id.clone(),
            references,
            requested_by: req.customer.via().into(),
            handed_over,
        };
        match self.acknowledge(&ticket, ack)? {
            Acked::Sent { ticket, to, .. } => {
                done.push(format!("acknowledgement sent to {to}"));
                Ok(*ticket)
            }
            Acked::NotSent(reason) => {
                done.push(format!("no acknowledgement: {reason}"));
                Ok(ticket)
            }
        }
    }

    /// Mails the acknowledgement of `ticket` (loop guard first) and records
    /// it in the ticket.
    pub fn acknowledge(&self, ticket: &Ticket, ack: Ack) -> Result<Acked, DeskError> {
        let verdict = self
            .guard
            .admit(ack.to.as_str(), Utc::now())
            .map_err(DeskError::Store)?;
        if verdict != Verdict::Allowed {
            return Ok(Acked::NotSent(verdict.reason()));
        }
        let context = TicketContext {
            handed_over: ack.handed_over,
            ..ticket_context(ticket, TicketMail::Acknowledgement, None)
        };
        let mut mail = OutgoingMail::new(
            &context,
            mailbox(&ack.to),
            ticket.lang,
            ack.key,
            &ack.requested_by,
        );
        // Only reached for a customer authorized for the orders (or none).
        mail.so = ticket.orders.first().cloned();
        mail.in_reply_to = ack.in_reply_to;
        mail.references = ack.references;
        let mid = match self.send(mail)? {
            Sent::Queued(mid) => mid,
            Sent::Skipped(reason) => return Ok(Acked::NotSent(reason)),
        };
        let event = Event {
            at: Utc::now(),
            kind: EventKind::Acknowledged,
            by: "edesk".into(),
            text: format!("acknowledged, due {}", ticket.due),
            reference: Some(mid.to_string()),
        };
        let ticket = self.desk.record(ticket.id, event, Some(&mid), None)?;
        Ok(Acked::Sent {
            ticket: Box::new(ticket),
            to: ack.to,
            message_id: mid,
        })
    }

    /// Relays a team's answer to the customer in the ticket's thread and
    /// records it (status: answered).
    pub fn relay_team_reply(&self, reply: TeamReply) -> Result<Relay, DeskError> {
        let t = self.desk.get(reply.ticket)?;
        let Ok(to) = t.customer.parse::<EmailAddress>() else {
            if t.chat.is_some() {
                let ticket = self.record_reply(&t, &reply, None)?;
                return Ok(Relay::Recorded(ticket));
            }
            return Ok(Relay::NotSent {
                to: t.customer.clone(),
                reason: "the customer has no mail address".into(),
                ticket: t,
            });
        };
        let key = reply
            .key
            .clone()
            .unwrap_or_else(|| format!("ticket:{}:reply:{}", t.id, t.events.len()));
        let mut mail = OutgoingMail::new(
            &ticket_context(&t, TicketMail::TeamReply, Some(&reply.text)),
            mailbox(&to),
            t.lang,
            key,
            "edesk inbound",
        );
        mail.so = t.orders.first().cloned();
        mail.in_reply_to = t.thread.last().cloned();
        mail.references = t.thread.clone();
        match self.send(mail)? {
            Sent::Queued(mid) => {
                let ticket = self.record_reply(&t, &reply, Some(&mid))?;
                Ok(Relay::Sent {
                    ticket,
                    message_id: mid,
                })
            }
            Sent::Skipped(reason) => Ok(Relay::NotSent {
                to: to.to_string(),
                reason,
                ticket: t,
            }),
        }
    }

    fn record_reply(
        &self,
        t: &Ticket,
        reply: &TeamReply,
        mid: Option<&MessageId>,
    ) -> Result<Ticket, DeskError> {
        let event = Event {
            at: Utc::now(),
            kind: EventKind::TeamReply,
            by: reply.by.clone(),
            text: reply.text.clone(),
            reference: mid.map(MessageId::to_string),
        };
        self.desk
            .record(t.id, event, mid, Some(TicketStatus::Answered))
    }

    /// An internal note: recorded, never sent to the customer.
    pub fn record_note(&self, id: TicketId, by: &str, text: &str) -> Result<Ticket, DeskError> {
        let event = Event {
            at: Utc::now(),
            kind: EventKind::Note,
            by: by.to_string(),
            text: text.to_string(),
            reference: None,
        };
        self.desk.record(id, event, None, None)
    }

    /// Closes a ticket (nothing is sent); a later message from the
    /// customer opens a new one.
    pub fn close(&self, id: TicketId, by: &str, text: &str) -> Result<Ticket, DeskError> {
        let event = Event {
            at: Utc::now(),
            kind: EventKind::Closed,
            by: by.to_string(),
            text: text.to_string(),
            reference: None,
        };
        self.desk
            .record(id, event, None, Some(TicketStatus::Closed))
    }

    /// A reply typed by a team member (`edesk desk reply`, HTTP): a note
    /// stays internal; an answer is relayed, and an answer that cannot be
    /// mailed is an error that says why ([`DeskError::NotDelivered`]).
    pub fn answer(
        &self,
        id: TicketId,
        by: &str,
        text: &str,
        note: bool,
    ) -> Result<Ticket, DeskError> {
        if note {
            return self.record_note(id, by, text);
        }
        let reply = TeamReply {
            ticket: id,
            by: by.to_string(),
            text: text.to_string(),
            key: None,
        };
        match self.relay_team_reply(reply)? {
            Relay::Sent { ticket, .. } | Relay::Recorded(ticket) => Ok(ticket),
            Relay::NotSent { to, reason, .. } => Err(DeskError::NotDelivered { to, reason }),
        }
    }

    fn send(&self, mail: OutgoingMail) -> Result<Sent, DeskError> {
        self.outbox.send(mail).map_err(|e| DeskError::Outbox(e.0))
    }
}

/// The ticket was opened by this request (its first event is the
/// request's own), not continued by it.
fn opened_by(ticket: &Ticket, req: &TicketRequest) -> bool {
    req.reference.is_some()
        && ticket.events.first().and_then(|e| e.reference.as_ref()) == req.reference.as_ref()
}

/// An acknowledgement to mail (see [`DeskService::acknowledge`]).
#[derive(Debug, Clone)]
pub struct Ack {
    /// Outbox idempotency key.
    pub key: String,
    /// The customer's address.
    pub to: EmailAddress,
    /// The customer's Message-ID, to answer in their thread.
    pub in_reply_to: Option<MessageId>,
    /// The thread the customer's message answered, then its own Message-ID.
    pub references: Vec<MessageId>,
    /// Shown in the order's history.
    pub requested_by: String,
    /// The escalation reached the team's outbox: the acknowledgement may
    /// name the team (never claim a handover that did not happen).
    pub handed_over: bool,
}

/// What became of an acknowledgement.
#[derive(Debug, Clone)]
pub enum Acked {
    /// Queued and recorded in the ticket.
    Sent {
        /// The ticket with the acknowledgement recorded.
        ticket: Box<Ticket>,
        /// Where it went.
        to: EmailAddress,
        /// The acknowledgement's Message-ID (now in the ticket's thread).
        message_id: MessageId,
    },
    /// Not sent, for this reason (loop guard, suppression).
    NotSent(String),
}

fn mailbox(email: &EmailAddress) -> Mailbox {
    Mailbox {
        name: None,
        email: email.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::desk::sla::Calendar;
    use crate::desk::teams::ConfigTeams;

    /// An outbox that records; addresses listed in `refuse` are skipped as
    /// a suppressed address would be.
    #[derive(Default)]
    struct Recorder {
        sent: Mutex<Vec<OutgoingMail>>,
        refuse: Vec<String>,
    }

    impl Outbox for Recorder {
        fn send(&self, mail: OutgoingMail) -> Result<Sent, super::super::OutboxError> {
            if self.refuse.contains(&mail.to.email.to_string()) {
                return Ok(Sent::Skipped("suppressed address".into()));
            }
            let mid = format!(
                "<{}@edesk.example.com>",
                mail.idempotency_key.replace(':', ".")
            );
            self.sent.lock().unwrap().push(mail);
            Ok(Sent::Queued(mid.parse().unwrap()))
        }
    }

    fn service(refuse: &[&str]) -> (tempfile::TempDir, DeskService, Arc<Recorder>) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let rec = Arc::new(Recorder {
            sent: Mutex::default(),
            refuse: refuse.iter().map(|s| s.to_string()).collect(),
        });
        let mut teams = std::collections::BTreeMap::new();
        teams.insert(
            "licensing".to_string(),
            "licensing@cisco.example".to_string(),
        );
        let s = DeskService::new(
            Desk::open(&store, Calendar::default()),
            AutoMailGuard::open(&store, "edesk.example.com", 5),
            rec.clone(),
            Arc::new(ConfigTeams::new(&teams)),
        );
        (dir, s, rec)
    }

    fn chat_request(email: Option<&str>, text: &str, n: u32) -> TicketRequest {
        TicketRequest {
            key: format!("chat:discord:42:{n}"),
            reference: Some(format!("chat:discord:42:{n}")),
            customer: Customer::Chat {
                user: ChatUser {
                    platform: "discord".into(),
                    user: "42".into(),
                },
                email: email.map(|e| e.parse().unwrap()),
            },
            lang: Lang::En,
            subject: "PAK does not register".into(),
            text: text.into(),
            team: Team::Licensing,
            orders: vec!["10458321".parse().unwrap()],
            purchase_orders: vec![],
            authorized: true,
            faq: None,
            reasons: vec!["asked for a person".into()],
            message_id: None,
            thread: vec![],
            ticket: None,
            acknowledge: Acknowledge::Withhold("answered in chat".into()),
        }
    }

    fn mail_request(n: u32) -> TicketRequest {
        TicketRequest {
            key: format!("mail:{n}"),
            reference: Some(format!("mail:{n}")),
            customer: Customer::Mail("ana@example.org".parse().unwrap()),
            message_id: Some(format!("<m{n}@example.org>").parse().unwrap()),
            acknowledge: Acknowledge::ByMail,
            orders: vec![],
            ..chat_request(None, "My PAK is refused.", n)
        }
    }

    #[test]
    fn a_ticket_opened_before_a_crash_gets_its_mails_when_the_request_is_handled_again() {
        let (_d, s, rec) = service(&[]);
        let req = mail_request(7);
        // The crash came after the ticket was stored, before its mails.
        let t = s
            .desk()
            .open_ticket(
                NewTicket {
                    team: req.team,
                    customer: req.customer.label(),
                    lang: req.lang,
                    subject: req.subject.clone(),
                    orders: vec![],
                    purchase_orders: vec![],
                    faq: None,
                    reasons: vec![],
                    message_id: req.message_id.clone(),
                    text: req.text.clone(),
                    reference: req.reference.clone(),
                    chat: None,
                },
                Utc::now(),
            )
            .unwrap();
        let out = s.open_or_follow_up(mail_request(7)).unwrap();
        assert_eq!(out.disposition, Disposition::AlreadyRecorded);
        assert_eq!(out.ticket.id, t.id);
        let to: Vec<String> = rec
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.to.email.to_string())
            .collect();
        assert_eq!(
            to,
            ["licensing@cisco.example", "ana@example.org"],
            "{:?}",
            out.done
        );
        assert_eq!(out.ticket.escalations.len(), 1);
        // Handled once more: the ticket shows both done, nothing is sent.
        let again = s.open_or_follow_up(mail_request(7)).unwrap();
        assert_eq!(again.disposition, Disposition::AlreadyRecorded);
        assert_eq!(rec.sent.lock().unwrap().len(), 2, "{:?}", again.done);
        // A follow-up in the same ticket is not an opening: no new mails.
        let more = s
            .open_or_follow_up(TicketRequest {
                thread: vec!["<m7@example.org>".parse().unwrap()],
                ..mail_request(8)
            })
            .unwrap();
        assert_eq!(more.disposition, Disposition::FollowedUp);
        let again = s.open_or_follow_up(TicketRequest {
            thread: vec!["<m7@example.org>".parse().unwrap()],
            ..mail_request(8)
        });
        assert_eq!(again.unwrap().disposition, Disposition::AlreadyRecorded);
        assert_eq!(rec.sent.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_chat_escalation_opens_a_ticket_mails_the_team_and_not_the_user() {
        let (_d, s, rec) = service(&[]);
        let out = s
            .open_or_follow_up(chat_request(None, "user: my PAK fails\nbot: …", 1))
            .unwrap();
        assert_eq!(out.disposition, Disposition::Opened);
        assert_eq!(out.ticket.customer, "discord:42");
        assert_eq!(out.ticket.chat.as_ref().unwrap().user, "42");
        let sent = rec.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1, "{:?}", out.done);
        assert_eq!(sent[0].to.email.as_str(), "licensing@cisco.example");
        assert_eq!(sent[0].kind, crate::notify::Kind::TeamEscalation);
        assert_eq!(sent[0].extra["team"], "Global Licensing Operations");
        assert!(
            out.done
                .iter()
                .any(|d| d == "no acknowledgement: answered in chat")
        );
        // The same request again (a retry) records nothing new.
        let again = s
            .open_or_follow_up(TicketRequest {
                ticket: Some(out.ticket.id),
                ..chat_request(None, "user: my PAK fails\nbot: …", 1)
            })
            .unwrap();
        assert_eq!(again.disposition, Disposition::AlreadyRecorded);
        // A later message in the session follows the ticket up.
        let more = s
            .open_or_follow_up(TicketRequest {
                ticket: Some(out.ticket.id),
                ..chat_request(None, "user: still failing", 2)
            })
            .unwrap();
        assert_eq!(more.disposition, Disposition::FollowedUp);
        assert_eq!(more.ticket.events.len(), 2);
        assert_eq!(s.desk().list().unwrap().len(), 1);
    }

    #[test]
    fn a_team_answer_to_a_chat_user_without_address_is_recorded_for_the_chat() {
        let (_d, s, rec) = service(&[]);
        let t = s
            .open_or_follow_up(chat_request(None, "help", 1))
            .unwrap()
            .ticket;
        let before = rec.sent.lock().unwrap().len();
        let reply = TeamReply {
            ticket: t.id,
            by: "ops-jane".into(),
            text: "Fixed.".into(),
            key: None,
        };
        let Relay::Recorded(t) = s.relay_team_reply(reply).unwrap() else {
            panic!("expected a recorded reply");
        };
        assert_eq!(t.status, TicketStatus::Answered);
        assert_eq!(rec.sent.lock().unwrap().len(), before, "nothing mailed");
    }

    #[test]
    fn a_linked_chat_user_is_mailed_the_answer_in_the_ticket_thread() {
        let (_d, s, rec) = service(&[]);
        let t = s
            .open_or_follow_up(chat_request(Some("ana@example.org"), "help", 1))
            .unwrap()
            .ticket;
        assert_eq!(t.customer, "ana@example.org");
        let t = s.answer(t.id, "ops-jane", "Fixed.", false).unwrap();
        let sent = rec.sent.lock().unwrap();
        let relay = sent.last().unwrap();
        assert_eq!(relay.kind, crate::notify::Kind::TeamReply);
        assert_eq!(relay.to.email.as_str(), "ana@example.org");
        assert_eq!(relay.extra["text"], "Fixed.");
        assert_eq!(relay.so.as_ref().map(OrderId::as_str), Some("10458321"));
        assert_eq!(t.status, TicketStatus::Answered);
        assert_eq!(t.thread.len(), 1, "the relay's Message-ID joins the thread");
    }

    #[test]
    fn an_answer_to_a_suppressed_customer_is_an_error_that_says_so() {
        let (_d, s, _rec) = service(&["ana@example.org"]);
        let t = s
            .open_or_follow_up(chat_request(Some("ana@example.org"), "help", 1))
            .unwrap()
            .ticket;
        let err = s.answer(t.id, "ops-jane", "Fixed.", false).unwrap_err();
        assert!(
            matches!(&err, DeskError::NotDelivered { reason, .. } if reason.contains("suppressed")),
            "{err}"
        );
        let t = s.desk().get(t.id).unwrap();
        assert_eq!(t.status, TicketStatus::Open, "nothing recorded");
        // A note still works, and closing is recorded.
        let t = s.record_note(t.id, "ops-jane", "customer bounced").unwrap();
        assert_eq!(t.events.last().unwrap().kind, EventKind::Note);
        let t = s.close(t.id, "ops-jane", "no way to reach them").unwrap();
        assert_eq!(t.status, TicketStatus::Closed);
    }
}
