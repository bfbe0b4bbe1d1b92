//! Order intake, the logic of `order-publish`: a signed commerce webhook
//! becomes exactly one canonical event on the bus and one saga.
//!
//! Sequence per delivery: size check → signature → topic → map (bad input is
//! quarantined and answered 400) → record the delivery done and start/extend
//! the saga in one conditional write → publish. A publish or store failure
//! answers 503 so the platform retries; the retry (like any delivery of the
//! same body) finds the delivery recorded and publishes again, because it
//! cannot know whether the first got that far. Event ids are derived from
//! the delivery, so every re-publish is the same event, and the saga holds
//! the order before anything acts on it.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::events::{delivery_event_id, CanonicalEvent, EnvelopeMeta, INTAKE_SOURCE};
use crate::idempotency::{
    payload_hash, ClaimOutcome, ClaimRequest, Completion, IdempotencyKey, LeasePolicy,
    RecordOutcome,
};
use crate::mappers::{adobe, pos, shopify, MapError};
use crate::ports::{BusEvent, ClaimChecks, EventBus, QuarantinedDelivery, StateStore};
use crate::saga::{SagaEvent, SagaUpdate, SAGA_RETENTION};
use crate::webhook::{
    AdobeKeys, HmacSecrets, SignatureError, ADOBE_SIGNATURE_HEADERS, SHOPIFY_HMAC_HEADER,
};
use till_echo::{till_echo, TillEcho, TILL_RETURN_PATIENCE};

/// Bodies above this are refused with 413: Lambda takes a synchronous
/// request of at most 6 MB, and the body rides in it as a JSON string, its
/// quotes escaped (a tenth more for an order), with the headers and request
/// context. A cart of 500 lines in Shopify's shape is about 0.55–0.65 MB, an
/// order of 2,000 lines made through an admin API about 2.2–2.6 MB
/// (`retailflow large-order`, and the sample payload's lines): both are taken.
pub const DEFAULT_MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// Refused bodies larger than this are quarantined by claim check (a state
/// item holds at most 400 KB, and a body this size may not gzip under it).
pub const QUARANTINE_INLINE_BYTES: usize = 256 * 1024;

/// Which webhook endpoint a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookRoute {
    Shopify,
    Adobe,
    /// `POST /pos/returns`: a store's return of an online order.
    PosReturn,
}

impl WebhookRoute {
    /// Routes by path suffix, so API Gateway stage prefixes do not matter.
    pub fn from_path(path: &str) -> Option<Self> {
        let path = path.trim_end_matches('/');
        if path.ends_with("/webhooks/shopify") {
            Some(WebhookRoute::Shopify)
        } else if path.ends_with("/webhooks/adobe") {
            Some(WebhookRoute::Adobe)
        } else if path.ends_with("/pos/returns") {
            Some(WebhookRoute::PosReturn)
        } else {
            None
        }
    }

    fn platform(self) -> &'static str {
        match self {
            WebhookRoute::Shopify => "shopify",
            WebhookRoute::Adobe => "adobe_commerce",
            WebhookRoute::PosReturn => "point_of_sale",
        }
    }
}

/// Verification material and limits for the intake.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    pub shopify: Option<HmacSecrets>,
    pub adobe: Option<AdobeKeys>,
    /// Point-of-sale stores and their signing secrets, by store id.
    pub pos_stores: std::collections::BTreeMap<String, HmacSecrets>,
    /// Shop identity for Adobe orders; defaults to the configured client id.
    pub adobe_shop: Option<String>,
    pub max_body_bytes: usize,
    /// How long a delivery is remembered for dedup (Shopify retries for 4 h).
    pub dedup_ttl: Duration,
    /// How long after a delivery was recorded its redeliveries publish its
    /// event again: a worker may have died between recording and
    /// publishing, and the platform's retries (Shopify's for 4 hours,
    /// Adobe I/O Events' for a day) are what publish it then. Later
    /// duplicates publish nothing; reconciliation re-drives a step not
    /// done within its SLA from the event kept on the saga.
    pub republish_window: Duration,
    pub lease: LeasePolicy,
    /// How old a delivery may be, and whether tills must stamp their requests.
    pub replay: freshness::ReplayPolicy,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            shopify: None,
            adobe: None,
            adobe_shop: None,
            pos_stores: std::collections::BTreeMap::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            dedup_ttl: Duration::days(7),
            republish_window: Duration::days(1),
            lease: LeasePolicy::default(),
            replay: freshness::ReplayPolicy::default(),
        }
    }
}

/// One delivery as the step sees it, whatever HTTP front end carried it.
pub struct WebhookRequest<'a> {
    pub route: WebhookRoute,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
    pub received_at: DateTime<Utc>,
    /// When the HTTP front end took the request (API Gateway's
    /// `requestContext.timeEpoch`, which the caller cannot set); the age of
    /// a delivery is judged at this time, `received_at` when absent. A
    /// recorded request played back (`retailflow run events/`) is judged
    /// at the time it was recorded.
    pub gateway_time: Option<DateTime<Utc>>,
    /// When the invocation will be stopped (Lambda deadline): too close to
    /// it, a delivery is answered 503 before anything is recorded.
    pub deadline: Option<DateTime<Utc>>,
}

/// The answer to the platform.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookResponse {
    pub status: u16,
    pub body: serde_json::Value,
    pub retry_after_secs: Option<u32>,
}

impl WebhookResponse {
    fn new(status: u16, body: serde_json::Value) -> Self {
        WebhookResponse {
            status,
            body,
            retry_after_secs: None,
        }
    }

    fn error(status: u16, reason: impl Into<String>) -> Self {
        Self::new(status, json!({ "error": reason.into() }))
    }

    fn retry(reason: impl Into<String>) -> Self {
        WebhookResponse {
            status: 503,
            body: json!({ "error": reason.into(), "retryable": true }),
            retry_after_secs: Some(5),
        }
    }

    pub fn into_http(self) -> http::Response<String> {
        let mut b = http::Response::builder()
            .status(self.status)
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(s) = self.retry_after_secs {
            b = b.header(http::header::RETRY_AFTER, s.to_string());
        }
        // Status codes used here are all valid and the headers are static ASCII.
        b.body(self.body.to_string())
            .unwrap_or_else(|_| http::Response::new(String::new()))
    }
}

/// What the platform delivered, once identified.
struct Delivery {
    platform: &'static str,
    shop: String,
    topic: String,
    delivery_id: String,
}

pub struct OrderIntake {
    store: Arc<dyn StateStore>,
    bus: Arc<dyn EventBus>,
    config: IntakeConfig,
    /// Where refused bodies too large for a state item are kept.
    claims: Option<Arc<dyn ClaimChecks>>,
}

impl OrderIntake {
    pub fn new(store: Arc<dyn StateStore>, bus: Arc<dyn EventBus>, config: IntakeConfig) -> Self {
        OrderIntake {
            store,
            bus,
            config,
            claims: None,
        }
    }

    /// Keeps refused bodies over [`QUARANTINE_INLINE_BYTES`] in `claims`
    /// (without it such a body is answered 503: the platform keeps it).
    pub fn with_claim_checks(mut self, claims: Arc<dyn ClaimChecks>) -> Self {
        self.claims = Some(claims);
        self
    }

    /// Handles one delivery and logs one line about it (no personal data).
    pub async fn handle(&self, req: WebhookRequest<'_>) -> WebhookResponse {
        let platform = req.route.platform();
        let started = std::time::Instant::now();
        let span = tracing::info_span!("work", correlation_id = tracing::field::Empty);
        let (resp, delivery) = {
            use tracing::Instrument;
            self.process(&req).instrument(span.clone()).await
        };
        let _in_flow = span.entered();
        let accepted = resp.status == 200
            && resp.body.get("duplicate").is_none()
            && resp.body.get("event_type").is_some();
        crate::observability::count(
            "Webhooks",
            (
                "Outcome",
                match resp.status {
                    200..=299 if accepted => "accepted",
                    200..=299 if resp.body.get("duplicate").is_some() => "duplicate",
                    200..=299 => "ignored",
                    400..=499 => "refused",
                    _ => "retry",
                },
            ),
        );
        if let (true, Some(t)) = (
            accepted,
            resp.body.get("event_type").and_then(|t| t.as_str()),
        ) {
            crate::observability::count("EventsIngested", ("EventType", t));
        }
        // Mapping errors can quote payload values (names, emails): the log
        // names only the quarantine record that holds them.
        let reason = match resp.body.get("quarantine_id").and_then(|q| q.as_str()) {
            Some(q) => format!("input refused and kept as quarantine {q}"),
            None => ["error", "reason"]
                .iter()
                .find_map(|k| resp.body.get(*k).and_then(|e| e.as_str()))
                .unwrap_or("")
                .to_string(),
        };
        tracing::info!(
            platform,
            status = resp.status,
            topic = delivery.as_ref().map(|d| d.topic.as_str()).unwrap_or(""),
            delivery_id = delivery
                .as_ref()
                .map(|d| d.delivery_id.as_str())
                .unwrap_or(""),
            event_id = resp
                .body
                .get("event_id")
                .and_then(|e| e.as_str())
                .unwrap_or(""),
            event_type = resp
                .body
                .get("event_type")
                .and_then(|e| e.as_str())
                .unwrap_or(""),
            correlation_id = resp
                .body
                .get("correlation_id")
                .and_then(|e| e.as_str())
                .unwrap_or(""),
            duplicate = resp
                .body
                .get("duplicate")
                .and_then(|e| e.as_bool())
                .unwrap_or(false),
            reason = reason.as_str(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "webhook"
        );
        resp
    }

    async fn process(&self, req: &WebhookRequest<'_>) -> (WebhookResponse, Option<Delivery>) {
        if req.body.len() > self.config.max_body_bytes {
            let reason = format!(
                "body is {} bytes; the limit is {}",
                req.body.len(),
                self.config.max_body_bytes
            );
            return (WebhookResponse::error(413, reason), None);
        }
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());

        // Signature first: nothing unauthenticated is parsed or stored.
        let verified = match req.route {
            WebhookRoute::Shopify => match &self.config.shopify {
                Some(secrets) => secrets.verify(header(SHOPIFY_HMAC_HEADER), req.body),
                None => {
                    return (
                        WebhookResponse::retry("shopify webhook secret is not configured"),
                        None,
                    )
                }
            },
            WebhookRoute::Adobe => match &self.config.adobe {
                Some(keys) => keys.verify(
                    [
                        header(ADOBE_SIGNATURE_HEADERS[0]),
                        header(ADOBE_SIGNATURE_HEADERS[1]),
                    ],
                    req.body,
                ),
                None => {
                    return (
                        WebhookResponse::retry("adobe public keys are not configured"),
                        None,
                    )
                }
            },
            WebhookRoute::PosReturn => return self.process_pos(req).await,
        };
        if let Err(e) = verified {
            return (WebhookResponse::error(401, e.to_string()), None);
        }
        if req.route == WebhookRoute::Shopify {
            let judged_at = req.gateway_time.unwrap_or(req.received_at);
            let triggered_at = header("x-shopify-triggered-at");
            if let Err(e) = self.config.replay.check_shopify(triggered_at, judged_at) {
                return (WebhookResponse::error(401, e.to_string()), None);
            }
        }
        self.identify_and_publish(req).await
    }

    /// A till's request: signature over its stamp and body, the stamp's
    /// age, then its nonce, which is claimed (the one idempotency
    /// mechanism) until the stamp is stale anyway; then as any delivery.
    async fn process_pos(&self, req: &WebhookRequest<'_>) -> (WebhookResponse, Option<Delivery>) {
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        let refuse = |reason: String| (WebhookResponse::error(401, reason), None);
        // An unknown store is refused like a bad signature: nothing vouches for it.
        let store = header(pos::STORE_HEADER).unwrap_or("");
        let Some(secrets) = self.config.pos_stores.get(store) else {
            return refuse(SignatureError::NotConfigured.to_string());
        };
        let stamp = match freshness::PosStamp::from_headers(|n| header(n).map(str::to_string)) {
            Ok(s) => s,
            Err(e) => return refuse(e.to_string()),
        };
        let signed = match &stamp {
            Some(s) => pos::signing_input(&s.timestamp, &s.nonce, req.body),
            None => req.body.to_vec(),
        };
        if let Err(e) = secrets.verify_header(
            pos::SIGNATURE_HEADER,
            header(pos::SIGNATURE_HEADER),
            &signed,
        ) {
            return refuse(e.to_string());
        }
        let Some(stamp) = stamp else {
            if self.config.replay.pos_require_timestamp {
                return refuse(
                    freshness::ReplayRefusal::MissingStamp("X-Retailflow-Timestamp").to_string(),
                );
            }
            crate::observability::count("PosUnstampedRequests", ("Store", store));
            return self.identify_and_publish(req).await;
        };
        let judged_at = req.gateway_time.unwrap_or(req.received_at);
        let forget_at = match self.config.replay.check_pos(&stamp, judged_at) {
            Ok(t) => t,
            Err(e) => return refuse(e.to_string()),
        };
        let nonce = ClaimRequest {
            key: IdempotencyKey::request_nonce(store, &stamp.nonce),
            payload_hash: payload_hash(req.body),
            // On the clock the stamp's age is judged by: held for as long
            // as the stamp is fresh on it, however late the handler runs.
            now: judged_at,
            lease_until: forget_at,
        };
        match self.store.claim(&nonce).await {
            // Never completed: the claim's lease is the nonce's memory.
            Ok(ClaimOutcome::Claimed(_)) => {}
            Ok(_) => return refuse(freshness::ReplayRefusal::NonceReused.to_string()),
            Err(e) => return (WebhookResponse::retry(format!("state store: {e}")), None),
        }
        self.identify_and_publish(req).await
    }

    async fn identify_and_publish(
        &self,
        req: &WebhookRequest<'_>,
    ) -> (WebhookResponse, Option<Delivery>) {
        // Identify the delivery and map it.
        let identified = match req.route {
            WebhookRoute::Shopify => self.identify_shopify(req),
            WebhookRoute::Adobe => self.identify_adobe(req),
            WebhookRoute::PosReturn => self.identify_pos(req),
        };
        let (delivery, mapped) = match identified {
            Identified::Ignored(d) => {
                let body = json!({ "ignored": true, "reason": format!("topic {} is not handled", d.topic) });
                return (WebhookResponse::new(200, body), Some(d));
            }
            Identified::Refused(status, reason) => {
                return (WebhookResponse::error(status, reason), None)
            }
            Identified::Mapped(d, Ok(event)) => (d, *event),
            Identified::Mapped(d, Err(MapError::OwnEcho { reference })) => {
                let body = json!({ "ignored": true, "reason": format!("refund recorded by retailflow for till return {reference}: already handled") });
                return (WebhookResponse::new(200, body), Some(d));
            }
            Identified::Mapped(d, Err(MapError::NotARefund(reason))) => {
                let body = json!({ "ignored": true, "reason": reason });
                return (WebhookResponse::new(200, body), Some(d));
            }
            Identified::Mapped(d, Err(e)) => {
                let resp = self
                    .quarantine(req, Some(&d), format!("payload does not map: {e}"), 400)
                    .await;
                return (resp, Some(d));
            }
            Identified::Unidentified(e) => {
                let resp = self
                    .quarantine(req, None, format!("delivery is not readable: {e}"), 400)
                    .await;
                return (resp, None);
            }
        };
        if let (WebhookRoute::Adobe, CanonicalEvent::RefundIssued(r)) = (&req.route, &mapped) {
            let reason = match till_echo(self.store.as_ref(), &r.refund).await {
                Ok(TillEcho::No) => None,
                Ok(TillEcho::Of(till)) => Some(format!(
                    "credit memo {} was recorded by retailflow for till return {till}: already handled",
                    r.refund.refund_id
                )),
                Ok(TillEcho::Pending(till))
                    if req.received_at - r.refund.created_at > TILL_RETURN_PATIENCE =>
                {
                    let why = format!(
                        "credit memo {} may be the echo of till return {till}, which has still not recorded its credit memo in Adobe: kept for review, nothing refunded (check the till return, then take the memo in if it is not its echo)",
                        r.refund.refund_id
                    );
                    let resp = self.quarantine(req, Some(&delivery), why, 202).await;
                    return (resp, Some(delivery));
                }
                Ok(TillEcho::Pending(till)) => {
                    let why = format!("till return {till} of this order has not recorded its credit memo in Adobe yet: this may be it, ask again");
                    return (WebhookResponse::retry(why), Some(delivery));
                }
                Err(e) => {
                    return (
                        WebhookResponse::retry(format!("state store: {e}")),
                        Some(delivery),
                    )
                }
            };
            if let Some(reason) = reason {
                let body = json!({ "ignored": true, "reason": reason });
                return (WebhookResponse::new(200, body), Some(delivery));
            }
        }
        let resp = self.record_and_publish(req, &delivery, &mapped).await;
        (resp, Some(delivery))
    }

    fn identify_shopify(&self, req: &WebhookRequest<'_>) -> Identified {
        let header = |name: &str| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let Some(topic) = header("x-shopify-topic") else {
            return Identified::Unidentified(MapError::MissingField(
                "X-Shopify-Topic header".into(),
            ));
        };
        let Some(shop) = header("x-shopify-shop-domain") else {
            return Identified::Unidentified(MapError::MissingField(
                "X-Shopify-Shop-Domain header".into(),
            ));
        };
        let Some(delivery_id) =
            header("x-shopify-event-id").or_else(|| header("x-shopify-webhook-id"))
        else {
            return Identified::Unidentified(MapError::MissingField(
                "X-Shopify-Event-Id header".into(),
            ));
        };
        let d = Delivery {
            platform: "shopify",
            shop,
            topic,
            delivery_id,
        };
        match shopify::ShopifyTopic::parse(&d.topic) {
            None => Identified::Ignored(d),
            Some(t) => {
                let mapped = shopify::map(t, &d.shop, req.body).map(Box::new);
                Identified::Mapped(d, mapped)
            }
        }
    }

    fn identify_adobe(&self, req: &WebhookRequest<'_>) -> Identified {
        let delivery = match adobe::AdobeDelivery::parse(req.body) {
            Ok(d) => d,
            Err(e) => return Identified::Unidentified(e),
        };
        // Verified before this runs, so the keys are configured.
        let client_id = self
            .config
            .adobe
            .as_ref()
            .map(|k| k.client_id.as_str())
            .unwrap_or_default();
        if delivery.recipient_client_id.as_deref() != Some(client_id) {
            return Identified::Refused(401, "event is addressed to another client id".into());
        }
        if delivery.time.as_deref().is_none_or(|t| t.trim().is_empty()) {
            crate::observability::count("AdobeUnstampedDeliveries", ("Route", "adobe"));
        }
        let judged_at = req.gateway_time.unwrap_or(req.received_at);
        if let Err(e) = self
            .config
            .replay
            .check_adobe(delivery.time.as_deref(), judged_at)
        {
            return Identified::Refused(401, e.to_string());
        }
        // The shop identity comes from configuration, never from the body.
        let shop = self
            .config
            .adobe_shop
            .clone()
            .unwrap_or_else(|| client_id.to_string());
        let d = Delivery {
            platform: "adobe_commerce",
            shop,
            topic: delivery.event_code.clone(),
            delivery_id: delivery.event_id.clone(),
        };
        if !delivery.is_mapped() {
            return Identified::Ignored(d);
        }
        let mapped = adobe::map(&d.shop, &delivery).map(Box::new);
        Identified::Mapped(d, mapped)
    }

    fn identify_pos(&self, req: &WebhookRequest<'_>) -> Identified {
        // The store header was verified with its own secret before this runs.
        let store = req
            .headers
            .get(pos::STORE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let (_, return_id) = match pos::return_identity(req.body) {
            Ok(id) => id,
            Err(e) => return Identified::Unidentified(e),
        };
        let d = Delivery {
            platform: "point_of_sale",
            shop: store.clone(),
            topic: "pos/returns".into(),
            delivery_id: return_id,
        };
        let mapped = pos::map(&store, req.body).map(Box::new);
        Identified::Mapped(d, mapped)
    }

    /// Keeps the raw body with the reason, then answers `status`. If the body
    /// cannot be kept, answers 503 instead so the platform keeps it for us.
    async fn quarantine(
        &self,
        req: &WebhookRequest<'_>,
        d: Option<&Delivery>,
        reason: String,
        status: u16,
    ) -> WebhookResponse {
        let id = Uuid::new_v4();
        let (body, body_location) = match &self.claims {
            Some(claims) if req.body.len() > QUARANTINE_INLINE_BYTES => {
                match claims
                    .put(&format!("quarantine/{id}"), req.body.to_vec())
                    .await
                {
                    Ok(location) => (Vec::new(), Some(location)),
                    Err(e) => {
                        return WebhookResponse::retry(format!(
                            "{reason}; and it could not be quarantined: {e}"
                        ))
                    }
                }
            }
            _ => (req.body.to_vec(), None),
        };
        let item = QuarantinedDelivery {
            id,
            received_at: req.received_at,
            source: req.route.platform().to_string(),
            topic: d.map(|d| d.topic.clone()),
            shop: d.map(|d| d.shop.clone()),
            delivery_id: d.map(|d| d.delivery_id.clone()),
            reason: reason.clone(),
            body,
            body_location,
        };
        match self.store.quarantine(&item).await {
            Ok(()) => WebhookResponse::new(
                status,
                json!({ "error": reason, "quarantine_id": item.id.to_string() }),
            ),
            Err(e) => {
                tracing::error!(error = %e, "could not quarantine a refused delivery");
                WebhookResponse::retry(format!("{reason}; and it could not be quarantined: {e}"))
            }
        }
    }

    /// Whether a delivery recorded with `recorded` (its stored answer) may
    /// not have been published yet: recorded within the republish window.
    /// A record without its time (an earlier version's) counts as maybe:
    /// publishing it again is harmless, losing it is not.
    fn may_be_unpublished(&self, recorded: &serde_json::Value, now: DateTime<Utc>) -> bool {
        match recorded.get("recorded_at").and_then(|t| t.as_str()) {
            Some(t) => DateTime::parse_from_rfc3339(t).map_or(true, |t| {
                now - t.with_timezone(&Utc) <= self.config.republish_window
            }),
            None => true,
        }
    }

    async fn record_and_publish(
        &self,
        req: &WebhookRequest<'_>,
        d: &Delivery,
        event: &CanonicalEvent,
    ) -> WebhookResponse {
        let key = RecordKey::of(d, event, self.config.dedup_ttl);
        self.record(req, d, event, key).await
    }

    async fn record(
        &self,
        req: &WebhookRequest<'_>,
        d: &Delivery,
        event: &CanonicalEvent,
        record: RecordKey,
    ) -> WebhookResponse {
        let event_id = delivery_event_id(d.platform, &d.shop, &record.topic, &record.id);
        let meta = EnvelopeMeta {
            event_id,
            occurred_at: event.occurred_at(),
            source: format!("{}:{}", d.platform, d.shop),
            causation_id: Some(format!("{}-delivery:{}", d.platform, d.delivery_id)),
        };
        let mut envelope = event.to_envelope(&meta);
        // What the steps compare, fixed now: the detail's bytes as recorded.
        let detail_sha256 = payload_hash(envelope["detail"].to_string().as_bytes());
        envelope["detail_sha256"] = json!(detail_sha256);
        let correlation_id = event.order_ref().key();
        tracing::Span::current().record("correlation_id", correlation_id.as_str());
        let bus_event = BusEvent {
            event_id,
            detail_type: event.event_type().to_string(),
            source: INTAKE_SOURCE.to_string(),
            detail: envelope.to_string(),
            time: req.received_at,
        };
        let summary = json!({
            "event_id": event_id.to_string(),
            "event_type": event.event_type(),
            "correlation_id": correlation_id,
            "recorded_at": req.received_at.to_rfc3339(),
            "detail_sha256": detail_sha256,
            "delivery_id": d.delivery_id,
        });

        let lease_until = match self.config.lease.lease_until(req.received_at, req.deadline) {
            Ok(t) => t,
            Err(e) => return WebhookResponse::retry(e.to_string()),
        };
        let key = IdempotencyKey::delivery(format!(
            "{}:{}:{}:{}",
            d.platform, d.shop, record.topic, record.id
        ));
        let claim_req = ClaimRequest {
            key,
            payload_hash: match &record.payload {
                RecordedPayload::Body => payload_hash(req.body),
                RecordedPayload::Detail => detail_sha256.clone(),
                RecordedPayload::Fixed(h) => h.clone(),
            },
            now: req.received_at,
            lease_until,
        };
        // Recorded before it is published: a failed publish answers 503 and
        // the platform's retry finds the delivery recorded and publishes again.
        let completion = Completion {
            result: Some(summary.clone()),
            now: req.received_at,
            expires_at: req.received_at + record.kept_for,
            saga: Some(SagaUpdate {
                saga_key: correlation_id,
                at: req.received_at,
                event: Some(SagaEvent {
                    event_id: event_id.to_string(),
                    event_type: event.event_type().to_string(),
                    // What a re-drive finds in the archive: the events that
                    // start steps (an edit starts none).
                    replayable: !matches!(event, CanonicalEvent::OrderUpdated(_)),
                }),
                order_facts: event.order_facts(),
                replace_order_facts: matches!(event, CanonicalEvent::OrderUpdated(_)),
                case_key: match event {
                    CanonicalEvent::RefundIssued(r) => {
                        Some(crate::steps::return_reversal::return_key(
                            &r.refund.order,
                            &r.refund.refund_id,
                        ))
                    }
                    CanonicalEvent::OrderCancelled(c) => Some(
                        crate::steps::return_reversal::cancellation_key(&c.cancellation.order),
                    ),
                    _ => None,
                },
                expires_at: req.received_at + SAGA_RETENTION,
            }),
        };
        let duplicate = match self.store.record_first(&claim_req, &completion).await {
            Ok(RecordOutcome::Recorded) => None,
            // Recorded before with this body: whoever recorded it may have
            // stopped before publishing, so publish again (the same event
            // id; consumers deduplicate on it).
            Ok(RecordOutcome::Existing(ClaimOutcome::AlreadyCompleted { result })) => {
                let mut body = result.unwrap_or_else(|| summary.clone());
                // Whoever recorded it may have stopped before publishing:
                // within the window any delivery of it publishes the
                // recorded event again (a later save too, in case the first
                // save's own retries ran out).
                if self.may_be_unpublished(&body, req.received_at) {
                    Some(body)
                } else if record.per_order && body["delivery_id"].as_str() != Some(&d.delivery_id) {
                    // Another save of an order recorded by its id: what
                    // retailflow keeps of it is what it was.
                    return WebhookResponse::new(
                        200,
                        json!({
                            "ignored": true,
                            "reason": format!(
                                "a later save of {} {}: nothing retailflow keeps changed",
                                record.topic,
                                record.id
                            ),
                            "correlation_id": body["correlation_id"],
                            "event_id": body["event_id"],
                        }),
                    );
                } else {
                    body["duplicate"] = json!(true);
                    return WebhookResponse::new(200, body);
                }
            }
            // A later save of an Adobe order whose content changed: an
            // update of the order, recorded once per version.
            Ok(RecordOutcome::Existing(ClaimOutcome::PayloadMismatch { completed: true }))
                if record.topic == RecordKey::ADOBE_ORDER =>
            {
                let CanonicalEvent::OrderPlaced(placed) = event else {
                    return WebhookResponse::retry("an order record for what is not an order");
                };
                let updated = CanonicalEvent::OrderUpdated(crate::events::OrderUpdated {
                    order: placed.order.clone(),
                });
                let version = RecordKey {
                    topic: "order-version".into(),
                    id: format!(
                        "{}:{}",
                        record.id,
                        &detail_sha256[..16.min(detail_sha256.len())]
                    ),
                    ..record
                };
                return Box::pin(self.record(req, d, &updated, version)).await;
            }
            // Shopify sends one delivery per subscription of a topic (API
            // versions, field filters differ) under one event id: the event
            // is the first body's, and its own retries publish it.
            Ok(RecordOutcome::Existing(ClaimOutcome::PayloadMismatch { completed: true })) => {
                // A refunded Adobe credit memo cannot be edited: another
                // content under its id is a mapper change or a forged save.
                // The first content stands; someone should know.
                if record.topic == RecordKey::ADOBE_CREDIT_MEMO {
                    crate::observability::count("AdobeCreditMemoChanged", ("Route", "adobe"));
                    tracing::warn!(credit_memo = %record.id, "an Adobe credit memo announced again with other money or lines: the first is kept");
                }
                let mut body = summary;
                body["duplicate"] = json!(true);
                body["different_body"] = json!(true);
                return WebhookResponse::new(200, body);
            }
            // A claim of the same delivery taken by claim-then-complete
            // (an earlier version of this function, mid-deploy).
            Ok(RecordOutcome::Existing(ClaimOutcome::InProgress { .. })) => {
                return WebhookResponse::retry("the same delivery is being processed right now");
            }
            Ok(RecordOutcome::Existing(ClaimOutcome::PayloadMismatch { completed: false })) => {
                return WebhookResponse::retry(
                    "another body of this delivery is being processed right now",
                );
            }
            // Only saga items are cancelled, and records are never handed
            // back as claims: neither happens to a delivery.
            Ok(RecordOutcome::Existing(other)) => {
                return WebhookResponse::retry(format!("delivery record answered {other:?}"));
            }
            Err(e) => return WebhookResponse::retry(format!("state store: {e}")),
        };
        // A redelivery is published at the time it was first recorded (its
        // saga's `first_seen`, where a re-drive looks for it in the archive).
        let bus_event = match duplicate
            .as_ref()
            .and_then(|r| r.get("recorded_at"))
            .and_then(|t| t.as_str())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            Some(t) => BusEvent {
                time: t.with_timezone(&Utc),
                ..bus_event
            },
            None => bus_event,
        };
        // A redelivery carries the hash first recorded, whatever this
        // build's mapper makes of the body now: the steps compare it.
        let recorded_hash = duplicate
            .as_ref()
            .and_then(|r| r.get("detail_sha256"))
            .and_then(|h| h.as_str())
            .filter(|h| *h != detail_sha256);
        let bus_event = match recorded_hash {
            Some(h) => {
                envelope["detail_sha256"] = json!(h);
                BusEvent {
                    detail: envelope.to_string(),
                    ..bus_event
                }
            }
            None => bus_event,
        };
        if let Err(e) = self.bus.publish(std::slice::from_ref(&bus_event)).await {
            return WebhookResponse::retry(format!("event bus: {e}"));
        }
        match duplicate {
            None => WebhookResponse::new(200, summary),
            Some(mut body) => {
                body["duplicate"] = json!(true);
                WebhookResponse::new(200, body)
            }
        }
    }
}

/// Under what a delivery is recorded. Shopify and tills: the platform's
/// delivery id, for the dedup TTL (their retries carry the same id). Adobe
/// Commerce announces every save of an order (invoice, shipment, status,
/// comment) and of a credit memo as a new event: its orders are recorded by
/// the order's id and canonical content, its cancellations by the order,
/// and its credit memos by the memo's id, for as long as the saga lives. A
/// later save is then a duplicate, or, for an order, an update when what
/// retailflow keeps of it changed; never a second order or refund.
struct RecordKey {
    topic: String,
    id: String,
    payload: RecordedPayload,
    kept_for: Duration,
    /// Recorded by the order, not the delivery: another delivery finding
    /// the record is another save.
    per_order: bool,
}

enum RecordedPayload {
    /// The raw body's hash: the same delivery with another body differs.
    Body,
    /// The canonical detail's hash: what retailflow keeps of the order.
    Detail,
    /// A constant: any later save is the same (a cancellation).
    Fixed(String),
}

impl RecordKey {
    const ADOBE_ORDER: &'static str = "order";
    const ADOBE_CREDIT_MEMO: &'static str = "creditmemo";

    fn of(d: &Delivery, event: &CanonicalEvent, dedup_ttl: Duration) -> Self {
        let by_order = |topic: &str, payload| RecordKey {
            topic: topic.into(),
            id: event.order_ref().order_id.clone(),
            payload,
            kept_for: SAGA_RETENTION,
            per_order: true,
        };
        match (d.platform, event) {
            ("adobe_commerce", CanonicalEvent::OrderPlaced(_)) => {
                by_order(Self::ADOBE_ORDER, RecordedPayload::Detail)
            }
            // A credit memo saved again (a comment, a state change) is the
            // same refund: recorded by its id, the first content kept.
            ("adobe_commerce", CanonicalEvent::RefundIssued(r)) => RecordKey {
                topic: Self::ADOBE_CREDIT_MEMO.into(),
                id: r.refund.refund_id.clone(),
                payload: RecordedPayload::Detail,
                kept_for: SAGA_RETENTION,
                per_order: true,
            },
            ("adobe_commerce", CanonicalEvent::OrderCancelled(_)) => by_order(
                "cancel",
                RecordedPayload::Fixed(payload_hash(event.order_ref().key().as_bytes())),
            ),
            _ => RecordKey {
                topic: d.topic.clone(),
                id: d.delivery_id.clone(),
                payload: RecordedPayload::Body,
                kept_for: dedup_ttl,
                per_order: false,
            },
        }
    }
}

enum Identified {
    Mapped(Delivery, Result<Box<CanonicalEvent>, MapError>),
    Ignored(Delivery),
    Unidentified(MapError),
    Refused(u16, String),
}

pub mod freshness;
#[cfg(test)]
mod tests;
mod till_echo;
