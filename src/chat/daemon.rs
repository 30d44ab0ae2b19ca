//! Chat's part of `edesk serve`: the background loop (rate windows and
//! abstentions written behind, team answers relayed into chat) and the
//! Discord bot when a token is configured.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::bots::Platform;
use super::service::{ChatService, Delivery};
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
) -> Option<mpsc::UnboundedSender<Delivery>> {
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
    let (tx, rx) = mpsc::unbounded_channel();
    let bot = super::discord::Bot::new(chat.clone(), secret, config.discord.api_url.clone());
    tracker.spawn(bot.run(rx, token));
    Some(tx)
}

async fn background(
    chat: ChatService,
    discord: Option<mpsc::UnboundedSender<Delivery>>,
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
        let relays = tokio::task::spawn_blocking(move || {
            if let Err(e) = c.persist() {
                tracing::warn!(error = %e, "chat state not written");
            }
            c.collect_relays(&p)
        })
        .await;
        match relays {
            Ok(Ok(list)) => route(&chat, discord.as_ref(), list),
            Ok(Err(e)) => tracing::warn!(error = %e, "chat relays"),
            Err(e) => tracing::warn!(error = %e, "chat background task failed"),
        }
        if stop {
            return;
        }
    }
}

fn route(
    chat: &ChatService,
    discord: Option<&mpsc::UnboundedSender<Delivery>>,
    list: Vec<Delivery>,
) {
    for d in list {
        tracing::info!(platform = %d.platform, "team answer relayed to chat");
        match (d.platform, discord) {
            (Platform::Discord, Some(tx)) => {
                if let Err(e) = tx.send(d) {
                    tracing::warn!(
                        "Discord bot gone; team answer kept for nobody: {}",
                        e.0.text
                    );
                }
            }
            _ => chat.hold_for_user(d),
        }
    }
}
