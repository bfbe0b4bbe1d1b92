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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::catalog::Catalog;
use super::pricing::{price_lines, CartLine, LineProblem, PricedLine};
use super::promotions::Promotion;
use super::stock::{Reservation, ReservationLine, ReserveOutcome, StockReservations};
use crate::connectors::LoyaltyConnector;
use crate::money::{Currency, Money};
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
    /// `price_changed`, `unknown_sku`, `bad_quantity`, `out_of_stock`,
    /// `promotion_not_eligible`, `not_enough_points`, `loyalty_unavailable`,
    /// `bad_request`.
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
}

impl Default for CheckoutConfig {
    fn default() -> Self {
        CheckoutConfig {
            hold_for: chrono::Duration::minutes(15),
            minor_units_per_point: 1,
            loyalty_timeout: Duration::from_millis(300),
            loyalty_fallback: LoyaltyFallback::Refuse,
        }
    }
}

pub struct CheckoutValidation {
    catalog: Arc<dyn Catalog>,
    stock: Arc<dyn StockReservations>,
    loyalty: Arc<dyn LoyaltyConnector>,
    breaker: Arc<CircuitBreaker>,
    config: CheckoutConfig,
    /// Last balance seen per member (for the cached-balance fallback).
    balances: Mutex<HashMap<String, i64>>,
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
    pub fn new(
        catalog: Arc<dyn Catalog>,
        stock: Arc<dyn StockReservations>,
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
        }
    }

    /// The reservation a checkout holds its stock under.
    pub fn reservation_id(checkout_id: &str) -> String {
        format!("checkout:{checkout_id}")
    }

    pub async fn validate(&self, req: &CheckoutRequest, now: DateTime<Utc>) -> CheckoutResponse {
        let rejected = |problems| CheckoutResponse::Rejected {
            checkout_id: req.checkout_id.clone(),
            problems,
        };
        let Some(currency) = req.lines.first().map(|l| l.shown_price.currency) else {
            return rejected(vec![problem(
                None,
                None,
                "bad_request",
                "the cart has no lines".into(),
            )]);
        };
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
        match self.check(req, currency, now).await {
            Ok(accepted) => accepted,
            Err(problems) => rejected(problems),
        }
    }

    async fn check(
        &self,
        req: &CheckoutRequest,
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
        let refused = |e: crate::ports::StoreError| match e {
            // The cart itself is the problem, not the service.
            crate::ports::StoreError::TooLarge(_) | crate::ports::StoreError::Corrupt { .. } => {
                vec![problem(None, None, "bad_request", e.to_string())]
            }
            other => unavailable(&other),
        };
        let mut outcome = self
            .stock
            .reserve(&reservation, now)
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
            outcome = self
                .stock
                .reserve(&reservation, now)
                .await
                .map_err(refused)?;
        }
        match outcome {
            ReserveOutcome::Reserved => {}
            ReserveOutcome::Short { sku, available } => {
                return Err(req
                    .lines
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.sku == sku)
                    .map(|(i, l)| {
                        let asked: u64 = req
                            .lines
                            .iter()
                            .filter(|x| x.sku == sku)
                            .map(|x| u64::from(x.quantity))
                            .sum();
                        problem(
                            Some(i),
                            Some(&l.sku),
                            "out_of_stock",
                            format!("{sku}: {available} left, {asked} asked"),
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

/// The HTTP answer to a `POST /checkout/validate` body: 200 with the
/// validation (accepted, or rejected with its reasons), 400 with the reason
/// for a body that is not a checkout request. One place for the Lambda and
/// the local app.
pub async fn answer(
    checkout: &CheckoutValidation,
    body: &[u8],
    now: DateTime<Utc>,
) -> (u16, serde_json::Value) {
    match serde_json::from_slice::<CheckoutRequest>(body) {
        Ok(req) => {
            let resp = checkout.validate(&req, now).await;
            // Plain data with string keys: serializing cannot fail.
            (200, serde_json::to_value(resp).unwrap_or_default())
        }
        Err(e) => (
            400,
            serde_json::json!({ "error": format!("not a checkout request: {e}") }),
        ),
    }
}
