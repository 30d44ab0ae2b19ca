//! Language of a question: FAQ-vocabulary evidence first (fast, and right on
//! domain words), lingua (EN/FR only) when the evidence is thin.

use std::collections::HashSet;
use std::sync::OnceLock;

use lingua::{Language, LanguageDetector, LanguageDetectorBuilder};

use super::model::FaqSet;
use super::text::words;
use crate::domain::Lang;

const EN_FUNCTION: &str = "the a an is are was do does did how what why when where which who \
can could would should will i my me we our you your it this that these those of to for with from \
in on at by and or not no please thanks hi hello there their they have has get want need";

const FR_FUNCTION: &str = "le la les un une des du de d l est sont que qui quoi quel quelle \
comment pourquoi quand ou je j me mon ma mes nous notre vous votre il elle ce cette ces pour avec \
dans sur par et ne pas plus merci bonjour puis peux dois faut faire veux";

/// EN/FR detector: words found only in one language's FAQ entries (plus
/// function words) are the evidence; lingua is built lazily on first need.
pub struct LangId {
    en_only: HashSet<String>,
    fr_only: HashSet<String>,
    detector: OnceLock<LanguageDetector>,
}

/// Drops `( … )` spans: the French answers quote English UI labels in
/// parentheses, which must not count as French vocabulary.
fn without_parentheses(text: &str) -> String {
    let mut depth = 0usize;
    text.chars()
        .filter(|c| match c {
            '(' => {
                depth += 1;
                false
            }
            ')' => {
                depth = depth.saturating_sub(1);
                false
            }
            _ => depth == 0,
        })
        .collect()
}

impl LangId {
    /// Builds the one-language vocabularies from the entries (French words
    /// inside parentheses are ignored: they quote English UI labels).
    pub fn new(set: &FaqSet) -> LangId {
        let mut en: HashSet<String> = words(EN_FUNCTION).collect();
        let mut fr: HashSet<String> = words(FR_FUNCTION).collect();
        for e in &set.en {
            en.extend(words(&e.question));
            en.extend(words(&e.answer));
        }
        for e in &set.fr {
            fr.extend(words(&without_parentheses(&e.question)));
            fr.extend(words(&without_parentheses(&e.answer)));
        }
        let en_only = en.difference(&fr).cloned().collect();
        let fr_only = fr.difference(&en).cloned().collect();
        LangId {
            en_only,
            fr_only,
            detector: OnceLock::new(),
        }
    }

    /// The evidence counts, exposed for tests and diagnostics.
    pub fn evidence(&self, text: &str) -> (usize, usize) {
        let mut en = 0;
        let mut fr = 0;
        for w in words(text) {
            if self.en_only.contains(&w) {
                en += 1;
            } else if self.fr_only.contains(&w) {
                fr += 1;
            }
        }
        (en, fr)
    }

    /// The vocabulary evidence alone, when it is clear enough.
    pub fn by_vocabulary(&self, text: &str) -> Option<Lang> {
        let (en, fr) = self.evidence(text);
        if en >= 1 && fr == 0 || en >= fr + 2 {
            return Some(Lang::En);
        }
        if fr >= 1 && en == 0 || fr >= en + 2 {
            return Some(Lang::Fr);
        }
        None
    }

    /// Vocabulary evidence when clear, else lingua, else the language with
    /// more evidence (English on a tie).
    pub fn detect(&self, text: &str) -> Lang {
        if let Some(l) = self.by_vocabulary(text) {
            return l;
        }
        let (en, fr) = self.evidence(text);
        match self.lingua(text) {
            Some(l) => l,
            None if fr > en => Lang::Fr,
            None => Lang::En,
        }
    }

    /// lingua alone (None when undecided), for the language benchmark.
    pub fn lingua(&self, text: &str) -> Option<Lang> {
        let detector = self.detector.get_or_init(|| {
            LanguageDetectorBuilder::from_languages(&[Language::English, Language::French])
                .with_minimum_relative_distance(0.1)
                .build()
        });
        match detector.detect_language_of(text) {
            Some(Language::French) => Some(Lang::Fr),
            Some(_) => Some(Lang::En),
            None => None,
        }
    }
}
