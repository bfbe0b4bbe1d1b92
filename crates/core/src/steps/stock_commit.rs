//! StockCommit: a placed order takes its units out of stock for good, once;
//! a cancelled order gives them back.
//!
//! The order's checkout held its units while the customer paid
//! (`CheckoutValidation`); `OrderPlaced` turns that hold into a committed
//! decrement, or takes the units from free stock when there was no live
//! hold (a till sale, a hold that expired, a cart changed after
//! validation), and reports any unit sold beyond what was free. The same
//! step counts the order's promotion codes towards their per-customer
//! limits. The stock write is also idempotent per order by itself (its
//! `COMMIT#` record is written in the same transaction), so a crash
//! between the commit and the step's record takes nothing twice.

use std::sync::Arc;

use crate::checkout::validation::CheckoutValidation;
use crate::events::{
    step_event_id, Envelope, EventDetail, OrderCancelled, OrderPlaced, OrderPostedToErp,
    StockCommitted, StockRestocked, StockUnits,
};
use crate::idempotency::{IdempotencyKey, LeasePolicy};
use crate::model::{LineKind, Order};
use crate::ports::catalog::Catalog;
use crate::ports::stock::{
    CommitOutcome, OrderCommit, PostedOutcome, ReservationLine, StockReservations,
};
use crate::ports::{EventBus, StateStore};

use super::{publish, run_step, Invocation, StepOutcome, StepRun};

pub const STEP: &str = "stock_commit";
pub const RESTOCK_STEP: &str = "stock_restock";
pub const SOURCE: &str = "retailflow.stock-commit";

pub struct StockCommit {
    store: Arc<dyn StateStore>,
    bus: Arc<dyn EventBus>,
    stock: Arc<dyn StockReservations>,
    catalog: Arc<dyn Catalog>,
    lease: LeasePolicy,
}

/// The units an order takes from stock: its merchandise lines with a SKU
/// (gift cards and lines without a SKU are not stocked).
pub fn stocked_lines(order: &Order) -> Vec<ReservationLine> {
    order
        .lines
        .iter()
        .filter(|l| l.kind == LineKind::Merchandise && l.quantity > 0)
        .filter_map(|l| {
            Some(ReservationLine {
                sku: l.sku.clone().filter(|s| !s.is_empty())?,
                quantity: l.quantity,
            })
        })
        .collect()
}

fn units(lines: &[ReservationLine]) -> Vec<StockUnits> {
    lines
        .iter()
        .map(|l| StockUnits {
            sku: l.sku.clone(),
            quantity: l.quantity,
        })
        .collect()
}

impl StockCommit {
    pub fn new(
        store: Arc<dyn StateStore>,
        bus: Arc<dyn EventBus>,
        stock: Arc<dyn StockReservations>,
        catalog: Arc<dyn Catalog>,
        lease: LeasePolicy,
    ) -> Self {
        StockCommit {
            store,
            bus,
            stock,
            catalog,
            lease,
        }
    }

    pub async fn handle(&self, event: &Envelope<OrderPlaced>, inv: Invocation) -> StepOutcome {
        let order = &event.detail.order;
        let order_key = order.order.key();
        let run = StepRun {
            store: self.store.as_ref(),
            bus: self.bus.as_ref(),
            key: IdempotencyKey::saga_step(order_key.clone(), STEP),
            payload_hash: event.recorded_hash(order),
            legacy_hash: event.legacy_hash(order),
            // Claimed like the other steps: a redelivery republishes the
            // first run's facts, and a cancelled order is refused up front.
            claim: true,
            lease: &self.lease,
            source: SOURCE,
            causation_id: event.event_id.to_string(),
            correlation_id: &order_key,
            inv,
        };
        match run_step(run, || self.commit(order, inv)).await {
            // Cancelled before this step could record: whatever it took
            // goes back.
            StepOutcome::Cancelled { reason } => {
                let hold = order
                    .checkout_id
                    .as_deref()
                    .map(CheckoutValidation::reservation_id);
                match self.stock.restock_order(&order_key, hold.as_deref()).await {
                    Ok(_) => StepOutcome::Cancelled { reason },
                    Err(e) => e.into(),
                }
            }
            other => other,
        }
    }

    async fn commit(&self, order: &Order, inv: Invocation) -> Result<StockCommitted, StepOutcome> {
        let order_key = order.order.key();
        let lines = stocked_lines(order);
        let commit = OrderCommit {
            order_key: order_key.clone(),
            reservation_id: order
                .checkout_id
                .as_deref()
                .map(CheckoutValidation::reservation_id),
            lines: lines.clone(),
        };
        let outcome = self.stock.commit_order(&commit, inv.now).await?;
        let (from_hold, oversold, untracked) = match outcome {
            CommitOutcome::FromHold => (true, Vec::new(), Vec::new()),
            CommitOutcome::WithoutHold {
                oversold,
                untracked,
            } => (false, oversold, untracked),
            // A redelivery after a crash between the commit and its record:
            // the first run's facts are not kept, the units are not taken
            // twice either way.
            CommitOutcome::AlreadyCommitted => {
                (order.checkout_id.is_some(), Vec::new(), Vec::new())
            }
            CommitOutcome::OrderCancelled => {
                return Err(StepOutcome::Cancelled {
                    reason: format!("{order_key} was cancelled before its stock was committed"),
                })
            }
        };
        if !oversold.is_empty() {
            tracing::warn!(order = %order_key, oversold = ?oversold, "order sold units that were not free");
        }
        let mut promotion_uses = Vec::new();
        if let Some(customer) = order
            .customer
            .as_ref()
            .and_then(|c| c.customer_id.as_deref())
        {
            for code in &order.discount_codes {
                self.catalog
                    .record_promotion_use(code, customer, &order_key)
                    .await?;
                promotion_uses.push(code.clone());
            }
        }
        Ok(StockCommitted {
            order: order.order.clone(),
            checkout_id: order.checkout_id.clone(),
            from_hold,
            lines: units(
                &lines
                    .into_iter()
                    .filter(|l| !untracked.contains(&l.sku))
                    .collect::<Vec<_>>(),
            ),
            oversold: units(&oversold),
            untracked,
            promotion_uses,
        })
    }

    /// `OrderCancelled`: the order's committed units come back on hand (a
    /// cancelled order has not shipped). Idempotent by the commit record's
    /// state; an order cancelled before its commit ran is restocked by the
    /// commit step itself when it finds the saga cancelled.
    pub async fn handle_cancellation(
        &self,
        event: &Envelope<OrderCancelled>,
        inv: Invocation,
    ) -> StepOutcome {
        let order = &event.detail.cancellation.order;
        let order_key = order.key();
        let restocked = match self.stock.restock_order(&order_key, None).await {
            Ok(r) => r,
            Err(e) => return e.into(),
        };
        let detail = StockRestocked {
            order: order.clone(),
            restocked,
        };
        match publish(
            self.bus.as_ref(),
            &detail,
            step_event_id(&order_key, RESTOCK_STEP),
            &order_key,
            SOURCE,
            &event.event_id.to_string(),
            inv.now,
        )
        .await
        {
            // Plain data: serializing cannot fail.
            Ok(()) => StepOutcome::Done {
                summary: serde_json::to_value(&detail).unwrap_or_default(),
            },
            Err(e) => e.into(),
        }
    }
}

impl StockCommit {
    /// `OrderPostedToErp`: the ERP has the order's sales order, so its
    /// units are in the ERP's own available count; ERP counts read from now
    /// on are applied without taking them off again. Idempotent by the commit record's `posted` flag.
    pub async fn handle_posted(
        &self,
        event: &Envelope<OrderPostedToErp>,
        inv: Invocation,
    ) -> StepOutcome {
        let order_key = event.detail.order.key();
        // When retailflow learns of it, not when the poster started: by now
        // the ERP has the order for sure, so a count read before this moment
        // is treated as maybe not including it.
        match self.stock.mark_posted(&order_key, inv.now).await {
            // The ERP was faster than this step's commit (both start from
            // OrderPlaced): wait for the commit, unless the order was
            // cancelled first (it will never commit).
            Ok(PostedOutcome::NotCommitted) => match self.store.saga(&order_key).await {
                Ok(Some(s)) if s.event_types.contains(OrderCancelled::EVENT_TYPE) => {
                    StepOutcome::Done {
                        summary: serde_json::json!({ "order": order_key, "posted": "cancelled" }),
                    }
                }
                Ok(_) => StepOutcome::Retry {
                    reason: format!("stock of {order_key} is not committed yet"),
                    retry_after: Some(std::time::Duration::from_secs(30)),
                },
                Err(e) => e.into(),
            },
            Ok(outcome) => StepOutcome::Done {
                summary: serde_json::json!({ "order": order_key, "posted": outcome }),
            },
            Err(e) => e.into(),
        }
    }

    /// The scheduled sweep: holds of abandoned checkouts go back to stock
    /// even when no checkout comes looking for their SKUs.
    pub async fn sweep(&self, inv: Invocation) -> StepOutcome {
        match self.stock.sweep_expired(inv.now).await {
            Ok(ended) => StepOutcome::Done {
                summary: serde_json::json!({ "holds_expired": ended }),
            },
            Err(e) => e.into(),
        }
    }
}

/// The `detail-type` of the EventBridge schedule's events.
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

/// Runs one queue message through the stock step: an `OrderPlaced`, an
/// `OrderCancelled` or the schedule's tick (sweep expired holds); anything
/// else is rejected (to the DLQ with the reason).
pub async fn handle_stock_message(step: &StockCommit, body: &str, inv: Invocation) -> StepOutcome {
    use super::envelope_from_message;
    let scheduled = serde_json::from_str::<serde_json::Value>(body)
        .is_ok_and(|v| v.get("detail-type").and_then(|d| d.as_str()) == Some(SCHEDULED_EVENT));
    if scheduled {
        return step.sweep(inv).await;
    }
    let kind = envelope_from_message::<serde_json::Value>(body).map(|e| e.event_type);
    let reason = match kind.as_deref() {
        Ok(OrderPlaced::EVENT_TYPE) => match envelope_from_message::<OrderPlaced>(body) {
            Ok(e) => return step.handle(&e, inv).await,
            Err(e) => e.to_string(),
        },
        Ok(OrderCancelled::EVENT_TYPE) => match envelope_from_message::<OrderCancelled>(body) {
            Ok(e) => return step.handle_cancellation(&e, inv).await,
            Err(e) => e.to_string(),
        },
        Ok(OrderPostedToErp::EVENT_TYPE) => match envelope_from_message::<OrderPostedToErp>(body) {
            Ok(e) => return step.handle_posted(&e, inv).await,
            Err(e) => e.to_string(),
        },
        Ok(other) => format!("stock-commit does not take {other} events"),
        Err(e) => e.to_string(),
    };
    StepOutcome::Reject { reason }
}
