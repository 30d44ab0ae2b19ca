#![warn(missing_docs)]
//! edesk: the notification and support desk of an electronic software delivery business.
//!
//! See `README.md` for usage and `../shared/DESIGN.md` for the module map; each
//! module below owns one concern and talks to the others through typed values.

pub mod api;
pub mod bench;
pub mod chat;
pub mod cli;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod desk;
pub mod domain;
pub mod faq;
pub mod inbound;
pub mod jobs;
pub mod notify;
pub mod store;
