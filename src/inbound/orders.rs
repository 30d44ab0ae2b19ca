//! The orders a customer names in what they wrote (subject + new text),
//! as a person reading the mail would look them up: SO numbers (the store's
//! or not) and purchase order numbers (resolved to their SO when the store
//! knows the PO, otherwise kept as written).
//!
//! A number is an order by its context, not by a list of phrasings: the
//! nearest identifier word before it says what it is ("order", "SO",
//! "commande" make an order; "invoice", "case", "phone", "PO" make
//! something else), a number continuing a list of orders is one too, and
//! shapes that are dates or phone numbers need the order word right before
//! them.

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;

use super::ports::{Directory, DirectoryError, OrderRef};
use crate::domain::{OrderId, PoNumber};

/// Limits on how much a hostile message can make us look up.
const MAX_CANDIDATES: usize = 20;
/// How far before a number its identifier word is looked for (chars).
const WINDOW_CHARS: usize = 60;
/// Words allowed between an order word and its number ("order was placed
/// on … under number 87654321").
const MAX_WORDS_BETWEEN: usize = 7;

fn re(cell: &'static OnceLock<Option<Regex>>, pattern: &str) -> Option<&'static Regex> {
    cell.get_or_init(|| Regex::new(pattern).ok()).as_ref()
}

/// Identifier words: which kind of number follows. Longer phrases come
/// first so "purchase order" is not read as "order".
fn id_words() -> Option<&'static Regex> {
    static P: OnceLock<Option<Regex>> = OnceLock::new();
    re(
        &P,
        r"(?i)\b(?:(?P<po>purchase\s+orders?|bons?\s+de\s+commande|p\.o\.?|pos?|bdc)|(?P<other>invoices?|factures?|inv|cases?|sr|tac|tickets?|incidents?|service\s+requests?|dossiers?|rma|contracts?|contrats?|serial(?:\s+numbers?)?|s/n|sn|num[ée]ro\s+de\s+s[ée]rie|paks?|licen[cs]es?|keys?|cl[ée]s?|phone|t[ée]l[ée]phone|tel|t[ée]l|mobile|portable|fax|call|appel\w*|joindre|customer\s+(?:number|id|no)|num[ée]ro\s+client|n°\s*client|account|compte|quotes?|devis|deal|siret|siren|tva|vat|iban|bic|zip|code\s+postal|ext|poste)|(?P<order>sales\s+orders?|orders?|commandes?|cdes?|cmdes?|so|s\.o\.?))(?:\b|$)",
    )
}

/// What may sit between an order word and its number without weakening it.
fn filler() -> Option<&'static Regex> {
    static P: OnceLock<Option<Regex>> = OnceLock::new();
    re(
        &P,
        r"(?i)^(?:\s|[#:=\-(\[]|n°|nº|no\.?|nr\.?|num\.?|number|num[ée]ro|id|ref\.?|reference|r[ée]f[ée]rence)*$",
    )
}

/// What separates the numbers of a list ("87654321, 87654322 and …", one
/// per line, bullets).
fn list_separator() -> Option<&'static Regex> {
    static P: OnceLock<Option<Regex>> = OnceLock::new();
    re(
        &P,
        r"(?i)^(?:\s|[,;/&+*#|()\-\u{2022}\u{b7}]|and|et|or|ou|the|la|le|also|aussi|so|n°|no\.?)*$",
    )
}

/// Words that join the items of a list.
const LIST_WORDS: &[&str] = &["and", "et", "or", "ou", "also", "aussi"];

/// A purchase order keyword, the words that may follow it, and its value.
fn po_pattern() -> Option<&'static Regex> {
    static P: OnceLock<Option<Regex>> = OnceLock::new();
    re(
        &P,
        r"(?i)(?P<kw>(?:purchase\s+orders?|bons?\s+de\s+commande|p\.o\.?|pos?|bdc)(?:'s)?)(?:\s|[#:=\-(]|n°|nº|no\.?|nr\.?|number|num[ée]ro|ref\.?|reference|r[ée]f[ée]rence|is|was|est)*(?P<v>[A-Za-z0-9](?:[A-Za-z0-9\-_/.]*[A-Za-z0-9])?)",
    )
}

/// Tokens that may be a PO written without its keyword.
fn id_token() -> Option<&'static Regex> {
    static P: OnceLock<Option<Regex>> = OnceLock::new();
    re(&P, r"[A-Za-z0-9](?:[A-Za-z0-9\-_/.]*[A-Za-z0-9])?")
}

fn digit_runs() -> Option<&'static Regex> {
    static P: OnceLock<Option<Regex>> = OnceLock::new();
    re(&P, r"\d+")
}

/// The kind of the nearest identifier word before a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cue {
    /// An order word, right before the number (only fillers between).
    OrderRightBefore,
    /// An order word a few words before.
    Order,
    /// Another kind of number (invoice, phone, PO, …).
    Other,
    None,
}

fn char_start(text: &str, end: usize, chars: usize) -> usize {
    text[..end]
        .char_indices()
        .rev()
        .nth(chars.saturating_sub(1))
        .map_or(0, |(i, _)| i)
}

/// The clause introducing a list the number at `at` opens ("two other
/// orders never showed up:\n\n- 61200459"): the text from the previous
/// sentence end to the colon before the number's bullet.
fn list_intro(text: &str, at: usize) -> Option<&str> {
    let head = text[..at].trim_end_matches(|c: char| {
        c.is_whitespace() || matches!(c, '-' | '*' | '\u{2022}' | '\u{b7}' | '#')
    });
    let head = head.strip_suffix(':')?;
    let start = head.rfind(['.', '!', '?', '\n']).map_or(0, |i| i + 1);
    Some(&head[start..])
}

/// The kind of the last identifier word of `clause`, if any.
fn last_word_kind(clause: &str) -> Cue {
    match id_words().and_then(|w| w.captures_iter(clause).last()) {
        Some(c) if c.name("order").is_some() => Cue::Order,
        Some(_) => Cue::Other,
        None => Cue::None,
    }
}

/// What the words before `at` say about the number starting there.
fn cue_before(text: &str, at: usize) -> Cue {
    if let Some(intro) = list_intro(text, at) {
        let cue = last_word_kind(intro);
        if cue != Cue::None {
            return cue;
        }
    }
    let start = char_start(text, at, WINDOW_CHARS);
    let mut window = &text[start..at];
    // A blank line cuts the context (a sentence that ended between the
    // order word and the number does too, see `ends_sentence`).
    if let Some(i) = window.rfind("\n\n").or_else(|| window.rfind("\r\n\r\n")) {
        window = &window[i..];
    }
    let Some(words) = id_words() else {
        return Cue::None;
    };
    let Some(last) = words.captures_iter(window).last() else {
        return Cue::None;
    };
    let Some(m) = last.get(0) else {
        return Cue::None;
    };
    if last.name("po").is_some() || last.name("other").is_some() {
        return Cue::Other;
    }
    let between = &window[m.end()..];
    // "so" is also an English word: only "SO" or "so#…" right before counts.
    let word = m.as_str();
    let is_so = word.eq_ignore_ascii_case("so");
    let right_before = filler().is_some_and(|f| f.is_match(between));
    if is_so && !(word == "SO" || right_before) {
        return Cue::None;
    }
    if right_before {
        return Cue::OrderRightBefore;
    }
    if between.split_whitespace().count() <= MAX_WORDS_BETWEEN && !ends_sentence(between) {
        Cue::Order
    } else {
        Cue::None
    }
}

/// A sentence ended between the order word and the number.
fn ends_sentence(between: &str) -> bool {
    let b: Vec<char> = between.chars().collect();
    b.windows(3)
        .any(|w| matches!(w[0], '.' | '!' | '?') && w[1].is_whitespace() && w[2].is_uppercase())
}

/// Shapes that are usually not order numbers: a date (YYYYMMDD,
/// DDMMYYYY) or a French phone number (10 digits starting with 0).
fn looks_like_date_or_phone(n: &str) -> bool {
    let d = |r: std::ops::Range<usize>| n.get(r).and_then(|s| s.parse::<u32>().ok());
    let date = |y: Option<u32>, m: Option<u32>, day: Option<u32>| {
        matches!((y, m, day), (Some(y), Some(m), Some(day))
            if (1990..=2100).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&day))
    };
    (n.len() == 8 && (date(d(0..4), d(4..6), d(6..8)) || date(d(4..8), d(2..4), d(0..2))))
        || (n.len() == 10 && n.starts_with('0'))
}

/// The number is part of something longer: glued to letters (a product
/// name), a phone (`+33`), a decimal or grouped amount, a date.
fn glued(text: &str, start: usize, end: usize) -> bool {
    let before: Vec<char> = text[..start].chars().rev().take(2).collect();
    let after: Vec<char> = text[end..].chars().take(2).collect();
    // "SO87654321" is an order number glued to its marker.
    let letter_before =
        before.first().is_some_and(|c| c.is_alphabetic()) && !text[..start].ends_with("SO");
    let joined = |c: Option<&char>, d: Option<&char>| {
        matches!(c, Some('.' | ',' | ':' | '/')) && d.is_some_and(|d| d.is_ascii_digit())
    };
    // "+33 612345678", "+1 (415) 55501420": the rest of a phone number.
    let head = &text[char_start(text, start, 12)..start];
    let prefix = head.trim_end_matches(|c: char| c.is_ascii_digit() || " ().-".contains(c));
    let after_country_code =
        prefix.ends_with('+') && head[prefix.len()..].chars().any(|c| c.is_ascii_digit());
    letter_before
        || after_country_code
        || before.first() == Some(&'+')
        || after.first().is_some_and(|c| c.is_alphanumeric())
        || joined(before.first(), before.get(1))
        || joined(after.first(), after.get(1))
}

/// An order as a customer names it: an SO number, or a PO number the store
/// may not know. Shown (and serialized) as a person looks it up: the SO
/// digits, or `PO <number>` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedOrder {
    /// A sales order number.
    So(OrderId),
    /// A purchase order number, as written.
    Po(PoNumber),
}

impl NamedOrder {
    /// The SO number, when this is one.
    pub fn order_id(&self) -> Option<&OrderId> {
        match self {
            NamedOrder::So(so) => Some(so),
            NamedOrder::Po(_) => None,
        }
    }

    /// The PO number, when this is one.
    pub fn po_number(&self) -> Option<&PoNumber> {
        match self {
            NamedOrder::So(_) => None,
            NamedOrder::Po(po) => Some(po),
        }
    }
}

impl fmt::Display for NamedOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamedOrder::So(so) => write!(f, "{so}"),
            NamedOrder::Po(po) => write!(f, "PO {po}"),
        }
    }
}

/// As shown: `mail inspect --json` lists the orders as strings.
impl serde::Serialize for NamedOrder {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Compares with the text shown (`"10458321"`, `"PO 4500099887"`).
impl PartialEq<&str> for NamedOrder {
    fn eq(&self, other: &&str) -> bool {
        match self {
            NamedOrder::So(so) => so.as_str() == *other,
            NamedOrder::Po(po) => other.strip_prefix("PO ").is_some_and(|o| o == po.as_str()),
        }
    }
}

/// Orders referenced in free text: those the store knows (by SO or by PO,
/// with or without a keyword), then the numbers the customer names that
/// it does not know: SO numbers, and `PO <value>` as written.
pub fn orders_in_text(
    text: &str,
    dir: &dyn Directory,
) -> Result<(Vec<OrderRef>, Vec<NamedOrder>), DirectoryError> {
    let mut found = Found::default();
    let mut lookups = 0usize;
    let po_spans = purchase_orders(text, dir, &mut found, &mut lookups)?;
    sales_orders(text, dir, &po_spans, &mut found, &mut lookups)?;
    bare_purchase_orders(text, dir, &po_spans, &mut found, &mut lookups)?;
    Ok(found.into_lists())
}

/// Orders found, each with where it first appears (they are reported in
/// the order the customer wrote them).
#[derive(Default)]
struct Found {
    known: Vec<(usize, OrderRef)>,
    named: Vec<(usize, NamedOrder)>,
}

impl Found {
    fn known(&mut self, at: usize, o: OrderRef) {
        match self.known.iter_mut().find(|(_, x)| x.so == o.so) {
            Some(k) => k.0 = k.0.min(at),
            None => self.known.push((at, o)),
        }
    }
    fn name(&mut self, at: usize, n: NamedOrder) {
        match self.named.iter_mut().find(|(_, x)| *x == n) {
            Some(k) => k.0 = k.0.min(at),
            None => self.named.push((at, n)),
        }
    }
    fn into_lists(mut self) -> (Vec<OrderRef>, Vec<NamedOrder>) {
        self.known.sort_by_key(|(at, _)| *at);
        self.named.sort_by_key(|(at, _)| *at);
        let known: Vec<OrderRef> = self.known.into_iter().map(|(_, o)| o).collect();
        let named = self
            .named
            .into_iter()
            .map(|(_, n)| n)
            .filter(|n| {
                !n.order_id()
                    .is_some_and(|so| known.iter().any(|o| o.so == *so))
            })
            .collect();
        (known, named)
    }
}

/// `PO …` values (and the list that may follow the first); returns their
/// byte spans so the SO pass leaves them alone.
fn purchase_orders(
    text: &str,
    dir: &dyn Directory,
    found: &mut Found,
    lookups: &mut usize,
) -> Result<Vec<(usize, usize)>, DirectoryError> {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let (Some(po), Some(token)) = (po_pattern(), id_token()) else {
        return Ok(spans);
    };
    for c in po.captures_iter(text) {
        let (Some(kw), Some(value)) = (c.name("kw"), c.name("v")) else {
            continue;
        };
        // The keyword is a word of its own: not inside "ACME-PO-7781", not
        // the start of "Power10" or "postfix-3.7".
        let left_ok = text[..kw.start()]
            .chars()
            .next_back()
            .is_none_or(|ch| !(ch.is_alphanumeric() || "-_/.".contains(ch)));
        let right_ok = text[kw.end()..]
            .chars()
            .next()
            .is_some_and(|ch| !ch.is_alphabetic());
        if !left_ok || !right_ok || !is_po_value(value.as_str()) {
            continue;
        }
        let mut values = vec![(value.start(), value.end())];
        // "POs 4500099887 and 4500099888", one per line, a bulleted list.
        let mut end = value.end();
        for m in token.find_iter(&text[value.end()..]) {
            let (s, e) = (value.end() + m.start(), value.end() + m.end());
            if LIST_WORDS.contains(&m.as_str().to_lowercase().as_str()) {
                continue;
            }
            let sep = &text[end..s];
            let is_list = (sep.contains('\n') || !sep.trim().is_empty())
                && list_separator().is_some_and(|r| r.is_match(sep));
            if !is_list || !is_po_value(m.as_str()) {
                break;
            }
            values.push((s, e));
            end = e;
        }
        for (s, e) in values {
            if spans.iter().any(|&(a, b)| s < b && e > a) {
                continue;
            }
            spans.push((s, e));
            if *lookups >= MAX_CANDIDATES {
                continue;
            }
            *lookups += 1;
            // A value that is no PO number (never, given `is_po_value`) is
            // not an order.
            let Ok(po) = text[s..e].parse::<PoNumber>() else {
                continue;
            };
            if let Some(o) = lookup_po(dir, &po)? {
                found.known(s, o);
            } else {
                found.name(s, NamedOrder::Po(po));
            }
        }
    }
    Ok(spans)
}

/// The order behind a PO value: by PO, else as an SO written after "PO".
fn lookup_po(dir: &dyn Directory, po: &PoNumber) -> Result<Option<OrderRef>, DirectoryError> {
    if let Some(o) = dir.order_by_po(po)? {
        return Ok(Some(o));
    }
    match po.as_str().parse::<OrderId>() {
        Ok(so) => dir.order_exists(&so),
        Err(_) => Ok(None),
    }
}

/// A PO value as written: has a digit, 4–42 characters.
fn is_po_value(v: &str) -> bool {
    (4..=42).contains(&v.chars().count()) && v.chars().any(|c| c.is_ascii_digit())
}

/// SO numbers: runs of digits the store knows, or that the words around
/// them make orders.
fn sales_orders(
    text: &str,
    dir: &dyn Directory,
    po_spans: &[(usize, usize)],
    found: &mut Found,
    lookups: &mut usize,
) -> Result<(), DirectoryError> {
    let Some(runs) = digit_runs() else {
        return Ok(());
    };
    // The end of the last order number, for lists.
    let mut last_end: Option<usize> = None;
    for m in runs.find_iter(text) {
        let n = m.as_str();
        if !(6..=10).contains(&n.len())
            || po_spans
                .iter()
                .any(|&(s, e)| m.start() >= s && m.end() <= e)
        {
            continue;
        }
        if *lookups >= MAX_CANDIDATES {
            break;
        }
        *lookups += 1;
        // A run that is no SO number (6 or 7 digits) is not an order.
        let Ok(so) = n.parse::<OrderId>() else {
            continue;
        };
        if let Some(o) = dir.order_exists(&so)? {
            found.known(m.start(), o);
            last_end = Some(m.end());
            continue;
        }
        let cue = cue_before(text, m.start());
        let listed = last_end.is_some_and(|end| {
            end <= m.start() && list_separator().is_some_and(|r| r.is_match(&text[end..m.start()]))
        });
        let shaped = !glued(text, m.start(), m.end()) || cue == Cue::OrderRightBefore;
        let odd_shape = looks_like_date_or_phone(n);
        let is_order = shaped
            && match cue {
                Cue::OrderRightBefore => true,
                Cue::Order => !odd_shape,
                Cue::Other => false,
                Cue::None => listed && !odd_shape,
            };
        if is_order {
            found.name(m.start(), NamedOrder::So(so));
            last_end = Some(m.end());
        }
    }
    Ok(())
}

/// A PO the store knows, written without its keyword ("about ACME-PO-7781"):
/// tokens with a digit and a letter or dash are looked up.
fn bare_purchase_orders(
    text: &str,
    dir: &dyn Directory,
    po_spans: &[(usize, usize)],
    found: &mut Found,
    lookups: &mut usize,
) -> Result<(), DirectoryError> {
    let Some(token) = id_token() else {
        return Ok(());
    };
    for m in token.find_iter(text) {
        let v = m.as_str();
        let mixed = v.chars().any(|c| c.is_ascii_digit())
            && v.chars().any(|c| c.is_ascii_alphabetic() || c == '-');
        if !mixed
            || !(4..=42).contains(&v.len())
            || po_spans.iter().any(|&(s, e)| m.start() < e && m.end() > s)
        {
            continue;
        }
        if *lookups >= MAX_CANDIDATES {
            break;
        }
        *lookups += 1;
        if let Ok(po) = v.parse::<PoNumber>()
            && let Some(o) = dir.order_by_po(&po)?
        {
            found.known(m.start(), o);
        }
    }
    Ok(())
}
