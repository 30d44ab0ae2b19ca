//! Support desk over HTTP: tickets and team replies.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState};
use crate::desk::{DeskError, Ticket, TicketId};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tickets", get(list))
        .route("/v1/tickets/{id}", get(show))
        .route("/v1/tickets/{id}/reply", post(reply))
}

fn desk_error(e: DeskError) -> ApiError {
    match e {
        // Expected and actionable: the customer cannot be mailed (suppressed
        // after a bounce, no address); nothing was recorded.
        DeskError::NotDelivered { to, reason } => ApiError {
            status: StatusCode::CONFLICT,
            body: json!({"error": format!("the reply cannot be sent to {to}: {reason}"), "to": to, "reason": reason}),
        },
        DeskError::Input(message) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message),
        DeskError::NotFound(id) => ApiError::new(StatusCode::NOT_FOUND, format!("no ticket {id}")),
        DeskError::BadReference(r) => ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({"error": "not a ticket reference (expected T-123456)", "value": r}),
        },
        DeskError::Store(s) => ApiError::from_store(&s),
        other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<Ticket>>, ApiError> {
    state.desk.list().map(Json).map_err(desk_error)
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Ticket>, ApiError> {
    let id: TicketId = id.parse().map_err(desk_error)?;
    state.desk.get(id).map(Json).map_err(desk_error)
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
    let id: TicketId = id.parse().map_err(desk_error)?;
    if body.text.trim().is_empty() {
        return Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({"error": "the reply is empty", "field": "text"}),
        });
    }
    state.desk.get(id).map_err(desk_error)?;
    let service = state.desk_service.clone();
    let ticket =
        tokio::task::spawn_blocking(move || service.answer(id, &body.by, &body.text, body.note))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(desk_error)?;
    Ok((StatusCode::CREATED, Json(ticket)))
}
