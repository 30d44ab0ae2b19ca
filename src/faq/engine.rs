//! The engine: the ranker, the confidence model fitted on the ranker's own
//! rankings (`calibrate`), and the threshold below which it abstains. What
//! the rest of the crate asks questions to.

use std::path::Path;

use super::calibrate::{Model, features, fit, training_set};
use super::langid::LangId;
use super::model::{Concept, Contact, Entry, Link};
use super::ranker::{Candidate, Ranker};
use super::{Alternative, Answer, FaqError, Sources};
use crate::domain::Lang;

/// The FAQ answering engine. Cheap to share behind an `Arc`.
pub struct Engine {
    ranker: Ranker,
    model: Model,
    threshold: f64,
}

impl Engine {
    /// Opens the ranker (building the index under `data_dir` when the
    /// sources changed) and fits the confidence model on it.
    pub fn open(sources: &Sources, data_dir: &Path, threshold: f64) -> Result<Engine, FaqError> {
        let ranker = Ranker::open(sources, data_dir)?;
        let model = fit(&training_set(&ranker));
        Ok(Engine {
            ranker,
            model,
            threshold,
        })
    }

    /// The ranker underneath (index, analyzers, statistics).
    pub fn ranker(&self) -> &Ranker {
        &self.ranker
    }

    /// The synonym concepts (id and terms in both languages).
    pub fn concepts(&self) -> &[Concept] {
        self.ranker.concepts()
    }

    /// The fitted confidence model.
    pub fn model(&self) -> Model {
        self.model
    }

    /// Below this confidence the engine abstains.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The entry of a topic in one language.
    pub fn entry(&self, id: &str, lang: Lang) -> Option<&Entry> {
        self.ranker.entry(id, lang)
    }

    /// Every entry in one language; a topic's index is its position.
    pub fn entries(&self, lang: Lang) -> &[Entry] {
        self.ranker.entries(lang)
    }

    /// Support contacts (team, names, address, description in both languages).
    pub fn contacts(&self) -> &[Contact] {
        self.ranker.contacts()
    }

    /// Links the FAQ refers to.
    pub fn links(&self) -> &[Link] {
        self.ranker.links()
    }

    /// The language of a question (FAQ vocabulary evidence, else lingua).
    pub fn detect_lang(&self, text: &str) -> Lang {
        self.ranker.detect_lang(text)
    }

    /// The language detector built from the FAQ.
    pub fn langid(&self) -> &LangId {
        self.ranker.langid()
    }

    /// All candidates, best first, with their features.
    pub fn rank(&self, question: &str, lang: Lang) -> Vec<Candidate> {
        self.ranker.rank(question, lang)
    }

    /// A human-readable trace of how a question is analyzed and ranked, with
    /// the confidence features and value.
    pub fn explain(&self, question: &str, lang: Option<Lang>) -> String {
        let lang = lang.unwrap_or_else(|| self.ranker.detect_lang(question));
        let ranked = self.ranker.rank(question, lang);
        let mut s = self.ranker.trace(question, lang, &ranked);
        s.push_str(&format!(
            "features {:?} confidence {:.3}\n",
            features(&ranked),
            self.confidence(&ranked)
        ));
        s
    }

    /// Confidence in the best candidate, in [0, 1].
    pub fn confidence(&self, ranked: &[Candidate]) -> f64 {
        if ranked.is_empty() {
            return 0.0;
        }
        self.model.predict(&features(ranked))
    }

    /// Answers a question (in `lang`, else the detected language): the best
    /// entry and its confidence, or an abstention with alternatives.
    pub fn ask(&self, question: &str, lang: Option<Lang>) -> Answer {
        self.ask_ranked(question, lang, 0).0
    }

    /// [`Engine::ask`], and the ids of the `next` entries ranked after the
    /// best one, whatever their score (the mail router weighs them).
    pub fn ask_ranked(
        &self,
        question: &str,
        lang: Option<Lang>,
        next: usize,
    ) -> (Answer, Vec<String>) {
        let q = question.trim();
        let lang = match lang {
            Some(l) => l,
            None if q.is_empty() => Lang::default(),
            None => self.ranker.detect_lang(q),
        };
        let ranked = if q.is_empty() {
            Vec::new()
        } else {
            self.ranker.rank(q, lang)
        };
        let confidence = self.confidence(&ranked);
        let entries = self.ranker.entries(lang);
        let Some(best) = ranked.first() else {
            let nothing = Answer {
                answered: false,
                lang,
                id: None,
                question: None,
                answer: None,
                score: 0.0,
                confidence: 0.0,
                alternatives: Vec::new(),
            };
            return (nothing, Vec::new());
        };
        let answered = confidence >= self.threshold;
        // Close runner-ups are offered as "did you mean"; when abstaining,
        // the next best ones are.
        let close = if answered { 0.8 } else { 0.0 };
        let alternatives = ranked
            .iter()
            .skip(1)
            .filter(|c| c.score >= close * best.score)
            .take(3)
            .filter_map(|c| {
                entries.get(c.topic).map(|e| Alternative {
                    id: e.id.clone(),
                    question: e.question.clone(),
                    score: round(c.score),
                })
            })
            .collect();
        let entry = entries.get(best.topic);
        let runners_up = ranked
            .iter()
            .skip(1)
            .take(next)
            .filter_map(|c| entries.get(c.topic).map(|e| e.id.clone()))
            .collect();
        let answer = Answer {
            answered,
            lang,
            id: entry.map(|e| e.id.clone()),
            question: entry.map(|e| e.question.clone()),
            answer: entry.map(|e| e.answer.clone()),
            score: round(best.score),
            confidence: round(confidence),
            alternatives,
        };
        (answer, runners_up)
    }
}

fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
