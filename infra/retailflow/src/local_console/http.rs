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

mod actions;
use actions::{bulk_retry, check, reconcile, resolve, retry};

#[derive(Deserialize)]
struct DevUsersFile {
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
        // A key of this process's own: the users' passwords are public,
        // a committed key would let anyone seal any session. Sessions end
        // with the process.
        let random = [
            uuid::Uuid::new_v4().into_bytes(),
            uuid::Uuid::new_v4().into_bytes(),
        ]
        .concat();
        Ok(ConsoleAuth {
            key: SessionKey::new(&random)?,
            users: file.users,
        })
    }

    /// The user's name as kept and their role, if the password is theirs.
    fn check(&self, name: &str, password: &str) -> Option<(String, Role)> {
        let digest = |s: &str| Sha256::digest(s.as_bytes());
        let user = self
            .users
            .iter()
            .find(|u| u.name.eq_ignore_ascii_case(name.trim()))?;
        if digest(&user.password) != digest(password) {
            return None;
        }
        Role::of_groups(user.groups.iter().map(String::as_str)).map(|r| (user.name.clone(), r))
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
        .route("/console/actions/reconcile", post(reconcile))
        .route("/console/reports", get(reports))
        .route("/console/reports/{id}", get(report))
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

async fn login(State(c): State<Console>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    // Another site must not sign this browser in as someone else.
    if let Err(r) = from_the_console(&headers) {
        return *r;
    }
    let Some((name, role)) = c.auth.check(&f.user, &f.password) else {
        return html(
            StatusCode::UNAUTHORIZED,
            pages::login(Some("that user and password do not match a console user")),
        );
    };
    let s = session::sign_in(
        &name,
        role,
        uuid::Uuid::new_v4().to_string(),
        chrono::Utc::now(),
    );
    let cookie = session::set_cookie(&c.auth.key.seal(&s), false);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/console")).into_response()
}

async fn logout(headers: HeaderMap) -> Response {
    // Signing out needs no valid session (an expired one is cleared too),
    // only the console's own page.
    if let Err(r) = from_the_console(&headers) {
        return *r;
    }
    (
        [(header::SET_COOKIE, session::clear_cookie())],
        Redirect::to("/console/login"),
    )
        .into_response()
}

/// Whether a POST comes from the console's own pages on this loopback
/// serve: its `Host` is a loopback address (a page on another name that
/// resolves here, DNS rebinding, names its own host) and its `Origin` (or
/// `Referer`) is that host.
fn from_the_console(headers: &HeaderMap) -> Result<(), Box<Response>> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text(header::HOST).unwrap_or_default();
    let hostname = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let loopback = matches!(hostname, "127.0.0.1" | "localhost" | "[::1]");
    if !loopback || !session::same_origin(text(header::ORIGIN), text(header::REFERER), host) {
        return Err(Box::new(refused(
            StatusCode::FORBIDDEN,
            "this request did not come from the console's own pages: refused",
        )));
    }
    Ok(())
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
    from_the_console(headers)?;
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

fn summaries(app: &LocalApp) -> Vec<pages::ReportSummary> {
    let mut all: Vec<retailflow_core::reconciliation::ReconciliationReport> = app
        .store
        .reports()
        .into_iter()
        .filter_map(|(_, body)| serde_json::from_str(&body).ok())
        .collect();
    all.sort_by_key(|r| std::cmp::Reverse(r.started_at));
    all.iter().map(pages::ReportSummary::of).collect()
}

async fn reports(State(c): State<Console>, headers: HeaderMap) -> Response {
    let s = match signed_in(&c, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    html(
        StatusCode::OK,
        pages::reports(&actor(&c, &s), &summaries(&c.app)),
    )
}

async fn report(
    State(c): State<Console>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let s = match signed_in(&c, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match summaries(&c.app).into_iter().find(|r| r.run_id == id) {
        Some(r) => html(StatusCode::OK, pages::report(&actor(&c, &s), &r)),
        None => refused(StatusCode::NOT_FOUND, &format!("no report {id}")),
    }
}
