//! Operator endpoints: the suppression list and the outbox. What `edesk
//! suppress …` and `edesk outbox …` use while the daemon holds the store.
//!
//! - `GET /v1/suppressions` → `{"suppressions": [{email, reason, at}]}`
//! - `DELETE /v1/suppressions/{email}` → `200 {"removed": email}`, `404` when
//!   the address is not suppressed
//! - `GET /v1/outbox[?all=true]` → `{"items": [...]}` (pending and dead; all
//!   with `all=true`), without the message bodies
//! - `POST /v1/outbox/{id}/retry` → `200 {"requeued": id}`, `404` no such
//!   item, `409` the item is not dead
//! - `POST /v1/outbox/retry-dead` → `200 {"requeued": n}`

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::domain::EmailAddress;
use crate::store::{OutboxStatus, Store, StoreError};

/// The operator routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/suppressions", get(list_suppressions))
        .route("/v1/suppressions/{email}", delete(remove_suppression))
        .route("/v1/outbox", get(list_outbox))
        .route("/v1/outbox/{id}/retry", post(retry_item))
        .route("/v1/outbox/retry-dead", post(retry_dead))
}

/// Runs a store call off the runtime (sled reads and durable writes block).
async fn blocking<T, F>(store: Store, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| match e {
            StoreError::NoSuchItem(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            e => ApiError::from_store(&e),
        })
}

async fn list_suppressions(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let list = blocking(state.notifier.store().clone(), |s| s.suppressions()).await?;
    Ok(Json(json!({ "suppressions": list })))
}

async fn remove_suppression(
    State(state): State<AppState>,
    Path(email): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let email: EmailAddress = email
        .parse()
        .map_err(|e: crate::domain::AddressError| ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({"error": e.to_string(), "field": "email", "value": email}),
        })?;
    let key = email.clone();
    let removed = blocking(state.notifier.store().clone(), move |s| s.unsuppress(&key)).await?;
    if !removed {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{email} is not suppressed"),
        ));
    }
    tracing::info!(%email, "removed from the suppression list");
    Ok(Json(json!({ "removed": email.as_str() })))
}

#[derive(Debug, Deserialize)]
struct OutboxQuery {
    #[serde(default)]
    all: bool,
}

async fn list_outbox(
    State(state): State<AppState>,
    query: Result<Query<OutboxQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let items = blocking(state.notifier.store().clone(), move |s| {
        Ok(s.outbox_list(None)?
            .into_iter()
            .filter(|it| query.all || it.status != OutboxStatus::Sent)
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(json!({ "items": items })))
}

async fn retry_item(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: u64 = id.parse().map_err(|_| ApiError {
        status: StatusCode::BAD_REQUEST,
        body: json!({"error": "an outbox item id is a number", "value": id}),
    })?;
    let requeued = blocking(state.notifier.store().clone(), move |s| s.retry(id)).await?;
    if !requeued {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("item {id} is not dead"),
        ));
    }
    state.notifier.wake();
    tracing::info!(id, "outbox item queued again");
    Ok(Json(json!({ "requeued": id })))
}

async fn retry_dead(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let n = blocking(state.notifier.store().clone(), |s| s.retry_all_dead()).await?;
    if n > 0 {
        state.notifier.wake();
    }
    tracing::info!(n, "dead outbox items queued again");
    Ok(Json(json!({ "requeued": n })))
}
