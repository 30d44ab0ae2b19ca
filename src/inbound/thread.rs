//! Which orders a message is about, by the most reliable evidence first: the
//! reply token in `reply+TOKEN@`, then our Message-IDs in In-Reply-To /
//! References, then SO# / PO# written in the subject or the new text (never
//! in quoted history, which the caller has already removed).

use serde::Serialize;

pub use super::orders::{NamedOrder, orders_in_text};
use super::parse::Parsed;
use super::ports::{Directory, DirectoryError, OrderRef};

/// The evidence that threaded the message (snake_case in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The `reply+TOKEN@` recipient matched an order.
    ReplyToken,
    /// In-Reply-To/References named one of our Message-IDs.
    MessageId,
    /// Only SO#/PO# numbers in the subject or new text matched.
    Text,
    /// No order found.
    None,
}

/// Which orders a message is about, as found by [`thread`].
#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    /// Orders the store knows, by the most reliable evidence first.
    pub orders: Vec<OrderRef>,
    /// Orders named in the text that the store does not know, as a person
    /// looks them up: SO numbers, and `PO <number>` as written.
    pub named: Vec<NamedOrder>,
    /// The most reliable evidence that found an order.
    pub method: Method,
    /// The recipient the reply token was minted for.
    pub token_recipient: Option<String>,
}

/// Limits on how much a hostile message can make us look up.
const MAX_IDS: usize = 50;

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

fn push(orders: &mut Vec<OrderRef>, o: OrderRef) {
    if !orders.iter().any(|x| x.so == o.so) {
        orders.push(o);
    }
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
                so: "10458321".parse().unwrap(),
                po: Some("ACME-PO-7781".parse().unwrap()),
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

    /// What customers write around the numbers they name: each case is
    /// the text and the orders a person would look up.
    #[test]
    fn orders_named_the_way_customers_write_them() {
        let w = world();
        let cases: &[(&str, &[&str])] = &[
            (
                "Hello, our order ID 87654321 has not arrived.",
                &["87654321"],
            ),
            (
                "The order reference: 87654321 has not arrived.",
                &["87654321"],
            ),
            (
                "Hi, SO-87654321 never showed up in eDelivery.",
                &["87654321"],
            ),
            (
                "Hi, the following orders are missing:\n87654321\n87654322\n87654323\nThanks",
                &["87654321", "87654322", "87654323"],
            ),
            (
                "Orders affected:\n- 87654321\n* 87654322\n\u{2022} 87654323",
                &["87654321", "87654322", "87654323"],
            ),
            (
                "Order #87654321, #87654322 and #87654323 are missing.",
                &["87654321", "87654322", "87654323"],
            ),
            (
                "Bonjour, notre commande client 87654321 n'est pas arrivee.",
                &["87654321"],
            ),
            (
                "Bonjour, la commande Cisco n\u{b0}87654321 et la 87654322 manquent.",
                &["87654321", "87654322"],
            ),
            (
                "The order was placed on 20260302 under number 87654321.",
                &["87654321"],
            ),
            ("Invoice 90012345 for order 87654321.", &["87654321"]),
            (
                "two other orders we placed through our partner never showed up in eDelivery:\n\n- 61200459\n- 61200460\n",
                &["61200459", "61200460"],
            ),
            (
                "Our PO is 4500099887 and nothing arrived.",
                &["PO 4500099887"],
            ),
            (
                "PO number is 4500099887, nothing arrived.",
                &["PO 4500099887"],
            ),
            (
                "Hi, our purchase order (4500099887) shows nothing.",
                &["PO 4500099887"],
            ),
            (
                "POs 4500099887 and 4500099888 are both missing.",
                &["PO 4500099887", "PO 4500099888"],
            ),
            ("PO-4500099887 is missing.", &["PO 4500099887"]),
            // A PO the store knows resolves to its order, even written bare.
            ("Regarding acme-po-7781: nothing arrived.", &["10458321"]),
            (
                "Notre bon de commande n\u{b0} BC-77/2026 : rien recu.",
                &["PO BC-77/2026"],
            ),
        ];
        for (text, want) in cases {
            let (known, named) = orders_in_text(text, &w).unwrap();
            let got: Vec<String> = known
                .iter()
                .map(|o| o.so.to_string())
                .chain(named.iter().map(ToString::to_string))
                .collect();
            assert_eq!(&got, want, "{text}");
        }
    }

    /// Numbers that are not orders: phones, dates, product names, other
    /// documents, a PO inside a PO the store knows.
    #[test]
    fn numbers_that_are_not_orders() {
        let w = world();
        for text in [
            "We run postfix-3.7 on Power10 servers and Polaris2 boxes.",
            "Please call me about the order on 0612345678 or +33 6 12 34 56 78.",
            "Order question: my phone 0612345678, fax 0145678901.",
            "Our order was placed on 20260302, see invoice 90012345 and case 694123456.",
            "About the order: PO Box 4521, Springfield.",
            "Order placed 2026-03-02 for 1.234.567,00 EUR.",
            "ACME-PO-7781 is ours",
            "Please find our invoices below:\n\n- 90012345\n- 90012346",
            "About the order, reach me at +33 612345678 or +1 (415) 55501420.",
            "Order: +33 612345678",
        ] {
            let (known, named) = orders_in_text(text, &w).unwrap();
            let known: Vec<&str> = known.iter().map(|o| o.so.as_str()).collect();
            assert!(
                named.is_empty() && known.iter().all(|k| *k == "10458321"),
                "{text}: {known:?} {named:?}"
            );
        }
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
