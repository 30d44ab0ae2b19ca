//! Two `edesk serve` processes sharing one PostgreSQL database, as a site
//! with two machines behind its MTA and load balancer runs them:
//!
//! 1. 8 LMTP clients split across both daemons while orders are posted to
//!    both: every acknowledged message is stored once and answered at most
//!    once, every notification reaches the SMTP sink exactly once;
//! 2. one daemon SIGKILLed while it sends: the other sends what it had
//!    claimed once the claim lapses, nothing lost, nothing sent twice but
//!    the mail in flight at the kill (same Message-ID, see `notify_crash`);
//! 3. the database stopped: both daemons say not-ready and LMTP answers
//!    4xx (the MTA keeps the mail), then recover by themselves.
//!
//! `#[ignore]`d: needs Debian's postgresql (a throwaway cluster, see
//! `support::pg`); `.ci/run` runs `cargo test --test it two_daemons:: -- --ignored`.

use crate::support::Served;
use crate::support::{self, Daemon, Sink, lmtp, pg::Cluster, spawn_daemon};

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use edesk::bench::{LoadPlan, metric, run_load, verify, wait_drained};

fn daemon(dir: &Path, url: &str, sink: &Sink, extra: &[(&str, &str)]) -> Daemon {
    let mut env = vec![
        ("EDESK_STORE__BACKEND", "postgres"),
        ("EDESK_STORE__URL", url),
        ("EDESK_OUTBOX__CLAIM_LEASE_SECS", "3"),
    ];
    let smtp = sink.url();
    env.push(("EDESK_SMTP__URL", &smtp));
    env.extend_from_slice(extra);
    spawn_daemon(dir, &env)
}

fn wait(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Message-IDs the sink received more than once, and In-Reply-To values
/// answered more than once.
fn repeats(sink: &Sink) -> (Vec<String>, Vec<String>, usize) {
    let parser = mail_parser::MessageParser::default();
    let (mut ids, mut answers) = (HashMap::new(), HashMap::new());
    let messages = sink.messages();
    for raw in &messages {
        let m = parser.parse(raw).expect("a parsable mail");
        let rcpt = support::header(&m, "X-Sink-Rcpt-To").unwrap_or_default();
        let id = m.message_id().unwrap_or_default().to_string();
        *ids.entry((rcpt.clone(), id)).or_insert(0) += 1;
        if let Some(parent) = m.in_reply_to().as_text() {
            *answers.entry((rcpt, parent.to_string())).or_insert(0) += 1;
        }
    }
    let twice = |m: HashMap<(String, String), i32>| {
        m.into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|((r, id), n)| format!("{id} to {r} ×{n}"))
            .collect::<Vec<_>>()
    };
    (twice(ids), twice(answers), messages.len())
}

fn order(i: usize) -> String {
    serde_json::json!({
        "so": format!("{}", 40_000_000 + i), "lang": "en",
        "lines": [{"line": "1.1", "pid": "L-ASA5516-TD-1Y",
                   "images": [{"file": "asa.SPA", "md5": "9fb4c92d620d4be2a9f190e7fa6332b3"}]}],
        "recipients": [{"email": format!("kill{i}@two{}.example.com", i % 4)}],
    })
    .to_string()
}

#[test]
#[ignore = "needs PostgreSQL server binaries (Debian's postgresql); .ci/run runs it"]
fn two_daemons_share_one_postgres() {
    let cluster = Cluster::start();
    let url = cluster.database("edesk");
    let tmp = tempfile::tempdir().unwrap();
    let sink = Sink::start(&tmp.path().join("sink"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let a = daemon(&tmp.path().join("a"), &url, &sink, &[]);
    let b = daemon(&tmp.path().join("b"), &url, &sink, &[]);

    // 1. Load on both at once.
    let plan = |d: &Daemon| LoadPlan {
        clients: 4,
        messages: 120,
        orders: 15,
        ..LoadPlan::new(d.lmtp, Some(d.http))
    };
    let (pa, pb) = (plan(&a), plan(&b));
    let (ra, rb) = rt.block_on(async { tokio::join!(run_load(&pa), run_load(&pb)) });
    for (p, r, d) in [(&pa, &ra, &a), (&pb, &rb, &b)] {
        assert!(r.stall.is_none(), "stalled: {:?}\n{}", r.stall, d.log());
        assert_eq!(
            r.acknowledged(),
            p.messages,
            "{:?}\n{}",
            r.error_samples(5),
            d.log()
        );
        assert_eq!(
            (r.orders.posted, r.orders.failed),
            (15, 0),
            "{:?}",
            r.orders
        );
    }
    for d in [&a, &b] {
        rt.block_on(wait_drained(d.http, Duration::from_secs(120)))
            .unwrap_or_else(|e| panic!("{e}\n{}", d.log()));
    }
    // Each daemon lists the other's mail too, each message once.
    for (p, r) in [(&pa, &ra), (&pb, &rb)] {
        for d in [&a, &b] {
            let v = rt.block_on(verify(d.http, &p.run_id, &r.acked())).unwrap();
            assert!(v.ok() && v.stored == r.acked().len(), "{v:?}");
        }
    }
    wait("the outbox to drain", Duration::from_secs(120), || {
        matches!(rt.block_on(metric(a.http, "edesk_outbox_pending")), Ok(0))
    });
    let sent = rt.block_on(metric(b.http, "edesk_outbox_sent")).unwrap();
    assert!(sent >= 30, "at least the 30 order notifications: {sent}");
    wait(
        "the sink to hold every sent mail",
        Duration::from_secs(30),
        || sink.messages().len() as u64 >= sent,
    );
    let (dup_ids, dup_answers, n) = repeats(&sink);
    assert!(dup_ids.is_empty(), "sent twice: {dup_ids:?}");
    assert!(dup_answers.is_empty(), "answered twice: {dup_answers:?}");
    assert_eq!(n as u64, sent, "one delivery per sent item");
    let answered_phase_1 = n;

    // 2. SIGKILL a daemon while it sends; the other finishes its claims.
    assert!(b.terminate(), "b stops cleanly");
    let slow = daemon(
        &tmp.path().join("a"),
        &url,
        &sink,
        &[("EDESK_OUTBOX__RATE_PER_SEC", "20")],
    );
    a.sigkill();
    let orders: Vec<String> = (0..60).map(order).collect();
    let (status, body) = slow.post_json("/v1/orders", &format!("[{}]", orders.join(",")));
    assert_eq!(status, 201, "{body}");
    wait("the first deliveries", Duration::from_secs(60), || {
        sink.messages().len() >= answered_phase_1 + 10
    });
    slow.sigkill();
    let b = daemon(&tmp.path().join("b"), &url, &sink, &[]);
    wait("every order mail", Duration::from_secs(60), || {
        let parser = mail_parser::MessageParser::default();
        let kill: HashSet<String> = sink
            .messages()
            .iter()
            .filter_map(|raw| {
                let m = parser.parse(raw)?;
                let to = support::header(&m, "X-Sink-Rcpt-To")?;
                to.starts_with("kill").then_some(to)
            })
            .collect();
        kill.len() == 60
    });
    std::thread::sleep(Duration::from_millis(500));
    let (dup_ids, dup_answers, total) = repeats(&sink);
    eprintln!(
        "phase 1: {answered_phase_1} mails; after the kill: {} more, {} sent twice",
        total - answered_phase_1,
        dup_ids.len()
    );
    assert!(dup_answers.is_empty(), "answered twice: {dup_answers:?}");
    // The mail in flight at the kill (the server had it, its 250 had not
    // reached the sender) goes again with the same Message-ID; at most one
    // per connection (4 per domain).
    assert!(
        dup_ids.len() <= 16,
        "sent twice after the kill: {dup_ids:?}"
    );
    wait("nothing pending", Duration::from_secs(30), || {
        matches!(rt.block_on(metric(b.http, "edesk_outbox_pending")), Ok(0))
    });

    // 3. The database goes away and comes back.
    cluster.stop();
    wait("not ready", Duration::from_secs(20), || {
        b.get("/readyz").0 == 503
    });
    let mail = lmtp::Mail::new("ana@example.com", &["support@edesk.example.com"])
        .header("Message-ID: <outage-1@example.com>")
        .body("How do I download my software?");
    let during = lmtp::deliver(
        b.lmtp,
        "ana@example.com",
        &["support@edesk.example.com"],
        &mail.to_bytes(),
    );
    assert!(
        during.delivery.iter().all(|r| (400..500).contains(&r.code)),
        "LMTP must defer while the store is away: {}",
        during.transcript
    );
    cluster.start_server();
    wait("ready again", Duration::from_secs(30), || {
        b.get("/readyz").0 == 200
    });
    let after = lmtp::deliver(
        b.lmtp,
        "ana@example.com",
        &["support@edesk.example.com"],
        &mail.to_bytes(),
    );
    assert!(after.ok(), "accepted after recovery: {}", after.transcript);
}

/// A job that counts its runs and, while `hold` is set, waits for it to
/// clear (a long run on one daemon).
struct Slow {
    runs: std::sync::atomic::AtomicU32,
    hold: std::sync::atomic::AtomicBool,
}

impl edesk::jobs::Job for Slow {
    fn name(&self) -> &'static str {
        "archive"
    }
    fn run(
        &self,
        _ctx: &edesk::jobs::RunContext,
    ) -> Result<edesk::jobs::Progress, edesk::jobs::JobError> {
        use std::sync::atomic::Ordering;
        self.runs.fetch_add(1, Ordering::SeqCst);
        while self.hold.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(edesk::jobs::Progress::default())
    }
}

/// Two schedulers on one database: a slot runs once; a run another daemon
/// holds (fresh heartbeat) is neither overlapped nor resumed; the run of a
/// daemon that died is recorded `interrupted` and the next slot runs.
#[test]
#[ignore = "needs PostgreSQL server binaries (Debian's postgresql); .ci/run runs it"]
fn two_schedulers_share_job_slots() {
    use edesk::jobs::{ManualClock, Scheduler};
    use edesk::store::{Backend, EngineSettings, RunOutcome, RunRecord, Store, Trigger};
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    let cluster = Cluster::start();
    let url = cluster.database("jobs");
    let t = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    let clock = Arc::new(ManualClock::new(t("2026-03-01T00:00:00Z")));
    let job = Arc::new(Slow {
        runs: Default::default(),
        hold: Default::default(),
    });
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let [a, b] = [0, 1].map(|i| {
        let settings = EngineSettings {
            backend: Backend::Postgres { url: url.clone() },
            ..EngineSettings::default()
        };
        let store = Store::open_with(dirs[i].path(), &settings).unwrap();
        let jobs: Vec<(Arc<dyn edesk::jobs::Job>, String)> =
            vec![(job.clone(), "*/10 * * * * *".into())];
        Arc::new(Scheduler::new(store, clock.clone(), chrono_tz::UTC, jobs).unwrap())
    });
    // First sight registers the job.
    assert!(a.tick().unwrap().is_empty() && b.tick().unwrap().is_empty());

    // A runs the 00:00:10 slot and holds it; B finds the slot taken, then
    // at the next slot finds A's run alive: an overlap, not a second run.
    clock.set(t("2026-03-01T00:00:10Z"));
    job.hold.store(true, Ordering::SeqCst);
    let runner = {
        let a = a.clone();
        std::thread::spawn(move || a.tick().unwrap())
    };
    wait("A's run to start", Duration::from_secs(10), || {
        job.runs.load(Ordering::SeqCst) == 1
    });
    assert!(b.tick().unwrap().is_empty(), "the slot is A's");
    clock.set(t("2026-03-01T00:00:20Z"));
    let overlap = b.tick().unwrap();
    assert!(overlap.is_empty(), "B runs nothing while A's run is alive");
    let history = b.history("archive", 10).unwrap();
    assert_eq!(history[0].outcome, RunOutcome::Overlap, "{history:?}");
    assert!(b.recover().unwrap().is_empty(), "a live run is not resumed");
    job.hold.store(false, Ordering::SeqCst);
    let done = runner.join().unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].outcome, RunOutcome::Ok);
    assert_eq!(job.runs.load(Ordering::SeqCst), 1);

    // A daemon died during a run: its claim stays, with no heartbeat.
    let stale_slot = t("2026-03-01T00:00:30Z");
    let admin = Store::open_with(
        dirs[0].path(),
        &EngineSettings {
            backend: Backend::Postgres { url: url.clone() },
            ..EngineSettings::default()
        },
    )
    .unwrap();
    admin
        .job_update("archive", move |st| {
            let mut r = RunRecord::new(
                "archive",
                stale_slot,
                Trigger::Schedule,
                RunOutcome::Running,
            );
            r.started_at = Some(stale_slot);
            st.running = Some(r);
            st.last_slot = Some(stale_slot);
            ((), vec![])
        })
        .unwrap();
    clock.set(t("2026-03-01T00:02:00Z"));
    let ran = b.tick().unwrap();
    assert_eq!(ran.len(), 1, "the next slot runs");
    assert_eq!(job.runs.load(Ordering::SeqCst), 2);
    let history = b.history("archive", 10).unwrap();
    assert!(
        history
            .iter()
            .any(|r| r.slot == stale_slot && r.outcome == RunOutcome::Interrupted),
        "{history:?}"
    );
}
