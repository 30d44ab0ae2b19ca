//! The FAQ: import of the Word export into `faq-index/`, the tantivy index,
//! EN/FR analysis, search with a calibrated confidence, evaluation.
//!
//! Public surface used by the rest of the crate: [`Engine::open`],
//! [`Engine::ask`] and the [`Answer`] JSON contract (DESIGN.md),
//! [`Engine::entry`] (topic, `needs_person`, team) and [`Engine::contacts`].
//!
//! How a question is answered:
//! 1. language: `--lang`, else FAQ-vocabulary evidence (words only found in
//!    the English or only in the French entries), else lingua (EN/FR);
//! 2. greeting and sign-off removed, negative contractions spelled out,
//!    analysis in that language (folding, stop words, Snowball stemming),
//!    typo correction against the FAQ vocabulary, and concept expansion from
//!    `faq-index/synonyms.toml` (phrases in either language → concept ids);
//! 3. one tantivy BM25 query over each topic's question and answer in both
//!    languages (question weighted 3×, the other language low) and the
//!    concept fields;
//! 4. re-ranking by query coverage: the idf-weighted share of the question's
//!    words/concepts the entry contains (unknown words count against it);
//! 5. confidence = logistic(coverage, question coverage, margin to the
//!    runner-up); below the threshold the engine abstains and lists
//!    alternatives.

#![warn(missing_docs)]

pub mod analyze;
pub mod calibrate;
pub mod cmd;
mod engine;
pub mod eval;
pub mod form;
pub mod import;
mod index;
pub mod langid;
pub mod model;
pub mod ranker;
pub mod text;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::domain::Lang;

pub use engine::Engine;
pub use model::{Contact, Entry, Link};
pub use ranker::{Candidate, Ranker};

/// Why the FAQ could not be imported, loaded, indexed or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum FaqError {
    /// Reading or writing a file (sources, index directory, eval set) failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned (`<stdio>` for the terminal).
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The Word export cannot be parsed at this line (import only).
    #[error("line {line}: {message}")]
    Source {
        /// 1-based line number in the export.
        line: usize,
        /// What is wrong there.
        message: String,
    },
    /// A `faq-index/` TOML file (or a line of a JSON Lines eval file) does
    /// not parse or has unknown fields.
    #[error("{path}: {message}")]
    Toml {
        /// The file, or `<embedded>/NAME` for the built-in copy.
        path: PathBuf,
        /// The TOML parser's message.
        message: String,
    },
    /// The content breaks an invariant: EN/FR entries not paired, unknown
    /// team, empty answer, bad correction.
    #[error("{0}")]
    Invalid(String),
    /// tantivy failed to build, open or search the index.
    #[error("index: {0}")]
    Index(String),
    /// Anything else (JSON serialization of an answer).
    #[error("{0}")]
    Other(String),
}

/// One answer, exactly the `faq ask --json` contract of DESIGN.md.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Answer {
    /// The confidence reached the threshold; when false, `id`/`question`/
    /// `answer` are only the best guess ("did you mean").
    pub answered: bool,
    /// The language answered in: `--lang` when given, else detected.
    pub lang: Lang,
    /// Entry id of the best candidate; `None` when nothing matched at all.
    pub id: Option<String>,
    /// The best candidate's question in `lang`; `None` when nothing matched.
    pub question: Option<String>,
    /// The best candidate's answer in `lang`; `None` when nothing matched.
    pub answer: Option<String>,
    /// The ranker's re-ranked score of the best candidate (unbounded, 4
    /// decimals); 0 when nothing matched.
    pub score: f64,
    /// Calibrated probability in [0, 1] that the best candidate is right (4
    /// decimals).
    pub confidence: f64,
    /// Up to 3 other candidates: close runner-ups when answered, the next
    /// best ones when abstaining.
    pub alternatives: Vec<Alternative>,
}

/// A runner-up entry offered next to (or instead of) the answer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alternative {
    /// Entry id, shared by the EN and FR versions.
    pub id: String,
    /// Its question in the answer's language.
    pub question: String,
    /// Its re-ranked score, comparable to [`Answer::score`].
    pub score: f64,
}

/// Where the FAQ sources come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Sources {
    /// A `faq-index/` directory on disk (`faq.dir` or `./faq-index`).
    Dir(PathBuf),
    /// The copy of `faq-index/` compiled into the binary.
    Embedded,
}

impl Sources {
    /// `faq.dir` when set, else `./faq-index` when it exists, else the
    /// sources built into the binary (so `edesk serve` works anywhere).
    pub fn resolve(dir: Option<&Path>) -> Sources {
        match dir {
            Some(d) => Sources::Dir(d.to_path_buf()),
            None if Path::new("faq-index").join(model::ENTRIES_EN).is_file() => {
                Sources::Dir(PathBuf::from("faq-index"))
            }
            None => Sources::Embedded,
        }
    }
}
