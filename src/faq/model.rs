//! The FAQ content as edited in `faq-index/`: entries per language, support
//! contacts, useful links and the synonym concepts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{FaqError, Sources};
use crate::domain::Lang;

/// English entries file in `faq-index/`.
pub const ENTRIES_EN: &str = "entries.en.toml";
/// French entries file, paired one to one by id with the English one.
pub const ENTRIES_FR: &str = "entries.fr.toml";
/// Support contacts and useful links file.
pub const CONTACTS: &str = "contacts.toml";
/// Concept (synonym) file used by the analysis.
pub const SYNONYMS: &str = "synonyms.toml";
/// Hand corrections read by the import only (not compiled in).
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
    /// Slug of the English question's first content words (`-2`, `-3`… when
    /// taken): the `id` of `faq ask --json` and of FAQ answers in decisions.
    pub id: String,
    /// Topic key: the `corrections.toml` `topics` mapping of the section
    /// heading, else a slug of the heading.
    pub topic: String,
    /// Section heading of the export, in this entry's language.
    pub section: String,
    /// Question text as shown to the customer.
    pub question: String,
    /// Answer text, plain text, as sent to the customer.
    pub answer: String,
    /// URLs and addresses found in the answer.
    #[serde(default)]
    pub links: Vec<String>,
    /// A bot must not settle this topic alone (hold release, RMA, …).
    #[serde(default)]
    pub needs_person: bool,
    /// Team key (one of [`TEAMS`]) escalations on this topic go to.
    pub team: String,
}

/// Layout of `entries.en.toml` / `entries.fr.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EntryFile {
    /// `[[entry]]` tables, in export order.
    #[serde(default)]
    pub entry: Vec<Entry>,
}

/// A support contact from the source's contacts table (or named in answers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// Team key (one of [`TEAMS`]) this contact belongs to.
    pub team: String,
    /// Display name in English.
    pub name_en: String,
    /// Display name in French.
    pub name_fr: String,
    /// Support address; `None` for contacts reached by web or phone only.
    #[serde(default)]
    pub email: Option<String>,
    /// Web pages, as written in the source (often without scheme).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Phone number as written in the source.
    #[serde(default)]
    pub phone: Option<String>,
    /// When to use this contact, in English.
    pub description_en: String,
    /// When to use this contact, in French.
    pub description_fr: String,
}

/// A row of the source's useful-links table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// Which half of the export the row came from.
    pub lang: Lang,
    /// Link title.
    pub name: String,
    /// Address as written in the source.
    pub url: String,
    /// What the page is for.
    pub description: String,
}

/// Layout of `contacts.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ContactFile {
    /// `[[contact]]` tables.
    #[serde(default)]
    pub contact: Vec<Contact>,
    /// `[[link]]` tables, both languages.
    #[serde(default)]
    pub link: Vec<Link>,
}

/// A group of words/phrases (either language) that mean the same thing here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concept {
    /// Concept id; indexed and queried as the token `c:ID`.
    pub id: String,
    /// Words and phrases in either language, analyzed like the text.
    pub terms: Vec<String>,
}

/// Layout of `synonyms.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SynonymFile {
    /// `[[concept]]` tables; a concept's position is its index in the analyzer.
    #[serde(default)]
    pub concept: Vec<Concept>,
}

/// Everything the engine is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct FaqSet {
    /// English entries, in the same order as `fr`.
    pub en: Vec<Entry>,
    /// French entries; `fr[i].id == en[i].id`.
    pub fr: Vec<Entry>,
    /// Contacts and links.
    pub contacts: ContactFile,
    /// Concepts for the analysis.
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
    /// Reads and validates the four source files; errors name the file
    /// (`<embedded>/…` for the built-in copy).
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

    /// The entries of one language (same order and ids in both).
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

/// Reads a UTF-8 file, naming it in the error.
pub fn read(path: &Path) -> Result<String, FaqError> {
    std::fs::read_to_string(path).map_err(|source| FaqError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses TOML text; `path` only names the source in the error.
pub fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, FaqError> {
    toml::from_str(text).map_err(|e| FaqError::Toml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
