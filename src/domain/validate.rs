//! Order JSON → `Order`, collecting every problem instead of stopping at the
//! first, so an import report can name each bad field of each order.

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::Serialize;
use serde_json::{Map, Value};

use super::text::{check_text, clip};
use super::{
    EmailAddress, Hold, HoldType, Image, Lang, Order, OrderId, OrderLine, PoNumber, Recipient,
};

/// One bad field of an order, as an import report and the API answer name it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// JSON path of the field, e.g. `lines[0].images[1].md5`.
    pub field: String,
    /// What is wrong, in words for the person who fixes the data.
    pub message: String,
    /// The offending value, clipped when long.
    pub value: Value,
}

/// Why one order of an import was rejected.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("order {}: {}", so.as_deref().unwrap_or("?"), errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
pub struct OrderRejection {
    /// The `so` as given (even when invalid), `None` when missing.
    pub so: Option<String>,
    /// Every problem found, in the order of the fields (never empty).
    pub errors: Vec<FieldError>,
}

const ORDER_FIELDS: &[&str] = &[
    "so",
    "po",
    "lang",
    "bill_to",
    "available_at",
    "early_ship",
    "requested_date",
    "archived",
    "pak_registered",
    "holds",
    "lines",
    "recipients",
    "notification_ids",
];
const LINE_FIELDS: &[&str] = &["line", "pid", "qty", "images"];
const IMAGE_FIELDS: &[&str] = &["file", "md5"];
const HOLD_FIELDS: &[&str] = &["type", "line", "released"];
const RECIPIENT_FIELDS: &[&str] = &["name", "email", "lang", "role", "reply_token"];

/// Longest value accepted per string field, in characters. Every value ends
/// up in mail headers, pages or file names; the bounds are generous for real
/// data and keep a hostile import from storing megabytes per field.
fn max_chars(key: &str) -> usize {
    match key {
        // Identifiers: the dedicated parsers are stricter still.
        "so" | "lang" | "type" | "md5" | "role" | "reply_token" => 64,
        "line" => 32,
        "pid" => 128,
        // A file name on any common file system.
        "file" => 255,
        // Display names and the bill-to company.
        "name" | "bill_to" => 256,
        _ => 256,
    }
}

/// A Message-ID is at most 250 characters inside its angle brackets (the
/// bound `notify::message::msg_id` applies when it builds headers).
const MAX_MESSAGE_ID: usize = 252;

struct Ctx {
    errors: Vec<FieldError>,
}

impl Ctx {
    fn bad(&mut self, field: impl Into<String>, message: impl Into<String>, value: &Value) {
        // The error names the field; echoing a megabyte back would only
        // amplify a hostile request.
        let value = match value {
            Value::String(s) => Value::String(clip(s)),
            Value::Array(_) | Value::Object(_) => {
                let text = value.to_string();
                if text.chars().count() > 128 {
                    Value::String(clip(&text))
                } else {
                    value.clone()
                }
            }
            other => other.clone(),
        };
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
            value,
        });
    }

    fn object<'a>(
        &mut self,
        v: &'a Value,
        path: &str,
        allowed: &[&str],
    ) -> Option<&'a Map<String, Value>> {
        let Some(obj) = v.as_object() else {
            self.bad(path, "expected an object", v);
            return None;
        };
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) {
                let field = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                self.bad(field, format!("unknown field `{k}`"), &obj[k]);
            }
        }
        Some(obj)
    }

    fn string(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<String> {
        let field = join(path, key);
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.bad(field, "required", &Value::Null);
                }
                None
            }
            Some(Value::String(s)) => match check_text(s, max_chars(key)) {
                Ok(()) => Some(s.clone()),
                Err(e) => {
                    self.bad(field, e.to_string(), &Value::String(s.clone()));
                    None
                }
            },
            Some(v) => {
                self.bad(field, "expected a string", v);
                None
            }
        }
    }

    fn parsed<T, E: std::fmt::Display>(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let s = self.string(obj, path, key, required)?;
        match parse(&s) {
            Ok(v) => Some(v),
            Err(e) => {
                self.bad(join(path, key), e.to_string(), &Value::String(s));
                None
            }
        }
    }

    fn boolean(&mut self, obj: &Map<String, Value>, path: &str, key: &str, default: bool) -> bool {
        match obj.get(key) {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                self.bad(join(path, key), "expected true or false", v);
                default
            }
        }
    }

    fn array<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> &'a [Value] {
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.bad(join(path, key), "required", &Value::Null);
                }
                &[]
            }
            Some(Value::Array(a)) => a,
            Some(v) => {
                self.bad(join(path, key), "expected an array", v);
                &[]
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| DateTime::parse_from_rfc3339(s).map(|d| d.date_naive()))
        .map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)"))
}

fn is_md5(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The scalar fields of an order, each `None` where it was missing or bad
/// (the problem is already in the context).
struct Header {
    so: Option<OrderId>,
    po: Option<PoNumber>,
    lang: Option<Lang>,
    bill_to: Option<String>,
    available_at: Option<DateTime<FixedOffset>>,
    early_ship: bool,
    requested_date: Option<NaiveDate>,
    archived: bool,
    pak_registered: Option<bool>,
}

/// Validates one order object. `now` fills `available_at` for an order that
/// arrives without holds and without a date.
///
/// The steps run in the order of the fields so that an import report lists
/// problems the way the JSON reads; every step records its problems and goes
/// on, so one report names them all.
pub fn parse_order(v: &Value, now: DateTime<FixedOffset>) -> Result<Order, OrderRejection> {
    let mut c = Ctx { errors: Vec::new() };
    // Kept as given, even when invalid, so the rejection can name the order.
    let so_raw = v.get("so").map(|s| match s {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let Some(obj) = c.object(v, "", ORDER_FIELDS) else {
        return Err(OrderRejection {
            so: so_raw,
            errors: c.errors,
        });
    };
    let header = c.header(obj);
    let raw_lines = c.array(obj, "", "lines", true);
    let lines = c.lines(obj, raw_lines);
    let holds = c.holds(obj, raw_lines, &lines);
    let recipients = c.recipients(obj);
    let notification_ids = c.notification_ids(obj);
    match (header.so, header.lang) {
        (Some(so), Some(lang)) if c.errors.is_empty() => {
            // An order without open holds is available from the import on.
            let available_at = header
                .available_at
                .or_else(|| holds.iter().all(|h| h.released).then_some(now));
            Ok(Order {
                so,
                po: header.po,
                lang,
                bill_to: header.bill_to,
                available_at,
                early_ship: header.early_ship,
                requested_date: header.requested_date,
                archived: header.archived,
                pak_registered: header.pak_registered,
                holds,
                lines,
                recipients,
                notification_ids,
            })
        }
        _ => Err(OrderRejection {
            so: so_raw,
            errors: c.errors,
        }),
    }
}

impl Ctx {
    /// The scalar fields of the order object.
    fn header(&mut self, obj: &Map<String, Value>) -> Header {
        let c = self;
        let so = c.parsed(obj, "", "so", true, str::parse::<OrderId>);
        let po = c.parsed(obj, "", "po", false, str::parse::<PoNumber>);
        let lang = c.parsed(obj, "", "lang", true, str::parse::<Lang>);
        let bill_to = c.string(obj, "", "bill_to", false);
        let available_at = c.parsed(obj, "", "available_at", false, |s| {
            DateTime::parse_from_rfc3339(s)
                .map_err(|_| format!("{s:?} is not an RFC 3339 date-time"))
        });
        let early_ship = c.boolean(obj, "", "early_ship", true);
        let requested_date = c.parsed(obj, "", "requested_date", false, parse_date);
        let archived = c.boolean(obj, "", "archived", false);
        // Absent or null: the order carries no PAK to register (right-to-use
        // only), so no reminder is ever sent for it.
        let pak_registered = match obj.get("pak_registered") {
            None | Some(Value::Null) => None,
            Some(_) => Some(c.boolean(obj, "", "pak_registered", false)),
        };
        Header {
            so,
            po,
            lang,
            bill_to,
            available_at,
            early_ship,
            requested_date,
            archived,
            pak_registered,
        }
    }

    /// `lines`: at least one, line numbers unique.
    fn lines(&mut self, obj: &Map<String, Value>, raw_lines: &[Value]) -> Vec<OrderLine> {
        // An explicit empty array is its own problem; a missing one was
        // already reported as required.
        if raw_lines.is_empty() && obj.get("lines").is_some_and(Value::is_array) {
            self.bad(
                "lines",
                "at least one line is required",
                &Value::Array(vec![]),
            );
        }
        let mut lines = Vec::new();
        for (i, lv) in raw_lines.iter().enumerate() {
            if let Some(line) = self.line(&format!("lines[{i}]"), lv, &lines) {
                lines.push(line);
            }
        }
        lines
    }

    /// One element of `lines`; `seen` are the valid lines before it.
    fn line(&mut self, p: &str, lv: &Value, seen: &[OrderLine]) -> Option<OrderLine> {
        let lo = self.object(lv, p, LINE_FIELDS)?;
        let line = self.string(lo, p, "line", true);
        let pid = self.string(lo, p, "pid", true);
        let qty = match lo.get("qty") {
            None | Some(Value::Null) => Some(1),
            Some(q) => match q.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n > 0 => Some(n),
                _ => {
                    self.bad(join(p, "qty"), "expected a positive integer", q);
                    None
                }
            },
        };
        let images = self.images(lo, p);
        if let Some(l) = &line
            && seen.iter().any(|x| &x.line == l)
        {
            self.bad(
                join(p, "line"),
                "duplicate line number",
                &Value::String(l.clone()),
            );
        }
        Some(OrderLine {
            line: line?,
            pid: pid?,
            qty: qty?,
            images,
        })
    }

    /// `images` of one line: a file name and its MD5 each.
    fn images(&mut self, lo: &Map<String, Value>, p: &str) -> Vec<Image> {
        let mut images = Vec::new();
        for (j, iv) in self.array(lo, p, "images", false).iter().enumerate() {
            let ip = format!("{p}.images[{j}]");
            let Some(io) = self.object(iv, &ip, IMAGE_FIELDS) else {
                continue;
            };
            let file = self.string(io, &ip, "file", true);
            let md5 = self.parsed(io, &ip, "md5", true, |s| {
                if is_md5(s) {
                    Ok(s.to_ascii_lowercase())
                } else {
                    Err("not an MD5 (32 hex digits)")
                }
            });
            if let (Some(file), Some(md5)) = (file, md5) {
                images.push(Image { file, md5 });
            }
        }
        images
    }

    /// `holds`: a hold on a line must name a line of this order (checked only
    /// when the order has lines, else the missing lines are the problem).
    fn holds(
        &mut self,
        obj: &Map<String, Value>,
        raw_lines: &[Value],
        lines: &[OrderLine],
    ) -> Vec<Hold> {
        let mut holds = Vec::new();
        for (i, hv) in self.array(obj, "", "holds", false).iter().enumerate() {
            let p = format!("holds[{i}]");
            let Some(ho) = self.object(hv, &p, HOLD_FIELDS) else {
                continue;
            };
            let kind = self.parsed(ho, &p, "type", true, str::parse::<HoldType>);
            let line = self.string(ho, &p, "line", false);
            if let Some(l) = &line
                && !raw_lines.is_empty()
                && !lines.iter().any(|x| &x.line == l)
            {
                self.bad(
                    join(&p, "line"),
                    format!("no line {l:?} in this order"),
                    &Value::String(l.clone()),
                );
            }
            let released = self.boolean(ho, &p, "released", false);
            if let Some(kind) = kind {
                holds.push(Hold {
                    kind,
                    line,
                    released,
                });
            }
        }
        holds
    }

    /// `recipients`: one entry per address (compared case-insensitively).
    fn recipients(&mut self, obj: &Map<String, Value>) -> Vec<Recipient> {
        let mut recipients: Vec<Recipient> = Vec::new();
        for (i, rv) in self.array(obj, "", "recipients", true).iter().enumerate() {
            if let Some(r) = self.recipient(&format!("recipients[{i}]"), rv, &recipients) {
                recipients.push(r);
            }
        }
        recipients
    }

    /// One element of `recipients`; `seen` are the valid ones before it.
    fn recipient(&mut self, p: &str, rv: &Value, seen: &[Recipient]) -> Option<Recipient> {
        let ro = self.object(rv, p, RECIPIENT_FIELDS)?;
        let name = self.string(ro, p, "name", false);
        let email = self.parsed(ro, p, "email", true, str::parse::<EmailAddress>);
        let lang = self.parsed(ro, p, "lang", false, str::parse::<Lang>);
        let role = self.parsed(ro, p, "role", false, parse_role);
        let reply_token = self.parsed(ro, p, "reply_token", false, parse_reply_token);
        let email = email?;
        if seen.iter().any(|r| r.email.key() == email.key()) {
            self.bad(
                join(p, "email"),
                "duplicate recipient",
                &Value::String(email.to_string()),
            );
            return None;
        }
        Some(Recipient {
            name,
            email,
            lang,
            role,
            reply_token,
        })
    }

    /// `notification_ids`: Message-IDs of mails already sent for the order,
    /// kept with their angle brackets as they go into `References`.
    fn notification_ids(&mut self, obj: &Map<String, Value>) -> Vec<String> {
        let mut ids = Vec::new();
        for (i, nv) in self
            .array(obj, "", "notification_ids", false)
            .iter()
            .enumerate()
        {
            match nv.as_str() {
                Some(s) if is_message_id(s) => ids.push(s.to_string()),
                _ => self.bad(
                    format!("notification_ids[{i}]"),
                    "expected a Message-ID like <id@domain>",
                    nv,
                ),
            }
        }
        ids
    }
}

/// A recipient role is a short word: it ends up in templates and reports.
fn parse_role(s: &str) -> Result<String, &'static str> {
    if !s.is_empty()
        && s.len() <= 40
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(s.to_string())
    } else {
        Err("role must be a short word like \"end-user\"")
    }
}

/// A reply token is matched case-insensitively, so it is stored lowercase.
fn parse_reply_token(s: &str) -> Result<String, &'static str> {
    if (16..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err("reply_token must be 16 to 64 letters or digits")
    }
}

/// `<id@domain>` without spaces and within the header bound.
fn is_message_id(s: &str) -> bool {
    s.starts_with('<')
        && s.ends_with('>')
        && s.contains('@')
        && !s.contains(' ')
        && check_text(s, MAX_MESSAGE_ID).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2025-03-03T10:00:00+00:00").unwrap()
    }

    fn sample() -> Value {
        json!({
          "so": "10458321", "po": "ACME-PO-7781", "lang": "en", "bill_to": "ACME Networks",
          "available_at": "2025-03-03T09:02:00+01:00", "early_ship": true, "requested_date": null,
          "archived": false, "holds": [{"type": "export", "line": null, "released": false}],
          "lines": [{"line": "1.1", "pid": "L-ASA5516-TD-1Y", "qty": 1,
                     "images": [{"file": "asa-9.20.2-lfbff-k8.SPA", "md5": "9fb4c92d620d4be2a9f190e7fa6332b3"}]}],
          "recipients": [{"name": "John Harper", "email": "j.harper@acme.example.com",
                          "lang": "en", "role": "end-user", "reply_token": "2ec88d94097bcc8e32d6f0b69fa54158"}],
          "notification_ids": ["<notif.10458321.1@edesk.example.com>"]
        })
    }

    #[test]
    fn design_example_parses_and_round_trips() {
        let o = parse_order(&sample(), now()).unwrap();
        assert_eq!(o.so.as_str(), "10458321");
        assert_eq!(o.holds[0].kind, HoldType::Export);
        assert!(o.has_open_hold());
        let back = serde_json::to_value(&o).unwrap();
        assert_eq!(parse_order(&back, now()).unwrap(), o);
    }

    #[test]
    fn defaults_fill_in() {
        let o = parse_order(&json!({"so": "12345678", "lang": "fr", "lines": [{"line": "1", "pid": "X"}], "recipients": []}), now()).unwrap();
        assert!(o.early_ship);
        assert!(!o.archived);
        assert_eq!(o.available_at, Some(now()));
        assert_eq!(o.lines[0].qty, 1);
        let held = parse_order(&json!({"so": "12345678", "lang": "fr", "lines": [{"line": "1", "pid": "X"}], "recipients": [], "holds": [{"type": "csm"}]}), now()).unwrap();
        assert_eq!(held.available_at, None);
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut v = sample();
        v["so"] = json!("12ab");
        v["colour"] = json!("red");
        v["holds"][0]["type"] = json!("weather");
        v["recipients"][0]["email"] = json!("j.harper@");
        v["lines"][0]["images"][0]["md5"] = json!("xyz");
        let e = parse_order(&v, now()).unwrap_err();
        assert_eq!(e.so.as_deref(), Some("12ab"));
        let fields: Vec<&str> = e.errors.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "so",
            "colour",
            "holds[0].type",
            "recipients[0].email",
            "lines[0].images[0].md5",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
    }

    fn field_error(v: &Value) -> FieldError {
        let e = parse_order(v, now()).unwrap_err();
        assert_eq!(e.so.as_deref(), Some("10458321"));
        e.errors[0].clone()
    }

    #[test]
    fn a_megabyte_name_is_refused_by_name() {
        let mut v = sample();
        v["recipients"][0]["name"] = json!("x".repeat(1_000_000));
        let e = field_error(&v);
        assert_eq!(e.field, "recipients[0].name");
        assert_eq!(
            e.message,
            "is 1000000 characters long, at most 256 are allowed"
        );
        assert!(e.value.as_str().unwrap().chars().count() < 100);
    }

    #[test]
    fn field_length_bounds() {
        for (path, value, ok) in [
            ("/bill_to", "B".repeat(256), true),
            ("/bill_to", "B".repeat(257), false),
            ("/lines/0/images/0/file", "f".repeat(255), true),
            ("/lines/0/images/0/file", "f".repeat(256), false),
            ("/lines/0/pid", "P".repeat(129), false),
            ("/po", "P".repeat(51), false),
            (
                "/notification_ids/0",
                format!("<{}@x>", "n".repeat(300)),
                false,
            ),
        ] {
            let mut v = sample();
            *v.pointer_mut(path).unwrap() = json!(value);
            assert_eq!(
                parse_order(&v, now()).is_ok(),
                ok,
                "{path} = {} chars",
                value.len()
            );
        }
    }

    #[test]
    fn invisible_and_bidi_characters_are_named() {
        for (path, field, value, cp) in [
            (
                "/lines/0/images/0/file",
                "lines[0].images[0].file",
                "setup\u{202E}gpj.exe",
                "U+202E RIGHT-TO-LEFT OVERRIDE",
            ),
            (
                "/recipients/0/name",
                "recipients[0].name",
                "John\u{200B} Harper",
                "U+200B ZERO WIDTH SPACE",
            ),
            (
                "/bill_to",
                "bill_to",
                "ACME\u{2066}Networks",
                "U+2066 LEFT-TO-RIGHT ISOLATE",
            ),
            (
                "/po",
                "po",
                "ACME-PO\u{FEFF}",
                "U+FEFF ZERO WIDTH NO-BREAK SPACE",
            ),
            (
                "/lines/0/pid",
                "lines[0].pid",
                "L-ASA\u{2028}",
                "U+2028 LINE SEPARATOR",
            ),
        ] {
            let mut v = sample();
            *v.pointer_mut(path).unwrap() = json!(value);
            let e = field_error(&v);
            assert_eq!(e.field, field);
            assert!(e.message.contains(cp), "{}: {}", e.field, e.message);
        }
    }

    #[test]
    fn hold_on_unknown_line_and_empty_lines() {
        let mut v = sample();
        v["holds"][0]["line"] = json!("9.9");
        let e = parse_order(&v, now()).unwrap_err();
        assert_eq!(e.errors[0].field, "holds[0].line");
        let mut v = sample();
        v["lines"] = json!([]);
        let e = parse_order(&v, now()).unwrap_err();
        assert_eq!(e.errors[0].field, "lines");
    }
}
