//! Stress: 8 concurrent LMTP clients and HTTP order posts against the real
//! binary, three times on fresh data directories (the sled deadlock this
//! guards against was intermittent). Uses the load generator of
//! `edesk bench intake` (`edesk::bench`), whose watchdog stops the run when no
//! LMTP reply arrived for 10 s; the test then fails with the daemon log.
//!
//! `STRESS_ROUNDS` (default 3) and `STRESS_CLIENTS` (default 8; not `EDESK_…`,
//! which the daemon would read as configuration keys)
//! change the size, e.g. for a long local soak.

use crate::support;
use crate::support::Served;

use std::process::Command;
use std::time::{Duration, Instant};

use edesk::bench::{LoadPlan, LoadReport, metric, run_load, verify, wait_drained};
use support::{Daemon, spawn_daemon};

const PER_CLIENT: usize = 60;
const ORDERS: usize = 40;
const WATCHDOG: Duration = Duration::from_secs(10);

#[test]
fn concurrent_lmtp_and_orders_neither_hang_nor_lose_mail() {
    stress("sled");
}

#[test]
fn concurrent_lmtp_and_orders_neither_hang_nor_lose_mail_on_redb() {
    stress("redb");
}

fn stress(engine: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let rounds = env_or("STRESS_ROUNDS", 3);
    let clients = env_or("STRESS_CLIENTS", 8);
    for round in 1..=rounds {
        scenario(&rt, round, clients, engine);
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn scenario(rt: &tokio::runtime::Runtime, round: usize, clients: usize, engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let env = [("EDESK_STORE__BACKEND", engine)];
    let mut d = spawn_daemon(dir.path(), &env);
    let plan = LoadPlan {
        clients,
        messages: clients * PER_CLIENT,
        orders: ORDERS,
        watchdog: WATCHDOG,
        ..LoadPlan::new(d.lmtp, Some(d.http))
    };
    let t0 = Instant::now();
    let report = rt.block_on(run_load(&plan));
    check_every_message_and_order_accepted(round, &plan, &report, &d);

    let acked = report.acked();
    check_each_acknowledged_message_stored_once(rt, round, &d, &plan, &acked);
    wait_for_the_outbox(rt, round, &d);

    let (status, body) = d.get("/healthz");
    assert_eq!(status, 200, "round {round}: /healthz: {body}");

    let took = sigterm(&mut d, Duration::from_secs(15)).unwrap_or_else(|| {
        panic!(
            "round {round}: no exit within 15 s of SIGTERM\nlog:\n{}",
            d.log()
        )
    });
    eprintln!(
        "round {round}: SIGTERM exit after {took:?}; whole round {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // Nothing acknowledged is lost across the restart.
    let d = spawn_daemon(dir.path(), &env);
    let v = rt
        .block_on(verify(d.http, &plan.run_id, &acked))
        .unwrap_or_else(|e| panic!("round {round}, after restart: {e}"));
    assert!(
        v.ok() && v.stored == acked.len(),
        "round {round}, after restart: {v:?}"
    );
    assert_eq!(
        dir.path().join("store.redb").is_file(),
        engine == "redb",
        "round {round} ran on {engine}"
    );
}

/// No stall, every message acknowledged once (250, no "already
/// accepted"), every order posted.
fn check_every_message_and_order_accepted(
    round: usize,
    plan: &LoadPlan,
    report: &LoadReport,
    d: &Daemon,
) {
    if let Some(stall) = &report.stall {
        panic!(
            "round {round}: the daemon stopped making progress: no LMTP reply for {:.1} s after \
             {} of {} messages were acknowledged; /healthz: {}\ndaemon log:\n{}",
            stall.idle_secs,
            stall.acknowledged_before_stall,
            plan.messages,
            stall.healthz,
            d.log()
        );
    }
    eprintln!(
        "round {round}: {} acknowledged in {:.2} s ({:.0}/s, p50 {:?}, p99 {:?}), {} orders posted",
        report.acknowledged(),
        report.elapsed.as_secs_f64(),
        report.rate(),
        report.percentile(0.5),
        report.percentile(0.99),
        report.orders.posted
    );
    assert_eq!(
        report.acknowledged(),
        plan.messages,
        "round {round}: every message must get 250 ({} temp-failed, {} failed: {:?})\nlog:\n{}",
        report.temp_failed(),
        report.failed(),
        report.error_samples(5),
        d.log()
    );
    assert_eq!(
        report.duplicate_acks(),
        0,
        "round {round}: every Message-ID is new"
    );
    assert_eq!(
        (report.orders.posted, report.orders.failed),
        (ORDERS, 0),
        "round {round}: {:?}",
        report.orders
    );
}

/// Once processing drained, `/v1/mail` lists each acknowledged Message-ID once.
fn check_each_acknowledged_message_stored_once(
    rt: &tokio::runtime::Runtime,
    round: usize,
    d: &Daemon,
    plan: &LoadPlan,
    acked: &[(String, usize)],
) {
    rt.block_on(wait_drained(d.http, Duration::from_secs(120)))
        .unwrap_or_else(|e| panic!("round {round}: {e}\nlog:\n{}", d.log()));
    let v = rt
        .block_on(verify(d.http, &plan.run_id, acked))
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
    assert!(
        v.ok() && v.stored == acked.len() && v.unacknowledged_stored == 0,
        "round {round}: /v1/mail must list each acknowledged Message-ID once: {v:?}"
    );
}

/// The outbox worked while the mail came in: the order notifications
/// (written under data/outgoing without smtp.url) go out, none die.
fn wait_for_the_outbox(rt: &tokio::runtime::Runtime, round: usize, d: &Daemon) {
    let outbox_done = Instant::now() + Duration::from_secs(60);
    loop {
        let sent = rt.block_on(metric(d.http, "edesk_outbox_sent")).unwrap();
        let pending = rt.block_on(metric(d.http, "edesk_outbox_pending")).unwrap();
        if pending == 0 && sent >= ORDERS as u64 {
            break;
        }
        assert!(
            Instant::now() < outbox_done,
            "round {round}: outbox stuck: {sent} sent, {pending} pending\nlog:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(rt.block_on(metric(d.http, "edesk_outbox_dead")).unwrap(), 0);
}

/// SIGTERM and the time until a successful exit, or None after `within`.
fn sigterm(d: &mut Daemon, within: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    Command::new("kill")
        .arg("-TERM")
        .arg(d.child.id().to_string())
        .status()
        .unwrap();
    while t0.elapsed() < within {
        if let Some(status) = d.child.try_wait().unwrap() {
            assert!(status.success(), "exit status after SIGTERM: {status}");
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
