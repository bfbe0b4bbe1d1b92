//! Where the intake's verification material comes from: environment
//! variables (local runs) or a Secrets Manager JSON document (AWS). An empty
//! value means "not configured", never "accept anything".

use serde::Deserialize;

use crate::intake::IntakeConfig;
use crate::webhook::{AdobeKeys, KeyError, Secret, ShopifySecrets};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("webhook secret document is not valid JSON: {0}")]
    BadSecretDocument(String),
    #[error("adobe public keys: {0}")]
    BadAdobeKeys(#[from] KeyError),
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
}

impl WebhookSecretDocument {
    pub fn parse(json: &str) -> Result<Self, ConfigError> {
        serde_json::from_str(json).map_err(|e| ConfigError::BadSecretDocument(e.to_string()))
    }

    /// Applies the document to a config; blank entries leave a source unconfigured.
    pub fn apply(self, mut config: IntakeConfig) -> Result<IntakeConfig, ConfigError> {
        let some = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        config.shopify = some(self.shopify_secret).map(|current| ShopifySecrets {
            current: Secret::new(current),
            previous: some(self.shopify_previous_secret).map(Secret::new),
        });
        config.adobe = match some(self.adobe_public_keys) {
            Some(pem) => Some(AdobeKeys::from_pem(&pem, self.adobe_client_id)?),
            None => None,
        };
        Ok(config)
    }
}

/// Reads `RETAILFLOW_SHOPIFY_SECRET`, `RETAILFLOW_SHOPIFY_PREVIOUS_SECRET`,
/// `RETAILFLOW_ADOBE_PUBLIC_KEYS` (comma-separated PEM file paths),
/// `RETAILFLOW_ADOBE_CLIENT_ID` and `RETAILFLOW_ADOBE_SHOP` through `var`.
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
    };
    let config = IntakeConfig {
        adobe_shop: var("RETAILFLOW_ADOBE_SHOP").filter(|s| !s.trim().is_empty()),
        ..IntakeConfig::default()
    };
    doc.apply(config)
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
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
