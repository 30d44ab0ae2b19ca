//! What inbound needs from the rest of the crate, as small traits: the lead
//! implements them over the store and the FAQ engine; tests and
//! `mail inspect --world FILE` use the in-memory versions below.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::desk::routing::Route;
use crate::domain::{Lang, MessageId, OrderId, PoNumber};

/// An order as far as inbound mail is concerned.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OrderRef {
    /// Sales order number (SO#).
    pub so: OrderId,
    /// Customer purchase order number, when the order has one.
    #[serde(default)]
    pub po: Option<PoNumber>,
    /// The order's language.
    #[serde(default)]
    pub lang: Lang,
    /// For a lookup by reply token: the recipient the token was minted for.
    #[serde(default)]
    pub recipient: Option<String>,
    /// That recipient's language, when known.
    #[serde(default)]
    pub recipient_lang: Option<Lang>,
    /// Types of holds not yet released (`export`, `new-product`, …).
    #[serde(default)]
    pub open_holds: Vec<String>,
    /// Product ids (PIDs) of the order's lines; some teams route by PID prefix.
    #[serde(default)]
    pub pids: Vec<String>,
    /// The order is archived (RESTORE brings it back).
    #[serde(default)]
    pub archived: bool,
}

/// The directory could not answer (the store failed). Never read as "no such
/// order" or "not authorized": the message waits and is analysed again.
#[derive(Debug, Clone, thiserror::Error)]
#[error("order directory unavailable: {0}")]
pub struct DirectoryError(
    /// What failed, for the log.
    pub String,
);

/// What inbound needs to know about orders and addresses.
pub trait Directory {
    /// The order (and recipient) behind `reply+TOKEN@` or `bounces+TOKEN@`.
    fn order_by_token(&self, token: &str) -> Result<Option<OrderRef>, DirectoryError>;
    /// The order one of our notifications (by Message-ID, without `<>`) was about.
    fn order_by_message_id(&self, id: &str) -> Result<Option<OrderRef>, DirectoryError>;
    /// The order with this SO number, if it exists.
    fn order_exists(&self, so: &OrderId) -> Result<Option<OrderRef>, DirectoryError>;
    /// The order with this PO number (case-insensitive), if it exists.
    fn order_by_po(&self, po: &PoNumber) -> Result<Option<OrderRef>, DirectoryError>;
    /// The sender is a recipient of the order or was granted it by OBA.
    fn is_authorized(&self, so: &OrderId, sender: &str) -> Result<bool, DirectoryError>;
    /// The address a `reply+TOKEN@` token was minted for (with or without
    /// an order): whoever writes to it has read our mail to that address.
    fn token_owner(&self, token: &str) -> Result<Option<String>, DirectoryError>;
    /// Whether edesk sent the mail with this Message-ID (without `<>`) to
    /// `address`: a reply to it proves the sender read our mail there.
    fn sent_to(&self, message_id: &str, address: &str) -> Result<bool, DirectoryError>;
    /// One of edesk's own sending addresses (loop detection).
    fn is_own_address(&self, addr: &str) -> bool;
    /// The language this address is known to prefer.
    fn known_lang(&self, addr: &str) -> Option<Lang>;
    /// The language of the mail edesk sent with this Message-ID (without
    /// `<>`), if it sent one: the thread's earlier language.
    fn sent_lang(&self, _message_id: &str) -> Result<Option<Lang>, DirectoryError> {
        Ok(None)
    }
}

/// The best FAQ match for a text.
#[derive(Debug, Clone, PartialEq)]
pub struct FaqHit {
    /// False when the engine abstains (question is then its best candidate).
    pub answered: bool,
    /// The best entry's id; `None` when nothing matched.
    pub id: Option<String>,
    /// The best entry's question; `None` when nothing matched.
    pub question: Option<String>,
    /// The engine's confidence in [0, 1].
    pub confidence: f64,
    /// The entry's topic needs a person even when the match is confident.
    pub needs_person: bool,
    /// The team the entry names, if any.
    pub team: Option<Route>,
    /// The entry's answer only says whom to contact (`route::is_referral`).
    pub referral: bool,
    /// The ranker's next best entries after `id`, best first (up to
    /// [`RUNNERS_UP`]), whatever their score.
    pub runners_up: Vec<String>,
}

/// How many runner-up entries a [`FaqHit`] carries.
pub const RUNNERS_UP: usize = 4;

impl FaqHit {
    /// No match at all: not answered, no entry, confidence 0.
    pub fn abstain() -> FaqHit {
        FaqHit {
            answered: false,
            id: None,
            question: None,
            confidence: 0.0,
            needs_person: false,
            team: None,
            referral: false,
            runners_up: Vec::new(),
        }
    }
}

/// The text of a FAQ entry, for an answer mail.
#[derive(Debug, Clone, PartialEq)]
pub struct FaqText {
    /// The entry's question, quoted in the answer mail.
    pub question: String,
    /// The answer text mailed to the customer.
    pub answer: String,
    /// The entry's topic needs a person even when the match is confident.
    pub needs_person: bool,
}

/// What inbound needs from the FAQ engine.
pub trait FaqOracle {
    /// The best entry for `text`.
    fn ask(&self, text: &str, lang: Lang) -> FaqHit;
    /// Entry `id`'s question and answer in `lang`, if it exists.
    fn entry(&self, id: &str, lang: Lang) -> Option<FaqText>;
    /// Words of `text` found only in the English / only in the French
    /// entries (folded, so accentless French counts): language evidence.
    fn vocabulary(&self, _text: &str) -> (usize, usize) {
        (0, 0)
    }
    /// The classifiers fitted on labelled mail ([`super::route::learned`]),
    /// if routing should hear them.
    fn route_model(&self) -> Option<&super::route::learned::Models> {
        None
    }
}

/// An oracle that never answers (everything is escalated).
#[derive(Debug, Clone, Copy, Default)]
pub struct Abstain;

impl FaqOracle for Abstain {
    fn ask(&self, _text: &str, _lang: Lang) -> FaqHit {
        FaqHit::abstain()
    }

    fn entry(&self, _id: &str, _lang: Lang) -> Option<FaqText> {
        None
    }
}

/// One recipient of an in-memory order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemRecipient {
    /// The recipient's address (compared case-insensitively).
    pub email: String,
    /// The recipient's preferred language, when known.
    #[serde(default)]
    pub lang: Option<Lang>,
    /// The `reply+TOKEN@` token minted for this recipient.
    #[serde(default)]
    pub reply_token: Option<String>,
}

/// An order of a [`MemWorld`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemOrder {
    /// Sales order number.
    pub so: OrderId,
    /// Customer purchase order number.
    #[serde(default)]
    pub po: Option<PoNumber>,
    /// The order's language (default English).
    #[serde(default)]
    pub lang: Lang,
    /// Who its notifications went to.
    #[serde(default)]
    pub recipients: Vec<MemRecipient>,
    /// OBA grants: addresses allowed to see this order.
    #[serde(default)]
    pub granted: Vec<String>,
    /// Hold types not yet released (`export`, `new-product`, …).
    #[serde(default)]
    pub open_holds: Vec<String>,
    /// Product ids of its lines.
    #[serde(default)]
    pub pids: Vec<String>,
    /// The order is archived.
    #[serde(default)]
    pub archived: bool,
    /// Message-IDs of the notifications sent for it (without `<>`).
    #[serde(default)]
    pub notification_ids: Vec<String>,
}

/// A FAQ entry for the in-memory oracle: it answers when enough of an entry's
/// keywords occur in the text (a stand-in for the real engine in tests).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemFaqEntry {
    /// Entry id, as in `faq-index/`.
    pub id: String,
    /// The language it answers in; only asked in that language.
    pub lang: Lang,
    /// The entry's question.
    pub question: String,
    /// Substrings (case-insensitive) looked for in the text; an entry
    /// without keywords never matches.
    pub keywords: Vec<String>,
    /// The answer mailed for it (empty when a test does not care).
    #[serde(default)]
    pub answer: String,
    /// The topic needs a person even when matched.
    #[serde(default)]
    pub needs_person: bool,
    /// Team the entry routes to, parsed as a `desk::routing::Route`; an
    /// unknown name counts as none.
    #[serde(default)]
    pub team: Option<String>,
    /// The entry only refers to a team (see `route::is_referral`).
    #[serde(default)]
    pub referral: bool,
}

/// Orders, own addresses and FAQ entries held in memory; loads from JSON
/// (`{"orders": [...], "own_addresses": [...], "faq": [...]}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemWorld {
    /// The orders the world knows.
    #[serde(default)]
    pub orders: Vec<MemOrder>,
    /// edesk's own sending addresses (loop detection).
    #[serde(default)]
    pub own_addresses: Vec<String>,
    /// Our own domain: any address here is ours.
    #[serde(default)]
    pub own_domain: Option<String>,
    /// FAQ entries for the keyword oracle.
    #[serde(default)]
    pub faq: Vec<MemFaqEntry>,
    /// Share of an entry's keywords that must occur for a confident answer.
    #[serde(default = "default_min_share")]
    pub faq_min_share: f64,
    /// Other mails edesk sent (FAQ answers, acknowledgements): their
    /// Message-ID (without `<>`) and language.
    #[serde(default)]
    pub sent: Vec<MemSent>,
}

/// A mail edesk sent, for [`Directory::sent_lang`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemSent {
    /// Message-ID without `<>`.
    pub message_id: String,
    /// The language it was written in.
    pub lang: Lang,
}

fn default_min_share() -> f64 {
    0.6
}

impl MemWorld {
    /// Parses the JSON world file; unknown fields are errors.
    pub fn from_json(text: &str) -> Result<MemWorld, serde_json::Error> {
        serde_json::from_str(text)
    }

    fn to_ref(o: &MemOrder, recipient: Option<&MemRecipient>) -> OrderRef {
        OrderRef {
            so: o.so.clone(),
            po: o.po.clone(),
            lang: o.lang,
            recipient: recipient.map(|r| r.email.to_ascii_lowercase()),
            recipient_lang: recipient.and_then(|r| r.lang),
            open_holds: o.open_holds.clone(),
            pids: o.pids.clone(),
            archived: o.archived,
        }
    }
}

impl Directory for MemWorld {
    fn order_by_token(&self, token: &str) -> Result<Option<OrderRef>, DirectoryError> {
        Ok(self.orders.iter().find_map(|o| {
            o.recipients
                .iter()
                .find(|r| {
                    r.reply_token
                        .as_deref()
                        .is_some_and(|t| t.eq_ignore_ascii_case(token))
                })
                .map(|r| MemWorld::to_ref(o, Some(r)))
        }))
    }

    fn order_by_message_id(&self, id: &str) -> Result<Option<OrderRef>, DirectoryError> {
        let Ok(id) = id.parse::<MessageId>() else {
            return Ok(None);
        };
        Ok(self
            .orders
            .iter()
            .find(|o| {
                o.notification_ids
                    .iter()
                    .any(|n| n.parse::<MessageId>().is_ok_and(|n| n == id))
            })
            .map(|o| MemWorld::to_ref(o, None)))
    }

    fn order_exists(&self, so: &OrderId) -> Result<Option<OrderRef>, DirectoryError> {
        Ok(self
            .orders
            .iter()
            .find(|o| o.so == *so)
            .map(|o| MemWorld::to_ref(o, None)))
    }

    fn order_by_po(&self, po: &PoNumber) -> Result<Option<OrderRef>, DirectoryError> {
        Ok(self
            .orders
            .iter()
            .find(|o| {
                o.po.as_ref()
                    .is_some_and(|p| p.as_str().eq_ignore_ascii_case(po.as_str()))
            })
            .map(|o| MemWorld::to_ref(o, None)))
    }

    fn is_authorized(&self, so: &OrderId, sender: &str) -> Result<bool, DirectoryError> {
        Ok(self.orders.iter().filter(|o| o.so == *so).any(|o| {
            o.recipients
                .iter()
                .any(|r| r.email.eq_ignore_ascii_case(sender))
                || o.granted.iter().any(|g| g.eq_ignore_ascii_case(sender))
        }))
    }

    fn token_owner(&self, token: &str) -> Result<Option<String>, DirectoryError> {
        Ok(self.order_by_token(token)?.and_then(|o| o.recipient))
    }

    /// An order's notifications went to each of its recipients.
    fn sent_to(&self, message_id: &str, address: &str) -> Result<bool, DirectoryError> {
        let Ok(id) = message_id.parse::<MessageId>() else {
            return Ok(false);
        };
        Ok(self.orders.iter().any(|o| {
            o.notification_ids
                .iter()
                .any(|n| n.parse::<MessageId>().is_ok_and(|n| n == id))
                && o.recipients
                    .iter()
                    .any(|r| r.email.eq_ignore_ascii_case(address))
        }))
    }

    fn is_own_address(&self, addr: &str) -> bool {
        let addr = addr.to_ascii_lowercase();
        if self
            .own_addresses
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&addr))
        {
            return true;
        }
        match (&self.own_domain, addr.rsplit_once('@')) {
            (Some(d), Some((_, dom))) => d.eq_ignore_ascii_case(dom),
            _ => false,
        }
    }

    fn known_lang(&self, addr: &str) -> Option<Lang> {
        self.orders
            .iter()
            .flat_map(|o| o.recipients.iter())
            .find(|r| r.email.eq_ignore_ascii_case(addr))
            .and_then(|r| r.lang)
    }

    /// A listed mail; an order's notification is in its recipients' language
    /// when they share one.
    fn sent_lang(&self, message_id: &str) -> Result<Option<Lang>, DirectoryError> {
        let Ok(id) = message_id.parse::<MessageId>() else {
            return Ok(None);
        };
        let same = |n: &String| n.parse::<MessageId>().is_ok_and(|n| n == id);
        if let Some(m) = self.sent.iter().find(|m| same(&m.message_id)) {
            return Ok(Some(m.lang));
        }
        Ok(self
            .orders
            .iter()
            .find(|o| o.notification_ids.iter().any(same))
            .and_then(|o| {
                let mut langs = o.recipients.iter().map(|r| r.lang.unwrap_or(o.lang));
                let first = langs.next()?;
                langs.all(|l| l == first).then_some(first)
            }))
    }
}

impl FaqOracle for MemWorld {
    fn entry(&self, id: &str, lang: Lang) -> Option<FaqText> {
        self.faq
            .iter()
            .find(|e| e.id == id && e.lang == lang)
            .map(|e| FaqText {
                question: e.question.clone(),
                answer: e.answer.clone(),
                needs_person: e.needs_person,
            })
    }

    fn ask(&self, text: &str, lang: Lang) -> FaqHit {
        let hay = text.to_lowercase();
        let mut scored: BTreeMap<u64, &MemFaqEntry> = BTreeMap::new();
        for e in self.faq.iter().filter(|e| e.lang == lang) {
            if e.keywords.is_empty() {
                continue;
            }
            let found = e
                .keywords
                .iter()
                .filter(|k| hay.contains(&k.to_lowercase()))
                .count();
            if found == 0 {
                continue;
            }
            let share = found as f64 / e.keywords.len() as f64;
            // Keyed by share in millionths so the best entry sorts last.
            scored.entry((share * 1e6) as u64).or_insert(e);
        }
        let Some((&key, best)) = scored.iter().next_back() else {
            return FaqHit::abstain();
        };
        let confidence = key as f64 / 1e6;
        FaqHit {
            answered: confidence >= self.faq_min_share,
            id: Some(best.id.clone()),
            question: Some(best.question.clone()),
            confidence,
            needs_person: best.needs_person,
            team: best.team.as_deref().and_then(|t| t.parse().ok()),
            referral: best.referral,
            runners_up: scored
                .values()
                .rev()
                .skip(1)
                .take(RUNNERS_UP)
                .map(|e| e.id.clone())
                .collect(),
        }
    }
}
