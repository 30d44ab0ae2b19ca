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
    Faq,
    Team(Team),
    None,
}

impl Route {
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
    /// A hold type open on the order (DESIGN's hold names).
    Hold(&'static str),
    /// A product ID on the order starting with this prefix (case-insensitive).
    PidPrefix(&'static str),
    /// A product ID on the order containing this (case-insensitive).
    PidContains(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub signal: Signal,
    pub route: Route,
    /// Short name shown in `reasons`.
    pub name: &'static str,
}

const fn text(re: &'static str, route: Route, name: &'static str) -> Rule {
    Rule {
        signal: Signal::Text(re),
        route,
        name,
    }
}

/// The routing table, first match wins. Product families go before
/// licensing because their names contain "Licensing".
pub const RULES: &[Rule] = &[
    text(
        r"\bUCSS\b|unified communications software subscription",
        Route::Team(Team::Ucss),
        "ucss",
    ),
    text(
        r"\bCUWL\b|unified workspace licen[cs]ing",
        Route::Team(Team::Cuwl),
        "cuwl",
    ),
    text(
        r"\bL-ISE\S*|\bNPH\b|new[- ]product hold|blocage (de |pour )?nouveau produit|nouveau produit bloqu",
        Route::Team(Team::SacSupport),
        "new product hold",
    ),
    text(
        r"\bexport(ation)?\b|\bexport[- ](hold|control|compliance)|contr[ôo]le (à l'|a l'|des )?exportations?",
        Route::Team(Team::Exportops),
        "export",
    ),
    text(
        r"\b(cancel\w*|annul\w*|RMA|return material|expedit\w*|acc[ée]l[ée]r\w*|booking|book (an|the|my) order|r[ée]servation de commande|change (to |in |of )?(my|the|our|this) order|order change|modif\w* (de |à |a )?(ma|la|notre|cette) commande|modify (my|the|our|this) order|urgent delivery|livraison urgente)\b",
        Route::Team(Team::CustomerService),
        "order change",
    ),
    text(
        r"\b(PAKs?|licen[cs]es?|licen[cs]ing|smart licen\w*|activation key|cl[ée]s? de licence)\b",
        Route::Team(Team::Licensing),
        "licensing",
    ),
    Rule {
        signal: Signal::Hold("export"),
        route: Route::Team(Team::Exportops),
        name: "export hold",
    },
    Rule {
        signal: Signal::Hold("new-product"),
        route: Route::Team(Team::SacSupport),
        name: "new product hold",
    },
    Rule {
        signal: Signal::Hold("order-change"),
        route: Route::Team(Team::CustomerService),
        name: "order change hold",
    },
    Rule {
        signal: Signal::PidPrefix("L-ISE"),
        route: Route::Team(Team::SacSupport),
        name: "L-ISE PID",
    },
    Rule {
        signal: Signal::PidContains("UCSS"),
        route: Route::Team(Team::Ucss),
        name: "UCSS PID",
    },
    Rule {
        signal: Signal::PidContains("CUWL"),
        route: Route::Team(Team::Cuwl),
        name: "CUWL PID",
    },
];

/// Facts about the message and its orders that rules look at.
#[derive(Debug, Clone, Default)]
pub struct RoutingInput<'a> {
    pub text: &'a str,
    /// Open (unreleased) hold types of the threaded orders.
    pub holds: &'a [String],
    pub pids: &'a [String],
    /// The team the matched FAQ entry names, if any.
    pub faq_team: Option<Route>,
}

/// The chosen team and the name of the rule that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub route: Route,
    pub rule: &'static str,
}

/// Routes an escalation. Never returns `faq` or `none`.
pub fn route(input: &RoutingInput<'_>) -> Routed {
    for (i, rule) in RULES.iter().enumerate() {
        if matches(i, rule, input) {
            return Routed {
                route: rule.route,
                rule: rule.name,
            };
        }
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

fn matches(i: usize, rule: &Rule, input: &RoutingInput<'_>) -> bool {
    match rule.signal {
        Signal::Text(_) => compiled(i).is_some_and(|re| re.is_match(input.text)),
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

/// Compiled text rules, by index in `RULES`. A rule that fails to compile
/// never matches (a unit test keeps them all valid).
fn compiled(i: usize) -> Option<&'static Regex> {
    static CELL: OnceLock<Vec<Option<Regex>>> = OnceLock::new();
    CELL.get_or_init(|| {
        RULES
            .iter()
            .map(|r| match r.signal {
                Signal::Text(re) => Regex::new(&format!("(?i){re}")).ok(),
                _ => None,
            })
            .collect()
    })
    .get(i)
    .and_then(|r| r.as_ref())
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

    #[test]
    fn every_text_rule_compiles() {
        for (i, r) in RULES.iter().enumerate() {
            if matches!(r.signal, Signal::Text(_)) {
                assert!(compiled(i).is_some(), "rule {} does not compile", r.name);
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for r in Route::ALL {
            assert_eq!(r.as_str().parse::<Route>(), Ok(r));
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
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
        assert_eq!(
            by_text("where is my download link?"),
            Route::Team(Team::EdeliverySupport)
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
