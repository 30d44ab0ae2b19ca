//! The engine: language detection, answers in the asker's language,
//! abstention, the entry/contacts API, and the dev-set thresholds.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use edesk::domain::Lang;
use edesk::faq::eval::{evaluate, load_cases};
use edesk::faq::{Engine, Sources};

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// One engine for the whole file (building it fits the calibration).
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<(tempfile::TempDir, Engine)> = OnceLock::new();
    let (_, e) = ENGINE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tmp");
        let e = Engine::open(&Sources::Dir(repo("faq-index")), dir.path(), 0.5).expect("open");
        (dir, e)
    });
    e
}

#[test]
fn engine_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Engine>();
    let shared = Arc::new(());
    assert_eq!(Arc::strong_count(&shared), 1);
}

#[test]
fn detects_language_of_short_questions() {
    let e = engine();
    for (q, want) in [
        ("how do I unsubscribe", Lang::En),
        ("mon téléchargement échoue", Lang::Fr),
        ("commande archivée", Lang::Fr),
        ("my PAK is not registered", Lang::En),
        ("Ma licence ne marche pas", Lang::Fr),
        ("download policy", Lang::En),
        ("politique de téléchargement", Lang::Fr),
    ] {
        assert_eq!(e.detect_lang(q), want, "{q}");
    }
}

#[test]
fn answers_in_the_askers_language_and_lang_overrides() {
    let e = engine();
    let fr = e.ask(
        "comment arrêter de recevoir les courriels de notification",
        None,
    );
    assert!(fr.answered, "{fr:?}");
    assert_eq!(fr.lang, Lang::Fr);
    assert_eq!(fr.id.as_deref(), Some("stop-receiving-email-notifications"));
    assert!(
        fr.answer
            .as_deref()
            .is_some_and(|a| a.contains("Mon eDelivery"))
    );
    let en = e.ask(
        "comment arrêter de recevoir les courriels de notification",
        Some(Lang::En),
    );
    assert_eq!(en.lang, Lang::En);
    assert_eq!(en.id, fr.id, "same topic in the other language");
    assert!(
        en.answer
            .as_deref()
            .is_some_and(|a| a.contains("My eDelivery"))
    );
}

#[test]
fn synonyms_and_typos_reach_the_entry() {
    let e = engine();
    for (q, id) in [
        (
            "what does the downlaod manager do",
            "download-manager-dlm-work",
        ),
        (
            "product authorization key registration link broken",
            "link-register-product-authorization-key",
        ),
        (
            "gestionnaire de téléchargement configuration requise",
            "system-requirements-dlm",
        ),
        (
            "how long until my archived order can be restored",
            "restore-orders-older-than-15",
        ),
    ] {
        let a = e.ask(q, None);
        assert_eq!(a.id.as_deref(), Some(id), "{q}: {a:?}");
    }
}

#[test]
fn abstains_on_out_of_scope_and_empty() {
    let e = engine();
    for q in [
        "what is the capital of Peru",
        "recette de la tarte aux pommes",
        "",
        "   ",
    ] {
        let a = e.ask(q, None);
        assert!(!a.answered, "{q}: {a:?}");
        assert!(a.confidence < 0.5);
        assert!((0.0..=1.0).contains(&a.confidence));
    }
    let a = e.ask("xqzv", None);
    assert!(!a.answered);
}

#[test]
fn entry_and_contacts_for_routing() {
    let e = engine();
    let holds = e
        .entry("ask-holds-released-orders", Lang::En)
        .expect("holds");
    assert!(holds.needs_person);
    assert_eq!(holds.team, "customer-service");
    let fr = e
        .entry("ask-holds-released-orders", Lang::Fr)
        .expect("holds fr");
    assert_eq!(fr.topic, holds.topic);
    assert!(e.entry("no-such-id", Lang::En).is_none());
    let lic = e
        .entry("license-not-received", Lang::En)
        .expect("added pair");
    assert_eq!(lic.team, "licensing");
    let contacts = e.contacts();
    assert!(
        contacts
            .iter()
            .any(|c| c.team == "exportops" && c.email.as_deref() == Some("exportops@cisco.com"))
    );
    assert!(contacts.iter().any(|c| c.team == "edelivery-support"));
}

#[test]
fn close_entries_are_offered_as_alternatives() {
    let e = engine();
    let mut offered = 0;
    for q in [
        "send order notification email",
        "download problem",
        "license",
        "order access",
        "PAK link",
    ] {
        let a = e.ask(q, None);
        assert!(
            a.alternatives.iter().all(|x| Some(&x.id) != a.id.as_ref()),
            "{a:?}"
        );
        if a.answered {
            assert!(
                a.alternatives
                    .iter()
                    .all(|x| x.score >= 0.8 * a.score - 1e-6),
                "{a:?}"
            );
        } else if a.id.is_some() {
            assert!(
                !a.alternatives.is_empty(),
                "an abstention lists what it hesitated on: {a:?}"
            );
        }
        offered += usize::from(!a.alternatives.is_empty());
    }
    assert!(offered >= 2, "vague questions should offer alternatives");
}

#[test]
fn calibration_is_monotone_in_coverage() {
    let m = engine().model();
    let low = m.predict(&[0.1, 0.0, 0.05, 0.0]);
    let high = m.predict(&[0.9, 0.8, 0.5, 1.0]);
    assert!(low < 0.5 && high > 0.5, "{low} {high}");
}

#[test]
fn index_is_reused_when_sources_are_unchanged() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = Sources::Dir(repo("faq-index"));
    drop(Engine::open(&src, dir.path(), 0.5).expect("first"));
    let hash = dir.path().join("faq-index/SOURCES_HASH");
    let before = std::fs::metadata(&hash)
        .and_then(|m| m.modified())
        .expect("hash file");
    let again = Engine::open(&src, dir.path(), 0.5).expect("second");
    assert_eq!(
        again
            .ask("what is the download manager", None)
            .id
            .as_deref(),
        Some("download-manager-dlm-work")
    );
    let after = std::fs::metadata(&hash)
        .and_then(|m| m.modified())
        .expect("hash file");
    assert_eq!(
        before, after,
        "the index was rebuilt although nothing changed"
    );
    assert_eq!(
        Sources::resolve(Some(dir.path())),
        Sources::Dir(dir.path().to_path_buf())
    );
    let emb = Engine::open(&Sources::Embedded, dir.path(), 0.5).expect("embedded");
    assert_eq!(emb.entries(Lang::En).len(), 42);
}

/// The dev set (`tests/fixtures/faq/faq-dev.jsonl`, the 60 questions the
/// synonyms and the confidence threshold were tuned on).
#[test]
fn dev_set_thresholds() {
    let path = repo("tests/fixtures/faq/faq-dev.jsonl");
    let r = evaluate(engine(), &load_cases(&path).expect("cases")).expect("eval");
    assert!(r.all.r1() >= 0.92, "{r}");
    assert!(
        r.per_lang.get(&Lang::Fr).is_some_and(|m| m.r1() >= 0.85),
        "{r}"
    );
    assert!(r.oos_abstained >= 8, "{r}");
    assert!(r.wrong_abstention_rate() <= 0.05, "{r}");
}

/// Regression guard on the held-out questions (`tests/fixtures/faq/heldout.jsonl`,
/// written from the answers' meaning without the FAQ's wording, never used to
/// pick synonyms term by term). Thresholds are a little under what the engine
/// reaches (R@1 0.86, FR 0.91, 12/14 out of scope abstained, 8 % wrongly
/// abstained); `heldout-final.jsonl` is kept out of every test on purpose.
#[test]
fn heldout_set_thresholds() {
    let path = repo("tests/fixtures/faq/heldout.jsonl");
    let r = evaluate(engine(), &load_cases(&path).expect("cases")).expect("eval");
    assert!(r.all.r1() >= 0.84, "{r}");
    assert!(
        r.per_lang.get(&Lang::Fr).is_some_and(|m| m.r1() >= 0.85),
        "{r}"
    );
    assert!(r.oos_abstained >= 11, "{r}");
    assert!(r.wrong_abstention_rate() <= 0.10, "{r}");
}

#[test]
fn greetings_and_sign_offs_do_not_change_the_answer() {
    let e = engine();
    let plain = e.ask("how do I stop receiving order emails", Some(Lang::En));
    let mail = e.ask(
        "Hi team, how do I stop receiving order emails? Thanks, Morgan",
        Some(Lang::En),
    );
    assert_eq!(plain.id, mail.id);
    assert!(mail.answered, "{mail:?}");
}

/// A mail describes what it wants at length, in the words of the answer
/// rather than the question: the entry whose answer says it comes first.
#[test]
fn a_long_mail_is_matched_on_what_the_answer_says() {
    let e = engine();
    // A signature and a disclaimer around it, as mail has.
    let mail = "Hello, we are rolling out a hardened desktop build for our network \
                operations staff next quarter. Before we sign it off I would like to know \
                which operating systems and browsers the Cisco download manager officially \
                works with, so that we do not break software retrieval for the team. \
                Kind regards, Marc. This e-mail and any attachments are confidential. \
                If you received it in error please notify the sender and delete it.";
    let hit = e.ask(mail, Some(Lang::En));
    assert_eq!(
        hit.id.as_deref(),
        Some("system-requirements-dlm"),
        "{hit:?}"
    );
}
