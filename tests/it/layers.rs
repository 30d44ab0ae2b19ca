//! The dependency direction of `src/` (README "Layout"): each top-level
//! module may use only the modules listed for it. A new arrow, and with it
//! any cycle, fails here with the file that introduced it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What each module may use. `main.rs` and `lib.rs` are wiring.
const ALLOWED: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("store", &["domain"]),
    ("config", &["domain", "store"]),
    ("faq", &["config", "domain"]),
    ("notify", &["config", "domain", "store"]),
    ("desk", &["config", "domain", "notify", "store"]),
    (
        "inbound",
        &["config", "desk", "domain", "faq", "notify", "store"],
    ),
    (
        "chat",
        &["config", "desk", "domain", "faq", "notify", "store"],
    ),
    ("jobs", &["config", "desk", "domain", "notify", "store"]),
    (
        "api",
        &[
            "chat", "config", "desk", "domain", "faq", "inbound", "jobs", "notify", "store",
        ],
    ),
    (
        "daemon",
        &[
            "api", "chat", "config", "desk", "domain", "faq", "inbound", "jobs", "notify", "store",
        ],
    ),
    (
        "ctl",
        &["config", "desk", "domain", "jobs", "notify", "store"],
    ),
    (
        "bench",
        &[
            "config", "daemon", "desk", "domain", "jobs", "notify", "store",
        ],
    ),
    (
        "cli",
        &[
            "bench", "chat", "config", "ctl", "desk", "faq", "inbound", "jobs", "notify",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file names as `crate::NAME` or in a
/// `crate::{NAME, …}` group (over several lines too), outside comments and
/// `#[cfg(test)]` code.
fn uses(source: &str, modules: &BTreeSet<&str>) -> BTreeSet<String> {
    let code: String = source
        .split("#[cfg(test)]")
        .next()
        .unwrap_or("")
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let names = match rest.strip_prefix('{') {
            Some(group) => group_heads(group),
            None => vec![ident(rest)],
        };
        found.extend(names.into_iter().filter(|n| modules.contains(n.as_str())));
    }
    found
}

fn ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The first path segment of each item of a `{…}` use group.
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = vec![ident(group)];
    let mut depth = 0;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => heads.push(ident(&group[i + 1..])),
            _ => {}
        }
    }
    heads
}

#[test]
fn modules_depend_only_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: BTreeSet<&str> = ALLOWED.iter().map(|(m, _)| *m).collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs");
        if module == "main" || module == "lib" {
            continue;
        }
        let allowed = ALLOWED
            .iter()
            .find(|(m, _)| *m == module)
            .unwrap_or_else(|| {
                panic!(
                    "src/{} is a new top-level module: add it to ALLOWED and README",
                    rel.display()
                )
            })
            .1;
        for used in uses(&std::fs::read_to_string(&file).unwrap(), &modules) {
            if used != module && !allowed.contains(&used.as_str()) {
                violations.push(format!("src/{}: {module} -> {used}", rel.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "upward or new dependencies:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_scanner_sees_grouped_and_plain_paths() {
    let modules: BTreeSet<&str> = ["store", "desk", "faq"].into_iter().collect();
    let found = uses(
        "use crate::store::Store;\nuse crate::{\n    domain::{X, Y},\n    desk,\n};\n// crate::faq in a comment\n#[cfg(test)]\nuse crate::faq;",
        &modules,
    );
    assert_eq!(
        found,
        ["desk", "store"].iter().map(|s| s.to_string()).collect()
    );
}
