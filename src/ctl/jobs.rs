//! `edesk jobs list|run|history` and `edesk order restore`, on the store or
//! through a running daemon (`/v1/jobs…`, `/v1/orders/{so}/restore`), with
//! the same output either way.

use std::process::ExitCode;

use serde_json::{Value, json};

use super::client::ClientError;
use super::{CtlError, Target, parse_so, print_json};
use crate::config::Config;
use crate::jobs::JobsError;
use crate::jobs::cmd::{JobsCmd, print_history, print_list, print_run};
use crate::notify::{Notifier, RestoreOutcome};

fn jobs_error(e: JobsError) -> CtlError {
    match e {
        JobsError::Store(s) => CtlError::Store(s),
        other => CtlError::Usage(other.to_string()),
    }
}

/// `edesk jobs …`.
pub fn run(cmd: JobsCmd, config: &Config) -> Result<ExitCode, CtlError> {
    match Target::connect(config)? {
        Target::Store(store) => {
            let notifier = Notifier::new(store, config)?;
            let s = crate::jobs::cmd::build(&notifier, config).map_err(jobs_error)?;
            crate::jobs::cmd::run_local(cmd, &s).map_err(jobs_error)
        }
        Target::Daemon(c) => match cmd {
            JobsCmd::List { json } => {
                let v: Value = c.get_json("/v1/jobs")?;
                print_list(&v["jobs"], json);
                Ok(ExitCode::SUCCESS)
            }
            JobsCmd::Run { name, json, .. } => {
                let v: Value = c.send_json("POST", &format!("/v1/jobs/{name}/run"), None)?;
                Ok(print_run(&v, json))
            }
            JobsCmd::History { name, limit, json } => {
                let v: Value = c.get_json(&format!("/v1/jobs/{name}/history?limit={limit}"))?;
                print_history(&v["runs"], json);
                Ok(ExitCode::SUCCESS)
            }
        },
    }
}

/// `edesk order restore SO [--by WHO]`: prints the outcome (`restored`
/// with who was told, or `not_archived`); exit 2 for an unknown order.
pub fn restore(so: &str, by: &str, config: &Config) -> Result<ExitCode, CtlError> {
    let id = parse_so(so)?;
    let out = match Target::connect(config)? {
        Target::Store(store) => Notifier::new(store, config)?.restore(&id, by)?,
        Target::Daemon(c) => {
            let body = json!({ "requested_by": by });
            match c.send_json::<RestoreOutcome>(
                "POST",
                &format!("/v1/orders/{id}/restore"),
                Some(&body),
            ) {
                Ok(o) => o,
                Err(ClientError::Status { status: 404, .. }) => RestoreOutcome::NoOrder,
                Err(e) => return Err(e.into()),
            }
        }
    };
    if out == RestoreOutcome::NoOrder {
        return Err(CtlError::Usage(format!("no order {so}")));
    }
    print_json(&out);
    Ok(ExitCode::SUCCESS)
}
