//! Throughput of the analysis (no sending). Prints figures, asserts none:
//! `cargo test --release --test it inbound_bench:: -- --ignored --nocapture`
//! (or `edesk mail bench tests/fixtures/mail`).

use std::path::Path;

use edesk::inbound::MemWorld;
use edesk::inbound::cmd::bench;

#[test]
#[ignore]
fn analysis_throughput() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail");
    let text = std::fs::read_to_string(dir.join("world.json")).unwrap();
    let w = MemWorld::from_json(&text).unwrap();
    println!("{}", bench(&dir, 50, &w, &w).unwrap());
}
