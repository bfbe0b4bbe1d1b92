//! OAuth 1.0a request signing with HMAC-SHA256 (RFC 5849 with the SHA-256
//! MAC NetSuite Token-Based Authentication requires and Adobe Commerce
//! accepts). The signature base string (parameter sorting, double
//! percent-encoding, the query's place in it) is built by the
//! `oauth1-request` crate; this module only supplies the MAC it does not
//! ship, and reads an `Authorization: OAuth …` header back for the
//! simulators, which verify with the same code the connectors sign with.

use std::fmt::{self, Display, Write as _};
use std::num::NonZeroU64;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use oauth1_request::signature_method::{Sign, SignatureMethod};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;

/// RFC 5849 3.6: everything but ALPHA, DIGIT, `-`, `.`, `_`, `~` is encoded.
const OAUTH_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode(s: &str) -> String {
    utf8_percent_encode(s, OAUTH_ENCODE).to_string()
}

/// The `HMAC-SHA256` signature method.
#[derive(Clone, Copy, Debug, Default)]
pub struct HmacSha256;

pub struct HmacSha256Sign(Hmac<Sha256>);

/// The base64 MAC, percent-encoded as the header carries it.
pub struct HmacSha256Signature(String);

impl Display for HmacSha256Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl SignatureMethod for HmacSha256 {
    type Sign = HmacSha256Sign;

    fn sign_with(self, client_secret: &str, token_secret: Option<&str>) -> HmacSha256Sign {
        let key = format!(
            "{}&{}",
            encode(client_secret),
            encode(token_secret.unwrap_or(""))
        );
        // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
        let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        HmacSha256Sign(mac)
    }
}

struct MacWrite<'a>(&'a mut Hmac<Sha256>);

impl fmt::Write for MacWrite<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

impl Sign for HmacSha256Sign {
    type Signature = HmacSha256Signature;

    fn get_signature_method_name(&self) -> &'static str {
        "HMAC-SHA256"
    }

    fn request_method(&mut self, method: &str) {
        self.0.update(method.as_bytes());
        self.0.update(b"&");
    }

    fn uri<T: Display>(&mut self, uri: T) {
        // Writing into a MAC cannot fail.
        let _ = write!(MacWrite(&mut self.0), "{uri}&");
    }

    fn parameter<V: Display>(&mut self, key: &str, value: V) {
        self.0.update(key.as_bytes());
        self.0.update(b"%3D");
        let _ = write!(MacWrite(&mut self.0), "{value}");
    }

    fn delimiter(&mut self) {
        self.0.update(b"%26");
    }

    fn end(self) -> HmacSha256Signature {
        let mac = self.0.finalize().into_bytes();
        HmacSha256Signature(encode(
            &base64::engine::general_purpose::STANDARD.encode(mac),
        ))
    }
}

/// The four values an OAuth 1.0a integration is given.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuth1Credentials {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub token: String,
    pub token_secret: String,
}

impl fmt::Debug for OAuth1Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth1Credentials")
            .field("consumer_key", &self.consumer_key)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// The `Authorization` header for `method` on `url`: its query pairs are
/// signed, its fragment dropped; `realm` (NetSuite's account id) is sent
/// but, as RFC 5849 says, not signed.
pub fn authorization(
    creds: &OAuth1Credentials,
    method: &str,
    url: &url::Url,
    realm: Option<&str>,
    nonce: &str,
    timestamp: u64,
) -> String {
    let mut base = url.clone();
    base.set_query(None);
    base.set_fragment(None);
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let params = oauth1_request::ParameterList::new(pairs);
    let token = oauth1_request::Token::from_parts(
        creds.consumer_key.as_str(),
        creds.consumer_secret.as_str(),
        creds.token.as_str(),
        creds.token_secret.as_str(),
    );
    let mut builder = oauth1_request::Builder::with_token(token, HmacSha256);
    // NetSuite's and Adobe's examples send oauth_version; RFC 5849 allows it.
    builder
        .nonce(nonce)
        .timestamp(NonZeroU64::new(timestamp))
        .version(true);
    let header = builder.authorize(method, base.as_str(), &params);
    match realm {
        Some(realm) => match header.strip_prefix("OAuth ") {
            Some(rest) => format!("OAuth realm=\"{}\",{rest}", encode(realm)),
            None => header,
        },
        None => header,
    }
}

/// A fresh nonce: 32 random URL-safe characters.
pub fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// An `Authorization: OAuth …` header read back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OAuth1Header {
    pub realm: Option<String>,
    pub consumer_key: String,
    pub token: String,
    pub signature_method: String,
    pub timestamp: u64,
    pub nonce: String,
    pub signature: String,
}

/// Reads the header's parameters (values percent-decoded). `None` when it
/// is not an OAuth header or lacks a required parameter.
pub fn parse_header(value: &str) -> Option<OAuth1Header> {
    let rest = value.trim().strip_prefix("OAuth ")?;
    let mut h = OAuth1Header::default();
    let mut timestamp = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        let v = v.trim().strip_prefix('"')?.strip_suffix('"')?;
        let v = percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .ok()?
            .into_owned();
        match k.trim() {
            "realm" => h.realm = Some(v),
            "oauth_consumer_key" => h.consumer_key = v,
            "oauth_token" => h.token = v,
            "oauth_signature_method" => h.signature_method = v,
            "oauth_timestamp" => timestamp = v.parse().ok(),
            "oauth_nonce" => h.nonce = v,
            "oauth_signature" => h.signature = v,
            _ => {}
        }
    }
    h.timestamp = timestamp?;
    let complete = [&h.consumer_key, &h.token, &h.nonce, &h.signature]
        .iter()
        .all(|v| !v.is_empty());
    complete.then_some(h)
}

/// Whether `header` is a valid HMAC-SHA256 signature of `method` on `url`
/// by `creds` (compared in constant time). Timestamp window and nonce reuse
/// are the verifier's to judge.
pub fn verify(
    creds: &OAuth1Credentials,
    method: &str,
    url: &url::Url,
    header: &OAuth1Header,
) -> bool {
    if header.signature_method != "HMAC-SHA256"
        || header.consumer_key != creds.consumer_key
        || header.token != creds.token
    {
        return false;
    }
    let expected = authorization(
        creds,
        method,
        url,
        header.realm.as_deref(),
        &header.nonce,
        header.timestamp,
    );
    let Some(expected) = parse_header(&expected) else {
        return false;
    };
    let (a, b) = (expected.signature.as_bytes(), header.signature.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> OAuth1Credentials {
        OAuth1Credentials {
            consumer_key: "ck".into(),
            consumer_secret: "cs".into(),
            token: "tk".into(),
            token_secret: "ts".into(),
        }
    }

    #[test]
    fn a_signature_matches_the_rfc_5849_base_string_with_hmac_sha256() {
        // Base string and key built by hand from RFC 5849 3.4.1, MAC by the
        // hmac crate: the header must carry exactly this signature.
        let url = url::Url::parse("https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/query/v1/suiteql?limit=100&offset=0").unwrap();
        let h = authorization(
            &creds(),
            "POST",
            &url,
            Some("1234567_SB1"),
            "abc123",
            1_700_000_000,
        );
        assert!(h.starts_with("OAuth realm=\"1234567_SB1\","), "{h}");
        let base = "POST&https%3A%2F%2F1234567-sb1.suitetalk.api.netsuite.com%2Fservices%2Frest%2Fquery%2Fv1%2Fsuiteql&limit%3D100%26oauth_consumer_key%3Dck%26oauth_nonce%3Dabc123%26oauth_signature_method%3DHMAC-SHA256%26oauth_timestamp%3D1700000000%26oauth_token%3Dtk%26oauth_version%3D1.0%26offset%3D0";
        let mut mac = Hmac::<Sha256>::new_from_slice(b"cs&ts").unwrap();
        mac.update(base.as_bytes());
        let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let parsed = parse_header(&h).unwrap();
        assert_eq!(parsed.signature, want);
        assert_eq!(parsed.realm.as_deref(), Some("1234567_SB1"));
        assert!(verify(&creds(), "POST", &url, &parsed));
    }

    #[test]
    fn a_changed_method_query_or_secret_fails_verification() {
        let url =
            url::Url::parse("http://127.0.0.1:8080/adobe/rest/V1/orders/7?fields=items").unwrap();
        let h = parse_header(&authorization(&creds(), "GET", &url, None, "n1", 1)).unwrap();
        assert!(verify(&creds(), "GET", &url, &h));
        assert!(!verify(&creds(), "POST", &url, &h));
        let other =
            url::Url::parse("http://127.0.0.1:8080/adobe/rest/V1/orders/7?fields=all").unwrap();
        assert!(!verify(&creds(), "GET", &other, &h));
        let wrong = OAuth1Credentials {
            token_secret: "other".into(),
            ..creds()
        };
        assert!(!verify(&wrong, "GET", &url, &h));
    }

    #[test]
    fn a_header_missing_its_signature_is_not_read() {
        assert!(parse_header("OAuth oauth_consumer_key=\"ck\"").is_none());
        assert!(parse_header("Bearer abc").is_none());
    }
}
