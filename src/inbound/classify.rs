//! Is this a person writing, or a machine (bounce, auto-reply, list, our own
//! mail coming back)? Machine mail is never answered.

use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

use super::parse::Parsed;
use super::ports::{Directory, DirectoryError};

/// What kind of mail this is; serialized lowercase (the `kind` of
/// `mail inspect --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A person answering: threaded by reply token or our Message-ID, or the
    /// mail has In-Reply-To/References or a reply subject (`Re:`, `Rép:`…).
    Reply,
    /// A person writing without any sign of a reply.
    New,
    /// Out-of-office and other automatic replies, and our own mail looping back.
    Autoreply,
    /// A delivery failure report (DSN or a bounce to our VERP address).
    Bounce,
    /// Mailing-list or bulk mail (`List-Id`, `List-Unsubscribe`).
    List,
    /// No sender address, unparseable, or the analysis itself failed.
    Malformed,
}

impl Kind {
    /// The lowercase name, the same as the serde form.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Reply => "reply",
            Kind::New => "new",
            Kind::Autoreply => "autoreply",
            Kind::Bounce => "bounce",
            Kind::List => "list",
            Kind::Malformed => "malformed",
        }
    }

    /// Written by a person (reply or new): the only kinds ever answered.
    pub fn is_human(self) -> bool {
        matches!(self, Kind::Reply | Kind::New)
    }
}

/// A delivery failure: whose address failed, and whether to stop mailing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bounce {
    /// The failed address (from the VERP token's recipient, the DSN, or the text).
    pub address: Option<String>,
    /// The VERP token of `bounces+TOKEN@`, if the bounce came back that way.
    pub token: Option<String>,
    /// Enhanced status code (`5.1.1`) when one was found.
    pub status: Option<String>,
    /// Permanent failure: the address should be suppressed.
    pub hard: bool,
}

/// The result of [`classify`]: human or machine mail.
#[derive(Debug, Clone, PartialEq)]
pub enum Class {
    /// Written by a person; reply vs new is decided by threading.
    Human,
    /// Written by a machine; never answered.
    Machine {
        /// Never `Reply` or `New`.
        kind: Kind,
        /// The failure details, for `Kind::Bounce` only.
        bounce: Option<Bounce>,
    },
}

/// Classifies a parsed message; `reasons` gets one line per finding.
pub fn classify(
    p: &Parsed,
    dir: &dyn Directory,
    reasons: &mut Vec<String>,
) -> Result<Class, DirectoryError> {
    let machine = |kind| Class::Machine { kind, bounce: None };
    let addressed = p.from.as_deref().is_some_and(|f| f.contains('@'));
    // Without an address, only a From line that names someone, over
    // something written, can be a person's mail; no From at all (or bytes
    // that are no mail) is malformed.
    let named = p.from_name.as_deref().is_some_and(|n| !n.trim().is_empty());
    if !addressed && (!named || nothing_written(p)) {
        reasons.push("malformed: no sender address".into());
        return Ok(machine(Kind::Malformed));
    }
    if let Some(why) = own_loop(p, dir)? {
        reasons.push(format!("autoreply: {why}"));
        return Ok(machine(Kind::Autoreply));
    }
    if let Some(b) = bounce(p, dir, reasons)? {
        return Ok(Class::Machine {
            kind: Kind::Bounce,
            bounce: Some(b),
        });
    }
    if p.header("list-id").is_some() {
        reasons.push("list: List-Id header".into());
        return Ok(machine(Kind::List));
    }
    if let Some(why) = auto_reply(p) {
        reasons.push(format!("autoreply: {why}"));
        return Ok(machine(Kind::Autoreply));
    }
    if p.header("list-unsubscribe").is_some() {
        reasons.push("list: List-Unsubscribe header (bulk mail)".into());
        return Ok(machine(Kind::List));
    }
    if p.null_sender {
        // RFC 5321 §4.5.5 and RFC 3834: the null reverse-path is for
        // delivery reports and automatic replies, so that nothing answers
        // them; a person's mail always has one.
        reasons.push(
            "autoreply: the envelope sender is null (<>), which only automatic mail uses".into(),
        );
        return Ok(machine(Kind::Autoreply));
    }
    if !addressed {
        // A person's mail whose From has no address (a broken client, a
        // hand-typed header) is still a person's: a person reads it.
        reasons.push("headers: the From line has no address".into());
    }
    Ok(Class::Human)
}

/// No subject and no body: nothing a person could act on.
fn nothing_written(p: &Parsed) -> bool {
    p.subject.trim().is_empty()
        && p.text.as_deref().is_none_or(|t| t.trim().is_empty())
        && p.html.as_deref().is_none_or(|t| t.trim().is_empty())
}

fn own_loop(p: &Parsed, dir: &dyn Directory) -> Result<Option<String>, DirectoryError> {
    if let Some(from) = p.from.as_deref()
        && dir.is_own_address(from)
    {
        return Ok(Some(format!("sent by our own address {from}")));
    }
    if let Some(id) = p.message_id.as_deref()
        && dir.order_by_message_id(id)?.is_some()
    {
        return Ok(Some("our own notification came back".into()));
    }
    if let Some(x) = p.header("x-loop")
        && x.split([',', ' '])
            .any(|a| a.contains('@') && dir.is_own_address(a.trim()))
    {
        return Ok(Some("X-Loop names us".into()));
    }
    Ok(None)
}

fn re(cell: &'static OnceLock<Option<Regex>>, pat: &str) -> Option<&'static Regex> {
    cell.get_or_init(|| Regex::new(pat).ok()).as_ref()
}

fn bounce_subject() -> Option<&'static Regex> {
    static C: OnceLock<Option<Regex>> = OnceLock::new();
    re(
        &C,
        r"(?i)^\s*(undeliver(ed|able)|delivery status notification|mail delivery (failed|failure|system)|returned mail|failure notice|delivery fail|message not delivered|delivery has failed|non remis|non distribuable|message non remis|[ée]chec (de (la )?)?(remise|distribution|livraison)|notification d.[ée]tat de (la )?remise|rapport de non-remise|mail system error|message non d[ée]livr[ée]|impossible de remettre)",
    )
}

fn bounce_sender(p: &Parsed) -> bool {
    let local = p
        .from
        .as_deref()
        .and_then(|f| f.split('@').next())
        .unwrap_or("");
    matches!(local, "mailer-daemon" | "postmaster" | "mail-daemon")
        || p.from_name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case("mail delivery subsystem"))
}

/// The token of a `bounces+TOKEN@` recipient.
fn verp_token(p: &Parsed) -> Option<String> {
    p.recipients.iter().find_map(|r| {
        let (local, _) = r.split_once('@')?;
        let tok = local.strip_prefix("bounces+")?;
        (!tok.is_empty()).then(|| tok.to_string())
    })
}

fn bounce(
    p: &Parsed,
    dir: &dyn Directory,
    reasons: &mut Vec<String>,
) -> Result<Option<Bounce>, DirectoryError> {
    let dsn =
        p.content_type == "multipart/report" && p.report_type.as_deref() == Some("delivery-status");
    let token = verp_token(p);
    let subject = bounce_subject().is_some_and(|r| r.is_match(&p.subject));
    let sender = bounce_sender(p);
    let null_path = p.null_sender
        || p.header("return-path")
            .is_some_and(|r| r.trim().trim_matches(['<', '>']).is_empty());
    let why = if dsn {
        "DSN (multipart/report; report-type=delivery-status)"
    } else if token.is_some() && (subject || sender || null_path) {
        "delivery failure sent to our VERP bounce address"
    } else if sender && subject {
        "delivery failure from the mail system"
    } else if subject && (null_path || p.header("x-failed-recipients").is_some()) {
        "delivery failure subject with a null sender"
    } else if token.is_some() && auto_reply(p).is_none() {
        "mail sent to our VERP bounce address"
    } else {
        return Ok(None);
    };
    let text = [p.report.as_deref(), p.text.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n");
    let status = status_code(&text);
    let hard = match status.as_deref() {
        Some(s) => s.starts_with('5'),
        None => is_hard_text(&text),
    };
    let from_token = match token.as_deref() {
        Some(t) => dir.order_by_token(t)?.and_then(|o| o.recipient),
        None => None,
    };
    let address = from_token
        .or_else(|| failed_recipient(p, &text))
        .map(|a| a.to_ascii_lowercase());
    reasons.push(format!("bounce: {why}"));
    reasons.push(format!(
        "bounce: {} failure{}{}",
        if hard { "permanent" } else { "temporary" },
        status
            .as_deref()
            .map(|s| format!(" (status {s})"))
            .unwrap_or_default(),
        address
            .as_deref()
            .map(|a| format!(" for {a}"))
            .unwrap_or_default()
    ));
    if hard && address.is_some() {
        reasons.push("bounce: suppress the address".into());
    }
    Ok(Some(Bounce {
        address,
        token,
        status,
        hard,
    }))
}

fn status_code(text: &str) -> Option<String> {
    static STATUS: OnceLock<Option<Regex>> = OnceLock::new();
    static ENH: OnceLock<Option<Regex>> = OnceLock::new();
    // The DSN's own Status field first; any enhanced code in the text after.
    let field = re(&STATUS, r"(?im)^\s*status\s*:\s*([245]\.\d{1,3}\.\d{1,3})")
        .and_then(|r| r.captures(text))
        .and_then(|c| c.get(1));
    let any = || {
        re(&ENH, r"\b([45]\.\d{1,3}\.\d{1,3})\b")
            .and_then(|r| r.captures(text))
            .and_then(|c| c.get(1))
    };
    field.or_else(any).map(|m| m.as_str().to_string())
}

fn is_hard_text(text: &str) -> bool {
    static HARD: OnceLock<Option<Regex>> = OnceLock::new();
    static SOFT: OnceLock<Option<Regex>> = OnceLock::new();
    let soft = re(
        &SOFT,
        r"(?i)(mailbox (is )?full|over quota|quota exceeded|delayed|will (be )?retr|temporar|bo[îi]te (aux lettres )?pleine|nouvelle tentative|retard[ée]e?)",
    )
    .is_some_and(|r| r.is_match(text));
    let hard = re(
        &HARD,
        r"(?i)(user unknown|unknown user|no such (user|mailbox|recipient)|does not exist|doesn.t exist|address rejected|mailbox unavailable|recipient not found|invalid recipient|n.existe pas|introuvable|inconnu|adresse (de destination )?invalide|\b55[0-4]\b|permanent)",
    )
    .is_some_and(|r| r.is_match(text));
    hard && !soft
}

fn failed_recipient(p: &Parsed, text: &str) -> Option<String> {
    static FINAL: OnceLock<Option<Regex>> = OnceLock::new();
    static ADDR: OnceLock<Option<Regex>> = OnceLock::new();
    if let Some(x) = p.header("x-failed-recipients") {
        let a = x.split(',').next().unwrap_or("").trim();
        if a.contains('@') {
            return Some(a.to_string());
        }
    }
    if let Some(c) = re(
        &FINAL,
        r"(?im)^\s*(?:final|original)-recipient\s*:\s*rfc822\s*;\s*<?([^\s<>]+@[^\s<>]+?)>?\s*$",
    )
    .and_then(|r| r.captures(text))
    {
        return c.get(1).map(|m| m.as_str().to_string());
    }
    let from = p.from.as_deref().unwrap_or("");
    re(&ADDR, r"[A-Za-z0-9._%+\-']+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")?
        .find_iter(text)
        .map(|m| m.as_str())
        .find(|a| {
            let l = a.to_ascii_lowercase();
            l != from
                && !l.starts_with("mailer-daemon@")
                && !l.starts_with("postmaster@")
                && !l.contains("bounces+")
        })
        .map(str::to_string)
}

/// Subjects only automatic mail writes, wherever they stand.
fn ooo_subject() -> Option<&'static Regex> {
    static C: OnceLock<Option<Regex>> = OnceLock::new();
    re(
        &C,
        r"(?i)(out of (the )?office|automatic reply|auto(matic)?[- ]?reply|autoreply|auto[- ]response|away from (the )?office|r[ée]ponse automatique|r[ée]ponse auto\b|message d.absence|hors du bureau|^\s*(read|not read|lu|non lu)\s*:|read receipt|return receipt|accus[ée] de (lecture|r[ée]ception)|notification de lecture)",
    )
}

/// Words a person also writes ("before I go on holiday", "absence de
/// licence"): an absence notice only when the subject opens with them and
/// they are not the start of a noun phrase ("absence of …").
fn ooo_subject_opening() -> Option<&'static Regex> {
    static C: OnceLock<Option<Regex>> = OnceLock::new();
    re(
        &C,
        r"(?i)^\s*(i am |i'm |je suis )?(on vacation|on leave|on holiday|absent|absente|absence|en cong[ée]s?|en vacances)\b(\s*$|\s*[:\-–(]|\s+(until|till|from|du bureau|jusqu|le |au |the office))",
    )
}

fn auto_reply(p: &Parsed) -> Option<String> {
    if let Some(v) = p.header("auto-submitted")
        && !v.trim().eq_ignore_ascii_case("no")
    {
        return Some(format!("Auto-Submitted: {}", v.trim()));
    }
    if let Some(v) = p.header("precedence") {
        let v = v.trim().to_ascii_lowercase();
        if matches!(v.as_str(), "bulk" | "junk" | "list" | "auto_reply") {
            return Some(format!("Precedence: {v}"));
        }
    }
    for h in ["x-autoreply", "x-autorespond"] {
        if let Some(v) = p.header(h)
            && !v.trim().eq_ignore_ascii_case("no")
        {
            return Some(format!("{h} header"));
        }
    }
    if let Some(v) = p.header("x-autogenerated")
        && v.trim().eq_ignore_ascii_case("reply")
    {
        return Some("X-AutoGenerated: Reply".into());
    }
    if let Some(v) = p.header("x-auto-response-suppress") {
        // `DR, RN, NRN` only asks not to get receipts and is common on
        // human Outlook mail; `All`, `OOF` or `AutoReply` marks a robot.
        let marks_auto = v.split(',').any(|t| {
            let t = t.trim();
            t.eq_ignore_ascii_case("all")
                || t.eq_ignore_ascii_case("oof")
                || t.eq_ignore_ascii_case("autoreply")
        });
        if marks_auto {
            return Some(format!("X-Auto-Response-Suppress: {}", v.trim()));
        }
    }
    if p.report_type.as_deref() == Some("disposition-notification") {
        return Some("read receipt (MDN)".into());
    }
    // "RE: Accusé de réception de votre commande" is a person answering
    // such a mail: a robot's subject opens with its own words
    // ("Automatic reply: RE: …").
    let replied = super::command::bare_subject(&p.subject) != p.subject.trim();
    if !replied
        && (ooo_subject().is_some_and(|r| r.is_match(&p.subject))
            || ooo_subject_opening().is_some_and(|r| r.is_match(&p.subject)))
    {
        return Some(format!("subject {:?}", p.subject));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::ports::MemWorld;

    fn human() -> Parsed {
        Parsed {
            message_id: Some("a@b".into()),
            from: Some("ana@example.com".into()),
            has_date: true,
            subject: "Question".into(),
            ..Parsed::default()
        }
    }

    fn kind(p: &Parsed) -> Option<Kind> {
        match classify(p, &MemWorld::default(), &mut Vec::new()).unwrap() {
            Class::Human => None,
            Class::Machine { kind, .. } => Some(kind),
        }
    }

    /// A machine that writes like a person (no auto-reply header, an
    /// ordinary subject) still gives itself away by the null envelope sender.
    #[test]
    fn a_null_envelope_sender_is_never_a_person() {
        let mut p = human();
        assert_eq!(kind(&p), None);
        p.null_sender = true;
        assert_eq!(kind(&p), Some(Kind::Autoreply));
        p.subject = "Undeliverable: Question".into();
        assert_eq!(
            kind(&p),
            Some(Kind::Bounce),
            "a bounce subject with <> is a bounce"
        );
    }

    #[test]
    fn exchange_suppress_receipts_is_human() {
        let mut p = human();
        p.headers
            .push(("x-auto-response-suppress".into(), "DR, RN, NRN".into()));
        assert_eq!(kind(&p), None);
        p.headers[0].1 = "All".into();
        assert_eq!(kind(&p), Some(Kind::Autoreply));
    }

    #[test]
    fn ooo_subjects_en_fr() {
        for s in [
            "Out of Office: Your order",
            "Réponse automatique : Votre commande",
            "Absence du bureau",
            "Automatic reply: SO#123",
            "Lu : Votre commande",
        ] {
            let mut p = human();
            p.subject = s.into();
            assert_eq!(kind(&p), Some(Kind::Autoreply), "{s}");
        }
        for s in [
            "Absent: Your order 61000001",
            "On vacation until 12 May",
            "Je suis absente jusqu'au 3 janvier",
            "En congés : Re: votre commande",
            "Absence du bureau jusqu'au lundi",
        ] {
            let mut p = human();
            p.subject = s.into();
            assert_eq!(kind(&p), Some(Kind::Autoreply), "{s}");
        }
        // A person writes these words too.
        for s in [
            "Re: where is the office license file",
            "before I go on holiday",
            "Absence of license key on SO 61000001",
            "Absence de licence sur la commande",
            "colleague on leave, please resend the PAK",
            "Commande à traiter avant mes congés",
            "RE: Accusé de réception de votre commande 73000912",
            "TR: Out of office: can someone else answer this?",
        ] {
            let mut p = human();
            p.subject = s.into();
            assert_eq!(kind(&p), None, "{s}");
        }
    }

    #[test]
    fn hard_and_soft_text() {
        assert!(is_hard_text(
            "550 5.1.1 <x@y>: Recipient address rejected: User unknown"
        ));
        assert!(!is_hard_text("Mailbox full, will retry for 5 days"));
        assert_eq!(status_code("Status: 4.2.2\n"), Some("4.2.2".into()));
    }

    #[test]
    fn auto_submitted_no_is_human() {
        let mut p = human();
        p.headers.push(("auto-submitted".into(), "no".into()));
        assert_eq!(kind(&p), None);
    }
}
