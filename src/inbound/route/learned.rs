//! A classifier fitted on labelled mail: does this message want an FAQ
//! answer, or which team?
//!
//! The hand-written features of [`super::decide`] were tuned on the
//! labelled routing sets and score about 0.84 on each fresh set written
//! after them: wording they were not written for falls through their
//! cues. A multinomial naive Bayes model over the words of the routing
//! text (subject and new text), their pairs, and the order's holds and
//! product-id families learns the rest from the labelled mail itself. Its
//! classes are coarse on purpose: `faq` (any entry) and the teams, so
//! every class has many examples. A second model of the same kind, over
//! the FAQ-answered mail with entry ids as classes, is a second opinion on
//! which entry when the FAQ index is unsure ([`Models`]).
//!
//! The models are counted when first used from
//! `faq-index/routing-train.jsonl` (written by `edesk mail route-eval
//! --export-training`, from the labelled sets), in about 50 ms.
//! `mail route-eval` scores a set with models that have not seen its cases.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The class of every FAQ answer.
pub const FAQ: &str = "faq";

/// Additive smoothing of the per-class word counts.
const ALPHA: f64 = 0.3;

/// What the model is trained on and asked about: the routing text and the
/// named orders' holds and product ids.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// Subject and new text (with a forwarded mail's text).
    pub text: String,
    /// Open hold types of the orders named.
    #[serde(default)]
    pub holds: Vec<String>,
    /// Product ids of the orders named.
    #[serde(default)]
    pub pids: Vec<String>,
    /// An order is threaded or written in the text.
    #[serde(default)]
    pub names_order: bool,
}

/// One labelled message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Example {
    /// The case id it comes from (`h5-en-faq-01`).
    pub id: String,
    /// [`FAQ`] or a team name.
    pub label: String,
    /// For an FAQ answer, the entry that answers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// What the model sees.
    #[serde(flatten)]
    pub view: View,
}

/// The model's guess for one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Guess {
    /// [`FAQ`] or a team name.
    pub label: String,
    /// Its posterior probability, in [0, 1].
    pub p: f64,
    /// The words that weigh most for it against the runner-up.
    pub words: Vec<String>,
}

impl Guess {
    /// The guess is an FAQ answer.
    pub fn is_faq(&self) -> bool {
        self.label == FAQ
    }
}

/// Log-likelihoods per class, ready to score.
#[derive(Debug, Clone, Default)]
pub struct Model {
    labels: Vec<String>,
    log_prior: Vec<f64>,
    /// Per token, ln P(token | class) for each class (f32: the tables
    /// are the model's whole size).
    log_likelihood: HashMap<String, Vec<f32>>,
}

/// The two models routing consults.
#[derive(Debug, Clone, Default)]
pub struct Models {
    /// FAQ answer or which team ([`FAQ`] or a team name).
    pub route: Model,
    /// Which FAQ entry, for mail that wants an FAQ answer.
    pub entry: Model,
}

impl Models {
    /// Both models from the examples: the entry model from the FAQ
    /// examples that name their entry.
    pub fn train<'a>(examples: impl IntoIterator<Item = &'a Example> + Clone) -> Models {
        Models {
            route: Model::fit(
                examples
                    .clone()
                    .into_iter()
                    .map(|e| (e.label.as_str(), &e.view)),
            ),
            entry: Model::fit(
                examples
                    .into_iter()
                    .filter_map(|e| e.entry.as_deref().map(|id| (id, &e.view))),
            ),
        }
    }
}

/// The features of a view: folded words of two or more characters that
/// are not numbers, adjacent pairs of them, `hold:TYPE` per open hold,
/// `pid:FAMILY` per product id family, and `order` when one is named.
pub fn tokens(v: &View) -> BTreeSet<String> {
    let words: Vec<String> = crate::faq::text::words(&v.text)
        .filter(|w| w.chars().count() >= 2 && !w.chars().all(|c| c.is_ascii_digit()))
        .collect();
    let mut out: BTreeSet<String> = words.iter().cloned().collect();
    out.extend(words.windows(2).map(|p| format!("{} {}", p[0], p[1])));
    out.extend(v.holds.iter().map(|h| format!("hold:{h}")));
    out.extend(v.pids.iter().flat_map(|p| pid_families(p)));
    if v.names_order {
        out.insert("order:named".into());
    }
    out
}

/// `L-ISE-BSE-P` → `pid:l`, `pid:l-ise`: the families a team may own.
fn pid_families(pid: &str) -> Vec<String> {
    let parts: Vec<String> = pid.split('-').map(|s| s.to_ascii_lowercase()).collect();
    (1..=parts.len().min(2))
        .map(|n| format!("pid:{}", parts[..n].join("-")))
        .collect()
}

impl Model {
    /// Counts (class, view) pairs, each token once per view, and turns the
    /// counts into smoothed log-likelihoods.
    pub fn fit<'a>(examples: impl IntoIterator<Item = (&'a str, &'a View)>) -> Model {
        let mut labels: Vec<String> = Vec::new();
        let mut seen: Vec<u64> = Vec::new();
        let mut totals: Vec<u64> = Vec::new();
        let mut counts: HashMap<String, Vec<u32>> = HashMap::new();
        for (label, view) in examples {
            let k = match labels.iter().position(|l| l == label) {
                Some(k) => k,
                None => {
                    labels.push(label.to_string());
                    seen.push(0);
                    totals.push(0);
                    for c in counts.values_mut() {
                        c.push(0);
                    }
                    labels.len() - 1
                }
            };
            seen[k] += 1;
            let n = labels.len();
            for t in tokens(view) {
                counts.entry(t).or_insert_with(|| vec![0; n])[k] += 1;
                totals[k] += 1;
            }
        }
        let all: u64 = seen.iter().sum();
        let vocab = counts.len() as f64;
        let denominators: Vec<f64> = totals.iter().map(|&t| t as f64 + ALPHA * vocab).collect();
        Model {
            log_prior: seen
                .iter()
                .map(|&s| (s as f64 / all.max(1) as f64).ln())
                .collect(),
            log_likelihood: counts
                .into_iter()
                .map(|(t, c)| {
                    let ll = c
                        .iter()
                        .zip(&denominators)
                        .map(|(&n, d)| ((n as f64 + ALPHA) / d).ln() as f32)
                        .collect();
                    (t, ll)
                })
                .collect(),
            labels,
        }
    }

    /// The class labels, in the order first seen.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The most probable class of `v`, or none for an empty model.
    pub fn guess(&self, v: &View) -> Option<Guess> {
        self.guess_tokens(&tokens(v))
    }

    /// [`Model::guess`] on a view's [`tokens`], cut once for both models.
    pub fn guess_tokens(&self, tokens: &BTreeSet<String>) -> Option<Guess> {
        if self.labels.is_empty() {
            return None;
        }
        let known: Vec<(&String, &Vec<f32>)> = tokens
            .iter()
            .filter_map(|t| self.log_likelihood.get_key_value(t))
            .collect();
        let scores: Vec<f64> = (0..self.labels.len())
            .map(|k| self.log_prior[k] + known.iter().map(|(_, ll)| f64::from(ll[k])).sum::<f64>())
            .collect();
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let (best, second) = (order[0], order.get(1).copied().unwrap_or(order[0]));
        let top = scores[best];
        let z: f64 = scores.iter().map(|s| (s - top).exp()).sum();
        let mut weigh: Vec<(f32, &String)> = known
            .iter()
            .map(|(t, ll)| (ll[best] - ll[second], *t))
            .collect();
        weigh.sort_by(|a, b| b.0.total_cmp(&a.0));
        Some(Guess {
            label: self.labels[best].clone(),
            p: 1.0 / z,
            words: weigh
                .into_iter()
                .take(4)
                .filter(|(d, _)| *d > 0.0)
                .map(|(_, t)| t.clone())
                .collect(),
        })
    }
}

/// The labelled examples shipped with edesk.
const TRAINING: &str = include_str!("../../../faq-index/routing-train.jsonl");

/// Reads JSON Lines of [`Example`]s; a bad line is an error naming it.
pub fn parse_examples(text: &str) -> Result<Vec<Example>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", n + 1)))
        .collect()
}

/// The shipped examples (none if the file does not parse, which a test
/// rules out).
pub fn shipped_examples() -> &'static [Example] {
    static EX: OnceLock<Vec<Example>> = OnceLock::new();
    EX.get_or_init(|| {
        parse_examples(TRAINING).unwrap_or_else(|e| {
            tracing::error!(error = %e, "faq-index/routing-train.jsonl does not parse; routing goes without the learned model");
            Vec::new()
        })
    })
}

/// The models counted from every shipped example.
pub fn shipped() -> &'static Models {
    static MODELS: OnceLock<Models> = OnceLock::new();
    MODELS.get_or_init(|| Models::train(shipped_examples()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(id: &str, label: &str, text: &str) -> Example {
        Example {
            id: id.into(),
            label: label.into(),
            entry: None,
            view: View {
                text: text.into(),
                ..View::default()
            },
        }
    }

    fn view(text: &str) -> View {
        View {
            text: text.into(),
            ..View::default()
        }
    }

    /// The class whose examples share the message's words wins, and the
    /// words that decided are the shared ones.
    #[test]
    fn the_class_whose_examples_share_the_words_wins() {
        let m = Models::train(&[
            ex("1", "customer-service", "please cancel my order"),
            ex("2", "customer-service", "cancel the booking please"),
            ex("3", FAQ, "how do I download the image"),
            ex("4", FAQ, "where do I download my software"),
        ])
        .route;
        let g = m.guess(&view("Could you cancel this order")).unwrap();
        assert_eq!(g.label, "customer-service");
        assert!(g.p > 0.5 && g.p <= 1.0, "{g:?}");
        assert!(g.words.iter().any(|w| w == "cancel"), "{g:?}");
        let g = m.guess(&view("how to download")).unwrap();
        assert!(g.is_faq(), "{g:?}");
    }

    /// Holds and product families are features of their own: the same
    /// words on an export-held order lean to the hold's team.
    #[test]
    fn holds_and_product_families_are_features() {
        let held = |id: &str, label: &str, hold: &str| Example {
            id: id.into(),
            label: label.into(),
            entry: None,
            view: View {
                text: "when will it arrive".into(),
                holds: vec![hold.into()],
                pids: vec!["L-ISE-BSE-P".into()],
                names_order: true,
            },
        };
        let t = tokens(&held("x", "y", "export").view);
        for want in [
            "hold:export",
            "pid:l",
            "pid:l-ise",
            "order:named",
            "will it",
        ] {
            assert!(t.contains(want), "{want} missing from {t:?}");
        }
        let m = Models::train(&[
            held("1", "exportops", "export"),
            held("2", "exportops", "export"),
            held("3", "sac-support", "new-product"),
            held("4", "sac-support", "new-product"),
        ])
        .route;
        let mut v = held("q", "", "export").view;
        assert_eq!(m.guess(&v).unwrap().label, "exportops");
        v.holds = vec!["new-product".into()];
        assert_eq!(m.guess(&v).unwrap().label, "sac-support");
    }

    /// The entry model learns from the FAQ examples that name their
    /// entry, and only from them.
    #[test]
    fn the_entry_model_names_entries() {
        let mut a = ex("1", FAQ, "how do I stop these notification mails");
        a.entry = Some("stop-mails".into());
        let mut b = ex("2", FAQ, "where do I download the image");
        b.entry = Some("download".into());
        let c = ex("3", "customer-service", "cancel my order");
        let m = Models::train(&[a, b, c]);
        assert_eq!(m.entry.labels(), ["stop-mails", "download"]);
        assert_eq!(m.route.labels(), [FAQ, "customer-service"]);
        let g = m
            .entry
            .guess(&view("please stop the notification mails"))
            .unwrap();
        assert_eq!(g.label, "stop-mails");
    }

    #[test]
    fn an_empty_model_has_no_guess() {
        assert_eq!(Model::default().guess(&view("anything")), None);
    }

    /// The shipped file parses and covers the FAQ and every team the
    /// routing sets send mail to.
    #[test]
    fn the_shipped_examples_parse_and_cover_every_route() {
        let ex = parse_examples(TRAINING).unwrap();
        assert!(ex.len() >= 900, "{}", ex.len());
        let labels: BTreeSet<&str> = ex.iter().map(|e| e.label.as_str()).collect();
        for want in [
            FAQ,
            "edelivery-support",
            "customer-service",
            "licensing",
            "ucss",
            "cuwl",
            "sac-support",
            "exportops",
        ] {
            assert!(labels.contains(want), "{want} missing: {labels:?}");
        }
    }
}
