//! The inbound worker: takes each pending message from the spool, analyses
//! it (the same pure [`analyze`] as `mail inspect`), acts on the decision,
//! and records the outcome. Tickets are the desk's: the worker decides to
//! escalate or relay and hands the request to [`DeskService`]. Acting is
//! idempotent per message (outbox keys derive from the spool id; tickets
//! are found by Message-ID), so a crash between acting and recording
//! repeats nothing visible.

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::decide::{Action, Decision, analyze_received};
use super::intake::{MailState, Spool};
use super::ports::{Directory, FaqOracle};
use super::thread::NamedOrder;
use super::verify::{Connection, Verdicts, Verifier};
use crate::desk::guard::Verdict;
use crate::desk::tickets::FaqRef;
use crate::desk::{
    Acknowledge, Customer, DeskError, DeskService, Relay, TeamReply, Ticket, TicketRequest,
};
use crate::desk::{Outbox, Sent};
use crate::domain::{EmailAddress, Mailbox, MessageId, OrderId, Team};
use crate::inbound::Bounce;
use crate::inbound::command::{MailCommand, bare_subject};
use crate::notify::{CommandDoneContext, FaqAnswerContext, OutgoingMail};
use crate::store::WriteMark;

/// Why acting on a message failed.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The action failed for good: the message is marked failed and kept
    /// for an operator.
    #[error("{0}")]
    Failed(String),
    /// The store cannot answer now: the message stays pending and is
    /// analysed again later, never decided on a missing answer.
    #[error("{0}")]
    Unavailable(String),
}

impl From<DeskError> for ActionError {
    fn from(e: DeskError) -> Self {
        ActionError::Failed(e.to_string())
    }
}

/// Side effects of inbound mail other than mail and tickets (bounces and
/// mail commands), implemented over the store and the notifier.
pub trait Actions: Send + Sync {
    /// A hard bounce: stop mailing this address.
    fn suppress(&self, address: &EmailAddress, reason: &str) -> Result<(), ActionError>;
    /// The UNSUBSCRIBE command.
    fn unsubscribe(&self, address: &EmailAddress) -> Result<(), ActionError>;
    /// RESTORE: returns whether the order was archived and is now restored.
    fn restore(&self, so: &OrderId, by: &str) -> Result<bool, ActionError>;
    /// RESEND: enqueues the order's notification again for `to`, once per `key`.
    fn resend(&self, so: &OrderId, to: &EmailAddress, key: &str) -> Result<bool, ActionError>;
    /// A delivery report: record it on the mail it reports on. Returns that
    /// mail's Message-ID when one matched.
    fn bounced(
        &self,
        _mail: u64,
        _raw: &[u8],
        _bounce: &Bounce,
    ) -> Result<Option<String>, ActionError> {
        Ok(None)
    }
}

/// Why an automatic mail is sent: what to fill its template with.
enum AutoReply {
    /// The FAQ entry answering the question.
    Answer(FaqAnswerContext),
    /// A mail command's outcome.
    Confirmation(CommandDoneContext),
}

/// The inbound worker and the services it acts through.
pub struct Worker {
    /// Where pending messages are read and their outcome recorded.
    pub spool: Spool,
    /// Orders, tokens and authorized senders for the analysis.
    pub directory: Arc<dyn Directory + Send + Sync>,
    /// The FAQ as the analysis asks it.
    pub faq: Arc<dyn FaqOracle + Send + Sync>,
    /// Tickets: escalations, follow-ups, team replies.
    pub desk: Arc<DeskService>,
    /// Where the worker's own mails (FAQ answers, confirmations) go.
    pub outbox: Arc<dyn Outbox>,
    /// Bounces and mail commands (suppress, unsubscribe, restore, resend).
    pub actions: Arc<dyn Actions>,
    /// Where "reach a person" points in an FAQ answer.
    pub support_address: String,
    /// DKIM/SPF/DMARC verification, when configured: its verdicts prove a
    /// command's sender and are required of a team's reply.
    pub verifier: Option<Arc<Verifier>>,
}

/// Messages processed between two flushes. Each message makes several
/// writes that used to wait for a flush each (ticket, outbox, loop guard,
/// outcome: about five, 0.3 ms apiece); a batch shares one. Small enough
/// that a batch takes a fraction of a second and little is redone after a
/// crash.
const BATCH: usize = 64;

/// How much lower than the daemon's other threads the processing thread
/// runs (a nice increment). Accepting mail is what a sending MTA waits on;
/// processing can lag a little. With both on 2 cores, `bench intake
/// --clients 8 --messages 10000` accepted a median 4,900 messages/s with the
/// worker at the same priority and 6,500/s with it lowered, and processed
/// everything about as soon after.
const DRAIN_NICE: i32 = 10;

/// The thread the worker processes mail on. It lowers its own priority
/// once, so that under load the CPU goes first to LMTP transactions and
/// the store thread. If it cannot be started, processing runs on the
/// runtime's blocking pool at normal priority.
struct DrainThread {
    requests: Option<std::sync::mpsc::Sender<tokio::sync::oneshot::Sender<DrainResult>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The thread holds the worker, and through it the store: it must have let
/// go before the daemon exits, or the store's last handle is never dropped
/// and its final flush (of what was written behind: chat windows,
/// transcripts) never happens. It is idle when this runs (`run` awaited its
/// last drain), so the join is immediate.
impl Drop for DrainThread {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("inbound worker thread panicked");
        }
    }
}

type DrainResult = Result<usize, String>;

impl DrainThread {
    fn spawn(worker: Arc<Worker>) -> DrainThread {
        let (tx, rx) = std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<DrainResult>>();
        let spawned = std::thread::Builder::new()
            .name("edesk-inbound".into())
            .spawn(move || {
                lower_own_priority();
                while let Ok(reply) = rx.recv() {
                    let _ = reply.send(drain_catching_panics(&worker));
                }
            });
        match spawned {
            Ok(t) => DrainThread {
                requests: Some(tx),
                thread: Some(t),
            },
            Err(e) => {
                tracing::error!(error = %e, "inbound worker thread; processing on the blocking pool");
                DrainThread {
                    requests: None,
                    thread: None,
                }
            }
        }
    }

    /// One drain on the thread (or the blocking pool), awaited.
    async fn drain(&self, worker: &Arc<Worker>) -> DrainResult {
        if let Some(requests) = &self.requests {
            let (reply, answer) = tokio::sync::oneshot::channel();
            if requests.send(reply).is_ok() {
                return answer
                    .await
                    .unwrap_or_else(|_| Err("inbound worker thread ended".into()));
            }
        }
        let worker = worker.clone();
        tokio::task::spawn_blocking(move || drain_catching_panics(&worker))
            .await
            .unwrap_or_else(|e| Err(format!("inbound worker task failed: {e}")))
    }
}

/// A panic in processing is reported like an error and the thread goes on
/// (the blocking pool did the same for the spawned task).
fn drain_catching_panics(worker: &Worker) -> DrainResult {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.drain())) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("inbound worker panicked".into()),
    }
}

/// Raises this thread's nice value by [`DRAIN_NICE`]. Linux threads have
/// their own (setpriority on the thread id); elsewhere this is a no-op.
fn lower_own_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let current = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
        if let Err(e) = rustix::process::setpriority_process(Some(tid), current + DRAIN_NICE) {
            tracing::warn!(error = %e, "could not lower the inbound worker thread's priority");
        }
    }
}

/// A processed message's outcome, recorded once the batch is flushed.
struct Finished {
    id: u64,
    state: MailState,
    decision: Option<serde_json::Value>,
    error: Option<String>,
}

/// What was done with a message, stored next to it.
#[derive(Debug, Default)]
struct Outcome {
    done: Vec<String>,
    ticket: Option<String>,
    /// What was done instead of the analysis' action (a team's mail), for
    /// the stored decision.
    action: Option<serde_json::Value>,
    /// Reasons the worker adds to the analysis' (what proved, or did not
    /// prove, who wrote).
    reasons: Vec<String>,
}
impl Worker {
    /// Processes pending mail until cancelled; wakes on `new_mail` or every
    /// few seconds (in case a notification was missed). The processing runs
    /// on a thread of its own at a lower priority (see [`DrainThread`]).
    pub async fn run(self: Arc<Self>, new_mail: Arc<Notify>, token: CancellationToken) {
        let thread = DrainThread::spawn(self.clone());
        loop {
            match thread.drain(&self).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(n, "inbound messages processed"),
                Err(e) => tracing::error!(error = %e, "inbound worker"),
            }
            tokio::select! {
                _ = token.cancelled() => return,
                _ = new_mail.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            }
        }
    }

    /// Processes every pending message once, in order, [`BATCH`] at a
    /// time; returns how many were gone through (the count stops where the
    /// store asked the worker to wait).
    pub fn drain(&self) -> Result<usize, super::intake::IntakeError> {
        let ids = self.spool.pending()?;
        let mut through = 0;
        for batch in ids.chunks(BATCH) {
            let (n, stopped) = self.drain_batch(batch)?;
            through += n;
            if stopped {
                break;
            }
        }
        Ok(through)
    }

    /// Processes `ids` with their writes applied but not flushed one by
    /// one, flushes once, and only then records their outcomes (flushed
    /// again, so `drain` returns with everything on disk). A crash before
    /// the first flush loses the batch's effects but not its messages,
    /// which stay pending; a crash between the flushes processes them
    /// again, which repeats nothing (outbox keys, ticket references).
    /// Returns how many were gone through and whether the batch stopped.
    fn drain_batch(&self, ids: &[u64]) -> Result<(usize, bool), super::intake::IntakeError> {
        let mark = self.spool.write_mark();
        let mut finished = Vec::new();
        let end = self
            .spool
            .deferring_flushes(|| self.process_batch(ids, mark, &mut finished));
        self.spool.flush(mark)?;
        self.spool.deferring_flushes(|| {
            finished.into_iter().try_for_each(|f| {
                self.spool
                    .finish_blocking(f.id, f.state, f.decision, f.error)
            })
        })?;
        self.spool.flush(mark)?;
        end.map(|n| (n, n < ids.len()))
    }

    /// Processes `ids` in order until one cannot be decided now; pushes
    /// each outcome to `finished`. Returns how many were gone through.
    fn process_batch(
        &self,
        ids: &[u64],
        mark: WriteMark,
        finished: &mut Vec<Finished>,
    ) -> Result<usize, super::intake::IntakeError> {
        for (done, &id) in ids.iter().enumerate() {
            if let Some(reason) = self.spool.paused() {
                tracing::warn!(%reason, "store not writable: mail stays pending");
                return Ok(done);
            }
            // The store failed during the batch: its earlier writes may be
            // gone, and no later message may be decided without them.
            if self.spool.failed_since(mark) {
                tracing::warn!("store failed during a batch: mail stays pending");
                return Ok(done);
            }
            let span = tracing::info_span!("mail", id);
            let _enter = span.enter();
            if !self.spool.claim(id)? {
                // Another daemon sharing the store has it (or finished it).
                continue;
            }
            match self.handle(id)? {
                Some(f) => finished.push(f),
                None => return Ok(done),
            }
        }
        Ok(ids.len())
    }

    /// Processes one claimed message: its outcome to record, or `None`
    /// when it must stay pending (the order directory is unavailable).
    fn handle(&self, id: u64) -> Result<Option<Finished>, super::intake::IntakeError> {
        let (state, decision, error) = match self.spool.raw(id)? {
            None => (
                MailState::Failed,
                None,
                Some("raw bytes missing".to_string()),
            ),
            Some(raw) => match self.process(id, &raw) {
                Ok((d, outcome)) => {
                    let j = self.decision_json(id, &d, &outcome);
                    tracing::info!(kind = d.kind.as_str(), route = %d.route, done = ?outcome.done, "processed");
                    (MailState::Processed, Some(j), None)
                }
                Err(ActionError::Unavailable(reason)) => {
                    tracing::warn!(%reason, "order directory unavailable: mail stays pending");
                    return Ok(None);
                }
                Err(e) => {
                    tracing::error!(error = %e, "processing failed; kept for an operator");
                    (MailState::Failed, None, Some(e.to_string()))
                }
            },
        };
        Ok(Some(Finished {
            id,
            state,
            decision,
            error,
        }))
    }

    /// The decision stored with a processed message: the analysis' view,
    /// what was done and the ticket.
    fn decision_json(&self, id: u64, d: &Decision, outcome: &Outcome) -> serde_json::Value {
        let mut j = serde_json::to_value(d.inspect_json(&format!("mail:{id}"))).unwrap_or_default();
        j["action"] = match &outcome.action {
            Some(a) => a.clone(),
            None => serde_json::to_value(&d.action).unwrap_or_default(),
        };
        if let Some(reasons) = j["reasons"].as_array_mut() {
            reasons.extend(outcome.reasons.iter().map(|r| json!(r)));
        }
        j["done"] = json!(outcome.done);
        j["ticket"] = json!(outcome.ticket);
        self.note_reused_id(id, &mut j);
        j
    }

    /// Says in the reasons when this message reused the Message-ID of a
    /// different, earlier one (stored separately, see `store::mail`).
    fn note_reused_id(&self, id: u64, decision: &mut serde_json::Value) {
        let Ok(Some(meta)) = self.spool.meta(id) else {
            return;
        };
        if let (Some(first), Some(reasons)) = (
            meta.reuses_message_id_of,
            decision["reasons"].as_array_mut(),
        ) {
            reasons.push(json!(format!(
                "message-id: already used by a different message (mail {first}); stored and handled as its own message"
            )));
        }
    }

    fn process(&self, id: u64, raw: &[u8]) -> Result<(Decision, Outcome), ActionError> {
        let mail_from = self.envelope_sender(id);
        let verified = self.verify(raw, mail_from.as_deref());
        let decision = analyze_received(
            raw,
            self.directory.as_ref(),
            self.faq.as_ref(),
            verified.as_ref(),
            mail_from.as_deref(),
        )
        .map_err(|e| ActionError::Unavailable(e.to_string()))?;
        let mut outcome = Outcome::default();
        let thread_ids = MessageId::parse_all(decision.thread_ids.iter().map(String::as_str));
        let sender = decision.sender.clone().unwrap_or_default();

        // A team's mail is never a customer's request: its answer to an
        // escalation is relayed, anything else is for a person.
        if let Some(team) = self.desk.teams().team_of(&sender) {
            self.team_mail(id, &decision, team, &thread_ids, &mut outcome)?;
            return Ok((decision, outcome));
        }

        if let Some(b) = &decision.bounce {
            match self.actions.bounced(id, raw, b)? {
                Some(mid) => outcome.done.push(format!("bounce recorded on {mid}")),
                None => outcome.done.push("bounce matches no mail we sent".into()),
            }
        }
        match &decision.action {
            Action::Ignore => outcome.done.push("ignored".into()),
            Action::Suppress { address } => {
                let email: EmailAddress = address.parse().map_err(failed)?;
                self.actions.suppress(&email, "hard bounce")?;
                outcome.done.push(format!("suppressed {address}"));
            }
            Action::Answer { id: entry } => {
                let answer = || self.faq_answer(entry, &decision);
                self.auto_reply(&decision, id, "answer", answer, &thread_ids, &mut outcome)?;
            }
            Action::Escalate { team } => {
                let team = team.team().unwrap_or(Team::EdeliverySupport);
                let request = ticket_request(id, &decision, team, thread_ids);
                let done = self.desk.open_or_follow_up(request)?;
                outcome.ticket = Some(done.ticket.id.to_string());
                outcome.done.extend(done.done);
            }
            Action::Command(cmd) => self.command(id, &decision, cmd, &thread_ids, &mut outcome)?,
            Action::UnprovenCommand(cmd) => {
                outcome
                    .done
                    .push(format!("command {} not run: sender not proven", cmd.name()));
                let so = match cmd {
                    MailCommand::Unsubscribe => None,
                    MailCommand::Restore(so) | MailCommand::Resend(so) => {
                        so.as_ref().map(ToString::to_string)
                    }
                };
                let reply = || {
                    let mut c = CommandDoneContext::new(cmd.name(), so, false);
                    c.unproven = true;
                    Ok(AutoReply::Confirmation(c))
                };
                self.auto_reply(
                    &decision,
                    id,
                    "explanation",
                    reply,
                    &thread_ids,
                    &mut outcome,
                )?;
            }
        }
        Ok((decision, outcome))
    }

    /// The message's DKIM/SPF/DMARC verdicts, when verification is
    /// configured (SPF from the envelope sender and our MTA's Received line).
    fn verify(&self, raw: &[u8], mail_from: Option<&str>) -> Option<Verdicts> {
        let verifier = self.verifier.as_ref()?;
        verifier.verify(raw, &Connection::from_received(raw, mail_from))
    }

    /// The envelope sender the MTA gave for mail `id` (`Some("")` for `<>`).
    fn envelope_sender(&self, id: u64) -> Option<String> {
        self.spool
            .meta(id)
            .ok()
            .flatten()
            .and_then(|m| m.envelope.mail_from)
    }

    /// The FAQ answer mail's values for `entry` in the message's language.
    fn faq_answer(&self, entry: &str, d: &Decision) -> Result<AutoReply, ActionError> {
        let text = self
            .faq
            .entry(entry, d.lang)
            .ok_or_else(|| ActionError::Failed(format!("no FAQ entry {entry}")))?;
        Ok(AutoReply::Answer(FaqAnswerContext {
            question: text.question,
            text: text.answer,
            support: self.support_address.clone(),
            subject: bare_subject(&d.subject).trim().to_string(),
        }))
    }

    /// Sends an automatic reply in the sender's thread when loop safety
    /// allows it; `reply` gives its values once it is to be sent.
    fn auto_reply(
        &self,
        d: &Decision,
        id: u64,
        what: &str,
        reply: impl FnOnce() -> Result<AutoReply, ActionError>,
        thread_ids: &[MessageId],
        outcome: &mut Outcome,
    ) -> Result<Option<MessageId>, ActionError> {
        let Some(sender) = d.sender.clone() else {
            outcome.done.push(format!("no {what}: no sender address"));
            return Ok(None);
        };
        if !d.should_reply {
            outcome.done.push(format!("no {what}: machine mail"));
            return Ok(None);
        }
        // An address edesk cannot write to (an internationalized local
        // part, RFC 6531, arrives fine over SMTPUTF8) means no automatic
        // mail, not a failed message.
        let to: Mailbox = match sender.parse() {
            Ok(to) => to,
            Err(e) => {
                outcome
                    .done
                    .push(format!("no {what}: cannot mail {sender}: {e}"));
                return Ok(None);
            }
        };
        let verdict = self
            .desk
            .guard()
            .admit(to.email.as_str(), Utc::now())
            .map_err(failed)?;
        if verdict != Verdict::Allowed {
            outcome
                .done
                .push(format!("no {what}: {}", verdict.reason()));
            return Ok(None);
        }
        let key = format!("inbound:{id}:{what}");
        let mut mail = match &reply()? {
            AutoReply::Answer(c) => OutgoingMail::new(c, to, d.lang, key, VIA),
            AutoReply::Confirmation(c) => OutgoingMail::new(c, to, d.lang, key, VIA),
        };
        // Order details only for a sender authorized to see them.
        mail.so = d
            .authorized
            .then(|| {
                d.store_orders()
                    .first()
                    .and_then(NamedOrder::order_id)
                    .cloned()
            })
            .flatten();
        mail.in_reply_to = own_message_id(d);
        mail.references = thread_ids.to_vec();
        mail.references.extend(own_message_id(d));
        match self.outbox.send(mail).map_err(failed)? {
            Sent::Queued(mid) => {
                outcome.done.push(format!("{what} sent to {sender}"));
                Ok(Some(mid))
            }
            Sent::Skipped(reason) => {
                outcome.done.push(format!("no {what}: {reason}"));
                Ok(None)
            }
        }
    }

    /// A reply typed by a team member: see [`DeskService::answer`].
    pub fn team_reply(
        &self,
        ticket: crate::desk::TicketId,
        by: &str,
        text: &str,
        note: bool,
    ) -> Result<Ticket, ActionError> {
        Ok(self.desk.answer(ticket, by, text, note)?)
    }

    /// Mail from a team's address. Relayed to the customer only when it
    /// answers the escalation edesk sent to that address (a From line
    /// proves nothing, nor does a Message-ID the customer's side knows);
    /// otherwise a note on the ticket it is about, or held for a person.
    /// Never acknowledged, never a ticket with the team as customer.
    fn team_mail(
        &self,
        id: u64,
        d: &Decision,
        team: Team,
        thread_ids: &[MessageId],
        outcome: &mut Outcome,
    ) -> Result<(), ActionError> {
        let sender = d.sender.clone().unwrap_or_default();
        let answered = match sender.parse::<EmailAddress>() {
            Ok(addr) => self.desk.answered_escalation(&addr, thread_ids)?,
            Err(_) => None,
        };
        // With verification configured, the team's domain must also sign.
        let sender_domain = sender.rsplit_once('@').map_or("", |(_, dom)| dom);
        let aligned = self.verifier.is_none()
            || d.verified
                .as_ref()
                .and_then(Verdicts::aligned_pass)
                .is_some_and(|dom| dom.eq_ignore_ascii_case(sender_domain));
        match answered {
            Some((ticket, mid)) if aligned => {
                outcome.reasons.push(format!(
                    "team reply: answers the escalation {mid} sent to {sender} for ticket {}",
                    ticket.id
                ));
                outcome.action =
                    Some(json!({"action": "relay", "ticket": ticket.id.to_string()}));
                return self.relay(id, d, team, ticket, outcome);
            }
            Some((ticket, mid)) => outcome.reasons.push(format!(
                "team mail: answers the escalation {mid} of ticket {} but DKIM/DMARC does not pass aligned with {sender_domain}; not relayed",
                ticket.id
            )),
            None => outcome.reasons.push(format!(
                "team mail: from {team}'s address but answers no escalation edesk sent to it; not relayed to any customer, no acknowledgement"
            )),
        }
        outcome.action = Some(json!({"action": "team_mail"}));
        tracing::warn!(%sender, %team, "team mail that answers no escalation: not relayed");
        let Some(ticket) = self.desk.ticket_for_thread(thread_ids)? else {
            outcome
                .done
                .push("team mail held for a person: no ticket, nothing sent".into());
            return Ok(());
        };
        let by = format!("{team} <{sender}> (unverified team mail, not relayed)");
        self.desk
            .record_team_mail(ticket.id, &by, &d.new_text, &format!("mail:{id}"))?;
        outcome.ticket = Some(ticket.id.to_string());
        outcome.done.push(format!(
            "team mail recorded as a note on {}, not relayed",
            ticket.id
        ));
        Ok(())
    }

    /// A team's answer to a ticket's escalation: the desk relays it.
    fn relay(
        &self,
        id: u64,
        d: &Decision,
        team: Team,
        ticket: Ticket,
        outcome: &mut Outcome,
    ) -> Result<(), ActionError> {
        outcome.ticket = Some(ticket.id.to_string());
        let reply = TeamReply {
            ticket: ticket.id,
            by: format!("{team} <{}>", d.sender.clone().unwrap_or_default()),
            text: d.new_text.clone(),
            key: Some(format!("inbound:{id}:relay")),
        };
        match self.desk.relay_team_reply(reply)? {
            Relay::Sent { ticket, .. } | Relay::Recorded(ticket) => outcome
                .done
                .push(format!("team reply relayed to {}", ticket.customer)),
            Relay::NotSent { reason, .. } => outcome
                .done
                .push(format!("team reply not relayed: {reason}")),
        }
        Ok(())
    }

    fn command(
        &self,
        id: u64,
        d: &Decision,
        cmd: &MailCommand,
        thread_ids: &[MessageId],
        outcome: &mut Outcome,
    ) -> Result<(), ActionError> {
        let sender = d.sender.clone().unwrap_or_default();
        let email = || sender.parse::<EmailAddress>().map_err(failed);
        // The decision always names the order a command runs on.
        let order = |so: &Option<OrderId>| so.clone().ok_or_else(|| failed("no order named"));
        let (name, so, ok) = match cmd {
            MailCommand::Unsubscribe => {
                self.actions.unsubscribe(&email()?)?;
                ("unsubscribe", None, true)
            }
            MailCommand::Restore(so) => {
                let so = order(so)?;
                let ok = self.actions.restore(&so, &sender)?;
                ("restore", Some(so), ok)
            }
            MailCommand::Resend(so) => {
                let so = order(so)?;
                let key = format!("inbound:{id}:resend");
                let ok = self.actions.resend(&so, &email()?, &key)?;
                ("resend", Some(so), ok)
            }
        };
        outcome.done.push(format!(
            "command {name}{} {}",
            so.as_ref().map(|s| format!(" {s}")).unwrap_or_default(),
            if ok { "done" } else { "had nothing to do" }
        ));
        let reply = || {
            Ok(AutoReply::Confirmation(CommandDoneContext::new(
                name,
                so.as_ref().map(ToString::to_string),
                ok,
            )))
        };
        self.auto_reply(d, id, "confirmation", reply, thread_ids, outcome)?;
        Ok(())
    }
}

/// What the order history says asked for the worker's mails.
const VIA: &str = "edesk inbound";

fn failed(e: impl std::fmt::Display) -> ActionError {
    ActionError::Failed(e.to_string())
}

/// The message's own Message-ID, when it is a valid one.
fn own_message_id(d: &Decision) -> Option<MessageId> {
    d.message_id.as_deref().and_then(|m| m.parse().ok())
}

/// The decision's reasons with what proved the sender (or did not), for
/// the person reading the ticket.
fn with_proof(d: &Decision) -> Vec<String> {
    let mut reasons = d.reasons.clone();
    if let Some(reason) = d.auth.as_ref().map(|p| p.reason())
        && !reasons.contains(&reason)
    {
        reasons.push(reason);
    }
    reasons
}

/// The escalation of message `id` as the desk takes it.
fn ticket_request(id: u64, d: &Decision, team: Team, thread: Vec<MessageId>) -> TicketRequest {
    let sender = d.sender.clone().unwrap_or_default();
    let customer = match sender.parse::<EmailAddress>() {
        Ok(email) => Customer::Mail(email),
        Err(_) => Customer::Unreachable(sender),
    };
    TicketRequest {
        key: format!("inbound:{id}"),
        reference: Some(format!("mail:{id}")),
        customer,
        lang: d.lang,
        subject: d.subject.clone(),
        text: d.new_text.clone(),
        team,
        orders: d
            .orders
            .iter()
            .filter_map(NamedOrder::order_id)
            .cloned()
            .collect(),
        // Every order named reaches the ticket: a PO the store does not
        // know is kept as written for a person to look up.
        purchase_orders: d
            .orders
            .iter()
            .filter_map(NamedOrder::po_number)
            .map(ToString::to_string)
            .collect(),
        // Orders the store does not know have no details to leak: only a
        // stranger to a known order gets nothing automatic.
        authorized: !d.stranger_to_order(),
        faq: d.faq.as_ref().and_then(|f| {
            f.question.as_ref().map(|q| FaqRef {
                id: f.id.clone().unwrap_or_default(),
                question: q.clone(),
                confidence: f.confidence,
            })
        }),
        reasons: with_proof(d),
        message_id: own_message_id(d),
        thread,
        ticket: None,
        acknowledge: if d.should_reply {
            Acknowledge::ByMail
        } else {
            Acknowledge::Withhold("machine mail".into())
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::desk::guard::AutoMailGuard;
    use crate::desk::tickets::EventKind;
    use crate::desk::{Calendar, Desk, OutboxError, Teams, TicketStatus};
    use crate::domain::Lang;
    use crate::inbound::intake::Envelope;
    use crate::inbound::ports::MemWorld;
    use crate::notify::Kind;

    #[derive(Default)]
    struct Recorder {
        sent: Mutex<Vec<OutgoingMail>>,
        suppressed: Mutex<Vec<String>>,
        unsubscribed: Mutex<Vec<String>>,
    }

    impl Actions for Recorder {
        fn suppress(&self, address: &EmailAddress, _reason: &str) -> Result<(), ActionError> {
            self.suppressed.lock().unwrap().push(address.to_string());
            Ok(())
        }
        fn unsubscribe(&self, address: &EmailAddress) -> Result<(), ActionError> {
            self.unsubscribed.lock().unwrap().push(address.to_string());
            Ok(())
        }
        fn restore(&self, _so: &OrderId, _by: &str) -> Result<bool, ActionError> {
            Ok(true)
        }
        fn resend(
            &self,
            _so: &OrderId,
            _to: &EmailAddress,
            _key: &str,
        ) -> Result<bool, ActionError> {
            Ok(true)
        }
    }

    impl Outbox for Recorder {
        fn send(&self, mail: OutgoingMail) -> Result<Sent, OutboxError> {
            let mid = format!(
                "<{}@edesk.example.com>",
                mail.idempotency_key.replace(':', ".")
            );
            self.sent.lock().unwrap().push(mail);
            Ok(Sent::Queued(mid.parse().unwrap()))
        }
    }

    /// Who a recorded mail is to.
    fn to(m: &OutgoingMail) -> &str {
        m.to.email.as_str()
    }

    /// The Message-ID the recorder gave the last mail of `kind`.
    fn mid_of(rec: &Recorder, kind: Kind) -> String {
        let sent = rec.sent.lock().unwrap();
        let m = sent.iter().rev().find(|m| m.kind == kind).unwrap();
        format!(
            "<{}@edesk.example.com>",
            m.idempotency_key.replace(':', ".")
        )
    }

    struct OneTeam;
    impl Teams for OneTeam {
        fn team_of(&self, address: &str) -> Option<Team> {
            (address == "exportops@cisco.example").then_some(Team::Exportops)
        }
        fn address_of(&self, team: Team) -> Option<EmailAddress> {
            (team == Team::Exportops).then(|| "exportops@cisco.example".parse().unwrap())
        }
    }

    const WORLD: &str = r#"{
      "own_domain": "edesk.example.com",
      "orders": [{"so": "10458321", "po": "ACME-PO-7781", "lang": "en",
                  "open_holds": ["export"],
                  "recipients": [{"email": "j.harper@acme.example.com", "lang": "en", "reply_token": "tok1"}]}],
      "faq": [{"id": "dl-policy", "lang": "en", "question": "What is the software download policy?",
               "keywords": ["download", "policy"], "answer": "Download once, then within 90 days."}]
    }"#;

    fn worker(per_hour: usize) -> (tempfile::TempDir, Arc<Worker>, Arc<Recorder>) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let rec = Arc::new(Recorder::default());
        let w = worker_on(&store, per_hour, rec.clone(), rec.clone());
        (dir, Arc::new(w), rec)
    }

    /// A worker over `store` whose mails go to `outbox` and whose other
    /// actions `rec` records.
    fn worker_on(
        store: &crate::store::Store,
        per_hour: usize,
        rec: Arc<Recorder>,
        outbox: Arc<dyn Outbox>,
    ) -> Worker {
        let world = Arc::new(MemWorld::from_json(WORLD).unwrap());
        Worker {
            spool: Spool::open(store),
            directory: world.clone(),
            faq: world,
            desk: Arc::new(DeskService::new(
                Desk::open(store, Calendar::default()),
                AutoMailGuard::open(store, "edesk.example.com", per_hour),
                outbox.clone(),
                Arc::new(OneTeam),
            )),
            outbox,
            actions: rec,
            support_address: "support@cisco.example".into(),
            verifier: None,
        }
    }

    /// Records like [`Recorder`]; at its `nth` mail the store counts as
    /// failed and reopened (write marks taken before are stale), as when
    /// an I/O error strikes in the middle of a batch.
    struct FailingAt {
        rec: Arc<Recorder>,
        store: crate::store::Store,
        nth: usize,
        seen: std::sync::atomic::AtomicUsize,
    }

    impl Outbox for FailingAt {
        fn send(&self, mail: OutgoingMail) -> Result<Sent, OutboxError> {
            let n = self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if n == self.nth {
                self.store.simulate_failure();
            }
            self.rec.send(mail)
        }
    }

    fn escalation(from: &str, mid: &str) -> Vec<u8> {
        mail(
            from,
            mid,
            "",
            "Export hold on SO 10458321",
            "Our order 10458321 is stuck on an export hold.",
        )
    }

    /// The processing thread runs behind LMTP, and only it: the nice
    /// value is the thread's own, not the process's.
    /// The processing thread has let go of the worker (and the store) once
    /// its handle is dropped: the store's final flush at exit depends on it.
    #[test]
    fn the_processing_thread_lets_go_of_the_worker_when_dropped() {
        let (_dir, w, _) = worker(100);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let thread = DrainThread::spawn(w.clone());
        assert!(rt.block_on(thread.drain(&w)).is_ok());
        let weak = Arc::downgrade(&w);
        drop(w);
        assert!(weak.upgrade().is_some(), "the thread still holds it");
        drop(thread);
        assert!(
            weak.upgrade().is_none(),
            "released when the handle is dropped"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_processing_thread_lowers_its_own_priority_only() {
        let own = || rustix::process::getpriority_process(Some(rustix::thread::gettid()));
        let before = own().unwrap();
        let lowered = std::thread::spawn(move || {
            lower_own_priority();
            own().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, (before + DRAIN_NICE).min(19));
        assert_eq!(
            own().unwrap(),
            before,
            "the calling thread kept its priority"
        );
    }
    #[test]
    fn a_batch_of_mail_shares_its_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let rec = Arc::new(Recorder::default());
        let w = worker_on(&store, 100, rec.clone(), rec.clone());
        for i in 0..20 {
            let raw = escalation(
                "j.harper@acme.example.com",
                &format!("f{i}@acme.example.com"),
            );
            w.spool
                .accept_blocking(&raw, Envelope::new("test"))
                .unwrap();
        }
        let before = store.health().flushes;
        assert_eq!(w.drain().unwrap(), 20);
        let flushes = store.health().flushes - before;
        // Each message's ticket, loop-guard count and outcome waited for a
        // flush of their own before (three or more per message); a batch
        // now flushes twice, plus the periodic flush of a slow build.
        assert!(flushes < 20, "{flushes} flushes for 20 messages");
        assert!(w.spool.pending().unwrap().is_empty());
        assert_eq!(w.desk.desk().list().unwrap().len(), 20);
    }

    #[test]
    fn a_batch_whose_flush_fails_marks_nothing_and_is_redone_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let rec = Arc::new(Recorder::default());
        let failing = Arc::new(FailingAt {
            rec: rec.clone(),
            store: store.clone(),
            nth: 3,
            seen: Default::default(),
        });
        let w = worker_on(&store, 100, rec.clone(), failing);
        let ids: Vec<u64> = (0..4)
            .map(|i| {
                let raw = escalation(&format!("c{i}@acme.example.com"), &format!("r{i}@x"));
                let accepted = w.spool.accept_blocking(&raw, Envelope::new("test"));
                accepted.unwrap().id()
            })
            .collect();
        // The store "failed" while the third message was handled: the
        // batch's flush reports it, no message is marked processed (what
        // they did may be lost) and the fourth is not even started.
        assert!(w.drain().is_err());
        assert_eq!(w.spool.pending().unwrap(), ids);
        assert_eq!(rec.sent.lock().unwrap().len(), 3);
        // Processed again: what survived is found, nothing is done twice.
        assert_eq!(w.drain().unwrap(), 4);
        assert!(w.spool.pending().unwrap().is_empty());
        for id in &ids {
            assert_eq!(
                w.spool.meta(*id).unwrap().unwrap().state,
                MailState::Processed
            );
        }
        let tickets = w.desk.desk().list().unwrap();
        assert_eq!(tickets.len(), 4, "one ticket per message");
        for t in &tickets {
            let mails = t
                .events
                .iter()
                .filter(|e| e.kind == EventKind::CustomerMail);
            assert_eq!(mails.count(), 1, "{t:?}");
        }
        let sent = rec.sent.lock().unwrap();
        let keys: std::collections::HashSet<_> =
            sent.iter().map(|m| m.idempotency_key.clone()).collect();
        assert_eq!(keys.len(), sent.len(), "no mail handed over twice");
        assert_eq!(sent.len(), 4);
    }

    fn mail(from: &str, mid: &str, extra: &str, subject: &str, body: &str) -> Vec<u8> {
        format!(
            "From: {from}\r\nTo: support@edesk.example.com\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
        )
        .into_bytes()
    }

    fn deliver(w: &Worker, raw: &[u8]) -> u64 {
        let id = w
            .spool
            .accept_blocking(raw, Envelope::new("test"))
            .unwrap()
            .id();
        w.drain().unwrap();
        id
    }

    #[test]
    fn confident_faq_question_is_answered_in_thread() {
        let (_d, w, rec) = worker(5);
        let id = deliver(
            &w,
            &mail(
                "ana@example.org",
                "q1@example.org",
                "",
                "download policy",
                "What is the download policy for my software?",
            ),
        );
        let sent = rec.sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(to(&sent[0]), "ana@example.org");
        assert_eq!(sent[0].kind, Kind::FaqAnswer);
        assert_eq!(
            sent[0].extra["question"],
            "What is the software download policy?"
        );
        assert_eq!(sent[0].extra["text"], "Download once, then within 90 days.");
        assert_eq!(sent[0].extra["support"], "support@cisco.example");
        assert_eq!(
            sent[0].in_reply_to.as_ref().map(MessageId::bare),
            Some("q1@example.org")
        );
        let meta = w.spool.meta(id).unwrap().unwrap();
        assert_eq!(meta.state, MailState::Processed);
        assert_eq!(meta.decision.unwrap()["route"], "faq");
    }

    /// A person's mail without Message-ID or Date is handled like any
    /// other: answered from the FAQ, or escalated with an acknowledgement,
    /// under a synthetic id; the stored reasons say what was missing.
    #[test]
    fn mail_without_message_id_or_date_is_answered_or_escalated() {
        let (_d, w, rec) = worker(5);
        let bare = |from: &str, subject: &str, body: &str| {
            format!(
                "From: {from}\r\nTo: support@edesk.example.com\r\nSubject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
            )
            .into_bytes()
        };
        let id = deliver(
            &w,
            &bare(
                "ana@example.org",
                "download policy",
                "What is the download policy for my software?",
            ),
        );
        {
            let sent = rec.sent.lock().unwrap();
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].kind, Kind::FaqAnswer);
            assert_eq!(to(&sent[0]), "ana@example.org");
        }
        let meta = w.spool.meta(id).unwrap().unwrap();
        assert_eq!(meta.state, MailState::Processed);
        let decision = meta.decision.unwrap();
        assert_eq!(decision["route"], "faq");
        assert!(
            decision["message_id"]
                .as_str()
                .is_some_and(|m| m.starts_with("synthetic.")),
            "{decision}"
        );
        let reasons = decision["reasons"].to_string();
        assert!(
            reasons.contains("no Message-ID") && reasons.contains("no Date"),
            "{reasons}"
        );
        deliver(
            &w,
            &bare(
                "j.harper@acme.example.com",
                "Export hold on SO 10458321",
                "Our order 10458321 is stuck on an export hold, can you release it?",
            ),
        );
        let tickets = w.desk.desk().list().unwrap();
        assert_eq!(tickets.len(), 1);
        assert!(
            tickets[0]
                .reasons
                .iter()
                .any(|r| r.contains("no Message-ID")),
            "{:?}",
            tickets[0].reasons
        );
        let sent = rec.sent.lock().unwrap();
        assert!(
            sent.iter()
                .any(|m| to(m) == "j.harper@acme.example.com" && m.kind == Kind::EscalationAck)
        );
        assert!(sent.iter().any(|m| m.kind == Kind::TeamEscalation));
    }

    /// A person's mail whose From line names them but has no address is a
    /// person's mail: a ticket for a person with the name they gave, the
    /// team told, nothing automatic sent back (there is nowhere to send
    /// it), even for a question the FAQ answers or a mail command.
    #[test]
    fn mail_from_a_name_without_address_goes_to_a_person() {
        let (_d, w, rec) = worker(5);
        let nameonly = |mid: &str, subject: &str, body: &str| {
            format!(
                "From: Sylvie Bernard\r\nTo: support@edesk.example.com\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
            )
            .into_bytes()
        };
        deliver(
            &w,
            &nameonly(
                "n1@atelier.example",
                "download policy",
                "What is the download policy for my software?",
            ),
        );
        deliver(
            &w,
            &nameonly("n2@atelier.example", "UNSUBSCRIBE", "UNSUBSCRIBE"),
        );
        let tickets = w.desk.desk().list().unwrap();
        assert_eq!(tickets.len(), 2, "{tickets:?}");
        for t in &tickets {
            assert_eq!(t.customer, "Sylvie Bernard");
            assert!(
                t.reasons.iter().any(|r| r.contains("no address")),
                "{:?}",
                t.reasons
            );
        }
        let sent = rec.sent.lock().unwrap();
        assert!(
            sent.iter().all(|m| m.kind == Kind::TeamEscalation),
            "only a team is mailed: {:?}",
            sent.iter().map(|m| (to(m), m.kind)).collect::<Vec<_>>()
        );
    }

    /// Every order the customer names reaches the ticket: the store's, SO
    /// numbers it does not know, and a PO it does not know as written; a
    /// later mail in the thread adds the orders it names.
    #[test]
    fn every_order_named_reaches_the_ticket() {
        let (_d, w, rec) = worker(5);
        deliver(
            &w,
            include_bytes!("../../tests/fixtures/mail/outlook-en-severalorders.eml"),
        );
        let tickets = w.desk.desk().list().unwrap();
        assert_eq!(tickets.len(), 1, "{:?}", rec.sent.lock().unwrap());
        let t = &tickets[0];
        let so = |s: &str| s.parse::<OrderId>().unwrap();
        assert_eq!(t.orders, [so("10458321"), so("61200459"), so("61200460")]);
        assert_eq!(t.purchase_orders, ["4500099887"]);
        let shown = crate::desk::cmd::show(t);
        assert!(
            shown.contains("orders: 10458321, 61200459, 61200460, PO 4500099887"),
            "{shown}"
        );
        // Why it was escalated says which orders edesk does not know.
        assert!(
            t.reasons.iter().any(|r| r
                .contains("not in the store, kept as written: 61200459, 61200460, PO 4500099887")),
            "{:?}",
            t.reasons
        );
        // The customer writes again in the thread about one more order.
        deliver(
            &w,
            &mail(
                "j.harper@acme.example.com",
                "more-1@acme.example.com",
                "In-Reply-To: <PR3P195MB0712C9D8E7F6A5B4@PR3P195MB0712.EURP195.PROD.OUTLOOK.COM>\r\n",
                "RE: Export hold - SO# 10458321 and two more orders",
                "Sorry, there is a third one: order 61200461, PO 4500099888.",
            ),
        );
        let t = w.desk.desk().get(t.id).unwrap();
        assert_eq!(w.desk.desk().list().unwrap().len(), 1);
        assert!(t.orders.contains(&so("61200461")), "{:?}", t.orders);
        assert_eq!(t.purchase_orders, ["4500099887", "4500099888"]);
    }

    #[test]
    fn escalation_opens_a_ticket_notifies_the_team_and_relays_its_reply() {
        let (_d, w, rec) = worker(5);
        deliver(
            &w,
            &mail(
                "j.harper@acme.example.com",
                "q2@acme.example.com",
                "",
                "Export hold on SO 10458321",
                "Our order 10458321 is stuck on an export hold, can you release it?",
            ),
        );
        let tickets = w.desk.desk().list().unwrap();
        assert_eq!(tickets.len(), 1, "{:?}", rec.sent.lock().unwrap());
        let t = &tickets[0];
        assert_eq!(t.team, Team::Exportops);
        assert_eq!(t.orders, vec!["10458321".parse::<OrderId>().unwrap()]);
        {
            let sent = rec.sent.lock().unwrap();
            let kinds: Vec<_> = sent.iter().map(|m| (to(m), m.kind)).collect();
            assert_eq!(sent.len(), 2, "{kinds:?}");
            assert!(
                sent.iter()
                    .any(|m| to(m) == "exportops@cisco.example" && m.kind == Kind::TeamEscalation)
            );
            assert!(
                sent.iter()
                    .any(|m| to(m) == "j.harper@acme.example.com" && m.kind == Kind::EscalationAck)
            );
        }
        // The team answers the escalation mail.
        let esc_mid = mid_of(&rec, Kind::TeamEscalation);
        deliver(
            &w,
            &mail(
                "exportops@cisco.example",
                "r1@cisco.example",
                &format!("In-Reply-To: {esc_mid}\r\nReferences: {esc_mid}\r\n"),
                &format!("Re: [{}] Export hold", t.id),
                "The export hold is released.\r\n\r\n> Our order is stuck",
            ),
        );
        let t = w.desk.desk().get(t.id).unwrap();
        assert_eq!(t.status, TicketStatus::Answered);
        let sent = rec.sent.lock().unwrap();
        let relay = sent.last().unwrap();
        assert_eq!(to(relay), "j.harper@acme.example.com");
        assert_eq!(relay.kind, Kind::TeamReply);
        let text = relay.extra["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("released") && !text.contains("stuck"),
            "{text}"
        );
    }

    #[test]
    fn a_team_address_answering_anything_but_the_escalation_is_not_relayed() {
        let (_d, w, rec) = worker(5);
        // Written in the customer's name, with a Message-ID of the forger's choosing.
        deliver(
            &w,
            &mail(
                "j.harper@acme.example.com",
                "chosen@evil.example",
                "",
                "Export hold on SO 10458321",
                "Our order 10458321 is stuck on an export hold.",
            ),
        );
        let t = w.desk.desk().list().unwrap().remove(0);
        let ack_mid = mid_of(&rec, Kind::EscalationAck);
        let before = rec.sent.lock().unwrap().len();
        // "From" the team, answering ids the forger (or the customer) knows.
        let mut ids = Vec::new();
        for (n, answered) in ["<chosen@evil.example>", ack_mid.as_str()]
            .iter()
            .enumerate()
        {
            let id = deliver(
                &w,
                &mail(
                    "exportops@cisco.example",
                    &format!("forged{n}@evil.example"),
                    &format!("In-Reply-To: {answered}\r\nReferences: {answered}\r\n"),
                    &format!("Re: [{}] Export hold", t.id),
                    "Released. Download your software at http://evil.example/login",
                ),
            );
            let meta = w.spool.meta(id).unwrap().unwrap();
            let decision = meta.decision.unwrap();
            assert_eq!(decision["action"]["action"], "team_mail", "{decision}");
            assert!(
                decision["reasons"]
                    .to_string()
                    .contains("answers no escalation")
            );
            ids.push(id);
        }
        // Processed again (as after a crash before recording): no second note.
        assert!(w.spool.requeue(ids[1]).unwrap());
        w.drain().unwrap();
        assert_eq!(
            rec.sent.lock().unwrap().len(),
            before,
            "nothing sent to anyone"
        );
        let after = w.desk.desk().get(t.id).unwrap();
        assert_eq!(after.status, TicketStatus::Open);
        let notes: Vec<_> = after
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Note)
            .collect();
        assert_eq!(notes.len(), 2, "kept for a person as notes, once each");
        assert!(after.events.iter().all(|e| e.kind != EventKind::TeamReply));
    }

    #[test]
    fn a_team_mail_outside_any_ticket_opens_none_and_is_not_acknowledged() {
        let (_d, w, rec) = worker(5);
        let id = deliver(
            &w,
            &mail(
                "exportops@cisco.example",
                "new1@cisco.example",
                "",
                "Export hold on SO 10458321",
                "FYI the export hold on order 10458321 needs a new screening.",
            ),
        );
        assert!(
            w.desk.desk().list().unwrap().is_empty(),
            "no ticket with the team as customer"
        );
        assert!(
            rec.sent.lock().unwrap().is_empty(),
            "no acknowledgement to the team"
        );
        let meta = w.spool.meta(id).unwrap().unwrap();
        let done = meta.decision.unwrap()["done"].to_string();
        assert!(done.contains("held for a person"), "{done}");
        // Processed again after a crash: still nothing.
        assert!(w.spool.requeue(id).unwrap());
        w.drain().unwrap();
        assert!(w.desk.desk().list().unwrap().is_empty());
    }

    #[test]
    fn a_forged_from_unsubscribe_changes_nothing_and_says_how_to_do_it() {
        let (_d, w, rec) = worker(5);
        deliver(
            &w,
            &mail(
                "j.harper@acme.example.com",
                "u1@evil.example",
                "",
                "stop",
                "UNSUBSCRIBE",
            ),
        );
        assert!(rec.unsubscribed.lock().unwrap().is_empty(), "not run");
        {
            let sent = rec.sent.lock().unwrap();
            assert_eq!(sent.len(), 1);
            assert_eq!(to(&sent[0]), "j.harper@acme.example.com");
            assert_eq!(sent[0].kind, Kind::CommandDone);
            assert_eq!(sent[0].extra["unproven"], true);
        }
        // Sent to the recipient's own reply token: run.
        deliver(
            &w,
            &mail(
                "j.harper@acme.example.com",
                "u2@acme.example.com",
                "Cc: reply+tok1@edesk.example.com\r\n",
                "stop",
                "UNSUBSCRIBE",
            ),
        );
        assert_eq!(
            *rec.unsubscribed.lock().unwrap(),
            vec!["j.harper@acme.example.com".to_string()]
        );
    }

    /// A worker whose verifier knows DKIM keys of the team's and the
    /// customer's domains (and nothing else: no DNS here).
    fn verifying_worker() -> (
        tempfile::TempDir,
        Arc<Worker>,
        Arc<Recorder>,
        Vec<u8>,
        Vec<u8>,
    ) {
        use crate::inbound::verify::tests::dkim_key;
        use crate::inbound::verify::{Records, VerifyMode};
        let (d, w, rec) = worker(5);
        let records = Records::default();
        let (team_key, n1, t1) = dkim_key("cisco.example");
        let (cust_key, n2, t2) = dkim_key("acme.example.com");
        records.add(&n1, &t1).unwrap();
        records.add(&n2, &t2).unwrap();
        let verifier = Verifier::new(VerifyMode::Records, records, "edesk.example.com")
            .unwrap()
            .map(Arc::new);
        let mut w = Arc::try_unwrap(w).ok().unwrap();
        w.verifier = verifier;
        (d, Arc::new(w), rec, team_key, cust_key)
    }

    #[test]
    fn with_verification_a_team_reply_must_also_be_signed_by_the_team_domain() {
        use crate::inbound::verify::tests::sign;
        let (_d, w, rec, team_key, _) = verifying_worker();
        deliver(
            &w,
            &mail(
                "j.harper@acme.example.com",
                "q-dkim@acme.example.com",
                "",
                "Export hold on SO 10458321",
                "Our order 10458321 is stuck on an export hold.",
            ),
        );
        let t = w.desk.desk().list().unwrap().remove(0);
        let esc = mid_of(&rec, Kind::TeamEscalation);
        let before = rec.sent.lock().unwrap().len();
        let reply = |mid: &str| {
            String::from_utf8(mail(
                "exportops@cisco.example",
                mid,
                &format!("In-Reply-To: {esc}\r\n"),
                "Re: escalation",
                "The export hold is released.",
            ))
            .unwrap()
        };
        // The right In-Reply-To but no signature of cisco.example: held.
        let id = deliver(&w, reply("unsigned@cisco.example").as_bytes());
        assert_eq!(rec.sent.lock().unwrap().len(), before);
        let decision = w.spool.meta(id).unwrap().unwrap().decision.unwrap();
        assert_eq!(decision["action"]["action"], "team_mail");
        assert!(
            decision["reasons"]
                .to_string()
                .contains("DKIM/DMARC does not pass")
        );
        assert_eq!(decision["auth"]["verified"]["dkim"], json!([]));
        // Signed by the team's domain: relayed.
        let signed = sign(&team_key, "cisco.example", &reply("signed@cisco.example"));
        let id = deliver(&w, signed.as_bytes());
        let decision = w.spool.meta(id).unwrap().unwrap().decision.unwrap();
        assert_eq!(
            decision["auth"]["verified"]["dkim"][0]["result"], "pass",
            "{decision}"
        );
        assert_eq!(rec.sent.lock().unwrap().len(), before + 1);
        assert_eq!(
            w.desk.desk().get(t.id).unwrap().status,
            TicketStatus::Answered
        );
    }

    #[test]
    fn an_aligned_dkim_pass_proves_a_commands_sender() {
        use crate::inbound::verify::tests::sign;
        let (_d, w, rec, team_key, cust_key) = verifying_worker();
        let raw = String::from_utf8(mail(
            "j.harper@acme.example.com",
            "u-dkim@acme.example.com",
            "",
            "stop",
            "UNSUBSCRIBE",
        ))
        .unwrap();
        // Signed by another domain: not proven.
        deliver(&w, sign(&team_key, "cisco.example", &raw).as_bytes());
        assert!(rec.unsubscribed.lock().unwrap().is_empty());
        // Signed by the sender's domain: run.
        let id = deliver(
            &w,
            sign(
                &cust_key,
                "acme.example.com",
                &raw.replace("u-dkim", "u-dkim2"),
            )
            .as_bytes(),
        );
        assert_eq!(rec.unsubscribed.lock().unwrap().len(), 1);
        let decision = w.spool.meta(id).unwrap().unwrap().decision.unwrap();
        assert_eq!(decision["auth"]["proof"], "authenticated", "{decision}");
        assert_eq!(decision["auth"]["domain"], "acme.example.com");
    }

    #[test]
    fn notes_stay_internal_and_typed_replies_are_relayed() {
        let (_d, w, rec) = worker(5);
        deliver(
            &w,
            &mail(
                "j.harper@acme.example.com",
                "q9@acme.example.com",
                "",
                "Export hold on SO 10458321",
                "Our order 10458321 is stuck on an export hold.",
            ),
        );
        let t = w.desk.desk().list().unwrap().remove(0);
        let before = rec.sent.lock().unwrap().len();
        w.team_reply(t.id, "ops-jane", "checked with compliance", true)
            .unwrap();
        assert_eq!(
            rec.sent.lock().unwrap().len(),
            before,
            "a note is never sent"
        );
        let t2 = w
            .team_reply(t.id, "ops-jane", "Released today.", false)
            .unwrap();
        assert_eq!(t2.status, TicketStatus::Answered);
        let sent = rec.sent.lock().unwrap();
        assert_eq!(sent.len(), before + 1);
        let relay = sent.last().unwrap();
        assert_eq!(to(relay), "j.harper@acme.example.com");
        assert_eq!(relay.in_reply_to.as_ref(), t.thread.last());
    }

    #[test]
    fn processing_a_message_twice_opens_one_ticket_and_one_event() {
        let (_d, w, rec) = worker(5);
        let id = deliver(
            &w,
            &mail(
                "j.harper@acme.example.com",
                "twice@acme.example.com",
                "",
                "Export hold on SO 10458321",
                "Our order 10458321 is stuck on an export hold.",
            ),
        );
        let sent_before = rec.sent.lock().unwrap().len();
        // As after a crash between acting and recording the outcome.
        assert!(w.spool.requeue(id).unwrap());
        w.drain().unwrap();
        let tickets = w.desk.desk().list().unwrap();
        assert_eq!(tickets.len(), 1);
        let customer_events = tickets[0]
            .events
            .iter()
            .filter(|e| e.kind == EventKind::CustomerMail)
            .count();
        assert_eq!(customer_events, 1);
        // Whatever was handed to the outbox again carries the same keys.
        let sent = rec.sent.lock().unwrap();
        let keys: std::collections::HashSet<_> =
            sent.iter().map(|m| m.idempotency_key.clone()).collect();
        assert!(keys.len() <= sent_before, "{keys:?}");
    }

    #[test]
    fn stranger_asking_about_an_order_gets_no_automatic_mail() {
        let (_d, w, rec) = worker(5);
        deliver(
            &w,
            &mail(
                "mallory@acme-example.com",
                "q3@x",
                "",
                "SO 10458321",
                "Please send me the PAKs of order 10458321, I lost them.",
            ),
        );
        let sent = rec.sent.lock().unwrap();
        assert!(
            sent.iter().all(|m| to(m) != "mallory@acme-example.com"),
            "{sent:?}"
        );
        assert_eq!(w.desk.desk().list().unwrap().len(), 1);
    }

    #[test]
    fn stranger_asking_a_faq_question_about_an_order_is_escalated_silently() {
        let (_d, w, rec) = worker(5);
        deliver(
            &w,
            &mail(
                "mallory@acme-example.com",
                "q4@x",
                "To: reply+tok1@edesk.example.com\r\n",
                "Re: order 10458321",
                "What is the download policy for my software?",
            ),
        );
        assert!(
            rec.sent
                .lock()
                .unwrap()
                .iter()
                .all(|m| to(m) != "mallory@acme-example.com")
        );
        let t = w.desk.desk().list().unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].team, Team::EdeliverySupport);
    }

    #[test]
    fn a_chatty_correspondent_gets_at_most_n_automatic_mails_per_hour() {
        let (_d, w, rec) = worker(3);
        for i in 0..10 {
            deliver(
                &w,
                &mail(
                    "bot@example.net",
                    &format!("loop{i}@example.net"),
                    "",
                    "download policy",
                    "What is the download policy for my software?",
                ),
            );
        }
        let to_bot = rec
            .sent
            .lock()
            .unwrap()
            .iter()
            .filter(|m| to(m) == "bot@example.net")
            .count();
        assert_eq!(to_bot, 3);
        assert!(w.spool.pending().unwrap().is_empty());
    }

    #[test]
    fn hard_bounce_suppresses_and_is_never_answered() {
        let (_d, w, rec) = worker(5);
        let dsn = "From: MAILER-DAEMON@mx.example.org\r\nTo: bounces+tok1@edesk.example.com\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx.example.org>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\nFinal-Recipient: rfc822; j.harper@acme.example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n";
        deliver(&w, dsn.as_bytes());
        assert!(rec.sent.lock().unwrap().is_empty());
        assert_eq!(
            *rec.suppressed.lock().unwrap(),
            vec!["j.harper@acme.example.com".to_string()]
        );
    }

    /// A directory whose store fails: every lookup is an error.
    struct BrokenStore;
    impl crate::inbound::ports::Directory for BrokenStore {
        fn order_by_token(
            &self,
            _: &str,
        ) -> Result<Option<crate::inbound::ports::OrderRef>, crate::inbound::ports::DirectoryError>
        {
            Err(crate::inbound::ports::DirectoryError(
                "store: disk on fire".into(),
            ))
        }
        fn order_by_message_id(
            &self,
            t: &str,
        ) -> Result<Option<crate::inbound::ports::OrderRef>, crate::inbound::ports::DirectoryError>
        {
            self.order_by_token(t)
        }
        fn order_exists(
            &self,
            t: &OrderId,
        ) -> Result<Option<crate::inbound::ports::OrderRef>, crate::inbound::ports::DirectoryError>
        {
            self.order_by_token(t.as_str())
        }
        fn order_by_po(
            &self,
            t: &crate::domain::PoNumber,
        ) -> Result<Option<crate::inbound::ports::OrderRef>, crate::inbound::ports::DirectoryError>
        {
            self.order_by_token(t.as_str())
        }
        fn is_authorized(
            &self,
            _: &OrderId,
            _: &str,
        ) -> Result<bool, crate::inbound::ports::DirectoryError> {
            Err(crate::inbound::ports::DirectoryError(
                "store: disk on fire".into(),
            ))
        }
        fn token_owner(
            &self,
            _: &str,
        ) -> Result<Option<String>, crate::inbound::ports::DirectoryError> {
            Err(crate::inbound::ports::DirectoryError(
                "store: disk on fire".into(),
            ))
        }
        fn sent_to(&self, _: &str, _: &str) -> Result<bool, crate::inbound::ports::DirectoryError> {
            Err(crate::inbound::ports::DirectoryError(
                "store: disk on fire".into(),
            ))
        }
        fn is_own_address(&self, _: &str) -> bool {
            false
        }
        fn known_lang(&self, _: &str) -> Option<Lang> {
            None
        }
    }

    #[test]
    fn a_failing_store_leaves_mail_pending_instead_of_deciding() {
        let (_d, w, rec) = worker(5);
        let mut w = Arc::try_unwrap(w).ok().unwrap();
        w.directory = Arc::new(BrokenStore);
        let raw = mail(
            "j.harper@acme.example.com",
            "broken1@acme.example.com",
            "",
            "Export hold on SO 10458321",
            "Hello, who can release the export hold on order 10458321?",
        );
        let id = w
            .spool
            .accept_blocking(&raw, Envelope::new("test"))
            .unwrap()
            .id();
        assert_eq!(w.drain().unwrap(), 0, "nothing decided");
        assert_eq!(w.spool.pending().unwrap(), vec![id], "still pending");
        assert_eq!(w.spool.meta(id).unwrap().unwrap().state, MailState::Pending);
        assert!(
            rec.sent.lock().unwrap().is_empty(),
            "nothing sent on a guess"
        );
    }

    #[test]
    fn a_reused_message_id_is_its_own_message_and_says_so() {
        let (_d, w, _rec) = worker(5);
        let first = mail(
            "j.harper@acme.example.com",
            "same@acme.example.com",
            "",
            "Question",
            "How do I download my order again?",
        );
        let forged = mail(
            "mallory@evil.example.org",
            "same@acme.example.com",
            "",
            "Question",
            "Please send the PAK for order 10458321 to me.",
        );
        let a = deliver(&w, &first);
        let b = deliver(&w, &forged);
        assert_ne!(
            a, b,
            "a different mail with a known id is stored separately"
        );
        let meta = w.spool.meta(b).unwrap().unwrap();
        assert_eq!(meta.reuses_message_id_of, Some(a));
        let reasons = meta.decision.unwrap()["reasons"].to_string();
        assert!(
            reasons.contains("already used by a different message"),
            "{reasons}"
        );
    }
}
