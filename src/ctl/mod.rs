//! Command-line operations that work whether or not the daemon runs.
//!
//! sled lets one process open the store. Like `postqueue` talks to Postfix,
//! the read and maintenance commands (`desk list|show`, `outbox
//! list|retry`, `suppress list|remove`, `order show|history|restore`,
//! `jobs list|run|history`) open the
//! store directly when they can, and otherwise — the store is locked by a
//! running daemon — ask that daemon over its HTTP API. Both paths decode
//! into the same types and print through the same functions, so the output
//! is identical.
#![warn(missing_docs)]

pub mod client;
pub mod jobs;
pub mod store;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;

use serde::Deserialize;

use crate::config::Config;
use crate::desk::cmd::DeskCmd;
use crate::desk::{Ticket, TicketId};
use crate::domain::{EmailAddress, Order, OrderId};
use crate::notify::HistoryView;
use crate::notify::cmd::{OrderCmd, OutboxCmd, SuppressCmd};
use crate::store::{OutboxItem, OutboxStatus, Store, StoreError, Suppression};
use client::{Client, ClientError};

/// Errors of the store-or-daemon commands.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The daemon could not be reached or refused the request.
    #[error(transparent)]
    Daemon(#[from] ClientError),
    /// A notification-layer failure (history join, templates).
    #[error(transparent)]
    Notify(#[from] crate::notify::NotifyError),
    /// A desk failure (bad ticket reference, no such ticket).
    #[error(transparent)]
    Desk(#[from] crate::desk::DeskError),
    /// A command other than the ones handled here (delegated by the caller).
    #[error(transparent)]
    Cmd(#[from] crate::notify::cmd::CmdError),
    /// Bad input or an expected refusal, said the same way on both paths.
    #[error("{0}")]
    Usage(String),
    /// The data directory cannot be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Where a command's data lives for this invocation.
pub enum Target {
    /// The store, opened by this process (no daemon holds it).
    Store(Store),
    /// A running daemon, through its HTTP API.
    Daemon(Client),
}

impl Target {
    /// Opens the store; when a daemon holds it, the daemon instead (its
    /// address from `DATA_DIR/http.addr`, else `http.bind`).
    pub fn connect(config: &Config) -> Result<Target, CtlError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| CtlError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        match Store::open_with(&config.data_dir, &config.store.engine_settings()) {
            Ok(store) => Ok(Target::Store(store)),
            Err(StoreError::Locked(_)) => Ok(Target::Daemon(Client::new(daemon_addr(config)))),
            Err(e) => Err(e.into()),
        }
    }

    fn suppressions(&self) -> Result<Vec<Suppression>, CtlError> {
        match self {
            Target::Store(s) => Ok(s.suppressions()?),
            Target::Daemon(c) => Ok(c
                .get_json::<SuppressionList>("/v1/suppressions")?
                .suppressions),
        }
    }

    /// Removes an address; false when it was not suppressed.
    fn unsuppress(&self, email: &EmailAddress) -> Result<bool, CtlError> {
        match self {
            Target::Store(s) => Ok(s.unsuppress(email)?),
            Target::Daemon(c) => {
                let path = format!("/v1/suppressions/{}", path_segment(email.as_str()));
                match c.send_json::<serde_json::Value>("DELETE", &path, None) {
                    Ok(_) => Ok(true),
                    Err(ClientError::Status { status: 404, .. }) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    fn outbox(&self, all: bool) -> Result<Vec<OutboxItem>, CtlError> {
        match self {
            Target::Store(s) => Ok(s
                .outbox_list(None)?
                .into_iter()
                .filter(|it| all || it.status != OutboxStatus::Sent)
                .collect()),
            Target::Daemon(c) => {
                let path = format!("/v1/outbox?all={all}");
                Ok(c.get_json::<OutboxList>(&path)?.items)
            }
        }
    }

    /// Queues a dead item again; false when it is not dead.
    fn retry(&self, id: u64) -> Result<bool, CtlError> {
        match self {
            Target::Store(s) => Ok(s.retry(id)?),
            Target::Daemon(c) => {
                match c.send_json::<serde_json::Value>(
                    "POST",
                    &format!("/v1/outbox/{id}/retry"),
                    None,
                ) {
                    Ok(_) => Ok(true),
                    Err(ClientError::Status { status: 409, .. }) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    fn retry_all_dead(&self) -> Result<usize, CtlError> {
        match self {
            Target::Store(s) => Ok(s.retry_all_dead()?),
            Target::Daemon(c) => Ok(c
                .send_json::<Requeued>("POST", "/v1/outbox/retry-dead", None)?
                .requeued),
        }
    }

    fn order(&self, so: &OrderId) -> Result<Option<Order>, CtlError> {
        match self {
            Target::Store(s) => Ok(s.order(so)?),
            Target::Daemon(c) => match c.get_json(&format!("/v1/orders/{so}")) {
                Ok(o) => Ok(Some(o)),
                Err(ClientError::Status { status: 404, .. }) => Ok(None),
                Err(e) => Err(e.into()),
            },
        }
    }

    fn history(&self, so: &OrderId, config: &Config) -> Result<Vec<HistoryView>, CtlError> {
        match self {
            Target::Store(s) => Ok(crate::notify::Notifier::new(s.clone(), config)?.history(so)?),
            Target::Daemon(c) => {
                match c.get_json::<History>(&format!("/v1/orders/{so}/notifications")) {
                    Ok(h) => Ok(h.notifications),
                    // The store answers an empty history for an unknown order.
                    Err(ClientError::Status { status: 404, .. }) => Ok(Vec::new()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    fn tickets(&self) -> Result<Vec<Ticket>, CtlError> {
        match self {
            Target::Store(s) => Ok(s.tickets()?),
            Target::Daemon(c) => Ok(c.get_json("/v1/tickets")?),
        }
    }

    fn ticket(&self, id: TicketId) -> Result<Ticket, CtlError> {
        match self {
            Target::Store(s) => Ok(crate::desk::Desk::open(s, Default::default()).get(id)?),
            Target::Daemon(c) => Ok(c.get_json(&format!("/v1/tickets/{id}"))?),
        }
    }
}

/// `GET /v1/suppressions`.
#[derive(Debug, Deserialize)]
struct SuppressionList {
    suppressions: Vec<Suppression>,
}

/// `GET /v1/outbox`.
#[derive(Debug, Deserialize)]
struct OutboxList {
    items: Vec<OutboxItem>,
}

/// `POST /v1/outbox/retry-dead`.
#[derive(Debug, Deserialize)]
struct Requeued {
    requeued: usize,
}

/// `GET /v1/orders/{so}/notifications`.
#[derive(Debug, Deserialize)]
struct History {
    notifications: Vec<HistoryView>,
}

/// Where the daemon of this data directory answers: the address it wrote
/// at start, else the configured `http.bind` (a wildcard bind is reached
/// on loopback).
pub fn daemon_addr(config: &Config) -> SocketAddr {
    let written = std::fs::read_to_string(config.data_dir.join(crate::config::HTTP_ADDR_FILE))
        .ok()
        .and_then(|s| s.trim().parse::<SocketAddr>().ok());
    let mut addr = written.unwrap_or(config.http.bind);
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    addr
}

/// Percent-encodes one path segment (a mail address may hold `%`, `/`, `?`).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@+!$&'()*,;=:".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn parse_so(s: &str) -> Result<OrderId, CtlError> {
    s.parse()
        .map_err(|e: crate::domain::IdError| CtlError::Usage(e.to_string()))
}

/// One outbox item as `outbox list` prints it (tab-separated).
pub fn outbox_line(it: &OutboxItem) -> String {
    let status = match it.status {
        OutboxStatus::Pending => "pending",
        OutboxStatus::Sent => "sent",
        OutboxStatus::Dead => "dead",
    };
    format!(
        "{}\t{}\t{}\t{}\t{}\tattempts={}\t{}",
        it.id,
        status,
        it.kind,
        it.so.as_ref().map_or("-", |s| s.as_str()),
        it.to,
        it.attempts,
        it.last_error.as_deref().unwrap_or_default()
    )
}

/// One suppression as `suppress list` prints it (tab-separated).
pub fn suppression_line(s: &Suppression) -> String {
    format!("{}\t{}\t{}", s.email, s.at.to_rfc3339(), s.reason)
}

/// `edesk outbox list|retry` (store or daemon); `flush` needs the store.
pub fn run_outbox(cmd: OutboxCmd, config: &Config) -> Result<ExitCode, CtlError> {
    match cmd {
        OutboxCmd::Flush => return Ok(crate::notify::cmd::flush_outbox(config)?),
        OutboxCmd::List { all } => {
            let mut out = String::new();
            for it in Target::connect(config)?.outbox(all)? {
                out.push_str(&outbox_line(&it));
                out.push('\n');
            }
            print!("{out}");
        }
        OutboxCmd::Retry {
            id: Some(id),
            all_dead: false,
        } => {
            if !Target::connect(config)?.retry(id)? {
                return Err(CtlError::Usage(format!("item {id} is not dead")));
            }
            println!("item {id} queued again");
        }
        OutboxCmd::Retry {
            id: None,
            all_dead: true,
        } => println!(
            "{} dead items queued again",
            Target::connect(config)?.retry_all_dead()?
        ),
        OutboxCmd::Retry { .. } => {
            return Err(CtlError::Usage("give an item id or --all-dead".into()));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `edesk suppress list|remove` (store or daemon).
pub fn run_suppress(cmd: SuppressCmd, config: &Config) -> Result<ExitCode, CtlError> {
    let target = Target::connect(config)?;
    match cmd {
        SuppressCmd::List => {
            let mut out = String::new();
            for s in target.suppressions()? {
                out.push_str(&suppression_line(&s));
                out.push('\n');
            }
            print!("{out}");
        }
        SuppressCmd::Remove { addr } => {
            let email: EmailAddress = addr
                .parse()
                .map_err(|e: crate::domain::AddressError| CtlError::Usage(e.to_string()))?;
            if !target.unsuppress(&email)? {
                return Err(CtlError::Usage(format!("{email} is not suppressed")));
            }
            println!("{email} removed from the suppression list");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `edesk order show|history|restore` (store or daemon); `import` needs the store.
pub fn run_order(cmd: OrderCmd, config: &Config) -> Result<ExitCode, CtlError> {
    match cmd {
        OrderCmd::Show { so } => {
            let id = parse_so(&so)?;
            match Target::connect(config)?.order(&id)? {
                Some(o) => print_json(&o),
                None => return Err(CtlError::Usage(format!("no order {so}"))),
            }
        }
        OrderCmd::History { so } => {
            let id = parse_so(&so)?;
            print_json(&Target::connect(config)?.history(&id, config)?);
        }
        OrderCmd::Import { file } => {
            return Ok(crate::notify::cmd::import_orders(&file, config)?);
        }
        OrderCmd::Restore { so, by } => return jobs::restore(&so, &by, config),
    }
    Ok(ExitCode::SUCCESS)
}

/// `edesk desk list|show` (store or daemon). Returns the command back when
/// it is one that needs the whole desk (`reply`).
pub fn run_desk(cmd: DeskCmd, config: &Config) -> Result<Result<ExitCode, DeskCmd>, CtlError> {
    match cmd {
        DeskCmd::List { all, team, json } => {
            let tickets = Target::connect(config)?.tickets()?;
            print!(
                "{}",
                crate::desk::cmd::render_list(tickets, all, team, json)
            );
        }
        DeskCmd::Show { ticket, json } => {
            let id: TicketId = ticket.parse()?;
            let t = Target::connect(config)?.ticket(id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&t).unwrap_or_default());
            } else {
                print!("{}", crate::desk::cmd::show(&t));
            }
        }
        other => return Ok(Err(other)),
    }
    Ok(Ok(ExitCode::SUCCESS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("a+b@example.com"), "a+b@example.com");
        assert_eq!(path_segment("a/b%c?d#e f"), "a%2Fb%25c%3Fd%23e%20f");
    }

    #[test]
    fn daemon_address_prefers_the_written_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        config.http.bind = "0.0.0.0:7171".parse().unwrap();
        assert_eq!(daemon_addr(&config).to_string(), "127.0.0.1:7171");
        std::fs::write(
            dir.path().join(crate::config::HTTP_ADDR_FILE),
            "127.0.0.1:40001\n",
        )
        .unwrap();
        assert_eq!(daemon_addr(&config).to_string(), "127.0.0.1:40001");
    }
}
