//! The conversation engine every adapter calls: one message in, the
//! replies out. It applies the rate limits and the "a person answered,
//! the bot is silent" rule, runs the command, and shapes the replies for
//! the platform (language, private or in the channel, split at its limit).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::ChatError;
use super::bots::{BotConfig, Bots, Platform};
use super::command::{self, Command, Parsed, Verb};
use super::ports::{Actions, DeskPort};
use super::ratelimit::{RateLimiter, Verdict};
use super::reply::split;
use super::session::ChatKey as SigningKey;
use super::texts;
use super::transcript::Transcripts;
use crate::desk::TicketId;
use crate::domain::{Lang, Team};
use crate::faq;
use crate::store::{ChatKey, ChatNs, Store};

/// Users whose recent language is kept in memory (beyond it the map is
/// emptied: a short command then falls back to the default language).
const MAX_CONVERSATIONS: usize = 50_000;

/// Settings of the account link.
#[derive(Debug, Clone, Copy)]
pub struct ChatSettings {
    /// How long a link code is valid.
    pub code_ttl_secs: u64,
    /// Wrong codes accepted before the code is void.
    pub code_max_tries: u32,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            code_ttl_secs: 900,
            code_max_tries: 5,
        }
    }
}

/// One message from a user.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The adapter it came through.
    pub platform: Platform,
    /// The user's id on the platform (a session id for the web chat).
    pub user: String,
    /// How the user is shown to a team (display name).
    pub name: String,
    /// Where the conversation happens (a channel, a DM; the user for web).
    pub channel: String,
    /// A channel others read: order data goes to a direct message instead.
    pub public: bool,
    /// The message as typed.
    pub text: String,
    /// The bot was addressed (DM, mention, console, web): plain text is a question.
    pub addressed: bool,
}

impl Incoming {
    /// The user as the store knows them (`discord:1234`).
    pub fn user_key(&self) -> String {
        format!("{}:{}", self.platform, self.user)
    }

    /// The conversation as the store knows it: `discord:CHANNEL` for a
    /// private one, `discord:CHANNEL:USER` in a public channel (one user's
    /// escalation does not silence the bot for everyone there).
    pub fn conversation(&self) -> String {
        if self.public {
            format!("{}:{}:{}", self.platform, self.channel, self.user)
        } else {
            format!("{}:{}", self.platform, self.channel)
        }
    }

    /// The channel as rate limits count it.
    fn channel_key(&self) -> String {
        format!("{}:{}", self.platform, self.channel)
    }
}

/// One message to send back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reply {
    /// The text, already split to the bot's `max_message_chars`.
    pub text: String,
    /// Send it to the user alone (a DM), not in the public channel.
    pub private: bool,
    /// The FAQ entry this answers with, for a 👍/👎 rating.
    pub rate: Option<String>,
}

/// A ticket a message opened, for the adapter to post in a team channel.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The new ticket.
    pub ticket: TicketId,
    /// The team it is routed to (picks the team channel).
    pub team: Team,
    /// The request's first 300 characters.
    pub summary: String,
}

/// Everything a message produced.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// What to send back, in order; empty when the bot stays quiet (plain text
    /// when not addressed, a repeated rate-limit refusal, a team answering).
    pub replies: Vec<Reply>,
    /// The ticket an `escalate` opened, if any.
    pub opened: Option<Opened>,
}

/// A team's answer waiting to reach a chat user.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The adapter that must deliver it.
    pub platform: Platform,
    /// The conversation's channel on that platform.
    pub channel: String,
    /// The platform's user id of the customer.
    pub user: String,
    /// The answer, already worded for the chat ([`texts::team_answer`](super::texts::team_answer)).
    pub text: String,
}

/// Which conversation a chat ticket answers to, and how far it was relayed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TicketLink {
    /// [`Platform::as_str`] of the conversation.
    pub platform: String,
    /// The channel the escalation was asked in.
    pub channel: String,
    /// The platform's user id of the customer.
    pub user: String,
    /// Team replies already delivered.
    pub relayed: usize,
}

/// The chat service, shared by every adapter (cheap to clone).
#[derive(Clone)]
pub struct ChatService {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub faq: Arc<faq::Engine>,
    pub store: Store,
    pub desk: Arc<dyn DeskPort>,
    pub actions: Arc<dyn Actions>,
    pub key: SigningKey,
    pub bots: Bots,
    pub settings: ChatSettings,
    pub limiter: RateLimiter,
    pub transcripts: Transcripts,
    /// The language a user last wrote in (for short commands like `verify 123456`).
    pub recent_lang: Mutex<HashMap<String, Lang>>,
    /// Abstained questions not yet written to the feedback records.
    pub abstentions: Mutex<Vec<(String, String)>>,
    /// The FAQ entries each user was last answered with: what a web
    /// session may rate (a rating is for an answer received, not any entry).
    pub answered: Mutex<HashMap<String, VecDeque<String>>>,
}

/// What a command handler returns: the text and how to send it.
pub(super) struct Said {
    pub text: String,
    pub private: bool,
    pub rate: Option<String>,
    pub opened: Option<Opened>,
}

impl Said {
    pub fn here(text: impl Into<String>) -> Said {
        Said {
            text: text.into(),
            private: false,
            rate: None,
            opened: None,
        }
    }

    pub fn private(text: impl Into<String>) -> Said {
        Said {
            private: true,
            ..Said::here(text)
        }
    }
}

impl ChatService {
    /// Wires the service; [`build`](super::build) does it from the daemon's config.
    pub fn new(
        faq: Arc<faq::Engine>,
        store: Store,
        desk: Arc<dyn DeskPort>,
        actions: Arc<dyn Actions>,
        key: SigningKey,
        bots: Bots,
        settings: ChatSettings,
    ) -> ChatService {
        ChatService {
            inner: Arc::new(Inner {
                faq,
                limiter: RateLimiter::new(store.clone()),
                transcripts: Transcripts::new(store.clone()),
                store,
                desk,
                actions,
                key,
                bots,
                settings,
                recent_lang: Mutex::new(HashMap::new()),
                abstentions: Mutex::new(Vec::new()),
                answered: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The bot definitions in use.
    pub fn bots(&self) -> &Bots {
        &self.inner.bots
    }

    /// The FAQ engine answers come from.
    pub fn faq(&self) -> &Arc<faq::Engine> {
        &self.inner.faq
    }

    /// The store the chat state lives in.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// A new signed session id for the HTTP chat.
    pub fn new_session(&self) -> String {
        self.inner.key.new_session()
    }

    /// The user a session id stands for, when this daemon signed it.
    pub fn session_user(&self, session: &str) -> Option<String> {
        self.inner.key.session_user(session)
    }

    /// Answers one message. Blocking (store writes wait for their flush):
    /// async callers run it on a blocking thread.
    pub fn handle(&self, msg: &Incoming) -> Result<Outcome, ChatError> {
        let span = tracing::info_span!("chat", platform = %msg.platform, user = %msg.user);
        let _enter = span.enter();
        let bot = self.inner.bots.get(msg.platform).clone();
        let mut out = Outcome::default();
        self.hand_out_waiting(msg, &bot, &mut out);
        let text = strip_prefix(&msg.text, &bot);
        if text.is_empty() {
            // An empty message only collects what is waiting (web polling).
            return Ok(out);
        }
        let Some(parsed) = command::parse(text, msg.addressed) else {
            return Ok(out);
        };
        let lang = self.reply_lang(msg, &parsed);
        if let Some(limited) = self.limited(msg, &bot, lang) {
            out.replies.extend(limited.replies);
            return Ok(out);
        }
        if self.team_is_answering(msg)? {
            return Ok(out);
        }
        let verb = parsed.command.verb();
        let said = if bot.enabled().contains(&verb) {
            self.run(msg, &bot, parsed.command, lang)
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, command = verb.name(), "chat command failed");
                    Said::here(texts::unavailable(lang))
                })
        } else {
            Said::here(texts::disabled(lang, verb))
        };
        self.remember(msg, &said.text);
        self.shape(msg, &bot, said, lang, &mut out);
        Ok(out)
    }

    /// Whether [`ChatService::handle`] answers this message without waiting
    /// on a disk or a database: an embedded store (its reads come from
    /// memory), a FAQ question or `help`, no team answer waiting for the
    /// user and no escalated conversation (those lead to durable writes).
    /// The HTTP chat answers such a message on its async worker, sparing a
    /// hand-off to a blocking thread per message (README: bench chat).
    pub fn is_quick(&self, msg: &Incoming) -> bool {
        if self.inner.store.is_shared() {
            return false;
        }
        let text = strip_prefix(&msg.text, self.inner.bots.get(msg.platform));
        let faq_or_help = command::parse(text, msg.addressed)
            .is_some_and(|p| matches!(p.command.verb(), Verb::Faq | Verb::Help));
        let absent = |key: ChatKey| matches!(self.inner.store.chat_contains(&key), Ok(false));
        faq_or_help
            && absent(ChatKey::new(ChatNs::Waiting, msg.user_key()))
            && absent(ChatKey::new(ChatNs::Conversation, msg.conversation()))
    }

    /// The reply language: the user's `lang` choice, else the language of
    /// the command word, else what they last wrote in, else English. (FAQ
    /// questions refine it with the engine's detection.)
    fn reply_lang(&self, msg: &Incoming, parsed: &Parsed) -> Lang {
        if let Some(l) = self.lang_choice(&msg.user_key()) {
            return l;
        }
        let recent = self
            .inner
            .recent_lang
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        parsed
            .word_lang
            .or_else(|| recent.get(&msg.user_key()).copied())
            .unwrap_or(Lang::En)
    }

    pub(super) fn lang_choice(&self, user_key: &str) -> Option<Lang> {
        self.inner
            .store
            .chat_get::<Lang>(&ChatKey::new(ChatNs::Lang, user_key))
            .ok()
            .flatten()
    }

    pub(super) fn note_lang(&self, user_key: &str, lang: Lang) {
        let mut m = self
            .inner
            .recent_lang
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if m.len() >= MAX_CONVERSATIONS {
            m.clear();
        }
        m.insert(user_key.to_string(), lang);
    }

    fn limited(&self, msg: &Incoming, bot: &BotConfig, lang: Lang) -> Option<Outcome> {
        let channel = msg.public.then(|| msg.channel_key());
        let now = crate::store::now_ms();
        let verdict =
            self.inner
                .limiter
                .check(&msg.user_key(), channel.as_deref(), bot.rate_limit, now);
        let (text, warn) = match verdict {
            Verdict::Allowed => return None,
            Verdict::User { retry_secs, warn } => (texts::rate_limited(lang, retry_secs), warn),
            Verdict::Channel { retry_secs, warn } => {
                (texts::channel_limited(lang, retry_secs), warn)
            }
        };
        tracing::info!(warned = warn, "chat rate limit hit");
        let replies = if warn {
            vec![Reply {
                text,
                private: false,
                rate: None,
            }]
        } else {
            Vec::new()
        };
        Some(Outcome {
            replies,
            opened: None,
        })
    }

    fn run(
        &self,
        msg: &Incoming,
        bot: &BotConfig,
        cmd: Command,
        lang: Lang,
    ) -> Result<Said, ChatError> {
        Ok(match cmd {
            Command::Help => Said::here(texts::help(lang, &bot.enabled(), &bot.prefix)),
            Command::Faq(q) => self.answer_faq(msg, &q, lang),
            Command::Order(so) => self.order(msg, so, lang)?,
            Command::Restore(so) => self.restore(msg, so, lang)?,
            Command::Resend(so) => self.resend(msg, so, lang)?,
            Command::Link(email) => self.link(msg, email, lang)?,
            Command::Verify(code) => self.verify(msg, &code, lang)?,
            Command::Unsubscribe => self.unsubscribe(msg, lang)?,
            Command::Lang(choice) => self.set_lang(msg, choice.as_deref(), lang)?,
            Command::Escalate(text) => self.escalate(msg, &text, lang)?,
        })
    }

    fn set_lang(
        &self,
        msg: &Incoming,
        choice: Option<&str>,
        lang: Lang,
    ) -> Result<Said, ChatError> {
        let key = ChatKey::new(ChatNs::Lang, msg.user_key());
        Ok(match choice {
            None => Said::here(match self.lang_choice(&msg.user_key()) {
                Some(l) => texts::lang_set(l),
                None => texts::lang_auto(lang),
            }),
            Some("auto") => {
                self.inner.store.chat_put::<Lang>(&key, None, true)?;
                Said::here(texts::lang_auto(lang))
            }
            Some(l) => match l.parse::<Lang>() {
                Ok(l) => {
                    self.inner.store.chat_put(&key, Some(&l), true)?;
                    Said::here(texts::lang_set(l))
                }
                Err(_) => Said::here(texts::lang_bad(lang)),
            },
        })
    }

    /// Turns what a command said into replies: private ones go to a DM in
    /// a public channel (with a note there), every text split at the limit.
    fn shape(&self, msg: &Incoming, bot: &BotConfig, said: Said, lang: Lang, out: &mut Outcome) {
        let private = said.private && msg.public;
        let parts = split(&said.text, bot.max_message_chars);
        let n = parts.len();
        for (i, text) in parts.into_iter().enumerate() {
            out.replies.push(Reply {
                text,
                private,
                rate: if i + 1 == n { said.rate.clone() } else { None },
            });
        }
        if private {
            out.replies.push(Reply {
                text: texts::sent_privately(lang).to_string(),
                private: false,
                rate: None,
            });
        }
        out.opened = said.opened;
    }

    /// Team answers relayed while the user was away (web, console).
    fn hand_out_waiting(&self, msg: &Incoming, bot: &BotConfig, out: &mut Outcome) {
        for text in self.take_waiting(&msg.user_key()) {
            for part in split(&text, bot.max_message_chars) {
                out.replies.push(Reply {
                    text: part,
                    private: msg.public,
                    rate: None,
                });
            }
        }
    }

    /// Keeps the last lines of the conversation for an escalation.
    fn remember(&self, msg: &Incoming, reply: &str) {
        self.inner.transcripts.push(
            &msg.conversation(),
            [
                format!("{}: {}", msg.name, msg.text.trim()),
                format!("bot: {}", first_line(reply)),
            ],
            chrono::Utc::now().timestamp(),
        );
    }

    pub(super) fn transcript(&self, msg: &Incoming) -> Vec<String> {
        self.inner.transcripts.lines(&msg.conversation())
    }

    /// Writes rate windows, transcripts and abstained questions kept in memory.
    pub fn persist(&self) -> Result<(), ChatError> {
        self.inner.limiter.persist()?;
        self.inner.transcripts.persist()?;
        self.flush_abstentions()?;
        Ok(())
    }
}

/// `!order 1` → `order 1` when the bot's prefix is `!`.
fn strip_prefix<'a>(text: &'a str, bot: &BotConfig) -> &'a str {
    let t = text.trim();
    if bot.prefix.is_empty() {
        return t;
    }
    t.strip_prefix(bot.prefix.as_str()).unwrap_or(t)
}

fn first_line(s: &str) -> &str {
    let line = s.lines().next().unwrap_or("");
    match line.char_indices().nth(160) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}
