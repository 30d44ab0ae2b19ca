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

pub mod analyze;
pub mod calibrate;
pub mod cmd;
mod engine;
pub mod eval;
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

#[derive(Debug, thiserror::Error)]
pub enum FaqError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("line {line}: {message}")]
    Source { line: usize, message: String },
    #[error("{path}: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("index: {0}")]
    Index(String),
    #[error("{0}")]
    Other(String),
}

/// One answer, exactly the `faq ask --json` contract of DESIGN.md.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Answer {
    pub answered: bool,
    pub lang: Lang,
    pub id: Option<String>,
    pub question: Option<String>,
    pub answer: Option<String>,
    pub score: f64,
    pub confidence: f64,
    pub alternatives: Vec<Alternative>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alternative {
    pub id: String,
    pub question: String,
    pub score: f64,
}

/// Where the FAQ sources come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Sources {
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
