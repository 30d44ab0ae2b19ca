//! `edesk mail …`: inspect messages, evaluate the extractor, benchmark the
//! analysis. Nothing here sends mail or changes state.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Subcommand;

use super::InboundError;
use super::decide::{Decision, analyze};
use super::eval;
use super::ports::{Directory, FaqOracle, MemWorld};
use crate::config::Config;

/// `edesk mail …` subcommands (clap).
#[derive(Debug, Subcommand)]
pub enum MailCmd {
    /// Show what the daemon would do with each message, without doing it.
    Inspect {
        /// One JSON object per message (DESIGN.md's contract).
        #[arg(long)]
        json: bool,
        /// Orders, own addresses and FAQ entries from a JSON file instead of
        /// the store (see `MemWorld`).
        #[arg(long, value_name = "FILE")]
        world: Option<PathBuf>,
        /// `.eml` files; `-` reads one message from stdin.
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Deliver one message from standard input (an MTA pipe): it is written
    /// durably to the daemon's Maildir and processed by the daemon. Exit code
    /// 75 (EX_TEMPFAIL) when it cannot be stored, so the MTA retries.
    Deliver {
        /// Read the message from this file instead of standard input.
        file: Option<PathBuf>,
        /// The envelope sender (Postfix pipe: `${sender}`; empty for `<>`).
        #[arg(long, allow_hyphen_values = true)]
        sender: Option<String>,
        /// The envelope recipient(s) (Postfix pipe: `${recipient}`).
        #[arg(long, num_args = 1.., allow_hyphen_values = true)]
        recipient: Vec<String>,
    },
    /// Score the reply extractor on `NAME.eml` + `NAME.expected.txt` pairs.
    Eval {
        /// Directory holding the `NAME.eml` / `NAME.expected.txt` pairs.
        dir: PathBuf,
        /// Orders, own addresses and FAQ entries from this JSON file instead of
        /// the store (see `MemWorld`).
        #[arg(long, value_name = "FILE")]
        world: Option<PathBuf>,
        /// Print the report as JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Route accuracy on labelled messages (JSON Lines of `RouteCase`),
    /// per class and language, with the real FAQ and the world's orders.
    RouteEval {
        /// Routing sets (`tests/fixtures/routing/dev.jsonl`, …).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Orders the cases reply to (default: none).
        #[arg(long, value_name = "FILE")]
        world: Option<PathBuf>,
        /// Print the report as JSON instead of a summary.
        #[arg(long)]
        json: bool,
        /// Print every case's outcome and reasons, one JSON object per
        /// line, instead of the report (`scripts/route-gate.py` reads it).
        #[arg(long, conflicts_with = "json")]
        cases: bool,
        /// Score the hand-written features alone, without the classifier
        /// fitted on labelled mail.
        #[arg(long)]
        without_learned: bool,
        /// Also write the cases as the classifier's training examples
        /// (JSON Lines; `faq-index/routing-train.jsonl` is written so).
        #[arg(long, value_name = "FILE")]
        export_training: Option<PathBuf>,
    },
    /// Messages per second through parse → classify → thread → extract → decide.
    Bench {
        /// Directory of `.eml` files to analyze.
        dir: PathBuf,
        /// Passes over the corpus.
        #[arg(long, default_value_t = 50)]
        rounds: usize,
        /// Orders, own addresses and FAQ entries from this JSON file instead of
        /// the store (see `MemWorld`).
        #[arg(long, value_name = "FILE")]
        world: Option<PathBuf>,
    },
}

/// The directory the daemon uses: the store in the data directory.
pub fn directory(config: &Config) -> Result<Box<dyn Directory>, InboundError> {
    let store =
        crate::store::Store::open_with(&config.data_dir, &config.store.engine_settings())
            .map_err(|e| InboundError::Service(format!("{}: {e}", config.data_dir.display())))?;
    Ok(Box::new(super::store_dir::StoreDirectory::new(
        store,
        &config.mail.domain,
        config.desk.company_domains,
    )))
}

/// The FAQ the daemon uses.
pub fn faq(config: &Config) -> Result<Box<dyn FaqOracle>, InboundError> {
    let engine = crate::faq::Engine::open(
        &crate::faq::Sources::resolve(config.faq.dir.as_deref()),
        &config.data_dir,
        config.faq.threshold,
    )
    .map_err(|e| InboundError::Service(format!("FAQ: {e}")))?;
    Ok(Box::new(super::adapters::EngineOracle {
        engine: std::sync::Arc::new(engine),
        threshold: config.inbound.faq_threshold,
    }))
}

fn load_world(path: &Path) -> Result<MemWorld, InboundError> {
    let text = std::fs::read_to_string(path).map_err(|source| InboundError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    MemWorld::from_json(&text).map_err(|e| InboundError::World {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

type Ports = (Box<dyn Directory>, Box<dyn FaqOracle>);

fn ports(world: Option<&Path>, config: &Config) -> Result<Ports, InboundError> {
    Ok(match world {
        Some(p) => {
            let w = load_world(p)?;
            (Box::new(w.clone()), Box::new(w))
        }
        None => (directory(config)?, faq(config)?),
    })
}

/// Runs one subcommand; the exit code is 75 when `deliver` cannot store
/// the message, so the MTA retries.
pub fn run(cmd: MailCmd, config: &Config) -> Result<ExitCode, InboundError> {
    match cmd {
        MailCmd::Deliver {
            file,
            sender,
            recipient,
        } => {
            let name = file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_else(|| "-".into());
            let envelope = super::maildir::PipeEnvelope {
                mail_from: sender,
                rcpt_to: recipient,
            };
            let stored = read_input(&name).and_then(|raw| {
                super::maildir::deliver(&config.maildir(), &raw, &envelope).map_err(|source| {
                    InboundError::Io {
                        path: config.maildir(),
                        source,
                    }
                })
            });
            match stored {
                Ok(path) => {
                    tracing::debug!(path = %path.display(), "message stored");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("edesk: cannot store the message, try again later: {e}");
                    Ok(ExitCode::from(75))
                }
            }
        }
        MailCmd::Inspect { json, world, files } => {
            let (dir, faq) = ports(world.as_deref(), config)?;
            let verifier = super::verify::from_config(config)
                .map_err(|e| InboundError::Service(e.to_string()))?;
            inspect(&files, json, dir.as_ref(), faq.as_ref(), verifier.as_ref())
        }
        MailCmd::Eval { dir, world, json } => {
            let (d, faq) = ports(world.as_deref(), config)?;
            let report = eval::evaluate(&dir, d.as_ref(), faq.as_ref())?;
            let out = if json {
                serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
            } else {
                report.summary()
            };
            write_out(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        MailCmd::RouteEval {
            files,
            world,
            json,
            cases: every_case,
            without_learned,
            export_training,
        } => {
            let w = match world {
                Some(p) => load_world(&p)?,
                None => MemWorld::default(),
            };
            let faq = faq(config)?;
            let mut cases = Vec::new();
            for f in &files {
                cases.extend(eval::load_route_cases(f)?);
            }
            let learned = if without_learned {
                eval::Learned::Off
            } else {
                eval::Learned::Unseen
            };
            let report = eval::evaluate_routes(&cases, &w, faq.as_ref(), learned)?;
            if let Some(path) = export_training {
                let lines: String = eval::training_examples(&report)
                    .iter()
                    .map(|e| serde_json::to_string(e).unwrap_or_default() + "\n")
                    .collect();
                std::fs::write(&path, lines).map_err(|source| InboundError::Io { path, source })?;
            }
            let out = if every_case {
                report
                    .cases
                    .iter()
                    .map(|c| serde_json::to_string(c).unwrap_or_default() + "\n")
                    .collect()
            } else if json {
                serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
            } else {
                report.summary()
            };
            write_out(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        MailCmd::Bench { dir, rounds, world } => {
            let (d, faq) = ports(world.as_deref(), config)?;
            let out = bench(&dir, rounds, d.as_ref(), faq.as_ref())?;
            write_out(&out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn write_out(s: &str) -> Result<(), InboundError> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())
        .and_then(|_| out.flush())
        .map_err(InboundError::Output)
}

fn read_input(name: &str) -> Result<Vec<u8>, InboundError> {
    if name == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|source| InboundError::Io {
                path: PathBuf::from("-"),
                source,
            })?;
        return Ok(buf);
    }
    std::fs::read(name).map_err(|source| InboundError::Io {
        path: PathBuf::from(name),
        source,
    })
}

/// One line of JSON, or a short human-readable block.
pub fn render(file: &str, d: &Decision, json: bool) -> String {
    if json {
        return serde_json::to_string(&d.inspect_json(file)).unwrap_or_default() + "\n";
    }
    let mut s = format!(
        "{file}: {} → {}{}\n  from {} lang {} orders [{}] authorized {}\n",
        d.kind.as_str(),
        d.route,
        if d.should_reply { " (reply)" } else { "" },
        d.sender.as_deref().unwrap_or("?"),
        d.lang,
        d.orders
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        d.authorized
    );
    if let Some(f) = &d.faq {
        s.push_str(&format!(
            "  faq: {} ({:.2})\n",
            f.question.as_deref().unwrap_or("-"),
            f.confidence
        ));
    }
    for r in &d.reasons {
        s.push_str(&format!("  - {r}\n"));
    }
    if !d.new_text.is_empty() {
        for l in d.new_text.lines() {
            s.push_str(&format!("  | {l}\n"));
        }
    }
    s
}

fn inspect(
    files: &[String],
    json: bool,
    dir: &dyn Directory,
    faq: &dyn FaqOracle,
    verifier: Option<&super::verify::Verifier>,
) -> Result<ExitCode, InboundError> {
    let mut failed = false;
    for f in files {
        match read_input(f) {
            Ok(raw) => {
                // A file has no envelope: SPF only from its Received line.
                let conn = super::verify::Connection::from_received(&raw, None);
                let verified = verifier.and_then(|v| v.verify(&raw, &conn));
                let d = super::decide::analyze_with(&raw, dir, faq, verified.as_ref())?;
                write_out(&render(f, &d, json))?
            }
            Err(e) => {
                eprintln!("edesk: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs the whole analysis over a corpus held in memory and reports rates.
pub fn bench(
    dir: &Path,
    rounds: usize,
    d: &dyn Directory,
    faq: &dyn FaqOracle,
) -> Result<String, InboundError> {
    let mut corpus = Vec::new();
    for f in eval::eml_files(dir)? {
        corpus.push(std::fs::read(&f).map_err(|source| InboundError::Io { path: f, source })?);
    }
    let n = corpus.len() * rounds.max(1);
    let bytes: usize = corpus.iter().map(Vec::len).sum::<usize>() * rounds.max(1);
    // Warm up lazily built regexes and the language models.
    for raw in &corpus {
        std::hint::black_box(analyze(raw, d, faq)?);
    }
    let start = Instant::now();
    for _ in 0..rounds.max(1) {
        for raw in &corpus {
            std::hint::black_box(analyze(raw, d, faq)?);
        }
    }
    let full = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for _ in 0..rounds.max(1) {
        for raw in &corpus {
            std::hint::black_box(mail_parser::MessageParser::default().parse(raw.as_slice()));
        }
    }
    let parse_only = start.elapsed().as_secs_f64();
    let rate = |secs: f64| {
        if secs > 0.0 {
            n as f64 / secs
        } else {
            f64::INFINITY
        }
    };
    Ok(format!(
        "{} messages ({} files × {} rounds, {:.1} MB), one thread\nfull analysis: {:.0} messages/s ({:.1} µs/message)\nmail-parser alone: {:.0} messages/s\n",
        n,
        corpus.len(),
        rounds.max(1),
        bytes as f64 / 1e6,
        rate(full),
        full * 1e6 / n.max(1) as f64,
        rate(parse_only)
    ))
}
