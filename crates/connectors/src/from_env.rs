//! The connectors a function or the local app uses, built from its
//! environment (endpoints, options) and the connector secret (credentials):
//! the ERP, its catalog and shipment feeds, the loyalty platform and the
//! shops. A platform whose endpoint or credentials are missing is a
//! configuration error naming what is missing, never a connector that fails
//! at its first call.

use super::auth::{AdobeAuth, EntraAuth, NetSuiteAuth, SalesforceAuth, ShopifyTokens};
use super::business_central::{BusinessCentralConfig, BusinessCentralErp};
use super::netsuite::{NetSuiteConfig, NetSuiteErp};
use super::salesforce::SalesforceLoyaltyConfig;
use std::sync::Arc;

use super::salesforce::SalesforceLoyalty;
use retailflow_core::config::{ConfigError, ConnectorCredentials};
use retailflow_core::model::Platform;
use retailflow_core::ports::erp::ErpConnector;
use retailflow_core::ports::loyalty::LoyaltyConnector;
use retailflow_core::ports::shop::EcommerceConnector;
use retailflow_core::resilience::{CircuitBreaker, Guarded};

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
/// `RETAILFLOW_NETSUITE_SUBSIDIARY`) plus the secret's `netsuite`.
pub fn netsuite_config(
    var: impl Fn(&str) -> Option<String>,
    creds: &ConnectorCredentials,
) -> Result<NetSuiteConfig, ConfigError> {
    if creds.first.netsuite.is_none() {
        return Err(ConfigError::Missing(
            "netsuite credentials in the connector secret".into(),
        ));
    }
    let base_url = required(&var, "RETAILFLOW_NETSUITE_BASE_URL")?;
    let trimmed = base_url.trim_end_matches('/');
    let rest_root = trimmed.strip_suffix("/record/v1").unwrap_or(trimmed);
    Ok(NetSuiteConfig {
        auth: NetSuiteAuth::from_secret(creds.live.clone(), rest_root)
            .with_budget(creds.budgets.erp.clone()),
        base_url,
        subsidiary_id: var("RETAILFLOW_NETSUITE_SUBSIDIARY").filter(|v| !v.is_empty()),
        timeout: timeout(&var),
    })
}

/// Business Central from `RETAILFLOW_BC_COMPANY_URL` and
/// `RETAILFLOW_BC_LOCAL_CURRENCY` plus the secret's `business_central`
/// (an Entra app; `RETAILFLOW_ENTRA_AUTHORITY` changes
/// `https://login.microsoftonline.com`, for national clouds).
pub fn business_central_config(
    var: impl Fn(&str) -> Option<String>,
    creds: &ConnectorCredentials,
) -> Result<BusinessCentralConfig, ConfigError> {
    if creds.first.business_central.is_none() {
        return Err(ConfigError::Missing(
            "business_central credentials in the connector secret".into(),
        ));
    }
    let authority = var("RETAILFLOW_ENTRA_AUTHORITY")
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "https://login.microsoftonline.com".into());
    let lcy = required(&var, "RETAILFLOW_BC_LOCAL_CURRENCY")?;
    Ok(BusinessCentralConfig {
        company_url: required(&var, "RETAILFLOW_BC_COMPANY_URL")?,
        auth: EntraAuth::from_secret(creds.live.clone(), &authority)
            .with_budget(creds.budgets.erp.clone()),
        local_currency: retailflow_core::money::Currency::from_code(&lcy)
            .map_err(|e| ConfigError::Missing(format!("RETAILFLOW_BC_LOCAL_CURRENCY ({e})")))?,
        timeout: timeout(&var),
    })
}

/// The ERP named by `RETAILFLOW_ERP` (`netsuite`, the default, or
/// `business_central`).
pub fn erp_from_env(
    var: impl Fn(&str) -> Option<String>,
    creds: &ConnectorCredentials,
) -> Result<std::sync::Arc<dyn ErpConnector>, ConfigError> {
    match var("RETAILFLOW_ERP").as_deref().unwrap_or("netsuite") {
        "netsuite" => Ok(std::sync::Arc::new(NetSuiteErp::new(netsuite_config(
            var, creds,
        )?))),
        "business_central" => Ok(std::sync::Arc::new(BusinessCentralErp::new(
            business_central_config(var, creds)?,
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
    creds: &ConnectorCredentials,
) -> Result<
    (
        std::sync::Arc<dyn retailflow_core::ports::erp::ErpCatalogFeed>,
        retailflow_core::money::Currency,
    ),
    ConfigError,
> {
    let currency = |fallback: &str| {
        let code = var("RETAILFLOW_CATALOG_CURRENCY")
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| fallback.to_string());
        retailflow_core::money::Currency::from_code(code.trim()).map_err(|e| {
            ConfigError::Missing(format!(
                "a known currency (RETAILFLOW_CATALOG_CURRENCY: {e})"
            ))
        })
    };
    match var("RETAILFLOW_ERP").as_deref().unwrap_or("netsuite") {
        "netsuite" => Ok((
            std::sync::Arc::new(NetSuiteErp::new(netsuite_config(&var, creds)?)),
            currency("USD")?,
        )),
        "business_central" => {
            let config = business_central_config(&var, creds)?;
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
    creds: &ConnectorCredentials,
) -> Result<Option<std::sync::Arc<dyn retailflow_core::ports::erp::ErpShipmentFeed>>, ConfigError> {
    match var("RETAILFLOW_ERP").as_deref().unwrap_or("netsuite") {
        "netsuite" => Ok(Some(std::sync::Arc::new(NetSuiteErp::new(
            netsuite_config(var, creds)?,
        )))),
        "business_central" => Ok(None),
        other => Err(ConfigError::Missing(format!(
            "a known ERP (RETAILFLOW_ERP={other:?})"
        ))),
    }
}

/// Salesforce Loyalty from `RETAILFLOW_SALESFORCE_BASE_URL`,
/// `RETAILFLOW_LOYALTY_PROGRAM` (and optional `RETAILFLOW_SALESFORCE_API_VERSION`,
/// `RETAILFLOW_LOYALTY_JOURNAL_SUBTYPE`) plus the secret's `salesforce`.
/// The base URL is the org's My Domain: its `/services/oauth2/token` issues
/// the tokens.
pub fn salesforce_config(
    var: impl Fn(&str) -> Option<String>,
    creds: &ConnectorCredentials,
) -> Result<SalesforceLoyaltyConfig, ConfigError> {
    if creds.first.salesforce.is_none() {
        return Err(ConfigError::Missing(
            "salesforce credentials in the connector secret".into(),
        ));
    }
    let base_url = required(&var, "RETAILFLOW_SALESFORCE_BASE_URL")?;
    Ok(SalesforceLoyaltyConfig {
        auth: SalesforceAuth::from_secret(creds.live.clone(), &base_url)
            .with_budget(creds.budgets.loyalty.clone()),
        base_url,
        api_version: var("RETAILFLOW_SALESFORCE_API_VERSION").unwrap_or_else(|| "v62.0".into()),
        program_name: required(&var, "RETAILFLOW_LOYALTY_PROGRAM")?,
        journal_subtype: var("RETAILFLOW_LOYALTY_JOURNAL_SUBTYPE")
            .unwrap_or_else(|| "Purchase".into()),
        debit_process: var("RETAILFLOW_LOYALTY_DEBIT_PROCESS")
            .unwrap_or_else(|| "DebitPointsFromMembers".into()),
        timeout: timeout(&var),
    })
}

/// A shop platform and the connector that records till returns in it.
pub type ShopConnector = (Platform, std::sync::Arc<dyn EcommerceConnector>);

/// The shops till returns are recorded in: Shopify (tokens per shop in the
/// secret; `RETAILFLOW_SHOPIFY_LOCATIONS` maps store ids to Shopify location
/// ids as `store-1=123,store-2=456`; `RETAILFLOW_SHOPIFY_DEFAULT_LOCATION`)
/// and Adobe Commerce when `RETAILFLOW_ADOBE_REST_BASE_URL` and its token are
/// set. A platform left out sends its till returns to review.
pub fn shops_from_env(
    var: impl Fn(&str) -> Option<String>,
    creds: &ConnectorCredentials,
) -> Result<Vec<ShopConnector>, ConfigError> {
    use super::shop::{
        AdobeCommerceAdmin, AdobeCommerceAdminConfig, ShopifyAdmin, ShopifyAdminConfig,
    };
    let mut shops: Vec<(Platform, std::sync::Arc<dyn EcommerceConnector>)> = Vec::new();
    if !creds.first.shopify_admin_tokens.is_empty() {
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
                tokens: ShopifyTokens::new(creds.live.clone()),
                locations,
                default_location: var("RETAILFLOW_SHOPIFY_DEFAULT_LOCATION")
                    .filter(|v| !v.is_empty()),
                timeout: timeout(&var),
            })),
        ));
    }
    let adobe_base = var("RETAILFLOW_ADOBE_REST_BASE_URL").filter(|v| !v.is_empty());
    if let (Some(base_url), true) = (adobe_base, creds.first.adobe_commerce.is_some()) {
        shops.push((
            Platform::AdobeCommerce,
            std::sync::Arc::new(AdobeCommerceAdmin::new(AdobeCommerceAdminConfig {
                base_url,
                auth: AdobeAuth::from_secret(creds.live.clone()),
                timeout: timeout(&var),
            })),
        ));
    }
    Ok(shops)
}

/// Salesforce Loyalty Management from its settings and the secret's
/// `salesforce` credentials.
pub fn loyalty_from_env(
    var: impl Fn(&str) -> Option<String>,
    creds: &ConnectorCredentials,
) -> Result<Arc<dyn LoyaltyConnector>, ConfigError> {
    Ok(Arc::new(SalesforceLoyalty::new(salesforce_config(
        var, creds,
    )?)))
}

/// The configured ERP behind its system's circuit breaker.
pub fn guarded_erp(
    var: impl Fn(&str) -> Option<String>,
    creds: &ConnectorCredentials,
) -> Result<Guarded<dyn ErpConnector>, ConfigError> {
    let erp = erp_from_env(var, creds)?;
    let breaker = CircuitBreaker::for_system(erp.system());
    Ok(Guarded::new(erp, breaker))
}

/// The loyalty platform behind its system's circuit breaker.
pub fn guarded_loyalty(
    var: impl Fn(&str) -> Option<String>,
    creds: &ConnectorCredentials,
) -> Result<Guarded<dyn LoyaltyConnector>, ConfigError> {
    let loyalty = loyalty_from_env(var, creds)?;
    let breaker = CircuitBreaker::for_system(loyalty.system());
    Ok(Guarded::new(loyalty, breaker))
}

/// A shop platform and its connector behind its breaker.
pub type GuardedShop = (Platform, Guarded<dyn EcommerceConnector>);

/// The shops with credentials (see [`shops_from_env`]), each behind its
/// system's circuit breaker.
pub fn guarded_shops(
    var: impl Fn(&str) -> Option<String>,
    creds: &ConnectorCredentials,
) -> Result<Vec<GuardedShop>, ConfigError> {
    Ok(shops_from_env(var, creds)?
        .into_iter()
        .map(|(platform, shop)| {
            let breaker = CircuitBreaker::for_system(shop.system());
            (platform, Guarded::new(shop, breaker))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use retailflow_core::config::ConnectorSecretDocument;

    #[tokio::test]
    async fn connectors_need_their_endpoint_and_credentials() {
        let doc = ConnectorSecretDocument::parse(
            r#"{"netsuite": {"auth": "tba", "account_id": "1234567_SB1",
                "consumer_key": "ck", "consumer_secret": "cs",
                "token_id": "ti", "token_secret": "ts"}}"#,
        )
        .unwrap();
        let creds = ConnectorCredentials::fixed(doc);
        let env = |k: &str| {
            (k == "RETAILFLOW_NETSUITE_BASE_URL")
                .then(|| "https://x/services/rest/record/v1".to_string())
        };
        netsuite_config(env, &creds).unwrap();
        assert!(matches!(
            netsuite_config(|_| None, &creds),
            Err(ConfigError::Missing(_))
        ));
        assert!(matches!(
            salesforce_config(env, &creds),
            Err(ConfigError::Missing(_))
        ));
    }
}
