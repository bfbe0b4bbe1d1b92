//! Fault injection: rules matched against each call, applied around the handler.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{lock, SimState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum System {
    NetSuite,
    BusinessCentral,
    Salesforce,
    /// The Shopify Admin API.
    Shopify,
    /// The Adobe Commerce REST API.
    AdobeCommerce,
}

impl System {
    pub(crate) fn of(path: &str) -> Option<Self> {
        if path.starts_with("/netsuite/") {
            Some(System::NetSuite)
        } else if path.starts_with("/bc/") {
            Some(System::BusinessCentral)
        } else if path.starts_with("/salesforce/") {
            Some(System::Salesforce)
        } else if path.starts_with("/shopify/") {
            Some(System::Shopify)
        } else if path.starts_with("/adobe/") {
            Some(System::AdobeCommerce)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// The vendor's throttling answer (NetSuite 429, Salesforce 403
    /// REQUEST_LIMIT_EXCEEDED), with an optional Retry-After in seconds.
    Throttle { retry_after: Option<u64> },
    /// HTTP 503.
    Unavailable,
    /// Answers only after this delay (a client with a shorter timeout gives up
    /// and the effect is not applied).
    Slow(Duration),
    /// The effect is applied, then the answer is lost (HTTP 502).
    LoseResponse,
    /// A permanent refusal (HTTP 400 in the vendor's error shape): the call
    /// will never succeed as sent.
    Refuse,
    /// The same, its message quoting this text, as ERPs quote their own
    /// records in a refusal ("Customer Thompson, Ava is on credit hold").
    RefuseQuoting(&'static str),
}

/// Fails the next `count` calls to `system` whose method and path match.
#[derive(Debug, Clone)]
pub struct Fault {
    pub system: System,
    pub method: Option<&'static str>,
    /// Substring of the path after the system's base.
    pub path_contains: &'static str,
    pub kind: FaultKind,
    pub count: u32,
}

#[derive(Default)]
pub(crate) struct FaultBook {
    rules: Vec<Fault>,
    outages: Vec<(System, DateTime<Utc>)>,
    calls: Vec<System>,
    /// Faults that hit a call: (system, what).
    fired: Vec<(System, &'static str)>,
}

impl FaultKind {
    /// What the fault is, in a word or two.
    pub fn label(&self) -> &'static str {
        match self {
            FaultKind::Throttle {
                retry_after: Some(_),
            } => "429 with Retry-After",
            FaultKind::Throttle { retry_after: None } => "429",
            FaultKind::Unavailable => "5xx",
            FaultKind::Slow(_) => "slow answer",
            FaultKind::LoseResponse => "answer lost after the effect",
            FaultKind::Refuse | FaultKind::RefuseQuoting(_) => "permanent refusal",
        }
    }
}

impl FaultBook {
    pub fn add(&mut self, f: Fault) {
        self.rules.push(f);
    }

    /// The fault is fixed: queued faults and outages end.
    pub fn clear(&mut self) {
        self.rules.clear();
        self.outages.clear();
    }

    pub fn outage(&mut self, system: System, until: DateTime<Utc>) {
        self.outages.push((system, until));
    }

    pub fn calls(&self, system: System) -> usize {
        self.calls.iter().filter(|s| **s == system).count()
    }

    pub fn fired(&self) -> Vec<(System, &'static str)> {
        self.fired.clone()
    }

    fn take(
        &mut self,
        system: System,
        method: &str,
        path: &str,
        now: DateTime<Utc>,
    ) -> Option<FaultKind> {
        self.calls.push(system);
        if self
            .outages
            .iter()
            .any(|(s, until)| *s == system && now < *until)
        {
            self.fired.push((system, "outage"));
            return Some(FaultKind::Unavailable);
        }
        let rule = self.rules.iter_mut().find(|r| {
            r.system == system
                && r.count > 0
                && r.method.is_none_or(|m| m.eq_ignore_ascii_case(method))
                && path.contains(r.path_contains)
        })?;
        rule.count -= 1;
        let kind = rule.kind.clone();
        self.fired.push((system, kind.label()));
        Some(kind)
    }
}

fn throttled(system: System, retry_after: Option<u64>) -> Response {
    let mut resp = match system {
        System::NetSuite => (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(serde_json::json!({
                "type": "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4",
                "title": "Too Many Requests", "status": 429,
                "o:errorDetails": [{"detail": "Concurrent request limit exceeded. Request blocked.",
                                    "o:errorCode": "CONCURRENCY_LIMIT_EXCEEDED"}]
            })),
        )
            .into_response(),
        System::BusinessCentral => (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(serde_json::json!({"error": {"code": "TooManyRequests",
                "message": "The request limit was exceeded."}})),
        )
            .into_response(),
        System::Salesforce => (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!([{"errorCode": "REQUEST_LIMIT_EXCEEDED",
                                            "message": "TotalRequests Limit exceeded."}])),
        )
            .into_response(),
        System::Shopify => (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(serde_json::json!({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."})),
        )
            .into_response(),
        System::AdobeCommerce => (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(serde_json::json!({"message": "Too many requests"})),
        )
            .into_response(),
    };
    if let Some(secs) = retry_after {
        if let Ok(v) = secs.to_string().parse() {
            resp.headers_mut().insert("retry-after", v);
        }
    }
    resp
}

fn unavailable(system: System) -> Response {
    let body = match system {
        System::NetSuite => serde_json::json!({"title": "Service Unavailable", "status": 503,
            "o:errorDetails": [{"detail": "simulated outage", "o:errorCode": "UNEXPECTED_ERROR"}]}),
        System::BusinessCentral => {
            serde_json::json!({"error": {"code": "ServiceUnavailable", "message": "simulated outage"}})
        }
        System::Salesforce => {
            serde_json::json!([{"errorCode": "SERVER_UNAVAILABLE", "message": "simulated outage"}])
        }
        System::Shopify => serde_json::json!({"errors": "simulated outage"}),
        System::AdobeCommerce => serde_json::json!({"message": "simulated outage"}),
    };
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

/// Middleware: decides the call's fault, if any, and applies it.
pub(crate) async fn apply(
    State(state): State<Arc<SimState>>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    let Some(system) = System::of(&path) else {
        return next.run(req).await;
    };
    // Token endpoints are the identity side: faults and call counts are
    // about the API (credentials are checked by `auth::verify`).
    if crate::auth::is_token_endpoint(&path) {
        return next.run(req).await;
    }
    let now = (state.clock)();
    let fault = lock(&state.faults).take(system, req.method().as_str(), &path, now);
    match fault {
        None => next.run(req).await,
        Some(FaultKind::Throttle { retry_after }) => throttled(system, retry_after),
        Some(FaultKind::Unavailable) => unavailable(system),
        Some(FaultKind::Slow(d)) => {
            tokio::time::sleep(d).await;
            next.run(req).await
        }
        Some(FaultKind::LoseResponse) => {
            let _applied = next.run(req).await;
            (StatusCode::BAD_GATEWAY, "response lost").into_response()
        }
        Some(FaultKind::Refuse) => refused(
            system,
            "simulated refusal: the record cannot be changed in its current state",
        ),
        Some(FaultKind::RefuseQuoting(text)) => refused(system, text),
    }
}

fn refused(system: System, message: &str) -> Response {
    let body = match system {
        System::NetSuite => serde_json::json!({"title": "Bad Request", "status": 400,
            "o:errorDetails": [{"detail": message, "o:errorCode": "INVALID_OPERATION"}]}),
        System::BusinessCentral => {
            serde_json::json!({"error": {"code": "Application_DialogException", "message": message}})
        }
        System::Salesforce => {
            serde_json::json!([{"errorCode": "INVALID_INPUT", "message": message}])
        }
        System::Shopify => serde_json::json!({"errors": message}),
        System::AdobeCommerce => serde_json::json!({"message": message}),
    };
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}
