//! `edesk faq ask` JSON contract, including `--stdin` with odd lines.

use std::io::Write;
use std::process::{Command, Stdio};

fn edesk(data: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edesk"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--data-dir")
        .arg(data);
    c
}

const KEYS: [&str; 8] = [
    "answered",
    "lang",
    "id",
    "question",
    "answer",
    "score",
    "confidence",
    "alternatives",
];

fn check_contract(v: &serde_json::Value) {
    let obj = v.as_object().expect("object");
    assert_eq!(obj.len(), KEYS.len(), "{v}");
    for k in KEYS {
        assert!(obj.contains_key(k), "missing {k} in {v}");
    }
    assert!(v["answered"].is_boolean());
    assert!(matches!(v["lang"].as_str(), Some("en" | "fr")));
    let c = v["confidence"].as_f64().expect("confidence");
    assert!((0.0..=1.0).contains(&c));
    for alt in v["alternatives"].as_array().expect("alternatives") {
        assert!(alt["id"].is_string() && alt["question"].is_string() && alt["score"].is_number());
    }
}

#[test]
fn ask_json_with_lang() {
    let data = tempfile::tempdir().expect("tmp");
    let out = edesk(data.path())
        .args([
            "faq",
            "ask",
            "--json",
            "--lang",
            "fr",
            "how do I stop receiving email notifications",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    check_contract(&v);
    assert_eq!(v["lang"], "fr");
    assert_eq!(v["answered"], true);
    assert!(
        v["question"]
            .as_str()
            .is_some_and(|q| q.contains("arrêter"))
    );
}

#[test]
fn ask_stdin_one_object_per_line_in_order() {
    let data = tempfile::tempdir().expect("tmp");
    let mut child = edesk(data.path())
        .args(["faq", "ask", "--json", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input: Vec<u8> = Vec::new();
    input.extend_from_slice(b"what is the download manager\n");
    input.extend_from_slice(b"\n");
    input.extend_from_slice(b"t\xe9l\xe9chargement \xff\xfe bloqu\xe9\r\n");
    input.extend_from_slice("politique de téléchargement".as_bytes());
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .expect("utf8 out")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 4);
    for v in &lines {
        check_contract(v);
    }
    assert_eq!(lines[0]["id"], "download-manager-dlm-work");
    assert_eq!(lines[1]["answered"], false);
    assert!(lines[1]["id"].is_null());
    assert_eq!(lines[3]["lang"], "fr");
    assert_eq!(lines[3]["id"], "software-download-policy-edelivery");
}

#[test]
fn ask_readable_shows_confidence() {
    let data = tempfile::tempdir().expect("tmp");
    let out = edesk(data.path())
        .args(["faq", "ask", "what", "is", "order-based", "access"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("confidence"), "{text}");
    assert!(text.contains("Order-Based Access"), "{text}");
}
