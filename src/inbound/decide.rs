//! The whole analysis: raw bytes + what the directory and the FAQ know →
//! one [`Decision`]. Pure (no I/O, no clock), so the daemon and
//! `mail inspect` give the same answer for the same message.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;

use super::auth::{self, Proof};
use super::classify::{Bounce, Class, Kind, classify};
use super::command::{self, MailCommand, NotAnOrder};
use super::extract;
use super::lang;
use super::parse::{Parsed, parse};
use super::ports::{Directory, DirectoryError, FaqOracle, OrderRef};
use super::route;
use super::thread::{Method, NamedOrder, Thread, thread};
use super::verify::Verdicts;
use crate::desk::routing::{self, Route, RoutingInput};
use crate::domain::{Lang, OrderId, Team};

/// New text shorter than this is completed with the subject before asking
/// the FAQ ("see below", "any news?").
const SHORT_QUESTION_CHARS: usize = 40;

/// What the daemon does with the message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Machine mail or nothing to do.
    Ignore,
    /// Stop mailing an address that failed permanently.
    Suppress {
        /// The address that failed permanently.
        address: String,
    },
    /// Answer from the FAQ entry `id`.
    Answer {
        /// FAQ entry id.
        id: String,
    },
    /// Open a ticket for the team and acknowledge to the customer.
    Escalate {
        /// The team the ticket is opened for.
        team: Route,
    },
    /// Run a mail command for the sender.
    Command(MailCommand),
    /// A mail command nothing proves the sender wrote: not run; the sender
    /// is told how to do it safely (see `inbound::auth`).
    UnprovenCommand(MailCommand),
}

/// The FAQ entry considered, as shown by `mail inspect`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaqShown {
    /// The entry's id, for the team's ticket (not part of the inspect JSON).
    #[serde(skip)]
    pub id: Option<String>,
    /// The entry's question (set whenever the decision shows an entry).
    pub question: Option<String>,
    /// The FAQ's confidence in [0, 1].
    pub confidence: f64,
}

/// Everything the analysis concluded about one message: what to do
/// ([`Decision::action`]) and why (`reasons`).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The message's Message-ID without `<>`.
    pub message_id: Option<String>,
    /// Human (reply/new) or which kind of machine mail.
    pub kind: Kind,
    /// Automatic mail may go to the sender: false for machine mail and for a
    /// sender writing about a store order they are not authorized for.
    pub should_reply: bool,
    /// Language of the reply: detected in the new text when clear, else the
    /// thread's, the sender's known one or the order's.
    pub lang: Lang,
    /// Every order named: those the store knows first, then SO numbers it
    /// does not know and unresolved `PO …` as written.
    pub orders: Vec<NamedOrder>,
    /// How many of `orders` (from the start) the store knows.
    pub known_orders: usize,
    /// The sender may see every store order named (recipient, OBA grant or
    /// reply token); false when no store order is named.
    pub authorized: bool,
    /// FAQ answer, a team, or none (machine mail, commands).
    pub route: Route,
    /// The FAQ entry considered; `None` when the FAQ was not asked or
    /// matched nothing.
    pub faq: Option<FaqShown>,
    /// What the sender wrote in this message: quotes, signature and
    /// disclaimers removed.
    pub new_text: String,
    /// One line per finding, in order, for `mail inspect` and the log.
    pub reasons: Vec<String>,
    /// What the worker does.
    pub action: Action,
    /// The From address, lower case; `None` when there is none.
    pub sender: Option<String>,
    /// Subject on one line (empty when absent).
    pub subject: String,
    /// The evidence that found the orders.
    pub thread_method: Method,
    /// The Message-IDs the mail refers to (In-Reply-To, References), as
    /// parsed: the worker threads with them without parsing the mail again.
    pub thread_ids: Vec<String>,
    /// The failure details, for a bounce.
    pub bounce: Option<Bounce>,
    /// What proves the mail comes from its From address (human mail only).
    pub auth: Option<Proof>,
    /// DKIM/SPF/DMARC verdicts, when verification is configured.
    pub verified: Option<Verdicts>,
    /// What the routing classifier saw (a human question only), for
    /// `mail route-eval --export-training`.
    pub view: Option<route::learned::View>,
}

/// The `auth` field of `mail inspect --json`: the proof, and the
/// DKIM/SPF/DMARC verdicts when verification is configured.
#[derive(Debug, Serialize)]
pub struct AuthJson<'a> {
    /// Flattened: `{"proof": …, …}`.
    #[serde(flatten)]
    pub proof: &'a Proof,
    /// Omitted when verification is not configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<&'a Verdicts>,
}

/// `mail inspect --json` output, field for field DESIGN.md's contract.
#[derive(Debug, Serialize)]
pub struct InspectJson<'a> {
    /// The file name as given on the command line (`-` for stdin).
    pub file: &'a str,
    /// See [`Decision::message_id`].
    pub message_id: Option<&'a str>,
    /// See [`Decision::kind`].
    pub kind: Kind,
    /// See [`Decision::should_reply`].
    pub should_reply: bool,
    /// See [`Decision::lang`].
    pub lang: Lang,
    /// See [`Decision::orders`].
    pub orders: &'a [NamedOrder],
    /// See [`Decision::authorized`].
    pub authorized: bool,
    /// See [`Decision::route`].
    pub route: Route,
    /// See [`Decision::faq`].
    pub faq: Option<&'a FaqShown>,
    /// See [`Decision::new_text`].
    pub new_text: &'a str,
    /// See [`Decision::reasons`].
    pub reasons: &'a [String],
    /// Added to the contract: what proves the sender (null for machine mail).
    pub auth: Option<AuthJson<'a>>,
}

impl Decision {
    /// The `mail inspect --json` view of this decision for `file`.
    pub fn inspect_json<'a>(&'a self, file: &'a str) -> InspectJson<'a> {
        InspectJson {
            file,
            message_id: self.message_id.as_deref(),
            kind: self.kind,
            should_reply: self.should_reply,
            lang: self.lang,
            orders: &self.orders,
            authorized: self.authorized,
            route: self.route,
            faq: self.faq.as_ref(),
            new_text: &self.new_text,
            reasons: &self.reasons,
            auth: self.auth.as_ref().map(|proof| AuthJson {
                proof,
                verified: self.verified.as_ref(),
            }),
        }
    }

    /// The orders the store knows (a sender must be authorized for them).
    pub fn store_orders(&self) -> &[NamedOrder] {
        &self.orders[..self.known_orders.min(self.orders.len())]
    }

    /// The sender wrote about an order of the store they may not see: no
    /// automatic mail, a person checks first.
    pub fn stranger_to_order(&self) -> bool {
        self.known_orders > 0 && !self.authorized
    }

    fn machine(p: Option<&Parsed>, kind: Kind, reasons: Vec<String>) -> Decision {
        Decision {
            message_id: p.and_then(|p| p.message_id.clone()),
            kind,
            should_reply: false,
            lang: Lang::En,
            orders: Vec::new(),
            known_orders: 0,
            authorized: false,
            route: Route::None,
            faq: None,
            new_text: String::new(),
            reasons,
            action: Action::Ignore,
            sender: p.and_then(|p| p.from.clone()),
            subject: p.map(|p| p.subject.clone()).unwrap_or_default(),
            thread_method: Method::None,
            thread_ids: p.map(|p| p.thread_ids.clone()).unwrap_or_default(),
            bounce: None,
            auth: None,
            verified: None,
            view: None,
        }
    }
}

/// Analyses one raw message. Never panics: anything unexpected is
/// `malformed`. Fails only when the order directory cannot answer (the
/// store failed): a decision made on "no such order" would be wrong.
pub fn analyze(
    raw: &[u8],
    dir: &dyn Directory,
    faq: &dyn FaqOracle,
) -> Result<Decision, DirectoryError> {
    analyze_with(raw, dir, faq, None)
}

/// [`analyze`] with the message's DKIM/SPF/DMARC verdicts (see
/// `inbound::verify`): an aligned pass proves the sender of a command.
pub fn analyze_with(
    raw: &[u8],
    dir: &dyn Directory,
    faq: &dyn FaqOracle,
    verified: Option<&Verdicts>,
) -> Result<Decision, DirectoryError> {
    analyze_received(raw, dir, faq, verified, None)
}

/// [`analyze_with`] for mail an MTA handed over, with the envelope sender
/// it gave (`Some("")` is the null sender `<>`, which only automatic mail
/// uses: such mail is never answered).
pub fn analyze_received(
    raw: &[u8],
    dir: &dyn Directory,
    faq: &dyn FaqOracle,
    verified: Option<&Verdicts>,
    mail_from: Option<&str>,
) -> Result<Decision, DirectoryError> {
    let null_sender = mail_from.is_some_and(|m| m.trim().trim_matches(['<', '>']).is_empty());
    match catch_unwind(AssertUnwindSafe(|| {
        analyze_inner(raw, dir, faq, verified, null_sender)
    })) {
        Ok(d) => d,
        Err(_) => Ok(Decision::machine(
            None,
            Kind::Malformed,
            vec!["malformed: the analysis failed on this input".into()],
        )),
    }
}

fn analyze_inner(
    raw: &[u8],
    dir: &dyn Directory,
    faq: &dyn FaqOracle,
    verified: Option<&Verdicts>,
    null_sender: bool,
) -> Result<Decision, DirectoryError> {
    let p = match parse(raw) {
        Ok(p) => Parsed { null_sender, ..p },
        Err(e) => {
            return Ok(Decision::machine(
                None,
                Kind::Malformed,
                vec![format!("malformed: {e}")],
            ));
        }
    };
    let mut reasons = Vec::new();
    Ok(match classify(&p, dir, &mut reasons)? {
        Class::Human => {
            let mut p = p;
            if let Some(note) = p.from_repaired.clone() {
                reasons.push(note);
            }
            if p.message_id.is_none() {
                let id = synthetic_id(raw);
                reasons.push(format!(
                    "headers: no Message-ID; stored as {id} (synthetic, from the content)"
                ));
                p.message_id = Some(id);
            }
            if !p.has_date {
                reasons.push("headers: no Date; processed as received".into());
            }
            human(p, dir, faq, reasons, verified)?
        }
        Class::Machine { kind, bounce } => {
            let mut d = Decision::machine(Some(&p), kind, reasons);
            // The language of whatever the machine said, for logs and tickets.
            let sample = p.text.as_deref().unwrap_or(&p.subject);
            d.lang = lang::detect(sample)
                .or_else(|| p.from.as_deref().and_then(|f| dir.known_lang(f)))
                .unwrap_or(Lang::En);
            if let Some(b) = &bounce {
                if let (true, Some(a)) = (b.hard, &b.address) {
                    d.action = Action::Suppress { address: a.clone() };
                }
                if let Some(t) = b.token.as_deref()
                    && let Some(o) = dir.order_by_token(t)?
                {
                    d.orders.push(NamedOrder::So(o.so));
                    d.known_orders = d.orders.len();
                }
            }
            d.bounce = bounce;
            d.reasons.push("machine mail: never answered".into());
            d
        }
    })
}

/// A stable Message-ID for a human message that has none: the same bytes
/// give the same id, so a redelivery is recognised as the same message.
pub fn synthetic_id(raw: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(raw);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("synthetic.{hex}@edesk.invalid")
}

fn is_reply(p: &Parsed, t: &Thread) -> bool {
    matches!(t.method, Method::ReplyToken | Method::MessageId)
        || !p.thread_ids.is_empty()
        || command::is_reply_subject(&p.subject)
}

/// How many of a reply's thread ids are looked up for their language.
const MAX_LANG_LOOKUPS: usize = 5;

/// The language to answer in. Clear word evidence in the new text wins;
/// otherwise what the thread says (the language of our mail this answers,
/// the token's recipient, the sender's known language, the quoted history,
/// the order) beats a guess on a few words.
fn pick_lang(
    new_text: &str,
    p: &Parsed,
    t: &Thread,
    dir: &dyn Directory,
    faq: &dyn FaqOracle,
) -> Result<(Lang, String), DirectoryError> {
    let guess = lang::detect_with(new_text, faq.vocabulary(new_text));
    if let lang::Evidence::Strong(l) = guess {
        return Ok((l, format!("lang: {l} detected in the new text")));
    }
    for id in p.thread_ids.iter().take(MAX_LANG_LOOKUPS) {
        if let Some(l) = dir.sent_lang(id)? {
            return Ok((
                l,
                format!("lang: {l}, the language of our mail this answers"),
            ));
        }
    }
    Ok(pick_lang_without_our_mail(guess, p, t, dir, faq))
}

fn pick_lang_without_our_mail(
    guess: lang::Evidence,
    p: &Parsed,
    t: &Thread,
    dir: &dyn Directory,
    faq: &dyn FaqOracle,
) -> (Lang, String) {
    let sender = p.from.as_deref().unwrap_or("");
    let token_lang = t.orders.first().and_then(|o| o.recipient_lang);
    if let Some(l) = token_lang.or_else(|| dir.known_lang(sender)) {
        return (l, format!("lang: {l}, the sender's known language"));
    }
    let quoted = quoted_history(p.text.as_deref().unwrap_or(""));
    if let lang::Evidence::Strong(l) = lang::detect_with(&quoted, faq.vocabulary(&quoted)) {
        return (l, format!("lang: {l}, the language of the quoted thread"));
    }
    if let Some(o) = t.orders.first() {
        return (o.lang, format!("lang: {}, the order's language", o.lang));
    }
    if let lang::Evidence::Weak(l) = guess {
        return (l, format!("lang: {l} guessed from the new text"));
    }
    if let Some(l) = lang::detect(command::bare_subject(&p.subject)) {
        return (l, format!("lang: {l} detected in the subject"));
    }
    (Lang::En, "lang: en by default".into())
}

/// The `>`-quoted lines of a plain-text body (the thread's earlier mails).
fn quoted_history(text: &str) -> String {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix('>'))
        .map(|l| l.trim_start_matches(['>', ' ']))
        .take(40)
        .collect::<Vec<_>>()
        .join("\n")
}

fn authorize(
    sender: &str,
    t: &Thread,
    dir: &dyn Directory,
    reasons: &mut Vec<String>,
) -> Result<bool, DirectoryError> {
    if t.orders.is_empty() {
        reasons.push("authorized: no order referenced".into());
        return Ok(false);
    }
    if !sender.contains('@') {
        reasons.push("not authorized: no sender address; no order details".into());
        return Ok(false);
    }
    let mut all = true;
    for o in &t.orders {
        let by_token = t.token_recipient.as_deref() == Some(sender);
        if by_token || dir.is_authorized(&o.so, sender)? {
            continue;
        }
        all = false;
        reasons.push(format!(
            "not authorized: {sender} is neither a recipient of SO {} nor granted access; no order details",
            o.so
        ));
    }
    Ok(all)
}

/// What proves the mail comes from its sender: our reply token or thread,
/// else (with verification configured) an aligned DKIM/SPF pass.
fn sender_proof(
    sender: &str,
    p: &Parsed,
    dir: &dyn Directory,
    verified: Option<&Verdicts>,
    reasons: &mut Vec<String>,
) -> Result<Proof, DirectoryError> {
    let mut proof = auth::sender_proof(sender, &p.recipients, &p.thread_ids, dir)?;
    if let Some(v) = verified {
        reasons.push(v.reason());
        let sender_domain = sender.rsplit_once('@').map_or("", |(_, d)| d);
        if !proof.holds()
            && let Some(domain) = v.aligned_pass()
            && domain.eq_ignore_ascii_case(sender_domain)
        {
            proof = Proof::Authenticated {
                domain: domain.to_string(),
            };
        }
    }
    Ok(proof)
}

/// Every order the mail names: those the store knows first (their count is
/// returned), then the ones it does not, kept as written.
fn orders_named(t: &Thread, reasons: &mut Vec<String>) -> (Vec<NamedOrder>, usize) {
    let mut orders: Vec<NamedOrder> = t
        .orders
        .iter()
        .map(|o| NamedOrder::So(o.so.clone()))
        .collect();
    let known_orders = orders.len();
    if !t.named.is_empty() {
        let named: Vec<String> = t.named.iter().map(ToString::to_string).collect();
        reasons.push(format!(
            "orders named but not in the store, kept as written: {}",
            named.join(", ")
        ));
        orders.extend(t.named.iter().cloned());
    }
    (orders, known_orders)
}

fn human(
    p: Parsed,
    dir: &dyn Directory,
    faq: &dyn FaqOracle,
    mut reasons: Vec<String>,
    verified: Option<&Verdicts>,
) -> Result<Decision, DirectoryError> {
    let sender = p.from.clone().unwrap_or_default();
    let new_text = extract::new_text(p.text.as_deref(), p.html.as_deref(), p.from_name.as_deref());
    let forwarded = forwarded_request(&p, dir, &mut reasons);
    // Orders the forwarded mail names are the forwarder's request too.
    let named_in = match &forwarded {
        Some(f) => std::borrow::Cow::Owned(format!("{new_text}\n{f}")),
        None => std::borrow::Cow::Borrowed(new_text.as_str()),
    };
    let t = thread(&p, &named_in, dir)?;
    let kind = if is_reply(&p, &t) {
        Kind::Reply
    } else {
        Kind::New
    };
    reasons.push(format!(
        "thread: {}",
        match t.method {
            Method::ReplyToken => "reply token",
            Method::MessageId => "In-Reply-To/References of our notification",
            Method::Text => "SO#/PO# in the subject or new text",
            Method::None => "no order found",
        }
    ));
    let (lang, why) = pick_lang(&new_text, &p, &t, dir, faq)?;
    reasons.push(why);
    let authorized = authorize(&sender, &t, dir, &mut reasons)?;
    let proof = sender_proof(&sender, &p, dir, verified, &mut reasons)?;
    let (orders, known_orders) = orders_named(&t, &mut reasons);
    let mut d = Decision {
        message_id: p.message_id.clone(),
        kind,
        // Nothing automatic goes to a sender who wrote about an order they
        // may not see; a person looks at it first.
        should_reply: authorized || t.orders.is_empty(),
        lang,
        orders,
        known_orders,
        authorized,
        route: Route::None,
        faq: None,
        new_text,
        reasons,
        action: Action::Ignore,
        sender: p.from.clone(),
        subject: p.subject.clone(),
        thread_method: t.method,
        thread_ids: p.thread_ids.clone(),
        bounce: None,
        auth: Some(proof),
        verified: verified.cloned(),
        view: None,
    };
    match command::find(&d.new_text, &p.subject) {
        Some(Ok(cmd)) => run_command(&mut d, cmd, &t, dir, &sender)?,
        Some(Err(NotAnOrder { command })) => {
            d.reasons.push(format!("command: {command}"));
            no_such_order(&mut d);
        }
        None => decide_question(&mut d, &p, &t, forwarded.as_deref(), faq),
    }
    if !sender.contains('@') {
        nobody_to_answer(&mut d, &p);
    }
    Ok(d)
}

/// A person's mail with no address to answer: nothing automatic can reach
/// them, so a person reads it (the ticket shows the name they gave).
fn nobody_to_answer(d: &mut Decision, p: &Parsed) {
    d.should_reply = false;
    d.sender = p.from_name.clone().or_else(|| p.from.clone());
    if !matches!(d.action, Action::Escalate { .. }) {
        escalate(
            d,
            Route::Team(Team::EdeliverySupport),
            "no sender address: nothing automatic can answer",
        );
    }
}

fn run_command(
    d: &mut Decision,
    cmd: MailCommand,
    t: &Thread,
    dir: &dyn Directory,
    sender: &str,
) -> Result<(), DirectoryError> {
    d.reasons.push(format!("command: {}", cmd.name()));
    type Rebuild = fn(Option<OrderId>) -> MailCommand;
    let (so, rebuild): (Option<OrderId>, Rebuild) = match &cmd {
        MailCommand::Unsubscribe => {
            act_if_proven(d, cmd);
            return Ok(());
        }
        MailCommand::Restore(so) => (so.clone(), MailCommand::Restore),
        MailCommand::Resend(so) => (so.clone(), MailCommand::Resend),
    };
    let target: Option<OrderRef> = match so {
        Some(so) => dir.order_exists(&so)?,
        None => t.orders.first().cloned(),
    };
    let Some(order) = target else {
        no_such_order(d);
        return Ok(());
    };
    let named = NamedOrder::So(order.so.clone());
    if !d.orders.contains(&named) {
        d.orders.insert(d.known_orders, named);
        d.known_orders += 1;
    }
    let allowed =
        t.token_recipient.as_deref() == Some(sender) || dir.is_authorized(&order.so, sender)?;
    if !allowed {
        d.authorized = false;
        d.reasons.push(format!(
            "command refused: {sender} may not act on SO {}",
            order.so
        ));
        escalate(
            d,
            Route::Team(Team::EdeliverySupport),
            "unauthorized command",
        );
        return Ok(());
    }
    d.authorized = true;
    act_if_proven(d, rebuild(Some(order.so)));
    Ok(())
}

/// A command about an order the store does not have: a person looks.
fn no_such_order(d: &mut Decision) {
    d.reasons.push("command: no such order; escalated".into());
    escalate(
        d,
        Route::Team(Team::EdeliverySupport),
        "command without a known order",
    );
}

/// Runs `cmd` when the mail proves its sender; otherwise the sender is
/// answered with how to do it safely.
fn act_if_proven(d: &mut Decision, cmd: MailCommand) {
    let proof = d.auth.clone().unwrap_or(Proof::Unproven);
    d.reasons.push(proof.reason());
    if proof.holds() {
        d.action = Action::Command(cmd);
    } else {
        d.reasons.push(format!(
            "command {} not run: answered with how to do it safely (the one-click link of a notification, or a reply to one)",
            cmd.name()
        ));
        d.action = Action::UnprovenCommand(cmd);
    }
}

fn escalate(d: &mut Decision, team: Route, rule: &str) {
    d.route = team;
    d.action = Action::Escalate { team };
    d.reasons.push(format!("escalate to {team} (rule: {rule})"));
}

/// The text of a mail the sender forwards, unless it is one of ours (a
/// notification forwarded to a colleague is history, not a request).
fn forwarded_request(p: &Parsed, dir: &dyn Directory, reasons: &mut Vec<String>) -> Option<String> {
    let f = extract::forwarded_text(p.text.as_deref(), p.html.as_deref(), &p.subject)?;
    if f.from.as_deref().is_some_and(|a| dir.is_own_address(a)) {
        reasons.push("forwarded message is one of ours: history, not a request".into());
        return None;
    }
    reasons.push(format!(
        "forwarded message read with the new text ({} words)",
        f.text.split_whitespace().count()
    ));
    Some(f.text)
}

fn decide_question(
    d: &mut Decision,
    p: &Parsed,
    t: &Thread,
    forwarded: Option<&str>,
    faq: &dyn FaqOracle,
) {
    let subject = command::bare_subject(&p.subject);
    // A new mail (not a reply or forward) with nothing under its subject
    // is written in the subject ("cancel order 123 please").
    let in_subject = forwarded.is_none()
        && d.new_text.trim().is_empty()
        && !subject.is_empty()
        && subject == p.subject.trim();
    if in_subject {
        d.reasons
            .push("no text under the subject: the subject is the message".into());
    }
    // A forwarded mail's request is the forwarder's: routed on both texts.
    let body = match forwarded {
        Some(f) => format!("{}\n\n{f}", d.new_text),
        None if in_subject => subject.to_string(),
        None => d.new_text.clone(),
    };
    let short = forwarded.is_none() && d.new_text.chars().count() < SHORT_QUESTION_CHARS;
    let question = if short && !in_subject {
        format!("{subject}\n{body}")
    } else {
        body.clone()
    };
    let holds: Vec<String> = t.orders.iter().flat_map(|o| o.open_holds.clone()).collect();
    let pids: Vec<String> = t.orders.iter().flat_map(|o| o.pids.clone()).collect();
    let routing_text = if in_subject {
        body.clone()
    } else {
        format!("{subject}\n{body}")
    };
    if body.trim().is_empty() {
        d.reasons.push("no new text written".into());
        let r = routing::route(&RoutingInput {
            text: &routing_text,
            holds: &holds,
            pids: &pids,
            faq_team: None,
            without_topic_words: false,
        });
        escalate(d, r.route, r.rule);
        return;
    }
    let message = route::Message {
        subject,
        text: &routing_text,
        question: &question,
        body: &body,
        forwarded,
        lang: d.lang,
        holds: &holds,
        pids: &pids,
        names_order: !t.orders.is_empty() || !t.named.is_empty(),
    };
    d.view = Some(message.view());
    let f = route::features(&message, faq);
    if let Some(hit) = f.faq.as_ref().filter(|h| h.question.is_some()) {
        d.faq = Some(FaqShown {
            id: hit.id.clone(),
            question: hit.question.clone(),
            confidence: hit.confidence,
        });
    }
    d.reasons.extend(route::explain(&f));
    let verdict = route::decide(&f, &routing_text);
    match verdict.answer {
        // A stranger writing about someone's order gets no automatic mail,
        // not even a generic answer: a person checks the sender first.
        Some(_) if d.stranger_to_order() => {
            d.should_reply = false;
            escalate(
                d,
                Route::Team(Team::EdeliverySupport),
                "sender not authorized for the order: a person checks first",
            );
        }
        Some(id) => {
            d.route = Route::Faq;
            d.reasons.push(format!(
                "answer with FAQ entry {id} (rule: {})",
                verdict.rule
            ));
            d.action = Action::Answer { id };
        }
        None => escalate(d, verdict.route, &verdict.rule),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::MemWorld;

    /// A command naming a number too short for an SO# matches no order:
    /// escalated like a command about an order the store does not have,
    /// never run on the threaded order instead.
    #[test]
    fn a_command_naming_no_order_number_is_escalated() {
        let w = MemWorld::default();
        for body in ["RESEND 1234567", "RESEND 12345678"] {
            let raw = format!(
                "From: ana@partner.example.net\r\nTo: support@edesk.example.com\r\nSubject: hello\r\nMessage-ID: <c1@partner.example.net>\r\n\r\n{body}\r\n"
            );
            let d = analyze(raw.as_bytes(), &w, &w).unwrap();
            let team = Route::Team(Team::EdeliverySupport);
            assert_eq!(d.action, Action::Escalate { team }, "{body}");
            let at = d.reasons.iter().position(|r| r == "command: resend");
            assert!(at.is_some(), "{body}: {:?}", d.reasons);
            assert_eq!(
                d.reasons.get(at.unwrap_or(0) + 1).map(String::as_str),
                Some("command: no such order; escalated"),
                "{body}"
            );
            assert!(d.orders.is_empty(), "{body}: {:?}", d.orders);
        }
    }

    /// A new mail typed in its subject is read like a message; a reply
    /// with nothing new is not.
    #[test]
    fn a_request_typed_in_the_subject_is_the_message() {
        let w = MemWorld::default();
        let mail = |subject: &str| {
            format!(
                "From: ana@partner.example.net\r\nTo: support@edesk.example.com\r\nSubject: {subject}\r\nMessage-ID: <s1@partner.example.net>\r\n\r\n\r\n"
            )
        };
        let d = analyze(
            mail("cancel order 74000203 please, typed it wrong").as_bytes(),
            &w,
            &w,
        )
        .unwrap();
        let said = |d: &Decision, r: &str| d.reasons.iter().any(|x| x == r);
        assert!(
            said(&d, "no text under the subject: the subject is the message"),
            "{:?}",
            d.reasons
        );
        assert!(!said(&d, "no new text written"), "{:?}", d.reasons);
        let team = Route::Team(Team::CustomerService);
        assert_eq!(d.action, Action::Escalate { team }, "{:?}", d.reasons);
        assert!(d.orders.iter().any(|o| *o == "74000203"), "{:?}", d.orders);

        let d = analyze(mail("RE: cancel order 74000203 please").as_bytes(), &w, &w).unwrap();
        assert!(said(&d, "no new text written"), "{:?}", d.reasons);
    }
}
