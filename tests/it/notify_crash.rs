//! SIGKILL the daemon while its outbox is sending; after a restart every
//! message arrives exactly once.

use crate::support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ORDERS: usize = 300;

/// The embedded engine under test: each test sets it for its own commands.
struct Engine(&'static str);

fn edesk(data: &Path, smtp: &str, engine: &Engine) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edesk"));
    c.arg("--data-dir")
        .arg(data)
        .env("EDESK_STORE__BACKEND", engine.0)
        .env("EDESK_SMTP__URL", smtp)
        .env("EDESK_HTTP__BIND", "127.0.0.1:0")
        // Port 0 for LMTP too: the sled and redb runs of this test overlap.
        .env("EDESK_LMTP__BIND", "127.0.0.1:0")
        .env("EDESK_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn serve(data: &Path, smtp: &str, rate: u32, engine: &Engine) -> Child {
    edesk(data, smtp, engine)
        .arg("serve")
        .env("EDESK_OUTBOX__RATE_PER_SEC", rate.to_string())
        .spawn()
        .unwrap()
}

#[test]
fn sigkill_while_sending_loses_and_duplicates_nothing() {
    sigkill_while_sending(&Engine("sled"));
}

/// The same crash on redb: an uncommitted write transaction is lost with
/// the process, and redb repairs its file when it opens it again.
#[test]
fn sigkill_while_sending_loses_and_duplicates_nothing_on_redb() {
    sigkill_while_sending(&Engine("redb"));
}

fn sigkill_while_sending(engine: &Engine) {
    let tmp = tempfile::tempdir().unwrap();
    let sink = support::Sink::start(&tmp.path().join("sink"));
    let data = tmp.path().join("data");
    let orders: Vec<String> = (0..ORDERS)
        .map(|i| {
            serde_json::json!({"so": format!("{}", 30_000_000 + i), "lang": if i % 3 == 0 { "fr" } else { "en" },
                "lines": [{"line": "1.1", "pid": "L-ASA5516-TD-1Y", "images": [{"file": "asa.SPA", "md5": "9fb4c92d620d4be2a9f190e7fa6332b3"}]}],
                "recipients": [{"email": format!("user{i}@crash{}.example.com", i % 5)}]})
            .to_string()
        })
        .collect();
    let file = tmp.path().join("orders.jsonl");
    std::fs::write(&file, orders.join("\n")).unwrap();
    let st = edesk(&data, &sink.url(), engine)
        .args(["order", "import"])
        .arg(&file)
        .status()
        .unwrap();
    assert!(st.success());

    // Slow the first daemon down so the kill lands mid-stream.
    let mut first = serve(&data, &sink.url(), 150, engine);
    wait_for(|| sink.messages().len() >= 60, "first deliveries");
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let before_restart = sink.messages().len();
    assert!(
        before_restart < ORDERS,
        "the kill must interrupt the sending"
    );

    let mut second = serve(&data, &sink.url(), 0, engine);
    wait_for(|| sink.messages().len() >= ORDERS, "all deliveries");
    // Give a duplicate the chance to show up before counting.
    std::thread::sleep(Duration::from_millis(500));
    second.kill().unwrap();
    second.wait().unwrap();

    let parser = mail_parser::MessageParser::default();
    let mut per_rcpt: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
    let mut copies = 0;
    for raw in sink.messages() {
        let m = parser.parse(&raw).unwrap();
        let new = per_rcpt
            .entry(support::header(&m, "X-Sink-Rcpt-To").unwrap())
            .or_default()
            .insert(m.message_id().unwrap().to_string());
        copies += usize::from(!new);
    }
    assert_eq!(per_rcpt.len(), ORDERS, "every recipient got its mail");
    let twice: Vec<_> = per_rcpt.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "a recipient got two different mails: {twice:?}"
    );
    // The one window no SMTP client can close (RFC 1047): the server stored
    // the message and the kill came before its 250 reached us (or before
    // the journal write right after it). That message is sent again with
    // the same Message-ID (receivers de-duplicate on it); at most the one in
    // flight on each connection at the kill: `outbox.per_domain_concurrency`
    // (4) connections to each of the 5 recipient domains. On a loaded
    // machine more than 4 were seen, so 4 was the wrong bound.
    let connections = 5 * 4;
    assert!(
        copies <= connections,
        "{copies} redeliveries: more than the messages in flight at the kill"
    );

    // The store agrees: nothing pending, all sent.
    let out = edesk(&data, &sink.url(), engine)
        .args(["outbox", "list"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "",
        "no pending or dead items left"
    );
}
