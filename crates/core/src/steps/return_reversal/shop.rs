//! A till return recorded on the shop's order, so the shop shows it as
//! returned.

use crate::events::ShopRefundRecorded;
use crate::idempotency::external_id;
use crate::model::Refund;
use crate::ports::shop::{ShopRefund, ShopRefundLine};
use crate::steps::{run_step, StepOutcome};

use super::{Case, ReturnReversal, SHOP_STEP};

impl ReturnReversal {
    pub(super) async fn shop_refund(&self, case: &Case<'_>, refund: &Refund) -> StepOutcome {
        let r = &refund.order;
        let Some((_, shop)) = self.shops.iter().find(|(p, _)| *p == r.platform) else {
            return StepOutcome::Reject {
                reason: format!(
                    "no ecommerce connector for {}: the till return cannot be recorded in the shop",
                    r.platform.as_str()
                ),
            };
        };
        let request = shop_refund_for(refund);
        run_step(self.run(case, SHOP_STEP, true), || async {
            let platform_refund_id = shop
                .call(case.inv, |c| {
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
                refund_id: refund.refund_id.clone(),
                platform_refund_id,
                total: refund.total.shop,
            })
        })
        .await
    }
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
