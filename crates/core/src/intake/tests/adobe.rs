//! Adobe Commerce deliveries through Adobe I/O Events: signed by Adobe's
//! keys, for this client only, found behind stage prefixes.

use super::*;

fn adobe_headers(body: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let sig = adobe_signature(PRIV1, body.as_bytes()).unwrap();
    h.insert(
        "x-adobe-digital-signature-1",
        HeaderValue::from_str(&sig).unwrap(),
    );
    h
}

pub(super) async fn adobe(h: &Harness, body: &str) -> WebhookResponse {
    let headers = adobe_headers(body);
    h.intake
        .handle(WebhookRequest {
            route: WebhookRoute::Adobe,
            headers: &headers,
            body: body.as_bytes(),
            received_at: t0(),
            gateway_time: None,
            deadline: None,
        })
        .await
}

pub(super) fn with_client(body: &str, client: &str) -> String {
    let mut v: Value = serde_json::from_str(body).unwrap();
    v["recipient_client_id"] = Value::String(client.into());
    v.to_string()
}

#[tokio::test]
async fn a_signed_adobe_order_is_published_once() {
    let h = harness();
    let body = with_client(ADOBE, "client-1");
    let resp = adobe(&h, &body).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body["event_type"], "OrderPlaced");
    assert_eq!(adobe(&h, &body).await.body["duplicate"], true);
    assert_eq!(h.distinct_published_ids().len(), 1);
}

#[tokio::test]
async fn an_adobe_event_for_another_client_is_refused() {
    let h = harness();
    let resp = adobe(&h, &with_client(ADOBE, "someone-else")).await;
    assert_eq!(resp.status, 401);
    assert!(h.bus.published().is_empty());
}

/// The fixture, for this client, dated `at`.
fn dated(at: DateTime<Utc>) -> String {
    let mut v: Value = serde_json::from_str(&with_client(ADOBE, "client-1")).unwrap();
    v["time"] = Value::String(at.to_rfc3339());
    v.to_string()
}

#[tokio::test]
async fn an_adobe_event_within_two_days_of_its_time_is_taken_and_an_older_one_is_refused() {
    let h = harness();
    let fresh = adobe(&h, &dated(t0() - chrono::Duration::hours(47))).await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    let h = harness();
    let stale = adobe(&h, &dated(t0() - chrono::Duration::hours(49))).await;
    assert_eq!(stale.status, 401, "{}", stale.body);
    assert!(
        stale.body["error"]
            .as_str()
            .unwrap()
            .contains("stale delivery"),
        "{}",
        stale.body
    );
    assert!(h.bus.published().is_empty());
}

#[tokio::test]
async fn an_adobe_event_dated_ahead_of_the_clock_beyond_the_skew_is_refused() {
    let h = harness();
    let resp = adobe(&h, &dated(t0() + chrono::Duration::minutes(10))).await;
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert!(h.bus.published().is_empty());
}

#[tokio::test]
async fn an_old_adobe_body_re_dated_fails_its_signature() {
    let h = harness();
    let old = dated(t0() - chrono::Duration::days(30));
    let headers = adobe_headers(&old);
    // The captured signature, on a body whose time was changed to now.
    let redated = old.replace(
        &(t0() - chrono::Duration::days(30)).to_rfc3339(),
        &t0().to_rfc3339(),
    );
    assert_ne!(redated, old);
    let resp = h
        .intake
        .handle(WebhookRequest {
            route: WebhookRoute::Adobe,
            headers: &headers,
            body: redated.as_bytes(),
            received_at: t0(),
            gateway_time: None,
            deadline: None,
        })
        .await;
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert!(h.bus.published().is_empty());
}

#[test]
fn the_policy_reads_the_adobe_age_and_refuses_nonsense() {
    use crate::intake::freshness::ReplayPolicy;
    let env = |v: &'static str| {
        move |k: &str| (k == "RETAILFLOW_ADOBE_MAX_DELIVERY_AGE_SECS").then(|| v.to_string())
    };
    let p = ReplayPolicy::from_env(env("3600")).unwrap();
    assert_eq!(p.adobe_max_age, chrono::Duration::hours(1));
    assert!(ReplayPolicy::from_env(env("soon")).is_err());
    assert!(ReplayPolicy::from_env(env("0")).is_err());
    assert_eq!(
        ReplayPolicy::from_env(|_| None).unwrap().adobe_max_age,
        chrono::Duration::hours(48)
    );
}

/// The fixture as another save of the same order: a new I/O event.
fn save(n: u32, edit: impl Fn(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(&with_client(ADOBE, "client-1")).unwrap();
    v["id"] = Value::String(format!("5b0a3c1e-41aa-4c55-8e0b-{n:012}"));
    edit(&mut v["data"]["value"]);
    v.to_string()
}

/// The events published, once each (a republish is the same event).
fn event_types(h: &Harness) -> Vec<String> {
    let mut seen = Vec::new();
    let mut types = Vec::new();
    for e in h.bus.published() {
        if !seen.contains(&e.event_id) {
            seen.push(e.event_id);
            types.push(e.detail_type.clone());
        }
    }
    types
}

/// Answered as the event already taken: republished within the window,
/// ignored after it.
fn not_new(resp: &WebhookResponse) -> bool {
    resp.body["duplicate"] == true || resp.body["ignored"] == true
}

#[tokio::test]
async fn a_second_save_of_an_adobe_order_with_nothing_kept_changed_publishes_nothing() {
    let h = harness();
    assert_eq!(adobe(&h, &save(1, |_| {})).await.status, 200);
    let invoiced = save(2, |v| {
        v["status"] = "processing".into();
        v["total_invoiced"] = v["grand_total"].clone();
        v["updated_at"] = "2026-11-26 11:59:30".into();
    });
    let resp = adobe(&h, &invoiced).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(not_new(&resp), "{}", resp.body);
    assert_eq!(event_types(&h), vec!["OrderPlaced"]);
}

#[tokio::test]
async fn the_invoiced_save_delivered_before_the_placing_save_places_the_order_once() {
    let h = harness();
    let invoiced = save(2, |v| v["total_invoiced"] = v["grand_total"].clone());
    assert_eq!(adobe(&h, &invoiced).await.body["event_type"], "OrderPlaced");
    let placing = adobe(&h, &save(1, |_| {})).await;
    assert!(not_new(&placing), "{}", placing.body);
    assert_eq!(event_types(&h), vec!["OrderPlaced"]);
}

#[tokio::test]
async fn an_adobe_save_that_changes_the_order_publishes_one_order_updated() {
    let h = harness();
    adobe(&h, &save(1, |_| {})).await;
    let moved = |n| {
        save(n, |v| {
            v["customer_email"] = "new.address@example.com".into();
        })
    };
    let resp = adobe(&h, &moved(2)).await;
    assert_eq!(resp.body["event_type"], "OrderUpdated", "{}", resp.body);
    // The same change saved again is that update, not another.
    let again = adobe(&h, &moved(3)).await;
    assert!(not_new(&again), "{}", again.body);
    assert_eq!(event_types(&h), vec!["OrderPlaced", "OrderUpdated"]);
    let saga = &h.store.sagas()[0];
    assert_eq!(saga.event_types.len(), 2, "{:?}", saga.event_types);
}

#[tokio::test]
async fn the_placing_save_redelivered_by_io_events_publishes_its_event_again() {
    let h = harness();
    let body = save(1, |_| {});
    let first = adobe(&h, &body).await;
    let retry = adobe(&h, &body).await;
    assert_eq!(retry.body["duplicate"], true, "{}", retry.body);
    assert_eq!(retry.body["event_id"], first.body["event_id"]);
    assert_eq!(h.distinct_published_ids().len(), 1);
    assert_eq!(h.bus.published().len(), 2, "published again");
}

#[tokio::test]
async fn a_later_save_within_the_window_publishes_the_recorded_event_again_and_after_it_nothing() {
    // The first save recorded but perhaps never published: a later save
    // the same day publishes the recorded event (its retries may run out).
    let h = harness();
    adobe(&h, &save(1, |_| {})).await;
    let same_day = adobe(&h, &save(2, |_| {})).await;
    assert_eq!(same_day.body["duplicate"], true, "{}", same_day.body);
    assert_eq!(h.bus.published().len(), 2);
    // Two days on, a save of the order is nothing new and publishes nothing.
    let later = t0() + chrono::Duration::days(2);
    let mut v: Value = serde_json::from_str(&save(3, |_| {})).unwrap();
    v["time"] = Value::String(later.to_rfc3339());
    let body = v.to_string();
    let headers = adobe_headers(&body);
    let resp = h
        .intake
        .handle(WebhookRequest {
            route: WebhookRoute::Adobe,
            headers: &headers,
            body: body.as_bytes(),
            received_at: later,
            gateway_time: None,
            deadline: None,
        })
        .await;
    assert_eq!(resp.body["ignored"], true, "{}", resp.body);
    assert_eq!(h.bus.published().len(), 2, "nothing published");
    assert_eq!(h.distinct_published_ids().len(), 1);
}

#[tokio::test]
async fn a_canceled_adobe_order_saved_again_publishes_one_order_cancelled() {
    let h = harness();
    adobe(&h, &save(1, |_| {})).await;
    let canceled = |n| save(n, |v| v["state"] = "canceled".into());
    assert_eq!(
        adobe(&h, &canceled(2)).await.body["event_type"],
        "OrderCancelled"
    );
    let later = adobe(&h, &canceled(3)).await;
    assert!(not_new(&later), "{}", later.body);
    assert_eq!(event_types(&h), vec!["OrderPlaced", "OrderCancelled"]);
}

#[tokio::test]
async fn a_closed_save_is_never_a_cancellation() {
    let h = harness();
    adobe(&h, &save(1, |_| {})).await;
    let closed = save(2, |v| {
        v["state"] = "closed".into();
        v["status"] = "closed".into();
    });
    let resp = adobe(&h, &closed).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(event_types(&h), vec!["OrderPlaced"]);
}

const CREDIT_MEMO: &str =
    include_str!("../../../../../events/payloads/adobe-creditmemo-partial.json");

#[tokio::test]
async fn an_adobe_credit_memo_is_published_once_as_refund_issued_and_saved_again_is_the_same() {
    let h = harness();
    let memo = with_client(CREDIT_MEMO, "client-1");
    let resp = adobe(&h, &memo).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body["event_type"], "RefundIssued");
    // Saved again (a comment added): a new I/O event, the same refund.
    let mut again: Value = serde_json::from_str(&memo).unwrap();
    again["id"] = "9b1c2d3e-4f50-4a61-8b72-999999999999".into();
    again["data"]["value"]["comments"] = serde_json::json!([{"comment": "customer called"}]);
    let resp = adobe(&h, &again.to_string()).await;
    assert_eq!(resp.body["duplicate"], true, "{}", resp.body);
    assert_eq!(event_types(&h), vec!["RefundIssued"]);
    // Open (not refunded yet): acknowledged, nothing published.
    let mut open: Value = serde_json::from_str(&memo).unwrap();
    open["id"] = "9b1c2d3e-4f50-4a61-8b72-999999999998".into();
    open["data"]["value"]["entity_id"] = "77".into();
    open["data"]["value"]["state"] = 1.into();
    let resp = adobe(&h, &open.to_string()).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body["ignored"], true, "{}", resp.body);
    assert_eq!(event_types(&h), vec!["RefundIssued"]);
}

#[test]
fn routes_are_found_behind_stage_prefixes() {
    assert_eq!(
        WebhookRoute::from_path("/webhooks/shopify"),
        Some(WebhookRoute::Shopify)
    );
    assert_eq!(
        WebhookRoute::from_path("/prod/webhooks/adobe/"),
        Some(WebhookRoute::Adobe)
    );
    assert_eq!(WebhookRoute::from_path("/webhooks/other"), None);
}

#[tokio::test]
async fn a_credit_memo_without_its_state_is_kept_for_review_not_refunded() {
    let h = harness();
    let mut memo: Value = serde_json::from_str(&with_client(CREDIT_MEMO, "client-1")).unwrap();
    memo["data"]["value"]
        .as_object_mut()
        .unwrap()
        .remove("state");
    let resp = adobe(&h, &memo.to_string()).await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert!(
        resp.body["error"].as_str().unwrap().contains("state"),
        "{}",
        resp.body
    );
    assert!(h.bus.published().is_empty());
    assert_eq!(h.store.quarantined().len(), 1, "kept, not lost");
}

#[tokio::test]
async fn a_credit_memo_a_till_return_is_recording_is_asked_again_and_then_ignored_as_its_echo() {
    use crate::idempotency::{ClaimOutcome, ClaimRequest, Completion, IdempotencyKey};
    use crate::refund_ledger::AdmittedRefund;
    use crate::steps::return_reversal::{return_key, SHOP_STEP};
    let h = harness();
    let placed = adobe(&h, &save(1, |_| {})).await;
    let order_key = placed.body["correlation_id"].as_str().unwrap().to_string();
    // A till return of order 214, admitted, recording its credit memo in
    // Adobe right now: the memo Adobe makes of it will be number 41.
    let saga = h.store.saga(&order_key).await.unwrap().unwrap();
    let facts = saga.order_facts.clone().unwrap();
    let till = AdmittedRefund {
        refund_id: "pos-store-042-R-1".into(),
        total: crate::money::Money::new(2_732, facts.total.currency),
        loyalty_base: crate::money::Money::new(1_600, facts.total.currency),
        admitted_at: t0(),
        takes_rest: false,
    };
    let ledger = saga.refund_ledger.admit(&facts, till).unwrap();
    assert!(h
        .store
        .write_refund_ledger(&order_key, &ledger, t0())
        .await
        .unwrap());
    let order = crate::model::OrderRef::from_key(&order_key).unwrap();
    let case = return_key(&order, "pos-store-042-R-1");
    let claim = match h
        .store
        .claim(&ClaimRequest {
            key: IdempotencyKey::saga_step(case, SHOP_STEP),
            payload_hash: "till".into(),
            now: t0(),
            lease_until: t0() + Duration::minutes(5),
        })
        .await
        .unwrap()
    {
        ClaimOutcome::Claimed(c) => c,
        other => panic!("{other:?}"),
    };
    // Announced before the till return has its id: this may be it.
    let memo = with_client(CREDIT_MEMO, "client-1");
    let resp = adobe(&h, &memo).await;
    assert_eq!(resp.status, 503, "{}", resp.body);
    // Recorded as memo 41: the announcement is its echo, comment or not.
    let result = serde_json::json!({"platform_refund_id": "41"});
    h.store
        .complete(
            &claim,
            &Completion {
                result: Some(result),
                now: t0(),
                expires_at: t0() + Duration::days(30),
                saga: None,
            },
        )
        .await
        .unwrap();
    let resp = adobe(&h, &memo).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body["ignored"], true, "{}", resp.body);
    assert!(resp.body["reason"]
        .as_str()
        .unwrap()
        .contains("pos-store-042-R-1"));
    assert_eq!(event_types(&h), vec!["OrderPlaced"]);
    // Another memo of the order is a refund like any other.
    let mut other: Value = serde_json::from_str(&memo).unwrap();
    other["id"] = "9b1c2d3e-4f50-4a61-8b72-000000000042".into();
    other["data"]["value"]["entity_id"] = "42".into();
    let resp = adobe(&h, &other.to_string()).await;
    assert_eq!(resp.body["event_type"], "RefundIssued", "{}", resp.body);
}

#[tokio::test]
async fn a_credit_memo_waits_for_a_till_return_whose_call_to_adobe_failed_and_past_six_hours_is_kept_for_review(
) {
    use crate::refund_ledger::AdmittedRefund;
    let h = harness();
    let placed = adobe(&h, &save(1, |_| {})).await;
    let order_key = placed.body["correlation_id"].as_str().unwrap().to_string();
    // A till return admitted whose shop step called Adobe, failed and
    // handed its claim back: Adobe may have made the memo all the same.
    let saga = h.store.saga(&order_key).await.unwrap().unwrap();
    let facts = saga.order_facts.clone().unwrap();
    let till = AdmittedRefund {
        refund_id: "pos-store-042-R-2".into(),
        total: crate::money::Money::new(2_732, facts.total.currency),
        loyalty_base: crate::money::Money::new(1_600, facts.total.currency),
        admitted_at: t0(),
        takes_rest: false,
    };
    let ledger = saga.refund_ledger.admit(&facts, till).unwrap();
    assert!(h
        .store
        .write_refund_ledger(&order_key, &ledger, t0())
        .await
        .unwrap());
    let memo = with_client(CREDIT_MEMO, "client-1");
    let resp = adobe(&h, &memo).await;
    assert_eq!(resp.status, 503, "{}", resp.body);
    assert!(resp.body["error"]
        .as_str()
        .unwrap()
        .contains("pos-store-042-R-2"));
    // Six hours after the memo was made, still unknown: kept, not refunded.
    let late = t0() + Duration::hours(6) + Duration::minutes(1);
    let mut v: Value = serde_json::from_str(&memo).unwrap();
    v["time"] = Value::String(late.to_rfc3339());
    let body = v.to_string();
    let headers = adobe_headers(&body);
    let resp = h
        .intake
        .handle(WebhookRequest {
            route: WebhookRoute::Adobe,
            headers: &headers,
            body: body.as_bytes(),
            received_at: late,
            gateway_time: None,
            deadline: None,
        })
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    assert!(resp.body["error"]
        .as_str()
        .unwrap()
        .contains("kept for review"));
    assert_eq!(h.store.quarantined().len(), 1);
    assert_eq!(event_types(&h), vec!["OrderPlaced"], "nothing refunded");
}
