//! `retailflow reconcile`: a reconciliation report on the local app (a
//! running `retailflow serve`), or on a deployed stack (ask its function
//! through the bus, read its reports from the state table).

use anyhow::{bail, Context};
use retailflow_core::reconciliation::ReconciliationReport;

/// `1 order`, `2 orders`: counts in the CLI's reports read as English.
pub fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One line: what a run covered and found.
pub fn summary(r: &ReconciliationReport) -> String {
    let found: Vec<String> = r
        .counts
        .iter()
        .map(|(k, n)| format!("{n} {}", k.as_str()))
        .collect();
    format!(
        "reconciliation {} {}: {}: {}, {}, {} from {} to {}; {}; {} re-driven, {} raised{}",
        r.run_id,
        if r.complete { "complete" } else { "paused" },
        plural(r.sagas_checked, "saga", "sagas"),
        plural(r.orders_checked, "order", "orders"),
        plural(r.returns_checked, "return", "returns"),
        plural(r.cancellations_checked, "cancellation", "cancellations"),
        r.window_from.format("%Y-%m-%d %H:%M"),
        r.window_to.format("%Y-%m-%d %H:%M"),
        if found.is_empty() {
            "no discrepancies".to_string()
        } else {
            found.join(", ")
        },
        r.redriven,
        r.escalated,
        r.paused_because
            .as_deref()
            .map(|p| format!(" (paused: {p})"))
            .unwrap_or_default()
    )
}

/// The summary, then one line per discrepancy.
pub fn render(r: &ReconciliationReport) -> String {
    let mut out = summary(r) + "\n";
    for d in &r.discrepancies {
        out.push_str(&format!(
            "  {:<18} {:<9} {}  {}{}{}  {}\n",
            d.kind.as_str(),
            d.system,
            d.order_key,
            d.subject,
            d.expected
                .as_deref()
                .map(|e| format!("  expected {e}"))
                .unwrap_or_default(),
            d.found
                .as_deref()
                .map(|f| format!("  found {f}"))
                .unwrap_or_default(),
            d.detail
        ));
    }
    out
}

fn print(r: &ReconciliationReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        print!("{}", render(r));
    }
    Ok(())
}

/// `--from` and `--to`: read when the command line is, so a typo is a
/// usage error that says what a time looks like.
pub fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| "an RFC 3339 time, e.g. 2026-11-25T00:00:00Z".to_string())
}

/// The request body / event detail: the window asked for.
pub fn window_detail(
    hours: Option<i64>,
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
) -> serde_json::Value {
    let mut d = serde_json::Map::new();
    if let Some(h) = hours {
        d.insert("hours".into(), h.into());
    }
    if let Some(f) = from {
        d.insert("from".into(), f.to_rfc3339().into());
    }
    if let Some(t) = to {
        d.insert("to".into(), t.to_rfc3339().into());
    }
    serde_json::Value::Object(d)
}

/// Runs a reconciliation on a running `retailflow serve`.
pub async fn on_local(url: &str, detail: &serde_json::Value, json: bool) -> anyhow::Result<bool> {
    let endpoint = format!("{}/local/reconcile", url.trim_end_matches('/'));
    let resp = reqwest::Client::new()
        .post(&endpoint)
        .json(detail)
        .send()
        .await
        .with_context(|| crate::local_target::unreachable(url))?;
    let status = resp.status();
    let body = resp.text().await?;
    if !status.is_success() {
        bail!(
            "reconciliation refused: {}",
            crate::local_target::refusal_text(&body)
        );
    }
    let report: ReconciliationReport = serde_json::from_str(&body)
        .with_context(|| format!("the local app answered what is not a report: {body}"))?;
    print(&report, json)?;
    Ok(report.discrepancies.is_empty() && report.complete)
}

/// Prints a report the local app kept (`latest` for its last finished
/// run), without running anything.
pub async fn local_report(url: &str, run_id: &str, json: bool) -> anyhow::Result<bool> {
    let endpoint = format!(
        "{}/local/reports/{}",
        url.trim_end_matches('/'),
        crate::local_target::percent_encode(run_id)
    );
    let resp = reqwest::get(&endpoint)
        .await
        .with_context(|| crate::local_target::unreachable(url))?;
    let status = resp.status();
    let body = resp.text().await?;
    if !status.is_success() {
        bail!("{}", crate::local_target::refusal_text(&body));
    }
    let report: ReconciliationReport =
        serde_json::from_str(&body).with_context(|| format!("report {run_id} is unreadable"))?;
    print(&report, json)?;
    Ok(report.discrepancies.is_empty() && report.complete)
}

/// Asks a deployed stack's reconciliation function for a run, through
/// its bus (the function's `Requested` rule).
pub async fn request_on_bus(bus: &str, detail: &serde_json::Value) -> anyhow::Result<()> {
    let aws = retailflow::stack::aws_config().await?;
    let out = aws_sdk_eventbridge::Client::new(&aws)
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(bus)
                .source("retailflow.cli")
                .detail_type(retailflow_core::reconciliation::request::REQUESTED_EVENT)
                .detail(detail.to_string())
                .build(),
        )
        .send()
        .await
        .context("publishing ReconciliationRequested")?;
    if out.failed_entry_count() > 0 {
        bail!("the bus refused the request: {:?}", out.entries());
    }
    println!(
        "reconciliation requested on {bus}; read its report with `retailflow reconcile --table <StateTableName> --report latest`"
    );
    Ok(())
}

/// Prints a kept report (`latest` for the last finished run) from a
/// deployed state table.
pub async fn show_report(table: &str, run_id: &str, json: bool) -> anyhow::Result<bool> {
    use retailflow_core::ports::StateStore;
    let store = retailflow::stack::state_store(table).await?;
    let run_id = if run_id == "latest" {
        store
            .read_cursor(retailflow_core::reconciliation::LATEST_CURSOR)
            .await?
            .filter(|r| !r.is_empty())
            .with_context(|| format!("{table} has no finished reconciliation yet"))?
    } else {
        run_id.to_string()
    };
    let Some(body) = store.report(&run_id).await? else {
        bail!("{table} has no report {run_id}");
    };
    let report: ReconciliationReport =
        serde_json::from_str(&body).with_context(|| format!("report {run_id} is unreadable"))?;
    print(&report, json)?;
    Ok(report.discrepancies.is_empty() && report.complete)
}
