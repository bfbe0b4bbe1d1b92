//! The console's routes on a local `serve`: sign-in with the dev users
//! (`events/dev-keys/console-users.json`, loopback only), the inbox, each
//! order's page, and the operators' actions. Every answer is HTML; every
//! action is a same-origin POST carrying the session's token, refused to
//! viewers, and recorded with who did it.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use retailflow_console::pages::{self, Actor, PageError};
use retailflow_console::session::{self, Role, Session, SessionKey};
use retailflow_core::ports::dead_letters::DeadLetters;
use retailflow_core::ports::operator_actions::{OperatorAction, OperatorActions};
use retailflow_core::replay::{DeadLetterFilter, DeadLetterView};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::local_app::LocalApp;

#[derive(Deserialize)]
struct DevUsersFile {
    session_secret: String,
    users: Vec<DevUser>,
}

#[derive(Deserialize)]
struct DevUser {
    name: String,
    password: String,
    groups: Vec<String>,
}

/// Who may sign in to a local console, and the key their sessions are
/// sealed with.
pub struct ConsoleAuth {
    key: SessionKey,
    users: Vec<DevUser>,
}

impl ConsoleAuth {
    /// The dev users in `dev_keys/console-users.json`.
    pub fn from_dev_keys(dev_keys: &Path) -> anyhow::Result<Self> {
        let path = dev_keys.join("console-users.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the console's users from {}", path.display()))?;
        let file: DevUsersFile = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a console users file", path.display()))?;
        Ok(ConsoleAuth {
            key: SessionKey::new(file.session_secret.as_bytes())?,
            users: file.users,
        })
    }

    /// The user's role, if the password is theirs.
    fn check(&self, name: &str, password: &str) -> Option<Role> {
        let digest = |s: &str| Sha256::digest(s.as_bytes());
        let user = self
            .users
            .iter()
            .find(|u| u.name.eq_ignore_ascii_case(name.trim()))?;
        (digest(&user.password) == digest(password))
            .then(|| Role::of_groups(user.groups.iter().map(String::as_str)))
            .flatten()
    }
}

#[derive(Clone)]
struct Console {
    app: Arc<LocalApp>,
    auth: Arc<ConsoleAuth>,
}

/// The console's routes, for `serve` to merge beside its JSON API.
pub fn router(app: Arc<LocalApp>, auth: Arc<ConsoleAuth>) -> Router {
    Router::new()
        .route("/console", get(inbox))
        .route("/console/", get(inbox))
        .route("/console/orders/{*key}", get(order))
        .route("/console/login", get(login_form).post(login))
        .route("/console/logout", post(logout))
        .route("/console/actions/retry", post(retry))
        .route("/console/actions/bulk-retry", post(bulk_retry))
        .route("/console/actions/check", post(check))
        .route("/console/actions/resolve", post(resolve))
        .with_state(Console { app, auth })
}

fn html(status: StatusCode, body: Result<String, PageError>) -> Response {
    match body {
        Ok(page) => (status, Html(page)).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Html(format!(
                "<!doctype html><p>{}</p>",
                e.to_string().replace('&', "&amp;").replace('<', "&lt;")
            )),
        )
            .into_response(),
    }
}

fn refused(status: StatusCode, why: &str) -> Response {
    html(status, pages::not_found(why))
}

/// The signed-in session, or why there is none.
fn session_of(c: &Console, headers: &HeaderMap) -> Result<Session, session::SessionError> {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::cookie_value)
        .ok_or(session::SessionError::Missing)?;
    c.auth.key.open(cookie, chrono::Utc::now())
}

fn actor(c: &Console, s: &Session) -> Actor {
    Actor {
        user: s.user.clone(),
        operator: s.role == Role::Operator,
        csrf: c.auth.key.csrf_token(s),
    }
}

/// A page needs a session: without one, the sign-in form.
fn signed_in(c: &Console, headers: &HeaderMap) -> Result<Session, Box<Response>> {
    session_of(c, headers).map_err(|_| Box::new(Redirect::to("/console/login").into_response()))
}

async fn inbox(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let s = match signed_in(&c, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let query = match pages::inbox_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        Ok(q) => q,
        Err(e) => return refused(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let all = super::exceptions(&c.app).await;
    html(
        StatusCode::OK,
        pages::inbox(&actor(&c, &s), &all, &query, c.app.clock.now()),
    )
}

async fn order(
    State(c): State<Console>,
    headers: HeaderMap,
    UrlPath(key): UrlPath<String>,
) -> Response {
    let s = match signed_in(&c, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match super::order_page(&c.app, &key).await {
        Ok(Some(view)) => html(StatusCode::OK, pages::order(&actor(&c, &s), &view)),
        Ok(None) => refused(
            StatusCode::NOT_FOUND,
            &format!("retailflow knows no order {key}"),
        ),
        Err(e) => refused(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the order could not be read: {e}"),
        ),
    }
}

async fn login_form() -> Response {
    html(StatusCode::OK, pages::login(None))
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
}

async fn login(State(c): State<Console>, Form(f): Form<LoginForm>) -> Response {
    let Some(role) = c.auth.check(&f.user, &f.password) else {
        return html(
            StatusCode::UNAUTHORIZED,
            pages::login(Some("that user and password do not match a console user")),
        );
    };
    let s = session::sign_in(
        f.user.trim(),
        role,
        uuid::Uuid::new_v4().to_string(),
        chrono::Utc::now(),
    );
    let cookie = session::set_cookie(&c.auth.key.seal(&s), false);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/console")).into_response()
}

#[derive(Deserialize)]
struct TokenOnly {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<TokenOnly>,
) -> Response {
    if let Err(r) = acting(&c, &headers, &f.csrf, None) {
        return *r;
    }
    (
        [(header::SET_COOKIE, session::clear_cookie())],
        Redirect::to("/console/login"),
    )
        .into_response()
}

/// The session an action is taken under, once it has shown it comes from
/// the console (its origin and its token) and, when `role` says so, that
/// its user may act.
fn acting(
    c: &Console,
    headers: &HeaderMap,
    csrf: &str,
    role: Option<Role>,
) -> Result<Session, Box<Response>> {
    let s = session_of(c, headers)
        .map_err(|e| Box::new(refused(StatusCode::UNAUTHORIZED, &e.to_string())))?;
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text(header::HOST).unwrap_or_default();
    if !session::same_origin(text(header::ORIGIN), text(header::REFERER), host) {
        return Err(Box::new(refused(
            StatusCode::FORBIDDEN,
            "this request did not come from the console's own pages: refused",
        )));
    }
    if !c.auth.key.csrf_ok(&s, csrf) {
        return Err(Box::new(refused(
            StatusCode::FORBIDDEN,
            "this form's token is not this session's: reload the page and try again",
        )));
    }
    if role.is_some_and(|r| s.role < r) {
        return Err(Box::new(refused(
            StatusCode::FORBIDDEN,
            "viewers can look but not act: ask an operator",
        )));
    }
    Ok(s)
}

#[derive(Deserialize)]
struct RetryForm {
    id: String,
    #[serde(default)]
    csrf: String,
}

/// Sends one dead letter back to its queue, runs what it starts, and
/// records what came of it on the order's timeline.
async fn retry(State(c): State<Console>, headers: HeaderMap, Form(f): Form<RetryForm>) -> Response {
    let s = match acting(&c, &headers, &f.csrf, Some(Role::Operator)) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let letters = match c.app.list(usize::MAX).await {
        Ok(l) => l,
        Err(e) => return refused(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let Some(letter) = letters.iter().find(|d| d.id == f.id).cloned() else {
        return refused(
            StatusCode::NOT_FOUND,
            &format!("no dead letter {}: retried or resolved already?", f.id),
        );
    };
    let asked_at = c.app.clock.now();
    let filter = DeadLetterFilter {
        id: Some(f.id.clone()),
        ..Default::default()
    };
    let result = match c.app.redrive(&filter, 1).await {
        Ok(_) => {
            c.app.drain().await;
            died_again(&c.app, &letter, &letters).await
        }
        Err(e) => format!("not re-driven: {e}"),
    };
    let action = OperatorAction {
        id: uuid::Uuid::new_v4(),
        at: asked_at,
        who: s.user.clone(),
        action: "retry".into(),
        subject: format!("dead letter {} on {}", letter.id, letter.queue),
        order_key: letter.correlation_id.clone(),
        note: None,
        result,
    };
    if let Err(e) = c.app.store.record(&action).await {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("retried, but the action could not be recorded: {e}"),
        );
    }
    let back = match &letter.correlation_id {
        Some(key) => format!(
            "/console/orders/{}",
            percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC)
        ),
        None => "/console".into(),
    };
    Redirect::to(&back).into_response()
}

/// What came of a re-driven letter: done, or dead again with the reason.
async fn died_again(app: &LocalApp, letter: &DeadLetterView, before: &[DeadLetterView]) -> String {
    let Ok(now) = app.list(usize::MAX).await else {
        return "re-driven; its outcome could not be read".into();
    };
    let again = now.into_iter().find(|d| {
        !before.iter().any(|b| b.id == d.id)
            && (&d.queue, &d.correlation_id, &d.event_type)
                == (&letter.queue, &letter.correlation_id, &letter.event_type)
    });
    match again {
        Some(d) => format!(
            "failed again: {}",
            d.reason.unwrap_or_else(|| "no reason given".into())
        ),
        None => "re-driven and done".into(),
    }
}

#[derive(Deserialize)]
struct BulkForm {
    #[serde(default)]
    class: String,
    #[serde(default)]
    step: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    csrf: String,
}

/// Sends every dead letter the inbox's view shows back to its queue. The
/// ERP steps they start take the ERP's concurrency budget like any other
/// (each call waits for a slot), so a bulk retry never runs more calls at
/// once than the ERP allows. Each letter's outcome is recorded on its
/// order's timeline.
async fn bulk_retry(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<BulkForm>,
) -> Response {
    let s = match acting(&c, &headers, &f.csrf, Some(Role::Operator)) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let query = match pages::inbox_query([
        ("class", f.class.as_str()),
        ("step", f.step.as_str()),
        ("q", f.q.as_str()),
    ]) {
        Ok(q) => q,
        Err(e) => return refused(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let all = super::exceptions(&c.app).await;
    let chosen: Vec<String> = retailflow_console::inbox::matching(&all, &query)
        .into_iter()
        .filter(|e| {
            matches!(
                e.origin,
                retailflow_console::inbox::Origin::DeadLetter { .. }
            )
        })
        .map(|e| e.id.clone())
        .collect();
    let before = match c.app.list(usize::MAX).await {
        Ok(l) => l,
        Err(e) => return refused(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let asked_at = c.app.clock.now();
    let started = std::time::Instant::now();
    let mut sent = Vec::new();
    let mut not_sent = Vec::new();
    for id in &chosen {
        let filter = DeadLetterFilter {
            id: Some(id.clone()),
            ..Default::default()
        };
        match c.app.redrive(&filter, 1).await {
            Ok(r) if !r.redriven.is_empty() => sent.extend(r.redriven),
            Ok(_) => not_sent.push(format!("{id}: no longer on its queue")),
            Err(e) => not_sent.push(format!("{id}: {e}")),
        }
    }
    c.app.drain().await;
    let mut done = 0usize;
    let mut failed = Vec::new();
    for letter in &sent {
        let result = died_again(&c.app, letter, &before).await;
        if result.starts_with("failed again") {
            failed.push(format!(
                "{}: {result}",
                letter.correlation_id.as_deref().unwrap_or(&letter.id)
            ));
        } else {
            done += 1;
        }
        let action = OperatorAction {
            id: uuid::Uuid::new_v4(),
            at: asked_at,
            who: s.user.clone(),
            action: "bulk_retry".into(),
            subject: format!(
                "dead letter {} on {} (one of {} chosen by class {:?}, step {:?}, search {:?})",
                letter.id,
                letter.queue,
                chosen.len(),
                f.class,
                f.step,
                f.q
            ),
            order_key: letter.correlation_id.clone(),
            note: None,
            result,
        };
        if let Err(e) = c.app.store.record(&action).await {
            not_sent.push(format!("{}: retried, not recorded: {e}", letter.id));
        }
    }
    let mut lines = vec![
        format!(
            "{} of {} dead letters re-driven: {done} done, {} failed again, in {:.1} s",
            sent.len(),
            chosen.len(),
            failed.len(),
            started.elapsed().as_secs_f64()
        ),
        match c.app.budgets.erp.as_ref() {
            Some(b) => format!(
                "paced by the ERP's concurrency budget: at most {} calls at once",
                b.limit_now()
            ),
            None => "the ERP has no concurrency budget configured".into(),
        },
    ];
    lines.extend(failed);
    lines.extend(not_sent);
    html(StatusCode::OK, pages::message("Bulk retry", &lines))
}

/// What retrying `letter` would do in the system of record: the document
/// or journal its step looks up first, found (already there: resolve it
/// rather than retry) or not (a retry creates it).
async fn look_up(app: &LocalApp, letter: &DeadLetterView) -> String {
    use retailflow_core::ports::erp::ErpConnector;
    use retailflow_core::ports::loyalty::LoyaltyConnector;
    let Some(order) = letter
        .correlation_id
        .as_deref()
        .and_then(retailflow_core::model::OrderRef::from_key)
    else {
        return "the dead letter names no order: nothing to look up".into();
    };
    let body: serde_json::Value = serde_json::from_str(&letter.body).unwrap_or_default();
    let detail = if body["detail"]["detail"].is_object() {
        &body["detail"]["detail"]
    } else {
        &body["detail"]
    };
    let erp = app.erp.system();
    match (letter.queue.as_str(), letter.event_type.as_deref()) {
        (crate::local_app::ERP_POST_QUEUE, _) => {
            let ext = retailflow_core::steps::erp_posting::sales_order_external_id(&order);
            match app.erp.find_sales_order(&ext).await {
                Ok(Some(doc)) => format!(
                    "already posted: {erp} sales order {} ({}) under {ext}: resolve it rather than retry",
                    doc.number, doc.total
                ),
                Ok(None) => format!("{erp} has no sales order {ext}: a retry creates it"),
                Err(e) => format!("{erp} could not be asked: {e}"),
            }
        }
        (crate::local_app::LOYALTY_ACCRUAL_QUEUE, _) => {
            let ext = retailflow_core::steps::loyalty_accrual::accrual_external_id(&order);
            match app.loyalty.find_accrual(&ext).await {
                Ok(Some(j)) => format!(
                    "already accrued: journal {} ({} points) under {ext}: resolve it rather than retry",
                    j.journal_id,
                    j.points.map_or("?".into(), |p| p.to_string())
                ),
                Ok(None) => format!("no accrual {ext} yet: a retry posts it"),
                Err(e) => format!("the loyalty platform could not be asked: {e}"),
            }
        }
        (_, Some("RefundIssued")) => {
            let Some(refund) = detail["refund"]["refund_id"].as_str() else {
                return "the refund's id is not in the dead letter: nothing to look up".into();
            };
            let ext =
                retailflow_core::steps::return_reversal::credit_memo_external_id(&order, refund);
            match app.erp.find_credit_memo(&ext).await {
                Ok(Some(doc)) => format!(
                    "already credited: {erp} credit memo {} ({}) under {ext}",
                    doc.number, doc.total
                ),
                Ok(None) => format!("{erp} has no credit memo {ext}: a retry creates it"),
                Err(e) => format!("{erp} could not be asked: {e}"),
            }
        }
        (queue, _) => format!("nothing to look up before retrying a letter of {queue}"),
    }
}

/// Looks the system of record up before a retry, and says what a retry
/// would do; recorded like any action.
async fn check(State(c): State<Console>, headers: HeaderMap, Form(f): Form<RetryForm>) -> Response {
    let s = match acting(&c, &headers, &f.csrf, Some(Role::Operator)) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let letters = match c.app.list(usize::MAX).await {
        Ok(l) => l,
        Err(e) => return refused(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let Some(letter) = letters.into_iter().find(|d| d.id == f.id) else {
        return refused(
            StatusCode::NOT_FOUND,
            &format!("no dead letter {}: retried or resolved already?", f.id),
        );
    };
    let result = look_up(&c.app, &letter).await;
    let action = OperatorAction {
        id: uuid::Uuid::new_v4(),
        at: c.app.clock.now(),
        who: s.user.clone(),
        action: "check".into(),
        subject: format!("dead letter {} on {}", letter.id, letter.queue),
        order_key: letter.correlation_id.clone(),
        note: None,
        result: result.clone(),
    };
    if let Err(e) = c.app.store.record(&action).await {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("looked up, but the action could not be recorded: {e}"),
        );
    }
    html(
        StatusCode::OK,
        pages::message(&format!("Before retrying {}", letter.id), &[result]),
    )
}

#[derive(Deserialize)]
struct ResolveForm {
    id: String,
    /// `resolve` (fixed by other means) or `dismiss` (nothing to do).
    #[serde(default)]
    how: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    csrf: String,
}

/// Takes a dead letter off the inbox for good, with the operator's note
/// saying why: fixed by other means (resolve) or nothing to do (dismiss).
async fn resolve(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<ResolveForm>,
) -> Response {
    let s = match acting(&c, &headers, &f.csrf, Some(Role::Operator)) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let how = match f.how.as_str() {
        "" | "resolve" => "resolve",
        "dismiss" => "dismiss",
        other => {
            return refused(
                StatusCode::BAD_REQUEST,
                &format!("{other:?} is neither resolve nor dismiss"),
            )
        }
    };
    let note = f.note.trim();
    if note.is_empty() {
        return refused(
            StatusCode::BAD_REQUEST,
            "say why in a note: the order's timeline keeps it",
        );
    }
    let letter = match c.app.discard_dead_letter(&f.id) {
        Ok(Some(d)) => d,
        Ok(None) => {
            return refused(
                StatusCode::NOT_FOUND,
                &format!("no dead letter {}: retried or resolved already?", f.id),
            )
        }
        Err(e) => return refused(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let view = DeadLetterView::from_body(
        letter.id.clone(),
        letter.queue.clone(),
        Some(letter.reason.clone()),
        letter.body.clone(),
    );
    let action = OperatorAction {
        id: uuid::Uuid::new_v4(),
        at: c.app.clock.now(),
        who: s.user.clone(),
        action: how.into(),
        subject: format!("dead letter {} on {}", letter.id, letter.queue),
        order_key: view.correlation_id.clone(),
        note: Some(note.to_string()),
        result: "taken off its queue".into(),
    };
    if let Err(e) = c.app.store.record(&action).await {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("taken off its queue, but the action could not be recorded: {e}"),
        );
    }
    Redirect::to("/console").into_response()
}
