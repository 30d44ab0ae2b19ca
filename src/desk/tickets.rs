//! Escalation tickets: what a support team must answer, for whom, by when,
//! and the thread it belongs to.
//!
//! sled trees: `tickets` (number → JSON), `ticket_threads` (Message-ID of any
//! mail in the ticket's thread → number), `ticket_meta` (`seq`: the counter).

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::Team;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("desk store: {0}")]
    Store(#[from] sled::Error),
    #[error("desk store: corrupt ticket {0}: {1}")]
    Corrupt(String, String),
    #[error("no ticket {0}")]
    NotFound(String),
    #[error("{0}")]
    Input(String),
    #[error("{0:?} is not a ticket reference (expected T-123456)")]
    BadReference(String),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketStatus {
    /// Waiting for the team.
    Open,
    /// The team replied; waiting for the customer, if anything.
    Answered,
    Closed,
}

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
    Closed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    /// Who wrote it (address or operator name).
    pub by: String,
    pub text: String,
    /// Inbound spool id or outgoing Message-ID, when there is one.
    #[serde(default)]
    pub reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaqRef {
    pub id: String,
    pub question: String,
    pub confidence: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: TicketId,
    pub created_at: DateTime<Utc>,
    pub team: Team,
    pub status: TicketStatus,
    pub customer: String,
    pub lang: crate::domain::Lang,
    pub subject: String,
    pub orders: Vec<String>,
    /// Answer due by the end of this business day.
    pub due: NaiveDate,
    pub sla_business_days: u32,
    /// The FAQ entry closest to the question, attached for the team.
    pub faq: Option<FaqRef>,
    pub reasons: Vec<String>,
    /// Message-IDs of the thread, oldest first (for In-Reply-To/References).
    pub thread: Vec<String>,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone)]
pub struct NewTicket {
    pub team: Team,
    pub customer: String,
    pub lang: crate::domain::Lang,
    pub subject: String,
    pub orders: Vec<String>,
    pub faq: Option<FaqRef>,
    pub reasons: Vec<String>,
    pub message_id: Option<String>,
    pub text: String,
    pub spool_id: Option<u64>,
}

#[derive(Clone)]
pub struct Desk {
    db: sled::Db,
    tickets: sled::Tree,
    threads: sled::Tree,
    meta: sled::Tree,
    calendar: super::sla::Calendar,
}

impl Desk {
    pub fn open(db: &sled::Db, calendar: super::sla::Calendar) -> Result<Desk, DeskError> {
        Ok(Desk {
            db: db.clone(),
            tickets: db.open_tree("tickets")?,
            threads: db.open_tree("ticket_threads")?,
            meta: db.open_tree("ticket_meta")?,
            calendar,
        })
    }

    pub fn calendar(&self) -> &super::sla::Calendar {
        &self.calendar
    }

    /// Opens a ticket. The SLA is 1 business day for a first request and 3
    /// for a further request by the same customer about the same order(s)
    /// (the source document's review times).
    pub fn open_ticket(&self, new: NewTicket, now: DateTime<Utc>) -> Result<Ticket, DeskError> {
        let further = !new.orders.is_empty()
            && self.list()?.iter().any(|t| {
                t.customer.eq_ignore_ascii_case(&new.customer)
                    && t.orders.iter().any(|o| new.orders.contains(o))
            });
        let sla = if further { 3 } else { 1 };
        let id = self.next_id()?;
        let ticket = Ticket {
            id,
            created_at: now,
            team: new.team,
            status: TicketStatus::Open,
            customer: new.customer.clone(),
            lang: new.lang,
            subject: new.subject,
            orders: new.orders,
            due: self.calendar.add_business_days(now.date_naive(), sla),
            sla_business_days: sla,
            faq: new.faq,
            reasons: new.reasons,
            thread: new.message_id.iter().cloned().collect(),
            events: vec![Event {
                at: now,
                kind: EventKind::CustomerMail,
                by: new.customer,
                text: new.text,
                reference: new.spool_id.map(|i| format!("mail:{i}")),
            }],
        };
        self.save(&ticket)?;
        for mid in &ticket.thread {
            self.threads.insert(mid.as_bytes(), &id.0.to_be_bytes())?;
        }
        self.db.flush()?;
        Ok(ticket)
    }

    /// Ticket numbers count 1, 2, 3… (what people quote), from a counter
    /// in the tickets' own tree, updated atomically.
    fn next_id(&self) -> Result<TicketId, DeskError> {
        let next = self.meta.update_and_fetch(b"seq", |old| {
            let n = old
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            Some((n + 1).to_be_bytes().to_vec())
        })?;
        let n = next
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(1);
        Ok(TicketId(n))
    }

    fn save(&self, t: &Ticket) -> Result<(), DeskError> {
        let json = serde_json::to_vec(t)
            .map_err(|e| DeskError::Corrupt(t.id.to_string(), e.to_string()))?;
        self.tickets.insert(t.id.0.to_be_bytes(), json)?;
        Ok(())
    }

    pub fn get(&self, id: TicketId) -> Result<Ticket, DeskError> {
        let v = self
            .tickets
            .get(id.0.to_be_bytes())?
            .ok_or_else(|| DeskError::NotFound(id.to_string()))?;
        serde_json::from_slice(&v).map_err(|e| DeskError::Corrupt(id.to_string(), e.to_string()))
    }

    pub fn list(&self) -> Result<Vec<Ticket>, DeskError> {
        self.tickets
            .iter()
            .values()
            .map(|v| {
                let v = v?;
                serde_json::from_slice(&v)
                    .map_err(|e| DeskError::Corrupt("?".into(), e.to_string()))
            })
            .collect()
    }

    /// The ticket a message belongs to, from its In-Reply-To/References.
    pub fn by_thread(&self, message_ids: &[String]) -> Result<Option<Ticket>, DeskError> {
        for mid in message_ids {
            if let Some(v) = self.threads.get(mid.as_bytes())? {
                let mut b = [0u8; 8];
                if v.len() == 8 {
                    b.copy_from_slice(&v);
                    return self.get(TicketId(u64::from_be_bytes(b))).map(Some);
                }
            }
        }
        Ok(None)
    }

    /// Appends an event (and the Message-ID to the thread) and saves, durably.
    pub fn record(
        &self,
        id: TicketId,
        event: Event,
        message_id: Option<&str>,
        status: Option<TicketStatus>,
    ) -> Result<Ticket, DeskError> {
        let mut t = self.get(id)?;
        t.events.push(event);
        if let Some(mid) = message_id {
            if !t.thread.iter().any(|m| m == mid) {
                t.thread.push(mid.to_string());
            }
            self.threads.insert(mid.as_bytes(), &id.0.to_be_bytes())?;
        }
        if let Some(s) = status {
            t.status = s;
        }
        self.save(&t)?;
        self.db.flush()?;
        Ok(t)
    }

    /// Makes replies to `message_id` (e.g. the escalation mail a team got)
    /// find this ticket, without adding it to the customer's thread.
    pub fn link(&self, id: TicketId, message_id: &str) -> Result<(), DeskError> {
        self.threads
            .insert(message_id.as_bytes(), &id.0.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// Open tickets whose due date is before `today` (for the SLA reminder job).
    pub fn overdue(&self, today: NaiveDate) -> Result<Vec<Ticket>, DeskError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|t| t.status == TicketStatus::Open && t.due < today)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desk::sla::Calendar;

    fn desk() -> (tempfile::TempDir, Desk) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        (dir, Desk::open(&db, Calendar::default()).unwrap())
    }

    fn new(customer: &str, orders: &[&str]) -> NewTicket {
        NewTicket {
            team: Team::Exportops,
            customer: customer.into(),
            lang: crate::domain::Lang::En,
            subject: "Export hold".into(),
            orders: orders.iter().map(|s| s.to_string()).collect(),
            faq: None,
            reasons: vec!["export hold".into()],
            message_id: Some("<c1@example.org>".into()),
            text: "Please release the hold".into(),
            spool_id: Some(7),
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
    }

    #[test]
    fn thread_lookup_and_events() {
        let (_d, desk) = desk();
        let t = desk
            .open_ticket(new("a@x.example", &[]), Utc::now())
            .unwrap();
        let found = desk
            .by_thread(&["<nope@x>".into(), "<c1@example.org>".into()])
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
                Some("<r1@edesk.example.com>"),
                Some(TicketStatus::Answered),
            )
            .unwrap();
        assert_eq!(t2.status, TicketStatus::Answered);
        assert_eq!(t2.events.len(), 2);
        assert_eq!(
            desk.by_thread(&["<r1@edesk.example.com>".into()])
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
}
