//! Orders → outbox → real SMTP conversation with the test sink
//! (`tests/it/support/smtp_sink.rs`; `tests/it/interop.rs` uses aiosmtpd).

use crate::support;

use std::sync::Arc;

use mail_parser::{Message, MessageParser};
use serde_json::json;

use edesk::domain::EmailAddress;
use edesk::notify::Notifier;
use edesk::notify::sender::Sender;
use edesk::store::OutboxStatus;

fn order() -> serde_json::Value {
    json!({
        "so": "10458321", "po": "ACME-PO-7781", "lang": "en", "bill_to": "ACME Networks",
        "lines": [{"line": "1.1", "pid": "L-ASA5516-TD-1Y", "qty": 1,
                   "images": [{"file": "asa-9.20.2-lfbff-k8.SPA", "md5": "9fb4c92d620d4be2a9f190e7fa6332b3"}]}],
        "recipients": [
            {"name": "John <script>alert(1)</script> Harper", "email": "j.harper@acme.example.com", "lang": "en"},
            {"name": "Élodie Prévost", "email": "elodie@acme.example.fr", "lang": "fr"},
            {"email": "tempfail-ops@acme.example.com"},
            {"email": "reject-old@acme.example.com"}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_retries_and_suppresses_over_smtp() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = support::Sink::start(&tmp.path().join("sink"));
    let config = support::config(&tmp.path().join("data"), Some(sink.url()));
    let n = edesk::notify::open_for_cli(&config).unwrap();
    let report = n.import_value(&order(), "test").unwrap();
    assert_eq!(report.queued, 4);

    let sender = Sender::new(n.clone(), &config).unwrap();
    send_until_the_outbox_is_idle(&sender, &n).await;

    let msgs = sink.messages();
    assert_eq!(
        msgs.len(),
        2,
        "only the two deliverable recipients get mail"
    );
    check_retries_and_suppressions(&n);

    let parser = MessageParser::default();
    let parsed: Vec<_> = msgs.iter().map(|m| parser.parse(m).unwrap()).collect();
    let en = parsed
        .iter()
        .find(|m| support::header(m, "X-Sink-Rcpt-To").unwrap() == "j.harper@acme.example.com")
        .unwrap();
    let fr = parsed
        .iter()
        .find(|m| support::header(m, "X-Sink-Rcpt-To").unwrap() == "elodie@acme.example.fr")
        .unwrap();

    let token = check_envelope_and_headers(en, &n);
    check_parts_languages_and_escaping(en, fr, &token);
    check_history(&n);
    a_later_order_skips_the_suppressed_address(&n);
}

/// Drains the outbox until nothing is pending (retries included).
async fn send_until_the_outbox_is_idle(sender: &Arc<Sender>, n: &Notifier) {
    for _ in 0..200 {
        sender.drain().await.unwrap();
        if n.store()
            .outbox_list(Some(OutboxStatus::Pending))
            .unwrap()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// 4xx is retried up to max_attempts, 5xx is not and suppresses the
/// address; a temporary failure never suppresses.
fn check_retries_and_suppressions(n: &Notifier) {
    let items = n.store().outbox_list(None).unwrap();
    let by_to = |p: &str| items.iter().find(|i| i.to.as_str().starts_with(p)).unwrap();
    let temp = by_to("tempfail");
    assert_eq!(temp.status, OutboxStatus::Dead);
    assert_eq!(temp.attempts, 3, "retried up to max_attempts");
    assert!(
        temp.last_error.as_deref().unwrap_or("").contains("451"),
        "{:?}",
        temp.last_error
    );
    let rej = by_to("reject");
    assert_eq!(rej.status, OutboxStatus::Dead);
    assert_eq!(rej.attempts, 1, "5xx is not retried");
    let suppressed: Vec<String> = n
        .store()
        .suppressions()
        .unwrap()
        .into_iter()
        .map(|s| s.email.to_string())
        .collect();
    assert_eq!(suppressed, vec!["reject-old@acme.example.com".to_string()]);
    assert!(
        !n.store()
            .is_suppressed(
                &"tempfail-ops@acme.example.com"
                    .parse::<EmailAddress>()
                    .unwrap()
            )
            .unwrap()
    );
}

/// Envelope and headers; returns the recipient's reply token.
fn check_envelope_and_headers(en: &Message<'_>, n: &Notifier) -> String {
    let mail_from = support::header(en, "X-Sink-Mail-From").unwrap();
    assert!(
        mail_from.starts_with("bounces+") && mail_from.ends_with("@edesk.example.com"),
        "{mail_from}"
    );
    let reply_to = support::header(en, "Reply-To").unwrap();
    assert!(
        reply_to.contains("reply+") && reply_to.contains("@edesk.example.com"),
        "{reply_to}"
    );
    let token = edesk::notify::ReplyToken::from_address(reply_to.trim_matches(['<', '>'])).unwrap();
    assert_eq!(mail_from, format!("bounces+{token}@edesk.example.com"));
    let target = n.store().order_by_token(&token).unwrap().unwrap();
    assert_eq!(target.email.as_str(), "j.harper@acme.example.com");
    assert!(en.message_id().unwrap().ends_with("@edesk.example.com"));
    assert_eq!(
        n.store()
            .order_by_message_id(en.message_id().unwrap())
            .unwrap()
            .unwrap()
            .as_str(),
        "10458321"
    );
    assert_eq!(
        support::header(en, "Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert_eq!(
        support::header(en, "X-Auto-Response-Suppress").as_deref(),
        Some("All")
    );
    assert_eq!(
        support::header(en, "List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let unsub = support::header(en, "List-Unsubscribe").unwrap();
    assert_eq!(
        unsub,
        format!("<http://127.0.0.1:7070/v1/unsubscribe/{token}>")
    );
    token
}

/// Both parts, language, links, MD5, escaping.
fn check_parts_languages_and_escaping(en: &Message<'_>, fr: &Message<'_>, token: &str) {
    assert!(
        support::header(en, "Content-Type")
            .unwrap()
            .starts_with("multipart/alternative")
    );
    assert_eq!(
        en.subject().unwrap(),
        "Your order 10458321 (PO ACME-PO-7781) is ready for download"
    );
    let text = en.body_text(0).unwrap();
    let html = en.body_html(0).unwrap();
    assert!(
        text.contains("9fb4c92d620d4be2a9f190e7fa6332b3")
            && html.contains("9fb4c92d620d4be2a9f190e7fa6332b3")
    );
    assert!(text.contains(&format!("/orders/10458321/pak?t={token}")));
    assert!(
        html.contains("Access Order") && html.contains("Register Product Authorization Key (PAK)")
    );
    assert!(html.contains("To View Your Smart Licenses"));
    assert!(!html.contains("<script>"), "user text is escaped in HTML");
    assert!(html.contains("&lt;script&gt;"));
    assert!(
        text.contains("John <script>alert(1)</script> Harper"),
        "the text part is plain text"
    );
    assert_eq!(
        fr.subject().unwrap(),
        "Votre commande 10458321 (BC ACME-PO-7781) est prête à être téléchargée"
    );
    assert!(fr.body_text(0).unwrap().contains("Bonjour Élodie Prévost"));
    assert_eq!(
        support::header(fr, "Content-Language").as_deref(),
        Some("fr")
    );
}

/// History shows the delivery result of each mail.
fn check_history(n: &Notifier) {
    let h = n.history(&"10458321".parse().unwrap()).unwrap();
    let statuses: Vec<(&str, &str)> = h
        .iter()
        .map(|v| (v.entry.to[0].as_str(), v.status.as_str()))
        .collect();
    assert!(statuses.contains(&("j.harper@acme.example.com", "sent")));
    assert!(statuses.contains(&("reject-old@acme.example.com", "dead")));
}

/// A later order to the suppressed address is skipped with a reason; retrying
/// the dead item after removing the suppression delivers nothing new because
/// the sink still rejects, and the CLI-level retry puts it back in the queue.
fn a_later_order_skips_the_suppressed_address(n: &Notifier) {
    let mut o2 = order();
    o2["so"] = json!("10458322");
    n.import_value(&o2, "test").unwrap();
    let h2 = n.history(&"10458322".parse().unwrap()).unwrap();
    let skipped = h2
        .iter()
        .find(|v| v.entry.to[0] == "reject-old@acme.example.com")
        .unwrap();
    assert_eq!(skipped.entry.skipped.as_deref(), Some("suppressed address"));
    assert_eq!(n.store().retry_all_dead().unwrap(), 2);
    assert_eq!(
        n.store()
            .outbox_list(Some(OutboxStatus::Dead))
            .unwrap()
            .len(),
        0
    );
}

/// The Rust sink answers like `smtp_sink.py` under aiosmtpd: envelope
/// headers, 451/550 by local part, command order, dot-unstuffing, and a real
/// SMTP client (lettre) gets through it.
#[test]
fn the_test_sink_behaves_like_the_aiosmtpd_sink() {
    use lettre::Transport;
    use support::lmtp::Client;

    let tmp = tempfile::tempdir().unwrap();
    let sink = support::Sink::start(&tmp.path().join("sink"));
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], sink.port).into();

    let (mut c, greeting) = Client::connect(addr);
    assert_eq!(greeting.code, 220);
    assert_eq!(c.command("MAIL FROM:<a@example.org>").code, 503);
    let ehlo = c.command("EHLO client.example.org");
    assert_eq!(ehlo.code, 250);
    assert!(ehlo.text.contains("8BITMIME") && ehlo.text.contains("SMTPUTF8"));
    assert_eq!(c.command("RCPT TO:<b@example.org>").code, 503);
    assert_eq!(c.command("MAIL FROM:<>").code, 250);
    assert_eq!(c.command("MAIL FROM:<x@example.org>").code, 503);
    assert_eq!(c.command("DATA").code, 503, "no recipient yet");
    assert_eq!(c.command("RCPT TO:<tempfail-1@example.org>").code, 451);
    assert_eq!(c.command("RCPT TO:<Reject.me@example.org>").code, 550);
    assert_eq!(c.command("RCPT TO:<b@example.org>").code, 250);
    assert_eq!(c.command("RCPT TO:<c@example.org>").code, 250);
    assert_eq!(c.command("DATA").code, 354);
    c.send_data(b"Subject: dots\r\n\r\n.\r\n..two\r\n.one\r\n");
    assert_eq!(c.read_reply().code, 250);
    assert_eq!(c.command("NOOP").code, 250);
    assert_eq!(c.command("RSET").code, 250);
    assert_eq!(c.command("QUIT").code, 221);
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        String::from_utf8_lossy(&msgs[0]),
        "X-Sink-Mail-From: <>\r\nX-Sink-Rcpt-To: b@example.org,c@example.org\r\n\
         Subject: dots\r\n\r\n.\r\n..two\r\n.one\r\n",
        "the client stuffed the dots, the sink took them off again"
    );

    let mailer = lettre::SmtpTransport::builder_dangerous("127.0.0.1")
        .port(sink.port)
        .build();
    let email = lettre::Message::builder()
        .from("Desk <desk@edesk.example.com>".parse().unwrap())
        .to("Élodie <elodie@acme.example.fr>".parse().unwrap())
        .subject("Prête")
        .body(".leading dot\nligne accentuée\n".to_string())
        .unwrap();
    mailer.send(&email).expect("lettre sends to the sink");
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 2);
    let m = MessageParser::default().parse(&msgs[1]).unwrap();
    assert_eq!(
        support::header(&m, "X-Sink-Mail-From").as_deref(),
        Some("desk@edesk.example.com")
    );
    assert_eq!(
        support::header(&m, "X-Sink-Rcpt-To").as_deref(),
        Some("elodie@acme.example.fr")
    );
    let body = m.body_text(0).unwrap();
    assert!(
        body.starts_with(".leading dot\r\nligne accentuée\r\n"),
        "{body:?}"
    );
}
