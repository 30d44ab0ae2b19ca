//! The support desk: escalation tickets, their SLA in business days, and the
//! relay of a team's reply back to the customer. Routing rules (which team)
//! live in `routing`.

pub mod cmd;
pub mod guard;
pub mod routing;
pub mod sla;
pub mod tickets;

pub use sla::Calendar;
pub use tickets::{Desk, DeskError, Ticket, TicketId, TicketStatus};
