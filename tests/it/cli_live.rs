//! The read and maintenance commands (`desk`, `outbox`, `suppress`, `order`)
//! print the same thing whether they open the store themselves or, while a
//! daemon holds it, ask the daemon over HTTP; and the operator endpoints
//! behind them, through real HTTP against a spawned daemon.

use crate::support;
use crate::support::Served;

use std::path::Path;
use std::process::{Command, Output};

use support::{Daemon, Sink, spawn_daemon};

const SO: &str = "10000001";
const SUPPRESSED: &str = "bounced+x@example.org";

fn edesk(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(support::BIN);
    cmd.arg("--data-dir")
        .arg(data)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("EDESK_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run edesk")
}

/// Exit code, standard output, standard error.
type Printed = (Option<i32>, String, String);

fn text(o: &Output) -> Printed {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Two orders; their mails fail against a closed port and go dead; one
/// suppressed address; one ticket. All without a daemon.
fn seed(data: &Path) -> u64 {
    let orders = data.join("orders.jsonl");
    std::fs::create_dir_all(data).unwrap();
    let order = |so: &str, email: &str| {
        serde_json::to_string(&edesk::notify::cmd::sample_order(
            so,
            email,
            edesk::domain::Lang::En,
        ))
        .unwrap()
    };
    std::fs::write(
        &orders,
        format!(
            "{}\n{}\n",
            order(SO, "jane@customer.example.com"),
            order("10000002", "bob@other.example.com")
        ),
    )
    .unwrap();
    let o = edesk(data, &["order", "import", orders.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{:?}", text(&o));
    let o = edesk(
        data,
        &["outbox", "flush"],
        &[
            ("EDESK_SMTP__URL", "smtp://127.0.0.1:9"),
            ("EDESK_OUTBOX__MAX_ATTEMPTS", "1"),
        ],
    );
    assert!(o.status.success(), "{:?}", text(&o));

    let store = edesk::store::Store::open(data).unwrap();
    store
        .suppress(&SUPPRESSED.parse().unwrap(), "550 5.1.1 user unknown")
        .unwrap();
    let desk = edesk::desk::Desk::open(&store, Default::default());
    desk.open_ticket(
        edesk::desk::tickets::NewTicket {
            team: "licensing".parse().unwrap(),
            customer: "jane@customer.example.com".into(),
            lang: edesk::domain::Lang::En,
            subject: "PAK not registered".into(),
            orders: vec![SO.parse().unwrap()],
            purchase_orders: vec![],
            faq: None,
            reasons: vec!["asks for a person".into()],
            message_id: Some("<q1@customer.example.com>".parse().unwrap()),
            text: "My PAK is not registered, please help.".into(),
            reference: None,
            chat: None,
        },
        chrono::Utc::now(),
    )
    .unwrap();
    let dead = store
        .outbox_list(Some(edesk::store::OutboxStatus::Dead))
        .unwrap();
    assert!(!dead.is_empty(), "the seed has dead outbox items");
    dead[0].id
}

/// Every read command, with its exit code, output and error.
fn snapshot(data: &Path) -> Vec<(String, Printed)> {
    let ticket = "T-000001";
    [
        vec!["suppress", "list"],
        vec!["outbox", "list"],
        vec!["outbox", "list", "--all"],
        vec!["order", "show", SO],
        vec!["order", "history", SO],
        vec!["order", "history", "10000009"],
        vec!["order", "show", "10000009"],
        vec!["desk", "list"],
        vec!["desk", "list", "--all", "--json"],
        vec!["desk", "list", "--team", "exportops"],
        vec!["desk", "show", ticket],
        vec!["desk", "show", ticket, "--json"],
        vec!["desk", "show", "T-000009"],
    ]
    .into_iter()
    .map(|args| (args.join(" "), text(&edesk(data, &args, &[]))))
    .collect()
}

#[test]
fn commands_print_the_same_with_and_without_the_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let dead_id = seed(&data);
    let direct = snapshot(&data);
    check_the_direct_answers(&direct);

    let sink = Sink::start(&tmp.path().join("sink"));
    let smtp = format!("smtp://127.0.0.1:{}", sink.port);
    let daemon = spawn_daemon(&data, &[("EDESK_SMTP__URL", &smtp)]);
    assert!(
        data.join(edesk::daemon::HTTP_ADDR_FILE).exists(),
        "the daemon publishes its HTTP address"
    );
    // The store is the daemon's now: opening it here must fail, so the
    // commands below can only have answered through the HTTP API.
    assert!(matches!(
        edesk::store::Store::open(&data),
        Err(edesk::store::StoreError::Locked(_))
    ));
    let live = snapshot(&data);
    for ((cmd, a), (_, b)) in direct.iter().zip(&live) {
        assert_eq!(a, b, "`edesk {cmd}` differs with the daemon running");
    }

    // Maintenance through the daemon.
    suppress_remove_through_the_daemon(&data);
    outbox_retry_through_the_daemon(&data, &daemon, dead_id);
    let live_after = snapshot(&data);
    assert!(daemon.terminate(), "clean stop");
    for file in [edesk::daemon::HTTP_ADDR_FILE, edesk::daemon::LMTP_ADDR_FILE] {
        assert!(
            !data.join(file).exists(),
            "{file}: the address files go with the daemon"
        );
    }
    let direct_after = snapshot(&data);
    for ((cmd, a), (_, b)) in live_after.iter().zip(&direct_after) {
        assert_eq!(a, b, "`edesk {cmd}` differs after the daemon stopped");
    }
}

/// What the commands print with the store opened directly (the reference
/// the daemon's answers are compared with).
fn check_the_direct_answers(direct: &[(String, Printed)]) {
    let of = |cmd: &str| &direct.iter().find(|(c, _)| c == cmd).unwrap().1;
    assert!(of("suppress list").1.starts_with(SUPPRESSED), "{direct:?}");
    assert!(of("outbox list").1.contains("\tdead\t"), "{direct:?}");
    assert!(of("desk list").1.contains("T-000001"), "{direct:?}");
    assert!(of("desk show T-000001").1.contains("PAK not registered"));
    assert!(of(&format!("order history {SO}")).1.contains(SO));
    assert!(of("desk show T-000009").2.contains("no ticket T-000009"));
    assert!(of("order show 10000009").2.contains("no order 10000009"));
}

/// `suppress remove` through the daemon: once, then "not suppressed".
fn suppress_remove_through_the_daemon(data: &Path) {
    let o = edesk(data, &["suppress", "remove", SUPPRESSED], &[]);
    assert_eq!(
        text(&o),
        (
            Some(0),
            format!("{SUPPRESSED} removed from the suppression list\n"),
            String::new()
        )
    );
    let o = edesk(data, &["suppress", "remove", SUPPRESSED], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o)
            .2
            .contains(&format!("{SUPPRESSED} is not suppressed")),
        "{:?}",
        text(&o)
    );
    assert_eq!(text(&edesk(data, &["suppress", "list"], &[])).1, "");
}

/// `outbox retry` through the daemon: the woken sender delivers the item;
/// retrying it again, an unknown item, then every dead item.
fn outbox_retry_through_the_daemon(data: &Path, daemon: &Daemon, dead_id: u64) {
    let id = dead_id.to_string();
    let o = edesk(data, &["outbox", "retry", &id], &[]);
    assert_eq!(
        text(&o).1,
        format!("item {id} queued again\n"),
        "{:?}",
        text(&o)
    );
    // The daemon's sender is woken and delivers it to the sink.
    daemon.wait_for("the retried item is sent", || {
        let out = text(&edesk(data, &["outbox", "list", "--all"], &[])).1;
        out.lines()
            .any(|l| l.starts_with(&format!("{id}\tsent\t")))
            .then_some(())
    });
    let o = edesk(data, &["outbox", "retry", &id], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).2.contains(&format!("item {id} is not dead")),
        "{:?}",
        text(&o)
    );
    let o = edesk(data, &["outbox", "retry", "987654"], &[]);
    assert!(
        text(&o).2.contains("no outbox item 987654"),
        "{:?}",
        text(&o)
    );
    let o = edesk(data, &["outbox", "retry", "--all-dead"], &[]);
    let requeued = text(&o).1;
    assert!(
        requeued.ends_with(" dead items queued again\n") && !requeued.starts_with("0 "),
        "{requeued}"
    );
    daemon.wait_for("every item is sent", || {
        let out = text(&edesk(data, &["outbox", "list"], &[])).1;
        out.is_empty().then_some(())
    });
}

#[test]
fn operator_endpoints_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let dead_id = seed(&data);
    let sink = Sink::start(&tmp.path().join("sink"));
    let smtp = format!("smtp://127.0.0.1:{}", sink.port);
    let daemon = spawn_daemon(&data, &[("EDESK_SMTP__URL", &smtp)]);
    let json = |(status, body): (u16, String)| -> (u16, serde_json::Value) {
        (status, serde_json::from_str(&body).unwrap_or_default())
    };

    let (status, v) = json(daemon.get("/v1/suppressions"));
    assert_eq!(status, 200);
    assert_eq!(v["suppressions"][0]["email"], SUPPRESSED);
    assert_eq!(v["suppressions"][0]["reason"], "550 5.1.1 user unknown");

    let (status, v) = json(daemon.get("/v1/outbox"));
    assert_eq!(status, 200);
    let items = v["items"].as_array().unwrap();
    assert!(items.iter().all(|i| i["status"]["state"] == "dead"), "{v}");
    assert!(items.iter().all(|i| i.get("raw").is_none()), "no bodies");
    let (status, v) = json(daemon.get("/v1/outbox?all=maybe"));
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].is_string());

    let del = |path: &str| support::http(daemon.http, "DELETE", path, None);
    let encoded = SUPPRESSED.replace('+', "%2B");
    let (status, v) = json(del(&format!("/v1/suppressions/{encoded}")));
    assert_eq!(
        (status, &v["removed"]),
        (200, &serde_json::json!(SUPPRESSED))
    );
    let (status, v) = json(del(&format!("/v1/suppressions/{encoded}")));
    assert_eq!(status, 404);
    assert_eq!(v["error"], format!("{SUPPRESSED} is not suppressed"));
    let (status, v) = json(del("/v1/suppressions/not-an-address"));
    assert_eq!((status, &v["field"]), (400, &serde_json::json!("email")));

    let (status, v) = json(daemon.post_json(&format!("/v1/outbox/{dead_id}/retry"), ""));
    assert_eq!((status, &v["requeued"]), (200, &serde_json::json!(dead_id)));
    let (status, v) = json(daemon.post_json(&format!("/v1/outbox/{dead_id}/retry"), ""));
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"], format!("item {dead_id} is not dead"));
    let (status, v) = json(daemon.post_json("/v1/outbox/424242/retry", ""));
    assert_eq!(
        (status, &v["error"]),
        (404, &serde_json::json!("no outbox item 424242"))
    );
    let (status, _) = json(daemon.post_json("/v1/outbox/abc/retry", ""));
    assert_eq!(status, 400);
    let (status, v) = json(daemon.post_json("/v1/outbox/retry-dead", ""));
    assert_eq!(status, 200);
    assert!(v["requeued"].as_u64().unwrap() >= 1, "{v}");
    daemon.wait_for("the sink receives every mail", || {
        let (_, v) = json(daemon.get("/v1/outbox?all=true"));
        let items = v["items"].as_array()?.clone();
        items
            .iter()
            .all(|i| i["status"]["state"] == "sent")
            .then_some(())
    });
}
