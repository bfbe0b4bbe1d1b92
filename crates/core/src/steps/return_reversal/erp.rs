//! The ERP side of a case: a refund's credit memo, of exactly the refund;
//! a cancellation's sales order cancelled, or left to the credit memos
//! already posted for refunds that came before it (the order was then
//! "credited").
//!
//! Shopify sends a cancellation's refund and the cancellation itself at the
//! same moment, in no fixed order. A Shopify refund that only takes back
//! unshipped items (every line restocked as `cancel`) is therefore given a
//! short grace before its credit memo: if the cancellation comes meanwhile,
//! the sales order is cancelled and the refund credits nothing, whichever
//! arrived first. Adobe Commerce cancels only what was never invoiced, and
//! its cancellation makes no credit memo: its refunds wait for nothing.

use crate::events::{CreditMemoLine, CreditMemoPosted, OrderCancelledInErp, OrderPostedToErp};
use crate::idempotency::external_id;
use crate::model::{LineKind, Platform, Refund};
use crate::money::Money;
use crate::ports::erp::{ErpCreditMemo, ErpLine};
use crate::refund_ledger::OrderFacts;
use crate::steps::erp_posting::{
    sales_order_external_id, DocumentError, ErpPostingConfig, STEP as POST_STEP,
};
use crate::steps::{run_step, StepOutcome};

use crate::resilience::ConnectorError;
use crate::saga::StepStatus;

use super::{
    cancellation_key, dependency, waiting, Case, Dependency, ReturnReversal, CREDIT_MEMO_STEP,
    ERP_CANCEL_STEP,
};

impl ReturnReversal {
    pub(super) async fn credit_memo(&self, case: &Case<'_>, refund: &Refund) -> StepOutcome {
        let posted = match dependency::<OrderPostedToErp>(case, POST_STEP) {
            Dependency::Done(p) => Some(p),
            Dependency::NeverRan => None,
            Dependency::Pending(outcome) => return outcome,
        };
        let skipped = match &posted {
            None => Some("the order never reached the ERP: it was cancelled first"),
            // What the cancellation did in the ERP decides: a cancelled order
            // has nothing invoiced to credit; a credited one, or one the ERP
            // no longer had open (invoiced meanwhile), gets its credit memo.
            Some(_) if case.cancelled() => {
                match cancellation_decision(self.store.as_ref(), case.order).await {
                    Ok(Some(method)) if method == "cancelled" => Some(
                        "the order's sales order was cancelled: nothing was invoiced to credit",
                    ),
                    Ok(Some(_)) => None,
                    Ok(None) => {
                        return waiting("waiting for the order's cancellation in the ERP".into())
                    }
                    Err(outcome) => return outcome,
                }
            }
            Some(_)
                if refund.order.platform == Platform::Shopify
                    && is_cancellation_refund(refund)
                    && case.inv.now < refund.created_at + CANCELLATION_GRACE =>
            {
                return StepOutcome::Retry {
                    reason: "a refund of unshipped items: giving the order's cancellation time to arrive".into(),
                    retry_after: Some(std::time::Duration::from_secs(60)),
                };
            }
            Some(_) => None,
        };
        let native = self.erp.connector.dedups_natively();
        let memo = match skipped {
            Some(_) => None,
            None => {
                let Some(facts) = super::known_facts(&case.saga) else {
                    return waiting("the order's facts are not recorded yet".into());
                };
                match credit_memo_for(refund, &facts, &self.config.erp) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        return StepOutcome::Reject {
                            reason: e.to_string(),
                        }
                    }
                }
            }
        };
        let recorded_customer = posted.as_ref().and_then(|p| p.customer_id.clone());
        let so_external = posted.as_ref().map(|p| p.external_id.clone());
        // Claimed even where the ERP upserts: a cancellation reads the claim
        // to know a credit memo is on its way.
        let claim = memo.is_some();
        run_step(self.run(case, CREDIT_MEMO_STEP, claim), || async {
            let mut detail = CreditMemoPosted {
                order: refund.order.clone(),
                refund_id: refund.refund_id.clone(),
                erp_system: self.erp.connector.system().to_string(),
                external_id: String::new(),
                document_id: String::new(),
                document_number: String::new(),
                total: Money::zero(refund.total.shop.currency),
                lines: Vec::new(),
                skipped_reason: skipped.map(str::to_string),
            };
            let Some(memo) = memo else {
                return Ok(detail);
            };
            // Claimed: look again for a cancellation that landed since the
            // saga was read. The cancellation writes its mark, then reads the
            // claims of earlier refunds; this writes the claim, then reads
            // the mark: one of the two always sees the other.
            if !case.cancelled() {
                let fresh = self.store.saga(&case.order_key).await?;
                if fresh.is_some_and(|s| s.refund_ledger.cancelled_at.is_some()) {
                    match cancellation_decision(self.store.as_ref(), case.order).await? {
                        Some(method) if method == "cancelled" => {
                            detail.skipped_reason = Some(
                                "the order's sales order was cancelled: nothing was invoiced to credit"
                                    .into(),
                            );
                            return Ok(detail);
                        }
                        Some(_) => {}
                        None => {
                            return Err(waiting(
                                "the order was cancelled meanwhile: waiting for its decision in the ERP"
                                    .into(),
                            ))
                        }
                    }
                }
            }
            let doc = self
                .erp
                .call(case.inv, |erp| {
                    let memo = memo.clone();
                    let (recorded, so_external) = (recorded_customer.clone(), so_external.clone());
                    async move {
                        // Postings recorded before customers were kept: the
                        // sales order itself says whose it is.
                        let customer_id = match (recorded, so_external) {
                            (Some(c), _) => c,
                            (None, Some(so)) => erp
                                .find_sales_order(&so)
                                .await?
                                .and_then(|d| d.customer_id)
                                .ok_or(ConnectorError::Rejected {
                                    system: "retailflow",
                                    status: 0,
                                    reason: "the order's sales order names no customer to credit"
                                        .into(),
                                })?,
                            (None, None) => {
                                return Err(ConnectorError::Rejected {
                                    system: "retailflow",
                                    status: 0,
                                    reason: "the order has no sales order to credit".into(),
                                })
                            }
                        };
                        if !native {
                            if let Some(doc) = erp.find_credit_memo(&memo.external_id).await? {
                                return Ok(doc);
                            }
                        }
                        erp.post_credit_memo(&memo, &customer_id).await
                    }
                })
                .await?;
            detail.external_id = memo.external_id.clone();
            detail.document_id = doc.id;
            detail.document_number = doc.number;
            detail.total = doc.total;
            detail.lines = memo
                .lines
                .iter()
                .map(|l| CreditMemoLine {
                    item: l.item.clone(),
                    quantity: l.quantity,
                    amount: l.amount,
                    restock: l.restock,
                })
                .collect();
            Ok(detail)
        })
        .await
    }

    /// Whether any refund admitted before the cancellation has its credit
    /// memo posted or on its way (claimed): the order is then credited.
    async fn credited_by_earlier_refunds(&self, case: &Case<'_>) -> Result<bool, StepOutcome> {
        let earlier = case
            .ledger()
            .refunds
            .get(..case.position)
            .unwrap_or_default();
        for r in earlier
            .iter()
            .filter(|r| !r.takes_rest && !r.total.is_zero())
        {
            let saga = self
                .store
                .saga(&super::return_key(case.order, &r.refund_id))
                .await?;
            let memo = saga.as_ref().and_then(|s| s.step(CREDIT_MEMO_STEP));
            let posted = match memo {
                Some(rec) if rec.status == StepStatus::Completed => rec
                    .result
                    .as_ref()
                    .is_some_and(|v| v["skipped_reason"].is_null()),
                Some(_) => true,
                // No record: an attempt whose answer was lost may still have
                // reached the ERP; the ERP says.
                None => {
                    let ext = credit_memo_external_id(case.order, &r.refund_id);
                    self.erp
                        .call(
                            case.inv,
                            |erp| async move { erp.find_credit_memo(&ext).await },
                        )
                        .await?
                        .is_some()
                }
            };
            if posted {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Claimed, so a redelivered cancellation answers with the decision it
    /// took instead of taking it again against an ERP that has moved on.
    pub(super) async fn cancel_in_erp(&self, case: &Case<'_>) -> StepOutcome {
        let posted = match dependency::<OrderPostedToErp>(case, POST_STEP) {
            Dependency::Done(p) => Some(p),
            Dependency::NeverRan => None,
            Dependency::Pending(outcome) => return outcome,
        };
        let external = sales_order_external_id(case.order);
        let credited = match posted {
            Some(_) => match self.credited_by_earlier_refunds(case).await {
                Ok(c) => c,
                Err(outcome) => return outcome,
            },
            None => false,
        };
        let outcome = run_step(self.run(case, ERP_CANCEL_STEP, true), || async {
            let mut note = None;
            let method = if credited {
                "credited"
            } else {
                // Also when the post never recorded itself: a worker that
                // died after posting, or a post that raced the cancellation.
                let ext = external.clone();
                let found = self
                    .erp
                    .call(
                        case.inv,
                        |erp| async move { erp.cancel_sales_order(&ext).await },
                    )
                    .await;
                match found {
                    Ok(true) => "cancelled",
                    Ok(false) => "not_posted",
                    // Refused for good (shipped, locked): the order stays open
                    // and that is the decision refunds follow (they credit
                    // it); the message goes to review below.
                    Err(StepOutcome::Reject { reason }) => {
                        note = Some(reason);
                        "left_open"
                    }
                    Err(other) => return Err(other),
                }
            };
            Ok(OrderCancelledInErp {
                order: case.order.clone(),
                erp_system: self.erp.connector.system().to_string(),
                external_id: external.clone(),
                document_id: posted.as_ref().map(|p| p.document_id.clone()),
                method: method.to_string(),
                note,
            })
        })
        .await;
        match outcome {
            StepOutcome::Done { summary } if summary["method"] == "left_open" => {
                StepOutcome::Reject {
                    reason: format!(
                        "the ERP refused to cancel sales order {external}: {}; it is left open and needs review",
                        summary["note"].as_str().unwrap_or("no reason given")
                    ),
                }
            }
            other => other,
        }
    }
}

/// How the order's cancellation ended in the ERP (`cancelled`, `credited`,
/// `not_posted`), once it has.
pub(crate) async fn cancellation_decision(
    store: &dyn crate::ports::StateStore,
    order: &crate::model::OrderRef,
) -> Result<Option<String>, StepOutcome> {
    let saga = store.saga(&cancellation_key(order)).await?;
    Ok(saga
        .as_ref()
        .and_then(|s| s.step(ERP_CANCEL_STEP))
        .filter(|r| r.status == StepStatus::Completed)
        .and_then(|r| r.result.as_ref())
        .and_then(|r| r["method"].as_str().map(str::to_string)))
}

/// An Adobe credit memo lists a configurable product's child with its
/// parent, under the same simple SKU and quantity, with no money. Orders
/// recorded before their facts named such children cannot say so: the
/// child is then known by carrying nothing while a line of the same SKU and
/// quantity carries the money. Posting it would restock the unit twice.
fn counted_by_sibling(refund: &Refund, line: &crate::model::RefundLine) -> bool {
    refund.order.platform == Platform::AdobeCommerce
        && line.subtotal.shop.is_zero()
        && line.tax.shop.is_zero()
        && line.sku.is_some()
        && refund.lines.iter().any(|other| {
            other.line_id != line.line_id
                && other.sku == line.sku
                && other.quantity == line.quantity
                && !other.subtotal.shop.is_zero()
        })
}

/// How long a refund of unshipped items waits for the order's cancellation
/// before it is credited as a refund of its own.
const CANCELLATION_GRACE: chrono::Duration = chrono::Duration::minutes(10);

/// No goods came back (no line restocked as a return or written off as
/// damaged): what a shop's cancellation refunds, whatever restock type the
/// merchant picked, or a refund with no lines at all.
fn is_cancellation_refund(refund: &Refund) -> bool {
    use crate::model::RestockType;
    !refund
        .lines
        .iter()
        .any(|l| matches!(l.restock_type, RestockType::Return | RestockType::Damaged))
}

/// The external id a refund's credit memo is posted under.
pub fn credit_memo_external_id(r: &crate::model::OrderRef, refund_id: &str) -> String {
    external_id(
        "cm",
        &[r.platform.as_str(), &r.shop, &r.order_id, refund_id],
    )
}

/// The credit memo of a refund, in shop currency: returned lines with their
/// disposition, then shipping, tax (unless prices include it) and other
/// amounts; it sums to the refund total or is refused.
pub fn credit_memo_for(
    refund: &Refund,
    facts: &OrderFacts,
    items: &ErpPostingConfig,
) -> Result<ErpCreditMemo, DocumentError> {
    let r = &refund.order;
    let cur = refund.total.shop.currency;
    let mut lines = Vec::new();
    let mut tax = Money::zero(cur);
    for l in &refund.lines {
        // A line another line counts (a configurable product's child): the
        // parent's line is the return; it carries no money of its own.
        let uncounted = match &facts.uncounted_line_ids {
            Some(ids) => ids.contains(&l.line_id),
            None => counted_by_sibling(refund, l),
        };
        if uncounted {
            if !(l.subtotal.shop.is_zero() && l.tax.shop.is_zero()) {
                return Err(DocumentError::DoesNotAddUp(format!(
                    "refund line {} is for an item its parent line counts, yet carries {} and tax {}",
                    l.line_id, l.subtotal.shop, l.tax.shop
                )));
            }
            continue;
        }
        let item = match (l.kind, &l.sku) {
            (LineKind::GiftCard, _) => items.gift_card_item.clone(),
            (LineKind::Merchandise, Some(sku)) => sku.clone(),
            (LineKind::Merchandise, None) => items.unmapped_item.clone(),
        };
        let amount = if facts.taxes_included {
            l.subtotal.shop.checked_add(l.tax.shop)?
        } else {
            tax = tax.checked_add(l.tax.shop)?;
            l.subtotal.shop
        };
        let qty = l.quantity.max(1);
        // Unit price rounded up; ERPs that take a discount see the rest.
        let unit = Money::new(
            amount.minor.div_euclid(i64::from(qty))
                + i64::from(amount.minor.rem_euclid(i64::from(qty)) != 0),
            cur,
        );
        lines.push(ErpLine {
            item,
            description: format!("Return of line {}", l.line_id),
            quantity: l.quantity,
            unit_price: unit,
            amount,
            restock: Some(l.restock_type),
        });
    }
    let one = |item: &str, description: &str, amount: Money| ErpLine {
        item: item.to_string(),
        description: description.to_string(),
        quantity: 1,
        unit_price: amount,
        amount,
        restock: None,
    };
    let shipping = if facts.taxes_included {
        refund.shipping.shop.checked_add(refund.shipping_tax.shop)?
    } else {
        tax = tax.checked_add(refund.shipping_tax.shop)?;
        refund.shipping.shop
    };
    if !shipping.is_zero() {
        lines.push(one(&items.shipping_item, "Shipping refunded", shipping));
    }
    if !tax.is_zero() {
        lines.push(one(&items.tax_item, "Tax refunded", tax));
    }
    if refund.adjustment_parts.is_empty() {
        let other = refund.adjustments.shop.checked_add(refund.duties.shop)?;
        if !other.is_zero() {
            lines.push(one(
                &items.other_charges_item,
                "Refund adjustments and duties",
                other,
            ));
        }
    } else {
        // Named by the platform: each as the merchant entered it.
        for part in refund
            .adjustment_parts
            .iter()
            .filter(|p| !p.amount.shop.is_zero())
        {
            let description = match part.kind {
                crate::model::AdjustmentKind::Refund => "Adjustment refund",
                crate::model::AdjustmentKind::Fee => "Adjustment fee",
            };
            lines.push(one(
                &items.other_charges_item,
                description,
                part.amount.shop,
            ));
        }
        if !refund.duties.shop.is_zero() {
            lines.push(one(
                &items.other_charges_item,
                "Duties refunded",
                refund.duties.shop,
            ));
        }
    }
    let sum = Money::sum(cur, lines.iter().map(|l| &l.amount))?;
    if sum != refund.total.shop {
        return Err(DocumentError::DoesNotAddUp(format!(
            "credit memo lines add up to {sum}, not the refund total {}",
            refund.total.shop
        )));
    }
    Ok(ErpCreditMemo {
        external_id: credit_memo_external_id(r, &refund.refund_id),
        customer_external_id: String::new(),
        order_date: refund.created_at.date_naive(),
        memo: format!("{} refund {}", r.platform.as_str(), refund.refund_id),
        lines,
        total: refund.total.shop,
        order_key: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MoneyBag, OrderRef, Platform, RefundLine, RestockType};
    use crate::money::Currency;

    fn usd(minor: i64) -> MoneyBag {
        MoneyBag::single(Money::new(minor, Currency::from_code("USD").unwrap()))
    }

    fn facts(taxes_included: bool) -> OrderFacts {
        OrderFacts {
            total: usd(100_000).shop,
            taxes_included,
            placed_at: chrono::DateTime::UNIX_EPOCH,
            uncounted_line_ids: None,
        }
    }

    /// 2 units (15.00 + 1.20 tax) returned damaged, 5.00 shipping with 0.40
    /// tax, a 3.00 restocking fee kept back.
    fn refund() -> Refund {
        Refund {
            order: OrderRef {
                platform: Platform::Shopify,
                shop: "s".into(),
                order_id: "1".into(),
            },
            refund_id: "r".into(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            lines: vec![RefundLine {
                line_id: "10".into(),
                sku: Some("SKU-A".into()),
                kind: LineKind::Merchandise,
                quantity: 2,
                restock_type: RestockType::Damaged,
                location_id: None,
                subtotal: usd(1_501),
                tax: usd(120),
            }],
            shipping: usd(500),
            shipping_tax: usd(40),
            adjustments: usd(-300),
            adjustment_parts: Vec::new(),
            duties: usd(0),
            total: usd(1_501 + 120 + 500 + 40 - 300),
        }
    }

    #[test]
    fn a_credit_memo_sums_to_the_refund_with_tax_shipping_and_adjustments_on_lines_of_their_own() {
        let m = credit_memo_for(&refund(), &facts(false), &ErpPostingConfig::default()).unwrap();
        let lines: Vec<(&str, i64)> = m
            .lines
            .iter()
            .map(|l| (l.item.as_str(), l.amount.minor))
            .collect();
        assert_eq!(
            lines,
            vec![
                ("SKU-A", 1_501),
                ("SHIPPING", 500),
                ("SALES-TAX", 160),
                ("OTHER-CHARGES", -300)
            ]
        );
        assert_eq!(m.total.minor, 1_861);
        assert_eq!(m.lines[0].restock, Some(RestockType::Damaged));
        // 15.01 over 2 units: unit price rounded up, the ERP sees 1 cent of
        // discount rather than a total that does not match.
        assert_eq!(m.lines[0].unit_price.minor, 751);
    }

    #[test]
    fn with_prices_including_tax_the_tax_stays_inside_its_lines() {
        let m = credit_memo_for(&refund(), &facts(true), &ErpPostingConfig::default()).unwrap();
        let items: Vec<&str> = m.lines.iter().map(|l| l.item.as_str()).collect();
        assert_eq!(items, vec!["SKU-A", "SHIPPING", "OTHER-CHARGES"]);
        assert_eq!(m.lines[0].amount.minor, 1_621);
        assert_eq!(m.lines[1].amount.minor, 540);
        assert_eq!(m.total.minor, 1_861);
    }

    #[test]
    fn an_adjustment_refund_and_an_adjustment_fee_post_as_lines_of_their_own_that_sum_to_the_refund(
    ) {
        use crate::model::{AdjustmentKind, RefundAdjustment};
        let mut r = refund();
        r.adjustment_parts = vec![
            RefundAdjustment {
                kind: AdjustmentKind::Refund,
                amount: usd(200),
            },
            RefundAdjustment {
                kind: AdjustmentKind::Fee,
                amount: usd(-500),
            },
        ];
        let m = credit_memo_for(&r, &facts(false), &ErpPostingConfig::default()).unwrap();
        let lines: Vec<(&str, &str, i64)> = m
            .lines
            .iter()
            .map(|l| (l.item.as_str(), l.description.as_str(), l.amount.minor))
            .collect();
        assert_eq!(
            &lines[3..],
            &[
                ("OTHER-CHARGES", "Adjustment refund", 200),
                ("OTHER-CHARGES", "Adjustment fee", -500)
            ]
        );
        assert_eq!(m.total.minor, 1_861);
        // Parts that do not make the refund's adjustments do not add up.
        r.adjustment_parts.pop();
        assert!(credit_memo_for(&r, &facts(false), &ErpPostingConfig::default()).is_err());
    }

    #[test]
    fn a_refund_line_for_an_item_its_parent_counts_posts_no_line_of_its_own() {
        let mut r = refund();
        let mut child = r.lines[0].clone();
        child.line_id = "11".into();
        child.subtotal = usd(0);
        child.tax = usd(0);
        r.lines.push(child);
        let mut f = facts(false);
        f.uncounted_line_ids = Some(vec!["11".into()]);
        let m = credit_memo_for(&r, &f, &ErpPostingConfig::default()).unwrap();
        let returned: Vec<&str> = m
            .lines
            .iter()
            .filter(|l| l.restock.is_some())
            .map(|l| l.description.as_str())
            .collect();
        assert_eq!(returned, vec!["Return of line 10"]);
        // Unless the order says so, it is a line like any other.
        let m = credit_memo_for(&r, &facts(false), &ErpPostingConfig::default()).unwrap();
        assert_eq!(m.lines.iter().filter(|l| l.restock.is_some()).count(), 2);
        // A line of that kind carrying money is not quietly dropped.
        r.lines[1].subtotal = usd(100);
        r.total = usd(r.total.shop.minor + 100);
        let err = credit_memo_for(&r, &f, &ErpPostingConfig::default()).unwrap_err();
        assert!(err.to_string().contains("its parent line counts"), "{err}");
    }

    #[test]
    fn an_adobe_child_line_of_an_order_recorded_without_its_uncounted_items_is_folded_by_its_sku_and_quantity(
    ) {
        let mut r = refund();
        r.order.platform = crate::model::Platform::AdobeCommerce;
        let mut child = r.lines[0].clone();
        child.line_id = "11".into();
        child.subtotal = usd(0);
        child.tax = usd(0);
        r.lines.push(child);
        let restocked = |r: &Refund| {
            credit_memo_for(r, &facts(false), &ErpPostingConfig::default())
                .unwrap()
                .lines
                .iter()
                .filter(|l| l.restock.is_some())
                .count()
        };
        assert_eq!(restocked(&r), 1, "one unit back, not two");
        // Facts that name the uncounted items are followed: a free line of
        // the same SKU they do not name is a unit of its own.
        let mut named = facts(false);
        named.uncounted_line_ids = Some(Vec::new());
        let m = credit_memo_for(&r, &named, &ErpPostingConfig::default()).unwrap();
        assert_eq!(m.lines.iter().filter(|l| l.restock.is_some()).count(), 2);
        // A line of another SKU carrying nothing is still posted.
        r.lines[1].sku = Some("OTHER-SKU".into());
        assert_eq!(restocked(&r), 2);
    }

    #[test]
    fn a_refund_without_adjustment_parts_keeps_its_single_adjustments_line() {
        let m = credit_memo_for(&refund(), &facts(false), &ErpPostingConfig::default()).unwrap();
        let other: Vec<&str> = m
            .lines
            .iter()
            .filter(|l| l.item == "OTHER-CHARGES")
            .map(|l| l.description.as_str())
            .collect();
        assert_eq!(other, vec!["Refund adjustments and duties"]);
    }

    #[test]
    fn a_refund_whose_parts_do_not_add_up_is_refused_with_both_amounts() {
        let mut r = refund();
        r.total = usd(9_999);
        let err = credit_memo_for(&r, &facts(false), &ErpPostingConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("18.61") && err.contains("99.99"), "{err}");
    }
}
