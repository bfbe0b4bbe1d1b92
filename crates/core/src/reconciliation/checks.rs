//! The comparisons, pure: what a page of sagas says each system of record
//! should hold, and how what it holds differs.

use chrono::{DateTime, Utc};

use super::{Discrepancy, DiscrepancyKind, ReconciliationConfig};
use crate::events::{CreditMemoPosted, LoyaltyAccrued, LoyaltyReversed, OrderPostedToErp};
use crate::money::Money;
use crate::ports::erp::{ErpDocumentKind, LedgerDocument, LedgerQuery};
use crate::ports::loyalty::LedgerJournal;
use crate::ports::ArchivedEvent;
use crate::refund_ledger::CANCELLATION_ID;
use crate::saga::{SagaRecord, StepStatus};
use crate::steps::loyalty_accrual::accrual_external_id;
use crate::steps::return_reversal::{CREDIT_MEMO_STEP, ERP_CANCEL_STEP, LOYALTY_STEP};
use crate::steps::{erp_posting, loyalty_accrual, stock_commit};

/// The steps an order's `OrderPlaced` starts.
pub const ORDER_STEPS: [&str; 3] = [erp_posting::STEP, loyalty_accrual::STEP, stock_commit::STEP];
/// The steps every refund's `RefundIssued` starts.
pub const RETURN_STEPS: [&str; 2] = [LOYALTY_STEP, CREDIT_MEMO_STEP];

/// The steps an order's `OrderCancelled` starts, in its own saga.
pub const CANCELLATION_STEPS: [&str; 2] = [LOYALTY_STEP, ERP_CANCEL_STEP];

/// What kind of saga a key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SagaKind<'a> {
    Order,
    /// `<order key>:return:<refund id>`
    Return {
        order_key: &'a str,
    },
    /// `<order key>:cancellation`
    Cancellation {
        order_key: &'a str,
    },
    /// Shipments: the fulfillment sync's own.
    Other,
}

pub fn saga_kind(key: &str) -> SagaKind<'_> {
    if let Some((order_key, _)) = key.rsplit_once(":return:") {
        return SagaKind::Return { order_key };
    }
    if let Some(order_key) = key.strip_suffix(&format!(":{CANCELLATION_ID}")) {
        return SagaKind::Cancellation { order_key };
    }
    if key.contains(":shipment:") {
        return SagaKind::Other;
    }
    SagaKind::Order
}

/// A step that should be done by now and is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckStep {
    /// The saga the step belongs to (the order's, a return's, the
    /// cancellation's): it also keeps the triggering event.
    pub saga_key: String,
    pub step: String,
    /// The order's key: the correlation id.
    pub order_key: String,
    /// The event that starts the step, as the bus's archive holds it,
    /// when the saga remembers it.
    pub trigger: Option<ArchivedEvent>,
    pub due_at: DateTime<Utc>,
}

/// The first event of `event_type` intake recorded on a saga, as the
/// archive holds it.
pub fn trigger_event(saga: &SagaRecord, event_type: &str) -> Option<ArchivedEvent> {
    Some(ArchivedEvent {
        event_id: saga.first_event_ids.get(event_type)?.clone(),
        event_type: event_type.to_string(),
        published_at: *saga.first_seen.get(event_type)?,
    })
}

/// A saga's steps past their SLA and not done: an order's own steps from
/// its `OrderPlaced` (none once it is cancelled: they may rightly never
/// run), a return's and a cancellation's from when intake opened them.
pub fn stuck_steps(
    saga: &SagaRecord,
    now: DateTime<Utc>,
    config: &ReconciliationConfig,
) -> Vec<StuckStep> {
    let (order_key, since, steps, trigger): (&str, Option<DateTime<Utc>>, &[&str], &str) =
        match saga_kind(&saga.saga_key) {
            SagaKind::Order if saga.refund_ledger.cancelled_at.is_none() => (
                &saga.saga_key,
                saga.first_seen.get("OrderPlaced").copied(),
                &ORDER_STEPS,
                "OrderPlaced",
            ),
            SagaKind::Return { order_key } => {
                (order_key, saga.started_at, &RETURN_STEPS, "RefundIssued")
            }
            SagaKind::Cancellation { order_key } => (
                order_key,
                saga.started_at,
                &CANCELLATION_STEPS,
                "OrderCancelled",
            ),
            _ => return Vec::new(),
        };
    let Some(since) = since else {
        return Vec::new();
    };
    steps
        .iter()
        .filter_map(|step| {
            let due = since + config.sla(step);
            let done = saga
                .step(step)
                .is_some_and(|s| s.status == StepStatus::Completed);
            (due <= now && !done).then(|| StuckStep {
                saga_key: saga.saga_key.clone(),
                step: step.to_string(),
                order_key: order_key.to_string(),
                trigger: trigger_event(saga, trigger),
                due_at: due,
            })
        })
        .collect()
}

fn result<T: serde::de::DeserializeOwned>(saga: &SagaRecord, step: &str) -> Option<T> {
    let s = saga.step(step)?;
    if s.status != StepStatus::Completed {
        return None;
    }
    serde_json::from_value(s.result.clone()?).ok()
}

/// An ERP document a saga says exists, with the amount it should carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedDocument {
    pub query: LedgerQuery,
    pub kind: ErpDocumentKind,
    /// What the document is, for people (`sales order`, `credit memo for
    /// refund 77`).
    pub what: String,
    pub amount: Money,
}

/// The sales order of an order whose ERP step is done (cancelled orders
/// are left out: their sales order is closed or deleted on purpose).
pub fn expected_sales_order(order: &SagaRecord) -> Option<ExpectedDocument> {
    if order.refund_ledger.cancelled_at.is_some() {
        return None;
    }
    let posted: OrderPostedToErp = result(order, erp_posting::STEP)?;
    let facts = order.order_facts.as_ref()?;
    Some(ExpectedDocument {
        query: LedgerQuery {
            external_id: posted.external_id,
            order_key: order.saga_key.clone(),
            currency: facts.total.currency,
        },
        kind: ErpDocumentKind::SalesOrder,
        what: "sales order".into(),
        amount: facts.total,
    })
}

/// The credit memo of a return whose credit memo step posted one: of
/// exactly the lines posted, which sum to the refund.
pub fn expected_credit_memo(ret: &SagaRecord, order_key: &str) -> Option<ExpectedDocument> {
    let posted: CreditMemoPosted = result(ret, CREDIT_MEMO_STEP)?;
    if posted.skipped_reason.is_some() {
        return None;
    }
    let currency = posted.total.currency;
    let amount = posted
        .lines
        .iter()
        .try_fold(Money::zero(currency), |sum, l| sum.checked_add(l.amount))
        .ok()?;
    Some(ExpectedDocument {
        query: LedgerQuery {
            external_id: posted.external_id,
            order_key: order_key.to_string(),
            currency,
        },
        kind: ErpDocumentKind::CreditMemo,
        what: format!("credit memo for refund {}", posted.refund_id),
        amount,
    })
}

/// How an amount the ERP holds differs from the expected one, if it does.
fn amount_difference(
    expected: Money,
    found: Money,
    tolerance_minor: i64,
) -> Option<DiscrepancyKind> {
    if expected.currency != found.currency {
        return Some(DiscrepancyKind::AmountMismatch);
    }
    let diff = (expected.minor - found.minor).abs();
    match diff {
        0 => None,
        d if d <= tolerance_minor => Some(DiscrepancyKind::RoundingVariance),
        _ => Some(DiscrepancyKind::AmountMismatch),
    }
}

/// Compares expected ERP documents with what the ERP holds: exactly one
/// document per expectation (by external id, or by order key for a sales
/// order keyed another way), of the same amount.
pub fn compare_documents(
    expected: &[ExpectedDocument],
    found: &[LedgerDocument],
    tolerance_minor: i64,
) -> Vec<Discrepancy> {
    let mut out = Vec::new();
    for e in expected {
        let mine: Vec<&LedgerDocument> = found
            .iter()
            .filter(|d| d.kind == e.kind)
            .filter(|d| {
                d.external_id.as_deref() == Some(e.query.external_id.as_str())
                    || (e.kind == ErpDocumentKind::SalesOrder
                        && d.order_key.as_deref() == Some(e.query.order_key.as_str()))
            })
            .collect();
        let base = |kind, detail: String, found: Option<String>| Discrepancy {
            kind,
            system: "erp".into(),
            order_key: e.query.order_key.clone(),
            subject: e.what.clone(),
            external_id: Some(e.query.external_id.clone()),
            expected: Some(e.amount.to_string()),
            found,
            detail,
        };
        match mine.as_slice() {
            [] => out.push(base(
                DiscrepancyKind::Missing,
                format!("no {} in the ERP", e.what),
                None,
            )),
            [one] => {
                if let Some(kind) = amount_difference(e.amount, one.document.total, tolerance_minor)
                {
                    out.push(base(
                        kind,
                        format!("{} {} total differs", e.what, one.document.number),
                        Some(one.document.total.to_string()),
                    ));
                }
            }
            many => out.push(base(
                DiscrepancyKind::Duplicate,
                format!(
                    "{} {}s for one: {}",
                    many.len(),
                    e.what,
                    many.iter()
                        .map(|d| d.document.number.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some(many.len().to_string()),
            )),
        }
    }
    out
}

/// A journal a saga says the loyalty platform holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedJournal {
    pub order_key: String,
    pub external_transaction_number: String,
    pub what: String,
    /// A cancellation of the accrual (its `Cancellation` journal, or the
    /// accrual journal itself `Cancelled`); otherwise the journal posted
    /// under the number, of whatever type the org gives it.
    pub cancellation: bool,
    /// Signed points the journal should move; `None` for a cancellation
    /// (it moves whatever the accrual had).
    pub points: Option<i64>,
}

/// The accrual journal of an order whose accrual step posted one.
pub fn expected_accrual(order: &SagaRecord) -> Option<ExpectedJournal> {
    let accrued: LoyaltyAccrued = result(order, loyalty_accrual::STEP)?;
    let number = accrued
        .external_transaction_number
        .filter(|_| accrued.journal_id.is_some())?;
    Some(ExpectedJournal {
        order_key: order.saga_key.clone(),
        external_transaction_number: number,
        what: "accrual journal".into(),
        cancellation: false,
        points: Some(accrued.points_credited.unwrap_or(accrued.points)),
    })
}

/// The reversal a return's loyalty step made: a debit journal of its
/// points, or the accrual's cancellation.
pub fn expected_reversal(ret: &SagaRecord, order_key: &str) -> Option<ExpectedJournal> {
    let reversed: LoyaltyReversed = result(ret, LOYALTY_STEP)?;
    match reversed.method.as_deref()? {
        "debit" => Some(ExpectedJournal {
            order_key: order_key.to_string(),
            external_transaction_number: reversed.external_transaction_number?,
            what: format!("points debit for refund {}", reversed.refund_id),
            cancellation: false,
            points: Some(-reversed.points),
        }),
        "cancel_accrual" => Some(ExpectedJournal {
            order_key: order_key.to_string(),
            external_transaction_number: accrual_external_id(&reversed.order),
            what: format!("accrual cancellation for refund {}", reversed.refund_id),
            cancellation: true,
            points: None,
        }),
        _ => None,
    }
}

/// Compares expected journals with the platform's: one journal of the
/// type per expectation, moving the expected points.
pub fn compare_journals(expected: &[ExpectedJournal], found: &[LedgerJournal]) -> Vec<Discrepancy> {
    let mut out = Vec::new();
    for e in expected {
        let under: Vec<&LedgerJournal> = found
            .iter()
            .filter(|j| j.external_transaction_number == e.external_transaction_number)
            .collect();
        let is_cancellation =
            |j: &&LedgerJournal| j.journal_type.as_deref() == Some("Cancellation");
        let mine: Vec<&LedgerJournal> = if e.cancellation {
            let separate: Vec<_> = under.iter().copied().filter(is_cancellation).collect();
            if separate.is_empty() {
                under
                    .iter()
                    .copied()
                    .filter(|j| j.status.as_deref() == Some("Cancelled"))
                    .collect()
            } else {
                separate
            }
        } else {
            under
                .iter()
                .copied()
                .filter(|j| !is_cancellation(j))
                .collect()
        };
        let base = |kind, detail: String, found: Option<String>| Discrepancy {
            kind,
            system: "loyalty".into(),
            order_key: e.order_key.clone(),
            subject: e.what.clone(),
            external_id: Some(e.external_transaction_number.clone()),
            expected: e.points.map(|p| format!("{p} points")),
            found,
            detail,
        };
        match mine.as_slice() {
            [] => out.push(base(
                DiscrepancyKind::Missing,
                format!("no {} on the loyalty platform", e.what),
                None,
            )),
            [one] => {
                if let (Some(want), got) = (e.points, one.points.unwrap_or(0)) {
                    if want != got {
                        out.push(base(
                            DiscrepancyKind::AmountMismatch,
                            format!("{} {} moved other points", e.what, one.journal_id),
                            Some(format!("{got} points")),
                        ));
                    }
                }
            }
            many => out.push(base(
                DiscrepancyKind::Duplicate,
                format!("{} journals for one {}", many.len(), e.what),
                Some(many.len().to_string()),
            )),
        }
    }
    out
}
