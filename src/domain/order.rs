use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

use super::{EmailAddress, Lang, OrderId, PoNumber};

/// An order as the ordering system describes it (DESIGN.md "Order JSON").
/// Serializes back to the same shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// The sales order number; the order's key in the store.
    pub so: OrderId,
    /// The customer's purchase order number, when the order has one.
    pub po: Option<PoNumber>,
    /// The order's language: recipients without their own `lang` are written to in it.
    pub lang: Lang,
    /// The billed company's name as the ordering system gives it (at most 256 characters).
    pub bill_to: Option<String>,
    /// When the order was made available for download; `None` while it is not.
    /// An import without holds and without a date gets the import time.
    pub available_at: Option<DateTime<FixedOffset>>,
    /// `false` when the customer asked not to ship before `requested_date`:
    /// the availability notice then waits for that day (`notify::events`).
    pub early_ship: bool,
    /// The delivery date the customer asked for, if any.
    pub requested_date: Option<NaiveDate>,
    /// Older than 15 months: visible, but downloads need a restore first.
    pub archived: bool,
    /// Whether the order's Product Authorization Keys are registered:
    /// `None` when it has none (right-to-use only), `Some(false)` while the
    /// PAK reminder job should remind its recipients.
    #[serde(default)]
    pub pak_registered: Option<bool>,
    /// Every hold, released ones included (see [`Order::open_holds`]).
    pub holds: Vec<Hold>,
    /// The order lines; the import requires at least one.
    pub lines: Vec<OrderLine>,
    /// Who is notified about the order (may be empty).
    pub recipients: Vec<Recipient>,
    /// Message-IDs of notifications sent before the order reached edesk
    /// (a migration), so replies to them still thread to this order.
    pub notification_ids: Vec<String>,
}

/// One line of an order: a product and the software images it delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The line number as the ordering system writes it, e.g. `1.1`.
    pub line: String,
    /// The product id (e.g. `L-ASA5516-TD-1Y`); it also picks the team (`team_for_pid`).
    pub pid: String,
    /// Ordered quantity, at least 1.
    pub qty: u32,
    /// The downloadable files of the line.
    pub images: Vec<Image>,
}

/// A downloadable software image of an order line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The file name shown to the customer (at most 255 characters).
    pub file: String,
    /// The file's MD5 checksum, 32 hex digits, shown so the customer can verify it.
    pub md5: String,
}

/// Someone notified about an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Display name, put in the `To` header of the recipient's mails.
    pub name: Option<String>,
    /// Where notifications go.
    pub email: EmailAddress,
    /// The recipient's language; `None` means the order's (see [`Order::lang_for`]).
    pub lang: Option<Lang>,
    /// Free-form role from the ordering system, e.g. `end-user`.
    pub role: Option<String>,
    /// Token carried over from notifications sent before the import (a migration);
    /// `None` lets edesk mint its own (HMAC of order and recipient under the server key).
    pub reply_token: Option<String>,
}

/// A hold that stops the download of an order or one of its lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hold {
    /// What the hold is for (JSON field `type`).
    #[serde(rename = "type")]
    pub kind: HoldType,
    /// `None` for an order-level hold.
    pub line: Option<String>,
    /// `true` once lifted; released holds stay in the list for the record.
    pub released: bool,
}

/// The kinds of hold the ordering system sets; the JSON names are kebab-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HoldType {
    /// Export hold; the export team releases it ([`team_for_hold`](super::team_for_hold)).
    Export,
    /// New product hold (NPH); the SAC team.
    NewProduct,
    /// Internet delivery hold; customer service.
    InternetDelivery,
    /// Compliance hold; customer service.
    Compliance,
    /// IC special discount hold; customer service.
    SpecialDiscount,
    /// CSM hold; customer service.
    Csm,
    /// Order change hold; customer service.
    OrderChange,
}

impl HoldType {
    /// Every hold type, in the order of the source document.
    pub const ALL: [HoldType; 7] = [
        HoldType::Export,
        HoldType::NewProduct,
        HoldType::InternetDelivery,
        HoldType::Compliance,
        HoldType::SpecialDiscount,
        HoldType::Csm,
        HoldType::OrderChange,
    ];

    /// The JSON name, e.g. `new-product`.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldType::Export => "export",
            HoldType::NewProduct => "new-product",
            HoldType::InternetDelivery => "internet-delivery",
            HoldType::Compliance => "compliance",
            HoldType::SpecialDiscount => "special-discount",
            HoldType::Csm => "csm",
            HoldType::OrderChange => "order-change",
        }
    }

    /// The hold's name as the source document words it.
    pub fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (HoldType::Export, Lang::En) => "export hold",
            (HoldType::NewProduct, Lang::En) => "new product hold (NPH)",
            (HoldType::InternetDelivery, Lang::En) => "Internet delivery hold",
            (HoldType::Compliance, Lang::En) => "compliance hold",
            (HoldType::SpecialDiscount, Lang::En) => "IC special discount hold",
            (HoldType::Csm, Lang::En) => "CSM hold",
            (HoldType::OrderChange, Lang::En) => "order change hold",
            (HoldType::Export, Lang::Fr) => "mise en attente pour exportation",
            (HoldType::NewProduct, Lang::Fr) => "mise en attente pour nouveau produit (NPH)",
            (HoldType::InternetDelivery, Lang::Fr) => "mise en attente pour livraison Internet",
            (HoldType::Compliance, Lang::Fr) => "mise en attente pour conformité",
            (HoldType::SpecialDiscount, Lang::Fr) => "mise en attente pour rabais spécial IC",
            (HoldType::Csm, Lang::Fr) => "mise en attente CSM",
            (HoldType::OrderChange, Lang::Fr) => "mise en attente pour changement dans la commande",
        }
    }
}

impl FromStr for HoldType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HoldType::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown hold type {s:?} (expected one of {})",
                    HoldType::ALL.map(|h| h.as_str()).join(", ")
                )
            })
    }
}

impl fmt::Display for HoldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Order {
    /// The holds not yet released.
    pub fn open_holds(&self) -> impl Iterator<Item = &Hold> {
        self.holds.iter().filter(|h| !h.released)
    }

    /// Whether any hold still blocks the order or one of its lines.
    pub fn has_open_hold(&self) -> bool {
        self.open_holds().next().is_some()
    }

    /// The line with this line number (`1.1`), if the order has it.
    pub fn line(&self, id: &str) -> Option<&OrderLine> {
        self.lines.iter().find(|l| l.line == id)
    }

    /// The language a recipient is written to in.
    pub fn lang_for(&self, r: &Recipient) -> Lang {
        r.lang.unwrap_or(self.lang)
    }
}
