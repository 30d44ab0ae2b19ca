//! Chat's part of `edesk serve`: the background loop (rate windows and
//! abstentions written behind, team answers relayed into chat, new tickets
//! posted in the Discord team channels) and the Discord bot when a token
//! is configured.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::bots::Platform;
use super::discord::ToDiscord;
use super::service::{ChatService, Delivery, Opened};
use crate::config::Config;

/// How often team answers are looked for and memory state is written.
const TICK: Duration = Duration::from_secs(1);

/// Starts chat's services on the daemon's tracker; they stop with `token`.
pub fn start(config: &Config, chat: &ChatService, tracker: &TaskTracker, token: CancellationToken) {
    let discord = start_discord(config, chat, tracker, token.clone());
    tracker.spawn(background(chat.clone(), discord, token));
}

fn start_discord(
    config: &Config,
    chat: &ChatService,
    tracker: &TaskTracker,
    token: CancellationToken,
) -> Option<mpsc::UnboundedSender<ToDiscord>> {
    let secret = match config.discord.resolve_token() {
        Ok(Some(t)) => t,
        Ok(None) => {
            tracing::info!(
                "Discord bot off: no token configured (discord.token_file or EDESK_DISCORD__TOKEN)"
            );
            return None;
        }
        Err(e) => {
            tracing::error!(error = %e, "Discord bot off: cannot read its token");
            return None;
        }
    };
    // The tickets already there when the bot is first switched on are not
    // posted: the first call sets the mark.
    if let Err(e) = chat.tickets_to_post(Platform::Discord) {
        tracing::warn!(error = %e, "tickets for the team channels not looked up");
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let bot = super::discord::Bot::new(chat.clone(), secret, config.discord.api_url.clone());
    tracker.spawn(bot.run(rx, token));
    Some(tx)
}

async fn background(
    chat: ChatService,
    discord: Option<mpsc::UnboundedSender<ToDiscord>>,
    token: CancellationToken,
) {
    let mut platforms = vec![Platform::Web, Platform::Console];
    if discord.is_some() {
        platforms.push(Platform::Discord);
    }
    loop {
        let stop = tokio::select! {
            _ = token.cancelled() => true,
            _ = tokio::time::sleep(TICK) => false,
        };
        let c = chat.clone();
        let p = platforms.clone();
        let post = discord.is_some();
        let work = tokio::task::spawn_blocking(move || {
            if let Err(e) = c.persist() {
                tracing::warn!(error = %e, "chat state not written");
            }
            let tickets = if post {
                c.tickets_to_post(Platform::Discord)
            } else {
                Ok(Vec::new())
            };
            (c.collect_relays(&p), tickets)
        })
        .await;
        match work {
            Ok((relays, tickets)) => {
                match relays {
                    Ok(list) => route(&chat, discord.as_ref(), list),
                    Err(e) => tracing::warn!(error = %e, "chat relays"),
                }
                match tickets {
                    Ok(list) => post_tickets(discord.as_ref(), list),
                    Err(e) => tracing::warn!(error = %e, "new tickets for the team channels"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "chat background task failed"),
        }
        if stop {
            return;
        }
    }
}

/// New tickets to the bot, for their team's channel.
fn post_tickets(discord: Option<&mpsc::UnboundedSender<ToDiscord>>, list: Vec<Opened>) {
    let Some(tx) = discord else { return };
    for t in list {
        tracing::info!(ticket = %t.ticket, team = %t.team, "ticket to its team's Discord channel");
        if tx.send(ToDiscord::Ticket(t)).is_err() {
            tracing::warn!("Discord bot gone; ticket not posted");
        }
    }
}

fn route(
    chat: &ChatService,
    discord: Option<&mpsc::UnboundedSender<ToDiscord>>,
    list: Vec<Delivery>,
) {
    for d in list {
        tracing::info!(platform = %d.platform, "team answer relayed to chat");
        match (d.platform, discord) {
            (Platform::Discord, Some(tx)) => {
                if tx.send(ToDiscord::Answer(d)).is_err() {
                    tracing::warn!("Discord bot gone; a team answer was not delivered");
                }
            }
            _ => chat.hold_for_user(d),
        }
    }
}
