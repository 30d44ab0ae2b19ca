//! The order page the notification mails link to: `GET /orders/{so}?t=TOKEN`.
//!
//! A small server-rendered page (tera, `templates/page/order.html`, texts in
//! `templates/page/text.toml`, EN/FR by the recipient's language or `?lang=`)
//! for whoever holds the link's token. The token is the one minted for
//! (order, recipient) when the order was imported or access was granted
//! (`notify::token`): it opens that recipient's view of that order only
//! (an Order-Based Access grantee sees the granted lines), and anything else
//! (unknown token, another order's token, a recipient since removed) is the
//! same 404, so the page tells nothing about which orders exist.
//!
//! Forms (download request, restore, notifications) are POSTs carrying the
//! token and a CSRF field: an HMAC, under a key drawn at start-up, of the
//! order, the token and a random nonce kept in a `SameSite=Lax`, `HttpOnly`
//! cookie. A form posted from another site has neither the cookie nor a
//! field matching it. The page carries no script and a CSP that allows none.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::downloads::{
    DownloadAnswer, DownloadError, DownloadRequest, line_on_hold, request_download, visible_lines,
};
use super::{ApiError, AppState};
use crate::domain::{
    DownloadRefusal, DownloadRule, EmailAddress, Lang, Order, OrderId, PolicyInput,
    decide_download, second_download_deadline,
};
use crate::store::{DownloadRecord, Store};

const TEMPLATE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/templates/page/order.html"
));
const TEXT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/templates/page/text.toml"
));
const TEMPLATE_NAME: &str = "page/order.html";
/// The page behind the "To View Your Smart Licenses" link of the mails
/// (static: the source document's explanation in both languages).
const SMART_LICENSES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/templates/page/smart_licenses.html"
));
/// The cookie holding the CSRF nonce.
const COOKIE: &str = "edesk_page";

/// Why the page could not be produced (a broken template or text table).
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// A page template does not parse or render (the template engine's message).
    #[error("order page template: {0}")]
    Template(String),
    #[error("order page texts (templates/page/text.toml): {0}")]
    /// `templates/page/text.toml` does not parse or lacks a text (the message).
    Text(String),
}

/// The routes of the order page and of the other order links in mails.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/orders/{so}", get(show))
        .route("/orders/{so}/downloads", post(post_download))
        .route("/orders/{so}/notifications", post(post_notifications))
        .route("/orders/{so}/pak", get(to_licenses))
        .route("/orders/{so}/licenses", get(to_licenses))
        .route("/orders/{so}/restore", get(to_archive).post(post_restore))
        .route("/smart-licenses", get(smart_licenses))
}

async fn smart_licenses() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
        ],
        SMART_LICENSES,
    )
        .into_response()
}

/// Parses the template and the texts once; both are embedded in the binary,
/// so a failure is a build defect that the unit tests catch.
fn engine() -> Result<&'static (tera::Tera, toml::Table), PageError> {
    static ENGINE: OnceLock<Result<(tera::Tera, toml::Table), String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut tera = tera::Tera::default();
            tera.autoescape_on(vec![".html"]);
            tera.add_raw_template(TEMPLATE_NAME, TEMPLATE)
                .map_err(|e| format!("template: {e}"))?;
            let texts: toml::Table = TEXT.parse().map_err(|e| format!("texts: {e}"))?;
            for lang in Lang::ALL {
                if !texts.get(lang.as_str()).is_some_and(|v| v.is_table()) {
                    return Err(format!("texts: no [{lang}] table"));
                }
            }
            Ok((tera, texts))
        })
        .as_ref()
        .map_err(|e| PageError::Template(e.clone()))
}

/// The texts of one language, with placeholders still in.
struct Texts<'a>(&'a toml::Table);

impl<'a> Texts<'a> {
    fn of(lang: Lang) -> Result<Texts<'static>, PageError> {
        let (_, all) = engine()?;
        all.get(lang.as_str())
            .and_then(|v| v.as_table())
            .map(Texts)
            .ok_or_else(|| PageError::Text(format!("no [{lang}] table")))
    }

    /// The text under `key` with each `{name}` replaced by its value.
    fn get(&self, key: &str, args: &[(&str, &str)]) -> String {
        let mut s = self
            .0
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or(key)
            .to_string();
        for (k, v) in args {
            s = s.replace(&format!("{{{k}}}"), v);
        }
        s
    }
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such order page")
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "order page failed");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// Who is looking at which order, established from the link's token.
struct Viewer {
    so: OrderId,
    order: Order,
    email: EmailAddress,
    lines: Vec<String>,
    token: String,
}

fn token_shape_ok(t: &str) -> bool {
    !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The viewer a token stands for, or the same 404 for every failure.
fn authorize(store: &Store, so: &str, token: Option<&str>) -> Result<Viewer, ApiError> {
    let token = token.unwrap_or("").trim().to_ascii_lowercase();
    let so: OrderId = so.parse().map_err(|_| not_found())?;
    if !token_shape_ok(&token) {
        return Err(not_found());
    }
    let target = store.order_by_token(&token)?.ok_or_else(not_found)?;
    if target.so.as_ref() != Some(&so) {
        return Err(not_found());
    }
    let order = store.order(&so)?.ok_or_else(not_found)?;
    let meta = store.order_meta(&so)?;
    let lines = visible_lines(&order, &meta, &target.email).ok_or_else(not_found)?;
    Ok(Viewer {
        so,
        order,
        email: target.email,
        lines,
        token,
    })
}

type HmacSha256 = Hmac<Sha256>;

/// The key CSRF fields are signed with: drawn once per process, so a form
/// rendered before a restart asks for a reload (it is never accepted blindly).
fn csrf_mac(so: &OrderId, token: &str, nonce: &str) -> HmacSha256 {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        k
    });
    // HMAC zero-pads short keys to the block size: the same MAC through the
    // infallible constructor.
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut mac = <HmacSha256 as hmac::digest::KeyInit>::new(&block.into());
    for part in [so.as_str(), token, nonce] {
        mac.update(part.as_bytes());
        mac.update(&[0]);
    }
    mac
}

fn csrf_field(so: &OrderId, token: &str, nonce: &str) -> String {
    hex::encode(csrf_mac(so, token, nonce).finalize().into_bytes())
}

/// Constant-time check of a posted CSRF field against the cookie's nonce.
fn csrf_ok(so: &OrderId, token: &str, nonce: Option<&str>, field: &str) -> bool {
    let (Some(nonce), Ok(bytes)) = (nonce, hex::decode(field.trim())) else {
        return false;
    };
    csrf_mac(so, token, nonce).verify_slice(&bytes).is_ok()
}

/// The CSRF nonce of the request's cookie, when it has a well-formed one.
fn cookie_nonce(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn random_hex() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// The query of `GET /orders/{so}`.
#[derive(Debug, Deserialize)]
struct PageQuery {
    t: Option<String>,
    lang: Option<String>,
}

/// The fields of the page's forms (each form sends the ones it has).
#[derive(Debug, Deserialize)]
struct PageForm {
    #[serde(default)]
    t: String,
    #[serde(default)]
    csrf: String,
    lang: Option<String>,
    key: Option<String>,
    image: Option<String>,
    reason: Option<String>,
    send: Option<String>,
}

/// The language asked for (`?lang=` or the form's), else the viewer's.
fn page_lang(asked: Option<&str>, v: &Viewer) -> Lang {
    asked
        .and_then(|l| l.parse::<Lang>().ok())
        .unwrap_or_else(|| super::downloads::lang_of(&v.order, &v.email))
}

/// A message shown at the top of the page after a form.
struct Notice {
    ok: bool,
    text: String,
}

async fn show(
    State(state): State<AppState>,
    Path(so): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let q = query.ok().map(|Query(q)| q);
    let token = q.as_ref().and_then(|q| q.t.as_deref());
    let store = state.notifier.store();
    let viewer = authorize(store, &so, token)?;
    let lang = page_lang(q.as_ref().and_then(|q| q.lang.as_deref()), &viewer);
    render(&state, &viewer, lang, None, &headers)
}

/// Renders the page; sets the CSRF cookie when the request had none.
fn render(
    state: &AppState,
    v: &Viewer,
    lang: Lang,
    notice: Option<Notice>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let _span = tracing::info_span!("order_page", so = %v.so).entered();
    let (nonce, fresh) = match cookie_nonce(headers) {
        Some(n) => (n, false),
        None => (random_hex(), true),
    };
    let further =
        super::downloads::further_request(&state.desk, &v.email, &v.so).map_err(|e| match e {
            crate::desk::DeskError::Store(s) => ApiError::from_store(&s),
            other => internal(other),
        })?;
    let ctx = context(state.notifier.store(), v, lang, notice, &nonce, further)?;
    let (tera, _) = engine().map_err(internal)?;
    let context = tera::Context::from_serialize(&ctx).map_err(internal)?;
    let html = tera.render(TEMPLATE_NAME, &context).map_err(internal)?;
    let mut resp = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            ),
        ],
        html,
    )
        .into_response();
    if fresh {
        let secure = if state.config.http.public_url.starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!("{COOKIE}={nonce}; Path=/orders; HttpOnly; SameSite=Lax{secure}");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().insert(header::SET_COOKIE, value);
        }
    }
    Ok(resp)
}

fn date(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// The template context: every key always present (tera 2 is strict).
fn context(
    store: &Store,
    v: &Viewer,
    lang: Lang,
    notice: Option<Notice>,
    nonce: &str,
    further: bool,
) -> Result<Value, ApiError> {
    let now = Utc::now();
    let t = Texts::of(lang).map_err(internal)?;
    let records: Vec<DownloadRecord> = store
        .download_requests(&v.so)?
        .into_iter()
        .filter(|r| v.lines.contains(&r.line))
        .collect();
    let so = v.so.as_str();
    let email = v.email.as_str();
    let other = match lang {
        Lang::En => Lang::Fr,
        Lang::Fr => Lang::En,
    };
    let mut texts = serde_json::Map::new();
    for (k, val) in t.0 {
        if let Some(s) = val.as_str() {
            texts.insert(k.clone(), json!(t.get(k, &[("so", so), ("email", email)])));
            let _ = s;
        }
    }
    let available = v.order.available_at.map(|a| a.with_timezone(&Utc));
    let notifications_on = store
        .preferences(&v.email)?
        .iter()
        .find(|(k, _)| k == "*")
        .is_none_or(|(_, send)| *send);
    Ok(json!({
        "page": {
            "lang": lang.as_str(),
            "other_lang": other.as_str(),
            "switch_url": format!("/orders/{so}?t={}&lang={other}", v.token),
            "po": v.order.po.as_ref().map(|p| p.as_str()),
            "bill_to": v.order.bill_to,
            "available_since": available.map(date),
        },
        "t": texts,
        "notice": notice.map(|n| json!({"ok": n.ok, "text": n.text})),
        "lines": lines_context(&t, v, &records, further, now),
        "holds": holds_context(&t, v, lang),
        "archived": v.order.archived,
        "can_restore": v.order.archived,
        "download": download_context(&t, v, now),
        "requests": requests_context(&t, &records),
        "notifications_on": notifications_on,
        "form": {"t": v.token, "csrf": csrf_field(&v.so, &v.token, nonce), "key": random_hex()},
        "actions": {
            "download": format!("/orders/{so}/downloads"),
            "restore": format!("/orders/{so}/restore"),
            "notifications": format!("/orders/{so}/notifications"),
        },
    }))
}

/// What the next request of an image would need, for its row.
fn next_rule_text(
    t: &Texts<'_>,
    v: &Viewer,
    line: &str,
    history: &[DownloadRule],
    further: bool,
    now: DateTime<Utc>,
) -> String {
    let input = PolicyInput {
        available_at: v.order.available_at.map(|a| a.with_timezone(&Utc)),
        archived: v.order.archived,
        on_hold: line_on_hold(&v.order, line),
        previous: history,
        further_request: further,
        now,
    };
    match decide_download(&input) {
        Ok(DownloadRule::First) => t.get("next_first", &[]),
        Ok(DownloadRule::SecondWithReason) => t.get("next_second", &[]),
        Ok(DownloadRule::Review { business_days }) => {
            t.get("next_review", &[("days", &business_days.to_string())])
        }
        Err(DownloadRefusal::OnHold) => t.get("line_on_hold", &[]),
        Err(DownloadRefusal::Archived) => t.get("image_archived", &[]),
        Err(DownloadRefusal::NotAvailable) => t.get("not_available", &[]),
    }
}

fn lines_context(
    t: &Texts<'_>,
    v: &Viewer,
    records: &[DownloadRecord],
    further: bool,
    now: DateTime<Utc>,
) -> Value {
    let lines: Vec<Value> = v
        .order
        .lines
        .iter()
        .filter(|l| v.lines.contains(&l.line))
        .map(|l| {
            let images: Vec<Value> = l
                .images
                .iter()
                .map(|i| {
                    let history: Vec<DownloadRule> = records
                        .iter()
                        .filter(|r| r.line == l.line && r.image == i.file)
                        .map(|r| r.rule)
                        .collect();
                    let n = t.get("requested_times", &[("n", &history.len().to_string())]);
                    let next = next_rule_text(t, v, &l.line, &history, further, now);
                    json!({"file": i.file, "md5": i.md5, "state": format!("{n} · {next}")})
                })
                .collect();
            json!({
                "line": l.line, "pid": l.pid, "qty": l.qty,
                "on_hold": line_on_hold(&v.order, &l.line),
                "images": images,
            })
        })
        .collect();
    json!(lines)
}

fn holds_context(t: &Texts<'_>, v: &Viewer, lang: Lang) -> Value {
    let holds: Vec<Value> = v
        .order
        .open_holds()
        .filter(|h| h.line.as_ref().is_none_or(|l| v.lines.contains(l)))
        .map(|h| {
            let scope = match &h.line {
                None => t.get("hold_whole_order", &[]),
                Some(l) => t.get("hold_line", &[("line", l)]),
            };
            json!({
                "label": h.kind.label(lang),
                "scope": scope,
                "contact": crate::notify::hold_contact(h.kind, lang),
            })
        })
        .collect();
    json!(holds)
}

fn download_context(t: &Texts<'_>, v: &Viewer, now: DateTime<Utc>) -> Value {
    let available = v
        .order
        .available_at
        .map(|a| a.with_timezone(&Utc))
        .filter(|a| *a <= now);
    let order_held = v.order.open_holds().any(|h| h.line.is_none());
    let blocked = if v.order.archived {
        Some(t.get("download_blocked_archived", &[]))
    } else if order_held {
        Some(t.get("download_blocked_hold", &[]))
    } else if available.is_none() {
        Some(t.get("download_blocked_unavailable", &[]))
    } else {
        None
    };
    let window = available.filter(|_| blocked.is_none()).map(|a| {
        let end = second_download_deadline(a);
        let key = if now <= end {
            "window_open"
        } else {
            "window_closed"
        };
        t.get(key, &[("date", &date(end))])
    });
    let images: Vec<Value> = v
        .order
        .lines
        .iter()
        .filter(|l| v.lines.contains(&l.line) && !line_on_hold(&v.order, &l.line))
        .flat_map(|l| {
            l.images
                .iter()
                .map(|i| json!({"value": i.file, "label": format!("{} — {}", l.line, i.file)}))
        })
        .collect();
    json!({"blocked": blocked, "window": window, "images": images})
}

fn requests_context(t: &Texts<'_>, records: &[DownloadRecord]) -> Value {
    let rows: Vec<Value> = records
        .iter()
        .rev()
        .map(|r| {
            json!({
                "at": r.at.format("%Y-%m-%d %H:%M UTC").to_string(),
                "image": r.image,
                "rule": t.get(&format!("req_rule_{}", r.rule.as_str()), &[]),
                "ticket": r.ticket.as_ref().map(|k| t.get("ticket", &[("ticket", k)])).unwrap_or_default(),
            })
        })
        .collect();
    json!(rows)
}

/// Checks the token (404) and the CSRF field (403) of a posted form.
fn authorize_form(
    state: &AppState,
    so: &str,
    form: &PageForm,
    headers: &HeaderMap,
) -> Result<Viewer, ApiError> {
    let viewer = authorize(state.notifier.store(), so, Some(&form.t))?;
    if !csrf_ok(
        &viewer.so,
        &viewer.token,
        cookie_nonce(headers).as_deref(),
        &form.csrf,
    ) {
        tracing::warn!(so = %viewer.so, "order page form refused: CSRF check failed");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this form has expired or did not come from the order page: reload the page and try again",
        ));
    }
    Ok(viewer)
}

async fn post_download(
    State(state): State<AppState>,
    Path(so): Path<String>,
    headers: HeaderMap,
    Form(form): Form<PageForm>,
) -> Result<Response, ApiError> {
    let viewer = authorize_form(&state, &so, &form, &headers)?;
    let lang = page_lang(form.lang.as_deref(), &viewer);
    let req = DownloadRequest {
        requester: viewer.email.clone(),
        reason: form.reason.clone(),
        images: form
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .into_iter()
            .collect(),
        request_key: form.key.clone().filter(|k| token_shape_ok(k)),
    };
    let (store, desk, so2) = (
        state.notifier.store().clone(),
        state.desk_service.clone(),
        viewer.so.clone(),
    );
    let result =
        tokio::task::spawn_blocking(move || request_download(&store, &desk, &so2, req, Utc::now()))
            .await
            .map_err(internal)?;
    let t = Texts::of(lang).map_err(internal)?;
    let notice = match result {
        Ok(answer) => download_notice(&t, &answer),
        Err(DownloadError::Store(e)) => return Err(ApiError::from_store(&e)),
        Err(e) => Notice {
            ok: false,
            text: download_error_text(&t, &e),
        },
    };
    // Re-read: the page shows the request just recorded.
    let viewer = authorize(state.notifier.store(), &so, Some(&viewer.token))?;
    render(&state, &viewer, lang, Some(notice), &headers)
}

fn download_notice(t: &Texts<'_>, a: &DownloadAnswer) -> Notice {
    let images: Vec<&str> = a.images.iter().map(|i| i.image.as_str()).collect();
    let images = images.join(", ");
    let mut text = match (&a.rule, &a.review) {
        (DownloadRule::Review { business_days }, Some(r)) => {
            let ticket = r
                .ticket
                .as_ref()
                .map(|k| t.get("ticket", &[("ticket", k)]))
                .unwrap_or_default();
            t.get(
                "notice_review",
                &[
                    ("images", &images),
                    ("ticket", &ticket),
                    ("days", &business_days.to_string()),
                    ("due", &r.due.to_string()),
                ],
            )
        }
        (rule, _) => t.get(&format!("notice_{}", rule.as_str()), &[("images", &images)]),
    };
    if a.repeated {
        text = format!("{} {text}", t.get("notice_repeated", &[]));
    }
    Notice { ok: true, text }
}

fn download_error_text(t: &Texts<'_>, e: &DownloadError) -> String {
    let key = match e {
        DownloadError::ReasonRequired(_) => "err_reason_required",
        DownloadError::Refused { refusal, .. } => match refusal {
            DownloadRefusal::Archived => "err_archived",
            DownloadRefusal::OnHold => "err_on_hold",
            DownloadRefusal::NotAvailable => "err_not_available",
        },
        DownloadError::BadReason(_) => "err_bad_reason",
        DownloadError::UnknownImage(_) | DownloadError::NoImages => "err_unknown_image",
        other => {
            tracing::error!(error = %other, "download request from the order page failed");
            "err_failed"
        }
    };
    t.get(key, &[])
}

async fn post_notifications(
    State(state): State<AppState>,
    Path(so): Path<String>,
    headers: HeaderMap,
    Form(form): Form<PageForm>,
) -> Result<Response, ApiError> {
    let viewer = authorize_form(&state, &so, &form, &headers)?;
    let lang = page_lang(form.lang.as_deref(), &viewer);
    let send = form.send.as_deref() == Some("yes");
    let (store, email) = (state.notifier.store().clone(), viewer.email.clone());
    tokio::task::spawn_blocking(move || set_all(&store, &email, send))
        .await
        .map_err(internal)??;
    let t = Texts::of(lang).map_err(internal)?;
    let key = if send {
        "notice_notif_on"
    } else {
        "notice_notif_off"
    };
    let notice = Notice {
        ok: true,
        text: t.get(key, &[("email", viewer.email.as_str())]),
    };
    render(&state, &viewer, lang, Some(notice), &headers)
}

/// The Restore button: brings the archived order back through the jobs'
/// restore (the `order_restored` mail goes to the viewer), once however
/// often it is pressed.
async fn post_restore(
    State(state): State<AppState>,
    Path(so): Path<String>,
    headers: HeaderMap,
    Form(form): Form<PageForm>,
) -> Result<Response, ApiError> {
    let viewer = authorize_form(&state, &so, &form, &headers)?;
    let lang = page_lang(form.lang.as_deref(), &viewer);
    let (n, so2, by) = (
        state.notifier.clone(),
        viewer.so.clone(),
        viewer.email.to_string(),
    );
    let out = tokio::task::spawn_blocking(move || n.restore(&so2, &by))
        .await
        .map_err(internal)?;
    let key = match out {
        Ok(crate::notify::RestoreOutcome::Restored { .. }) => "notice_restored",
        Ok(crate::notify::RestoreOutcome::NotArchived) => "notice_restore_not_archived",
        Ok(crate::notify::RestoreOutcome::NoOrder) => return Err(not_found()),
        Err(crate::notify::NotifyError::Store(s)) => return Err(ApiError::from_store(&s)),
        Err(e) => return Err(internal(e)),
    };
    let t = Texts::of(lang).map_err(internal)?;
    let notice = Notice {
        ok: true,
        text: t.get(key, &[]),
    };
    // Re-read: the page shows the order as it is now.
    let viewer = authorize(state.notifier.store(), &so, Some(&viewer.token))?;
    render(&state, &viewer, lang, Some(notice), &headers)
}

/// "Stop" is the source document's preference "No" for every notification:
/// the global setting, and every per-kind "yes" that would override it.
/// "Resume" sets the global setting back; per-kind "no" choices stay.
fn set_all(store: &Store, email: &EmailAddress, send: bool) -> Result<(), ApiError> {
    if !send {
        for (kind, on) in store.preferences(email)? {
            if kind != "*" && on {
                store.set_preference(email, Some(&kind), false)?;
            }
        }
    }
    store.set_preference(email, None, send)?;
    Ok(())
}

/// `GET /orders/{so}/pak` and `/licenses` (links in mails): the page's section.
async fn to_licenses(
    State(state): State<AppState>,
    Path(so): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    to_section(&state, &so, query, "licenses")
}

/// `GET /orders/{so}/restore` (the link in the archive mail): the page's
/// archive section with its Restore button. A GET never restores: mail
/// scanners fetch links.
async fn to_archive(
    State(state): State<AppState>,
    Path(so): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    to_section(&state, &so, query, "archive")
}

fn to_section(
    state: &AppState,
    so: &str,
    query: Result<Query<PageQuery>, QueryRejection>,
    section: &str,
) -> Result<Response, ApiError> {
    let q = query.ok().map(|Query(q)| q);
    let viewer = authorize(
        state.notifier.store(),
        so,
        q.as_ref().and_then(|q| q.t.as_deref()),
    )?;
    let lang = q
        .as_ref()
        .and_then(|q| q.lang.as_deref())
        .and_then(|l| l.parse::<Lang>().ok())
        .map(|l| format!("&lang={l}"))
        .unwrap_or_default();
    let to = format!("/orders/{}?t={}{lang}#{section}", viewer.so, viewer.token);
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_and_texts_load_and_both_languages_have_every_key() {
        let (_, texts) = engine().unwrap();
        let keys = |l: &str| -> Vec<String> {
            let mut k: Vec<String> = texts[l].as_table().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys("en"), keys("fr"));
        assert!(keys("en").len() > 40);
    }

    #[test]
    fn placeholders_are_filled() {
        let t = Texts::of(Lang::Fr).unwrap();
        assert_eq!(t.get("title", &[("so", "10458321")]), "Commande 10458321");
        assert_eq!(t.get("no_such_key", &[]), "no_such_key");
    }

    #[test]
    fn csrf_fields_bind_order_token_and_nonce() {
        let so: OrderId = "10458321".parse().unwrap();
        let other: OrderId = "10458322".parse().unwrap();
        let f = csrf_field(&so, "abc", "00ff");
        assert!(csrf_ok(&so, "abc", Some("00ff"), &f));
        assert!(!csrf_ok(&so, "abc", Some("00fe"), &f));
        assert!(!csrf_ok(&so, "abd", Some("00ff"), &f));
        assert!(!csrf_ok(&other, "abc", Some("00ff"), &f));
        assert!(!csrf_ok(&so, "abc", None, &f));
        assert!(!csrf_ok(&so, "abc", Some("00ff"), "zz"));
        assert!(!csrf_ok(&so, "abc", Some("00ff"), ""));
    }

    #[test]
    fn cookie_parsing() {
        let mut h = HeaderMap::new();
        let nonce = "0123456789abcdef0123456789abcdef";
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE}={nonce}; c=d")).unwrap(),
        );
        assert_eq!(cookie_nonce(&h).as_deref(), Some(nonce));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("edesk_page=<script>"),
        );
        assert_eq!(cookie_nonce(&h), None);
    }
}
