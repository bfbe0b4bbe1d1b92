//! The support console on the local app: its exceptions gathered from the
//! app's own dead-letter queues, quarantine, sagas and last reconciliation
//! report, and each order's page from its trace and the order as the shop
//! sent it. `retailflow serve` serves the pages at `/console`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use retailflow_console::inbox::{Exception, ExceptionClass, Origin};
use retailflow_console::order::{customer_name, order_view, OrderView};
use retailflow_core::model::Order;
use retailflow_core::ports::operator_actions::OperatorActions;
use retailflow_core::ports::StateStore;
use retailflow_core::reconciliation::checks::stuck_steps;
use retailflow_core::reconciliation::{
    DiscrepancyKind, ReconciliationConfig, ReconciliationReport, LATEST_CURSOR,
};
use retailflow_core::replay::DeadLetterView;
use retailflow_core::trace::{quarantined_order_key, OrderTrace};

use crate::local_app::{LocalApp, STEP_QUEUES};

pub mod http;

/// The systems a connector failure names first (`ConnectorError`'s text).
const SYSTEMS: [&str; 6] = [
    "netsuite",
    "business-central",
    "salesforce-loyalty",
    "salesforce",
    "shopify",
    "adobe_commerce",
];

fn system_of(reason: &str) -> Option<String> {
    let first = reason.split_whitespace().next()?;
    SYSTEMS
        .iter()
        .find(|s| first.eq_ignore_ascii_case(s))
        .map(|s| s.to_string())
}

/// The step a queue feeds, when it feeds one; the return-reversal queue
/// feeds four, and its dead letter is the whole case.
fn step_of(queue: &str) -> String {
    let steps: Vec<&str> = STEP_QUEUES
        .iter()
        .filter(|(_, q)| *q == queue)
        .map(|(s, _)| *s)
        .collect();
    match steps.as_slice() {
        [one] => one.to_string(),
        _ => queue.replace('-', "_"),
    }
}

/// Each order as the shop last sent it, by key (what the saga does not
/// keep: its number, customer, tax and discounts).
pub fn orders(app: &LocalApp) -> HashMap<String, Order> {
    let mut out = HashMap::new();
    for e in app.bus.recorded.published() {
        if e.detail_type != "OrderPlaced" && e.detail_type != "OrderUpdated" {
            continue;
        }
        let Ok(envelope) = serde_json::from_str::<serde_json::Value>(&e.detail) else {
            continue;
        };
        if let Ok(order) = serde_json::from_value::<Order>(envelope["detail"]["order"].clone()) {
            out.insert(order.order.key(), order);
        }
    }
    out
}

fn about_order(e: &mut Exception, orders: &HashMap<String, Order>) {
    if let Some(o) = e.order_key.as_ref().and_then(|k| orders.get(k)) {
        e.order_number = Some(o.display_name.clone());
        e.order_value = Some(o.totals.total.shop);
        e.customer = customer_name(o);
    }
}

/// Every exception the local app holds now.
pub async fn exceptions(app: &LocalApp) -> Vec<Exception> {
    let now = app.clock.now();
    let orders = orders(app);
    let mut out = Vec::new();
    for d in app.dead_letters() {
        let view = DeadLetterView::from_body(
            d.id.clone(),
            d.queue.clone(),
            Some(d.reason.clone()),
            d.body.clone(),
        );
        out.push(Exception {
            id: d.id.clone(),
            origin: Origin::DeadLetter {
                queue: d.queue.clone(),
            },
            class: ExceptionClass::of_reason(Some(&d.reason)),
            step: Some(step_of(&d.queue)),
            system: system_of(&d.reason),
            since: d.at.unwrap_or(now),
            order_key: view.correlation_id,
            order_number: None,
            order_value: None,
            customer: None,
            reason: d.reason,
        });
    }
    for q in app.store.quarantined() {
        out.push(Exception {
            id: q.id.to_string(),
            origin: Origin::Quarantined,
            class: ExceptionClass::of_reason(Some(&q.reason)),
            step: Some("intake".into()),
            system: Some(q.source.clone()),
            since: q.received_at,
            order_key: quarantined_order_key(&q),
            order_number: None,
            order_value: None,
            customer: None,
            reason: q.reason.clone(),
        });
    }
    // A step whose message is dead-lettered is listed once, as the letter
    // (by order and queue: the return-reversal queue feeds four steps).
    let lettered: std::collections::HashSet<(String, String)> = out
        .iter()
        .filter_map(|e| match (&e.origin, &e.order_key) {
            (Origin::DeadLetter { queue }, Some(key)) => Some((key.clone(), queue.clone())),
            _ => None,
        })
        .collect();
    let config = ReconciliationConfig::default();
    for saga in app.store.sagas() {
        for s in stuck_steps(&saga, now, &config) {
            let queue = STEP_QUEUES
                .iter()
                .find(|(step, _)| *step == s.step)
                .map(|(_, q)| q.to_string())
                .unwrap_or_default();
            if lettered.contains(&(s.order_key.clone(), queue)) {
                continue;
            }
            out.push(Exception {
                id: format!("{}#{}", s.saga_key, s.step),
                origin: Origin::StuckStep,
                class: ExceptionClass::Stuck,
                step: Some(s.step.clone()),
                system: None,
                since: s.due_at,
                order_key: Some(s.order_key.clone()),
                order_number: None,
                order_value: None,
                customer: None,
                reason: format!("{} has not finished within its SLA", s.step),
            });
        }
    }
    out.extend(last_report_findings(app).await);
    for e in &mut out {
        about_order(e, &orders);
    }
    out
}

/// What the last reconciliation found in the systems of record (what it
/// found in retailflow itself is listed above from its source).
async fn last_report_findings(app: &LocalApp) -> Vec<Exception> {
    let store: &dyn StateStore = app.store.as_ref();
    let Ok(Some(run_id)) = store.read_cursor(LATEST_CURSOR).await else {
        return Vec::new();
    };
    let Ok(Some(body)) = store.report(&run_id).await else {
        return Vec::new();
    };
    let Ok(report) = serde_json::from_str::<ReconciliationReport>(&body) else {
        return Vec::new();
    };
    let since: DateTime<Utc> = report.finished_at.unwrap_or(report.started_at);
    report
        .discrepancies
        .iter()
        .enumerate()
        .filter(|(_, d)| {
            matches!(
                d.kind,
                DiscrepancyKind::Missing
                    | DiscrepancyKind::Duplicate
                    | DiscrepancyKind::AmountMismatch
            )
        })
        .map(|(n, d)| Exception {
            id: format!("{}#{n}", report.run_id),
            origin: Origin::Discrepancy,
            class: if d.kind == DiscrepancyKind::Duplicate {
                ExceptionClass::Duplicate
            } else {
                ExceptionClass::Review
            },
            step: None,
            system: Some(d.system.clone()),
            since,
            order_key: Some(d.order_key.clone()),
            order_number: None,
            order_value: None,
            customer: None,
            reason: format!("{} {}: {}", d.kind.as_str(), d.subject, d.detail),
        })
        .collect()
}

/// The order's page, or `None` when the app knows nothing of it.
pub async fn order_page(app: &LocalApp, key: &str) -> anyhow::Result<Option<OrderView>> {
    use retailflow_core::ports::dead_letters::DeadLetters;
    use retailflow_core::trace::{only_stuck, trace_order, with_stuck};
    let found = trace_order(app.store.as_ref(), key).await?;
    let letters = app.list(usize::MAX).await?;
    let quarantined = app.store.quarantined();
    let trace = match found {
        Some(t) => with_stuck(t, &letters, &quarantined),
        None => match only_stuck(key, &letters, &quarantined) {
            Some(t) => t,
            None => return Ok(None),
        },
    };
    let trace = with_summaries(trace, app);
    let orders = orders(app);
    let actions = app.store.for_order(key).await?;
    Ok(Some(order_view(&trace, orders.get(key), &actions)))
}

/// Each traced event with what it said, from the events the app published
/// (`run`'s timeline lines): a return's by its refund id, the rest in order.
pub fn with_summaries(mut t: OrderTrace, app: &LocalApp) -> OrderTrace {
    let timelines = crate::timeline::timelines(app);
    let Some(line) = timelines.iter().find(|l| l.correlation_id == t.order_key) else {
        return t;
    };
    let mut used = vec![false; line.entries.len()];
    for e in &mut t.events {
        let cancellation = format!(":{}", retailflow_core::refund_ledger::CANCELLATION_ID);
        let refund = match e.saga_key.rsplit_once(":return:") {
            Some((_, r)) => Some(r),
            None if e.saga_key.ends_with(&cancellation) => {
                Some(retailflow_core::refund_ledger::CANCELLATION_ID)
            }
            None => None,
        };
        let fits = |x: &crate::timeline::Entry| {
            x.event_type == e.event_type && (refund.is_none() || x.refund_id.as_deref() == refund)
        };
        let found = (0..line.entries.len()).find(|&i| !used[i] && fits(&line.entries[i]));
        if let Some(i) = found {
            used[i] = true;
            e.summary = Some(line.entries[i].summary.clone());
        }
    }
    t
}
