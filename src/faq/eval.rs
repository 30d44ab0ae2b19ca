//! Evaluation on a question set (JSON Lines, the format of `faq-dev.jsonl`)
//! and the throughput/latency benchmark.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::text::question_key;
use super::{Engine, FaqError};
use crate::domain::Lang;

/// One line of an evaluation file. `expected: null` = out of scope.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    /// The question as a customer would ask it.
    pub q: String,
    /// Its true language, when known; scores the language detection.
    #[serde(default)]
    pub lang: Option<Lang>,
    /// FAQ question texts (either language, compared after folding) any of
    /// which is a right answer; `None` for an out-of-scope question.
    #[serde(default)]
    pub expected: Option<Vec<String>>,
    /// Free label (`paraphrase`, …) for whoever reads the file; not scored.
    #[serde(default)]
    pub kind: Option<String>,
}

/// Reads a JSON Lines eval file, skipping blank lines; a bad line is
/// reported as [`FaqError::Toml`] with its 1-based line number.
pub fn load_cases(path: &Path) -> Result<Vec<Case>, FaqError> {
    let text = super::model::read(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let case: Case = serde_json::from_str(line).map_err(|e| FaqError::Toml {
            path: path.to_path_buf(),
            message: format!("line {}: {e}", i + 1),
        })?;
        out.push(case);
    }
    Ok(out)
}

/// Retrieval counts over in-scope questions.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// In-scope questions counted.
    pub n: usize,
    /// Questions whose expected entry ranked first.
    pub hits1: usize,
    /// Questions whose expected entry ranked in the top 3.
    pub hits3: usize,
    /// Sum of the reciprocal ranks (a question whose entry is not ranked
    /// adds 0).
    pub rr: f64,
}

impl Metrics {
    fn add(&mut self, rank: Option<usize>) {
        self.n += 1;
        if let Some(r) = rank {
            if r == 0 {
                self.hits1 += 1;
            }
            if r < 3 {
                self.hits3 += 1;
            }
            self.rr += 1.0 / (r as f64 + 1.0);
        }
    }
    /// Recall at 1, in [0, 1] (0 when `n` is 0).
    pub fn r1(&self) -> f64 {
        ratio(self.hits1, self.n)
    }
    /// Recall at 3, in [0, 1] (0 when `n` is 0).
    pub fn r3(&self) -> f64 {
        ratio(self.hits3, self.n)
    }
    /// Mean reciprocal rank, in [0, 1] (0 when `n` is 0).
    pub fn mrr(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.rr / self.n as f64
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// An in-scope question not answered with the expected entry at rank 1.
#[derive(Debug, Clone)]
pub struct Miss {
    /// The question.
    pub q: String,
    /// The first expected question text.
    pub expected: String,
    /// The top-ranked entry's question; `None` when nothing ranked.
    pub got: Option<String>,
    /// 0-based rank of the expected entry; `None` when not ranked.
    pub rank: Option<usize>,
    /// The answer's confidence.
    pub confidence: f64,
    /// Whether the engine answered rather than abstained.
    pub answered: bool,
}

/// What [`evaluate`] measured; `Display` prints it for `edesk faq eval`.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Retrieval over all in-scope questions.
    pub all: Metrics,
    /// Retrieval per language: the case's `lang`, else the detected one.
    pub per_lang: BTreeMap<Lang, Metrics>,
    /// Questions with `expected: null`.
    pub out_of_scope: usize,
    /// Out-of-scope questions the engine abstained on.
    pub oos_abstained: usize,
    /// In-scope questions the engine abstained on.
    pub wrongly_abstained: usize,
    /// In-scope questions answered with a wrong entry.
    pub wrongly_answered: usize,
    /// Questions with a `lang` to check detection against.
    pub lang_checked: usize,
    /// Of those, detected correctly.
    pub lang_right: usize,
    /// In-scope questions wrong at rank 1 or abstained on.
    pub misses: Vec<Miss>,
    /// Out-of-scope questions answered anyway (question, answered id, confidence).
    pub oos_answered: Vec<(String, String, f64)>,
}

impl Report {
    /// Share of abstentions that were on out-of-scope questions.
    pub fn abstention_precision(&self) -> f64 {
        ratio(
            self.oos_abstained,
            self.oos_abstained + self.wrongly_abstained,
        )
    }
    /// Share of out-of-scope questions abstained on.
    pub fn abstention_recall(&self) -> f64 {
        ratio(self.oos_abstained, self.out_of_scope)
    }
    /// Share of in-scope questions abstained on.
    pub fn wrong_abstention_rate(&self) -> f64 {
        ratio(self.wrongly_abstained, self.all.n)
    }
}

/// Runs every case through language detection, ranking and `ask`.
pub fn evaluate(engine: &Engine, cases: &[Case]) -> Result<Report, FaqError> {
    let mut by_question: HashMap<String, usize> = HashMap::new();
    for lang in Lang::ALL {
        for (i, e) in engine.entries(lang).iter().enumerate() {
            by_question.insert(question_key(&e.question), i);
        }
    }
    let mut report = Report::default();
    for case in cases {
        let detected = engine.detect_lang(&case.q);
        if let Some(l) = case.lang {
            report.lang_checked += 1;
            if l == detected {
                report.lang_right += 1;
            }
        }
        let answer = engine.ask(&case.q, None);
        let Some(expected) = &case.expected else {
            report.out_of_scope += 1;
            if answer.answered {
                report.oos_answered.push((
                    case.q.clone(),
                    answer.id.clone().unwrap_or_default(),
                    answer.confidence,
                ));
            } else {
                report.oos_abstained += 1;
            }
            continue;
        };
        let mut topics = Vec::new();
        for q in expected {
            let t = by_question.get(&question_key(q)).ok_or_else(|| {
                FaqError::Invalid(format!("expected question not in the FAQ: {q:?}"))
            })?;
            topics.push(*t);
        }
        let ranked = engine.rank(&case.q, detected);
        let rank = ranked.iter().position(|c| topics.contains(&c.topic));
        report.all.add(rank);
        report
            .per_lang
            .entry(case.lang.unwrap_or(detected))
            .or_default()
            .add(rank);
        if !answer.answered {
            report.wrongly_abstained += 1;
        } else if rank != Some(0) {
            report.wrongly_answered += 1;
        }
        if rank != Some(0) || !answer.answered {
            let entries = engine.entries(detected);
            report.misses.push(Miss {
                q: case.q.clone(),
                expected: expected.first().cloned().unwrap_or_default(),
                got: ranked
                    .first()
                    .and_then(|c| entries.get(c.topic))
                    .map(|e| e.question.clone()),
                rank,
                confidence: answer.confidence,
                answered: answer.answered,
            });
        }
    }
    Ok(report)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.all;
        writeln!(
            f,
            "in-scope: {:>3}  R@1 {:.3}  R@3 {:.3}  MRR {:.3}",
            m.n,
            m.r1(),
            m.r3(),
            m.mrr()
        )?;
        for (lang, m) in &self.per_lang {
            writeln!(
                f,
                "  {lang}:     {:>3}  R@1 {:.3}  R@3 {:.3}  MRR {:.3}",
                m.n,
                m.r1(),
                m.r3(),
                m.mrr()
            )?;
        }
        writeln!(
            f,
            "out-of-scope: {}  abstained {}  abstention precision {:.3}  recall {:.3}",
            self.out_of_scope,
            self.oos_abstained,
            self.abstention_precision(),
            self.abstention_recall()
        )?;
        writeln!(
            f,
            "in-scope wrongly abstained: {} ({:.1} %)  answered wrongly: {}",
            self.wrongly_abstained,
            100.0 * self.wrong_abstention_rate(),
            self.wrongly_answered
        )?;
        writeln!(
            f,
            "language detection: {}/{} right",
            self.lang_right, self.lang_checked
        )?;
        if !self.misses.is_empty() {
            writeln!(f, "misses:")?;
            for x in &self.misses {
                let rank = x.rank.map_or("-".to_string(), |r| (r + 1).to_string());
                writeln!(
                    f,
                    "  [rank {rank}, conf {:.2}{}] {}\n      expected: {}\n      got:      {}",
                    x.confidence,
                    if x.answered { "" } else { ", abstained" },
                    x.q,
                    x.expected,
                    x.got.as_deref().unwrap_or("(nothing)")
                )?;
            }
        }
        for (q, id, c) in &self.oos_answered {
            writeln!(f, "  out-of-scope answered [conf {c:.2}] {q}  → {id}")?;
        }
        Ok(())
    }
}

/// Throughput and latency of `ask` on one thread (`edesk faq bench`).
#[derive(Debug, Clone)]
pub struct Bench {
    /// Questions asked in total (list length × rounds).
    pub questions: usize,
    /// Questions answered per second, single thread.
    pub per_second: f64,
    /// Median latency of one `ask`.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Slowest `ask`.
    pub max: Duration,
    /// Mean time of lingua detection alone per question.
    pub lingua_mean: Duration,
    /// Mean time of the vocabulary evidence alone per question.
    pub vocab_lang_mean: Duration,
    /// Questions the vocabulary evidence could not decide (lingua ran).
    pub lingua_needed: usize,
    /// Length of the question list.
    pub distinct: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Single-threaded `ask` over the questions, repeated `rounds` times.
pub fn bench(engine: &Engine, questions: &[String], rounds: usize) -> Bench {
    for q in questions {
        let _ = engine.ask(q, None);
    }
    let mut times = Vec::with_capacity(questions.len() * rounds);
    let start = Instant::now();
    for _ in 0..rounds {
        for q in questions {
            let t = Instant::now();
            let a = engine.ask(q, None);
            std::hint::black_box(a);
            times.push(t.elapsed());
        }
    }
    let total = start.elapsed();
    times.sort();
    let time_each = |f: &dyn Fn(&str)| {
        let t = Instant::now();
        for q in questions {
            f(q);
        }
        t.elapsed() / questions.len().max(1) as u32
    };
    let lingua_mean = time_each(&|q| {
        std::hint::black_box(engine.langid().lingua(q));
    });
    let vocab_lang_mean = time_each(&|q| {
        std::hint::black_box(engine.langid().evidence(q));
    });
    Bench {
        questions: times.len(),
        per_second: times.len() as f64 / total.as_secs_f64().max(1e-9),
        p50: percentile(&times, 0.5),
        p99: percentile(&times, 0.99),
        max: times.last().copied().unwrap_or_default(),
        lingua_mean,
        vocab_lang_mean,
        lingua_needed: questions
            .iter()
            .filter(|q| engine.langid().by_vocabulary(q).is_none())
            .count(),
        distinct: questions.len(),
    }
}

impl fmt::Display for Bench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} questions, single thread: {:.0} questions/s  p50 {:?}  p99 {:?}  max {:?}",
            self.questions, self.per_second, self.p50, self.p99, self.max
        )?;
        write!(
            f,
            "language detection per question: vocabulary evidence {:?}, lingua {:?} (lingua needed for {} of {} questions)",
            self.vocab_lang_mean, self.lingua_mean, self.lingua_needed, self.distinct
        )
    }
}
