//! FAQ answer or person, and which person: the one place where the
//! features of a message are combined into a route.
//!
//! Features (each shown in `mail inspect`'s reasons):
//! - the FAQ's best match, its calibrated confidence, and the entry's
//!   flags: `needs_person` (the topic's action needs a person) and
//!   *referral* (the answer only says whom to contact);
//! - *tried*: the customer already did what the FAQ says (an attempt cue)
//!   and it still fails (a failure-after-steps cue), EN and FR;
//! - a request for action ("please", "can you", "merci de"…), which
//!   separates "how does X work" from "do X for me";
//! - the requests ([`requests`]): sentences and list items that ask,
//!   request, report a problem or are listed, each with a topic from the
//!   rule table or the FAQ (a guess at low confidence, trusted where the
//!   customer lays the mail out as several requests), whatever the FAQ
//!   makes of the whole text;
//! - the order's open holds with a status question ("nothing arrived");
//! - the team rule table (`desk::routing`), whose rules of weight
//!   `Person` (booking, cancellation, change, early-ship change,
//!   expedite, order stuck before eDelivery, RMA, license trouble or
//!   transfer, UCSS, CUWL, new product and export holds) need a person
//!   even when an FAQ entry mentions the topic, when the customer asks or
//!   reports it rather than mentions it in passing, while its topic words
//!   ("license", "export") never turn an answer into a ticket.
//!
//! The precedence is written once, in [`decide`]; it is pure.

use std::sync::OnceLock;

use regex::Regex;

pub mod learned;
pub mod requests;

use super::ports::{FaqHit, FaqOracle};
use crate::desk::routing::{self, Route, RoutingInput, Weight};
use crate::domain::{Lang, Team, fold_ascii, fold_pattern};

/// An answer this short that says whom to contact is a referral.
const REFERRAL_MAX_WORDS: usize = 30;

/// Attempt cues: the customer did something already.
const ATTEMPT: &str = concat!(
    r"(?i)\b(already|again|followed|(as|like|as per) (the|your) (faq|answer|reply|instructions?|documentation|article|guide|automatic answer)|",
    r"(as|like) (described|explained|suggested|indicated|shown|recommended|advised) (in|by|on) (the|your) (faq|answer|reply|instructions?|documentation|article|guide|page|site|website)|",
    r"before (writing|contacting|reaching out)|(a|one more) (second|third|another) time|(second|third|several|multiple|many) (times|attempts)|(wrote|written|emailed|called|phoned) (to )?(the|them|him|her|our|my|your)|",
    r"i did (that|this|what|as|it)|did what|tried|disabled|enabled|turned off|switched (off|to)|reset|cleared|checked|verified|closed|",
    r"reinstalled|restarted|rebooted|relaunched|re-?downloaded|re-?clicked|contacted|lowered|allowed|whitelisted|(is|are|was|were) (off|disabled|enabled|allowed)|",
    r"even after|despite|in spite of|after (doing|trying|following|disabling|clearing|resetting)|",
    r"d[ée]j[àa]|suivi|essay[ée]|d[ée]sactiv[ée]|activ[ée]|autoris[ée]|r[ée]initialis[ée]|v[ée]rifi[ée]|ferm[ée]|recliqu[ée]|contact[ée]|",
    r"vid[ée] (le|la|les|l'|mon|ma|mes|notre|nos)|relanc[ée]|red[ée]marr[ée]|ret[ée]l[ée]charg[ée]|r[ée]install[ée]|(j'ai|nous avons|on a) ([ée]crit|appel[ée]|t[ée]l[ée]phon[ée]|demand[ée])|(plusieurs|deux|trois) (fois|tentatives|essais)|avant de vous [ée]crire|",
    r"malgr[ée]|m[êe]me apr[èe]s|comme (indiqu|conseill|demand|pr[ée]conis|d[ée]crit)[ée]?)\b"
);

/// Failure-after-steps cues: it still fails.
const STILL_FAILS: &str = concat!(
    r"(?i)\b(still|keeps?|kept)\b.{0,40}\b(not|no|nothing|fail\w*|error|broken|same|stuck|stop\w*|cannot|can't|won't|doesn't|does not|unable|time\w* ?out|there|shown|shows|appears?)\b|",
    r"\b(persist\w*|same (\w+ )?(thing|error|problem|issue|result|message|failure|behaviou?r|outcome|page|screen)|no (luck|change|difference)|every (single )?time|what (now|else can (i|we) do)|did(n't| not) (help|work|fix|change)|does(n't| not) help|to no avail|without success|both fail\w*|every time|each time|",
    r"no (answer|reply|response)|(nobody|no one|neither( of them)?) (knows|knew|could|can|was able)|still (receiv\w*|getting|gets?|seeing|see)|",
    r"(i|we) (have |had )?even (tried|tested)|(j'ai|nous avons|on a) m[êe]me (essay|tent|test)\w*)\b|",
    r"\b(toujours|encore|persiste\w*|m[êe]me (\w+ )?(d')?(probl[èe]me|erreur|chose|r[ée]sultat)|sans (succ[èe]s|r[ée]sultat)|rien n'y fait|quand m[êe]me|[àa] chaque fois|n'a rien chang[ée]|pas mieux|",
    r"aucune r[ée]ponse|sans r[ée]ponse|pas de (r[ée]ponse|retour)|personne ne (sait|savait|peut|a pu)|aucun des deux|ne sa(is|it|vons|vent|vait) (pas |plus )?quoi faire|m[êe]me (\w+ )?(r[ée]sultat|[ée]chec|page|[ée]cran))\b"
);

/// The customer asks for something to be done, not how something works.
const REQUEST: &str = concat!(
    r"(?i)\b(please|pls|kindly|could you|can you|would you|can someone|we need|i need|need (a|an|the|you|it)|i want|we want|i'd like|i would like|we would like|",
    r"merci de|pouvez-vous|pourriez-vous|veuillez|je voudrais|nous voudrions|je souhaite|nous souhaitons|il (nous|me) faut|nous avons besoin|j'ai besoin)\b"
);

/// The customer asks us to act on something ("can you send / check /
/// release …", "pouvez-vous vérifier …"), not how to do it themselves.
const ACTION_REQUEST: &str = concat!(
    r"(?i)\b(please|pls|kindly|could you|can you|would you|can someone|could someone|can anyone|could anyone|are you able to|",
    r"(is|would) it (be )?possible for (you|someone|your team) to|merci de|pouvez-vous|pourriez-vous|veuillez|quelqu'un (peut|pourrait)[- ]il|",
    r"(est-il|serait-il) possible de (nous|me|m')|(vous )?serait-il possible de)\W+(\w+\W+){0,3}?",
    r"(send|resend|check|verify|look|investigate|fix|correct|release|give|provide|reset|unlock|enable|activate|add|remove|transfer|move|extend|",
    r"reactivate|confirm|tell me who|make|merge|delete|create|set up|change|update|name|appoint|assign|designate|block|revoke|reissue|re-issue|regenerate|restore|reinstate|nommer|d[ée]signer|attribuer|fusionner|cr[ée]er|modifier|changer|mettre|envoyer|renvoyer|v[ée]rifier|corriger|regarder|d[ée]bloquer|donner|fournir|transf[ée]rer|activer|ajouter|",
    r"supprimer|confirmer|me dire qui|bloquer|r[ée]voquer|r[ée][ée]mettre|r[ée]g[ée]n[ée]rer|r[ée]tablir|restaurer|r[ée]initialiser|relancer)\b"
);

/// What a product with its own team is about (UCSS is a software
/// subscription, CUWL workspace licensing): its entitlement (tier, seats,
/// license counts), subscription, upgrades and renewals, EN and FR. On an
/// order of such a product, these make the mail a question concerning the
/// product. A license *link* or PAK problem is not: that is licensing's or
/// eDelivery's, whatever the product.
const PRODUCT_MATTER: &str = concat!(
    r"(?i)\b(subscri\w*|upgrades?|migr\w*|renew\w*|tiers?|seats?|entitle\w*|coverage|workspace|contract\w*|",
    r"licen[cs]\w* (counts?|levels?|types?|quantit\w*|allocation|split\w*|terms?)|",
    r"abonnement\w*|souscri\w*|mises? (a|à) niveau|renouvel\w*|niveau de licence|droits? d'utilisation|contrat\w*|",
    r"(nombre d'|des |les |de nos |nos )utilisateurs|postes)\b"
);
/// A question, as opposed to a statement of a problem or a request.
const QUESTION: &str = concat!(
    r"(?im)\?|^\s*(how|what|why|when|where|which|who|can i|could i|may i|is (it|there|this)|are there|do i|does|is my|",
    r"comment|pourquoi|quand|o[uù]|quel\w*|qu'est|est-ce|puis-je|que)\b"
);

/// The customer reports a problem (as opposed to asking how something
/// works): an entry that needs a person is not enough of an answer.
const PROBLEM: &str = concat!(
    r"(?i)\b(never (received|got|arrived)|not (received|arrived|working|work)|did(n't| not) (receive|get|work)|does(n't| not) work|missing|",
    r"fails?|failed|failing|error|broken|wrong|rejected|refused|not accepted|invalid|pas re[çc]u|manque\w*|ne (marche|fonctionne) pas|",
    r"[ée]choue?|erreur|vide|refus[ée]e?|pas accept[ée]e?|invalide|never (received|got)|jamais re[çc]u\w*|not attached|(n'est|ne sont|n'etait|pas) (pas )?joint\w*|",
    r"only (got|received)|n'ai re[çc]u qu|(can't|cannot|can not|couldn't) find|ne trouve (pas|plus)|404)\b"
);

/// A question about where an order is ("nothing arrived", "when will").
const STATUS: &str = concat!(
    r"(?i)\b(nothing (has )?(arrived|come|been received)|not (yet )?(arrived|received|shipped|available|delivered)|has(n't| not) (arrived|shipped)|",
    r"when will|when (it|they|this|that|the order|our order|my order) will|when (is|are|would) (it|they|this|the order|our order|my order) (be )?(released|delivered|available|shipped|ready)|what'?s holding|holding (it|this|things) up|still (not|no|has not|hasn't|waiting)|where is|what is (going on|blocking)|blocked|blocking|",
    r"pending|on hold|en attente|toujours (rien|pas)|rien re[çc]u|quand (sera|serons|allons|vais|recevr)|pas (encore )?(disponible|livr|re[çc]u)|bloqu\w*)"
);

/// A hold named: on the customer's own held order, a question about it is
/// where that order stands.
const HOLD_NAMED: &str = r"(?i)\b(holds?|blocage|retenue)\b";

struct Cues {
    problem: Cue,
    action: Cue,
    question: Cue,
    attempt: Cue,
    still: Cue,
    request: Cue,
    status: Cue,
    hold_named: Cue,
    product_matter: Cue,
    segments: requests::SegmentCues,
}

/// A text and its [`fold_ascii`] form, folded once for every cue.
struct Text<'a> {
    written: &'a str,
    folded: String,
}

impl<'a> Text<'a> {
    fn new(written: &'a str) -> Text<'a> {
        Text {
            written,
            folded: fold_ascii(written),
        }
    }
}

/// A cue compiled twice: folded, to test on folded text (accent-insensitive,
/// and an ASCII haystack keeps the regex engine on its fast DFA), and as
/// written, to quote the customer's own words in the reasons.
struct Cue {
    written: Regex,
    folded: Regex,
}

impl Cue {
    fn new(pattern: &str) -> Option<Cue> {
        Some(Cue {
            written: Regex::new(pattern).ok()?,
            folded: Regex::new(&fold_pattern(pattern)).ok()?,
        })
    }

    fn is_match(&self, t: &Text<'_>) -> bool {
        self.folded.is_match(&t.folded)
    }

    /// The words that matched, as the customer wrote them when the written
    /// pattern finds them too (else as folded).
    fn find(&self, t: &Text<'_>) -> Option<String> {
        let folded = self.folded.find(&t.folded)?;
        let words = self
            .written
            .find(t.written)
            .map_or(folded.as_str(), |m| m.as_str());
        Some(words.trim().to_string())
    }
}

fn cues() -> Option<&'static Cues> {
    static C: OnceLock<Option<Cues>> = OnceLock::new();
    C.get_or_init(|| {
        Some(Cues {
            problem: Cue::new(PROBLEM)?,
            action: Cue::new(ACTION_REQUEST)?,
            question: Cue::new(QUESTION)?,
            attempt: Cue::new(ATTEMPT)?,
            still: Cue::new(STILL_FAILS)?,
            request: Cue::new(REQUEST)?,
            status: Cue::new(STATUS)?,
            hold_named: Cue::new(HOLD_NAMED)?,
            product_matter: Cue::new(PRODUCT_MATTER)?,
            segments: requests::SegmentCues::new()?,
        })
    })
    .as_ref()
}

/// An FAQ answer that only tells the reader whom to contact: in a mail to
/// support, that contact is a ticket for the team, not an answer.
pub fn is_referral(answer: &str) -> bool {
    let lower = answer.to_lowercase();
    answer.split_whitespace().count() <= REFERRAL_MAX_WORDS && lower.contains("contact")
}

/// What one message looks like to the decision.
#[derive(Debug, Clone, Default)]
pub struct Features {
    /// The FAQ's match: for the whole text, or for what is asked in it
    /// where that names the same entry more surely ([`sharper`]).
    pub faq: Option<FaqHit>,
    /// The whole text's confidence, when what is asked sharpened it.
    pub faq_whole: Option<f64>,
    /// "already tried … still fails": the two phrases found.
    pub tried: Option<(String, String)>,
    /// An attempt cue alone ("cleared the cache", "même après"): the
    /// customer did something already, failure or not.
    pub attempt: Option<String>,
    /// A request for action was found.
    pub request: Option<String>,
    /// The customer asks us to act ("can you send …").
    pub action: Option<String>,
    /// The text asks a question (rather than stating a problem).
    pub question: bool,
    /// The text reports a problem ("never received", "fails").
    pub problem: Option<String>,
    /// The message names an order (threaded or written).
    pub names_order: bool,
    /// A status question ("nothing arrived") was found.
    pub status: Option<String>,
    /// A hold is named ("a compliance hold since Tuesday").
    pub hold_named: Option<String>,
    /// The requests found, sentence by sentence ([`requests`]).
    pub requests: requests::Requests,
    /// Distinct requests that count, as topic keys (`faq:ID` or `rule:NAME`).
    pub topics: Vec<String>,
    /// How many of them are sure (a person rule or a confident FAQ
    /// answer), not guessed from the layout.
    pub sure_topics: usize,
    /// Open holds of the orders named.
    pub holds: Vec<String>,
    /// Product ids (PIDs) of the orders named; some teams route by PID prefix.
    pub pids: Vec<String>,
    /// The text is about licenses, subscription, upgrades or renewal (what a
    /// product with its own team handles for its product).
    pub product_matter: Option<String>,
    /// The classifier fitted on labelled mail ([`learned`]), when the FAQ
    /// port has one.
    pub learned: Option<learned::Guess>,
    /// Its entry model's guess, when the FAQ has a best entry: it replaces
    /// that entry under [`LEARNED_ENTRY_UNDER`] and, agreeing with it,
    /// makes several guessed requests one question.
    pub learned_entry: Option<learned::Guess>,
    /// That entry is one the FAQ answers by itself: it needs no person and
    /// does not only refer to a team.
    pub learned_entry_answers: bool,
}

/// Inputs to [`features`].
pub struct Message<'a> {
    /// The subject alone (without `RE:`/`TR:`).
    pub subject: &'a str,
    /// Subject and new text, for rules.
    pub text: &'a str,
    /// What the FAQ is asked for the whole message.
    pub question: &'a str,
    /// The new text alone, cut into requests.
    pub body: &'a str,
    /// Language the FAQ is asked in.
    pub lang: Lang,
    /// Open hold types of the orders named (`export`, `new-product`, …).
    pub holds: &'a [String],
    /// Product ids (PIDs) of the orders named.
    pub pids: &'a [String],
    /// An order is threaded or written in the text.
    pub names_order: bool,
    /// The text of a message the sender forwards, which `body` ends with.
    pub forwarded: Option<&'a str>,
}

impl Message<'_> {
    /// What the fitted classifier sees of the message.
    pub fn view(&self) -> learned::View {
        learned::View {
            text: self.text.to_string(),
            holds: self.holds.to_vec(),
            pids: self.pids.to_vec(),
            names_order: self.names_order,
        }
    }
}

#[cfg(test)]
impl<'a> Message<'a> {
    /// A new English mail to support whose subject is empty.
    pub(crate) fn plain(body: &'a str) -> Message<'a> {
        Message {
            subject: "",
            text: body,
            question: body,
            body,
            lang: Lang::En,
            holds: &[],
            pids: &[],
            names_order: false,
            forwarded: None,
        }
    }
}

/// Computes the features of one message (asks the FAQ once per request).
pub fn features(m: &Message<'_>, faq: &dyn FaqOracle) -> Features {
    let Some(c) = cues() else {
        return Features::default();
    };
    let hit = faq.ask(m.question, m.lang);
    let (body, text) = (Text::new(m.body), Text::new(m.text));
    let attempt = c.attempt.find(&body);
    let tried = attempt.clone().zip(c.still.find(&body));
    let requests = requests::detect(c, m, faq);
    let (hit, whole) = sharper(hit, requests.asked.as_deref(), m.lang, faq);
    let sure = requests.distinct_sure();
    // Both models read the same tokens; they are cut once.
    let models = faq.route_model();
    let tokens = models.map(|_| learned::tokens(&m.view()));
    let guess = |model: &learned::Model| tokens.as_ref().and_then(|t| model.guess_tokens(t));
    let learned = models.and_then(|ms| guess(&ms.route));
    // An entry renamed since the examples were written is no answer.
    let (learned_entry, learned_entry_answers) = models
        .filter(|_| hit.id.is_some())
        .and_then(|ms| guess(&ms.entry))
        .and_then(|g| {
            let text = faq.entry(&g.label, m.lang)?;
            Some((g, !text.needs_person && !is_referral(&text.answer)))
        })
        .unzip();
    let learned_entry_answers = learned_entry_answers.unwrap_or(false);
    Features {
        faq: hit.id.is_some().then_some(hit),
        faq_whole: whole,
        tried,
        attempt,
        request: c.request.find(&text),
        action: c.action.find(&body),
        question: c.question.is_match(&body),
        problem: c.problem.find(&body),
        names_order: m.names_order,
        status: c.status.find(&text),
        hold_named: c.hold_named.find(&text),
        sure_topics: sure.len(),
        topics: if about_own_product(m) && requests.announced.is_none() {
            sure
        } else {
            requests.distinct()
        },
        requests,
        holds: m.holds.to_vec(),
        pids: m.pids.to_vec(),
        product_matter: c.product_matter.find(&text),
        learned,
        learned_entry,
        learned_entry_answers,
    }
}

/// The mail is about a product with its own team (UCSS, CUWL): an order
/// of one, or the subject names it. Named in one sentence of the text
/// only, it may be one request among others; so may it when the customer
/// announces several ("two things", "sans rapport"): then the sentences
/// the FAQ guesses at are the other requests, not the product's matter
/// (+6 over 34 sets, scored each without its own mail, none lost).
fn about_own_product(m: &Message<'_>) -> bool {
    routing::product_team(m.pids).is_some()
        || routing::person_rule(m.subject)
            .is_some_and(|r| matches!(r.route, Route::Team(Team::Ucss | Team::Cuwl)))
}

/// The FAQ's match for what the customer asks (subject and request
/// segments, without the context, greetings and thanks around them) when
/// it names the same entry as the whole mail with more confidence: a mail's
/// context dilutes the match of a question the FAQ answers, but a question
/// alone can lose what the context adds, so it only sharpens an agreement.
/// Returns the hit and, when it sharpened, the whole mail's confidence.
fn sharper(
    whole: FaqHit,
    asked: Option<&str>,
    lang: Lang,
    faq: &dyn FaqOracle,
) -> (FaqHit, Option<f64>) {
    let Some(asked) = asked.filter(|a| !a.trim().is_empty()) else {
        return (whole, None);
    };
    let focus = faq.ask(asked, lang);
    if focus.id.is_some() && focus.id == whole.id && focus.confidence > whole.confidence {
        let was = whole.confidence;
        (focus, Some(was))
    } else {
        (whole, None)
    }
}

/// Abbreviations whose dot does not end a sentence ("e.g. EULA, SEULA"
/// is one request, not two), EN and FR.
const ABBREVIATIONS: &[&str] = &[
    "e.g.", "i.e.", "etc.", "vs.", "approx.", "cf.", "no.", "nr.", "p.ex.", "c.-à-d.", "c-à-d.",
    "env.", "réf.", "ref.",
];

/// `body` with the dots of [`ABBREVIATIONS`] removed (case-insensitive),
/// so cutting at ". " does not split a sentence there.
fn without_abbreviation_dots(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    'scan: while !rest.is_empty() {
        let at_word_start = out.chars().last().is_none_or(|ch| !ch.is_alphanumeric());
        if at_word_start {
            for a in ABBREVIATIONS {
                if let Some(head) = rest.get(..a.len())
                    && head.eq_ignore_ascii_case(a)
                {
                    out.extend(head.chars().filter(|&ch| ch != '.'));
                    rest = &rest[a.len()..];
                    continue 'scan;
                }
            }
        }
        let Some(ch) = rest.chars().next() else { break };
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    out
}

/// Words that carry no topic, EN and FR (folded).
const STOP: &str = "what does that this with have there then them they their your from into about should would could \
will shall can the and for you our get got how why when where which who also just been being some any its very much many more \
most such only other than too please thanks hello dear team mean need want know tell help hi question questions thing things \
que quoi est qu il elle nous vous ils elles leur pour dans avec sans sur sous par une des les ces cette mais donc car sont ete etre \
avoir peut peux faut fait faire comment pourquoi quand quel quelle quels quelles qui tout tous tres aussi encore bien merci bonjour \
bonsoir probleme choses chose";

fn content_words(s: &str) -> usize {
    static SET: OnceLock<std::collections::HashSet<&'static str>> = OnceLock::new();
    let stop = SET.get_or_init(|| STOP.split_whitespace().collect());
    crate::faq::text::words(s)
        .filter(|w| w.chars().count() >= 3 && !stop.contains(w.as_str()))
        .count()
}

/// The route and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Where the message goes: an FAQ answer or a team.
    pub route: Route,
    /// The FAQ entry to answer with (route `faq`).
    pub answer: Option<String>,
    /// The step of the precedence that decided.
    pub rule: String,
    /// Decided by the message's structure or the order's facts (several
    /// requests, a product with its own team, a hold), which the fitted
    /// classifier does not overrule.
    pub firm: bool,
}

/// The fitted classifier overrules a verdict of words only when its
/// posterior is at least this. Naive Bayes is overconfident (word
/// features are not independent), so this is far from 1 in log-odds:
/// about 6.9 nats over the other classes together. Chosen on the ten
/// routing sets, each scored by a model that had not seen it: 0.99 to
/// 0.9999 give the same figures.
pub const LEARNED_P: f64 = 0.999;

/// An FAQ answer this confident or more stands whatever the classifier
/// says; under it (between `inbound.faq_threshold` and this, the band
/// where a quarter of the labelled mail wanted a person), a team the
/// classifier is sure of takes it: +7 cases over the eleven routing sets,
/// gained on seven and lost on one; without the ceiling, −1.
pub const LEARNED_OVERRULES_ANSWERS_UNDER: f64 = 0.8;

/// Where the FAQ's best entry is under this confidence, the entry model
/// fitted on labelled mail may name another entry (at [`LEARNED_P`]):
/// chosen on the twelve routing sets, each scored by a model that had not
/// seen it: +16 right entries for 8 lost at 0.9, +11 for 4 at 0.8.
pub const LEARNED_ENTRY_UNDER: f64 = 0.9;

/// An FAQ answer the classifier asks for needs the FAQ's best entry at
/// least this confident (under `inbound.faq_threshold`, since the
/// classifier's agreement is the second opinion).
pub const LEARNED_FAQ_FLOOR: f64 = 0.3;

fn team(f: &Features, text: &str, why: &str) -> Verdict {
    let trouble = f.problem.is_some() || f.tried.is_some();
    let routed = routing::route(&RoutingInput {
        text,
        holds: &f.holds,
        pids: &f.pids,
        faq_team: f.faq.as_ref().and_then(|h| h.team),
        without_topic_words: !trouble,
    });
    Verdict {
        route: routed.route,
        answer: None,
        rule: format!("{why}; team by rule: {}", routed.rule),
        firm: routing::is_fact_rule(routed.rule),
    }
}

/// Combines the features, in this order:
/// 1. several distinct requests → one ticket for eDelivery support (a
///    product with its own team among them is one of the requests);
/// 2. a product with its own team (UCSS, CUWL) named in the text, or the
///    order's product has its own team and the mail is about its licenses,
///    subscription or upgrades → that team;
/// 3. a person rule (order action, license trouble, new product / export
///    hold) in what the customer asks or reports, not in the context
///    around it → its team, whatever the FAQ says;
/// 4. an open hold and a status question, or the hold named → the hold's team;
/// 5. tried and still failing → a person (team by the table);
/// 6. asked to act ("can you send / check / provide …"), or a request
///    stated about a named order without asking anything → a person;
/// 7. a confident FAQ match → the answer, unless the entry is a referral,
///    or needs a person and the customer asks for the action or states a
///    problem instead of asking how it works;
/// 8. else the table's team, where a topic word ("license", "export")
///    names the team only when the customer reports trouble (a problem or
///    "tried, still fails"): a mention alone goes to eDelivery support;
///
/// then [`second_opinion`]: the classifier fitted on labelled mail may
/// overrule a verdict of words (never a firm one, never an FAQ answer).
pub fn decide(f: &Features, text: &str) -> Verdict {
    other_entry(second_opinion(by_rules(f, text), f), f)
}

/// An FAQ answer whose entry the FAQ is not sure of (under
/// [`LEARNED_ENTRY_UNDER`]) takes the entry the model fitted on labelled
/// mail is sure of ([`LEARNED_P`]), when they differ and the ranker has it
/// among its runners-up: the FAQ index is fitted on the entries' own
/// words, the model on how customers ask.
fn other_entry(v: Verdict, f: &Features) -> Verdict {
    let (Some(answer), Some(g)) = (v.answer.as_deref(), f.learned_entry.as_ref()) else {
        return v;
    };
    let unsure = f
        .faq
        .as_ref()
        .is_some_and(|h| h.confidence < LEARNED_ENTRY_UNDER);
    if !unsure || g.p < LEARNED_P || g.label == answer {
        return v;
    }
    // Only an entry the ranker too puts near the top: the entry model is
    // sure on few words ("po", "any") as often as on the right ones, and
    // the ranker's runners-up hold the neighbours it confuses (+5 over 34
    // sets, scored each without its own mail).
    if !f
        .faq
        .as_ref()
        .is_some_and(|h| h.runners_up.contains(&g.label))
    {
        return v;
    }
    Verdict {
        answer: Some(g.label.clone()),
        rule: format!(
            "{}; entry {answer} replaced by the entry fitted on labelled mail ({} p={:.4})",
            v.rule, g.label, g.p
        ),
        ..v
    }
}

/// Where the classifier fitted on labelled mail ([`learned`]) is sure
/// (posterior ≥ [`LEARNED_P`]) and the rules decided on words alone, it
/// decides: it learned wording the cues were not written for. It never
/// overrules a firm verdict (several requests, a product's own team, a
/// hold: facts it only sees as tokens; but see [`team_with_context`]) nor
/// an FAQ answer confident to
/// [`LEARNED_OVERRULES_ANSWERS_UNDER`] unless the customer says they did
/// something already (an attempt cue without the failure cue "tried"
/// needs: +2 over the sets, none lost), and it answers with the FAQ only with
/// the FAQ's best entry, confident to [`LEARNED_FAQ_FLOOR`], that neither
/// needs a person nor only refers to a team.
fn second_opinion(v: Verdict, f: &Features) -> Verdict {
    let Some(g) = f.learned.as_ref().filter(|g| g.p >= LEARNED_P) else {
        return v;
    };
    let answer_stands = v.route == Route::Faq
        && (g.is_faq()
            || (f.attempt.is_none()
                && f.faq
                    .as_ref()
                    .is_none_or(|h| h.confidence >= LEARNED_OVERRULES_ANSWERS_UNDER)));
    // Several requests are not one FAQ answer, unless the FAQ is confident
    // of an entry the entry model is sure of too: then the "requests" were
    // the context around one question (the setup, the steps taken).
    let several = f.topics.len() >= 2 && g.is_faq();
    // Not when the customer says there are several ("two unrelated things").
    let one_question = several && f.requests.announced.is_none() && agreed_entry(f);
    if ((v.firm || several) && !one_question && !team_with_context(f, g)) || answer_stands {
        return v;
    }
    let why = format!(
        "{}; overruled by the classifier fitted on labelled mail ({} p={:.4})",
        v.rule, g.label, g.p
    );
    if g.is_faq() {
        let answer = match f.faq.as_ref() {
            Some(h) if h.confidence < LEARNED_FAQ_FLOOR => None,
            Some(h) if !h.needs_person && !h.referral => h.id.clone().map(|id| (id, why)),
            Some(h) if h.needs_person => instead_of_a_persons_entry(f).map(|e| {
                let rule = format!(
                    "{why}; its best entry needs a person, so the entry fitted on labelled mail ({} p={:.4})",
                    e.label, e.p
                );
                (e.label.clone(), rule)
            }),
            _ => None,
        };
        return match answer {
            Some((id, rule)) => Verdict {
                route: Route::Faq,
                answer: Some(id),
                rule,
                firm: false,
            },
            None => v,
        };
    }
    match g.label.parse::<Route>() {
        Ok(route @ Route::Team(_)) if route != v.route => Verdict {
            route,
            answer: None,
            rule: why,
            firm: false,
        },
        _ => v,
    }
}

/// The FAQ's best entry is one only a person handles (a download policy
/// exception, a return), but the classifier is sure the customer asks the
/// FAQ something: the entry model's entry answers, when it is sure of one
/// the FAQ answers by itself. Long mails ("we lost our copy, can we get
/// the old image back?") pull the ranker to the policy entry by their
/// words. Over 44 sets, scored each without its own mail: +6, none lost.
fn instead_of_a_persons_entry(f: &Features) -> Option<&learned::Guess> {
    let h = f.faq.as_ref()?;
    f.learned_entry.as_ref().filter(|e| {
        e.p >= LEARNED_P && f.learned_entry_answers && h.id.as_deref() != Some(e.label.as_str())
    })
}

/// Several requests, not announced, of which one is a person's work for
/// the team the classifier is sure of and the others only FAQ topics: the
/// FAQ topics are what that team's request is about ("we ordered the wrong
/// item, nothing has been downloaded: please raise an RMA"), and a person
/// of that team reads the whole mail. Over 34 sets, scored each without
/// its own mail: +14 net, 2 true several-requests mails among the losses.
fn team_with_context(f: &Features, g: &learned::Guess) -> bool {
    let Ok(route @ Route::Team(team)) = g.label.parse::<Route>() else {
        return false;
    };
    let team_of = |topic: &str| {
        f.requests
            .found
            .iter()
            .find(|r| r.topic == topic)
            .and_then(|r| r.team)
    };
    let rules: Vec<&String> = f.topics.iter().filter(|t| t.starts_with("rule:")).collect();
    team != Team::EdeliverySupport
        && f.topics.len() >= 2
        && f.requests.announced.is_none()
        && matches!(rules[..], [rule] if team_of(rule) == Some(route))
        && f.topics
            .iter()
            .all(|t| t.starts_with("rule:") || t.starts_with("faq:"))
}

/// The FAQ answers with confidence (`inbound.faq_threshold`) an entry of
/// its own (no person needed, not a referral) that the entry model is sure
/// of ([`LEARNED_P`]): two readings of the mail, one fitted on the entries'
/// words and one on labelled mail, name the same answer. Over eighteen
/// routing sets, letting this overrule several requests: +7 cases, no set
/// losing; at a floor of 0.3 or 0.6 instead of the threshold, +7 with 2
/// lost on `heldout-8`'s several-questions mails.
fn agreed_entry(f: &Features) -> bool {
    let (Some(h), Some(e)) = (f.faq.as_ref(), f.learned_entry.as_ref()) else {
        return false;
    };
    e.p >= LEARNED_P
        && h.id.as_deref() == Some(e.label.as_str())
        && h.answered
        && !h.needs_person
        && !h.referral
}

/// The hand-written precedence of [`decide`].
fn by_rules(f: &Features, text: &str) -> Verdict {
    if f.topics.len() >= 2 {
        return Verdict {
            route: Route::Team(Team::EdeliverySupport),
            answer: None,
            rule: format!("{} distinct requests: one ticket", f.topics.len()),
            firm: f.sure_topics >= 2,
        };
    }
    // A product named anywhere: the source document sends every question
    // "concerning" it to its team.
    if let Some(r) = routing::person_rule(text)
        .filter(|r| matches!(r.route, Route::Team(Team::Ucss | Team::Cuwl)))
    {
        return Verdict {
            route: r.route,
            answer: None,
            rule: format!("product with its own team ({})", r.name),
            firm: true,
        };
    }
    if let (Some(p), Some(matter)) = (routing::product_team(&f.pids), &f.product_matter) {
        return Verdict {
            route: p.route,
            answer: None,
            rule: format!(
                "the order's product has its own team ({}) and the mail concerns it ({matter:?})",
                p.rule
            ),
            firm: true,
        };
    }
    let person = match &f.requests.asked {
        Some(asked) => routing::person_rule_asked(text, asked),
        None => routing::person_rule(text),
    };
    let held = f
        .status
        .as_ref()
        .or(f.hold_named.as_ref())
        .and_then(|_| routing::hold_route(&f.holds, &f.pids));
    // Licenses "still not showing" on an order a hold (or its product)
    // keeps back are not licensing trouble: the hold's team releases them.
    // A license refused or wrong is, whatever the order's holds.
    if let Some(r) = person.filter(|r| {
        r.weight == Weight::Person
            && !(held.is_some()
                && r.name == routing::LICENSE_TROUBLE_RULE
                && license_not_there_yet(text))
    }) {
        return team(f, text, &format!("a person's work ({})", r.name));
    }
    if let Some(h) = held {
        return Verdict {
            route: h.route,
            answer: None,
            rule: format!(
                "open hold and a status question or the hold named ({})",
                h.rule
            ),
            firm: true,
        };
    }
    if f.tried.is_some() {
        return team(f, text, "already tried, still failing");
    }
    if f.action.is_some() {
        let why = if f.names_order {
            "asks us to act on a named order"
        } else {
            "asks us to act"
        };
        return team(f, text, why);
    }
    if f.request.is_some() && f.names_order && !f.question {
        return team(f, text, "states a request about a named order");
    }
    match &f.faq {
        Some(h) if h.answered => match (&h.id, h.referral, h.needs_person) {
            (_, true, _) => team(f, text, "the FAQ entry only refers to a team"),
            (_, _, true)
                if f.request.is_some()
                    || f.problem.is_some()
                    || !f.question
                    || about_its_order(f) =>
            {
                team(
                    f,
                    text,
                    "the FAQ entry needs a person unless only asked how it works",
                )
            }
            (Some(id), _, _) => Verdict {
                route: Route::Faq,
                answer: Some(id.clone()),
                rule: "confident FAQ answer".into(),
                firm: false,
            },
            (None, _, _) => team(f, text, "no FAQ entry"),
        },
        _ => team(f, text, "no confident FAQ answer"),
    }
}

/// One sentence says both that a license is in trouble and that it has
/// not arrived yet ("the licenses are still not showing as available").
fn license_not_there_yet(text: &str) -> bool {
    let Some(c) = cues() else {
        return false;
    };
    text.split(['.', '!', '?', '\n']).any(|s| {
        c.status.is_match(&Text::new(s))
            && routing::person_rule(s).is_some_and(|r| r.name == routing::LICENSE_TROUBLE_RULE)
    })
}

/// The customer asks where their own order stands ("is something
/// blocking these licenses?" on an order named): for an entry that needs a
/// person, that is the person's work, not "how does it work".
fn about_its_order(f: &Features) -> bool {
    f.names_order && f.status.is_some()
}

/// One line per feature, for `mail inspect`.
pub fn explain(f: &Features) -> Vec<String> {
    let mut out = Vec::new();
    out.push(match &f.faq {
        Some(h) => format!(
            "feature faq: {} confidence {:.2}{}{}{}{}",
            h.id.as_deref().unwrap_or("-"),
            h.confidence,
            f.faq_whole.map_or(String::new(), |w| format!(
                " (asked alone; whole mail {w:.2})"
            )),
            if h.answered {
                ", confident"
            } else {
                ", not confident"
            },
            if h.needs_person {
                ", entry needs a person"
            } else {
                ""
            },
            if h.referral {
                ", entry is a referral"
            } else {
                ""
            },
        ),
        None => "feature faq: no match".into(),
    });
    match (&f.tried, &f.attempt) {
        (Some((a, s)), _) => out.push(format!("feature tried: {a:?} … {s:?}")),
        (None, Some(a)) => out.push(format!("feature attempt: {a:?}")),
        (None, None) => {}
    }
    if let Some(r) = &f.request {
        out.push(format!("feature request: {r:?}"));
    }
    if let Some(r) = &f.action {
        out.push(format!("feature asks us to act: {r:?}"));
    }
    out.push(format!(
        "feature form: {}{}{}",
        if f.question { "question" } else { "statement" },
        if f.problem.is_some() {
            ", reports a problem"
        } else {
            ""
        },
        if f.names_order {
            ", names an order"
        } else {
            ""
        }
    ));
    if let Some(s) = &f.status {
        out.push(format!("feature status question: {s:?}"));
    }
    // Only where it can decide: on an order with an open hold.
    if let (Some(h), false) = (&f.hold_named, f.holds.is_empty()) {
        out.push(format!("feature hold named: {h:?}"));
    }
    // Only where it can decide: on an order of a product with its own team.
    if let (Some(p), Some(m)) = (routing::product_team(&f.pids), &f.product_matter) {
        out.push(format!("feature product matter: {m:?} ({})", p.rule));
    }
    out.extend(f.requests.explain());
    out.push(format!(
        "feature requests: {} [{}]",
        f.topics.len(),
        f.topics.join(", ")
    ));
    if !f.holds.is_empty() {
        out.push(format!("feature open holds: {}", f.holds.join(", ")));
    }
    for (what, g) in [("learned", &f.learned), ("learned entry", &f.learned_entry)] {
        if let Some(g) = g {
            out.push(format!(
                "feature {what}: {} p={:.3} (words: {})",
                g.label,
                g.p,
                g.words.join(", ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cues_compile() {
        assert!(cues().is_some());
    }

    #[test]
    fn abbreviation_dots_do_not_end_a_sentence() {
        assert_eq!(
            without_abbreviation_dots("Docs, e.g. EULA, i.e. the terms. Next."),
            "Docs, eg EULA, ie the terms. Next."
        );
        assert_eq!(
            without_abbreviation_dots("voir p.ex. la réf. 12"),
            "voir pex la réf 12"
        );
        // Inside a word it is not an abbreviation.
        assert_eq!(without_abbreviation_dots("knee.g. x"), "knee.g. x");
    }

    fn has(cue: &Cue, t: &str) -> bool {
        cue.is_match(&Text::new(t))
    }

    #[test]
    fn tried_needs_an_attempt_and_a_failure() {
        let c = cues().unwrap();
        let t = "I disabled the popup blocker but still nothing happens";
        assert!(has(&c.attempt, t) && has(&c.still, t));
        let t = "J'ai déjà désactivé le bloqueur, le problème persiste";
        assert!(has(&c.attempt, t) && has(&c.still, t));
        let t = "Can I still get software from an old order?";
        assert!(!(has(&c.attempt, t) && has(&c.still, t)));
        // The FAQ's step was to contact someone, and it did not help.
        let t = "I did what the FAQ says and wrote to the bill-to contact: no answer in a week.";
        assert!(has(&c.attempt, t) && has(&c.still, t));
        let t = "J'ai contacté mon collègue puis le revendeur : aucun des deux ne sait quoi faire.";
        assert!(has(&c.attempt, t) && has(&c.still, t));
        let t =
            "I set the preference to No as described in your FAQ, and I'm still receiving them.";
        assert!(has(&c.attempt, t) && has(&c.still, t));
        let t = "J'ai vidé le cache et relancé le navigateur, même message d'erreur.";
        assert!(has(&c.attempt, t) && has(&c.still, t));
        // Other ways of telling both halves, EN and FR.
        for t in [
            "As suggested on your FAQ I switched to the non-Java download; it times out every single time.",
            "Before writing to you I compared the checksums. Downloaded it a second time: same install failure.",
            "J'ai recliqué depuis le mail, puis je suis passé par l'application : je ne sais plus quoi faire.",
            "J'ai écrit à la personne qui me l'a envoyée (pas de réponse depuis 10 jours).",
            // "Even tried" says the earlier steps failed.
            "j'ai desactive le bloqueur de fenetres, j'ai meme essaye sur un autre poste",
            "We cleared the cache and we even tried another browser.",
        ] {
            assert!(has(&c.attempt, t) && has(&c.still, t), "{t}");
        }
    }

    #[test]
    fn asks_us_to_act() {
        let c = cues().unwrap();
        assert!(has(
            &c.action,
            "The bill-to is wrong on order 61200490. Can you correct it?"
        ));
        assert!(has(
            &c.action,
            "Pouvez-vous m'envoyer la liste des téléchargements ?"
        ));
        assert!(!has(&c.action, "Can you tell me how to add a user?"));
        for t in [
            "It has been six days. Could someone look at it?",
            "Is it possible for you to provide such a report?",
            "Pouvez-vous me nommer administrateur à sa place ?",
            // Typed without the hyphen or the accents.
            "pouvez vous reinitialiser le compteur et regarder le fichier ?",
            "Pouvez-vous bloquer ces accès et nous dire comment c'est arrivé ?",
            "Could you revoke the access you sent to these addresses?",
            "Quelqu'un peut il regarder la demande ?",
        ] {
            assert!(has(&c.action, t), "{t}");
        }
        // Asking whether something can be done is how it works, not a
        // request that we do it.
        assert!(!has(
            &c.action,
            "Is it possible to download an older release?"
        ));
    }

    /// An oracle with one answer per text: what is asked alone matches
    /// "asked" surely, the whole mail "whole" less surely.
    struct TwoTexts {
        asked: (&'static str, f64),
        whole: (&'static str, f64),
    }

    impl FaqOracle for TwoTexts {
        fn ask(&self, q: &str, _: Lang) -> FaqHit {
            let (id, confidence) = if q.contains("moved offices") {
                self.whole
            } else {
                self.asked
            };
            FaqHit {
                answered: confidence >= 0.7,
                id: Some(id.into()),
                question: Some(id.into()),
                confidence,
                ..FaqHit::abstain()
            }
        }

        fn entry(&self, _: &str, _: Lang) -> Option<crate::inbound::ports::FaqText> {
            None
        }
    }

    #[test]
    fn what_is_asked_sharpens_an_agreeing_match_only() {
        let body = "We moved offices last month and the old admin left.\n\
                    How do I add a colleague as a user of our account?";
        let m = Message::plain(body);
        let agree = TwoTexts {
            asked: ("add-user", 0.85),
            whole: ("add-user", 0.64),
        };
        let f = features(&m, &agree);
        let hit = f.faq.as_ref().unwrap();
        assert_eq!((hit.confidence, hit.answered), (0.85, true));
        assert_eq!(f.faq_whole, Some(0.64));
        assert!(
            explain(&f)[0].contains("whole mail 0.64"),
            "{:?}",
            explain(&f)
        );
        assert_eq!(decide(&f, body).answer.as_deref(), Some("add-user"));
        // Another entry for the question alone: the whole mail's context
        // may be what names the entry, so nothing is sharpened.
        let disagree = TwoTexts {
            asked: ("other-entry", 0.95),
            whole: ("add-user", 0.64),
        };
        let f = features(&m, &disagree);
        let hit = f.faq.as_ref().unwrap();
        assert_eq!((hit.id.as_deref(), hit.answered), (Some("add-user"), false));
        assert_eq!(f.faq_whole, None);
        assert_eq!(decide(&f, body).answer, None);
    }

    #[test]
    fn an_entry_that_needs_a_person_does_not_answer_where_their_order_stands() {
        let mut f = confident("ask-holds-released-orders");
        if let Some(h) = f.faq.as_mut() {
            h.needs_person = true;
        }
        f.question = true;
        let text = "Is something blocking the release of these licenses?";
        assert_eq!(decide(&f, text).route, Route::Faq, "asked how it works");
        f.names_order = true;
        f.status = Some("blocking".into());
        assert_ne!(
            decide(&f, text).route,
            Route::Faq,
            "asked about their order"
        );
    }

    #[test]
    fn referral_is_a_short_contact_answer() {
        assert!(is_referral(
            "Please contact Customer Service Central or your CS manager."
        ));
        assert!(!is_referral(
            "Yes. You may click the Register link in the notification email. There is no need to download PAKs."
        ));
    }

    fn confident(id: &str) -> Features {
        Features {
            faq: Some(FaqHit {
                answered: true,
                id: Some(id.into()),
                question: None,
                confidence: 0.9,
                needs_person: false,
                team: None,
                referral: false,
                runners_up: Vec::new(),
            }),
            question: true,
            ..Features::default()
        }
    }

    fn sure(label: &str, p: f64) -> Option<learned::Guess> {
        Some(learned::Guess {
            label: label.into(),
            p,
            words: vec![],
        })
    }

    /// The fitted classifier decides where the rules went on words and it
    /// is sure; a firm verdict, a confident FAQ answer and an unsure guess
    /// stand.
    #[test]
    fn the_fitted_classifier_overrules_only_a_verdict_of_words() {
        let text = "I need a hand with this";
        let mut f = confident("some-entry");
        f.faq.as_mut().unwrap().answered = false;
        f.faq.as_mut().unwrap().confidence = 0.5;
        let rules = decide(&f, text);
        assert_eq!(rules.route, Route::Team(Team::EdeliverySupport));
        assert!(!rules.firm);

        f.learned = sure("customer-service", 0.9999);
        let v = decide(&f, text);
        assert_eq!(v.route, Route::Team(Team::CustomerService), "{v:?}");
        assert!(v.rule.contains("classifier"), "{}", v.rule);
        f.learned = sure("customer-service", LEARNED_P / 2.0);
        assert_eq!(decide(&f, text), rules);

        // An FAQ answer: the FAQ's best entry, if confident enough and
        // an answer of its own.
        f.learned = sure(learned::FAQ, 1.0);
        let v = decide(&f, text);
        assert_eq!(
            (v.route, v.answer.as_deref()),
            (Route::Faq, Some("some-entry"))
        );
        f.faq.as_mut().unwrap().confidence = LEARNED_FAQ_FLOOR / 2.0;
        assert_eq!(decide(&f, text), rules);
        f.faq.as_mut().unwrap().confidence = 0.5;
        f.faq.as_mut().unwrap().needs_person = true;
        assert_eq!(decide(&f, text).route, rules.route);
        // Unless the entry model is sure of another entry, one the FAQ
        // answers by itself.
        f.learned_entry = sure("other-entry", 1.0);
        assert_eq!(
            decide(&f, text).route,
            rules.route,
            "not an answer of its own"
        );
        f.learned_entry_answers = true;
        let v = decide(&f, text);
        assert_eq!(v.answer.as_deref(), Some("other-entry"), "{v:?}");
        assert!(v.rule.contains("needs a person"), "{}", v.rule);
        f.learned_entry = sure("other-entry", LEARNED_P / 2.0);
        assert_eq!(decide(&f, text).route, rules.route, "not sure of it");
        f.learned_entry = None;
        f.learned_entry_answers = false;
        f.faq.as_mut().unwrap().needs_person = false;

        // Several sure requests are one ticket whatever the classifier says.
        f.topics = vec!["faq:a".into(), "faq:b".into()];
        f.sure_topics = 2;
        f.learned = sure("licensing", 1.0);
        let v = decide(&f, text);
        assert!(v.firm);
        assert_eq!(v.route, Route::Team(Team::EdeliverySupport));
        // Guessed from the layout, the team the classifier is sure of
        // takes them, but they are never one FAQ answer.
        f.sure_topics = 1;
        assert_eq!(decide(&f, text).route, Route::Team(Team::Licensing));
        f.learned = sure(learned::FAQ, 1.0);
        assert_eq!(decide(&f, text).route, Route::Team(Team::EdeliverySupport));
        // …unless the FAQ is confident of an entry the entry model is
        // sure of too: one question in its context.
        f.faq.as_mut().unwrap().answered = true;
        f.faq.as_mut().unwrap().confidence = 0.75;
        f.learned_entry = sure("some-entry", 1.0);
        let v = decide(&f, text);
        assert_eq!(v.answer.as_deref(), Some("some-entry"), "{v:?}");
        // Not when the customer announced several ("a few unrelated topics").
        f.requests.announced = Some("a few unrelated topics".into());
        assert_eq!(decide(&f, text).route, Route::Team(Team::EdeliverySupport));
        f.requests.announced = None;
        f.learned_entry = sure("other-entry", 1.0);
        assert_eq!(decide(&f, text).route, Route::Team(Team::EdeliverySupport));
        f.learned_entry = None;
        f.faq.as_mut().unwrap().answered = false;
        f.faq.as_mut().unwrap().confidence = 0.5;
        f.learned = sure("licensing", 1.0);
        f.topics.clear();
        f.sure_topics = 0;

        // An export hold on the order routes by fact, not by words.
        f.holds = vec!["export".into()];
        let v = decide(&f, text);
        assert!(v.firm, "{v:?}");
        assert_eq!(v.route, Route::Team(Team::Exportops), "{v:?}");
        f.holds.clear();

        // Another entry, where the FAQ is unsure of its own and the entry
        // model is sure.
        let mut g = f.clone();
        g.learned = sure(learned::FAQ, 1.0);
        g.learned_entry = sure("other-entry", 1.0);
        // Not an entry the ranker does not put near the top.
        assert_eq!(decide(&g, text).answer.as_deref(), Some("some-entry"));
        if let Some(h) = g.faq.as_mut() {
            h.runners_up = vec!["third-entry".into(), "other-entry".into()];
        }
        let v = decide(&g, text);
        assert_eq!(v.answer.as_deref(), Some("other-entry"), "{v:?}");
        assert!(v.rule.contains("replaced"), "{}", v.rule);
        g.learned_entry = sure("other-entry", LEARNED_P / 2.0);
        assert_eq!(decide(&g, text).answer.as_deref(), Some("some-entry"));
        g.learned = sure("licensing", 1.0);
        g.learned_entry = sure("other-entry", 1.0);
        assert_eq!(
            decide(&g, text).answer,
            None,
            "a team verdict takes no entry"
        );

        // A confident FAQ answer stands; one just over the mail bar goes
        // to the team the classifier is sure of.
        let mut f = confident("some-entry");
        f.learned = sure("licensing", 1.0);
        assert_eq!(decide(&f, text).answer.as_deref(), Some("some-entry"));
        f.faq.as_mut().unwrap().confidence = LEARNED_OVERRULES_ANSWERS_UNDER - 0.05;
        let v = decide(&f, text);
        assert_eq!((v.route, v.answer), (Route::Team(Team::Licensing), None));
        f.learned = sure(learned::FAQ, 1.0);
        assert_eq!(decide(&f, text).answer.as_deref(), Some("some-entry"));
        // Very confident, but the customer did something already.
        f.faq.as_mut().unwrap().confidence = 0.95;
        f.learned = sure("licensing", 1.0);
        assert_eq!(decide(&f, text).answer.as_deref(), Some("some-entry"));
        f.attempt = Some("cleared".into());
        assert_eq!(decide(&f, text).route, Route::Team(Team::Licensing));
    }

    #[test]
    fn a_licensing_question_on_an_order_of_a_product_with_its_own_team_goes_to_that_team() {
        let text = "The workspace licensing on this order shows the wrong tier";
        let c = cues().unwrap();
        let mut f = confident("some-entry");
        f.product_matter = c.product_matter.find(&Text::new(text));
        f.pids = vec!["CUWL-STD-12X".into()];
        assert_eq!(decide(&f, text).route, Route::Team(Team::Cuwl));
        // The same words on an order of another product: not CUWL's, and
        // a license that shows the wrong thing is licensing trouble.
        f.pids = vec!["L-ASA5516-TD-1Y".into()];
        assert_eq!(decide(&f, text).route, Route::Team(Team::Licensing));
        // A question about the product's licenses without trouble: the FAQ.
        let text = "What does the workspace licensing tier on this order include?";
        f.product_matter = c.product_matter.find(&Text::new(text));
        assert_eq!(decide(&f, text).route, Route::Faq);
        // In French, typed without accents: the contract and its users.
        let text =
            "peut on transferer une partie des utilisateurs de ce contrat vers notre filiale ?";
        let mut fr = confident("need-print-software-entitlement-license");
        fr.product_matter = c.product_matter.find(&Text::new(text));
        fr.pids = vec!["CUWL-PRO-K9-250U".into()];
        assert_eq!(decide(&fr, text).route, Route::Team(Team::Cuwl));
        // A user name is not the product's users.
        let login = "Mon nom d'utilisateur est refusé sur le portail";
        assert!(c.product_matter.find(&Text::new(login)).is_none());
        // A download question on the UCSS order is not about the product.
        let text = "How do I use the download manager for this order?";
        let mut f = confident("download-manager");
        f.product_matter = c.product_matter.find(&Text::new(text));
        f.pids = vec!["UCSS-CUCM-11-1Y".into()];
        assert_eq!(decide(&f, text).route, Route::Faq);
    }

    #[test]
    fn a_status_question_on_an_order_held_by_a_hold_or_by_its_product_goes_to_its_team() {
        let c = cues().unwrap();
        let text =
            "This order is held because a product is brand new. Any idea when it will be released?";
        let mut f = confident("ask-holds-released-orders");
        f.status = c.status.find(&Text::new(text));
        assert!(
            f.status.is_some(),
            "\"when it will\" asks where the order is"
        );
        f.names_order = true;
        f.holds = vec!["new-product".into()];
        assert_eq!(decide(&f, text).route, Route::Team(Team::SacSupport));
        // No hold, but an L-ISE product: SAC releases it too.
        let text = "CCW says it is not fulfilled yet. What's holding it up?";
        let mut f = confident("logged-cisco-commerce-workspace-see");
        f.status = c.status.find(&Text::new(text));
        f.names_order = true;
        f.pids = vec!["L-ISE-ADV-3Y-S1".into()];
        assert_eq!(decide(&f, text).route, Route::Team(Team::SacSupport));
        // The same question on an order of another product: the FAQ.
        f.pids = vec!["L-ASA5516-TD-1Y".into()];
        assert_eq!(decide(&f, text).route, Route::Faq);
    }

    #[test]
    fn licenses_not_showing_on_a_held_order_are_the_holds_team_not_licensing() {
        let c = cues().unwrap();
        let text = "The licenses on this order are still not showing as available. \
                    Kindly check the status.";
        let mut f = confident("start-pak-registration-edelivery-order");
        f.status = c.status.find(&Text::new(text));
        f.names_order = true;
        f.pids = vec!["L-ISE-APX-5Y-S2".into()];
        assert_eq!(decide(&f, text).route, Route::Team(Team::SacSupport));
        // Without the hold (or the held product), it is licensing trouble.
        f.pids = vec!["L-ASA5516-TD-1Y".into()];
        assert_eq!(decide(&f, text).route, Route::Team(Team::Licensing));
        // A PAK refused is licensing trouble even on a held order.
        let text = "La page indique « en attente ». Le PAK est refusé comme invalide.";
        f.status = c.status.find(&Text::new(text));
        assert!(f.status.is_some());
        f.holds = vec!["export".into()];
        assert_eq!(decide(&f, text).route, Route::Team(Team::Licensing));
    }

    /// On an order with an open hold, a question about the hold is where
    /// that order stands: the hold's team, not the FAQ's "what holds mean";
    /// without an open hold, the FAQ answers it.
    #[test]
    fn a_question_about_the_hold_of_a_held_order_goes_to_the_holds_team() {
        let c = cues().unwrap();
        let text =
            "This order has had a compliance hold since Tuesday. What's needed from our side?";
        let mut f = confident("logged-cisco-commerce-workspace-see");
        f.names_order = true;
        f.hold_named = c.hold_named.find(&Text::new(text));
        assert!(f.hold_named.is_some());
        assert_eq!(decide(&f, text).route, Route::Faq);
        f.holds = vec!["compliance".into()];
        let v = decide(&f, text);
        assert_eq!(v.route, Route::Team(Team::CustomerService), "{v:?}");
        assert!(v.rule.starts_with("open hold"), "{}", v.rule);
    }

    #[test]
    fn a_stated_request_about_a_named_order_needs_a_person_but_a_question_does_not() {
        let text = "We downloaded it twice for order 61200491. We need a third download please.";
        let c = cues().unwrap();
        let mut f = confident("non-java-sw-download-work");
        f.request = c.request.find(&Text::new(text));
        f.question = c.question.is_match(&Text::new(text));
        f.names_order = true;
        assert!(decide(&f, text).route.is_team());
        let text =
            "For order 61200491, how do I download with the non-Java option? I need it today.";
        f.request = c.request.find(&Text::new(text));
        f.question = c.question.is_match(&Text::new(text));
        assert_eq!(decide(&f, text).route, Route::Faq);
    }

    #[test]
    fn a_topic_word_names_the_team_only_when_the_customer_reports_trouble() {
        let c = cues().unwrap();
        // Mentioning licenses in a request the FAQ cannot answer is not
        // licensing trouble: eDelivery support has it.
        let text = "Is there an API to pull our license status into our asset tool?";
        let f = Features {
            question: true,
            ..Features::default()
        };
        assert_eq!(decide(&f, text).route, Route::Team(Team::EdeliverySupport));
        // The same word with a problem: licensing.
        let text = "The license file we received is invalid, what now?";
        let f = Features {
            question: true,
            problem: c.problem.find(&Text::new(text)),
            ..Features::default()
        };
        assert_eq!(decide(&f, text).route, Route::Team(Team::Licensing));
    }

    #[test]
    fn asked_to_act_is_a_person_even_without_an_order() {
        let text = "Can you provide a report of every download made in 2025?";
        let c = cues().unwrap();
        let mut f = confident("search-download-replacement-image-deferred");
        f.action = c.action.find(&Text::new(text));
        assert!(f.action.is_some());
        assert!(decide(&f, text).route.is_team());
        f.action = None;
        assert_eq!(decide(&f, text).route, Route::Faq);
    }

    /// A FAQ oracle that answers every sentence with an entry named after
    /// its first word: any two sentences would be two requests.
    struct FirstWord;
    impl FaqOracle for FirstWord {
        fn ask(&self, q: &str, _: Lang) -> FaqHit {
            let id = q.split_whitespace().next().unwrap_or("").to_lowercase();
            FaqHit {
                answered: true,
                id: Some(id),
                question: None,
                confidence: 0.9,
                needs_person: false,
                team: None,
                referral: false,
                runners_up: Vec::new(),
            }
        }
        fn entry(&self, _: &str, _: Lang) -> Option<crate::inbound::ports::FaqText> {
            None
        }
    }

    #[test]
    fn a_team_request_with_faq_topics_around_it_goes_to_the_team_the_classifier_is_sure_of() {
        use requests::{Form, Mark, Request};
        let text = "We ordered the wrong item, nothing has been downloaded. Please raise an RMA.";
        let req = |topic: &str, team: Option<Route>| Request {
            topic: topic.into(),
            team,
            sure: true,
            form: Form::Requests,
            mark: Mark::None,
            quote: String::new(),
            forwarded: false,
        };
        let cs = Route::Team(Team::CustomerService);
        let mut f = Features {
            topics: vec!["faq:nothing-happens".into(), "rule:order action".into()],
            sure_topics: 2,
            learned: sure("customer-service", 1.0),
            ..Features::default()
        };
        f.requests.found = vec![
            req("faq:nothing-happens", None),
            req("rule:order action", Some(cs)),
        ];
        assert_eq!(decide(&f, text).route, cs);
        // Announced, they are several requests whatever the classifier says.
        f.requests.announced = Some("two things".into());
        assert_eq!(decide(&f, text).route, Route::Team(Team::EdeliverySupport));
        f.requests.announced = None;
        // The classifier sure of another team than the rule's: one ticket.
        f.learned = sure("licensing", 1.0);
        assert_eq!(decide(&f, text).route, Route::Team(Team::EdeliverySupport));
        // Two person rules are two requests.
        f.learned = sure("customer-service", 1.0);
        f.topics.push("rule:license trouble".into());
        f.requests.found.push(req(
            "rule:license trouble",
            Some(Route::Team(Team::Licensing)),
        ));
        assert_eq!(decide(&f, text).route, Route::Team(Team::EdeliverySupport));
    }

    /// A FAQ never sure of anything: every sentence is a guess.
    struct Guesses;
    impl FaqOracle for Guesses {
        fn ask(&self, q: &str, l: Lang) -> FaqHit {
            FaqHit {
                answered: false,
                confidence: 0.4,
                ..FirstWord.ask(q, l)
            }
        }
        fn entry(&self, _: &str, _: Lang) -> Option<crate::inbound::ports::FaqText> {
            None
        }
    }

    #[test]
    fn a_mail_about_a_product_with_its_own_team_is_several_requests_only_when_announced() {
        let subject = "UCSS renewal question and a new user for our account";
        let verdict = |body: &str| {
            let m = Message {
                subject,
                ..Message::plain(body)
            };
            decide(&features(&m, &Guesses), body).route
        };
        // The FAQ's guesses are the product's matter (its users, its term).
        let one = "Our UCSS subscription expires next month, can the renewal be aligned \
                   with our other contracts? Our new engineer needs access, how is that done?";
        assert_eq!(verdict(one), Route::Team(Team::Ucss));
        // Announced, the same sentences are two requests: one ticket.
        let two = format!("Two unrelated things please. {one}");
        assert_eq!(verdict(&two), Route::Team(Team::EdeliverySupport));
    }

    fn topics(c: &Cues, body: &str) -> Vec<String> {
        requests::detect(c, &Message::plain(body), &FirstWord).distinct()
    }

    #[test]
    fn only_what_the_customer_asks_counts_as_a_request() {
        let c = cues().unwrap();
        // Context, then one question: one request.
        let one = "Our partner bought licenses through the distributor last month. \
                   How do I forward the notification to the end customer?";
        assert_eq!(topics(c, one), ["faq:how"]);
        // An enumeration: each item is raised, even without a question mark.
        let three = "I need three things: add a new user to our account, \
                     restore an archived order from 2023, and know why the cart shows orange";
        assert!(topics(c, three).len() >= 2, "{three}");
        let two = "Problem one: nothing happens when I click the download link. \
                   Problem two: my end customer has no Cisco.com profile, how can he get the licenses?";
        assert!(topics(c, two).len() >= 2, "{two}");
        // A stated problem or wish is context of the one question asked.
        let context = "We ordered the same software twice by mistake, error on our side. \
                       We want to keep the first order. How do I see both orders in the tool?";
        assert_eq!(topics(c, context), ["faq:how"]);
    }
}
