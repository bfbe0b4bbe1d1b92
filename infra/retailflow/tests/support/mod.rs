//! What the local-app tests share: the sample events' dev keys and feeding
//! a sample webhook to the app as API Gateway would.
// Each test crate uses a part of this module.
#![allow(dead_code)]

use std::path::PathBuf;

use common::config::WebhookSecretDocument;
use common::intake::{IntakeConfig, WebhookRequest, WebhookRoute};
use retailflow::api_event::ApiRequest;
use retailflow::local_app::LocalApp;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn dev_config() -> IntakeConfig {
    let k = |n: &str| std::fs::read_to_string(repo().join("events/dev-keys").join(n)).unwrap();
    WebhookSecretDocument {
        shopify_secret: k("shopify-secret.txt"),
        shopify_previous_secret: String::new(),
        adobe_public_keys: k("adobe-public-1.pem") + &k("adobe-public-2.pem"),
        adobe_client_id: k("adobe-client-id.txt"),
        pos_store_secrets: serde_json::from_str(&k("pos-store-secrets.json")).unwrap(),
    }
    .apply(IntakeConfig::default())
    .unwrap()
}

pub fn sample(file: &str) -> ApiRequest {
    let event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("events").join(file)).unwrap())
            .unwrap();
    ApiRequest::from_event(&event).unwrap()
}

pub async fn deliver(app: &LocalApp, file: &str) -> u16 {
    let req = sample(file);
    app.intake
        .handle(WebhookRequest {
            route: WebhookRoute::from_path(&req.path).unwrap(),
            headers: &req.headers,
            body: &req.body,
            received_at: app.clock.now(),
            deadline: None,
        })
        .await
        .status
}
