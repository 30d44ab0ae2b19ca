use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

use super::{EmailAddress, Lang, OrderId, PoNumber};

/// An order as the ordering system describes it (DESIGN.md "Order JSON").
/// Serializes back to the same shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub so: OrderId,
    pub po: Option<PoNumber>,
    pub lang: Lang,
    pub bill_to: Option<String>,
    pub available_at: Option<DateTime<FixedOffset>>,
    pub early_ship: bool,
    pub requested_date: Option<NaiveDate>,
    pub archived: bool,
    /// Whether the order's Product Authorization Keys are registered:
    /// `None` when it has none (right-to-use only), `Some(false)` while the
    /// PAK reminder job should remind its recipients.
    #[serde(default)]
    pub pak_registered: Option<bool>,
    pub holds: Vec<Hold>,
    pub lines: Vec<OrderLine>,
    pub recipients: Vec<Recipient>,
    pub notification_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub line: String,
    pub pid: String,
    pub qty: u32,
    pub images: Vec<Image>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub file: String,
    pub md5: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub name: Option<String>,
    pub email: EmailAddress,
    pub lang: Option<Lang>,
    pub role: Option<String>,
    pub reply_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hold {
    #[serde(rename = "type")]
    pub kind: HoldType,
    /// `None` for an order-level hold.
    pub line: Option<String>,
    pub released: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HoldType {
    Export,
    NewProduct,
    InternetDelivery,
    Compliance,
    SpecialDiscount,
    Csm,
    OrderChange,
}

impl HoldType {
    pub const ALL: [HoldType; 7] = [
        HoldType::Export,
        HoldType::NewProduct,
        HoldType::InternetDelivery,
        HoldType::Compliance,
        HoldType::SpecialDiscount,
        HoldType::Csm,
        HoldType::OrderChange,
    ];

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
    pub fn open_holds(&self) -> impl Iterator<Item = &Hold> {
        self.holds.iter().filter(|h| !h.released)
    }

    pub fn has_open_hold(&self) -> bool {
        self.open_holds().next().is_some()
    }

    pub fn line(&self, id: &str) -> Option<&OrderLine> {
        self.lines.iter().find(|l| l.line == id)
    }

    /// The language a recipient is written to in.
    pub fn lang_for(&self, r: &Recipient) -> Lang {
        r.lang.unwrap_or(self.lang)
    }
}
