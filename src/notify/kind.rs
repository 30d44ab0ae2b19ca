use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A kind of mail edesk sends. Each has a template set
/// `templates/{en,fr}/KIND.{subject,txt,html}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    OrderAvailable,
    ObaAccess,
    OrderOnHold,
    HoldReleased,
    OrderArchived,
    OrderRestored,
    PakReminder,
    DownloadWindowClosing,
    EscalationAck,
    TeamReply,
    AccountLinkCode,
    FaqAnswer,
    CommandDone,
    TeamEscalation,
    /// A ticket's SLA: reminder before it is due, escalation once overdue.
    SlaReminder,
}

impl Kind {
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
