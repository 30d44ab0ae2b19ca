//! The scheduler and the built-in jobs with a driven clock: no test sleeps,
//! each moves a `ManualClock` and ticks.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Barrier};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use edesk::config::Config;
use edesk::desk::{Calendar, DeskService};
use edesk::domain::OrderId;
use edesk::jobs::{
    Clock, Job, JobError, JobsError, ManualClock, Progress, RunContext, Scheduler, builtin,
};
use edesk::notify::{Notifier, RestoreOutcome};
use edesk::store::{ChatKey, ChatNs, RunOutcome, Store, Trigger};
use serde_json::{Value, json};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

struct World {
    _dir: tempfile::TempDir,
    config: Config,
    notifier: Notifier,
    desk: Arc<DeskService>,
    clock: Arc<ManualClock>,
}

fn world_with(tz: &str, f: impl FnOnce(&mut Config)) -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    config.calendar.time_zone = tz.into();
    f(&mut config);
    let store = Store::open(dir.path()).unwrap();
    let notifier = Notifier::new(store.clone(), &config).unwrap();
    let desk = Arc::new(edesk::desk::service(&config, &store, Arc::new(notifier.clone())).unwrap());
    World {
        _dir: dir,
        config,
        notifier,
        desk,
        clock: Arc::new(ManualClock::new(t("2026-01-01T00:00:00Z"))),
    }
}

fn world() -> World {
    world_with("UTC", |_| {})
}

impl World {
    fn store(&self) -> &Store {
        self.notifier.store()
    }

    /// A scheduler over the named built-in jobs (their configured schedules).
    fn scheduler(&self, names: &[&str]) -> Scheduler {
        let jobs = builtin::all(&self.notifier, &self.desk, &self.config)
            .into_iter()
            .filter(|(j, _)| names.contains(&j.name()))
            .collect();
        Scheduler::new(
            self.store().clone(),
            self.clock.clone(),
            self.config.calendar.tz(),
            jobs,
        )
        .unwrap()
    }

    fn import(&self, orders: Vec<Value>) {
        let r = self
            .notifier
            .import_value(&Value::Array(orders), "test")
            .unwrap();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    }

    /// (order, address) of every queued mail of `kind`.
    fn mails(&self, kind: &str) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .store()
            .outbox_list(None)
            .unwrap()
            .into_iter()
            .filter(|i| i.kind == kind)
            .map(|i| {
                (
                    i.so.map(|s| s.to_string()).unwrap_or_default(),
                    i.to.to_string(),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn archived(&self, so: &str) -> bool {
        let so: OrderId = so.parse().unwrap();
        self.store().order(&so).unwrap().unwrap().archived
    }

    /// Moves the clock and ticks; returns the records of the runs.
    fn tick_at(&self, s: &Scheduler, at: DateTime<Utc>) -> Vec<edesk::store::RunRecord> {
        self.clock.set(at);
        s.tick().unwrap()
    }
}

fn order(so: &str, available: &str, emails: &[&str], extra: Value) -> Value {
    let mut o = json!({
        "so": so, "lang": "en", "available_at": available,
        "lines": [{"line": "1.1", "pid": "L-ASA5516-TD-1Y", "qty": 1,
                   "images": [{"file": "asa.SPA", "md5": "9fb4c92d620d4be2a9f190e7fa6332b3"}]}],
        "recipients": emails.iter().map(|e| json!({"email": e})).collect::<Vec<_>>(),
    });
    if let (Some(o), Some(e)) = (o.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    o
}

#[test]
fn archive_at_fifteen_months_across_month_ends_once() {
    let w = world();
    w.import(vec![
        // Jan 31 + 15 months is Apr 30 (no Apr 31).
        order(
            "10000001",
            "2025-01-31T10:00:00Z",
            &["a@x.example", "b@x.example"],
            json!({}),
        ),
        // Leap day: 2024-02-29 + 15 months = 2025-05-29.
        order(
            "10000002",
            "2024-02-29T10:00:00Z",
            &["c@x.example"],
            json!({}),
        ),
        order(
            "10000003",
            "2026-01-15T10:00:00Z",
            &["d@x.example"],
            json!({}),
        ),
    ]);
    let s = w.scheduler(&["archive"]);
    // First sight registers the job; nothing runs.
    assert!(w.tick_at(&s, t("2026-04-29T00:00:00Z")).is_empty());
    let r = w.tick_at(&s, t("2026-04-29T02:00:00Z"));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].outcome, RunOutcome::Ok);
    assert_eq!(r[0].trigger, Trigger::Schedule);
    assert!(
        !w.archived("10000001"),
        "Apr 29 is 1 day short of 15 months"
    );
    assert!(w.archived("10000002"));
    assert_eq!(
        w.mails("order_archived"),
        vec![("10000002".into(), "c@x.example".into())]
    );
    let r = w.tick_at(&s, t("2026-04-30T02:00:01Z"));
    assert_eq!(r[0].effects, 1);
    assert!(w.archived("10000001"));
    assert!(!w.archived("10000003"));
    // Every recipient told once; later slots change nothing.
    for day in 1..5 {
        w.tick_at(&s, t("2026-04-30T02:00:01Z") + Duration::days(day));
    }
    assert_eq!(
        w.mails("order_archived"),
        vec![
            ("10000001".into(), "a@x.example".into()),
            ("10000001".into(), "b@x.example".into()),
            ("10000002".into(), "c@x.example".into()),
        ]
    );
    // Archived: visible (the order is still there), its state says so.
    let st = w
        .notifier
        .archive_state(&"10000001".parse().unwrap())
        .unwrap()
        .unwrap();
    assert!(st.archived && st.archived_at.is_some());
    assert_eq!(st.archived_by.as_deref(), Some("archive job"));
}

#[test]
fn restore_once_tells_the_requester_and_survives_reimport() {
    let w = world();
    let o = order(
        "10000010",
        "2024-01-10T10:00:00Z",
        &["a@x.example", "b@x.example"],
        json!({}),
    );
    w.import(vec![o.clone()]);
    let s = w.scheduler(&["archive"]);
    s.run_now("archive").unwrap();
    assert!(w.archived("10000010"));
    let so: OrderId = "10000010".parse().unwrap();
    // The ordering system re-sends its copy (archived: false): still archived.
    w.import(vec![o.clone()]);
    assert!(w.archived("10000010"), "edesk owns the archive state now");
    let out = w.notifier.restore(&so, "B@x.example").unwrap();
    match out {
        RestoreOutcome::Restored { notified, .. } => assert_eq!(notified, vec!["B@x.example"]),
        other => panic!("{other:?}"),
    }
    assert!(!w.archived("10000010"));
    assert_eq!(
        w.notifier.restore(&so, "b@x.example").unwrap(),
        RestoreOutcome::NotArchived
    );
    assert_eq!(
        w.mails("order_restored"),
        vec![("10000010".into(), "B@x.example".into())]
    );
    // A re-import does not archive it again, nor does the next archive run:
    // the age counts from the restore.
    w.import(vec![{
        let mut o = o.clone();
        o["archived"] = json!(true);
        o
    }]);
    assert!(!w.archived("10000010"));
    s.run_now("archive").unwrap();
    assert!(!w.archived("10000010"));
    // Someone not on the order: the recipients are told instead.
    s.run_now("archive").unwrap();
    let meta = w.store().order_meta(&so).unwrap();
    assert!(meta.restored_at.is_some());
    assert_eq!(
        w.notifier
            .restore(&"99999999".parse().unwrap(), "x")
            .unwrap(),
        RestoreOutcome::NoOrder
    );
}

#[test]
fn downtime_runs_the_latest_missed_slot_once_and_records_the_others() {
    let w = world();
    let s = w.scheduler(&["archive"]);
    w.tick_at(&s, t("2026-03-01T12:00:00Z"));
    // Down for five days: slots of the 2nd..6th at 02:00 were missed.
    let r = w.tick_at(&s, t("2026-03-06T09:00:00Z"));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].trigger, Trigger::CatchUp);
    assert_eq!(r[0].slot, t("2026-03-06T02:00:00Z"));
    assert_eq!(r[0].skipped_slots, 4);
    let h = s.history("archive", 50).unwrap();
    let skipped: Vec<_> = h
        .iter()
        .filter(|r| r.outcome == RunOutcome::Skipped)
        .map(|r| r.slot)
        .collect();
    assert_eq!(skipped.len(), 4);
    assert!(skipped.contains(&t("2026-03-02T02:00:00Z")));
    assert!(w.tick_at(&s, t("2026-03-06T23:00:00Z")).is_empty(), "once");
    let info = &s.list().unwrap()[0];
    assert_eq!((info.runs, info.skipped), (1, 4));
    assert_eq!(info.next_run, Some(t("2026-03-07T02:00:00Z")));
}

#[test]
fn a_dst_change_neither_skips_nor_doubles_a_run() {
    // 02:30 does not exist on 2026-03-29 in Paris and happens twice on
    // 2026-10-25: one run each day either way.
    let w = world_with("Europe/Paris", |c| {
        c.jobs.schedule.archive = "0 30 2 * * *".into()
    });
    let s = w.scheduler(&["archive"]);
    for (from, to) in [
        ("2026-03-27T00:00:00Z", "2026-03-31T00:00:00Z"),
        ("2026-10-23T00:00:00Z", "2026-10-27T00:00:00Z"),
    ] {
        let mut at = t(from);
        let mut runs: Vec<DateTime<Utc>> = Vec::new();
        while at < t(to) {
            runs.extend(w.tick_at(&s, at).into_iter().map(|r| r.slot));
            at += Duration::minutes(10);
        }
        let days: Vec<NaiveDate> = runs
            .iter()
            .map(|r| r.with_timezone(&chrono_tz::Europe::Paris).date_naive())
            .collect();
        let mut unique = days.clone();
        unique.dedup();
        assert_eq!(days, unique, "one run per local day: {runs:?}");
        assert!(days.len() >= 3, "{runs:?}");
    }
    let spring = s
        .history("archive", 100)
        .unwrap()
        .into_iter()
        .find(|r| r.slot.with_timezone(&chrono_tz::Europe::Paris).date_naive() == d("2026-03-29"))
        .expect("the spring-forward day has its run");
    assert_eq!(
        spring.slot,
        t("2026-03-29T01:00:00Z"),
        "at the end of the gap (03:00 CEST)"
    );
}

/// A job the test controls: blocks on a barrier, fails on demand.
struct Probe {
    gate: Option<Arc<Barrier>>,
    fail: AtomicBool,
    runs: AtomicU32,
}

impl Job for Probe {
    fn name(&self) -> &'static str {
        "archive"
    }
    fn run(&self, _ctx: &RunContext) -> Result<Progress, JobError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if let Some(g) = &self.gate {
            g.wait();
            g.wait();
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(JobError::Failed("the upstream was down".into()));
        }
        Ok(Progress::default())
    }
}

fn probe_scheduler(w: &World, probe: Arc<Probe>) -> Arc<Scheduler> {
    Arc::new(
        Scheduler::new(
            w.store().clone(),
            w.clock.clone(),
            Tz::UTC,
            vec![(probe as Arc<dyn Job>, "0 0 * * * *".into())],
        )
        .unwrap(),
    )
}

#[test]
fn an_overlapping_slot_is_recorded_not_started() {
    let w = world();
    let gate = Arc::new(Barrier::new(2));
    let probe = Arc::new(Probe {
        gate: Some(gate.clone()),
        fail: AtomicBool::new(false),
        runs: AtomicU32::new(0),
    });
    let s = probe_scheduler(&w, probe.clone());
    w.tick_at(&s, t("2026-05-01T00:30:00Z"));
    w.clock.set(t("2026-05-01T01:00:00Z"));
    let claims = s.due().unwrap();
    assert_eq!(claims.len(), 1);
    let s2 = s.clone();
    let run = std::thread::spawn(move || s2.execute(claims.into_iter().next().unwrap()));
    gate.wait(); // the run is inside the job now
    // The next slot comes while it runs: recorded, not started.
    w.clock.set(t("2026-05-01T02:00:00Z"));
    assert!(s.due().unwrap().is_empty());
    assert!(matches!(s.run_now("archive"), Err(JobsError::Running(_))));
    assert!(s.list().unwrap()[0].running);
    gate.wait();
    assert_eq!(run.join().unwrap().outcome, RunOutcome::Ok);
    assert_eq!(probe.runs.load(Ordering::SeqCst), 1);
    let h = s.history("archive", 10).unwrap();
    let overlaps: Vec<_> = h
        .iter()
        .filter(|r| r.outcome == RunOutcome::Overlap)
        .collect();
    assert_eq!(overlaps.len(), 2, "the slot and the manual run: {h:?}");
    assert!(overlaps.iter().any(|r| r.slot == t("2026-05-01T02:00:00Z")));
    // The overlapped slot is not made up for; the next one runs.
    w.clock.set(t("2026-05-01T02:30:00Z"));
    assert!(s.due().unwrap().is_empty());
    let info = &s.list().unwrap()[0];
    assert_eq!((info.runs, info.overlaps), (1, 2));
}

#[test]
fn a_failure_is_kept_and_the_next_slot_retries() {
    let w = world();
    let probe = Arc::new(Probe {
        gate: None,
        fail: AtomicBool::new(true),
        runs: AtomicU32::new(0),
    });
    let s = probe_scheduler(&w, probe.clone());
    w.tick_at(&s, t("2026-05-01T00:30:00Z"));
    let r = w.tick_at(&s, t("2026-05-01T01:00:00Z"));
    assert_eq!(r[0].outcome, RunOutcome::Failed);
    let info = &s.list().unwrap()[0];
    assert_eq!(info.last_error.as_deref(), Some("the upstream was down"));
    assert_eq!(info.failures, 1);
    // Not retried before its next slot…
    assert!(w.tick_at(&s, t("2026-05-01T01:30:00Z")).is_empty());
    probe.fail.store(false, Ordering::SeqCst);
    // …and retried at it.
    let r = w.tick_at(&s, t("2026-05-01T02:00:00Z"));
    assert_eq!(r[0].outcome, RunOutcome::Ok);
    let info = &s.list().unwrap()[0];
    assert_eq!(
        (info.runs, info.failures, info.last_error.clone()),
        (2, 1, None)
    );
    assert_eq!(
        s.history("archive", 10).unwrap()[1].error.as_deref(),
        Some("the upstream was down")
    );
}

#[test]
fn pak_reminders_at_most_n_times_and_stopped_when_registered() {
    let w = world_with("UTC", |c| {
        c.jobs.pak_reminder_after_days = 10;
        c.jobs.pak_reminder_every_days = 7;
        c.jobs.pak_reminder_max = 3;
        c.jobs.schedule.pak_reminder = "0 0 9 * * *".into();
    });
    w.import(vec![
        order(
            "20000001",
            "2026-02-01T08:00:00Z",
            &["a@x.example"],
            json!({"pak_registered": false}),
        ),
        order(
            "20000002",
            "2026-02-01T08:00:00Z",
            &["b@x.example"],
            json!({"pak_registered": false}),
        ),
        // No PAK on the order, or registered at import: never reminded.
        order(
            "20000003",
            "2026-02-01T08:00:00Z",
            &["c@x.example"],
            json!({}),
        ),
        order(
            "20000004",
            "2026-02-01T08:00:00Z",
            &["d@x.example"],
            json!({"pak_registered": true}),
        ),
    ]);
    let s = w.scheduler(&["pak-reminder"]);
    w.tick_at(&s, t("2026-02-01T10:00:00Z"));
    let mut day = t("2026-02-02T09:00:00Z");
    while day < t("2026-04-30T00:00:00Z") {
        w.tick_at(&s, day);
        if day == t("2026-02-12T09:00:00Z") {
            // After the first reminder (day 10 was Feb 11).
            assert_eq!(w.mails("pak_reminder").len(), 2);
            let o = w
                .notifier
                .mark_pak_registered(&"20000002".parse().unwrap(), "api")
                .unwrap();
            assert_eq!(o, edesk::notify::PakOutcome::Marked);
        }
        day += Duration::days(1);
    }
    let m = w.mails("pak_reminder");
    assert_eq!(
        m.iter().filter(|(so, _)| so == "20000001").count(),
        3,
        "{m:?}"
    );
    assert_eq!(
        m.iter().filter(|(so, _)| so == "20000002").count(),
        1,
        "{m:?}"
    );
    assert_eq!(m.len(), 4, "{m:?}");
    let meta = w.store().order_meta(&"20000001".parse().unwrap()).unwrap();
    assert_eq!(meta.pak_reminders, 3);
    // The mail carries the registration link and the fallback steps.
    let item = w
        .store()
        .outbox_list(None)
        .unwrap()
        .into_iter()
        .find(|i| i.kind == "pak_reminder")
        .unwrap();
    let body = w.store().outbox_body(item.id).unwrap().unwrap();
    assert!(body.contains("/pak?t="), "register link");
    assert!(body.contains("licensing@cisco.com"), "fallback steps");
}

#[test]
fn a_restart_in_the_middle_of_a_run_sends_no_reminder_twice() {
    let w = world_with("UTC", |c| c.jobs.pak_reminder_after_days = 1);
    let orders: Vec<Value> = (0..30)
        .map(|i| {
            order(
                &format!("3000{i:04}"),
                "2026-02-01T08:00:00Z",
                &["a@x.example"],
                json!({"pak_registered": false}),
            )
        })
        .collect();
    w.import(orders);
    {
        let s = w.scheduler(&["pak-reminder"]);
        w.tick_at(&s, t("2026-02-03T08:00:00Z"));
        w.clock.set(t("2026-02-03T09:00:00Z"));
        let claim = s.due().unwrap().pop().expect("the 09:00 slot is due");
        // The job does its work, then the process dies before recording
        // the end of the run (the claim stays in the store).
        let job = builtin::all(&w.notifier, &w.desk, &w.config)
            .into_iter()
            .find(|(j, _)| j.name() == "pak-reminder")
            .unwrap()
            .0;
        let ctx = RunContext::new(claim.record.slot, w.clock.now(), Tz::UTC);
        assert_eq!(job.run(&ctx).unwrap().effects, 30);
    }
    assert_eq!(w.mails("pak_reminder").len(), 30);
    // Restart: the interrupted run is found and resumed once, for the same
    // slot; it finds every reminder done.
    let s = w.scheduler(&["pak-reminder"]);
    w.clock.set(t("2026-02-03T09:05:00Z"));
    let claims = s.recover().unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].record.trigger, Trigger::Resume);
    assert_eq!(claims[0].record.slot, t("2026-02-03T09:00:00Z"));
    let r = s.execute(claims.into_iter().next().unwrap());
    assert_eq!((r.outcome, r.effects), (RunOutcome::Ok, 0));
    assert_eq!(w.mails("pak_reminder").len(), 30, "no reminder twice");
    let h = s.history("pak-reminder", 10).unwrap();
    assert!(h.iter().any(|r| r.outcome == RunOutcome::Interrupted));
    // And a stop at shutdown leaves the claim for the next start.
    w.clock.set(t("2026-02-04T09:00:00Z"));
    let claim = s.due().unwrap().pop().unwrap();
    s.stop();
    let r = s.execute(claim);
    assert_eq!(r.outcome, RunOutcome::Interrupted);
    let s = w.scheduler(&["pak-reminder"]);
    let claims = s.recover().unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(
        s.execute(claims.into_iter().next().unwrap()).outcome,
        RunOutcome::Ok
    );
    assert!(s.recover().unwrap().is_empty());
}

#[test]
fn download_window_warning_once_before_day_90() {
    let w = world_with("UTC", |c| c.jobs.download_window_warn_days = 5);
    w.import(vec![
        order(
            "40000001",
            "2026-01-01T08:00:00Z",
            &["a@x.example"],
            json!({}),
        ),
        order(
            "40000002",
            "2026-03-01T08:00:00Z",
            &["b@x.example"],
            json!({}),
        ),
    ]);
    let s = w.scheduler(&["download-window"]);
    w.tick_at(&s, t("2026-03-20T00:00:00Z"));
    let mut day = t("2026-03-21T09:30:00Z");
    while day < t("2026-04-10T00:00:00Z") {
        w.tick_at(&s, day);
        if day < t("2026-03-26T00:00:00Z") {
            assert!(w.mails("download_window_closing").is_empty(), "{day}");
        }
        day += Duration::days(1);
    }
    // Day 90 of Jan 1 is Apr 1: warned on Mar 27, once.
    assert_eq!(
        w.mails("download_window_closing"),
        vec![("40000001".into(), "a@x.example".into())]
    );
    let id = w
        .store()
        .outbox_list(None)
        .unwrap()
        .into_iter()
        .find(|i| i.kind == "download_window_closing")
        .unwrap()
        .id;
    assert!(
        w.store()
            .outbox_body(id)
            .unwrap()
            .unwrap()
            .contains("2026-04-01")
    );
}

#[test]
fn held_orders_are_released_on_their_date_by_the_job() {
    let w = world();
    let today = Utc::now().date_naive();
    let date = today + Duration::days(3);
    w.import(vec![order(
        "50000001",
        &Utc::now().to_rfc3339(),
        &["a@x.example"],
        json!({"early_ship": false, "requested_date": date.to_string()}),
    )]);
    assert!(w.mails("order_available").is_empty());
    let s = w.scheduler(&["release-held"]);
    let start = Utc.from_utc_datetime(&today.and_hms_opt(0, 10, 0).unwrap());
    w.tick_at(&s, start);
    for h in 1..(24 * 4) {
        w.tick_at(&s, start + Duration::hours(h));
        let released = !w.mails("order_available").is_empty();
        let local_day = (start + Duration::hours(h)).date_naive();
        assert_eq!(released, local_day >= date, "hour {h}");
    }
    assert_eq!(w.mails("order_available").len(), 1);
}

#[test]
fn sla_reminder_then_escalation_once_per_ticket_and_stage() {
    let w = world_with("Europe/Paris", |c| {
        c.jobs.sla_remind_before_hours = 4;
        c.jobs.sla_escalate_to = Some("lead@x.example".into());
    });
    // Friday 2026-11-27 10:00 UTC: one business day → due Monday Nov 30.
    let ticket = w
        .desk
        .desk()
        .open_ticket(
            edesk::desk::tickets::NewTicket {
                team: edesk::domain::Team::Exportops,
                customer: "c@x.example".into(),
                lang: edesk::domain::Lang::En,
                subject: "Export hold".into(),
                orders: vec![],
                purchase_orders: vec![],
                faq: None,
                reasons: vec![],
                message_id: Some("<m1@x.example>".parse().unwrap()),
                text: "please".into(),
                reference: None,
                chat: None,
            },
            t("2026-11-27T10:00:00Z"),
        )
        .unwrap();
    assert_eq!(ticket.due, d("2026-11-30"));
    let s = w.scheduler(&["sla"]);
    let mut at = t("2026-11-27T10:00:00Z");
    let mut seen = Vec::new();
    while at < t("2026-12-03T00:00:00Z") {
        w.tick_at(&s, at);
        seen.push((at, w.mails("sla_reminder").len()));
        at += Duration::minutes(15);
    }
    let first = |n: usize| seen.iter().find(|(_, c)| *c >= n).map(|(a, _)| *a);
    // Due at the end of Monday in Paris (23:00 UTC): reminder 4 h before,
    // escalation (team + lead) once it has passed.
    assert_eq!(first(1), Some(t("2026-11-30T19:00:00Z")));
    assert_eq!(first(2), Some(t("2026-11-30T23:00:00Z")));
    let m = w.mails("sla_reminder");
    assert_eq!(m.len(), 3, "{m:?}");
    assert!(m.iter().any(|(_, to)| to == "lead@x.example"));
    let t2 = w.desk.desk().get(ticket.id).unwrap();
    assert_eq!(
        t2.events.iter().filter(|e| e.by == "edesk sla job").count(),
        2
    );
}

#[test]
fn retention_purges_history_never_an_order() {
    let w = world_with("UTC", |c| c.jobs.history_retention_days = 30);
    w.import(vec![order(
        "60000001",
        "2026-01-01T08:00:00Z",
        &["a@x.example"],
        json!({}),
    )]);
    let so: OrderId = "60000001".parse().unwrap();
    assert!(!w.store().history(&so).unwrap().is_empty());
    // Chat transcripts: one idle since now, one written just before the run.
    let later = Utc::now() + Duration::days(31);
    let transcript = |id: &str, at: DateTime<Utc>| {
        let key = ChatKey::new(ChatNs::Transcript, id);
        let rec = json!({"updated": at.timestamp(), "lines": ["ana: hello", "bot: hi"]});
        w.store().chat_put(&key, Some(&rec), true).unwrap();
        key
    };
    let (idle, recent) = (
        transcript("web:idle", Utc::now()),
        transcript("web:recent", later),
    );
    let s = w.scheduler(&["retention"]);
    w.clock.set(later);
    let r = s.run_now("retention").unwrap();
    assert_eq!(r.outcome, RunOutcome::Ok);
    assert!(w.store().history(&so).unwrap().is_empty());
    let get = |k: &ChatKey| w.store().chat_get::<Value>(k).unwrap();
    assert!(get(&idle).is_none(), "an idle transcript is purged");
    assert!(get(&recent).is_some(), "a recent one stays");
    let o = w.store().order(&so).unwrap().unwrap();
    assert_eq!(o.recipients.len(), 1, "the order and its state stay");
    assert_eq!(w.store().order_meta(&so).unwrap().available_count, 1);
}

mod business_days {
    use super::*;
    use proptest::prelude::*;

    fn cal() -> Calendar {
        Calendar::parse("2026-12-25\n2026-12-28\n2027-01-01\n2027-05-01\n", "test").unwrap()
    }

    proptest! {
        #[test]
        fn n_business_days_later_is_a_business_day_n_business_days_away(
            days in 0i64..1200, n in 0u32..25
        ) {
            let c = cal();
            let from = d("2025-06-01") + Duration::days(days);
            let due = c.add_business_days(from, n);
            prop_assert!(due >= from);
            prop_assert_eq!(c.business_days_between(from, due), i64::from(n));
            if n > 0 {
                prop_assert!(c.is_business_day(due));
                // Nothing earlier would do.
                prop_assert!(c.business_days_between(from, due - Duration::days(1)) < i64::from(n));
            }
        }

        #[test]
        fn a_week_has_five_business_days_less_its_holidays(days in 0i64..1200) {
            let c = cal();
            let from = d("2025-06-01") + Duration::days(days);
            let to = from + Duration::days(7);
            let holidays = [d("2026-12-25"), d("2026-12-28"), d("2027-01-01"), d("2027-05-01")]
                .iter()
                .filter(|h| **h > from && **h <= to
                    && !matches!(chrono::Datelike::weekday(*h), chrono::Weekday::Sat | chrono::Weekday::Sun))
                .count() as i64;
            prop_assert_eq!(c.business_days_between(from, to), 5 - holidays);
        }

        #[test]
        fn sla_stages_move_forward_only(
            due_days in 0i64..400, step_minutes in 1i64..600, hours in 0i64..24
        ) {
            let tz = chrono_tz::Europe::Paris;
            let due = d("2026-01-01") + Duration::days(due_days);
            let before = Duration::hours(hours);
            let mut at = Utc.from_utc_datetime(&due.and_hms_opt(0, 0, 0).unwrap()) - Duration::days(1);
            let mut rank = 0;
            for _ in 0..200 {
                let r = match builtin::sla_stage(due, at, before, tz) {
                    None => 0,
                    Some("reminder") => 1,
                    Some(_) => 2,
                };
                prop_assert!(r >= rank, "stages go none → reminder → overdue");
                rank = r;
                at += Duration::minutes(step_minutes);
            }
        }
    }
}
