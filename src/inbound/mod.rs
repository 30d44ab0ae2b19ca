//! Inbound mail: from raw bytes to a decision.
//!
//! parse (mail-parser, behind `catch_unwind`) → classify (auto-reply, bounce,
//! list, loop, malformed: machine mail is never answered) → extract the new
//! text (quotes, signatures, disclaimers; EN and FR clients) → thread (reply
//! token, our Message-IDs, SO#/PO# in the new text) → language → authorize
//! the sender → decide (mail command, FAQ answer, or escalation routed by
//! `desk::routing`).
//!
//! The analysis is one pure function, [`analyze`]`(raw, &dyn Directory,
//! &dyn FaqOracle) -> Decision`; the daemon and `edesk mail inspect` both
//! call it. [`Directory`] and [`FaqOracle`] are the only things inbound needs
//! from the store and the FAQ engine; [`MemWorld`] implements both in memory.

#![warn(missing_docs)]

pub mod adapters;
pub mod auth;
pub mod classify;
pub mod cmd;
pub mod command;
pub mod decide;
pub mod dsn;
pub mod eval;
pub mod extract;
pub mod html;
pub mod intake;
pub mod lang;
pub mod lmtp;
pub mod maildir;
pub mod orders;
pub mod parse;
pub mod ports;
pub mod route;
pub mod store_dir;
pub mod thread;
pub mod verify;
pub mod worker;

use std::path::PathBuf;

pub use classify::{Bounce, Kind};
pub use command::MailCommand;
pub use decide::{Action, Decision, FaqShown, analyze};
pub use orders::NamedOrder;
pub use ports::{Abstain, Directory, FaqHit, FaqOracle, MemWorld, OrderRef};

/// Why an `edesk mail …` command could not run; the mail analysis itself
/// never fails on bad mail (it returns a machine decision).
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// Reading a mail, a world file or an eval set failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A world JSON file (`--world`) or a JSON Lines eval set does not parse.
    #[error("{path}: {message}")]
    World {
        /// The file concerned.
        path: PathBuf,
        /// The JSON error, with the line number for JSON Lines.
        message: String,
    },
    /// The store or the FAQ engine behind the command could not be opened.
    #[error("{0}")]
    Service(String),
    /// Writing the command's output to stdout failed.
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
    /// A store lookup failed during the analysis.
    #[error(transparent)]
    Directory(#[from] ports::DirectoryError),
}
