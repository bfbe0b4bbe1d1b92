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
