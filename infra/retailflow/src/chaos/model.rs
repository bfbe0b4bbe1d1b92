//! The chaos run's reference model: what the ERP, the loyalty platform and
//! the stock must hold after the run, from the workload's own figures (the
//! fixtures' Python-computed totals), compared with what the simulated
//! systems of record actually hold. It shares no business logic with the
//! steps; it only names things the way the systems do (order keys, member
//! numbers) to find them.

use std::collections::BTreeMap;

use serde::Serialize;

use super::workload::{Afterwards, ExpectedOrder};
use crate::local_app::LocalApp;

/// What broke a guarantee; every count must be 0.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Violations {
    /// Accepted orders with no saga, no ERP sales order or no accrual.
    pub orders_lost: u64,
    /// A second sales order, accrual, credit memo or shop refund.
    pub effects_doubled: u64,
    /// Members whose balance is not the model's, and orders whose accrual is not.
    pub points_mismatched: u64,
    /// Orders refunded above their total, or credit memos of an amount no
    /// return asked for.
    pub refunds_over_total: u64,
    /// Units committed beyond the stock there was.
    pub oversold_units: u64,
    /// Sales orders whose total is not the order's.
    pub amounts_wrong: u64,
    /// Orders without exactly one canonical event per accepted delivery
    /// (OrderPlaced, each RefundIssued, OrderCancelled).
    pub events_wrong: u64,
    /// Dead letters without a reason or a correlation id.
    pub dead_letters_unexplained: u64,
    /// What the last reconciliation still found.
    pub discrepancies_left: u64,
    /// Injected drift (deleted sales orders, lost messages) the first
    /// reconciliation did not find.
    pub drift_missed: u64,
    /// What the first reconciliation found where nothing was injected.
    pub drift_unexplained: u64,
    /// Valid deliveries refused (4xx), never taken (5xx to the end) or
    /// quarantined.
    pub inputs_refused: u64,
    /// A drain that never emptied the queues.
    pub queues_stuck: u64,
    /// Dead letters left after the fault was fixed and they were re-driven.
    pub dead_letters_left: u64,
    /// Records dead-lettered because a credential was refused (expiring
    /// tokens and a rotation must never cost an order).
    pub auth_dead_letters: u64,
    /// Calls the ERP refused for its concurrency limit: retailflow sent
    /// more at once than the account allows.
    pub over_erp_limit: u64,
}

impl Violations {
    pub fn total(&self) -> u64 {
        self.orders_lost
            + self.effects_doubled
            + self.points_mismatched
            + self.refunds_over_total
            + self.oversold_units
            + self.amounts_wrong
            + self.events_wrong
            + self.dead_letters_unexplained
            + self.discrepancies_left
            + self.drift_missed
            + self.drift_unexplained
            + self.inputs_refused
            + self.queues_stuck
            + self.dead_letters_left
            + self.auth_dead_letters
            + self.over_erp_limit
    }
}

/// An order as placed in the run.
pub struct Placed<'a> {
    pub expected: &'a ExpectedOrder,
    /// Its saga key, `platform:shop:order:id`.
    pub key: String,
}

/// Checks every guarantee; `details` gets the first few failures' words.
pub fn check(
    app: &LocalApp,
    placed: &[Placed<'_>],
    initial_stock: &BTreeMap<String, u32>,
    available_after: &BTreeMap<String, u32>,
    details: &mut Vec<String>,
) -> Violations {
    let mut v = Violations::default();
    let note = |details: &mut Vec<String>, s: String| {
        if details.len() < 20 {
            details.push(s);
        }
    };
    let saga_records = app.store.sagas();
    let sagas: std::collections::BTreeSet<String> =
        saga_records.iter().map(|s| s.saga_key.clone()).collect();
    let mut sales_orders: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for so in app.sims.netsuite_sales_orders() {
        sales_orders
            .entry(so.order_key.clone().unwrap_or_default())
            .or_default()
            .push(so);
    }
    // Credit memos lead back to their order through the returns' sagas
    // (which name the document's external id); one the sagas do not name
    // is an effect retailflow does not know it made.
    let all_credit_memos: BTreeMap<String, _> = app
        .sims
        .netsuite_credit_memos()
        .into_iter()
        .map(|c| (c.external_id.clone(), c))
        .collect();
    let mut credit_memos: BTreeMap<String, Vec<_>> = BTreeMap::new();
    let mut linked = std::collections::BTreeSet::new();
    for saga in app.store.sagas() {
        let Some((order, _)) = saga.saga_key.split_once(":return:") else {
            continue;
        };
        let external = saga
            .steps
            .get("credit_memo")
            .and_then(|s| s.result.as_ref())
            .and_then(|r| r["external_id"].as_str().map(str::to_string));
        if let Some(cm) = external.and_then(|x| all_credit_memos.get(&x)) {
            linked.insert(cm.external_id.clone());
            credit_memos
                .entry(order.to_string())
                .or_default()
                .push(cm.clone());
        }
    }
    let unknown = all_credit_memos.len() - linked.len();
    if unknown > 0 {
        v.effects_doubled += unknown as u64;
        note(
            details,
            format!("{unknown} credit memos no return's saga names"),
        );
    }
    let mut accruals: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for j in app.sims.loyalty_journals() {
        if j.kind == "Accrual" {
            accruals
                .entry(j.external_transaction_number.clone())
                .or_default()
                .push(j);
        }
    }
    let mut shop_refunds: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in app.sims.shop_refunds() {
        *shop_refunds.entry((r.order_id, r.reference)).or_default() += 1;
    }
    v.effects_doubled += shop_refunds.values().filter(|n| **n > 1).count() as u64;

    // One canonical event (one event id) per accepted delivery: duplicate
    // deliveries make no second one. The same event published again after
    // a crash before the intake's completion is EventBridge's
    // at-least-once, absorbed downstream, not a second event.
    let mut published: BTreeMap<(String, &str), std::collections::BTreeSet<uuid::Uuid>> =
        BTreeMap::new();
    for e in app.bus.recorded.published() {
        if let Some(key) = retailflow_core::queue_batch::correlation_id(&e.detail) {
            let kind = match e.detail_type.as_str() {
                "OrderPlaced" => "OrderPlaced",
                "RefundIssued" => "RefundIssued",
                "OrderCancelled" => "OrderCancelled",
                _ => continue,
            };
            published.entry((key, kind)).or_default().insert(e.event_id);
        }
    }
    let mut balances: BTreeMap<String, i64> = BTreeMap::new();
    let mut claimed_sales_orders = 0usize;
    let mut claimed_accruals = 0usize;
    for p in placed {
        let e = p.expected;
        let cancelled = e.afterwards == Afterwards::Cancelled;
        let (platform, shop) = {
            let mut parts = p.key.splitn(3, ':');
            (
                parts.next().unwrap_or_default().to_string(),
                parts.next().unwrap_or_default().to_string(),
            )
        };
        let order_ref = retailflow_core::model::OrderRef {
            platform: if platform == "adobe_commerce" {
                retailflow_core::model::Platform::AdobeCommerce
            } else {
                retailflow_core::model::Platform::Shopify
            },
            shop: shop.clone(),
            order_id: e.order_id.clone(),
        };
        let sos = sales_orders.get(&p.key).map(Vec::as_slice).unwrap_or(&[]);
        let accrual_number =
            retailflow_core::steps::loyalty_accrual::accrual_external_id(&order_ref);
        let acc = accruals
            .get(&accrual_number)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        claimed_sales_orders += sos.len();
        claimed_accruals += acc.len();
        let events = |kind| {
            published
                .get(&(p.key.clone(), kind))
                .map_or(0, |ids| ids.len())
        };
        let want_cancelled = usize::from(cancelled);
        if events("OrderPlaced") != 1
            || events("RefundIssued") != e.returns.len()
            || events("OrderCancelled") != want_cancelled
        {
            v.events_wrong += 1;
            note(
                details,
                format!(
                    "events: {} published OrderPlaced {}, RefundIssued {} (returns {}), OrderCancelled {}",
                    p.key,
                    events("OrderPlaced"),
                    events("RefundIssued"),
                    e.returns.len(),
                    events("OrderCancelled")
                ),
            );
        }
        if !sagas.contains(&p.key) || (!cancelled && (sos.is_empty() || acc.is_empty())) {
            v.orders_lost += 1;
            note(
                details,
                format!(
                    "lost: {} (saga {}, {} sales orders, {} accruals)",
                    p.key,
                    sagas.contains(&p.key),
                    sos.len(),
                    acc.len()
                ),
            );
        }
        if sos.len() > 1 || acc.len() > 1 {
            v.effects_doubled += 1;
            note(
                details,
                format!(
                    "doubled: {} has {} sales orders, {} accruals",
                    p.key,
                    sos.len(),
                    acc.len()
                ),
            );
        }
        if let Some(so) = sos.first() {
            if so.total.minor != e.total_minor {
                v.amounts_wrong += 1;
                note(
                    details,
                    format!(
                        "total: {} posted {} not {}",
                        p.key, so.total.minor, e.total_minor
                    ),
                );
            }
            if cancelled && !so.closed {
                v.orders_lost += 1;
                // Where each of its steps stands, to see which one missed.
                let steps: Vec<String> = saga_records
                    .iter()
                    .filter(|s| s.saga_key.starts_with(&p.key))
                    .flat_map(|s| {
                        s.steps.iter().map(|(n, r)| {
                            format!("{}:{n}={:?}", s.saga_key.len() - p.key.len(), r.status)
                        })
                    })
                    .collect();
                note(
                    details,
                    format!(
                        "cancelled {} but its sales order {} is open (upserts {}); steps {}",
                        p.key,
                        so.external_id,
                        so.upserts,
                        steps.join(", ")
                    ),
                );
            }
        }
        if let Some(j) = acc.first() {
            if j.points != e.accrued_points() {
                v.points_mismatched += 1;
                note(
                    details,
                    format!(
                        "accrual: {} has {} points, the rules give {}",
                        p.key,
                        j.points,
                        e.accrued_points()
                    ),
                );
            }
        }
        // Credit memos: one per return, of its refund total, never above the order.
        let cms = credit_memos.get(&p.key).map(Vec::as_slice).unwrap_or(&[]);
        if cms.len() > e.returns.len() {
            v.effects_doubled += 1;
            note(
                details,
                format!(
                    "doubled: {} has {} credit memos for {} returns",
                    p.key,
                    cms.len(),
                    e.returns.len()
                ),
            );
        }
        let refunded: i64 = cms.iter().map(|c| c.total.minor).sum();
        let mut wanted: Vec<i64> = e.returns.iter().map(|r| r.total_minor).collect();
        let mut got: Vec<i64> = cms.iter().map(|c| c.total.minor).collect();
        wanted.sort();
        got.sort();
        if refunded > e.total_minor || (!cancelled && got != wanted) {
            v.refunds_over_total += 1;
            note(
                details,
                format!(
                    "refunds: {} credit memos {got:?}, returns asked {wanted:?}, total {}",
                    p.key, e.total_minor
                ),
            );
        }
        let member = retailflow_core::idempotency::external_id(
            "mb",
            &[
                platform.as_str(),
                &shop,
                &match e.platform {
                    "adobe_commerce" => (1000 + e.customer).to_string(),
                    _ => (6_100_000_000 + e.customer).to_string(),
                },
            ],
        );
        *balances.entry(member).or_default() += e.net_points();
    }
    let members: BTreeMap<String, i64> = app
        .sims
        .loyalty_members()
        .into_iter()
        .map(|m| (m.membership_number, m.points_balance))
        .collect();
    for (member, want) in &balances {
        let got = members.get(member).copied().unwrap_or(0);
        if got != *want {
            v.points_mismatched += 1;
            note(
                details,
                format!("balance: member {member} has {got}, the model {want}"),
            );
        }
    }
    for (member, got) in &members {
        if !balances.contains_key(member) && *got != 0 {
            v.points_mismatched += 1;
            note(
                details,
                format!("balance: unknown member {member} has {got}"),
            );
        }
    }
    // Documents no placed order accounts for: effects made twice, or for
    // nothing.
    let all_sales_orders: usize = sales_orders.values().map(Vec::len).sum();
    let all_accruals: usize = accruals.values().map(Vec::len).sum();
    let stray = all_sales_orders.saturating_sub(claimed_sales_orders)
        + all_accruals.saturating_sub(claimed_accruals);
    if stray > 0 {
        v.effects_doubled += stray as u64;
        note(
            details,
            format!("{stray} sales orders or accruals no placed order accounts for"),
        );
    }
    // Stock: what placed, uncancelled orders took never exceeds what there
    // was, and the ledger shows exactly that.
    let mut committed: BTreeMap<&str, u64> = BTreeMap::new();
    for p in placed
        .iter()
        .filter(|p| p.expected.afterwards != Afterwards::Cancelled)
    {
        for (sku, units) in &p.expected.cart {
            *committed.entry(sku.as_str()).or_default() += u64::from(*units);
        }
    }
    for (sku, initial) in initial_stock {
        let took = committed.get(sku.as_str()).copied().unwrap_or(0);
        v.oversold_units += took.saturating_sub(u64::from(*initial));
        let left = u64::from(*initial).saturating_sub(took);
        let shown = available_after.get(sku).copied().map(u64::from);
        if shown != Some(left) {
            note(
                details,
                format!("stock: {sku} shows {shown:?} available, the model {left}"),
            );
            v.oversold_units += left.abs_diff(shown.unwrap_or(0));
        }
    }
    v
}
