//! Jobs end to end through the daemon: orders with old availability dates
//! are imported over HTTP, `edesk jobs run archive --now` (the CLI reaching
//! the running daemon through its API) archives them and their recipients
//! get one mail each at the SMTP sink; one order is restored by mail
//! (`RESTORE SO#…` over LMTP), one through `POST /v1/orders/{so}/restore`,
//! and each is restored once however often it is asked.

use crate::support;
use crate::support::Served;

use std::process::Command;

use mail_parser::MessageParser;
use serde_json::{Value, json};
use support::lmtp::{self, Mail};
use support::{BIN, Daemon, Sink, spawn_daemon};

fn order(so: &str, available: &str, to: &str) -> Value {
    json!({
        "so": so, "po": format!("PO-{so}"), "lang": "en", "available_at": available,
        "lines": [{"line": "1.1", "pid": "L-ASA5516-TD-1Y", "qty": 1,
                   "images": [{"file": "asa.SPA", "md5": "9fb4c92d620d4be2a9f190e7fa6332b3"}]}],
        "recipients": [{"name": "Ana", "email": to, "lang": "en"}]
    })
}

fn header(raw: &[u8], name: &str) -> String {
    MessageParser::default()
        .parse(raw)
        .and_then(|m| m.header_raw(name).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

/// (recipient, subject) of every mail at the sink.
fn mails(sink: &Sink) -> Vec<(String, String)> {
    sink.messages()
        .iter()
        .map(|m| (header(m, "X-Sink-Rcpt-To"), header(m, "Subject")))
        .collect()
}

fn count(sink: &Sink, to: &str, subject_part: &str) -> usize {
    mails(sink)
        .iter()
        .filter(|(t, s)| t == to && s.contains(subject_part))
        .count()
}

fn edesk(d: &Daemon, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(&d.data_dir)
        .env("EDESK_HTTP__BIND", d.http.to_string())
        .env("EDESK_LOG", "warn")
        .output()
        .expect("run edesk");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn archived(d: &Daemon, so: &str) -> bool {
    let (status, body) = d.get(&format!("/v1/orders/{so}"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["archived"] == json!(true)
}

#[test]
fn archive_by_cli_then_restore_by_mail_and_api_each_once() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = Sink::start(&tmp.path().join("sink"));
    let d = spawn_daemon(
        &tmp.path().join("data"),
        &[("EDESK_SMTP__URL", sink.url().as_str())],
    );
    let orders = json!([
        order("70000001", "2024-03-01T09:00:00Z", "ana@acme.example.com"),
        order("70000002", "2024-06-01T09:00:00Z", "bob@acme.example.com"),
        order(
            "70000003",
            &chrono::Utc::now().to_rfc3339(),
            "cy@acme.example.com"
        ),
    ]);
    let (status, body) = d.post_json("/v1/orders", &orders.to_string());
    assert_eq!(status, 201, "{body}");
    // The availability mails go out first.
    d.wait_for("availability mails", || {
        (sink.messages().len() >= 3).then_some(())
    });
    the_archive_job_archives_old_orders_once(&d, &sink);
    restore_by_mail_twice(&d, &sink);
    restore_by_api_twice(&d);
    each_order_is_restored_once(&d, &sink);
    the_cli_reads_the_same_state(&d);
    assert!(d.terminate());
}

/// The archive job, run from the CLI through the daemon, archives the
/// old orders and mails each recipient once.
fn the_archive_job_archives_old_orders_once(d: &Daemon, sink: &Sink) {
    let (ok, out) = edesk(d, &["jobs", "run", "archive", "--now"]);
    assert!(ok, "{out}\n{}", d.log());
    assert!(out.contains("archive") && out.contains("ok"), "{out}");
    assert!(archived(d, "70000001") && archived(d, "70000002"));
    assert!(!archived(d, "70000003"));
    d.wait_for("archive mails", || {
        (count(sink, "ana@acme.example.com", "archived") == 1
            && count(sink, "bob@acme.example.com", "archived") == 1)
            .then_some(())
    });
    // A second run archives nothing more and mails nobody again.
    let (ok, out) = edesk(d, &["jobs", "run", "archive", "--now"]);
    assert!(ok, "{out}");
    assert!(out.contains("0 orders archived"), "{out}");
}

/// Restore by mail: the recipient answers RESTORE to the archive mail
/// (a reply to our mail proves the command comes from her).
fn restore_by_mail_twice(d: &Daemon, sink: &Sink) {
    let archive_mail = sink
        .messages()
        .into_iter()
        .find(|m| {
            header(m, "X-Sink-Rcpt-To") == "ana@acme.example.com"
                && header(m, "Subject").contains("archived")
        })
        .expect("the archive mail to ana");
    let in_reply_to = format!("In-Reply-To: {}", header(&archive_mail, "Message-ID"));
    let to = ["support@edesk.example.com"];
    for _ in 0..2 {
        let mail = Mail::new("ana@acme.example.com", &to)
            .header("From: Ana <ana@acme.example.com>")
            .header("Subject: restore please")
            .header(&in_reply_to)
            .body("RESTORE SO#70000001\n");
        let r = lmtp::deliver(d.lmtp, "ana@acme.example.com", &to, &mail.to_bytes());
        assert!(r.ok(), "{}", r.transcript);
    }
    d.wait_for("restored by mail", || {
        (!archived(d, "70000001")).then_some(())
    });
}

/// Restore through the API (what the order page's button posts), twice.
fn restore_by_api_twice(d: &Daemon) {
    for _ in 0..2 {
        let (status, body) = d.post_json(
            "/v1/orders/70000002/restore",
            &json!({"requested_by": "bob@acme.example.com"}).to_string(),
        );
        assert_eq!(status, 200, "{body}");
    }
    assert!(!archived(d, "70000002"));
}

/// However often it was asked, each order was restored once: one mail each.
fn each_order_is_restored_once(d: &Daemon, sink: &Sink) {
    d.wait_for("restore mails", || {
        (count(sink, "ana@acme.example.com", "restored") >= 1
            && count(sink, "bob@acme.example.com", "restored") >= 1)
            .then_some(())
    });
    // Both RESTORE mails were processed before we count.
    d.wait_for("inbound processed", || {
        let (_, m) = d.get("/metrics");
        m.contains("edesk_inbound_pending 0").then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        count(sink, "ana@acme.example.com", "has been restored"),
        1,
        "{:?}",
        mails(sink)
    );
    assert_eq!(
        count(sink, "bob@acme.example.com", "has been restored"),
        1,
        "{:?}",
        mails(sink)
    );
}

/// The CLI reads the same state through the daemon.
fn the_cli_reads_the_same_state(d: &Daemon) {
    let (ok, out) = edesk(d, &["jobs", "list"]);
    assert!(
        ok && out.contains("archive") && out.contains("pak-reminder"),
        "{out}"
    );
    let (ok, out) = edesk(d, &["jobs", "history", "archive", "--json"]);
    assert!(ok, "{out}");
    let runs: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2, "{out}");
    let (ok, out) = edesk(d, &["order", "restore", "70000002"]);
    assert!(ok && out.contains("not_archived"), "{out}");
    let (_, m) = d.get("/metrics");
    assert!(m.contains("edesk_job_runs_total{job=\"archive\"} 2"), "{m}");
    assert!(
        m.contains("edesk_job_failures_total{job=\"archive\"} 0"),
        "{m}"
    );
}
