use std::fmt;
use std::str::FromStr;

use super::ids::string_serde;

/// Why a text is not an email address (or mailbox).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a valid email address: {reason}")]
pub struct AddressError {
    /// The rejected text as given.
    pub input: String,
    /// What is wrong with it, in words for the error message.
    pub reason: &'static str,
}

/// An email address: `local@domain`, domain lower-cased, local part kept as
/// written (it is case-sensitive in principle). Only the dot-atom form is
/// accepted: quoted local parts and IP literals are not addresses customers use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// The address as `local@domain`, domain lower-cased.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the last `@`, case kept.
    pub fn local(&self) -> &str {
        self.0.rsplit_once('@').map(|(l, _)| l).unwrap_or("")
    }

    /// The part after the last `@`, lower-cased.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }

    /// Key used for preferences, suppression and grants: addresses are
    /// compared case-insensitively there, because people type them that way.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

const ATEXT_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

impl FromStr for EmailAddress {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| AddressError {
            input: s.to_string(),
            reason,
        };
        let t = s.trim();
        if t.len() > 254 {
            return Err(err("longer than 254 characters"));
        }
        let (local, domain) = t.rsplit_once('@').ok_or_else(|| err("no @"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(err("local part must have 1 to 64 characters"));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(err("misplaced dot in the local part"));
        }
        if !local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || ATEXT_SPECIALS.contains(c))
        {
            return Err(err("invalid character in the local part"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(err("domain needs at least one dot"));
        }
        for label in &labels {
            if label.is_empty() || label.len() > 63 {
                return Err(err("empty or too long domain label"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(err("domain label starts or ends with '-'"));
            }
            if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(err("invalid character in the domain"));
            }
        }
        Ok(EmailAddress(format!(
            "{local}@{}",
            domain.to_ascii_lowercase()
        )))
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_serde!(EmailAddress);

/// An address with an optional display name, as in `Ana <ana@example.com>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mailbox {
    /// The display name (`Ana`), when one was written.
    pub name: Option<String>,
    /// The address itself.
    pub email: EmailAddress,
}

impl FromStr for Mailbox {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Some(open) = t.rfind('<') {
            let rest = &t[open + 1..];
            let close = rest.find('>').ok_or_else(|| AddressError {
                input: s.to_string(),
                reason: "unclosed <",
            })?;
            if !rest[close + 1..].trim().is_empty() {
                return Err(AddressError {
                    input: s.to_string(),
                    reason: "text after >",
                });
            }
            let email: EmailAddress =
                rest[..close]
                    .parse()
                    .map_err(|e: AddressError| AddressError {
                        input: s.to_string(),
                        reason: e.reason,
                    })?;
            let raw_name = t[..open].trim();
            let unquoted = raw_name
                .strip_prefix('"')
                .and_then(|n| n.strip_suffix('"'))
                .unwrap_or(raw_name)
                .replace("\\\"", "\"");
            let name: String = unquoted
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect::<String>()
                .trim()
                .to_string();
            Ok(Mailbox {
                name: (!name.is_empty()).then_some(name),
                email,
            })
        } else {
            Ok(Mailbox {
                name: None,
                email: t.parse()?,
            })
        }
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "\"{}\" <{}>", n.replace('"', "\\\""), self.email),
            None => write!(f, "{}", self.email),
        }
    }
}

/// Splits an address list as users type it (`Ana <ana@x.com>, ops@y.org;
/// "Harper, John" <j@z.com>`): commas and semicolons separate entries except
/// inside quotes or angle brackets; empty entries are ignored. Each entry is
/// parsed on its own so the caller can name the bad one.
/// Whether `addr` (any string with an `@`) is at `own_domain` or one of its
/// subdomains, case-insensitively: the one rule for "one of our addresses"
/// (loop detection, the auto-mail guard). `own_domain` is lower case.
pub fn is_own_domain(addr: &str, own_domain: &str) -> bool {
    addr.rsplit_once('@').is_some_and(|(_, d)| {
        let d = d.trim().trim_end_matches('>').to_ascii_lowercase();
        d == own_domain
            || d.strip_suffix(own_domain)
                .is_some_and(|rest| rest.ends_with('.'))
    })
}

/// Splits a header-style list (`,` or `;` between entries, none inside quotes or
/// `<…>`) and parses each entry as a [`Mailbox`]; empty entries are skipped, bad
/// ones come back as errors in their place.
pub fn parse_address_list(input: &str) -> Vec<Result<Mailbox, AddressError>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut angle) = (false, false);
    let mut prev_backslash = false;
    for c in input.chars() {
        match c {
            '"' if !prev_backslash => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' | ';' if !quoted && !angle => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().parse());
                }
                cur.clear();
                prev_backslash = false;
                continue;
            }
            _ => {}
        }
        prev_backslash = c == '\\' && !prev_backslash;
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().parse());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_domain_and_subdomains_only() {
        let own = "edesk.example.com";
        for a in [
            "reply+t@edesk.example.com",
            "x@EDESK.Example.com",
            "bounces@mx.edesk.example.com",
        ] {
            assert!(is_own_domain(a, own), "{a}");
        }
        for a in [
            "ana@example.com",
            "x@notedesk.example.com",
            "x@edesk.example.com.evil.org",
            "no-at-sign",
        ] {
            assert!(!is_own_domain(a, own), "{a}");
        }
    }

    #[test]
    fn addresses() {
        let a: EmailAddress = "John.Harper@ACME.Example.COM".parse().unwrap();
        assert_eq!(a.as_str(), "John.Harper@acme.example.com");
        assert_eq!(a.domain(), "acme.example.com");
        for bad in [
            "",
            "ana",
            "ana@",
            "@x.com",
            "ana@x",
            "a..b@x.com",
            "ana@-x.com",
            "a b@x.com",
            "ana@x.com\r\nBcc: y@z.com",
            "ana@x_y.com",
        ] {
            assert!(bad.parse::<EmailAddress>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn lists_as_typed() {
        let v = parse_address_list(
            "Ana <ana@example.com>, ops@example.org; \"Harper, John\" <J@Z.com>,, ",
        );
        let ok: Vec<Mailbox> = v.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(ok.len(), 3);
        assert_eq!(ok[0].name.as_deref(), Some("Ana"));
        assert_eq!(ok[1].email.as_str(), "ops@example.org");
        assert_eq!(ok[2].name.as_deref(), Some("Harper, John"));
        assert_eq!(ok[2].email.as_str(), "J@z.com");
    }

    #[test]
    fn list_names_bad_entry() {
        let v = parse_address_list("ana@example.com, not-an-address");
        assert!(v[0].is_ok());
        assert_eq!(v[1].as_ref().unwrap_err().input, "not-an-address");
    }
}
