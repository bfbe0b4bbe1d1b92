//! Where every order is: a timeline per order, from the events the app
//! published (webhook accepted → published → ERP posted → points accrued),
//! and whether its saga is complete.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::local_app::LocalApp;

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub at: String,
    pub event_type: String,
    pub event_id: String,
    pub summary: String,
    /// The refund a return entry is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    #[serde(skip)]
    from_till: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub correlation_id: String,
    pub complete: bool,
    /// Steps the saga still waits for.
    pub missing: Vec<String>,
    pub entries: Vec<Entry>,
}

fn summary(event_type: &str, d: &serde_json::Value) -> String {
    let money = |m: &serde_json::Value| {
        let minor = m["minor"].as_i64().unwrap_or(0);
        let currency = m["currency"].as_str().unwrap_or("");
        retailflow_core::money::Currency::from_code(currency)
            .map(|c| retailflow_core::money::Money::new(minor, c).to_string())
            .unwrap_or_default()
    };
    match event_type {
        "OrderPlaced" | "OrderUpdated" => {
            let o = &d["order"];
            format!(
                "webhook accepted and published: order {} total {}",
                o["display_name"].as_str().unwrap_or(""),
                money(&o["totals"]["total"]["shop"])
            )
        }
        "OrderCancelled" => "webhook accepted and published: order cancelled".into(),
        "RefundIssued" => format!(
            "return received: refund {} total {} ({} line(s), shipping {})",
            d["refund"]["refund_id"].as_str().unwrap_or(""),
            money(&d["refund"]["total"]["shop"]),
            d["refund"]["lines"].as_array().map_or(0, Vec::len),
            money(&d["refund"]["shipping"]["shop"])
        ),
        "LoyaltyReversed" => match d["skipped_reason"].as_str() {
            Some(reason) => format!(
                "no points reversed for refund {}: {reason}",
                d["refund_id"].as_str().unwrap_or("")
            ),
            None => format!(
                "points reversed: {} points for {} on {} ({} journal {})",
                d["points"],
                match d["refund_id"].as_str().unwrap_or("") {
                    "cancellation" => "the cancellation".to_string(),
                    id => format!("refund {id}"),
                },
                money(&d["refunded_base"]),
                d["method"].as_str().unwrap_or(""),
                d["journal_id"].as_str().unwrap_or("")
            ),
        },
        "CreditMemoPosted" if d["skipped_reason"].is_string() => format!(
            "no credit memo for refund {}: {}",
            d["refund_id"].as_str().unwrap_or(""),
            d["skipped_reason"].as_str().unwrap_or("")
        ),
        "OrderCancelledInErp" => format!(
            "ERP order {}: {} {}",
            match d["method"].as_str().unwrap_or("") {
                "cancelled" => "cancelled",
                "credited" => "left to the credit memos of earlier refunds",
                "left_open" => "left open (the ERP refused to cancel it; in review)",
                _ => "never posted, nothing to cancel",
            },
            d["erp_system"].as_str().unwrap_or(""),
            d["external_id"].as_str().unwrap_or("")
        ),
        "CreditMemoPosted" => format!(
            "credit memo posted: {} document {} total {} for refund {} ({})",
            d["erp_system"].as_str().unwrap_or(""),
            d["document_number"].as_str().unwrap_or(""),
            money(&d["total"]),
            d["refund_id"].as_str().unwrap_or(""),
            d["lines"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| {
                    let restock = l["restock"]
                        .as_str()
                        .map(|r| format!(" {r}"))
                        .unwrap_or_default();
                    format!(
                        "{} × {} {}{restock}",
                        l["quantity"],
                        l["item"].as_str().unwrap_or(""),
                        money(&l["amount"])
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "ShopRefundRecorded" => format!(
            "shop updated: refund {} recorded as platform refund {} ({})",
            d["refund_id"].as_str().unwrap_or(""),
            d["platform_refund_id"].as_str().unwrap_or(""),
            money(&d["total"])
        ),
        "OrderPostedToErp" => format!(
            "ERP posted: {} document {} (id {}) total {}",
            d["erp_system"].as_str().unwrap_or(""),
            d["document_number"].as_str().unwrap_or(""),
            d["document_id"].as_str().unwrap_or(""),
            money(&d["total"])
        ),
        "LoyaltyAccrued" => match d["skipped_reason"].as_str() {
            Some(reason) => format!("no points: {reason}"),
            None => format!(
                "points accrued: {} points on {} (journal {}, member {})",
                d["points"],
                money(&d["eligible"]),
                d["journal_id"].as_str().unwrap_or(""),
                d["membership_number"].as_str().unwrap_or("")
            ),
        },
        "StockCommitted" => {
            let units = |v: &serde_json::Value| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| format!("{} × {}", l["quantity"], l["sku"].as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let from = if d["from_hold"].as_bool() == Some(true) {
                format!(
                    "from checkout {}'s hold",
                    d["checkout_id"].as_str().unwrap_or("")
                )
            } else {
                "from free stock (no live hold)".to_string()
            };
            let oversold = units(&d["oversold"]);
            let oversold = if oversold.is_empty() {
                String::new()
            } else {
                format!("; OVERSOLD {oversold}")
            };
            let untracked = d["untracked"]
                .as_array()
                .filter(|a| !a.is_empty())
                .map(|a| {
                    let skus: Vec<&str> = a.iter().filter_map(|s| s.as_str()).collect();
                    format!("; not stocked by retailflow: {}", skus.join(", "))
                })
                .unwrap_or_default();
            let lines = units(&d["lines"]);
            if lines.is_empty() {
                format!("stock: no SKU of the order is stocked by retailflow{untracked}")
            } else {
                format!("stock committed: {lines} {from}{oversold}{untracked}")
            }
        }
        "FulfillmentShipped" => format!(
            "shipped: {} shipment {} by {} tracking {} recorded in the shop as {}",
            d["erp_system"].as_str().unwrap_or(""),
            d["document_number"].as_str().unwrap_or(""),
            d["carrier"].as_str().unwrap_or("carrier"),
            d["tracking_numbers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            d["shop_fulfillment_id"].as_str().unwrap_or("")
        ),
        "StockRestocked" => match d["restocked"].as_bool() {
            Some(true) => "stock restocked: the order's units are back".to_string(),
            _ => "stock: nothing to restock".to_string(),
        },
        other => other.to_string(),
    }
}

/// One timeline per order, in order of first event.
pub fn timelines(app: &LocalApp) -> Vec<Timeline> {
    let mut by_order: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    let mut first_seen: Vec<String> = Vec::new();
    for e in app.bus.recorded.published() {
        // Reconciliation's findings are about orders, not steps of them;
        // its report says what it found.
        if e.source == retailflow_core::reconciliation::SOURCE {
            continue;
        }
        let mut env: serde_json::Value = serde_json::from_str(&e.detail).unwrap_or_default();
        // An event that rode by claim check: its detail from where it is kept.
        if let Some(location) = env[retailflow_core::claim_check::DETAIL_REF]["location"].as_str() {
            let kept = app.claims.read(location).ok().flatten();
            if let Some(detail) = kept.and_then(|b| serde_json::from_slice(&b).ok()) {
                env["detail"] = detail;
            }
        }
        let corr = env["correlation_id"].as_str().unwrap_or("").to_string();
        if !by_order.contains_key(&corr) {
            first_seen.push(corr.clone());
        }
        let entries = by_order.entry(corr).or_default();
        // A re-published event (same id) is one entry.
        if entries.iter().any(|x| x.event_id == e.event_id.to_string()) {
            continue;
        }
        entries.push(Entry {
            at: e.time.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            event_type: e.detail_type.clone(),
            event_id: e.event_id.to_string(),
            summary: summary(&e.detail_type, &env["detail"]),
            refund_id: match e.detail_type.as_str() {
                "RefundIssued" => env["detail"]["refund"]["refund_id"].as_str(),
                _ => env["detail"]["refund_id"].as_str(),
            }
            .map(str::to_string),
            from_till: e.detail_type == "RefundIssued"
                && env["source"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("point_of_sale:")),
        });
    }
    first_seen
        .into_iter()
        .map(|corr| {
            let entries = by_order.remove(&corr).unwrap_or_default();
            let has = |t: &str| entries.iter().any(|e| e.event_type == t);
            let mut missing = Vec::new();
            let cancelled = has("OrderCancelled");
            if cancelled {
                let reversed = entries.iter().any(|e| {
                    e.event_type == "LoyaltyReversed"
                        && e.refund_id.as_deref() == Some("cancellation")
                });
                if !reversed {
                    missing.push("loyalty_reversal of the cancellation".to_string());
                }
                if !has("OrderCancelledInErp") {
                    missing.push("erp_cancel".to_string());
                }
            }
            if has("OrderPlaced") && !cancelled {
                for (step, event) in [
                    ("erp_post", "OrderPostedToErp"),
                    ("loyalty_accrual", "LoyaltyAccrued"),
                    ("stock_commit", "StockCommitted"),
                ] {
                    if !has(event) {
                        missing.push(step.to_string());
                    }
                }
            }
            for refund in entries.iter().filter(|e| e.event_type == "RefundIssued") {
                let id = refund.refund_id.as_deref();
                let done = |t: &str| {
                    entries
                        .iter()
                        .any(|e| e.event_type == t && e.refund_id.as_deref() == id)
                };
                let mut wanted = vec![
                    ("loyalty_reversal", "LoyaltyReversed"),
                    ("credit_memo", "CreditMemoPosted"),
                ];
                if refund.from_till {
                    wanted.push(("shop_refund", "ShopRefundRecorded"));
                }
                for (step, event) in wanted {
                    if !done(event) {
                        missing.push(format!("{step} of refund {}", id.unwrap_or("")));
                    }
                }
            }
            Timeline {
                correlation_id: corr,
                complete: missing.is_empty(),
                missing,
                entries,
            }
        })
        .collect()
}

/// The human form.
pub fn render(t: &Timeline) -> String {
    let mut out = format!(
        "{}  [{}]\n",
        t.correlation_id,
        if t.complete {
            "complete".to_string()
        } else {
            format!("waiting for {}", t.missing.join(", "))
        }
    );
    for e in &t.entries {
        out.push_str(&format!("  {}  {:<17} {}\n", e.at, e.event_type, e.summary));
    }
    out
}
