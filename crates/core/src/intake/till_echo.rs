//! A credit memo retailflow made itself: a till return of an Adobe Commerce
//! order is recorded in Adobe as a credit memo (the `shop_refund` step), and
//! Adobe announces that memo back like any other. Its comment names the till
//! return ([`crate::ports::shop::till_return_reference`]), but a memo may be
//! announced before its comment is saved, or its comment may be left out of
//! the subscription's fields. So the memo's id is matched too, against the
//! credit memos the order's till returns recorded: refunding it again would
//! pay the customer twice.
//!
//! A till return that has not recorded its memo yet (its step not reached,
//! running, or handed back after a failed call that Adobe may have carried
//! out anyway) may be the one this memo echoes: the memo is asked for again
//! (503; I/O Events retries for a day) until the till return knows its memo
//! id, and kept for review past [`TILL_RETURN_PATIENCE`].

use chrono::Duration;

use crate::mappers::pos::is_till_refund_id;
use crate::model::Refund;
use crate::ports::{StateStore, StoreError};
use crate::saga::StepStatus;
use crate::steps::return_reversal::{return_key, SHOP_STEP};

/// How long after it was made a credit memo waits for a till return of its
/// order to record its own: beyond the shop step's retries (under five
/// hours), a till return still without its memo is dead-lettered, so a
/// person decides.
pub(super) const TILL_RETURN_PATIENCE: Duration = Duration::hours(6);

/// What a credit memo is to the order's till returns.
pub(super) enum TillEcho {
    /// Not one of theirs.
    No,
    /// The memo the named till return recorded.
    Of(String),
    /// The named till return has not recorded its memo yet: this may be it.
    Pending(String),
}

/// Reads the order's ledger and each till return's `shop_refund` step: one
/// read per earlier refund of the order, only for Adobe credit memos.
pub(super) async fn till_echo(
    store: &dyn StateStore,
    refund: &Refund,
) -> Result<TillEcho, StoreError> {
    let order = &refund.order;
    let Some(saga) = store.saga(&order.key()).await? else {
        return Ok(TillEcho::No);
    };
    let mut pending = None;
    for till in saga
        .refund_ledger
        .refunds
        .iter()
        .filter(|r| is_till_refund_id(&r.refund_id) && r.refund_id != refund.refund_id)
    {
        let case = store.saga(&return_key(order, &till.refund_id)).await?;
        match case.as_ref().and_then(|s| s.step(SHOP_STEP)) {
            Some(step) if step.status == StepStatus::Completed => {
                let recorded = step
                    .result
                    .as_ref()
                    .and_then(|r| r["platform_refund_id"].as_str());
                if recorded == Some(refund.refund_id.as_str()) {
                    return Ok(TillEcho::Of(till.refund_id.clone()));
                }
            }
            _ => pending = pending.or(Some(till.refund_id.clone())),
        }
    }
    Ok(pending.map_or(TillEcho::No, TillEcho::Pending))
}
