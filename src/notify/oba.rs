//! Order-Based Access: grant people access to one order, per line, by mail.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{AutoSubmitted, LineNote, MailSpec, Notifier, NotifyError};
use crate::domain::Order;
use crate::domain::{
    CodePoint, Mailbox, OrderId, TextError, check_invisible, check_text, clip, parse_address_list,
};
use crate::store::{Commit, Grant, OrderMeta, TokenTarget};

/// How the access mails of one request are split (`grouping` in the request JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grouping {
    /// One mail per recipient with all of its lines.
    Grouped,
    /// One mail per line per recipient.
    PerLine,
}

/// The OBA request JSON of DESIGN.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObaRequest {
    /// Who grants the access (usually an address): recorded on the grants and shown in the mail.
    pub sent_by: String,
    /// One mail per recipient, or one per line.
    pub grouping: Grouping,
    /// The lines granted and to whom; at least one.
    pub lines: Vec<ObaLine>,
}

/// One order line of an [`ObaRequest`] and who gets access to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObaLine {
    /// The order's line id; it must exist on the order.
    pub line: String,
    /// An address list (`a@x, "B" <b@y>`); every address must be valid.
    pub to: String,
    /// A note shown with the line in the mail (one line, at most 200 characters).
    pub carton_note: Option<String>,
    /// The customer's reference for the line, shown in the mail (one line, at most 200 characters).
    pub customer_ref: Option<String>,
}

/// Why an OBA request was refused or failed; nothing was queued or granted.
#[derive(Debug, thiserror::Error)]
pub enum ObaError {
    /// No order has this SO number (a 404).
    #[error("no order {0}")]
    NoOrder(OrderId),
    /// A 422: names the field and the bad value; nothing was sent.
    #[error("{message}")]
    Invalid {
        /// What is wrong, for the requester.
        message: String,
        /// The request field (`sent_by`, `lines[2].to`, …).
        field: String,
        /// The refused value, clipped.
        value: String,
    },
    /// Queuing failed (store, template).
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

/// An access mail that was queued.
#[derive(Debug, Clone, Serialize)]
pub struct ObaMail {
    /// The recipient's address.
    pub to: String,
    /// The line ids it grants.
    pub lines: Vec<String>,
}

/// What [`Notifier::send_oba`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ObaOutcome {
    /// Mails queued.
    pub queued: usize,
    /// The queued mails.
    pub mails: Vec<ObaMail>,
    /// Mails not sent (suppressed address, preference) with the reason.
    pub skipped: Vec<serde_json::Value>,
}

/// Longest carton note or customer reference (one line in a mail).
const MAX_NOTE: usize = 200;
/// Longest `sent_by`: it is recorded and shown, and is usually an address.
const MAX_SENT_BY: usize = 254;
/// Longest `to` list of one line: dozens of addresses, not megabytes.
const MAX_TO: usize = 8192;

/// A 422 for a text field refused by the domain's text rule; the message
/// names the field, the value echoed is clipped.
fn bad_text(field: String, value: &str, e: TextError) -> ObaError {
    ObaError::Invalid {
        message: format!("{field} {e}"),
        field,
        value: clip(value),
    }
}

fn note(v: &Option<String>, field: String) -> Result<Option<String>, ObaError> {
    match v {
        Some(s) => {
            check_text(s, MAX_NOTE).map_err(|e| bad_text(field, s, e))?;
            let t = s.trim();
            Ok((!t.is_empty()).then(|| t.to_string()))
        }
        None => Ok(None),
    }
}

/// Lines granted to one recipient: the `LineNote`s of each line, in the
/// order they were first named for this address.
type RecipientLines = (Mailbox, Vec<LineNote>);

/// The checks that need no store: who sends, and that something is sent.
/// Returns `sent_by` trimmed.
fn check_request(req: &ObaRequest) -> Result<&str, ObaError> {
    let sent_by = req.sent_by.trim();
    check_text(&req.sent_by, MAX_SENT_BY)
        .map_err(|e| bad_text("sent_by".into(), &req.sent_by, e))?;
    if sent_by.is_empty() {
        return Err(ObaError::Invalid {
            message: "sent_by must name who sends the request".into(),
            field: "sent_by".into(),
            value: req.sent_by.clone(),
        });
    }
    if req.lines.is_empty() {
        return Err(ObaError::Invalid {
            message: "no lines selected".into(),
            field: "lines".into(),
            value: String::new(),
        });
    }
    Ok(sent_by)
}

/// Checks every requested line against the order and groups the lines by
/// recipient (first-seen order; a line named twice for one address counts
/// once). Any problem refuses the whole request before anything is queued.
fn recipients(order: &Order, req: &ObaRequest) -> Result<Vec<RecipientLines>, ObaError> {
    let mut per: Vec<RecipientLines> = Vec::new();
    for (i, l) in req.lines.iter().enumerate() {
        if order.line(&l.line).is_none() {
            return Err(ObaError::Invalid {
                message: format!("order {} has no line {:?}", order.so, clip(&l.line)),
                field: format!("lines[{i}].line"),
                value: clip(&l.line),
            });
        }
        let carton = note(&l.carton_note, format!("lines[{i}].carton_note"))?;
        let cref = note(&l.customer_ref, format!("lines[{i}].customer_ref"))?;
        for mb in line_addresses(i, l)? {
            let entry = (l.line.clone(), carton.clone(), cref.clone());
            match per
                .iter_mut()
                .find(|(m, _)| m.email.key() == mb.email.key())
            {
                Some((_, lines)) if !lines.iter().any(|(id, _, _)| id == &l.line) => {
                    lines.push(entry)
                }
                Some(_) => {}
                None => per.push((mb, vec![entry])),
            }
        }
    }
    Ok(per)
}

/// The `to` list of request line `i`: at least one address, all valid.
fn line_addresses(i: usize, l: &ObaLine) -> Result<Vec<Mailbox>, ObaError> {
    // Line breaks in a pasted list only separate addresses; invisible and
    // bidi characters would disguise a name.
    check_text(&l.to, MAX_TO)
        .or_else(|e| match e {
            TextError::Forbidden(CodePoint(c)) if c.is_control() => check_invisible(&l.to),
            e => Err(e),
        })
        .map_err(|e| bad_text(format!("lines[{i}].to"), &l.to, e))?;
    let parsed = parse_address_list(&l.to);
    if parsed.is_empty() {
        return Err(ObaError::Invalid {
            message: "no address".into(),
            field: format!("lines[{i}].to"),
            value: l.to.clone(),
        });
    }
    parsed
        .into_iter()
        .map(|r| {
            r.map_err(|e| ObaError::Invalid {
                message: format!(
                    "invalid address {:?} on line {}: {}",
                    e.input, l.line, e.reason
                ),
                field: format!("lines[{i}].to"),
                value: e.input.clone(),
            })
        })
        .collect()
}

/// Adds `lines` to the recipient's grant (or creates it): grants only grow,
/// and the first grantor and time are kept.
fn extend_grant(meta: &mut OrderMeta, mb: &Mailbox, lines: &[LineNote], sent_by: &str) {
    let line_ids = lines.iter().map(|(id, _, _)| id.clone());
    match meta
        .grants
        .iter_mut()
        .find(|g| g.email.key() == mb.email.key())
    {
        Some(g) => {
            for l in line_ids {
                if !g.lines.contains(&l) {
                    g.lines.push(l);
                }
            }
        }
        None => meta.grants.push(Grant {
            email: mb.email.clone(),
            lines: line_ids.collect(),
            granted_by: sent_by.to_string(),
            at: Utc::now(),
        }),
    }
}

/// What every access mail of one request shares.
struct Access<'a> {
    order: &'a Order,
    /// The order's event sequence number for this request.
    seq: u64,
    grouping: Grouping,
    sent_by: &'a str,
}

/// One mail as planned: its address, its lines, and why it is skipped.
type PlannedMail = (String, Vec<String>, Option<String>);

/// The outcome reported to the caller: queued mails and skipped ones apart.
fn outcome(queued: usize, mails: Vec<PlannedMail>) -> ObaOutcome {
    let (sent, skipped): (Vec<_>, Vec<_>) = mails.into_iter().partition(|(_, _, s)| s.is_none());
    ObaOutcome {
        queued,
        mails: sent
            .into_iter()
            .map(|(to, lines, _)| ObaMail { to, lines })
            .collect(),
        skipped: skipped
            .into_iter()
            .map(|(to, lines, s)| json!({"to": to, "lines": lines, "reason": s}))
            .collect(),
    }
}

impl Notifier {
    /// Validates the whole request first (any bad address or line → error,
    /// nothing queued), then queues the mails and records the grants.
    pub fn send_oba(&self, so: &OrderId, req: &ObaRequest) -> Result<ObaOutcome, ObaError> {
        let store = self.store();
        let sent_by = check_request(req)?;
        // Under the store's write lock: the event sequence and the grants are
        // read, extended and written back as one step.
        store.exclusive(|| {
            let order = store
                .order(so)
                .map_err(NotifyError::from)?
                .ok_or_else(|| ObaError::NoOrder(so.clone()))?;
            let per = recipients(&order, req)?;
            let mut meta = store.order_meta(so).map_err(NotifyError::from)?;
            meta.event_seq += 1;
            let mut commit = Commit::default();
            let mut mails = Vec::new();
            for (mb, lines) in &per {
                let grant = Access {
                    order: &order,
                    seq: meta.event_seq,
                    grouping: req.grouping,
                    sent_by,
                };
                mails.extend(self.queue_access(&grant, mb, lines, &mut commit)?);
                let token = self.token_for(Some(&order), &mb.email);
                commit.tokens.push((
                    token,
                    TokenTarget {
                        so: Some(so.clone()),
                        email: mb.email.clone(),
                    },
                ));
                extend_grant(&mut meta, mb, lines, sent_by);
            }
            commit.meta = Some((so.clone(), meta));
            let done = store.commit_durable(commit).map_err(NotifyError::from)?;
            self.wake();
            Ok(outcome(done.queued.len(), mails))
        })
    }

    /// Prepares the access mails of one recipient into `commit`: one with all
    /// its lines, or one per line, as the request groups them.
    fn queue_access(
        &self,
        &Access {
            order,
            seq,
            grouping,
            sent_by,
        }: &Access<'_>,
        mb: &Mailbox,
        lines: &[LineNote],
        commit: &mut Commit,
    ) -> Result<Vec<PlannedMail>, ObaError> {
        // A recipient of the order is written to in its own language.
        let lang = order
            .recipients
            .iter()
            .find(|r| r.email.key() == mb.email.key())
            .map_or(order.lang, |r| order.lang_for(r));
        let groups: Vec<Vec<LineNote>> = match grouping {
            Grouping::Grouped => vec![lines.to_vec()],
            Grouping::PerLine => lines.iter().map(|l| vec![l.clone()]).collect(),
        };
        let mut mails = Vec::new();
        for g in groups {
            let ids: Vec<String> = g.iter().map(|(id, _, _)| id.clone()).collect();
            let spec = MailSpec {
                // The sequence makes a repeated grant a new mail, not a
                // duplicate of the first one.
                key: format!(
                    "{}/oba_access/{}/{}/o{seq}",
                    order.so,
                    mb.email.key(),
                    ids.join("+")
                ),
                kind: super::Kind::ObaAccess,
                order: Some(order),
                to: mb.clone(),
                lang,
                lines: ids.clone(),
                line_notes: g,
                extra: json!({"granted_by": sent_by}),
                requested_by: sent_by.to_string(),
                skip: None,
                auto: AutoSubmitted::AutoGenerated,
                in_reply_to: None,
                references: Vec::new(),
            };
            let rec = self.prepare(&spec)?;
            mails.push((mb.email.to_string(), ids, rec.entry.skipped.clone()));
            commit.mails.push(rec);
        }
        Ok(mails)
    }
}
