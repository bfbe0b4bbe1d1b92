//! Each platform's [`RequestAuth`], reading its credential from the live
//! connector secret on every request (so a rotation is followed) and its
//! token from the one cache.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};

use super::oauth1::{self, OAuth1Credentials};
use super::token_endpoint::{auth_failing, request_token, signed_jwt};
use super::{Auth, RequestAuth, UsedCredential};
use retailflow_core::config::{NetSuiteCredentials, OAuth1Fields, SalesforceCredentials};
use retailflow_core::credentials::{fingerprint, ConnectorSecrets, TokenCache};
use retailflow_core::resilience::ConnectorError;
use retailflow_core::webhook::Secret;

/// How long a token request may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(5);

fn set_header(
    system: &'static str,
    req: &mut reqwest::Request,
    name: HeaderName,
    value: &str,
) -> Result<(), ConnectorError> {
    let v = HeaderValue::from_str(value).map_err(|_| {
        auth_failing(
            system,
            "the credential holds characters a header cannot carry".into(),
        )
    })?;
    req.headers_mut().insert(name, v);
    Ok(())
}

fn bearer(
    system: &'static str,
    req: &mut reqwest::Request,
    token: Secret,
) -> Result<UsedCredential, ConnectorError> {
    set_header(
        system,
        req,
        AUTHORIZATION,
        &format!("Bearer {}", token.expose()),
    )?;
    Ok(UsedCredential::Token(token))
}

fn oauth1_sign(
    system: &'static str,
    req: &mut reqwest::Request,
    creds: &OAuth1Credentials,
    realm: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<UsedCredential, ConnectorError> {
    let timestamp = u64::try_from(now.timestamp()).unwrap_or(0);
    let header = oauth1::authorization(
        creds,
        req.method().as_str(),
        req.url(),
        realm,
        &oauth1::nonce(),
        timestamp,
    );
    set_header(system, req, AUTHORIZATION, &header)?;
    Ok(UsedCredential::Signed)
}

fn not_configured(system: &'static str, field: &str) -> ConnectorError {
    auth_failing(
        system,
        format!("the connector secret has no `{field}` credentials"),
    )
}

/// What every token-issuing platform's auth holds: the live secret, the
/// one token cache, and a client for the token endpoint.
struct Issued {
    secrets: Arc<ConnectorSecrets>,
    tokens: TokenCache,
    http: reqwest::Client,
    /// The token endpoint (Entra: the authority, the tenant's path added
    /// per request).
    endpoint: String,
}

impl Issued {
    fn new(secrets: Arc<ConnectorSecrets>, endpoint: String) -> Self {
        Issued {
            tokens: TokenCache::new(secrets.clock().clone()),
            secrets,
            http: super::super::wire::http_client(TOKEN_TIMEOUT),
            endpoint,
        }
    }

    /// The cached token for the credential `key` names, or a new one asked
    /// of the endpoint with the form `form` builds (only when one is
    /// needed: building it may sign an assertion).
    async fn token(
        &self,
        system: &'static str,
        key: &str,
        now: chrono::DateTime<chrono::Utc>,
        form: impl FnOnce() -> Result<Vec<(&'static str, String)>, ConnectorError>,
    ) -> Result<Secret, ConnectorError> {
        self.tokens
            .token(key, || async {
                let form = form()?;
                let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                request_token(system, &self.http, &self.endpoint, &pairs, now).await
            })
            .await
    }

    /// A refused token goes, and the secret is read again.
    async fn forget(&self, used: &UsedCredential) {
        if let UsedCredential::Token(t) = used {
            self.tokens.refused(t).await;
        }
        self.secrets.refused().await;
    }
}

/// NetSuite: TBA or OAuth 2.0 M2M, whichever the secret holds.
pub struct NetSuiteAuth(Issued);

impl NetSuiteAuth {
    /// `rest_root` is `https://{account}.suitetalk.api.netsuite.com/services/rest`;
    /// the M2M token endpoint is `{rest_root}/auth/oauth2/v1/token`.
    pub fn from_secret(secrets: Arc<ConnectorSecrets>, rest_root: &str) -> Auth {
        Auth::new(NetSuiteAuth(Issued::new(
            secrets,
            format!("{}/auth/oauth2/v1/token", rest_root.trim_end_matches('/')),
        )))
    }
}

const NETSUITE: &str = "netsuite";

#[async_trait]
impl RequestAuth for NetSuiteAuth {
    async fn authorize(
        &self,
        req: &mut reqwest::Request,
    ) -> Result<UsedCredential, ConnectorError> {
        let doc = self.0.secrets.current().await?;
        let now = (self.0.secrets.clock())();
        match doc.netsuite.as_ref() {
            None => Err(not_configured(NETSUITE, "netsuite")),
            Some(NetSuiteCredentials::Tba {
                account_id,
                consumer_key,
                consumer_secret,
                token_id,
                token_secret,
            }) => {
                let creds = OAuth1Credentials {
                    consumer_key: consumer_key.clone(),
                    consumer_secret: consumer_secret.clone(),
                    token: token_id.clone(),
                    token_secret: token_secret.clone(),
                };
                oauth1_sign(NETSUITE, req, &creds, Some(account_id), now)
            }
            Some(NetSuiteCredentials::OAuth2M2m {
                client_id,
                certificate_id,
                private_key,
            }) => {
                let key = fingerprint(&[client_id, certificate_id, private_key]);
                let token = self
                    .0
                    .token(NETSUITE, &key, now, || {
                        // NetSuite takes at most an hour between iat and exp.
                        let claims = serde_json::json!({
                            "iss": client_id,
                            "scope": "rest_webservices",
                            "aud": self.0.endpoint,
                            "iat": now.timestamp(),
                            "exp": now.timestamp() + 3600,
                        });
                        let assertion = signed_jwt(
                            NETSUITE,
                            jsonwebtoken::Algorithm::PS256,
                            Some(certificate_id),
                            &claims,
                            private_key,
                        )?;
                        Ok(vec![
                            ("grant_type", "client_credentials".into()),
                            (
                                "client_assertion_type",
                                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                            ),
                            ("client_assertion", assertion),
                        ])
                    })
                    .await?;
                bearer(NETSUITE, req, token)
            }
        }
    }

    async fn refused(&self, used: &UsedCredential) {
        self.0.forget(used).await;
    }
}

/// Business Central: Microsoft Entra ID client credentials.
pub struct EntraAuth(Issued);

/// The scope of every Business Central API call.
pub const BUSINESS_CENTRAL_SCOPE: &str = "https://api.businesscentral.dynamics.com/.default";

impl EntraAuth {
    /// `authority` is `https://login.microsoftonline.com` (the tenant and
    /// `/oauth2/v2.0/token` are appended).
    pub fn from_secret(secrets: Arc<ConnectorSecrets>, authority: &str) -> Auth {
        // The tenant goes between the authority and the token path.
        Auth::new(EntraAuth(Issued::new(
            secrets,
            authority.trim_end_matches('/').to_string(),
        )))
    }
}

const BUSINESS_CENTRAL: &str = "business-central";

#[async_trait]
impl RequestAuth for EntraAuth {
    async fn authorize(
        &self,
        req: &mut reqwest::Request,
    ) -> Result<UsedCredential, ConnectorError> {
        let doc = self.0.secrets.current().await?;
        let Some(c) = doc.business_central.as_ref() else {
            return Err(not_configured(BUSINESS_CENTRAL, "business_central"));
        };
        let now = (self.0.secrets.clock())();
        let key = fingerprint(&[&c.tenant_id, &c.client_id, &c.client_secret]);
        let endpoint = format!("{}/{}/oauth2/v2.0/token", self.0.endpoint, c.tenant_id);
        let token = self
            .0
            .tokens
            .token(&key, || async {
                request_token(
                    BUSINESS_CENTRAL,
                    &self.0.http,
                    &endpoint,
                    &[
                        ("grant_type", "client_credentials"),
                        ("client_id", &c.client_id),
                        ("client_secret", &c.client_secret),
                        ("scope", BUSINESS_CENTRAL_SCOPE),
                    ],
                    now,
                )
                .await
            })
            .await?;
        bearer(BUSINESS_CENTRAL, req, token)
    }

    async fn refused(&self, used: &UsedCredential) {
        self.0.forget(used).await;
    }
}

/// Salesforce: client credentials or JWT bearer, against the org's token
/// endpoint (`{my domain}/services/oauth2/token`).
pub struct SalesforceAuth(Issued);

impl SalesforceAuth {
    /// `my_domain` is the org's My Domain URL (the API's base URL).
    pub fn from_secret(secrets: Arc<ConnectorSecrets>, my_domain: &str) -> Auth {
        Auth::new(SalesforceAuth(Issued::new(
            secrets,
            format!("{}/services/oauth2/token", my_domain.trim_end_matches('/')),
        )))
    }
}

const SALESFORCE: &str = "salesforce-loyalty";

#[async_trait]
impl RequestAuth for SalesforceAuth {
    async fn authorize(
        &self,
        req: &mut reqwest::Request,
    ) -> Result<UsedCredential, ConnectorError> {
        let doc = self.0.secrets.current().await?;
        let now = (self.0.secrets.clock())();
        let token =
            match doc.salesforce.as_ref() {
                None => return Err(not_configured(SALESFORCE, "salesforce")),
                Some(SalesforceCredentials::ClientCredentials {
                    client_id,
                    client_secret,
                }) => {
                    let key = fingerprint(&[client_id, client_secret]);
                    self.0
                        .token(SALESFORCE, &key, now, || {
                            Ok(vec![
                                ("grant_type", "client_credentials".into()),
                                ("client_id", client_id.clone()),
                                ("client_secret", client_secret.clone()),
                            ])
                        })
                        .await?
                }
                Some(SalesforceCredentials::JwtBearer {
                    client_id,
                    username,
                    private_key,
                    audience,
                }) => {
                    let key = fingerprint(&[client_id, username, private_key]);
                    self.0
                    .token(SALESFORCE, &key, now, || {
                        // Salesforce takes an assertion valid for at most 3 minutes.
                        let claims = serde_json::json!({
                            "iss": client_id,
                            "sub": username,
                            "aud": audience.as_deref().unwrap_or("https://login.salesforce.com"),
                            "exp": now.timestamp() + 180,
                        });
                        let assertion = signed_jwt(
                            SALESFORCE,
                            jsonwebtoken::Algorithm::RS256,
                            None,
                            &claims,
                            private_key,
                        )?;
                        Ok(vec![
                            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer".into()),
                            ("assertion", assertion),
                        ])
                    })
                    .await?
                }
            };
        bearer(SALESFORCE, req, token)
    }

    async fn refused(&self, used: &UsedCredential) {
        self.0.forget(used).await;
    }
}

/// Adobe Commerce: every request signed with the integration's OAuth 1.0a
/// credentials (Adobe Commerce 2.4.4+ refuses its access token as a bare
/// bearer token unless an admin turns that back on).
pub struct AdobeAuth {
    secrets: Arc<ConnectorSecrets>,
}

impl AdobeAuth {
    pub fn from_secret(secrets: Arc<ConnectorSecrets>) -> Auth {
        Auth::new(AdobeAuth { secrets })
    }
}

const ADOBE: &str = "adobe-commerce-admin";

#[async_trait]
impl RequestAuth for AdobeAuth {
    async fn authorize(
        &self,
        req: &mut reqwest::Request,
    ) -> Result<UsedCredential, ConnectorError> {
        let doc = self.secrets.current().await?;
        let Some(OAuth1Fields {
            consumer_key,
            consumer_secret,
            access_token,
            access_token_secret,
        }) = doc.adobe_commerce.as_ref()
        else {
            return Err(not_configured(ADOBE, "adobe_commerce"));
        };
        let creds = OAuth1Credentials {
            consumer_key: consumer_key.clone(),
            consumer_secret: consumer_secret.clone(),
            token: access_token.clone(),
            token_secret: access_token_secret.clone(),
        };
        oauth1_sign(ADOBE, req, &creds, None, (self.secrets.clock())())
    }

    async fn refused(&self, _used: &UsedCredential) {
        self.secrets.refused().await;
    }
}

/// Shopify: each shop's offline Admin API token, sent as
/// `X-Shopify-Access-Token`.
#[derive(Clone)]
pub struct ShopifyTokens {
    secrets: Arc<ConnectorSecrets>,
}

const SHOPIFY: &str = "shopify-admin";

impl ShopifyTokens {
    pub fn new(secrets: Arc<ConnectorSecrets>) -> Self {
        ShopifyTokens { secrets }
    }

    /// The shops the secret holds a token for.
    pub async fn shops(&self) -> Result<Vec<String>, ConnectorError> {
        Ok(self
            .secrets
            .current()
            .await?
            .shopify_admin_tokens
            .keys()
            .cloned()
            .collect())
    }

    /// An [`Auth`] for one shop's requests.
    pub fn for_shop(&self, shop: &str) -> Auth {
        Auth::new(ShopifyShopAuth {
            secrets: self.secrets.clone(),
            shop: shop.to_string(),
        })
    }

    /// Whether the secret holds a token for `shop`.
    pub async fn has(&self, shop: &str) -> Result<bool, ConnectorError> {
        Ok(self
            .secrets
            .current()
            .await?
            .shopify_admin_tokens
            .contains_key(shop))
    }
}

impl std::fmt::Debug for ShopifyTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShopifyTokens(***)")
    }
}

struct ShopifyShopAuth {
    secrets: Arc<ConnectorSecrets>,
    shop: String,
}

#[async_trait]
impl RequestAuth for ShopifyShopAuth {
    async fn authorize(
        &self,
        req: &mut reqwest::Request,
    ) -> Result<UsedCredential, ConnectorError> {
        let doc = self.secrets.current().await?;
        let Some(token) = doc.shopify_admin_tokens.get(&self.shop) else {
            return Err(auth_failing(
                SHOPIFY,
                format!(
                    "the connector secret has no Shopify token for {}",
                    self.shop
                ),
            ));
        };
        set_header(
            SHOPIFY,
            req,
            HeaderName::from_static("x-shopify-access-token"),
            token.trim(),
        )?;
        Ok(UsedCredential::Signed)
    }

    async fn refused(&self, _used: &UsedCredential) {
        self.secrets.refused().await;
    }
}
