//! After a run, as an operator follows up: a refund over the order's total
//! is dead-lettered by `run`, listed as held for review by `trace`,
//! reported as its own kind by `reconcile`, and said to fail again by
//! `replay redrive`, each exiting 2; a quarantined delivery is on its
//! order's trace; the timelines move on between steps; the hints paste.

use super::*;

const ORDER_2187: &str = "shopify:acme-outdoor.myshopify.com:order:5872318847291";

fn in_repo(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = cli_in(dir).current_dir(repo()).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code(), text)
}

#[test]
fn an_over_refund_is_held_for_review_in_trace_reconcile_and_redrive() {
    let dir = fresh_dir();
    let (code, text) = in_repo(&dir, &["run", "events/", "events/review/"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("DLQ return-reversal"), "{text}");

    let (code, text) = in_repo(&dir, &["trace", ORDER_2187]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("held for review"), "{text}");
    assert!(text.contains("refund 1023847570001"), "{text}");
    assert!(text.contains("over its total"), "{text}");
    assert!(!text.contains("every recorded step is done"), "{text}");
    let (_, json) = in_repo(&dir, &["trace", "--json", ORDER_2187]);
    let trace: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(trace["complete"], false, "{trace}");
    assert_eq!(trace["stuck"][0]["kind"], "held_for_review", "{trace}");
    // The order that is whole still traces clean, exit 0.
    let (code, text) = in_repo(
        &dir,
        &[
            "trace",
            "shopify:acme-outdoor.myshopify.com:order:5872301948123",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("every recorded step is done"), "{text}");

    let (code, text) = in_repo(&dir, &["reconcile", "--hours", "2", "--json"]);
    assert_eq!(code, Some(2), "{text}");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["counts"]["held_for_review"], 1, "{report}");
    assert_eq!(
        report["discrepancies"][0]["order_key"], ORDER_2187,
        "{report}"
    );

    let (code, text) = in_repo(&dir, &["replay", "redrive", "--reason", "over its total"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("1 re-driven, 1 failed again"), "{text}");
    let (_, text) = in_repo(&dir, &["replay", "list"]);
    assert!(text.contains("1 dead letter"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_quarantined_delivery_shows_on_its_orders_trace() {
    let dir = fresh_dir();
    let (code, text) = in_repo(&dir, &["run", "events/"]);
    assert_eq!(code, Some(0), "{text}");
    // 06 is #1042's body with a total that does not add up: quarantined.
    let (code, text) = in_repo(
        &dir,
        &[
            "trace",
            "shopify:acme-outdoor.myshopify.com:order:5872301948999",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("quarantined"), "{text}");
    assert!(text.contains("totals do not reconcile"), "{text}");
}

#[test]
fn run_timelines_move_on_between_steps_and_its_hint_pastes_with_the_data_dir() {
    let dir = std::env::temp_dir().join(format!("retailflow cli {}", uuid::Uuid::new_v4()));
    let out = cli()
        .current_dir(repo())
        .args(["run", "--json", "events/", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    let order: serde_json::Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|t| t["correlation_id"] == "shopify:acme-outdoor.myshopify.com:order:5872301948123")
        .unwrap();
    let times: Vec<&str> = order["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let distinct: std::collections::BTreeSet<_> = times.iter().collect();
    assert!(distinct.len() >= 5, "{times:?}");

    // The text report's hint, pasted into a shell in another directory,
    // reads the same data directory (its path has a space in it).
    let out = cli()
        .current_dir(repo())
        .args(["run", "events/01-shopify-orders-create.json", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let hint = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("retailflow trace "))
        .unwrap_or_else(|| panic!("no trace hint in {text}"));
    assert!(hint.contains("--data-dir"), "{hint}");
    let pasted = hint.replacen("retailflow", env!("CARGO_BIN_EXE_retailflow"), 1);
    let out = Command::new("sh")
        .args(["-c", &pasted])
        .current_dir(std::env::temp_dir())
        .env_remove("RETAILFLOW_DATA_DIR")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{pasted}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("every recorded step is done"));
}

#[test]
fn trace_tells_each_refund_apart_with_what_every_event_said() {
    let dir = fresh_dir();
    let (code, text) = in_repo(&dir, &["run", "events/"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, json) = in_repo(
        &dir,
        &[
            "trace",
            "--json",
            "shopify:acme-outdoor.myshopify.com:order:5872301948123",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, Some(0), "{json}");
    let trace: serde_json::Value = serde_json::from_str(&json).unwrap();
    let events = trace["events"].as_array().unwrap();
    let refunds: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|e| e["event_type"] == "RefundIssued")
        .map(|e| e["saga_key"].as_str().unwrap())
        .collect();
    assert_eq!(refunds.len(), 2, "{trace}");
    assert!(
        refunds.iter().all(|k| k.contains(":return:")),
        "{refunds:?}"
    );
    for e in events {
        let said = e["summary"].as_str().unwrap_or_default();
        assert!(!said.is_empty(), "{e}");
        // A return's events say their own refund, not the other's.
        if let Some((_, refund)) = e["saga_key"].as_str().unwrap().rsplit_once(":return:") {
            assert!(said.contains(refund), "{e}");
        }
    }
    // The cancelled order's reversal says it is the cancellation's.
    let dir = fresh_dir();
    let (_, _) = in_repo(&dir, &["run", "events/"]);
    let (_, cancelled) = in_repo(
        &dir,
        &[
            "trace",
            "--json",
            "shopify:acme-outdoor.myshopify.com:order:5872310293847",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    let cancelled: serde_json::Value = serde_json::from_str(&cancelled).unwrap();
    let reversal = cancelled["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "LoyaltyReversed")
        .unwrap();
    assert!(
        reversal["summary"]
            .as_str()
            .unwrap()
            .contains("cancellation"),
        "{reversal}"
    );
    let times: Vec<&str> = events.iter().map(|e| e["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(events[0]["event_type"], "OrderPlaced", "{trace}");
    let posted = events
        .iter()
        .find(|e| e["event_type"] == "OrderPostedToErp")
        .unwrap();
    assert!(posted["summary"]
        .as_str()
        .unwrap()
        .contains("ERP posted: netsuite document SO"));
}

#[test]
fn reconcile_report_latest_prints_the_last_report_and_runs_nothing() {
    let dir = fresh_dir();
    let (code, _) = in_repo(&dir, &["run", "events/"]);
    assert_eq!(code, Some(0));
    let (code, text) = in_repo(&dir, &["reconcile", "--report", "latest"]);
    assert_eq!(code, Some(1), "no report yet: {text}");
    let (code, text) = in_repo(&dir, &["reconcile", "--hours", "2", "--json"]);
    assert_eq!(code, Some(0), "{text}");
    let ran: serde_json::Value = serde_json::from_str(&text).unwrap();
    for _ in 0..2 {
        let (code, text) = in_repo(&dir, &["reconcile", "--report", "latest", "--json"]);
        assert_eq!(code, Some(0), "{text}");
        let kept: serde_json::Value = serde_json::from_str(&text).unwrap();
        // A new run would have an id of its own.
        assert_eq!(kept["run_id"], ran["run_id"]);
        assert_eq!(kept["started_at"], ran["started_at"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
