//! Each account's concurrency limit and a configurable latency, as the
//! platforms enforce them:
//!
//! - NetSuite: the account's concurrency limit (5 on Standard tier, up to
//!   20 on Enterprise plus 10 per SuiteCloud Plus licence); a request over
//!   it is refused at once with 429 and the limit's error code.
//! - Business Central: 5 requests run at once per user; more wait in a queue
//!   (up to 95), and one that waited too long gets 503.
//! - Salesforce: 25 long-running requests at once; over that, 403
//!   `REQUEST_LIMIT_EXCEEDED`.
//! - Shops: no concurrency limit by default (their limits are rates).
//!
//! The most requests ever in flight per system are kept, so a test can
//! assert the budget held.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::faults::System;
use crate::{lock, SimState};

/// An account's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountLimit {
    /// Requests at once; `None` for no limit.
    pub concurrent: Option<usize>,
    /// Added to every request's answer time.
    pub latency: Duration,
}

pub(crate) struct LimitState {
    limits: HashMap<System, AccountLimit>,
    in_flight: HashMap<System, usize>,
    most_in_flight: HashMap<System, usize>,
    refused: HashMap<System, u64>,
    /// Business Central's queue: woken when a slot frees.
    freed: Arc<tokio::sync::Notify>,
}

impl Default for LimitState {
    fn default() -> Self {
        let limit = |n| AccountLimit {
            concurrent: Some(n),
            latency: Duration::ZERO,
        };
        LimitState {
            limits: HashMap::from([
                (System::NetSuite, limit(5)),
                (System::BusinessCentral, limit(5)),
                (System::Salesforce, limit(25)),
            ]),
            in_flight: HashMap::new(),
            most_in_flight: HashMap::new(),
            refused: HashMap::new(),
            freed: Arc::new(tokio::sync::Notify::new()),
        }
    }
}

impl LimitState {
    pub(crate) fn set(&mut self, system: System, limit: AccountLimit) {
        self.limits.insert(system, limit);
    }

    pub(crate) fn most_in_flight(&self, system: System) -> usize {
        self.most_in_flight.get(&system).copied().unwrap_or(0)
    }

    pub(crate) fn refused(&self, system: System) -> u64 {
        self.refused.get(&system).copied().unwrap_or(0)
    }

    /// Takes a slot if one is free; `None` when the limit is reached.
    fn enter(&mut self, system: System) -> Option<AccountLimit> {
        let limit = self.limits.get(&system).copied().unwrap_or(AccountLimit {
            concurrent: None,
            latency: Duration::ZERO,
        });
        let now = self.in_flight.entry(system).or_default();
        if limit.concurrent.is_some_and(|max| *now >= max) {
            return None;
        }
        *now += 1;
        let most = self.most_in_flight.entry(system).or_default();
        *most = (*most).max(*now);
        Some(limit)
    }

    fn leave(&mut self, system: System) {
        if let Some(n) = self.in_flight.get_mut(&system) {
            *n = n.saturating_sub(1);
        }
        self.freed.notify_waiters();
    }
}

/// How long a Business Central request may wait in its queue before 503.
const BC_QUEUE_WAIT: Duration = Duration::from_secs(10);

fn over_limit(system: System) -> Response {
    let body = match system {
        System::NetSuite => json!({
            "type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.30",
            "title": "Too Many Requests", "status": 429,
            "o:errorDetails": [{"detail": "Concurrent request limit exceeded. Request blocked.",
                "o:errorCode": "SSS_REQUEST_LIMIT_EXCEEDED"}]}),
        System::BusinessCentral => json!({"error": {"code": "Application_TooManyRequests",
            "message": "The request was blocked: the queue of requests waiting for this user is full."}}),
        System::Salesforce => {
            json!([{"errorCode": "REQUEST_LIMIT_EXCEEDED",
                "message": "ConcurrentPerOrgLongTxn Limit exceeded."}])
        }
        System::Shopify => json!({"errors": "Exceeded the concurrency limit."}),
        System::AdobeCommerce => json!({"message": "Too many requests"}),
    };
    let status = match system {
        System::Salesforce => StatusCode::FORBIDDEN,
        _ => StatusCode::TOO_MANY_REQUESTS,
    };
    (status, axum::Json(body)).into_response()
}

/// Frees the slot however the request ends (answered, or its client gone).
struct Slot {
    state: Arc<SimState>,
    system: System,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.state.limits).leave(self.system);
    }
}

/// Middleware: admits a request within its account's limit, holds it for
/// the configured latency, and counts what was in flight.
pub(crate) async fn enforce(
    State(state): State<Arc<SimState>>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let path = req.uri().path();
    let Some(system) = System::of(path) else {
        return next.run(req).await;
    };
    if crate::auth::is_token_endpoint(path) {
        return next.run(req).await;
    }
    let started = tokio::time::Instant::now();
    let limit = loop {
        let freed = {
            let mut st = lock(&state.limits);
            if let Some(limit) = st.enter(system) {
                break limit;
            }
            if system != System::BusinessCentral || started.elapsed() > BC_QUEUE_WAIT {
                *st.refused.entry(system).or_default() += 1;
                return match system {
                    System::BusinessCentral => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(json!({"error": {"code": "Application_ServiceUnavailable",
                            "message": "The request waited too long in the queue."}})),
                    )
                        .into_response(),
                    _ => over_limit(system),
                };
            }
            st.freed.clone()
        };
        // Business Central queues the request until a slot frees.
        let _ = tokio::time::timeout(Duration::from_millis(50), freed.notified()).await;
    };
    let _slot = Slot {
        state: state.clone(),
        system,
    };
    if !limit.latency.is_zero() {
        tokio::time::sleep(limit.latency).await;
    }
    next.run(req).await
}
