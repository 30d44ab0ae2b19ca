//! Which orders a message is about, by the most reliable evidence first: the
//! reply token in `reply+TOKEN@`, then our Message-IDs in In-Reply-To /
//! References, then SO# / PO# written in the subject or the new text (never
//! in quoted history, which the caller has already removed).

use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

use super::parse::Parsed;
use super::ports::{Directory, DirectoryError, OrderRef};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    ReplyToken,
    MessageId,
    Text,
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    pub orders: Vec<OrderRef>,
    pub method: Method,
    /// The recipient the reply token was minted for.
    pub token_recipient: Option<String>,
}

/// Limits on how much a hostile message can make us look up.
const MAX_IDS: usize = 50;
const MAX_CANDIDATES: usize = 20;

fn reply_token(p: &Parsed) -> Option<&str> {
    p.recipients.iter().find_map(|r| {
        let (local, _) = r.split_once('@')?;
        let tok = local.strip_prefix("reply+")?;
        let ok = !tok.is_empty()
            && tok.len() <= 128
            && tok
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        ok.then_some(tok)
    })
}

fn so_pattern() -> Option<&'static Regex> {
    static P: OnceLock<Option<Regex>> = OnceLock::new();
    P.get_or_init(|| Regex::new(r"\d+").ok()).as_ref()
}

fn po_pattern() -> Option<&'static Regex> {
    static P: OnceLock<Option<Regex>> = OnceLock::new();
    P.get_or_init(|| {
        Regex::new(
            r"(?i)\b(?:PO|P\.O\.|purchase order|bon de commande|BDC)\s*(?:#|no\.?|n°|number|num[ée]ro)?\s*[:#]?\s*([A-Za-z0-9][A-Za-z0-9\-_/.]{2,40}[A-Za-z0-9])",
        )
        .ok()
    })
    .as_ref()
}

fn push(orders: &mut Vec<OrderRef>, o: OrderRef) {
    if !orders.iter().any(|x| x.so == o.so) {
        orders.push(o);
    }
}

/// Orders referenced in free text (subject + new text).
pub fn orders_in_text(text: &str, dir: &dyn Directory) -> Result<Vec<OrderRef>, DirectoryError> {
    let mut orders = Vec::new();
    if let Some(re) = so_pattern() {
        // A run of 6–10 digits, even glued to "SO" ("SO10458321").
        let runs = re
            .find_iter(text)
            .filter(|m| (6..=10).contains(&m.as_str().len()))
            .take(MAX_CANDIDATES);
        for m in runs {
            if let Some(o) = dir.order_exists(m.as_str())? {
                push(&mut orders, o);
            }
        }
    }
    if let Some(re) = po_pattern() {
        for c in re.captures_iter(text).take(MAX_CANDIDATES) {
            if let Some(m) = c.get(1)
                && let Some(o) = dir.order_by_po(m.as_str())?
            {
                push(&mut orders, o);
            }
        }
    }
    Ok(orders)
}

pub fn thread(p: &Parsed, new_text: &str, dir: &dyn Directory) -> Result<Thread, DirectoryError> {
    if let Some(tok) = reply_token(p)
        && let Some(o) = dir.order_by_token(tok)?
    {
        return Ok(Thread {
            token_recipient: o.recipient.clone(),
            orders: vec![o],
            method: Method::ReplyToken,
        });
    }
    let mut orders = Vec::new();
    for id in p.thread_ids.iter().take(MAX_IDS) {
        if let Some(o) = dir.order_by_message_id(id)? {
            push(&mut orders, o);
        }
    }
    if !orders.is_empty() {
        return Ok(Thread {
            orders,
            method: Method::MessageId,
            token_recipient: None,
        });
    }
    let text = format!("{}\n{}", p.subject, new_text);
    let orders = orders_in_text(&text, dir)?;
    let method = if orders.is_empty() {
        Method::None
    } else {
        Method::Text
    };
    Ok(Thread {
        orders,
        method,
        token_recipient: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::ports::{MemOrder, MemWorld};

    fn world() -> MemWorld {
        MemWorld {
            orders: vec![MemOrder {
                so: "10458321".into(),
                po: Some("ACME-PO-7781".into()),
                lang: Default::default(),
                recipients: vec![],
                granted: vec![],
                open_holds: vec![],
                pids: vec![],
                archived: false,
                notification_ids: vec!["n1@edesk.example.com".into()],
            }],
            ..MemWorld::default()
        }
    }

    #[test]
    fn so_and_po_in_text_are_checked_against_the_directory() {
        let w = world();
        assert_eq!(
            orders_in_text("about SO#10458321 please", &w)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            orders_in_text("our PO: ACME-PO-7781.", &w).unwrap().len(),
            1
        );
        assert!(
            orders_in_text("call +33 612345678 or 99999999", &w)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn message_id_before_text() {
        let w = world();
        let p = Parsed {
            thread_ids: vec!["n1@edesk.example.com".into()],
            ..Parsed::default()
        };
        let t = thread(&p, "", &w).unwrap();
        assert_eq!(t.method, Method::MessageId);
    }
}
