//! `edesk faq import`: the Word export (text) → the editable `faq-index/`
//! files. The export holds an English half then a French half, each with a
//! contacts table, a links table and the Q/A list; entries pair by position.
//! Hand corrections live in `faq-index/corrections.toml` and are applied
//! here, so re-running the import reproduces the committed files.

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde::Deserialize;

use super::FaqError;
use super::model::{
    CONTACTS, CORRECTIONS, Contact, ContactFile, ENTRIES_EN, ENTRIES_FR, Entry, EntryFile, Link,
    SYNONYMS, TEAMS,
};
use super::text::{repair_links, slug, strip_markers};
use crate::domain::Lang;

/// Hand curation applied by the import (see `faq-index/README.md`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Corrections {
    /// Section heading (either language) → topic key.
    #[serde(default)]
    pub topics: BTreeMap<String, String>,
    /// Text edits to individual entries, applied before ids and routes.
    #[serde(default)]
    pub fix: Vec<Fix>,
    /// Team and `needs_person` rules, first match wins.
    #[serde(default)]
    pub route: Vec<Route>,
    /// Entry pairs the Q/A list lacks.
    #[serde(default)]
    pub add: Vec<Added>,
    /// Contact email or URL → team key.
    #[serde(default)]
    pub contact_teams: BTreeMap<String, String>,
}

/// One hand edit of an entry's question or answer; exactly one of
/// `set` and `replace` is given, else the import fails.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fix {
    /// Which half of the export the entry is in.
    pub lang: Lang,
    /// 1-based position of the entry in its half of the export.
    pub position: usize,
    /// The text edited.
    pub field: FixField,
    /// New text replacing the whole field.
    #[serde(default)]
    pub set: Option<String>,
    /// `(from, to)`: `from` must occur exactly once in the field.
    #[serde(default)]
    pub replace: Option<(String, String)>,
    /// Reason for the edit, for reviewers only (not used by the import).
    pub why: String,
}

/// The part of an entry a [`Fix`] edits (`"question"` / `"answer"` in TOML).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FixField {
    /// The question text.
    Question,
    /// The answer text.
    Answer,
}

/// First matching rule (regex over the English question) gives the team and
/// the `needs_person` flag; no match: `edelivery-support`, answerable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Regex matched against the English question.
    pub pattern: String,
    /// Team key (one of [`TEAMS`]) the matching entries route to.
    pub team: String,
    /// Matching entries must not be settled by the bot alone.
    #[serde(default)]
    pub needs_person: bool,
}

/// A topic the source states only outside its Q/A list (e.g. in the
/// contacts table), added as an entry pair.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Added {
    /// Entry id, shared by the EN and FR entries.
    pub id: String,
    /// Topic key (as in `topics`).
    pub topic: String,
    /// Team key (one of [`TEAMS`]).
    pub team: String,
    /// The bot must not settle this topic alone.
    #[serde(default)]
    pub needs_person: bool,
    /// English question.
    pub question_en: String,
    /// English answer.
    pub answer_en: String,
    /// French question.
    pub question_fr: String,
    /// French answer.
    pub answer_fr: String,
}

/// What the import produces: the text of each generated file.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// `(file name in faq-index/, content)`, in write order.
    pub files: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone)]
struct RawEntry {
    line: usize,
    question: String,
    answer: String,
    section: Option<String>,
}

#[derive(Debug, Clone)]
struct Row {
    line: usize,
    cells: Vec<String>,
}

#[derive(Debug, Default)]
struct Half {
    contacts: Vec<Row>,
    links: Vec<Row>,
    entries: Vec<RawEntry>,
}

const ID_STOP: &[&str] = &[
    "a", "an", "the", "i", "my", "me", "do", "does", "can", "is", "are", "what", "why", "how",
    "if", "of", "to", "for", "in", "on", "and", "or", "there", "that", "this", "with", "from",
    "when", "would", "should", "will", "it", "be", "have", "has", "which", "about", "an",
];

fn err(line: usize, message: impl Into<String>) -> FaqError {
    FaqError::Source {
        line,
        message: message.into(),
    }
}

/// Decodes strictly: a wrong encoding is reported at its line, not guessed.
fn decode(bytes: &[u8]) -> Result<&str, FaqError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        err(
            line,
            "not valid UTF-8 (the export must be saved as UTF-8 text)",
        )
    })
}

/// Parses the export and applies `corrections`; returns the generated files.
/// `synonyms` is copied as is (it is curated by hand, not derived).
pub fn import(
    bytes: &[u8],
    corrections: &Corrections,
    synonyms: &str,
) -> Result<Generated, FaqError> {
    let text = decode(bytes)?;
    let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    if lines.iter().all(|l| l.trim().is_empty()) {
        return Err(err(1, "the file is empty"));
    }
    let split = lines
        .iter()
        .position(|l| strip_markers(l).trim().starts_with("Français"))
        .ok_or_else(|| {
            err(
                lines.len(),
                "no French half (\"Français\" heading) found: truncated file?",
            )
        })?;
    let en = parse_half(&lines[..split], 1)?;
    let fr = parse_half(&lines[split + 1..], split + 2)?;
    build(en, fr, corrections, synonyms)
}

fn is_q(t: &str) -> bool {
    t.starts_with("Q:") || t.starts_with("Q. ")
}

fn is_a(t: &str) -> bool {
    ["A:", "A. ", "R:", "R. "].iter().any(|m| t.starts_with(m))
}

fn after_marker(t: &str) -> String {
    t[2..].split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_table_cell(raw: &str) -> bool {
    raw.trim_start_matches(' ').starts_with('\t')
}

fn clean(raw: &str) -> String {
    let s = strip_markers(raw);
    repair_links(&s.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn parse_half(lines: &[&str], first_line: usize) -> Result<Half, FaqError> {
    let mut half = Half::default();
    let mut i = 0;
    let mut tables = Vec::new();
    while tables.len() < 2 {
        let Some(h) = (i..lines.len()).find(|&k| {
            let t = clean(lines[k]);
            is_table_cell(&strip_markers(lines[k])) && (t == "Name" || t == "Nom")
        }) else {
            break;
        };
        let (rows, next) = parse_table(lines, h + 3, first_line);
        tables.push(rows);
        i = next;
    }
    let mut tables = tables.into_iter();
    half.contacts = tables.next().unwrap_or_default();
    half.links = tables.next().unwrap_or_default();
    if half.contacts.is_empty() {
        return Err(err(first_line, "no support contacts table in this half"));
    }
    half.entries = parse_entries(lines, i, first_line)?;
    if half.entries.is_empty() {
        return Err(err(
            first_line + lines.len(),
            "no questions found in this half",
        ));
    }
    Ok(half)
}

/// Cells start with a tab; a plain line continues the current cell unless a
/// row is complete and a blank line came first (then the table is over).
fn parse_table(lines: &[&str], start: usize, first_line: usize) -> (Vec<Row>, usize) {
    let mut cells: Vec<(usize, String)> = Vec::new();
    let mut blank = false;
    let mut k = start;
    while k < lines.len() {
        let raw = strip_markers(lines[k]);
        let t = clean(lines[k]);
        if is_q(&t) {
            break;
        }
        if is_table_cell(&raw) {
            if (t == "Name" || t == "Nom") && cells.len().is_multiple_of(3) {
                break;
            }
            cells.push((first_line + k, t));
            blank = false;
        } else if t.is_empty() {
            blank = true;
        } else if cells.is_empty() || (cells.len().is_multiple_of(3) && blank) {
            break;
        } else if let Some((_, last)) = cells.last_mut() {
            last.push('\n');
            last.push_str(&t);
        }
        k += 1;
    }
    let rows = cells
        .chunks(3)
        .filter(|c| c.len() == 3)
        .map(|c| Row {
            line: c[0].0,
            cells: c.iter().map(|(_, s)| s.clone()).collect(),
        })
        .collect();
    (rows, k)
}

/// Word soft line breaks: a line starting lower-case (or with `.`) after a
/// line that does not end a sentence continues that line.
fn logical_lines(lines: &[&str], start: usize, first_line: usize) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (k, raw) in lines.iter().enumerate().skip(start) {
        let t = clean(raw);
        let continues = t
            .chars()
            .next()
            .is_some_and(|c| c.is_lowercase() || (c == '.' && t.len() > 1));
        if let Some((_, prev)) = out.last_mut() {
            let prev_open = !prev.is_empty() && !prev.ends_with(['.', '!', '?', ':']);
            if continues && prev_open {
                if !t.starts_with('.') {
                    prev.push(' ');
                }
                prev.push_str(&t);
                continue;
            }
        }
        out.push((first_line + k, t));
    }
    out
}

fn is_heading(t: &str, next: Option<&str>) -> bool {
    let listy = t.starts_with('·')
        || t.starts_with("Note")
        || t.starts_with("Remarque")
        || t.chars().next().is_some_and(|c| c.is_ascii_digit());
    !t.is_empty()
        && t.chars().count() <= 60
        && !listy
        && !t.ends_with(':')
        && !t.ends_with('?')
        && !is_a(t)
        && next.is_some_and(is_q)
}

fn parse_entries(
    lines: &[&str],
    start: usize,
    first_line: usize,
) -> Result<Vec<RawEntry>, FaqError> {
    let logical = logical_lines(lines, start, first_line);
    let mut entries: Vec<RawEntry> = Vec::new();
    let mut current: Option<RawEntry> = None;
    let mut has_answer = false;
    let mut section: Option<String> = None;
    let finish = |cur: Option<RawEntry>, has_answer: bool, out: &mut Vec<RawEntry>| {
        if let Some(mut e) = cur {
            if !has_answer {
                return Err(err(
                    e.line,
                    format!("question with no answer: {:?}", e.question),
                ));
            }
            e.answer = tidy_answer(&e.answer);
            out.push(e);
        }
        Ok(())
    };
    for (idx, (line, t)) in logical.iter().enumerate() {
        let next = logical.get(idx + 1).map(|(_, n)| n.as_str());
        if is_q(t) {
            finish(current.take(), has_answer, &mut entries)?;
            current = Some(RawEntry {
                line: *line,
                question: after_marker(t),
                answer: String::new(),
                section: section.clone(),
            });
            has_answer = false;
        } else if is_a(t) {
            if has_answer || current.is_none() {
                finish(current.take(), has_answer, &mut entries)?;
                current = Some(RawEntry {
                    line: *line,
                    question: String::new(),
                    answer: String::new(),
                    section: section.clone(),
                });
            }
            if let Some(e) = current.as_mut() {
                e.answer = after_marker(t);
            }
            has_answer = true;
        } else if current.is_some() && is_heading(t, next) {
            finish(current.take(), has_answer, &mut entries)?;
            has_answer = false;
            section = Some(t.trim_end_matches('.').trim().to_string());
        } else if current.is_none() {
            if is_heading(t, next) {
                section = Some(t.trim_end_matches('.').trim().to_string());
            }
        } else if let Some(e) = current.as_mut() {
            if has_answer {
                e.answer.push('\n');
                e.answer.push_str(t);
            } else if !t.is_empty() {
                e.question.push(' ');
                e.question.push_str(t);
            }
        }
    }
    finish(current.take(), has_answer, &mut entries)?;
    Ok(entries)
}

/// One blank line at most between paragraphs, none at the ends.
fn tidy_answer(a: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for l in a.lines() {
        if l.is_empty() && out.last().is_none_or(|p| p.is_empty()) {
            continue;
        }
        out.push(l);
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

fn apply_fixes(entries: &mut [RawEntry], lang: Lang, fixes: &[Fix]) -> Result<(), FaqError> {
    for f in fixes.iter().filter(|f| f.lang == lang) {
        let n = entries.len();
        let e = entries.get_mut(f.position.wrapping_sub(1)).ok_or_else(|| {
            FaqError::Invalid(format!(
                "{CORRECTIONS}: {lang} entry {} does not exist ({n} entries)",
                f.position
            ))
        })?;
        let target = match f.field {
            FixField::Question => &mut e.question,
            FixField::Answer => &mut e.answer,
        };
        match (&f.set, &f.replace) {
            (Some(v), None) => *target = v.clone(),
            (None, Some((from, to))) => {
                if target.matches(from.as_str()).count() != 1 {
                    return Err(FaqError::Invalid(format!(
                        "{CORRECTIONS}: {lang} entry {}: {from:?} is not found exactly once",
                        f.position
                    )));
                }
                *target = target.replacen(from.as_str(), to, 1);
            }
            _ => {
                return Err(FaqError::Invalid(format!(
                    "{CORRECTIONS}: {lang} entry {}: give exactly one of `set` or `replace`",
                    f.position
                )));
            }
        }
    }
    for e in entries.iter() {
        if e.question.trim().is_empty() {
            return Err(err(e.line, "answer without a question (add a correction)"));
        }
    }
    Ok(())
}

fn links_in(text: &str) -> Vec<String> {
    static RE: std::sync::OnceLock<Option<Regex>> = std::sync::OnceLock::new();
    let Some(re) = RE
        .get_or_init(|| Regex::new(r"(?:https?://|www\.)[^\s]+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+").ok())
    else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for m in re.find_iter(text) {
        let l = m
            .as_str()
            .trim_end_matches(['.', ',', ')', ';', ':'])
            .to_string();
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

fn build(en: Half, fr: Half, c: &Corrections, synonyms: &str) -> Result<Generated, FaqError> {
    let mut en_e = en.entries;
    let mut fr_e = fr.entries;
    apply_fixes(&mut en_e, Lang::En, &c.fix)?;
    apply_fixes(&mut fr_e, Lang::Fr, &c.fix)?;
    if en_e.len() != fr_e.len() {
        let line = fr_e.last().map_or(0, |e| e.line);
        return Err(err(
            line,
            format!(
                "{} English questions but {} French ones",
                en_e.len(),
                fr_e.len()
            ),
        ));
    }
    let routes = compile_routes(c)?;
    let (mut out_en, mut out_fr) = paired_entries(&en_e, &fr_e, c, &routes);
    push_added_entries(c, &mut out_en, &mut out_fr)?;
    let contacts = build_contacts(&en.contacts, &fr.contacts, &out_en, &out_fr, c)?;
    let mut link = rows_to_links(&en.links, Lang::En);
    link.extend(rows_to_links(&fr.links, Lang::Fr));
    let header = "# Generated by `edesk faq import` from faq-index/source/edelivery-faq.txt\n\
                  # and faq-index/corrections.toml. Edit those, then re-run the import.\n\n";
    let ser = |v: &dyn erased::Ser| v.to_toml().map(|s| format!("{header}{s}"));
    Ok(Generated {
        files: vec![
            (ENTRIES_EN, ser(&EntryFile { entry: out_en })?),
            (ENTRIES_FR, ser(&EntryFile { entry: out_fr })?),
            (
                CONTACTS,
                ser(&ContactFile {
                    contact: contacts,
                    link,
                })?,
            ),
            (SYNONYMS, synonyms.to_string()),
        ],
    })
}

/// The corrections' routing rules, each pattern compiled and each team
/// checked (a typo would silently send questions to nobody).
fn compile_routes(c: &Corrections) -> Result<Vec<(Regex, &Route)>, FaqError> {
    let routes: Vec<(Regex, &Route)> = c
        .route
        .iter()
        .map(|r| {
            Regex::new(&r.pattern).map(|re| (re, r)).map_err(|e| {
                FaqError::Invalid(format!("{CORRECTIONS}: route {:?}: {e}", r.pattern))
            })
        })
        .collect::<Result<_, _>>()?;
    for r in &c.route {
        check_team(&r.team)?;
    }
    Ok(routes)
}

/// The source's entries, English and French side by side: one id per pair
/// (from the English question, made unique), the topic of the section and
/// the team of the first route matching the English question.
fn paired_entries(
    en_e: &[RawEntry],
    fr_e: &[RawEntry],
    c: &Corrections,
    routes: &[(Regex, &Route)],
) -> (Vec<Entry>, Vec<Entry>) {
    let mut ids: Vec<String> = Vec::new();
    let mut out_en = Vec::new();
    let mut out_fr = Vec::new();
    for (e, f) in en_e.iter().zip(fr_e) {
        let base = slug(&e.question, ID_STOP, 5);
        let mut id = base.clone();
        let mut n = 2;
        while ids.contains(&id) {
            id = format!("{base}-{n}");
            n += 1;
        }
        ids.push(id.clone());
        let section_key = f.section.as_deref().or(e.section.as_deref()).unwrap_or("");
        let topic = c
            .topics
            .get(section_key)
            .cloned()
            .unwrap_or_else(|| slug(section_key, &[], 4));
        let (team, needs_person) = routes
            .iter()
            .find(|(re, _)| re.is_match(&e.question))
            .map_or(("edelivery-support".to_string(), false), |(_, r)| {
                (r.team.clone(), r.needs_person)
            });
        for (raw, out) in [(e, &mut out_en), (f, &mut out_fr)] {
            out.push(Entry {
                id: id.clone(),
                topic: topic.clone(),
                section: raw.section.clone().unwrap_or_default(),
                question: raw.question.clone(),
                answer: raw.answer.clone(),
                links: links_in(&raw.answer),
                needs_person,
                team: team.clone(),
            });
        }
    }
    (out_en, out_fr)
}

/// The entries the corrections add (not in the source document).
fn push_added_entries(
    c: &Corrections,
    out_en: &mut Vec<Entry>,
    out_fr: &mut Vec<Entry>,
) -> Result<(), FaqError> {
    for a in &c.add {
        check_team(&a.team)?;
        for (q, ans, out) in [
            (&a.question_en, &a.answer_en, &mut *out_en),
            (&a.question_fr, &a.answer_fr, &mut *out_fr),
        ] {
            out.push(Entry {
                id: a.id.clone(),
                topic: a.topic.clone(),
                section: String::new(),
                question: q.clone(),
                answer: ans.clone(),
                links: links_in(ans),
                needs_person: a.needs_person,
                team: a.team.clone(),
            });
        }
    }
    Ok(())
}

mod erased {
    use super::FaqError;

    pub trait Ser {
        fn to_toml(&self) -> Result<String, FaqError>;
    }

    impl<T: serde::Serialize> Ser for T {
        fn to_toml(&self) -> Result<String, FaqError> {
            toml::to_string_pretty(self).map_err(|e| FaqError::Invalid(e.to_string()))
        }
    }
}

fn check_team(team: &str) -> Result<(), FaqError> {
    if TEAMS.contains(&team) {
        Ok(())
    } else {
        Err(FaqError::Invalid(format!(
            "{CORRECTIONS}: unknown team {team:?}"
        )))
    }
}

fn rows_to_links(rows: &[Row], lang: Lang) -> Vec<Link> {
    rows.iter()
        .map(|r| Link {
            lang,
            name: r.cells[0].clone(),
            url: r.cells[1].clone(),
            description: r.cells[2].clone(),
        })
        .collect()
}

fn phone_in(text: &str) -> Option<String> {
    let re = Regex::new(r"\d[\d-]{2,} ?[\d-]{3,}\d").ok()?;
    re.find(text).map(|m| m.as_str().to_string())
}

fn build_contacts(
    en: &[Row],
    fr: &[Row],
    en_entries: &[Entry],
    fr_entries: &[Entry],
    c: &Corrections,
) -> Result<Vec<Contact>, FaqError> {
    if en.len() != fr.len() {
        let line = fr.last().map_or(0, |r| r.line);
        return Err(err(
            line,
            format!("{} English contacts but {} French ones", en.len(), fr.len()),
        ));
    }
    let mut out = Vec::new();
    for (e, f) in en.iter().zip(fr) {
        let found = links_in(&e.cells[1]);
        let email = found.iter().find(|l| l.contains('@')).cloned();
        let urls: Vec<String> = found.iter().filter(|l| !l.contains('@')).cloned().collect();
        let key = email
            .clone()
            .or_else(|| urls.first().cloned())
            .unwrap_or_default();
        let team = c.contact_teams.get(&key).ok_or_else(|| {
            err(
                e.line,
                format!(
                    "contact {:?} ({key}) has no team in {CORRECTIONS}",
                    e.cells[0]
                ),
            )
        })?;
        check_team(team)?;
        out.push(Contact {
            team: team.clone(),
            name_en: e.cells[0].clone(),
            name_fr: f.cells[0].clone(),
            email,
            urls,
            phone: phone_in(&e.cells[2]).or_else(|| phone_in(&f.cells[2])),
            description_en: e.cells[2].clone(),
            description_fr: f.cells[2].clone(),
        });
    }
    // Teams reachable only through an address named inside an answer.
    for (key, team) in &c.contact_teams {
        let known = out
            .iter()
            .any(|x| x.email.as_deref() == Some(key) || x.urls.contains(key));
        if known || !key.contains('@') {
            continue;
        }
        check_team(team)?;
        let line_with = |entries: &[Entry]| {
            entries
                .iter()
                .flat_map(|x| x.answer.lines())
                .find(|l| l.contains(key.as_str()))
                .map(|l| l.trim_start_matches(['·', ' ']).to_string())
        };
        let (Some(d_en), Some(d_fr)) = (line_with(en_entries), line_with(fr_entries)) else {
            continue;
        };
        out.push(Contact {
            team: team.clone(),
            name_en: key.clone(),
            name_fr: key.clone(),
            email: Some(key.clone()),
            urls: Vec::new(),
            phone: None,
            description_en: d_en,
            description_fr: d_fr,
        });
    }
    Ok(out)
}

/// Reads the source and `corrections.toml` + `synonyms.toml` from `out_dir`
/// (synonyms fall back to the built-in copy), writes the generated files.
pub fn import_to_dir(source: &Path, out_dir: &Path) -> Result<Vec<String>, FaqError> {
    let bytes = std::fs::read(source).map_err(|e| FaqError::Io {
        path: source.to_path_buf(),
        source: e,
    })?;
    let corr_path = out_dir.join(CORRECTIONS);
    let corrections: Corrections = if corr_path.exists() {
        super::model::parse(&corr_path, &super::model::read(&corr_path)?)?
    } else {
        Corrections::default()
    };
    let syn_path = out_dir.join(SYNONYMS);
    let synonyms = if syn_path.exists() {
        super::model::read(&syn_path)?
    } else {
        super::model::EMBEDDED[3].1.to_string()
    };
    let generated = import(&bytes, &corrections, &synonyms)?;
    std::fs::create_dir_all(out_dir).map_err(|e| FaqError::Io {
        path: out_dir.to_path_buf(),
        source: e,
    })?;
    let mut written = Vec::new();
    for (name, text) in generated.files {
        let path = out_dir.join(name);
        std::fs::write(&path, text).map_err(|e| FaqError::Io {
            path: path.clone(),
            source: e,
        })?;
        written.push(path.display().to_string());
    }
    Ok(written)
}
