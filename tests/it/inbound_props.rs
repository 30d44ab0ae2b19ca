//! Whatever the bytes, the analysis returns a decision and never panics.

use std::path::Path;

use edesk::inbound::{Abstain, MemWorld, analyze};
use proptest::prelude::*;

fn corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail");
    edesk::inbound::eval::eml_files(&dir)
        .unwrap()
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let d = analyze(&raw, &MemWorld::default(), &Abstain).unwrap();
        // Something unreadable is never answered.
        if d.kind == edesk::inbound::Kind::Malformed {
            prop_assert!(!d.should_reply);
        }
    }

    #[test]
    fn header_soup(lines in proptest::collection::vec("[ -~\t]{0,80}", 0..30), body in "\\PC{0,400}") {
        let raw = format!("{}\r\n\r\n{}", lines.join("\r\n"), body);
        let _ = analyze(raw.as_bytes(), &MemWorld::default(), &Abstain);
    }

    #[test]
    fn mutated_fixtures(pick in 0usize..1000, cut in 0usize..100_000, flips in proptest::collection::vec((0usize..100_000, any::<u8>()), 0..16)) {
        let corpus = corpus();
        let mut raw = corpus[pick % corpus.len()].clone();
        for (at, b) in flips {
            let n = raw.len().max(1);
            if let Some(x) = raw.get_mut(at % n) {
                *x = b;
            }
        }
        raw.truncate(cut % (raw.len() + 1));
        let _ = analyze(&raw, &MemWorld::default(), &Abstain);
    }
}
