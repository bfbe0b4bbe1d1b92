//! LoyaltyAccrual: an `OrderPlaced` earns its member points exactly once.
//!
//! Loyalty journals are not deduplicated by the platform, so the step claims
//! first, looks the journal up by its external transaction number, and posts
//! only when none exists. Guests earn nothing; a customer who is not a member
//! is enrolled when configured (the local app's default), else earns nothing.
//! Either way the step completes and says why.

use std::sync::Arc;

use crate::events::{Envelope, LoyaltyAccrued, OrderPlaced};
use crate::idempotency::external_id;
use crate::idempotency::{IdempotencyKey, LeasePolicy};
use crate::loyalty_rules::LoyaltyRules;
use crate::model::Order;
use crate::ports::loyalty::{AccrualRequest, Enrollment, LoyaltyConnector, LoyaltyMember};
use crate::ports::{EventBus, StateStore};
use crate::resilience::{CircuitBreaker, ConnectorError};

use super::{run_step, Invocation, StepOutcome, StepRun};

pub const STEP: &str = "loyalty_accrual";
pub const SOURCE: &str = "retailflow.loyalty-accrual";

#[derive(Debug, Clone)]
pub struct LoyaltyAccrualConfig {
    pub rules: LoyaltyRules,
    /// Enroll customers who are not members yet.
    pub enroll_new_members: bool,
    pub lease: LeasePolicy,
}

impl Default for LoyaltyAccrualConfig {
    fn default() -> Self {
        LoyaltyAccrualConfig {
            rules: LoyaltyRules::default(),
            enroll_new_members: true,
            lease: LeasePolicy::default(),
        }
    }
}

pub struct LoyaltyAccrual {
    store: Arc<dyn StateStore>,
    bus: Arc<dyn EventBus>,
    loyalty: Arc<dyn LoyaltyConnector>,
    breaker: Arc<CircuitBreaker>,
    config: LoyaltyAccrualConfig,
}

/// The membership number of a shop customer: deterministic, so lookups
/// find members enrolled by earlier orders.
pub fn membership_number(order: &Order) -> Option<String> {
    let r = &order.order;
    let id = order.customer.as_ref()?.customer_id.as_deref()?;
    Some(external_id("mb", &[r.platform.as_str(), &r.shop, id]))
}

/// The accrual journal's external transaction number: its idempotency key.
pub fn accrual_external_id(r: &crate::model::OrderRef) -> String {
    external_id("acc", &[r.platform.as_str(), &r.shop, &r.order_id])
}

impl LoyaltyAccrual {
    pub fn new(
        store: Arc<dyn StateStore>,
        bus: Arc<dyn EventBus>,
        loyalty: Arc<dyn LoyaltyConnector>,
        breaker: Arc<CircuitBreaker>,
        config: LoyaltyAccrualConfig,
    ) -> Self {
        LoyaltyAccrual {
            store,
            bus,
            loyalty,
            breaker,
            config,
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
            // Journals are not deduplicated by the platform: always claim.
            claim: true,
            lease: &self.config.lease,
            source: SOURCE,
            causation_id: event.event_id.to_string(),
            correlation_id: &order_key,
            inv,
        };
        match run_step(run, || self.accrue(order, inv)).await {
            StepOutcome::Cancelled { reason } => self.undo(&order.order, reason, inv).await,
            other => other,
        }
    }

    /// The order was cancelled while its points were being accrued: cancel
    /// the journal if one was posted (none when the claim was refused).
    async fn undo(
        &self,
        order: &crate::model::OrderRef,
        reason: String,
        inv: Invocation,
    ) -> StepOutcome {
        if let Err(e) = self.breaker.permit(inv.now) {
            return e.into();
        }
        let result = async {
            match self
                .loyalty
                .find_accrual(&accrual_external_id(order))
                .await?
            {
                Some(j) => self
                    .loyalty
                    .cancel_accrual(&j.journal_id, "Order cancelled")
                    .await
                    .map(|_| ()),
                None => Ok(()),
            }
        }
        .await;
        self.breaker.record(inv.now, result.as_ref().map(|_| ()));
        match result {
            Ok(()) => StepOutcome::Cancelled { reason },
            Err(e) => e.into(),
        }
    }

    async fn accrue(&self, order: &Order, inv: Invocation) -> Result<LoyaltyAccrued, StepOutcome> {
        let eligible =
            self.config
                .rules
                .eligible_amount(order)
                .map_err(|e| StepOutcome::Reject {
                    reason: e.to_string(),
                })?;
        let mut detail = LoyaltyAccrued {
            order: order.order.clone(),
            loyalty_system: self.loyalty.system().to_string(),
            membership_number: membership_number(order),
            external_transaction_number: None,
            journal_id: None,
            points: 0,
            points_credited: None,
            eligible,
            skipped_reason: None,
        };
        let Some(number) = detail.membership_number.clone() else {
            detail.skipped_reason = Some("guest checkout".into());
            return Ok(detail);
        };
        self.breaker.permit(inv.now)?;
        let result = self.accrue_member(order, &number, inv, &mut detail).await;
        self.breaker.record(inv.now, result.as_ref().map(|_| ()));
        result.map_err(StepOutcome::from)?;
        Ok(detail)
    }

    async fn accrue_member(
        &self,
        order: &Order,
        number: &str,
        inv: Invocation,
        detail: &mut LoyaltyAccrued,
    ) -> Result<(), ConnectorError> {
        let member = match self.loyalty.find_member(number).await? {
            Some(m) => m,
            None if self.config.enroll_new_members => self.enroll(order, number, inv).await?,
            None => {
                detail.skipped_reason = Some("customer is not a loyalty member".into());
                return Ok(());
            }
        };
        let accrual = self
            .config
            .rules
            .accrual(order, member.tier.as_deref())
            .map_err(|e| ConnectorError::Rejected {
                system: "retailflow",
                status: 0,
                reason: e.to_string(),
            })?;
        detail.points = accrual.points;
        if accrual.points == 0 {
            detail.skipped_reason = Some("order earns no points".into());
            return Ok(());
        }
        let r = &order.order;
        let external = accrual_external_id(r);
        detail.external_transaction_number = Some(external.clone());
        let journal = match self.loyalty.find_accrual(&external).await? {
            Some(j) => j,
            None => {
                self.loyalty
                    .post_accrual(&AccrualRequest {
                        external_transaction_number: external,
                        membership_number: number.to_string(),
                        activity_at: order.created_at,
                        amount: accrual.eligible,
                        points: accrual.points,
                    })
                    .await?
            }
        };
        detail.journal_id = Some(journal.journal_id);
        detail.points_credited = journal.points;
        Ok(())
    }

    async fn enroll(
        &self,
        order: &Order,
        number: &str,
        inv: Invocation,
    ) -> Result<LoyaltyMember, ConnectorError> {
        let c = order.customer.as_ref();
        let enrolled = self
            .loyalty
            .enroll(&Enrollment {
                membership_number: number.to_string(),
                first_name: c.and_then(|c| c.first_name.clone()),
                last_name: c.and_then(|c| c.last_name.clone()),
                email: c.and_then(|c| c.email.clone()),
                enrolled_at: inv.now,
            })
            .await;
        match enrolled {
            Ok(m) => Ok(m),
            // Enrolled concurrently by another order of the same customer.
            Err(e) if !e.is_retryable() => match self.loyalty.find_member(number).await? {
                Some(m) => Ok(m),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }
}
