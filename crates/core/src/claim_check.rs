//! The claim check: an event over [`CLAIM_CHECK_OVER`] bytes (an order of
//! hundreds of lines) does not fit EventBridge's 256 KB entry or an SQS
//! message. Its envelope's `detail` is kept in the [`ClaimChecks`] store and
//! the event carries `detail_ref` (location, bytes, SHA-256) instead; the
//! consumer puts the detail back before its step reads the message
//! ([`resolve`]). Publishers wrap their bus in [`ClaimCheckedBus`], so
//! every event of every step is covered, not only intake's.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::idempotency::payload_hash;
use crate::ports::{BusError, BusEvent, ClaimChecks, EventBus, StoreError};

/// Events larger than this (as EventBridge counts an entry) ride by
/// reference: under the 256 KB entry limit with room for what EventBridge
/// adds around the detail on its way to an SQS queue.
pub const CLAIM_CHECK_OVER: usize = 192 * 1024;

/// The envelope field that replaces `detail` in a claim-checked event.
pub const DETAIL_REF: &str = "detail_ref";

/// An [`EventBus`] that sends events over [`CLAIM_CHECK_OVER`] by reference.
pub struct ClaimCheckedBus {
    inner: Arc<dyn EventBus>,
    store: Arc<dyn ClaimChecks>,
    over: usize,
}

impl ClaimCheckedBus {
    pub fn new(inner: Arc<dyn EventBus>, store: Arc<dyn ClaimChecks>) -> Self {
        ClaimCheckedBus {
            inner,
            store,
            over: CLAIM_CHECK_OVER,
        }
    }

    /// The same with another threshold (tests).
    pub fn with_threshold(mut self, over: usize) -> Self {
        self.over = over;
        self
    }

    async fn by_reference(&self, e: &BusEvent) -> Result<BusEvent, BusError> {
        let Ok(Value::Object(mut envelope)) = serde_json::from_str::<Value>(&e.detail) else {
            // Not an envelope: nothing to take out of it.
            return Ok(e.clone());
        };
        let Some(detail) = envelope.remove("detail") else {
            return Ok(e.clone());
        };
        let bytes = detail.to_string().into_bytes();
        let sha256 = payload_hash(&bytes);
        let len = bytes.len();
        let key = format!("events/{}/{sha256}.json", e.event_id);
        let location = self.store.put(&key, bytes).await.map_err(|err| {
            BusError::Unavailable(format!("claim check of {}: {err}", e.event_id))
        })?;
        envelope.insert(
            DETAIL_REF.into(),
            serde_json::json!({ "location": location, "bytes": len, "sha256": sha256 }),
        );
        Ok(BusEvent {
            detail: Value::Object(envelope).to_string(),
            ..e.clone()
        })
    }
}

#[async_trait]
impl EventBus for ClaimCheckedBus {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), BusError> {
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            if e.entry_size() > self.over {
                out.push(self.by_reference(e).await?);
            } else {
                out.push(e.clone());
            }
        }
        self.inner.publish(&out).await
    }
}

/// Why a claim-checked message could not be put back together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimCheckError {
    /// The store did not answer: try again.
    #[error("claim check store: {0}")]
    Unavailable(String),
    /// The reference is broken, the bytes are gone (past the bucket's
    /// lifecycle) or are not what the event says: needs a person.
    #[error("claim check: {0}")]
    Broken(String),
}

impl ClaimCheckError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ClaimCheckError::Unavailable(_))
    }
}

/// A queue message with its detail back in place if it came by reference
/// (an EventBridge event, or a bare envelope); any other message as it is.
pub async fn resolve<'a>(
    store: &dyn ClaimChecks,
    body: &'a str,
) -> Result<Cow<'a, str>, ClaimCheckError> {
    // Most messages carry their detail: no parse for them.
    if !body.contains(DETAIL_REF) {
        return Ok(Cow::Borrowed(body));
    }
    let Ok(mut message) = serde_json::from_str::<Value>(body) else {
        return Ok(Cow::Borrowed(body));
    };
    let envelope = if message.get("detail-type").is_some() {
        &mut message["detail"]
    } else {
        &mut message
    };
    let Some(Value::Object(reference)) = envelope.get(DETAIL_REF).cloned() else {
        return Ok(Cow::Borrowed(body));
    };
    let broken = |why: String| ClaimCheckError::Broken(why);
    let location = reference
        .get("location")
        .and_then(Value::as_str)
        .ok_or_else(|| broken("the reference names no location".into()))?;
    let sha256 = reference.get("sha256").and_then(Value::as_str);
    let bytes = match store.get(location).await {
        Ok(Some(b)) => b,
        Ok(None) => return Err(broken(format!("nothing is kept at {location} (expired?)"))),
        Err(StoreError::Unavailable(e)) => return Err(ClaimCheckError::Unavailable(e)),
        Err(e) => return Err(broken(format!("{location}: {e}"))),
    };
    if sha256.is_some_and(|h| h != payload_hash(&bytes)) {
        return Err(broken(format!(
            "{location} does not hold what the event says it does (SHA-256 differs)"
        )));
    }
    let detail: Value = serde_json::from_slice(&bytes)
        .map_err(|e| broken(format!("{location} is not JSON: {e}")))?;
    if let Value::Object(env) = envelope {
        env.remove(DETAIL_REF);
        env.insert("detail".into(), detail);
    }
    Ok(Cow::Owned(message.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::in_process::InProcessEventBus;
    use crate::adapters::local_claim_checks::LocalClaimChecks;

    fn event(detail_bytes: usize) -> BusEvent {
        let id = uuid::Uuid::new_v4();
        BusEvent {
            event_id: id,
            detail_type: "OrderPlaced".into(),
            source: "retailflow.intake".into(),
            detail: serde_json::json!({
                "event_id": id, "event_type": "OrderPlaced", "correlation_id": "shopify:s:order:1",
                "detail": {"order": {"note": "x".repeat(detail_bytes)}}
            })
            .to_string(),
            time: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_large_event_rides_by_reference_and_comes_back_whole() {
        let store = Arc::new(LocalClaimChecks::in_memory());
        let bus = Arc::new(InProcessEventBus::new());
        let checked = ClaimCheckedBus::new(bus.clone(), store.clone());
        let (small, large) = (event(100), event(400 * 1024));
        checked
            .publish(&[small.clone(), large.clone()])
            .await
            .unwrap();
        let sent = bus.published();
        assert_eq!(sent[0], small, "a small event is sent as it is");
        assert!(sent[1].entry_size() < 2048, "{}", sent[1].detail);
        assert!(!sent[1].detail.contains("xxxx"));
        let message = serde_json::json!({
            "detail-type": "OrderPlaced",
            "detail": serde_json::from_str::<Value>(&sent[1].detail).unwrap()
        })
        .to_string();
        let back = resolve(store.as_ref(), &message).await.unwrap();
        let v: Value = serde_json::from_str(&back).unwrap();
        assert_eq!(
            v["detail"],
            serde_json::from_str::<Value>(&large.detail).unwrap(),
            "the envelope as published"
        );
    }

    #[tokio::test]
    async fn a_reference_to_other_bytes_or_to_nothing_is_refused_not_retried() {
        let store = LocalClaimChecks::in_memory();
        let location = store
            .put("events/e/h.json", b"{\"order\":1}".to_vec())
            .await
            .unwrap();
        let message = |loc: &str, sha: &str| {
            serde_json::json!({"event_type": "OrderPlaced",
                "detail_ref": {"location": loc, "bytes": 11, "sha256": sha}})
            .to_string()
        };
        let body = message(&location, &"0".repeat(64));
        let tampered = resolve(&store, &body).await;
        assert!(
            matches!(tampered, Err(ClaimCheckError::Broken(_))),
            "{tampered:?}"
        );
        let body = message("memory:events/none.json", "");
        let gone = resolve(&store, &body).await;
        assert!(matches!(gone, Err(ClaimCheckError::Broken(_))), "{gone:?}");
        let plain = r#"{"event_type":"OrderPlaced","detail":{"order":1}}"#;
        assert_eq!(resolve(&store, plain).await.unwrap(), plain);
    }
}
