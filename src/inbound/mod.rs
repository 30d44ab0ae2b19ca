//! Inbound mail: intake (LMTP, Maildir, pipe), parsing, classification,
//! threading, reply extraction and the decision.

pub mod intake;
pub mod lmtp;
pub mod maildir;
