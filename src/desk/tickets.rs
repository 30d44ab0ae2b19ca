//! Escalation tickets: what a support team must answer, for whom, by when,
//! and the thread it belongs to.
//!
//! Kept in the store as records (`Store::ticket_*`): number → JSON, and the
//! Message-IDs of each ticket's thread → number.

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::{EmailAddress, MessageId, OrderId, Team};
use serde::{Deserialize, Deserializer, Serialize};

/// Why a desk operation failed. The HTTP API answers `NotFound`,
/// `BadReference`, `Input` and `NotDelivered` as client errors (404, 400,
/// 422, 409); the rest are server failures.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// The store failed reading or writing a ticket.
    #[error("desk store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// A stored ticket record that does not decode: its number and the error.
    #[error("desk store: corrupt ticket {0}: {1}")]
    Corrupt(String, String),
    /// No ticket has this number (the reference as written, `T-000042`).
    #[error("no ticket {0}")]
    NotFound(String),
    /// The operator's input is unusable (empty reply, unreadable reply file); the message says why.
    #[error("{0}")]
    Input(String),
    /// The text is not a ticket number (see [`TicketId`]'s `FromStr`).
    #[error("{0:?} is not a ticket reference (expected T-123456)")]
    BadReference(String),
    /// The outbox did not take the mail (suppressed address, preference):
    /// nothing was recorded, the caller may say so and try another way.
    #[error("reply not sent to {to}: {reason}")]
    NotDelivered {
        /// The customer as the ticket shows them.
        to: String,
        /// What the outbox or the desk said.
        reason: String,
    },
    /// The outbox could not queue the mail (store failure, template error).
    #[error("outbox: {0}")]
    Outbox(String),
}

/// `T-000042`: what customers quote and teams type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TicketId(pub u64);

impl std::fmt::Display for TicketId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "T-{:06}", self.0)
    }
}

impl std::str::FromStr for TicketId {
    type Err = DeskError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let digits = t
            .strip_prefix("T-")
            .or_else(|| t.strip_prefix("t-"))
            .or_else(|| t.strip_prefix('T'))
            .or_else(|| t.strip_prefix('t'))
            .unwrap_or(t);
        if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DeskError::BadReference(s.to_string()));
        }
        digits
            .parse()
            .map(TicketId)
            .map_err(|_| DeskError::BadReference(s.to_string()))
    }
}

impl TryFrom<String> for TicketId {
    type Error = DeskError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<TicketId> for String {
    fn from(t: TicketId) -> String {
        t.to_string()
    }
}

/// Where a ticket stands; stored lowercase (`open`, `answered`, `closed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketStatus {
    /// Waiting for the team.
    Open,
    /// The team replied; waiting for the customer, if anything.
    Answered,
    /// Closed ([`super::service::DeskService::close`]): never overdue, and a
    /// later message from the customer opens a new ticket.
    Closed,
}

/// What an [`Event`] of a ticket's history records; stored snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A message from the customer (the first one opens the ticket).
    CustomerMail,
    /// The acknowledgement sent to the customer.
    Acknowledged,
    /// A team reply, relayed to the customer.
    TeamReply,
    /// An internal note: never sent to the customer.
    Note,
    /// The ticket was closed (`by` says who, `text` why).
    Closed,
}

/// One entry of a ticket's history, appended by [`Desk::record`] and never changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: EventKind,
    /// Who wrote it (address or operator name).
    pub by: String,
    /// The message body or note as written (plain text).
    pub text: String,
    /// Inbound spool id or outgoing Message-ID, when there is one.
    #[serde(default)]
    pub reference: Option<String>,
}

/// The FAQ entry the answering engine found closest to the customer's question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaqRef {
    /// The entry's id in the FAQ corpus.
    pub id: String,
    /// The entry's question, as the FAQ writes it.
    pub question: String,
    /// The engine's calibrated confidence in the match, 0.0 to 1.0.
    pub confidence: f64,
}

/// An escalation ticket as stored (JSON, `Store::ticket_*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// The number, assigned in sequence by the store.
    pub id: TicketId,
    /// When the customer's first message was taken.
    pub created_at: DateTime<Utc>,
    /// The team that must answer.
    pub team: Team,
    /// Open until the team answers; see [`TicketStatus`].
    pub status: TicketStatus,
    /// The customer as shown and compared: an email address, or `platform:user` for chat.
    pub customer: String,
    /// The language acknowledgements and relayed replies are written in.
    pub lang: crate::domain::Lang,
    /// The subject of the customer's first message (mail), or a one-line summary (chat).
    pub subject: String,
    /// SO numbers the customer named, in the first message and later ones;
    /// stored values that are not an SO# are dropped on read.
    #[serde(deserialize_with = "lenient_orders")]
    pub orders: Vec<OrderId>,
    /// Purchase order numbers the customer named that no order of the
    /// store carries, as written: a person looks them up in the ordering
    /// system.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purchase_orders: Vec<String>,
    /// Answer due by the end of this business day.
    pub due: NaiveDate,
    /// The SLA `due` was computed with: 1 for a first request, 3 for a further one.
    pub sla_business_days: u32,
    /// The FAQ entry closest to the question, attached for the team.
    pub faq: Option<FaqRef>,
    /// Why the request was escalated (the inbound decision trail), for the team.
    pub reasons: Vec<String>,
    /// Message-IDs of the thread, oldest first (for In-Reply-To/References).
    #[serde(deserialize_with = "lenient_ids")]
    pub thread: Vec<MessageId>,
    /// History, oldest first; the first event is the customer's opening message.
    pub events: Vec<Event>,
    /// The chat account that opened the ticket (absent for mail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatUser>,
    /// The escalation mails edesk sent to the team about this ticket: only
    /// a mail answering one of them, from the address it went to, is the
    /// team's answer (any other id of the thread is known to the customer,
    /// or to whoever wrote in their name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalations: Vec<Escalation>,
}

/// An escalation mail sent to a team (see [`Ticket::escalations`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    /// Its Message-ID (generated by edesk, with 64 random bits).
    pub message_id: MessageId,
    /// The team address it was sent to.
    pub to: EmailAddress,
}

/// A chat account: the platform (`discord`, `console`, `http`) and its
/// user id there. Written `platform:user` where a ticket shows a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatUser {
    /// The chat platform (`discord`, `console`, `http`).
    pub platform: String,
    /// The user's id on that platform.
    pub user: String,
}

impl std::fmt::Display for ChatUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.platform, self.user)
    }
}

/// Reads stored Message-IDs, dropping any a former version kept that is
/// not one (it could never match a reply): a ticket never becomes
/// unreadable over it.
fn lenient_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<MessageId>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    Ok(MessageId::parse_all(raw.iter().map(String::as_str)))
}

/// Reads stored order numbers, dropping any that is not an SO# (no order
/// can have it).
fn lenient_orders<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<OrderId>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    Ok(raw.iter().filter_map(|s| s.parse().ok()).collect())
}

/// What [`Desk::open_ticket`] stores; [`super::service::DeskService`] builds it
/// from a [`super::service::TicketRequest`].
#[derive(Debug, Clone)]
pub struct NewTicket {
    /// The team that must answer.
    pub team: Team,
    /// The customer as shown and compared (email address, or `platform:user`).
    pub customer: String,
    /// The language customer mail is written in.
    pub lang: crate::domain::Lang,
    /// The subject (mail) or a one-line summary (chat).
    pub subject: String,
    /// SO numbers of the store the customer named.
    pub orders: Vec<OrderId>,
    /// PO numbers named that the store does not know, as written.
    pub purchase_orders: Vec<String>,
    /// The closest FAQ entry, if the engine found one.
    pub faq: Option<FaqRef>,
    /// Why the request was escalated, for the team.
    pub reasons: Vec<String>,
    /// The customer's own Message-ID (mail), first in the thread.
    pub message_id: Option<MessageId>,
    /// The customer's first message as written.
    pub text: String,
    /// Where the first message came from (`mail:42`), to find a retry.
    pub reference: Option<String>,
    /// The chat account that asked; `None` for mail.
    pub chat: Option<ChatUser>,
}

impl crate::store::TicketIndex for Ticket {
    fn open_due_day(&self) -> Option<i32> {
        use chrono::Datelike;
        (self.status == TicketStatus::Open).then(|| self.due.num_days_from_ce())
    }

    fn customer(&self) -> &str {
        &self.customer
    }

    fn about(&self) -> Vec<String> {
        about(&self.orders, &self.purchase_orders)
    }
}

/// The references a ticket about `orders` and `purchase_orders` is indexed
/// under ([`crate::store::TicketIndex::about`]).
fn about(orders: &[OrderId], purchase_orders: &[String]) -> Vec<String> {
    let sos = orders.iter().map(|o| format!("so:{o}"));
    sos.chain(purchase_orders.iter().map(|p| format!("po:{p}")))
        .collect()
}

/// The ticket book on the store, with the business-day calendar SLAs use.
/// Cheap to clone (the store is shared).
#[derive(Clone)]
pub struct Desk {
    store: crate::store::Store,
    calendar: super::sla::Calendar,
}

impl Desk {
    /// Tickets on `store`, due dates counted in `calendar`.
    pub fn open(store: &crate::store::Store, calendar: super::sla::Calendar) -> Desk {
        Desk {
            store: store.clone(),
            calendar,
        }
    }

    /// The calendar due dates are counted in.
    pub fn calendar(&self) -> &super::sla::Calendar {
        &self.calendar
    }

    /// Opens a ticket. The SLA is 1 business day for a first request and 3
    /// for a further request by the same customer about the same order(s)
    /// (the source document's review times).
    pub fn open_ticket(&self, new: NewTicket, now: DateTime<Utc>) -> Result<Ticket, DeskError> {
        let further = self.wrote_about(&new.customer, &new.orders, &new.purchase_orders)?;
        let sla = if further { 3 } else { 1 };
        let due = self
            .calendar
            .add_business_days(self.calendar.local_date(now), sla);
        let ticket = self.store.ticket_create(move |n| {
            let ticket = Ticket {
                id: TicketId(n),
                created_at: now,
                team: new.team,
                status: TicketStatus::Open,
                customer: new.customer.clone(),
                lang: new.lang,
                subject: new.subject,
                orders: new.orders,
                purchase_orders: new.purchase_orders,
                due,
                sla_business_days: sla,
                faq: new.faq,
                reasons: new.reasons,
                thread: new.message_id.iter().cloned().collect(),
                events: vec![Event {
                    at: now,
                    kind: EventKind::CustomerMail,
                    by: new.customer,
                    text: new.text,
                    reference: new.reference,
                }],
                chat: new.chat,
                escalations: Vec::new(),
            };
            let thread = ticket.thread.iter().map(MessageId::to_string).collect();
            (ticket, thread)
        })?;
        Ok(ticket)
    }

    /// The ticket, or [`DeskError::NotFound`].
    pub fn get(&self, id: TicketId) -> Result<Ticket, DeskError> {
        self.store
            .ticket(id.0)?
            .ok_or_else(|| DeskError::NotFound(id.to_string()))
    }

    /// Every ticket, any status (reads and decodes them all).
    pub fn list(&self) -> Result<Vec<Ticket>, DeskError> {
        Ok(self.store.tickets()?)
    }

    /// Every ticket of `customer` (compared ASCII case-insensitively, as
    /// the desk compares customers), oldest first: read through the store's
    /// customer index, not by decoding every ticket.
    pub fn customer_tickets(&self, customer: &str) -> Result<Vec<Ticket>, DeskError> {
        Ok(self.store.tickets_of_customer(customer)?)
    }

    /// Whether `customer` already has a ticket about one of `orders` or
    /// `purchase_orders` (PO numbers compared ASCII case-insensitively): a
    /// few index reads, however many tickets they have.
    pub fn wrote_about(
        &self,
        customer: &str,
        orders: &[OrderId],
        purchase_orders: &[String],
    ) -> Result<bool, DeskError> {
        let about = about(orders, purchase_orders);
        if about.is_empty() {
            return Ok(false);
        }
        Ok(self
            .store
            .customer_wrote_about::<Ticket>(customer, &about)?)
    }

    /// The ticket a message belongs to, from its In-Reply-To/References.
    pub fn by_thread(&self, message_ids: &[MessageId]) -> Result<Option<Ticket>, DeskError> {
        let keys: Vec<String> = message_ids.iter().map(MessageId::to_string).collect();
        match self.store.ticket_by_thread(&keys)? {
            Some(n) => self.get(TicketId(n)).map(Some),
            None => Ok(None),
        }
    }

    /// Appends an event (and the Message-ID to the thread) and saves, durably
    /// and atomically: concurrent writers to one ticket lose nothing.
    pub fn record(
        &self,
        id: TicketId,
        event: Event,
        message_id: Option<&MessageId>,
        status: Option<TicketStatus>,
    ) -> Result<Ticket, DeskError> {
        let mid = message_id.cloned();
        let link: Vec<String> = mid.iter().map(MessageId::to_string).collect();
        self.store
            .ticket_update(id.0, link, move |t: &mut Ticket| {
                t.events.push(event);
                if let Some(mid) = mid
                    && !t.thread.contains(&mid)
                {
                    t.thread.push(mid);
                }
                if let Some(s) = status {
                    t.status = s;
                }
            })?
            .ok_or_else(|| DeskError::NotFound(id.to_string()))
    }

    /// Adds the orders a later message of the customer names to the
    /// ticket (those it already has are kept once).
    pub fn add_orders(
        &self,
        id: TicketId,
        orders: &[OrderId],
        purchase_orders: &[String],
    ) -> Result<Ticket, DeskError> {
        let (orders, pos) = (orders.to_vec(), purchase_orders.to_vec());
        self.store
            .ticket_update(id.0, Vec::new(), move |t: &mut Ticket| {
                for o in orders {
                    if !t.orders.contains(&o) {
                        t.orders.push(o);
                    }
                }
                for p in pos {
                    if !t.purchase_orders.iter().any(|q| q.eq_ignore_ascii_case(&p)) {
                        t.purchase_orders.push(p);
                    }
                }
            })?
            .ok_or_else(|| DeskError::NotFound(id.to_string()))
    }

    /// Makes replies to `message_id` (e.g. the escalation mail a team got)
    /// find this ticket, without adding it to the customer's thread.
    pub fn link(&self, id: TicketId, message_id: &MessageId) -> Result<(), DeskError> {
        Ok(self.store.ticket_link(id.0, &message_id.to_string())?)
    }

    /// Records the escalation mail `message_id` sent to the team address
    /// `to`: replies to it find this ticket (without it joining the
    /// customer's thread), and only they are the team's answer.
    pub fn link_escalation(
        &self,
        id: TicketId,
        message_id: &MessageId,
        to: &EmailAddress,
    ) -> Result<Ticket, DeskError> {
        let esc = Escalation {
            message_id: message_id.clone(),
            to: to.clone(),
        };
        self.store
            .ticket_update(id.0, vec![message_id.to_string()], move |t: &mut Ticket| {
                if !t.escalations.contains(&esc) {
                    t.escalations.push(esc);
                }
            })?
            .ok_or_else(|| DeskError::NotFound(id.to_string()))
    }

    /// The ticket whose escalation mail to `team_address` is `message_id`,
    /// if it is one. Tickets opened before escalations were recorded on
    /// the ticket are checked against the outbox (what edesk sent, by
    /// Message-ID).
    pub fn escalation(
        &self,
        message_id: &MessageId,
        team_address: &EmailAddress,
    ) -> Result<Option<Ticket>, DeskError> {
        let Some(ticket) = self.by_thread(std::slice::from_ref(message_id))? else {
            return Ok(None);
        };
        let recorded = ticket
            .escalations
            .iter()
            .any(|e| &e.message_id == message_id && e.to.key() == team_address.key());
        let sent = recorded
            || self
                .store
                .outbox_by_message_id(&message_id.to_string())?
                .is_some_and(|item| {
                    item.kind == crate::notify::Kind::TeamEscalation.as_str()
                        && item.to.key() == team_address.key()
                        && item.ticket.as_deref() == Some(ticket.id.to_string().as_str())
                });
        Ok(sent.then_some(ticket))
    }

    /// The tickets waiting for a team, soonest due first (read through the
    /// store's index of open tickets, not by decoding every ticket).
    pub fn open_tickets(&self) -> Result<Vec<Ticket>, DeskError> {
        Ok(self.store.tickets_open()?)
    }

    /// How many tickets wait for a team, and how many of them are past
    /// their due day on `today` (from the store's index: no ticket is read).
    pub fn open_counts(&self, today: NaiveDate) -> Result<(u64, u64), DeskError> {
        use chrono::Datelike;
        Ok(self
            .store
            .ticket_open_counts::<Ticket>(today.num_days_from_ce())?)
    }

    /// Open tickets whose due date is before `today`, soonest due first
    /// (for the SLA reminder job): read through the store's index of open
    /// tickets, up to `today`.
    pub fn overdue(&self, today: NaiveDate) -> Result<Vec<Ticket>, DeskError> {
        use chrono::Datelike;
        Ok(self.store.tickets_overdue(today.num_days_from_ce())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desk::sla::Calendar;

    fn desk() -> (tempfile::TempDir, Desk) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        (dir, Desk::open(&store, Calendar::default()))
    }

    fn mid(s: &str) -> MessageId {
        s.parse().unwrap()
    }

    /// Whether `t` names an order or PO number `new` names (PO numbers
    /// compared case-insensitively, as customers write them): what the
    /// reference index must answer, by a scan.
    fn shares_an_order(t: &Ticket, new: &NewTicket) -> bool {
        t.orders.iter().any(|o| new.orders.contains(o))
            || t.purchase_orders.iter().any(|p| {
                new.purchase_orders
                    .iter()
                    .any(|q| q.eq_ignore_ascii_case(p))
            })
    }

    fn new(customer: &str, orders: &[&str]) -> NewTicket {
        NewTicket {
            team: Team::Exportops,
            customer: customer.into(),
            lang: crate::domain::Lang::En,
            subject: "Export hold".into(),
            orders: orders.iter().map(|s| s.parse().unwrap()).collect(),
            purchase_orders: Vec::new(),
            faq: None,
            reasons: vec!["export hold".into()],
            message_id: Some(mid("<c1@example.org>")),
            text: "Please release the hold".into(),
            reference: Some("mail:7".into()),
            chat: None,
        }
    }

    #[test]
    fn ticket_ids_round_trip() {
        assert_eq!("T-000042".parse::<TicketId>().unwrap(), TicketId(42));
        assert_eq!("t42".parse::<TicketId>().unwrap(), TicketId(42));
        assert_eq!(TicketId(42).to_string(), "T-000042");
        assert!("T-".parse::<TicketId>().is_err());
        assert!("T-12a".parse::<TicketId>().is_err());
    }

    #[test]
    fn sla_is_one_business_day_then_three_for_further_requests() {
        let (_d, desk) = desk();
        // Friday 2026-11-27 10:00 UTC.
        let now = "2026-11-27T10:00:00Z".parse().unwrap();
        let first = desk
            .open_ticket(new("a@x.example", &["10458321"]), now)
            .unwrap();
        assert_eq!(first.sla_business_days, 1);
        assert_eq!(first.due.to_string(), "2026-11-30");
        let again = desk
            .open_ticket(new("a@x.example", &["10458321"]), now)
            .unwrap();
        assert_eq!(again.sla_business_days, 3);
        assert_eq!(again.due.to_string(), "2026-12-02");
        let other = desk
            .open_ticket(new("b@x.example", &["10458321"]), now)
            .unwrap();
        assert_eq!(other.sla_business_days, 1);
        assert_ne!(first.id, again.id);
        assert_eq!(first.id.to_string(), "T-000001");
        assert_eq!(other.id.to_string(), "T-000003");
        // Open and overdue counts agree with the tickets themselves.
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(desk.open_counts(day("2026-11-30")).unwrap(), (3, 0));
        assert_eq!(desk.open_counts(day("2026-12-01")).unwrap(), (3, 2));
        assert_eq!(desk.overdue(day("2026-12-01")).unwrap().len(), 2);
        desk.record(
            first.id,
            Event {
                at: now,
                kind: EventKind::TeamReply,
                by: "exportops@cisco.com".into(),
                text: "Released.".into(),
                reference: None,
            },
            None,
            Some(TicketStatus::Answered),
        )
        .unwrap();
        assert_eq!(desk.open_counts(day("2026-12-03")).unwrap(), (2, 2));
        let open: Vec<TicketId> = desk.open_tickets().unwrap().iter().map(|t| t.id).collect();
        assert_eq!(
            open,
            [other.id, again.id],
            "the open ones, soonest due first"
        );
    }

    #[test]
    fn further_requests_are_found_through_the_customer_index() {
        let (_d, desk) = desk();
        let now = "2026-11-27T10:00:00Z".parse().unwrap();
        let sla = |customer: &str, orders: &[&str], pos: &[&str]| {
            let mut n = new(customer, orders);
            n.purchase_orders = pos.iter().map(|p| p.to_string()).collect();
            desk.open_ticket(n, now).unwrap().sla_business_days
        };
        assert_eq!(sla("Ana@X.example", &["10458321"], &[]), 1);
        assert_eq!(
            sla("ana@x.EXAMPLE", &["10458321"], &[]),
            3,
            "same, other case"
        );
        assert_eq!(sla("ana@x.example", &["10458322"], &[]), 1, "another order");
        assert_eq!(
            sla("anna@x.example", &["10458321"], &[]),
            1,
            "another customer"
        );
        assert_eq!(sla("ana@x.example", &[], &[]), 1, "no order named");
        assert_eq!(sla("bo@x.example", &[], &["po-77a"]), 1);
        assert_eq!(sla("BO@x.example", &[], &["PO-77A"]), 3, "PO, other case");
        assert_eq!(sla("bo@x.example", &[], &["PO-78"]), 1);
        // The index answers as a scan of every ticket does.
        for c in [
            "ana@x.example",
            "ANNA@x.example",
            "bo@X.example",
            "cy@x.example",
        ] {
            let scanned: Vec<TicketId> = desk
                .list()
                .unwrap()
                .iter()
                .filter(|t| t.customer.eq_ignore_ascii_case(c))
                .map(|t| t.id)
                .collect();
            let indexed: Vec<TicketId> = desk
                .customer_tickets(c)
                .unwrap()
                .iter()
                .map(|t| t.id)
                .collect();
            assert_eq!(indexed, scanned, "{c}");
            for (orders, pos) in [
                (&["10458321"][..], &[][..]),
                (&["10458322"], &[]),
                (&[], &["po-77A"]),
                (&[], &["PO-78"]),
                (&["10458399"], &["po-77a"]),
            ] {
                let mut probe = new(c, orders);
                probe.purchase_orders = pos.iter().map(|p| p.to_string()).collect();
                let by_scan = desk
                    .list()
                    .unwrap()
                    .iter()
                    .any(|t| t.customer.eq_ignore_ascii_case(c) && shares_an_order(t, &probe));
                let by_index = desk
                    .wrote_about(c, &probe.orders, &probe.purchase_orders)
                    .unwrap();
                assert_eq!(by_index, by_scan, "{c} {orders:?} {pos:?}");
            }
        }
        // A follow-up that names another order indexes it too.
        desk.store
            .ticket_update::<Ticket, _>(1, vec![], |t| t.orders.push("10458399".parse().unwrap()))
            .unwrap();
        let later: OrderId = "10458399".parse().unwrap();
        assert!(desk.wrote_about("ana@x.example", &[later], &[]).unwrap());
        // Overdue, through the open index, answers as a scan does.
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        desk.record(
            TicketId(1),
            Event {
                at: now,
                kind: EventKind::Closed,
                by: "ops".into(),
                text: "done".into(),
                reference: None,
            },
            None,
            Some(TicketStatus::Closed),
        )
        .unwrap();
        for today in ["2026-11-30", "2026-12-01", "2026-12-03"] {
            let mut scanned: Vec<Ticket> = desk
                .list()
                .unwrap()
                .into_iter()
                .filter(|t| t.status == TicketStatus::Open && t.due < day(today))
                .collect();
            scanned.sort_by_key(|t| (t.due, t.id));
            assert_eq!(desk.overdue(day(today)).unwrap(), scanned, "{today}");
        }
        assert_eq!(desk.overdue(day("2026-12-01")).unwrap().len(), 5);
    }

    /// `cargo test --lib desk::tickets::tests::open_ticket_cost -- --ignored
    /// --nocapture`: what deciding "further request" costs with 20,000
    /// tickets, by a scan of them all (as before the customer index) and
    /// through the index. A figure to read, not an assertion.
    #[test]
    #[ignore = "a measurement, run by hand"]
    fn open_ticket_cost_with_20000_tickets() {
        let (_d, desk) = desk();
        let now: DateTime<Utc> = "2026-11-27T10:00:00Z".parse().unwrap();
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let desk = desk.clone();
                std::thread::spawn(move || {
                    for i in 0..2500 {
                        // Half the tickets are one reseller's (the case
                        // the reference index is for), half spread out.
                        let c = if i % 2 == 0 {
                            "big@x.example".to_string()
                        } else {
                            format!("c{}@x.example", (w * 2500 + i) % 5000)
                        };
                        let mut n = new(&c, &["10458321"]);
                        n.message_id = None;
                        desk.open_ticket(n, now).unwrap();
                    }
                })
            })
            .collect();
        for h in writers {
            h.join().unwrap();
        }
        let probe = new("BIG@x.example", &["10458321"]);
        let time = |f: &dyn Fn() -> bool| {
            let start = std::time::Instant::now();
            for _ in 0..5 {
                assert!(f());
            }
            start.elapsed() / 5
        };
        let scan = time(&|| {
            desk.list().unwrap().iter().any(|t| {
                t.customer.eq_ignore_ascii_case(&probe.customer) && shares_an_order(t, &probe)
            })
        });
        let index = time(&|| {
            desk.customer_tickets(&probe.customer)
                .unwrap()
                .iter()
                .any(|t| shares_an_order(t, &probe))
        });
        let refs = time(&|| {
            desk.wrote_about(&probe.customer, &probe.orders, &probe.purchase_orders)
                .unwrap()
        });
        let start = std::time::Instant::now();
        let t = desk.open_ticket(probe.clone(), now).unwrap();
        let open = start.elapsed();
        assert_eq!(t.sla_business_days, 3);
        println!(
            "20000 tickets, 10000 of one customer: further-request check by scan {scan:?}, \
             by customer index {index:?}, by reference index {refs:?}; \
             open_ticket (reference index + durable create) {open:?}"
        );
    }

    #[test]
    fn thread_lookup_and_events() {
        let (_d, desk) = desk();
        let t = desk
            .open_ticket(new("a@x.example", &[]), Utc::now())
            .unwrap();
        let found = desk
            .by_thread(&[mid("<nope@x>"), mid("<c1@example.org>")])
            .unwrap()
            .unwrap();
        assert_eq!(found.id, t.id);
        let t2 = desk
            .record(
                t.id,
                Event {
                    at: Utc::now(),
                    kind: EventKind::TeamReply,
                    by: "exportops@cisco.com".into(),
                    text: "Released.".into(),
                    reference: None,
                },
                Some(&mid("<r1@edesk.example.com>")),
                Some(TicketStatus::Answered),
            )
            .unwrap();
        assert_eq!(t2.status, TicketStatus::Answered);
        assert_eq!(t2.events.len(), 2);
        assert_eq!(
            desk.by_thread(&[mid("<r1@edesk.example.com>")])
                .unwrap()
                .unwrap()
                .id,
            t.id
        );
        let later = chrono::NaiveDate::from_ymd_opt(2030, 1, 1).unwrap();
        assert!(
            desk.overdue(later).unwrap().is_empty(),
            "answered tickets are not overdue"
        );
    }

    #[test]
    fn concurrent_writers_lose_no_event() {
        let (_d, desk) = desk();
        let t = desk
            .open_ticket(new("a@x.example", &[]), Utc::now())
            .unwrap();
        let threads: Vec<_> = (0..8)
            .map(|w| {
                let desk = desk.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        desk.record(
                            t.id,
                            Event {
                                at: Utc::now(),
                                kind: EventKind::Note,
                                by: format!("writer{w}"),
                                text: format!("note {i}"),
                                reference: None,
                            },
                            Some(&mid(&format!("<w{w}.{i}@x>"))),
                            None,
                        )
                        .unwrap();
                    }
                })
            })
            .collect();
        for h in threads {
            h.join().unwrap();
        }
        let t = desk.get(t.id).unwrap();
        assert_eq!(t.events.len(), 1 + 8 * 25, "every event kept");
        assert_eq!(t.thread.len(), 1 + 8 * 25);
        assert_eq!(
            desk.by_thread(&[mid("<w3.7@x>")]).unwrap().unwrap().id,
            t.id
        );
    }
}
