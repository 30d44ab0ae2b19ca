//! The integration tests, one binary (it links once, which matters on two
//! cores): one module per area, run one with `cargo test --test it AREA::`.
//! Tests that need programs from outside the Rust toolchain (swaks,
//! aiosmtpd, Postfix, Chromium, a tmpfs mount) are `#[ignore]`d; `.ci/run`
//! installs the programs and runs them by module, see README "Tests".

mod support;

mod chat;
mod cli_live;
mod discord;
mod disk_full;
mod faq_cli;
mod faq_engine;
mod faq_import;
mod hostile_clients;
mod inbound_bench;
mod inbound_corpus;
mod inbound_props;
mod intake_lmtp;
mod interop;
mod jobs;
mod jobs_e2e;
mod layers;
mod notify_crash;
mod notify_headers;
mod notify_smtp;
mod order_page;
mod orders_api;
mod orders_cli;
mod postfix;
mod store;
mod stress_intake;
mod support_flow;
mod two_daemons;
