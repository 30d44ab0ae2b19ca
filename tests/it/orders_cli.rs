//! `edesk order|outbox|suppress` from the command line, on fixtures.

use std::path::Path;
use std::process::{Command, Output};

fn edesk(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edesk"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("EDESK_LOG", "warn")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn import_show_history_and_outbox() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/orders/mixed.jsonl");
    import_names_each_rejection_and_upserts(data, &fixture);
    show_and_history_read_what_was_imported(data);
    the_outbox_flush_writes_eml_files(data);
    unknown_things_are_errors(data);
}

/// The import names each rejected order, its field and the line.
fn import_names_each_rejection_and_upserts(data: &Path, fixture: &Path) {
    let o = edesk(data, &["order", "import", fixture.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "rejections give exit code 2");
    let out = stdout(&o);
    assert!(
        out.starts_with("imported 3, updated 0, rejected 3"),
        "{out}"
    );
    assert!(
        out.contains("order 1045840: so:") && out.contains("recipients[0].email"),
        "{out}"
    );
    assert!(
        out.contains("order 10458402:")
            && out.contains("holds[0].type")
            && out.contains("priority"),
        "{out}"
    );
    assert!(out.contains("line 6: not JSON"), "{out}");

    // Re-import is an upsert.
    let o = edesk(data, &["order", "import", fixture.to_str().unwrap()]);
    assert!(
        stdout(&o).starts_with("imported 0, updated 3, rejected 3 (0 mails queued, 0 skipped)"),
        "{}",
        stdout(&o)
    );
}

/// `order show` and `order history` read what was imported.
fn show_and_history_read_what_was_imported(data: &Path) {
    let o = edesk(data, &["order", "show", "10458321"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["recipients"][0]["reply_token"],
        "2ec88d94097bcc8e32d6f0b69fa54158"
    );
    assert_eq!(v["holds"][0]["type"], "export");

    let o = edesk(data, &["order", "history", "10458401"]);
    let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(h[0]["skipped"], "early ship No before the requested date");
    assert_eq!(h[0]["status"], "skipped");

    let o = edesk(data, &["order", "history", "10458321"]);
    let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let kinds: Vec<&str> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["order_on_hold", "order_available"]);
}

/// Pending: the hold notice for 10458321 and the availability mail of 10458400.
fn the_outbox_flush_writes_eml_files(data: &Path) {
    let list = stdout(&edesk(data, &["outbox", "list"]));
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains("order_on_hold") && list.contains("order_available"));

    // Without smtp.url the flush writes .eml files.
    let o = edesk(data, &["outbox", "flush"]);
    assert!(stdout(&o).contains("sent 2"), "{}", stdout(&o));
    let emls = std::fs::read_dir(data.join("outgoing"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "eml")
        })
        .count();
    assert_eq!(emls, 2);
    assert_eq!(stdout(&edesk(data, &["outbox", "list"])), "");
    assert_eq!(
        stdout(&edesk(data, &["outbox", "list", "--all"]))
            .lines()
            .count(),
        2
    );

    // The migrated reply token is the one used in the mail.
    let eml = std::fs::read_dir(data.join("outgoing"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|s| s.contains("j.harper"))
        .unwrap();
    assert!(eml.contains("reply+2ec88d94097bcc8e32d6f0b69fa54158@edesk.example.com"));
}

/// Unknown things are errors.
fn unknown_things_are_errors(data: &Path) {
    let o = edesk(data, &["suppress", "remove", "nobody@example.com"]);
    assert!(!o.status.success());
    let o = edesk(data, &["outbox", "retry", "99999"]);
    assert!(!o.status.success());
}
