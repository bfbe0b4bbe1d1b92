//! The dev keys the samples in `events/` are signed with (`events/dev-keys`):
//! the intake's verification config for local runs, and the private halves
//! the chaos workload signs its deliveries with.

use std::path::Path;

use anyhow::Context;
use common::config::WebhookSecretDocument;
use common::intake::IntakeConfig;

/// The intake config that accepts what the dev keys sign.
pub fn intake_config(dev_keys: &Path) -> anyhow::Result<IntakeConfig> {
    let opt = |name: &str| std::fs::read_to_string(dev_keys.join(name)).unwrap_or_default();
    let mut pem = String::new();
    for n in 1..=2 {
        pem.push_str(&opt(&format!("adobe-public-{n}.pem")));
    }
    let doc = WebhookSecretDocument {
        shopify_secret: opt("shopify-secret.txt"),
        shopify_previous_secret: opt("shopify-previous-secret.txt"),
        adobe_public_keys: pem,
        adobe_client_id: opt("adobe-client-id.txt"),
        pos_store_secrets: serde_json::from_str(&opt("pos-store-secrets.json")).unwrap_or_default(),
    };
    Ok(doc.apply(IntakeConfig::default())?)
}

/// What the dev keys sign with.
pub struct DevSigners {
    pub shopify_secret: String,
    pub adobe_private: [String; 2],
    /// Point-of-sale store id and its secret.
    pub pos_store: (String, String),
}

impl DevSigners {
    pub fn read(dev_keys: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            std::fs::read_to_string(dev_keys.join(name))
                .with_context(|| format!("reading {}", dev_keys.join(name).display()))
        };
        let stores: std::collections::BTreeMap<String, String> =
            serde_json::from_str(&read("pos-store-secrets.json")?)?;
        let pos_store = stores
            .into_iter()
            .next()
            .context("no point-of-sale store in pos-store-secrets.json")?;
        Ok(DevSigners {
            shopify_secret: read("shopify-secret.txt")?,
            adobe_private: [read("adobe-private-1.pem")?, read("adobe-private-2.pem")?],
            pos_store,
        })
    }
}
