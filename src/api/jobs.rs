//! Scheduled jobs over HTTP (`/v1/jobs…`, the same as `edesk jobs`), the
//! order actions the jobs' mails lead to (restore from the archive, PAKs
//! registered), and the job lines of `/metrics`.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::domain::OrderId;
use crate::jobs::{JobInfo, JobsError};
use crate::notify::{NotifyError, PakOutcome, RestoreOutcome};

/// `/v1/jobs` (list, run now, history) and the order actions jobs depend on (`restore`,
/// `pak-registered`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs", get(list))
        .route("/v1/jobs/{name}/run", post(run_now))
        .route("/v1/jobs/{name}/history", get(history))
        .route("/v1/orders/{so}/restore", post(restore))
        .route("/v1/orders/{so}/pak-registered", post(pak_registered))
}

fn jobs_error(e: JobsError) -> ApiError {
    match e {
        JobsError::Store(s) => ApiError::from_store(&s),
        JobsError::NoSuchJob { ref name, .. } => ApiError {
            status: StatusCode::NOT_FOUND,
            body: json!({"error": e.to_string(), "job": name}),
        },
        JobsError::Running(ref name) => ApiError {
            status: StatusCode::CONFLICT,
            body: json!({"error": e.to_string(), "job": name}),
        },
        other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

fn notify_error(e: NotifyError) -> ApiError {
    match e {
        NotifyError::Store(s) => ApiError::from_store(&s),
        other => {
            tracing::error!(error = %other, "request failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

fn joined(e: tokio::task::JoinError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Store reads and runs block: off the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(joined)?
}

async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let jobs = state.jobs.clone();
    let list = blocking(move || jobs.list().map_err(jobs_error)).await?;
    Ok(Json(json!({ "jobs": list })))
}

/// Runs the job now and answers with its run record when it ends (`409`
/// when it is already running: not started twice).
async fn run_now(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let jobs = state.jobs.clone();
    let record = blocking(move || jobs.run_now(&name).map_err(jobs_error)).await?;
    Ok(Json(serde_json::to_value(record).unwrap_or_default()))
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
}

async fn history(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let limit = q.limit.unwrap_or(20).min(1000);
    let jobs = state.jobs.clone();
    let runs = blocking(move || jobs.history(&name, limit).map_err(jobs_error)).await?;
    Ok(Json(json!({ "runs": runs })))
}

fn parse_so(s: &str) -> Result<OrderId, ApiError> {
    s.parse().map_err(|e: crate::domain::IdError| ApiError {
        status: StatusCode::BAD_REQUEST,
        body: json!({"error": e.to_string(), "field": "so", "value": s}),
    })
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ByBody {
    /// Who asks (an address allowed to see the order gets the mail).
    #[serde(alias = "by")]
    requested_by: Option<String>,
}

fn by_body(body: &Bytes) -> Result<ByBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ByBody::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError {
        status: StatusCode::BAD_REQUEST,
        body: json!({"error": format!("malformed body: {e}")}),
    })
}

fn no_order(so: &OrderId) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        body: json!({"error": format!("no order {so}"), "so": so.as_str()}),
    }
}

/// `POST /v1/orders/{so}/restore` `{"requested_by"?}`: `200` with
/// `{"outcome": "restored", "notified": […]}`, or `"not_archived"` (nothing
/// done; asking twice restores once); `404` for an unknown order.
async fn restore(
    State(state): State<AppState>,
    Path(so): Path<String>,
    body: Bytes,
) -> Result<Json<RestoreOutcome>, ApiError> {
    let so = parse_so(&so)?;
    let by = by_body(&body)?.requested_by.unwrap_or_else(|| "api".into());
    let n = state.notifier.clone();
    let so2 = so.clone();
    let out = blocking(move || n.restore(&so2, &by).map_err(notify_error)).await?;
    match out {
        RestoreOutcome::NoOrder => Err(no_order(&so)),
        other => Ok(Json(other)),
    }
}

/// `POST /v1/orders/{so}/pak-registered`: PAK reminders stop for the order.
async fn pak_registered(
    State(state): State<AppState>,
    Path(so): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let so = parse_so(&so)?;
    let by = by_body(&body)?.requested_by.unwrap_or_else(|| "api".into());
    let n = state.notifier.clone();
    let so2 = so.clone();
    let out = blocking(move || n.mark_pak_registered(&so2, &by).map_err(notify_error)).await?;
    match out {
        PakOutcome::NoOrder => Err(no_order(&so)),
        o => Ok(Json(json!({"so": so.as_str(), "outcome": o}))),
    }
}

/// Job lines of `/metrics`: runs, failures, overlaps, skipped slots and
/// interrupted runs per job (counters kept with the job's state), whether
/// it runs now, and when it last succeeded.
pub fn metrics(state: &AppState) -> Result<String, ApiError> {
    let list = state.jobs.list().map_err(jobs_error)?;
    let mut out = String::new();
    type Family = (
        &'static str,
        &'static str,
        &'static str,
        fn(&JobInfo) -> i64,
    );
    let families: [Family; 7] = [
        (
            "edesk_job_runs_total",
            "counter",
            "Finished runs per job.",
            |j| j.runs as i64,
        ),
        (
            "edesk_job_failures_total",
            "counter",
            "Failed runs per job.",
            |j| j.failures as i64,
        ),
        (
            "edesk_job_overlaps_total",
            "counter",
            "Slots not started because the previous run was still going.",
            |j| j.overlaps as i64,
        ),
        (
            "edesk_job_skipped_slots_total",
            "counter",
            "Slots missed while the daemon was down (the latest ran instead).",
            |j| j.skipped as i64,
        ),
        (
            "edesk_job_interrupted_total",
            "counter",
            "Runs cut short by a stop or crash (resumed at the next start).",
            |j| j.interrupted as i64,
        ),
        ("edesk_job_running", "gauge", "1 while the job runs.", |j| {
            i64::from(j.running)
        }),
        (
            "edesk_job_last_failed",
            "gauge",
            "1 when the job's last run failed (it is retried at its next slot).",
            |j| i64::from(j.last_error.is_some()),
        ),
    ];
    for (name, kind, help, value) in families {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for j in &list {
            out.push_str(&format!("{name}{{job=\"{}\"}} {}\n", j.name, value(j)));
        }
    }
    Ok(out)
}
