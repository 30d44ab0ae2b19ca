//! The `edesk` command line. Parsing and dispatch only: every subcommand calls
//! into the module that owns the work.
#![warn(missing_docs)]

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, Overrides};

/// The parsed `edesk` command line: global options and one subcommand.
#[derive(Debug, Parser)]
#[command(
    name = "edesk",
    version,
    about = "Notification and support desk for electronic software delivery"
)]
pub struct Cli {
    /// TOML configuration file (layered over the built-in defaults).
    #[arg(long, global = true, env = "EDESK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Data directory (sled store, FAQ index, raw mail, outgoing mail).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// What to do; `main` dispatches on it.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: HTTP API, LMTP intake, outbox sender, jobs.
    Serve,
    /// Validate the configuration and print the effective values.
    Config {
        /// Which `edesk config` subcommand to run.
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// FAQ: import, ask, evaluate, benchmark, reindex, feedback from chat.
    Faq {
        /// Which `edesk faq` subcommand to run.
        #[command(subcommand)]
        cmd: FaqCli,
    },
    /// Chat with the bot in the terminal (the running daemon's, or in-process).
    Chat {
        /// Send this one message, print the replies, exit.
        #[arg(long, value_name = "TEXT")]
        once: Option<String>,
    },
    /// Inbound mail: inspect, evaluate the extractor, benchmark.
    Mail {
        /// Which `edesk mail` subcommand to run.
        #[command(subcommand)]
        cmd: crate::inbound::cmd::MailCmd,
    },
    /// Support desk: escalation tickets.
    Desk {
        /// Which `edesk desk` subcommand to run.
        #[command(subcommand)]
        cmd: crate::desk::cmd::DeskCmd,
    },
    /// Orders: import, show, notification history.
    Order {
        /// Which `edesk order` subcommand to run.
        #[command(subcommand)]
        cmd: crate::notify::cmd::OrderCmd,
    },
    /// Order-Based Access mails.
    Oba {
        /// Which `edesk oba` subcommand to run.
        #[command(subcommand)]
        cmd: crate::notify::cmd::ObaCmd,
    },
    /// The outgoing mail queue: list, retry, flush.
    Outbox {
        /// Which `edesk outbox` subcommand to run.
        #[command(subcommand)]
        cmd: crate::notify::cmd::OutboxCmd,
    },
    /// The suppression list (addresses that hard-bounced).
    Suppress {
        /// Which `edesk suppress` subcommand to run.
        #[command(subcommand)]
        cmd: crate::notify::cmd::SuppressCmd,
    },
    /// Notification tools: benchmark, preview.
    Notify {
        /// Which `edesk notify` subcommand to run.
        #[command(subcommand)]
        cmd: crate::notify::cmd::NotifyCmd,
    },
    /// Scheduled jobs: list, run now, history.
    Jobs {
        /// Which `edesk jobs` subcommand to run.
        #[command(subcommand)]
        cmd: crate::jobs::cmd::JobsCmd,
    },
    /// The store: schema migrations, copying between sled and PostgreSQL.
    Store {
        /// Which `edesk store` subcommand to run.
        #[command(subcommand)]
        cmd: crate::ctl::store::StoreCmd,
    },
    /// Load generators that prove the daemon keeps up (and does not hang).
    Bench {
        /// Which `edesk bench` subcommand to run.
        #[command(subcommand)]
        cmd: crate::bench::BenchCmd,
    },
}

/// `edesk faq …`: the engine's commands, and what chat users made of it.
#[derive(Debug, Subcommand)]
pub enum FaqCli {
    /// The FAQ engine's own commands (import, ask, eval, bench, reindex).
    #[command(flatten)]
    Engine(crate::faq::cmd::FaqCmd),
    /// Ratings and abstained questions per FAQ entry, from chat (worst first).
    Feedback {
        /// Print JSON (one object per entry) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `edesk config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Check the configuration layers and print the effective configuration.
    Check,
}

impl Cli {
    /// The effective configuration for this invocation.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        Config::load(
            self.config.as_deref(),
            std::env::vars(),
            &Overrides {
                data_dir: self.data_dir.clone(),
            },
        )
    }
}
