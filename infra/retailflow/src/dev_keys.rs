//! The dev keys the samples in `events/` are signed with (`events/dev-keys`):
//! the intake's verification config for local runs, and the private halves
//! the chaos workload signs its deliveries with.

use std::path::Path;

use anyhow::Context;
use retailflow_core::checkout::auth::{CheckoutAuthConfig, CheckoutSecretDocument};
use retailflow_core::config::WebhookSecretDocument;
use retailflow_core::intake::IntakeConfig;

/// Whether `dev_keys` holds the keys the samples are signed with: without
/// them every sample would be refused, so callers say so instead.
pub fn present(dev_keys: &Path) -> bool {
    dev_keys.join("shopify-secret.txt").is_file()
}

/// The dev keys, or an error that says where they were looked for and how
/// to point at them.
pub fn require(dev_keys: &Path) -> anyhow::Result<()> {
    if present(dev_keys) {
        return Ok(());
    }
    anyhow::bail!(
        "no dev keys in {} (the samples are signed with them): run from the repository root or pass --dev-keys <repository>/events/dev-keys",
        dev_keys.display()
    )
}

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

/// Checkout's keys in the dev keys: the Shopify app's client secret (the
/// webhooks' `shopify-secret.txt`, the previous one too) and
/// `checkout-auth.json` (client id, shop domains, storefront secrets: the
/// webhook secret document's checkout fields).
fn checkout_document(dev_keys: &Path) -> anyhow::Result<CheckoutSecretDocument> {
    let path = dev_keys.join("checkout-auth.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut doc = CheckoutSecretDocument::parse(&text)?;
    let opt = |name: &str| std::fs::read_to_string(dev_keys.join(name)).unwrap_or_default();
    doc.shopify_secret = opt("shopify-secret.txt");
    doc.shopify_previous_secret = opt("shopify-previous-secret.txt");
    Ok(doc)
}

/// The checkout authentication that accepts what the dev keys sign.
pub fn checkout_auth(dev_keys: &Path) -> anyhow::Result<CheckoutAuthConfig> {
    Ok(checkout_document(dev_keys)?.apply(CheckoutAuthConfig::default()))
}

/// Checkout's authentication for local runs: the environment if it names
/// a Shopify secret (as the intake's), else the dev keys.
pub fn local_checkout_auth(dev_keys: &Path) -> anyhow::Result<CheckoutAuthConfig> {
    if std::env::var("RETAILFLOW_SHOPIFY_SECRET").is_ok() {
        return Ok(CheckoutAuthConfig::from_env(|k| std::env::var(k).ok())?);
    }
    checkout_auth(dev_keys)
}

/// What the dev keys sign checkout requests with: for samples and tests.
pub struct CheckoutSigners {
    /// The Shopify app's client secret (session tokens).
    pub shopify_secret: String,
    /// The session tokens' `aud`.
    pub client_id: String,
    /// The first shop whose checkouts may call.
    pub shop: String,
    /// A storefront id and its secret.
    pub storefront: (String, String),
}

impl CheckoutSigners {
    pub fn read(dev_keys: &Path) -> anyhow::Result<Self> {
        let doc = checkout_document(dev_keys)?;
        Ok(CheckoutSigners {
            shopify_secret: doc.shopify_secret.trim().to_string(),
            client_id: doc.shopify_client_id.clone(),
            shop: doc
                .shopify_shop_domains
                .first()
                .cloned()
                .context("no shop in checkout-auth.json")?,
            storefront: doc
                .storefront_secrets
                .into_iter()
                .next()
                .context("no storefront in checkout-auth.json")?,
        })
    }
}
