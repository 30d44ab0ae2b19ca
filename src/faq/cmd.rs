//! `edesk faq …` subcommands.

use std::process::ExitCode;

use clap::Subcommand;

use super::FaqError;
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum FaqCmd {
    /// Ask a question.
    Ask {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        lang: Option<crate::domain::Lang>,
        #[arg(long)]
        stdin: bool,
        question: Vec<String>,
    },
}

pub fn run(cmd: FaqCmd, _config: &Config) -> Result<ExitCode, FaqError> {
    match cmd {
        FaqCmd::Ask { .. } => Err(FaqError::Other("not built yet".into())),
    }
}
