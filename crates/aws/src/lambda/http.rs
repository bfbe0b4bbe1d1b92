//! What the functions behind the HTTP API share: JSON answers, and the time
//! API Gateway took the request (the caller cannot set it).

use chrono::{DateTime, Utc};
use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};

/// A JSON answer; a status outside HTTP's range answers 500.
pub fn json_response(status: u16, body: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Body::from(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// When API Gateway received the request (HTTP API payload 2.0), if it says.
pub fn gateway_time(req: &Request) -> Option<DateTime<Utc>> {
    match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) if ctx.time_epoch > 0 => {
            DateTime::from_timestamp_millis(ctx.time_epoch)
        }
        _ => None,
    }
}

/// The invocation's deadline, for a request (see [`super::deadline`]).
pub fn request_deadline(req: &Request) -> Option<DateTime<Utc>> {
    req.lambda_context_ref()
        .and_then(|ctx| super::deadline(ctx.deadline))
}
