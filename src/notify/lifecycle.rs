//! Order state that edesk changes on its own, with the mails each change
//! calls for: archive and restore, PAKs marked registered, and the
//! reminders of the jobs module. One primitive, [`Notifier::order_change`],
//! reads the order and its meta, lets the caller change them, and commits
//! the new state together with the mails it queued, so a crash never leaves
//! a state change without its mail or a mail without its state change (and
//! a second run finds the state changed and queues nothing).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{AutoSubmitted, Kind, MailSpec, Notifier, NotifyError};
use crate::domain::{EmailAddress, Mailbox, Order, OrderId};
use crate::store::{Commit, OrderMeta};

/// Who a mail of an order change goes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Audience {
    /// Every recipient of the order, each in their language.
    Recipients,
    /// One address (the person who asked), in the order's language unless
    /// they are a recipient with their own.
    One(EmailAddress),
}

/// A mail an order change queues.
#[derive(Debug, Clone)]
pub struct OrderMail {
    /// Which template.
    pub kind: Kind,
    /// Who receives it.
    pub to: Audience,
    /// Template values (`extra.*`).
    pub extra: Value,
    /// Makes the idempotency key (`SO/kind/address/suffix`) unique per
    /// occurrence: the same suffix twice queues once.
    pub key_suffix: String,
}

/// What [`Notifier::order_change`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChangeOutcome {
    /// Mails queued.
    pub queued: usize,
    /// Mails recorded as skipped (suppressed address, preference).
    pub skipped: usize,
    /// Mails whose idempotency key was committed before.
    pub duplicates: usize,
    /// Addresses a mail was queued for.
    pub notified: Vec<String>,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum RestoreOutcome {
    /// The order was archived and is downloadable again; `notified` got the
    /// `order_restored` mail.
    Restored {
        /// When it was restored.
        restored_at: DateTime<Utc>,
        /// Addresses the `order_restored` mail was queued for.
        notified: Vec<String>,
    },
    /// The order is not archived: nothing to do.
    NotArchived,
    /// No order has this SO number.
    NoOrder,
}

/// What marking the PAKs registered did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PakOutcome {
    /// Marked now; the PAK reminders stop.
    Marked,
    /// Marked before (by edesk or the import): nothing changed.
    AlreadyRegistered,
    /// No order has this SO number.
    NoOrder,
}

/// The archive state of an order, as pages and the API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchiveState {
    /// Visible but not downloadable.
    pub archived: bool,
    /// When edesk archived it or first saw it archived; `None` unless archived.
    pub archived_at: Option<DateTime<Utc>>,
    /// Who archived it (`import` when the import said so); `None` unless archived.
    pub archived_by: Option<String>,
    /// When it was last restored, if ever.
    pub restored_at: Option<DateTime<Utc>>,
    /// Who restored it last (the requester as given).
    pub restored_by: Option<String>,
}

impl ArchiveState {
    /// From the order and its meta.
    pub fn of(order: &Order, meta: &OrderMeta) -> ArchiveState {
        ArchiveState {
            archived: order.archived,
            archived_at: meta.archived_at,
            archived_by: meta.archived_by.clone(),
            restored_at: meta.restored_at,
            restored_by: meta.restored_by.clone(),
        }
    }
}

/// The part of an import that edesk owns once it changed it: the archive
/// state after an archive or restore by edesk, PAK registration once marked.
/// Called by the import before it plans its mails.
pub(crate) fn carry_owned_state(
    prev: Option<&Order>,
    order: &mut Order,
    meta: &mut OrderMeta,
    now: DateTime<Utc>,
) {
    if let Some(p) = prev
        && meta.archive_owned
    {
        order.archived = p.archived;
    }
    if order.archived && meta.archived_at.is_none() {
        meta.archived_at = Some(now);
        meta.archived_by = Some("import".into());
    } else if !order.archived {
        meta.archived_at = None;
        meta.archived_by = None;
    }
    if order.pak_registered == Some(true) && meta.pak_registered_at.is_none() {
        meta.pak_registered_at = Some(now);
    }
    if meta.pak_registered_at.is_some() && order.pak_registered.is_some() {
        order.pak_registered = Some(true);
    }
}

impl Notifier {
    /// Reads order `so` and its meta, lets `change` modify them and say which
    /// mails the change calls for (`None`: nothing to do, nothing written),
    /// and commits state and mails as one unit. Not flushed: callers take a
    /// [`crate::store::Store::write_mark`] and flush before acknowledging
    /// (a job flushes once per batch); [`Notifier::order_change_durable`]
    /// does both. `None` when there is no such order.
    pub fn order_change<F>(
        &self,
        so: &OrderId,
        requested_by: &str,
        change: F,
    ) -> Result<Option<ChangeOutcome>, NotifyError>
    where
        F: FnOnce(&mut Order, &mut OrderMeta) -> Option<Vec<OrderMail>>,
    {
        let store = &self.inner.store;
        store.exclusive(|| {
            let Some(mut order) = store.order(so)? else {
                return Ok(None);
            };
            let mut meta = store.order_meta(so)?;
            let Some(mails) = change(&mut order, &mut meta) else {
                return Ok(Some(ChangeOutcome::default()));
            };
            meta.updated_at = Some(Utc::now());
            let mut commit = Commit::default();
            let mut notified = Vec::new();
            for m in &mails {
                for to in audience(&order, &m.to) {
                    let spec = MailSpec {
                        key: format!(
                            "{}/{}/{}/{}",
                            order.so,
                            m.kind,
                            to.email.key(),
                            m.key_suffix
                        ),
                        kind: m.kind,
                        order: Some(&order),
                        lang: order
                            .recipients
                            .iter()
                            .find(|r| r.email.key() == to.email.key())
                            .map_or(order.lang, |r| order.lang_for(r)),
                        to,
                        lines: order.lines.iter().map(|l| l.line.clone()).collect(),
                        line_notes: Vec::new(),
                        extra: m.extra.clone(),
                        requested_by: requested_by.to_string(),
                        skip: None,
                        auto: AutoSubmitted::AutoGenerated,
                        in_reply_to: None,
                        references: Vec::new(),
                    };
                    let record = self.prepare(&spec)?;
                    if record.item.is_some() {
                        notified.push(spec.to.email.to_string());
                    }
                    commit.mails.push(record);
                }
            }
            commit.meta = Some((order.so.clone(), meta));
            commit.order = Some(order);
            let outcome = store.commit(commit)?;
            let dup = outcome.duplicates.len();
            if !outcome.queued.is_empty() {
                self.wake();
            }
            Ok(Some(ChangeOutcome {
                queued: outcome.queued.len(),
                skipped: outcome.skipped,
                duplicates: dup,
                notified,
            }))
        })
    }

    /// [`Notifier::order_change`], durable on return.
    pub fn order_change_durable<F>(
        &self,
        so: &OrderId,
        requested_by: &str,
        change: F,
    ) -> Result<Option<ChangeOutcome>, NotifyError>
    where
        F: FnOnce(&mut Order, &mut OrderMeta) -> Option<Vec<OrderMail>>,
    {
        let store = &self.inner.store;
        let mark = store.write_mark();
        let out = self.order_change(so, requested_by, change)?;
        store.flush(mark)?;
        Ok(out)
    }

    /// Archives an available order (visible, not downloadable) and tells its
    /// recipients once. `false` when it was archived already (or missing).
    /// Not flushed (see [`Notifier::order_change`]).
    pub fn archive(&self, so: &OrderId, now: DateTime<Utc>, by: &str) -> Result<bool, NotifyError> {
        let mut done = false;
        self.order_change(so, by, |order, meta| {
            if order.archived {
                return None;
            }
            order.archived = true;
            meta.archived_at = Some(now);
            meta.archived_by = Some(by.to_string());
            meta.archive_owned = true;
            meta.event_seq += 1;
            done = true;
            Some(vec![OrderMail {
                kind: Kind::OrderArchived,
                to: Audience::Recipients,
                extra: json!({}),
                key_suffix: format!("e{}", meta.event_seq),
            }])
        })?;
        Ok(done)
    }

    /// Brings an archived order back (downloadable again) and says so to
    /// the requester: the `order_restored` mail goes to `requester` when it
    /// is an address allowed to see the order (a recipient or an OBA grant),
    /// else to the order's recipients. Durable on return. Restoring an order
    /// that is not archived does nothing, so two requests restore it once.
    pub fn restore(&self, so: &OrderId, requester: &str) -> Result<RestoreOutcome, NotifyError> {
        let store = &self.inner.store;
        let asker: Option<EmailAddress> = requester.parse().ok();
        let authorized = match &asker {
            Some(a) => store.is_authorized_sender(so, a)?,
            None => false,
        };
        let now = Utc::now();
        let mut restored = false;
        let outcome = self.order_change_durable(so, requester, |order, meta| {
            if !order.archived {
                return None;
            }
            order.archived = false;
            meta.archived_at = None;
            meta.archived_by = None;
            meta.restored_at = Some(now);
            meta.restored_by = Some(requester.to_string());
            meta.archive_owned = true;
            meta.event_seq += 1;
            restored = true;
            let to = match asker {
                Some(a) if authorized => Audience::One(a),
                _ => Audience::Recipients,
            };
            Some(vec![OrderMail {
                kind: Kind::OrderRestored,
                to,
                extra: json!({}),
                key_suffix: format!("e{}", meta.event_seq),
            }])
        })?;
        Ok(match outcome {
            None => RestoreOutcome::NoOrder,
            Some(_) if !restored => RestoreOutcome::NotArchived,
            Some(o) => RestoreOutcome::Restored {
                restored_at: now,
                notified: o.notified,
            },
        })
    }

    /// Marks the order's PAKs registered: PAK reminders stop. Durable.
    pub fn mark_pak_registered(&self, so: &OrderId, by: &str) -> Result<PakOutcome, NotifyError> {
        let mut marked = false;
        let out = self.order_change_durable(so, by, |order, meta| {
            if meta.pak_registered_at.is_some() {
                return None;
            }
            meta.pak_registered_at = Some(Utc::now());
            order.pak_registered = Some(true);
            marked = true;
            Some(Vec::new())
        })?;
        Ok(match out {
            None => PakOutcome::NoOrder,
            Some(_) if marked => PakOutcome::Marked,
            Some(_) => PakOutcome::AlreadyRegistered,
        })
    }

    /// The archive state of an order (`None`: no such order).
    pub fn archive_state(&self, so: &OrderId) -> Result<Option<ArchiveState>, NotifyError> {
        let store = &self.inner.store;
        let Some(order) = store.order(so)? else {
            return Ok(None);
        };
        Ok(Some(ArchiveState::of(&order, &store.order_meta(so)?)))
    }
}

/// The mailboxes an audience stands for.
fn audience(order: &Order, a: &Audience) -> Vec<Mailbox> {
    match a {
        Audience::Recipients => order
            .recipients
            .iter()
            .map(|r| Mailbox {
                name: r.name.clone(),
                email: r.email.clone(),
            })
            .collect(),
        Audience::One(email) => {
            let name = order
                .recipients
                .iter()
                .find(|r| r.email.key() == email.key())
                .and_then(|r| r.name.clone());
            vec![Mailbox {
                name,
                email: email.clone(),
            }]
        }
    }
}

/// `sla_reminder`: a ticket's team is told its answer is due soon
/// (`stage` = `reminder`) or overdue (`overdue`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlaReminderContext {
    /// `T-000042`.
    pub ticket: String,
    /// The team's route name (`exportops`).
    pub team: String,
    /// `reminder` or `overdue`.
    pub stage: String,
    /// The due business day (YYYY-MM-DD).
    pub due: String,
    /// The ticket's SLA in business days.
    pub business_days: u32,
    /// The customer as the ticket shows them (address or `platform:user`).
    pub customer: String,
    /// The ticket's subject.
    pub subject: String,
}

/// `pak_reminder`: which reminder this is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PakReminderContext {
    /// 1-based.
    pub reminder: u32,
    /// At most this many are sent.
    pub reminders_max: u32,
}

/// `download_window_closing`: the last day of the second-download window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DownloadWindowContext {
    /// YYYY-MM-DD.
    pub deadline: String,
    /// Days from today to the deadline.
    pub days_left: i64,
}

/// The reminders edesk sends on its own schedule: generated by edesk for
/// a person, not answers to someone who wrote (RFC 3834 `auto-generated`).
macro_rules! scheduled_reminder_contexts {
    ($($context:ty => $kind:expr),+ $(,)?) => {$(
        impl super::TemplateContext for $context {
            fn kind(&self) -> Kind {
                $kind
            }

            fn auto_submitted(&self) -> AutoSubmitted {
                AutoSubmitted::AutoGenerated
            }
        }
    )+};
}

scheduled_reminder_contexts! {
    SlaReminderContext => Kind::SlaReminder,
    PakReminderContext => Kind::PakReminder,
    DownloadWindowContext => Kind::DownloadWindowClosing,
}

impl OrderMail {
    /// A mail of `context`'s kind to `to`, keyed by `key_suffix`.
    pub fn of<C: super::TemplateContext>(context: &C, to: Audience, key_suffix: String) -> Self {
        OrderMail {
            kind: context.kind(),
            to,
            extra: context.extra(),
            key_suffix,
        }
    }
}
