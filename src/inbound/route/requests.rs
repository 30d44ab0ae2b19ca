//! How many separate requests one message makes, found without relying on
//! the FAQ being sure of any of them.
//!
//! The text is cut into segments: sentences, list items, clauses after
//! "also" / "par ailleurs". A segment is a *request* when it asks (a
//! question), asks us to act ("could you", "merci de"), reports a problem
//! ("won't start", "ne démarre pas", "on hold") or is an item of a list;
//! anything else is context ("this order came through fine") or a step
//! already taken ("I cleared the cache").
//!
//! Each request gets a topic: the person rule of the table it matches, the
//! FAQ entry it asks about when the FAQ is confident, else the FAQ's best
//! guess at any confidence. A guess is trusted only where the customer
//! laid the mail out as several requests (a list, an ordinal such as
//! "second," or "separately", or an announcement such as "two things",
//! "plusieurs demandes"): there, the FAQ being unsure of "who is the admin
//! of our account?" must not hide it. A follow-up that refers back to the
//! request before it ("can you fix it?", "pouvez-vous la corriger ?")
//! continues that request.

use regex::Regex;

use super::{Cue, Cues, Message, Text, content_words};
use crate::desk::routing::{self, Route};
use crate::domain::Lang;
use crate::inbound::ports::FaqOracle;

/// At most this many segments are asked to the FAQ on their own.
const MAX_SEGMENTS: usize = 8;
/// A segment with fewer content words is context or a follow-up ("What
/// does that mean?", "Is the PAK in there?"), not a request.
const MIN_SEGMENT_CONTENT_WORDS: usize = 3;
/// A person rule is specific enough to name a request in fewer words
/// ("Can this order be expedited?").
const MIN_RULE_CONTENT_WORDS: usize = 2;
/// Characters of a request quoted in `mail inspect`'s reasons.
const QUOTE_CHARS: usize = 60;

/// Where one message's text stops being one request and starts another:
/// sentence ends, list items (numbered, lettered, bulleted) and the
/// discourse words that open a new request mid-sentence. "2." numbers an
/// item only at the start of a line: mid-line it ends a sentence ("we
/// need 5, not 3. Can you …").
const SEGMENT_BREAK: &str = concat!(
    r"(?im)[?!;:\n]+|\.\s+|,\s+(and|et)\s|(^|\s)\(?\d{1,2}[)/]\s|^\s*\d{1,2}\.\s|(^|\s)\(?[a-h]\)\s|^\s*[-*•–]\s+|",
    r"\b(also|additionally|separately|another (question|thing)|problem (one|two|three)|",
    r"aussi|par ailleurs|de plus|d'autre part|autre question)\b"
);

/// A list item: what the break before a segment looks like when the
/// customer enumerates ("1.", "2)", "(b)", "- ", "* ").
const LIST_ITEM: &str = r"^\s*(\(?\d{1,2}[)./]|\(?[a-h]\)|[-*•–])\s*$";

/// Words that open a new, separate request (checked on the break and the
/// start of the segment): ordinals and "separately", EN and FR.
const SEPARATE: &str = concat!(
    r"(?i)^\W*((and|et|but|mais)\W+)?(first(ly)?|second(ly)?|third(ly)?|finally|lastly|separately|unrelated|",
    r"completely separate|on a (different|separate|another) (note|matter|order)|another (question|thing|issue|point|request)|",
    r"problem (one|two|three|\d)|(second|third|next|last) (question|thing|issue|point|problem)|",
    r"premi[èe]rement|deuxi[èe]mement|troisi[èe]mement|ensuite|enfin|par ailleurs|d'autre part|sans rapport|",
    r"autre (chose|question|point|demande|probl[èe]me|sujet)|(premier|deuxi[èe]me|second|troisi[èe]me|dernier) (probl[èe]me|point|sujet|demande)|",
    r"(premi[èe]re|deuxi[èe]me|seconde|troisi[èe]me|derni[èe]re) (question|chose|demande))\b"
);

/// Words that add a request to the one before ("also", "aussi").
const ALSO: &str = concat!(
    r"(?i)^\W*((and|et)\W+)?(also|additionally|in addition|besides|on top of that|as well|aussi|de plus|en plus|[ée]galement|en outre)\b|",
    r"^\W*(and|et)\W*$"
);

/// The customer announces several requests: "two things", "a few
/// unrelated questions", "plusieurs demandes", "deux choses", "questions
/// diverses", or says they are unrelated.
const ANNOUNCE: &str = concat!(
    r"(?i)\b(two|three|four|five|several|multiple|various|a few|a couple of|couple of|[2-9])\s+",
    r"((more|other|different|separate|unrelated|quick|small|little|distinct)\s+)?(things|questions|issues|problems|requests|points|matters|topics)\b|",
    r"\b(deux|trois|quatre|cinq|plusieurs|quelques|divers|diverses|[2-9])\s+((autres|petites|petits|diff[ée]rentes|diff[ée]rents)\s+)?",
    r"(choses|questions|demandes|probl[èe]mes|points|soucis|sujets)\b|",
    r"\b(questions|demandes|points|soucis) (diverses|divers|multiples)\b|",
    r"\b(unrelated|completely separate|sans rapport|rien [àa] voir|aucun rapport)\b|",
    // The things left unnamed before a colon: "two more:", "deux autres :".
    r"\b(two|three|four|a few|several|couple of|deux|trois|quatre|quelques|plusieurs)\s+(more|others|autres)\s*:"
);

/// A problem report in one segment: the message-level problem cue, a
/// status ("stuck", "on hold"), or a negated verb ("won't start", "ne
/// démarre pas", "je ne reçois plus").
const NEGATED: &str = concat!(
    r"(?i)\b(won'?t|will not|doesn'?t|does not|didn'?t|did not|can'?t|cannot|can not|couldn'?t|isn'?t|aren'?t|wasn'?t|",
    r"hasn'?t|haven'?t|no longer|nothing|unable|n(e\s|')\s*(\w+\s+){0,2}?(pas|plus|jamais|rien)|impossible|aucune?)\b"
);

/// A state that has lasted ("for ten days", "since last Tuesday",
/// "depuis deux semaines"): a complaint about waiting, not context.
const WAITING: &str = concat!(
    r"(?i)\b(for|since) (over |more than |about |almost |nearly |the (last|past) )?(\d+|one|two|three|four|five|six|seven|eight|nine|ten|several|a few|last|yesterday|a (day|week|month|while))\b|",
    r"\bdepuis (plus de |pr[èe]s de |environ )?(\d+|un|une|deux|trois|quatre|cinq|dix|plusieurs|quelques|hier|lundi|mardi|mercredi|jeudi|vendredi|la semaine|le mois|longtemps)\b"
);

/// A need or wish stated without a request verb ("need SO 123 expedited
/// asap", "we'd like to return …", "nous voudrions …").
const NEED: &str = r"(?i)\b(needs?|needed|want(s|ed)?|'d like|would like|besoin|voudrions|voudrais|souhait\w*|faut)\b";

/// The customer forwards someone else's request (a customer's, a
/// colleague's): that request is one of its own, whatever else is asked.
/// Forwarding *to* someone ("can I forward it to my customer's mail?") is
/// a question, not a forward.
const FORWARDS: &str = concat!(
    r"(?i)\bsee (my|our|the) (customer|client|colleague|user|team|partner)s?('s?)? (mail|e-?mail|message|request|question)s?\b|",
    r"\bforward(ing|ed)?\b.{0,30}\bfrom (our|my|the|a) (customer|client|colleague|user|team|partner)s?\b|",
    r"\btransf[èe]r\w*\b.{0,40}\b(demande|message|mail|courriel|question)s? (de|du|d'un|d'une) (notre |mon |ma |nos |un |une )?(client|coll[èe]gue|utilisateur|[ée]quipe|partenaire)"
);

/// A follow-up that points back at the request before it: a pronoun
/// closing the segment ("can you fix it?", "what is going on with
/// those?") or a French object pronoun before an infinitive ("pouvez-vous
/// la corriger", "pour le renouveler").
const REFERS_BACK: &str = concat!(
    r"(?i)\b(it|them|those|these|this one|that one)\W*$|",
    r"\b(vous|de|comment|faut-il|peut-on|puis-je|pour)\s+(le|la|les|l')\s*\w+(er|ir|re)\b"
);

/// The request detector's own cues, next to the route's.
pub(super) struct SegmentCues {
    breaks: Regex,
    list_item: Regex,
    separate: Cue,
    also: Cue,
    announce: Cue,
    negated: Cue,
    need: Cue,
    waiting: Cue,
    forwards: Cue,
    refers_back: Cue,
}

impl SegmentCues {
    pub(super) fn new() -> Option<SegmentCues> {
        Some(SegmentCues {
            breaks: Regex::new(SEGMENT_BREAK).ok()?,
            list_item: Regex::new(LIST_ITEM).ok()?,
            separate: Cue::new(SEPARATE)?,
            also: Cue::new(ALSO)?,
            announce: Cue::new(ANNOUNCE)?,
            negated: Cue::new(NEGATED)?,
            need: Cue::new(NEED)?,
            waiting: Cue::new(WAITING)?,
            forwards: Cue::new(FORWARDS)?,
            refers_back: Cue::new(REFERS_BACK)?,
        })
    }
}

/// How a segment is set off from the text before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Mark {
    /// Nothing: a next sentence.
    #[default]
    None,
    /// "also", "aussi": added to what came before.
    Also,
    /// A list item, an ordinal ("second,"), "separately", "par ailleurs":
    /// a request of its own.
    Separate,
}

/// Why a segment is a request (the first that applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A question.
    Asks,
    /// Asks us to act, or states a need ("could you", "we need").
    Requests,
    /// Reports a problem.
    Reports,
    /// An item of a list or a clause opened by "also", whatever its
    /// form, unless it tells a step already taken.
    Item,
}

impl Form {
    fn as_str(self) -> &'static str {
        match self {
            Form::Asks => "asks",
            Form::Requests => "requests",
            Form::Reports => "reports a problem",
            Form::Item => "list item",
        }
    }
}

/// A request's topic and, for a rule, its team.
type Topic = (String, Option<Route>);

/// One request found in a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `rule:NAME` or `faq:ID`.
    pub topic: String,
    /// The team of the rule, for a `rule:` topic.
    pub team: Option<Route>,
    /// The topic is a person rule or a confident FAQ answer, not a guess.
    pub sure: bool,
    /// Why the segment is a request.
    pub form: Form,
    /// How it is set off from what came before.
    pub mark: Mark,
    /// The segment, shortened, for the reasons.
    pub quote: String,
    /// It is in the mail the sender forwards, not in their own text.
    pub forwarded: bool,
}

/// The requests of a message and whether it is laid out as several.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requests {
    /// Every request, in order.
    pub found: Vec<Request>,
    /// The words announcing several requests ("two things"), if any.
    pub announced: Option<String>,
    /// The subject and every segment that is not mere context: where a
    /// phrase of the rule table names a person's work (`None`: not cut).
    pub asked: Option<String>,
    /// Requests found from here on are in the forwarded mail.
    in_forwarded: bool,
}

impl Requests {
    fn add_asked(&mut self, segment: &str) {
        if let Some(a) = &mut self.asked {
            a.push('\n');
            a.push_str(segment);
        }
    }

    fn push(&mut self, topic: Topic, sure: bool, form: Form, mark: Mark, segment: &str) {
        self.found.push(Request {
            topic: topic.0,
            team: topic.1,
            sure,
            form,
            mark,
            quote: quote(segment),
            forwarded: self.in_forwarded,
        });
    }

    /// The customer laid the mail out as several requests: announced
    /// them, or set one off as a list item or with "separately".
    pub fn laid_out(&self) -> bool {
        self.announced.is_some() || self.found.iter().any(|r| r.mark == Mark::Separate)
    }

    /// The forwarded mail (or the sender's own text) is laid out as several
    /// requests by itself; an announcement counts for the sender's text.
    fn part_laid_out(&self, forwarded: bool) -> bool {
        (!forwarded && self.announced.is_some())
            || self
                .found
                .iter()
                .any(|r| r.forwarded == forwarded && r.mark == Mark::Separate)
    }

    /// The distinct topics that count: sure ones always, guessed ones
    /// only in a text laid out as several requests. A forwarded mail none
    /// of whose requests counts is the mail's one request ("forwarded")
    /// when the sender's own text asks nothing that counts; when it does,
    /// that note is what the sender wants of the forwarded mail ("the
    /// customer chases, can you release it?"), not a second request.
    pub fn distinct(&self) -> Vec<String> {
        self.counted(true)
    }

    /// The sure topics alone: in a mail about a product with its own team,
    /// what the FAQ only guesses at is the product's matter (its term, its
    /// users, its versions), which the FAQ does not cover, not another
    /// request. A forwarded mail is then the product's matter too.
    pub fn distinct_sure(&self) -> Vec<String> {
        self.counted(false)
    }

    fn counted(&self, guesses: bool) -> Vec<String> {
        let own = guesses && self.part_laid_out(false);
        let fwd = guesses && self.part_laid_out(true);
        let counts = |r: &&Request| r.sure || if r.forwarded { fwd } else { own };
        let mut out: Vec<String> = Vec::new();
        let mut teams: Vec<Route> = Vec::new();
        for r in self.found.iter().filter(counts) {
            // Two rules of one team ("registered, the license is wrong",
            // "can it be moved?") are that team's one request.
            if let Some(team) = r.team {
                if teams.contains(&team) {
                    continue;
                }
                teams.push(team);
            }
            if !out.contains(&r.topic) {
                out.push(r.topic.clone());
            }
        }
        if guesses && out.is_empty() && self.found.iter().any(|r| r.forwarded) {
            out.push("forwarded".into());
        }
        merge_hold_release(&mut out);
        out
    }

    /// One line per request, for `mail inspect`.
    pub fn explain(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(a) = &self.announced {
            out.push(format!("feature several requests announced: {a:?}"));
        }
        for (i, r) in self.found.iter().enumerate() {
            let topic = if r.topic.starts_with("text:") {
                "none (no FAQ entry near it)".to_string()
            } else {
                format!("{}{}", r.topic, if r.sure { "" } else { " guessed" })
            };
            out.push(format!(
                "feature request {}: {:?} ({}{}{}; topic {topic})",
                i + 1,
                r.quote,
                r.form.as_str(),
                match r.mark {
                    Mark::None => "",
                    Mark::Also => ", added with also",
                    Mark::Separate => ", set apart",
                },
                if r.forwarded {
                    ", in the forwarded mail"
                } else {
                    ""
                },
            ));
        }
        out
    }
}

/// Asking to release a hold and naming the hold ("the export hold …,
/// please release it") are one request: the hold's team releases it, as
/// the rule table's own "hold release" row defers to the order's hold.
fn merge_hold_release(topics: &mut Vec<String>) {
    const HOLDS: [&str; 2] = ["rule:export hold", "rule:new product hold"];
    if topics.iter().any(|t| HOLDS.contains(&t.as_str())) {
        topics.retain(|t| t != "rule:hold release");
    }
}

/// One sentence or list item of a message, with the breaks around it.
struct Segment<'a> {
    text: &'a str,
    /// The break before it: punctuation, a list marker, "also" …
    before: &'a str,
    /// The break after it (`"? "`, `". "`, a newline …).
    end: &'a str,
}

/// Finds the requests of `body` (`text`, subject included, for the
/// announcement), asking the FAQ once per request segment.
pub(super) fn detect(c: &Cues, m: &Message<'_>, faq: &dyn FaqOracle) -> Requests {
    let (text, body, lang) = (m.text, m.body, m.lang);
    let s = &c.segments;
    let subject = text.strip_suffix(body).unwrap_or_default();
    let mut out = Requests {
        found: Vec::new(),
        announced: s.announce.find(&Text::new(text)),
        asked: Some(subject.trim().to_string()),
        in_forwarded: false,
    };
    // A forwarded mail is someone else's: its requests are weighed apart
    // from the forwarder's own (see `Requests::distinct`).
    let own = m
        .forwarded
        .and_then(|f| body.strip_suffix(f))
        .unwrap_or(body);
    let parts = [(own, false), (m.forwarded.unwrap_or_default(), true)];
    let mut scan = Scan {
        lang,
        faq,
        asked_faq: 0,
        forwarded_read: m.forwarded.is_some(),
    };
    for (part, forwarded) in parts {
        let part = super::without_abbreviation_dots(part);
        out.in_forwarded = forwarded;
        detect_in(c, &part, &mut scan, &mut out);
    }
    out
}

/// What [`detect_in`] carries from one part of a message to the next.
struct Scan<'f> {
    lang: Lang,
    faq: &'f dyn FaqOracle,
    /// Segments asked to the FAQ so far.
    asked_faq: usize,
    /// The mail the sender forwards is read as a part of its own.
    forwarded_read: bool,
}

/// The requests of one part of a message: the sender's own text, or the
/// mail they forward.
fn detect_in(c: &Cues, body: &str, scan: &mut Scan<'_>, out: &mut Requests) {
    let s = &c.segments;
    let mut pending = Mark::None;
    for seg in segments(&s.breaks, body) {
        let t = Text::new(seg.text);
        let mark = pending.max(mark(s, &seg, &t));
        let rule = routing::person_rule(seg.text);
        if content_words(seg.text) < min_words(rule) {
            // A lone "Second, unrelated:" marks what follows; a short
            // "Please cancel it." is not context either.
            pending = mark;
            out.add_asked(seg.text);
            continue;
        }
        pending = Mark::None;
        if s.forwards.is_match(&t) {
            // "See my customer's mail below": when the forwarded mail is
            // read with the new text, its own requests count; when it was
            // cut, it asks something of its own.
            out.add_asked(seg.text);
            if scan.forwarded_read {
                continue;
            }
            let topic = ("forwarded".into(), None);
            out.push(topic, true, Form::Requests, mark, seg.text);
            continue;
        }
        let Some(form) = form(c, &seg, &t, mark) else {
            continue;
        };
        out.add_asked(seg.text);
        if mark != Mark::Separate && !out.found.is_empty() && s.refers_back.is_match(&t) {
            continue;
        }
        let (topic, sure) = match rule {
            Some(r) => ((format!("rule:{}", r.name), Some(r.route)), true),
            None if scan.asked_faq >= MAX_SEGMENTS => continue,
            None => {
                scan.asked_faq += 1;
                let asks = asks_faq(&seg, form, mark, out.announced.is_some());
                faq_topic(scan.faq, seg.text, scan.lang, asks, out.found.len())
            }
        };
        out.push(topic, sure, form, mark, seg.text);
    }
}

/// Content words a segment needs to be a request: fewer when a person
/// rule names it ("Can this order be expedited?").
fn min_words(rule: Option<&routing::Rule>) -> usize {
    if rule.is_some() {
        MIN_RULE_CONTENT_WORDS
    } else {
        MIN_SEGMENT_CONTENT_WORDS
    }
}

/// Whether the FAQ is asked `seg` as a question it may answer with
/// confidence: a question, a clause opened by a word ("also", "2)") or an
/// item after "three things:". A statement the FAQ happens to match ("we
/// want to keep the first order") is a guess at best, and a colon opens a
/// list only after an announcement: elsewhere it explains ("I did as the
/// FAQ says: …").
fn asks_faq(seg: &Segment<'_>, form: Form, mark: Mark, announced: bool) -> bool {
    form == Form::Asks
        || mark != Mark::None
        || (seg.before.contains(':') && announced)
        || seg.before.chars().any(char::is_alphanumeric)
}

/// The FAQ's entry for a segment, sure when the FAQ is confident and
/// `asks` (see [`asks_faq`]), else a guess; `text:N` when nothing matches.
fn faq_topic(
    faq: &dyn FaqOracle,
    segment: &str,
    lang: Lang,
    asks: bool,
    n: usize,
) -> (Topic, bool) {
    let hit = faq.ask(segment, lang);
    let sure = hit.answered && asks;
    // An entry that is itself about a person's work ("can I ask to have
    // holds released?") is that rule's topic; one a specialist team owns
    // counts with that team's rules (see `Requests::distinct`).
    if let Some(rule) = hit.question.as_deref().and_then(routing::person_rule) {
        return ((format!("rule:{}", rule.name), Some(rule.route)), sure);
    }
    let team = hit
        .team
        .filter(|t| *t != Route::Team(crate::domain::Team::EdeliverySupport));
    match hit.id {
        Some(id) => ((format!("faq:{id}"), team), sure),
        None => ((format!("text:{}", n + 1), None), false),
    }
}

/// How `seg` is set off: a list item or a separating word is
/// [`Mark::Separate`], "also" is [`Mark::Also`].
fn mark(s: &SegmentCues, seg: &Segment<'_>, t: &Text<'_>) -> Mark {
    let before = Text::new(seg.before);
    if s.list_item.is_match(seg.before) || s.separate.is_match(&before) || s.separate.is_match(t) {
        Mark::Separate
    } else if s.also.is_match(&before) || s.also.is_match(t) {
        Mark::Also
    } else {
        Mark::None
    }
}

/// Why `seg` is a request, or `None` for context and steps taken.
fn form(c: &Cues, seg: &Segment<'_>, t: &Text<'_>, mark: Mark) -> Option<Form> {
    let asks = seg.end.contains('?') || c.question.is_match(t);
    let requests = c.request.is_match(t) || c.action.is_match(t) || c.segments.need.is_match(t);
    let reports = c.problem.is_match(t)
        || c.still.is_match(t)
        || c.status.is_match(t)
        || c.segments.negated.is_match(t)
        || c.segments.waiting.is_match(t);
    if asks {
        Some(Form::Asks)
    } else if requests {
        Some(Form::Requests)
    } else if reports {
        Some(Form::Reports)
    } else if mark != Mark::None && !c.attempt.is_match(t) {
        // An item of a list that is not a step already taken ("cleared
        // the cache") is raised as such ("add a new user …").
        Some(Form::Item)
    } else if seg.before.contains(':') && !c.attempt.is_match(t) {
        // After "three things:", the items are requests.
        Some(Form::Item)
    } else {
        None
    }
}

/// The first words of a segment, for the reasons.
fn quote(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(QUOTE_CHARS) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

/// A "2)" that closes a parenthesis opened earlier on its line ("(line 2)
/// is missing") is not an enumeration.
fn closes_a_parenthesis(body: &str, at: usize, brk: &str) -> bool {
    let marker = brk.trim();
    if !marker.ends_with(')') || marker.starts_with('(') {
        return false;
    }
    let line = body[..at].rsplit('\n').next().unwrap_or_default();
    line.matches('(').count() > line.matches(')').count()
}

/// `body` cut at `breaks`, keeping the break before and after each piece.
fn segments<'a>(breaks: &Regex, body: &'a str) -> Vec<Segment<'a>> {
    let mut out = Vec::new();
    let (mut start, mut before) = (0, "");
    for m in breaks.find_iter(body) {
        if closes_a_parenthesis(body, m.start(), m.as_str()) {
            continue;
        }
        out.push(Segment {
            text: body[start..m.start()].trim(),
            before,
            end: m.as_str(),
        });
        start = m.end();
        before = m.as_str();
    }
    out.push(Segment {
        text: body[start..].trim(),
        before,
        end: "",
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Team;
    use crate::inbound::ports::{FaqHit, FaqText};

    /// An FAQ that is never sure, and guesses an entry named after the
    /// segment's longest word: distinct words, distinct guesses.
    struct Unsure;
    impl FaqOracle for Unsure {
        fn ask(&self, q: &str, _: Lang) -> FaqHit {
            let id = q
                .split(|c: char| !c.is_alphanumeric())
                .max_by_key(|w| w.len())
                .unwrap_or_default()
                .to_lowercase();
            FaqHit {
                answered: false,
                id: Some(id),
                question: None,
                confidence: 0.3,
                needs_person: false,
                team: None,
                referral: false,
                runners_up: Vec::new(),
            }
        }
        fn entry(&self, _: &str, _: Lang) -> Option<FaqText> {
            None
        }
    }

    /// An FAQ sure of every segment, with the entry, its question and its
    /// team chosen by a word of the segment.
    struct Teams;
    impl FaqOracle for Teams {
        fn ask(&self, q: &str, _: Lang) -> FaqHit {
            let (id, question, team) = if q.contains("holds") {
                (
                    "holds-entry",
                    "Can I ask to have holds released on my orders?",
                    None,
                )
            } else if q.contains("licence") || q.contains("license") {
                (
                    "license-entry",
                    "My license did not arrive",
                    Some(Team::Licensing),
                )
            } else {
                (
                    "download-entry",
                    "How does the download manager work?",
                    Some(Team::EdeliverySupport),
                )
            };
            FaqHit {
                answered: true,
                id: Some(id.into()),
                question: Some(question.into()),
                confidence: 0.9,
                needs_person: false,
                team: team.map(Route::Team),
                referral: false,
                runners_up: Vec::new(),
            }
        }
        fn entry(&self, _: &str, _: Lang) -> Option<FaqText> {
            None
        }
    }

    #[test]
    fn a_rule_and_an_entry_of_the_same_team_or_subject_are_one_request() {
        let c = super::super::cues().unwrap();
        let count = |body: &str| detect(c, &Message::plain(body), &Teams).distinct();
        // Licensing's rule and licensing's entry.
        let fr = "Nous avons enregistré le PAK, mais la licence générée est incomplète. \
                  Pouvez-vous nous fournir la licence complète ?";
        assert_eq!(count(fr).len(), 1, "{:?}", count(fr));
        // A new product hold and the entry about releasing holds.
        let en = "We ordered L-ISE-PLS-3Y-S1 and it sits on a new product hold. \
                  Can you check why the holds are not released?";
        assert_eq!(count(en).len(), 1, "{:?}", count(en));
        // eDelivery support's entries are not merged: two of its questions
        // in one mail are still two requests.
        let two = "Two questions:\n1) how does the download manager work on Linux?\n\
                   2) why was my license not attached to the mail?";
        assert_eq!(count(two).len(), 2, "{:?}", count(two));
    }

    fn distinct(body: &str) -> Vec<String> {
        let c = super::super::cues().unwrap();
        detect(c, &Message::plain(body), &Unsure).distinct()
    }

    #[test]
    fn a_listed_request_counts_even_when_the_faq_is_unsure_of_it() {
        let two = "Two things:\n- please cancel SO 88199210, it was ordered twice\n\
                   - who is the administrator of our company account?";
        assert_eq!(distinct(two).len(), 2, "{:?}", distinct(two));
        let fr = "Bonjour,\n1) merci d'annuler la commande 64710020 (doublon)\n\
                  2) pouvez-vous ajouter ma collègue à notre compte entreprise ?";
        assert_eq!(distinct(fr).len(), 2, "{:?}", distinct(fr));
    }

    #[test]
    fn a_number_closing_a_parenthesis_is_not_a_list_item() {
        let c = super::super::cues().unwrap();
        let segs = |b: &str| -> Vec<String> {
            segments(&c.segments.breaks, b)
                .into_iter()
                .map(|s| s.text.to_string())
                .collect()
        };
        let one = "La fonctionnalité commandée (ligne 2) n'y figure pas";
        assert_eq!(segs(one), [one]);
        // A real enumeration still cuts.
        assert_eq!(
            segs("1) cancel the order 2) add a user").len(),
            3,
            "{:?}",
            segs("1) cancel the order 2) add a user")
        );
        assert_eq!(
            segs("Two things (see below): 1) cancel it 2) add a user").len(),
            4
        );
    }

    #[test]
    fn guesses_do_not_count_in_a_mail_not_laid_out_as_several() {
        // One problem told in several sentences: the guesses differ, but
        // nothing sets a second request apart.
        let one = "The download manager fails to launch. I already enabled Java \
                   and also tried the non-Java download, and both fail with a timeout.";
        assert!(distinct(one).is_empty(), "{:?}", distinct(one));
    }

    #[test]
    fn a_follow_up_that_refers_back_is_the_same_request() {
        let c = super::super::cues().unwrap();
        let body = "Our order 61200457 has been on export hold for two weeks. \
                    What documents do you need to release it?";
        let r = detect(c, &Message::plain(body), &Unsure);
        assert_eq!(r.found.len(), 1, "{:?}", r.found);
    }

    #[test]
    fn a_forwarded_request_and_one_of_our_own_are_two() {
        let body = "See my customer's mail below. On our side, we would like \
                    to return the unused licenses from SO 64640220, please.";
        assert_eq!(distinct(body).len(), 2, "{:?}", distinct(body));
        // Forwarding *to* someone is a question about forwarding.
        let c = super::super::cues().unwrap();
        let q = "Can I forward the notification to my customer's email address?";
        let r = detect(c, &Message::plain(q), &Unsure);
        assert!(r.found.iter().all(|r| r.topic != "forwarded"));
    }

    fn forwarded(own: &str, fwd: &str) -> Requests {
        let c = super::super::cues().unwrap();
        let body = format!("{own}\n\n{fwd}");
        let m = Message {
            forwarded: Some(fwd),
            ..Message::plain(&body)
        };
        detect(c, &m, &Unsure)
    }

    #[test]
    fn a_forwarded_mail_is_one_request_unless_it_lists_several() {
        // Its sentences are guesses: together, one request of someone else.
        let r = forwarded(
            "Forwarding from our customer below. Can you help?",
            "We registered the PAK and converted it. The account shows 2 of the 5 licenses, \
             and they landed in the default virtual account.",
        );
        assert_eq!(r.distinct(), vec!["forwarded".to_string()]);
        assert!(r.found.iter().all(|q| q.forwarded), "{:?}", r.found);
        // A list in the forwarded mail is several requests.
        let r = forwarded(
            "Je vous transfère les questions de notre client.",
            "1. Comment renouveler notre abonnement ?\n\
             2. Pourquoi la commande reste-t-elle bloquée dans CCW ?\n\
             3. Où trouver la moitié des licences qui manque ?",
        );
        assert!(r.distinct().len() >= 2, "{:?}", r.distinct());
        // The forwarder's note that asks something is what they want of
        // the forwarded mail, not a second request…
        let r = forwarded(
            "Our customer chases again, can you expedite this order?",
            "Hi Owen, still nothing from Cisco for the router software. Any date?",
        );
        assert_eq!(r.distinct(), vec!["rule:order action".to_string()]);
        // …but a request the forwarded mail makes surely is one of its own.
        let r = forwarded(
            "On our side we'd like to return the unused licenses from SO 64640220.",
            "Hi Owen, we registered the PAK and the license we got is wrong.",
        );
        assert_eq!(r.distinct().len(), 2, "{:?}", r.found);
    }

    #[test]
    fn a_count_of_things_is_not_an_announcement() {
        let c = super::super::cues().unwrap();
        let r = detect(
            c,
            &Message::plain("Two items in my download basket have a red icon. What does it mean?"),
            &Unsure,
        );
        assert_eq!(r.announced, None);
        let r = detect(
            c,
            &Message::plain(
                "Two unrelated questions. First, the link fails. Second, who renews UCSS?",
            ),
            &Unsure,
        );
        assert!(r.announced.is_some());
        // Left unnamed before a colon, they are announced too; "two more
        // licences" counts things.
        let announced = |body: &str| detect(c, &Message::plain(body), &Unsure).announced;
        assert!(
            announced("Thanks for the login. Two more: (a) the PDFs, (b) the ports.").is_some()
        );
        assert!(announced("Merci. Deux autres : la facture et le lien.").is_some());
        assert_eq!(announced("We need two more licences for the lab."), None);
    }

    #[test]
    fn context_is_not_asked() {
        let c = super::super::cues().unwrap();
        let body = "In CCW I can see an export compliance hold on our new order. \
                    Is something wrong with the order, or is that normal?";
        let r = detect(c, &Message::plain(body), &Unsure);
        let asked = r.asked.unwrap_or_default();
        assert!(!asked.contains("export compliance"), "{asked}");
        assert!(asked.contains("is that normal"), "{asked}");
    }
}
