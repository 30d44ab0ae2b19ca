//! Order-Based Access: grant people access to one order, per line, by mail.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{AutoSubmitted, LineNote, MailSpec, Notifier, NotifyError};
use crate::domain::{
    CodePoint, Mailbox, OrderId, TextError, check_invisible, check_text, clip, parse_address_list,
};
use crate::store::{Commit, Grant, TokenTarget};

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
    pub sent_by: String,
    pub grouping: Grouping,
    pub lines: Vec<ObaLine>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObaLine {
    pub line: String,
    pub to: String,
    pub carton_note: Option<String>,
    pub customer_ref: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ObaError {
    #[error("no order {0}")]
    NoOrder(OrderId),
    /// A 422: names the field and the bad value; nothing was sent.
    #[error("{message}")]
    Invalid {
        message: String,
        field: String,
        value: String,
    },
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

#[derive(Debug, Clone, Serialize)]
pub struct ObaMail {
    pub to: String,
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObaOutcome {
    pub queued: usize,
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

impl Notifier {
    /// Validates the whole request first (any bad address or line → error,
    /// nothing queued), then queues the mails and records the grants.
    pub fn send_oba(&self, so: &OrderId, req: &ObaRequest) -> Result<ObaOutcome, ObaError> {
        let store = self.store();
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
        store.exclusive(|| {
            let order = store
                .order(so)
                .map_err(NotifyError::from)?
                .ok_or_else(|| ObaError::NoOrder(so.clone()))?;
            // (recipient, [(line, carton, ref)]) in first-seen order.
            let mut per: Vec<(Mailbox, Vec<LineNote>)> = Vec::new();
            for (i, l) in req.lines.iter().enumerate() {
                if order.line(&l.line).is_none() {
                    return Err(ObaError::Invalid {
                        message: format!("order {so} has no line {:?}", clip(&l.line)),
                        field: format!("lines[{i}].line"),
                        value: clip(&l.line),
                    });
                }
                let carton = note(&l.carton_note, format!("lines[{i}].carton_note"))?;
                let cref = note(&l.customer_ref, format!("lines[{i}].customer_ref"))?;
                // Line breaks in a pasted list only separate addresses;
                // invisible and bidi characters would disguise a name.
                check_text(&l.to, MAX_TO)
                    .or_else(|e| match e {
                        TextError::Forbidden(CodePoint(c)) if c.is_control() => {
                            check_invisible(&l.to)
                        }
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
                for r in parsed {
                    let mb = r.map_err(|e| ObaError::Invalid {
                        message: format!(
                            "invalid address {:?} on line {}: {}",
                            e.input, l.line, e.reason
                        ),
                        field: format!("lines[{i}].to"),
                        value: e.input.clone(),
                    })?;
                    match per
                        .iter_mut()
                        .find(|(m, _)| m.email.key() == mb.email.key())
                    {
                        Some((_, lines)) if !lines.iter().any(|(id, _, _)| id == &l.line) => {
                            lines.push((l.line.clone(), carton.clone(), cref.clone()))
                        }
                        Some(_) => {}
                        None => {
                            per.push((mb, vec![(l.line.clone(), carton.clone(), cref.clone())]))
                        }
                    }
                }
            }
            let mut meta = store.order_meta(so).map_err(NotifyError::from)?;
            meta.event_seq += 1;
            let seq = meta.event_seq;
            let mut commit = Commit::default();
            let mut mails = Vec::new();
            for (mb, lines) in &per {
                let lang = order
                    .recipients
                    .iter()
                    .find(|r| r.email.key() == mb.email.key())
                    .map_or(order.lang, |r| order.lang_for(r));
                let groups: Vec<Vec<LineNote>> = match req.grouping {
                    Grouping::Grouped => vec![lines.clone()],
                    Grouping::PerLine => lines.iter().map(|l| vec![l.clone()]).collect(),
                };
                for g in groups {
                    let ids: Vec<String> = g.iter().map(|(id, _, _)| id.clone()).collect();
                    let spec = MailSpec {
                        key: format!(
                            "{so}/oba_access/{}/{}/o{seq}",
                            mb.email.key(),
                            ids.join("+")
                        ),
                        kind: super::Kind::ObaAccess,
                        order: Some(&order),
                        to: mb.clone(),
                        lang,
                        lines: ids.clone(),
                        line_notes: g.clone(),
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
                let token = self.token_for(Some(&order), &mb.email);
                commit.tokens.push((
                    token,
                    TokenTarget {
                        so: Some(so.clone()),
                        email: mb.email.clone(),
                    },
                ));
                let line_ids: Vec<String> = lines.iter().map(|(id, _, _)| id.clone()).collect();
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
                        lines: line_ids,
                        granted_by: sent_by.to_string(),
                        at: Utc::now(),
                    }),
                }
            }
            commit.meta = Some((so.clone(), meta));
            let outcome = store.commit_durable(commit).map_err(NotifyError::from)?;
            self.wake();
            let (sent, skipped): (Vec<_>, Vec<_>) =
                mails.into_iter().partition(|(_, _, s)| s.is_none());
            Ok(ObaOutcome {
                queued: outcome.queued.len(),
                mails: sent
                    .into_iter()
                    .map(|(to, lines, _)| ObaMail { to, lines })
                    .collect(),
                skipped: skipped
                    .into_iter()
                    .map(|(to, lines, s)| json!({"to": to, "lines": lines, "reason": s}))
                    .collect(),
            })
        })
    }
}
