//! The HTTP chat for a web widget: a signed session id from
//! `POST /v1/chat/session`, messages through `POST /v1/chat`, ratings
//! through `POST /v1/chat/feedback`, and the FAQ feedback report.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState};
use crate::chat::answers::{Rating, report};
use crate::chat::{ChatError, Incoming, Platform};

/// Longest message accepted, in characters.
const MAX_TEXT_CHARS: usize = 4000;

/// `/v1/chat/session`, `/v1/chat`, `/v1/chat/feedback` (POST) and `/v1/faq/feedback` (GET).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/session", post(new_session))
        .route("/v1/chat", post(message))
        .route("/v1/chat/feedback", post(feedback))
        .route("/v1/faq/feedback", get(feedback_report))
}

fn chat_error(e: ChatError) -> ApiError {
    match e {
        ChatError::Store(s) => ApiError::from_store(&s),
        ChatError::Input(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
        other => {
            tracing::error!(error = %other, "chat failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
        }
    }
}

fn bad_body(e: JsonRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, e.body_text())
}

async fn new_session(
    State(state): State<AppState>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    // The body is `{}`; a client cannot choose its identity.
    let Json(v) = body.map_err(bad_body)?;
    if v.as_object().is_none_or(|o| !o.is_empty()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the body of a session request is {} (the daemon chooses the id)",
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({ "session": state.chat.new_session() })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    session: String,
    text: String,
}

fn session_user(state: &AppState, session: &str) -> Result<String, ApiError> {
    state.chat.session_user(session).ok_or_else(|| ApiError {
        status: StatusCode::UNAUTHORIZED,
        body: json!({"error": "unknown or forged session: get one from POST /v1/chat/session", "field": "session"}),
    })
}

async fn message(
    State(state): State<AppState>,
    body: Result<Json<MessageBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(body) = body.map_err(bad_body)?;
    let user = session_user(&state, &body.session)?;
    if body.text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({"error": format!("a message is at most {MAX_TEXT_CHARS} characters"), "field": "text"}),
        });
    }
    let msg = Incoming {
        platform: Platform::Web,
        name: format!("web visitor {}", &user[..8.min(user.len())]),
        channel: user.clone(),
        user,
        public: false,
        text: body.text,
        addressed: true,
    };
    let chat = state.chat.clone();
    let out = if chat.is_quick(&msg) {
        chat.handle(&msg)
    } else {
        tokio::task::spawn_blocking(move || chat.handle(&msg))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    }
    .map_err(chat_error)?;
    let rate = out.replies.iter().find_map(|r| r.rate.clone());
    let replies: Vec<String> = out.replies.into_iter().map(|r| r.text).collect();
    Ok(Json(json!({ "replies": replies, "rate": rate })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    session: String,
    /// The FAQ entry id a reply carried in `rate`.
    answer: String,
    rating: String,
}

async fn feedback(
    State(state): State<AppState>,
    body: Result<Json<FeedbackBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(body) = body.map_err(bad_body)?;
    let user = session_user(&state, &body.session)?;
    let rating: Rating = body.rating.parse().map_err(|e: String| ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        body: json!({"error": e, "field": "rating"}),
    })?;
    let chat = state.chat.clone();
    let answer = body.answer.clone();
    tokio::task::spawn_blocking(move || chat.rate_answer(&format!("web:{user}"), &answer, rating))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(chat_error)?;
    Ok(Json(json!({ "rated": body.answer, "rating": rating })))
}

/// Ratings and abstained questions per FAQ entry, worst first.
async fn feedback_report(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = state.chat.store().clone();
    let all = tokio::task::spawn_blocking(move || report(&store))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(chat_error)?;
    let entries: Vec<serde_json::Value> = all
        .into_iter()
        .map(|(id, f)| json!({"id": id, "up": f.up, "down": f.down, "abstained": f.abstained, "questions": f.questions}))
        .collect();
    Ok(Json(json!({ "entries": entries })))
}
