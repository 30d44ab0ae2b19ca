//! The Discord adapter (serenity): messages in DMs, mentions and prefixed
//! commands in server channels, slash commands with the same names,
//! 👍/👎 reactions as ratings, escalations posted in the team's channel
//! and team answers in the ticket's thread relayed to the customer.
//!
//! Safety: every message is sent with `allowed_mentions` parsing nothing,
//! and text is neutralised (`@everyone`, `@here`, role mentions) before it
//! leaves, so echoing a user can never ping anyone. Order data goes to the
//! user's DM, never to a server channel (the service marks it private).

use std::sync::{Arc, OnceLock};

use serenity::all::{
    ChannelId, Command, CommandDataOptionValue, CommandInteraction, CommandOptionType, Context,
    CreateAllowedMentions, CreateCommand, CreateCommandOption, CreateInteractionResponse,
    CreateInteractionResponseFollowup, CreateInteractionResponseMessage, CreateMessage,
    CreateThread, EventHandler, GatewayIntents, GuildId, Http, HttpBuilder, Interaction, Message,
    Reaction, ReactionType, Ready, UserId,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::answers::Rating;
use super::bots::{BotConfig, Platform};
use super::command::Verb;
use super::reply::neutralise_mentions;
use super::service::{ChatService, Delivery, Incoming, Opened, Outcome};
use crate::desk::TicketId;

/// What the bot reads: messages and reactions in servers and DMs, and
/// message content (a privileged intent, needed for prefixed commands and
/// team replies in threads; slash commands work without it).
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::DIRECT_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT
        | GatewayIntents::GUILD_MESSAGE_REACTIONS
        | GatewayIntents::DIRECT_MESSAGE_REACTIONS
}

/// Mentions parse nothing: no user, role, `@everyone` or `@here` is pinged.
fn no_mentions() -> CreateAllowedMentions {
    CreateAllowedMentions::new()
}

/// The Discord bot: built from the chat service and a token; runs until
/// the daemon's token is cancelled.
pub struct Bot {
    chat: ChatService,
    token: String,
    api_url: Option<String>,
}

impl Bot {
    /// A bot with the Discord bot `token`; `api_url` (config `discord.api_url`)
    /// sends API calls through a proxy instead of Discord's own endpoint.
    pub fn new(chat: ChatService, token: String, api_url: Option<String>) -> Bot {
        Bot {
            chat,
            token,
            api_url,
        }
    }

    fn http(&self) -> Http {
        let mut b = HttpBuilder::new(&self.token).default_allowed_mentions(no_mentions());
        if let Some(url) = &self.api_url {
            // serenity applies the proxy only on the path without its own
            // rate limiter (the proxy is expected to rate-limit).
            b = b.proxy(url.clone()).ratelimiter_disabled(true);
        }
        b.build()
    }

    /// Connects and serves until `cancel`; team answers and new tickets
    /// arrive on `outbound`.
    pub async fn run(
        self,
        outbound: mpsc::UnboundedReceiver<ToDiscord>,
        cancel: CancellationToken,
    ) {
        let handler = Handler {
            chat: self.chat.clone(),
            me: OnceLock::new(),
        };
        let client = serenity::client::ClientBuilder::new_with_http(self.http(), intents())
            .event_handler(handler);
        let mut client = match client.await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "Discord bot cannot start");
                return;
            }
        };
        tracing::info!("Discord bot connecting");
        let http = client.http.clone();
        let shards = client.shard_manager.clone();
        let relay = tokio::spawn(relay(http, self.chat.clone(), outbound));
        tokio::select! {
            r = client.start() => {
                if let Err(e) = r {
                    tracing::error!(error = %e, "Discord bot stopped");
                }
            }
            _ = cancel.cancelled() => {
                shards.shutdown_all().await;
                tracing::info!("Discord bot stopped");
            }
        }
        relay.abort();
    }
}

/// What the daemon hands the bot outside of a conversation.
#[derive(Debug, Clone)]
pub enum ToDiscord {
    /// A team's answer to a Discord user's ticket: sent to their DM.
    Answer(Delivery),
    /// A new ticket (any origin) for its team's channel.
    Ticket(Opened),
}

/// Team answers to chat tickets (to the user's DM) and new tickets (to
/// their team's channel, with a thread for the team's reply).
async fn relay(
    http: Arc<Http>,
    chat: ChatService,
    mut outbound: mpsc::UnboundedReceiver<ToDiscord>,
) {
    while let Some(item) = outbound.recv().await {
        match item {
            ToDiscord::Answer(d) => deliver(&http, d).await,
            ToDiscord::Ticket(t) => post_ticket(&http, &chat, &t).await,
        }
    }
}

/// A team's answer to the user's DM, split at Discord's limit.
async fn deliver(http: &Http, d: Delivery) {
    let Ok(user) = d.user.parse::<u64>() else {
        return;
    };
    match UserId::new(user.max(1)).create_dm_channel(http).await {
        Ok(dm) => {
            for part in super::reply::split(&d.text, super::reply::DISCORD_LIMIT) {
                if let Err(e) = say(http, dm.id, &part).await {
                    tracing::warn!(error = %e, "team answer not delivered on Discord");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot open a DM for a team answer"),
    }
}

/// Posts a new ticket in its team's channel and opens a thread there;
/// what a team member writes in the thread reaches the customer (in chat,
/// or by mail for a mail ticket).
async fn post_ticket(http: &Http, chat: &ChatService, opened: &Opened) {
    let Some(channel) = chat.bots().discord.team_channel(opened.team) else {
        return;
    };
    let channel = ChannelId::new(channel.max(1));
    let text = format!(
        "Ticket {} for {}:\n{}\nReply in this thread to answer the customer.",
        opened.ticket, opened.team, opened.summary
    );
    let posted = match say(http, channel, &text).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "ticket not posted in the team channel");
            return;
        }
    };
    // A thread started from a message has that message's id (Discord's
    // rule), so the link is stored before the thread exists: a team member
    // quick enough to answer before Discord has answered us is not missed.
    let name = format!("{} {}", opened.ticket, opened.team);
    if !remember_thread(chat, posted.id.to_string(), opened.ticket).await {
        return;
    }
    match channel
        .create_thread_from_message(http, posted.id, CreateThread::new(name))
        .await
    {
        Ok(thread) if thread.id.get() != posted.id.get() => {
            remember_thread(chat, thread.id.to_string(), opened.ticket).await;
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "no thread for the ticket"),
    }
}

/// Links a Discord thread to its ticket; false when it could not be stored.
async fn remember_thread(chat: &ChatService, thread: String, ticket: TicketId) -> bool {
    let chat = chat.clone();
    match tokio::task::spawn_blocking(move || chat.remember_thread(&thread, ticket)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, %ticket, "thread of the ticket not stored");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, %ticket, "thread of the ticket not stored");
            false
        }
    }
}

async fn say(http: &Http, channel: ChannelId, text: &str) -> serenity::Result<Message> {
    channel
        .send_message(
            http,
            CreateMessage::new()
                .content(neutralise_mentions(text))
                .allowed_mentions(no_mentions()),
        )
        .await
}

struct Handler {
    chat: ChatService,
    me: OnceLock<UserId>,
}

impl Handler {
    fn bot(&self) -> &BotConfig {
        &self.chat.bots().discord
    }

    async fn answer(&self, msg: Incoming) -> Option<Outcome> {
        let chat = self.chat.clone();
        match tokio::task::spawn_blocking(move || chat.handle(&msg)).await {
            Ok(Ok(out)) => Some(out),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Discord message not answered");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "Discord handler task failed");
                None
            }
        }
    }

    /// Sends the replies: private ones to the author's DM, the others in
    /// the channel; FAQ answers get 👍/👎 to rate them.
    async fn send(&self, http: &Http, channel: ChannelId, author: UserId, out: &Outcome) {
        let mut dm: Option<ChannelId> = None;
        for r in &out.replies {
            let target = if r.private {
                if dm.is_none() {
                    dm = author.create_dm_channel(http).await.ok().map(|c| c.id);
                }
                match dm {
                    Some(d) => d,
                    None => continue,
                }
            } else {
                channel
            };
            match say(http, target, &r.text).await {
                Ok(sent) => {
                    if let Some(faq) = &r.rate {
                        self.offer_rating(http, &sent, faq).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Discord reply not sent"),
            }
        }
    }

    async fn offer_rating(&self, http: &Http, sent: &Message, faq: &str) {
        let chat = self.chat.clone();
        let (id, faq) = (sent.id.to_string(), faq.to_string());
        let _ = tokio::task::spawn_blocking(move || chat.remember_answer(&id, &faq)).await;
        for e in ["👍", "👎"] {
            let _ = sent.react(http, ReactionType::Unicode(e.into())).await;
        }
    }

    /// The message's text without the bot's mention, and whether it was
    /// addressed to the bot (DM, mention, prefix).
    fn addressed_text(&self, msg: &Message) -> Option<(String, bool)> {
        let me = self.me.get().copied();
        let mentioned = me.is_some_and(|me| msg.mentions.iter().any(|u| u.id == me));
        let mut text = msg.content.clone();
        if let Some(me) = me {
            for m in [format!("<@{me}>"), format!("<@!{me}>")] {
                text = text.replace(&m, " ");
            }
        }
        let text = text.trim().to_string();
        let dm = msg.guild_id.is_none();
        let prefixed = !self.bot().prefix.is_empty() && text.starts_with(&self.bot().prefix);
        (dm || mentioned || prefixed).then_some((text, true))
    }
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        let _ = self.me.set(ready.user.id);
        tracing::info!(user = %ready.user.name, "Discord bot ready");
        let commands = slash_commands(&self.bot().enabled());
        let guilds = self.bot().guilds.clone();
        if guilds.is_empty()
            && let Err(e) = Command::set_global_commands(&ctx.http, commands.clone()).await
        {
            tracing::warn!(error = %e, "slash commands not registered");
        }
        for g in guilds {
            if let Err(e) = GuildId::new(g.max(1))
                .set_commands(&ctx.http, commands.clone())
                .await
            {
                tracing::warn!(error = %e, guild = g, "slash commands not registered");
            }
        }
    }

    async fn message(&self, ctx: Context, msg: Message) {
        if msg.author.bot {
            return;
        }
        if self.team_thread(&msg).await {
            return;
        }
        let Some((text, addressed)) = self.addressed_text(&msg) else {
            return;
        };
        let incoming = Incoming {
            platform: Platform::Discord,
            user: msg.author.id.to_string(),
            name: msg.author.name.clone(),
            channel: msg.channel_id.to_string(),
            public: msg.guild_id.is_some(),
            text,
            addressed,
        };
        let Some(out) = self.answer(incoming).await else {
            return;
        };
        self.send(&ctx.http, msg.channel_id, msg.author.id, &out)
            .await;
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        if let Interaction::Command(cmd) = interaction {
            self.slash(&ctx, &cmd).await;
        }
    }

    async fn reaction_add(&self, _ctx: Context, reaction: Reaction) {
        let Some(user) = reaction.user_id else {
            return;
        };
        if Some(user) == self.me.get().copied() {
            return;
        }
        let rating = match &reaction.emoji {
            ReactionType::Unicode(e) if e.starts_with('👍') => Rating::Up,
            ReactionType::Unicode(e) if e.starts_with('👎') => Rating::Down,
            _ => return,
        };
        let chat = self.chat.clone();
        let message = reaction.message_id.to_string();
        let rated = tokio::task::spawn_blocking(move || {
            let Some(faq) = chat.answer_of(&message)? else {
                return Ok(None);
            };
            chat.rate(&format!("discord:{user}"), &faq, rating)
                .map(|()| Some(faq))
        })
        .await;
        if let Ok(Ok(Some(faq))) = rated {
            tracing::info!(%faq, ?rating, "FAQ answer rated on Discord");
        }
    }
}

impl Handler {
    /// A team member's message in a ticket thread: recorded as the team's
    /// answer (relayed to the customer by the daemon's relay loop).
    async fn team_thread(&self, msg: &Message) -> bool {
        if msg.guild_id.is_none() {
            return false;
        }
        let chat = self.chat.clone();
        let (thread, by, text) = (
            msg.channel_id.to_string(),
            format!("{} (Discord)", msg.author.name),
            msg.content.clone(),
        );
        let found =
            tokio::task::spawn_blocking(move || chat.thread_reply(&thread, &by, &text)).await;
        match found {
            Ok(Ok(Some(ticket))) => {
                tracing::info!(%ticket, "team answer from a Discord thread");
                true
            }
            Ok(Ok(None)) => false,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "team answer not recorded");
                true
            }
            Err(_) => false,
        }
    }

    /// A slash command: the same command language, answered as the
    /// interaction's response (then follow-ups); private parts go to a DM.
    async fn slash(&self, ctx: &Context, cmd: &CommandInteraction) {
        let arg = cmd
            .data
            .options
            .iter()
            .find_map(|o| match &o.value {
                CommandDataOptionValue::String(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let incoming = Incoming {
            platform: Platform::Discord,
            user: cmd.user.id.to_string(),
            name: cmd.user.name.clone(),
            channel: cmd.channel_id.to_string(),
            public: cmd.guild_id.is_some(),
            text: format!("{} {arg}", cmd.data.name),
            addressed: true,
        };
        let out = self.answer(incoming).await.unwrap_or_default();
        let (private, public): (Vec<_>, Vec<_>) = out.replies.iter().partition(|r| r.private);
        let mut texts = public.iter().map(|r| neutralise_mentions(&r.text));
        let first = texts.next().unwrap_or_else(|| "…".into());
        let response = CreateInteractionResponseMessage::new()
            .content(first)
            .allowed_mentions(no_mentions());
        if let Err(e) = cmd
            .create_response(&ctx.http, CreateInteractionResponse::Message(response))
            .await
        {
            tracing::warn!(error = %e, "slash command not answered");
            return;
        }
        for t in texts {
            let f = CreateInteractionResponseFollowup::new()
                .content(t)
                .allowed_mentions(no_mentions());
            let _ = cmd.create_followup(&ctx.http, f).await;
        }
        let rest = Outcome {
            replies: private.into_iter().cloned().collect(),
            opened: None,
        };
        self.send(&ctx.http, cmd.channel_id, cmd.user.id, &rest)
            .await;
    }
}

/// Slash commands with the command language's names and arguments.
pub fn slash_commands(enabled: &[Verb]) -> Vec<CreateCommand> {
    enabled
        .iter()
        .map(|v| {
            let (desc, arg): (&str, Option<(&str, &str, bool)>) = match v {
                Verb::Faq => (
                    "Ask the eDelivery FAQ",
                    Some(("question", "Your question", true)),
                ),
                Verb::Order => (
                    "Status of an order (linked accounts)",
                    Some(("so", "Sales order number", true)),
                ),
                Verb::Restore => (
                    "Restore an archived order",
                    Some(("so", "Sales order number", true)),
                ),
                Verb::Resend => (
                    "Send the order notification again",
                    Some(("so", "Sales order number", true)),
                ),
                Verb::Link => (
                    "Link this account to your email address",
                    Some(("email", "The address that gets your notifications", true)),
                ),
                Verb::Verify => (
                    "Confirm the link with the mailed code",
                    Some(("code", "The 6-digit code", true)),
                ),
                Verb::Escalate => (
                    "Hand your question to a support team",
                    Some(("text", "What the team should know", true)),
                ),
                Verb::Unsubscribe => ("Stop notification mails to your linked address", None),
                Verb::Lang => (
                    "Reply language",
                    Some(("language", "en, fr or auto", false)),
                ),
                Verb::Help => ("What the bot can do", None),
            };
            let mut c = CreateCommand::new(v.name()).description(desc);
            if let Some((name, d, required)) = arg {
                c = c.add_option(
                    CreateCommandOption::new(CommandOptionType::String, name, d).required(required),
                );
            }
            c
        })
        .collect()
}
