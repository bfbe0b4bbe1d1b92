//! Where the intake's verification material comes from: environment
//! variables (local runs) or a Secrets Manager JSON document (AWS). An empty
//! value means "not configured", never "accept anything".

use serde::Deserialize;

use crate::connectors::business_central::{BusinessCentralConfig, BusinessCentralErp};
use crate::connectors::netsuite::{NetSuiteConfig, NetSuiteErp};
use crate::connectors::salesforce::SalesforceLoyaltyConfig;
use crate::connectors::EcommerceConnector;
use crate::connectors::ErpConnector;
use crate::intake::IntakeConfig;
use crate::webhook::{AdobeKeys, HmacSecrets, KeyError, Secret};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("webhook secret document is not valid JSON: {0}")]
    BadSecretDocument(String),
    #[error("adobe public keys: {0}")]
    BadAdobeKeys(#[from] KeyError),
    #[error("{0} is not configured")]
    Missing(String),
    #[error("{0}")]
    BadSetting(String),
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
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
        replay: crate::intake::freshness::ReplayPolicy::from_env(&var)
            .map_err(ConfigError::BadSetting)?,
        ..IntakeConfig::default()
    };
    doc.apply(config)
}

/// Tokens for the systems of record, from the `ConnectorSecrets` secret.
/// A blank token means the connector is not configured.
#[derive(Debug, Default, Deserialize)]
pub struct ConnectorSecretDocument {
    #[serde(default)]
    pub netsuite_token: String,
    #[serde(default)]
    pub salesforce_token: String,
    #[serde(default)]
    pub business_central_token: String,
    /// Shopify Admin API access token per shop domain (till returns are
    /// recorded on the shop's order).
    #[serde(default)]
    pub shopify_admin_tokens: std::collections::BTreeMap<String, String>,
    /// Adobe Commerce integration access token.
    #[serde(default)]
    pub adobe_commerce_token: String,
}

impl ConnectorSecretDocument {
    pub fn parse(json: &str) -> Result<Self, ConfigError> {
        serde_json::from_str(json).map_err(|e| ConfigError::BadSecretDocument(e.to_string()))
    }
}

fn required(var: &impl Fn(&str) -> Option<String>, name: &str) -> Result<String, ConfigError> {
    var(name)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ConfigError::Missing(name.to_string()))
}

fn timeout(var: &impl Fn(&str) -> Option<String>) -> std::time::Duration {
    let ms = var("RETAILFLOW_CONNECTOR_TIMEOUT_MS")
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    std::time::Duration::from_millis(ms)
}

/// NetSuite from `RETAILFLOW_NETSUITE_BASE_URL` (and optional
/// `RETAILFLOW_NETSUITE_SUBSIDIARY`) plus the secret's token.
pub fn netsuite_config(
    var: impl Fn(&str) -> Option<String>,
    secrets: &ConnectorSecretDocument,
) -> Result<NetSuiteConfig, ConfigError> {
    if secrets.netsuite_token.trim().is_empty() {
        return Err(ConfigError::Missing(
            "netsuite_token in the connector secret".into(),
        ));
    }
    Ok(NetSuiteConfig {
        base_url: required(&var, "RETAILFLOW_NETSUITE_BASE_URL")?,
        access_token: Secret::new(secrets.netsuite_token.trim()),
        subsidiary_id: var("RETAILFLOW_NETSUITE_SUBSIDIARY").filter(|v| !v.is_empty()),
        timeout: timeout(&var),
    })
}

/// Business Central from `RETAILFLOW_BC_COMPANY_URL` and
/// `RETAILFLOW_BC_LOCAL_CURRENCY` plus the secret's token.
pub fn business_central_config(
    var: impl Fn(&str) -> Option<String>,
    secrets: &ConnectorSecretDocument,
) -> Result<BusinessCentralConfig, ConfigError> {
    if secrets.business_central_token.trim().is_empty() {
        return Err(ConfigError::Missing(
            "business_central_token in the connector secret".into(),
        ));
    }
    let lcy = required(&var, "RETAILFLOW_BC_LOCAL_CURRENCY")?;
    Ok(BusinessCentralConfig {
        company_url: required(&var, "RETAILFLOW_BC_COMPANY_URL")?,
        access_token: Secret::new(secrets.business_central_token.trim()),
        local_currency: crate::money::Currency::from_code(&lcy)
            .map_err(|e| ConfigError::Missing(format!("RETAILFLOW_BC_LOCAL_CURRENCY ({e})")))?,
        timeout: timeout(&var),
    })
}

/// The ERP named by `RETAILFLOW_ERP` (`netsuite`, the default, or
/// `business_central`).
pub fn erp_from_env(
    var: impl Fn(&str) -> Option<String>,
    secrets: &ConnectorSecretDocument,
) -> Result<std::sync::Arc<dyn ErpConnector>, ConfigError> {
    match var("RETAILFLOW_ERP").as_deref().unwrap_or("netsuite") {
        "netsuite" => Ok(std::sync::Arc::new(NetSuiteErp::new(netsuite_config(
            var, secrets,
        )?))),
        "business_central" => Ok(std::sync::Arc::new(BusinessCentralErp::new(
            business_central_config(var, secrets)?,
        ))),
        other => Err(ConfigError::Missing(format!(
            "a known ERP (RETAILFLOW_ERP={other:?})"
        ))),
    }
}

/// The configured ERP's item feed for the catalog sync (same variables and
/// secret as [`erp_from_env`]), with the price book's currency:
/// `RETAILFLOW_CATALOG_CURRENCY`, else Business Central's local currency,
/// else USD.
pub fn erp_catalog_from_env(
    var: impl Fn(&str) -> Option<String>,
    secrets: &ConnectorSecretDocument,
) -> Result<
    (
        std::sync::Arc<dyn crate::connectors::erp_catalog::ErpCatalogFeed>,
        crate::money::Currency,
    ),
    ConfigError,
> {
    let currency = |fallback: &str| {
        let code = var("RETAILFLOW_CATALOG_CURRENCY")
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| fallback.to_string());
        crate::money::Currency::from_code(code.trim()).map_err(|e| {
            ConfigError::Missing(format!(
                "a known currency (RETAILFLOW_CATALOG_CURRENCY: {e})"
            ))
        })
    };
    match var("RETAILFLOW_ERP").as_deref().unwrap_or("netsuite") {
        "netsuite" => Ok((
            std::sync::Arc::new(NetSuiteErp::new(netsuite_config(&var, secrets)?)),
            currency("USD")?,
        )),
        "business_central" => {
            let config = business_central_config(&var, secrets)?;
            let local = config.local_currency.code().to_string();
            Ok((
                std::sync::Arc::new(BusinessCentralErp::new(config)),
                currency(&local)?,
            ))
        }
        other => Err(ConfigError::Missing(format!(
            "a known ERP (RETAILFLOW_ERP={other:?})"
        ))),
    }
}

/// The configured ERP's shipment feed for the fulfillment sync; `None` for
/// an ERP whose shipments retailflow does not read (Business Central).
pub fn erp_shipments_from_env(
    var: impl Fn(&str) -> Option<String>,
    secrets: &ConnectorSecretDocument,
) -> Result<
    Option<std::sync::Arc<dyn crate::connectors::erp_shipments::ErpShipmentFeed>>,
    ConfigError,
> {
    match var("RETAILFLOW_ERP").as_deref().unwrap_or("netsuite") {
        "netsuite" => Ok(Some(std::sync::Arc::new(NetSuiteErp::new(
            netsuite_config(var, secrets)?,
        )))),
        "business_central" => Ok(None),
        other => Err(ConfigError::Missing(format!(
            "a known ERP (RETAILFLOW_ERP={other:?})"
        ))),
    }
}

/// Salesforce Loyalty from `RETAILFLOW_SALESFORCE_BASE_URL`,
/// `RETAILFLOW_LOYALTY_PROGRAM` (and optional `RETAILFLOW_SALESFORCE_API_VERSION`,
/// `RETAILFLOW_LOYALTY_JOURNAL_SUBTYPE`) plus the secret's token.
pub fn salesforce_config(
    var: impl Fn(&str) -> Option<String>,
    secrets: &ConnectorSecretDocument,
) -> Result<SalesforceLoyaltyConfig, ConfigError> {
    if secrets.salesforce_token.trim().is_empty() {
        return Err(ConfigError::Missing(
            "salesforce_token in the connector secret".into(),
        ));
    }
    Ok(SalesforceLoyaltyConfig {
        base_url: required(&var, "RETAILFLOW_SALESFORCE_BASE_URL")?,
        api_version: var("RETAILFLOW_SALESFORCE_API_VERSION").unwrap_or_else(|| "v62.0".into()),
        program_name: required(&var, "RETAILFLOW_LOYALTY_PROGRAM")?,
        journal_subtype: var("RETAILFLOW_LOYALTY_JOURNAL_SUBTYPE")
            .unwrap_or_else(|| "Purchase".into()),
        debit_process: var("RETAILFLOW_LOYALTY_DEBIT_PROCESS")
            .unwrap_or_else(|| "DebitPointsFromMembers".into()),
        access_token: Secret::new(secrets.salesforce_token.trim()),
        timeout: timeout(&var),
    })
}

/// A shop platform and the connector that records till returns in it.
pub type ShopConnector = (
    crate::model::Platform,
    std::sync::Arc<dyn EcommerceConnector>,
);

/// The shops till returns are recorded in: Shopify (tokens per shop in the
/// secret; `RETAILFLOW_SHOPIFY_LOCATIONS` maps store ids to Shopify location
/// ids as `store-1=123,store-2=456`; `RETAILFLOW_SHOPIFY_DEFAULT_LOCATION`)
/// and Adobe Commerce when `RETAILFLOW_ADOBE_REST_BASE_URL` and its token are
/// set. A platform left out sends its till returns to review.
pub fn shops_from_env(
    var: impl Fn(&str) -> Option<String>,
    secrets: &ConnectorSecretDocument,
) -> Result<Vec<ShopConnector>, ConfigError> {
    use crate::connectors::shop::{
        AdobeCommerceAdmin, AdobeCommerceAdminConfig, ShopifyAdmin, ShopifyAdminConfig,
    };
    use crate::model::Platform;
    let mut shops: Vec<(Platform, std::sync::Arc<dyn EcommerceConnector>)> = Vec::new();
    if !secrets.shopify_admin_tokens.is_empty() {
        let mut locations = std::collections::BTreeMap::new();
        for pair in var("RETAILFLOW_SHOPIFY_LOCATIONS")
            .unwrap_or_default()
            .split(',')
            .filter(|p| !p.trim().is_empty())
        {
            let (store, location) = pair.split_once('=').ok_or_else(|| {
                ConfigError::Missing(format!(
                    "store=location in RETAILFLOW_SHOPIFY_LOCATIONS, not {pair:?}"
                ))
            })?;
            locations.insert(store.trim().to_string(), location.trim().to_string());
        }
        shops.push((
            Platform::Shopify,
            std::sync::Arc::new(ShopifyAdmin::new(ShopifyAdminConfig {
                base_url: None,
                api_version: var("RETAILFLOW_SHOPIFY_API_VERSION")
                    .unwrap_or_else(|| "2024-10".into()),
                access_tokens: secrets
                    .shopify_admin_tokens
                    .iter()
                    .map(|(shop, t)| (shop.clone(), Secret::new(t.trim())))
                    .collect(),
                default_token: None,
                locations,
                default_location: var("RETAILFLOW_SHOPIFY_DEFAULT_LOCATION")
                    .filter(|v| !v.is_empty()),
                timeout: timeout(&var),
            })),
        ));
    }
    let adobe_base = var("RETAILFLOW_ADOBE_REST_BASE_URL").filter(|v| !v.is_empty());
    if let (Some(base_url), false) = (adobe_base, secrets.adobe_commerce_token.trim().is_empty()) {
        shops.push((
            Platform::AdobeCommerce,
            std::sync::Arc::new(AdobeCommerceAdmin::new(AdobeCommerceAdminConfig {
                base_url,
                access_token: Secret::new(secrets.adobe_commerce_token.trim()),
                timeout: timeout(&var),
            })),
        ));
    }
    Ok(shops)
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
        let pem = include_str!("../../events/dev-keys/adobe-public-1.pem");
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
        let pem = include_str!("../../events/dev-keys/adobe-public-1.pem");
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
    fn connectors_need_their_endpoint_and_token() {
        let secrets =
            ConnectorSecretDocument::parse(r#"{"netsuite_token":"t1","salesforce_token":""}"#)
                .unwrap();
        let env = |k: &str| {
            (k == "RETAILFLOW_NETSUITE_BASE_URL")
                .then(|| "https://x/services/rest/record/v1".to_string())
        };
        let ns = netsuite_config(env, &secrets).unwrap();
        assert_eq!(ns.access_token.expose(), "t1");
        assert!(matches!(
            netsuite_config(|_| None, &secrets),
            Err(ConfigError::Missing(_))
        ));
        assert!(matches!(
            salesforce_config(env, &secrets),
            Err(ConfigError::Missing(_))
        ));
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
