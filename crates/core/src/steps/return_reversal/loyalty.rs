//! A case's points: the share of the accrual its place in the ledger fixes,
//! debited, or the accrual cancelled whole when the whole order comes back
//! in its first case.

use crate::events::{LoyaltyAccrued, LoyaltyReversed};
use crate::idempotency::external_id;
use crate::money::MoneyError;
use crate::ports::loyalty::ReversalRequest;
use crate::refund_ledger::CANCELLATION_ID;
use crate::steps::loyalty_accrual::{accrual_external_id, STEP as ACCRUAL_STEP};
use crate::steps::{run_step, StepOutcome};

use super::{dependency, Case, Dependency, ReturnReversal, LOYALTY_STEP};

fn reject(e: MoneyError) -> StepOutcome {
    StepOutcome::Reject {
        reason: e.to_string(),
    }
}

impl ReturnReversal {
    pub(super) async fn reverse_points(&self, case: &Case<'_>) -> StepOutcome {
        let accrued = match dependency::<LoyaltyAccrued>(case, ACCRUAL_STEP) {
            Dependency::Done(a) => Some(a),
            Dependency::NeverRan => None,
            Dependency::Pending(outcome) => return outcome,
        };
        // Journals are not deduplicated by the platform: always claim.
        run_step(self.run(case, LOYALTY_STEP, true), || async {
            match &accrued {
                Some(a) => self.reversal(case, a).await,
                None => self.never_accrued(case).await,
            }
        })
        .await
    }

    fn detail(&self, case: &Case<'_>, membership: Option<String>) -> LoyaltyReversed {
        let entry = &case.ledger().refunds[case.position];
        LoyaltyReversed {
            order: case.order.clone(),
            refund_id: case.id.to_string(),
            loyalty_system: self.loyalty.connector.system().to_string(),
            membership_number: membership,
            method: None,
            external_transaction_number: None,
            journal_id: None,
            points: 0,
            refunded_base: entry.loyalty_base,
            skipped_reason: None,
        }
    }

    /// The order was cancelled before its accrual ran. A worker that died
    /// after posting the journal may have left one behind: the
    /// cancellation finds it by its number and cancels it.
    async fn never_accrued(&self, case: &Case<'_>) -> Result<LoyaltyReversed, StepOutcome> {
        let mut detail = self.detail(case, None);
        detail.skipped_reason = Some("the order was cancelled before its points accrued".into());
        if case.id != CANCELLATION_ID {
            return Ok(detail);
        }
        let number = accrual_external_id(case.order);
        let found = self
            .loyalty
            .call(case.inv, |l| async move { l.find_accrual(&number).await })
            .await?;
        if let Some(journal) = found {
            let cancelled = self
                .loyalty
                .call(case.inv, |l| {
                    let id = journal.journal_id.clone();
                    async move { l.cancel_accrual(&id, "Order cancelled").await }
                })
                .await?;
            detail.skipped_reason = None;
            detail.method = Some("cancel_accrual".into());
            detail.journal_id = cancelled.or(Some(journal.journal_id));
            detail.points = journal.points.unwrap_or(0);
        }
        Ok(detail)
    }

    async fn reversal(
        &self,
        case: &Case<'_>,
        accrued: &LoyaltyAccrued,
    ) -> Result<LoyaltyReversed, StepOutcome> {
        let mut detail = self.detail(case, accrued.membership_number.clone());
        let (Some(journal), Some(member)) = (&accrued.journal_id, &accrued.membership_number)
        else {
            detail.skipped_reason = Some("the order earned no points".into());
            return Ok(detail);
        };
        let ledger = case.ledger();
        let base = ledger
            .reversal_base(case.position, accrued.points, accrued.eligible)
            .map_err(reject)?;
        let taken = ledger.loyalty_base_of(case.position, accrued.eligible);
        let points = base.points_to_reverse(taken).map_err(reject)?;
        let amount = if ledger.refunds[case.position].takes_rest {
            accrued
                .eligible
                .checked_sub(base.refunded_before)
                .map_err(reject)?
        } else {
            taken
        };
        detail.refunded_base = amount;
        let whole_order = case.position == 0 && taken.minor >= accrued.eligible.minor;
        if whole_order && accrued.points > 0 {
            let why = if case.id == CANCELLATION_ID {
                "Order cancelled"
            } else {
                "Order returned"
            };
            let cancelled = self
                .loyalty
                .call(
                    case.inv,
                    |l| async move { l.cancel_accrual(journal, why).await },
                )
                .await?;
            detail.method = Some("cancel_accrual".into());
            detail.journal_id = cancelled.or(Some(journal.clone()));
            detail.points = accrued.points;
            return Ok(detail);
        }
        if points == 0 {
            detail.skipped_reason = Some("nothing left to take back".into());
            return Ok(detail);
        }
        let r = case.order;
        let ext = external_id("rev", &[r.platform.as_str(), &r.shop, &r.order_id, case.id]);
        let request = ReversalRequest {
            external_transaction_number: ext.clone(),
            membership_number: member.clone(),
            activity_at: case.at,
            amount,
            points,
        };
        let journal = self
            .loyalty
            .call(case.inv, |l| async move {
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
}
