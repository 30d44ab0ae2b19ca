//! Details of a delivery report that tie it to the mail it reports on: the
//! Message-IDs of the returned message (DSN `message/rfc822` or
//! `text/rfc822-headers` part, or headers quoted in a plain-text report) and
//! the remote server's `Diagnostic-Code`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use mail_parser::{MessageParser, MimeHeaders, PartType};
use regex::Regex;

/// Longest diagnostic kept (a remote server's text is not ours to store whole).
const MAX_DIAGNOSTIC: usize = 500;

/// What a report says about the mail it returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportDetails {
    /// Message-IDs of the returned message, without brackets, first found first.
    pub message_ids: Vec<String>,
    /// `Diagnostic-Code` of the first recipient, unfolded.
    pub diagnostic: Option<String>,
}

/// Reads a report's details; never panics (the parser runs behind
/// `catch_unwind`, like the rest of inbound parsing).
pub fn details(raw: &[u8]) -> ReportDetails {
    let mut ids = catch_unwind(AssertUnwindSafe(|| returned_ids(raw))).unwrap_or_default();
    let text = String::from_utf8_lossy(raw);
    // A plain-text report that quotes the original headers: the report's
    // own Message-ID (in its header block) is not one of them.
    let body = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"));
    if let (Some((_, body)), Some(re)) = (body, quoted_id()) {
        for c in re.captures_iter(body) {
            ids.push(c[1].to_string());
        }
    }
    let mut seen = std::collections::HashSet::new();
    ids.retain(|i| seen.insert(i.clone()));
    ReportDetails {
        message_ids: ids,
        diagnostic: diagnostic(&text),
    }
}

/// Message-IDs of the MIME parts that return the original message.
fn returned_ids(raw: &[u8]) -> Vec<String> {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for part in msg.parts.iter().skip(1) {
        match &part.body {
            PartType::Message(inner) => out.extend(inner.message_id().map(str::to_string)),
            PartType::Text(_) | PartType::Binary(_) | PartType::InlineBinary(_) => {
                let headers_only = part.content_type().is_some_and(|ct| {
                    ct.subtype()
                        .is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))
                });
                if headers_only {
                    let bytes = part.contents();
                    if let Some(h) = MessageParser::default().parse_headers(bytes) {
                        out.extend(h.message_id().map(str::to_string));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn quoted_id() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(?im)^[ \t>]*Message-ID:[ \t]*<([^<>\s]+)>").ok())
        .as_ref()
}

fn diagnostic(text: &str) -> Option<String> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let re = RE
        .get_or_init(|| {
            Regex::new(r"(?im)^Diagnostic-Code:[ \t]*([^\r\n]*(?:\r?\n[ \t]+[^\r\n]*)*)").ok()
        })
        .as_ref()?;
    let folded = re.captures(text)?.get(1)?.as_str();
    let one_line = folded.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut: String = one_line.chars().take(MAX_DIAGNOSTIC).collect();
    (!cut.is_empty()).then_some(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape Postfix 3.7's bounce daemon writes (headers-only return).
    const POSTFIX_DSN: &str = "Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.test (Mail Delivery System)\r\nTo: bounces+tok@edesk.test\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-Id: <20261202.ABC@mx.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"B1\"\r\n\r\n--B1\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nI'm sorry to have to inform you that your message could not\r\nbe delivered.\r\n\r\n--B1\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n\r\nFinal-Recipient: rfc822; nobody@customers.test\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: X-Postfix; unknown user:\r\n    \"nobody@customers.test\"\r\n\r\n--B1\r\nContent-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: eDelivery <edelivery@edesk.test>\r\nTo: nobody@customers.test\r\nMessage-ID: <10458321.42.abcd@edesk.test>\r\nSubject: Your order\r\n\r\n--B1--\r\n";

    #[test]
    fn a_postfix_dsn_names_the_returned_message_and_the_diagnostic() {
        let d = details(POSTFIX_DSN.as_bytes());
        assert_eq!(d.message_ids[0], "10458321.42.abcd@edesk.test");
        assert!(
            !d.message_ids.iter().any(|m| m == "20261202.ABC@mx.test"),
            "the report's own id is not the returned one: {:?}",
            d.message_ids
        );
        assert_eq!(
            d.diagnostic.as_deref(),
            Some("X-Postfix; unknown user: \"nobody@customers.test\"")
        );
    }

    #[test]
    fn a_full_returned_message_and_a_plain_text_report_are_read_too() {
        let full = POSTFIX_DSN.replace(
            "Content-Type: text/rfc822-headers",
            "Content-Type: message/rfc822",
        );
        assert_eq!(
            details(full.as_bytes()).message_ids[0],
            "10458321.42.abcd@edesk.test"
        );
        let plain = "From: postmaster@old.example\r\nMessage-ID: <own@old.example>\r\nSubject: failure notice\r\n\r\nSorry, no mailbox here by that name.\r\n\r\n--- Below this line is a copy of the message.\r\n\r\nMessage-ID: <x.7.ff@edesk.test>\r\nSubject: hi\r\n";
        let d = details(plain.as_bytes());
        assert_eq!(d.message_ids, vec!["x.7.ff@edesk.test".to_string()]);
        assert_eq!(d.diagnostic, None);
        assert_eq!(details(b"\xff\xfe garbage"), ReportDetails::default());
    }
}
