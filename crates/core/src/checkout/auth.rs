//! Who may ask `POST /checkout/validate`, and for whom.
//!
//! Two kinds of caller, anything else 401:
//!
//! - **A Shopify checkout UI extension**, with the session token Shopify
//!   gives it (`sessionToken.get()`) as `Authorization: Bearer <token>`: a
//!   JWT signed HS256 with the app's client secret (the secret Shopify signs
//!   webhooks with; the previous one is accepted during a rotation). Only
//!   HS256 is accepted (`none` and every other algorithm are refused before
//!   any key is tried); `aud` must be the app's client id; `dest` a shop the
//!   deployment names; `iss`, when present, the same shop; `exp` and `nbf`
//!   hold within [`CheckoutAuthConfig::leeway`] (10 s, as Shopify's own
//!   libraries allow). `sub`, present when the buyer is logged in, is
//!   `gid://shopify/Customer/<id>`: that customer is the only one the request
//!   may act for ([`Caller::bind`]).
//! - **Another storefront's server**, with retailflow's own signed request,
//!   the tills' mechanism ([`crate::intake::freshness`]): headers
//!   `X-Retailflow-Storefront` (its id, which picks its secret),
//!   `X-Retailflow-Timestamp` (Unix seconds), `X-Retailflow-Nonce` (16–128
//!   of `A-Za-z0-9-_`, new for every request) and `X-Retailflow-Signature`,
//!   base64 HMAC-SHA256 of [`crate::mappers::pos::signing_input`]
//!   (`"{timestamp}.{nonce}."` then the raw body). A stale stamp or a nonce
//!   used before is refused; the nonce is claimed on the state table
//!   ([`IdempotencyKey::request_nonce`], the one idempotency mechanism)
//!   until its stamp is stale anyway. The server is trusted for whom it
//!   names.
//!
//! A refusal says what was wrong (expired, wrong audience, stale stamp…),
//! never a secret or the token.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::validation::CheckoutRequest;
use crate::config::ConfigError;
use crate::idempotency::{payload_hash, ClaimOutcome, ClaimRequest, IdempotencyKey};
use crate::intake::freshness::{PosStamp, ReplayPolicy, ReplayRefusal};
use crate::mappers::pos;
use crate::ports::StateStore;
use crate::webhook::{HmacSecrets, Secret, SignatureError};

pub const AUTHORIZATION_HEADER: &str = "authorization";
/// The storefront's id: picks its secret.
pub const STOREFRONT_HEADER: &str = "x-retailflow-storefront";
pub use crate::mappers::pos::{NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
/// What a 401 answers in `WWW-Authenticate` (RFC 9110 asks for one).
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"retailflow checkout\"";

/// Session tokens are a few hundred bytes; anything far longer is not one.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Ids taken from a verified token are still bounded (they name items).
const MAX_ID_CHARS: usize = 256;

/// What verifies Shopify session tokens.
#[derive(Debug, Clone)]
pub struct ShopifySessionKeys {
    /// The app's client id (API key): the tokens' `aud`.
    pub client_id: String,
    /// The app's client secret, and the previous one during a rotation.
    pub secrets: HmacSecrets,
    /// The shops (`acme.myshopify.com`) whose checkouts may call, lowercase.
    pub shops: BTreeSet<String>,
}

/// Checkout's verification material and limits.
#[derive(Debug, Clone)]
pub struct CheckoutAuthConfig {
    /// `None`: session tokens are refused (401, "not configured").
    pub shopify: Option<ShopifySessionKeys>,
    /// Storefront id → its signing secret.
    pub storefronts: BTreeMap<String, HmacSecrets>,
    /// Clock difference allowed on a token's `exp` and `nbf`.
    pub leeway: Duration,
    /// Older storefront timestamps are refused (and nonces remembered this long).
    pub max_request_age: Duration,
    /// How far in the future a storefront timestamp may be.
    pub max_clock_skew: Duration,
}

impl Default for CheckoutAuthConfig {
    fn default() -> Self {
        CheckoutAuthConfig {
            shopify: None,
            storefronts: BTreeMap::new(),
            leeway: Duration::seconds(10),
            max_request_age: Duration::minutes(5),
            max_clock_skew: Duration::minutes(5),
        }
    }
}

/// The host of a shop URL or domain (`https://Acme.myshopify.com/admin` →
/// `acme.myshopify.com`).
pub fn shop_host(text: &str) -> String {
    let t = text.trim();
    let t = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .unwrap_or(t);
    t.split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Checkout's part of the webhook secret document (`WebhookSecrets` on
/// AWS): the same JSON, read for the keys checkout needs. Blank entries
/// leave a kind of caller unconfigured (refused), never open.
#[derive(Default, Deserialize)]
pub struct CheckoutSecretDocument {
    /// The Shopify app's client secret (also the webhooks' HMAC secret).
    #[serde(default)]
    pub shopify_secret: String,
    #[serde(default)]
    pub shopify_previous_secret: String,
    /// The app's client id (API key): session tokens' `aud`.
    #[serde(default)]
    pub shopify_client_id: String,
    /// The shops whose checkouts may call (`acme.myshopify.com`).
    #[serde(default)]
    pub shopify_shop_domains: Vec<String>,
    /// Storefront id → its HMAC secret, for server-to-server calls.
    #[serde(default)]
    pub storefront_secrets: BTreeMap<String, String>,
}

/// Names what is configured, never a value.
impl fmt::Debug for CheckoutSecretDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckoutSecretDocument")
            .field("shopify_secret", &!self.shopify_secret.trim().is_empty())
            .field("shopify_client_id", &self.shopify_client_id)
            .field("shopify_shop_domains", &self.shopify_shop_domains)
            .field(
                "storefronts",
                &self.storefront_secrets.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl CheckoutSecretDocument {
    /// Parses the secret; a parse error never quotes a value.
    pub fn parse(json: &str) -> Result<Self, ConfigError> {
        serde_json::from_str(json).map_err(|e| {
            ConfigError::BadSecretDocument(format!(
                "checkout keys: not the expected shape ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })
    }

    /// Applies the document to `config`'s limits.
    pub fn apply(self, mut config: CheckoutAuthConfig) -> CheckoutAuthConfig {
        let some = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let shops: BTreeSet<String> = self
            .shopify_shop_domains
            .iter()
            .map(|d| shop_host(d))
            .filter(|d| !d.is_empty())
            .collect();
        config.shopify = match (some(self.shopify_secret), some(self.shopify_client_id)) {
            (Some(current), Some(client_id)) if !shops.is_empty() => Some(ShopifySessionKeys {
                client_id,
                secrets: HmacSecrets {
                    current: Secret::new(current),
                    previous: some(self.shopify_previous_secret).map(Secret::new),
                },
                shops,
            }),
            _ => None,
        };
        config.storefronts = self
            .storefront_secrets
            .into_iter()
            .filter_map(|(id, secret)| {
                some(secret).map(|s| {
                    (
                        id.trim().to_string(),
                        HmacSecrets {
                            current: Secret::new(s),
                            previous: None,
                        },
                    )
                })
            })
            .collect();
        config
    }
}

impl CheckoutAuthConfig {
    /// Reads `RETAILFLOW_CHECKOUT_MAX_REQUEST_AGE_SECS` (storefront
    /// stamps; default 300) through `var` into `self`.
    pub fn with_limits_from_env(
        mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let name = "RETAILFLOW_CHECKOUT_MAX_REQUEST_AGE_SECS";
        if let Some(v) = var(name).map(|v| v.trim().to_string()) {
            if !v.is_empty() {
                match v.parse::<i64>() {
                    Ok(s) if (1..=3600).contains(&s) => self.max_request_age = Duration::seconds(s),
                    _ => {
                        return Err(ConfigError::BadSetting(format!(
                            "{name} must be a number of seconds from 1 to 3600, not {v:?}"
                        )))
                    }
                }
            }
        }
        Ok(self)
    }

    /// The local app's configuration from the environment (`retailflow
    /// serve`): `RETAILFLOW_SHOPIFY_SECRET`,
    /// `RETAILFLOW_SHOPIFY_PREVIOUS_SECRET`, `RETAILFLOW_SHOPIFY_CLIENT_ID`,
    /// `RETAILFLOW_SHOPIFY_SHOPS` (comma-separated shop domains),
    /// `RETAILFLOW_CHECKOUT_STOREFRONT_SECRETS` (JSON: storefront id →
    /// secret) and the limits of [`Self::with_limits_from_env`].
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let doc = CheckoutSecretDocument {
            shopify_secret: var("RETAILFLOW_SHOPIFY_SECRET").unwrap_or_default(),
            shopify_previous_secret: var("RETAILFLOW_SHOPIFY_PREVIOUS_SECRET").unwrap_or_default(),
            shopify_client_id: var("RETAILFLOW_SHOPIFY_CLIENT_ID").unwrap_or_default(),
            shopify_shop_domains: var("RETAILFLOW_SHOPIFY_SHOPS")
                .unwrap_or_default()
                .split(',')
                .map(str::to_string)
                .collect(),
            storefront_secrets: match var("RETAILFLOW_CHECKOUT_STOREFRONT_SECRETS") {
                Some(json) if !json.trim().is_empty() => {
                    serde_json::from_str(&json).map_err(|e| {
                        ConfigError::BadSecretDocument(format!(
                            "RETAILFLOW_CHECKOUT_STOREFRONT_SECRETS: not a JSON object of strings ({:?} error)",
                            e.classify()
                        ))
                    })?
                }
                _ => BTreeMap::new(),
            },
        };
        doc.apply(CheckoutAuthConfig::default())
            .with_limits_from_env(var)
    }

    /// Whether any caller at all can be authenticated.
    pub fn accepts_anyone(&self) -> bool {
        self.shopify.is_some() || !self.storefronts.is_empty()
    }
}

/// A buyer in a Shopify checkout, as its session token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopifyBuyer {
    /// The shop's domain (`dest`'s host).
    pub shop: String,
    /// The logged-in customer's id (the number in `sub`'s gid); `None`
    /// for a guest.
    pub customer_id: Option<String>,
    /// The session (`sid`), when the token names one.
    pub session_id: Option<String>,
}

/// Whoever authentication vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Shopify(ShopifyBuyer),
    /// A storefront's server, by its id: trusted for whom it names.
    Storefront {
        id: String,
    },
}

/// The request may not act for the customer or member it names. 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotYours(pub &'static str);

/// A request bound to its caller: the customer and member it acts for
/// (filled in from the token where the body leaves them out), and whose
/// open holds it counts against (`None`: its checkout is all there is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub request: CheckoutRequest,
    pub owner: Option<String>,
}

/// The loyalty membership number of a shop's customer: the number the
/// accrual step enrols and accrues under
/// (`steps::loyalty_accrual::membership_number`).
pub fn member_number(platform: &str, shop: &str, customer_id: &str) -> String {
    crate::idempotency::external_id("mb", &[platform, shop, customer_id])
}

impl Caller {
    /// For logs and metrics: which kind of caller.
    pub fn kind(&self) -> &'static str {
        match self {
            Caller::Shopify(_) => "shopify_session",
            Caller::Storefront { .. } => "storefront",
        }
    }

    /// Binds `req` to this caller. A Shopify buyer acts for the customer
    /// of its token only: `customer_id`, when given, must be that
    /// customer's id (or gid), and `loyalty_member`, when given, that
    /// customer's membership number (filled in when points are redeemed
    /// without one); a guest names neither, so a guest redeems no points.
    /// A storefront acts for whom it names.
    pub fn bind(&self, req: &CheckoutRequest) -> Result<Bound, NotYours> {
        match self {
            Caller::Storefront { id } => {
                let owner = match (&req.customer_id, &req.loyalty_member) {
                    (Some(c), _) => Some(format!("storefront:{id}:customer:{c}")),
                    (None, Some(m)) => Some(format!("storefront:{id}:member:{m}")),
                    (None, None) => None,
                };
                Ok(Bound {
                    request: req.clone(),
                    owner,
                })
            }
            Caller::Shopify(buyer) => {
                let mut request = req.clone();
                let Some(customer) = &buyer.customer_id else {
                    if req.customer_id.is_some() {
                        return Err(NotYours(
                            "a guest checkout cannot act for a customer: sign in first",
                        ));
                    }
                    if req.loyalty_member.is_some() {
                        return Err(NotYours(
                            "a guest checkout cannot use a loyalty membership: sign in first",
                        ));
                    }
                    let owner = buyer
                        .session_id
                        .as_ref()
                        .map(|sid| format!("shopify:{}:session:{sid}", buyer.shop));
                    return Ok(Bound { request, owner });
                };
                match &req.customer_id {
                    Some(c)
                        if c != customer
                            && c.as_str() != format!("gid://shopify/Customer/{customer}") =>
                    {
                        return Err(NotYours(
                            "customer_id is not the signed-in customer of the session token",
                        ))
                    }
                    _ => request.customer_id = Some(customer.clone()),
                }
                let member = member_number("shopify", &buyer.shop, customer);
                match &req.loyalty_member {
                    Some(m) if *m != member => {
                        return Err(NotYours(
                            "loyalty_member is not the signed-in customer's membership",
                        ))
                    }
                    Some(_) => {}
                    None if req.points_to_redeem > 0 => request.loyalty_member = Some(member),
                    None => {}
                }
                Ok(Bound {
                    request,
                    owner: Some(format!("shopify:{}:customer:{customer}", buyer.shop)),
                })
            }
        }
    }
}

/// Why credentials were refused. Never retryable as sent; answered 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthRefusal {
    #[error("no credentials: send a Shopify session token (Authorization: Bearer <token>) or a storefront's signed request (X-Retailflow-Storefront, X-Retailflow-Timestamp, X-Retailflow-Nonce, X-Retailflow-Signature)")]
    NoCredentials,
    #[error("send one kind of credentials, a session token or a storefront signature, not both")]
    Ambiguous,
    #[error("the Authorization header is not a Bearer token")]
    NotBearer,
    #[error("session token refused: {0}")]
    Token(String),
    #[error("storefront request refused: {0}")]
    Storefront(String),
    #[error("{0} are not configured on this deployment")]
    NotConfigured(&'static str),
}

/// Authentication's outcome when it is not a caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// 401.
    #[error(transparent)]
    Refused(#[from] AuthRefusal),
    /// The nonce could not be claimed (the state store): 503, retry.
    #[error("checkout cannot check credentials right now: {0}")]
    Unavailable(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The session token's claims checkout reads (others are ignored).
#[derive(Deserialize)]
struct SessionClaims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    dest: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    sid: Option<String>,
}

fn token_refusal(reason: impl Into<String>) -> AuthRefusal {
    AuthRefusal::Token(reason.into())
}

/// The customer id in a `sub` of `gid://shopify/Customer/<digits>`.
fn customer_of(sub: &str) -> Option<String> {
    let id = sub.strip_prefix("gid://shopify/Customer/")?;
    (!id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()))
        .then(|| id.to_string())
}

/// Verifies a Shopify session token at `now`: the signature (HS256 only,
/// the current or previous secret), `exp`/`nbf` within `leeway`, `aud`,
/// `dest` (and `iss`, when present), `sub`.
pub fn verify_session_token(
    keys: &ShopifySessionKeys,
    token: &str,
    now: DateTime<Utc>,
    leeway: Duration,
) -> Result<ShopifyBuyer, AuthRefusal> {
    use jsonwebtoken::errors::ErrorKind;
    use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
    if token.len() > MAX_TOKEN_BYTES {
        return Err(token_refusal("longer than any session token"));
    }
    // The algorithm is pinned before any key is tried: `none`, RS256 and
    // the rest are refused here (jsonwebtoken knows no `none` at all).
    let header = decode_header(token).map_err(|_| token_refusal("not a signed JWT"))?;
    if header.alg != Algorithm::HS256 {
        return Err(token_refusal(format!(
            "signed with {:?}; only HS256 is accepted",
            header.alg
        )));
    }
    let mut validation = Validation::new(Algorithm::HS256);
    // Times, audience and shop are checked below, against `now` (the
    // gateway's time) rather than this machine's clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let mut claims = None;
    let secrets = std::iter::once(&keys.secrets.current).chain(keys.secrets.previous.as_ref());
    for secret in secrets.filter(|s| !s.expose().is_empty()) {
        let key = DecodingKey::from_secret(secret.expose().as_bytes());
        match decode::<SessionClaims>(token, &key, &validation) {
            Ok(data) => {
                claims = Some(data.claims);
                break;
            }
            Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
            Err(e) => {
                return Err(token_refusal(match e.kind() {
                    ErrorKind::Json(_) => "its claims are not the session token's",
                    ErrorKind::InvalidAlgorithm => "signed with another algorithm than HS256",
                    _ => "not a signed JWT",
                }))
            }
        }
    }
    let claims =
        claims.ok_or_else(|| token_refusal("signature does not match the app's secret"))?;
    let now_s = now.timestamp();
    let slack = leeway.num_seconds();
    let exp = claims.exp.ok_or_else(|| token_refusal("it has no exp"))?;
    if now_s > exp.saturating_add(slack) {
        return Err(token_refusal("expired"));
    }
    if claims
        .nbf
        .is_some_and(|nbf| now_s.saturating_add(slack) < nbf)
    {
        return Err(token_refusal("not valid yet (nbf)"));
    }
    let for_us = match &claims.aud {
        Some(Audience::One(a)) => *a == keys.client_id,
        Some(Audience::Many(all)) => all.contains(&keys.client_id),
        None => false,
    };
    if !for_us {
        return Err(token_refusal("issued for another app (aud)"));
    }
    let shop = claims
        .dest
        .as_deref()
        .map(shop_host)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| token_refusal("it names no shop (dest)"))?;
    if !keys.shops.contains(&shop) {
        return Err(token_refusal(
            "for a shop this deployment does not serve (dest)",
        ));
    }
    if claims
        .iss
        .as_deref()
        .is_some_and(|iss| shop_host(iss) != shop)
    {
        return Err(token_refusal("iss and dest name different shops"));
    }
    let customer_id = match &claims.sub {
        None => None,
        Some(sub) => {
            Some(customer_of(sub).ok_or_else(|| token_refusal("sub is not a Shopify customer"))?)
        }
    };
    let session_id = claims.sid.filter(|s| !s.is_empty());
    if session_id.as_ref().is_some_and(|s| s.len() > MAX_ID_CHARS) {
        return Err(token_refusal("its sid is too long"));
    }
    Ok(ShopifyBuyer {
        shop,
        customer_id,
        session_id,
    })
}

/// A session token as Shopify signs one (HS256): for samples and tests.
pub fn session_token(secret: &Secret, claims: &serde_json::Value) -> String {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let key = EncodingKey::from_secret(secret.expose().as_bytes());
    // A JSON value always serializes.
    encode(&Header::new(Algorithm::HS256), claims, &key).unwrap_or_default()
}

/// `token` signed anew as if issued at `now`, when `secret` signed it: the
/// same claims, `iat` and `nbf` now, `exp` as long after as it was, and a
/// fresh `jti`. For sending a recorded request again (`retailflow send`);
/// `None` for a token the secret did not sign, which goes as it was and is
/// refused as it would have been.
pub fn restamped_session_token(secret: &Secret, token: &str, now: DateTime<Utc>) -> Option<String> {
    use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let key = DecodingKey::from_secret(secret.expose().as_bytes());
    let mut decoded = decode::<serde_json::Value>(token, &key, &validation)
        .ok()?
        .claims;
    let claims = decoded.as_object_mut()?;
    let now_s = now.timestamp();
    let iat = claims.get("iat").and_then(|v| v.as_i64()).unwrap_or(now_s);
    let lifetime = claims
        .get("exp")
        .and_then(|v| v.as_i64())
        .and_then(|exp| exp.checked_sub(iat))
        .map_or(60, |l| l.max(1));
    claims.insert("iat".into(), now_s.into());
    claims.insert("nbf".into(), now_s.into());
    claims.insert("exp".into(), now_s.saturating_add(lifetime).into());
    claims.insert("jti".into(), uuid::Uuid::new_v4().to_string().into());
    Some(session_token(secret, &decoded))
}

/// The headers a storefront's server sends with `body` at `at`: for
/// clients, samples and tests.
pub fn storefront_headers(
    storefront: &str,
    secret: &Secret,
    at: DateTime<Utc>,
    nonce: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let timestamp = at.timestamp().to_string();
    let signature =
        crate::webhook::shopify_signature(secret, &pos::signing_input(&timestamp, nonce, body));
    vec![
        ("content-type", "application/json".to_string()),
        (STOREFRONT_HEADER, storefront.to_string()),
        (TIMESTAMP_HEADER, timestamp),
        (NONCE_HEADER, nonce.to_string()),
        (SIGNATURE_HEADER, signature),
    ]
}

/// Checkout's authentication: the configuration, and the state store its
/// storefront nonces are claimed in.
pub struct CheckoutAuth {
    config: CheckoutAuthConfig,
    nonces: Arc<dyn StateStore>,
}

impl CheckoutAuth {
    pub fn new(config: CheckoutAuthConfig, nonces: Arc<dyn StateStore>) -> Self {
        CheckoutAuth { config, nonces }
    }

    pub fn config(&self) -> &CheckoutAuthConfig {
        &self.config
    }

    /// Who sent `body` with `headers`, judged at `at` (the time the HTTP
    /// front end took the request, which the caller cannot set).
    pub async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        at: DateTime<Utc>,
    ) -> Result<Caller, AuthError> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let bearer = headers.contains_key(AUTHORIZATION_HEADER);
        let signed = [
            STOREFRONT_HEADER,
            SIGNATURE_HEADER,
            TIMESTAMP_HEADER,
            NONCE_HEADER,
        ]
        .iter()
        .any(|h| headers.contains_key(*h));
        match (bearer, signed) {
            (false, false) => Err(AuthRefusal::NoCredentials.into()),
            (true, true) => Err(AuthRefusal::Ambiguous.into()),
            (true, false) => {
                let keys = self
                    .config
                    .shopify
                    .as_ref()
                    .ok_or(AuthRefusal::NotConfigured("Shopify session tokens"))?;
                let token = header(AUTHORIZATION_HEADER)
                    .map(str::trim)
                    .and_then(|v| v.split_once(' '))
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, token)| token.trim())
                    .filter(|t| !t.is_empty())
                    .ok_or(AuthRefusal::NotBearer)?;
                Ok(Caller::Shopify(verify_session_token(
                    keys,
                    token,
                    at,
                    self.config.leeway,
                )?))
            }
            (false, true) => self.storefront(headers, body, at).await,
        }
    }

    /// A storefront's signed request: signature over its stamp and body,
    /// the stamp's age, then its nonce, claimed until the stamp is stale.
    async fn storefront(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        at: DateTime<Utc>,
    ) -> Result<Caller, AuthError> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let refuse = |reason: String| AuthError::Refused(AuthRefusal::Storefront(reason));
        if self.config.storefronts.is_empty() {
            return Err(AuthRefusal::NotConfigured("storefront secrets").into());
        }
        let id = header(STOREFRONT_HEADER).map(str::trim).unwrap_or_default();
        // An unknown storefront is refused like a bad signature.
        let Some(secrets) = self.config.storefronts.get(id) else {
            return Err(refuse(SignatureError::NotConfigured.to_string()));
        };
        let stamp = PosStamp::from_headers(|n| header(n).map(str::to_string))
            .map_err(|e| refuse(replay_reason(e)))?
            .ok_or_else(|| {
                refuse(
                    "missing X-Retailflow-Timestamp and X-Retailflow-Nonce: a storefront signs a timestamp and a nonce with the body"
                        .into(),
                )
            })?;
        secrets
            .verify_header(
                SIGNATURE_HEADER,
                header(SIGNATURE_HEADER),
                &pos::signing_input(&stamp.timestamp, &stamp.nonce, body),
            )
            .map_err(|e| refuse(e.to_string()))?;
        let policy = ReplayPolicy {
            pos_max_age: self.config.max_request_age,
            max_clock_skew: self.config.max_clock_skew,
            ..ReplayPolicy::default()
        };
        let forget_at = policy
            .check_pos(&stamp, at)
            .map_err(|e| refuse(replay_reason(e)))?;
        let claim = ClaimRequest {
            key: IdempotencyKey::request_nonce(&format!("storefront:{id}"), &stamp.nonce),
            payload_hash: payload_hash(body),
            now: at,
            lease_until: forget_at,
        };
        match self.nonces.claim(&claim).await {
            // Never completed: the claim's lease is the nonce's memory.
            Ok(ClaimOutcome::Claimed(_)) => Ok(Caller::Storefront { id: id.to_string() }),
            Ok(_) => Err(refuse(replay_reason(ReplayRefusal::NonceReused))),
            Err(e) => Err(AuthError::Unavailable(format!("state store: {e}"))),
        }
    }
}

/// A replay refusal in a storefront's words.
fn replay_reason(e: ReplayRefusal) -> String {
    match e {
        ReplayRefusal::MissingStamp(h) => {
            format!("missing {h}: a storefront signs a timestamp and a nonce with the body")
        }
        ReplayRefusal::NonceReused => {
            "nonce already used: sign every request anew, with a new timestamp and nonce".into()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
