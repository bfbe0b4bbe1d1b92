//! ReturnReversal: a `RefundIssued` (a shop refund or a return at the till)
//! takes back the order's points, gets its credit memo in the ERP and, when
//! it started outside the shop, is recorded on the shop's order.
//!
//! First the refund is admitted to the order's refund ledger (one conditional
//! write on the order's saga item): a refund that would take the order past
//! its total goes to review (the DLQ, with the reason) and reaches no system.
//! Then three sub-steps run, each its own idempotent unit in the return's
//! saga item (`<order key>:return:<refund id>`), so one failing system does
//! not redo the others:
//!
//! - `loyalty_reversal` waits for the order's accrual, then debits the
//!   return's share of the points (fixed by its place in the ledger, so
//!   partial returns add up to the accrual in any order), or cancels the
//!   accrual when the whole order comes back in one return;
//! - `credit_memo` waits for the order's ERP posting, then posts a credit
//!   memo of exactly the refund (lines with their stock disposition, tax,
//!   shipping, adjustments);
//! - `shop_refund` records a till return on the shop's order.
//!
//! A return that arrives before its order (or before the order's accrual or
//! posting) is retried until they are there: the end state is the one of the
//! natural order.

use std::sync::Arc;
use std::time::Duration;

use crate::connectors::{
    external_id, EcommerceConnector, ErpConnector, ErpCreditMemo, ErpLine, LoyaltyConnector,
    ReversalRequest, ShopRefund, ShopRefundLine,
};
use crate::events::{
    CreditMemoLine, CreditMemoPosted, Envelope, LoyaltyAccrued, LoyaltyReversed, OrderPostedToErp,
    RefundIssued, ShopRefundRecorded,
};
use crate::idempotency::{payload_hash, IdempotencyKey, LeasePolicy};
use crate::loyalty_rules::LoyaltyRules;
use crate::model::{LineKind, Platform, Refund};
use crate::money::Money;
use crate::ports::{EventBus, StateStore};
use crate::refund_ledger::{AdmittedRefund, OrderFacts};
use crate::resilience::{CircuitBreaker, ConnectorError};
use crate::saga::{SagaRecord, StepStatus};

use super::erp_posting::ErpPostingConfig;
use super::{run_step, Invocation, StepOutcome, StepRun};

pub const LOYALTY_STEP: &str = "loyalty_reversal";
pub const CREDIT_MEMO_STEP: &str = "credit_memo";
pub const SHOP_STEP: &str = "shop_refund";
pub const SOURCE: &str = "retailflow.return-reversal";

/// How long a return waits before looking again for what it depends on.
const WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Default)]
pub struct ReturnReversalConfig {
    /// The same earning rules as the accrual: they say which refunded
    /// merchandise takes points back.
    pub rules: LoyaltyRules,
    /// ERP items for shipping, tax, gift cards and other charges.
    pub erp: ErpPostingConfig,
    pub lease: LeasePolicy,
}

/// A system a sub-step talks to, with its circuit breaker.
pub struct Guarded<C: ?Sized> {
    pub connector: Arc<C>,
    pub breaker: Arc<CircuitBreaker>,
}

impl<C: ?Sized> Guarded<C> {
    pub fn new(connector: Arc<C>, breaker: Arc<CircuitBreaker>) -> Self {
        Guarded { connector, breaker }
    }

    async fn call<T, Fut>(
        &self,
        inv: Invocation,
        f: impl FnOnce(Arc<C>) -> Fut,
    ) -> Result<T, StepOutcome>
    where
        Fut: std::future::Future<Output = Result<T, ConnectorError>>,
    {
        self.breaker.permit(inv.now)?;
        let result = f(self.connector.clone()).await;
        self.breaker.record(inv.now, result.as_ref().map(|_| ()));
        result.map_err(StepOutcome::from)
    }
}

pub struct ReturnReversal {
    store: Arc<dyn StateStore>,
    bus: Arc<dyn EventBus>,
    erp: Guarded<dyn ErpConnector>,
    loyalty: Guarded<dyn LoyaltyConnector>,
    /// Per platform, where till returns are recorded.
    shops: Vec<(Platform, Guarded<dyn EcommerceConnector>)>,
    config: ReturnReversalConfig,
}

/// The return's saga key: its sub-steps' claims and results live there.
pub fn return_key(refund: &Refund) -> String {
    format!("{}:return:{}", refund.order.key(), refund.refund_id)
}

/// A return that started outside the shop (the envelope's source is the
/// till), so the shop does not know it yet.
fn started_outside_shop(event: &Envelope<RefundIssued>) -> bool {
    event
        .source
        .starts_with(&format!("{}:", Platform::PointOfSale.as_str()))
}

impl ReturnReversal {
    pub fn new(
        store: Arc<dyn StateStore>,
        bus: Arc<dyn EventBus>,
        erp: Guarded<dyn ErpConnector>,
        loyalty: Guarded<dyn LoyaltyConnector>,
        shops: Vec<(Platform, Guarded<dyn EcommerceConnector>)>,
        config: ReturnReversalConfig,
    ) -> Self {
        ReturnReversal {
            store,
            bus,
            erp,
            loyalty,
            shops,
            config,
        }
    }

    pub async fn handle(&self, event: &Envelope<RefundIssued>, inv: Invocation) -> StepOutcome {
        let refund = &event.detail.refund;
        let order_key = refund.order.key();
        let (saga, position) = match self.admit(refund, &order_key, inv).await {
            Ok(admitted) => admitted,
            Err(outcome) => return outcome,
        };
        let ctx = Ctx {
            event,
            refund,
            order_key: &order_key,
            return_key: return_key(refund),
            // Plain data: serializing cannot fail.
            hash: payload_hash(&serde_json::to_vec(refund).unwrap_or_default()),
            saga: &saga,
            position,
            inv,
        };
        let mut outcomes = vec![
            self.reverse_points(&ctx).await,
            self.credit_memo(&ctx).await,
        ];
        if started_outside_shop(event) {
            outcomes.push(self.shop_refund(&ctx).await);
        }
        combine(outcomes)
    }

    /// Puts the refund in the order's ledger (once), returning the saga as
    /// read and the refund's place.
    async fn admit(
        &self,
        refund: &Refund,
        order_key: &str,
        inv: Invocation,
    ) -> Result<(SagaRecord, usize), StepOutcome> {
        for _ in 0..5 {
            let saga = self.store.saga(order_key).await?;
            let Some((saga, facts)) = saga.and_then(|s| s.order_facts.clone().map(|f| (s, f)))
            else {
                return Err(waiting(format!(
                    "order {order_key} has not been received yet"
                )));
            };
            if let Some(pos) = saga.refund_ledger.position(&refund.refund_id) {
                return Ok((saga, pos));
            }
            let entry = self.ledger_entry(refund, inv)?;
            let next =
                saga.refund_ledger
                    .admit(&facts, entry)
                    .map_err(|e| StepOutcome::Reject {
                        reason: e.to_string(),
                    })?;
            if self
                .store
                .write_refund_ledger(order_key, &next, inv.now)
                .await?
            {
                let pos = next.refunds.len() - 1;
                let mut saga = saga;
                saga.refund_ledger = next;
                return Ok((saga, pos));
            }
            // Another return of this order was admitted meanwhile: read again.
        }
        Err(StepOutcome::Retry {
            reason: format!("refund ledger of {order_key} kept changing under this return"),
            retry_after: Some(Duration::from_secs(1)),
        })
    }

    fn ledger_entry(
        &self,
        refund: &Refund,
        inv: Invocation,
    ) -> Result<AdmittedRefund, StepOutcome> {
        let loyalty_base = self
            .config
            .rules
            .refund_eligible_amount(refund)
            .map_err(|e| StepOutcome::Reject {
                reason: e.to_string(),
            })?;
        Ok(AdmittedRefund {
            refund_id: refund.refund_id.clone(),
            total: refund.total.shop,
            loyalty_base,
            admitted_at: inv.now,
        })
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'a>, step: &'static str, claim: bool) -> StepRun<'a> {
        StepRun {
            store: self.store.as_ref(),
            bus: self.bus.as_ref(),
            key: IdempotencyKey::saga_step(ctx.return_key.clone(), step),
            payload_hash: ctx.hash.clone(),
            claim,
            lease: &self.config.lease,
            source: SOURCE,
            causation_id: ctx.event.event_id.to_string(),
            correlation_id: ctx.order_key,
            inv: ctx.inv,
        }
    }

    async fn reverse_points(&self, ctx: &Ctx<'_>) -> StepOutcome {
        let accrued: LoyaltyAccrued = match completed(ctx.saga, super::loyalty_accrual::STEP) {
            Ok(a) => a,
            Err(outcome) => return outcome,
        };
        // Journals are not deduplicated by the platform: always claim.
        run_step(self.run(ctx, LOYALTY_STEP, true), || async {
            self.reversal(ctx, &accrued).await
        })
        .await
    }

    async fn reversal(
        &self,
        ctx: &Ctx<'_>,
        accrued: &LoyaltyAccrued,
    ) -> Result<LoyaltyReversed, StepOutcome> {
        let r = &ctx.refund.order;
        let entry = &ctx.saga.refund_ledger.refunds[ctx.position];
        let mut detail = LoyaltyReversed {
            order: r.clone(),
            refund_id: ctx.refund.refund_id.clone(),
            loyalty_system: self.loyalty.connector.system().to_string(),
            membership_number: accrued.membership_number.clone(),
            method: None,
            external_transaction_number: None,
            journal_id: None,
            points: 0,
            refunded_base: entry.loyalty_base,
            skipped_reason: None,
        };
        let (Some(journal), Some(member)) = (&accrued.journal_id, &accrued.membership_number)
        else {
            detail.skipped_reason = Some("the order earned no points".into());
            return Ok(detail);
        };
        let reject = |e: crate::money::MoneyError| StepOutcome::Reject {
            reason: e.to_string(),
        };
        let base = ctx
            .saga
            .refund_ledger
            .reversal_base(ctx.position, accrued.points, accrued.eligible)
            .map_err(reject)?;
        let points = base.points_to_reverse(entry.loyalty_base).map_err(reject)?;
        let whole_order = ctx.position == 0 && entry.loyalty_base.minor >= accrued.eligible.minor;
        if whole_order && accrued.points > 0 {
            let cancelled = self
                .loyalty
                .call(ctx.inv, |l| async move {
                    l.cancel_accrual(journal, "Order returned").await
                })
                .await?;
            detail.method = Some("cancel_accrual".into());
            detail.journal_id = cancelled.or(Some(journal.clone()));
            detail.points = accrued.points;
            return Ok(detail);
        }
        if points == 0 {
            detail.skipped_reason = Some("the refund takes back no points".into());
            return Ok(detail);
        }
        let ext = external_id(
            "rev",
            &[
                r.platform.as_str(),
                &r.shop,
                &r.order_id,
                &ctx.refund.refund_id,
            ],
        );
        let request = ReversalRequest {
            external_transaction_number: ext.clone(),
            membership_number: member.clone(),
            activity_at: ctx.refund.created_at,
            amount: entry.loyalty_base,
            points,
        };
        let journal = self
            .loyalty
            .call(ctx.inv, |l| async move {
                match l
                    .find_reversal(&request.external_transaction_number)
                    .await?
                {
                    Some(j) => Ok(j),
                    None => l.post_reversal(&request).await,
                }
            })
            .await?;
        detail.method = Some("debit".into());
        detail.external_transaction_number = Some(ext);
        detail.journal_id = Some(journal.journal_id);
        detail.points = points;
        Ok(detail)
    }

    async fn credit_memo(&self, ctx: &Ctx<'_>) -> StepOutcome {
        let posted: OrderPostedToErp = match completed(ctx.saga, super::erp_posting::STEP) {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        let Some(facts) = ctx.saga.order_facts.as_ref() else {
            return waiting("the order's facts are not recorded yet".into());
        };
        let memo = match credit_memo_for(ctx.refund, facts, &self.config.erp) {
            Ok(m) => m,
            Err(reason) => return StepOutcome::Reject { reason },
        };
        let native = self.erp.connector.dedups_natively();
        let Some(customer_id) = posted.customer_id.clone() else {
            return StepOutcome::Reject {
                reason: "the order's ERP posting did not record its customer".into(),
            };
        };
        run_step(self.run(ctx, CREDIT_MEMO_STEP, !native), || async {
            let doc = self
                .erp
                .call(ctx.inv, |erp| {
                    let memo = memo.clone();
                    let customer_id = customer_id.clone();
                    async move {
                        if !native {
                            if let Some(doc) = erp.find_credit_memo(&memo.external_id).await? {
                                return Ok(doc);
                            }
                        }
                        erp.post_credit_memo(&memo, &customer_id).await
                    }
                })
                .await?;
            Ok(CreditMemoPosted {
                order: ctx.refund.order.clone(),
                refund_id: ctx.refund.refund_id.clone(),
                erp_system: self.erp.connector.system().to_string(),
                external_id: memo.external_id.clone(),
                document_id: doc.id,
                document_number: doc.number,
                total: doc.total,
                lines: memo
                    .lines
                    .iter()
                    .map(|l| CreditMemoLine {
                        item: l.item.clone(),
                        quantity: l.quantity,
                        amount: l.amount,
                        restock: l.restock,
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn shop_refund(&self, ctx: &Ctx<'_>) -> StepOutcome {
        let r = &ctx.refund.order;
        let Some((_, shop)) = self.shops.iter().find(|(p, _)| *p == r.platform) else {
            return StepOutcome::Reject {
                reason: format!(
                    "no ecommerce connector for {}: the till return cannot be recorded in the shop",
                    r.platform.as_str()
                ),
            };
        };
        let request = shop_refund_for(ctx.refund);
        run_step(self.run(ctx, SHOP_STEP, true), || async {
            let platform_refund_id = shop
                .call(ctx.inv, |c| {
                    let request = request.clone();
                    async move {
                        match c.find_refund(&request).await? {
                            Some(id) => Ok(id),
                            None => c.record_refund(&request).await,
                        }
                    }
                })
                .await?;
            Ok(ShopRefundRecorded {
                order: r.clone(),
                refund_id: ctx.refund.refund_id.clone(),
                platform_refund_id,
                total: ctx.refund.total.shop,
            })
        })
        .await
    }
}

/// What the sub-steps share.
struct Ctx<'a> {
    event: &'a Envelope<RefundIssued>,
    refund: &'a Refund,
    order_key: &'a str,
    return_key: String,
    hash: String,
    saga: &'a SagaRecord,
    position: usize,
    inv: Invocation,
}

fn waiting(reason: String) -> StepOutcome {
    StepOutcome::Retry {
        reason,
        retry_after: Some(WAIT),
    }
}

/// The completed result of an order step, or a retry while it is not done.
fn completed<T: serde::de::DeserializeOwned>(
    saga: &SagaRecord,
    step: &str,
) -> Result<T, StepOutcome> {
    match saga.step(step) {
        Some(rec) if rec.status == StepStatus::Completed => {
            serde_json::from_value(rec.result.clone().unwrap_or_default()).map_err(|e| {
                StepOutcome::Reject {
                    reason: format!("the order's {step} result is unreadable: {e}"),
                }
            })
        }
        _ => Err(waiting(format!(
            "waiting for the order's {step} to complete"
        ))),
    }
}

/// Rejected beats retry beats done: a reject needs people whatever else
/// happened; a retry redelivers the message, and the sub-steps already done
/// find themselves done.
fn combine(outcomes: Vec<StepOutcome>) -> StepOutcome {
    let mut done = Vec::new();
    let mut retry: Option<StepOutcome> = None;
    for o in outcomes {
        match o {
            StepOutcome::Reject { .. } => return o,
            StepOutcome::Retry {
                reason,
                retry_after,
            } => {
                retry = Some(match retry {
                    Some(StepOutcome::Retry {
                        reason: r0,
                        retry_after: a0,
                    }) => StepOutcome::Retry {
                        reason: format!("{r0}; {reason}"),
                        retry_after: a0.min(retry_after).or(a0).or(retry_after),
                    },
                    _ => StepOutcome::Retry {
                        reason,
                        retry_after,
                    },
                })
            }
            StepOutcome::Done { summary } => done.push(summary),
        }
    }
    retry.unwrap_or(StepOutcome::Done {
        summary: serde_json::Value::Array(done),
    })
}

/// The credit memo of a refund, in shop currency: returned lines with their
/// disposition, then shipping, tax (unless prices include it) and other
/// amounts; it sums to the refund total or is refused.
pub fn credit_memo_for(
    refund: &Refund,
    facts: &OrderFacts,
    items: &ErpPostingConfig,
) -> Result<ErpCreditMemo, String> {
    let r = &refund.order;
    let cur = refund.total.shop.currency;
    let m = |e: crate::money::MoneyError| e.to_string();
    let mut lines = Vec::new();
    let mut tax = Money::zero(cur);
    for l in &refund.lines {
        let item = match (l.kind, &l.sku) {
            (LineKind::GiftCard, _) => items.gift_card_item.clone(),
            (LineKind::Merchandise, Some(sku)) => sku.clone(),
            (LineKind::Merchandise, None) => items.unmapped_item.clone(),
        };
        let amount = if facts.taxes_included {
            l.subtotal.shop.checked_add(l.tax.shop).map_err(m)?
        } else {
            tax = tax.checked_add(l.tax.shop).map_err(m)?;
            l.subtotal.shop
        };
        let qty = l.quantity.max(1);
        // Unit price rounded up; ERPs that take a discount see the rest.
        let unit = Money::new(
            amount.minor.div_euclid(i64::from(qty))
                + i64::from(amount.minor.rem_euclid(i64::from(qty)) != 0),
            cur,
        );
        lines.push(ErpLine {
            item,
            description: format!("Return of line {}", l.line_id),
            quantity: l.quantity,
            unit_price: unit,
            amount,
            restock: Some(l.restock_type),
        });
    }
    let one = |item: &str, description: &str, amount: Money| ErpLine {
        item: item.to_string(),
        description: description.to_string(),
        quantity: 1,
        unit_price: amount,
        amount,
        restock: None,
    };
    let shipping = if facts.taxes_included {
        refund
            .shipping
            .shop
            .checked_add(refund.shipping_tax.shop)
            .map_err(m)?
    } else {
        tax = tax.checked_add(refund.shipping_tax.shop).map_err(m)?;
        refund.shipping.shop
    };
    if !shipping.is_zero() {
        lines.push(one(&items.shipping_item, "Shipping refunded", shipping));
    }
    if !tax.is_zero() {
        lines.push(one(&items.tax_item, "Tax refunded", tax));
    }
    let other = refund
        .adjustments
        .shop
        .checked_add(refund.duties.shop)
        .map_err(m)?;
    if !other.is_zero() {
        lines.push(one(
            &items.other_charges_item,
            "Refund adjustments and duties",
            other,
        ));
    }
    let sum = Money::sum(cur, lines.iter().map(|l| &l.amount)).map_err(m)?;
    if sum != refund.total.shop {
        return Err(format!(
            "credit memo lines add up to {sum}, not the refund total {}",
            refund.total.shop
        ));
    }
    Ok(ErpCreditMemo {
        external_id: external_id(
            "cm",
            &[r.platform.as_str(), &r.shop, &r.order_id, &refund.refund_id],
        ),
        customer_external_id: String::new(),
        order_date: refund.created_at.date_naive(),
        memo: format!("{} refund {}", r.platform.as_str(), refund.refund_id),
        lines,
        total: refund.total.shop,
    })
}

/// What the shop records for a till return.
pub fn shop_refund_for(refund: &Refund) -> ShopRefund {
    let r = &refund.order;
    ShopRefund {
        order: r.clone(),
        reference: external_id(
            "rf",
            &[r.platform.as_str(), &r.shop, &r.order_id, &refund.refund_id],
        ),
        lines: refund
            .lines
            .iter()
            .map(|l| ShopRefundLine {
                line_id: l.line_id.clone(),
                quantity: l.quantity,
                restock: l.restock_type,
                location_id: l.location_id.clone(),
            })
            .collect(),
        shipping: refund.shipping.shop,
        total: refund.total.shop,
    }
}
