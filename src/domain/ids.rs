use std::fmt;
use std::str::FromStr;

use super::text::{check_text, clip};

/// Longest PO number: it goes into subjects and search keys.
const MAX_PO: usize = 50;

/// Why a text is not an order or PO number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not 8 to 10 ASCII digits; holds the input, clipped.
    #[error("{0:?} is not a sales order number (8 to 10 digits)")]
    OrderId(String),
    /// Empty, too long or with a forbidden character.
    #[error("{value:?} is not a purchase order number: {reason}")]
    Po {
        /// The input, clipped.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A sales order number (SO#): 8 to 10 ASCII digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(String);

impl OrderId {
    /// The digits, trimmed.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for OrderId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if (8..=10).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()) {
            Ok(OrderId(t.to_string()))
        } else {
            Err(IdError::OrderId(clip(s)))
        }
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A customer purchase order number. Free-form in practice, but never empty,
/// never longer than 50 characters and without control or invisible characters
/// (see `text::check_text`), because it
/// ends up in subjects and search keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoNumber(String);

impl PoNumber {
    /// The number, trimmed.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PoNumber {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let bad = |reason: String| IdError::Po {
            value: clip(s),
            reason,
        };
        if t.is_empty() {
            return Err(bad("empty".into()));
        }
        check_text(t, MAX_PO).map_err(|e| bad(e.to_string()))?;
        Ok(PoNumber(t.to_string()))
    }
}

impl fmt::Display for PoNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! string_serde {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use string_serde;

string_serde!(OrderId);
string_serde!(PoNumber);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids() {
        assert!("10458321".parse::<OrderId>().is_ok());
        assert!("1045832101".parse::<OrderId>().is_ok());
        assert!(" 10458321 ".parse::<OrderId>().is_ok());
        assert!("1045832".parse::<OrderId>().is_err());
        assert!("10458321011".parse::<OrderId>().is_err());
        assert!("1045832a".parse::<OrderId>().is_err());
        assert!("١٠٤٥٨٣٢١".parse::<OrderId>().is_err());
    }

    #[test]
    fn po_numbers() {
        assert!("ACME-PO-7781".parse::<PoNumber>().is_ok());
        assert!("".parse::<PoNumber>().is_err());
        assert!("A\r\nBcc: x@y".parse::<PoNumber>().is_err());
        assert!("x".repeat(51).parse::<PoNumber>().is_err());
        let e = "PO\u{202E}1".parse::<PoNumber>().unwrap_err().to_string();
        assert!(e.contains("U+202E RIGHT-TO-LEFT OVERRIDE"), "{e}");
    }
}
