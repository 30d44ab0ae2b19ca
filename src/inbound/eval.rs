//! Evaluation of the reply extractor on a fixture corpus: for every
//! `NAME.eml` with a `NAME.expected.txt`, is the extracted new text within
//! 90 % similarity of what the person wrote? Reported per language, the
//! language being the second `-`-separated part of the name
//! (`<client>-<lang>-<case>.eml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::InboundError;
use super::decide::analyze;
use super::ports::{Directory, FaqOracle};

/// A text counts as correctly extracted at this similarity or above.
pub const PASS_SIMILARITY: f64 = 0.9;

/// Collapses all whitespace runs to one space.
pub fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// 1 − Levenshtein distance / length of the longer text, on characters of
/// whitespace-normalized text. Two empty texts are identical.
pub fn similarity(a: &str, b: &str) -> f64 {
    let a: Vec<char> = normalize(a).chars().collect();
    let b: Vec<char> = normalize(b).chars().collect();
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 1.0;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    1.0 - prev[b.len()] as f64 / longest as f64
}

#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub name: String,
    pub lang: String,
    pub similarity: f64,
    pub passed: bool,
    pub got: String,
    pub expected: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LangScore {
    pub total: usize,
    pub passed: usize,
    pub share: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub per_lang: BTreeMap<String, LangScore>,
    pub cases: Vec<Case>,
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = &Case> {
        self.cases.iter().filter(|c| !c.passed)
    }

    /// Human-readable summary, one line per language then the failures.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (lang, sc) in &self.per_lang {
            s.push_str(&format!(
                "{lang}: {}/{} within {:.0}% similarity = {:.1}%\n",
                sc.passed,
                sc.total,
                PASS_SIMILARITY * 100.0,
                sc.share * 100.0
            ));
        }
        for c in self.failures() {
            s.push_str(&format!(
                "FAIL {} ({:.2})\n  expected: {:?}\n  got:      {:?}\n",
                c.name, c.similarity, c.expected, c.got
            ));
        }
        s
    }
}

/// The `.eml` files of a directory, sorted by name.
pub fn eml_files(dir: &Path) -> Result<Vec<PathBuf>, InboundError> {
    let rd = std::fs::read_dir(dir).map_err(|source| InboundError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    Ok(files)
}

fn read(path: &Path) -> Result<Vec<u8>, InboundError> {
    std::fs::read(path).map_err(|source| InboundError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Runs the analysis on every fixture that has an expectation.
pub fn evaluate(
    dir: &Path,
    directory: &dyn Directory,
    faq: &dyn FaqOracle,
) -> Result<Report, InboundError> {
    let mut report = Report::default();
    for eml in eml_files(dir)? {
        let expected_path = eml.with_extension("expected.txt");
        if !expected_path.exists() {
            continue;
        }
        let expected = String::from_utf8_lossy(&read(&expected_path)?).into_owned();
        let got = analyze(&read(&eml)?, directory, faq)?.new_text;
        let name = eml
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lang = name.split('-').nth(1).unwrap_or("unknown").to_string();
        let sim = similarity(&got, &expected);
        let passed = sim >= PASS_SIMILARITY;
        let sc = report.per_lang.entry(lang.clone()).or_default();
        sc.total += 1;
        sc.passed += usize::from(passed);
        report.cases.push(Case {
            name,
            lang,
            similarity: sim,
            passed,
            got,
            expected: expected.trim().to_string(),
        });
    }
    for sc in report.per_lang.values_mut() {
        sc.share = sc.passed as f64 / sc.total.max(1) as f64;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_bounds() {
        assert_eq!(similarity("", ""), 1.0);
        assert_eq!(similarity("abc", "abc"), 1.0);
        assert_eq!(similarity("a  b\n c", "a b c"), 1.0);
        assert_eq!(similarity("abcd", ""), 0.0);
        assert!((similarity("kitten", "sitting") - (1.0 - 3.0 / 7.0)).abs() < 1e-9);
    }
}
