//! The HTTP API (axum). Every 4xx/5xx body is JSON `{"error": …}`.
#![warn(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::domain::Lang;
use crate::faq;
use crate::notify::Notifier;

pub mod admin;
pub mod chat;
pub mod desk;
pub mod downloads;
pub mod jobs;
pub mod orders;
pub mod page;

/// The services every handler reaches, built once by `daemon::build_state`; cloning is
/// cheap (handles and `Arc`s).
#[derive(Clone)]
pub struct AppState {
    /// The effective configuration.
    pub config: Arc<Config>,
    /// The FAQ engine (`/v1/faq`, chat answers).
    pub faq: Arc<faq::Engine>,
    /// Received raw mail and its processing state (`/v1/mail`, `/readyz`).
    pub spool: crate::inbound::intake::Spool,
    /// Ticket storage and the business calendar, for reads (`/v1/tickets`, `/metrics`).
    pub desk: crate::desk::Desk,
    /// The desk service: opens, answers, notes and closes tickets (chat,
    /// jobs and the HTTP API call it; inbound through the worker).
    pub desk_service: Arc<crate::desk::DeskService>,
    /// The inbound worker, which analyses queued mail and acts on it.
    pub worker: Arc<crate::inbound::worker::Worker>,
    /// Wakes the inbound worker (new or re-queued mail).
    pub new_mail: Arc<tokio::sync::Notify>,
    /// Orders, notifications and the outbox.
    pub notifier: Notifier,
    /// The scheduler of the built-in jobs (`/v1/jobs`, `/metrics`).
    pub jobs: Arc<crate::jobs::Scheduler>,
    /// The chat service (HTTP chat, console through the daemon, Discord).
    pub chat: crate::chat::ChatService,
}

/// An API error: a status and a JSON body with `error` plus details.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status (4xx or 5xx).
    pub status: StatusCode,
    /// The JSON body: always an `error` message, sometimes more (`retry`, details).
    pub body: serde_json::Value,
}

impl ApiError {
    /// An error whose body is only `{"error": message}`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: json!({ "error": message.into() }),
        }
    }
}

impl ApiError {
    /// A store failure as the client should see it: 507 while the disk is
    /// full, 503 while the store recovers (both say to retry), 500 otherwise.
    pub fn from_store(e: &crate::store::StoreError) -> ApiError {
        let (status, retry) = if e.is_storage_full() {
            (StatusCode::INSUFFICIENT_STORAGE, true)
        } else if e.is_transient() {
            (StatusCode::SERVICE_UNAVAILABLE, true)
        } else {
            tracing::error!(error = %e, "store error");
            (StatusCode::INTERNAL_SERVER_ERROR, false)
        };
        ApiError {
            status,
            body: json!({ "error": e.to_string(), "retry": retry }),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::from_store(&e)
    }
}

impl From<crate::inbound::intake::IntakeError> for ApiError {
    fn from(e: crate::inbound::intake::IntakeError) -> Self {
        let crate::inbound::intake::IntakeError::Store(e) = e;
        ApiError::from_store(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Every route, behind the body-size limit (`http.max_body_bytes`), the request timeout
/// (`http.request_timeout_ms`, 408) and the layer that turns every error body into JSON.
pub fn router(state: AppState) -> Router {
    let limit = state.config.http.max_body_bytes;
    let request_limit = Duration::from_millis(state.config.http.request_timeout_ms);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/faq", get(faq_search))
        .route("/v1/mail", get(mail_list))
        .route("/v1/mail/{id}", get(mail_show))
        .route("/v1/mail/{id}/retry", axum::routing::post(mail_retry))
        .route("/metrics", get(metrics))
        .merge(orders::routes())
        .merge(desk::routes())
        .merge(admin::routes())
        .merge(page::routes())
        .merge(jobs::routes())
        .merge(chat::routes())
        .fallback(not_found)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(limit))
        .layer(axum::middleware::from_fn(move |req, next| {
            request_timeout(request_limit, req, next)
        }))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

/// Answer to a connection over `http.max_connections`: written without
/// reading the request, so it costs no task and no buffer.
const TOO_MANY_CONNECTIONS: &[u8] = concat!(
    "HTTP/1.1 503 Service Unavailable\r\n",
    "content-type: application/json\r\n",
    "content-length: 32\r\n",
    "retry-after: 1\r\n",
    "connection: close\r\n\r\n",
    "{\"error\":\"too many connections\"}",
)
.as_bytes();

/// Serves the API until `token` is cancelled, then drains for at most
/// `shutdown.grace_ms`.
///
/// Our own accept loop rather than `axum::serve`, which has no knob for
/// the three things a hostile client exploits: a header-read timeout
/// (slowloris, and connections that never send anything), a cap on open
/// connections, and a bound on the drain (a client that never finishes its
/// request must not keep the process alive after SIGTERM).
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    token: CancellationToken,
) -> std::io::Result<()> {
    let http = state.config.http.clone();
    let grace = Duration::from_millis(state.config.shutdown.grace_ms);
    let service = hyper_util::service::TowerToHyperService::new(router(state));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_millis(http.header_timeout_ms));
    let slots = Arc::new(Semaphore::new(http.max_connections));
    let tracker = TaskTracker::new();
    // Cancelled when the grace period is over: connection tasks drop their
    // connection (closing the socket) whatever state it is in.
    let abandon = CancellationToken::new();

    loop {
        let (stream, peer) = tokio::select! {
            _ = token.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Refusing at once (rather than leaving the connection in the
            // backlog) tells a load balancer or health check the truth
            // right away, and costs us nothing; slots free up as soon as
            // slow clients hit the header or request timeout.
            tracing::warn!(%peer, max = http.max_connections, "HTTP connection refused: too many connections");
            let _ = stream.try_write(TOO_MANY_CONNECTIONS);
            // Closing with unread request bytes makes the kernel send a
            // reset that can overtake the 503; take what already arrived.
            let mut scratch = [0u8; 4096];
            let _ = stream.try_read(&mut scratch);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service.clone());
        let (token, abandon) = (token.clone(), abandon.clone());
        tracker.spawn(async move {
            let _slot = slot;
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "HTTP connection ended");
                    }
                    return;
                }
                _ = token.cancelled() => {}
            }
            // Finish the request in flight (if any), then close.
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = abandon.cancelled() => {
                    tracing::warn!(%peer, "HTTP connection abandoned at the end of the grace period");
                }
            }
        });
    }
    // Stop accepting now: connections arriving during the drain are refused
    // by the kernel instead of waiting in a backlog nobody reads.
    drop(listener);
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        abandon.cancel();
        tracker.wait().await;
    }
    Ok(())
}

/// A request (body included) that takes longer than `limit` is answered
/// `408` with a JSON body; the handler future is dropped.
async fn request_timeout(
    limit: Duration,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("request not completed within {} ms", limit.as_millis()),
        )
        .into_response(),
    }
}

/// Every 4xx/5xx leaves as JSON `{"error": …}`, including the ones produced
/// by layers and extractors outside our handlers (413 body limit, 405, a
/// path parameter that does not parse).
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let body = axum::body::to_bytes(resp.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_string()
    } else {
        text
    };
    (status, Json(json!({ "error": message }))).into_response()
}

/// How long `/healthz` waits for the store's owner thread.
const LIVENESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Liveness: a round trip through the store's owner thread. Fails (503) when
/// the owner does not answer in time, so a supervisor restarts a stuck daemon.
async fn healthz(State(state): State<AppState>) -> Response {
    let store = state.notifier.store();
    let ping = tokio::time::timeout(LIVENESS_TIMEOUT, store.ping()).await;
    let health = store.health();
    let (status, word, error) = match ping {
        Ok(Ok(())) => (StatusCode::OK, "ok", None),
        // The owner answered: the store is alive even if it cannot write now
        // (that is readiness, not liveness).
        Ok(Err(e)) if e.is_transient() => (StatusCode::OK, "ok", Some(e.to_string())),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "failing",
            Some(e.to_string()),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "stuck",
            Some(format!(
                "the store did not answer within {} s",
                LIVENESS_TIMEOUT.as_secs()
            )),
        ),
    };
    let mut body = json!({
        "status": word,
        "version": env!("CARGO_PKG_VERSION"),
        "store": health,
    });
    if let Some(e) = error {
        body["error"] = json!(e);
    }
    (status, Json(body)).into_response()
}

/// Readiness: 503 with the reason while the store cannot write (disk full,
/// read-only, recovering). Mail then stays with the MTA (LMTP 452).
async fn readyz(State(state): State<AppState>) -> Response {
    let health = state.notifier.store().health();
    if health.writable {
        (
            StatusCode::OK,
            Json(json!({"status": "ready", "store": health})),
        )
            .into_response()
    } else {
        let reason = health.reason.clone().unwrap_or_default();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not-ready", "error": reason, "store": health})),
        )
            .into_response()
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

#[derive(Debug, Deserialize)]
struct FaqQuery {
    q: String,
    lang: Option<String>,
}

async fn faq_search(
    State(state): State<AppState>,
    query: Result<Query<FaqQuery>, QueryRejection>,
) -> Result<Json<faq::Answer>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let lang = match query.lang.as_deref() {
        None | Some("") => None,
        Some(l) => Some(l.parse::<Lang>().map_err(|e| ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({ "error": e.to_string(), "field": "lang", "value": l }),
        })?),
    };
    let engine = state.faq.clone();
    let answer = tokio::task::spawn_blocking(move || engine.ask(&query.q, lang))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(answer))
}

#[derive(Debug, Deserialize)]
struct MailListQuery {
    limit: Option<usize>,
}

/// Stored inbound messages, newest first: envelope, state, decision.
async fn mail_list(
    State(state): State<AppState>,
    query: Result<Query<MailListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let limit = query.limit.unwrap_or(100).min(10_000);
    let list = state
        .spool
        .list(limit)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let pending = state
        .spool
        .pending()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(json!({ "pending": pending.len(), "messages": list })))
}

/// Gauges in the Prometheus text format: what an operator alerts on
/// (mail waiting or failed, dead outbox items, open and overdue tickets).
async fn metrics(State(state): State<AppState>) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || render_metrics(&state))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// Counts kept by the store, plus the few small sets (pending mail, tickets):
/// nothing here decodes the outbox, so a scrape stays cheap as it grows.
/// One Prometheus metric: name, type, help text and value.
type Metric = (&'static str, &'static str, &'static str, u64);

/// The `/metrics` text: mail, desk and store figures, then the jobs'.
fn render_metrics(state: &AppState) -> Result<String, ApiError> {
    let store = state.notifier.store();
    let mut metrics = mail_metrics(state)?;
    metrics.extend(ticket_metrics(state)?);
    let health = store.health();
    metrics.extend([
        (
            "edesk_store_writable",
            "gauge",
            "1 when the store accepts writes (0: disk full, read-only, recovering).",
            u64::from(health.writable),
        ),
        (
            "edesk_store_batches_total",
            "counter",
            "Write batches applied by the store owner.",
            health.batches,
        ),
        (
            "edesk_store_flushes_total",
            "counter",
            "Group flushes to disk.",
            health.flushes,
        ),
        (
            "edesk_store_reopens_total",
            "counter",
            "Times the store reopened itself after an I/O failure.",
            health.reopens,
        ),
    ]);
    let mut out = String::new();
    for (name, kind, help, value) in metrics {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    // Only where the platform tells the free space.
    if let Some(free) = health.free_bytes {
        out.push_str(&format!(
            "# HELP edesk_store_free_bytes Free bytes in the data directory.\n# TYPE edesk_store_free_bytes gauge\nedesk_store_free_bytes {free}\n"
        ));
    }
    out.push_str(&jobs::metrics(state)?);
    Ok(out)
}

/// Outgoing and incoming mail: the outbox counts are counters the store
/// keeps up to date with each write, not a scan of the outbox.
fn mail_metrics(state: &AppState) -> Result<Vec<Metric>, ApiError> {
    let store = state.notifier.store();
    let (pending, sent, dead) = store.outbox_counts()?;
    let suppressed = store.suppression_count()?;
    let escalations_lost = store.stat(crate::notify::failures::ESCALATION_UNDELIVERABLE)?;
    let inbound_pending = state.spool.pending()?.len();
    Ok(vec![
        (
            "edesk_outbox_pending",
            "gauge",
            "Outgoing mails waiting for delivery.",
            pending,
        ),
        (
            "edesk_outbox_sent",
            "gauge",
            "Outgoing mails delivered.",
            sent,
        ),
        (
            "edesk_outbox_dead",
            "gauge",
            "Outgoing mails that failed for good.",
            dead,
        ),
        (
            "edesk_suppressed_addresses",
            "gauge",
            "Addresses on the suppression list.",
            suppressed as u64,
        ),
        (
            "edesk_escalations_undeliverable_total",
            "counter",
            "Escalations the team never got (refused, retries exhausted, or bounced); each is noted on its ticket.",
            escalations_lost,
        ),
        (
            "edesk_inbound_pending",
            "gauge",
            "Inbound mails accepted, not yet processed.",
            inbound_pending as u64,
        ),
    ])
}

/// Open and overdue tickets. Overdue depends on today's date in the desk's
/// calendar, so it is counted at each scrape, from the store's index of
/// open tickets (the cost grows with the tickets waiting, not with all).
fn ticket_metrics(state: &AppState) -> Result<[Metric; 2], ApiError> {
    let today = state.desk.calendar().local_date(chrono::Utc::now());
    let (open, overdue) = state
        .desk
        .open_counts(today)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok([
        (
            "edesk_tickets_open",
            "gauge",
            "Escalation tickets waiting for a team.",
            open,
        ),
        (
            "edesk_tickets_overdue",
            "gauge",
            "Open tickets past their business-day SLA.",
            overdue,
        ),
    ])
}

fn mail_id(id: &str) -> Result<u64, ApiError> {
    id.parse().map_err(|_| ApiError {
        status: StatusCode::BAD_REQUEST,
        body: json!({"error": "a mail id is a number", "value": id}),
    })
}

/// One stored message: envelope, state, decision (without the raw bytes).
async fn mail_show(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<crate::inbound::intake::MailMeta>, ApiError> {
    let id = mail_id(&id)?;
    match state.spool.meta(id) {
        Ok(Some(m)) => Ok(Json(m)),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no mail {id}"),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )),
    }
}

/// Processes a stored message again (after fixing what made it fail).
async fn mail_retry(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let id = mail_id(&id)?;
    // A durable write waits for the store's group flush: off the runtime.
    let spool = state.spool.clone();
    let requeued = tokio::task::spawn_blocking(move || spool.requeue(id))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match requeued {
        Ok(true) => {
            state.new_mail.notify_one();
            Ok((StatusCode::ACCEPTED, Json(json!({"requeued": id}))))
        }
        Ok(false) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no mail {id} with its raw bytes"),
        )),
        Err(e) => Err(e.into()),
    }
}
