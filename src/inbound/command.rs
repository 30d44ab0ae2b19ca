//! Mail commands: a line that is only `UNSUBSCRIBE`, `RESTORE SO#…` or
//! `RESEND`, in English or French, on the first line of the new text or in
//! the subject. A sentence that mentions the word is not a command.

use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

use crate::domain::OrderId;

/// A command found in a mail; serialized as `{"command": NAME, "so": SO}`
/// (`so` absent for unsubscribe).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "command", content = "so", rename_all = "lowercase")]
pub enum MailCommand {
    /// Stop notification mail to the sender (EN or FR wording).
    Unsubscribe,
    /// Restore an archived order (the SO# given, or the threaded one).
    Restore(Option<OrderId>),
    /// Send the notification again.
    Resend(Option<OrderId>),
}

/// A `RESTORE`/`RESEND` line naming a number that is not a sales order
/// number: no order can match it (the threaded one must not stand in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAnOrder {
    /// The command's lowercase name, as [`MailCommand::name`].
    pub command: &'static str,
}

impl MailCommand {
    /// The lowercase command name, as in the JSON `command` field.
    pub fn name(&self) -> &'static str {
        match self {
            MailCommand::Unsubscribe => "unsubscribe",
            MailCommand::Restore(_) => "restore",
            MailCommand::Resend(_) => "resend",
        }
    }
}

fn pattern() -> Option<&'static Regex> {
    static P: OnceLock<Option<Regex>> = OnceLock::new();
    P.get_or_init(|| {
        Regex::new(
            r"(?i)^\s*(?:(unsubscribe|(?:se )?d[ée]sabonner|d[ée]sinscri(?:re|ption)|d[ée]sabonnement)|(restore|restaurer)|(resend|renvoyer))\b\s*(?:(?:so|order|commande|cde)?\s*(?:#|n°|no\.?)?\s*:?\s*(\d{6,10}))?\s*[.!]*\s*$",
        )
        .ok()
    })
    .as_ref()
}

/// Strips `Re:`/`TR:`/`Fwd:`-style prefixes from a subject.
pub fn bare_subject(subject: &str) -> &str {
    let mut s = subject.trim();
    loop {
        let lower = s.to_lowercase();
        let hit = [
            "re:", "re :", "aw:", "tr:", "tr :", "fw:", "fwd:", "réf:", "ref:", "rép:",
        ]
        .iter()
        .find(|p| lower.starts_with(*p));
        match hit {
            Some(p) => s = s.get(p.len()..).unwrap_or("").trim_start(),
            None => return s,
        }
    }
}

/// `Re:` and its translations: a reply, as opposed to a forward.
pub fn is_reply_subject(subject: &str) -> bool {
    let lower = subject.trim_start().to_lowercase();
    ["re:", "re :", "aw:", "réf:", "ref:", "rép:", "rép :", "sv:"]
        .iter()
        .any(|p| lower.starts_with(p))
}

fn parse_line(line: &str) -> Option<Result<MailCommand, NotAnOrder>> {
    let c = pattern()?.captures(line)?;
    if c.get(1).is_some() {
        return Some(Ok(MailCommand::Unsubscribe));
    }
    type Make = fn(Option<OrderId>) -> MailCommand;
    let (command, make): (&'static str, Make) = if c.get(2).is_some() {
        ("restore", MailCommand::Restore)
    } else {
        c.get(3)?;
        ("resend", MailCommand::Resend)
    };
    match c.get(4).map(|m| m.as_str().parse::<OrderId>()) {
        None => Some(Ok(make(None))),
        Some(Ok(so)) => Some(Ok(make(Some(so)))),
        Some(Err(_)) => Some(Err(NotAnOrder { command })),
    }
}

/// The command in a message, if any: the first line of the new text wins
/// over the subject. `Err` for a command naming a number that is not an
/// SO number.
pub fn find(new_text: &str, subject: &str) -> Option<Result<MailCommand, NotAnOrder>> {
    let first = new_text.lines().map(str::trim).find(|l| !l.is_empty());
    first
        .and_then(parse_line)
        .or_else(|| parse_line(bare_subject(subject)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_en_fr() {
        let so = |s: &str| Some(s.parse::<OrderId>().unwrap());
        assert_eq!(find("UNSUBSCRIBE", ""), Some(Ok(MailCommand::Unsubscribe)));
        assert_eq!(find("Désabonner", ""), Some(Ok(MailCommand::Unsubscribe)));
        assert_eq!(
            find("", "Re: DÉSABONNER"),
            Some(Ok(MailCommand::Unsubscribe))
        );
        assert_eq!(
            find("RESTORE SO#10458321\nthanks", ""),
            Some(Ok(MailCommand::Restore(so("10458321"))))
        );
        assert_eq!(
            find("restaurer commande 20571234", ""),
            Some(Ok(MailCommand::Restore(so("20571234"))))
        );
        assert_eq!(find("RENVOYER", ""), Some(Ok(MailCommand::Resend(None))));
    }

    /// A number too short for an SO# is named, but matches no order.
    #[test]
    fn a_command_naming_no_order_number() {
        assert_eq!(
            find("RESEND 1234567", ""),
            Some(Err(NotAnOrder { command: "resend" }))
        );
        assert_eq!(
            find("UNSUBSCRIBE 1234567", ""),
            Some(Ok(MailCommand::Unsubscribe))
        );
    }

    #[test]
    fn sentences_are_not_commands() {
        assert_eq!(find("How do I unsubscribe my colleague?", ""), None);
        assert_eq!(find("Please resend the link", "Re: your order"), None);
    }

    #[test]
    fn subject_prefixes() {
        assert_eq!(
            bare_subject("RE: TR: Re : Votre commande"),
            "Votre commande"
        );
    }
}
