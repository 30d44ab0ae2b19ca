//! Bot definitions: `bots/discord.toml`, `bots/console.toml`,
//! `bots/web.toml` (prefix, enabled commands, message limit, rate limits,
//! and for Discord the guilds for slash commands and the team channels).
//! A missing file means the built-in defaults, which are the repository's
//! files; an unknown key is an error naming the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::command::Verb;
use super::ratelimit::Limits;
use crate::domain::Team;

/// Where a message comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    /// The Discord bot (`chat::discord`).
    Discord,
    /// The `edesk chat` console.
    Console,
    /// The HTTP chat of a web widget (`api::chat`).
    Web,
}

impl Platform {
    /// The name used in logs, store keys and escalation links (`discord`).
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Discord => "discord",
            Platform::Console => "console",
            Platform::Web => "web",
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the bot definitions do not load.
#[derive(Debug, thiserror::Error)]
pub enum BotsError {
    /// A bot file is unreadable, not valid TOML or has a bad value.
    #[error("{path}: {message}")]
    File {
        /// The file (a built-in one is named as such).
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// One bot's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BotConfig {
    /// What starts a command in a shared channel (`!order 10458321`).
    pub prefix: String,
    /// Enabled commands, by English name (`faq`, `order`, …, `help`).
    pub commands: Vec<String>,
    /// Longest message the platform takes, in characters.
    pub max_message_chars: usize,
    /// Messages answered per minute, per user and per channel.
    pub rate_limit: Limits,
    /// Discord: guilds where slash commands are registered (instant);
    /// empty registers them globally.
    pub guilds: Vec<u64>,
    /// Discord: the channel each team's escalations are posted in
    /// (`exportops = 123…`); team members answer in the ticket's thread.
    pub team_channels: BTreeMap<String, u64>,
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            prefix: "!".into(),
            commands: Verb::ALL.iter().map(|v| v.name().to_string()).collect(),
            max_message_chars: 4000,
            rate_limit: Limits::default(),
            guilds: Vec::new(),
            team_channels: BTreeMap::new(),
        }
    }
}

impl BotConfig {
    /// Enabled commands; `help` always is.
    pub fn enabled(&self) -> Vec<Verb> {
        let mut v: Vec<Verb> = self
            .commands
            .iter()
            .filter_map(|c| Verb::from_name(c))
            .collect();
        if !v.contains(&Verb::Help) {
            v.push(Verb::Help);
        }
        v
    }

    /// The Discord channel of a team, if one is configured.
    pub fn team_channel(&self, team: Team) -> Option<u64> {
        self.team_channels.get(team.as_str()).copied()
    }

    fn check(&self, path: &Path) -> Result<(), BotsError> {
        let err = |message: String| BotsError::File {
            path: path.to_path_buf(),
            message,
        };
        for c in &self.commands {
            if Verb::from_name(c).is_none() {
                return Err(err(format!(
                    "commands: unknown command {c:?} (expected one of {})",
                    Verb::ALL.map(|v| v.name()).join(", ")
                )));
            }
        }
        for t in self.team_channels.keys() {
            t.parse::<Team>()
                .map_err(|e| err(format!("team_channels: {e}")))?;
        }
        if self.max_message_chars < 100 {
            return Err(err("max_message_chars: at least 100".into()));
        }
        Ok(())
    }
}

/// The built-in definitions (the repository's `bots/` files).
const DISCORD: &str = include_str!("../../bots/discord.toml");
const CONSOLE: &str = include_str!("../../bots/console.toml");
const WEB: &str = include_str!("../../bots/web.toml");

/// One bot: the built-in file, with the operator's file (if any) over it.
/// `platform_max` is the platform's hard message limit.
fn one(
    dir: Option<&Path>,
    name: &str,
    builtin: &str,
    platform_max: Option<usize>,
) -> Result<BotConfig, BotsError> {
    let err = |path: &Path, message: String| BotsError::File {
        path: path.to_path_buf(),
        message,
    };
    let builtin_path = PathBuf::from(format!("(built-in) bots/{name}"));
    let mut table: toml::Table = builtin
        .parse()
        .map_err(|e: toml::de::Error| err(&builtin_path, e.to_string()))?;
    let mut shown = builtin_path;
    if let Some(path) = dir.map(|d| d.join(name)).filter(|p| p.exists()) {
        let text = std::fs::read_to_string(&path).map_err(|e| err(&path, e.to_string()))?;
        let over: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| err(&path, e.to_string()))?;
        for (k, v) in over {
            match (table.get_mut(&k), v) {
                (Some(toml::Value::Table(base)), toml::Value::Table(t)) => base.extend(t),
                (_, v) => {
                    table.insert(k, v);
                }
            }
        }
        shown = path;
    }
    let cfg: BotConfig = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| err(&shown, e.to_string()))?;
    cfg.check(&shown)?;
    if let Some(max) = platform_max.filter(|m| cfg.max_message_chars > *m) {
        return Err(err(
            &shown,
            format!("max_message_chars: the platform takes at most {max}"),
        ));
    }
    Ok(cfg)
}

/// Every bot's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Bots {
    /// `discord.toml`.
    pub discord: BotConfig,
    /// `console.toml`.
    pub console: BotConfig,
    /// `web.toml`.
    pub web: BotConfig,
}

impl Bots {
    /// Reads `dir/{discord,console,web}.toml` over the built-in files: a
    /// missing file, or a key a file leaves out, keeps the built-in value.
    pub fn load(dir: Option<&Path>) -> Result<Bots, BotsError> {
        Ok(Bots {
            discord: one(
                dir,
                "discord.toml",
                DISCORD,
                Some(super::reply::DISCORD_LIMIT),
            )?,
            console: one(dir, "console.toml", CONSOLE, None)?,
            web: one(dir, "web.toml", WEB, None)?,
        })
    }

    /// The built-in definitions.
    pub fn builtin() -> Result<Bots, BotsError> {
        Bots::load(None)
    }

    /// The settings of the bot on platform `p`.
    pub fn get(&self, p: Platform) -> &BotConfig {
        match p {
            Platform::Discord => &self.discord,
            Platform::Console => &self.console,
            Platform::Web => &self.web,
        }
    }

    /// `chat.bots_dir` when set, else `./bots` when it exists, else none
    /// (built-in definitions).
    pub fn resolve_dir(configured: Option<&Path>) -> Option<PathBuf> {
        match configured {
            Some(d) => Some(d.to_path_buf()),
            None => Some(PathBuf::from("bots")).filter(|d| d.is_dir()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_files_parse_and_bad_files_name_themselves() {
        let b = Bots::builtin().unwrap();
        assert_eq!(b.discord.max_message_chars, 2000);
        assert!(b.discord.enabled().contains(&Verb::Order));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("web.toml"),
            "commands = [\"faq\", \"dance\"]\n",
        )
        .unwrap();
        let e = Bots::load(Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("web.toml") && e.contains("dance"), "{e}");
        std::fs::write(dir.path().join("web.toml"), "colour = 1\n").unwrap();
        let e = Bots::load(Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
        std::fs::write(dir.path().join("web.toml"), "").unwrap();
        std::fs::write(
            dir.path().join("discord.toml"),
            "max_message_chars = 4000\n",
        )
        .unwrap();
        let e = Bots::load(Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("at most 2000"), "{e}");
        std::fs::write(dir.path().join("discord.toml"), "prefix = \"?\"\n").unwrap();
        let b = Bots::load(Some(dir.path())).unwrap();
        assert_eq!(
            (b.discord.prefix.as_str(), b.discord.max_message_chars),
            ("?", 2000),
            "the rest is built in"
        );
        std::fs::write(
            dir.path().join("web.toml"),
            "commands = [\"faq\"]\n[rate_limit]\nuser_per_minute = 2\n",
        )
        .unwrap();
        let b = Bots::load(Some(dir.path())).unwrap();
        assert_eq!(b.web.enabled(), vec![Verb::Faq, Verb::Help]);
        assert_eq!(b.web.rate_limit.user_per_minute, 2);
        assert_eq!(
            b.web.rate_limit.channel_per_minute, 0,
            "the built-in file fills the rest"
        );
    }
}
