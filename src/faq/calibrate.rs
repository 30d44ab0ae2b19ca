//! Fits the confidence (a logistic model over ranking features) on queries
//! generated from the FAQ itself, never on evaluation questions:
//! - positives: each entry's question, paraphrased by swapping concept
//!   phrases for other terms of the same concept (`synonyms.toml`), with
//!   words dropped and unknown words added, and windows of its answer
//!   (label = the entry ranks first);
//! - negatives: the same queries with their own entry left out of the
//!   ranking (an in-domain question the FAQ cannot answer), and noise
//!   queries made of unknown words plus one FAQ word.
//!
//! Deterministic (fixed seed), a few hundred queries: it runs at every open.

use super::model::Concept;
use super::ranker::{Candidate, Ranker};
use crate::domain::Lang;

/// Number of ranking features the model weighs.
pub const FEATURES: usize = 4;

/// Features of the best candidate of a ranking.
pub fn features(ranked: &[Candidate]) -> [f64; FEATURES] {
    let Some(best) = ranked.first() else {
        return [0.0; FEATURES];
    };
    let margin = ranked.get(1).map_or(1.0, |second| {
        ((best.score - second.score) / best.score.max(1e-9)).clamp(0.0, 1.0)
    });
    // A wide margin means little when the best entry explains little of
    // the question (one shared word), hence margin × coverage.
    [
        best.coverage,
        best.question_coverage,
        margin * best.coverage,
        (best.matched.clamp(1, 4) - 1) as f64 / 3.0,
    ]
}

/// A logistic model over [`features`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    /// The intercept.
    pub bias: f64,
    /// One weight per feature, in [`features`]' order.
    pub weights: [f64; FEATURES],
}

impl Model {
    /// The probability that the best candidate is the right answer.
    pub fn predict(&self, x: &[f64; FEATURES]) -> f64 {
        let z: f64 = self.bias + self.weights.iter().zip(x).map(|(w, v)| w * v).sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }
}

/// SplitMix64: tiny, seedable, stable across crate versions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    /// A made-up word no FAQ vocabulary contains.
    fn unknown_word(&mut self) -> String {
        let len = 5 + self.below(4);
        (0..len)
            .map(|_| char::from(b"bcdfghjkmpqvwxz"[self.below(15)]))
            .collect()
    }
}

/// Replaces up to two concept phrases of a (lower-cased) question by
/// another term of the same concept, the way a customer words the same
/// thing differently ("stop receiving" → "get rid of").
fn paraphrase(rng: &mut Rng, question: &str, concepts: &[Concept]) -> String {
    let mut text = format!(" {} ", question.to_lowercase());
    let mut done = 0;
    for c in concepts {
        if done >= 2 || c.terms.len() < 2 {
            continue;
        }
        let Some(term) = c
            .terms
            .iter()
            .filter(|t| text.contains(&format!(" {} ", t.to_lowercase())))
            .max_by_key(|t| t.len())
        else {
            continue;
        };
        if !rng.chance(0.7) {
            continue;
        }
        let other = &c.terms[rng.below(c.terms.len())];
        text = text.replacen(
            &format!(" {} ", term.to_lowercase()),
            &format!(" {other} "),
            1,
        );
        done += 1;
    }
    text.trim().to_string()
}

fn words(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

/// A generated query's features, label (1 = right answer ranked first) and
/// weight.
pub type Sample = ([f64; FEATURES], f64, f64);

/// The generated training set. In-domain questions with their entry left
/// out count half: they are rarer in real traffic than plain off-topic ones.
pub fn training_set(ranker: &Ranker) -> Vec<Sample> {
    let mut rng = Rng(0x05EE_DFA0);
    let mut out = Vec::new();
    let n = ranker.entries(Lang::En).len();
    for lang in Lang::ALL {
        let entries = ranker.entries(lang);
        for (topic, e) in entries.iter().enumerate() {
            for query in entry_queries(&mut rng, e, ranker.concepts()) {
                let ranked = ranker.rank(&query, lang);
                if ranked.is_empty() {
                    continue;
                }
                let right = ranked.first().is_some_and(|c| c.topic == topic);
                out.push((features(&ranked), if right { 1.0 } else { 0.0 }, 1.0));
                let without: Vec<Candidate> =
                    ranked.into_iter().filter(|c| c.topic != topic).collect();
                if !without.is_empty() {
                    out.push((features(&without), 0.0, 0.5));
                }
            }
        }
        for _ in 0..3 * n {
            let ranked = ranker.rank(&off_topic_query(&mut rng, entries), lang);
            out.push((features(&ranked), 0.0, 1.0));
        }
    }
    out
}

/// Queries a customer might write for one entry: three noisy copies of a
/// paraphrase of its question (words dropped, unknown words added), and two
/// windows of its answer.
fn entry_queries(rng: &mut Rng, e: &super::model::Entry, concepts: &[Concept]) -> Vec<String> {
    let plain: String = e
        .question
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' || c == '-' || c == '.' {
                c
            } else {
                ' '
            }
        })
        .collect();
    // Customers rarely use the FAQ's own words: the noisy copies start from
    // a paraphrase with synonyms swapped in.
    let para = paraphrase(rng, &plain, concepts);
    let q = words(&para);
    let a = words(&e.answer);
    let mut queries = Vec::new();
    for _ in 0..3 {
        let mut kept: Vec<String> = q
            .iter()
            .filter(|_| rng.chance(0.55))
            .map(|w| (*w).to_string())
            .collect();
        for _ in 0..rng.below(3) {
            let at = rng.below(kept.len() + 1);
            kept.insert(at, rng.unknown_word());
        }
        queries.push(kept.join(" "));
    }
    for _ in 0..2 {
        if a.len() > 4 {
            let len = 4 + rng.below(6);
            let start = rng.below(a.len().saturating_sub(len) + 1);
            let end = (start + len).min(a.len());
            let mut w: Vec<String> = a[start..end].iter().map(|s| (*s).to_string()).collect();
            if rng.chance(0.5) {
                w.push(rng.unknown_word());
            }
            queries.push(w.join(" "));
        }
    }
    queries
}

/// An off-topic question: unknown words and at most a word or two of the
/// FAQ, taken from unrelated entries.
fn off_topic_query(rng: &mut Rng, entries: &[super::model::Entry]) -> String {
    let mut w: Vec<String> = (0..1 + rng.below(4)).map(|_| rng.unknown_word()).collect();
    for _ in 0..rng.below(3) {
        let other = &entries[rng.below(entries.len())];
        let q = words(&other.question);
        if let Some(pick) = q.get(rng.below(q.len())) {
            w.insert(rng.below(w.len() + 1), (*pick).to_string());
        }
    }
    w.join(" ")
}

/// Share of real questions that the FAQ covers, assumed for the class
/// weights: a help desk's traffic is mostly about its own subject, so the
/// synthetic negatives (as many as the positives) are weighted down to it.
pub const IN_SCOPE_PRIOR: f64 = 0.75;

/// L2-regularized logistic regression by gradient descent, classes weighted
/// to the prior above.
pub fn fit(data: &[Sample]) -> Model {
    let mut m = Model {
        bias: 0.0,
        weights: [0.0; FEATURES],
    };
    let pos: f64 = data
        .iter()
        .filter(|d| d.1 > 0.5)
        .map(|d| d.2)
        .sum::<f64>()
        .max(1e-9);
    let neg: f64 = data
        .iter()
        .filter(|d| d.1 <= 0.5)
        .map(|d| d.2)
        .sum::<f64>()
        .max(1e-9);
    let lr = 0.5;
    let l2 = 1e-3;
    for _ in 0..2000 {
        let mut gb = 0.0;
        let mut gw = [0.0; FEATURES];
        let mut total_w = 0.0;
        for (x, y, sw) in data {
            let w = sw
                * if *y > 0.5 {
                    IN_SCOPE_PRIOR / pos
                } else {
                    (1.0 - IN_SCOPE_PRIOR) / neg
                };
            let err = m.predict(x) - y;
            gb += w * err;
            for k in 0..FEATURES {
                gw[k] += w * err * x[k];
            }
            total_w += w;
        }
        let total_w: f64 = if total_w > 0.0 { total_w } else { 1.0 };
        m.bias -= lr * gb / total_w;
        for (wk, g) in m.weights.iter_mut().zip(gw) {
            *wk -= lr * (g / total_w + l2 * *wk);
        }
    }
    m
}
