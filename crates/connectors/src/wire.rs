//! What every HTTP adapter shares: money as exact JSON numbers, sending with
//! a timeout, classifying transport failures, and refusals read with the
//! personal data they echo masked.

use std::time::Duration;

use serde::{Serialize, Serializer};

use super::auth::Auth;
use retailflow_core::money::Money;
use retailflow_core::observability::PersonalData;
use retailflow_core::resilience::{parse_retry_after, ConnectorError};

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
/// Every request of every connector comes through here, and so does every
/// answer: a refusal's body is masked as it is read ([`masked_refusal`]).
pub(crate) async fn execute(
    system: &'static str,
    client: &reqwest::Client,
    req: reqwest::Request,
) -> Result<Reply, ConnectorError> {
    // What the request carried, for a refusal that echoes it.
    let sent = req
        .body()
        .and_then(reqwest::Body::as_bytes)
        .map(<[u8]>::to_vec);
    let resp = client
        .execute(req)
        .await
        .map_err(|e| transport(system, &e))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = resp.text().await.map_err(|e| transport(system, &e))?;
    if !(200..300).contains(&status) {
        body = masked_refusal(sent.as_deref(), body);
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// A refusal's body with personal data masked. Platforms echo the values
/// they refuse (NetSuite `Invalid Field Value 12 Baker Street for the
/// following field: addr1`, Business Central `contains a value (Jane Doe)
/// that cannot be found`), in free text no pattern finds; but each is a
/// value the request carried. So the personal values of the request's JSON
/// body ([`PersonalData::of_json_bytes`]), then whatever the pattern mask
/// finds, are masked before any error is made of the body: no reason, log
/// line, dead letter or report downstream holds them. Error codes and
/// field names stay (classification reads them); success bodies are data
/// and are left whole.
fn masked_refusal(sent: Option<&[u8]>, body: String) -> String {
    let known = sent.map(PersonalData::of_json_bytes).unwrap_or_default();
    match known.mask(&body) {
        std::borrow::Cow::Borrowed(_) => body,
        std::borrow::Cow::Owned(masked) => masked,
    }
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
    currency: retailflow_core::money::Currency,
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

/// A loopback HTTP server for connector tests: it answers the requests it
/// receives, in order, with the given statuses and bodies.
#[cfg(test)]
pub(crate) mod test_server {
    use std::io::{Read, Write};

    use async_trait::async_trait;

    use crate::auth::{Auth, RequestAuth, UsedCredential};
    use retailflow_core::resilience::ConnectorError;

    /// Authorizes nothing (the test server asks for nothing).
    pub struct NoAuth;

    #[async_trait]
    impl RequestAuth for NoAuth {
        async fn authorize(
            &self,
            _: &mut reqwest::Request,
        ) -> Result<UsedCredential, ConnectorError> {
            Ok(UsedCredential::Signed)
        }
        async fn refused(&self, _: &UsedCredential) {}
    }

    pub fn no_auth() -> Auth {
        Auth::new(NoAuth)
    }

    /// Serves `answers` one connection each; the base URL.
    pub fn serve(answers: Vec<(u16, String)>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for (status, body) in answers {
                let Ok((mut conn, _)) = listener.accept() else {
                    return;
                };
                read_request(&mut conn);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} Answer\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        base
    }

    /// Reads the head and the body its content-length announces.
    fn read_request(conn: &mut std::net::TcpStream) {
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = conn.read(&mut chunk) {
            got.extend_from_slice(&chunk[..n]);
            let Some(head) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let length = String::from_utf8_lossy(&got[..head])
                .to_ascii_lowercase()
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= head + 4 + length {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_written_as_an_exact_json_number() {
        let usd = retailflow_core::money::Currency::from_code("USD").unwrap();
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
