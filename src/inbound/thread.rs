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
    /// Orders the store knows, by the most reliable evidence first.
    pub orders: Vec<OrderRef>,
    /// Orders named in the text that the store does not know, as a person
    /// looks them up: SO numbers, and `PO <number>` as written.
    pub named: Vec<String>,
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

/// A word that says the number after it is an order ("SO", "order",
/// "commande"), so an unknown number is still reported.
fn so_marker() -> Option<&'static Regex> {
    static P: OnceLock<Option<Regex>> = OnceLock::new();
    P.get_or_init(|| {
        Regex::new(
            r"(?i)\b(S\.?O\.?|sales ?orders?|orders?|commandes?|cdes?|n° de commande|order (number|no\.?|#))\s*(#|no\.?|n°|nº|number|num[ée]ro|nr\.?)?\s*[:#]?\s*$",
        )
        .ok()
    })
    .as_ref()
}

/// Separators of a list of numbers ("61200459 and 61200460").
fn list_separator() -> Option<&'static Regex> {
    static P: OnceLock<Option<Regex>> = OnceLock::new();
    P.get_or_init(|| Regex::new(r"(?i)^\s*(,|;|/|&|\+|and|et|or|ou|-)\s*(SO\s*#?\s*)?$").ok())
        .as_ref()
}

/// Orders referenced in free text (subject + new text): those the store
/// knows, and the numbers the customer names that it does not (an SO
/// number after an order word, a PO kept as written).
pub fn orders_in_text(
    text: &str,
    dir: &dyn Directory,
) -> Result<(Vec<OrderRef>, Vec<String>), DirectoryError> {
    let mut orders = Vec::new();
    let mut named: Vec<String> = Vec::new();
    let mut name = |n: String| {
        if !named.contains(&n) {
            named.push(n);
        }
    };
    if let Some(re) = so_pattern() {
        // A run of 6–10 digits, even glued to "SO" ("SO10458321").
        let runs = re
            .find_iter(text)
            .filter(|m| (6..=10).contains(&m.as_str().len()))
            .take(MAX_CANDIDATES);
        let mut last_end: Option<usize> = None;
        for m in runs {
            let glued = text[..m.start()]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '+');
            let before_start = text[..m.start()]
                .char_indices()
                .rev()
                .nth(29)
                .map_or(0, |(i, _)| i);
            let before = &text[before_start..m.start()];
            let marked = so_marker().is_some_and(|r| r.is_match(before))
                || text[..m.start()].to_ascii_uppercase().ends_with("SO");
            let listed = last_end.is_some_and(|end| {
                end <= m.start()
                    && list_separator().is_some_and(|r| r.is_match(&text[end..m.start()]))
            });
            if let Some(o) = dir.order_exists(m.as_str())? {
                push(&mut orders, o);
                last_end = Some(m.end());
            } else if (marked || (listed && !glued))
                && m.as_str().parse::<crate::domain::OrderId>().is_ok()
            {
                name(m.as_str().to_string());
                last_end = Some(m.end());
            }
        }
    }
    if let Some(re) = po_pattern() {
        for c in re.captures_iter(text).take(MAX_CANDIDATES) {
            let Some(m) = c.get(1) else { continue };
            if let Some(o) = dir.order_by_po(m.as_str())? {
                push(&mut orders, o);
            } else if m.as_str().chars().any(|c| c.is_ascii_digit()) {
                name(format!("PO {}", m.as_str()));
            }
        }
    }
    let known: Vec<&str> = orders.iter().map(|o| o.so.as_str()).collect();
    named.retain(|n| !known.contains(&n.as_str()));
    Ok((orders, named))
}

/// Which orders the message is about. Orders named in the text are added
/// to those of the token or Message-ID: a customer may write about another
/// order in a reply.
pub fn thread(p: &Parsed, new_text: &str, dir: &dyn Directory) -> Result<Thread, DirectoryError> {
    let text = format!("{}\n{}", p.subject, new_text);
    let (in_text, named) = orders_in_text(&text, dir)?;
    let mut t = Thread {
        orders: Vec::new(),
        named,
        method: Method::None,
        token_recipient: None,
    };
    if let Some(tok) = reply_token(p)
        && let Some(o) = dir.order_by_token(tok)?
    {
        t.token_recipient = o.recipient.clone();
        t.orders.push(o);
        t.method = Method::ReplyToken;
    }
    if t.orders.is_empty() {
        for id in p.thread_ids.iter().take(MAX_IDS) {
            if let Some(o) = dir.order_by_message_id(id)? {
                push(&mut t.orders, o);
            }
        }
        if !t.orders.is_empty() {
            t.method = Method::MessageId;
        }
    }
    if t.method == Method::None && !in_text.is_empty() {
        t.method = Method::Text;
    }
    for o in in_text {
        push(&mut t.orders, o);
    }
    Ok(t)
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
                .0
                .len(),
            1
        );
        assert_eq!(
            orders_in_text("our PO: ACME-PO-7781.", &w).unwrap().0.len(),
            1
        );
        let (known, named) = orders_in_text("call +33 612345678 or 99999999", &w).unwrap();
        assert!(known.is_empty() && named.is_empty(), "{named:?}");
    }

    #[test]
    fn unknown_orders_are_named_as_written() {
        let w = world();
        let (known, named) = orders_in_text(
            "We placed order 61200459 and 61200460 twice; SO#10458321 is fine. Our PO 4500012345 too, PO box none.",
            &w,
        )
        .unwrap();
        assert_eq!(known.len(), 1);
        assert_eq!(named, ["61200459", "61200460", "PO 4500012345"]);
        let (_, named) = orders_in_text("commande n° 71234567, tel 0612345678", &w).unwrap();
        assert_eq!(named, ["71234567"]);
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
