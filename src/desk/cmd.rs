//! `edesk desk …`: the support teams' view of escalations.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;

use super::tickets::{Desk, DeskError, Ticket, TicketId, TicketStatus};
use crate::config::Config;

/// Why an `edesk desk` command failed.
#[derive(Debug, thiserror::Error)]
pub enum DeskCmdError {
    /// The ticket operation failed (unknown ticket, bad reference, empty reply, mail not sent).
    #[error(transparent)]
    Desk(#[from] DeskError),
    /// The store could not be opened (e.g. the daemon holds it).
    #[error("cannot open the store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The holidays file of `calendar.holidays_file` is unreadable or malformed.
    #[error("calendar: {0}")]
    Calendar(#[from] super::sla::CalendarError),
    /// The notifier (outbox for `reply`) could not be set up.
    #[error("outbox: {0}")]
    Notify(#[from] crate::notify::NotifyError),
    /// The data directory could not be created.
    #[error("cannot create data directory: {0}")]
    DataDir(std::io::Error),
}

/// `edesk desk` subcommands: `list` and `show` go through `ctl` (the
/// running daemon, else the store); `reply` runs on the store ([`run`]).
#[derive(Debug, Subcommand)]
pub enum DeskCmd {
    /// List tickets (open ones unless --all).
    List {
        /// Include answered and closed tickets.
        #[arg(long)]
        all: bool,
        /// Only this team's tickets (`exportops`, `licensing`, …).
        #[arg(long)]
        team: Option<crate::domain::Team>,
        /// Print JSON (an array of tickets) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one ticket with its whole thread.
    Show {
        /// The ticket (`T-000042`, `t42` or `42`).
        ticket: String,
        /// Print the stored ticket as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Answer a ticket: the text is relayed to the customer in their thread
    /// (queued in the outbox; the daemon sends it). `--note` keeps it internal.
    Reply {
        /// The ticket (`T-000042`, `t42` or `42`).
        ticket: String,
        /// The answer (or use --file, or standard input).
        #[arg(long, conflicts_with = "file")]
        text: Option<String>,
        /// Read the answer from this file.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        /// Who answers (shown in the ticket).
        #[arg(long, default_value = "support")]
        by: String,
        /// An internal note: never sent to the customer.
        #[arg(long)]
        note: bool,
    },
}

/// Runs one `edesk desk` command on the store (the daemon must not hold it).
/// Only `reply` opens the outbox; nothing builds the FAQ index.
pub fn run(cmd: DeskCmd, config: &Config) -> Result<ExitCode, DeskCmdError> {
    std::fs::create_dir_all(&config.data_dir).map_err(DeskCmdError::DataDir)?;
    let store = crate::store::Store::open_with(&config.data_dir, &config.store.engine_settings())?;
    let desk = Desk::open(&store, super::calendar(config)?);
    let out: String;
    match cmd {
        DeskCmd::List { all, team, json } => {
            out = render_list(desk.list()?, all, team, json);
        }
        DeskCmd::Show { ticket, json } => {
            let id: TicketId = ticket.parse()?;
            let t = desk.get(id)?;
            if json {
                out = serde_json::to_string_pretty(&t).unwrap_or_default() + "\n";
            } else {
                out = show(&t);
            }
        }
        DeskCmd::Reply {
            ticket,
            text,
            file,
            by,
            note,
        } => {
            let id: TicketId = ticket.parse()?;
            let text = match (text, file) {
                (Some(t), _) => t,
                (None, Some(f)) => std::fs::read_to_string(&f)
                    .map_err(|e| DeskError::Input(format!("{}: {e}", f.display())))?,
                (None, None) => {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                        .map_err(|e| DeskError::Input(format!("standard input: {e}")))?;
                    s
                }
            };
            if text.trim().is_empty() {
                return Err(DeskError::Input("the reply is empty".into()).into());
            }
            let notifier = crate::notify::Notifier::new(store.clone(), config)?;
            let service = super::service(config, &store, std::sync::Arc::new(notifier))?;
            let t = service.answer(id, &by, &text, note)?;
            out = format!(
                "{} {} ({} events, status {:?})\n",
                t.id,
                if note {
                    "note added"
                } else {
                    "reply queued for the customer"
                },
                t.events.len(),
                t.status
            );
        }
    }
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(ExitCode::SUCCESS)
}

/// `desk list` output: open tickets (all with `all`), of one team if given,
/// as a table or as JSON.
pub fn render_list(
    tickets: Vec<Ticket>,
    all: bool,
    team: Option<crate::domain::Team>,
    json: bool,
) -> String {
    let tickets: Vec<Ticket> = tickets
        .into_iter()
        .filter(|t| all || t.status == TicketStatus::Open)
        .filter(|t| team.is_none_or(|team| t.team == team))
        .collect();
    if json {
        return serde_json::to_string_pretty(&tickets).unwrap_or_default() + "\n";
    }
    if tickets.is_empty() {
        return "no tickets\n".into();
    }
    let mut out =
        String::from("TICKET    STATUS    TEAM               DUE         CUSTOMER / SUBJECT\n");
    for t in &tickets {
        out.push_str(&format!(
            "{:<9} {:<9} {:<18} {}  {} / {}\n",
            t.id.to_string(),
            format!("{:?}", t.status).to_lowercase(),
            t.team.as_str(),
            t.due,
            t.customer,
            t.subject
        ));
    }
    out
}

/// A readable ticket: header, attached FAQ entry, then the thread.
pub fn show(t: &Ticket) -> String {
    let mut s = format!(
        "{}  [{}]  team: {}  due: {} ({} business day{})\ncustomer: {} ({})\nsubject: {}\n",
        t.id,
        format!("{:?}", t.status).to_lowercase(),
        t.team,
        t.due,
        t.sla_business_days,
        if t.sla_business_days == 1 { "" } else { "s" },
        t.customer,
        t.lang,
        t.subject
    );
    if !t.orders.is_empty() || !t.purchase_orders.is_empty() {
        let orders: Vec<String> = t
            .orders
            .iter()
            .map(|o| o.to_string())
            .chain(t.purchase_orders.iter().map(|p| format!("PO {p}")))
            .collect();
        s.push_str(&format!("orders: {}\n", orders.join(", ")));
    }
    if let Some(f) = &t.faq {
        s.push_str(&format!(
            "closest FAQ entry: {} ({:.2}) {}\n",
            f.id, f.confidence, f.question
        ));
    }
    if !t.reasons.is_empty() {
        s.push_str(&format!("why escalated: {}\n", t.reasons.join("; ")));
    }
    for e in &t.events {
        s.push_str(&format!(
            "\n--- {} {:?} by {}\n{}\n",
            e.at.format("%Y-%m-%d %H:%M UTC"),
            e.kind,
            e.by,
            e.text.trim_end()
        ));
    }
    s
}
