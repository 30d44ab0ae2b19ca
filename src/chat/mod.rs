//! Chat: one command language for every bot (Discord, the `edesk chat`
//! console, the HTTP chat of a web widget), answering from the same FAQ
//! and desk as mail.
//!
//! This module owns the command language ([`command`]), the conversation
//! rules ([`service`]: rate limits, reply language, order data only for
//! verified recipients and in private, silence once a team answered),
//! account linking ([`account`]), FAQ answers and their ratings
//! ([`answers`]), escalations and relays ([`escalation`]), reply shaping
//! ([`reply`]) and the adapters ([`console`], [`discord`]; the HTTP adapter
//! is `api::chat`). It holds no business rule of its own: it asks `faq`,
//! `desk` (routing, tickets) and `store`.

#![warn(missing_docs)]

pub mod account;
pub mod answers;
pub mod bots;
pub mod cmd;
pub mod command;
pub mod console;
pub mod daemon;
pub mod discord;
pub mod escalation;
pub mod order_view;
pub mod ports;
pub mod ratelimit;
pub mod reply;
pub mod service;
pub mod session;
pub mod texts;
pub mod transcript;

pub use bots::{BotConfig, Bots, Platform};
pub use service::{ChatService, ChatSettings, Delivery, Incoming, Outcome, Reply};

/// What can go wrong in chat.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The store failed; see [`ChatError::is_transient`].
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The desk or the notifier refused or failed.
    #[error("{0}")]
    Port(#[from] ports::PortError),
    /// A bad request from the caller (unknown FAQ entry, a daemon's error answer).
    #[error("{0}")]
    Input(String),
    /// A bot definition file does not load.
    #[error(transparent)]
    Bots(#[from] bots::BotsError),
    /// The chat key file cannot be read or created.
    #[error(transparent)]
    Key(#[from] session::KeyError),
}

impl ChatError {
    /// A store condition that passes by itself (answer "try again").
    pub fn is_transient(&self) -> bool {
        matches!(self, ChatError::Store(e) if e.is_transient())
    }
}

/// Builds the chat service over the daemon's services.
pub fn build(
    config: &crate::config::Config,
    faq: std::sync::Arc<crate::faq::Engine>,
    desk: std::sync::Arc<crate::desk::DeskService>,
    notifier: crate::notify::Notifier,
) -> Result<ChatService, ChatError> {
    let bots = Bots::load(Bots::resolve_dir(config.chat.bots_dir.as_deref()).as_deref())?;
    let key = session::ChatKey::load_or_create(&config.data_dir)?;
    let store = notifier.store().clone();
    let desk_port = ports::ServiceDesk { service: desk };
    Ok(ChatService::new(
        faq,
        store,
        std::sync::Arc::new(desk_port),
        std::sync::Arc::new(ports::NotifierActions { notifier }),
        key,
        bots,
        ChatSettings {
            code_ttl_secs: config.chat.link_code_ttl_secs,
            code_max_tries: config.chat.link_max_tries,
        },
    ))
}
