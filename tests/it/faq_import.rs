//! The import reproduces the committed `faq-index/` and fails clearly on bad input.

use std::path::PathBuf;

use edesk::faq::FaqError;
use edesk::faq::import::{Corrections, import, import_to_dir};

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn source() -> Vec<u8> {
    std::fs::read(repo("faq-index/source/edelivery-faq.txt")).expect("source copy")
}

fn corrections() -> Corrections {
    let text = std::fs::read_to_string(repo("faq-index/corrections.toml")).expect("corrections");
    toml::from_str(&text).expect("corrections parse")
}

#[test]
fn import_reproduces_committed_index() {
    let out = tempfile::tempdir().expect("tmp");
    for f in ["corrections.toml", "synonyms.toml"] {
        std::fs::copy(repo(&format!("faq-index/{f}")), out.path().join(f)).expect("copy");
    }
    import_to_dir(&repo("faq-index/source/edelivery-faq.txt"), out.path()).expect("import");
    for f in [
        "entries.en.toml",
        "entries.fr.toml",
        "contacts.toml",
        "synonyms.toml",
    ] {
        let want = std::fs::read_to_string(repo(&format!("faq-index/{f}"))).expect("committed");
        let got = std::fs::read_to_string(out.path().join(f)).expect("generated");
        assert!(want == got, "{f} differs from a fresh import");
    }
    // Deterministic: a second run gives the same bytes.
    let again = import(&source(), &corrections(), "").expect("import");
    let first = import(&source(), &corrections(), "").expect("import");
    assert_eq!(again, first);
}

#[test]
fn without_corrections_only_documented_defects_remain() {
    // The 7th English question is missing in the export: without the
    // correction the import must refuse, naming the line.
    let e = import(&source(), &Corrections::default(), "").expect_err("missing question");
    match e {
        FaqError::Source { line, message } => {
            assert_eq!(line, 101);
            assert!(message.contains("without a question"), "{message}");
        }
        other => panic!("unexpected error {other}"),
    }
    let mut c = corrections();
    c.fix.retain(|f| f.position == 7);
    let raw = import(&source(), &c, "").expect("import");
    let fixed = import(&source(), &corrections(), "").expect("import");
    let fr_raw = &raw.files[1].1;
    let fr_fixed = &fixed.files[1].1;
    assert!(fr_raw.contains("edelivery-it-support@cisco.com"));
    assert!(!fr_fixed.contains("edelivery-it-support@cisco.com"));
    assert!(fr_raw.contains(r#"défini sur "oui", la commande"#));
    assert!(fr_fixed.contains(r#"défini sur "Non", la commande"#));
    assert_eq!(
        raw.files[0].1, fixed.files[0].1,
        "English has no answer fixes"
    );
}

#[test]
fn generated_entries_are_paired_and_clean() {
    let g = import(&source(), &corrections(), "").expect("import");
    let en: toml::Value = toml::from_str(&g.files[0].1).expect("en toml");
    let fr: toml::Value = toml::from_str(&g.files[1].1).expect("fr toml");
    let en = en["entry"].as_array().expect("entries");
    let fr = fr["entry"].as_array().expect("entries");
    assert_eq!(en.len(), 42);
    assert_eq!(en.len(), fr.len());
    for (e, f) in en.iter().zip(fr) {
        assert_eq!(e["id"], f["id"]);
        assert_eq!(e["topic"], f["topic"]);
        let ans = e["answer"].as_str().expect("answer");
        assert!(!ans.contains("[bookmark"), "{ans}");
        assert!(!ans.contains(".comif"), "{ans}");
        assert!(!ans.contains("/cs/www."), "{ans}");
    }
    let holds = en
        .iter()
        .find(|e| {
            e["question"]
                .as_str()
                .is_some_and(|q| q.contains("holds released"))
        })
        .expect("holds entry");
    assert_eq!(holds["needs_person"].as_bool(), Some(true));
    let contacts = &g.files[2].1;
    for team in [
        "edelivery-support",
        "customer-service",
        "licensing",
        "ucss",
        "cuwl",
        "exportops",
        "sac-support",
    ] {
        assert!(contacts.contains(&format!("team = \"{team}\"")), "{team}");
    }
}

#[test]
fn bad_input_is_an_error_with_a_line() {
    let src = source();
    // Wrong encoding: a Latin-1 byte on line 3.
    let mut latin1 = b"a\nb\nQ: caf\xe9?\n".to_vec();
    latin1.extend_from_slice(&src);
    match import(&latin1, &corrections(), "") {
        Err(FaqError::Source { line, message }) => {
            assert_eq!(line, 3);
            assert!(message.contains("UTF-8"));
        }
        other => panic!("expected an encoding error, got {other:?}"),
    }
    // Truncated: the French half is cut off.
    let text = String::from_utf8(src.clone()).expect("utf8");
    let at = text.find("Français (Initiative").expect("french heading");
    let cut = text[..at].rfind('\n').expect("line start");
    match import(&src[..cut], &corrections(), "") {
        Err(FaqError::Source { message, .. }) => {
            assert!(message.contains("truncated"), "{message}")
        }
        other => panic!("expected a truncation error, got {other:?}"),
    }
    // A question with no answer at the very end.
    let mut dangling = src.clone();
    dangling.extend_from_slice("\nQ:  Où est ma commande?\n".as_bytes());
    match import(&dangling, &corrections(), "") {
        Err(FaqError::Source { line, message }) => {
            assert!(message.contains("no answer"), "{message}");
            assert_eq!(line, text.lines().count() + 1);
        }
        other => panic!("expected a missing-answer error, got {other:?}"),
    }
    assert!(import(b"", &corrections(), "").is_err());
}
