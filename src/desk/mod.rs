//! The support desk: escalation tickets, their SLA in business days, the
//! team addresses, and the one service every channel (inbound mail, chat,
//! jobs, HTTP, `edesk desk`) calls to open, follow up, acknowledge, answer,
//! note and close tickets ([`service::DeskService`]). Routing rules (which
//! team) live in `routing`.
//!
//! Dependencies: domain, store, and notify's public mail type behind the
//! [`outbox::Outbox`] port; never inbound or chat.
#![warn(missing_docs)]

pub mod cmd;
pub mod guard;
pub mod outbox;
pub mod routing;
pub mod service;
pub mod sla;
pub mod teams;
pub mod tickets;

use std::sync::Arc;

pub use outbox::{Outbox, OutboxError, Sent};
pub use service::{
    Ack, Acked, Acknowledge, Customer, DeskService, Disposition, Relay, TeamReply, TicketOutcome,
    TicketRequest,
};
pub use sla::Calendar;
pub use teams::{ConfigTeams, Teams};
pub use tickets::{ChatUser, Desk, DeskError, Ticket, TicketId, TicketStatus};

/// The business-day calendar the configuration describes (holidays file,
/// time zone).
pub fn calendar(config: &crate::config::Config) -> Result<Calendar, sla::CalendarError> {
    let calendar = match &config.calendar.holidays_file {
        Some(path) => Calendar::load(path)?,
        None => Calendar::default(),
    };
    Ok(calendar.in_zone(config.calendar.tz()))
}

/// The desk service as the configuration wires it: tickets and loop guard
/// on `store`, mail through `outbox`, team addresses from `desk.teams`.
pub fn service(
    config: &crate::config::Config,
    store: &crate::store::Store,
    outbox: Arc<dyn Outbox>,
) -> Result<DeskService, sla::CalendarError> {
    let desk = Desk::open(store, calendar(config)?);
    let guard =
        guard::AutoMailGuard::open(store, &config.mail.domain, config.desk.auto_mail_per_hour);
    let teams = Arc::new(ConfigTeams::new(&config.desk.teams));
    Ok(DeskService::new(desk, guard, outbox, teams))
}
