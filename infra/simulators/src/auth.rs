//! Authentication as strict as the platforms': token endpoints that issue
//! tokens with a lifetime (NetSuite M2M, Microsoft Entra ID, Salesforce),
//! bearer tokens checked for issue and expiry, OAuth 1.0a signatures
//! verified with a timestamp window and nonce reuse refused (NetSuite TBA,
//! Adobe Commerce), Shopify's per-shop token; and each platform's
//! documented 401 body for a missing, wrong or expired credential.
//!
//! The simulators accept exactly the credentials registered with them
//! ([`Simulators::accept_credentials`]): by default the dev connector
//! secret in `events/dev-keys/`, as an operator would store it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Form, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use retailflow_connectors::auth::oauth1::{self, OAuth1Credentials};
use retailflow_core::config::{
    ConnectorSecretDocument, NetSuiteCredentials, SalesforceCredentials,
};
use serde_json::json;

use crate::faults::System;
use crate::{lock, SimState};

/// The dev connector secret: what `retailflow run`, `serve`, `simulators`
/// and the tests authenticate with, and what the simulators accept.
pub const DEV_CONNECTOR_SECRET: &str =
    include_str!("../../../events/dev-keys/connector-secrets.json");
/// The other documented schemes with dev values (NetSuite TBA, the
/// Salesforce JWT bearer flow), accepted too.
pub const DEV_CONNECTOR_SECRET_ALTERNATIVES: &str =
    include_str!("../../../events/dev-keys/connector-secrets-alternatives.json");

/// Which token endpoint issued a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum TokenIssuer {
    NetSuite,
    Entra,
    Salesforce,
}

struct Issued {
    issuer: TokenIssuer,
    expires_at: DateTime<Utc>,
}

/// A registered RSA public key (of a NetSuite M2M certificate or a
/// Salesforce connected app's certificate).
struct JwtKey {
    client_id: String,
    /// NetSuite: the certificate id (`kid`); Salesforce: the username (`sub`).
    name: String,
    key: jsonwebtoken::DecodingKey,
}

pub(crate) struct AuthState {
    netsuite_tba: Vec<(String, OAuth1Credentials)>,
    netsuite_m2m: Vec<JwtKey>,
    entra: Vec<(String, String, String)>,
    salesforce_cc: Vec<(String, String)>,
    salesforce_jwt: Vec<JwtKey>,
    shopify: BTreeMap<String, HashSet<String>>,
    adobe: Vec<OAuth1Credentials>,
    issued: HashMap<String, Issued>,
    /// OAuth 1.0a nonces seen, per consumer key.
    nonces: HashSet<(String, String)>,
    /// Token lifetime per issuer.
    lifetimes: HashMap<TokenIssuer, Duration>,
    /// Tokens issued per issuer.
    issued_count: BTreeMap<String, u64>,
    /// 401s answered per system.
    refused_count: BTreeMap<String, u64>,
}

impl Default for AuthState {
    fn default() -> Self {
        let mut st = AuthState {
            netsuite_tba: Vec::new(),
            netsuite_m2m: Vec::new(),
            entra: Vec::new(),
            salesforce_cc: Vec::new(),
            salesforce_jwt: Vec::new(),
            shopify: BTreeMap::new(),
            adobe: Vec::new(),
            issued: HashMap::new(),
            nonces: HashSet::new(),
            lifetimes: HashMap::from([
                // NetSuite M2M: 60 minutes; Entra: 60–90 minutes (3599 s
                // answered); Salesforce: the org's session timeout (2 hours
                // by default), never told to the client.
                (TokenIssuer::NetSuite, Duration::minutes(60)),
                (TokenIssuer::Entra, Duration::seconds(3599)),
                (TokenIssuer::Salesforce, Duration::hours(2)),
            ]),
            issued_count: BTreeMap::new(),
            refused_count: BTreeMap::new(),
        };
        for doc in [DEV_CONNECTOR_SECRET, DEV_CONNECTOR_SECRET_ALTERNATIVES] {
            match ConnectorSecretDocument::parse(doc) {
                Ok(d) => st.accept(&d),
                Err(e) => tracing::error!(error = %e, "dev connector secret unreadable"),
            }
        }
        st
    }
}

fn public_key(pem: &str) -> Option<jsonwebtoken::DecodingKey> {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PublicKeyParts;
    let private = rsa::RsaPrivateKey::from_pkcs8_pem(pem).ok()?;
    Some(jsonwebtoken::DecodingKey::from_rsa_raw_components(
        &private.n().to_bytes_be(),
        &private.e().to_bytes_be(),
    ))
}

impl AuthState {
    /// Accepts the credentials in `doc` beside those accepted already.
    pub(crate) fn accept(&mut self, doc: &ConnectorSecretDocument) {
        match &doc.netsuite {
            Some(NetSuiteCredentials::Tba {
                account_id,
                consumer_key,
                consumer_secret,
                token_id,
                token_secret,
            }) => self.netsuite_tba.push((
                account_id.clone(),
                OAuth1Credentials {
                    consumer_key: consumer_key.clone(),
                    consumer_secret: consumer_secret.clone(),
                    token: token_id.clone(),
                    token_secret: token_secret.clone(),
                },
            )),
            Some(NetSuiteCredentials::OAuth2M2m {
                client_id,
                certificate_id,
                private_key,
            }) => {
                if let Some(key) = public_key(private_key) {
                    self.netsuite_m2m.push(JwtKey {
                        client_id: client_id.clone(),
                        name: certificate_id.clone(),
                        key,
                    });
                }
            }
            None => {}
        }
        if let Some(bc) = &doc.business_central {
            self.entra.push((
                bc.tenant_id.clone(),
                bc.client_id.clone(),
                bc.client_secret.clone(),
            ));
        }
        match &doc.salesforce {
            Some(SalesforceCredentials::ClientCredentials {
                client_id,
                client_secret,
            }) => self
                .salesforce_cc
                .push((client_id.clone(), client_secret.clone())),
            Some(SalesforceCredentials::JwtBearer {
                client_id,
                username,
                private_key,
                ..
            }) => {
                if let Some(key) = public_key(private_key) {
                    self.salesforce_jwt.push(JwtKey {
                        client_id: client_id.clone(),
                        name: username.clone(),
                        key,
                    });
                }
            }
            None => {}
        }
        for (shop, token) in &doc.shopify_admin_tokens {
            self.shopify
                .entry(shop.clone())
                .or_default()
                .insert(token.clone());
        }
        if let Some(a) = &doc.adobe_commerce {
            self.adobe.push(OAuth1Credentials {
                consumer_key: a.consumer_key.clone(),
                consumer_secret: a.consumer_secret.clone(),
                token: a.access_token.clone(),
                token_secret: a.access_token_secret.clone(),
            });
        }
    }

    /// Revokes every credential and every token issued (what an admin
    /// revoking an integration does).
    pub(crate) fn revoke_all(&mut self) {
        let lifetimes = std::mem::take(&mut self.lifetimes);
        let (issued, refused) = (
            std::mem::take(&mut self.issued_count),
            std::mem::take(&mut self.refused_count),
        );
        *self = AuthState {
            lifetimes,
            issued_count: issued,
            refused_count: refused,
            ..AuthState::empty()
        };
    }

    fn empty() -> Self {
        AuthState {
            netsuite_tba: Vec::new(),
            netsuite_m2m: Vec::new(),
            entra: Vec::new(),
            salesforce_cc: Vec::new(),
            salesforce_jwt: Vec::new(),
            shopify: BTreeMap::new(),
            adobe: Vec::new(),
            issued: HashMap::new(),
            nonces: HashSet::new(),
            lifetimes: HashMap::new(),
            issued_count: BTreeMap::new(),
            refused_count: BTreeMap::new(),
        }
    }

    pub(crate) fn set_lifetime(&mut self, issuer: TokenIssuer, life: Duration) {
        self.lifetimes.insert(issuer, life);
    }

    /// Every issued token stops working now (an org's session policy, a
    /// revoked consent).
    pub(crate) fn expire_all_tokens(&mut self) {
        self.issued.clear();
    }

    pub(crate) fn issued_counts(&self) -> BTreeMap<String, u64> {
        self.issued_count.clone()
    }

    pub(crate) fn refused_counts(&self) -> BTreeMap<String, u64> {
        self.refused_count.clone()
    }

    fn issue(&mut self, issuer: TokenIssuer, now: DateTime<Utc>) -> (String, i64) {
        let life = self
            .lifetimes
            .get(&issuer)
            .copied()
            .unwrap_or(Duration::hours(1));
        let token = format!("{issuer:?}-{}", uuid::Uuid::new_v4().simple());
        self.issued.insert(
            token.clone(),
            Issued {
                issuer,
                expires_at: now + life,
            },
        );
        *self.issued_count.entry(format!("{issuer:?}")).or_default() += 1;
        (token, life.num_seconds())
    }

    fn bearer_ok(&self, issuer: TokenIssuer, token: &str, now: DateTime<Utc>) -> bool {
        self.issued
            .get(token)
            .is_some_and(|i| i.issuer == issuer && now < i.expires_at)
    }

    /// Verifies an OAuth 1.0a header against the registered credentials:
    /// signature, timestamp window, nonce never used before.
    fn oauth1_ok(
        &mut self,
        system: System,
        header: &str,
        method: &str,
        url: &url::Url,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(h) = oauth1::parse_header(header) else {
            return false;
        };
        let ts = i64::try_from(h.timestamp).unwrap_or(i64::MAX);
        let fresh = match system {
            // NetSuite: within five minutes either way.
            System::NetSuite => (now.timestamp() - ts).abs() <= 300,
            // Adobe Commerce: not more than 600 s ahead (older is taken;
            // the nonce table is its replay protection).
            _ => ts > 0 && ts <= now.timestamp() + 600,
        };
        let signed = match system {
            System::NetSuite => self.netsuite_tba.iter().any(|(realm, c)| {
                h.realm.as_deref() == Some(realm.as_str()) && oauth1::verify(c, method, url, &h)
            }),
            _ => self
                .adobe
                .iter()
                .any(|c| oauth1::verify(c, method, url, &h)),
        };
        let new_nonce = h.nonce.len() >= 6
            && self
                .nonces
                .insert((h.consumer_key.clone(), h.nonce.clone()));
        fresh && signed && new_nonce
    }
}

/// The platform's 401 for a request without a valid credential.
fn unauthorized(system: System) -> Response {
    let (body, challenge) = match system {
        System::NetSuite => (
            json!({"type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.2",
                "title": "Unauthorized", "status": 401,
                "o:errorDetails": [{"detail": "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at Setup > Users/Roles > User Management > View Login Audit Trail.",
                    "o:errorCode": "INVALID_LOGIN"}]}),
            None,
        ),
        System::BusinessCentral => (
            json!({"error": {"code": "Authentication_InvalidCredentials",
                "message": format!("The server has rejected the client credentials.  CorrelationId:  {}.", uuid::Uuid::new_v4())}}),
            Some("Bearer authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\""),
        ),
        System::Salesforce => (
            json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]),
            Some("Token"),
        ),
        System::Shopify => (
            json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}),
            Some("Basic Realm=\"Shopify API Authentication\""),
        ),
        System::AdobeCommerce => (
            json!({"message": "The consumer isn't authorized to access %resources.",
                "parameters": {"resources": "Magento_Sales::sales"}}),
            None,
        ),
    };
    let mut resp = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    if let Some(c) = challenge {
        resp.headers_mut()
            .insert("www-authenticate", HeaderValue::from_static(c));
    }
    resp
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The URL the client signed: scheme, the Host it sent, path and query.
fn signed_url(req: &Request<Body>) -> Option<url::Url> {
    let host = header(req.headers(), "host");
    let path = req.uri().path_and_query()?.as_str();
    url::Url::parse(&format!("http://{host}{path}")).ok()
}

/// Middleware: every call to a system's API carries a valid credential,
/// or gets that system's 401. Token endpoints and `/__sim` are open.
pub(crate) async fn verify(
    State(state): State<Arc<SimState>>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    let Some(system) = System::of(&path) else {
        return next.run(req).await;
    };
    if is_token_endpoint(&path) {
        return next.run(req).await;
    }
    let now = (state.clock)();
    let authorization = header(req.headers(), "authorization").to_string();
    let ok = {
        let mut auth = lock(&state.auth);
        match system {
            System::NetSuite if authorization.starts_with("OAuth ") => match signed_url(&req) {
                Some(url) => {
                    auth.oauth1_ok(system, &authorization, req.method().as_str(), &url, now)
                }
                None => false,
            },
            System::NetSuite => bearer(&authorization)
                .is_some_and(|t| auth.bearer_ok(TokenIssuer::NetSuite, t, now)),
            System::BusinessCentral => {
                bearer(&authorization).is_some_and(|t| auth.bearer_ok(TokenIssuer::Entra, t, now))
            }
            System::Salesforce => bearer(&authorization)
                .is_some_and(|t| auth.bearer_ok(TokenIssuer::Salesforce, t, now)),
            System::Shopify => {
                // /shopify/{shop}/admin/...
                let shop = path.split('/').nth(2).unwrap_or("");
                let token = header(req.headers(), "x-shopify-access-token");
                auth.shopify.get(shop).is_some_and(|t| t.contains(token))
            }
            System::AdobeCommerce => match signed_url(&req) {
                Some(url) => {
                    auth.oauth1_ok(system, &authorization, req.method().as_str(), &url, now)
                }
                None => false,
            },
        }
    };
    if ok {
        next.run(req).await
    } else {
        *lock(&state.auth)
            .refused_count
            .entry(format!("{system:?}"))
            .or_default() += 1;
        unauthorized(system)
    }
}

/// The simulated token endpoints, open to every caller as the real ones
/// are; nothing else is.
pub(crate) fn is_token_endpoint(path: &str) -> bool {
    path == "/netsuite/services/rest/auth/oauth2/v1/token"
        || path == "/salesforce/services/oauth2/token"
        || (path.starts_with("/entra/") && path.ends_with("/oauth2/v2.0/token"))
}

fn bearer(authorization: &str) -> Option<&str> {
    authorization
        .strip_prefix("Bearer ")
        .or_else(|| authorization.strip_prefix("bearer "))
        .map(str::trim)
}

fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// The claims retailflow's assertions carry, as the platforms check them.
#[derive(serde::Deserialize)]
struct AssertionClaims {
    iss: String,
    #[serde(default)]
    sub: Option<String>,
    aud: String,
    #[serde(default)]
    iat: Option<i64>,
    exp: i64,
}

/// The assertion's claims, verified with the one registered key it names
/// (NetSuite: `iss` and `kid`; Salesforce: `iss` and `sub`), never with
/// whichever key happens to fit.
fn decode_assertion(
    assertion: &str,
    keys: &[JwtKey],
    algorithm: jsonwebtoken::Algorithm,
    named_by_kid: bool,
) -> Option<AssertionClaims> {
    let header = jsonwebtoken::decode_header(assertion).ok()?;
    if header.alg != algorithm {
        return None;
    }
    let mut validation = jsonwebtoken::Validation::new(algorithm);
    // Expiry and audience are judged by the caller on the simulators' clock.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    // Read the claims unverified only to find the key they name.
    let mut peek = validation.clone();
    peek.insecure_disable_signature_validation();
    let named = jsonwebtoken::decode::<AssertionClaims>(
        assertion,
        &jsonwebtoken::DecodingKey::from_secret(&[]),
        &peek,
    )
    .ok()?
    .claims;
    let key = keys.iter().find(|k| {
        k.client_id == named.iss
            && if named_by_kid {
                header.kid.as_deref() == Some(k.name.as_str())
            } else {
                named.sub.as_deref() == Some(k.name.as_str())
            }
    })?;
    jsonwebtoken::decode::<AssertionClaims>(assertion, &key.key, &validation)
        .ok()
        .map(|d| d.claims)
}

/// `POST /netsuite/services/rest/auth/oauth2/v1/token`: client credentials
/// with a PS256 JWT assertion signed by a mapped certificate's key.
pub(crate) async fn netsuite_token(
    State(state): State<Arc<SimState>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = (state.clock)();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") != "client_credentials"
        || get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unsupported grant",
        );
    }
    let mut auth = lock(&state.auth);
    let ok = decode_assertion(
        get("client_assertion"),
        &auth.netsuite_m2m,
        jsonwebtoken::Algorithm::PS256,
        true,
    )
    .is_some_and(|c| {
        c.iat
            .is_some_and(|iat| c.exp - iat <= 3600 && iat <= now.timestamp() + 300)
            && c.aud.ends_with("/services/rest/auth/oauth2/v1/token")
            && c.exp > now.timestamp()
    });
    if !ok {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The assertion is not valid.",
        );
    }
    let (token, life) = auth.issue(TokenIssuer::NetSuite, now);
    // NetSuite answers expires_in as a string.
    Json(json!({"access_token": token, "expires_in": life.to_string(), "token_type": "bearer"}))
        .into_response()
}

/// `POST /entra/{tenant}/oauth2/v2.0/token`: Entra ID client credentials
/// for the Business Central scope.
pub(crate) async fn entra_token(
    State(state): State<Arc<SimState>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = (state.clock)();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") != "client_credentials" {
        return token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003",
        );
    }
    if get("scope") != "https://api.businesscentral.dynamics.com/.default" {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
        );
    }
    let mut auth = lock(&state.auth);
    let ok = auth.entra.iter().any(|(t, id, secret)| {
        *t == tenant && id == get("client_id") && secret == get("client_secret")
    });
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
                "error_codes": [7000215], "timestamp": now.format("%Y-%m-%d %H:%M:%SZ").to_string(),
                "trace_id": uuid::Uuid::new_v4(), "correlation_id": uuid::Uuid::new_v4()})),
        )
            .into_response();
    }
    let (token, life) = auth.issue(TokenIssuer::Entra, now);
    Json(
        json!({"token_type": "Bearer", "expires_in": life, "ext_expires_in": life,
        "access_token": token}),
    )
    .into_response()
}

/// `POST /salesforce/services/oauth2/token`: client credentials, or the JWT
/// bearer flow (RS256, `exp` at most 3 minutes ahead). The answer carries
/// no lifetime: a session ends by the org's policy.
pub(crate) async fn salesforce_token(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = (state.clock)();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let mut auth = lock(&state.auth);
    let ok = match get("grant_type") {
        "client_credentials" => auth
            .salesforce_cc
            .iter()
            .any(|(id, secret)| id == get("client_id") && secret == get("client_secret")),
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => decode_assertion(
            get("assertion"),
            &auth.salesforce_jwt,
            jsonwebtoken::Algorithm::RS256,
            false,
        )
        .is_some_and(|c| {
            !c.aud.is_empty() && c.exp > now.timestamp() && c.exp <= now.timestamp() + 300
        }),
        _ => {
            return token_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant type not supported",
            )
        }
    };
    if !ok {
        return match get("grant_type") {
            "client_credentials" => token_error(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                "invalid client credentials",
            ),
            _ => token_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "invalid assertion",
            ),
        };
    }
    let (token, _) = auth.issue(TokenIssuer::Salesforce, now);
    let host = header(&headers, "host");
    Json(
        json!({"access_token": token, "signature": "c2lt", "scope": "api",
        "instance_url": format!("http://{host}/salesforce"),
        "id": format!("http://{host}/salesforce/id/00D000000000001/005000000000001"),
        "token_type": "Bearer", "issued_at": now.timestamp_millis().to_string()}),
    )
    .into_response()
}
