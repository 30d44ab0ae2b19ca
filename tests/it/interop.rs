//! Interop against independent implementations: swaks as the LMTP client,
//! aiosmtpd (`tests/it/support/smtp_sink.py` under Debian's python3) as the SMTP
//! server. The default suite uses the Rust client and sink of `tests/it/support`;
//! these tests check that both agree with real tools. Run with
//! `cargo test --locked --test it interop:: -- --ignored` (`.ci/run` does, after
//! installing swaks and python3-aiosmtpd).

use crate::support;
use crate::support::Served;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use mail_parser::MessageParser;
use serde_json::{Value, json};

use edesk::notify::sender::Sender;
use edesk::store::OutboxStatus;
use support::smtp_sink::{header, rcpt_to};
use support::{Daemon, spawn_daemon};

/// Runs swaks (Debian package) and returns (exit success, transcript).
fn swaks(args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args(args)
        .output()
        .expect("swaks is required for this test (apt-get install swaks)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The aiosmtpd sink of `tests/it/support/smtp_sink.py`, killed on drop; the
/// same API and files as `support::Sink`.
struct PySink {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl PySink {
    fn start(dir: &Path) -> PySink {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/smtp_sink.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect(
                "start /usr/bin/python3 tests/it/support/smtp_sink.py (needs python3-aiosmtpd)",
            );
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "sink did not start");
        PySink {
            port,
            dir: dir.to_path_buf(),
            child,
        }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Raw messages received so far, in arrival order.
    fn messages(&self) -> Vec<Vec<u8>> {
        support::smtp_sink::messages_in(&self.dir)
    }
}

impl Drop for PySink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mail_list(d: &Daemon) -> Value {
    let (status, body) = d.get("/v1/mail?limit=1000");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn order() -> Value {
    json!({
        "so": "10458321", "po": "ACME-PO-7781", "lang": "en", "bill_to": "ACME Networks",
        "lines": [{"line": "1.1", "pid": "L-ASA5516-TD-1Y", "qty": 1,
                   "images": [{"file": "asa-9.20.2-lfbff-k8.SPA", "md5": "9fb4c92d620d4be2a9f190e7fa6332b3"}]}],
        "recipients": [{"name": "John Harper", "email": "j.harper@acme.example.com", "lang": "en"}]
    })
}

fn start(tmp: &Path) -> (PySink, Daemon) {
    let sink = PySink::start(&tmp.join("sink"));
    let url = sink.url();
    let d = spawn_daemon(
        &tmp.join("data"),
        &[
            ("EDESK_SMTP__URL", url.as_str()),
            ("EDESK_DESK__TEAMS__EXPORTOPS", "exportops@cisco.example"),
        ],
    );
    (sink, d)
}

#[test]
#[ignore = "interop: needs swaks and python3-aiosmtpd; run by .ci/run"]
fn swaks_lmtp_each_recipient_gets_a_reply_and_the_message_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = spawn_daemon(dir.path(), &[]);
    let server = d.lmtp.to_string();
    let send = |to: &str| {
        swaks(&[
            "--protocol",
            "LMTP",
            "--server",
            &server,
            "--from",
            "customer@example.org",
            "--to",
            to,
            "--header",
            "Message-Id: <lmtp-1@example.org>",
            "--body",
            "Hello, where is my order?\n.\n..two dots",
        ])
    };
    let (ok, transcript) = send("support@edesk.example.com,reply+abc@edesk.example.com");
    assert!(ok, "{transcript}");
    // RFC 2033: one reply per accepted recipient after the final dot.
    assert_eq!(
        transcript.matches("<-  250 2.0.0").count(),
        2,
        "{transcript}"
    );
    // The MTA retries the same message: accepted again, stored once.
    let (ok, transcript) = send("support@edesk.example.com");
    assert!(
        ok && transcript.contains("already accepted"),
        "{transcript}"
    );
    let list = mail_list(&d);
    let messages = list["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{list}");
    assert_eq!(
        messages[0]["envelope"]["rcpt_to"].as_array().unwrap().len(),
        2
    );
    assert_eq!(messages[0]["envelope"]["mail_from"], "customer@example.org");
}

#[test]
#[ignore = "interop: needs swaks and python3-aiosmtpd; run by .ci/run"]
fn swaks_speaking_smtp_to_the_lmtp_port_is_told_to_use_lhlo() {
    let dir = tempfile::tempdir().unwrap();
    let d = spawn_daemon(dir.path(), &[]);
    let server = d.lmtp.to_string();
    let (ok, transcript) = swaks(&[
        "--server",
        server.as_str(),
        "--from",
        "a@example.org",
        "--to",
        "b@edesk.example.com",
    ]);
    assert!(!ok, "{transcript}");
    assert!(transcript.contains("LHLO"), "{transcript}");
    assert_eq!(mail_list(&d)["messages"].as_array().unwrap().len(), 0);
}

/// lettre (the outbox sender) against aiosmtpd: delivery, 451 retried up to
/// the limit, 550 not retried and the address suppressed.
#[test]
#[ignore = "interop: needs swaks and python3-aiosmtpd; run by .ci/run"]
fn notifications_reach_aiosmtpd_with_retries_and_suppression() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let sink = PySink::start(&tmp.path().join("sink"));
    let config = support::config(&tmp.path().join("data"), Some(sink.url()));
    let n = edesk::notify::open_for_cli(&config).unwrap();
    let mut o = order();
    o["recipients"] = json!([
        {"name": "John Harper", "email": "j.harper@acme.example.com", "lang": "en"},
        {"name": "Élodie Prévost", "email": "elodie@acme.example.fr", "lang": "fr"},
        {"email": "tempfail-ops@acme.example.com"},
        {"email": "reject-old@acme.example.com"}
    ]);
    assert_eq!(n.import_value(&o, "test").unwrap().queued, 4);
    let sender = Sender::new(n.clone(), &config).unwrap();
    rt.block_on(async {
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
    });
    let msgs = sink.messages();
    let mut to: Vec<String> = msgs.iter().map(|m| rcpt_to(m)).collect();
    to.sort();
    assert_eq!(to, ["elodie@acme.example.fr", "j.harper@acme.example.com"]);
    for m in &msgs {
        let from = header(m, "X-Sink-Mail-From").unwrap();
        assert!(from.starts_with("bounces+"), "{from}");
    }
    let fr = msgs
        .iter()
        .find(|m| rcpt_to(m) == "elodie@acme.example.fr")
        .unwrap();
    let fr = MessageParser::default().parse(fr).unwrap();
    assert!(fr.body_text(0).unwrap().contains("Bonjour Élodie Prévost"));
    let items = n.store().outbox_list(None).unwrap();
    let by_to = |p: &str| items.iter().find(|i| i.to.as_str().starts_with(p)).unwrap();
    let temp = by_to("tempfail");
    assert_eq!((temp.status, temp.attempts), (OutboxStatus::Dead, 3));
    assert!(temp.last_error.as_deref().unwrap_or("").contains("451"));
    let rej = by_to("reject");
    assert_eq!((rej.status, rej.attempts), (OutboxStatus::Dead, 1));
    let suppressed: Vec<String> = n
        .store()
        .suppressions()
        .unwrap()
        .into_iter()
        .map(|s| s.email.to_string())
        .collect();
    assert_eq!(suppressed, ["reject-old@acme.example.com"]);
}

/// A customer writes with swaks; the acknowledgement and the escalation reach
/// aiosmtpd.
#[test]
#[ignore = "interop: needs swaks and python3-aiosmtpd; run by .ci/run"]
fn escalation_from_swaks_is_acknowledged_through_aiosmtpd() {
    let tmp = tempfile::tempdir().unwrap();
    let (sink, d) = start(tmp.path());
    let mut o = order();
    o["holds"] = json!([{"type": "export", "line": null, "released": false}]);
    let (status, body) = d.post_json("/v1/orders", &o.to_string());
    assert_eq!(status, 201, "{body}");
    let server = d.lmtp.to_string();
    let (ok, transcript) = swaks(&[
        "--protocol",
        "LMTP",
        "--server",
        &server,
        "--from",
        "j.harper@acme.example.com",
        "--to",
        "support@edesk.example.com",
        "--h-From",
        "j.harper@acme.example.com",
        "--header",
        "Message-Id: <cust-1@acme.example.com>",
        "--header",
        "Subject: Export hold on SO 10458321",
        "--body",
        "Hello,\nour order 10458321 has been on an export hold for a week. Who can release it?\nThanks, John",
    ]);
    assert!(ok, "{transcript}");
    // The order's own "on hold" notice may be there too: look for the
    // acknowledgement (a reply to the customer's mail) and the escalation.
    let (ack, _team) = d.wait_for("acknowledgement and escalation", || {
        let m = sink.messages();
        let ack = m.iter().find(|m| {
            rcpt_to(m) == "j.harper@acme.example.com"
                && header(m, "In-Reply-To").as_deref() == Some("<cust-1@acme.example.com>")
        })?;
        let team = m.iter().find(|m| rcpt_to(m) == "exportops@cisco.example")?;
        Some((ack.clone(), team.clone()))
    });
    assert_eq!(
        header(&ack, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert!(String::from_utf8_lossy(&ack).contains("business day"));
}

/// A Postfix-style DSN sent with swaks (null sender) to the VERP address the
/// notification carried at aiosmtpd suppresses the recipient.
#[test]
#[ignore = "interop: needs swaks and python3-aiosmtpd; run by .ci/run"]
fn dsn_from_swaks_to_the_verp_address_suppresses_the_recipient() {
    let tmp = tempfile::tempdir().unwrap();
    let (sink, d) = start(tmp.path());
    let (status, body) = d.post_json("/v1/orders", &order().to_string());
    assert_eq!(status, 201, "{body}");
    let mails = d.wait_for("the notification", || {
        let m = sink.messages();
        (!m.is_empty()).then_some(m)
    });
    let envelope_from = header(&mails[0], "X-Sink-Mail-From").unwrap();
    assert!(envelope_from.starts_with("bounces+"), "{envelope_from}");
    let notification_id = header(&mails[0], "Message-ID").unwrap();
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
    let server = d.lmtp.to_string();
    let (ok, transcript) = swaks(&[
        "--protocol",
        "LMTP",
        "--server",
        &server,
        "--from",
        "",
        "--to",
        &envelope_from,
        "--data",
        &dsn,
    ]);
    assert!(ok, "{transcript}");
    d.wait_for("the address suppressed", || {
        let (_, m) = d.get("/metrics");
        m.contains("edesk_suppressed_addresses 1").then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        sink.messages()
            .iter()
            .all(|m| !rcpt_to(m).to_lowercase().contains("mailer-daemon"))
    );
}
