//! The support desk end to end: a customer writes over LMTP (test client), the
//! daemon escalates, mails the team and acknowledges over SMTP (test sink;
//! `tests/it/interop.rs` repeats this with swaks and aiosmtpd), the team's
//! reply is relayed in the customer's thread, and an autoresponder-like
//! correspondent is cut off after N automatic mails.

use crate::support;
use crate::support::Served;

use mail_parser::MessageParser;
use serde_json::{Value, json};
use support::lmtp::{self, Mail};
use support::smtp_sink::{header, rcpt_to};
use support::{Daemon, Sink, spawn_with_sink};

fn order() -> Value {
    json!({
        "so": "10458321", "po": "ACME-PO-7781", "lang": "en", "bill_to": "ACME Networks",
        "holds": [{"type": "export", "line": null, "released": false}],
        "lines": [{"line": "1.1", "pid": "L-ASA5516-TD-1Y", "qty": 1,
                   "images": [{"file": "asa-9.20.2-lfbff-k8.SPA", "md5": "9fb4c92d620d4be2a9f190e7fa6332b3"}]}],
        "recipients": [{"name": "John Harper", "email": "j.harper@acme.example.com", "lang": "en"}]
    })
}

fn start(tmp: &std::path::Path, per_hour: &str) -> (Sink, Daemon) {
    spawn_with_sink(
        tmp,
        &[
            ("EDESK_DESK__AUTO_MAIL_PER_HOUR", per_hour),
            ("EDESK_DESK__TEAMS__EXPORTOPS", "exportops@cisco.example"),
            (
                "EDESK_DESK__TEAMS__EDELIVERY_SUPPORT",
                "support@cisco.example",
            ),
        ],
    )
}

/// What `swaks --protocol LMTP --from F --to support@… --h-From F --body B
/// --header H…` sent before: a swaks-like message over the test LMTP client.
fn lmtp(d: &Daemon, from: &str, headers: &[String], body: &str) {
    let to = ["support@edesk.example.com"];
    let mail = headers
        .iter()
        .fold(
            Mail::new(from, &to).header(&format!("From: {from}")),
            |m, h| m.header(h),
        )
        .body(body);
    let out = lmtp::deliver(d.lmtp, from, &to, &mail.to_bytes());
    assert!(out.ok(), "{}", out.transcript);
}

fn wait_mails(d: &Daemon, sink: &Sink, n: usize) -> Vec<Vec<u8>> {
    d.wait_for(&format!("{n} mails at the sink"), || {
        let m = sink.messages();
        (m.len() >= n).then_some(m)
    })
}

#[test]
fn escalation_acknowledgement_team_reply_relay() {
    let tmp = tempfile::tempdir().unwrap();
    let (sink, d) = start(tmp.path(), "5");
    d.import_order(&order());
    // The order is on hold: no notification yet (skipped in history).
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = sink.messages().len();
    let (ticket, team_mid) =
        the_customer_is_acknowledged_and_the_team_gets_the_escalation(&d, &sink, before);
    the_team_answer_is_relayed_in_the_customers_thread(&d, &sink, before, &ticket, &team_mid);
    an_internal_note_is_never_mailed(&d, &sink, before, &ticket);
}

/// The customer writes: acknowledged (auto-replied, in their thread, with
/// the ticket number), escalated to the export team, ticket open.
fn the_customer_is_acknowledged_and_the_team_gets_the_escalation(
    d: &Daemon,
    sink: &Sink,
    before: usize,
) -> (String, String) {
    lmtp(
        d,
        "j.harper@acme.example.com",
        &[
            "Message-Id: <cust-1@acme.example.com>".into(),
            "Subject: Export hold on SO 10458321".into(),
        ],
        "Hello,\nour order 10458321 has been on an export hold for a week. Who can release it?\nThanks, John",
    );
    let mails = wait_mails(d, sink, before + 2);
    let new: Vec<&Vec<u8>> = mails[before..].iter().collect();
    let ack = new
        .iter()
        .find(|m| rcpt_to(m) == "j.harper@acme.example.com")
        .expect("acknowledgement to the customer");
    let team = new
        .iter()
        .find(|m| rcpt_to(m) == "exportops@cisco.example")
        .expect("escalation to the export team");
    assert_eq!(
        header(ack, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert_eq!(
        header(ack, "In-Reply-To").as_deref(),
        Some("<cust-1@acme.example.com>")
    );
    let ack_subject = header(ack, "Subject").unwrap();
    let ticket = ack_subject
        .split_whitespace()
        .find(|w| w.starts_with("T-"))
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        .unwrap_or_else(|| panic!("ticket in {ack_subject}"))
        .to_string();
    let ack_text = String::from_utf8_lossy(ack).to_string();
    assert!(ack_text.contains("business day"), "{ack_text}");
    let team_text = String::from_utf8_lossy(team).to_string();
    assert!(team_text.contains("export hold"), "{team_text}");

    let (status, body) = d.get(&format!("/v1/tickets/{ticket}"));
    assert_eq!(status, 200, "{body}");
    let t: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(t["team"], "exportops");
    assert_eq!(t["status"], "open");
    let team_mid = header(team, "Message-ID").unwrap();
    (ticket, team_mid)
}

/// The export team answers the escalation mail.
fn the_team_answer_is_relayed_in_the_customers_thread(
    d: &Daemon,
    sink: &Sink,
    before: usize,
    ticket: &str,
    team_mid: &str,
) {
    lmtp(
        d,
        "exportops@cisco.example",
        &[
            "Message-Id: <team-1@cisco.example>".into(),
            format!("In-Reply-To: {team_mid}"),
            format!("References: {team_mid}"),
            format!("Subject: Re: [Ticket {ticket}] escalation"),
        ],
        "The export hold was released this morning.\n\nOn Thu, the desk wrote:\n> our order 10458321 has been on an export hold",
    );
    let mails = wait_mails(d, sink, before + 3);
    let relay = mails.last().unwrap();
    assert_eq!(rcpt_to(relay), "j.harper@acme.example.com");
    let relay_text = String::from_utf8_lossy(relay).to_string();
    assert!(relay_text.contains("released this morning"), "{relay_text}");
    assert!(
        !relay_text.contains("has been on an export hold for a week"),
        "{relay_text}"
    );
    let refs = header(relay, "References").unwrap_or_default();
    assert!(refs.contains("cust-1@acme.example.com"), "{refs}");
    let (_, body) = d.get(&format!("/v1/tickets/{ticket}"));
    let t: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(t["status"], "answered");
}

/// An internal note over HTTP is recorded and never mailed.
fn an_internal_note_is_never_mailed(d: &Daemon, sink: &Sink, before: usize, ticket: &str) {
    let (status, body) = d.post_json(
        &format!("/v1/tickets/{ticket}/reply"),
        r#"{"by": "jane", "text": "customer called, all good", "note": true}"#,
    );
    assert_eq!(status, 201, "{body}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(sink.messages().len(), before + 3);
}

#[test]
fn autoresponder_loop_stops_after_n_mails() {
    let tmp = tempfile::tempdir().unwrap();
    let (sink, d) = start(tmp.path(), "3");
    // A correspondent that answers every mail it gets with a new
    // human-looking question (no Auto-Submitted header): the worst case.
    for i in 0..8 {
        lmtp(
            &d,
            "robot@example.net",
            &[
                format!("Message-Id: <robot-{i}@example.net>"),
                "Subject: my download keeps failing".into(),
            ],
            "The download of my software fails every time, what should I do?",
        );
    }
    d.wait_for("all mail processed", || {
        let (_, body) = d.get("/v1/mail");
        let v: Value = serde_json::from_str(&body).ok()?;
        (v["pending"] == 0 && v["messages"].as_array()?.len() == 8).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(800));
    let to_robot = sink
        .messages()
        .iter()
        .filter(|m| rcpt_to(m) == "robot@example.net")
        .count();
    assert!(to_robot <= 3, "{to_robot} automatic mails to the robot");
    assert!(to_robot >= 1, "the first question deserves an answer");
}

#[test]
fn pipe_delivery_is_processed_by_the_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let (_sink, d) = start(tmp.path(), "5");
    let msg = "From: ana@example.org\r\nTo: support@edesk.example.com\r\nSubject: hello\r\nMessage-ID: <pipe-1@example.org>\r\n\r\nHow do I stop receiving notification emails?\r\n";
    let mut child = std::process::Command::new(support::BIN)
        .args(["mail", "deliver", "--data-dir"])
        .arg(tmp.path().join("data"))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), msg.as_bytes()).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    d.wait_for("the piped message processed", || {
        let (_, body) = d.get("/v1/mail");
        let v: Value = serde_json::from_str(&body).ok()?;
        let m = v["messages"].as_array()?.first()?.clone();
        (m["state"] == "processed").then_some(())
    });
}

#[test]
fn pipe_delivery_fails_with_ex_tempfail_when_it_cannot_store() {
    let tmp = tempfile::tempdir().unwrap();
    // The Maildir path is a file: nothing can be stored there.
    let blocker = tmp.path().join("blocked");
    std::fs::write(&blocker, "not a directory").unwrap();
    let out = std::process::Command::new(support::BIN)
        .args(["mail", "deliver", "--data-dir"])
        .arg(tmp.path())
        .env("EDESK_INBOUND__MAILDIR", &blocker)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75), "{out:?}");
}

#[test]
fn restore_command_by_mail_restores_the_archived_order_and_confirms() {
    let tmp = tempfile::tempdir().unwrap();
    let (sink, d) = start(tmp.path(), "5");
    let mut o = order();
    o["holds"] = json!([]);
    o["archived"] = json!(true);
    d.import_order(&o);
    a_stranger_cannot_restore_it(&d);
    let explanation = the_from_line_proves_nothing(&d, &sink);
    a_reply_to_our_mail_restores_and_confirms(&d, &sink, &explanation);
}

/// A stranger cannot restore it.
fn a_stranger_cannot_restore_it(d: &Daemon) {
    lmtp(
        d,
        "mallory@evil.example",
        &[
            "Message-Id: <restore-0@evil.example>".into(),
            "Subject: RESTORE 10458321".into(),
        ],
        "RESTORE 10458321",
    );
    d.wait_for("the stranger's mail processed", || {
        let (_, body) = d.get("/v1/mail");
        let v: Value = serde_json::from_str(&body).ok()?;
        (v["pending"] == 0 && v["messages"].as_array()?.len() == 1).then_some(())
    });
    let (_, body) = d.get("/v1/orders/10458321");
    assert!(body.contains("\"archived\":true"), "{body}");
}

/// The customer's address in the From line proves nothing: not run, and
/// the customer is told how to do it safely.
fn the_from_line_proves_nothing(d: &Daemon, sink: &Sink) -> Vec<u8> {
    lmtp(
        d,
        "j.harper@acme.example.com",
        &[
            "Message-Id: <restore-1@acme.example.com>".into(),
            "Subject: RESTORE SO 10458321".into(),
        ],
        "RESTORE 10458321\n\nThanks",
    );
    let explanation = d.wait_for("the explanation", || {
        sink.messages()
            .into_iter()
            .find(|m| rcpt_to(m) == "j.harper@acme.example.com")
    });
    let text = String::from_utf8_lossy(&explanation).to_string();
    assert!(text.contains("did not act on RESTORE"), "{text}");
    let (_, body) = d.get("/v1/orders/10458321");
    assert!(body.contains("\"archived\":true"), "{body}");
    explanation
}

/// Replying to our mail proves it comes from the customer.
fn a_reply_to_our_mail_restores_and_confirms(d: &Daemon, sink: &Sink, explanation: &[u8]) {
    let ours = header(explanation, "Message-ID").unwrap();
    lmtp(
        d,
        "j.harper@acme.example.com",
        &[
            "Message-Id: <restore-2@acme.example.com>".into(),
            format!("In-Reply-To: {ours}"),
            "Subject: Re: Not done: RESTORE".into(),
        ],
        "RESTORE 10458321\n\nThanks",
    );
    d.wait_for("the order restored", || {
        let (_, body) = d.get("/v1/orders/10458321");
        body.contains("\"archived\":false").then_some(())
    });
    let mails = d.wait_for("restored notice and confirmation", || {
        let m: Vec<Vec<u8>> = sink
            .messages()
            .into_iter()
            .filter(|m| rcpt_to(m) == "j.harper@acme.example.com")
            .collect();
        (m.len() >= 3).then_some(m)
    });
    let subjects: Vec<String> = mails.iter().filter_map(|m| header(m, "Subject")).collect();
    assert!(
        subjects.iter().any(|s| s.contains("RESTORE")),
        "{subjects:?}"
    );
    assert!(
        sink.messages()
            .iter()
            .all(|m| rcpt_to(m) != "mallory@evil.example"),
        "nothing automatic to the stranger"
    );
}

#[test]
fn confident_faq_question_is_answered_in_the_askers_language() {
    let tmp = tempfile::tempdir().unwrap();
    let (sink, d) = start(tmp.path(), "5");
    lmtp(
        &d,
        "claire@exemple.fr",
        &[
            "Message-Id: <faq-fr-1@exemple.fr>".into(),
            "Subject: notifications".into(),
        ],
        "Bonjour,\nComment puis-je arrêter de recevoir des notifications électroniques ?\nMerci",
    );
    let mails = d.wait_for("the FAQ answer", || {
        let m: Vec<Vec<u8>> = sink
            .messages()
            .into_iter()
            .filter(|m| rcpt_to(m) == "claire@exemple.fr")
            .collect();
        (!m.is_empty()).then_some(m)
    });
    let answer = &mails[0];
    assert_eq!(
        header(answer, "In-Reply-To").as_deref(),
        Some("<faq-fr-1@exemple.fr>")
    );
    assert_eq!(
        header(answer, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    let parsed = MessageParser::default().parse(answer.as_slice()).unwrap();
    let text = parsed.body_text(0).unwrap_or_default().to_string();
    assert!(
        text.contains("Mon eDelivery"),
        "French answer expected: {text}"
    );
    assert!(
        text.contains("une personne"),
        "a way to reach a person: {text}"
    );
    assert_eq!(header(answer, "Content-Language").as_deref(), Some("fr"));
}

#[test]
fn hard_bounce_to_the_verp_address_suppresses_the_recipient() {
    let tmp = tempfile::tempdir().unwrap();
    let (sink, d) = start(tmp.path(), "5");
    let mut o = order();
    o["holds"] = json!([]);
    d.import_order(&o);
    let mails = wait_mails(&d, &sink, 1);
    let envelope_from = header(&mails[0], "X-Sink-Mail-From").unwrap();
    assert!(envelope_from.starts_with("bounces+"), "{envelope_from}");
    let notification_id = header(&mails[0], "Message-ID").unwrap();

    // The recipient's MTA later bounces it (a Postfix-style DSN).
    let dsn = format!(
        "From: MAILER-DAEMON@mx.acme.example.com (Mail Delivery System)\r\n\
To: {envelope_from}\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Message-ID: <dsn-verp-1@mx.acme.example.com>\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B1\"\r\n\r\n\
--B1\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host mx.acme.example.com.\r\n<j.harper@acme.example.com>: host said: 550 5.1.1 User unknown\r\n\
--B1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.acme.example.com\r\n\r\nFinal-Recipient: rfc822; j.harper@acme.example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
--B1\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {notification_id}\r\nSubject: Your order\r\n\r\n--B1--\r\n"
    );
    // Null reverse-path, as an MTA sends a DSN.
    let out = lmtp::deliver(d.lmtp, "", &[&envelope_from], dsn.as_bytes());
    assert!(out.ok(), "{}", out.transcript);
    d.wait_for("the address suppressed", || {
        let (_, m) = d.get("/metrics");
        m.contains("edesk_suppressed_addresses 1").then_some(())
    });
    // Nothing was answered to the mailer daemon.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        sink.messages()
            .iter()
            .all(|m| !rcpt_to(m).to_lowercase().contains("mailer-daemon"))
    );
}

fn tickets(d: &Daemon) -> Vec<Value> {
    let (status, body) = d.get("/v1/tickets");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v.as_array()
        .cloned()
        .or_else(|| v["tickets"].as_array().cloned())
        .unwrap_or_default()
}

fn metric(d: &Daemon, name: &str) -> u64 {
    let (_, body) = d.get("/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
}

fn undelivered_note(t: &Value) -> Option<String> {
    t["events"].as_array()?.iter().find_map(|e| {
        e["text"]
            .as_str()
            .filter(|x| x.contains("ESCALATION NOT DELIVERED"))
            .map(str::to_string)
    })
}

/// The team's mailbox refuses the escalation (550 at RCPT): the ticket says
/// so, `/metrics` counts it, the log has it at error level, and the team's
/// address stays off the suppression list.
#[test]
fn an_escalation_the_relay_refuses_shows_on_the_ticket_and_never_suppresses_the_team() {
    let tmp = tempfile::tempdir().unwrap();
    let (_sink, d) = spawn_with_sink(
        tmp.path(),
        &[("EDESK_DESK__TEAMS__EXPORTOPS", "reject-ops@cisco.example")],
    );
    d.import_order(&order());
    lmtp(
        &d,
        "j.harper@acme.example.com",
        &[
            "Message-Id: <refused-1@acme.example.com>".into(),
            "Subject: Export hold on SO 10458321".into(),
        ],
        "Hello,\nour order 10458321 has been on an export hold for a week. Who can release it?\nThanks, John",
    );
    let note = d.wait_for("the note on the ticket", || {
        tickets(&d).iter().find_map(undelivered_note)
    });
    assert!(
        note.contains("reject-ops@cisco.example") && note.contains("550"),
        "{note}"
    );
    assert_eq!(metric(&d, "edesk_escalations_undeliverable_total"), 1);
    assert_eq!(metric(&d, "edesk_suppressed_addresses"), 0);
    let log = d.log();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("escalation could not be delivered")),
        "{log}"
    );
}

/// A team address suppressed by an earlier version: the escalation is not
/// sent, the ticket and `/metrics` say so, and the acknowledgement does not
/// claim the team has the request.
#[test]
fn a_suppressed_team_address_is_reported_and_the_ack_claims_no_handover() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    {
        let store = edesk::store::Store::open(&data).unwrap();
        let team: edesk::domain::EmailAddress = "exportops@cisco.example".parse().unwrap();
        store.suppress(&team, "550 5.1.1 (old bounce)").unwrap();
    }
    let (sink, d) = start(tmp.path(), "5");
    d.import_order(&order());
    lmtp(
        &d,
        "j.harper@acme.example.com",
        &[
            "Message-Id: <suppressed-1@acme.example.com>".into(),
            "Subject: Export hold on SO 10458321".into(),
        ],
        "Hello,\nour order 10458321 has been on an export hold for a week. Who can release it?\nThanks, John",
    );
    let is_ack = |m: &Vec<u8>| {
        rcpt_to(m) == "j.harper@acme.example.com"
            && header(m, "Subject").is_some_and(|s| s.contains("[Ticket"))
    };
    let mails = d.wait_for("the acknowledgement", || {
        let m = sink.messages();
        m.iter().any(is_ack).then_some(m)
    });
    assert!(
        mails
            .iter()
            .all(|m| rcpt_to(m) != "exportops@cisco.example"),
        "nothing reaches a suppressed address"
    );
    let ack = mails.iter().find(|m| is_ack(m)).unwrap();
    let text = MessageParser::default()
        .parse(ack)
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
        .unwrap_or_default();
    assert!(text.contains("registered it under ticket"), "{text}");
    assert!(!text.contains("Export Operations team"), "{text}");
    let note = d.wait_for("the note on the ticket", || {
        tickets(&d).iter().find_map(undelivered_note)
    });
    assert!(note.contains("suppressed"), "{note}");
    assert_eq!(metric(&d, "edesk_escalations_undeliverable_total"), 1);
}

/// Waits until the daemon has processed `n` inbound messages; returns them.
fn processed(d: &Daemon, n: usize) -> Vec<Value> {
    d.wait_for(&format!("{n} inbound messages processed"), || {
        let (_, body) = d.get("/v1/mail");
        let v: Value = serde_json::from_str(&body).ok()?;
        let m = v["messages"].as_array()?.clone();
        (v["pending"] == 0 && m.len() >= n).then_some(m)
    })
}

/// The forgery of issue 10: a stranger writes in the customer's name with
/// a Message-ID of their choosing, then "From" the team's address in reply
/// to that id (and to the acknowledgement the customer got). Neither is
/// relayed: the customer receives nothing more, the ticket stays open and
/// keeps the forged text as an internal note. The team's real answer (to
/// the escalation mail) is still relayed.
#[test]
fn a_forged_team_reply_changes_nothing_for_the_customer() {
    let tmp = tempfile::tempdir().unwrap();
    let (sink, d) = start(tmp.path(), "5");
    d.import_order(&order());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = sink.messages().len();
    let (ack_mid, team_mid, ticket) = the_escalation_under_a_chosen_message_id(&d, &sink, before);
    forged_team_replies_are_only_notes(&d, &sink, before, &ticket, &ack_mid);
    the_real_team_answer_is_relayed(&d, &sink, before, &ticket, &team_mid);
}

/// The customer's escalation, under a Message-ID the stranger chose: the
/// acknowledgement and the team's mail go out, the team's Message-ID
/// carries 64 random bits.
fn the_escalation_under_a_chosen_message_id(
    d: &Daemon,
    sink: &Sink,
    before: usize,
) -> (String, String, String) {
    lmtp(
        d,
        "j.harper@acme.example.com",
        &[
            "Message-Id: <chosen-by-stranger@evil.example>".into(),
            "Subject: Export hold on SO 10458321".into(),
        ],
        "Hello,\nour order 10458321 is stuck on an export hold. Who can release it?",
    );
    let mails = wait_mails(d, sink, before + 2);
    let ack = mails[before..]
        .iter()
        .find(|m| rcpt_to(m) == "j.harper@acme.example.com")
        .expect("acknowledgement");
    let team = mails[before..]
        .iter()
        .find(|m| rcpt_to(m) == "exportops@cisco.example")
        .expect("escalation");
    let ack_mid = header(ack, "Message-ID").unwrap();
    let team_mid = header(team, "Message-ID").unwrap();
    let random = team_mid
        .trim_matches(['<', '>'])
        .split('@')
        .next()
        .and_then(|l| l.rsplit('.').next())
        .unwrap_or_default();
    assert!(random.len() >= 16, "64 random bits in {team_mid}");
    processed(d, 1);
    let (_, body) = d.get("/v1/tickets");
    let ticket = serde_json::from_str::<Value>(&body).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    (ack_mid, team_mid, ticket)
}

/// "From" the team, in reply to the chosen id and to the acknowledgement:
/// nothing relayed, the ticket stays open, the texts are notes.
fn forged_team_replies_are_only_notes(
    d: &Daemon,
    sink: &Sink,
    before: usize,
    ticket: &str,
    ack_mid: &str,
) {
    for (n, answered) in ["<chosen-by-stranger@evil.example>", ack_mid]
        .iter()
        .enumerate()
    {
        lmtp(
            d,
            "exportops@cisco.example",
            &[
                format!("Message-Id: <forged-{n}@evil.example>"),
                format!("In-Reply-To: {answered}"),
                format!("References: {answered}"),
                format!("Subject: Re: [Ticket {ticket}] escalation"),
            ],
            "The hold is released. Log in at http://evil.example/cisco to download.",
        );
    }
    let messages = processed(d, 3);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(sink.messages().len(), before + 2, "nothing more was sent");
    for m in &messages[..2] {
        assert_eq!(m["decision"]["action"]["action"], "team_mail", "{m}");
    }
    let (_, body) = d.get(&format!("/v1/tickets/{ticket}"));
    let t: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(t["status"], "open", "{t}");
    let kinds: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(!kinds.contains(&"team_reply"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "note").count(),
        2,
        "{kinds:?}"
    );
}

/// The team's real answer, to the escalation it received, is relayed.
fn the_real_team_answer_is_relayed(
    d: &Daemon,
    sink: &Sink,
    before: usize,
    ticket: &str,
    team_mid: &str,
) {
    lmtp(
        d,
        "exportops@cisco.example",
        &[
            "Message-Id: <team-1@cisco.example>".into(),
            format!("In-Reply-To: {team_mid}"),
            format!("References: {team_mid}"),
            format!("Subject: Re: [Ticket {ticket}] escalation"),
        ],
        "The export hold was released this morning.",
    );
    let mails = wait_mails(d, sink, before + 3);
    let relay = mails.last().unwrap();
    assert_eq!(rcpt_to(relay), "j.harper@acme.example.com");
    let text = String::from_utf8_lossy(relay).to_string();
    assert!(text.contains("released this morning"), "{text}");
    assert!(!text.contains("evil.example/cisco"), "{text}");
}

/// With DKIM/SPF/DMARC verification on (records file only: no DNS here),
/// the daemon records the verdicts on each message, and even the team's
/// reply to the escalation is held when the team's domain did not sign it.
#[test]
fn with_verification_the_daemon_records_verdicts_and_holds_an_unsigned_team_reply() {
    let tmp = tempfile::tempdir().unwrap();
    let records = tmp.path().join("records.txt");
    std::fs::write(
        &records,
        "# test zone\n_dmarc.cisco.example \"v=DMARC1; p=reject\"\ncisco.example v=spf1 ip4:192.0.2.0/24 -all\n",
    )
    .unwrap();
    let (sink, d) = spawn_with_sink(
        tmp.path(),
        &[
            ("EDESK_DESK__TEAMS__EXPORTOPS", "exportops@cisco.example"),
            ("EDESK_INBOUND__VERIFY_AUTH", "records"),
            ("EDESK_INBOUND__AUTH_RECORDS", records.to_str().unwrap()),
        ],
    );
    d.import_order(&order());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = sink.messages().len();
    lmtp(
        &d,
        "j.harper@acme.example.com",
        &[
            "Message-Id: <v-1@acme.example.com>".into(),
            "Subject: Export hold on SO 10458321".into(),
        ],
        "Our order 10458321 is stuck on an export hold. Who can release it?",
    );
    let mails = wait_mails(&d, &sink, before + 2);
    let team = mails[before..]
        .iter()
        .find(|m| rcpt_to(m) == "exportops@cisco.example")
        .expect("escalation");
    let team_mid = header(team, "Message-ID").unwrap();
    let first = processed(&d, 1);
    let verified = &first[0]["decision"]["auth"]["verified"];
    assert_eq!(verified["from_domain"], "acme.example.com", "{}", first[0]);
    assert!(
        first[0]["decision"]["reasons"]
            .to_string()
            .contains("verified: dkim none"),
        "{}",
        first[0]
    );
    lmtp(
        &d,
        "exportops@cisco.example",
        &[
            "Received: from mx.evil.example (mx.evil.example [198.51.100.9]) by mail.edesk.example.com".into(),
            "Message-Id: <team-v@cisco.example>".into(),
            format!("In-Reply-To: {team_mid}"),
            "Subject: Re: escalation".into(),
        ],
        "Released. Log in at http://evil.example/cisco",
    );
    let all = processed(&d, 2);
    let m = &all[0];
    assert_eq!(m["decision"]["action"]["action"], "team_mail", "{m}");
    assert_eq!(
        m["decision"]["auth"]["verified"]["spf"]["result"], "fail",
        "{m}"
    );
    assert_eq!(
        m["decision"]["auth"]["verified"]["dmarc"]["result"], "fail",
        "{m}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(sink.messages().len(), before + 2, "nothing relayed");
}

/// Mail whose envelope sender is null (`MAIL FROM:<>`) is automatic by
/// definition (RFC 5321 §4.5.5): even when it reads like a person's question
/// and carries no auto-reply header, it is stored and never answered. The
/// same mail with an ordinary envelope sender gets its FAQ answer.
#[test]
fn a_null_envelope_sender_is_never_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let (sink, d) = start(tmp.path(), "5");
    let to = ["support@edesk.example.com"];
    let question = |n: u32| {
        Mail::new("ana@example.org", &to)
            .header("From: ana@example.org")
            .header(&format!("Message-Id: <null-{n}@example.org>"))
            .header("Subject: notification emails")
            .body("How do I stop receiving notification emails?")
            .to_bytes()
    };
    let out = lmtp::deliver(d.lmtp, "", &to, &question(1));
    assert!(out.ok(), "{}", out.transcript);
    let out = lmtp::deliver(d.lmtp, "ana@example.org", &to, &question(2));
    assert!(out.ok(), "{}", out.transcript);
    let mails = processed(&d, 2);
    let by_id = |id: &str| {
        mails
            .iter()
            .find(|m| m.to_string().contains(id))
            .unwrap_or_else(|| panic!("{id} in {mails:?}"))
            .clone()
    };
    let null = by_id("null-1@example.org");
    assert_eq!(null["decision"]["kind"], "autoreply", "{null}");
    assert!(
        null["decision"]["reasons"]
            .to_string()
            .contains("envelope sender is null"),
        "{null}"
    );
    let person = by_id("null-2@example.org");
    assert_eq!(person["decision"]["kind"], "new", "{person}");
    wait_mails(&d, &sink, 1);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let answers: Vec<_> = sink
        .messages()
        .into_iter()
        .filter(|m| rcpt_to(m) == "ana@example.org")
        .collect();
    assert_eq!(answers.len(), 1, "only the mail with a sender is answered");
    let replied_to = header(&answers[0], "In-Reply-To").unwrap_or_default();
    assert!(replied_to.contains("null-2@example.org"), "{replied_to}");
}
