//! CheckoutValidation: `POST /checkout/validate`. Answers from the catalog,
//! the stock holds and the loyalty balance, never from the ERP, so it stays
//! fast at a flash sale; an accepted cart holds its stock until the order is
//! placed or the hold expires.
//!
//! Order of checks: lines priced from the book (a changed price is named per
//! line), promotions applied in the order given (each on what the earlier
//! ones left), points valued and checked against the member's balance (with
//! a timeout, the circuit breaker and a configured fallback when the loyalty
//! platform is down), then stock held all-or-nothing. Anything wrong rejects
//! the whole cart with a reason per line; nothing is held for a rejected
//! cart.
//!
//! Over HTTP ([`answer`]) only authenticated callers are answered
//! ([`super::auth`]), each bound to the customer and membership it may act
//! for. Holds are capped: at most [`CheckoutConfig::max_units_per_sku`]
//! units of a SKU per checkout, and at most
//! [`CheckoutConfig::max_open_holds`] checkouts holding stock at once per
//! customer or guest session ([`super::holds`]). A refusal never says how
//! many units are left.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::{AuthError, Caller, CheckoutAuth, NotYours};
use super::pricing::{price_lines, CartLine, LineProblem, PricedLine};
use super::promotions::Promotion;
use crate::money::{Currency, Money};
use crate::ports::catalog::Catalog;
use crate::ports::holds::{Admission, OpenHolds};
use crate::ports::loyalty::LoyaltyConnector;
use crate::ports::stock::{Reservation, ReservationLine, ReserveOutcome, StockReservations};
use crate::resilience::{CircuitBreaker, ConnectorError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutRequest {
    /// The storefront's checkout id: the same id validates (and holds) once.
    pub checkout_id: String,
    pub customer_id: Option<String>,
    pub loyalty_member: Option<String>,
    pub lines: Vec<CartLine>,
    #[serde(default)]
    pub promotion_codes: Vec<String>,
    #[serde(default)]
    pub points_to_redeem: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedLine {
    pub sku: String,
    pub quantity: u32,
    pub unit_price: Money,
    pub price_version: u64,
    pub discount: Money,
    /// Subtotal less its discounts.
    pub total: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedPromotion {
    pub code: String,
    pub discount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsRedeemed {
    pub points: u64,
    pub value: Money,
    /// Checked against a cached balance: the loyalty platform was down.
    pub from_cached_balance: bool,
}

/// How long checkout gives up on the loyalty platform once its breaker
/// opens: a shopper is not kept waiting on a platform that is down, so the
/// balance falls back sooner than a background step would.
pub const LOYALTY_BREAKER_OPEN_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// Before tax: the shop adds tax at payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutTotals {
    pub subtotal: Money,
    pub discounts: Money,
    pub points_value: Money,
    pub total: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Index of the cart line concerned, when one is.
    pub line: Option<usize>,
    pub sku: Option<String>,
    /// `price_changed`, `unknown_sku`, `bad_quantity`, `quantity_limit`,
    /// `out_of_stock`, `too_many_holds`, `promotion_not_eligible`,
    /// `not_enough_points`, `loyalty_unavailable`, `bad_request`,
    /// `unavailable`.
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CheckoutResponse {
    Accepted {
        checkout_id: String,
        reservation_id: String,
        expires_at: DateTime<Utc>,
        lines: Vec<AcceptedLine>,
        promotions: Vec<AppliedPromotion>,
        points: Option<PointsRedeemed>,
        totals: CheckoutTotals,
    },
    Rejected {
        checkout_id: String,
        problems: Vec<Problem>,
    },
}

/// What checkout does when the loyalty platform cannot say a balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoyaltyFallback {
    /// Refuse the redemption, with a reason the storefront can show.
    Refuse,
    /// Allow it up to the last balance seen for the member.
    AllowUpToCachedBalance,
}

#[derive(Debug, Clone)]
pub struct CheckoutConfig {
    /// How long an accepted cart holds its stock.
    pub hold_for: chrono::Duration,
    /// What one point is worth, in minor units of the cart's currency.
    pub minor_units_per_point: i64,
    pub loyalty_timeout: Duration,
    pub loyalty_fallback: LoyaltyFallback,
    /// Units of one SKU a checkout may hold (a SKU on several lines summed).
    pub max_units_per_sku: u32,
    /// Checkouts one customer (or one guest session) may hold stock under
    /// at once; each counts until its hold would expire.
    pub max_open_holds: u32,
}

impl Default for CheckoutConfig {
    fn default() -> Self {
        CheckoutConfig {
            hold_for: chrono::Duration::minutes(15),
            minor_units_per_point: 1,
            loyalty_timeout: Duration::from_millis(300),
            loyalty_fallback: LoyaltyFallback::Refuse,
            max_units_per_sku: 10,
            max_open_holds: 3,
        }
    }
}

/// The longest checkout id, customer id or membership number taken.
const MAX_ID_CHARS: usize = 256;

pub struct CheckoutValidation {
    catalog: Arc<dyn Catalog>,
    stock: Arc<dyn StockReservations>,
    loyalty: Arc<dyn LoyaltyConnector>,
    breaker: Arc<CircuitBreaker>,
    config: CheckoutConfig,
    /// Last balance seen per member (for the cached-balance fallback).
    balances: Mutex<HashMap<String, i64>>,
    /// Open holds per customer or guest session.
    open_holds: Arc<dyn OpenHolds>,
}

fn problem(line: Option<usize>, sku: Option<&str>, code: &str, message: String) -> Problem {
    Problem {
        line,
        sku: sku.map(str::to_string),
        code: code.to_string(),
        message,
    }
}

impl CheckoutValidation {
    /// `open_holds` is where open holds are counted: on AWS the state
    /// table, shared by every container.
    pub fn new(
        catalog: Arc<dyn Catalog>,
        stock: Arc<dyn StockReservations>,
        open_holds: Arc<dyn OpenHolds>,
        loyalty: Arc<dyn LoyaltyConnector>,
        breaker: Arc<CircuitBreaker>,
        config: CheckoutConfig,
    ) -> Self {
        CheckoutValidation {
            catalog,
            stock,
            loyalty,
            breaker,
            config,
            balances: Mutex::new(HashMap::new()),
            open_holds,
        }
    }

    pub fn config(&self) -> &CheckoutConfig {
        &self.config
    }

    /// The reservation a checkout holds its stock under.
    pub fn reservation_id(checkout_id: &str) -> String {
        format!("checkout:{checkout_id}")
    }

    /// Validates a cart for a caller the process trusts already (tests,
    /// benchmarks, the chaos workload): its customer and member as given,
    /// no open-hold cap. HTTP callers go through [`answer`], which
    /// authenticates them and calls [`Self::validate_for`].
    pub async fn validate(&self, req: &CheckoutRequest, now: DateTime<Utc>) -> CheckoutResponse {
        self.validate_owned(req, None, now).await
    }

    /// Validates a cart for an authenticated caller: bound to the customer
    /// and membership it may act for, its holds counted against its owner.
    pub async fn validate_for(
        &self,
        caller: &Caller,
        req: &CheckoutRequest,
        now: DateTime<Utc>,
    ) -> Result<CheckoutResponse, NotYours> {
        let bound = caller.bind(req)?;
        Ok(self
            .validate_owned(&bound.request, bound.owner.as_deref(), now)
            .await)
    }

    async fn validate_owned(
        &self,
        req: &CheckoutRequest,
        owner: Option<&str>,
        now: DateTime<Utc>,
    ) -> CheckoutResponse {
        let rejected = |problems| CheckoutResponse::Rejected {
            checkout_id: req.checkout_id.clone(),
            problems,
        };
        let too_long = |v: &Option<String>| v.as_ref().is_some_and(|v| v.len() > MAX_ID_CHARS);
        if req.checkout_id.trim().is_empty()
            || req.checkout_id.len() > MAX_ID_CHARS
            || too_long(&req.customer_id)
            || too_long(&req.loyalty_member)
        {
            return rejected(vec![problem(
                None,
                None,
                "bad_request",
                format!(
                    "checkout_id must be 1 to {MAX_ID_CHARS} characters, customer_id and loyalty_member at most {MAX_ID_CHARS}"
                ),
            )]);
        }
        let Some(currency) = req.lines.first().map(|l| l.shown_price.currency) else {
            return rejected(vec![problem(
                None,
                None,
                "bad_request",
                "the cart has no lines".into(),
            )]);
        };
        let over_cap = self.over_unit_cap(req);
        if !over_cap.is_empty() {
            return rejected(over_cap);
        }
        if let Some((i, l)) = req
            .lines
            .iter()
            .enumerate()
            .find(|(_, l)| l.shown_price.currency != currency)
        {
            return rejected(vec![problem(
                Some(i),
                Some(&l.sku),
                "bad_request",
                format!(
                    "line {i} is in {}, the cart in {currency}",
                    l.shown_price.currency
                ),
            )]);
        }
        match self.check(req, owner, currency, now).await {
            Ok(accepted) => accepted,
            Err(problems) => rejected(problems),
        }
    }

    /// A line per cart line whose SKU (summed over the cart) is over the
    /// per-checkout cap. The cap is configuration, not stock: saying it
    /// discloses nothing.
    fn over_unit_cap(&self, req: &CheckoutRequest) -> Vec<Problem> {
        let cap = u64::from(self.config.max_units_per_sku);
        let mut per_sku: HashMap<&str, u64> = HashMap::new();
        for l in &req.lines {
            *per_sku.entry(l.sku.as_str()).or_default() += u64::from(l.quantity);
        }
        req.lines
            .iter()
            .enumerate()
            .filter(|(_, l)| per_sku.get(l.sku.as_str()).is_some_and(|u| *u > cap))
            .map(|(i, l)| {
                problem(
                    Some(i),
                    Some(&l.sku),
                    "quantity_limit",
                    format!("at most {cap} of one item per order; reduce {}", l.sku),
                )
            })
            .collect()
    }

    async fn check(
        &self,
        req: &CheckoutRequest,
        owner: Option<&str>,
        currency: Currency,
        now: DateTime<Utc>,
    ) -> Result<CheckoutResponse, Vec<Problem>> {
        let unavailable = |e: &dyn std::fmt::Display| {
            vec![problem(
                None,
                None,
                "unavailable",
                format!("checkout cannot answer right now: {e}"),
            )]
        };
        let skus: Vec<String> = req.lines.iter().map(|l| l.sku.clone()).collect();
        let book = self
            .catalog
            .prices(&skus)
            .await
            .map_err(|e| unavailable(&e))?;
        let priced = price_lines(&req.lines, &book).map_err(|ps| line_problems(&req.lines, ps))?;
        let (discounts, promotions) = self.promotions(req, &priced, now).await?;
        let zero = Money::zero(currency);
        let subtotal = Money::sum(currency, priced.iter().map(|l| &l.subtotal))
            .map_err(|e| unavailable(&e))?;
        let discount_total = Money::sum(currency, discounts.iter()).map_err(|e| unavailable(&e))?;
        let after_discounts = subtotal
            .checked_sub(discount_total)
            .map_err(|e| unavailable(&e))?;
        let points = self.points(req, currency, after_discounts, now).await?;
        let points_value = points.as_ref().map_or(zero, |p| p.value);
        let total = after_discounts
            .checked_sub(points_value)
            .map_err(|e| unavailable(&e))?;

        let reservation = Reservation {
            id: Self::reservation_id(&req.checkout_id),
            lines: priced
                .iter()
                .map(|l| ReservationLine {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                })
                .collect(),
            expires_at: now + self.config.hold_for,
        };
        // The owner's place first: a full owner holds nothing new.
        if let Some(owner) = owner {
            let admitted = self
                .open_holds
                .admit(
                    owner,
                    &req.checkout_id,
                    reservation.expires_at,
                    self.config.max_open_holds,
                    now,
                )
                .await
                .map_err(|e| unavailable(&e))?;
            if admitted == Admission::Full {
                return Err(vec![problem(
                    None,
                    None,
                    "too_many_holds",
                    format!(
                        "{} other checkouts of this customer hold stock already; finish or leave one (a hold ends by itself within {} minutes)",
                        self.config.max_open_holds,
                        self.config.hold_for.num_minutes()
                    ),
                )]);
            }
        }
        let outcome = self.reserve(&reservation, now).await;
        // Nothing is held for a refused cart: its place goes back (a
        // service error keeps it, in case the hold was taken).
        let holds_nothing = match &outcome {
            Ok(ReserveOutcome::Short { .. }) => true,
            Ok(ReserveOutcome::Reserved) => false,
            Err(problems) => problems.iter().all(|p| p.code == "bad_request"),
        };
        if let (Some(owner), true) = (owner, holds_nothing) {
            if let Err(e) = self.open_holds.forget(owner, &req.checkout_id).await {
                tracing::warn!(error = %e, "a refused checkout's place was not given back");
            }
        }
        match outcome? {
            ReserveOutcome::Reserved => {}
            // How many are left is not said: a refusal must not tell a
            // scraper the stock count.
            ReserveOutcome::Short { sku, .. } => {
                let asked: u64 = req
                    .lines
                    .iter()
                    .filter(|x| x.sku == sku)
                    .map(|x| u64::from(x.quantity))
                    .sum();
                return Err(req
                    .lines
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.sku == sku)
                    .map(|(i, l)| {
                        problem(
                            Some(i),
                            Some(&l.sku),
                            "out_of_stock",
                            format!(
                                "not enough {sku} in stock for {asked}; try fewer or remove it"
                            ),
                        )
                    })
                    .collect());
            }
        }
        let lines = priced
            .iter()
            .zip(&discounts)
            .map(|(l, d)| AcceptedLine {
                sku: l.sku.clone(),
                quantity: l.quantity,
                unit_price: l.unit_price,
                price_version: l.price_version,
                discount: *d,
                total: l.subtotal.checked_sub(*d).unwrap_or(l.subtotal),
            })
            .collect();
        Ok(CheckoutResponse::Accepted {
            checkout_id: req.checkout_id.clone(),
            reservation_id: reservation.id,
            expires_at: reservation.expires_at,
            lines,
            promotions,
            points,
            totals: CheckoutTotals {
                subtotal,
                discounts: discount_total,
                points_value,
                total,
            },
        })
    }

    /// Holds the cart's stock; when short, gives back expired holds that
    /// were not swept yet and tries once more.
    async fn reserve(
        &self,
        reservation: &Reservation,
        now: DateTime<Utc>,
    ) -> Result<ReserveOutcome, Vec<Problem>> {
        let unavailable = |e: &dyn std::fmt::Display| {
            vec![problem(
                None,
                None,
                "unavailable",
                format!("checkout cannot answer right now: {e}"),
            )]
        };
        let refused = |e: crate::ports::StoreError| match e {
            // The cart itself is the problem, not the service.
            crate::ports::StoreError::TooLarge(_) | crate::ports::StoreError::Corrupt { .. } => {
                vec![problem(None, None, "bad_request", e.to_string())]
            }
            other => unavailable(&other),
        };
        let outcome = self
            .stock
            .reserve(reservation, now)
            .await
            .map_err(refused)?;
        // Short: holds that expired may not have been given back yet.
        if matches!(outcome, ReserveOutcome::Short { .. })
            && self
                .stock
                .sweep_expired(now)
                .await
                .map_err(|e| unavailable(&e))?
                > 0
        {
            return self.stock.reserve(reservation, now).await.map_err(refused);
        }
        Ok(outcome)
    }

    /// Applies the codes in order, each on what the earlier ones left;
    /// returns the discount per line.
    async fn promotions(
        &self,
        req: &CheckoutRequest,
        priced: &[PricedLine],
        now: DateTime<Utc>,
    ) -> Result<(Vec<Money>, Vec<AppliedPromotion>), Vec<Problem>> {
        let mut per_line: Vec<Money> = priced
            .iter()
            .map(|l| Money::zero(l.subtotal.currency))
            .collect();
        if req.promotion_codes.is_empty() {
            return Ok((per_line, Vec::new()));
        }
        let found: Vec<Promotion> = self
            .catalog
            .promotions(&req.promotion_codes)
            .await
            .map_err(|e| vec![problem(None, None, "unavailable", e.to_string())])?;
        let mut problems = Vec::new();
        let mut applied = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for code in &req.promotion_codes {
            if !seen.insert(code) {
                problems.push(problem(
                    None,
                    None,
                    "promotion_not_eligible",
                    format!("promotion {code} is given more than once"),
                ));
                continue;
            }
            let Some(p) = found.iter().find(|p| &p.code == code) else {
                problems.push(problem(
                    None,
                    None,
                    "promotion_not_eligible",
                    format!("promotion {code} does not exist"),
                ));
                continue;
            };
            let uses = match (&req.customer_id, p.per_customer_limit) {
                (Some(c), Some(_)) => Some(
                    self.catalog
                        .promotion_uses(code, c)
                        .await
                        .map_err(|e| vec![problem(None, None, "unavailable", e.to_string())])?,
                ),
                (Some(_), None) => Some(0),
                (None, _) => None,
            };
            // What the earlier promotions left of each line.
            let left: Vec<PricedLine> = priced
                .iter()
                .zip(&per_line)
                .map(|(l, d)| PricedLine {
                    subtotal: l.subtotal.checked_sub(*d).unwrap_or(l.subtotal),
                    ..l.clone()
                })
                .collect();
            match p.apply(&left, now, uses) {
                Ok(a) => {
                    for (total, d) in per_line.iter_mut().zip(&a.line_discounts) {
                        *total = total.checked_add(*d).unwrap_or(*total);
                    }
                    applied.push(AppliedPromotion {
                        code: a.code,
                        discount: a.discount,
                    });
                }
                Err(e) => {
                    problems.push(problem(None, None, "promotion_not_eligible", e.to_string()))
                }
            }
        }
        if problems.is_empty() {
            Ok((per_line, applied))
        } else {
            Err(problems)
        }
    }

    async fn points(
        &self,
        req: &CheckoutRequest,
        currency: Currency,
        payable: Money,
        now: DateTime<Utc>,
    ) -> Result<Option<PointsRedeemed>, Vec<Problem>> {
        if req.points_to_redeem == 0 {
            return Ok(None);
        }
        let refuse = |code: &str, message: String| vec![problem(None, None, code, message)];
        let Some(member) = &req.loyalty_member else {
            return Err(refuse(
                "not_enough_points",
                "points can only be redeemed by a loyalty member".into(),
            ));
        };
        let points = i64::try_from(req.points_to_redeem).unwrap_or(i64::MAX);
        let value = Money::new(
            points.saturating_mul(self.config.minor_units_per_point),
            currency,
        );
        if value.minor > payable.minor {
            return Err(refuse(
                "not_enough_points",
                format!("{points} points are worth {value}, more than the {payable} to pay"),
            ));
        }
        let (balance, cached) = match self.balance(member, now).await {
            Ok(Some(b)) => (b, false),
            Ok(None) => {
                return Err(refuse(
                    "not_enough_points",
                    format!("{member} is not a loyalty member"),
                ))
            }
            Err(e) => match (self.config.loyalty_fallback, self.cached(member)) {
                (LoyaltyFallback::AllowUpToCachedBalance, Some(b)) => (b, true),
                _ => {
                    return Err(refuse(
                        "loyalty_unavailable",
                        format!(
                        "points cannot be checked right now ({e}); pay without points or try again"
                    ),
                    ))
                }
            },
        };
        if balance < points {
            return Err(refuse(
                "not_enough_points",
                format!("{points} points asked, {balance} available"),
            ));
        }
        Ok(Some(PointsRedeemed {
            points: req.points_to_redeem,
            value,
            from_cached_balance: cached,
        }))
    }

    fn cached(&self, member: &str) -> Option<i64> {
        // Plain data behind the lock: a poisoned lock still holds it.
        let balances = self.balances.lock().unwrap_or_else(|p| p.into_inner());
        balances.get(member).copied()
    }

    /// The member's balance within the timeout, behind the breaker; a
    /// balance read is remembered for the cached fallback.
    async fn balance(
        &self,
        member: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, ConnectorError> {
        self.breaker.permit(now)?;
        let read = tokio::time::timeout(
            self.config.loyalty_timeout,
            self.loyalty.points_balance(member),
        )
        .await
        .unwrap_or(Err(ConnectorError::Unavailable {
            system: "loyalty",
            reason: "no answer within the checkout timeout".into(),
            retry_after: None,
        }));
        self.breaker.record(now, read.as_ref().map(|_| ()));
        if let Ok(Some(b)) = &read {
            self.balances
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(member.to_string(), *b);
        }
        read
    }
}

fn line_problems(lines: &[CartLine], problems: Vec<LineProblem>) -> Vec<Problem> {
    problems
        .into_iter()
        .map(|p| {
            let (sku, code) = match &p {
                LineProblem::UnknownSku { sku } => (sku, "unknown_sku"),
                LineProblem::PriceChanged { sku, .. } => (sku, "price_changed"),
                LineProblem::BadQuantity { sku } => (sku, "bad_quantity"),
                LineProblem::Overflow { sku } => (sku, "bad_quantity"),
            };
            let line = lines.iter().position(|l| &l.sku == sku);
            problem(line, Some(sku), code, p.to_string())
        })
        .collect()
}

/// Bodies above this are refused with 413 before anything else (a cart
/// of a thousand lines is about 100 KB).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// One `POST /checkout/validate` as the step sees it, whatever HTTP front
/// end carried it.
pub struct CheckoutHttpRequest<'a> {
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
    /// When the request is validated (holds run from it).
    pub received_at: DateTime<Utc>,
    /// When the HTTP front end took it (API Gateway's
    /// `requestContext.timeEpoch`, which the caller cannot set): the time
    /// credentials are judged at, `received_at` when absent. A recorded
    /// request played back (`retailflow run events/`) is judged at the
    /// time it was recorded.
    pub gateway_time: Option<DateTime<Utc>>,
}

/// The HTTP answer to a `POST /checkout/validate`: 401 with the reason
/// unless the caller authenticates ([`CheckoutAuth`]), 400 for a body that
/// is not a checkout request, 403 for a request acting for another
/// customer or member, 413 for a body over [`MAX_REQUEST_BYTES`], 503 when
/// credentials cannot be checked right now, else 200 with the validation
/// (accepted, or rejected with its reasons). One place for the Lambda and
/// the local app; it logs one line per request (no token, no secret, no
/// customer).
pub async fn answer(
    checkout: &CheckoutValidation,
    auth: &CheckoutAuth,
    req: CheckoutHttpRequest<'_>,
) -> (u16, serde_json::Value) {
    let started = std::time::Instant::now();
    let (status, body, caller) = answer_unlogged(checkout, auth, &req).await;
    let reason = match status {
        200 => body["status"].as_str().unwrap_or_default().to_string(),
        // A parse error can quote the body: not logged.
        400 => "not a checkout request".to_string(),
        _ => body["error"].as_str().unwrap_or_default().to_string(),
    };
    tracing::info!(
        status,
        caller = caller.as_ref().map_or("", |c| c.kind()),
        storefront = match &caller {
            Some(Caller::Storefront { id }) => id.as_str(),
            _ => "",
        },
        shop = match &caller {
            Some(Caller::Shopify(b)) => b.shop.as_str(),
            _ => "",
        },
        reason = reason.as_str(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "checkout"
    );
    (status, body)
}

async fn answer_unlogged(
    checkout: &CheckoutValidation,
    auth: &CheckoutAuth,
    req: &CheckoutHttpRequest<'_>,
) -> (u16, serde_json::Value, Option<Caller>) {
    let error = |status: u16, reason: String| (status, serde_json::json!({ "error": reason }));
    if req.body.len() > MAX_REQUEST_BYTES {
        let (s, b) = error(
            413,
            format!(
                "body is {} bytes; the limit is {MAX_REQUEST_BYTES}",
                req.body.len()
            ),
        );
        return (s, b, None);
    }
    // Credentials first: nothing unauthenticated is parsed.
    let judged_at = req.gateway_time.unwrap_or(req.received_at);
    let caller = match auth.authenticate(req.headers, req.body, judged_at).await {
        Ok(c) => c,
        Err(e @ AuthError::Refused(_)) => {
            let (s, b) = error(401, e.to_string());
            return (s, b, None);
        }
        Err(e @ AuthError::Unavailable(_)) => {
            let (s, mut b) = error(503, e.to_string());
            b["retryable"] = serde_json::json!(true);
            return (s, b, None);
        }
    };
    let parsed = match serde_json::from_slice::<CheckoutRequest>(req.body) {
        Ok(r) => r,
        Err(e) => {
            let (s, b) = error(400, format!("not a checkout request: {e}"));
            return (s, b, Some(caller));
        }
    };
    match checkout
        .validate_for(&caller, &parsed, req.received_at)
        .await
    {
        // Plain data with string keys: serializing cannot fail.
        Ok(resp) => (
            200,
            serde_json::to_value(resp).unwrap_or_default(),
            Some(caller),
        ),
        Err(e) => {
            let (s, b) = error(403, e.to_string());
            (s, b, Some(caller))
        }
    }
}
