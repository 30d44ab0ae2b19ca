//! `MessageId`: an RFC 5322 msg-id, owner of the angle-bracket rules.
//!
//! Mail headers write a Message-ID as `<left@right>`; stores, indexes and
//! log lines have used both the bracketed and the bare form. This type
//! accepts either on parse, keeps the bare form inside, writes the bracketed
//! form with `Display` (and serde, so stored JSON keeps its shape) and gives
//! the bare form with [`MessageId::bare`]. A value that could break a header
//! (spaces, line breaks, brackets or quotes inside) never parses, so a
//! hostile `In-Reply-To` from inbound mail is dropped rather than copied.

use std::fmt;
use std::str::FromStr;

use super::text::clip;

/// Longest accepted id (bare form): long enough for any real client, short
/// enough to keep headers and index keys bounded.
const MAX_LEN: usize = 250;

/// Why a text is not a Message-ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a Message-ID: {reason}")]
pub struct MessageIdError {
    /// The rejected text (clipped).
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A Message-ID such as `<a1.b2@example.com>`, stored without brackets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(String);

impl MessageId {
    /// The id without angle brackets (`a1.b2@example.com`).
    pub fn bare(&self) -> &str {
        &self.0
    }

    /// The header form, `<a1.b2@example.com>` (same as `to_string()`).
    pub fn bracketed(&self) -> String {
        self.to_string()
    }

    /// Parses every id that is valid and drops the rest (a References
    /// header from the outside may carry garbage; threading ignores it).
    pub fn parse_all<'a>(ids: impl IntoIterator<Item = &'a str>) -> Vec<MessageId> {
        ids.into_iter().filter_map(|s| s.parse().ok()).collect()
    }
}

impl FromStr for MessageId {
    type Err = MessageIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| MessageIdError {
            input: clip(s),
            reason,
        };
        let t = s.trim();
        let inner = match (t.strip_prefix('<'), t.ends_with('>')) {
            (Some(rest), true) => rest.strip_suffix('>').unwrap_or(rest),
            (None, false) => t,
            _ => return Err(err("unbalanced angle brackets")),
        };
        if inner.is_empty() {
            return Err(err("empty"));
        }
        if inner.len() > MAX_LEN {
            return Err(err("longer than 250 characters"));
        }
        let Some((left, right)) = inner.split_once('@') else {
            return Err(err("no @"));
        };
        if left.is_empty() || right.is_empty() {
            return Err(err("empty part before or after @"));
        }
        // Printable ASCII without the characters that end or quote a
        // msg-id in a header: nothing here can inject a header or fold.
        let bad = |b: u8| !b.is_ascii_graphic() || b"<>\"\\()[],;:".contains(&b);
        if inner.bytes().any(bad) {
            return Err(err("space, control or special character"));
        }
        Ok(MessageId(inner.to_string()))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.0)
    }
}

/// Serialized bracketed (what stored JSON always held); read in either form.
impl serde::Serialize for MessageId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MessageId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_or_without_brackets() {
        let a: MessageId = "<x.1@edesk.example.com>".parse().unwrap();
        let b: MessageId = " x.1@edesk.example.com ".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.bare(), "x.1@edesk.example.com");
        assert_eq!(a.to_string(), "<x.1@edesk.example.com>");
        assert_eq!(a.bracketed(), a.to_string());
    }

    #[test]
    fn rejects_what_could_break_a_header() {
        for bad in [
            "",
            "<>",
            "<a@b",
            "a@b>",
            "no-at-sign",
            "@right",
            "left@",
            "a b@c",
            "a@b\r\nBcc: x@y",
            "<a@b><c@d>",
            "a\"q@b",
        ] {
            assert!(bad.parse::<MessageId>().is_err(), "{bad:?}");
        }
        let long = format!("{}@x", "a".repeat(300));
        assert!(long.parse::<MessageId>().is_err());
    }

    #[test]
    fn serde_keeps_the_bracketed_form_and_reads_both() {
        let m: MessageId = "a@b.example".parse().unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"<a@b.example>\"");
        let back: MessageId = serde_json::from_str("\"a@b.example\"").unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn parse_all_drops_garbage() {
        let ids = MessageId::parse_all(["<a@b>", "junk", "c@d"]);
        assert_eq!(ids.len(), 2);
    }
}
