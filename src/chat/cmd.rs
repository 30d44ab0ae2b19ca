//! `edesk chat` and `edesk faq feedback`: both talk to the running daemon
//! over HTTP when one answers at `http.bind`, else work in-process on the
//! data directory.

use std::net::{Ipv4Addr, SocketAddr};

use super::answers::{Feedback, NO_ENTRY, report};
use super::console::{self, Local, Remote};
use super::{ChatError, ChatService};
use crate::config::Config;

/// Why `edesk chat` or `edesk faq feedback` failed.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The chat service (local or the daemon's answer) failed.
    #[error(transparent)]
    Chat(#[from] ChatError),
    /// No daemon answered and the in-process service could not start.
    #[error("{0}")]
    Local(String),
}

/// Where a daemon of this configuration answers (a wildcard bind is
/// reached on the loopback).
fn daemon_addr(config: &Config) -> SocketAddr {
    let mut a = config.http.bind;
    if a.ip().is_unspecified() {
        a.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    a
}

/// `edesk chat [--once TEXT]`.
pub fn chat(
    config: &Config,
    once: Option<&str>,
    local: impl FnOnce() -> Result<ChatService, String>,
) -> Result<(), CmdError> {
    let addr = daemon_addr(config);
    let (mut backend, whom): (Box<dyn console::Backend>, String) = match Remote::connect(addr) {
        Some(r) => (Box::new(r), format!("the daemon at {addr}")),
        None => (
            Box::new(Local::new(local().map_err(CmdError::Local)?)),
            format!("in-process on {}", config.data_dir.display()),
        ),
    };
    match once {
        Some(text) => console::once(backend.as_mut(), text)?,
        None => {
            let banner = format!(
                "edesk chat ({whom}). Type your question, `help` (or `aide`), `quit` to leave."
            );
            let history = config.data_dir.join("chat-history.txt");
            console::interactive(backend.as_mut(), &history, &banner)?;
        }
    }
    Ok(())
}

/// `edesk faq feedback [--json]`.
pub fn feedback(
    config: &Config,
    json: bool,
    local: impl FnOnce() -> Result<ChatService, String>,
) -> Result<(), CmdError> {
    let entries = match console::get_json(daemon_addr(config), "/v1/faq/feedback") {
        Some(v) => from_json(&v),
        None => {
            let chat = local().map_err(CmdError::Local)?;
            chat.persist()?;
            report(chat.store())?
        }
    };
    if json {
        for (id, f) in &entries {
            println!(
                "{}",
                serde_json::json!({"id": id, "up": f.up, "down": f.down, "abstained": f.abstained, "questions": f.questions})
            );
        }
        return Ok(());
    }
    if entries.is_empty() {
        println!("no feedback yet (ratings and abstained questions from chat appear here)");
        return Ok(());
    }
    println!(
        "{:<44} {:>4} {:>5} {:>9}  RECENT QUESTIONS",
        "FAQ ENTRY", "UP", "DOWN", "ABSTAINED"
    );
    for (id, f) in &entries {
        let shown = if id == NO_ENTRY {
            "(no entry came close)"
        } else {
            id.as_str()
        };
        let recent: Vec<String> = f
            .questions
            .iter()
            .rev()
            .take(3)
            .map(|q| format!("{q:?}"))
            .collect();
        println!(
            "{shown:<44} {:>4} {:>5} {:>9}  {}",
            f.up,
            f.down,
            f.abstained,
            recent.join("; ")
        );
    }
    Ok(())
}

fn from_json(v: &serde_json::Value) -> Vec<(String, Feedback)> {
    v.get("entries")
        .and_then(|e| e.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    let id = e.get("id")?.as_str()?.to_string();
                    let f = serde_json::from_value::<Feedback>(e.clone()).ok()?;
                    Some((id, f))
                })
                .collect()
        })
        .unwrap_or_default()
}
