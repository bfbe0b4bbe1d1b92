//! ReturnReversal: what a `RefundIssued` (a shop refund or a return at the
//! till) or an `OrderCancelled` takes back.
//!
//! First the refund or cancellation is admitted to the order's refund ledger
//! (one conditional write on the order's saga item): a refund that would take
//! the order past its total goes to review (the DLQ, with the reason) and
//! reaches no system; a cancellation marks the order so its own steps (ERP
//! post, accrual) refuse to start from then on. Then sub-steps run, each its
//! own idempotent unit in the case's saga item (`<order key>:return:<refund
//! id>` or `<order key>:cancellation`), so one failing system does not redo
//! the others:
//!
//! - `loyalty_reversal` ([`loyalty`]): the case's share of the points, fixed by
//!   its place in the ledger, so partial returns and a cancellation add up to
//!   the accrual in any order;
//! - `credit_memo` ([`erp`]): a refund's credit memo, of exactly the refund;
//! - `erp_cancel` ([`erp`]): a cancellation's sales order, cancelled, or left
//!   to the credit memos of refunds that came first;
//! - `shop_refund` ([`shop`]): a till return recorded on the shop's order.
//!
//! A case that arrives before what it depends on (the order, its accrual, its
//! ERP posting) is retried until they are there, so the end state is the one
//! of the natural order; once the order is cancelled, what never ran is
//! known never to run.

mod erp;
mod loyalty;
mod shop;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::events::{Envelope, OrderCancelled, RefundIssued};
use crate::idempotency::{payload_hash, IdempotencyKey, LeasePolicy};
use crate::loyalty_rules::LoyaltyRules;
use crate::model::{OrderRef, Platform, Refund};
use crate::ports::erp::ErpConnector;
use crate::ports::loyalty::LoyaltyConnector;
use crate::ports::shop::EcommerceConnector;
use crate::ports::{EventBus, StateStore};
use crate::refund_ledger::{AdmittedRefund, OrderFacts, RefundLedger, CANCELLATION_ID};
use crate::resilience::{ConnectorError, Guarded};
use crate::saga::{SagaRecord, StepStatus};

use super::erp_posting::ErpPostingConfig;
use super::{Invocation, StepOutcome, StepRun};

pub(crate) use erp::cancellation_decision;
pub use erp::{credit_memo_external_id, credit_memo_for};
pub use shop::shop_refund_for;

pub const LOYALTY_STEP: &str = "loyalty_reversal";
pub const CREDIT_MEMO_STEP: &str = "credit_memo";
pub const ERP_CANCEL_STEP: &str = "erp_cancel";
pub const SHOP_STEP: &str = "shop_refund";
pub const SOURCE: &str = "retailflow.return-reversal";

/// How long a case waits at least before looking again for what it depends
/// on. Waiting spends the message's receives; at this pace (and the retry
/// policy's backoff beyond it) a return outlasts, by over half an hour, the
/// retries of the order step it waits for (5 h 20 min against 4 h 46 min,
/// a test says).
const WAIT: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, Clone, Default)]
pub struct ReturnReversalConfig {
    /// The same earning rules as the accrual: they say which refunded
    /// merchandise takes points back.
    pub rules: LoyaltyRules,
    /// ERP items for shipping, tax, gift cards and other charges.
    pub erp: ErpPostingConfig,
    pub lease: LeasePolicy,
}

impl<C: ?Sized> Guarded<C> {
    async fn call<T, Fut>(
        &self,
        inv: Invocation,
        f: impl FnOnce(Arc<C>) -> Fut,
    ) -> Result<T, StepOutcome>
    where
        Fut: std::future::Future<Output = Result<T, ConnectorError>>,
    {
        self.guard(inv.now, f).await.map_err(StepOutcome::from)
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

/// The saga key of a refund: its sub-steps' claims and results live there.
pub fn return_key(order: &OrderRef, refund_id: &str) -> String {
    format!("{}:return:{refund_id}", order.key())
}

/// The saga key of an order's cancellation.
pub fn cancellation_key(order: &OrderRef) -> String {
    format!("{}:{CANCELLATION_ID}", order.key())
}

/// A return that started outside the shop (the envelope's source is the
/// till), so the shop does not know it yet.
fn started_outside_shop(event: &Envelope<RefundIssued>) -> bool {
    event
        .source
        .starts_with(&format!("{}:", Platform::PointOfSale.as_str()))
}

/// One refund or cancellation, admitted: what its sub-steps share.
struct Case<'a> {
    order: &'a OrderRef,
    /// The refund id, or [`CANCELLATION_ID`].
    id: &'a str,
    /// When it happened, as the platform says.
    at: DateTime<Utc>,
    causation_id: String,
    order_key: String,
    /// Its own saga key.
    key: String,
    hash: String,
    /// The hash an earlier build recorded, accepted too.
    legacy_hash: Option<String>,
    /// The order's saga as read after admission.
    saga: SagaRecord,
    position: usize,
    inv: Invocation,
}

impl Case<'_> {
    fn ledger(&self) -> &RefundLedger {
        &self.saga.refund_ledger
    }
    fn cancelled(&self) -> bool {
        self.ledger().cancelled_at.is_some()
    }
}

/// Where an order step a case depends on stands.
enum Dependency<T> {
    Done(T),
    /// Not done yet: retry later.
    Pending(StepOutcome),
    /// Will never run: the order was cancelled before it started (or its
    /// worker died and its claim cannot be taken over any more).
    NeverRan,
}

fn dependency<T: serde::de::DeserializeOwned>(case: &Case<'_>, step: &str) -> Dependency<T> {
    let cancelled = case.cancelled();
    match case.saga.step(step) {
        Some(rec) if rec.status == StepStatus::Completed => {
            match serde_json::from_value(rec.result.clone().unwrap_or_default()) {
                Ok(v) => Dependency::Done(v),
                Err(e) => Dependency::Pending(StepOutcome::Reject {
                    reason: format!("the order's {step} result is unreadable: {e}"),
                }),
            }
        }
        Some(rec) if cancelled && rec.lease_until.is_some_and(|l| l <= case.inv.now) => {
            Dependency::NeverRan
        }
        None if cancelled => Dependency::NeverRan,
        _ => Dependency::Pending(waiting(format!(
            "waiting for the order's {step} to complete"
        ))),
    }
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
        let entry = match self.ledger_entry(refund, inv) {
            Ok(e) => e,
            Err(outcome) => return outcome,
        };
        let admitted = self
            .admit(&refund.order, &refund.refund_id, inv, false, |saga| {
                let ledger = &saga.refund_ledger;
                let Some(facts) = known_facts(saga) else {
                    return Err(waiting(format!(
                        "order {} has not been received yet",
                        refund.order.key()
                    )));
                };
                ledger
                    .admit(&facts, entry.clone())
                    .map_err(|e| StepOutcome::Reject {
                        reason: e.to_string(),
                    })
            })
            .await;
        let (saga, position) = match admitted {
            Ok(a) => a,
            Err(outcome) => return outcome,
        };
        let case = Case {
            order: &refund.order,
            id: &refund.refund_id,
            at: refund.created_at,
            causation_id: event.event_id.to_string(),
            order_key: refund.order.key(),
            key: return_key(&refund.order, &refund.refund_id),
            hash: event.recorded_hash(refund),
            legacy_hash: event.legacy_hash(refund),
            saga,
            position,
            inv,
        };
        let mut outcomes = vec![
            self.reverse_points(&case).await,
            self.credit_memo(&case, refund).await,
        ];
        if started_outside_shop(event) {
            outcomes.push(self.shop_refund(&case, refund).await);
        }
        combine(outcomes)
    }

    pub async fn handle_cancellation(
        &self,
        event: &Envelope<OrderCancelled>,
        inv: Invocation,
    ) -> StepOutcome {
        let c = &event.detail.cancellation;
        let admitted = self
            .admit(&c.order, CANCELLATION_ID, inv, true, |saga| {
                let ledger = &saga.refund_ledger;
                let facts = known_facts(saga);
                // Cancelled before the order was seen: the cancellation entry
                // moves no money and is never summed, so its zero amounts
                // take a placeholder currency until the order tells.
                let currency = match facts {
                    Some(f) => f.total.currency,
                    None => crate::money::Currency::from_code("USD").map_err(|e| {
                        StepOutcome::Reject {
                            reason: e.to_string(),
                        }
                    })?,
                };
                Ok(ledger
                    .cancel(c.cancelled_at, currency)
                    .unwrap_or_else(|| ledger.clone()))
            })
            .await;
        let (saga, position) = match admitted {
            Ok(a) => a,
            Err(outcome) => return outcome,
        };
        let case = Case {
            order: &c.order,
            id: CANCELLATION_ID,
            at: c.cancelled_at,
            causation_id: event.event_id.to_string(),
            order_key: c.order.key(),
            key: cancellation_key(&c.order),
            hash: payload_hash(c.order.key().as_bytes()),
            legacy_hash: None,
            saga,
            position,
            inv,
        };
        combine(vec![
            self.reverse_points(&case).await,
            self.cancel_in_erp(&case).await,
        ])
    }

    /// Puts the case in the order's ledger (once) and returns the order's
    /// saga and the case's place. `fresh` reads the saga again after the
    /// write, so what it says of the order's steps is from after the mark.
    async fn admit(
        &self,
        order: &OrderRef,
        id: &str,
        inv: Invocation,
        fresh: bool,
        next: impl Fn(&SagaRecord) -> Result<RefundLedger, StepOutcome>,
    ) -> Result<(SagaRecord, usize), StepOutcome> {
        let order_key = order.key();
        for _ in 0..5 {
            let saga = self
                .store
                .saga(&order_key)
                .await?
                .unwrap_or_else(|| SagaRecord::empty(&order_key));
            if let Some(pos) = saga.refund_ledger.position(id) {
                return Ok((saga, pos));
            }
            let ledger = next(&saga)?;
            if !self
                .store
                .write_refund_ledger(&order_key, &ledger, inv.now)
                .await?
            {
                // Another case of this order was admitted meanwhile: read again.
                continue;
            }
            let pos = ledger.refunds.len().saturating_sub(1);
            if fresh {
                let saga = self.store.saga(&order_key).await?.unwrap_or(saga);
                return Ok((saga, pos));
            }
            let mut saga = saga;
            saga.refund_ledger = ledger;
            return Ok((saga, pos));
        }
        Err(StepOutcome::Retry {
            reason: format!("refund ledger of {order_key} kept changing under this case"),
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
            takes_rest: false,
        })
    }

    fn run<'a>(&'a self, case: &'a Case<'a>, step: &'static str, claim: bool) -> StepRun<'a> {
        StepRun {
            store: self.store.as_ref(),
            bus: self.bus.as_ref(),
            key: IdempotencyKey::saga_step(case.key.clone(), step),
            payload_hash: case.hash.clone(),
            legacy_hash: case.legacy_hash.clone(),
            claim,
            lease: &self.config.lease,
            source: SOURCE,
            causation_id: case.causation_id.clone(),
            correlation_id: &case.order_key,
            inv: case.inv,
        }
    }
}

/// What returns need of the order: recorded by intake, or, for orders
/// recorded before intake kept them, read off the ERP posting (its total;
/// prices then taken as tax-exclusive, which changes only how a credit memo
/// lays out its tax, not its total).
fn known_facts(saga: &SagaRecord) -> Option<OrderFacts> {
    if let Some(f) = &saga.order_facts {
        return Some(f.clone());
    }
    let posted = saga.step(super::erp_posting::STEP)?;
    let total: crate::money::Money =
        serde_json::from_value(posted.result.as_ref()?.get("total")?.clone()).ok()?;
    Some(OrderFacts {
        total,
        taxes_included: false,
        placed_at: saga.started_at?,
        uncounted_line_ids: None,
    })
}

fn waiting(reason: String) -> StepOutcome {
    StepOutcome::Retry {
        reason,
        retry_after: Some(WAIT),
    }
}

/// Retry beats reject beats done: while a sub-step still waits, the message
/// comes back (the sub-steps already done find themselves done, a rejected
/// one is rejected again); once nothing waits, a reject needs people.
fn combine(outcomes: Vec<StepOutcome>) -> StepOutcome {
    let mut done = Vec::new();
    let mut retry: Option<(String, Option<Duration>)> = None;
    let mut rejected: Option<String> = None;
    for o in outcomes {
        match o {
            StepOutcome::Reject { reason } => {
                rejected = Some(match rejected {
                    Some(r0) => format!("{r0}; {reason}"),
                    None => reason,
                })
            }
            StepOutcome::Retry {
                reason,
                retry_after,
            } => {
                retry = Some(match retry {
                    Some((r0, a0)) => (
                        format!("{r0}; {reason}"),
                        a0.min(retry_after).or(a0).or(retry_after),
                    ),
                    None => (reason, retry_after),
                })
            }
            StepOutcome::Done { summary } => done.push(summary),
            StepOutcome::Cancelled { reason } => {
                done.push(serde_json::json!({ "cancelled": reason }))
            }
        }
    }
    match (retry, rejected) {
        (Some((reason, retry_after)), rejected) => StepOutcome::Retry {
            reason: match rejected {
                Some(r) => format!("{reason}; and refused meanwhile: {r}"),
                None => reason,
            },
            retry_after,
        },
        (None, Some(reason)) => StepOutcome::Reject { reason },
        (None, None) => StepOutcome::Done {
            summary: serde_json::Value::Array(done),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::RetryPolicy;

    #[test]
    fn a_waiting_case_outlasts_the_retries_of_the_step_it_waits_for() {
        // maxReceiveCount of the queues in template.yaml.
        const RECEIVES: u32 = 24;
        let policy = RetryPolicy::default();
        let waiting: Duration = (1..RECEIVES).map(|n| policy.delay(n, Some(WAIT))).sum();
        let step = policy.patience(RECEIVES);
        assert!(waiting > step, "{waiting:?} vs {step:?}");
        // 5 h 20 min against 4 h 45.5 min.
        assert_eq!((waiting.as_secs(), step.as_secs()), (19_200, 17_130));
    }
}
