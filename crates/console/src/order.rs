//! An order's page: its whole story as a timeline, and its money side by
//! side across the shop, the ERP and the loyalty platform, with any
//! difference flagged. Built from the order's trace (its sagas, their step
//! results) and the order as the shop sent it.

use retailflow_core::model::{Order, Platform};
use retailflow_core::money::Money;
use retailflow_core::ports::operator_actions::OperatorAction;
use retailflow_core::saga::StepStatus;
use retailflow_core::trace::{OrderTrace, TracedStep};
use serde_json::Value;

/// A label and what it says, one row of a money table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub label: String,
    pub value: String,
}

/// One entry of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    pub at: String,
    pub what: String,
    /// `order`, `return:<refund id>` or `cancellation`.
    pub part: String,
    pub said: String,
}

/// A step and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepEntry {
    pub part: String,
    pub step: String,
    pub status: &'static str,
    pub when: String,
}

/// Something of the order that is not done, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckEntry {
    pub what: String,
    /// On a dead-letter queue: an operator can retry it from here.
    pub dead_letter: bool,
    pub subject: String,
    pub reason: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderView {
    pub order_key: String,
    pub order_number: Option<String>,
    pub customer: Option<String>,
    pub complete: bool,
    pub shop: Vec<Row>,
    pub erp: Vec<Row>,
    pub loyalty: Vec<Row>,
    /// Differences between what the shop says and what the systems hold.
    pub mismatches: Vec<String>,
    pub timeline: Vec<TimelineEntry>,
    pub steps: Vec<StepEntry>,
    pub stuck: Vec<StuckEntry>,
    /// (label, URL) of the order in the systems that have it.
    pub links: Vec<(String, String)>,
}

fn money(v: &Value) -> Option<Money> {
    serde_json::from_value(v.clone()).ok()
}

/// The part of the order a saga key is about.
fn part(order_key: &str, saga_key: &str) -> String {
    saga_key
        .strip_prefix(order_key)
        .map(|rest| rest.trim_start_matches(':'))
        .filter(|rest| !rest.is_empty())
        .unwrap_or("order")
        .to_string()
}

fn completed<'a>(
    steps: &'a [TracedStep],
    step: &'a str,
) -> impl Iterator<Item = (&'a TracedStep, &'a Value)> + 'a {
    steps
        .iter()
        .filter(move |s| s.step == step && s.status == StepStatus::Completed)
        .filter_map(|s| s.result.as_ref().map(|r| (s, r)))
}

/// The customer as the page names them: never written to a log.
pub fn customer_name(order: &Order) -> Option<String> {
    let c = order.customer.as_ref()?;
    let name = [c.first_name.as_deref(), c.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if name.trim().is_empty() {
        c.email.clone()
    } else {
        Some(name)
    }
}

/// The page of the order `trace` follows; `order` is the order as the shop
/// sent it, `actions` what operators did about it (on its timeline).
pub fn order_view(
    trace: &OrderTrace,
    order: Option<&Order>,
    actions: &[OperatorAction],
) -> OrderView {
    let key = &trace.order_key;
    let mut shop = Vec::new();
    let mut mismatches = Vec::new();
    if let Some(o) = order {
        let t = &o.totals;
        for (label, m) in [
            ("Order total", t.total.shop),
            ("Merchandise", t.lines_gross.shop),
            ("Discounts", t.line_discounts.shop),
            ("Shipping", t.shipping.shop),
            ("Tax", t.tax.shop),
        ] {
            shop.push(Row {
                label: label.into(),
                value: m.to_string(),
            });
        }
        if o.taxes_included {
            shop.push(Row {
                label: "Prices".into(),
                value: "include tax".into(),
            });
        }
    }
    let mut erp = Vec::new();
    for (_, r) in completed(&trace.steps, "erp_post") {
        let total = money(&r["total"]);
        erp.push(Row {
            label: format!(
                "Sales order {}",
                r["document_number"].as_str().unwrap_or("?")
            ),
            value: total.map(|m| m.to_string()).unwrap_or_default(),
        });
        if let (Some(o), Some(total)) = (order, total) {
            if total != o.totals.total.shop {
                mismatches.push(format!(
                    "the ERP's sales order is {total}, the order {}",
                    o.totals.total.shop
                ));
            }
        }
    }
    for (s, r) in completed(&trace.steps, "credit_memo") {
        let refund = part(key, &s.saga_key);
        let value = match r["skipped_reason"].as_str() {
            Some(why) => format!("none: {why}"),
            None => money(&r["total"])
                .map(|m| m.to_string())
                .unwrap_or_default(),
        };
        erp.push(Row {
            label: format!(
                "Credit memo {} ({refund})",
                r["document_number"].as_str().unwrap_or("")
            ),
            value,
        });
    }
    for (_, r) in completed(&trace.steps, "erp_cancel") {
        erp.push(Row {
            label: "Cancellation".into(),
            value: r["method"].as_str().unwrap_or("done").to_string(),
        });
    }
    let mut loyalty = Vec::new();
    let mut balance = 0i64;
    for (_, r) in completed(&trace.steps, "loyalty_accrual") {
        let points = r["points"].as_i64().unwrap_or(0);
        balance += points;
        loyalty.push(Row {
            label: "Accrued".into(),
            value: format!("+{points} points"),
        });
    }
    for (s, r) in completed(&trace.steps, "loyalty_reversal") {
        let points = r["points"].as_i64().unwrap_or(0).abs();
        balance -= points;
        loyalty.push(Row {
            label: format!("Reversed ({})", part(key, &s.saga_key)),
            value: format!("−{points} points"),
        });
    }
    if !loyalty.is_empty() {
        loyalty.push(Row {
            label: "Left".into(),
            value: format!("{balance} points"),
        });
    }
    if balance < 0 {
        mismatches.push(format!("more points taken back than accrued ({balance})"));
    }
    // An operator's action first among equal times: it asked for what
    // followed.
    let mut timeline: Vec<(chrono::DateTime<chrono::Utc>, TimelineEntry)> = actions
        .iter()
        .map(|a| {
            let note = a
                .note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            (
                a.at,
                TimelineEntry {
                    at: a.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    what: format!("operator: {}", a.action),
                    part: "order".into(),
                    said: format!("{} {} {}{note}: {}", a.who, a.action, a.subject, a.result),
                },
            )
        })
        .collect();
    timeline.extend(trace.events.iter().map(|e| {
        (
            e.at,
            TimelineEntry {
                at: e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                what: e.event_type.clone(),
                part: part(key, &e.saga_key),
                said: e.summary.clone().unwrap_or_default(),
            },
        )
    }));
    // Stable: entries keep their order among equal times.
    timeline.sort_by_key(|(at, _)| *at);
    let timeline = timeline.into_iter().map(|(_, e)| e).collect();
    let steps = trace
        .steps
        .iter()
        .map(|s| StepEntry {
            part: part(key, &s.saga_key),
            step: s.step.clone(),
            status: match s.status {
                StepStatus::Completed => "done",
                StepStatus::InProgress => "in progress",
            },
            when: s
                .completed_at
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
        })
        .collect();
    let stuck = trace
        .stuck
        .iter()
        .map(|s| StuckEntry {
            what: s.kind.label().to_string(),
            dead_letter: s.kind != retailflow_core::trace::StuckKind::Quarantined,
            subject: s.subject.clone(),
            reason: s.reason.clone(),
            id: s.id.clone(),
        })
        .collect();
    let mut links = Vec::new();
    if let Some(r) = retailflow_core::model::OrderRef::from_key(key) {
        // Only to Shopify's own admin: the shop and id come from a delivery.
        let shop_ok = r.shop.strip_suffix(".myshopify.com").is_some_and(|s| {
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        let id_ok = !r.order_id.is_empty() && r.order_id.bytes().all(|b| b.is_ascii_digit());
        if r.platform == Platform::Shopify && shop_ok && id_ok {
            links.push((
                "Shopify admin".to_string(),
                format!("https://{}/admin/orders/{}", r.shop, r.order_id),
            ));
        }
    }
    OrderView {
        order_key: key.clone(),
        order_number: order.map(|o| o.display_name.clone()),
        customer: order.and_then(customer_name),
        complete: trace.complete,
        shop,
        erp,
        loyalty,
        mismatches,
        timeline,
        steps,
        stuck,
        links,
    }
}
