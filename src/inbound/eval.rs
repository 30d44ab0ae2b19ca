//! Evaluation of the reply extractor on a fixture corpus: for every
//! `NAME.eml` with a `NAME.expected.txt`, is the extracted new text within
//! 90 % similarity of what the person wrote? Reported per language, the
//! language being the second `-`-separated part of the name
//! (`<client>-<lang>-<case>.eml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::InboundError;
use super::decide::analyze;
use super::ports::{Directory, FaqOracle};
use super::route::learned;

/// A text counts as correctly extracted at this similarity or above.
pub const PASS_SIMILARITY: f64 = 0.9;

/// Collapses all whitespace runs to one space.
pub fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// 1 − edit distance / length of the longer text, on characters of
/// whitespace-normalized text. Two empty texts are identical.
pub fn similarity(a: &str, b: &str) -> f64 {
    let a: Vec<char> = normalize(a).chars().collect();
    let b: Vec<char> = normalize(b).chars().collect();
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 1.0;
    }
    // No distance exceeds the longer length: the bound never cuts short.
    1.0 - crate::domain::edit_distance(&a, &b, longest) as f64 / longest as f64
}

/// One extractor fixture and how it scored.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    /// File stem of the `.eml`.
    pub name: String,
    /// Second `-`-separated part of the name (`unknown` when missing).
    pub lang: String,
    /// See [`similarity`], in [0, 1].
    pub similarity: f64,
    /// `similarity >= PASS_SIMILARITY`.
    pub passed: bool,
    /// The extracted new text.
    pub got: String,
    /// The expected text, trimmed.
    pub expected: String,
}

/// Pass counts for one language (or routing class).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LangScore {
    /// Cases counted.
    pub total: usize,
    /// Cases that passed (routed right, for routing sets).
    pub passed: usize,
    /// `passed / total`, in [0, 1] (0 when there are no cases).
    pub share: f64,
}

/// The extractor score of a fixture directory.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Scores keyed by the language part of the file names.
    pub per_lang: BTreeMap<String, LangScore>,
    /// Every scored fixture, in file name order.
    pub cases: Vec<Case>,
}

impl Report {
    /// The cases below [`PASS_SIMILARITY`].
    pub fn failures(&self) -> impl Iterator<Item = &Case> {
        self.cases.iter().filter(|c| !c.passed)
    }

    /// Human-readable summary, one line per language then the failures.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (lang, sc) in &self.per_lang {
            s.push_str(&format!(
                "{lang}: {}/{} within {:.0}% similarity = {:.1}%\n",
                sc.passed,
                sc.total,
                PASS_SIMILARITY * 100.0,
                sc.share * 100.0
            ));
        }
        for c in self.failures() {
            s.push_str(&format!(
                "FAIL {} ({:.2})\n  expected: {:?}\n  got:      {:?}\n",
                c.name, c.similarity, c.expected, c.got
            ));
        }
        s
    }
}

/// The `.eml` files of a directory, sorted by name.
pub fn eml_files(dir: &Path) -> Result<Vec<PathBuf>, InboundError> {
    let rd = std::fs::read_dir(dir).map_err(|source| InboundError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    Ok(files)
}

fn read(path: &Path) -> Result<Vec<u8>, InboundError> {
    std::fs::read(path).map_err(|source| InboundError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Runs the analysis on every fixture that has an expectation.
pub fn evaluate(
    dir: &Path,
    directory: &dyn Directory,
    faq: &dyn FaqOracle,
) -> Result<Report, InboundError> {
    let mut report = Report::default();
    for eml in eml_files(dir)? {
        let expected_path = eml.with_extension("expected.txt");
        if !expected_path.exists() {
            continue;
        }
        let expected = String::from_utf8_lossy(&read(&expected_path)?).into_owned();
        let got = analyze(&read(&eml)?, directory, faq)?.new_text;
        let name = eml
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lang = name.split('-').nth(1).unwrap_or("unknown").to_string();
        let sim = similarity(&got, &expected);
        let passed = sim >= PASS_SIMILARITY;
        let sc = report.per_lang.entry(lang.clone()).or_default();
        sc.total += 1;
        sc.passed += usize::from(passed);
        report.cases.push(Case {
            name,
            lang,
            similarity: sim,
            passed,
            got,
            expected: expected.trim().to_string(),
        });
    }
    for sc in report.per_lang.values_mut() {
        sc.share = sc.passed as f64 / sc.total.max(1) as f64;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_bounds() {
        assert_eq!(similarity("", ""), 1.0);
        assert_eq!(similarity("abc", "abc"), 1.0);
        assert_eq!(similarity("a  b\n c", "a b c"), 1.0);
        assert_eq!(similarity("abcd", ""), 0.0);
        assert!((similarity("kitten", "sitting") - (1.0 - 3.0 / 7.0)).abs() < 1e-9);
    }
}

/// One labelled message of a routing set (`tests/fixtures/routing/`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCase {
    /// Case id, shown in failures.
    pub id: String,
    /// Language of the mail (`en`, `fr`), for the per-language score.
    pub lang: String,
    /// What kind of decision it tests (`faq`, `tried`, `order-cs`, …).
    pub class: String,
    /// An order of the world the sender replies to (through its reply
    /// token), or none for a new mail to support.
    #[serde(default)]
    pub so: Option<crate::domain::OrderId>,
    /// Subject of the generated mail.
    pub subject: String,
    /// Plain-text body of the generated mail (what the customer wrote).
    pub body: String,
    /// Accepted outcomes: `faq:<entry id>` or a team name.
    pub expect: Vec<String>,
}

/// A routing set's score.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteReport {
    /// Cases routed.
    pub total: usize,
    /// Cases routed to an accepted outcome.
    pub correct: usize,
    /// `correct / total` (0 when there are no cases).
    pub accuracy: f64,
    /// Scores per case class.
    pub per_class: BTreeMap<String, LangScore>,
    /// Scores per case language.
    pub per_lang: BTreeMap<String, LangScore>,
    /// Cases routed elsewhere, in input order.
    pub failures: Vec<RouteFailure>,
    /// Every case's outcome, in input order (`mail route-eval --cases`).
    #[serde(skip)]
    pub cases: Vec<RouteOutcome>,
}

/// One case's outcome and the decision's reasons, for analysing the
/// decision beyond the score (`mail route-eval --cases`).
#[derive(Debug, Clone, Serialize)]
pub struct RouteOutcome {
    /// The case's id.
    pub id: String,
    /// The case's class.
    pub class: String,
    /// The outcome: `faq:<id>`, `command:<name>` or the route.
    pub got: String,
    /// The outcomes it accepts.
    pub expect: Vec<String>,
    /// Whether `got` is one of them.
    pub ok: bool,
    /// The decision's reasons.
    pub reasons: Vec<String>,
    /// What the routing classifier saw, for `--export-training`.
    #[serde(skip)]
    pub view: Option<learned::View>,
}

/// A case routed elsewhere than expected.
#[derive(Debug, Clone, Serialize)]
pub struct RouteFailure {
    /// The case's id.
    pub id: String,
    /// The case's class.
    pub class: String,
    /// The outcome: `faq:<id>`, `command:<name>` or the route.
    pub got: String,
    /// The outcomes it accepts.
    pub expect: Vec<String>,
    /// The decision's reasons, to see why.
    pub reasons: Vec<String>,
}

impl RouteReport {
    /// One line overall, one per class and language, then the failures.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "route accuracy: {}/{} = {:.3}\n",
            self.correct, self.total, self.accuracy
        );
        for (what, map) in [("class", &self.per_class), ("lang", &self.per_lang)] {
            for (k, sc) in map {
                s.push_str(&format!(
                    "  {what} {k:<14} {:>3}/{:<3} = {:.3}\n",
                    sc.passed, sc.total, sc.share
                ));
            }
        }
        for f in &self.failures {
            s.push_str(&format!(
                "FAIL {} [{}]: got {} want {}\n",
                f.id,
                f.class,
                f.got,
                f.expect.join(" | ")
            ));
            for r in &f.reasons {
                s.push_str(&format!("    - {r}\n"));
            }
        }
        s
    }
}

/// Reads a JSON Lines routing set.
pub fn load_route_cases(path: &Path) -> Result<Vec<RouteCase>, InboundError> {
    let text = String::from_utf8_lossy(&read(path)?).into_owned();
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).map_err(|e| InboundError::World {
                path: path.to_path_buf(),
                message: format!("line {}: {e}", n + 1),
            })
        })
        .collect()
}

/// The mail a case stands for: a reply through the order's reply token
/// (from its first recipient), or a new mail to support.
pub fn case_mail(case: &RouteCase, world: &super::ports::MemWorld) -> Vec<u8> {
    let order = case
        .so
        .as_ref()
        .and_then(|so| world.orders.iter().find(|o| o.so == *so));
    let recipient = order.and_then(|o| o.recipients.first());
    let domain = world.own_domain.as_deref().unwrap_or("edesk.example.com");
    let (from, to, reply) = match (order, recipient) {
        (Some(o), Some(r)) => (
            r.email.clone(),
            format!(
                "reply+{}@{domain}",
                r.reply_token.as_deref().unwrap_or_default()
            ),
            o.notification_ids
                .first()
                .map(|m| format!("In-Reply-To: <{m}>\r\n"))
                .unwrap_or_default(),
        ),
        _ => (
            format!("customer.{}@example.org", case.id),
            format!("support@{domain}"),
            String::new(),
        ),
    };
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {}\r\nMessage-ID: <{}@routing.test>\r\n{reply}Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n",
        case.subject,
        case.id,
        case.body.replace('\n', "\r\n")
    )
    .into_bytes()
}

/// The FAQ port with the routing classifier refitted without some cases:
/// a set is scored by a model that has not seen it.
struct Unseen<'a> {
    inner: &'a dyn FaqOracle,
    model: Option<learned::Models>,
}

impl FaqOracle for Unseen<'_> {
    fn ask(&self, text: &str, lang: crate::domain::Lang) -> super::ports::FaqHit {
        self.inner.ask(text, lang)
    }

    fn entry(&self, id: &str, lang: crate::domain::Lang) -> Option<super::ports::FaqText> {
        self.inner.entry(id, lang)
    }

    fn vocabulary(&self, text: &str) -> (usize, usize) {
        self.inner.vocabulary(text)
    }

    fn route_model(&self) -> Option<&learned::Models> {
        self.model.as_ref()
    }
}

/// Whether [`evaluate_routes`] lets the fitted classifier take part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Refitted on the shipped examples minus the cases scored.
    Unseen,
    /// The hand-written features alone.
    Off,
}

/// Routes every case with the world's orders and the given FAQ; a case is
/// right when its outcome (`faq:<id>` for an answer, else the route) is
/// one of those it accepts. The routing classifier, when the FAQ port has
/// one, is refitted without the cases scored (`Learned::Unseen`), so the
/// score is never a model grading its own training mail.
pub fn evaluate_routes(
    cases: &[RouteCase],
    world: &super::ports::MemWorld,
    faq: &dyn FaqOracle,
    learned: Learned,
) -> Result<RouteReport, InboundError> {
    let scored: std::collections::HashSet<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    let unseen = Unseen {
        inner: faq,
        model: (learned == Learned::Unseen && faq.route_model().is_some()).then(|| {
            learned::Models::train(
                learned::shipped_examples()
                    .iter()
                    .filter(|e| !scored.contains(e.id.as_str())),
            )
        }),
    };
    let mut r = RouteReport::default();
    for case in cases {
        let d = analyze(&case_mail(case, world), world, &unseen)?;
        let got = match &d.action {
            super::decide::Action::Answer { id } => format!("faq:{id}"),
            // What was asked: whether it is then proven is `inbound::auth`'s.
            super::decide::Action::Command(c) | super::decide::Action::UnprovenCommand(c) => {
                format!("command:{}", c.name())
            }
            _ => d.route.to_string(),
        };
        let ok = case.expect.contains(&got);
        r.total += 1;
        r.correct += usize::from(ok);
        for (map, key) in [
            (&mut r.per_class, &case.class),
            (&mut r.per_lang, &case.lang),
        ] {
            let sc = map.entry(key.clone()).or_default();
            sc.total += 1;
            sc.passed += usize::from(ok);
        }
        r.cases.push(RouteOutcome {
            id: case.id.clone(),
            class: case.class.clone(),
            got,
            expect: case.expect.clone(),
            ok,
            reasons: d.reasons,
            view: d.view,
        });
    }
    for sc in r.per_class.values_mut().chain(r.per_lang.values_mut()) {
        sc.share = sc.passed as f64 / sc.total.max(1) as f64;
    }
    r.accuracy = r.correct as f64 / r.total.max(1) as f64;
    r.failures = r
        .cases
        .iter()
        .filter(|c| !c.ok)
        .map(|c| RouteFailure {
            id: c.id.clone(),
            class: c.class.clone(),
            got: c.got.clone(),
            expect: c.expect.clone(),
            reasons: c.reasons.clone(),
        })
        .collect();
    Ok(r)
}

/// The training examples of scored cases: the class is the first accepted
/// outcome, an FAQ answer of any entry counting as [`learned::FAQ`]; cases
/// that are commands or that reached no question are left out.
pub fn training_examples(r: &RouteReport) -> Vec<learned::Example> {
    r.cases
        .iter()
        .filter_map(|c| {
            let first = c.expect.first()?;
            let label = if first.starts_with("faq:") {
                learned::FAQ.to_string()
            } else if first.parse::<crate::desk::routing::Route>().is_ok() {
                first.clone()
            } else {
                return None;
            };
            Some(learned::Example {
                id: c.id.clone(),
                entry: first.strip_prefix("faq:").map(str::to_string),
                label,
                view: c.view.clone()?,
            })
        })
        .collect()
}
