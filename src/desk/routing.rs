//! Which team an escalation goes to. The rules are data (one ordered table),
//! so support can re-route without touching the decision code: the first rule
//! whose signal matches wins, text before order facts, because what the
//! customer asks about says more than why the order is stuck.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use regex::Regex;

use crate::domain::Team;
use serde::{Serialize, Serializer};

/// Where a message ends up: the FAQ, a support team, or nowhere. The names
/// are DESIGN.md's, exactly (a team's is `domain::Team`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// Answered from the FAQ, no person involved.
    Faq,
    /// Escalated to this support team.
    Team(Team),
    /// Neither the FAQ nor a team: nothing is answered or escalated.
    None,
}

impl Route {
    /// Every route, FAQ first and `none` last (parsing and reports iterate it).
    pub const ALL: [Route; 9] = [
        Route::Faq,
        Route::Team(Team::EdeliverySupport),
        Route::Team(Team::CustomerService),
        Route::Team(Team::Exportops),
        Route::Team(Team::SacSupport),
        Route::Team(Team::Licensing),
        Route::Team(Team::Ucss),
        Route::Team(Team::Cuwl),
        Route::None,
    ];

    /// The route's name (`faq`, a team's name, `none`), as in DESIGN.md and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Faq => "faq",
            Route::Team(t) => t.as_str(),
            Route::None => "none",
        }
    }

    /// A support team (a route a person answers).
    pub fn is_team(self) -> bool {
        self.team().is_some()
    }

    /// The team behind this route, if a person answers it.
    pub fn team(self) -> Option<Team> {
        match self {
            Route::Team(t) => Some(t),
            Route::Faq | Route::None => None,
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Route {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A name that is no route (the text as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown route {0:?}")]
pub struct ParseRouteError(pub String);

impl FromStr for Route {
    type Err = ParseRouteError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        Route::ALL
            .into_iter()
            .find(|r| r.as_str() == t)
            .ok_or_else(|| ParseRouteError(s.to_string()))
    }
}

/// What a rule looks at.
#[derive(Debug, Clone, Copy)]
pub enum Signal {
    /// Case-insensitive regex over the customer's subject and new text.
    Text(&'static str),
    /// Every one of these case-insensitive regexes matches somewhere in the
    /// text (a co-occurrence: "registered" + "license" + "wrong"), and the
    /// second regex matches nowhere ("has not been registered").
    AllTextUnless(&'static [&'static str], &'static str),
    /// Every one of these regexes matches within one sentence, and the
    /// second regex does not match that sentence: the words are about the
    /// same thing ("the PAK" + "is invalid"), not two things of one mail.
    Sentence(&'static [&'static str], &'static str),
    /// A hold type open on the order (DESIGN's hold names).
    Hold(&'static str),
    /// A product ID on the order starting with this prefix (case-insensitive).
    PidPrefix(&'static str),
    /// A product ID on the order containing this (case-insensitive).
    PidContains(&'static str),
}

/// How much a matching rule weighs against a confident FAQ answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// The customer asks for something only a person can do, or about a
    /// product with its own team: a person, even when an FAQ entry
    /// mentions the topic.
    Person,
    /// A topic word or an order fact: it names the team once a person is
    /// needed, but never turns an answerable question into a ticket.
    Topic,
}

/// One row of [`RULES`]: when `signal` matches, the escalation goes to `route`.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// What must match.
    pub signal: Signal,
    /// The team the escalation goes to.
    pub route: Route,
    /// Short name shown in `reasons`.
    pub name: &'static str,
    /// Whether a match alone calls for a person (see [`Weight`]).
    pub weight: Weight,
}

const fn text(re: &'static str, route: Route, name: &'static str, weight: Weight) -> Rule {
    Rule {
        signal: Signal::Text(re),
        route,
        name,
        weight,
    }
}

const fn fact(signal: Signal, route: Route, name: &'static str) -> Rule {
    Rule {
        signal,
        route,
        name,
        weight: Weight::Topic,
    }
}

/// Work of customer service per the source document ("order bookings,
/// order cancellations or modifications, and RMAs"; expedite; orders that
/// sit in CCW; holds other than export and new product): asked for, not
/// asked about.
const ORDER_ACTION: &str = concat!(
    r"\b(cancel\w*|annul\w*)\b",
    r"|\bbook(ing)?\b|\b(place|placing) (a |an )?(new )?order\b|r[ée]servation de commande|passer (une )?(nouvelle )?commande",
    r"|\b(change|modify|amend|correct|adjust)\w*\s+(the |my |our |this |that )?(order|quantity|qty)\b|\bmodifi\w+\s+(ma |la |notre |cette )?commande\b|\border change\b",
    r"|\b(modifi|chang|corrig|ajust|r[ée]dui|augment)\w*\s+(la |les |le |notre )?(quantit[ée]s?|nombre de licences)\b",
    r"|\b(change|set|switch|flip|turn|modify|update|put|mettre|passer|modifier|changer|basculer)\w*\b.{0,60}\b(early[- ]ship|exp[ée]dition anticip[ée]e)",
    r"|\b(early[- ]ship\w*|exp[ée]dition anticip[ée]e)( flag| indicator| indicateur)? (to|[àa]|sur|en) (yes|oui|no|non)\b",
    r"|\bearly[- ]ship\w*\b.{0,120}\b(set|change|switch|flip|put|turn)\w* (it|this|that|the flag)( back)? to (yes|no)\b",
    r"|\b(change|set|switch|flip|turn|modify|update|put|mettre|passer|modifier|changer|basculer)\w*\b.{0,40}\b(flag|indicator|indicateur)\b.{0,20}\b(to|[àa]|sur|en)\W{0,3}(yes|oui|no|non)\b",
    r"|\b(flag|indicator|indicateur)\b.{0,20}\b(be|[êe]tre) (changed|set|switched|flipped|turned|updated|pass[ée]|mis|modifi[ée])\w*.{0,10}\b(to|[àa]|sur|en)\W{0,3}(yes|oui|no|non)\b",
    r"|\bexp[ée]dition anticip[ée]e\b.{0,120}\b(mettre|remettre|passer|basculer|changer)\w* (la |le |l')?(a|à|sur|en) (oui|non)\b",
    r"|\b(can|could|may) (this|it|that|the order|our order|the so)( order)? (still )?be (changed|modified|amended|corrected|updated)\b",
    r"|\b(peut|pourrait)-(elle|il|on) (encore )?(la |le )?(etre )?(modifi|chang|corrig)\w*",
    r"|\bexpedit(e|es|ed|ing)\b|\bspeed (it |this |the order )?up\b|\brush (the |this |my |our )?order|acc[ée]l[ée]r\w*|\burgent delivery\b|livraison urgente",
    r"|\b(stuck|sitting|sits|sat|remains?|been|waiting)\b.{0,25}\b(in|on) (ccw|cisco commerce)|\b(in|on) ccw\b.{0,40}\b(for|since|without)\b",
    r"|\bnever (arrived|reached|made it|showed up|appeared)\b.{0,30}\bedelivery|\bnot (yet )?(in|arrived in|reached|processed (to|in|into)|showing in|visible in) edelivery",
    r"|\b(booked|placed|entered|submitted)\b.{0,80}\b(not|never|no)\b.{0,25}\b(received|arrived|notification)",
    r"|\bdans (l'outil )?ccw\b.{0,40}\b(depuis|sans)\b|\b(bloqu\w+|reste|tra[îi]ne)\b.{0,20}\bdans (l'outil )?ccw|\bn'arrive (jamais|pas)\b.{0,20}\bedelivery",
    r"|\b(enregistr\w+|pass[ée]e?s?)\b.{0,80}\brien re[çc]u",
    r"|\bRMA\b|\breturn material|\bretour de mat[ée]riel|\breturn (the|this|our|it|these)\b.{0,20}\b(software|order|licen\w*|product)|\bretourner\b"
);

/// The registration did not happen: what follows is not "after
/// registration" ("the PAKs are not registered, we want to return them");
/// or the trouble is the registration *link*, which the FAQ answers.
const NOT_REGISTERED: &str = concat!(
    r"\b(links?|liens?|url)\b|\b(has|have|had|are|is|was|were)( still)? (not|never) (yet )?(been )?regist\w*|\bn'(a|ont|est|sont) (pas|jamais) (encore )?(été )?enregistr\w*|",
    r"\b(none|nothing|neither)\b.{0,40}\b(has|have|had|is|are|was|were) (yet )?(been )?regist\w*|\b(not yet|never) (been )?regist\w*|",
    r"\b(aucune?|rien|ni)\b.{0,40}\bn'?(a|ont|est|sont) (encore )?(été )?((\w+ )?ni )?enregistr\w*|\bpas encore (été )?enregistr\w*"
);

/// Licensing work asked for: moving or re-hosting a license or its
/// registration, or help registering PAKs, EN and FR.
const LICENSE_WORK: &str = concat!(
    r"\b(transfer\w*|move|moving|rehost\w*|re-host\w*|reassign\w*|migrat\w*|transf[ée]r\w*|d[ée]plac\w*|r[ée]affect\w*|r[ée]attribu\w*)\s+(\w+\s+){0,2}(licen[cs]\w*|paks?|registrations?|enregistrements?)\b|",
    r"\b(licen[cs]\w*|paks?|registrations?|enregistrements?)\s+(\w+\s+){0,3}(transferred|moved|rehosted|reassigned|migrated|transf[ée]r[ée]e?s?|d[ée]plac[ée]e?s?|r[ée]affect[ée]e?s?)\b|",
    r"\b(help|aide|assistance)\b.{0,20}\b(regist\w*|enregistr\w*)\b.{0,20}\b(paks?|licen[cs]\w*|cl[ée]s?)\b"
);

/// A license, a PAK, or where licenses land (a Smart / virtual account).
const LICENSE_OBJECT: &str = r"\b(paks?|licen[cs]\w*|smart account|virtual account|compte (virtuel|smart)|cl[ée]s? de licence|license keys?)\b";

/// What goes wrong with a license itself.
const LICENSE_TROUBLE: &str = concat!(
    r"\b(invalid\w*|not valid|rejected|refus\w*|fulfilled|already (been )?(registered|used|fulfilled|redeemed|consumed)|d[ée]j[àa] (utilis|enregistr|consomm)\w*|",
    r"wrong|incorrect|incomplete|incompl[èe]te?s?|missing|manque\w*|zero|erron\w*|mauvais\w*|expired?|expir[ée]e?s?|",
    r"(shows?|showing|contains?|there is|there's|is|are|has|have)( still)? (nothing|no licen\w*)|n'y a (toujours )?(rien|aucune?)|ne contient (rien|aucune?)|",
    r"only (got|received|shows?|enables?|covers|contains)|ne contient que|won'?t accept|not (showing|shown|show|appear\w*)|does(n't| not) (show|appear|work)|ne (fonctionne|marche|s'affiche|appara[iî]t) pas|absent\w*)\b"
);

/// A sentence about the link, the mail or the download: eDelivery's (and
/// the FAQ's), whatever it says of PAKs; or about a PAK not registered yet;
/// or about an ordering mistake ("we ordered the wrong licence tier",
/// "commandées par erreur"), which the order action that undoes it makes
/// customer service's, not licensing's.
const NOT_LICENSE_ITSELF: &str = concat!(
    r"\b(links?|liens?|url|e-?mails?|courriels?|notifications?|download\w*|t[ée]l[ée]charg\w*)\b|",
    r"\b(ordered|picked|chose|chosen|selected|booked|placed|bought|(avons|ai|a|ont|avez|été) (command|choisi)\w*)\b.{0,30}\b(wrong|incorrect|mauvais\w*)\b|",
    r"\b(by mistake|in error|par erreur|en double|ordered twice)\b|",
    r"\b(has|have|had|are|is|was|were)( still)? (not|never) (yet )?(been )?regist\w*|\bn'(a|ont|est|sont) (pas|jamais) (encore )?(été )?enregistr\w*"
);

/// A hold to release: the team of the open hold when the order has one
/// (export, new product), customer service for the others ("For all other
/// holds, contact Customer Service Central").
const HOLD_RELEASE: &str = r"\b(release|lift|remove)\b.{0,20}\bholds?\b|\bholds? (to be |be |being )?(released|lifted|removed)\b|\bcredit( check)? hold|\b(lever|lib[ée]rer|d[ée]bloquer)\b";

/// The name of the rule for trouble with a license itself (wrong,
/// missing, not showing), which an order's hold can explain.
pub const LICENSE_TROUBLE_RULE: &str = "license trouble";

/// The routing table, first match wins. Product families go before
/// licensing because their names contain "Licensing"; rules that weigh as
/// [`Weight::Person`] go before topic words so that, once a person is
/// needed, the most specific team gets the ticket.
pub const RULES: &[Rule] = &[
    text(
        r"\bUCSS\b|unified communications software subscription",
        Route::Team(Team::Ucss),
        "ucss",
        Weight::Person,
    ),
    text(
        r"\bCUWL\b|unified workspace licen[cs]ing",
        Route::Team(Team::Cuwl),
        "cuwl",
        Weight::Person,
    ),
    // "If you have successfully registered your PAK and did not receive
    // the correct/complete license, please contact Global Licensing".
    Rule {
        signal: Signal::AllTextUnless(
            &[
                r"\b(regist\w+|enregistr\w+)",
                r"\b(licen[cs]\w*|keys?|cl[ée]s?|paks?)\b",
                r"\b(wrong|incorrect|incomplete|missing|partial|instead of|au lieu de|only (covers|got|received|shows?|enables?|contains)|ne contient que|invalid\w*|not valid|rejected|fulfilled|zero|different|another|autre|expired?|expir[ée]e?|mismatch\w*|not (the )?(right|correct|complete)|does(n't| not) (work|match|show)|do(n't| not) show|ne (fonctionne|correspond) pas|manque\w*|mauvaise?|erron\w+|incompl\w+|already registered|d[ée]j[àa] enregistr\w+|rehost\w*|no (licen[cs]e|key|file)s?|(did not|didn't|never|not) (receive|get|got)\w*|pas re[çc]ue?|aucune? (licence|cl[ée]))\b",
            ],
            NOT_REGISTERED,
        ),
        route: Route::Team(Team::Licensing),
        name: "license wrong after registration",
        weight: Weight::Person,
    },
    // "… if you need help registering Product Authorization Keys (PAKs),
    // please contact Global Licensing Operations": registering, moving
    // or re-hosting a license is their work.
    text(
        LICENSE_WORK,
        Route::Team(Team::Licensing),
        "license transfer or registration help",
        Weight::Person,
    ),
    text(
        r"\bL-ISE\S*|\bNPH\b|new[- ]product hold|blocage (de |pour )?nouveau produit|nouveau produit bloqu",
        Route::Team(Team::SacSupport),
        "new product hold",
        Weight::Person,
    ),
    text(
        concat!(
            r"\bexport[- ](hold|control|compliance)|\bexport compliance|contr[ôo]le (à l'|a l'|des )?exportations?|blocage (à l'|a l')?export",
            r"|\b(on hold|held|blocked|stopped|pending) (for|by|at|in) export|",
            r"\b(en attente|bloqu\w*|retenue?s?|suspendue?s?)( \w+)? (pour |à l'|a l'|de l'|par l'|par le contr[ôo]le (à l'|a l'|de l')?)?export(ation)?s?\b"
        ),
        Route::Team(Team::Exportops),
        "export hold",
        Weight::Person,
    ),
    text(
        ORDER_ACTION,
        Route::Team(Team::CustomerService),
        "order action",
        Weight::Person,
    ),
    // The license or PAK itself is in trouble (invalid, already used,
    // missing from the account, wrong): licensing's, after the order
    // actions ("we ordered the wrong license, cancel it" is customer
    // service's) and never when the sentence is about the link, the mail
    // or the download (eDelivery's, and the FAQ's).
    Rule {
        signal: Signal::Sentence(&[LICENSE_OBJECT, LICENSE_TROUBLE], NOT_LICENSE_ITSELF),
        route: Route::Team(Team::Licensing),
        name: LICENSE_TROUBLE_RULE,
        weight: Weight::Person,
    },
    text(
        r"\bexport(ation)?s?\b",
        Route::Team(Team::Exportops),
        "export",
        Weight::Topic,
    ),
    text(
        r"\b(PAKs?|licen[cs]es?|licen[cs]ing|smart licen\w*|activation key|cl[ée]s? de licence)\b",
        Route::Team(Team::Licensing),
        "licensing",
        Weight::Topic,
    ),
    fact(
        Signal::Hold("export"),
        Route::Team(Team::Exportops),
        "export hold on the order",
    ),
    fact(
        Signal::Hold("new-product"),
        Route::Team(Team::SacSupport),
        "new product hold on the order",
    ),
    fact(
        Signal::Hold("order-change"),
        Route::Team(Team::CustomerService),
        "order change hold on the order",
    ),
    fact(
        Signal::PidPrefix("L-ISE"),
        Route::Team(Team::SacSupport),
        "L-ISE PID",
    ),
    // The source document, after export holds, new product holds and
    // L-ISE PIDs: "For all other holds, contact Customer Service Central."
    fact(
        Signal::Hold("internet-delivery"),
        Route::Team(Team::CustomerService),
        "internet delivery hold on the order",
    ),
    fact(
        Signal::Hold("compliance"),
        Route::Team(Team::CustomerService),
        "compliance hold on the order",
    ),
    fact(
        Signal::Hold("special-discount"),
        Route::Team(Team::CustomerService),
        "special discount hold on the order",
    ),
    fact(
        Signal::Hold("csm"),
        Route::Team(Team::CustomerService),
        "CSM hold on the order",
    ),
    fact(
        Signal::PidContains("UCSS"),
        Route::Team(Team::Ucss),
        "UCSS PID",
    ),
    fact(
        Signal::PidContains("CUWL"),
        Route::Team(Team::Cuwl),
        "CUWL PID",
    ),
    // After the order's holds: which hold is open says who releases it.
    text(
        HOLD_RELEASE,
        Route::Team(Team::CustomerService),
        "hold release",
        Weight::Person,
    ),
];

/// Facts about the message and its orders that rules look at.
#[derive(Debug, Clone, Default)]
pub struct RoutingInput<'a> {
    /// The customer's subject and new text, as rules match it.
    pub text: &'a str,
    /// Open (unreleased) hold types of the threaded orders.
    pub holds: &'a [String],
    /// Product IDs on the threaded orders.
    pub pids: &'a [String],
    /// The team the matched FAQ entry names, if any.
    pub faq_team: Option<Route>,
    /// Topic words ("license", "export") do not name the team: the
    /// message mentions the topic without reporting trouble with it.
    pub without_topic_words: bool,
}

/// Whether the rule named `name` matches facts of the order (its holds or
/// product ids) rather than words of the text.
pub fn is_fact_rule(name: &str) -> bool {
    RULES.iter().any(|r| {
        r.name == name
            && matches!(
                r.signal,
                Signal::Hold(_) | Signal::PidPrefix(_) | Signal::PidContains(_)
            )
    })
}

/// What the customer says they do not want ("we don't want to cancel or
/// re-order anything", "on ne veut surtout pas annuler ni repasser la
/// commande"): from the cue to the end of its clause. A declined action is
/// not a request for it. Folded ASCII, as rules see text. The cues are of
/// will, not of ability: "I can't cancel it in CCW" still asks for it.
const DECLINED: &str = concat!(
    r"\b(?:(?:i|we|they|customer) )?(?:do ?n['\s]?t|do not|does ?n['\s]?t|does not|did ?n['\s]?t|did not) (?:want|need|wish|intend|plan|mean)\b|",
    r"\b(?:no |without (?:any )?)(?:need|wish|intention|plan) to\b|\bnot (?:looking|trying|planning|asking|wanting) to\b|\bneither\b|\bnor\b|",
    r"\bn'?e? ?(?:veu[xt]|voulons|voulez|veulent|souhaite|souhaitons|souhaitez|souhaitent|desire|desirons|cherche|cherchons|demande|demandons)\b (?:surtout |absolument |en aucun cas |aucunement )?(?:pas|ni|plus)\b|",
    r"\b(?:pas|sans) (?:besoin|la peine|l'intention|intention) d|\bni\b"
);

/// `text` folded for the rules, declined clauses ([`DECLINED`]) blanked.
pub fn for_rules(text: &str) -> String {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    static CLAUSE_END: OnceLock<Option<Regex>> = OnceLock::new();
    let folded = crate::domain::fold_ascii(text);
    let (Some(cue), Some(end)) = (
        RE.get_or_init(|| Regex::new(DECLINED).ok()).as_ref(),
        CLAUSE_END
            .get_or_init(|| {
                Regex::new(r"[.,;:!?\n]|\b(?:but|mais|just|juste|only|seulement|instead|plutot)\b")
                    .ok()
            })
            .as_ref(),
    ) else {
        return folded;
    };
    let mut out = String::with_capacity(folded.len());
    let mut at = 0;
    while let Some(m) = cue.find_at(&folded, at) {
        let stop = end
            .find_at(&folded, m.end())
            .map_or(folded.len(), |e| e.start());
        out.push_str(&folded[at..m.start()]);
        out.extend(std::iter::repeat_n(' ', stop - m.start()));
        at = stop;
    }
    out.push_str(&folded[at..]);
    out
}

/// The chosen team and the name of the rule that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The team; never `faq` or `none`.
    pub route: Route,
    /// The [`Rule::name`] that chose it, or `faq entry team` / `default`.
    pub rule: &'static str,
}

/// Routes an escalation. Never returns `faq` or `none`.
pub fn route(input: &RoutingInput<'_>) -> Routed {
    let folded = for_rules(input.text);
    let input = &RoutingInput {
        text: &folded,
        ..input.clone()
    };
    if let Some(rule) = RULES
        .iter()
        .enumerate()
        .find_map(|(i, r)| matches(i, r, input).then_some(r))
    {
        return Routed {
            route: rule.route,
            rule: rule.name,
        };
    }
    if let Some(team) = input.faq_team.filter(|t| t.is_team()) {
        return Routed {
            route: team,
            rule: "faq entry team",
        };
    }
    Routed {
        route: Route::Team(Team::EdeliverySupport),
        rule: "default",
    }
}

/// The team of the first open hold the table knows (export, new
/// product, order change), or of a product that is held by rule until
/// its team releases it (`L-ISE` PIDs: SAC), whatever the text says.
pub fn hold_route(holds: &[String], pids: &[String]) -> Option<Routed> {
    let input = RoutingInput {
        holds,
        pids,
        ..Default::default()
    };
    RULES
        .iter()
        .enumerate()
        .find(|(i, r)| {
            matches!(r.signal, Signal::Hold(_) | Signal::PidPrefix(_)) && matches(*i, r, &input)
        })
        .map(|(_, r)| Routed {
            route: r.route,
            rule: r.name,
        })
}

/// The team of a product with its own support (UCSS, CUWL) that one of
/// `pids` belongs to: the source document sends every question
/// "concerning" such a product to that team.
pub fn product_team(pids: &[String]) -> Option<Routed> {
    let input = RoutingInput {
        pids,
        ..Default::default()
    };
    RULES
        .iter()
        .enumerate()
        .find(|(i, r)| {
            matches!(r.signal, Signal::PidContains(_))
                && r.route.team().is_some_and(Team::has_own_product)
                && matches(*i, r, &input)
        })
        .map(|(_, r)| Routed {
            route: r.route,
            rule: r.name,
        })
}

/// The first text rule of weight [`Weight::Person`] matching `text`: the
/// customer asks for a person's work whatever the FAQ says.
pub fn person_rule(text: &str) -> Option<&'static Rule> {
    let folded = for_rules(text);
    let input = RoutingInput {
        text: &folded,
        ..Default::default()
    };
    RULES
        .iter()
        .enumerate()
        .find(|(i, r)| r.weight == Weight::Person && matches(*i, r, &input))
        .map(|(_, r)| r)
}

/// The first rule of weight [`Weight::Person`] that names a person's work
/// in what the customer asks: a single phrase must sit in `asked` (the
/// sentences that ask, request or report, not the context around them:
/// "I can see an export compliance hold" asks nothing), while a
/// co-occurrence rule reads all of `text`, since its parts are often told
/// in separate sentences ("I registered the PAK." "The license is wrong.").
pub fn person_rule_asked(text: &str, asked: &str) -> Option<&'static Rule> {
    let (text, asked) = (for_rules(text), for_rules(asked));
    let whole = RoutingInput {
        text: &text,
        ..Default::default()
    };
    let part = RoutingInput {
        text: &asked,
        ..Default::default()
    };
    RULES
        .iter()
        .enumerate()
        .filter(|(_, r)| r.weight == Weight::Person)
        .find(|(i, r)| match r.signal {
            Signal::AllTextUnless(..) => matches(*i, r, &whole),
            _ => matches(*i, r, &part),
        })
        .map(|(_, r)| r)
}

/// Whether rule `i` matches. Text rules see `input.text` as the public
/// functions pass it: folded to ASCII (lowercase, no accents), which makes
/// them accent-insensitive and keeps the regex engine on its fast path.
fn matches(i: usize, rule: &Rule, input: &RoutingInput<'_>) -> bool {
    match rule.signal {
        Signal::Text(_) if input.without_topic_words && rule.weight == Weight::Topic => false,
        Signal::Text(_) | Signal::AllTextUnless(..) => {
            compiled(i).is_some_and(|c| c.matches(input.text))
        }
        Signal::Sentence(..) => compiled(i).is_some_and(|c| {
            input
                .text
                .split(['.', '!', '?', ';', '\n'])
                .any(|sentence| c.matches(sentence))
        }),
        Signal::Hold(h) => input.holds.iter().any(|x| x.eq_ignore_ascii_case(h)),
        Signal::PidPrefix(p) => input.pids.iter().any(|x| {
            x.get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p))
        }),
        Signal::PidContains(p) => {
            let p = p.to_ascii_uppercase();
            input
                .pids
                .iter()
                .any(|x| x.to_ascii_uppercase().contains(&p))
        }
    }
}

/// A text rule's regexes: all of `all` must match, `unless` must not.
struct Compiled {
    all: Vec<Regex>,
    unless: Option<Regex>,
}

impl Compiled {
    fn matches(&self, text: &str) -> bool {
        !self.all.is_empty()
            && self.all.iter().all(|re| re.is_match(text))
            && !self.unless.as_ref().is_some_and(|re| re.is_match(text))
    }
}

/// Compiled text rules, by index in `RULES`. A rule with a pattern that
/// fails to compile never matches (a unit test keeps them all valid).
fn compiled(i: usize) -> Option<&'static Compiled> {
    static CELL: OnceLock<Vec<Option<Compiled>>> = OnceLock::new();
    CELL.get_or_init(|| RULES.iter().map(|r| compile(&r.signal)).collect())
        .get(i)
        .and_then(|r| r.as_ref())
}

/// Matched against `fold_ascii`ed text (see `matches`).
fn compile(signal: &Signal) -> Option<Compiled> {
    let re = |p: &str| Regex::new(&format!("(?i){}", crate::domain::fold_pattern(p))).ok();
    let (all, unless): (&[&str], Option<&str>) = match signal {
        Signal::Text(p) => (std::slice::from_ref(p), None),
        Signal::AllTextUnless(all, unless) | Signal::Sentence(all, unless) => (all, Some(unless)),
        _ => return None,
    };
    Some(Compiled {
        all: all.iter().map(|p| re(p)).collect::<Option<_>>()?,
        unless: match unless {
            Some(p) => Some(re(p)?),
            None => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_text(t: &str) -> Route {
        route(&RoutingInput {
            text: t,
            ..Default::default()
        })
        .route
    }

    /// An action the customer says they do not want is not asked for; one
    /// they cannot do themselves still is.
    #[test]
    fn a_declined_action_is_not_a_request() {
        let rule = |t: &str| person_rule(t).map(|r| r.name);
        for declined in [
            "To be clear I don't want to cancel or re-order anything, I just need the download back.",
            "We do not want to cancel the order, only to know where it is.",
            "No need to cancel anything.",
            "On ne veut surtout pas annuler ni repasser la commande pour ça.",
            "Nous ne souhaitons ni annuler ni repasser de commande.",
            "Aucune licence n'a été téléchargée ni enregistrée.",
        ] {
            assert_eq!(rule(declined), None, "{declined}");
        }
        for asked in [
            "Please cancel the order, it was placed twice.",
            "I can't cancel it in CCW myself, could you cancel it?",
            "Je n'arrive pas à annuler la commande, pouvez-vous l'annuler ?",
            "Merci d'annuler la commande.",
        ] {
            assert_eq!(rule(asked), Some("order action"), "{asked}");
        }
        // An ordering mistake is undone by customer service.
        for mistake in [
            "We ordered the wrong term for our Webex licences, please cancel it.",
            "Les licences ont été commandées par erreur pour le mauvais modèle.",
        ] {
            assert_ne!(rule(mistake), Some(LICENSE_TROUBLE_RULE), "{mistake}");
        }
        for trouble in [
            "The license file is wrong: it shows the wrong serial number.",
            "La commande contient la mauvaise licence, elle est refusée.",
        ] {
            assert_eq!(rule(trouble), Some(LICENSE_TROUBLE_RULE), "{trouble}");
        }
        // A registration that did not happen is no trouble after one.
        for never in [
            "Aucune licence n'a été enregistrée.",
            "Rien n'a été téléchargé ni enregistré.",
            "None of them has been registered yet, the license tier is wrong.",
        ] {
            assert_ne!(
                rule(never),
                Some("license wrong after registration"),
                "{never}"
            );
        }
        assert_eq!(
            rule("We registered the PAK and the license is wrong."),
            Some("license wrong after registration")
        );
        // Only the declined clause goes: what follows it still counts.
        assert_eq!(
            for_rules("We don't want to cancel it, but please expedite").trim_start(),
            ", but please expedite"
        );
    }

    #[test]
    fn every_text_rule_compiles() {
        for (i, r) in RULES.iter().enumerate() {
            if matches!(
                r.signal,
                Signal::Text(_) | Signal::AllTextUnless(..) | Signal::Sentence(..)
            ) {
                assert!(compiled(i).is_some(), "rule {} does not compile", r.name);
            }
        }
    }

    /// The source document's hold table: export holds to export
    /// operations, new product holds and L-ISE PIDs to SAC, every other
    /// hold type to Customer Service Central; each is a fact rule.
    #[test]
    fn every_hold_type_has_its_team() {
        let held = |hold: &str, pid: &str| {
            hold_route(&[hold.to_string()], &[pid.to_string()]).map(|r| (r.route, r.rule))
        };
        let cs = Route::Team(Team::CustomerService);
        assert_eq!(
            held("export", "L-ASA").unwrap().0,
            Route::Team(Team::Exportops)
        );
        assert_eq!(
            held("new-product", "L-ASA").unwrap().0,
            Route::Team(Team::SacSupport)
        );
        for hold in [
            "internet-delivery",
            "compliance",
            "special-discount",
            "csm",
            "order-change",
        ] {
            let (route, rule) = held(hold, "L-ASA").unwrap();
            assert_eq!(route, cs, "{hold}");
            assert!(is_fact_rule(rule), "{rule}");
        }
        // An L-ISE product is SAC's whatever its other hold.
        assert_eq!(
            held("internet-delivery", "L-ISE-BSE-P").unwrap().0,
            Route::Team(Team::SacSupport)
        );
        assert_eq!(held("none-such", "L-ASA"), None);
        assert!(!is_fact_rule("licensing"));
    }

    #[test]
    fn names_round_trip() {
        for r in Route::ALL {
            assert_eq!(r.as_str().parse::<Route>(), Ok(r));
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
    }

    #[test]
    fn changing_the_early_ship_flag_is_an_order_change_asking_about_it_is_not() {
        for t in [
            "Can the flag be changed to Yes so it ships now?",
            "Pouvez-vous passer l'indicateur à « Oui » ?",
            "please set the early ship indicator to yes",
        ] {
            assert_eq!(by_text(t), Route::Team(Team::CustomerService), "{t}");
        }
        for t in [
            "What does it mean when the early ship flag is set to No?",
            "Que se passe-t-il si l'indicateur d'expédition anticipée est à Non ?",
        ] {
            assert_ne!(
                person_rule(t).map(|r| r.route),
                Some(Route::Team(Team::CustomerService)),
                "{t}"
            );
        }
    }

    #[test]
    fn text_rules_en_fr() {
        assert_eq!(
            by_text("Please cancel order 10458321"),
            Route::Team(Team::CustomerService)
        );
        assert_eq!(
            by_text("Je souhaite annuler ma commande"),
            Route::Team(Team::CustomerService)
        );
        assert_eq!(
            by_text("We need an RMA for this"),
            Route::Team(Team::CustomerService)
        );
        assert_eq!(
            by_text("Est-il possible de modifier la quantité sur la commande existante ?"),
            Route::Team(Team::CustomerService)
        );
        assert_eq!(
            by_text("my PAK will not register"),
            Route::Team(Team::Licensing)
        );
        assert_eq!(
            by_text("La clé de licence est invalide"),
            Route::Team(Team::Licensing)
        );
        assert_eq!(
            by_text("question about our UCSS renewal"),
            Route::Team(Team::Ucss)
        );
        assert_eq!(
            by_text("Cisco Unified Workspace Licensing"),
            Route::Team(Team::Cuwl)
        );
        assert_eq!(
            by_text("the L-ISE-BSE-PLIC line is blocked"),
            Route::Team(Team::SacSupport)
        );
        assert_eq!(
            by_text("bloqué par le contrôle des exportations"),
            Route::Team(Team::Exportops)
        );
        for held in [
            "notre commande 60991544 est en attente export depuis le 3",
            "la commande est en attente pour exportation depuis le 4",
            "the order has been on hold for export review since Monday",
        ] {
            assert_eq!(by_text(held), Route::Team(Team::Exportops), "{held}");
        }
        assert_eq!(
            by_text("where is my download link?"),
            Route::Team(Team::EdeliverySupport)
        );
    }

    #[test]
    fn license_trouble_is_licensing_but_not_the_link_or_an_unregistered_pak() {
        let lic = Route::Team(Team::Licensing);
        assert_eq!(by_text("The PAK on our claim certificate is invalid."), lic);
        assert_eq!(
            by_text("Notre compte virtuel Smart : il n'y a rien dedans, aucune licence."),
            lic
        );
        assert_eq!(
            by_text("How can the registration be moved to our new admin account?"),
            lic
        );
        assert_eq!(by_text("Besoin d'aide pour enregistrer nos clés PAK"), lic);
        // The link is eDelivery's (and the FAQ's), whatever it says of PAKs.
        assert!(person_rule("The PAK registration link in the email is invalid").is_none());
        assert!(person_rule("I registered the PAK but the registration link fails").is_none());
        // Not registered yet: nothing went wrong "after registration".
        assert_eq!(
            by_text(
                "The PAKs are not registered. We ordered 20 instead of 10, we would like to return the extra licenses."
            ),
            Route::Team(Team::CustomerService)
        );
        // Words in two different sentences are not one license's trouble.
        assert!(person_rule("We have the license documents. The download is wrong.").is_none());
    }

    #[test]
    fn a_phrase_rule_names_a_person_only_where_the_customer_asks() {
        let text = "I see an export compliance hold.\nIs that normal?";
        assert!(person_rule(text).is_some());
        assert!(person_rule_asked(text, "Is that normal?").is_none());
        // A co-occurrence rule reads the whole text.
        let text = "I registered the PAK yesterday.\nThe license is for the wrong model.";
        assert_eq!(
            person_rule_asked(text, "The license is for the wrong model.").map(|r| r.route),
            Some(Route::Team(Team::Licensing))
        );
    }

    #[test]
    fn order_facts_when_text_is_silent() {
        let holds = vec!["export".to_string()];
        let r = route(&RoutingInput {
            text: "nothing arrived yet",
            holds: &holds,
            ..Default::default()
        });
        assert_eq!(r.route, Route::Team(Team::Exportops));
        let pids = vec!["l-ise-plus-100".to_string()];
        let r = route(&RoutingInput {
            text: "nothing arrived yet",
            pids: &pids,
            ..Default::default()
        });
        assert_eq!(r.route, Route::Team(Team::SacSupport));
        // What the customer asks for beats the hold.
        let r = route(&RoutingInput {
            text: "please cancel it",
            holds: &holds,
            ..Default::default()
        });
        assert_eq!(r.route, Route::Team(Team::CustomerService));
    }

    #[test]
    fn faq_team_before_default_but_never_faq() {
        let r = route(&RoutingInput {
            text: "hello",
            faq_team: Some(Route::Team(Team::Licensing)),
            ..Default::default()
        });
        assert_eq!(r.route, Route::Team(Team::Licensing));
        let r = route(&RoutingInput {
            text: "hello",
            faq_team: Some(Route::Faq),
            ..Default::default()
        });
        assert_eq!(r.route, Route::Team(Team::EdeliverySupport));
    }
}
