//! `edesk store …`: the store's schema and moving it between engines.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::CtlError;
use crate::config::Config;
use crate::store::{Backend, EngineSettings, Store, TreeCopy, TreeStats};

/// `edesk store …`.
#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Bring the configured store's schema up to date (the daemon also does
    /// it at start) and print the version; a newer schema is refused.
    Migrate,
    /// Rows and logical bytes (keys, values) per tree of the configured
    /// store, and the size of the data directory's store on disk.
    Stats {
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Copy a whole store into an empty one on another engine, verified by
    /// row counts and checksums per tree:
    /// `edesk store copy --from sled DATA_DIR --to postgres URL` (and back).
    /// Stop the daemons using either store first.
    Copy {
        /// `sled DATA_DIR` or `postgres URL`.
        #[arg(long, num_args = 2, value_names = ["ENGINE", "LOCATION"], required = true)]
        from: Vec<String>,
        /// `sled DATA_DIR` or `postgres URL`; must hold no data yet.
        #[arg(long, num_args = 2, value_names = ["ENGINE", "LOCATION"], required = true)]
        to: Vec<String>,
        /// Print the per-tree report (rows, checksums) as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `edesk store …` on the stores directly; the daemons must be stopped for `copy`.
pub fn run(cmd: StoreCmd, config: &Config) -> Result<ExitCode, CtlError> {
    match cmd {
        StoreCmd::Migrate => {
            let store = Store::open_with(&config.data_dir, &config.store.engine_settings())?;
            let (engine, version) = store.schema()?;
            println!("{engine} store schema version {version}: up to date");
            Ok(ExitCode::SUCCESS)
        }
        StoreCmd::Stats { json } => {
            let store = Store::open_with(&config.data_dir, &config.store.engine_settings())?;
            let stats = store.stats()?;
            let disk = crate::store::disk_bytes(&config.data_dir);
            print_stats(&stats, disk, json);
            Ok(ExitCode::SUCCESS)
        }
        StoreCmd::Copy { from, to, json } => {
            let (from, to) = (location(&from, config)?, location(&to, config)?);
            let source = open(&from)?;
            let target = open(&to)?;
            if target.holds_data()? {
                return Err(CtlError::Usage(format!(
                    "the target store {} already holds data; copy into an empty one",
                    to.describe()
                )));
            }
            let report = source.copy_into(&target)?;
            print_report(&report, json, &from, &to);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One side of a copy.
struct Location {
    dir: PathBuf,
    backend: Backend,
    cache_bytes: u64,
}

impl Location {
    fn describe(&self) -> String {
        match &self.backend {
            Backend::Sled => format!("sled {}", self.dir.display()),
            Backend::Redb => format!("redb {}", self.dir.display()),
            Backend::Postgres { url } => format!("postgres {}", redact(url)),
        }
    }
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

fn location(args: &[String], config: &Config) -> Result<Location, CtlError> {
    let [engine, place] = args else {
        return Err(CtlError::Usage("expected ENGINE LOCATION".into()));
    };
    let cache_bytes = config.store.engine_settings().cache_bytes;
    match engine.as_str() {
        "sled" => Ok(Location {
            dir: PathBuf::from(place),
            backend: Backend::Sled,
            cache_bytes,
        }),
        "redb" => Ok(Location {
            dir: PathBuf::from(place),
            backend: Backend::Redb,
            cache_bytes,
        }),
        "postgres" | "postgresql" => Ok(Location {
            dir: config.data_dir.clone(),
            backend: Backend::Postgres { url: place.clone() },
            cache_bytes,
        }),
        other => Err(CtlError::Usage(format!(
            "unknown store engine {other:?}: use sled DATA_DIR, redb DATA_DIR or postgres URL"
        ))),
    }
}

fn open(at: &Location) -> Result<Store, CtlError> {
    let settings = EngineSettings {
        cache_bytes: at.cache_bytes,
        backend: at.backend.clone(),
        ..EngineSettings::default()
    };
    Store::open_with(&at.dir, &settings)
        .map_err(|e| CtlError::Usage(format!("cannot open the store {}: {e}", at.describe())))
}

fn print_report(report: &[TreeCopy], json: bool, from: &Location, to: &Location) {
    if json {
        let v = serde_json::json!({
            "from": from.describe(),
            "to": to.describe(),
            "trees": report,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    println!("copied {} → {}", from.describe(), to.describe());
    for r in report {
        println!(
            "  {:<16} {:>10} rows  sha256 {}",
            r.tree,
            r.rows,
            &r.sha256[..16]
        );
    }
    let rows: u64 = report.iter().map(|r| r.rows).sum();
    println!("{rows} rows in {} trees, verified", report.len());
}

fn print_stats(stats: &[TreeStats], disk: u64, json: bool) {
    let logical: u64 = stats.iter().map(|s| s.key_bytes + s.value_bytes).sum();
    if json {
        let v = serde_json::json!({
            "trees": stats,
            "logical_bytes": logical,
            "disk_bytes": disk,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    println!(
        "{:<16} {:>10} {:>14} {:>14}",
        "tree", "rows", "key bytes", "value bytes"
    );
    for s in stats.iter().filter(|s| s.rows > 0) {
        println!(
            "{:<16} {:>10} {:>14} {:>14}",
            s.tree, s.rows, s.key_bytes, s.value_bytes
        );
    }
    println!("logical {logical} bytes; on disk {disk} bytes (sled's files; 0 on PostgreSQL)");
}
