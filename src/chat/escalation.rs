//! `escalate`: a desk ticket routed like mail (the same routing table,
//! fed with the text, the holds and PIDs of orders the user may see, and
//! the closest FAQ entry's team), carrying the conversation's transcript.
//! Then the rules that follow a ticket: the bot is silent in the
//! conversation once a team member answered, until the ticket is closed,
//! and team answers are relayed back into the chat.

use std::sync::OnceLock;

use regex::Regex;

use super::ChatError;
use super::bots::Platform;
use super::ports::Escalation;
use super::service::{ChatService, Delivery, Incoming, Opened, Said, TicketLink};
use super::texts;
use crate::desk::routing::{self, Route, RoutingInput};
use crate::desk::tickets::{ChatUser, EventKind, FaqRef};
use crate::desk::{TicketId, TicketStatus};
use crate::domain::{Lang, OrderId, Team};
use crate::store::{ChatKey, ChatNs};

/// Consecutive absent ticket numbers after which no newer ticket is looked for.
const POST_GAP: u32 = 8;

/// How a ticket shows in a team channel: who, the subject, the first message.
fn opened(t: &crate::desk::Ticket) -> Opened {
    let first = t.events.first().map(|e| e.text.as_str()).unwrap_or("");
    let text: String = first.chars().take(300).collect();
    Opened {
        ticket: t.id,
        team: t.team,
        summary: format!("{} — {}\n{}", t.customer, t.subject, text),
    }
}

fn so_numbers(text: &str) -> Vec<OrderId> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let Some(re) = RE
        .get_or_init(|| Regex::new(r"(?i)(?:\bSO\s*#?\s*|#|\b)(\d{8,10})\b").ok())
        .as_ref()
    else {
        return Vec::new();
    };
    let mut out: Vec<OrderId> = Vec::new();
    for c in re.captures_iter(text) {
        if let Some(so) = c.get(1).and_then(|m| m.as_str().parse::<OrderId>().ok())
            && !out.contains(&so)
        {
            out.push(so);
        }
    }
    out
}

/// Facts about the orders a user may see, for routing.
#[derive(Default)]
struct OrderFacts {
    orders: Vec<OrderId>,
    holds: Vec<String>,
    pids: Vec<String>,
}

impl ChatService {
    /// The team's name as the FAQ's contact list gives it.
    pub fn team_name(&self, team: Team, lang: Lang) -> String {
        self.inner
            .faq
            .contacts()
            .iter()
            .find(|c| c.team == team.as_str())
            .map(|c| {
                if lang == Lang::Fr {
                    c.name_fr.clone()
                } else {
                    c.name_en.clone()
                }
            })
            .unwrap_or_else(|| team.to_string())
    }

    /// Orders named in `text` that the user's linked address may see.
    fn order_facts(&self, msg: &Incoming, text: &str) -> Result<OrderFacts, ChatError> {
        let mut f = OrderFacts::default();
        let Some(link) = self.linked(&msg.user_key())? else {
            return Ok(f);
        };
        for so in so_numbers(text) {
            if !self.inner.store.is_authorized_sender(&so, &link.email)? {
                continue;
            }
            if let Some(o) = self.inner.store.order(&so)? {
                f.holds
                    .extend(o.open_holds().map(|h| h.kind.as_str().to_string()));
                f.pids.extend(o.lines.iter().map(|l| l.pid.clone()));
                f.orders.push(so);
            }
        }
        Ok(f)
    }

    pub(super) fn escalate(
        &self,
        msg: &Incoming,
        text: &str,
        lang: Lang,
    ) -> Result<Said, ChatError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Said::here(texts::escalate_empty(lang)));
        }
        let email = self.linked(&msg.user_key())?.map(|l| l.email);
        let facts = self.order_facts(msg, text)?;
        let hit = self.inner.faq.ask(text, Some(lang));
        let entry = hit
            .id
            .as_deref()
            .and_then(|id| self.inner.faq.entry(id, hit.lang));
        let routed = routing::route(&RoutingInput {
            text,
            holds: &facts.holds,
            pids: &facts.pids,
            faq_team: entry.and_then(|e| e.team.parse::<Route>().ok()),
            without_topic_words: false,
        });
        let team = routed.route.team().unwrap_or(Team::EdeliverySupport);
        let mut transcript = self.transcript(msg);
        transcript.push(format!("{}: {text}", msg.name));
        let ticket = self.inner.desk.open(Escalation {
            key: format!("chat:{}:{}", msg.user_key(), crate::store::now_ms()),
            team,
            user: ChatUser {
                platform: msg.platform.as_str().to_string(),
                user: msg.user.clone(),
            },
            email,
            lang,
            subject: text
                .lines()
                .next()
                .unwrap_or(text)
                .chars()
                .take(120)
                .collect(),
            text: transcript.join("\n"),
            orders: facts.orders,
            faq: entry.map(|e| FaqRef {
                id: e.id.clone(),
                question: e.question.clone(),
                confidence: hit.confidence,
            }),
            reasons: vec![
                format!("chat: escalated on {} by {}", msg.platform, msg.user_key()),
                format!("escalate to {team} (rule: {})", routed.rule),
            ],
        })?;
        self.follow(msg, ticket.id)?;
        tracing::info!(ticket = %ticket.id, %team, "chat escalation");
        Ok(Said {
            opened: Some(Opened {
                ticket: ticket.id,
                team,
                summary: text.chars().take(300).collect(),
            }),
            ..Said::here(texts::escalated(
                lang,
                &ticket.id.to_string(),
                &self.team_name(team, lang),
                ticket.sla_business_days,
                &ticket.due.to_string(),
            ))
        })
    }

    /// Links the conversation and the ticket both ways.
    fn follow(&self, msg: &Incoming, id: TicketId) -> Result<(), ChatError> {
        let store = &self.inner.store;
        store.chat_put(
            &ChatKey::new(ChatNs::Conversation, msg.conversation()),
            Some(&id.0),
            true,
        )?;
        let link = TicketLink {
            platform: msg.platform.as_str().to_string(),
            channel: msg.channel.clone(),
            user: msg.user.clone(),
            relayed: 0,
        };
        store.chat_put(
            &ChatKey::new(ChatNs::Ticket, id.0.to_string()),
            Some(&link),
            true,
        )?;
        Ok(())
    }

    /// True when a team member answered this conversation's ticket and it
    /// is not closed: the message is added to the ticket, the bot says nothing.
    pub(super) fn team_is_answering(&self, msg: &Incoming) -> Result<bool, ChatError> {
        let store = &self.inner.store;
        let conv = ChatKey::new(ChatNs::Conversation, msg.conversation());
        let Some(n) = store.chat_get::<u64>(&conv)? else {
            return Ok(false);
        };
        let ticket = self.inner.desk.ticket(TicketId(n))?;
        let Some(t) = ticket.filter(|t| t.status != TicketStatus::Closed) else {
            store.chat_put::<u64>(&conv, None, true)?;
            return Ok(false);
        };
        if !t.events.iter().any(|e| e.kind == EventKind::TeamReply) {
            return Ok(false);
        }
        let by = format!("{} ({})", msg.name, msg.user_key());
        self.inner
            .desk
            .customer_message(t.id, &by, msg.text.trim())?;
        tracing::info!(ticket = %t.id, "chat message added to an answered ticket; bot silent");
        Ok(true)
    }

    /// A team member's answer typed in a ticket's thread on the platform.
    /// `None` when the thread belongs to no ticket.
    pub fn thread_reply(
        &self,
        thread: &str,
        by: &str,
        text: &str,
    ) -> Result<Option<TicketId>, ChatError> {
        let Some(n) = self
            .inner
            .store
            .chat_get::<u64>(&ChatKey::new(ChatNs::Thread, thread))?
        else {
            return Ok(None);
        };
        let key = format!("chat:thread:{thread}:{}", crate::store::now_ms());
        let t = self.inner.desk.team_reply(TicketId(n), by, text, &key)?;
        Ok(Some(t.id))
    }

    /// Tickets of any origin (mail, chat, download reviews) opened since
    /// the last call, for the teams with a channel on `platform`'s bot;
    /// each is returned once, across restarts (the newest number handed
    /// out is stored). The first call ever starts after the newest ticket,
    /// so a bot switched on later does not flood its channels with old ones.
    pub fn tickets_to_post(&self, platform: Platform) -> Result<Vec<Opened>, ChatError> {
        let store = &self.inner.store;
        let key = ChatKey::new(ChatNs::Posted, platform.as_str());
        let Some(mut last) = store.chat_get::<u64>(&key)? else {
            let newest = store
                .tickets::<crate::desk::Ticket>()?
                .iter()
                .map(|t| t.id.0)
                .max()
                .unwrap_or(0);
            store.chat_put(&key, Some(&newest), true)?;
            return Ok(Vec::new());
        };
        let bot = self.inner.bots.get(platform);
        let mut out = Vec::new();
        let mut missing = 0;
        let mut n = last + 1;
        // Numbers are allocated in order; a short gap (a ticket whose
        // creation failed) is stepped over.
        while missing < POST_GAP {
            match self.inner.desk.ticket(TicketId(n))? {
                Some(t) => {
                    missing = 0;
                    last = n;
                    if bot.team_channel(t.team).is_some() {
                        out.push(opened(&t));
                    }
                }
                None => missing += 1,
            }
            n += 1;
        }
        store.chat_put(&key, Some(&last), true)?;
        Ok(out)
    }

    /// Remembers the thread a ticket was posted in (team channel).
    pub fn remember_thread(&self, thread: &str, ticket: TicketId) -> Result<(), ChatError> {
        Ok(self.inner.store.chat_put(
            &ChatKey::new(ChatNs::Thread, thread),
            Some(&ticket.0),
            true,
        )?)
    }

    /// Team answers not yet relayed, for conversations on `platforms`;
    /// each is returned once. Closed tickets stop being followed.
    pub fn collect_relays(&self, platforms: &[Platform]) -> Result<Vec<Delivery>, ChatError> {
        let store = &self.inner.store;
        let mut out = Vec::new();
        for (id, mut link) in store.chat_scan::<TicketLink>(ChatNs::Ticket)? {
            let Some(platform) = [Platform::Discord, Platform::Web, Platform::Console]
                .into_iter()
                .find(|p| p.as_str() == link.platform && platforms.contains(p))
            else {
                continue;
            };
            let key = ChatKey::new(ChatNs::Ticket, id.clone());
            let Some(t) = id
                .parse()
                .ok()
                .and_then(|n| self.inner.desk.ticket(TicketId(n)).transpose())
            else {
                store.chat_put::<TicketLink>(&key, None, true)?;
                continue;
            };
            let t = t?;
            let answers: Vec<_> = t
                .events
                .iter()
                .filter(|e| e.kind == EventKind::TeamReply)
                .collect();
            for e in answers.iter().skip(link.relayed) {
                out.push(Delivery {
                    platform,
                    channel: link.channel.clone(),
                    user: link.user.clone(),
                    text: texts::team_answer(t.lang, &t.id.to_string(), &e.by, &e.text),
                });
            }
            if t.status == TicketStatus::Closed {
                store.chat_put::<TicketLink>(&key, None, true)?;
            } else if answers.len() > link.relayed {
                link.relayed = answers.len();
                store.chat_put(&key, Some(&link), true)?;
            }
        }
        Ok(out)
    }

    /// Keeps a team answer for a web or console user's next exchange,
    /// durably: a restart before they come back does not lose it.
    pub fn hold_for_user(&self, d: Delivery) {
        let key = ChatKey::new(ChatNs::Waiting, format!("{}:{}", d.platform, d.user));
        let text = d.text;
        let held = self
            .inner
            .store
            .chat_update(&key, move |old: Option<Vec<String>>| {
                let mut list = old.unwrap_or_default();
                list.push(text);
                (Some(list), ())
            });
        if let Err(e) = held {
            tracing::error!(error = %e, user = %d.user, "cannot keep a team answer for a chat user");
        }
    }

    /// Team answers waiting for this user, handed out now (each once).
    pub fn take_waiting(&self, user_key: &str) -> Vec<String> {
        let key = ChatKey::new(ChatNs::Waiting, user_key);
        // A direct read first: most messages find nothing, and taking is a
        // durable write.
        match self.inner.store.chat_get::<Vec<String>>(&key) {
            Ok(Some(_)) => {}
            Ok(None) => return Vec::new(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the team answers waiting for a chat user");
                return Vec::new();
            }
        }
        self.inner
            .store
            .chat_update(&key, |old: Option<Vec<String>>| (None, old.unwrap_or_default()))
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot hand out the team answers waiting for a chat user");
                Vec::new()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_in_free_text() {
        let got: Vec<String> =
            so_numbers("SO#10458321 and 10458400, not 123 nor PO 55-1; again 10458321")
                .into_iter()
                .map(|s| s.to_string())
                .collect();
        assert_eq!(got, vec!["10458321", "10458400"]);
    }
}
