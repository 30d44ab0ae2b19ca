use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use edesk::cli::{Cli, Command, ConfigCmd, FaqCli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edesk: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each cause shown only when it adds something
/// (our error types often embed their source's text already).
fn describe(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("EDESK_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,tantivy=warn,sled=warn"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.load_config()?;
    match cli.command {
        Command::Serve => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let served = rt.block_on(edesk::daemon::serve(config));
            // `serve` has already bounded the drain; blocking tasks still
            // running (a store call of an abandoned request) would make a
            // plain runtime drop wait for them without limit.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            served?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            cmd: ConfigCmd::Check,
        } => {
            print!("{}", config.to_toml());
            eprintln!("configuration OK");
            Ok(ExitCode::SUCCESS)
        }
        Command::Faq {
            cmd: FaqCli::Engine(cmd),
        } => Ok(edesk::faq::cmd::run(cmd, &config)?),
        Command::Faq {
            cmd: FaqCli::Feedback { json },
        } => {
            edesk::chat::cmd::feedback(&config, json, || local_chat(&config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Chat { once } => {
            edesk::chat::cmd::chat(&config, once.as_deref(), || local_chat(&config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Desk { cmd } => match edesk::ctl::run_desk(cmd, &config)? {
            Ok(code) => Ok(code),
            Err(cmd) => Ok(edesk::desk::cmd::run(cmd, &config)?),
        },
        Command::Mail { cmd } => Ok(edesk::inbound::cmd::run(cmd, &config)?),
        // Read and maintenance commands: the store, or the running daemon.
        Command::Order { cmd } => Ok(edesk::ctl::run_order(cmd, &config)?),
        Command::Jobs { cmd } => Ok(edesk::ctl::jobs::run(cmd, &config)?),
        Command::Oba { cmd } => Ok(edesk::notify::cmd::run_oba(cmd, &config)?),
        Command::Outbox { cmd } => Ok(edesk::ctl::run_outbox(cmd, &config)?),
        Command::Suppress { cmd } => Ok(edesk::ctl::run_suppress(cmd, &config)?),
        Command::Notify { cmd } => Ok(edesk::notify::cmd::run_notify(cmd, &config)?),
        Command::Store { cmd } => Ok(edesk::ctl::store::run(cmd, &config)?),
        // Talks to a daemon over sockets only; the data directory, when given,
        // is where a daemon of its own runs.
        Command::Bench { cmd } => Ok(edesk::bench::run(cmd, cli.data_dir.as_deref())?),
    }
}

/// The chat service in this process, for `edesk chat` and `faq feedback`
/// when no daemon answers.
fn local_chat(config: &edesk::config::Config) -> Result<edesk::chat::ChatService, String> {
    edesk::daemon::build_state(config)
        .map(|s| s.chat)
        .map_err(|e| e.to_string())
}
