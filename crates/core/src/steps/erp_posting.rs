//! ErpPosting: an `OrderPlaced` becomes exactly one ERP sales order.
//!
//! The customer is upserted by the shop's customer id first (guests post to
//! the configured guest customer). With an ERP that upserts by external id
//! (NetSuite) the step posts without a claim and records the result in one
//! write; with one that does not (Business Central) it claims first and looks
//! the order up before posting. Either way the ERP sees one document per
//! order, whatever the redeliveries, crashes and retries.

use std::sync::Arc;

use crate::events::{Envelope, OrderPlaced, OrderPostedToErp};
use crate::idempotency::external_id;
use crate::idempotency::{IdempotencyKey, LeasePolicy};
use crate::model::{LineKind, Order};
use crate::money::Money;
use crate::ports::erp::{ErpConnector, ErpCustomer, ErpLine, ErpSalesOrder};
use crate::ports::{EventBus, StateStore};
use crate::resilience::CircuitBreaker;

use super::{run_step, Invocation, StepOutcome, StepRun};

pub const STEP: &str = "erp_post";
pub const SOURCE: &str = "retailflow.erp-post";

/// The external id the ERP knows an order's sales order by.
pub fn sales_order_external_id(r: &crate::model::OrderRef) -> String {
    external_id("so", &[r.platform.as_str(), &r.shop, &r.order_id])
}

/// An ERP document that cannot be built from the shop's figures: never
/// retried, the order or refund goes to review with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// Amounts that cannot be combined (another currency, out of range).
    #[error(transparent)]
    Money(#[from] crate::money::MoneyError),
    /// The lines do not add up to the document's total; says both.
    #[error("{0}")]
    DoesNotAddUp(String),
}

/// ERP items for what is not a SKU, and the guest customer.
#[derive(Debug, Clone)]
pub struct ErpPostingConfig {
    pub guest_customer_external_id: String,
    pub shipping_item: String,
    pub tax_item: String,
    pub gift_card_item: String,
    /// For merchandise lines without a SKU (custom items).
    pub unmapped_item: String,
    /// Tips, duties and other charges.
    pub other_charges_item: String,
    pub lease: LeasePolicy,
}

impl Default for ErpPostingConfig {
    fn default() -> Self {
        ErpPostingConfig {
            guest_customer_external_id: "retailflow-guest".into(),
            shipping_item: "SHIPPING".into(),
            tax_item: "SALES-TAX".into(),
            gift_card_item: "GIFT-CARD".into(),
            unmapped_item: "MISC-ITEM".into(),
            other_charges_item: "OTHER-CHARGES".into(),
            lease: LeasePolicy::default(),
        }
    }
}

pub struct ErpPosting {
    store: Arc<dyn StateStore>,
    bus: Arc<dyn EventBus>,
    erp: Arc<dyn ErpConnector>,
    breaker: Arc<CircuitBreaker>,
    config: ErpPostingConfig,
}

impl ErpPosting {
    pub fn new(
        store: Arc<dyn StateStore>,
        bus: Arc<dyn EventBus>,
        erp: Arc<dyn ErpConnector>,
        breaker: Arc<CircuitBreaker>,
        config: ErpPostingConfig,
    ) -> Self {
        ErpPosting {
            store,
            bus,
            erp,
            breaker,
            config,
        }
    }

    pub async fn handle(&self, event: &Envelope<OrderPlaced>, inv: Invocation) -> StepOutcome {
        let order = &event.detail.order;
        let order_key = order.order.key();
        let native = self.erp.dedups_natively();
        // Posting without a claim is safe only while the order is open and
        // unposted, so every message looks first, the first delivery too:
        // an EventBridge or SQS duplicate, or intake publishing a
        // redelivered webhook again, arrives at receive count 1, and an upsert would
        // reopen a sales order the cancellation has closed.
        if native {
            match self.store.saga(&order_key).await {
                Ok(Some(saga)) => {
                    if saga.refund_ledger.cancelled_at.is_some() {
                        let reason = "the order was cancelled; it is not posted again".to_string();
                        return self.undo(&order.order, reason, inv).await;
                    }
                    if let Some(done) = saga
                        .step(STEP)
                        .filter(|r| r.status == crate::saga::StepStatus::Completed)
                    {
                        return super::republish::<OrderPostedToErp>(
                            self.bus.as_ref(),
                            &IdempotencyKey::saga_step(order_key.clone(), STEP),
                            done.result.clone().unwrap_or_default(),
                            SOURCE,
                            (&event.event_id.to_string(), &order_key),
                            inv.now,
                        )
                        .await;
                    }
                }
                Ok(None) => {}
                Err(e) => return e.into(),
            }
        }
        let run = StepRun {
            store: self.store.as_ref(),
            bus: self.bus.as_ref(),
            key: IdempotencyKey::saga_step(order_key.clone(), STEP),
            payload_hash: event.recorded_hash(order),
            legacy_hash: event.legacy_hash(order),
            claim: !native,
            lease: &self.config.lease,
            source: SOURCE,
            causation_id: event.event_id.to_string(),
            correlation_id: &order_key,
            inv,
        };
        let outcome = run_step(run, || async {
            let sales_order = self.sales_order(order).map_err(|e| StepOutcome::Reject {
                reason: e.to_string(),
            })?;
            let posted = self.post(order, &sales_order, native, inv).await?;
            Ok(OrderPostedToErp {
                order: order.order.clone(),
                erp_system: self.erp.system().to_string(),
                external_id: sales_order.external_id,
                document_id: posted.0.id.clone(),
                document_number: posted.0.number.clone(),
                total: posted.0.total,
                customer_id: Some(posted.1),
            })
        })
        .await;
        match outcome {
            StepOutcome::Cancelled { reason } => self.undo(&order.order, reason, inv).await,
            other => other,
        }
    }

    /// The order was cancelled while it was being posted (an upserting ERP
    /// posts without a claim, so only its completion write sees the
    /// cancellation): cancel what may have been posted, once the
    /// cancellation has decided the order is to be cancelled (not credited
    /// by refunds that came first). Harmless when nothing was posted.
    async fn undo(
        &self,
        order: &crate::model::OrderRef,
        reason: String,
        inv: Invocation,
    ) -> StepOutcome {
        match super::return_reversal::cancellation_decision(self.store.as_ref(), order).await {
            // Credited, or kept open by the ERP: not to be closed.
            Ok(Some(method)) if method == "credited" || method == "left_open" => {
                return StepOutcome::Cancelled { reason };
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                return StepOutcome::Retry {
                    reason: "waiting for the order's cancellation to decide in the ERP".into(),
                    retry_after: Some(std::time::Duration::from_secs(60)),
                }
            }
            Err(outcome) => return outcome,
        }
        if let Err(e) = self.breaker.permit(inv.now) {
            return e.into();
        }
        let result = self
            .erp
            .cancel_sales_order(&sales_order_external_id(order))
            .await;
        self.breaker.record(inv.now, result.as_ref().map(|_| ()));
        match result {
            Ok(_) => StepOutcome::Cancelled { reason },
            Err(e) => e.into(),
        }
    }

    /// Customer upsert, then lookup (unless the ERP upserts) and post, all
    /// behind the circuit breaker.
    async fn post(
        &self,
        order: &Order,
        so: &ErpSalesOrder,
        native: bool,
        inv: Invocation,
    ) -> Result<(crate::ports::erp::ErpDocument, String), StepOutcome> {
        self.breaker.permit(inv.now)?;
        let result = async {
            let customer_id = self.erp.upsert_customer(&self.customer(order)).await?;
            if !native {
                if let Some(doc) = self.erp.find_sales_order(&so.external_id).await? {
                    return Ok((doc, customer_id));
                }
            }
            let doc = self.erp.post_sales_order(so, &customer_id).await?;
            Ok((doc, customer_id))
        }
        .await;
        self.breaker.record(inv.now, result.as_ref().map(|_| ()));
        // A refusal of the sales order can quote the customer from the
        // ERP's own records, which the request did not carry: masked here,
        // where the order's customer is known.
        let known = order
            .customer
            .as_ref()
            .map(crate::observability::PersonalData::of_customer)
            .unwrap_or_default();
        result.map_err(|e| StepOutcome::from(known.mask_error(e)))
    }

    fn customer(&self, order: &Order) -> ErpCustomer {
        let r = &order.order;
        match order
            .customer
            .as_ref()
            .and_then(|c| c.customer_id.as_deref().map(|id| (c, id)))
        {
            Some((c, id)) => ErpCustomer {
                external_id: external_id("cu", &[r.platform.as_str(), &r.shop, id]),
                first_name: c.first_name.clone(),
                last_name: c.last_name.clone(),
                email: c.email.clone(),
            },
            None => ErpCustomer {
                external_id: self.config.guest_customer_external_id.clone(),
                first_name: None,
                last_name: Some("Guest".into()),
                email: None,
            },
        }
    }

    /// The sales order in shop currency; its lines sum to the order total.
    pub fn sales_order(&self, order: &Order) -> Result<ErpSalesOrder, DocumentError> {
        let r = &order.order;
        let cur = order.shop_currency;
        let mut lines = Vec::new();
        for l in &order.lines {
            let item = match (l.kind, &l.sku) {
                (LineKind::GiftCard, _) => self.config.gift_card_item.clone(),
                (LineKind::Merchandise, Some(sku)) => sku.clone(),
                (LineKind::Merchandise, None) => self.config.unmapped_item.clone(),
            };
            lines.push(ErpLine {
                item,
                description: l.title.clone(),
                quantity: l.quantity,
                unit_price: l.unit_price.shop,
                amount: l.net.shop,
                restock: None,
            });
        }
        let t = &order.totals;
        let one = |item: &str, description: &str, amount: Money| ErpLine {
            item: item.to_string(),
            description: description.to_string(),
            quantity: 1,
            unit_price: amount,
            amount,
            restock: None,
        };
        let shipping = t.shipping.shop.checked_sub(t.shipping_discounts.shop)?;
        if !shipping.is_zero() {
            lines.push(one(&self.config.shipping_item, "Shipping", shipping));
        }
        if !order.taxes_included && !t.tax.shop.is_zero() {
            lines.push(one(&self.config.tax_item, "Tax", t.tax.shop));
        }
        if !t.other_charges.shop.is_zero() {
            lines.push(one(
                &self.config.other_charges_item,
                "Other charges",
                t.other_charges.shop,
            ));
        }
        let sum = Money::sum(cur, lines.iter().map(|l| &l.amount))?;
        if sum != t.total.shop {
            return Err(DocumentError::DoesNotAddUp(format!(
                "sales order lines add up to {sum}, not the order total {}",
                t.total.shop
            )));
        }
        Ok(ErpSalesOrder {
            external_id: sales_order_external_id(r),
            customer_external_id: self.customer(order).external_id,
            order_date: order.created_at.date_naive(),
            memo: format!("{} order {}", r.platform.as_str(), order.display_name),
            lines,
            total: t.total.shop,
            order_key: Some(r.key()),
        })
    }
}
