//! Support desk over HTTP: tickets and team replies. Every handler answers
//! through [`DeskService`](crate::desk::DeskService) or the ticket store,
//! off the async threads (sled calls block), and every desk error becomes
//! an HTTP answer in one place (`From<DeskError> for ApiError`).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState};
use crate::desk::{DeskError, Ticket, TicketId};

/// The desk's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tickets", get(list))
        .route("/v1/tickets/{id}", get(show))
        .route("/v1/tickets/{id}/reply", post(reply))
}

impl From<DeskError> for ApiError {
    fn from(e: DeskError) -> ApiError {
        match e {
            // Expected and actionable: the customer cannot be mailed
            // (suppressed after a bounce, no address); nothing was recorded.
            DeskError::NotDelivered { to, reason } => ApiError {
                status: StatusCode::CONFLICT,
                body: json!({
                    "error": format!("the reply cannot be sent to {to}: {reason}"),
                    "to": to,
                    "reason": reason,
                }),
            },
            DeskError::Input(message) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message),
            DeskError::NotFound(id) => {
                ApiError::new(StatusCode::NOT_FOUND, format!("no ticket {id}"))
            }
            DeskError::BadReference(r) => ApiError {
                status: StatusCode::BAD_REQUEST,
                body: json!({"error": "not a ticket reference (expected T-123456)", "value": r}),
            },
            DeskError::Store(s) => ApiError::from_store(&s),
            other @ (DeskError::Corrupt(..) | DeskError::Outbox(_)) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
            }
        }
    }
}

/// Runs a blocking desk call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DeskError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<Ticket>>, ApiError> {
    let desk = state.desk.clone();
    blocking(move || desk.list()).await.map(Json)
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Ticket>, ApiError> {
    let id: TicketId = id.parse()?;
    let desk = state.desk.clone();
    blocking(move || desk.get(id)).await.map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyBody {
    by: String,
    text: String,
    #[serde(default)]
    note: bool,
}

async fn reply(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<ReplyBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Ticket>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let id: TicketId = id.parse()?;
    if body.text.trim().is_empty() {
        return Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({"error": "the reply is empty", "field": "text"}),
        });
    }
    let service = state.desk_service.clone();
    let ticket = blocking(move || service.answer(id, &body.by, &body.text, body.note)).await?;
    Ok((StatusCode::CREATED, Json(ticket)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desk_errors_map_to_statuses_a_client_can_act_on() {
        let e = ApiError::from(DeskError::NotDelivered {
            to: "ana@example.org".into(),
            reason: "suppressed address".into(),
        });
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(e.body["reason"], "suppressed address");
        assert!(
            e.body["error"]
                .as_str()
                .unwrap()
                .contains("ana@example.org")
        );
        let e = ApiError::from("T-x".parse::<TicketId>().unwrap_err());
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = ApiError::from(DeskError::NotFound("T-000009".into()));
        assert_eq!(e.status, StatusCode::NOT_FOUND);
    }
}
