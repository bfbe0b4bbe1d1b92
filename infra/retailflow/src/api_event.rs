//! API Gateway HTTP API (payload format 2.0) request events: what `events/`
//! holds, what `sam local invoke -e` and `cargo lambda invoke` take, and what
//! `retailflow run` feeds through the local app.

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

/// A webhook request as the Lambda would receive it.
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    /// `requestContext.timeEpoch`: when the gateway took the recorded request.
    pub gateway_time: Option<chrono::DateTime<chrono::Utc>>,
}

impl ApiRequest {
    pub fn from_event(event: &Value) -> anyhow::Result<Self> {
        let path = event["rawPath"]
            .as_str()
            .context("event has no rawPath (not an HTTP API 2.0 event)")?
            .to_string();
        let method = event["requestContext"]["http"]["method"]
            .as_str()
            .unwrap_or("POST")
            .to_string();
        let mut headers = http::HeaderMap::new();
        if let Some(h) = event["headers"].as_object() {
            for (k, v) in h {
                let Some(v) = v.as_str() else { continue };
                headers.insert(
                    http::HeaderName::from_bytes(k.as_bytes())
                        .with_context(|| format!("header {k}"))?,
                    http::HeaderValue::from_str(v).with_context(|| format!("header {k}"))?,
                );
            }
        }
        let raw = event["body"].as_str().unwrap_or("");
        let body = if event["isBase64Encoded"].as_bool().unwrap_or(false) {
            B64.decode(raw).context("body is not valid base64")?
        } else {
            raw.as_bytes().to_vec()
        };
        if method != "POST" {
            bail!("only POST webhooks are replayed, got {method}");
        }
        let gateway_time = event["requestContext"]["timeEpoch"]
            .as_i64()
            .filter(|ms| *ms > 0)
            .and_then(chrono::DateTime::from_timestamp_millis);
        Ok(ApiRequest {
            method,
            path,
            headers,
            body,
            gateway_time,
        })
    }
}

/// When the sample events were recorded (2026-11-26T12:00:00Z): their
/// `requestContext.timeEpoch`, Shopify's `X-Shopify-Triggered-At` and the
/// tills' timestamps all say this time, so they stay fresh when played back.
pub const RECORDED_EPOCH_MS: i64 = 1_795_694_400_000;

pub fn recorded_at() -> chrono::DateTime<chrono::Utc> {
    // A constant well inside chrono's range.
    chrono::DateTime::from_timestamp_millis(RECORDED_EPOCH_MS).unwrap_or_default()
}

/// Builds an HTTP API 2.0 event for a webhook POST the gateway took at `at`.
pub fn webhook_event(
    path: &str,
    headers: &[(String, String)],
    body: &str,
    request_id: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Value {
    let mut h = serde_json::Map::new();
    h.insert("content-type".into(), json!("application/json"));
    for (k, v) in headers {
        h.insert(k.to_ascii_lowercase(), json!(v));
    }
    json!({
        "version": "2.0",
        "routeKey": format!("POST {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": h,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "local.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "local",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": "retailflow-sample"
            },
            "requestId": request_id,
            "routeKey": format!("POST {path}"),
            "stage": "$default",
            "time": at.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": at.timestamp_millis()
        },
        "body": body,
        "isBase64Encoded": false
    })
}
