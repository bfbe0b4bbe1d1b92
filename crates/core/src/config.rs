//! Where the intake's verification material comes from: environment
//! variables (local runs) or a Secrets Manager JSON document (AWS). An empty
//! value means "not configured", never "accept anything".

use serde::Deserialize;

use crate::intake::IntakeConfig;
use crate::webhook::{AdobeKeys, HmacSecrets, KeyError, Secret};

/// The one configuration error of every function, the local app and the
/// CLI: a setting missing or malformed, a secret unreadable or refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("secret document refused: {0}")]
    BadSecretDocument(String),
    #[error("adobe public keys: {0}")]
    BadAdobeKeys(#[from] KeyError),
    #[error("{0} is not configured")]
    Missing(String),
    #[error("environment variable {0} is not set")]
    Unset(String),
    #[error("{0}")]
    BadSetting(String),
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    /// The secret store did not answer (or refused the read): it may on
    /// the next attempt.
    #[error("reading secret {arn}: {reason}")]
    Secret { arn: String, reason: String },
}

impl ConfigError {
    /// Only a secret that could not be read may be there on the next
    /// attempt; every other error stays until the configuration changes.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ConfigError::Secret { .. })
    }
}

/// The Secrets Manager document the SAM template creates (`WebhookSecrets`).
#[derive(Debug, Default, Deserialize)]
pub struct WebhookSecretDocument {
    #[serde(default)]
    pub shopify_secret: String,
    #[serde(default)]
    pub shopify_previous_secret: String,
    /// One or more PEM public keys, concatenated.
    #[serde(default)]
    pub adobe_public_keys: String,
    #[serde(default)]
    pub adobe_client_id: String,
    /// Point-of-sale store id → that store's signing secret.
    #[serde(default)]
    pub pos_store_secrets: std::collections::BTreeMap<String, String>,
}

impl WebhookSecretDocument {
    pub fn parse(json: &str) -> Result<Self, ConfigError> {
        serde_json::from_str(json).map_err(|e| ConfigError::BadSecretDocument(e.to_string()))
    }

    /// Applies the document to a config; blank entries leave a source unconfigured.
    pub fn apply(self, mut config: IntakeConfig) -> Result<IntakeConfig, ConfigError> {
        let some = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        config.shopify = some(self.shopify_secret).map(|current| HmacSecrets {
            current: Secret::new(current),
            previous: some(self.shopify_previous_secret).map(Secret::new),
        });
        config.adobe = match some(self.adobe_public_keys) {
            Some(pem) => Some(AdobeKeys::from_pem(&pem, self.adobe_client_id)?),
            None => None,
        };
        config.pos_stores = self
            .pos_store_secrets
            .into_iter()
            .filter(|(_, secret)| !secret.trim().is_empty())
            .map(|(store, secret)| {
                let secrets = HmacSecrets {
                    current: Secret::new(secret.trim()),
                    previous: None,
                };
                (store, secrets)
            })
            .collect();
        Ok(config)
    }
}

/// Reads `RETAILFLOW_SHOPIFY_SECRET`, `RETAILFLOW_SHOPIFY_PREVIOUS_SECRET`,
/// `RETAILFLOW_ADOBE_PUBLIC_KEYS` (comma-separated PEM file paths),
/// `RETAILFLOW_ADOBE_CLIENT_ID`, `RETAILFLOW_ADOBE_SHOP` and
/// `RETAILFLOW_POS_STORE_SECRETS` (JSON: store id → secret) through `var`,
/// and the replay settings ([`crate::intake::freshness::ReplayPolicy::from_env`]).
pub fn intake_config_from_env(
    var: impl Fn(&str) -> Option<String>,
) -> Result<IntakeConfig, ConfigError> {
    let mut pem = String::new();
    if let Some(paths) = var("RETAILFLOW_ADOBE_PUBLIC_KEYS") {
        for path in paths.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
                path: path.to_string(),
                reason: e.to_string(),
            })?;
            pem.push_str(&text);
            pem.push('\n');
        }
    }
    let doc = WebhookSecretDocument {
        shopify_secret: var("RETAILFLOW_SHOPIFY_SECRET").unwrap_or_default(),
        shopify_previous_secret: var("RETAILFLOW_SHOPIFY_PREVIOUS_SECRET").unwrap_or_default(),
        adobe_public_keys: pem,
        adobe_client_id: var("RETAILFLOW_ADOBE_CLIENT_ID").unwrap_or_default(),
        pos_store_secrets: match var("RETAILFLOW_POS_STORE_SECRETS") {
            Some(json) => serde_json::from_str(&json).map_err(|e| {
                ConfigError::BadSecretDocument(format!("RETAILFLOW_POS_STORE_SECRETS: {e}"))
            })?,
            None => Default::default(),
        },
    };
    let config = IntakeConfig {
        adobe_shop: var("RETAILFLOW_ADOBE_SHOP").filter(|s| !s.trim().is_empty()),
        replay: crate::intake::freshness::ReplayPolicy::from_env(&var)?,
        ..IntakeConfig::default()
    };
    doc.apply(config)
}

/// The credentials of the systems of record: the `ConnectorSecrets`
/// secret, as an operator stores it (field names in `docs/credentials.md`).
/// A platform left out is not configured.
#[derive(Default, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSecretDocument {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netsuite: Option<NetSuiteCredentials>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_central: Option<EntraClientCredentials>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salesforce: Option<SalesforceCredentials>,
    /// Shopify Admin API offline access token per shop domain.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub shopify_admin_tokens: std::collections::BTreeMap<String, String>,
    /// Adobe Commerce integration: OAuth 1.0a consumer and access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adobe_commerce: Option<OAuth1Fields>,
    /// The static tokens of earlier releases: left blank (the template's
    /// placeholder) they are ignored; filled, the document is refused
    /// with what to store instead.
    #[serde(default, skip_serializing)]
    netsuite_token: String,
    #[serde(default, skip_serializing)]
    business_central_token: String,
    #[serde(default, skip_serializing)]
    salesforce_token: String,
    #[serde(default, skip_serializing)]
    adobe_commerce_token: String,
}

/// NetSuite: Token-Based Authentication (an integration record's consumer
/// key and secret, an access token's id and secret) or OAuth 2.0
/// machine-to-machine (the integration's client id, the certificate id of
/// the mapping, and the certificate's private key).
#[derive(Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(tag = "auth", rename_all = "snake_case", deny_unknown_fields)]
pub enum NetSuiteCredentials {
    Tba {
        /// The account id as the realm: `1234567` or `1234567_SB1`.
        account_id: String,
        consumer_key: String,
        consumer_secret: String,
        token_id: String,
        token_secret: String,
    },
    #[serde(rename = "oauth2_m2m")]
    OAuth2M2m {
        client_id: String,
        certificate_id: String,
        /// PKCS#8 PEM of the certificate's RSA key.
        private_key: String,
    },
}

/// Microsoft Entra ID client credentials (an app registration's tenant,
/// client id and secret) for Business Central.
#[derive(Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct EntraClientCredentials {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

/// Salesforce: the OAuth 2.0 client credentials flow (a connected or
/// external client app's consumer key and secret, run as its execution
/// user), or the JWT bearer flow (consumer key, the user to act as, the
/// key whose certificate the app holds).
#[derive(Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(tag = "auth", rename_all = "snake_case", deny_unknown_fields)]
pub enum SalesforceCredentials {
    ClientCredentials {
        client_id: String,
        client_secret: String,
    },
    JwtBearer {
        client_id: String,
        username: String,
        /// PKCS#8 PEM of the RSA key.
        private_key: String,
        /// `https://login.salesforce.com` (default), `https://test.salesforce.com`
        /// for sandboxes, or the org's My Domain URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audience: Option<String>,
    },
}

/// An OAuth 1.0a integration's four values (Adobe Commerce: System >
/// Integrations).
#[derive(Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth1Fields {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub access_token: String,
    pub access_token_secret: String,
}

/// Credentials print their names, never their values.
macro_rules! redacted_debug {
    ($($t:ty),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($t), "(***)"))
            }
        }
    )*};
}
redacted_debug!(
    NetSuiteCredentials,
    EntraClientCredentials,
    SalesforceCredentials,
    OAuth1Fields
);

/// Which platforms are configured, never a value.
impl std::fmt::Debug for ConnectorSecretDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorSecretDocument")
            .field("netsuite", &self.netsuite.is_some())
            .field("business_central", &self.business_central.is_some())
            .field("salesforce", &self.salesforce.is_some())
            .field(
                "shopify_shops",
                &self.shopify_admin_tokens.keys().collect::<Vec<_>>(),
            )
            .field("adobe_commerce", &self.adobe_commerce.is_some())
            .finish_non_exhaustive()
    }
}

impl ConnectorSecretDocument {
    pub fn parse(json: &str) -> Result<Self, ConfigError> {
        let doc: Self = serde_json::from_str(json).map_err(|e| {
            ConfigError::BadSecretDocument(format!(
                "connector secret: {} (the fields are described in docs/credentials.md)",
                without_values(&e)
            ))
        })?;
        let legacy = [
            ("netsuite_token", &doc.netsuite_token, "netsuite"),
            (
                "business_central_token",
                &doc.business_central_token,
                "business_central",
            ),
            ("salesforce_token", &doc.salesforce_token, "salesforce"),
            (
                "adobe_commerce_token",
                &doc.adobe_commerce_token,
                "adobe_commerce",
            ),
        ];
        for (old, value, new) in legacy {
            if !value.trim().is_empty() {
                return Err(ConfigError::BadSecretDocument(format!(
                    "connector secret: `{old}` (a static token, which expires or is refused in production) \
                     is no longer read; store the `{new}` credentials instead (docs/credentials.md)"
                )));
            }
        }
        Ok(doc)
    }
}

/// A parse error of a secret document, without the values serde would
/// quote (an "invalid type: string \"…\"" names the secret itself).
/// Field and variant names are kept: they say what to fix.
fn without_values(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let names_a_field = ["unknown field", "missing field", "unknown variant"]
        .iter()
        .any(|p| text.starts_with(p));
    if names_a_field {
        text
    } else {
        format!(
            "not the expected shape ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    }
}

/// The connector secret twice: as first read, which decides what is
/// configured, and live, which every request is authorized from (so a
/// rotated credential is followed without a restart).
#[derive(Clone)]
pub struct ConnectorCredentials {
    pub first: std::sync::Arc<ConnectorSecretDocument>,
    pub live: std::sync::Arc<crate::credentials::ConnectorSecrets>,
    /// The accounts' concurrency budgets the connectors take places in.
    pub budgets: Budgets,
}

/// The concurrency budget of the ERP account and of the loyalty org, as
/// this container takes part in them (see [`crate::budget`]).
#[derive(Clone, Default)]
pub struct Budgets {
    pub erp: Option<std::sync::Arc<crate::budget::ConcurrencyBudget>>,
    pub loyalty: Option<std::sync::Arc<crate::budget::ConcurrencyBudget>>,
}

impl Budgets {
    /// `RETAILFLOW_ERP_BUDGET` (default 5: NetSuite's Standard tier, and
    /// Business Central's requests at once per user) and
    /// `RETAILFLOW_LOYALTY_BUDGET` (default 10): a base limit and an
    /// optional calendar, e.g. `5; Mon-Fri 08:00-18:00=2;
    /// 2026-12-31T18:00:00Z..2027-01-02T06:00:00Z=0`, over `slots`.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        slots: std::sync::Arc<dyn crate::ports::budget::BudgetSlots>,
        clock: crate::credentials::WallClock,
    ) -> Result<Self, ConfigError> {
        Self::build(var, slots, clock, false)
    }

    /// [`Self::from_env`] for a single process that holds every slot
    /// itself (the local app): nobody to leave slots to.
    pub fn single_process(
        var: impl Fn(&str) -> Option<String>,
        slots: std::sync::Arc<dyn crate::ports::budget::BudgetSlots>,
        clock: crate::credentials::WallClock,
    ) -> Result<Self, ConfigError> {
        Self::build(var, slots, clock, true)
    }

    fn build(
        var: impl Fn(&str) -> Option<String>,
        slots: std::sync::Arc<dyn crate::ports::budget::BudgetSlots>,
        clock: crate::credentials::WallClock,
        alone: bool,
    ) -> Result<Self, ConfigError> {
        use crate::budget::{BudgetCalendar, ConcurrencyBudget};
        let budget = |name: &str, account: &str, default: &str| {
            let text = var(name)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_string());
            let calendar = BudgetCalendar::parse(&text)
                .map_err(|e| ConfigError::BadSetting(format!("{name}: {e}")))?;
            let budget = ConcurrencyBudget::new(account, calendar, slots.clone(), clock.clone());
            Ok::<_, ConfigError>(std::sync::Arc::new(if alone {
                budget.alone()
            } else {
                budget
            }))
        };
        let erp = var("RETAILFLOW_ERP").unwrap_or_else(|| "netsuite".into());
        Ok(Budgets {
            erp: Some(budget("RETAILFLOW_ERP_BUDGET", &format!("erp:{erp}"), "5")?),
            loyalty: Some(budget(
                "RETAILFLOW_LOYALTY_BUDGET",
                "loyalty:salesforce",
                "10",
            )?),
        })
    }

    /// Gives back every slot held: at the end of each invocation.
    pub async fn release_all(&self) {
        for b in [&self.erp, &self.loyalty].into_iter().flatten() {
            b.release_all().await;
        }
    }
}

impl ConnectorCredentials {
    pub async fn read(
        live: std::sync::Arc<crate::credentials::ConnectorSecrets>,
    ) -> Result<Self, crate::resilience::ConnectorError> {
        Ok(ConnectorCredentials {
            first: live.current().await?,
            live,
            budgets: Budgets::default(),
        })
    }

    /// A document that never changes (tests, one-off commands).
    pub fn fixed(doc: ConnectorSecretDocument) -> Self {
        ConnectorCredentials {
            live: crate::credentials::ConnectorSecrets::fixed(&doc),
            first: std::sync::Arc::new(doc),
            budgets: Budgets::default(),
        }
    }

    /// The connectors built from these credentials take places in `budgets`.
    pub fn with_budgets(mut self, budgets: Budgets) -> Self {
        self.budgets = budgets;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_secrets_leave_sources_unconfigured() {
        let doc = WebhookSecretDocument::parse(
            r#"{"shopify_secret":"","shopify_previous_secret":"","adobe_public_keys":"","adobe_client_id":""}"#,
        )
        .unwrap();
        let c = doc.apply(IntakeConfig::default()).unwrap();
        assert!(c.shopify.is_none());
        assert!(c.adobe.is_none());
    }

    #[test]
    fn a_document_configures_both_sources() {
        let pem = include_str!("../../../events/dev-keys/adobe-public-1.pem");
        let json = serde_json::json!({
            "shopify_secret": "s1", "shopify_previous_secret": "s0",
            "adobe_public_keys": pem, "adobe_client_id": "client-1"
        });
        let c = WebhookSecretDocument::parse(&json.to_string())
            .unwrap()
            .apply(IntakeConfig::default())
            .unwrap();
        let s = c.shopify.unwrap();
        assert_eq!(s.current.expose(), "s1");
        assert_eq!(s.previous.unwrap().expose(), "s0");
        assert_eq!(c.adobe.unwrap().client_id, "client-1");
    }

    #[test]
    fn a_bad_key_is_a_configuration_error_not_an_open_door() {
        let json = r#"{"shopify_secret":"x","adobe_client_id":"c","adobe_public_keys":"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"}"#;
        let err = WebhookSecretDocument::parse(json)
            .unwrap()
            .apply(IntakeConfig::default());
        assert!(matches!(err, Err(ConfigError::BadAdobeKeys(_))));
    }

    #[test]
    fn adobe_keys_without_a_client_id_are_refused() {
        let pem = include_str!("../../../events/dev-keys/adobe-public-1.pem");
        let json = serde_json::json!({"adobe_public_keys": pem, "adobe_client_id": ""});
        let err = WebhookSecretDocument::parse(&json.to_string())
            .unwrap()
            .apply(IntakeConfig::default());
        assert!(matches!(
            err,
            Err(ConfigError::BadAdobeKeys(KeyError::NoClientId))
        ));
    }

    #[test]
    fn the_old_token_fields_are_refused_by_name_and_values_never_echoed() {
        let err = ConnectorSecretDocument::parse(r#"{"netsuite_token":"t1"}"#).unwrap_err();
        assert!(
            err.to_string().contains("store the `netsuite` credentials"),
            "{err}"
        );
        assert!(!err.to_string().contains("t1"), "{err}");
        // The template's placeholder of earlier releases still reads.
        ConnectorSecretDocument::parse(
            r#"{"netsuite_token": "", "business_central_token": "", "salesforce_token": "", "shopify_admin_tokens": {}, "adobe_commerce_token": ""}"#,
        )
        .unwrap();
        let err = ConnectorSecretDocument::parse(
            r#"{"business_central": {"tenant_id": "t", "client_id": "c", "client_secret": 7}}"#,
        )
        .unwrap_err();
        let err = ConnectorSecretDocument::parse(
            r#"{"business_central": {"tenant_id": "t", "client_id": "c", "client_secret": ["hunter2"]}}"#,
        )
        .unwrap_err()
        .to_string()
            + &err.to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn credentials_never_print() {
        let doc = ConnectorSecretDocument::parse(
            r#"{"salesforce": {"auth": "client_credentials", "client_id": "cid",
                "client_secret": "hunter2"},
                "shopify_admin_tokens": {"a.myshopify.com": "shpat_hunter2"},
                "business_central": {"tenant_id": "t", "client_id": "c", "client_secret": "hunter2"}}"#,
        )
        .unwrap();
        let shown = format!("{doc:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("a.myshopify.com"), "{shown}");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
