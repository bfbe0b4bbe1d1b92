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
