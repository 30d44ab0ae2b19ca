//! `edesk faq …` subcommands.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use super::eval::{bench, evaluate, load_cases};
use super::{Answer, Engine, FaqError, Sources};
use crate::config::Config;
use crate::domain::Lang;

/// `edesk faq …` subcommands (clap).
#[derive(Debug, Subcommand)]
pub enum FaqCmd {
    /// Parse the Word export (UTF-8 text) into the editable `faq-index/` files.
    Import {
        /// The export saved as UTF-8 text.
        source: PathBuf,
        /// Output directory (also where `corrections.toml` is read from).
        #[arg(long, default_value = "faq-index")]
        out: PathBuf,
    },
    /// Ask a question.
    Ask {
        /// Print the JSON answer (DESIGN.md's contract) instead of readable text.
        #[arg(long)]
        json: bool,
        /// Answer in this language instead of detecting it.
        #[arg(long)]
        lang: Option<Lang>,
        /// One question per line on stdin, one JSON object per line out.
        #[arg(long)]
        stdin: bool,
        /// The question; the words are joined with spaces.
        question: Vec<String>,
    },
    /// R@1, R@3, MRR, abstention on a JSON Lines question set.
    Eval {
        /// JSON Lines question set (the format of `faq-dev.jsonl`).
        file: PathBuf,
    },
    /// Questions/s and latency percentiles (default: the dev questions).
    Bench {
        /// An eval file whose questions are asked; default
        /// `tests/fixtures/faq/faq-dev.jsonl`.
        file: Option<PathBuf>,
        /// How many times the whole question list is asked (at least 1).
        #[arg(long, default_value_t = 500)]
        rounds: usize,
    },
    /// Show how a question is analyzed and ranked.
    Explain {
        /// Analyze in this language instead of detecting it.
        #[arg(long)]
        lang: Option<Lang>,
        /// The question; the words are joined with spaces.
        question: Vec<String>,
    },
    /// Rebuild the index in the data directory now.
    Reindex,
}

fn engine(config: &Config) -> Result<Engine, FaqError> {
    Engine::open(
        &Sources::resolve(config.faq.dir.as_deref()),
        &config.data_dir,
        config.faq.threshold,
    )
}

fn io_err(source: std::io::Error) -> FaqError {
    FaqError::Io {
        path: PathBuf::from("<stdio>"),
        source,
    }
}

fn json(a: &Answer) -> Result<String, FaqError> {
    serde_json::to_string(a).map_err(|e| FaqError::Other(e.to_string()))
}

/// Runs one subcommand with the FAQ settings of `config`; output goes to
/// stdout, errors are returned for the caller to print.
pub fn run(cmd: FaqCmd, config: &Config) -> Result<ExitCode, FaqError> {
    match cmd {
        FaqCmd::Import { source, out } => {
            for f in super::import::import_to_dir(&source, &out)? {
                println!("wrote {f}");
            }
            Ok(ExitCode::SUCCESS)
        }
        FaqCmd::Ask {
            json: as_json,
            lang,
            stdin,
            question,
        } => {
            let engine = engine(config)?;
            if stdin {
                return ask_stdin(&engine, lang, as_json);
            }
            let answer = engine.ask(&question.join(" "), lang);
            if as_json {
                println!("{}", json(&answer)?);
            } else {
                print!("{}", readable(&answer));
            }
            Ok(ExitCode::SUCCESS)
        }
        FaqCmd::Eval { file } => {
            let engine = engine(config)?;
            let report = evaluate(&engine, &load_cases(&file)?)?;
            print!("{report}");
            let m = engine.model();
            println!(
                "confidence model: bias {:.2}, weights (coverage, question coverage, margin × coverage, matched units) {:.2?}; threshold {}",
                m.bias,
                m.weights,
                engine.threshold()
            );
            Ok(ExitCode::SUCCESS)
        }
        FaqCmd::Bench { file, rounds } => {
            let engine = engine(config)?;
            let questions = bench_questions(file.as_deref())?;
            println!("{}", bench(&engine, &questions, rounds.max(1)));
            Ok(ExitCode::SUCCESS)
        }
        FaqCmd::Explain { lang, question } => {
            print!("{}", engine(config)?.explain(&question.join(" "), lang));
            Ok(ExitCode::SUCCESS)
        }
        FaqCmd::Reindex => {
            let dir = config.data_dir.join("faq-index");
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|source| FaqError::Io {
                    path: dir.clone(),
                    source,
                })?;
            }
            let engine = engine(config)?;
            println!(
                "indexed {} topics into {}",
                engine.entries(Lang::En).len(),
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Lines are decoded lossily: a bad byte must not stop the stream, and the
/// output keeps one object per input line, in order.
fn ask_stdin(engine: &Engine, lang: Option<Lang>, as_json: bool) -> Result<ExitCode, FaqError> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = input.read_until(b'\n', &mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let line = String::from_utf8_lossy(&buf);
        let answer = engine.ask(&line, lang);
        if as_json {
            writeln!(out, "{}", json(&answer)?).map_err(io_err)?;
        } else {
            write!(out, "{}", readable(&answer)).map_err(io_err)?;
        }
    }
    out.flush().map_err(io_err)?;
    Ok(ExitCode::SUCCESS)
}

fn readable(a: &Answer) -> String {
    let mut s = String::new();
    match (&a.question, &a.answer, a.answered) {
        (Some(q), Some(ans), true) => {
            s.push_str(&format!(
                "Q: {q}\n\n{ans}\n\n(confidence {:.2})\n",
                a.confidence
            ));
            if !a.alternatives.is_empty() {
                s.push_str(match a.lang {
                    Lang::En => "See also:\n",
                    Lang::Fr => "Voir aussi :\n",
                });
            }
        }
        _ => {
            let msg = match a.lang {
                Lang::En => "I am not sure I understood.",
                Lang::Fr => "Je ne suis pas sûr d'avoir compris.",
            };
            s.push_str(&format!("{msg} (confidence {:.2})\n", a.confidence));
            if let Some(q) = &a.question {
                let ask = match a.lang {
                    Lang::En => "Did you mean:",
                    Lang::Fr => "Vouliez-vous dire :",
                };
                s.push_str(&format!("{ask}\n  - {q}\n"));
            }
        }
    }
    for alt in &a.alternatives {
        s.push_str(&format!("  - {}\n", alt.question));
    }
    s
}

/// The questions of an eval file; by default the dev set in the repository.
fn bench_questions(file: Option<&Path>) -> Result<Vec<String>, FaqError> {
    let default = PathBuf::from("tests/fixtures/faq/faq-dev.jsonl");
    let path = file.unwrap_or(&default);
    Ok(load_cases(path)?.into_iter().map(|c| c.q).collect())
}
