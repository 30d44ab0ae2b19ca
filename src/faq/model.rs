//! The FAQ content as edited in `faq-index/`: entries per language, support
//! contacts, useful links and the synonym concepts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{FaqError, Sources};
use crate::domain::Lang;

pub const ENTRIES_EN: &str = "entries.en.toml";
pub const ENTRIES_FR: &str = "entries.fr.toml";
pub const CONTACTS: &str = "contacts.toml";
pub const SYNONYMS: &str = "synonyms.toml";
pub const CORRECTIONS: &str = "corrections.toml";

/// The support teams an entry or a contact can route to (DESIGN.md keys).
pub const TEAMS: [&str; 7] = [
    "edelivery-support",
    "customer-service",
    "exportops",
    "sac-support",
    "licensing",
    "ucss",
    "cuwl",
];

/// One question and its answer in one language. `id` is shared by the EN and
/// FR versions of the same topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    pub topic: String,
    pub section: String,
    pub question: String,
    pub answer: String,
    #[serde(default)]
    pub links: Vec<String>,
    /// A bot must not settle this topic alone (hold release, RMA, …).
    #[serde(default)]
    pub needs_person: bool,
    pub team: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EntryFile {
    #[serde(default)]
    pub entry: Vec<Entry>,
}

/// A support contact from the source's contacts table (or named in answers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub team: String,
    pub name_en: String,
    pub name_fr: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub phone: Option<String>,
    pub description_en: String,
    pub description_fr: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub lang: Lang,
    pub name: String,
    pub url: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ContactFile {
    #[serde(default)]
    pub contact: Vec<Contact>,
    #[serde(default)]
    pub link: Vec<Link>,
}

/// A group of words/phrases (either language) that mean the same thing here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concept {
    pub id: String,
    pub terms: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SynonymFile {
    #[serde(default)]
    pub concept: Vec<Concept>,
}

/// Everything the engine is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct FaqSet {
    pub en: Vec<Entry>,
    pub fr: Vec<Entry>,
    pub contacts: ContactFile,
    pub synonyms: SynonymFile,
    /// SHA-256 over the raw source files, to know when to rebuild the index.
    pub hash: String,
}

/// The sources compiled into the binary, so `edesk serve` works anywhere.
pub const EMBEDDED: [(&str, &str); 4] = [
    (ENTRIES_EN, include_str!("../../faq-index/entries.en.toml")),
    (ENTRIES_FR, include_str!("../../faq-index/entries.fr.toml")),
    (CONTACTS, include_str!("../../faq-index/contacts.toml")),
    (SYNONYMS, include_str!("../../faq-index/synonyms.toml")),
];

impl FaqSet {
    pub fn load(sources: &Sources) -> Result<FaqSet, FaqError> {
        let mut texts = Vec::with_capacity(EMBEDDED.len());
        for (name, embedded) in EMBEDDED {
            let text = match sources {
                Sources::Embedded => embedded.to_string(),
                Sources::Dir(dir) => read(&dir.join(name))?,
            };
            texts.push((name, text));
        }
        let mut hasher = Sha256::new();
        for (name, text) in &texts {
            hasher.update(name.as_bytes());
            hasher.update((text.len() as u64).to_le_bytes());
            hasher.update(text.as_bytes());
        }
        let hash = hex::encode(hasher.finalize());
        let origin = |name: &str| match sources {
            Sources::Embedded => PathBuf::from(format!("<embedded>/{name}")),
            Sources::Dir(dir) => dir.join(name),
        };
        let en: EntryFile = parse(&origin(ENTRIES_EN), &texts[0].1)?;
        let fr: EntryFile = parse(&origin(ENTRIES_FR), &texts[1].1)?;
        let contacts: ContactFile = parse(&origin(CONTACTS), &texts[2].1)?;
        let synonyms: SynonymFile = parse(&origin(SYNONYMS), &texts[3].1)?;
        let set = FaqSet {
            en: en.entry,
            fr: fr.entry,
            contacts,
            synonyms,
            hash,
        };
        set.validate()?;
        Ok(set)
    }

    pub fn entries(&self, lang: Lang) -> &[Entry] {
        match lang {
            Lang::En => &self.en,
            Lang::Fr => &self.fr,
        }
    }

    /// EN and FR must pair one to one by id, teams must be known.
    fn validate(&self) -> Result<(), FaqError> {
        let bad = |m: String| Err(FaqError::Invalid(m));
        if self.en.is_empty() {
            return bad("no FAQ entries".into());
        }
        if self.en.len() != self.fr.len() {
            return bad(format!(
                "{} English entries but {} French ones",
                self.en.len(),
                self.fr.len()
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (e, f) in self.en.iter().zip(&self.fr) {
            if e.id != f.id {
                return bad(format!(
                    "entry {:?} (en) is paired with {:?} (fr)",
                    e.id, f.id
                ));
            }
            if !seen.insert(e.id.as_str()) {
                return bad(format!("duplicate entry id {:?}", e.id));
            }
            for x in [e, f] {
                if x.question.trim().is_empty() || x.answer.trim().is_empty() {
                    return bad(format!("entry {:?} has an empty question or answer", x.id));
                }
                if !TEAMS.contains(&x.team.as_str()) {
                    return bad(format!("entry {:?}: unknown team {:?}", x.id, x.team));
                }
            }
        }
        for c in &self.contacts.contact {
            if !TEAMS.contains(&c.team.as_str()) {
                return bad(format!(
                    "contact {:?}: unknown team {:?}",
                    c.name_en, c.team
                ));
            }
        }
        Ok(())
    }
}

pub fn read(path: &Path) -> Result<String, FaqError> {
    std::fs::read_to_string(path).map_err(|source| FaqError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, FaqError> {
    toml::from_str(text).map_err(|e| FaqError::Toml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
