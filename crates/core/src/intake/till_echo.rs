//! A credit memo retailflow made itself: a till return of an Adobe Commerce
//! order is recorded in Adobe as a credit memo (the `shop_refund` step), and
//! Adobe announces that memo back like any other. Its comment names the till
//! return ([`crate::ports::shop::till_return_reference`]), but a memo may be
//! announced before its comment is saved, or its comment may be left out of
//! the subscription's fields. So the memo's id is matched too, against the
//! credit memos the order's till returns recorded: refunding it again would
//! pay the customer twice.

use chrono::{DateTime, Utc};

use crate::model::Refund;
use crate::ports::{StateStore, StoreError};
use crate::saga::StepStatus;
use crate::steps::return_reversal::{return_key, SHOP_STEP};

/// What a credit memo is to the order's till returns.
pub(super) enum TillEcho {
    /// Not one of theirs.
    No,
    /// The memo the named till return recorded.
    Of(String),
    /// A till return of the order is recording its memo right now: this may
    /// be it, so ask again once it has finished.
    Pending(String),
}

pub(super) async fn till_echo(
    store: &dyn StateStore,
    refund: &Refund,
    now: DateTime<Utc>,
) -> Result<TillEcho, StoreError> {
    let order = &refund.order;
    let Some(saga) = store.saga(&order.key()).await? else {
        return Ok(TillEcho::No);
    };
    for admitted in &saga.refund_ledger.refunds {
        if admitted.takes_rest || admitted.refund_id == refund.refund_id {
            continue;
        }
        let case = store.saga(&return_key(order, &admitted.refund_id)).await?;
        let Some(step) = case.as_ref().and_then(|s| s.step(SHOP_STEP)) else {
            continue;
        };
        match step.status {
            StepStatus::Completed => {
                let recorded = step
                    .result
                    .as_ref()
                    .and_then(|r| r["platform_refund_id"].as_str());
                if recorded == Some(refund.refund_id.as_str()) {
                    return Ok(TillEcho::Of(admitted.refund_id.clone()));
                }
            }
            StepStatus::InProgress if step.lease_until.is_none_or(|l| l > now) => {
                return Ok(TillEcho::Pending(admitted.refund_id.clone()));
            }
            StepStatus::InProgress => {}
        }
    }
    Ok(TillEcho::No)
}
