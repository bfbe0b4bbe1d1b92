//! The chaos run's workload: seeded, from the documented platform shapes
//! in `events/payloads` (Shopify orders in USD, in EUR presentment with VAT
//! included, in CAD with a gift card; Adobe Commerce orders; Shopify partial
//! and full refunds and cancellations; point-of-sale returns), each order
//! with its own ids and customer. Beside each delivery it keeps what the
//! systems of record must end up holding, from the fixtures' `.expected.json`
//! (computed by `check_totals.py` in Python decimal, not by retailflow).

use serde_json::{json, Value};

use crate::dev_keys::DevSigners;

const ORDER_USD: &str =
    include_str!("../../../../events/payloads/shopify-orders-create-discount-code.json");
const ORDER_USD_EXPECTED: &str =
    include_str!("../../../../events/payloads/shopify-orders-create-discount-code.expected.json");
const ORDER_EUR: &str = include_str!(
    "../../../../events/payloads/shopify-orders-create-eur-presentment-vat-inclusive.json"
);
const ORDER_EUR_EXPECTED: &str = include_str!(
    "../../../../events/payloads/shopify-orders-create-eur-presentment-vat-inclusive.expected.json"
);
const ORDER_CAD: &str =
    include_str!("../../../../events/payloads/shopify-orders-create-cad-gift-card.json");
const ORDER_CAD_EXPECTED: &str =
    include_str!("../../../../events/payloads/shopify-orders-create-cad-gift-card.expected.json");
const ORDER_ADOBE: &str = include_str!("../../../../events/payloads/adobe-order-configurable.json");
const ORDER_ADOBE_EXPECTED: &str =
    include_str!("../../../../events/payloads/adobe-order-configurable.expected.json");
const CREDITMEMO_PARTIAL: &str =
    include_str!("../../../../events/payloads/adobe-creditmemo-partial.json");
const CREDITMEMO_PARTIAL_EXPECTED: &str =
    include_str!("../../../../events/payloads/adobe-creditmemo-partial.expected.json");
const CREDITMEMO_FEE: &str =
    include_str!("../../../../events/payloads/adobe-creditmemo-adjustment-fee.json");
const CREDITMEMO_FEE_EXPECTED: &str =
    include_str!("../../../../events/payloads/adobe-creditmemo-adjustment-fee.expected.json");
const REFUND_PARTIAL: &str =
    include_str!("../../../../events/payloads/shopify-refunds-create-partial-with-shipping.json");
const REFUND_PARTIAL_EXPECTED: &str = include_str!(
    "../../../../events/payloads/shopify-refunds-create-partial-with-shipping.expected.json"
);
const REFUND_FULL: &str =
    include_str!("../../../../events/payloads/shopify-refunds-create-full-with-shipping.json");
const REFUND_FULL_EXPECTED: &str = include_str!(
    "../../../../events/payloads/shopify-refunds-create-full-with-shipping.expected.json"
);
const CANCEL_USD: &str = include_str!("../../../../events/payloads/shopify-orders-cancelled.json");
const CANCEL_EUR: &str =
    include_str!("../../../../events/payloads/shopify-orders-cancelled-vat-inclusive.json");
const POS_RETURN: &str = include_str!("../../../../events/payloads/pos/return-store-042.json");
const CHECKOUT: &str = include_str!("../../../../events/14-checkout-validate.json");

/// The Shopify shop every generated Shopify order belongs to (the
/// point-of-sale returns name it).
pub const SHOP: &str = "acme-outdoor.myshopify.com";

/// SplitMix64: small, seeded, the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with `percent` % chance.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The four order shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Shopify, USD, a discount code: has refunds, POS returns, a cancellation.
    ShopifyUsd,
    /// Shopify, USD shop and EUR presentment, VAT included: can be cancelled.
    ShopifyEur,
    /// Shopify, CAD, paid partly by gift card: can be fully refunded.
    ShopifyCad,
    AdobeUsd,
}

/// What happens to an order after it is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Afterwards {
    Nothing,
    PartialRefund,
    /// Adobe: a partial credit memo, then one with an adjustment fee.
    TwoCreditMemos,
    PosReturn,
    PartialRefundAndPosReturn,
    FullRefund,
    Cancelled,
}

/// What the systems of record must hold for one order.
#[derive(Debug, Clone)]
pub struct ExpectedOrder {
    pub shape: Shape,
    /// `shopify` / `adobe_commerce`, and the platform's order id.
    pub platform: &'static str,
    pub order_id: String,
    /// The customer (loyalty member) it belongs to.
    pub customer: u64,
    /// Order total in the shop currency's minor units.
    pub total_minor: i64,
    /// Merchandise net that earns points, minor units (2-decimal currencies).
    pub merchandise_minor: i64,
    pub afterwards: Afterwards,
    /// Each return's refund total (the credit memo's amount) and the
    /// merchandise it refunds (for the points taken back).
    pub returns: Vec<ExpectedReturn>,
    /// The checkout held its stock: (SKU, units).
    pub cart: Vec<(String, u32)>,
}

#[derive(Debug, Clone)]
pub struct ExpectedReturn {
    pub total_minor: i64,
    pub merchandise_minor: i64,
    /// Refunds everything (a full refund): takes back the rest of the points.
    pub takes_rest: bool,
}

impl ExpectedOrder {
    /// Points the order earns: one per whole unit of merchandise net.
    pub fn accrued_points(&self) -> i64 {
        self.merchandise_minor.max(0) / 100
    }

    /// Points it keeps once its returns and cancellation have run: the
    /// accrual less the share of it that the refunded merchandise bought,
    /// rounded down, all of it for a full refund or a cancellation.
    pub fn net_points(&self) -> i64 {
        let accrued = self.accrued_points();
        if self.afterwards == Afterwards::Cancelled || self.returns.iter().any(|r| r.takes_rest) {
            return 0;
        }
        let refunded: i64 = self.returns.iter().map(|r| r.merchandise_minor).sum();
        let refunded = refunded.clamp(0, self.merchandise_minor.max(0));
        if self.merchandise_minor <= 0 {
            return 0;
        }
        accrued - accrued * refunded / self.merchandise_minor
    }
}

/// One thing sent to the app.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A signed webhook (or POS request): path, headers, body.
    Webhook {
        order: usize,
        path: &'static str,
        headers: Vec<(String, String)>,
        body: String,
        /// A till signs each attempt when it sends it (timestamp and a new
        /// nonce): the store and its secret.
        till: Option<(String, retailflow_core::webhook::Secret)>,
    },
    /// A checkout validation before the order it leads to.
    Checkout { order: usize, request: String },
}

impl Delivery {
    pub fn order(&self) -> usize {
        match self {
            Delivery::Webhook { order, .. } | Delivery::Checkout { order, .. } => *order,
        }
    }
}

/// The generated workload.
pub struct Workload {
    pub orders: Vec<ExpectedOrder>,
    /// Per order, its deliveries in the order the platform sends them
    /// (checkout, order, then returns or cancellation).
    pub deliveries: Vec<Vec<Delivery>>,
    /// Adobe order saves after the first (invoiced, shipped, commented,
    /// canceled again): none may be a second order.
    pub adobe_later_saves: usize,
    /// Adobe credit memos, each also saved a second time.
    pub adobe_credit_memos: usize,
}

fn parse(s: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(s)?)
}

fn minor(expected: &Value, path: &[&str]) -> anyhow::Result<i64> {
    let mut v = expected;
    for p in path {
        v = &v[*p];
    }
    v.as_i64()
        .ok_or_else(|| anyhow::anyhow!("expected fixture has no {}", path.join(".")))
}

/// Decimal text ("24.29") in minor units, for 2-decimal amounts.
fn decimal_minor(s: &str) -> anyhow::Result<i64> {
    let usd = retailflow_core::money::Currency::from_code("USD")?;
    Ok(retailflow_core::money::Money::parse(s, usd)?.minor)
}

struct Bases {
    usd: Value,
    eur: Value,
    cad: Value,
    adobe: Value,
    partial: Value,
    full: Value,
    cancel_usd: Value,
    cancel_eur: Value,
    pos: Value,
    checkout: Value,
    creditmemo_partial: Value,
    creditmemo_fee: Value,
    /// (total, merchandise net) per shape.
    figures: [(i64, i64); 4],
    partial_return: ExpectedReturn,
    full_return: ExpectedReturn,
    pos_return: ExpectedReturn,
    creditmemo_partial_return: ExpectedReturn,
    creditmemo_fee_return: ExpectedReturn,
}

fn bases() -> anyhow::Result<Bases> {
    let figures = |e: &str| -> anyhow::Result<(i64, i64)> {
        let e = parse(e)?;
        Ok((
            minor(&e, &["shop", "total"])?,
            minor(&e, &["shop", "merchandise_net"])?,
        ))
    };
    let partial = parse(REFUND_PARTIAL_EXPECTED)?;
    let full = parse(REFUND_FULL_EXPECTED)?;
    let pos = parse(POS_RETURN)?;
    let pos_merchandise = pos["lines"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .map(|l| decimal_minor(l["refund_amount"].as_str().unwrap_or("0")))
                .sum::<anyhow::Result<i64>>()
        })
        .transpose()?
        .unwrap_or(0);
    let checkout: Value = parse(CHECKOUT)?;
    let memo_return = |e: &str| -> anyhow::Result<ExpectedReturn> {
        let e = parse(e)?;
        Ok(ExpectedReturn {
            total_minor: minor(&e, &["total"])?,
            merchandise_minor: minor(&e, &["lines_subtotal"])?,
            takes_rest: false,
        })
    };
    Ok(Bases {
        creditmemo_partial: parse(CREDITMEMO_PARTIAL)?,
        creditmemo_fee: parse(CREDITMEMO_FEE)?,
        creditmemo_partial_return: memo_return(CREDITMEMO_PARTIAL_EXPECTED)?,
        creditmemo_fee_return: memo_return(CREDITMEMO_FEE_EXPECTED)?,
        usd: parse(ORDER_USD)?,
        eur: parse(ORDER_EUR)?,
        cad: parse(ORDER_CAD)?,
        adobe: parse(ORDER_ADOBE)?,
        partial: parse(REFUND_PARTIAL)?,
        full: parse(REFUND_FULL)?,
        cancel_usd: parse(CANCEL_USD)?,
        cancel_eur: parse(CANCEL_EUR)?,
        checkout: parse(checkout["body"].as_str().unwrap_or("{}"))?,
        figures: [
            figures(ORDER_USD_EXPECTED)?,
            figures(ORDER_EUR_EXPECTED)?,
            figures(ORDER_CAD_EXPECTED)?,
            figures(ORDER_ADOBE_EXPECTED)?,
        ],
        partial_return: ExpectedReturn {
            total_minor: minor(&partial, &["total"])?,
            merchandise_minor: minor(&partial, &["lines_subtotal"])?,
            takes_rest: false,
        },
        full_return: ExpectedReturn {
            total_minor: minor(&full, &["total"])?,
            merchandise_minor: minor(&full, &["lines_subtotal"])?,
            takes_rest: true,
        },
        pos_return: ExpectedReturn {
            total_minor: decimal_minor(pos["refund_total"].as_str().unwrap_or("0"))?,
            merchandise_minor: pos_merchandise,
            takes_rest: false,
        },
        pos,
    })
}

/// A Shopify order (or its cancellation) as order `id` of `customer`.
fn shopify_order(base: &Value, id: u64, n: usize, customer: u64, checkout: &str) -> Value {
    let mut o = base.clone();
    o["id"] = id.into();
    o["admin_graphql_api_id"] = format!("gid://shopify/Order/{id}").into();
    o["name"] = format!("#C{n}").into();
    o["order_number"] = (100_000 + n as u64).into();
    o["checkout_token"] = checkout.into();
    let email = format!("c{customer}@example.com");
    o["email"] = email.clone().into();
    o["contact_email"] = email.clone().into();
    if o["customer"].is_object() {
        o["customer"]["id"] = (6_100_000_000 + customer).into();
        o["customer"]["email"] = email.into();
    }
    o
}

/// A Shopify refund `refund_id` of order `order_id`.
fn shopify_refund(base: &Value, refund_id: u64, order_id: u64) -> Value {
    let mut r = base.clone();
    r["id"] = refund_id.into();
    r["order_id"] = order_id.into();
    r["admin_graphql_api_id"] = format!("gid://shopify/Refund/{refund_id}").into();
    for list in ["order_adjustments", "transactions"] {
        if let Some(items) = r[list].as_array_mut() {
            for item in items {
                item["order_id"] = order_id.into();
                if item.get("refund_id").is_some() {
                    item["refund_id"] = refund_id.into();
                }
            }
        }
    }
    r
}

fn shopify(
    signers: &DevSigners,
    order: usize,
    topic: &str,
    event_id: String,
    body: &Value,
) -> Delivery {
    let body = body.to_string();
    let secret = retailflow_core::webhook::Secret::new(signers.shopify_secret.clone());
    Delivery::Webhook {
        order,
        path: "/webhooks/shopify",
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-shopify-topic".into(), topic.into()),
            ("x-shopify-shop-domain".into(), SHOP.into()),
            ("x-shopify-event-id".into(), event_id.clone()),
            ("x-shopify-webhook-id".into(), format!("wh-{event_id}")),
            ("x-shopify-api-version".into(), "2025-10".into()),
            (
                "x-shopify-hmac-sha256".into(),
                retailflow_core::webhook::shopify_signature(&secret, body.as_bytes()),
            ),
        ],
        body,
        till: None,
    }
}

fn adobe(signers: &DevSigners, order: usize, body: &Value) -> anyhow::Result<Delivery> {
    let code = body["type"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("com.adobe.commerce.")
        .to_string();
    let body = body.to_string();
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("x-adobe-event-code".into(), code),
    ];
    for (n, key) in signers.adobe_private.iter().enumerate() {
        let n = n + 1;
        headers.push((
            format!("x-adobe-digital-signature-{n}"),
            retailflow_core::webhook::adobe_signature(key, body.as_bytes())?,
        ));
        headers.push((
            format!("x-adobe-public-key{n}-path"),
            format!("/prod/keys/pub-key-dev-{n}.pem"),
        ));
    }
    Ok(Delivery::Webhook {
        order,
        path: "/webhooks/adobe",
        headers,
        body,
        till: None,
    })
}

/// An Adobe delivery dated `at` and signed anew: Adobe dates an event when
/// it happens, inside the signed body, and the intake refuses one older
/// than two days. A run's virtual clock moves on by days, so each chunk's
/// Adobe events are dated when the chunk is sent; its duplicates and
/// retries are the same signed body, as I/O Events sends them.
pub fn redate_adobe(
    signers: &DevSigners,
    delivery: &Delivery,
    at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Delivery> {
    match delivery {
        Delivery::Webhook {
            order, path, body, ..
        } if *path == "/webhooks/adobe" => {
            let mut v: Value = serde_json::from_str(body)?;
            v["time"] = at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into();
            adobe(signers, *order, &v)
        }
        other => Ok(other.clone()),
    }
}

/// A new I/O event of `body`, named by `name`, dated `at` (its signed
/// `time`, which the intake judges for replays).
fn stamp_adobe(body: &mut Value, name: &str, at: chrono::DateTime<chrono::Utc>) {
    let delivery = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string();
    body["id"] = delivery.clone().into();
    body["event_id"] = delivery.into();
    body["time"] = at
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        .into();
}

fn pos_return(signers: &DevSigners, order: usize, base: &Value, order_id: u64) -> Delivery {
    let mut r = base.clone();
    r["return_id"] = format!("R-chaos-{order}").into();
    r["store_id"] = signers.pos_store.0.clone().into();
    r["order"]["shop"] = SHOP.into();
    r["order"]["order_id"] = order_id.to_string().into();
    Delivery::Webhook {
        order,
        path: "/pos/returns",
        headers: Vec::new(),
        body: r.to_string(),
        till: Some((
            signers.pos_store.0.clone(),
            retailflow_core::webhook::Secret::new(signers.pos_store.1.clone()),
        )),
    }
}

/// `orders` orders (and their returns and cancellations) for `seed`.
/// The workload of `orders` orders; Adobe's events are dated `at` (their
/// signed `time`, which the intake judges for replays): the run's start.
pub fn generate(
    orders: usize,
    seed: u64,
    signers: &DevSigners,
    at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Workload> {
    let b = bases()?;
    let mut rng = Rng::new(seed);
    let customers = (orders as u64 / 20).max(1);
    let mut out = Workload {
        orders: Vec::with_capacity(orders),
        deliveries: Vec::with_capacity(orders),
        adobe_later_saves: 0,
        adobe_credit_memos: 0,
    };
    for n in 0..orders {
        let customer = rng.below(customers);
        let roll = rng.below(100);
        let shape = match roll {
            0..45 => Shape::ShopifyUsd,
            45..60 => Shape::ShopifyEur,
            60..80 => Shape::ShopifyCad,
            _ => Shape::AdobeUsd,
        };
        let after = rng.below(100);
        let afterwards = match shape {
            Shape::ShopifyUsd => match after {
                0..25 => Afterwards::Nothing,
                25..45 => Afterwards::PartialRefund,
                45..65 => Afterwards::PosReturn,
                65..85 => Afterwards::PartialRefundAndPosReturn,
                _ => Afterwards::Cancelled,
            },
            Shape::ShopifyEur if after < 20 => Afterwards::Cancelled,
            Shape::ShopifyCad if after < 50 => Afterwards::FullRefund,
            Shape::AdobeUsd => match after {
                0..25 => Afterwards::Nothing,
                25..50 => Afterwards::PartialRefund,
                50..80 => Afterwards::TwoCreditMemos,
                _ => Afterwards::Cancelled,
            },
            _ => Afterwards::Nothing,
        };
        let id = 7_000_000_000_000u64 + seed % 1000 * 1_000_000 + n as u64;
        let tag = format!("chaos-{seed}-{n}");
        let (total_minor, merchandise_minor) = b.figures[match shape {
            Shape::ShopifyUsd => 0,
            Shape::ShopifyEur => 1,
            Shape::ShopifyCad => 2,
            Shape::AdobeUsd => 3,
        }];
        let mut expected = ExpectedOrder {
            shape,
            platform: if shape == Shape::AdobeUsd {
                "adobe_commerce"
            } else {
                "shopify"
            },
            order_id: id.to_string(),
            customer,
            total_minor,
            merchandise_minor,
            afterwards,
            returns: Vec::new(),
            cart: Vec::new(),
        };
        let mut ds = Vec::new();
        match shape {
            Shape::AdobeUsd => {
                let mut o = b.adobe.clone();
                let entity = id.to_string();
                stamp_adobe(&mut o, &tag, at);
                let v = &mut o["data"]["value"];
                v["entity_id"] = entity.clone().into();
                v["increment_id"] = format!("C{n:09}").into();
                v["quote_id"] = tag.clone().into();
                v["customer_id"] = (1000 + customer).to_string().into();
                v["customer_email"] = format!("c{customer}@example.com").into();
                if let Some(items) = v["items"].as_array_mut() {
                    for item in items {
                        item["order_id"] = entity.clone().into();
                    }
                }
                ds.push(adobe(signers, n, &o)?);
                let canceled = afterwards == Afterwards::Cancelled;
                // Later saves, as many as `n` says (no draw: the Shopify
                // orders of a seed stay what they were): invoiced, shipped,
                // a comment; a canceled order is saved canceled twice.
                for k in 0..(if canceled { 2 } else { 1 + n % 3 }) {
                    let mut later = o.clone();
                    stamp_adobe(&mut later, &format!("{tag}-save-{k}"), at);
                    let v = &mut later["data"]["value"];
                    let (state, status) = match (canceled, k) {
                        (true, _) => ("canceled", "canceled"),
                        (false, 0) => ("processing", "processing"),
                        (false, _) => ("complete", "complete"),
                    };
                    v["state"] = state.into();
                    v["status"] = status.into();
                    if !canceled {
                        v["total_invoiced"] = v["grand_total"].clone();
                        v["total_paid"] = v["grand_total"].clone();
                    }
                    ds.push(adobe(signers, n, &later)?);
                    out.adobe_later_saves += 1;
                }
                let memos: &[(&Value, &ExpectedReturn, &str)] = match afterwards {
                    Afterwards::PartialRefund => {
                        &[(&b.creditmemo_partial, &b.creditmemo_partial_return, "1")]
                    }
                    Afterwards::TwoCreditMemos => &[
                        (&b.creditmemo_partial, &b.creditmemo_partial_return, "1"),
                        (&b.creditmemo_fee, &b.creditmemo_fee_return, "2"),
                    ],
                    _ => &[],
                };
                for (base, figures, suffix) in memos {
                    let memo_id = format!("{entity}{suffix}");
                    let mut m = (*base).clone();
                    stamp_adobe(&mut m, &format!("{tag}-memo-{suffix}"), at);
                    let v = &mut m["data"]["value"];
                    v["entity_id"] = memo_id.clone().into();
                    v["increment_id"] = format!("CM{n:09}{suffix}").into();
                    v["order_id"] = entity.clone().into();
                    if let Some(items) = v["items"].as_array_mut() {
                        for item in items {
                            item["parent_id"] = memo_id.clone().into();
                        }
                    }
                    ds.push(adobe(signers, n, &m)?);
                    // Saved again with a comment: the same refund.
                    stamp_adobe(&mut m, &format!("{tag}-memo-{suffix}-again"), at);
                    m["data"]["value"]["comments"] = json!([{"comment": "customer called"}]);
                    ds.push(adobe(signers, n, &m)?);
                    expected.returns.push((*figures).clone());
                    out.adobe_credit_memos += 1;
                }
            }
            _ => {
                let base = match shape {
                    Shape::ShopifyUsd => &b.usd,
                    Shape::ShopifyEur => &b.eur,
                    _ => &b.cad,
                };
                if shape == Shape::ShopifyUsd {
                    // The sample checkout's cart is this order's: held first.
                    let mut c = b.checkout.clone();
                    c["checkout_id"] = tag.clone().into();
                    c["customer_id"] = format!("c{customer}").into();
                    c["promotion_codes"] = json!([]);
                    expected.cart = c["lines"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|l| {
                            (
                                l["sku"].as_str().unwrap_or_default().to_string(),
                                l["quantity"].as_u64().unwrap_or(0) as u32,
                            )
                        })
                        .collect();
                    ds.push(Delivery::Checkout {
                        order: n,
                        request: c.to_string(),
                    });
                }
                let o = shopify_order(base, id, n, customer, &tag);
                ds.push(shopify(
                    signers,
                    n,
                    "orders/create",
                    format!("{tag}-create"),
                    &o,
                ));
                let refund_id = 8_000_000_000_000u64 + seed % 1000 * 1_000_000 + n as u64;
                if matches!(
                    afterwards,
                    Afterwards::PartialRefund | Afterwards::PartialRefundAndPosReturn
                ) {
                    let r = shopify_refund(&b.partial, refund_id, id);
                    ds.push(shopify(
                        signers,
                        n,
                        "refunds/create",
                        format!("{tag}-refund"),
                        &r,
                    ));
                    expected.returns.push(b.partial_return.clone());
                }
                if matches!(
                    afterwards,
                    Afterwards::PosReturn | Afterwards::PartialRefundAndPosReturn
                ) {
                    ds.push(pos_return(signers, n, &b.pos, id));
                    expected.returns.push(b.pos_return.clone());
                }
                if afterwards == Afterwards::FullRefund {
                    let r = shopify_refund(&b.full, refund_id, id);
                    ds.push(shopify(
                        signers,
                        n,
                        "refunds/create",
                        format!("{tag}-refund"),
                        &r,
                    ));
                    expected.returns.push(b.full_return.clone());
                }
                if afterwards == Afterwards::Cancelled {
                    let base = if shape == Shape::ShopifyEur {
                        &b.cancel_eur
                    } else {
                        &b.cancel_usd
                    };
                    let c = shopify_order(base, id, n, customer, &tag);
                    ds.push(shopify(
                        signers,
                        n,
                        "orders/cancelled",
                        format!("{tag}-cancel"),
                        &c,
                    ));
                }
            }
        }
        out.orders.push(expected);
        out.deliveries.push(ds);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_points_take_back_the_refunded_share_rounded_down() {
        let ret = |m: i64, rest: bool| ExpectedReturn {
            total_minor: 0,
            merchandise_minor: m,
            takes_rest: rest,
        };
        let mut o = ExpectedOrder {
            shape: Shape::ShopifyUsd,
            platform: "shopify",
            order_id: "1".into(),
            customer: 0,
            total_minor: 12808,
            merchandise_minor: 10933,
            afterwards: Afterwards::PartialRefund,
            returns: vec![ret(2249, false)],
            cart: vec![],
        };
        // 109 points; 2249/10933 of them is 22.42: 22 go back.
        assert_eq!(o.accrued_points(), 109);
        assert_eq!(o.net_points(), 87);
        o.returns.push(ret(2249, false));
        assert_eq!(o.net_points(), 65);
        o.returns = vec![ret(13999, true)];
        assert_eq!(o.net_points(), 0);
    }

    #[test]
    fn the_same_seed_gives_the_same_workload() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..5).map(|_| a.below(1000)).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.below(1000)).collect();
        assert_eq!(xs, ys);
        let mut c = Rng::new(8);
        assert_ne!(xs, (0..5).map(|_| c.below(1000)).collect::<Vec<_>>());
    }
}
