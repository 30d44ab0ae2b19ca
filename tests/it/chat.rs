//! The chat command language and conversation rules through the HTTP chat
//! and the console, against the real daemon over loopback (real HTTP, the
//! real outbox delivering to an SMTP sink).

use crate::support;
use crate::support::Served;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{BIN, Daemon, Sink, spawn_daemon};

const ORDER: &str = r#"{"so": "10458321", "po": "ACME-PO-7781", "lang": "en", "bill_to": "ACME Networks", "available_at": "2025-03-03T09:02:00+01:00", "holds": [{"type": "export", "line": null, "released": false}], "lines": [{"line": "1.1", "pid": "L-ASA5516-TD-1Y", "qty": 1, "images": [{"file": "asa-9.20.2-lfbff-k8.SPA", "md5": "9fb4c92d620d4be2a9f190e7fa6332b3"}]}], "recipients": [{"name": "John Harper", "email": "j.harper@acme.example.com", "lang": "en"}]}"#;

fn session(d: &Daemon) -> String {
    let (status, body) = d.post_json("/v1/chat/session", "{}");
    assert_eq!(status, 201, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["session"].as_str().unwrap().to_string()
}

/// Sends one message; returns (replies joined, the whole JSON).
fn say(d: &Daemon, session: &str, text: &str) -> (String, Value) {
    let body = json!({"session": session, "text": text}).to_string();
    let (status, body) = d.post_json("/v1/chat", &body);
    assert_eq!(status, 200, "{text}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let replies: Vec<String> = v["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    for r in &replies {
        assert!(r.chars().count() <= 4000, "within the web limit");
    }
    (replies.join("\n---\n"), v)
}

/// The 6-digit code of the newest link-code mail to `to` in the sink.
fn code_for(d: &Daemon, sink: &Sink, to: &str, seen: usize) -> String {
    d.wait_for(&format!("a link code mail to {to}"), || {
        let mails: Vec<String> = sink
            .messages()
            .into_iter()
            .map(|m| String::from_utf8_lossy(&m).into_owned())
            .filter(|m| {
                m.contains(&format!("X-Sink-Rcpt-To: {to}")) && m.contains("verification code")
            })
            .collect();
        if mails.len() <= seen {
            return None;
        }
        let m = mails.last()?;
        let at = m.find("verification code is: ")? + "verification code is: ".len();
        let code: String = m[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
        (code.len() == 6).then_some(code)
    })
}

fn link(d: &Daemon, sink: &Sink, s: &str, email: &str, seen: usize) -> String {
    let (r, _) = say(d, s, &format!("link {email}"));
    assert!(r.contains("6-digit code"), "{r}");
    assert!(
        !r.contains(email),
        "the address is masked in the reply: {r}"
    );
    code_for(d, sink, email, seen)
}

fn wrong(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

fn chat_once(data: &Path, http: Option<&str>, text: &str) -> String {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir")
        .arg(data)
        .args(["chat", "--once", text])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("EDESK_LOG", "warn");
    if let Some(h) = http {
        cmd.env("EDESK_HTTP__BIND", h);
    } else {
        // Nothing listens there: the console runs in-process.
        cmd.env("EDESK_HTTP__BIND", "127.0.0.1:9");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn faq_help_languages_sessions_and_ratings_over_http_and_console() {
    let dir = tempfile::tempdir().unwrap();
    let d = spawn_daemon(dir.path(), &[]);
    let s = session(&d);
    sessions_are_the_daemons_and_help_is_bilingual(&d, &s);
    a_confident_answer_in_the_questions_language(&d, &s);
    an_abstention_shows_the_way_to_a_person(&d, &s);
    lang_wins_until_lang_auto(&d, &s);
    ratings_once_per_session_and_entry(&d, &s);
    the_console_with_and_without_the_daemon(d, dir.path());
}

/// Sessions are the daemon's, never a name the client picks; `help` and
/// `aide` list the commands in their language.
fn sessions_are_the_daemons_and_help_is_bilingual(d: &Daemon, s: &str) {
    let (status, body) = d.post_json(
        "/v1/chat",
        &json!({"session": "alice", "text": "help"}).to_string(),
    );
    assert_eq!(status, 401, "{body}");
    let (status, _) = d.post_json("/v1/chat/session", r#"{"user": "alice"}"#);
    assert_eq!(status, 400);

    let (help, _) = say(d, s, "help");
    for c in [
        "`order SO`",
        "`link EMAIL`",
        "`escalate TEXT`",
        "`lang en|fr`",
    ] {
        assert!(help.contains(c), "{c} in {help}");
    }
    let (aide, _) = say(d, s, "aide");
    assert!(
        aide.contains("`commande SO`") && aide.contains("Commandes"),
        "{aide}"
    );
}

/// A confident answer, in the language of the question, rateable.
fn a_confident_answer_in_the_questions_language(d: &Daemon, s: &str) {
    let (r, v) = say(d, s, "How do I stop receiving email notifications?");
    assert!(
        r.contains("How do I stop receiving email notifications?"),
        "{r}"
    );
    assert_eq!(v["rate"], "stop-receiving-email-notifications");
    let (r, _) = say(d, s, "commande de plus de 15 mois, comment la récupérer ?");
    assert!(
        r.contains("Puis-je restaurer") && r.contains("Cette réponse"),
        "{r}"
    );
}

/// Abstention: alternatives (when any) and the way to a person.
fn an_abstention_shows_the_way_to_a_person(d: &Daemon, s: &str) {
    let (r, v) = say(d, s, "price of a catalyst switch");
    assert!(r.contains("not sure") && r.contains("`escalate`"), "{r}");
    assert!(v["rate"].is_null());
}

/// `lang fr` wins over the message's language until `lang auto`.
fn lang_wins_until_lang_auto(d: &Daemon, s: &str) {
    assert!(say(d, s, "lang fr").0.contains("français"));
    let (r, _) = say(d, s, "How do I stop receiving email notifications?");
    assert!(
        r.contains("Comment") && !r.contains("Was this helpful"),
        "{r}"
    );
    assert!(
        say(d, s, "langue auto")
            .0
            .contains("langue de chaque message")
    );
}

/// Ratings: one per session and entry; the report shows them and the
/// abstained question.
fn ratings_once_per_session_and_entry(d: &Daemon, s: &str) {
    let fb = |rating: &str| {
        d.post_json(
            "/v1/chat/feedback",
            &json!({"session": s, "answer": "stop-receiving-email-notifications", "rating": rating}).to_string(),
        )
    };
    assert_eq!(fb("down").0, 200);
    assert_eq!(fb("up").0, 200);
    assert_eq!(fb("up").0, 200);
    assert_eq!(fb("sideways").0, 422);
    // Only an answer the session received can be rated.
    let (status, body) = d.post_json(
        "/v1/chat/feedback",
        &json!({"session": session(d), "answer": "stop-receiving-email-notifications", "rating": "down"}).to_string(),
    );
    assert_eq!(status, 422, "{body}");
    let report = d.wait_for("the abstained question in the feedback report", || {
        let (_, body) = d.get("/v1/faq/feedback");
        body.contains("price of a catalyst switch").then_some(body)
    });
    let v: Value = serde_json::from_str(&report).unwrap();
    let entry = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "stop-receiving-email-notifications")
        .unwrap()
        .clone();
    assert_eq!(
        (entry["up"].as_u64(), entry["down"].as_u64()),
        (Some(1), Some(0)),
        "{entry}"
    );
}

/// The console talks to the running daemon (its store is locked); once it
/// stopped, the console and `faq feedback` work on the data directory.
fn the_console_with_and_without_the_daemon(d: Daemon, data: &Path) {
    let http = d.http.to_string();
    let out = chat_once(data, Some(&http), "aide");
    assert!(out.contains("`commande SO`"), "{out}");
    assert!(d.terminate());

    // With no daemon, the console runs in-process on the data directory,
    // and `faq feedback` reads the same records.
    let out = chat_once(data, None, "How do I stop receiving email notifications?");
    assert!(out.contains("notifications"), "{out}");
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(["faq", "feedback"])
        .env("EDESK_HTTP__BIND", "127.0.0.1:9")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("stop-receiving-email-notifications") && text.contains("catalyst"),
        "{text}"
    );
}

#[test]
fn link_verify_and_order_data_only_for_verified_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"));
    let d = spawn_daemon(
        &dir.path().join("data"),
        &[("EDESK_SMTP__URL", &sink.url())],
    );
    let (status, body) = d.post_json("/v1/orders", ORDER);
    assert_eq!(status, 201, "{body}");

    let john = session(&d);
    before_linking_only_the_way_to_link(&d, &john);
    a_mailed_code_links_john(&d, &sink, &john);
    another_verified_address_sees_nothing_of_johns_order(&d, &sink);
    a_verified_recipient_restores_an_archived_order_once(&d, &sink, &john);
    let mallory = too_many_wrong_codes_void_the_code(&d, &sink);
    unsubscribe_acts_on_the_linked_address_only(&d, &john, &mallory);
}

/// Before linking: nothing about the order, only the way to link.
fn before_linking_only_the_way_to_link(d: &Daemon, john: &str) {
    let (r, _) = say(d, john, "order 10458321");
    assert!(r.contains("link you@example.com"), "{r}");
    for secret in ["export", "ASA5516", "ACME", "hold"] {
        assert!(!r.contains(secret), "{secret} leaked: {r}");
    }
    assert!(
        say(d, john, "order 123")
            .0
            .contains("not a sales order number")
    );
}

/// The code arrives through the outbox; a wrong one costs a try.
fn a_mailed_code_links_john(d: &Daemon, sink: &Sink, john: &str) {
    let code = link(d, sink, john, "j.harper@acme.example.com", 0);
    assert!(
        say(d, john, &format!("verify {}", wrong(&code)))
            .0
            .contains("4 tries left")
    );
    let (r, _) = say(d, john, &format!("vérifier {code}"));
    assert!(
        r.contains("lié à j.harper@acme.example.com"),
        "French follows the command word: {r}"
    );
    let (r, _) = say(d, john, "order SO#10458321");
    assert!(
        r.contains("export hold") && r.contains("exportops@cisco.com"),
        "{r}"
    );
    assert!(
        r.contains("L-ASA5516-TD-1Y") && r.contains("on hold"),
        "{r}"
    );
    let (r, _) = say(d, john, "commande 10458321");
    assert!(
        r.contains("mise en attente pour exportation"),
        "French follows the command word: {r}"
    );
}

/// Someone else, verified for their own address, asks for John's order:
/// nothing but the way to link the right address.
fn another_verified_address_sees_nothing_of_johns_order(d: &Daemon, sink: &Sink) {
    let eve = session(d);
    let code = link(d, sink, &eve, "eve@other.example.org", 0);
    assert!(say(d, &eve, &format!("verify {code}")).0.contains("linked"));
    let (r, _) = say(d, &eve, "order 10458321");
    assert!(
        r.contains("not a recipient") && r.contains("link you@example.com"),
        "{r}"
    );
    for secret in ["export", "ASA5516", "ACME", "Harper", "hold"] {
        assert!(!r.contains(secret), "{secret} leaked: {r}");
    }
    let (r, _) = say(d, &eve, "restore 10458321");
    assert!(
        !r.contains("restored") && r.contains("not a recipient"),
        "{r}"
    );
}

/// A verified recipient restores an archived order through the jobs'
/// restore: once, with the confirmation mailed to them.
fn a_verified_recipient_restores_an_archived_order_once(d: &Daemon, sink: &Sink, john: &str) {
    let archived = ORDER.replace("10458321", "10458399").replace(
        r#""holds": [{"type": "export", "line": null, "released": false}]"#,
        r#""archived": true"#,
    );
    let (status, body) = d.post_json("/v1/orders", &archived);
    assert_eq!(status, 201, "{body}");
    let (r, _) = say(d, john, "restaurer 10458399");
    assert!(
        r.contains("restaurée") && r.contains("j.harper@acme.example.com"),
        "{r}"
    );
    assert!(say(d, john, "restore 10458399").0.contains("not archived"));
    d.wait_for("the order_restored mail", || {
        sink.messages()
            .into_iter()
            .map(|m| String::from_utf8_lossy(&m).into_owned())
            .any(|m| {
                m.contains("X-Sink-Rcpt-To: j.harper@acme.example.com")
                    && m.contains("10458399")
                    && m.to_lowercase().contains("restor")
            })
            .then_some(())
    });
}

/// Too many wrong codes void the code, even the right one after.
fn too_many_wrong_codes_void_the_code(d: &Daemon, sink: &Sink) -> String {
    let mallory = session(d);
    let code = link(d, sink, &mallory, "mallory@other.example.org", 0);
    let mut last = String::new();
    for _ in 0..5 {
        last = say(d, &mallory, &format!("verify {}", wrong(&code))).0;
    }
    assert!(last.contains("Too many wrong codes"), "{last}");
    assert!(
        say(d, &mallory, &format!("verify {code}"))
            .0
            .contains("no code waiting")
    );
    // And a new code is not mailed again within the minute.
    assert!(
        say(d, &mallory, "link mallory@other.example.org")
            .0
            .contains("a moment ago")
    );
    mallory
}

/// Unsubscribe acts on the linked address only.
fn unsubscribe_acts_on_the_linked_address_only(d: &Daemon, john: &str, mallory: &str) {
    assert!(
        say(d, mallory, "unsubscribe")
            .0
            .contains("link you@example.com")
    );
    assert!(
        say(d, john, "unsubscribe")
            .0
            .contains("j.harper@acme.example.com will no longer")
    );
    let (_, prefs) = d.get("/v1/preferences/j.harper@acme.example.com");
    assert!(prefs.contains("false") || prefs.contains("no"), "{prefs}");
}

#[test]
fn link_codes_expire() {
    let dir = tempfile::tempdir().unwrap();
    let d = spawn_daemon(dir.path(), &[("EDESK_CHAT__LINK_CODE_TTL_SECS", "1")]);
    let s = session(&d);
    assert!(say(&d, &s, "verify 123456").0.contains("no code waiting"));
    assert!(
        say(&d, &s, "link ana@example.com")
            .0
            .contains("within 1 minutes")
    );
    std::thread::sleep(Duration::from_millis(1500));
    let (r, _) = say(&d, &s, "verify 123456");
    assert!(r.contains("expired"), "{r}");
}

#[test]
fn escalation_routes_like_mail_and_the_bot_is_silent_once_a_person_answers() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"));
    let d = spawn_daemon(
        &dir.path().join("data"),
        &[("EDESK_SMTP__URL", &sink.url())],
    );
    assert_eq!(d.post_json("/v1/orders", ORDER).0, 201);
    let s = session(&d);
    let code = link(&d, &sink, &s, "j.harper@acme.example.com", 0);
    assert!(say(&d, &s, &format!("verify {code}")).0.contains("linked"));
    say(&d, &s, "how long does a hold last?");
    // The transcript of what was said before a restart goes with the
    // escalation after it.
    assert!(d.terminate(), "a clean stop");
    let d = spawn_daemon(
        &dir.path().join("data"),
        &[("EDESK_SMTP__URL", &sink.url())],
    );

    let (r, _) = say(
        &d,
        &s,
        "escalate SO 10458321 has been blocked for a week, who can release it?",
    );
    assert!(r.contains("Ticket T-") && r.contains("exportops"), "{r}");
    let (_, tickets) = d.get("/v1/tickets");
    let t: Value = serde_json::from_str::<Value>(&tickets).unwrap()[0].clone();
    assert_eq!(
        t["team"], "exportops",
        "the open export hold routes it: {t}"
    );
    assert_eq!(t["customer"], "j.harper@acme.example.com");
    assert_eq!(t["orders"][0], "10458321");
    let transcript = t["events"][0]["text"].as_str().unwrap();
    assert!(
        transcript.contains("how long does a hold last?"),
        "{transcript}"
    );

    // Until a person answers, the bot keeps answering.
    assert!(!say(&d, &s, "help").0.is_empty());
    let id = t["id"].as_str().unwrap();
    let (status, body) = d.post_json(
        &format!("/v1/tickets/{id}/reply"),
        r#"{"by": "exportops", "text": "The export hold was released this morning."}"#,
    );
    assert_eq!(status, 201, "{body}");
    // The answer is relayed while the user is away, and kept across a
    // restart of the daemon before they come back.
    d.wait_for("the team answer relayed to the chat", || {
        d.log()
            .contains("team answer relayed to chat")
            .then_some(())
    });
    assert!(d.terminate(), "a clean stop");
    let d = spawn_daemon(
        &dir.path().join("data"),
        &[("EDESK_SMTP__URL", &sink.url())],
    );
    // The answer reaches the chat (an empty message collects what waits).
    let deadline = Instant::now() + Duration::from_secs(20);
    let relayed = loop {
        let (r, _) = say(&d, &s, "");
        if r.contains("released this morning") {
            break r;
        }
        assert!(Instant::now() < deadline, "team answer never relayed");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(relayed.contains(id), "{relayed}");
    // From now on the bot is silent here; what the user writes joins the ticket.
    let (r, _) = say(&d, &s, "Thanks! And how do I download it?");
    assert!(r.is_empty(), "the bot stayed silent: {r}");
    let (_, t) = d.get(&format!("/v1/tickets/{id}"));
    assert!(t.contains("how do I download it?"), "{t}");
}

#[test]
fn rate_limits_answer_politely_once_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bots = dir.path().join("bots");
    std::fs::create_dir_all(&bots).unwrap();
    std::fs::write(bots.join("web.toml"), "[rate_limit]\nuser_per_minute = 3\n").unwrap();
    let data = dir.path().join("data");
    let env = [("EDESK_CHAT__BOTS_DIR", bots.to_str().unwrap())];
    let d = spawn_daemon(&data, &env);
    let s = session(&d);
    let other = session(&d);
    for _ in 0..3 {
        assert!(!say(&d, &s, "help").0.is_empty());
    }
    let (r, _) = say(&d, &s, "help");
    assert!(r.contains("Please wait"), "{r}");
    assert!(say(&d, &s, "help").0.is_empty(), "said once, then quiet");
    assert!(!say(&d, &other, "help").0.is_empty(), "per user");
    assert!(d.terminate());
    let d = spawn_daemon(&data, &env);
    assert!(say(&d, &s, "help").0.is_empty(), "the window was persisted");
}
