//! Who may act through a mail. A From line proves nothing (anyone can write
//! one), so a mail command acts only when the mail shows it comes from the
//! address it names. (A team's mail is relayed to a customer only when it
//! answers the escalation edesk sent to that team: see
//! `DeskService::answered_escalation`.)
//!
//! Proofs, strongest first:
//! - sent to the sender's own `reply+TOKEN@` address (the token is an HMAC of
//!   order and recipient under the server key, known only to the recipient of
//!   our notifications: see `notify::token`);
//! - `In-Reply-To`/`References` name a mail edesk sent to that address (our
//!   Message-IDs carry 64 random bits; a customer's own Message-ID proves
//!   nothing, whoever wrote chose it);
//! - when verification is configured, DKIM/DMARC aligned with the From
//!   domain and passing (see `inbound::verify`).

use serde::Serialize;

use super::ports::{Directory, DirectoryError};

/// How many ids of a mail's thread are looked up for a proof.
const MAX_IDS: usize = 20;

/// What proved (or failed to prove) that a mail comes from its sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "proof")]
pub enum Proof {
    /// Sent to the sender's own `reply+TOKEN@` address.
    ReplyToken,
    /// Answers this mail edesk sent to the sender.
    ReplyToOurMail {
        /// Our Message-ID it answers, without `<>`.
        message_id: String,
    },
    /// DKIM or DMARC verification passed, aligned with the From domain.
    Authenticated {
        /// The verified (From-aligned) domain.
        domain: String,
    },
    /// Nothing proves it.
    Unproven,
}

impl Proof {
    /// Whether the mail may act in the sender's name.
    pub fn holds(&self) -> bool {
        !matches!(self, Proof::Unproven)
    }

    /// One line for the decision's reasons.
    pub fn reason(&self) -> String {
        match self {
            Proof::ReplyToken => "auth: sent to the sender's own reply token".into(),
            Proof::ReplyToOurMail { message_id } => {
                format!("auth: answers our mail <{message_id}> to the sender")
            }
            Proof::Authenticated { domain } => {
                format!("auth: DKIM/DMARC pass aligned with the From domain {domain}")
            }
            Proof::Unproven => "auth: nothing proves the mail comes from its From address (no reply token of theirs, no reply to our mail to them, no aligned DKIM/DMARC pass)".into(),
        }
    }
}

/// Whether a mail from `sender` proves it comes from there: it was sent to
/// a `reply+TOKEN@` address minted for `sender` (`recipients`: the To, Cc
/// and envelope headers), or it answers a mail edesk sent to `sender`
/// (`thread`: its In-Reply-To and References, without `<>`).
pub fn sender_proof(
    sender: &str,
    recipients: &[String],
    thread: &[String],
    dir: &dyn Directory,
) -> Result<Proof, DirectoryError> {
    if sender.is_empty() {
        return Ok(Proof::Unproven);
    }
    for token in reply_tokens(recipients) {
        if dir
            .token_owner(&token)?
            .is_some_and(|owner| owner.eq_ignore_ascii_case(sender))
        {
            return Ok(Proof::ReplyToken);
        }
    }
    for mid in thread.iter().take(MAX_IDS) {
        if dir.sent_to(mid, sender)? {
            return Ok(Proof::ReplyToOurMail {
                message_id: mid.clone(),
            });
        }
    }
    Ok(Proof::Unproven)
}

/// The tokens of the `reply+TOKEN@` addresses among `recipients`.
pub fn reply_tokens(recipients: &[String]) -> Vec<String> {
    recipients
        .iter()
        .filter_map(|r| {
            let (local, _) = r.trim().trim_matches(['<', '>']).rsplit_once('@')?;
            let tok = local
                .get(..6)?
                .eq_ignore_ascii_case("reply+")
                .then(|| &local[6..])?;
            let ok = !tok.is_empty()
                && tok.len() <= 128
                && tok
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            ok.then(|| tok.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::MemWorld;

    fn world() -> MemWorld {
        MemWorld::from_json(
            r#"{"orders": [
              {"so": "10458321",
               "recipients": [{"email": "ana@example.org", "reply_token": "tokana"},
                              {"email": "bob@example.org", "reply_token": "tokbob"}],
               "notification_ids": []},
              {"so": "20571234",
               "recipients": [{"email": "ana@example.org"}],
               "notification_ids": ["n1.20571234.abcdef0123456789@edesk.example.com"]}
            ]}"#,
        )
        .unwrap()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn a_from_line_alone_proves_nothing() {
        let w = world();
        // The forger's own ids, someone else's token, our mail to someone else.
        let p = sender_proof("ana@example.org", &[], &s(&["x@evil.example"]), &w).unwrap();
        assert_eq!(p, Proof::Unproven);
        let p = sender_proof(
            "ana@example.org",
            &s(&["reply+tokbob@edesk.example.com"]),
            &[],
            &w,
        )
        .unwrap();
        assert_eq!(p, Proof::Unproven);
        let p = sender_proof(
            "bob@example.org",
            &[],
            &s(&["n1.20571234.abcdef0123456789@edesk.example.com"]),
            &w,
        )
        .unwrap();
        assert_eq!(p, Proof::Unproven);
        assert!(!p.holds());
    }

    #[test]
    fn their_token_or_a_reply_to_our_mail_to_them_proves_it() {
        let w = world();
        let p = sender_proof(
            "Ana@Example.org",
            &s(&[
                "support@edesk.example.com",
                "Reply+TOKANA@edesk.example.com",
            ]),
            &[],
            &w,
        )
        .unwrap();
        assert_eq!(p, Proof::ReplyToken);
        let p = sender_proof(
            "ana@example.org",
            &[],
            &s(&["other@x", "n1.20571234.abcdef0123456789@edesk.example.com"]),
            &w,
        )
        .unwrap();
        assert!(matches!(p, Proof::ReplyToOurMail { .. }), "{p:?}");
        assert!(p.holds());
    }

    #[test]
    fn only_reply_plus_addresses_carry_tokens() {
        let r = s(&[
            "reply+abc_1-2@edesk.example.com",
            "bounces+zzz@edesk.example.com",
            "reply+@x",
            "reply+bad token@x",
            "support@edesk.example.com",
        ]);
        assert_eq!(reply_tokens(&r), vec!["abc_1-2".to_string()]);
    }
}
