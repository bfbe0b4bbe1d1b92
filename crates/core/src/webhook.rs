//! Webhook signature checks, run on the raw body bytes before anything is parsed.
//!
//! - Shopify: `X-Shopify-Hmac-Sha256` is base64(HMAC-SHA256(app secret, body)),
//!   compared in constant time. During a secret rotation Shopify signs with the
//!   oldest unrevoked secret, so the current and the previous secret are both
//!   accepted.
//! - Adobe I/O Events: `x-adobe-digital-signature-1` and `-2` are base64
//!   RSA-SHA256 (PKCS#1 v1.5) signatures of the body by two Adobe key pairs;
//!   one valid signature from a configured public key is enough.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

pub const SHOPIFY_HMAC_HEADER: &str = "x-shopify-hmac-sha256";
pub const ADOBE_SIGNATURE_HEADERS: [&str; 2] =
    ["x-adobe-digital-signature-1", "x-adobe-digital-signature-2"];

/// Why a delivery's signature was refused. Never retryable; answered 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing signature header {0}")]
    MissingHeader(&'static str),
    #[error("signature header {0} is not valid base64")]
    Malformed(&'static str),
    #[error("signature does not match the body")]
    Mismatch,
    #[error("no verification key is configured for this source")]
    NotConfigured,
}

/// Why verification keys could not be loaded: a deployment error, not an input error.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no PEM public key found")]
    NoKey,
    #[error("an Adobe client id is required with the Adobe public keys (events for other clients carry valid signatures too)")]
    NoClientId,
    #[error("public key {index} is not a valid RSA SPKI PEM: {reason}")]
    BadPublicKey { index: usize, reason: String },
    #[error("private key is not a valid PKCS#8 PEM: {0}")]
    BadPrivateKey(String),
}

/// A secret value that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// HMAC-SHA256 secrets accepted right now (Shopify app secret, a store's
/// point-of-sale secret): the current one and, during a rotation, the previous.
#[derive(Debug, Clone)]
pub struct HmacSecrets {
    pub current: Secret,
    /// Still accepted during a rotation window.
    pub previous: Option<Secret>,
}

impl HmacSecrets {
    /// Checks the Shopify header (`X-Shopify-Hmac-Sha256`).
    pub fn verify(&self, hmac_header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        self.verify_header(SHOPIFY_HMAC_HEADER, hmac_header, body)
    }

    /// Checks a base64 HMAC-SHA256 signature carried in header `name`.
    pub fn verify_header(
        &self,
        name: &'static str,
        value: Option<&str>,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let header = value
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or(SignatureError::MissingHeader(name))?;
        let expected = B64
            .decode(header)
            .map_err(|_| SignatureError::Malformed(name))?;
        let candidates = std::iter::once(&self.current).chain(self.previous.as_ref());
        for secret in candidates.filter(|s| !s.expose().is_empty()) {
            let mut mac = hmac_for(secret);
            mac.update(body);
            // verify_slice compares in constant time.
            if mac.verify_slice(&expected).is_ok() {
                return Ok(());
            }
        }
        Err(SignatureError::Mismatch)
    }
}

fn hmac_for(secret: &Secret) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// The `X-Shopify-Hmac-Sha256` value for a body: for simulators, samples and tests.
pub fn shopify_signature(secret: &Secret, body: &[u8]) -> String {
    let mut mac = hmac_for(secret);
    mac.update(body);
    B64.encode(mac.finalize().into_bytes())
}

/// The Adobe I/O Events public keys accepted, and optionally the client id the
/// events must be addressed to (`recipient_client_id`).
#[derive(Debug, Clone)]
pub struct AdobeKeys {
    keys: Vec<RsaPublicKey>,
    /// Adobe signs every customer's events with the same keys, so the
    /// `recipient_client_id` check is what makes an event ours: required.
    pub client_id: String,
}

impl AdobeKeys {
    /// Reads every `BEGIN PUBLIC KEY` block in `pem` (one text may hold several).
    pub fn from_pem(pem: &str, client_id: impl Into<String>) -> Result<Self, KeyError> {
        let client_id = client_id.into().trim().to_string();
        if client_id.is_empty() {
            return Err(KeyError::NoClientId);
        }
        let mut keys = Vec::new();
        let marker = "-----BEGIN PUBLIC KEY-----";
        for (index, block) in pem.split(marker).skip(1).enumerate() {
            let text = format!("{marker}{block}");
            let key = RsaPublicKey::from_public_key_pem(text.trim()).map_err(|e| {
                KeyError::BadPublicKey {
                    index,
                    reason: e.to_string(),
                }
            })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(KeyError::NoKey);
        }
        Ok(AdobeKeys { keys, client_id })
    }

    /// Accepts the delivery when either signature verifies under any configured key.
    pub fn verify(&self, signatures: [Option<&str>; 2], body: &[u8]) -> Result<(), SignatureError> {
        if self.keys.is_empty() {
            return Err(SignatureError::NotConfigured);
        }
        let present: Vec<&str> = signatures
            .into_iter()
            .flatten()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        if present.is_empty() {
            return Err(SignatureError::MissingHeader(ADOBE_SIGNATURE_HEADERS[0]));
        }
        let mut any_decoded = false;
        for value in present {
            let Ok(bytes) = B64.decode(value) else {
                continue;
            };
            any_decoded = true;
            let Ok(sig) = Signature::try_from(bytes.as_slice()) else {
                continue;
            };
            for key in &self.keys {
                if VerifyingKey::<Sha256>::new(key.clone())
                    .verify(body, &sig)
                    .is_ok()
                {
                    return Ok(());
                }
            }
        }
        if any_decoded {
            Err(SignatureError::Mismatch)
        } else {
            Err(SignatureError::Malformed(ADOBE_SIGNATURE_HEADERS[0]))
        }
    }
}

/// Signs a body as Adobe I/O Events does (base64 RSA-SHA256): for simulators,
/// samples and tests, with a PKCS#8 PEM private key.
pub fn adobe_signature(private_key_pem: &str, body: &[u8]) -> Result<String, KeyError> {
    let key = RsaPrivateKey::from_pkcs8_pem(private_key_pem)
        .map_err(|e| KeyError::BadPrivateKey(e.to_string()))?;
    let sig = SigningKey::<Sha256>::new(key).sign(body);
    Ok(B64.encode(sig.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":820982911946154508,"total_price":"128.08"}"#;
    const PRIV1: &str = include_str!("../../../events/dev-keys/adobe-private-1.pem");
    const PRIV2: &str = include_str!("../../../events/dev-keys/adobe-private-2.pem");
    const PUB1: &str = include_str!("../../../events/dev-keys/adobe-public-1.pem");
    const PUB2: &str = include_str!("../../../events/dev-keys/adobe-public-2.pem");

    fn secrets(previous: Option<&str>) -> HmacSecrets {
        HmacSecrets {
            current: Secret::new("new-secret"),
            previous: previous.map(Secret::new),
        }
    }

    #[test]
    fn shopify_signature_matches_a_known_vector() {
        // RFC 4231-style check of the construction: base64(HMAC-SHA256(key, body)).
        let sig = shopify_signature(
            &Secret::new("key"),
            b"The quick brown fox jumps over the lazy dog",
        );
        assert_eq!(sig, "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg=");
    }

    #[test]
    fn shopify_accepts_the_current_secret() {
        let sig = shopify_signature(&Secret::new("new-secret"), BODY);
        assert_eq!(secrets(None).verify(Some(&sig), BODY), Ok(()));
    }

    #[test]
    fn shopify_accepts_the_previous_secret_during_rotation() {
        let sig = shopify_signature(&Secret::new("old-secret"), BODY);
        assert_eq!(secrets(Some("old-secret")).verify(Some(&sig), BODY), Ok(()));
        assert_eq!(
            secrets(None).verify(Some(&sig), BODY),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn shopify_refuses_a_wrong_secret_a_tampered_body_and_a_missing_header() {
        let wrong = shopify_signature(&Secret::new("someone-else"), BODY);
        assert_eq!(
            secrets(Some("old-secret")).verify(Some(&wrong), BODY),
            Err(SignatureError::Mismatch)
        );
        let sig = shopify_signature(&Secret::new("new-secret"), BODY);
        let tampered = br#"{"id":820982911946154508,"total_price":"1.08"}"#;
        assert_eq!(
            secrets(None).verify(Some(&sig), tampered),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            secrets(None).verify(None, BODY),
            Err(SignatureError::MissingHeader(SHOPIFY_HMAC_HEADER))
        );
        assert_eq!(
            secrets(None).verify(Some("  "), BODY),
            Err(SignatureError::MissingHeader(SHOPIFY_HMAC_HEADER))
        );
        assert_eq!(
            secrets(None).verify(Some("%%%"), BODY),
            Err(SignatureError::Malformed(SHOPIFY_HMAC_HEADER))
        );
    }

    #[test]
    fn shopify_an_empty_configured_secret_accepts_nothing() {
        let s = HmacSecrets {
            current: Secret::new(""),
            previous: None,
        };
        let sig = shopify_signature(&Secret::new(""), BODY);
        assert_eq!(s.verify(Some(&sig), BODY), Err(SignatureError::Mismatch));
    }

    fn adobe_keys() -> AdobeKeys {
        AdobeKeys::from_pem(&format!("{PUB1}\n{PUB2}"), "client-1").unwrap()
    }

    #[test]
    fn adobe_accepts_either_signature() {
        let s1 = adobe_signature(PRIV1, BODY).unwrap();
        let s2 = adobe_signature(PRIV2, BODY).unwrap();
        assert_eq!(adobe_keys().verify([Some(&s1), Some(&s2)], BODY), Ok(()));
        assert_eq!(
            adobe_keys().verify([Some("garbage"), Some(&s2)], BODY),
            Ok(())
        );
        assert_eq!(adobe_keys().verify([Some(&s1), None], BODY), Ok(()));
        assert_eq!(adobe_keys().verify([None, Some(&s2)], BODY), Ok(()));
    }

    #[test]
    fn adobe_refuses_unknown_keys_tampered_bodies_and_missing_headers() {
        let only_key1 = AdobeKeys::from_pem(PUB1, "client-1").unwrap();
        let s2 = adobe_signature(PRIV2, BODY).unwrap();
        assert_eq!(
            only_key1.verify([None, Some(&s2)], BODY),
            Err(SignatureError::Mismatch)
        );
        let s1 = adobe_signature(PRIV1, BODY).unwrap();
        assert_eq!(
            adobe_keys().verify([Some(&s1), None], b"{}"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            adobe_keys().verify([None, None], BODY),
            Err(SignatureError::MissingHeader(ADOBE_SIGNATURE_HEADERS[0]))
        );
        assert_eq!(
            adobe_keys().verify([Some("%%%"), None], BODY),
            Err(SignatureError::Malformed(ADOBE_SIGNATURE_HEADERS[0]))
        );
    }

    #[test]
    fn adobe_keys_must_be_present_and_valid() {
        assert!(matches!(AdobeKeys::from_pem("", "c"), Err(KeyError::NoKey)));
        assert!(matches!(
            AdobeKeys::from_pem(PUB1, " "),
            Err(KeyError::NoClientId)
        ));
        assert!(matches!(
            AdobeKeys::from_pem(
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
                "c"
            ),
            Err(KeyError::BadPublicKey { .. })
        ));
    }
}
