//! `retailflow send`: event files to a running `retailflow serve`, as the
//! platforms would deliver them now. The samples were recorded at a fixed
//! time and a serve on the real clock refuses them as stale, so each is
//! stamped anew with the dev keys: Shopify's `X-Shopify-Triggered-At`, a
//! till's or storefront's timestamp and nonce (signed again), a checkout
//! session token's times, an Adobe event's `time` in its body. Only what the
//! dev keys signed is signed again: a tampered sample stays tampered and is
//! refused, as it is there to be.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue};
use retailflow::data_dir::serve_url;
use retailflow::dev_keys::{CheckoutSigners, DevSigners};
use retailflow_core::mappers::pos;
use retailflow_core::webhook::{shopify_signature, Secret};

use crate::api_event::ApiRequest;
use crate::commands::{print_refusals, read, read_events, Refusal};

/// What signs a re-stamped request: the dev keys' secrets by sender.
struct Restamp {
    shopify_secret: Secret,
    /// The dev keys' Adobe I/O signing keys (PEM), in header order.
    adobe_private: [String; 2],
    /// Till (`x-retailflow-store`) and storefront (`x-retailflow-storefront`)
    /// ids and their secrets.
    stamped_senders: BTreeMap<String, String>,
}

impl Restamp {
    fn read(dev_keys: &Path) -> anyhow::Result<Self> {
        retailflow::dev_keys::require(dev_keys)?;
        let signers = DevSigners::read(dev_keys)?;
        let mut stamped_senders: BTreeMap<String, String> =
            serde_json::from_str(&read(&dev_keys.join("pos-store-secrets.json"))?)
                .context("pos-store-secrets.json is not a JSON object of store secrets")?;
        if let Ok(checkout) = CheckoutSigners::read(dev_keys) {
            stamped_senders.insert(checkout.storefront.0, checkout.storefront.1);
        }
        Ok(Restamp {
            shopify_secret: Secret::new(signers.shopify_secret.trim()),
            adobe_private: signers.adobe_private.clone(),
            stamped_senders,
        })
    }

    /// An Adobe delivery dated `now` in its body and signed again, when the
    /// dev keys signed it (RSA PKCS#1 v1.5 signs deterministically: the same
    /// body and key give the same signature).
    fn adobe(&self, req: &mut ApiRequest, now: DateTime<Utc>) {
        use retailflow_core::webhook::adobe_signature;
        let Ok(body) = std::str::from_utf8(&req.body) else {
            return;
        };
        let signed_by_us = self.adobe_private.iter().enumerate().all(|(i, key)| {
            let name = format!("x-adobe-digital-signature-{}", i + 1);
            let sent = req.headers.get(&name).and_then(|v| v.to_str().ok());
            adobe_signature(key, body.as_bytes()).ok().as_deref() == sent
        });
        if !signed_by_us {
            return;
        }
        let dated = crate::commands::dated_adobe_body(body, now);
        for (i, key) in self.adobe_private.iter().enumerate() {
            let Ok(sig) = adobe_signature(key, dated.as_bytes()) else {
                return;
            };
            if let Ok(v) = HeaderValue::from_str(&sig) {
                let name = format!("x-adobe-digital-signature-{}", i + 1);
                if let Ok(name) = http::HeaderName::from_bytes(name.as_bytes()) {
                    req.headers.insert(name, v);
                }
            }
        }
        req.body = dated.into_bytes();
    }

    /// The request's headers as sent at `now`.
    fn apply(&self, req: &mut ApiRequest, now: DateTime<Utc>) {
        if req.path == "/webhooks/adobe" {
            self.adobe(req, now);
            return;
        }
        let set = |h: &mut HeaderMap, name: &'static str, value: String| {
            // Timestamps, tokens and base64 signatures are visible ASCII.
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        };
        let header = |h: &HeaderMap, name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        // Shopify signs the body only; the delivery time is a plain header.
        if req.headers.contains_key("x-shopify-triggered-at") {
            set(
                &mut req.headers,
                "x-shopify-triggered-at",
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
        }
        if let Some(token) = header(&req.headers, "authorization")
            .and_then(|a| a.strip_prefix("Bearer ").map(str::to_string))
        {
            let restamped = retailflow_core::checkout::auth::restamped_session_token(
                &self.shopify_secret,
                &token,
                now,
            );
            if let Some(t) = restamped {
                set(&mut req.headers, "authorization", format!("Bearer {t}"));
            }
        }
        let sender = header(&req.headers, pos::STORE_HEADER).or_else(|| {
            header(
                &req.headers,
                retailflow_core::checkout::auth::STOREFRONT_HEADER,
            )
        });
        let stamp = (
            header(&req.headers, pos::TIMESTAMP_HEADER),
            header(&req.headers, pos::NONCE_HEADER),
            header(&req.headers, pos::SIGNATURE_HEADER),
        );
        if let (Some(sender), (Some(ts), Some(nonce), Some(sig))) = (sender, stamp) {
            let Some(secret) = self.stamped_senders.get(&sender) else {
                return;
            };
            let secret = Secret::new(secret.as_str());
            let signed_by_us =
                shopify_signature(&secret, &pos::signing_input(&ts, &nonce, &req.body)) == sig;
            if signed_by_us {
                let (ts, nonce) = (
                    now.timestamp().to_string(),
                    uuid::Uuid::new_v4().to_string(),
                );
                let sig = shopify_signature(&secret, &pos::signing_input(&ts, &nonce, &req.body));
                set(&mut req.headers, pos::TIMESTAMP_HEADER, ts);
                set(&mut req.headers, pos::NONCE_HEADER, nonce);
                set(&mut req.headers, pos::SIGNATURE_HEADER, sig);
            }
        }
    }
}

/// Where to send: `--to`, else the serve running on the data directory.
async fn target(to: Option<&str>, data_dir: &Path) -> anyhow::Result<String> {
    if let Some(to) = to {
        return Ok(to.trim_end_matches('/').to_string());
    }
    let running = match serve_url(data_dir) {
        Some(url) if crate::local_target::serves(&url, data_dir).await => Some(url),
        _ => None,
    };
    running.with_context(|| {
        format!(
            "no retailflow serve is running on {dir}: start `retailflow serve --data-dir {dir}` or pass --to <its URL>",
            dir = data_dir.display()
        )
    })
}

/// Posts every event file to the serve; `Ok(false)` when one it should
/// have taken was refused (or one there to be refused was taken).
pub async fn send(
    paths: &[PathBuf],
    to: Option<&str>,
    dev_keys: &Path,
    json: bool,
    data_dir: &Path,
) -> anyhow::Result<bool> {
    let (events, expected) = read_events(paths)?;
    let restamp = Restamp::read(dev_keys)?;
    let url = target(to, data_dir).await?;
    let client = reqwest::Client::new();
    let (mut fed, mut refusals) = (Vec::new(), Vec::new());
    for (name, event) in events {
        fed.push(name.clone());
        let mut req = match ApiRequest::from_event(&event) {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("{e:#}; `retailflow run` feeds EventBridge and SQS events");
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"file": name, "status": null, "error": reason})
                    );
                } else {
                    println!("{name:<60} not sent: {reason}");
                }
                refusals.push(Refusal {
                    file: name,
                    status: None,
                    reason,
                });
                continue;
            }
        };
        restamp.apply(&mut req, Utc::now());
        let resp = client
            .post(format!("{url}{}", req.path))
            .headers(req.headers)
            .body(req.body)
            .send()
            .await
            .with_context(|| format!("cannot reach retailflow serve at {url}: is it running?"))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        let line = format!("{status} {body}");
        if json {
            let body: serde_json::Value =
                serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
            println!(
                "{}",
                serde_json::json!({"file": name, "status": status, "body": body})
            );
        } else {
            println!("{name:<60} {line}");
        }
        if let Some(r) = Refusal::of(&name, &line) {
            refusals.push(r);
        }
    }
    let (on_purpose, not_taken) = expected.judge(&fed, &refusals);
    if !json {
        print_refusals(&on_purpose, &not_taken, &refusals);
        println!("sent to {url}: `retailflow trace <order key>` shows where each order is");
    }
    Ok(not_taken.is_empty())
}
