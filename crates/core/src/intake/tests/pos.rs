//! Point-of-sale returns (signed per store, stamped and nonced against
//! replay, a refund of the online order), and the age and size limits
//! every delivery meets.

use super::*;

const POS_RETURN: &str = include_str!("../../../../../events/payloads/pos/return-store-042.json");

fn pos_harness() -> Harness {
    harness_with(|c| {
        c.pos_stores.insert(
            "store-042".into(),
            HmacSecrets {
                current: Secret::new("store-secret"),
                previous: None,
            },
        );
    })
}

async fn pos(h: &Harness, store: &str, secret: &str, body: &str) -> WebhookResponse {
    // Each attempt signed anew, as a till does.
    static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nonce = format!(
        "test-nonce-{:08}",
        NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut headers = HeaderMap::new();
    for (k, v) in crate::mappers::pos::signed_headers(
        store,
        &Secret::new(secret),
        t0(),
        &nonce,
        body.as_bytes(),
    ) {
        headers.insert(k, HeaderValue::from_str(&v).unwrap());
    }
    h.intake
        .handle(WebhookRequest {
            route: WebhookRoute::PosReturn,
            headers: &headers,
            body: body.as_bytes(),
            received_at: t0(),
            gateway_time: None,
            deadline: None,
        })
        .await
}

#[tokio::test]
async fn a_signed_store_return_is_published_once_as_a_refund_of_the_online_order() {
    let h = pos_harness();
    let resp = pos(&h, "store-042", "store-secret", POS_RETURN).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body["event_type"], "RefundIssued");
    assert_eq!(
        resp.body["correlation_id"],
        "shopify:acme-outdoor.myshopify.com:order:5872301948123"
    );
    assert_eq!(
        pos(&h, "store-042", "store-secret", POS_RETURN).await.body["duplicate"],
        true
    );
    assert_eq!(h.distinct_published_ids().len(), 1);
    let env: Value = serde_json::from_str(&h.bus.published()[0].detail).unwrap();
    assert_eq!(env["source"], "point_of_sale:store-042");
    assert_eq!(env["detail"]["refund"]["total"]["shop"]["minor"], 2429);
}

#[tokio::test]
async fn store_returns_from_unknown_stores_or_with_bad_signatures_are_401() {
    let h = pos_harness();
    assert_eq!(
        pos(&h, "store-999", "store-secret", POS_RETURN)
            .await
            .status,
        401
    );
    assert_eq!(pos(&h, "store-042", "wrong", POS_RETURN).await.status, 401);
    // Signed by store 042 but claiming another store in the body: refused as bad input.
    let other = POS_RETURN.replace("\"store-042\"", "\"store-007\"");
    assert_eq!(
        pos(&h, "store-042", "store-secret", &other).await.status,
        400
    );
    assert_eq!(h.bus.published().len(), 0);
}

// Replay protection (`freshness`): a delivery captured and sent again later.

async fn pos_with(
    h: &Harness,
    headers: &[(&'static str, String)],
    received_at: DateTime<Utc>,
) -> WebhookResponse {
    pos_at(h, headers, None, received_at).await
}

/// A till request as the gateway took it (`gateway`) and the handler ran it.
async fn pos_at(
    h: &Harness,
    headers: &[(&'static str, String)],
    gateway: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
) -> WebhookResponse {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h.intake
        .handle(WebhookRequest {
            route: WebhookRoute::PosReturn,
            headers: &map,
            body: POS_RETURN.as_bytes(),
            received_at,
            gateway_time: gateway,
            deadline: None,
        })
        .await
}

fn till(at: DateTime<Utc>, nonce: &str) -> Vec<(&'static str, String)> {
    crate::mappers::pos::signed_headers(
        "store-042",
        &Secret::new("store-secret"),
        at,
        nonce,
        POS_RETURN.as_bytes(),
    )
}

fn with(
    mut headers: Vec<(&'static str, String)>,
    name: &'static str,
    value: &str,
) -> Vec<(&'static str, String)> {
    headers.retain(|(k, _)| *k != name);
    headers.push((name, value.to_string()));
    headers
}

#[tokio::test]
async fn a_till_request_replayed_with_its_nonce_is_401_and_a_new_attempt_is_a_duplicate() {
    let h = pos_harness();
    let first = till(t0(), "nonce-aaaaaaaaaaaaaaaa");
    assert_eq!(pos_with(&h, &first, t0()).await.status, 200);
    // The same request a minute later, as captured: its nonce was used.
    let replay = pos_with(&h, &first, t0() + Duration::minutes(1)).await;
    assert_eq!(replay.status, 401, "{}", replay.body);
    assert!(
        replay.body["error"]
            .as_str()
            .unwrap()
            .contains("nonce already used"),
        "{}",
        replay.body
    );
    // The till's own retry signs anew: taken, and a duplicate of the return.
    let retry = pos_with(
        &h,
        &till(t0() + Duration::minutes(1), "nonce-bbbbbbbbbbbbbbbb"),
        t0() + Duration::minutes(1),
    )
    .await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.body["duplicate"], true);
    assert_eq!(h.distinct_published_ids().len(), 1);
}

#[tokio::test]
async fn a_till_request_older_than_five_minutes_or_from_the_future_is_401() {
    let h = pos_harness();
    let stale = pos_with(
        &h,
        &till(t0(), "nonce-cccccccccccccccc"),
        t0() + Duration::minutes(5) + Duration::seconds(1),
    )
    .await;
    assert_eq!(stale.status, 401, "{}", stale.body);
    assert!(stale.body["error"]
        .as_str()
        .unwrap()
        .starts_with("stale delivery"));
    let future = pos_with(
        &h,
        &till(t0() + Duration::minutes(6), "nonce-dddddddddddddddd"),
        t0(),
    )
    .await;
    assert_eq!(future.status, 401, "{}", future.body);
    assert_eq!(h.bus.published().len(), 0);
    // Just inside the window it is taken.
    let fresh = pos_with(
        &h,
        &till(t0(), "nonce-eeeeeeeeeeeeeeee"),
        t0() + Duration::minutes(5),
    )
    .await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
}

#[tokio::test]
async fn a_till_stamp_changed_after_signing_is_401() {
    let h = pos_harness();
    // A captured request made fresh again: the signature covers the stamp.
    let old = till(t0() - Duration::hours(1), "nonce-ffffffffffffffff");
    let restamped = with(
        old.clone(),
        "x-retailflow-timestamp",
        &t0().timestamp().to_string(),
    );
    let resp = pos_with(&h, &restamped, t0()).await;
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert_eq!(resp.body["error"], "signature does not match the body");
    let renonced = with(
        till(t0(), "nonce-gggggggggggggggg"),
        "x-retailflow-nonce",
        "nonce-hhhhhhhhhhhhhhhh",
    );
    assert_eq!(pos_with(&h, &renonced, t0()).await.status, 401);
    // Stripping the stamp leaves a signature over more than the body.
    let stripped: Vec<_> = till(t0(), "nonce-iiiiiiiiiiiiiiii")
        .into_iter()
        .filter(|(k, _)| !k.contains("timestamp") && !k.contains("nonce"))
        .collect();
    assert_eq!(pos_with(&h, &stripped, t0()).await.status, 401);
    // Half a stamp, or an unreadable one, says which header is wrong.
    let half: Vec<_> = till(t0(), "nonce-jjjjjjjjjjjjjjjj")
        .into_iter()
        .filter(|(k, _)| !k.contains("nonce"))
        .collect();
    let resp = pos_with(&h, &half, t0()).await;
    assert_eq!(resp.status, 401);
    assert!(resp.body["error"]
        .as_str()
        .unwrap()
        .contains("X-Retailflow-Nonce"));
    assert_eq!(h.bus.published().len(), 0);
}

#[tokio::test]
async fn an_unstamped_till_is_taken_unless_stamps_are_required() {
    let legacy = |secret: &str| {
        vec![
            ("x-retailflow-store", "store-042".to_string()),
            (
                "x-retailflow-signature",
                shopify_signature(&Secret::new(secret), POS_RETURN.as_bytes()),
            ),
        ]
    };
    let h = pos_harness();
    assert_eq!(
        pos_with(&h, &legacy("store-secret"), t0()).await.status,
        200
    );
    assert_eq!(pos_with(&h, &legacy("wrong"), t0()).await.status, 401);
    let strict = harness_with(|c| {
        c.pos_stores.insert(
            "store-042".into(),
            HmacSecrets {
                current: Secret::new("store-secret"),
                previous: None,
            },
        );
        c.replay.pos_require_timestamp = true;
    });
    let resp = pos_with(&strict, &legacy("store-secret"), t0()).await;
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert!(resp.body["error"]
        .as_str()
        .unwrap()
        .contains("X-Retailflow-Timestamp"));
    assert_eq!(strict.bus.published().len(), 0);
}

#[tokio::test]
async fn a_shopify_delivery_triggered_more_than_a_day_before_is_401_and_not_published() {
    let h = harness();
    let mut headers = shopify_headers("orders/create", "ev-stale", ORDER.as_bytes());
    headers.insert(
        "x-shopify-triggered-at",
        HeaderValue::from_static("2026-11-25T11:59:59.123456789Z"),
    );
    let resp = h.shopify_at(&headers, ORDER.as_bytes(), t0()).await;
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert!(resp.body["error"]
        .as_str()
        .unwrap()
        .starts_with("stale delivery"));
    assert!(h.bus.published().is_empty());
    assert!(h.store.quarantined().is_empty(), "a replay is not kept");
    // Shopify's own retry 4 hours on carries the original time: taken.
    headers.insert(
        "x-shopify-triggered-at",
        HeaderValue::from_static("2026-11-26T08:00:00Z"),
    );
    let resp = h.shopify_at(&headers, ORDER.as_bytes(), t0()).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    // And a replay of it, same event id, is answered as the duplicate it is.
    let again = h
        .shopify_at(&headers, ORDER.as_bytes(), t0() + Duration::hours(1))
        .await;
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(h.distinct_published_ids().len(), 1);
}

#[tokio::test]
async fn a_recorded_request_is_judged_at_the_time_the_gateway_took_it() {
    let h = harness();
    let mut headers = shopify_headers("orders/create", "ev-gw", ORDER.as_bytes());
    headers.insert(
        "x-shopify-triggered-at",
        HeaderValue::from_static("2026-11-26T12:00:00Z"),
    );
    let at = |gateway_time| WebhookRequest {
        route: WebhookRoute::Shopify,
        headers: &headers,
        body: ORDER.as_bytes(),
        received_at: t0() + Duration::days(30),
        gateway_time,
        deadline: None,
    };
    assert_eq!(h.intake.handle(at(None)).await.status, 401);
    assert_eq!(h.intake.handle(at(Some(t0()))).await.status, 200);
}

#[tokio::test]
async fn a_till_replay_reaching_the_handler_late_is_still_refused_while_its_stamp_is_fresh() {
    let h = pos_harness();
    let stamped = till(t0(), "nonce-kkkkkkkkkkkkkkkk");
    assert_eq!(pos_at(&h, &stamped, Some(t0()), t0()).await.status, 200);
    // Taken by the gateway 4 minutes on (fresh), run 10 minutes on.
    let replay = pos_at(
        &h,
        &stamped,
        Some(t0() + Duration::minutes(4)),
        t0() + Duration::minutes(10),
    )
    .await;
    assert_eq!(replay.status, 401, "{}", replay.body);
    assert!(replay.body["error"]
        .as_str()
        .unwrap()
        .contains("nonce already used"));
}

#[tokio::test]
async fn a_refused_body_too_large_for_a_state_item_is_quarantined_by_claim_check() {
    use crate::adapters::local_claim_checks::LocalClaimChecks;
    use crate::ports::ClaimChecks;
    let claims = Arc::new(LocalClaimChecks::in_memory());
    let mut h = harness();
    h.intake = OrderIntake::new(
        h.store.clone(),
        h.bus.clone(),
        IntakeConfig {
            shopify: Some(HmacSecrets {
                current: Secret::new(SECRET),
                previous: None,
            }),
            ..IntakeConfig::default()
        },
    )
    .with_claim_checks(claims.clone());
    // Half a megabyte that maps to no order, and does not gzip small.
    let noise: String = (0..500_000u32)
        .map(|i| char::from(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26))
        .collect();
    let body = format!("{{\"id\":\"{noise}\"}}");
    let resp = h.shopify("orders/create", "ev-big", &body).await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    let q = h.store.quarantined();
    assert_eq!(q.len(), 1);
    assert!(q[0].body.is_empty());
    let location = q[0].body_location.clone().expect("kept by claim check");
    assert_eq!(
        claims.get(&location).await.unwrap().as_deref(),
        Some(body.as_bytes()),
        "nothing refused is lost"
    );
}
