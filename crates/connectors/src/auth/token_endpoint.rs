//! One client for the OAuth 2.0 token endpoints (RFC 6749 section 4.4 and
//! RFC 7523): a form POST answered with an access token and, where the
//! platform says, its lifetime.
//!
//! Why not the `oauth2` crate: NetSuite answers `expires_in` as a string
//! ("3600"), which its typed token response refuses, and it has no JWT
//! bearer grant (Salesforce) or client assertion (NetSuite M2M). The parts
//! that are easy to get wrong, signing the JWT assertions, are
//! `jsonwebtoken`'s.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use retailflow_core::credentials::AccessToken;
use retailflow_core::resilience::ConnectorError;
use retailflow_core::webhook::Secret;

/// The metric the `ConnectorAuthFailing` alarm watches: one count per
/// request whose credential the platform refused after a renewal.
pub const AUTH_FAILING_METRIC: &str = "ConnectorAuthFailing";

/// A refused credential: counted for the alarm, retried with backoff.
pub(crate) fn auth_failing(system: &'static str, reason: String) -> ConnectorError {
    retailflow_core::observability::count(AUTH_FAILING_METRIC, ("System", system));
    tracing::warn!(system, "credentials refused: retrying with backoff");
    ConnectorError::Unauthorized {
        system,
        reason: reason.chars().take(300).collect(),
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    /// Seconds; NetSuite sends a string, Entra a number, Salesforce nothing.
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Asks `url` for a token with `form`; `now` is when it was asked (its
/// lifetime counts from then).
pub(crate) async fn request_token(
    system: &'static str,
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
    now: DateTime<Utc>,
) -> Result<AccessToken, ConnectorError> {
    let req = http
        .post(url)
        .header("accept", "application/json")
        .form(form);
    let (client, built) = req.build_split();
    let request = built.map_err(|e| ConnectorError::Rejected {
        system,
        status: 0,
        reason: format!("token request could not be built: {e}"),
    })?;
    let reply = super::super::wire::execute(system, &client, request).await?;
    // Only the OAuth error fields are kept: some gateways echo the form,
    // and the form holds the secret or the assertion.
    let oauth_error = || {
        let err: TokenError = serde_json::from_str(&reply.body).unwrap_or_default();
        format!("{} {}", err.error, err.error_description)
            .chars()
            .take(200)
            .collect::<String>()
    };
    if reply.status == 429 || reply.status >= 500 {
        return Err(ConnectorError::from_status(
            system,
            reply.status,
            reply.retry_after(),
            &format!("token endpoint: {}", oauth_error()),
        ));
    }
    if !reply.is_success() {
        // invalid_client, invalid_grant, unauthorized_client, or a wrong
        // token URL: the configuration, which an operator fixes; the
        // records wait.
        return Err(auth_failing(
            system,
            format!(
                "token endpoint refused the credentials (HTTP {}): {}",
                reply.status,
                oauth_error()
            ),
        ));
    }
    let token: TokenResponse =
        serde_json::from_str(&reply.body).map_err(|_| ConnectorError::Unavailable {
            system,
            reason: "token endpoint answered something that is not a token".into(),
            retry_after: None,
        })?;
    let seconds = match &token.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(AccessToken {
        value: Secret::new(token.access_token),
        expires_at: seconds.map(|s| now + chrono::Duration::seconds(s.max(0))),
    })
}

/// A JWT signed with an RSA private key (PKCS#8 or PKCS#1 PEM).
pub(crate) fn signed_jwt(
    system: &'static str,
    algorithm: jsonwebtoken::Algorithm,
    key_id: Option<&str>,
    claims: &serde_json::Value,
    private_key_pem: &str,
) -> Result<String, ConnectorError> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).map_err(|e| {
        auth_failing(
            system,
            format!("the private key in the connector secret is not an RSA PEM key: {e}"),
        )
    })?;
    let mut header = jsonwebtoken::Header::new(algorithm);
    header.kid = key_id.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &key).map_err(|e| {
        auth_failing(
            system,
            format!("the JWT assertion could not be signed: {e}"),
        )
    })
}
