//! How each connector proves who it is, the way its platform documents:
//!
//! | platform | scheme | token life |
//! |---|---|---|
//! | NetSuite | Token-Based Authentication (OAuth 1.0a, HMAC-SHA256, realm = account) or OAuth 2.0 M2M (client credentials with a JWT assertion signed by the certificate's key) | TBA: none; M2M: 60 min |
//! | Business Central | Microsoft Entra ID client credentials | 60–90 min |
//! | Salesforce | OAuth 2.0 client credentials, or the JWT bearer flow | the org's session policy (not told) |
//! | Adobe Commerce | the integration's OAuth 1.0a signature (bearer use is off by default) | none |
//! | Shopify | the app's offline Admin API token | none |
//!
//! Every request goes through [`send`]: the credential is added, and a 401
//! drops the token (and has the secret read again: it may have been
//! rotated) and tries once more with a new one. A credential that is still
//! refused is [`ConnectorError::Unauthorized`]: retried with backoff, counted
//! as `ConnectorAuthFailing` (the alarm), never dead-lettered at once.
//! Tokens are cached per container by [`retailflow_core::credentials::TokenCache`];
//! the secret document by [`retailflow_core::credentials::ConnectorSecrets`].

pub mod oauth1;
mod platforms;
mod token_endpoint;

use std::sync::Arc;

use async_trait::async_trait;

use retailflow_core::budget::ConcurrencyBudget;
use retailflow_core::resilience::ConnectorError;
use retailflow_core::webhook::Secret;

pub use platforms::{AdobeAuth, EntraAuth, NetSuiteAuth, SalesforceAuth, ShopifyTokens};
pub use token_endpoint::AUTH_FAILING_METRIC;

/// What a request was authorized with, so a refusal drops only that.
#[derive(Debug, Clone)]
pub enum UsedCredential {
    /// A bearer token from the cache.
    Token(Secret),
    /// A signature (OAuth 1.0a) or a static token: nothing cached to drop.
    Signed,
}

/// A platform's way of authorizing one request.
#[async_trait]
pub trait RequestAuth: Send + Sync {
    /// Adds the credential to `req` (a header); fetches a token first when
    /// none is cached or it is about to expire.
    async fn authorize(&self, req: &mut reqwest::Request)
        -> Result<UsedCredential, ConnectorError>;
    /// The platform answered 401 to a request authorized with `used`.
    async fn refused(&self, used: &UsedCredential);
}

/// A connector's authorization, cheap to clone and share, with the
/// account's concurrency budget every request takes a place in.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<dyn RequestAuth>,
    budget: Option<Arc<ConcurrencyBudget>>,
}

impl Auth {
    pub fn new(inner: impl RequestAuth + 'static) -> Self {
        Auth {
            inner: Arc::new(inner),
            budget: None,
        }
    }

    /// Every request holds a place in `budget` while it is in flight.
    pub fn with_budget(mut self, budget: Option<Arc<ConcurrencyBudget>>) -> Self {
        self.budget = budget;
        self
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(***)")
    }
}

/// Sends `req` authorized by `auth`; a 401 is answered by renewing the
/// credential and sending once more.
pub(crate) async fn send(
    system: &'static str,
    auth: &Auth,
    req: reqwest::RequestBuilder,
) -> Result<super::wire::Reply, ConnectorError> {
    let (client, built) = req.build_split();
    let request = built.map_err(|e| ConnectorError::Rejected {
        system,
        status: 0,
        reason: format!("request could not be built: {e}"),
    })?;
    // One place in the account's budget for the whole exchange, renewal
    // included: never more calls in flight than the budget.
    let place = match &auth.budget {
        Some(b) => Some(b.permit().await?),
        None => None,
    };
    let answer = exchange(system, auth, &client, &request).await;
    drop(place);
    if let Some(b) = &auth.budget {
        b.after_call().await;
    }
    answer
}

/// The request, and once more with a renewed credential after a 401.
async fn exchange(
    system: &'static str,
    auth: &Auth,
    client: &reqwest::Client,
    request: &reqwest::Request,
) -> Result<super::wire::Reply, ConnectorError> {
    let mut last = String::new();
    for first in [true, false] {
        // Bodies here are JSON or forms in memory: they always clone.
        let mut attempt = request.try_clone().ok_or(ConnectorError::Rejected {
            system,
            status: 0,
            reason: "request body cannot be sent twice".into(),
        })?;
        let used = match auth.inner.authorize(&mut attempt).await {
            Ok(used) => used,
            // The token endpoint refused the credential: read the secret
            // again (it may have been rotated) and try once more.
            Err(ConnectorError::Unauthorized { .. }) if first => {
                auth.inner.refused(&UsedCredential::Signed).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let reply = super::wire::execute(system, client, attempt).await?;
        if reply.status != 401 {
            return Ok(reply);
        }
        auth.inner.refused(&used).await;
        last = reply.body;
    }
    Err(token_endpoint::auth_failing(
        system,
        format!("credentials refused twice (HTTP 401): {last}"),
    ))
}
