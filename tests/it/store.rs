//! One conformance suite for the store, run against every engine: sled and
//! redb (in `cargo test`) and PostgreSQL (`#[ignore]`d: `.ci/run` installs Debian's
//! postgresql and runs `cargo test --test it store:: -- --ignored`, each test
//! starting a throwaway cluster on 127.0.0.1, see `support::pg`).
//!
//! The PostgreSQL half also runs two stores on one database at once, as two
//! daemons would: the same mail accepted once, ticket numbers and ids unique,
//! a job slot claimed once, no lost update.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use edesk::chat::ratelimit::{Limits, RateLimiter, Verdict};
use edesk::domain::{EmailAddress, Order, OrderId};
use edesk::store::{
    Accepted, Backend, ChatKey, ChatNs, Commit, EngineSettings, Envelope, HistoryEntry,
    MailOutcome, MailRecord, MailState, OrderMeta, OutboxItem, OutboxStatus, Store, StoreError,
    TicketIndex, TokenTarget,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::support::pg::Cluster;

/// Opens the store under test (again, after a drop, to check durability).
struct Engine {
    dir: tempfile::TempDir,
    backend: Backend,
}

impl Engine {
    fn sled() -> Engine {
        Engine {
            dir: tempfile::tempdir().unwrap(),
            backend: Backend::Sled,
        }
    }

    fn redb() -> Engine {
        Engine {
            dir: tempfile::tempdir().unwrap(),
            backend: Backend::Redb,
        }
    }

    fn postgres(url: String) -> Engine {
        Engine {
            dir: tempfile::tempdir().unwrap(),
            backend: Backend::Postgres { url },
        }
    }

    fn open(&self) -> Store {
        open_at(self.dir.path(), &self.backend).expect("open the store")
    }
}

fn open_at(dir: &Path, backend: &Backend) -> Result<Store, StoreError> {
    let settings = EngineSettings {
        backend: backend.clone(),
        ..EngineSettings::default()
    };
    Store::open_with(dir, &settings)
}

fn so(s: &str) -> OrderId {
    s.parse().unwrap()
}

fn email(s: &str) -> EmailAddress {
    s.parse().unwrap()
}

fn order(so: &str, po: &str, to: &str) -> Order {
    serde_json::from_value(json!({
        "so": so, "po": po, "lang": "en", "available_at": "2026-11-02T10:00:00+00:00",
        "bill_to": null, "early_ship": false, "requested_date": null, "archived": false,
        "holds": [], "notification_ids": [],
        "lines": [{"line": "1.1", "pid": "L-ASA5516-TD-1Y", "qty": 1,
                   "images": [{"file": "asa.SPA", "md5": "9fb4c92d620d4be2a9f190e7fa6332b3"}]}],
        "recipients": [{"email": to, "name": null, "lang": null, "role": null,
                        "reply_token": null}],
    }))
    .unwrap()
}

fn mail(s: &Store, order: &OrderId, key: &str, to: &str, queued: bool) -> MailRecord {
    let id = s.next_id().unwrap();
    let at: DateTime<Utc> = Utc::now();
    let item = queued.then(|| OutboxItem {
        id,
        key: key.into(),
        so: Some(order.clone()),
        kind: "order_available".into(),
        message_id: format!("<{key}@edesk.test>"),
        envelope_from: "bounces@edesk.test".into(),
        to: email(to),
        raw: format!("Subject: {key}\r\n\r\nbody {key}\r\n"),
        status: OutboxStatus::Pending,
        attempts: 0,
        next_attempt_ms: 0,
        last_error: None,
        created_at: at,
        sent_at: None,
        bounce: None,
        ticket: None,
    });
    MailRecord {
        key: key.into(),
        entry: HistoryEntry {
            id,
            so: Some(order.clone()),
            kind: "order_available".into(),
            to: vec![to.into()],
            lines: vec!["1.1".into()],
            requested_by: "test".into(),
            at,
            skipped: (!queued).then(|| "preference".into()),
            outbox_id: item.as_ref().map(|i| i.id),
            message_id: item.as_ref().map(|i| i.message_id.clone()),
        },
        item,
    }
}

fn orders_outbox_and_history(e: &Engine) {
    let s = e.open();
    let o = so("20000001");
    let c = Commit {
        order: Some(order("20000001", "PO-Alpha-7", "ana@example.com")),
        meta: Some((o.clone(), OrderMeta::default())),
        tokens: vec![(
            "TOKEN42".into(),
            TokenTarget {
                so: Some(o.clone()),
                email: email("ana@example.com"),
            },
        )],
        message_ids: vec![("<old-1@example.com>".into(), o.clone())],
        mails: vec![
            mail(&s, &o, "k-sent", "ana@example.com", true),
            mail(&s, &o, "k-skipped", "ana@example.com", false),
        ],
    };
    let out = s.commit_durable(c.clone()).unwrap();
    assert_eq!((out.queued.len(), out.skipped), (1, 1));
    let queued = out.queued[0];
    // The same idempotency keys again: nothing new.
    let again = s.commit_durable(c).unwrap();
    assert_eq!(again.duplicates, ["k-sent", "k-skipped"]);
    assert!(again.queued.is_empty());

    assert_eq!(s.order(&o).unwrap().unwrap().so, o);
    assert_eq!(
        s.orders_by_po("po-alpha-7").unwrap(),
        std::slice::from_ref(&o)
    );
    assert!(
        s.orders_by_po("PO-Alpha").unwrap().is_empty(),
        "prefix is exact"
    );
    assert_eq!(
        s.order_by_token("token42").unwrap().unwrap().so,
        Some(o.clone())
    );
    assert_eq!(
        s.order_by_message_id("old-1@example.com").unwrap(),
        Some(o.clone())
    );
    assert_eq!(
        s.order_by_message_id("<k-sent@edesk.test>").unwrap(),
        Some(o.clone())
    );
    assert_eq!(s.order_count().unwrap(), 1);
    assert_eq!(
        s.order_ids().collect::<Result<Vec<_>, _>>().unwrap(),
        std::slice::from_ref(&o)
    );
    assert!(s.seen_key("k-sent").unwrap() && s.seen_key("k-skipped").unwrap());
    assert!(!s.seen_key("k-other").unwrap());
    assert_eq!(
        s.message_id_for_key("k-sent").unwrap().as_deref(),
        Some("<k-sent@edesk.test>")
    );
    assert_eq!(s.history(&o).unwrap().len(), 2);
    assert!(
        s.outbox_body(queued)
            .unwrap()
            .unwrap()
            .contains("body k-sent")
    );
    assert_eq!(s.outbox_counts().unwrap(), (1, 0, 0));

    let due = s.due(u64::MAX / 2, 10).unwrap();
    assert_eq!(due.iter().map(|i| i.id).collect::<Vec<_>>(), [queued]);
    assert!(
        due[0].raw.contains("body k-sent"),
        "due items carry their body"
    );
    assert_eq!(s.next_due_ms().unwrap(), Some(0));

    let mark = s.write_mark();
    s.mark_sent_many(&[(queued, Utc::now())]).unwrap();
    s.flush(mark).unwrap();
    drop(s);

    let s = e.open();
    assert_eq!(
        s.outbox_counts().unwrap(),
        (0, 1, 0),
        "counts survive a reopen"
    );
    assert!(s.due(u64::MAX / 2, 10).unwrap().is_empty());
    assert_eq!(
        s.outbox_item(queued).unwrap().unwrap().status,
        OutboxStatus::Sent
    );
    assert!(
        s.outbox_body(queued).unwrap().is_none(),
        "sent bodies are dropped"
    );
    assert_eq!(
        s.outbox_by_message_id("k-sent@edesk.test")
            .unwrap()
            .unwrap()
            .id,
        queued
    );
}

fn outbox_retries_and_bounces(e: &Engine) {
    let s = e.open();
    let (pending, sent, dead) = s.outbox_counts().unwrap();
    let o = so("20000002");
    let out = s
        .commit_durable(Commit {
            mails: vec![mail(&s, &o, "k-retry", "bo@example.com", true)],
            ..Commit::default()
        })
        .unwrap();
    let id = out.queued[0];
    let item = s.reschedule(id, 5_000, "421 try later").unwrap();
    assert_eq!((item.attempts, item.next_attempt_ms), (1, 5_000));
    assert!(
        s.due(4_999, 10).unwrap().is_empty(),
        "not due before its time"
    );
    assert_eq!(s.due(5_000, 10).unwrap().len(), 1);
    assert_eq!(s.next_due_ms().unwrap(), Some(5_000));
    s.mark_dead(id, "550 no such user").unwrap();
    assert_eq!(s.outbox_counts().unwrap(), (pending, sent, dead + 1));
    assert_eq!(s.outbox_list(Some(OutboxStatus::Dead)).unwrap().len(), 1);
    assert!(s.next_due_ms().unwrap().is_none());
    assert!(s.retry(id).unwrap());
    assert!(!s.retry(id).unwrap(), "only a dead item is retried");
    assert_eq!(s.outbox_counts().unwrap(), (pending + 1, sent, dead));
    let bounce = edesk::store::BounceRecord {
        hard: true,
        status: Some("5.1.1".into()),
        diagnostic: None,
        recipient: Some("bo@example.com".into()),
        at: Utc::now(),
        reference: Some("inbound-7".into()),
    };
    assert!(s.record_bounce(id, bounce.clone()).unwrap());
    assert!(
        !s.record_bounce(id, bounce).unwrap(),
        "the same report counts once"
    );
    assert!(matches!(
        s.reschedule(999_999_999, 1, "x"),
        Err(StoreError::NoSuchItem(_))
    ));
    assert_eq!(s.bump_stat("answered").unwrap(), 1);
    assert_eq!(s.bump_stat("answered").unwrap(), 2);
    assert_eq!(s.stat("answered").unwrap(), 2);
}

/// Queues `n` mails for one order; returns their outbox ids.
fn queue_mails(s: &Store, order: &str, n: usize) -> Vec<u64> {
    let o = so(order);
    let mails = (0..n)
        .map(|i| mail(s, &o, &format!("{order}-claim-{i}"), "cl@example.com", true))
        .collect();
    s.commit_durable(Commit {
        mails,
        ..Commit::default()
    })
    .unwrap()
    .queued
}

/// Claimers racing for due mail: each item goes to exactly one of them,
/// and an unrecorded claim lapses after its lease.
fn outbox_claims(stores: &[Arc<Store>]) {
    let ids = queue_mails(&stores[0], "20000009", 40);
    let now = 1_000;
    let mut handles = Vec::new();
    for s in stores.iter().cycle().take(4) {
        let s = s.clone();
        handles.push(std::thread::spawn(move || {
            let mut mine = Vec::new();
            loop {
                let got = s.claim_due(now, 3, 60_000).unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|i| i.id));
            }
        }));
    }
    // Other tests' mail may be due too: count this test's.
    let ours = |items: Vec<OutboxItem>| -> Vec<OutboxItem> {
        items.into_iter().filter(|i| ids.contains(&i.id)).collect()
    };
    let mut claimed: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    claimed.retain(|id| ids.contains(id));
    claimed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(claimed, expected, "every item claimed exactly once");
    assert!(ours(stores[0].claim_due(now + 59_999, 100, 60_000).unwrap()).is_empty());
    let lapsed = ours(stores[0].claim_due(now + 60_000, 100, 60_000).unwrap());
    assert_eq!(lapsed.len(), 40, "claims lapse after their lease");
    assert!(
        lapsed.iter().all(|i| i.raw.contains("body ")),
        "with their bodies"
    );
    // A lease of 0 (one daemon alone): claimed once per call, still due.
    let s = &stores[0];
    assert_eq!(ours(s.claim_due(u64::MAX / 2, 100, 0).unwrap()).len(), 40);
    assert_eq!(ours(s.claim_due(u64::MAX / 2, 100, 0).unwrap()).len(), 40);
    let mark = s.write_mark();
    s.mark_sent_many(&ids.iter().map(|id| (*id, Utc::now())).collect::<Vec<_>>())
        .unwrap();
    s.flush(mark).unwrap();
    assert!(ours(s.claim_due(u64::MAX / 2, 100, 0).unwrap()).is_empty());
}

fn raw_mail(id: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Ana <ana@example.com>\r\nTo: support@edesk.test\r\nMessage-ID: <{id}>\r\n\
         Subject: help\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn inbound_spool_and_dedup(e: &Engine) {
    let s = e.open();
    let first = s
        .mail_accept_blocking(raw_mail("m1@example.com", "hello"), Envelope::new("lmtp"))
        .unwrap();
    let Accepted::New(id) = first else {
        panic!("{first:?}")
    };
    assert_eq!(
        s.mail_accept_blocking(raw_mail("m1@example.com", "hello"), Envelope::new("lmtp"))
            .unwrap(),
        Accepted::Duplicate(id)
    );
    // Same Message-ID, other content: its own message, flagged.
    let Accepted::New(other) = s
        .mail_accept_blocking(raw_mail("m1@example.com", "forged"), Envelope::new("lmtp"))
        .unwrap()
    else {
        panic!("a different message with a reused id is stored")
    };
    assert_eq!(
        s.mail_meta(other).unwrap().unwrap().reuses_message_id_of,
        Some(id)
    );
    assert_eq!(s.mail_pending().unwrap(), [id, other]);
    assert_eq!(
        s.mail_raw(id).unwrap().unwrap(),
        raw_mail("m1@example.com", "hello")
    );
    s.mail_finish_blocking(
        id,
        MailOutcome {
            state: MailState::Processed,
            decision: Some(json!({"action": "answered"})),
            error: None,
        },
    )
    .unwrap();
    assert_eq!(s.mail_pending().unwrap(), [other]);
    let newest: Vec<u64> = s.mail_list(10).unwrap().iter().map(|m| m.id).collect();
    assert_eq!(newest, [other, id], "newest first");
    assert!(s.mail_requeue(id).unwrap());
    drop(s);
    let s = e.open();
    assert_eq!(
        s.mail_pending().unwrap(),
        [id, other],
        "the spool survives a reopen"
    );
    assert_eq!(s.mail_meta(id).unwrap().unwrap().state, MailState::Pending);
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ticket {
    n: u64,
    notes: u64,
    /// The due day while open (`None`: closed).
    due: Option<i32>,
    /// Who it is for (indexed case-insensitively).
    #[serde(default)]
    customer: String,
    /// The orders it is about (indexed with the customer).
    #[serde(default)]
    about: Vec<String>,
}

impl TicketIndex for Ticket {
    fn open_due_day(&self) -> Option<i32> {
        self.due
    }

    fn customer(&self) -> &str {
        &self.customer
    }

    fn about(&self) -> Vec<String> {
        self.about.clone()
    }
}

/// Writers from many threads: numbers unique, no update lost.
fn tickets_are_atomic(stores: &[Arc<Store>]) {
    let created = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for (i, s) in stores.iter().cycle().take(8).enumerate() {
        let (s, created) = (s.clone(), created.clone());
        handles.push(std::thread::spawn(move || {
            for j in 0..5 {
                let mid = format!("<t{i}-{j}@example.com>");
                let n = s
                    .ticket_create(move |n| {
                        let due = Some(if n % 2 == 0 { 100 } else { 300 });
                        let customer = format!("C{}@Example.com", n % 3);
                        let t = Ticket {
                            n,
                            notes: 0,
                            due,
                            customer,
                            about: vec![format!("so:{}", n % 5)],
                        };
                        (t, vec![mid])
                    })
                    .unwrap();
                created.lock().unwrap().push(n.n);
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let mut numbers = created.lock().unwrap().clone();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), 40, "ticket numbers are unique: {numbers:?}");
    let target = numbers[0];
    let mut handles = Vec::new();
    for s in stores.iter().cycle().take(8) {
        let s = s.clone();
        handles.push(std::thread::spawn(move || {
            for _ in 0..10 {
                s.ticket_update::<Ticket, _>(target, vec![], |t| t.notes += 1)
                    .unwrap()
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let t: Ticket = stores[0].ticket(target).unwrap().unwrap();
    assert_eq!(t.notes, 80, "no update lost");
    let s = &stores[0];
    // The open-ticket index: 40 open, the 20 due on day 100 overdue on day
    // 200. Closing one takes it out; moving a due day moves it; every
    // store sharing the data sees the same.
    assert_eq!(s.ticket_open_counts::<Ticket>(200).unwrap(), (40, 20));
    let early = numbers.iter().copied().find(|n| n % 2 == 0).unwrap();
    let late = numbers.iter().copied().find(|n| n % 2 == 1).unwrap();
    s.ticket_update::<Ticket, _>(early, vec![], |t| t.due = None)
        .unwrap();
    s.ticket_update::<Ticket, _>(late, vec![], |t| t.due = Some(150))
        .unwrap();
    for other in stores {
        assert_eq!(other.ticket_open_counts::<Ticket>(200).unwrap(), (39, 20));
        assert_eq!(other.ticket_open_counts::<Ticket>(100).unwrap(), (39, 0));
    }
    let by_thread = s
        .ticket_by_thread(&["<nope@x>".into(), "<t0-0@example.com>".into()])
        .unwrap();
    assert!(by_thread.is_some_and(|n| numbers.contains(&n)));
    assert_eq!(s.tickets::<Ticket>().unwrap().len(), 40);
    // Overdue through the open index: the 20 due on day 100, less the
    // closed one, then the one moved to day 150.
    let overdue: Vec<u64> = s
        .tickets_overdue::<Ticket>(200)
        .unwrap()
        .iter()
        .map(|t| t.n)
        .collect();
    assert_eq!(overdue.len(), 20);
    assert_eq!(overdue.last(), Some(&late), "soonest due first");
    // The customer index, from every store, answers as a full scan; a
    // changed customer moves.
    s.ticket_update::<Ticket, _>(late, vec![], |t| t.customer = "c9@example.com".into())
        .unwrap();
    for other in stores {
        customers_agree_with_a_scan(
            other,
            &["c0@example.com", "C1@EXAMPLE.COM", "c9@Example.com"],
        );
        references_agree_with_a_scan(
            other,
            &["c0@example.com", "C1@EXAMPLE.COM", "c9@Example.com"],
        );
    }
    assert_eq!(
        s.tickets_of_customer::<Ticket>("C9@example.COM")
            .unwrap()
            .iter()
            .map(|t| t.n)
            .collect::<Vec<_>>(),
        [late]
    );
}

/// "Did this customer write about this order?" through the reference
/// index, as a scan of every ticket answers it.
fn references_agree_with_a_scan(s: &Store, customers: &[&str]) {
    let tickets = s.tickets::<Ticket>().unwrap();
    for c in customers {
        for k in 0..6 {
            let probe = format!("SO:{k}");
            let scanned = tickets.iter().any(|t| {
                t.customer.eq_ignore_ascii_case(c)
                    && t.about.iter().any(|r| r.eq_ignore_ascii_case(&probe))
            });
            let indexed = s
                .customer_wrote_about::<Ticket>(c, std::slice::from_ref(&probe))
                .unwrap();
            assert_eq!(indexed, scanned, "{c} {probe}");
        }
    }
}

fn customers_agree_with_a_scan(s: &Store, customers: &[&str]) {
    for c in customers {
        let scanned: Vec<u64> = s
            .tickets::<Ticket>()
            .unwrap()
            .iter()
            .filter(|t| t.customer.eq_ignore_ascii_case(c))
            .map(|t| t.n)
            .collect();
        let indexed: Vec<u64> = s
            .tickets_of_customer::<Ticket>(c)
            .unwrap()
            .iter()
            .map(|t| t.n)
            .collect();
        assert!(!scanned.is_empty(), "{c} has tickets");
        assert_eq!(indexed, scanned, "{c}");
    }
}

/// Schedulers racing for one slot: exactly one claims it.
fn job_slot_claimed_once(stores: &[Arc<Store>]) {
    let slot: DateTime<Utc> = "2026-12-01T02:00:00Z".parse().unwrap();
    let wins = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for s in stores.iter().cycle().take(6) {
        let (s, wins) = (s.clone(), wins.clone());
        handles.push(std::thread::spawn(move || {
            let won = s
                .job_update("archive", move |st| {
                    if st.last_slot.is_some_and(|l| l >= slot) {
                        return (false, vec![]);
                    }
                    st.last_slot = Some(slot);
                    (true, vec![])
                })
                .unwrap();
            if won {
                wins.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(wins.load(Ordering::SeqCst), 1);
    assert_eq!(
        stores[0].job_state("archive").unwrap().last_slot,
        Some(slot)
    );
}

fn preferences_suppression_and_chat(e: &Engine) {
    let s = e.open();
    let a = email("Pref@Example.com");
    assert!(s.wants(&a, "order_available").unwrap());
    s.set_preference(&a, None, false).unwrap();
    s.set_preference(&a, Some("order_available"), true).unwrap();
    assert!(s.wants(&a, "order_available").unwrap());
    assert!(!s.wants(&a, "pak_reminder").unwrap());
    assert_eq!(s.preferences(&a).unwrap().len(), 2);
    s.suppress(&a, "hard bounce").unwrap();
    assert!(s.is_suppressed(&email("pref@example.com")).unwrap());
    assert_eq!(s.suppression_count().unwrap(), 1);
    assert!(s.unsuppress(&a).unwrap());
    assert!(!s.unsuppress(&a).unwrap());
    assert_eq!(s.count_auto_mail(&a).unwrap(), 1);
    assert_eq!(s.count_auto_mail(&a).unwrap(), 2);

    let k = ChatKey::new(ChatNs::Lang, "discord:1");
    s.chat_put(&k, Some(&"fr".to_string()), true).unwrap();
    let n: u32 = s
        .chat_update(&ChatKey::new(ChatNs::Rate, "u1"), |old: Option<u32>| {
            let n = old.unwrap_or(0) + 1;
            (Some(n), n)
        })
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(s.chat_get::<String>(&k).unwrap().as_deref(), Some("fr"));
    let langs: Vec<(String, String)> = s.chat_scan(ChatNs::Lang).unwrap();
    assert_eq!(langs, [("discord:1".to_string(), "fr".to_string())]);
    s.chat_put::<String>(&k, None, true).unwrap();
    assert!(s.chat_get::<String>(&k).unwrap().is_none());
}

/// The loop guard's cap holds across writers: of many concurrent
/// automatic mails to one address, exactly `cap` are admitted.
fn loop_guard_counts_across_writers(stores: &[Arc<Store>]) {
    let admitted = Arc::new(AtomicUsize::new(0));
    let now = Utc::now().timestamp();
    let mut handles = Vec::new();
    for s in stores.iter().cycle().take(8) {
        let (s, admitted) = (s.clone(), admitted.clone());
        handles.push(std::thread::spawn(move || {
            for _ in 0..4 {
                if s.auto_mail_admit("Guard@Example.com", now, now - 3600, 5)
                    .unwrap()
                    .admitted
                {
                    admitted.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(admitted.load(Ordering::SeqCst), 5);
    assert_eq!(
        stores[0]
            .auto_mail_recent("guard@example.com", now - 3600)
            .unwrap(),
        5
    );
}

/// Chat rate limits hold across daemons: one limiter per store (as each
/// daemon has its own), 32 messages of one user at once, exactly the
/// limit allowed and one polite answer.
fn chat_rate_limits_count_across_writers(stores: &[Arc<Store>]) {
    let limiters: Vec<Arc<RateLimiter>> = stores
        .iter()
        .map(|s| Arc::new(RateLimiter::new((**s).clone())))
        .collect();
    let limits = Limits {
        user_per_minute: 5,
        channel_per_minute: 0,
    };
    let now = u64::try_from(Utc::now().timestamp_millis()).unwrap();
    let mut handles = Vec::new();
    for l in limiters.iter().cycle().take(8) {
        let l = l.clone();
        handles.push(std::thread::spawn(move || {
            (0..4)
                .map(|_| l.check("discord:42", None, limits, now))
                .collect::<Vec<_>>()
        }));
    }
    let verdicts: Vec<Verdict> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let allowed = verdicts.iter().filter(|v| **v == Verdict::Allowed).count();
    let warned = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::User { warn: true, .. }))
        .count();
    assert_eq!((allowed, warned), (5, 1), "{verdicts:?}");
}

fn ids_are_unique_and_grow(stores: &[Arc<Store>]) {
    let mut handles = Vec::new();
    for s in stores.iter().cycle().take(4) {
        let s = s.clone();
        handles.push(std::thread::spawn(move || {
            (0..50).map(|_| s.next_id().unwrap()).collect::<Vec<_>>()
        }));
    }
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "ids are never handed out twice");
}

fn run_suite(e: &Engine) {
    orders_outbox_and_history(e);
    outbox_retries_and_bounces(e);
    inbound_spool_and_dedup(e);
    preferences_suppression_and_chat(e);
    let one = [Arc::new(e.open())];
    tickets_are_atomic(&one);
    outbox_claims(&one);
    loop_guard_counts_across_writers(&one);
    chat_rate_limits_count_across_writers(&one);
    job_slot_claimed_once(&one);
    ids_are_unique_and_grow(&one);
}

#[test]
fn sled_conformance() {
    run_suite(&Engine::sled());
}

#[test]
fn redb_conformance() {
    run_suite(&Engine::redb());
}

/// The migration an operator runs to move an existing sled data directory
/// to redb: `edesk store copy --from sled DIR --to redb DIR` (the same
/// directory: sled lives in `store/`, redb in `store.redb`), verified per
/// tree; the redb store then serves what the sled store held, and a second
/// copy into it is refused.
#[test]
fn sled_to_redb_copy_in_place() {
    let e = Engine::sled();
    let digests = filled_sled_digests(&e);
    let dir = e.dir.path().display().to_string();

    let out = edesk_store_copy(["sled", &dir], ["redb", &dir]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = open_at(e.dir.path(), &Backend::Redb).unwrap();
    for d in &digests {
        assert_eq!(&s.tree_digest(d.tree).unwrap(), d, "{} in redb", d.tree);
    }
    assert_eq!(s.schema().unwrap().0, "redb");
    assert_eq!(s.outbox_counts().unwrap(), (0, 1, 0), "counters copied");
    assert_eq!(s.mail_pending().unwrap().len(), 2);
    drop(s);

    let again = edesk_store_copy(["sled", &dir], ["redb", &dir]);
    assert!(!again.status.success(), "a target with data is refused");
}

#[test]
#[ignore = "needs PostgreSQL server binaries (Debian's postgresql); .ci/run runs it"]
fn postgres_conformance() {
    let cluster = Cluster::start();
    run_suite(&Engine::postgres(cluster.database("conformance")));
}

/// Two stores on one database, as two daemons: every shared decision is
/// taken once.
#[test]
#[ignore = "needs PostgreSQL server binaries (Debian's postgresql); .ci/run runs it"]
fn postgres_two_daemons_share_one_database() {
    let cluster = Cluster::start();
    let url = cluster.database("shared");
    let a = Engine::postgres(url.clone());
    let b = Engine::postgres(url);
    let stores = [Arc::new(a.open()), Arc::new(b.open())];
    tickets_are_atomic(&stores);
    outbox_claims(&stores);
    loop_guard_counts_across_writers(&stores);
    chat_rate_limits_count_across_writers(&stores);
    job_slot_claimed_once(&stores);
    ids_are_unique_and_grow(&stores);

    // The same 30 messages delivered to both daemons by 8 clients at once.
    let mut handles = Vec::new();
    for (i, s) in stores.iter().cycle().take(8).enumerate() {
        let s = s.clone();
        handles.push(std::thread::spawn(move || {
            let mut new = Vec::new();
            for m in 0..30 {
                let m = (m + i * 7) % 30;
                let raw = raw_mail(&format!("shared-{m}@example.com"), "same bytes");
                if let Accepted::New(id) =
                    s.mail_accept_blocking(raw, Envelope::new("lmtp")).unwrap()
                {
                    new.push(id);
                }
            }
            new
        }));
    }
    let new: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(
        new.len(),
        30,
        "each message stored once whichever daemon took it"
    );
    assert_eq!(stores[0].mail_pending().unwrap().len(), 30);
    assert_eq!(stores[1].mail_pending().unwrap().len(), 30);
}

/// A database written before the customer index (its `cust/` rows and
/// marker removed by hand) gets it on first use, built once while two
/// daemons ask for it and write tickets at the same time.
#[test]
#[ignore = "needs PostgreSQL server binaries (Debian's postgresql); .ci/run runs it"]
fn postgres_customer_index_for_an_older_database() {
    let cluster = Cluster::start();
    let url = cluster.database("custidx");
    let (a, b) = (Engine::postgres(url.clone()), Engine::postgres(url.clone()));
    let stores = [Arc::new(a.open()), Arc::new(b.open())];
    for n in 0..30u64 {
        let customer = format!("C{}@Example.com", n % 3);
        stores[0]
            .ticket_create(move |n| {
                let t = Ticket {
                    n,
                    notes: 0,
                    due: Some(100),
                    customer,
                    about: vec![],
                };
                (t, vec![])
            })
            .unwrap();
    }
    // Asked once, so the marker is there too before it all goes.
    assert_eq!(
        stores[1]
            .tickets_of_customer::<Ticket>("c0@example.com")
            .unwrap()
            .len(),
        10
    );
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let removed = admin
        .execute(
            "DELETE FROM edesk_kv WHERE tree = 'ticket_meta'
             AND (substring(k from 1 for 5) = 'cust/'::bytea OR k = 'cust-indexed'::bytea)",
            &[],
        )
        .unwrap();
    assert_eq!(removed, 31, "30 entries and the marker");
    let mut handles = Vec::new();
    for (i, s) in stores.iter().cycle().take(6).enumerate() {
        let s = s.clone();
        handles.push(std::thread::spawn(move || {
            let customer = format!("c{}@example.com", i % 3);
            let c = customer.clone();
            s.ticket_create(move |n| {
                let t = Ticket {
                    n,
                    notes: 0,
                    due: None,
                    customer: c,
                    about: vec![],
                };
                (t, vec![])
            })
            .unwrap();
            s.tickets_of_customer::<Ticket>(&customer).unwrap().len()
        }));
    }
    for h in handles {
        assert!(h.join().unwrap() >= 10);
    }
    for s in &stores {
        customers_agree_with_a_scan(s, &["c0@example.com", "C1@EXAMPLE.COM", "c2@Example.com"]);
        assert_eq!(
            s.tickets_of_customer::<Ticket>("c0@example.com")
                .unwrap()
                .len(),
            12
        );
    }
    let rows: i64 = admin
        .query_one(
            "SELECT count(*) FROM edesk_kv WHERE tree = 'ticket_meta'
             AND substring(k from 1 for 5) = 'cust/'::bytea",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(rows, 36, "one entry per ticket");
}

/// A newer schema is refused; a database restart is survived.
#[test]
#[ignore = "needs PostgreSQL server binaries (Debian's postgresql); .ci/run runs it"]
fn postgres_schema_and_restart() {
    let cluster = Cluster::start();
    let url = cluster.database("ops");
    let e = Engine::postgres(url.clone());
    let s = e.open();
    s.bump_stat("before").unwrap();

    cluster.restart();
    // Writes fail while the connection is gone, then the store reconnects
    // by itself.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match s.bump_stat("after") {
            Ok(_) => break,
            Err(e) => assert!(
                e.is_transient() && std::time::Instant::now() < deadline,
                "not recovered: {e}"
            ),
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(s.stat("before").unwrap(), 1);
    drop(s);

    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .execute("INSERT INTO edesk_schema (version) VALUES (999)", &[])
        .unwrap();
    match open_at(e.dir.path(), &e.backend) {
        Err(StoreError::Schema { found: 999, .. }) => {}
        Err(other) => panic!("expected a schema error, got {other}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

/// Fills a sled store with orders, outbox, history and inbound mail, and
/// returns the digests a copy of it must reproduce. Not `counters`: every
/// sled open moves its id floor (sled's own generator), so it differs
/// between any two opens.
fn filled_sled_digests(e: &Engine) -> [edesk::store::TreeCopy; 6] {
    orders_outbox_and_history(e);
    inbound_spool_and_dedup(e);
    let s = e.open();
    [
        "orders",
        "outbox",
        "history",
        "mail_raw",
        "mail_meta",
        "keys",
    ]
    .map(|n| s.tree_digest(n).unwrap())
}

fn edesk_store_copy(from: [&str; 2], to: [&str; 2]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_edesk"))
        .args(["store", "copy", "--json", "--from"])
        .args(from)
        .arg("--to")
        .args(to)
        .output()
        .expect("run edesk store copy")
}

/// `edesk store copy` moves a sled store into PostgreSQL and back, each
/// tree verified by rows and checksum; a target that holds data is refused.
#[test]
#[ignore = "needs PostgreSQL server binaries (Debian's postgresql); .ci/run runs it"]
fn postgres_store_copy_round_trip() {
    let cluster = Cluster::start();
    let url = cluster.database("copy");
    let sled = Engine::sled();
    let digests = filled_sled_digests(&sled);
    let dir = sled.dir.path().display().to_string();

    let out = edesk_store_copy(["sled", &dir], ["postgres", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let orders = report["trees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tree"] == "orders")
        .unwrap();
    assert_eq!(orders["rows"], 1);

    let pg = Engine::postgres(url.clone());
    {
        let s = pg.open();
        for d in &digests {
            assert_eq!(
                &s.tree_digest(d.tree).unwrap(),
                d,
                "{} in PostgreSQL",
                d.tree
            );
        }
        assert_eq!(
            s.order(&so("20000001")).unwrap().unwrap().so,
            so("20000001")
        );
        assert_eq!(s.outbox_counts().unwrap(), (0, 1, 0), "counters copied");
        assert_eq!(s.mail_pending().unwrap().len(), 2);
        let max = s
            .mail_list(100)
            .unwrap()
            .iter()
            .map(|m| m.id)
            .max()
            .unwrap();
        assert!(
            s.next_id().unwrap() > max,
            "the id sequence starts above copied ids"
        );
    }

    let again = edesk_store_copy(["sled", &dir], ["postgres", &url]);
    assert!(!again.status.success(), "a target with data is refused");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds data"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let back = tempfile::tempdir().unwrap();
    let back_dir = back.path().display().to_string();
    let out = edesk_store_copy(["postgres", &url], ["sled", &back_dir]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = open_at(back.path(), &Backend::Sled).unwrap();
    for d in &digests {
        assert_eq!(
            &s.tree_digest(d.tree).unwrap(),
            d,
            "{} back in sled",
            d.tree
        );
    }
}
