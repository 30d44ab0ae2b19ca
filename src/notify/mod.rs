//! Outbound mail: templates, MIME, Order-Based Access, preferences and
//! unsubscribe, the durable outbox and its sender.
//!
//! API for the rest of the crate (inbound, desk, jobs, chat):
//! - [`Notifier::new`] once at start (loads the server key from the data dir,
//!   creating it on first start, and parses every template).
//! - [`Notifier::import_value`] / [`Notifier::import`]: order upserts; state
//!   changes (available, hold placed/released, archived, restored) queue mails.
//! - [`Notifier::release_due`]: early-ship "No" orders whose requested date came
//!   (the `release-held` job calls it).
//! - [`Notifier::archive`], [`Notifier::restore`], [`Notifier::mark_pak_registered`],
//!   [`Notifier::order_change`]: state edesk changes on an order, committed with
//!   the mails it calls for (see `lifecycle`).
//! - [`Notifier::send_oba`]: Order-Based Access fan-out, grants authorized senders.
//! - [`Notifier::enqueue`]: any kind of mail to any address through the durable
//!   outbox, e.g. an escalation acknowledgement or a team reply relay, with
//!   `AutoSubmitted::AutoReplied`, `in_reply_to` and `references` set, and an
//!   idempotency key so a re-processed inbound mail never answers twice.
//! - [`ReplyToken::mint`] / [`ReplyToken::verify`], [`ReplyToken::from_address`];
//!   `Store::order_by_token` maps a token back to (order, recipient).
//! - [`sender::Sender`]: the delivery task (SMTP with TCP_NODELAY, or `.eml` files).
#![warn(missing_docs)]

pub mod bench_sink;
pub mod cmd;
mod context;
mod events;
pub mod failures;
mod kind;
mod lifecycle;
pub mod message;
pub mod oba;
pub mod sender;
pub mod templates;
mod token;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use rand::Rng;
use serde::Serialize;
use serde_json::{Value, json};

pub use context::{
    CommandDoneContext, FaqAnswerContext, TemplateContext, TicketContext, TicketMail, hold_contact,
};
pub use kind::Kind;
pub use lifecycle::{
    ArchiveState, Audience, ChangeOutcome, DownloadWindowContext, OrderMail, PakOutcome,
    PakReminderContext, RestoreOutcome, SlaReminderContext,
};
pub use message::AutoSubmitted;
pub use oba::{Grouping, ObaError, ObaLine, ObaRequest};
pub use templates::{Rendered, TemplateError, Templates};
pub use token::{KeyError, ReplyToken, ServerKey};

use crate::config::Config;
use crate::domain::{
    EmailAddress, Lang, Mailbox, MessageId, Order, OrderId, OrderRejection, parse_order,
};
use crate::store::{
    Commit, HistoryEntry, MailRecord, OutboxItem, OutboxStatus, Store, StoreError, TokenTarget,
};

/// Why the notifier could not do what was asked. Nothing was committed for
/// the failing mail or order; the caller may retry.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A template failed to load or render.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The server key cannot be read or created.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The MIME message could not be built.
    #[error(transparent)]
    Message(#[from] message::MessageError),
    /// No order has this SO number.
    #[error("no order {0}")]
    NoOrder(OrderId),
    /// A file operation failed (data directory, `.eml` output).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An address is not valid.
    #[error(transparent)]
    Address(#[from] crate::domain::AddressError),
}

/// Mail settings the notifier needs (from `Config`).
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `mail.domain`: Message-IDs, `From`, and the `reply+`/`bounces+` addresses are in it.
    pub domain: String,
    /// `mail.from_name`: the display name of `From`.
    pub from_name: String,
    /// `mail.from_local`: the local part of `From`.
    pub from_local: String,
    /// `http.public_url` without a trailing `/`: base of unsubscribe links.
    pub public_url: String,
}

impl MailSettings {
    /// The `mail.*` settings and `http.public_url` of the configuration.
    pub fn from_config(c: &Config) -> Self {
        MailSettings {
            domain: c.mail.domain.clone(),
            from_name: c.mail.from_name.clone(),
            from_local: c.mail.from_local.clone(),
            public_url: c.http.public_url.trim_end_matches('/').to_string(),
        }
    }
}

struct Inner {
    store: Store,
    templates: Templates,
    key: ServerKey,
    settings: MailSettings,
    wake: tokio::sync::Notify,
    /// Team addresses: never suppressed automatically (see `failures`).
    protected: std::sync::RwLock<Vec<String>>,
    listener: std::sync::OnceLock<Arc<dyn failures::DeliveryListener>>,
}

/// Shared handle (cheap to clone).
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

/// A mail to any address through the outbox: the one outgoing-mail type of
/// the crate (FAQ answers, command confirmations, acknowledgements, team
/// escalations and relays, link codes…). Build it with [`OutgoingMail::new`]
/// from a typed [`TemplateContext`].
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    /// Which template set renders it.
    pub kind: Kind,
    /// The recipient (display name optional).
    pub to: Mailbox,
    /// The language to render in (French falls back to English per template).
    pub lang: Lang,
    /// The order the mail is about (its details are rendered: only for a
    /// recipient authorized to see them).
    pub so: Option<OrderId>,
    /// Kind-specific template values (`extra.*`), from a typed context.
    pub extra: Value,
    /// `In-Reply-To`: the message this one answers, if any.
    pub in_reply_to: Option<MessageId>,
    /// `References`, oldest first.
    pub references: Vec<MessageId>,
    /// The `Auto-Submitted` header (RFC 3834), from the context's kind.
    pub auto: AutoSubmitted,
    /// Same key twice → queued once.
    pub idempotency_key: String,
    /// Who asked for the mail, as the order history shows it (`edesk inbound`, `edesk chat`).
    pub requested_by: String,
}

impl OutgoingMail {
    /// A mail of `context`'s kind to `to`, answering nothing (set
    /// `in_reply_to`/`references`/`so` after for a reply in a thread).
    pub fn new<C: TemplateContext>(
        context: &C,
        to: Mailbox,
        lang: Lang,
        idempotency_key: String,
        requested_by: &str,
    ) -> OutgoingMail {
        OutgoingMail {
            kind: context.kind(),
            to,
            lang,
            so: None,
            extra: context.extra(),
            in_reply_to: None,
            references: Vec::new(),
            auto: context.auto_submitted(),
            idempotency_key,
            requested_by: requested_by.to_string(),
        }
    }
}

/// What [`Notifier::enqueue`] did with a mail; serialized with an `outcome` tag.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum EnqueueOutcome {
    /// Rendered and durably queued; the sender is woken.
    Queued {
        /// The outbox item's id (also the history entry's).
        outbox_id: u64,
        /// The mail's Message-ID.
        message_id: MessageId,
    },
    /// Not queued, but recorded in the history with the reason.
    Skipped {
        /// Why: suppressed address, or the recipient's preference.
        reason: String,
    },
    /// The idempotency key was used before: nothing new was queued.
    Duplicate,
}

/// Result of importing one batch of orders.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// SO numbers of orders that were new.
    pub imported: Vec<String>,
    /// SO numbers of orders that existed and were replaced.
    pub updated: Vec<String>,
    /// Orders that did not validate, with why; they were not stored.
    pub rejected: Vec<OrderRejection>,
    /// Mails queued for the batch.
    pub queued: usize,
    /// Mails recorded as skipped (suppression, preference, state).
    pub skipped: usize,
}

impl ImportReport {
    /// One line of counts, then one line per rejected order (CLI and job output).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "imported {}, updated {}, rejected {} ({} mails queued, {} skipped)",
            self.imported.len(),
            self.updated.len(),
            self.rejected.len(),
            self.queued,
            self.skipped
        );
        for r in &self.rejected {
            s.push_str(&format!("\n  rejected {r}"));
        }
        s
    }
}

/// One line of `history`, joined with the delivery state of its outbox item.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HistoryView {
    /// The history entry (flattened into the JSON).
    #[serde(flatten)]
    pub entry: HistoryEntry,
    /// `skipped`, `pending`, `sent`, `dead` or `bounced` (accepted, then a
    /// permanent delivery report came back).
    pub status: String,
    /// Delivery attempts so far (0 when skipped).
    pub attempts: u32,
    /// The last delivery failure, while retrying or once dead.
    pub last_error: Option<String>,
    /// When the relay accepted it.
    pub sent_at: Option<DateTime<Utc>>,
    /// A delivery report that came back after the relay accepted the mail
    /// (then `status` is `bounced` for a permanent failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bounce: Option<crate::store::BounceRecord>,
}

/// A line shown in an OBA mail: (line id, carton note, customer reference).
pub(crate) type LineNote = (String, Option<String>, Option<String>);

/// What one mail to prepare is.
pub(crate) struct MailSpec<'a> {
    pub key: String,
    pub kind: Kind,
    pub order: Option<&'a Order>,
    pub to: Mailbox,
    pub lang: Lang,
    /// Lines the mail is about (history); for OBA also the lines shown.
    pub lines: Vec<String>,
    pub line_notes: Vec<LineNote>,
    pub extra: Value,
    pub requested_by: String,
    pub skip: Option<String>,
    pub auto: AutoSubmitted,
    pub in_reply_to: Option<MessageId>,
    pub references: Vec<MessageId>,
}

impl Notifier {
    /// The notifier of the daemon or CLI: server key from the data directory
    /// (created on first start), templates from `./templates` or the embedded
    /// copy, team addresses (`desk.teams`) protected from automatic suppression.
    pub fn new(store: Store, config: &Config) -> Result<Notifier, NotifyError> {
        let key = ServerKey::load_or_create(&config.data_dir)?;
        let templates = Templates::load(None)?;
        let n = Self::from_parts(store, templates, key, MailSettings::from_config(config));
        n.set_protected(config.desk.teams.values().map(String::as_str));
        Ok(n)
    }

    /// Assembles a notifier from parts (tests, benchmarks); no address is protected.
    pub fn from_parts(
        store: Store,
        templates: Templates,
        key: ServerKey,
        settings: MailSettings,
    ) -> Notifier {
        Notifier {
            inner: Arc::new(Inner {
                store,
                templates,
                key,
                settings,
                wake: tokio::sync::Notify::new(),
                protected: std::sync::RwLock::new(Vec::new()),
                listener: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The store mails, orders and tokens are kept in.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The key reply tokens are minted under.
    pub fn key(&self) -> &ServerKey {
        &self.inner.key
    }

    /// The mail settings it was built with.
    pub fn settings(&self) -> &MailSettings {
        &self.inner.settings
    }

    /// The parsed templates.
    pub fn templates(&self) -> &Templates {
        &self.inner.templates
    }

    /// Wakes the sender (new work in the outbox).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.inner.wake.notified().await
    }

    /// The token for (order, recipient): the migrated one when the order
    /// carried it, else minted.
    pub fn token_for(&self, order: Option<&Order>, email: &EmailAddress) -> String {
        order
            .and_then(|o| o.recipients.iter().find(|r| r.email.key() == email.key()))
            .and_then(|r| r.reply_token.clone())
            .unwrap_or_else(|| {
                ReplyToken::mint(&self.inner.key, order.map(|o| &o.so), email)
                    .as_str()
                    .to_string()
            })
    }

    /// Imports orders given as JSON (one object or an array). One bad order
    /// never blocks the others.
    pub fn import_value(&self, v: &Value, requested_by: &str) -> Result<ImportReport, NotifyError> {
        let items: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        let now: DateTime<FixedOffset> = Utc::now().fixed_offset();
        let mut report = ImportReport::default();
        let mut good = Vec::new();
        for item in items {
            match parse_order(item, now) {
                Ok(o) => good.push(o),
                Err(r) => report.rejected.push(r),
            }
        }
        self.import(good, requested_by, &mut report)?;
        Ok(report)
    }

    /// Upserts validated orders and queues what their state changes call for.
    pub fn import(
        &self,
        orders: Vec<Order>,
        requested_by: &str,
        report: &mut ImportReport,
    ) -> Result<(), NotifyError> {
        self.import_in_chunks(orders, requested_by, report, IMPORT_CHUNK)
    }

    /// [`Notifier::import`] taking the import lock for `chunk` orders at a
    /// time. Within a chunk the commits are pipelined, and all of them are
    /// applied before the lock is let go, so the next chunk (and whoever
    /// takes the lock in between) plans on what they wrote.
    fn import_in_chunks(
        &self,
        orders: Vec<Order>,
        requested_by: &str,
        report: &mut ImportReport,
        chunk: usize,
    ) -> Result<(), NotifyError> {
        let today = Utc::now().date_naive();
        let store = &self.inner.store;
        let mark = store.write_mark();
        let mut orders = orders.into_iter().peekable();
        while orders.peek().is_some() {
            let part: Vec<Order> = orders.by_ref().take(chunk.max(1)).collect();
            store.exclusive(|| self.import_pipelined(part, requested_by, today, report))?;
        }
        // One flush for the batch, before anything is acknowledged.
        store.flush(mark)?;
        if report.queued > 0 {
            self.wake();
        }
        Ok(())
    }

    /// Prepares each order (render, plan) while the store applies the one
    /// before it. An order named twice in a batch waits for its first
    /// commit, so it is planned against what that one wrote.
    fn import_pipelined(
        &self,
        orders: Vec<Order>,
        requested_by: &str,
        today: NaiveDate,
        report: &mut ImportReport,
    ) -> Result<(), NotifyError> {
        let mut in_flight: Vec<crate::store::Deferred<crate::store::CommitOutcome>> = Vec::new();
        let mut sos = std::collections::HashSet::new();
        let mut result = Ok(());
        for order in orders {
            if sos.contains(&order.so) {
                wait_all(&mut in_flight, report)?;
                sos.clear();
            }
            let so = order.so.clone();
            let (existed, commit) = match self.plan_upsert(order, requested_by, today) {
                Ok(planned) => planned,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            match self.inner.store.commit_deferred(commit) {
                Ok(d) => in_flight.push(d),
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            }
            sos.insert(so.clone());
            if existed {
                report.updated.push(so.to_string());
            } else {
                report.imported.push(so.to_string());
            }
        }
        // Every queued commit is waited for, also after an error: what was
        // queued is applied, and its outcome belongs in the report.
        wait_all(&mut in_flight, report)?;
        result
    }

    /// Imports one order now (its commit applied on return, not flushed).
    fn upsert(
        &self,
        order: Order,
        requested_by: &str,
        today: NaiveDate,
        report: &mut ImportReport,
    ) -> Result<bool, NotifyError> {
        let (existed, commit) = self.plan_upsert(order, requested_by, today)?;
        let outcome = self.inner.store.commit(commit)?;
        report.queued += outcome.queued.len();
        report.skipped += outcome.skipped;
        Ok(existed)
    }

    /// What importing `order` writes: the order, its meta, its tokens and
    /// the mails its state change calls for (rendered). Whether it existed.
    fn plan_upsert(
        &self,
        mut order: Order,
        requested_by: &str,
        today: NaiveDate,
    ) -> Result<(bool, Commit), NotifyError> {
        let store = &self.inner.store;
        let prev = store.order(&order.so)?;
        let mut meta = store.order_meta(&order.so)?;
        lifecycle::carry_owned_state(prev.as_ref(), &mut order, &mut meta, Utc::now());
        if order.available_at.is_none() && !order.has_open_hold() {
            order.available_at = prev
                .as_ref()
                .and_then(|p| p.available_at)
                .or(Some(Utc::now().fixed_offset()));
        }
        let planned = events::plan(prev.as_ref(), &order, &mut meta, today);
        let now = Utc::now();
        meta.imported_at.get_or_insert(now);
        meta.updated_at = Some(now);
        let mut commit = Commit::default();
        for r in &order.recipients {
            let token = self.token_for(Some(&order), &r.email);
            commit.tokens.push((
                token,
                TokenTarget {
                    so: Some(order.so.clone()),
                    email: r.email.clone(),
                },
            ));
        }
        for id in &order.notification_ids {
            commit.message_ids.push((id.clone(), order.so.clone()));
        }
        for p in &planned {
            for r in &order.recipients {
                let spec = MailSpec {
                    key: format!("{}/{}/{}/{}", order.so, p.kind, r.email.key(), p.key_suffix),
                    kind: p.kind,
                    order: Some(&order),
                    to: Mailbox {
                        name: r.name.clone(),
                        email: r.email.clone(),
                    },
                    lang: order.lang_for(r),
                    lines: order.lines.iter().map(|l| l.line.clone()).collect(),
                    line_notes: Vec::new(),
                    extra: p.extra.clone(),
                    requested_by: requested_by.to_string(),
                    skip: p.skip.clone(),
                    auto: AutoSubmitted::AutoGenerated,
                    in_reply_to: None,
                    references: Vec::new(),
                };
                commit.mails.push(self.prepare(&spec)?);
            }
        }
        let existed = prev.is_some();
        commit.meta = Some((order.so.clone(), meta));
        commit.order = Some(order);
        Ok((existed, commit))
    }

    /// Re-evaluates orders waiting for their requested date (early ship "No")
    /// and queues the availability mails that are now due. Returns how many
    /// orders were released.
    /// Streams the orders (never all in memory) and looks at the meta only of
    /// those whose requested date has come.
    pub fn release_due(&self, today: NaiveDate) -> Result<usize, NotifyError> {
        let store = &self.inner.store;
        let mut released = 0;
        for head in store.order_heads() {
            let head = head?;
            if head.early_ship || head.requested_date.is_none_or(|d| d > today) {
                continue;
            }
            let so = head.so;
            if !store.order_meta(&so)?.early_ship_pending {
                continue;
            }
            let Some(order) = store.order(&so)? else {
                continue;
            };
            let mut report = ImportReport::default();
            let mark = store.write_mark();
            store.exclusive(|| self.upsert(order, "scheduler", today, &mut report))?;
            store.flush(mark)?;
            if report.queued > 0 {
                released += 1;
            }
        }
        if released > 0 {
            self.wake();
        }
        Ok(released)
    }

    /// Queues any kind of mail to any address.
    pub fn enqueue(&self, m: OutgoingMail) -> Result<EnqueueOutcome, NotifyError> {
        let store = &self.inner.store;
        if store.seen_key(&m.idempotency_key)? {
            return Ok(EnqueueOutcome::Duplicate);
        }
        let order =
            m.so.as_ref()
                .map(|so| store.order(so))
                .transpose()?
                .flatten();
        let spec = MailSpec {
            key: m.idempotency_key.clone(),
            kind: m.kind,
            order: order.as_ref(),
            to: m.to.clone(),
            lang: m.lang,
            lines: Vec::new(),
            line_notes: Vec::new(),
            extra: m.extra.clone(),
            requested_by: m.requested_by.clone(),
            skip: None,
            auto: m.auto,
            in_reply_to: m.in_reply_to.clone(),
            references: m.references.clone(),
        };
        let record = self.prepare(&spec)?;
        let result = match (&record.item, &record.entry.skipped) {
            (Some(item), _) => EnqueueOutcome::Queued {
                outbox_id: item.id,
                // Built by `prepare` from a MessageId: always parses.
                message_id: item.message_id.parse().map_err(
                    |e: crate::domain::MessageIdError| message::MessageError::Build(e.to_string()),
                )?,
            },
            (None, reason) => EnqueueOutcome::Skipped {
                reason: reason.clone().unwrap_or_default(),
            },
        };
        let mut commit = Commit::default();
        let token = self.token_for(order.as_ref(), &m.to.email);
        commit.tokens.push((
            token,
            TokenTarget {
                so: m.so.clone(),
                email: m.to.email.clone(),
            },
        ));
        commit.mails.push(record);
        let outcome = store.commit_durable(commit)?;
        if !outcome.duplicates.is_empty() {
            return Ok(EnqueueOutcome::Duplicate);
        }
        if !outcome.queued.is_empty() {
            self.wake();
        }
        if let EnqueueOutcome::Skipped { reason } = &result {
            self.skipped(&m, reason);
        }
        Ok(result)
    }

    /// Renders and builds one mail, or records why it is not sent.
    pub(crate) fn prepare(&self, s: &MailSpec<'_>) -> Result<MailRecord, NotifyError> {
        let id = self.inner.store.next_id()?;
        let so = s.order.map(|o| o.so.clone());
        // The history records the mail either way: sent, or skipped and why.
        let mut entry = HistoryEntry {
            id,
            so: so.clone(),
            kind: s.kind.to_string(),
            to: vec![s.to.email.to_string()],
            lines: s.lines.clone(),
            requested_by: s.requested_by.clone(),
            at: Utc::now(),
            skipped: None,
            outbox_id: None,
            message_id: None,
        };
        if let Some(reason) = self.skip_reason(s)? {
            entry.skipped = Some(reason);
            return Ok(MailRecord {
                key: s.key.clone(),
                item: None,
                entry,
            });
        }
        let item = self.outbox_item(s, id, so)?;
        entry.outbox_id = Some(id);
        entry.message_id = Some(item.message_id.clone());
        Ok(MailRecord {
            key: s.key.clone(),
            item: Some(item),
            entry,
        })
    }

    /// Why the mail is not sent: the caller's reason, a suppressed address,
    /// or (for order notifications only) the recipient's preference.
    fn skip_reason(&self, s: &MailSpec<'_>) -> Result<Option<String>, NotifyError> {
        let store = &self.inner.store;
        Ok(match &s.skip {
            Some(r) => Some(r.clone()),
            None if store.is_suppressed(&s.to.email)? => Some("suppressed address".to_string()),
            None if s.kind.is_order_notification()
                && !store.wants(&s.to.email, s.kind.as_str())? =>
            {
                Some("preference: no notifications".to_string())
            }
            None => None,
        })
    }

    /// Renders the templates and builds the message ready for the outbox.
    fn outbox_item(
        &self,
        s: &MailSpec<'_>,
        id: u64,
        so: Option<OrderId>,
    ) -> Result<OutboxItem, NotifyError> {
        let settings = &self.inner.settings;
        let token = self.token_for(s.order, &s.to.email);
        let unsubscribe = s
            .kind
            .is_order_notification()
            .then(|| format!("{}/v1/unsubscribe/{token}", settings.public_url));
        let ctx = context::build(s, &token, settings, unsubscribe.as_deref());
        let rendered = self.inner.templates.render(s.kind, s.lang, &ctx)?;
        let message_id = self.new_message_id(so.as_ref(), id)?;
        let reply_to = format!("reply+{token}@{}", settings.domain);
        let from_addr = format!("{}@{}", settings.from_local, settings.domain);
        let raw = message::build(&message::MailParts {
            from_name: &settings.from_name,
            from_addr: &from_addr,
            to: &s.to,
            reply_to: &reply_to,
            subject: &rendered.subject,
            text: &rendered.text,
            html: &rendered.html,
            lang: rendered.lang,
            message_id: &message_id,
            auto: s.auto,
            in_reply_to: s.in_reply_to.as_ref(),
            references: &s.references,
            unsubscribe_url: unsubscribe.as_deref(),
        })?;
        Ok(OutboxItem {
            id,
            key: s.key.clone(),
            so,
            kind: s.kind.to_string(),
            message_id: message_id.to_string(),
            // VERP: a bounce names the recipient's token, so it can be
            // suppressed without parsing the DSN's text.
            envelope_from: format!("bounces+{token}@{}", settings.domain),
            to: s.to.email.clone(),
            raw: String::from_utf8_lossy(&raw).into_owned(),
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_ms: crate::store::now_ms(),
            last_error: None,
            created_at: Utc::now(),
            sent_at: None,
            bounce: None,
            ticket: s.extra["ticket"].as_str().map(str::to_string),
        })
    }

    /// A fresh Message-ID for mail `id` of order `so`.
    fn new_message_id(&self, so: Option<&OrderId>, id: u64) -> Result<MessageId, NotifyError> {
        // 64 random bits: a reply that quotes one of our Message-IDs proves
        // it saw our mail (team replies, mail commands), so it must not be
        // guessable from the order number and the sequence number.
        let suffix: u64 = rand::thread_rng().r#gen();
        Ok(format!(
            "{}.{id}.{suffix:016x}@{}",
            so.map_or("x", |o| o.as_str()),
            self.inner.settings.domain
        )
        .parse()
        .map_err(|e: crate::domain::MessageIdError| message::MessageError::Build(e.to_string()))?)
    }

    /// An order's history joined with delivery results.
    pub fn history(&self, so: &OrderId) -> Result<Vec<HistoryView>, NotifyError> {
        let store = &self.inner.store;
        let mut out = Vec::new();
        for entry in store.history(so)? {
            let item = entry
                .outbox_id
                .map(|id| store.outbox_item(id))
                .transpose()?
                .flatten();
            let (status, attempts, last_error, sent_at, bounce) = match (&entry.skipped, item) {
                (Some(_), _) => ("skipped".to_string(), 0, None, None, None),
                (None, Some(i)) => (
                    match (i.status, &i.bounce) {
                        (_, Some(b)) if b.hard => "bounced",
                        (OutboxStatus::Pending, _) => "pending",
                        (OutboxStatus::Sent, _) => "sent",
                        (OutboxStatus::Dead, _) => "dead",
                    }
                    .to_string(),
                    i.attempts,
                    i.last_error,
                    i.sent_at,
                    i.bounce,
                ),
                (None, None) => ("unknown".to_string(), 0, None, None, None),
            };
            out.push(HistoryView {
                entry,
                status,
                attempts,
                last_error,
                sent_at,
                bounce,
            });
        }
        Ok(out)
    }

    /// Renders a kind for a sample order without queuing anything (previews,
    /// the render benchmark).
    pub fn render_preview(
        &self,
        kind: Kind,
        order: &Order,
        lang: Lang,
    ) -> Result<Rendered, NotifyError> {
        let r = order.recipients.first();
        let to = r.map_or_else(
            || "preview@example.com".parse::<Mailbox>(),
            |r| {
                Ok(Mailbox {
                    name: r.name.clone(),
                    email: r.email.clone(),
                })
            },
        )?;
        let spec = MailSpec {
            key: String::new(),
            kind,
            order: Some(order),
            to: to.clone(),
            lang,
            lines: Vec::new(),
            line_notes: Vec::new(),
            extra: json!({}),
            requested_by: String::new(),
            skip: None,
            auto: AutoSubmitted::AutoGenerated,
            in_reply_to: None,
            references: Vec::new(),
        };
        let token = self.token_for(Some(order), &to.email);
        let ctx = context::build(
            &spec,
            &token,
            &self.inner.settings,
            Some("https://unsubscribe.example"),
        );
        Ok(self.inner.templates.render(kind, lang, &ctx)?)
    }

    /// Unsubscribe by token: all notifications, or one kind.
    pub fn unsubscribe(
        &self,
        token: &str,
        kind: Option<Kind>,
    ) -> Result<Option<EmailAddress>, NotifyError> {
        let Some(target) = self.inner.store.order_by_token(token)? else {
            return Ok(None);
        };
        self.inner
            .store
            .set_preference(&target.email, kind.map(Kind::as_str), false)?;
        Ok(Some(target.email))
    }
}

/// Orders imported per hold of the import lock. OBA sends, lifecycle
/// changes and other imports take the same lock: a POST of 10,000 orders
/// held it for seconds, and now lets them in every 500 (a few hundred ms).
const IMPORT_CHUNK: usize = 500;

/// Opens the notifier for command-line use (no daemon).
pub fn open_for_cli(config: &Config) -> Result<Notifier, NotifyError> {
    std::fs::create_dir_all(&config.data_dir)?;
    let store = Store::open_with(&config.data_dir, &config.store.engine_settings())?;
    Notifier::new(store, config)
}

pub(crate) fn data_path(config: &Config, rel: &str) -> std::path::PathBuf {
    Path::new(&config.data_dir).join(rel)
}

#[cfg(test)]
mod tests;

/// Waits for every queued commit, adding what each queued or skipped to
/// `report`; the first failure is returned after all were waited for.
fn wait_all(
    in_flight: &mut Vec<crate::store::Deferred<crate::store::CommitOutcome>>,
    report: &mut ImportReport,
) -> Result<(), NotifyError> {
    let mut first = Ok(());
    for d in in_flight.drain(..) {
        match d.wait() {
            Ok(outcome) => {
                report.queued += outcome.queued.len();
                report.skipped += outcome.skipped;
            }
            Err(e) if first.is_ok() => first = Err(e.into()),
            Err(_) => {}
        }
    }
    first
}
