//! Order events, OBA, notification history and unsubscribe.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::domain::EmailAddress;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::domain::OrderId;
use crate::notify::{Kind, ObaError, ObaRequest};

/// `/v1/orders…` (import, show, OBA, downloads, notification history) and the
/// unsubscribe links and mail preferences.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/orders", post(post_orders))
        .route("/v1/orders/{so}", get(get_order))
        .route("/v1/orders/{so}/oba", post(post_oba))
        .route(
            "/v1/orders/{so}/downloads",
            post(super::downloads::post_downloads).get(super::downloads::get_downloads),
        )
        .route("/v1/orders/{so}/notifications", get(get_history))
        .route(
            "/v1/unsubscribe/{token}",
            get(unsubscribe_page).post(unsubscribe),
        )
        .route("/v1/preferences/{email}", get(get_prefs).put(put_pref))
}

/// Store failures keep their meaning (507/503); the rest is a 500.
fn notify_error(e: crate::notify::NotifyError) -> ApiError {
    match e {
        crate::notify::NotifyError::Store(s) => ApiError::from_store(&s),
        other => internal(other),
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "request failed");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

fn parse_so(s: &str) -> Result<OrderId, ApiError> {
    s.parse().map_err(|e: crate::domain::IdError| ApiError {
        status: StatusCode::BAD_REQUEST,
        body: json!({"error": e.to_string(), "field": "so", "value": s}),
    })
}

fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError {
        status: StatusCode::BAD_REQUEST,
        body: json!({"error": format!("malformed JSON: {e}"), "line": e.line(), "column": e.column()}),
    })
}

/// 201 when every order was stored (durably); 422 naming each rejected order
/// and field otherwise — the valid orders of the same request are stored anyway.
async fn post_orders(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let v = json_body(&body)?;
    if !(v.is_object() || v.is_array()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "expected an order object or an array of orders",
        ));
    }
    let n = state.notifier.clone();
    let report = tokio::task::spawn_blocking(move || n.import_value(&v, "api"))
        .await
        .map_err(internal)?
        .map_err(notify_error)?;
    let body = json!({
        "imported": report.imported, "updated": report.updated, "queued": report.queued,
        "skipped": report.skipped, "rejected": report.rejected,
    });
    if report.rejected.is_empty() {
        Ok((StatusCode::CREATED, Json(body)).into_response())
    } else {
        let first = &report.rejected[0];
        let mut body = body;
        body["error"] = json!(first.to_string());
        body["so"] = json!(first.so);
        if let Some(f) = first.errors.first() {
            body["field"] = json!(f.field);
            body["value"] = f.value.clone();
        }
        Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response())
    }
}

async fn get_order(
    State(state): State<AppState>,
    Path(so): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let so = parse_so(&so)?;
    match state.notifier.store().order(&so).map_err(internal)? {
        Some(o) => Ok(Json(serde_json::to_value(o).map_err(internal)?)),
        None => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            body: json!({"error": format!("no order {so}"), "so": so.as_str()}),
        }),
    }
}

async fn post_oba(
    State(state): State<AppState>,
    Path(so): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let so = parse_so(&so)?;
    let req: ObaRequest = serde_json::from_slice(&body).map_err(|e| ApiError {
        status: StatusCode::BAD_REQUEST,
        body: json!({"error": format!("bad OBA request: {e}")}),
    })?;
    let n = state.notifier.clone();
    let so2 = so.clone();
    let out = tokio::task::spawn_blocking(move || n.send_oba(&so2, &req))
        .await
        .map_err(internal)?;
    match out {
        Ok(o) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::to_value(o).map_err(internal)?),
        )
            .into_response()),
        Err(ObaError::NoOrder(_)) => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            body: json!({"error": format!("no order {so}"), "so": so.as_str()}),
        }),
        Err(ObaError::Invalid {
            message,
            field,
            value,
        }) => Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({"error": message, "field": field, "value": value}),
        }),
        Err(e) => Err(internal(e)),
    }
}

async fn get_history(
    State(state): State<AppState>,
    Path(so): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let so = parse_so(&so)?;
    if state
        .notifier
        .store()
        .order(&so)
        .map_err(internal)?
        .is_none()
    {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            body: json!({"error": format!("no order {so}"), "so": so.as_str()}),
        });
    }
    let h = state.notifier.history(&so).map_err(internal)?;
    Ok(Json(json!({"so": so.as_str(), "notifications": h})))
}

#[derive(Debug, Deserialize)]
struct UnsubQuery {
    kind: Option<String>,
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head>\
         <body style=\"font-family:Arial,sans-serif;max-width:560px;margin:40px auto;color:#1f2933\"><h1 style=\"font-size:22px\">{title}</h1>{body}</body></html>"
    ))
}

fn token_ok(t: &str) -> bool {
    !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// GET only shows a confirmation form: link scanners that fetch URLs must not unsubscribe anyone.
async fn unsubscribe_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(q): Query<UnsubQuery>,
) -> Result<Response, ApiError> {
    if !token_ok(&token)
        || state
            .notifier
            .store()
            .order_by_token(&token)
            .map_err(internal)?
            .is_none()
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown unsubscribe link",
        ));
    }
    let kind = q.kind.as_deref().and_then(|k| k.parse::<Kind>().ok());
    let action = match kind {
        Some(k) => format!("/v1/unsubscribe/{token}?kind={k}"),
        None => format!("/v1/unsubscribe/{token}"),
    };
    Ok(page(
        "Stop eDelivery notifications / Arrêter les notifications",
        &format!(
            "<p>Confirm that you no longer want to receive eDelivery order notifications at this address.</p>\
             <p>Confirmez que vous ne souhaitez plus recevoir les notifications de commande eDelivery à cette adresse.</p>\
             <form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\" style=\"padding:10px 16px\">Unsubscribe / Se désabonner</button></form>"
        ),
    )
    .into_response())
}

/// RFC 8058 one-click (and the form above): sets the preference to "No".
async fn unsubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(q): Query<UnsubQuery>,
) -> Result<Response, ApiError> {
    if !token_ok(&token) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown unsubscribe link",
        ));
    }
    let kind = match q.kind.as_deref() {
        Some(k) => Some(k.parse::<Kind>().map_err(|e| ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({"error": e, "field": "kind", "value": k}),
        })?),
        None => None,
    };
    let n = state.notifier.clone();
    let done = tokio::task::spawn_blocking(move || n.unsubscribe(&token, kind))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    match done {
        Some(_) => Ok(page(
            "Unsubscribed / Désabonnement confirmé",
            "<p>You will no longer receive these notifications.</p><p>Vous ne recevrez plus ces notifications.</p>",
        )
        .into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "unknown unsubscribe link")),
    }
}

fn parse_email(s: &str) -> Result<EmailAddress, ApiError> {
    s.parse()
        .map_err(|e: crate::domain::AddressError| ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({"error": e.to_string(), "field": "email", "value": s}),
        })
}

async fn get_prefs(
    State(state): State<AppState>,
    Path(email): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let email = parse_email(&email)?;
    let prefs = state
        .notifier
        .store()
        .preferences(&email)
        .map_err(internal)?;
    let suppressed = state
        .notifier
        .store()
        .is_suppressed(&email)
        .map_err(internal)?;
    Ok(Json(json!({
        "email": email.as_str(),
        "suppressed": suppressed,
        "preferences": prefs.into_iter().map(|(k, send)| json!({"kind": if k == "*" { Value::Null } else { json!(k) }, "send": send})).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrefBody {
    /// A notification kind, or absent/null for every notification.
    kind: Option<String>,
    send: bool,
}

/// Per recipient × kind, or "No" for all (the source document's preference).
async fn put_pref(
    State(state): State<AppState>,
    Path(email): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let email = parse_email(&email)?;
    let b: PrefBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad preference: {e}")))?;
    let kind = match b.kind.as_deref() {
        Some(k) => Some(k.parse::<Kind>().map_err(|e| ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({"error": e, "field": "kind", "value": k}),
        })?),
        None => None,
    };
    state
        .notifier
        .store()
        .set_preference(&email, kind.map(Kind::as_str), b.send)
        .map_err(internal)?;
    Ok(Json(
        json!({"email": email.as_str(), "kind": kind, "send": b.send}),
    ))
}
