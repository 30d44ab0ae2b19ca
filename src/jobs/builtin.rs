//! The built-in jobs. Each streams what it looks at (orders through
//! [`Store::order_heads`], tickets through the desk) and makes each effect
//! idempotent per item: an order's state change and its mails are one
//! commit ([`Notifier::order_change`]), a ticket's reminder has an
//! idempotency key per ticket and stage. Order changes are flushed in
//! batches and once at the end, before the run is recorded as done.

use std::sync::Arc;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
use chrono_tz::Tz;

use super::{Job, JobError, Progress, RunContext};
use crate::config::Config;
use crate::desk::DeskService;
use crate::desk::tickets::Ticket;
use crate::domain::{
    EmailAddress, Lang, Mailbox, Order, OrderId, SECOND_DOWNLOAD_DAYS, archive_due,
};
use crate::notify::{
    Audience, DownloadWindowContext, EnqueueOutcome, Notifier, OrderMail, OutgoingMail,
    PakReminderContext, SlaReminderContext, TemplateContext,
};
use crate::store::{ChatNs, OrderMeta, Store, WriteMark};

/// Order changes written between two flushes of a job.
const FLUSH_EVERY: usize = 256;

/// The numbers the jobs use (from `jobs.*` and `inbound.retention_days`;
/// team addresses come from the desk service).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Days after availability before the first PAK reminder (`jobs.pak_reminder_after_days`).
    pub pak_after_days: u32,
    /// Days between later PAK reminders; at least 1 (`jobs.pak_reminder_every_days`).
    pub pak_every_days: u32,
    /// No more PAK reminders once an order has had this many (`jobs.pak_reminder_max`).
    pub pak_max: u32,
    /// Warn this many days before day 90 of the download window (`jobs.download_window_warn_days`).
    pub window_warn_days: u32,
    /// How long before a ticket is due its team is reminded (`jobs.sla_remind_before_hours`).
    pub sla_remind_before: Duration,
    /// Extra recipient of the overdue escalation (`jobs.sla_escalate_to`); `None` when unset
    /// or not a valid address.
    pub sla_escalate_to: Option<EmailAddress>,
    /// Raw inbound mail older than this many days is purged (`inbound.retention_days`).
    pub raw_mail_days: u32,
    /// Notification history, job runs and chat transcripts older than this many days are
    /// purged (`jobs.history_retention_days`).
    pub history_days: u32,
}

impl Settings {
    /// Reads the `jobs.*` keys and `inbound.retention_days`; a `pak_reminder_every_days`
    /// of 0 counts as 1.
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            pak_after_days: c.jobs.pak_reminder_after_days,
            pak_every_days: c.jobs.pak_reminder_every_days.max(1),
            pak_max: c.jobs.pak_reminder_max,
            window_warn_days: c.jobs.download_window_warn_days,
            sla_remind_before: Duration::hours(i64::from(c.jobs.sla_remind_before_hours)),
            sla_escalate_to: c
                .jobs
                .sla_escalate_to
                .as_deref()
                .and_then(|a| a.parse().ok()),
            raw_mail_days: c.inbound.retention_days,
            history_days: c.jobs.history_retention_days,
        }
    }
}

/// Every built-in job with its configured schedule.
pub fn all(
    notifier: &Notifier,
    desk: &Arc<DeskService>,
    config: &Config,
) -> Vec<(Arc<dyn Job>, String)> {
    let s = Arc::new(Settings::from_config(config));
    let n = notifier.clone();
    let sched = &config.jobs.schedule;
    vec![
        (
            Arc::new(Archive {
                notifier: n.clone(),
            }) as Arc<dyn Job>,
            sched.archive.clone(),
        ),
        (
            Arc::new(ReleaseHeld {
                notifier: n.clone(),
            }),
            sched.release_held.clone(),
        ),
        (
            Arc::new(PakReminder {
                notifier: n.clone(),
                settings: s.clone(),
            }),
            sched.pak_reminder.clone(),
        ),
        (
            Arc::new(DownloadWindow {
                notifier: n.clone(),
                settings: s.clone(),
            }),
            sched.download_window.clone(),
        ),
        (
            Arc::new(Sla {
                notifier: n.clone(),
                desk: desk.clone(),
                settings: s.clone(),
            }),
            sched.sla.clone(),
        ),
        (
            Arc::new(Retention {
                store: n.store().clone(),
                settings: s,
            }),
            sched.retention.clone(),
        ),
    ]
}

fn local_date(t: DateTime<FixedOffset>, tz: Tz) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

fn utc_date(t: DateTime<Utc>, tz: Tz) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

/// Flushes order changes every [`FLUSH_EVERY`] and at the end.
struct Batch<'a> {
    store: &'a Store,
    mark: WriteMark,
    pending: usize,
}

impl<'a> Batch<'a> {
    fn new(store: &'a Store) -> Self {
        Batch {
            store,
            mark: store.write_mark(),
            pending: 0,
        }
    }

    fn wrote(&mut self) -> Result<(), JobError> {
        self.pending += 1;
        if self.pending >= FLUSH_EVERY {
            self.finish()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), JobError> {
        self.store.flush(self.mark)?;
        self.mark = self.store.write_mark();
        self.pending = 0;
        Ok(())
    }
}

/// Sends one reminder to an order's recipients. `claim` runs under the
/// order's lock on the order as it is now (the scan may be stale): it
/// re-checks that the reminder is still due, marks it in the meta (so a
/// rerun does not send it again) and gives the mail and its idempotency
/// key. Counted, and batched for the flush, when a mail was queued or
/// skipped by preference.
fn remind_recipients<C: TemplateContext>(
    notifier: &Notifier,
    so: &OrderId,
    requested_by: &str,
    claim: impl FnOnce(&Order, &mut OrderMeta) -> Option<(C, String)>,
    p: &mut Progress,
    batch: &mut Batch<'_>,
) -> Result<(), JobError> {
    let changed = notifier.order_change(so, requested_by, |order, meta| {
        let (context, key) = claim(order, meta)?;
        Some(vec![OrderMail::of(&context, Audience::Recipients, key)])
    })?;
    if changed.is_some_and(|c| c.queued + c.skipped > 0) {
        p.effects += 1;
        batch.wrote()?;
    }
    Ok(())
}

/// The date an order's archive age counts from: its availability, or its
/// last restore.
pub fn archive_reference(available: NaiveDate, meta: &OrderMeta, tz: Tz) -> NaiveDate {
    meta.restored_at
        .map(|r| utc_date(r, tz))
        .map_or(available, |r| r.max(available))
}

/// `archive`: orders available (or restored) more than 15 months ago become
/// archived; their recipients are told once.
pub struct Archive {
    pub(crate) notifier: Notifier,
}

impl Job for Archive {
    fn name(&self) -> &'static str {
        "archive"
    }

    fn run(&self, ctx: &RunContext) -> Result<Progress, JobError> {
        let store = self.notifier.store();
        let today = ctx.today();
        let mut p = Progress::default();
        let mut batch = Batch::new(store);
        for head in store.order_heads() {
            let head = head?;
            p.examined += 1;
            ctx.check_stop()?;
            let Some(av) = head.available_at else {
                continue;
            };
            let available = local_date(av, ctx.tz);
            if head.archived || !archive_due(available, today) {
                continue;
            }
            let meta = store.order_meta(&head.so)?;
            if !archive_due(archive_reference(available, &meta, ctx.tz), today) {
                continue;
            }
            if self.notifier.archive(&head.so, ctx.now, "archive job")? {
                p.effects += 1;
                batch.wrote()?;
            }
        }
        batch.finish()?;
        p.note = format!("{} orders archived", p.effects);
        Ok(p)
    }
}

/// `release-held`: early-ship "No" orders whose requested date came get the
/// availability mail they were holding.
pub struct ReleaseHeld {
    pub(crate) notifier: Notifier,
}

impl Job for ReleaseHeld {
    fn name(&self) -> &'static str {
        "release-held"
    }

    fn run(&self, ctx: &RunContext) -> Result<Progress, JobError> {
        let released = self.notifier.release_due(ctx.today())?;
        Ok(Progress {
            examined: 0,
            effects: released as u64,
            note: format!("{released} held orders released"),
        })
    }
}

/// Which PAK reminder (1-based) is due for an order today, if one is.
pub fn pak_reminder_due(
    available: NaiveDate,
    meta: &OrderMeta,
    today: NaiveDate,
    s: &Settings,
    tz: Tz,
) -> Option<u32> {
    if meta.pak_registered_at.is_some()
        || meta.available_count == 0
        || meta.pak_reminders >= s.pak_max
    {
        return None;
    }
    let due = match meta.pak_reminded_at {
        None => available + Duration::days(i64::from(s.pak_after_days)),
        Some(last) => utc_date(last, tz) + Duration::days(i64::from(s.pak_every_days)),
    };
    (today >= due).then_some(meta.pak_reminders + 1)
}

/// `pak-reminder`: orders whose PAKs are not registered get a reminder a
/// configured number of days after availability, then again, at most N
/// times; marking them registered stops it.
pub struct PakReminder {
    pub(crate) notifier: Notifier,
    pub(crate) settings: Arc<Settings>,
}

impl Job for PakReminder {
    fn name(&self) -> &'static str {
        "pak-reminder"
    }

    fn run(&self, ctx: &RunContext) -> Result<Progress, JobError> {
        let store = self.notifier.store();
        let (today, tz, s) = (ctx.today(), ctx.tz, &*self.settings);
        let first = Duration::days(i64::from(s.pak_after_days));
        let mut p = Progress::default();
        let mut batch = Batch::new(store);
        for head in store.order_heads() {
            let head = head?;
            p.examined += 1;
            ctx.check_stop()?;
            let Some(av) = head.available_at else {
                continue;
            };
            let available = local_date(av, tz);
            if head.archived || head.pak_registered != Some(false) || today < available + first {
                continue;
            }
            if pak_reminder_due(available, &store.order_meta(&head.so)?, today, s, tz).is_none() {
                continue;
            }
            let now = ctx.now;
            let max = s.pak_max;
            let claim = |order: &Order, meta: &mut OrderMeta| {
                if order.archived || order.pak_registered != Some(false) {
                    return None;
                }
                let n = pak_reminder_due(available, meta, today, s, tz)?;
                meta.pak_reminders = n;
                meta.pak_reminded_at = Some(now);
                let context = PakReminderContext {
                    reminder: n,
                    reminders_max: max,
                };
                Some((context, format!("pak{n}")))
            };
            let by = "pak-reminder job";
            remind_recipients(&self.notifier, &head.so, by, claim, &mut p, &mut batch)?;
        }
        batch.finish()?;
        p.note = format!("{} orders reminded", p.effects);
        Ok(p)
    }
}

/// The last day of the second-download window and whether the warning is
/// due today (`warn_days` before it, until it).
pub fn window_warning_due(
    available: NaiveDate,
    today: NaiveDate,
    warn_days: u32,
) -> Option<NaiveDate> {
    let deadline = available + Duration::days(SECOND_DOWNLOAD_DAYS);
    let from = deadline - Duration::days(i64::from(warn_days));
    (today >= from && today <= deadline).then_some(deadline)
}

/// `download-window`: recipients are warned a configured number of days
/// before day 90, once per order.
pub struct DownloadWindow {
    pub(crate) notifier: Notifier,
    pub(crate) settings: Arc<Settings>,
}

impl Job for DownloadWindow {
    fn name(&self) -> &'static str {
        "download-window"
    }

    fn run(&self, ctx: &RunContext) -> Result<Progress, JobError> {
        let store = self.notifier.store();
        let (today, tz, warn) = (ctx.today(), ctx.tz, self.settings.window_warn_days);
        let mut p = Progress::default();
        let mut batch = Batch::new(store);
        for head in store.order_heads() {
            let head = head?;
            p.examined += 1;
            ctx.check_stop()?;
            let Some(av) = head.available_at else {
                continue;
            };
            if head.archived {
                continue;
            }
            let Some(deadline) = window_warning_due(local_date(av, tz), today, warn) else {
                continue;
            };
            let meta = store.order_meta(&head.so)?;
            if meta.window_warned_at.is_some() || meta.available_count == 0 {
                continue;
            }
            let now = ctx.now;
            let claim = |order: &Order, meta: &mut OrderMeta| {
                if order.archived || meta.window_warned_at.is_some() {
                    return None;
                }
                meta.window_warned_at = Some(now);
                let context = DownloadWindowContext {
                    deadline: deadline.to_string(),
                    days_left: (deadline - today).num_days(),
                };
                Some((context, "w90".to_string()))
            };
            let by = "download-window job";
            remind_recipients(&self.notifier, &head.so, by, claim, &mut p, &mut batch)?;
        }
        batch.finish()?;
        p.note = format!("{} orders warned", p.effects);
        Ok(p)
    }
}

/// The stage of a ticket's SLA at `now`: `reminder` within `before` of its
/// due time (the end of its due business day in `tz`), `overdue` after.
pub fn sla_stage(
    due: NaiveDate,
    now: DateTime<Utc>,
    before: Duration,
    tz: Tz,
) -> Option<&'static str> {
    let end = due.succ_opt()?.and_hms_opt(0, 0, 0)?;
    let end = super::schedule::place(tz, end)?;
    if now >= end {
        Some("overdue")
    } else if now >= end - before {
        Some("reminder")
    } else {
        None
    }
}

/// `sla`: reminds a ticket's team before the ticket is due and escalates
/// once it is overdue, once per ticket and stage, through the desk service
/// (team addresses, the note in the ticket).
pub struct Sla {
    pub(crate) notifier: Notifier,
    pub(crate) desk: Arc<DeskService>,
    pub(crate) settings: Arc<Settings>,
}

impl Sla {
    fn remind(&self, t: &Ticket, stage: &str) -> Result<u64, JobError> {
        let mut to: Vec<EmailAddress> = self.desk.teams().address_of(t.team).into_iter().collect();
        if stage == "overdue"
            && let Some(a) = &self.settings.sla_escalate_to
        {
            to.push(a.clone());
        }
        let context = SlaReminderContext {
            ticket: t.id.to_string(),
            team: t.team.as_str().to_string(),
            stage: stage.to_string(),
            due: t.due.to_string(),
            business_days: t.sla_business_days,
            customer: t.customer.clone(),
            subject: t.subject.clone(),
        };
        let mut sent = Vec::new();
        for addr in to {
            let mailbox = Mailbox {
                name: None,
                email: addr.clone(),
            };
            let key = format!("sla/{}/{stage}/{}", t.id, addr.key());
            let mut mail = OutgoingMail::new(&context, mailbox, Lang::En, key, "sla job");
            mail.so = t.orders.first().cloned();
            mail.in_reply_to = t.thread.first().cloned();
            mail.references = t.thread.clone();
            if matches!(self.notifier.enqueue(mail)?, EnqueueOutcome::Queued { .. }) {
                sent.push(addr.to_string());
            }
        }
        if !sent.is_empty() {
            let what = if stage == "overdue" {
                "SLA passed: escalated to"
            } else {
                "SLA reminder sent to"
            };
            self.desk.record_note(
                t.id,
                "edesk sla job",
                &format!("{what} {}", sent.join(", ")),
            )?;
        }
        Ok(sent.len() as u64)
    }
}

impl Job for Sla {
    fn name(&self) -> &'static str {
        "sla"
    }

    fn run(&self, ctx: &RunContext) -> Result<Progress, JobError> {
        let mut p = Progress::default();
        for t in self.desk.desk().open_tickets()? {
            p.examined += 1;
            if let Some(stage) = sla_stage(t.due, ctx.now, self.settings.sla_remind_before, ctx.tz)
            {
                p.effects += self.remind(&t, stage)?;
            }
        }
        p.note = format!("{} SLA mails queued", p.effects);
        Ok(p)
    }
}

/// `retention`: purges raw inbound mail, notification/job history and
/// chat transcripts past their retention. Orders and their current state are never touched, nor
/// the outbox and idempotency keys that keep a mail from going twice.
pub struct Retention {
    pub(crate) store: Store,
    pub(crate) settings: Arc<Settings>,
}

impl Job for Retention {
    fn name(&self) -> &'static str {
        "retention"
    }

    fn run(&self, ctx: &RunContext) -> Result<Progress, JobError> {
        let raw_cutoff = ctx.now - Duration::days(i64::from(self.settings.raw_mail_days));
        let hist_cutoff = ctx.now - Duration::days(i64::from(self.settings.history_days));
        let raw = self.store.mail_purge_raw_before(raw_cutoff)?;
        let history = self.store.purge_history_before(hist_cutoff)?;
        let runs = self.store.purge_job_runs_before(hist_cutoff)?;
        let chats = self
            .store
            .chat_purge_before(ChatNs::Transcript, hist_cutoff.timestamp())?;
        Ok(Progress {
            examined: 0,
            effects: (raw + history + runs + chats) as u64,
            note: format!(
                "purged raw mail of {raw} messages, {history} history lines, {runs} job runs, {chats} chat transcripts"
            ),
        })
    }
}
