//! `retailflow serve`: the template's HTTP routes on the in-process adapters.
//! `GET /local/state` shows what the app published, its sagas, quarantine and
//! dead letters; `GET /local/timelines` each order's timeline;
//! `GET /local/trace/{key}` one order's trace; `POST /local/reconcile` a
//! reconciliation run's report; `GET /local/dead-letters`, `POST
//! /local/dead-letters/redrive` and `POST /local/replay` for `retailflow
//! replay`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use chrono::Utc;
use retailflow_core::config::intake_config_from_env;
use retailflow_core::intake::{WebhookRequest, WebhookRoute, DEFAULT_MAX_BODY_BYTES};

use crate::data_dir::DataDir;
use crate::local_app::LocalApp;

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
        .route("/local/dead-letters", get(dead_letters))
        .route("/local/dead-letters/redrive", post(redrive))
        .route("/local/replay", post(replay))
        .route("/local/data-dir", get(data_dir))
        // The intake answers 413 itself; let bodies reach it.
        .layer(DefaultBodyLimit::max(DEFAULT_MAX_BODY_BYTES * 4))
        .with_state(app)
}

async fn webhook(
    State(app): State<Arc<LocalApp>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let Some(route) = WebhookRoute::from_path(uri.path()) else {
        return (axum::http::StatusCode::NOT_FOUND, "no such route").into_response();
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
    match retailflow_core::trace::trace_order(app.store.as_ref(), &key).await {
        Ok(Some(t)) => axum::Json(t).into_response(),
        Ok(None) => (
            axum::http::StatusCode::NOT_FOUND,
            format!("no saga for {key}"),
        )
            .into_response(),
        Err(e) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
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
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    match app.reconcile_window(window).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// `retailflow replay list --local`.
async fn dead_letters(State(app): State<Arc<LocalApp>>) -> axum::response::Response {
    use retailflow_core::ports::dead_letters::DeadLetters;
    match app.list(usize::MAX).await {
        Ok(l) => axum::Json(l).into_response(),
        Err(e) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
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
    (
        axum::http::StatusCode::BAD_REQUEST,
        format!("body is not JSON: {e}"),
    )
        .into_response()
}

/// `retailflow replay redrive --local`: the body is the filter (`id`,
/// `correlation_id`, `reason_contains`, `event_type`) and `max`; the
/// queues are drained before answering.
async fn redrive(State(app): State<Arc<LocalApp>>, body: Bytes) -> axum::response::Response {
    use retailflow_core::ports::dead_letters::DeadLetters;
    use retailflow_core::replay::DeadLetterFilter;
    let v = match json_body(&body) {
        Ok(v) => v,
        Err(e) => return not_json(e),
    };
    let filter: DeadLetterFilter = match serde_json::from_value(v.clone()) {
        Ok(f) => f,
        Err(e) => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                format!("not a filter: {e}"),
            )
                .into_response()
        }
    };
    let max = v["max"].as_u64().map_or(usize::MAX, |m| m as usize);
    match app.redrive(&filter, max).await {
        Ok(report) => {
            app.drain().await;
            axum::Json(report).into_response()
        }
        Err(e) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
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
        return (StatusCode::BAD_REQUEST, "rule is required").into_response();
    };
    let window = match retailflow_core::reconciliation::request::requested_window(
        &v,
        app.clock.now(),
        chrono::Duration::hours(24),
    ) {
        Ok(w) => w,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    match app.replay_window(rule, window).await {
        Ok(n) => {
            app.drain().await;
            axum::Json(serde_json::json!({"replayed": n})).into_response()
        }
        Err(e @ retailflow_core::replay::ReplayError::Invalid(_)) => {
            (StatusCode::BAD_REQUEST, e.to_string()).into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
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

pub async fn serve(listen: SocketAddr, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let config = intake_config_from_env(|k| std::env::var(k).ok())?;
    if config.shopify.is_none() && config.adobe.is_none() {
        tracing::warn!("no webhook secrets configured: every webhook will be answered 503");
    }
    let data = Arc::new(DataDir::open(data_dir)?);
    // A URL left by a killed serve must not send the CLI elsewhere.
    data.clear_serve_url();
    let checkout_auth =
        retailflow_core::checkout::auth::CheckoutAuthConfig::from_env(|k| std::env::var(k).ok())?;
    if !checkout_auth.accepts_anyone() {
        tracing::warn!(
            "no RETAILFLOW_SHOPIFY_CLIENT_ID with RETAILFLOW_SHOPIFY_SHOPS, and no RETAILFLOW_CHECKOUT_STOREFRONT_SECRETS: every checkout will be answered 401"
        );
    }
    let mut app = LocalApp::open(config, Some(data.clone())).await?;
    app.checkout_auth =
        retailflow_core::checkout::auth::CheckoutAuth::new(checkout_auth, app.store.clone());
    let app = Arc::new(app);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    // What the last process accepted and did not finish runs now.
    let resumed = app.drain().await;
    data.set_serve_url(&format!("http://{addr}"))?;
    tracing::info!(
        %addr,
        data_dir = %data.dir().display(),
        resumed_deliveries = resumed.deliveries,
        sagas = app.store.sagas().len(),
        "retailflow serving"
    );
    let served = axum::serve(listener, router(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving");
    data.clear_serve_url();
    served
}
