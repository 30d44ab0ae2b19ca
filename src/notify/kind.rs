use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A kind of mail edesk sends. Each has a template set
/// `templates/{en,fr}/KIND.{subject,txt,html}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The order is ready for download (to each recipient, per preference).
    OrderAvailable,
    /// Order-Based Access granted: the order's details to an authorized sender.
    ObaAccess,
    /// A hold was placed on the order.
    OrderOnHold,
    /// A hold on the order was released.
    HoldReleased,
    /// The order was archived (no longer downloadable).
    OrderArchived,
    /// An archived order was restored.
    OrderRestored,
    /// Reminder to register the licenses (PAK) of an order.
    PakReminder,
    /// The second-download window of an order closes soon.
    DownloadWindowClosing,
    /// Acknowledgement of a new ticket to the customer.
    EscalationAck,
    /// A team's answer to a ticket, relayed to the customer.
    TeamReply,
    /// The verification code that links a chat account to a mail address.
    AccountLinkCode,
    /// An FAQ answer to a customer's mail.
    FaqAnswer,
    /// The result of a mail command (done, nothing to do, or not done).
    CommandDone,
    /// A ticket mailed to the team that must answer it.
    TeamEscalation,
    /// A ticket's SLA: reminder before it is due, escalation once overdue.
    SlaReminder,
}

impl Kind {
    /// Every kind, in declaration order (template loading and parsing walk it).
    pub const ALL: [Kind; 15] = [
        Kind::OrderAvailable,
        Kind::ObaAccess,
        Kind::OrderOnHold,
        Kind::HoldReleased,
        Kind::OrderArchived,
        Kind::OrderRestored,
        Kind::PakReminder,
        Kind::DownloadWindowClosing,
        Kind::EscalationAck,
        Kind::TeamReply,
        Kind::AccountLinkCode,
        Kind::FaqAnswer,
        Kind::CommandDone,
        Kind::TeamEscalation,
        Kind::SlaReminder,
    ];

    /// The snake_case name: template file stem, outbox `kind` and JSON value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OrderAvailable => "order_available",
            Kind::ObaAccess => "oba_access",
            Kind::OrderOnHold => "order_on_hold",
            Kind::HoldReleased => "hold_released",
            Kind::OrderArchived => "order_archived",
            Kind::OrderRestored => "order_restored",
            Kind::PakReminder => "pak_reminder",
            Kind::DownloadWindowClosing => "download_window_closing",
            Kind::EscalationAck => "escalation_ack",
            Kind::TeamReply => "team_reply",
            Kind::AccountLinkCode => "account_link_code",
            Kind::FaqAnswer => "faq_answer",
            Kind::CommandDone => "command_done",
            Kind::TeamEscalation => "team_escalation",
            Kind::SlaReminder => "sla_reminder",
        }
    }

    /// Order notifications obey the recipient's preferences; answers to a
    /// person who wrote to us (acknowledgements, relays, link codes) do not.
    pub fn is_order_notification(self) -> bool {
        !matches!(
            self,
            Kind::EscalationAck
                | Kind::TeamReply
                | Kind::AccountLinkCode
                | Kind::FaqAnswer
                | Kind::CommandDone
                | Kind::TeamEscalation
                | Kind::SlaReminder
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown notification kind {s:?}"))
    }
}
