//! The `edesk` command line. Parsing and dispatch only: every subcommand calls
//! into the module that owns the work.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, Overrides};

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

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: HTTP API, LMTP intake, outbox sender, jobs.
    Serve,
    /// Validate the configuration and print the effective values.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// FAQ: import, ask, evaluate, benchmark, reindex, feedback from chat.
    Faq {
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
        #[command(subcommand)]
        cmd: crate::inbound::cmd::MailCmd,
    },
    /// Support desk: escalation tickets.
    Desk {
        #[command(subcommand)]
        cmd: crate::desk::cmd::DeskCmd,
    },
    /// Orders: import, show, notification history.
    Order {
        #[command(subcommand)]
        cmd: crate::notify::cmd::OrderCmd,
    },
    /// Order-Based Access mails.
    Oba {
        #[command(subcommand)]
        cmd: crate::notify::cmd::ObaCmd,
    },
    /// The outgoing mail queue: list, retry, flush.
    Outbox {
        #[command(subcommand)]
        cmd: crate::notify::cmd::OutboxCmd,
    },
    /// The suppression list (addresses that hard-bounced).
    Suppress {
        #[command(subcommand)]
        cmd: crate::notify::cmd::SuppressCmd,
    },
    /// Notification tools: benchmark, preview.
    Notify {
        #[command(subcommand)]
        cmd: crate::notify::cmd::NotifyCmd,
    },
    /// Scheduled jobs: list, run now, history.
    Jobs {
        #[command(subcommand)]
        cmd: crate::jobs::cmd::JobsCmd,
    },
    /// The store: schema migrations, copying between sled and PostgreSQL.
    Store {
        #[command(subcommand)]
        cmd: crate::ctl::store::StoreCmd,
    },
    /// Load generators that prove the daemon keeps up (and does not hang).
    Bench {
        #[command(subcommand)]
        cmd: crate::bench::BenchCmd,
    },
}

/// `edesk faq …`: the engine's commands, and what chat users made of it.
#[derive(Debug, Subcommand)]
pub enum FaqCli {
    #[command(flatten)]
    Engine(crate::faq::cmd::FaqCmd),
    /// Ratings and abstained questions per FAQ entry, from chat (worst first).
    Feedback {
        #[arg(long)]
        json: bool,
    },
}

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
