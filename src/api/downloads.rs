//! Download requests: who may ask for which images of an order, the policy
//! decision (`domain::decide_download`) over the recorded history, and the
//! review ticket a request opens when a person must look at it. Shared by
//! `POST /v1/orders/{so}/downloads` and the order page's form.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::desk::{Acknowledge, Customer, DeskService, TicketRequest};
use crate::domain::{
    DownloadRefusal, DownloadRule, EmailAddress, Lang, Order, OrderId, PolicyInput, Team,
    check_invisible, decide_download, strictest,
};
use crate::store::{DownloadRecord, OrderMeta, Store, StoreError};

/// Longest reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 2000;

/// Why a download request was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The order number is unknown (404).
    #[error("no order {0}")]
    NoOrder(String),
    /// The requester is neither a recipient nor an Order-Based Access grantee (the address).
    #[error("{0} is not a recipient of this order")]
    NotAuthorized(String),
    #[error("no image {0:?} on the lines this requester may see")]
    /// A named image is not on a line the requester may see (the file name).
    UnknownImage(String),
    #[error("no image to download on the lines this requester may see")]
    /// The lines the requester may see carry no downloadable image.
    NoImages,
    #[error("{refusal} ({image})")]
    /// The policy refuses this image (not available yet, on hold, archived).
    Refused {
        /// Why the policy refused.
        refusal: DownloadRefusal,
        /// The refused image's file name.
        image: String,
    },
    #[error("a reason is required: this request falls under rule {}", .0.as_str())]
    /// The request needs a reason under this rule and none was given.
    ReasonRequired(DownloadRule),
    #[error("reason {0}")]
    /// The reason is too long or holds control or invisible characters (what is wrong).
    BadReason(String),
    /// Reading or recording in the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("desk: {0}")]
    /// The review ticket could not be opened.
    Desk(#[from] crate::desk::DeskError),
}

/// A request as the API or the page received it.
#[derive(Debug, Clone)]
pub struct DownloadRequest {
    /// Who asks; must be allowed to see the order (see [`visible_lines`]).
    pub requester: EmailAddress,
    /// Why a further download is needed, as typed (trimmed and checked here); `None` or
    /// blank when not given.
    pub reason: Option<String>,
    /// Image file names; empty means every image the requester may see.
    pub images: Vec<String>,
    /// A client's idempotency key: the same key answers with the first outcome.
    pub request_key: Option<String>,
}

/// One image of an answered request.
#[derive(Debug, Clone, Serialize)]
pub struct ImageAnswer {
    /// The order line the image belongs to.
    pub line: String,
    /// The image's file name.
    pub image: String,
    /// The rule this image's request fell under.
    pub rule: DownloadRule,
    /// How many requests of this image there were before this one.
    pub previous: usize,
}

/// The review a request opened.
#[derive(Debug, Clone, Serialize)]
pub struct Review {
    /// The review ticket's id; `None` when no ticket could be tied to the request yet.
    pub ticket: Option<String>,
    /// The team that reviews (always eDelivery support).
    pub team: Team,
    /// The rule's SLA, in business days.
    pub business_days: u32,
    /// End of the business day by which the team answers.
    pub due: NaiveDate,
}

/// What the requester is told.
#[derive(Debug, Clone, Serialize)]
pub struct DownloadAnswer {
    /// The order number.
    pub so: String,
    /// The requester's address.
    pub requester: String,
    /// `allowed`, `allowed_with_reason` or `review`.
    pub decision: &'static str,
    /// The strictest rule among the images (what the request as a whole needs).
    pub rule: DownloadRule,
    /// Each image recorded, in request order.
    pub images: Vec<ImageAnswer>,
    /// Set when the request needs a person's review; `None` when it is allowed at once.
    pub review: Option<Review>,
    /// This idempotency key was answered before: nothing new was recorded.
    pub repeated: bool,
}

/// The order lines `email` may see: every line for a recipient, the granted
/// lines for an Order-Based Access grantee, `None` for anyone else.
pub fn visible_lines(order: &Order, meta: &OrderMeta, email: &EmailAddress) -> Option<Vec<String>> {
    if order
        .recipients
        .iter()
        .any(|r| r.email.key() == email.key())
    {
        return Some(order.lines.iter().map(|l| l.line.clone()).collect());
    }
    let mut lines: Vec<String> = Vec::new();
    let mut granted = false;
    for g in meta.grants.iter().filter(|g| g.email.key() == email.key()) {
        granted = true;
        for l in &g.lines {
            if !lines.contains(l) {
                lines.push(l.clone());
            }
        }
    }
    granted.then_some(lines)
}

/// The desk's "further request": `email` already had a ticket about this
/// order (the review time is then 3 business days instead of 1).
pub fn further_request(
    desk: &crate::desk::Desk,
    email: &EmailAddress,
    so: &OrderId,
) -> Result<bool, crate::desk::DeskError> {
    desk.wrote_about(email.as_str(), std::slice::from_ref(so), &[])
}

/// The language to write to `email` in: the recipient's, else the order's.
pub fn lang_of(order: &Order, email: &EmailAddress) -> Lang {
    order
        .recipients
        .iter()
        .find(|r| r.email.key() == email.key())
        .map_or(order.lang, |r| order.lang_for(r))
}

/// Whether an open hold covers `line` (order-level holds cover every line).
pub fn line_on_hold(order: &Order, line: &str) -> bool {
    order
        .open_holds()
        .any(|h| h.line.as_deref().is_none_or(|l| l == line))
}

fn clean_reason(reason: Option<&str>) -> Result<Option<String>, DownloadError> {
    let Some(r) = reason.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let len = r.chars().take(MAX_REASON_CHARS + 1).count();
    if len > MAX_REASON_CHARS {
        return Err(DownloadError::BadReason(format!(
            "is longer than {MAX_REASON_CHARS} characters"
        )));
    }
    if let Some(c) = r
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(DownloadError::BadReason(format!(
            "contains the control character U+{:04X}",
            u32::from(c)
        )));
    }
    check_invisible(r).map_err(|e| DownloadError::BadReason(e.to_string()))?;
    Ok(Some(r.to_string()))
}

/// (line, image) pairs the request names, checked against what the
/// requester may see.
fn selected_images(
    order: &Order,
    visible: &[String],
    wanted: &[String],
) -> Result<Vec<(String, String)>, DownloadError> {
    let all: Vec<(String, String)> = order
        .lines
        .iter()
        .filter(|l| visible.contains(&l.line))
        .flat_map(|l| l.images.iter().map(|i| (l.line.clone(), i.file.clone())))
        .collect();
    if wanted.is_empty() {
        return if all.is_empty() {
            Err(DownloadError::NoImages)
        } else {
            Ok(all)
        };
    }
    let mut out = Vec::new();
    for w in wanted {
        let found: Vec<_> = all.iter().filter(|(_, f)| f == w).cloned().collect();
        if found.is_empty() {
            return Err(DownloadError::UnknownImage(w.clone()));
        }
        for f in found {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

/// What the owner-thread step decided.
enum Step {
    Done(Recorded),
    Refused(DownloadError),
}

/// A request as recorded (or as first recorded, for a repeated key).
struct Recorded {
    images: Vec<ImageAnswer>,
    /// Record numbers needing review that have no ticket yet.
    untracked: Vec<u64>,
    ticket: Option<String>,
    repeated: bool,
}

/// Everything the owner-thread step needs, owned.
struct Plan {
    so: OrderId,
    images: Vec<(String, String)>,
    available_at: Option<DateTime<Utc>>,
    archived: bool,
    held: Vec<bool>,
    further_request: bool,
    requester: EmailAddress,
    reason: Option<String>,
    key: Option<String>,
    now: DateTime<Utc>,
}

/// Runs on the store's owner thread: decides every image against its
/// history and appends the records, or answers a repeated key.
fn step(plan: Plan, existing: &[DownloadRecord]) -> (Step, Vec<DownloadRecord>) {
    if let Some(first) = plan
        .key
        .as_deref()
        .and_then(|key| first_answer_to_key(key, existing))
    {
        return (Step::Done(first), Vec::new());
    }
    let answers = match decide_each_image(&plan, existing) {
        Ok(answers) => answers,
        Err(e) => return (Step::Refused(e), Vec::new()),
    };
    let overall = strictest(answers.iter().map(|a| a.rule));
    if let Some(rule) = overall
        && rule.needs_reason()
        && plan.reason.is_none()
    {
        return (
            Step::Refused(DownloadError::ReasonRequired(rule)),
            Vec::new(),
        );
    }
    let records = new_records(&plan, &answers);
    // The store numbers the appended records on from the last one.
    let first_n = existing.last().map_or(0, |r| r.n) + 1;
    let untracked = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| a.rule.needs_review())
        .map(|(i, _)| first_n + i as u64)
        .collect();
    let done = Step::Done(Recorded {
        images: answers,
        untracked,
        ticket: None,
        repeated: false,
    });
    (done, records)
}

/// The answer first given to an idempotency key, rebuilt from its records;
/// `None` when the key is new.
fn first_answer_to_key(key: &str, existing: &[DownloadRecord]) -> Option<Recorded> {
    let same: Vec<&DownloadRecord> = existing
        .iter()
        .filter(|r| r.request_key.as_deref() == Some(key))
        .collect();
    if same.is_empty() {
        return None;
    }
    let images = same
        .iter()
        .map(|r| ImageAnswer {
            line: r.line.clone(),
            image: r.image.clone(),
            rule: r.rule,
            previous: existing
                .iter()
                .filter(|e| e.n < r.n && e.line == r.line && e.image == r.image)
                .count(),
        })
        .collect();
    let untracked = same
        .iter()
        .filter(|r| r.rule.needs_review() && r.ticket.is_none())
        .map(|r| r.n)
        .collect();
    let ticket = same.iter().find_map(|r| r.ticket.clone());
    Some(Recorded {
        images,
        untracked,
        ticket,
        repeated: true,
    })
}

/// The policy decision for each image over its own history; the first
/// refused image refuses the whole request.
fn decide_each_image(
    plan: &Plan,
    existing: &[DownloadRecord],
) -> Result<Vec<ImageAnswer>, DownloadError> {
    let mut answers = Vec::new();
    for ((line, image), held) in plan.images.iter().zip(&plan.held) {
        let previous: Vec<DownloadRule> = existing
            .iter()
            .filter(|r| &r.line == line && &r.image == image)
            .map(|r| r.rule)
            .collect();
        let input = PolicyInput {
            available_at: plan.available_at,
            archived: plan.archived,
            on_hold: *held,
            previous: &previous,
            further_request: plan.further_request,
            now: plan.now,
        };
        let rule = decide_download(&input).map_err(|refusal| DownloadError::Refused {
            refusal,
            image: image.clone(),
        })?;
        answers.push(ImageAnswer {
            line: line.clone(),
            image: image.clone(),
            rule,
            previous: previous.len(),
        });
    }
    Ok(answers)
}

fn new_records(plan: &Plan, answers: &[ImageAnswer]) -> Vec<DownloadRecord> {
    answers
        .iter()
        .map(|a| DownloadRecord {
            n: 0,
            so: plan.so.clone(),
            line: a.line.clone(),
            image: a.image.clone(),
            requester: plan.requester.clone(),
            reason: plan.reason.clone(),
            rule: a.rule,
            at: plan.now,
            request_key: plan.key.clone(),
            ticket: None,
        })
        .collect()
}

/// Records a download request and tells which rule applies; opens a review
/// ticket (durably, before answering) when the rule needs one.
pub fn request_download(
    store: &Store,
    desk: &DeskService,
    so: &OrderId,
    req: DownloadRequest,
    now: DateTime<Utc>,
) -> Result<DownloadAnswer, DownloadError> {
    let order = store
        .order(so)?
        .ok_or_else(|| DownloadError::NoOrder(so.to_string()))?;
    let meta = store.order_meta(so)?;
    let images = requested_images(&order, &meta, &req)?;
    let reason = clean_reason(req.reason.as_deref())?;
    let further_request = further_request(desk.desk(), &req.requester, so)?;
    let plan = Plan {
        further_request,
        so: so.clone(),
        held: images
            .iter()
            .map(|(l, _)| line_on_hold(&order, l))
            .collect(),
        images,
        available_at: order.available_at.map(|a| a.with_timezone(&Utc)),
        archived: order.archived,
        requester: req.requester.clone(),
        reason: reason.clone(),
        key: req.request_key.clone(),
        now,
    };
    let recorded = match store.download_record(so, move |existing| step(plan, existing))? {
        Step::Refused(e) => return Err(e),
        Step::Done(recorded) => recorded,
    };
    let rule = strictest(recorded.images.iter().map(|a| a.rule)).unwrap_or(DownloadRule::First);
    let review = match rule.review_business_days() {
        None => None,
        Some(days) => {
            let opened =
                open_untracked_review(store, desk, so, &order, &req.requester, reason, &recorded)?;
            let cal = desk.desk().calendar();
            Some(Review {
                ticket: match &opened {
                    Some(t) => Some(t.id.to_string()),
                    None => recorded.ticket.clone(),
                },
                team: Team::EdeliverySupport,
                business_days: days,
                due: opened
                    .map(|t| t.due)
                    .unwrap_or_else(|| cal.add_business_days(cal.local_date(now), days)),
            })
        }
    };
    Ok(DownloadAnswer {
        so: so.to_string(),
        requester: req.requester.to_string(),
        decision: match rule {
            DownloadRule::First => "allowed",
            DownloadRule::SecondWithReason => "allowed_with_reason",
            DownloadRule::Review { .. } => "review",
        },
        rule,
        images: recorded.images,
        review,
        repeated: recorded.repeated,
    })
}

/// The (line, image) pairs a request is about, among those its requester
/// may see.
fn requested_images(
    order: &Order,
    meta: &OrderMeta,
    req: &DownloadRequest,
) -> Result<Vec<(String, String)>, DownloadError> {
    let visible = visible_lines(order, meta, &req.requester)
        .ok_or_else(|| DownloadError::NotAuthorized(req.requester.to_string()))?;
    let images = selected_images(order, &visible, &req.images)?;
    if !req.images.is_empty() {
        return Ok(images);
    }
    // "Every image" means every image that can be had now: lines under
    // a hold of their own are left out (unless nothing else is left).
    let free: Vec<_> = images
        .iter()
        .filter(|(l, _)| !line_on_hold(order, l))
        .cloned()
        .collect();
    Ok(if free.is_empty() { images } else { free })
}

/// Opens the review ticket for records still untracked. A crash between
/// the record and the ticket leaves the record untracked: the same request
/// sent again opens the ticket.
fn open_untracked_review(
    store: &Store,
    desk: &DeskService,
    so: &OrderId,
    order: &Order,
    requester: &EmailAddress,
    reason: Option<String>,
    recorded: &Recorded,
) -> Result<Option<crate::desk::Ticket>, DownloadError> {
    let Some(first) = recorded.untracked.first() else {
        return Ok(None);
    };
    let t = open_review(desk, order, requester, &recorded.images, reason, *first)?;
    store.download_set_ticket(so, &recorded.untracked, &t.id.to_string())?;
    Ok(Some(t))
}

/// Opens the review ticket through the desk service: eDelivery support is
/// mailed and the requester gets the acknowledgement with the ticket number
/// and due date. The key (order and first record number) keeps the mails
/// to one per request if this runs again.
fn open_review(
    desk: &DeskService,
    order: &Order,
    requester: &EmailAddress,
    images: &[ImageAnswer],
    reason: Option<String>,
    first_record: u64,
) -> Result<crate::desk::Ticket, DownloadError> {
    let list: Vec<String> = images
        .iter()
        .filter(|i| i.rule.needs_review())
        .map(|i| {
            format!(
                "- line {} {} ({} earlier request(s))",
                i.line, i.image, i.previous
            )
        })
        .collect();
    let text = format!(
        "Download request needing review (software download policy).\nImages:\n{}\nReason given:\n{}",
        list.join("\n"),
        reason.as_deref().unwrap_or("")
    );
    let key = format!("download:{}:{first_record}", order.so);
    let outcome = desk.open_or_follow_up(TicketRequest {
        key: key.clone(),
        reference: Some(key),
        customer: Customer::Mail(requester.clone()),
        lang: lang_of(order, requester),
        subject: format!("Download review for order {}", order.so),
        text,
        team: Team::EdeliverySupport,
        orders: vec![order.so.clone()],
        purchase_orders: Vec::new(),
        authorized: true,
        faq: None,
        reasons: vec!["software download policy: review".into()],
        message_id: None,
        thread: Vec::new(),
        ticket: None,
        acknowledge: Acknowledge::ByMail,
    })?;
    Ok(outcome.ticket)
}

/// The body of `POST /v1/orders/{so}/downloads`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestBody {
    requester: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    images: Vec<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// The status and JSON body of a refused request.
pub fn error_response(e: &DownloadError) -> super::ApiError {
    use axum::http::StatusCode;
    use serde_json::json;
    let (status, body) = match e {
        DownloadError::NoOrder(so) => (StatusCode::NOT_FOUND, json!({"so": so})),
        DownloadError::NotAuthorized(who) => (
            StatusCode::FORBIDDEN,
            json!({"field": "requester", "value": who}),
        ),
        DownloadError::UnknownImage(i) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"field": "images", "value": i}),
        ),
        DownloadError::NoImages => (StatusCode::UNPROCESSABLE_ENTITY, json!({"field": "images"})),
        DownloadError::Refused { refusal, image } => (
            StatusCode::CONFLICT,
            json!({"reason": refusal.as_str(), "image": image}),
        ),
        DownloadError::ReasonRequired(rule) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"field": "reason", "rule": rule}),
        ),
        DownloadError::BadReason(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, json!({"field": "reason"}))
        }
        DownloadError::Store(s) => return super::ApiError::from_store(s),
        DownloadError::Desk(crate::desk::DeskError::Store(s)) => {
            return super::ApiError::from_store(s);
        }
        DownloadError::Desk(d) => {
            tracing::error!(error = %d, "download review ticket");
            return super::ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let mut body = body;
    body["error"] = json!(e.to_string());
    super::ApiError { status, body }
}

/// `POST /v1/orders/{so}/downloads`: records the request, tells which rule
/// applies (201 allowed, 202 sent to review, 200 for a repeated key).
pub async fn post_downloads(
    axum::extract::State(state): axum::extract::State<super::AppState>,
    axum::extract::Path(so): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::response::Response, super::ApiError> {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let so: OrderId = so
        .parse()
        .map_err(|e: crate::domain::IdError| super::ApiError {
            status: StatusCode::BAD_REQUEST,
            body: serde_json::json!({"error": e.to_string(), "field": "so", "value": so}),
        })?;
    let b: RequestBody = serde_json::from_slice(&body).map_err(|e| {
        super::ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad download request: {e}"),
        )
    })?;
    let requester: EmailAddress = b.requester.parse().map_err(|e: crate::domain::AddressError| {
        super::ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: serde_json::json!({"error": e.to_string(), "field": "requester", "value": b.requester}),
        }
    })?;
    let req = DownloadRequest {
        requester,
        reason: b.reason,
        images: b.images,
        request_key: b.idempotency_key.filter(|k| !k.is_empty()),
    };
    let (store, desk) = (state.notifier.store().clone(), state.desk_service.clone());
    let span = tracing::info_span!("download_request", so = %so);
    let answer = tokio::task::spawn_blocking(move || {
        let _g = span.enter();
        request_download(&store, &desk, &so, req, Utc::now())
    })
    .await
    .map_err(|e| super::ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| error_response(&e))?;
    let status = if answer.repeated {
        StatusCode::OK
    } else if answer.review.is_some() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(answer)).into_response())
}

/// `GET /v1/orders/{so}/downloads`: the recorded requests of an order.
pub async fn get_downloads(
    axum::extract::State(state): axum::extract::State<super::AppState>,
    axum::extract::Path(so): axum::extract::Path<String>,
) -> Result<axum::Json<serde_json::Value>, super::ApiError> {
    use axum::http::StatusCode;
    let so: OrderId = so
        .parse()
        .map_err(|e: crate::domain::IdError| super::ApiError {
            status: StatusCode::BAD_REQUEST,
            body: serde_json::json!({"error": e.to_string(), "field": "so", "value": so}),
        })?;
    let store = state.notifier.store();
    if store.order(&so)?.is_none() {
        return Err(super::ApiError {
            status: StatusCode::NOT_FOUND,
            body: serde_json::json!({"error": format!("no order {so}"), "so": so.as_str()}),
        });
    }
    let list = store.download_requests(&so)?;
    Ok(axum::Json(
        serde_json::json!({"so": so.as_str(), "requests": list}),
    ))
}
