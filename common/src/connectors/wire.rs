//! What every HTTP adapter shares: money as exact JSON numbers, sending with
//! a timeout, and classifying transport failures.

use std::time::Duration;

use serde::{Serialize, Serializer};

use super::auth::Auth;
use crate::money::Money;
use crate::resilience::{parse_retry_after, ConnectorError};

/// A decimal written into JSON as a number with exactly its text ("58.50"),
/// never through f64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireDecimal(pub String);

impl From<Money> for WireDecimal {
    fn from(m: Money) -> Self {
        WireDecimal(m.to_decimal_string())
    }
}

impl Serialize for WireDecimal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = serde_json::value::RawValue::from_string(self.0.clone())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

/// A response read whole.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn retry_after(&self) -> Option<Duration> {
        parse_retry_after(self.header("retry-after"))
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends a built request; connection errors and timeouts are `Unavailable`.
pub(crate) async fn execute(
    system: &'static str,
    client: &reqwest::Client,
    req: reqwest::Request,
) -> Result<Reply, ConnectorError> {
    let resp = client
        .execute(req)
        .await
        .map_err(|e| transport(system, &e))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.map_err(|e| transport(system, &e))?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Sends a request authorized by `auth` (see [`super::auth::send`]).
pub(crate) async fn send(
    system: &'static str,
    auth: &Auth,
    req: reqwest::RequestBuilder,
) -> Result<Reply, ConnectorError> {
    super::auth::send(system, auth, req).await
}

/// Sends a request and reads a JSON answer; a non-2xx answer is classified
/// by the vendor's `classify`.
pub(crate) async fn call_json(
    system: &'static str,
    auth: &Auth,
    req: reqwest::RequestBuilder,
    classify: fn(&Reply) -> ConnectorError,
) -> Result<serde_json::Value, ConnectorError> {
    let reply = send(system, auth, req).await?;
    if !reply.is_success() {
        return Err(classify(&reply));
    }
    // 204 No Content (bound actions, deletes).
    if reply.body.trim().is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_str(&reply.body).map_err(|e| ConnectorError::BadResponse {
        system,
        reason: format!("answer is not JSON: {e}"),
    })
}

fn transport(system: &'static str, e: &reqwest::Error) -> ConnectorError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "transport error"
    };
    ConnectorError::Unavailable {
        system,
        reason: format!("{what}: {e}"),
        retry_after: None,
    }
}

/// The HTTP client every adapter uses: rustls, bounded timeouts.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(2))
        .build()
        // Building with only timeouts set cannot fail; fall back to defaults if it ever does.
        .unwrap_or_default()
}

/// Reads a decimal amount from a JSON value (number or string) exactly.
pub(crate) fn money_from_json(
    system: &'static str,
    v: &serde_json::Value,
    currency: crate::money::Currency,
) -> Result<Money, ConnectorError> {
    let text = match v {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => {
            return Err(ConnectorError::BadResponse {
                system,
                reason: format!("expected an amount, got {other}"),
            })
        }
    };
    Money::parse(&text, currency).map_err(|e| ConnectorError::BadResponse {
        system,
        reason: format!("amount {text}: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_written_as_an_exact_json_number() {
        let usd = crate::money::Currency::from_code("USD").unwrap();
        #[derive(Serialize)]
        struct Body {
            amount: WireDecimal,
        }
        let json = serde_json::to_string(&Body {
            amount: Money::new(5850, usd).into(),
        })
        .unwrap();
        assert_eq!(json, r#"{"amount":58.50}"#);
    }
}
