//! FAQ answers in chat, with the engine's confidence: a confident answer
//! (and, for topics that need a person, the way to one), or "did you
//! mean" alternatives and the `escalate` hint. Ratings and abstained
//! questions are kept per FAQ entry for `edesk faq feedback`.

use serde::{Deserialize, Serialize};

use super::ChatError;
use super::bots::Platform;
use super::service::{ChatService, Incoming, Said};
use super::texts;
use crate::domain::Lang;
use crate::store::{ChatKey, ChatNs, Store};

/// Questions kept per entry (the most recent).
const QUESTIONS_KEPT: usize = 20;
/// Answers per user that stay ratable (the most recent).
const ANSWERS_RATABLE: usize = 16;
/// Users whose ratable answers are kept in memory.
const MAX_USERS: usize = 50_000;
/// The entry id abstentions are filed under when nothing came close.
pub const NO_ENTRY: &str = "-";

/// What users made of one FAQ entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// 👍 ratings.
    pub up: u64,
    /// 👎 ratings.
    pub down: u64,
    /// Questions the engine abstained on with this entry as its best guess.
    pub abstained: u64,
    /// The most recent of those questions.
    pub questions: Vec<String>,
}

/// A rating as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    /// Helpful (👍).
    Up,
    /// Not helpful (👎).
    Down,
}

impl std::str::FromStr for Rating {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "up" | "+1" | "👍" | "good" | "yes" => Ok(Rating::Up),
            "down" | "-1" | "👎" | "bad" | "no" => Ok(Rating::Down),
            other => Err(format!("{other:?} is not a rating (expected up or down)")),
        }
    }
}

impl ChatService {
    pub(super) fn answer_faq(&self, msg: &Incoming, q: &str, _lang: Lang) -> Said {
        let engine = &self.inner.faq;
        let a = engine.ask(q, self.lang_choice(&msg.user_key()));
        let lang = a.lang;
        self.note_lang(&msg.user_key(), lang);
        let entry = a.id.as_deref().and_then(|id| engine.entry(id, lang));
        if a.answered
            && let (Some(id), Some(e)) = (&a.id, entry)
        {
            let mut text = format!("**{}**\n{}", e.question, e.answer);
            if e.needs_person {
                text.push_str("\n\n");
                text.push_str(texts::needs_person(lang));
            }
            text.push_str("\n\n");
            text.push_str(texts::rate_hint(lang, msg.platform == Platform::Discord));
            self.note_answered(&msg.user_key(), id);
            return Said {
                rate: Some(id.clone()),
                ..Said::here(text)
            };
        }
        self.note_abstention(a.id.as_deref().unwrap_or(NO_ENTRY), q);
        let mut text = texts::not_sure(lang).to_string();
        let guesses: Vec<&str> = a
            .question
            .as_deref()
            .into_iter()
            .chain(a.alternatives.iter().map(|x| x.question.as_str()))
            .take(3)
            .collect();
        if !guesses.is_empty() {
            text.push(' ');
            text.push_str(texts::did_you_mean(lang));
            for g in guesses {
                text.push_str("\n- ");
                text.push_str(g);
            }
        }
        text.push('\n');
        text.push_str(texts::escalate_hint(lang));
        Said::here(text)
    }

    fn note_abstention(&self, id: &str, q: &str) {
        let q: String = q.trim().chars().take(300).collect();
        let mut a = self
            .inner
            .abstentions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Bounded: under a flood the oldest unsaved ones go first.
        if a.len() >= 10_000 {
            a.remove(0);
        }
        a.push((id.to_string(), q));
    }

    /// Files the abstained questions collected since the last call.
    pub(super) fn flush_abstentions(&self) -> Result<(), ChatError> {
        let batch = std::mem::take(
            &mut *self
                .inner
                .abstentions
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for (id, q) in batch {
            self.inner.store.chat_update(
                &ChatKey::new(ChatNs::Feedback, id),
                move |f: Option<Feedback>| {
                    let mut f = f.unwrap_or_default();
                    f.abstained += 1;
                    f.questions.push(q);
                    let extra = f.questions.len().saturating_sub(QUESTIONS_KEPT);
                    f.questions.drain(..extra);
                    (Some(f), ())
                },
            )?;
        }
        Ok(())
    }

    /// A user's rating of the answer they got from entry `faq_id`: one per
    /// user and entry (a new rating replaces the old one).
    /// Keeps the entry among the user's last answers (what they may rate).
    fn note_answered(&self, user_key: &str, faq_id: &str) {
        let mut m = self
            .inner
            .answered
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if m.len() >= MAX_USERS && !m.contains_key(user_key) {
            m.clear();
        }
        let ids = m.entry(user_key.to_string()).or_default();
        if !ids.iter().any(|i| i == faq_id) {
            ids.push_back(faq_id.to_string());
            if ids.len() > ANSWERS_RATABLE {
                ids.pop_front();
            }
        }
    }

    /// A rating of an answer this user received (web chat: the session's
    /// recent answers since the daemon started); any other is refused.
    pub fn rate_answer(
        &self,
        user_key: &str,
        faq_id: &str,
        rating: Rating,
    ) -> Result<(), ChatError> {
        let received = self
            .inner
            .answered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(user_key)
            .is_some_and(|ids| ids.iter().any(|i| i == faq_id));
        if !received {
            return Err(ChatError::Input(format!(
                "{faq_id:?} is not an answer this session received recently"
            )));
        }
        self.rate(user_key, faq_id, rating)
    }

    /// Records a rating of an FAQ entry by a user (one per user and entry;
    /// a new one replaces theirs). Callers check the user got that answer.
    pub fn rate(&self, user_key: &str, faq_id: &str, rating: Rating) -> Result<(), ChatError> {
        let known = [Lang::En, Lang::Fr]
            .iter()
            .any(|l| self.inner.faq.entry(faq_id, *l).is_some());
        if !known {
            return Err(ChatError::Input(format!("no FAQ entry {faq_id:?}")));
        }
        let rated = ChatKey::new(ChatNs::Rated, format!("{user_key}/{faq_id}"));
        let before = self
            .inner
            .store
            .chat_update(&rated, move |old: Option<Rating>| (Some(rating), old))?;
        if before == Some(rating) {
            return Ok(());
        }
        self.inner.store.chat_update(
            &ChatKey::new(ChatNs::Feedback, faq_id),
            move |f: Option<Feedback>| {
                let mut f = f.unwrap_or_default();
                match (before, rating) {
                    (Some(Rating::Up), _) => f.up = f.up.saturating_sub(1),
                    (Some(Rating::Down), _) => f.down = f.down.saturating_sub(1),
                    (None, _) => {}
                }
                match rating {
                    Rating::Up => f.up += 1,
                    Rating::Down => f.down += 1,
                }
                (Some(f), ())
            },
        )?;
        Ok(())
    }

    /// Remembers which FAQ entry a platform message answered with, so a
    /// reaction to it rates that entry.
    pub fn remember_answer(&self, message_id: &str, faq_id: &str) -> Result<(), ChatError> {
        Ok(self.inner.store.chat_put(
            &ChatKey::new(ChatNs::Answer, message_id),
            Some(&faq_id.to_string()),
            false,
        )?)
    }

    /// The FAQ entry a platform message answered with.
    pub fn answer_of(&self, message_id: &str) -> Result<Option<String>, ChatError> {
        Ok(self
            .inner
            .store
            .chat_get(&ChatKey::new(ChatNs::Answer, message_id))?)
    }
}

/// Every entry's feedback, worst first (most thumbs down and abstentions).
pub fn report(store: &Store) -> Result<Vec<(String, Feedback)>, ChatError> {
    let mut all: Vec<(String, Feedback)> = store.chat_scan(ChatNs::Feedback)?;
    all.sort_by_key(|(id, f)| {
        (
            std::cmp::Reverse(f.down + f.abstained),
            std::cmp::Reverse(f.up),
            id.clone(),
        )
    });
    Ok(all)
}
