//! The FAQ: import of the Word export into `faq-index/`, the tantivy index,
//! EN/FR analysis, search with a calibrated confidence, evaluation.
//!
//! Public surface used by the rest of the crate: [`Engine::open`],
//! [`Engine::ask`] and the [`Answer`] JSON contract (DESIGN.md).

pub mod cmd;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::domain::Lang;

#[derive(Debug, thiserror::Error)]
pub enum FaqError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
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

/// One FAQ entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub question: String,
    pub answer: String,
    pub needs_person: bool,
    pub team: String,
}

/// Where the FAQ sources come from.
#[derive(Debug, Clone)]
pub enum Sources {
    Dir(PathBuf),
}

/// The search engine over the FAQ. Cheap to share behind an `Arc`.
pub struct Engine {
    threshold: f64,
}

impl Engine {
    /// Opens (building when the sources changed) the index under `data_dir`.
    pub fn open(_sources: &Sources, _data_dir: &Path, threshold: f64) -> Result<Engine, FaqError> {
        Ok(Engine { threshold })
    }

    /// Entry metadata (placeholder until the engine lands).
    pub fn entry(&self, _id: &str, _lang: Lang) -> Option<&Entry> {
        None
    }

    pub fn ask(&self, _question: &str, lang: Option<Lang>) -> Answer {
        let _ = self.threshold;
        Answer {
            answered: false,
            lang: lang.unwrap_or_default(),
            id: None,
            question: None,
            answer: None,
            score: 0.0,
            confidence: 0.0,
            alternatives: vec![],
        }
    }
}

impl Sources {
    /// `faq.dir` when set, else `./faq-index`.
    pub fn resolve(dir: Option<&Path>) -> Sources {
        Sources::Dir(
            dir.map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("faq-index")),
        )
    }
}
