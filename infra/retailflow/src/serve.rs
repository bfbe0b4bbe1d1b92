//! `retailflow serve`: the template's HTTP routes on the in-process adapters.
//! `GET /local/state` shows what the app published, its sagas, quarantine and
//! dead letters; `GET /local/timelines` each order's timeline;
//! `GET /local/trace/{key}` one order's trace; `POST /local/reconcile` a
//! reconciliation run's report, `GET /local/reports/{id}` a kept one;
//! `GET /local/dead-letters`, `POST /local/dead-letters/redrive` and
//! `POST /local/replay` for `retailflow replay`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use chrono::Utc;
use retailflow_core::intake::{IntakeConfig, WebhookRequest, WebhookRoute, DEFAULT_MAX_BODY_BYTES};

use crate::data_dir::DataDir;
use crate::local_app::LocalApp;
use retailflow::local_console::http::ConsoleAuth;
use retailflow::runtime::Clock;

/// Bodies above this never reach a handler. The intake refuses anything
/// over [`DEFAULT_MAX_BODY_BYTES`] itself, with its own reason; this outer
/// limit only keeps a hostile caller from filling memory.
const BODY_LIMIT_BYTES: usize = DEFAULT_MAX_BODY_BYTES * 4;

pub fn router(app: Arc<LocalApp>) -> Router {
    Router::new()
        .route("/webhooks/shopify", post(webhook))
        .route("/webhooks/adobe", post(webhook))
        .route("/pos/returns", post(webhook))
        .route("/checkout/validate", post(checkout))
        .route("/local/state", get(state))
        .route("/local/timelines", get(timelines))
        .route("/local/trace/{key}", get(trace))
        .route("/local/reconcile", post(reconcile))
        .route("/local/reports/{id}", get(report))
        .route("/local/dead-letters", get(dead_letters))
        .route("/local/dead-letters/redrive", post(redrive))
        .route("/local/replay", post(replay))
        .route("/local/data-dir", get(data_dir))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        // The intake answers 413 itself; let bodies reach it.
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(axum::middleware::from_fn(refusals_in_json))
        .with_state(app)
}

/// The API and, beside its JSON layer (the console answers in HTML, its
/// refusals too), the console.
pub fn router_with_console(app: Arc<LocalApp>, console: Arc<ConsoleAuth>) -> Router {
    retailflow::local_console::http::router(app.clone(), console).merge(router(app))
}

/// A refusal as every route answers one: `{"error": why}`.
fn refuse(status: StatusCode, why: impl std::fmt::Display) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": why.to_string() })),
    )
        .into_response()
}

async fn no_route(method: Method, uri: Uri) -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        format!("no route {method} {}", uri.path()),
    )
}

async fn wrong_method(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    const POSTED: [&str; 7] = [
        "/webhooks/shopify",
        "/webhooks/adobe",
        "/pos/returns",
        "/checkout/validate",
        "/local/reconcile",
        "/local/dead-letters/redrive",
        "/local/replay",
    ];
    let allowed = if POSTED.contains(&path) {
        "use POST"
    } else {
        "use GET"
    };
    refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {path}: {allowed}"),
    )
}

/// What axum answers by itself (a body over the limit, a path it cannot
/// decode) is plain text; a client reading `{"error"}` must find one there
/// too, and a 413 says the limit it broke.
async fn refusals_in_json(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        let body = serde_json::json!({
            "error": format!("request body is over the {BODY_LIMIT_BYTES}-byte limit"),
            "limit_bytes": BODY_LIMIT_BYTES,
        });
        return (status, axum::Json(body)).into_response();
    }
    let (parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).into_owned(),
        _ => parts
            .status
            .canonical_reason()
            .unwrap_or("refused")
            .to_string(),
    };
    let mut json = refuse(status, text);
    for (k, v) in parts.headers.iter() {
        if k != axum::http::header::CONTENT_TYPE && k != axum::http::header::CONTENT_LENGTH {
            json.headers_mut().insert(k, v.clone());
        }
    }
    json
}

async fn webhook(
    State(app): State<Arc<LocalApp>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let Some(route) = WebhookRoute::from_path(uri.path()) else {
        return refuse(StatusCode::NOT_FOUND, format!("no route {}", uri.path()));
    };
    let resp = app
        .intake
        .handle(WebhookRequest {
            route,
            headers: &headers,
            body: &body,
            received_at: Utc::now(),
            gateway_time: None,
            deadline: None,
        })
        .await;
    // Run the saga to the end before answering: local runs are for seeing
    // what happens to an order, so the state is complete when this returns.
    app.drain().await;
    resp.into_http().into_response()
}

/// `POST /checkout/validate` (openapi/checkout.yaml): 401 without a
/// Shopify session token or a storefront's signed request, else 200 with
/// the validation (accepted or rejected with reasons), 400 for a body that
/// is not a checkout request, 403 for one acting for someone else.
async fn checkout(
    State(app): State<Arc<LocalApp>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    use retailflow_core::checkout::validation::{answer, CheckoutHttpRequest};
    let (status, json) = answer(
        &app.checkout,
        &app.checkout_auth,
        CheckoutHttpRequest {
            headers: &headers,
            body: &body,
            received_at: app.clock.now(),
            gateway_time: None,
        },
    )
    .await;
    let status = axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, axum::Json(json)).into_response();
    if status == axum::http::StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static(retailflow_core::checkout::auth::WWW_AUTHENTICATE),
        );
    }
    resp
}

async fn state(State(app): State<Arc<LocalApp>>) -> impl IntoResponse {
    axum::Json(app.snapshot())
}

/// `retailflow trace` on the local app's store.
async fn trace(
    State(app): State<Arc<LocalApp>>,
    axum::extract::Path(key): axum::extract::Path<String>,
) -> axum::response::Response {
    use retailflow_core::ports::dead_letters::DeadLetters;
    use retailflow_core::trace::{only_stuck, trace_order, with_stuck};
    let found = match trace_order(app.store.as_ref(), &key).await {
        Ok(found) => found,
        Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    // What the saga store cannot show: the dead letters and the quarantine.
    let letters = match app.list(usize::MAX).await {
        Ok(l) => l,
        Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    let quarantined = app.store.quarantined();
    let trace = match found {
        Some(t) => Some(with_stuck(t, &letters, &quarantined)),
        None => only_stuck(&key, &letters, &quarantined),
    };
    match trace {
        Some(t) => axum::Json(retailflow::local_console::with_summaries(t, &app)).into_response(),
        None => {
            // A bare order id or number: the orders whose key ends with it.
            let tail = format!(":{}", key.trim_start_matches('#'));
            let did_you_mean: Vec<String> = app
                .store
                .sagas()
                .into_iter()
                .map(|s| s.saga_key)
                .filter(|k| k.ends_with(&tail) && k.contains(":order:"))
                .take(5)
                .collect();
            let body = serde_json::json!({
                "error": format!("no order {key}"),
                "did_you_mean": did_you_mean,
            });
            (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
        }
    }
}

/// `retailflow reconcile --local`: a run over the window the body asks
/// for (`{"hours"}` or `{"from", "to"}`; default the last 24 hours).
async fn reconcile(State(app): State<Arc<LocalApp>>, body: Bytes) -> axum::response::Response {
    use axum::http::StatusCode;
    let detail = match json_body(&body) {
        Ok(v) => v,
        Err(e) => return not_json(e),
    };
    let window = match retailflow_core::reconciliation::request::requested_window(
        &detail,
        app.clock.now(),
        chrono::Duration::hours(24),
    ) {
        Ok(w) => w,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    match app.reconcile_window(window).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// `retailflow reconcile --report <id|latest>` on the local app: a kept
/// report, not a new run.
async fn report(
    State(app): State<Arc<LocalApp>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    use retailflow_core::ports::StateStore;
    let run_id = if id == "latest" {
        match app
            .store
            .read_cursor(retailflow_core::reconciliation::LATEST_CURSOR)
            .await
        {
            Ok(Some(r)) if !r.is_empty() => r,
            Ok(_) => {
                return refuse(
                    StatusCode::NOT_FOUND,
                    "no finished reconciliation yet: run `retailflow reconcile` first",
                )
            }
            Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, e),
        }
    } else {
        id
    };
    match app.store.report(&run_id).await {
        Ok(Some(body)) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Ok(None) => refuse(StatusCode::NOT_FOUND, format!("no report {run_id}")),
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// `retailflow replay list --local`.
async fn dead_letters(State(app): State<Arc<LocalApp>>) -> axum::response::Response {
    use retailflow_core::ports::dead_letters::DeadLetters;
    match app.list(usize::MAX).await {
        Ok(l) => axum::Json(l).into_response(),
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// A JSON request body (empty reads as `{}`).
fn json_body(body: &Bytes) -> Result<serde_json::Value, serde_json::Error> {
    if body.is_empty() {
        return Ok(serde_json::json!({}));
    }
    serde_json::from_slice(body)
}

/// The answer to a body [`json_body`] could not read.
fn not_json(e: serde_json::Error) -> axum::response::Response {
    refuse(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}"))
}

/// `retailflow replay redrive --local`: the body is the filter (`id`,
/// `correlation_id`, `reason_contains`, `event_type`) and `max`; the
/// queues are drained before answering.
async fn redrive(State(app): State<Arc<LocalApp>>, body: Bytes) -> axum::response::Response {
    use retailflow_core::ports::dead_letters::DeadLetters;
    use retailflow_core::replay::{DeadLetterFilter, DeadLetterView};
    let v = match json_body(&body) {
        Ok(v) => v,
        Err(e) => return not_json(e),
    };
    let filter: DeadLetterFilter = match serde_json::from_value(v.clone()) {
        Ok(f) => f,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("not a filter: {e}")),
    };
    let max = v["max"].as_u64().map_or(usize::MAX, |m| m as usize);
    let before: std::collections::BTreeSet<String> = match app.list(usize::MAX).await {
        Ok(l) => l.into_iter().map(|d| d.id).collect(),
        Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    match app.redrive(&filter, max).await {
        Ok(mut report) => {
            app.drain().await;
            // A letter that died again comes back with a new id, for the
            // same message (queue, order and event type).
            let same = |a: &DeadLetterView, b: &DeadLetterView| {
                (&a.queue, &a.correlation_id, &a.event_type)
                    == (&b.queue, &b.correlation_id, &b.event_type)
            };
            if let Ok(now) = app.list(usize::MAX).await {
                report.failed_again = now
                    .into_iter()
                    .filter(|d| !before.contains(&d.id))
                    .filter(|d| report.redriven.iter().any(|r| same(r, d)))
                    .collect();
            }
            axum::Json(report).into_response()
        }
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// `retailflow replay window --local`: `{"rule", "hours"}` or `{"rule",
/// "from", "to"}`; the queues are drained before answering.
async fn replay(State(app): State<Arc<LocalApp>>, body: Bytes) -> axum::response::Response {
    use axum::http::StatusCode;
    let v = match json_body(&body) {
        Ok(v) => v,
        Err(e) => return not_json(e),
    };
    let Some(rule) = v["rule"].as_str() else {
        return refuse(StatusCode::BAD_REQUEST, "rule is required");
    };
    let window = match retailflow_core::reconciliation::request::requested_window(
        &v,
        app.clock.now(),
        chrono::Duration::hours(24),
    ) {
        Ok(w) => w,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    match app.replay_window(rule, window).await {
        Ok(n) => {
            app.drain().await;
            axum::Json(serde_json::json!({"replayed": n})).into_response()
        }
        Err(e @ retailflow_core::replay::ReplayError::Invalid(_)) => {
            refuse(StatusCode::BAD_REQUEST, e)
        }
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// Which data directory this app keeps its state in (the CLI checks a
/// `serve.url` it follows answers for the directory it meant).
async fn data_dir(State(app): State<Arc<LocalApp>>) -> impl IntoResponse {
    let dir = app.data.as_ref().map(|d| d.canonical());
    axum::Json(serde_json::json!({ "data_dir": dir }))
}

async fn timelines(State(app): State<Arc<LocalApp>>) -> impl IntoResponse {
    axum::Json(retailflow::timeline::timelines(&app))
}

/// The variables that carry a secret: any of them set means the
/// environment configures `serve`, as on AWS.
const SECRET_VARS: [&str; 6] = [
    "RETAILFLOW_SHOPIFY_SECRET",
    "RETAILFLOW_SHOPIFY_PREVIOUS_SECRET",
    "RETAILFLOW_ADOBE_PUBLIC_KEYS",
    "RETAILFLOW_POS_STORE_SECRETS",
    "RETAILFLOW_CHECKOUT_STOREFRONT_SECRETS",
    "RETAILFLOW_SHOPIFY_CLIENT_ID",
];

/// The intake's secrets: the environment's when any secret is set there
/// (as on AWS), else the dev keys the samples are signed with, so
/// `retailflow send events/` is taken by a plain `retailflow serve` on
/// loopback.
fn intake_secrets(
    dev_keys: &std::path::Path,
    listen: std::net::SocketAddr,
) -> anyhow::Result<(
    IntakeConfig,
    retailflow_core::checkout::auth::CheckoutAuthConfig,
)> {
    let env = |k: &str| std::env::var(k).ok();
    // Only when no secret at all is set: a half-configured serve must not
    // quietly swap its secrets for the repository's public ones.
    let no_secret_set = SECRET_VARS.iter().all(|k| env(k).is_none());
    if no_secret_set && retailflow::dev_keys::present(dev_keys) {
        if !listen.ip().is_loopback() {
            anyhow::bail!(
                "serving on {listen} with the dev keys, which are public: listen on loopback (127.0.0.1 or localhost), or set RETAILFLOW_SHOPIFY_SECRET and the other secrets"
            );
        }
        tracing::warn!(
            dev_keys = %dev_keys.display(),
            "no RETAILFLOW_SHOPIFY_SECRET: verifying with the dev keys the samples are signed with"
        );
        let intake = retailflow::dev_keys::intake_config(dev_keys)?;
        let checkout = retailflow::dev_keys::local_checkout_auth(dev_keys)?;
        return Ok((intake, checkout));
    }
    let config = retailflow_core::config::intake_config_from_env(env)?;
    if config.shopify.is_none() && config.adobe.is_none() {
        tracing::warn!("no webhook secrets configured: every webhook will be answered 503");
    }
    let checkout = retailflow_core::checkout::auth::CheckoutAuthConfig::from_env(env)?;
    if !checkout.accepts_anyone() {
        tracing::warn!(
            "no RETAILFLOW_SHOPIFY_CLIENT_ID with RETAILFLOW_SHOPIFY_SHOPS, and no RETAILFLOW_CHECKOUT_STOREFRONT_SECRETS: every checkout will be answered 401"
        );
    }
    Ok((config, checkout))
}

/// The first address `listen` names: `localhost:8080` as well as
/// `127.0.0.1:8080`.
pub async fn resolve(listen: &str) -> anyhow::Result<std::net::SocketAddr> {
    tokio::net::lookup_host(listen)
        .await
        .with_context(|| format!("--listen {listen}: not a host:port"))?
        .next()
        .with_context(|| format!("--listen {listen}: the name has no address"))
}

/// Until Ctrl-C or SIGTERM (what `kill`, systemd and containers send).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// What the queues' event sources and the template's schedules do on AWS,
/// on the real clock: a message whose backoff ends is delivered then, and
/// expired checkout holds go back to stock every minute.
fn spawn_ticker(app: Arc<LocalApp>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_sweep = tokio::time::Instant::now();
        loop {
            let wait = app
                .next_delivery()
                .map(|t| (t - app.clock.now()).to_std().unwrap_or_default())
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            tokio::time::sleep(wait.max(Duration::from_millis(20))).await;
            if app.next_delivery().is_some_and(|t| t <= app.clock.now()) {
                app.drain().await;
            }
            if last_sweep.elapsed() >= Duration::from_secs(60) {
                last_sweep = tokio::time::Instant::now();
                app.sweep_holds().await;
            }
        }
    })
}

pub async fn serve(
    listen: &str,
    data_dir: &std::path::Path,
    dev_keys: &std::path::Path,
) -> anyhow::Result<()> {
    let addr = resolve(listen).await?;
    let (config, checkout_auth) = intake_secrets(dev_keys, addr)?;
    let data = Arc::new(DataDir::open(data_dir)?);
    // A URL left by a killed serve must not send the CLI elsewhere.
    data.clear_serve_url();
    // Events arrive over minutes here: holds, replay windows and traces
    // follow the wall clock.
    let mut app = LocalApp::open_on(config, Some(data.clone()), Clock::real()).await?;
    app.checkout_auth =
        retailflow_core::checkout::auth::CheckoutAuth::new(checkout_auth, app.store.clone());
    let app = Arc::new(app);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {listen} ({addr})"))?;
    let addr = listener.local_addr()?;
    // What the last process accepted and did not finish runs now (what a
    // killed process had in hand, once its visibility timeout ends).
    let resumed = app.drain().await;
    let ticker = spawn_ticker(app.clone());
    let app_for_shutdown = app.clone();
    data.set_serve_url(&format!("http://{addr}"))?;
    tracing::info!(
        %addr,
        data_dir = %data.dir().display(),
        resumed_deliveries = resumed.deliveries,
        sagas = app.store.sagas().len(),
        "retailflow serving"
    );
    // The console signs in the public dev users: on loopback only.
    // Deployed, the console Lambda signs people in through Cognito.
    let routes = if addr.ip().is_loopback() {
        match ConsoleAuth::from_dev_keys(dev_keys) {
            Ok(auth) => router_with_console(app, Arc::new(auth)),
            Err(e) => {
                tracing::warn!(error = %e, "the console is not served");
                router(app)
            }
        }
    } else {
        router(app)
    };
    let served = axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving");
    // A batch in hand finishes first: its messages would otherwise wait out
    // their visibility timeout after a restart, a receive used up.
    {
        let _turn = app_for_shutdown.drain_turn.lock().await;
        ticker.abort();
    }
    data.clear_serve_url();
    served
}
