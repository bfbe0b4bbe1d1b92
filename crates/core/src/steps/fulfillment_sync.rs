//! FulfillmentSync: the ERP's shipments onto the shop orders, with their
//! tracking, on a schedule.
//!
//! Each run reads the ERP's shipments after the stored watermark
//! ([`ErpShipmentFeed`]), oldest first. Each shipment is its own idempotent
//! unit (claimed in the saga item `<order key>:shipment:<ERP id>`): the
//! shop's connector records it ([`EcommerceConnector::record_fulfillment`],
//! which looks for the tracking number first) and `FulfillmentShipped` is
//! published. Shipments not shipped yet (NetSuite picked or packed) wait.
//! The watermark moves past a shipment only once it is done or set aside,
//! so a shipment left behind is read again (and later ones, found done,
//! cost a claim read and publish their event again under the same id):
//! - a shipment that cannot succeed as is (no retailflow order behind it,
//!   no shop connector for its platform, the shop refuses it) is
//!   quarantined with the reason, for someone to look at, and passed;
//! - a shipment that failed for now (shop throttled or down, credentials
//!   refused) is left for the next tick; other shops' shipments go on.

use std::sync::Arc;

use serde::Serialize;

use crate::events::{FulfillmentShipped, StockUnits};
use crate::idempotency::{payload_hash, IdempotencyKey, LeasePolicy};
use crate::model::{OrderRef, Platform};
use crate::ports::erp::{ErpShipment, ErpShipmentFeed};
use crate::ports::shop::{EcommerceConnector, ShopFulfillment};
use crate::ports::{EventBus, QuarantinedDelivery, StateStore};
use crate::resilience::{CircuitBreaker, ConnectorError};

use super::{run_step, Invocation, StepOutcome, StepRun};
use crate::resilience::Guarded;

pub const STEP: &str = "shop_fulfillment";
pub const SOURCE: &str = "retailflow.fulfillment-sync";
/// The watermark's name in the state store.
pub const CURSOR: &str = "erp-shipments";
/// Most shipment lines one run reads.
pub const MAX_ROWS_PER_RUN: usize = 5000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FulfillmentReport {
    pub erp_system: String,
    pub shipments: usize,
    pub recorded: usize,
    pub quarantined: usize,
    /// Shipments not shipped yet (picked, packed): read again next time.
    pub waiting: usize,
    /// Shipments a shop could not take now: read again next time.
    pub retried: usize,
    /// The watermark after the run.
    pub after_id: u64,
}

pub struct FulfillmentSync {
    store: Arc<dyn StateStore>,
    bus: Arc<dyn EventBus>,
    feed: Arc<dyn ErpShipmentFeed>,
    feed_breaker: Arc<CircuitBreaker>,
    shops: Vec<(Platform, Guarded<dyn EcommerceConnector>)>,
    lease: LeasePolicy,
    /// Whether the shop emails the customer the tracking.
    pub notify_customer: bool,
}

/// The saga key of a shipment: its claim and result live there.
pub fn shipment_key(order: &OrderRef, shipment_id: u64) -> String {
    format!("{}:shipment:{shipment_id}", order.key())
}

impl FulfillmentSync {
    pub fn new(
        store: Arc<dyn StateStore>,
        bus: Arc<dyn EventBus>,
        feed: Arc<dyn ErpShipmentFeed>,
        feed_breaker: Arc<CircuitBreaker>,
        shops: Vec<(Platform, Guarded<dyn EcommerceConnector>)>,
    ) -> Self {
        FulfillmentSync {
            store,
            bus,
            feed,
            feed_breaker,
            shops,
            lease: LeasePolicy::default(),
            notify_customer: true,
        }
    }

    pub async fn run(&self, inv: Invocation) -> StepOutcome {
        let after = match self.store.read_cursor(CURSOR).await {
            Ok(c) => c.and_then(|c| c.parse().ok()).unwrap_or(0),
            Err(e) => return e.into(),
        };
        let mut report = FulfillmentReport {
            erp_system: self.feed.system().to_string(),
            after_id: after,
            ..FulfillmentReport::default()
        };
        if let Err(e) = self.feed_breaker.permit(inv.now) {
            return e.into();
        }
        let read = self.feed.shipments_after(after, MAX_ROWS_PER_RUN).await;
        self.feed_breaker.record(inv.now, read.as_ref().map(|_| ()));
        let shipments = match read {
            Ok(s) => s,
            Err(e) => return e.into(),
        };
        report.shipments = shipments.len();
        // The watermark only moves over shipments that are settled: the
        // first one still packing or waiting on a shop pins it there, and
        // later ones are still recorded (a re-read finds them done).
        let mut pinned = false;
        let mut first_retry = None;
        for s in &shipments {
            let settled = if !s.shipped {
                report.waiting += 1;
                false
            } else {
                match self.record(s, inv).await {
                    StepOutcome::Done { .. } | StepOutcome::Cancelled { .. } => {
                        report.recorded += 1;
                        true
                    }
                    StepOutcome::Reject { reason } => {
                        if let Err(e) = self.set_aside(s, &reason, inv).await {
                            return e.into();
                        }
                        report.quarantined += 1;
                        true
                    }
                    retry @ StepOutcome::Retry { .. } => {
                        report.retried += 1;
                        first_retry.get_or_insert(retry);
                        false
                    }
                }
            };
            pinned |= !settled;
            if !pinned {
                if let Err(e) = self.store.write_cursor(CURSOR, &s.id.to_string()).await {
                    return e.into();
                }
                report.after_id = s.id;
            }
        }
        if let Some(retry) = first_retry {
            // The function's errors alarm sees a run that left work behind.
            tracing::warn!(report = ?report, "fulfillment sync left shipments for the next tick");
            return retry;
        }
        tracing::info!(report = ?report, "fulfillment sync done");
        StepOutcome::Done {
            // Plain data: serializing cannot fail.
            summary: serde_json::to_value(&report).unwrap_or_default(),
        }
    }

    async fn record(&self, s: &ErpShipment, inv: Invocation) -> StepOutcome {
        if let Some(why) = &s.unreadable {
            return StepOutcome::Reject {
                reason: format!("shipment {}: {why}", s.document_number),
            };
        }
        let Some(order) = s.order_key.as_deref().and_then(OrderRef::from_key) else {
            return StepOutcome::Reject {
                reason: format!(
                    "shipment {} is of a sales order retailflow did not post (order key {:?})",
                    s.document_number, s.order_key
                ),
            };
        };
        let Some((_, shop)) = self.shops.iter().find(|(p, _)| *p == order.platform) else {
            return StepOutcome::Reject {
                reason: format!(
                    "shipment {}: no shop connector for {}",
                    s.document_number,
                    order.platform.as_str()
                ),
            };
        };
        let order_key = order.key();
        let saga_key = shipment_key(&order, s.id);
        let fulfillment = ShopFulfillment {
            order: order.clone(),
            shipment_ref: s.document_number.clone(),
            carrier: s.carrier.clone(),
            tracking_numbers: s.tracking_numbers.clone(),
            lines: s.lines.clone(),
            notify_customer: self.notify_customer,
        };
        let run = StepRun {
            store: self.store.as_ref(),
            bus: self.bus.as_ref(),
            key: IdempotencyKey::saga_step(saga_key, STEP),
            // What makes it this shipment (not its tracking, which the ERP
            // may add later).
            payload_hash: payload_hash(format!("{}\n{order_key}\n{:?}", s.id, s.lines).as_bytes()),
            legacy_hash: None,
            // Shops do not deduplicate shipments without tracking: claim.
            claim: true,
            lease: &self.lease,
            source: SOURCE,
            causation_id: format!("{}:shipment:{}", self.feed.system(), s.id),
            correlation_id: &order_key,
            inv,
        };
        run_step(run, || async {
            shop.breaker.permit(inv.now)?;
            let recorded = shop.connector.record_fulfillment(&fulfillment).await;
            shop.breaker.record(inv.now, recorded.as_ref().map(|_| ()));
            let id = match recorded {
                // A token rotated or revoked: fixed by configuration, so
                // waited for, not quarantined shipment by shipment.
                Err(ConnectorError::Rejected {
                    status: 401 | 403,
                    reason,
                    ..
                }) => {
                    return Err(StepOutcome::Retry {
                        reason: format!("the shop refused retailflow's credentials: {reason}"),
                        retry_after: None,
                    })
                }
                other => other?,
            };
            Ok(FulfillmentShipped {
                order: order.clone(),
                erp_system: self.feed.system().to_string(),
                shipment_id: s.id.to_string(),
                document_number: s.document_number.clone(),
                carrier: s.carrier.clone(),
                tracking_numbers: s.tracking_numbers.clone(),
                lines: s
                    .lines
                    .iter()
                    .map(|(sku, quantity)| StockUnits {
                        sku: sku.clone(),
                        quantity: *quantity,
                    })
                    .collect(),
                shop_fulfillment_id: id,
            })
        })
        .await
    }

    /// A shipment that cannot be recorded as is: kept with the reason.
    async fn set_aside(
        &self,
        s: &ErpShipment,
        reason: &str,
        inv: Invocation,
    ) -> Result<(), crate::ports::StoreError> {
        tracing::warn!(
            shipment = %s.document_number,
            correlation_id = s.order_key.as_deref().unwrap_or(""),
            reason = %reason,
            "shipment quarantined"
        );
        let body = serde_json::json!({
            "id": s.id, "document_number": s.document_number, "order_key": s.order_key,
            "carrier": s.carrier, "tracking_numbers": s.tracking_numbers, "lines": s.lines,
        });
        self.store
            .quarantine(&QuarantinedDelivery {
                body_location: None,
                id: uuid::Uuid::new_v5(
                    &uuid::Uuid::NAMESPACE_URL,
                    format!("{}:shipment:{}", self.feed.system(), s.id).as_bytes(),
                ),
                received_at: inv.now,
                source: self.feed.system().to_string(),
                topic: Some("item_fulfillment".into()),
                shop: None,
                delivery_id: Some(s.id.to_string()),
                reason: reason.to_string(),
                body: body.to_string().into_bytes(),
            })
            .await
    }
}
