//! HTTP API for orders, OBA, history and unsubscribe, over a real socket.

use crate::support;

use std::net::SocketAddr;

use edesk::notify::Notifier;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    support::http(addr, method, path, Some(body))
}

/// `http` off the runtime's worker threads (the client blocks).
async fn call(addr: SocketAddr, method: &'static str, path: &str, body: &str) -> (u16, String) {
    let (path, body) = (path.to_string(), body.to_string());
    tokio::task::spawn_blocking(move || http(addr, method, &path, &body))
        .await
        .unwrap()
}

fn j(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_oba_history_unsubscribe() {
    let tmp = tempfile::tempdir().unwrap();
    let config = support::config(tmp.path(), None);
    let state = edesk::daemon::build_state(&config).unwrap();
    let n = state.notifier.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let server = tokio::spawn(edesk::api::run(listener, state, cancel.clone()));

    let r = tokio::task::spawn_blocking(move || send_orders_and_oba(addr))
        .await
        .unwrap();
    check_imports(&r);
    check_oba(&r, &n);
    check_history(&r);
    unsubscribe_needs_a_one_click_post(addr, &n).await;
    preferences_per_kind(addr, &n).await;

    cancel.cancel();
    server.await.unwrap().unwrap();
}

/// The order and OBA requests, in this order (the checks index the answers).
fn send_orders_and_oba(addr: SocketAddr) -> Vec<(u16, String)> {
    let order = json!({
        "so": "10458321", "po": "ACME-PO-7781", "lang": "en",
        "lines": [{"line": "1.1", "pid": "L-ASA5516-TD-1Y", "qty": 1, "images": [{"file": "a.SPA", "md5": "9fb4c92d620d4be2a9f190e7fa6332b3"}]},
                  {"line": "2.1", "pid": "L-ISE-BASE", "qty": 2}],
        "recipients": [{"name": "John Harper", "email": "j.harper@acme.example.com"}]
    });
    let mut out = Vec::new();
    out.push(http(addr, "POST", "/v1/orders", &order.to_string()));
    // One good and one bad order: the good one is stored, the bad one named.
    let batch = json!([
        {"so": "20000001", "lang": "fr", "lines": [{"line": "1", "pid": "X"}], "recipients": []},
        {"so": "2000000x", "lang": "de", "lines": [{"line": "1", "pid": "X"}], "recipients": [], "colour": 1}
    ]);
    out.push(http(addr, "POST", "/v1/orders", &batch.to_string()));
    out.push(http(addr, "POST", "/v1/orders", "{not json"));
    out.push(http(addr, "GET", "/v1/orders/10458321", ""));
    out.push(http(addr, "GET", "/v1/orders/99999999", ""));
    out.push(http(addr, "GET", "/v1/orders/12", ""));
    let bad_oba = json!({"sent_by": "partner@example.net", "grouping": "grouped",
        "lines": [{"line": "1.1", "to": "ana@example.com"}, {"line": "2.1", "to": "ops@example.org, bad@@x"}]});
    out.push(http(
        addr,
        "POST",
        "/v1/orders/10458321/oba",
        &bad_oba.to_string(),
    ));
    let oba = json!({"sent_by": "partner@example.net", "grouping": "grouped",
        "lines": [{"line": "1.1", "to": "Ana <ana@example.com>, ops@example.org", "carton_note": "Carton 4 of 7", "customer_ref": "Rack B / PO 55-1"},
                  {"line": "2.1", "to": "ana@example.com"}]});
    out.push(http(
        addr,
        "POST",
        "/v1/orders/10458321/oba",
        &oba.to_string(),
    ));
    let per_line = json!({"sent_by": "partner@example.net", "grouping": "per_line",
        "lines": [{"line": "1.1", "to": "li@example.com"}, {"line": "2.1", "to": "li@example.com"}]});
    out.push(http(
        addr,
        "POST",
        "/v1/orders/10458321/oba",
        &per_line.to_string(),
    ));
    out.push(http(addr, "GET", "/v1/orders/10458321/notifications", ""));
    out
}

/// The answers to the order imports and lookups.
fn check_imports(r: &[(u16, String)]) {
    assert_eq!(r[0].0, 201, "{}", r[0].1);
    assert_eq!(j(&r[0].1)["queued"], 1);
    assert_eq!(r[1].0, 422, "{}", r[1].1);
    let b = j(&r[1].1);
    assert_eq!(b["imported"], json!(["20000001"]));
    assert_eq!(b["so"], "2000000x");
    let fields: Vec<&str> = b["rejected"][0]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["colour", "so", "lang"]);
    assert_eq!(r[2].0, 400);
    assert!(
        j(&r[2].1)["error"]
            .as_str()
            .unwrap()
            .contains("malformed JSON")
    );
    assert_eq!(r[3].0, 200);
    assert_eq!(j(&r[3].1)["po"], "ACME-PO-7781");
    assert_eq!(r[4].0, 404);
    assert_eq!(r[5].0, 400);
    assert_eq!(j(&r[5].1)["field"], "so");
}

/// Bad address: 422 naming it and the line, nothing sent, nothing granted;
/// grouped and per-line sends, their grants and the notes in the mail.
fn check_oba(r: &[(u16, String)], n: &Notifier) {
    assert_eq!(r[6].0, 422, "{}", r[6].1);
    let b = j(&r[6].1);
    assert_eq!(b["field"], "lines[1].to");
    assert_eq!(b["value"], "bad@@x");
    // Grouped: ana gets one mail with both lines, ops one with 1.1.
    assert_eq!(r[7].0, 202, "{}", r[7].1);
    let b = j(&r[7].1);
    assert_eq!(b["queued"], 2);
    assert_eq!(
        b["mails"],
        json!([{"to": "ana@example.com", "lines": ["1.1", "2.1"]}, {"to": "ops@example.org", "lines": ["1.1"]}])
    );
    // Per line: one mail per line.
    assert_eq!(j(&r[8].1)["queued"], 2);
    let so: edesk::domain::OrderId = "10458321".parse().unwrap();
    let senders: Vec<String> = n
        .store()
        .authorized_senders(&so)
        .unwrap()
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        senders,
        vec![
            "j.harper@acme.example.com",
            "ana@example.com",
            "ops@example.org",
            "li@example.com"
        ]
    );
    let ana_mail = n
        .store()
        .outbox_list(None)
        .unwrap()
        .into_iter()
        .find(|i| i.to.as_str() == "ana@example.com")
        .unwrap();
    let ana_raw = n.store().outbox_body(ana_mail.id).unwrap().unwrap();
    let parsed = mail_parser::MessageParser::default()
        .parse(ana_raw.as_bytes())
        .unwrap();
    let text = parsed.body_text(0).unwrap();
    assert!(
        text.contains("Carton 4 of 7")
            && text.contains("Rack B / PO 55-1")
            && text.contains("partner@example.net"),
        "{text}"
    );
    assert!(text.contains("L-ISE-BASE"));
}

/// The notification history lists the OBA mails with who asked.
fn check_history(r: &[(u16, String)]) {
    let h = j(&r[9].1);
    let rows = h["notifications"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[1]["kind"], "oba_access");
    assert_eq!(rows[1]["requested_by"], "partner@example.net");
    assert_eq!(rows[1]["lines"], json!(["1.1", "2.1"]));
    assert_eq!(rows[1]["status"], "pending");
}

/// Unsubscribe: GET only shows a form; POST (RFC 8058 one-click) acts.
async fn unsubscribe_needs_a_one_click_post(addr: SocketAddr, n: &Notifier) {
    let token = edesk::notify::ReplyToken::from_address(
        &n.store().outbox_list(None).unwrap()[0].envelope_from,
    )
    .unwrap();
    let jh: edesk::domain::EmailAddress = "j.harper@acme.example.com".parse().unwrap();
    let path = format!("/v1/unsubscribe/{token}");
    let (g, body) = call(addr, "GET", &path, "").await;
    assert_eq!(g, 200);
    assert!(body.contains("<form method=\"post\""));
    assert!(
        n.store().wants(&jh, "order_available").unwrap(),
        "GET must not unsubscribe"
    );
    let (p, _) = call(addr, "POST", &path, "List-Unsubscribe=One-Click").await;
    assert_eq!(p, 200);
    assert!(!n.store().wants(&jh, "order_available").unwrap());
    let (nf, _) = call(addr, "POST", "/v1/unsubscribe/0000000000000000", "").await;
    assert_eq!(nf, 404);
}

/// Preferences per kind, and "No" for all.
async fn preferences_per_kind(addr: SocketAddr, n: &Notifier) {
    let (put, _) = call(
        addr,
        "PUT",
        "/v1/preferences/ana@example.com",
        r#"{"kind": "order_on_hold", "send": false}"#,
    )
    .await;
    assert_eq!(put, 200);
    let (bad, body) = call(
        addr,
        "PUT",
        "/v1/preferences/ana@example.com",
        r#"{"kind": "weather", "send": false}"#,
    )
    .await;
    assert_eq!(bad, 422);
    assert_eq!(j(&body)["field"], "kind");
    let (_, body) = call(addr, "GET", "/v1/preferences/ana@example.com", "").await;
    assert_eq!(
        j(&body)["preferences"],
        json!([{"kind": "order_on_hold", "send": false}])
    );
    let ana: edesk::domain::EmailAddress = "ana@example.com".parse().unwrap();
    assert!(!n.store().wants(&ana, "order_on_hold").unwrap());
    assert!(n.store().wants(&ana, "order_available").unwrap());
}
