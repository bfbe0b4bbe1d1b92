//! Point-of-sale returns (`POST /pos/returns`): a store returns an online
//! order's goods. The request is retailflow's own format, signed per store:
//!
//! ```json
//! { "return_id": "R-1001", "store_id": "store-042",
//!   "order": {"platform": "shopify", "shop": "acme.myshopify.com", "order_id": "5872301948123"},
//!   "returned_at": "2026-11-22T10:00:00Z", "currency": "USD",
//!   "lines": [{"line_id": "148…", "sku": "SKU-1", "quantity": 1,
//!              "refund_amount": "22.49", "tax_amount": "1.80", "disposition": "restock"}],
//!   "shipping_refund": "0.00", "refund_total": "24.29" }
//! ```
//!
//! Headers: `X-Retailflow-Store` (the store id, which picks the secret),
//! `X-Retailflow-Timestamp` (Unix seconds), `X-Retailflow-Nonce` (16–128 of
//! `A-Za-z0-9-_`, new for every attempt) and `X-Retailflow-Signature`
//! (base64 HMAC-SHA256 of [`signing_input`]: `"{timestamp}.{nonce}."`
//! followed by the raw body). Stale or reused stamps are refused
//! ([`crate::intake::freshness`]). A till that does not stamp yet signs the
//! raw body alone, accepted unless the deployment requires stamps.
//!
//! It becomes the same canonical `RefundIssued` as a Shopify refund, with
//! the store as its source; amounts must add up to `refund_total` to the
//! minor unit.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::decimal::{DecimalText, IdText};
use super::MapError;
use crate::events::{CanonicalEvent, RefundIssued};
use crate::model::{LineKind, MoneyBag, OrderRef, Platform, Refund, RefundLine, RestockType};
use crate::money::{Currency, Money};

/// What a till return's refund id starts with (`pos-<store>-<return id>`):
/// shops number their refunds, so a refund of an order is known as a till
/// return by its id alone.
pub const TILL_REFUND_PREFIX: &str = "pos-";

/// Whether the refund id is a till return's.
pub fn is_till_refund_id(refund_id: &str) -> bool {
    refund_id.starts_with(TILL_REFUND_PREFIX)
}

pub const STORE_HEADER: &str = "x-retailflow-store";
pub const SIGNATURE_HEADER: &str = "x-retailflow-signature";
pub const TIMESTAMP_HEADER: &str = "x-retailflow-timestamp";
pub const NONCE_HEADER: &str = "x-retailflow-nonce";

/// What a stamped request's signature covers: the timestamp and nonce as
/// sent, then the body, so neither stamp can be changed or moved to another body.
pub fn signing_input(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(timestamp.len() + nonce.len() + 2 + body.len());
    input.extend_from_slice(timestamp.as_bytes());
    input.push(b'.');
    input.extend_from_slice(nonce.as_bytes());
    input.push(b'.');
    input.extend_from_slice(body);
    input
}

/// The headers a till sends with `body` at `at`: for clients, samples and tests.
pub fn signed_headers(
    store: &str,
    secret: &crate::webhook::Secret,
    at: DateTime<Utc>,
    nonce: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let timestamp = at.timestamp().to_string();
    let signature =
        crate::webhook::shopify_signature(secret, &signing_input(&timestamp, nonce, body));
    vec![
        ("content-type", "application/json".to_string()),
        (STORE_HEADER, store.to_string()),
        (TIMESTAMP_HEADER, timestamp),
        (NONCE_HEADER, nonce.to_string()),
        (SIGNATURE_HEADER, signature),
    ]
}

#[derive(Deserialize)]
struct PosOrderRef {
    platform: Platform,
    shop: String,
    order_id: IdText,
}

#[derive(Deserialize)]
struct PosLine {
    line_id: IdText,
    sku: Option<String>,
    quantity: u32,
    refund_amount: DecimalText,
    #[serde(default)]
    tax_amount: Option<DecimalText>,
    disposition: String,
}

#[derive(Deserialize)]
struct PosReturn {
    return_id: String,
    store_id: String,
    order: PosOrderRef,
    returned_at: DateTime<chrono::FixedOffset>,
    currency: String,
    lines: Vec<PosLine>,
    #[serde(default)]
    shipping_refund: Option<DecimalText>,
    refund_total: DecimalText,
}

/// The return id and store, read before the body is mapped (dedup key).
pub fn return_identity(body: &[u8]) -> Result<(String, String), MapError> {
    #[derive(Deserialize)]
    struct Id {
        return_id: String,
        store_id: String,
    }
    let id: Id = serde_json::from_slice(body).map_err(|e| MapError::Malformed(e.to_string()))?;
    Ok((id.store_id, id.return_id))
}

fn disposition(d: &str) -> Result<RestockType, MapError> {
    match d {
        "restock" => Ok(RestockType::Return),
        "damaged" => Ok(RestockType::Damaged),
        "no_restock" => Ok(RestockType::NoRestock),
        other => Err(MapError::BadValue {
            field: "lines[].disposition".into(),
            reason: format!("{other:?} is not restock, damaged or no_restock"),
        }),
    }
}

/// Maps a signed POS return; `store` is the signed store header, which must
/// match the body's `store_id`.
pub fn map(store: &str, body: &[u8]) -> Result<CanonicalEvent, MapError> {
    let r: PosReturn =
        serde_json::from_slice(body).map_err(|e| MapError::Malformed(e.to_string()))?;
    if r.store_id != store {
        return Err(MapError::BadValue {
            field: "store_id".into(),
            reason: "does not match the X-Retailflow-Store header".into(),
        });
    }
    if r.lines.is_empty() {
        return Err(MapError::MissingField(
            "lines (a return returns something)".into(),
        ));
    }
    let cur = Currency::from_code(&r.currency).map_err(MapError::amount("currency"))?;
    let bag = |field: &str, v: Option<&DecimalText>| -> Result<MoneyBag, MapError> {
        let m = match v {
            Some(v) => v.money(cur).map_err(MapError::amount(field))?,
            None => Money::zero(cur),
        };
        if m.minor < 0 {
            return Err(MapError::BadValue {
                field: field.to_string(),
                reason: "a refund amount cannot be negative".into(),
            });
        }
        Ok(MoneyBag::single(m))
    };
    let mut lines = Vec::with_capacity(r.lines.len());
    for (i, l) in r.lines.iter().enumerate() {
        if l.quantity == 0 {
            return Err(MapError::BadValue {
                field: format!("lines[{i}].quantity"),
                reason: "must be at least 1".into(),
            });
        }
        lines.push(RefundLine {
            line_id: l.line_id.0.clone(),
            sku: l.sku.clone().filter(|s| !s.trim().is_empty()),
            kind: LineKind::Merchandise,
            quantity: l.quantity,
            restock_type: disposition(&l.disposition)?,
            location_id: Some(r.store_id.clone()),
            subtotal: bag(&format!("lines[{i}].refund_amount"), Some(&l.refund_amount))?,
            tax: bag(&format!("lines[{i}].tax_amount"), l.tax_amount.as_ref())?,
        });
    }
    let shipping = bag("shipping_refund", r.shipping_refund.as_ref())?;
    let zero = MoneyBag::zero(cur, cur);
    let total = lines
        .iter()
        .flat_map(|l| [l.subtotal, l.tax])
        .chain([shipping])
        .try_fold(zero, |acc, m| acc.checked_add(m))
        .map_err(MapError::amount("refund_total"))?;
    let stated = bag("refund_total", Some(&r.refund_total))?;
    super::check_reconciled(
        "line refunds + line tax + shipping refund",
        total,
        "refund_total",
        stated,
    )?;
    Ok(CanonicalEvent::RefundIssued(RefundIssued {
        refund: Refund {
            order: OrderRef {
                platform: r.order.platform,
                shop: r.order.shop,
                order_id: r.order.order_id.0,
            },
            refund_id: format!("{TILL_REFUND_PREFIX}{}-{}", r.store_id, r.return_id),
            created_at: r.returned_at.with_timezone(&Utc),
            lines,
            shipping,
            shipping_tax: zero,
            adjustments: zero,
            adjustment_parts: Vec::new(),
            duties: zero,
            total,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"return_id":"R-1001","store_id":"store-042",
      "order":{"platform":"shopify","shop":"acme.myshopify.com","order_id":"5872301948123"},
      "returned_at":"2026-11-22T10:00:00Z","currency":"USD",
      "lines":[{"line_id":"14820035190875","sku":"SOCK-1","quantity":1,"refund_amount":"22.49","tax_amount":"1.80","disposition":"damaged"}],
      "shipping_refund":"0.00","refund_total":"24.29"}"#;

    #[test]
    fn a_store_return_becomes_a_refund_of_the_online_order() {
        let CanonicalEvent::RefundIssued(e) = map("store-042", BODY.as_bytes()).unwrap() else {
            panic!()
        };
        let r = e.refund;
        assert_eq!(
            r.order.key(),
            "shopify:acme.myshopify.com:order:5872301948123"
        );
        assert_eq!(r.refund_id, "pos-store-042-R-1001");
        assert_eq!(r.total.shop.minor, 2429);
        assert_eq!(r.lines[0].restock_type, RestockType::Damaged);
        assert_eq!(r.lines[0].location_id.as_deref(), Some("store-042"));
    }

    #[test]
    fn amounts_that_do_not_add_up_are_refused_with_the_figures() {
        let bad = BODY.replace(r#""refund_total":"24.29""#, r#""refund_total":"30.00""#);
        let err = map("store-042", bad.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("24.29") && err.contains("30.00"), "{err}");
    }

    #[test]
    fn the_body_must_come_from_the_signing_store_and_make_sense() {
        assert!(matches!(
            map("store-007", BODY.as_bytes()),
            Err(MapError::BadValue { .. })
        ));
        let bad = BODY.replace("damaged", "lost");
        assert!(matches!(
            map("store-042", bad.as_bytes()),
            Err(MapError::BadValue { .. })
        ));
        let bad = BODY.replace(r#""quantity":1"#, r#""quantity":0"#);
        assert!(map("store-042", bad.as_bytes()).is_err());
        let bad = BODY.replace(r#""refund_amount":"22.49""#, r#""refund_amount":"-22.49""#);
        assert!(map("store-042", bad.as_bytes()).is_err());
        assert!(map("store-042", b"{}").is_err());
        assert_eq!(
            return_identity(BODY.as_bytes()).unwrap(),
            ("store-042".into(), "R-1001".into())
        );
    }
}
