//! The one credentials cache: the connector secret document, read again
//! after a short TTL, and the access tokens made from it, each cached per
//! container and renewed before it expires.
//!
//! Why both live here, free of HTTP: every connector (ERP, loyalty, shops)
//! and checkout's balance read share one rule set, and the rules are what
//! production tests: a token dies within the hour (NetSuite, Entra) or by
//! org policy (Salesforce), an operator rotates a credential in Secrets
//! Manager and expects warm containers to follow, and a batch of records
//! running at once must cause one token request, not one each.
//!
//! - [`ConnectorSecrets`] re-reads the document after [`SECRET_TTL`], and at
//!   once after the platform refused a credential (at most every
//!   [`REREAD_AFTER_REFUSAL`]). A failed re-read keeps the document it has:
//!   a Secrets Manager outage never stops a warm container.
//! - [`TokenCache`] holds one token. Callers running at once wait on one
//!   refresh; a token is renewed once less than a fifth of its life (at
//!   most five minutes) is left; a refused token is dropped only if it is
//!   still the one cached, so a burst of 401s refreshes once. A rotated
//!   credential (another fingerprint) never reuses the old one's token.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::ConnectorSecretDocument;
use crate::ports::secrets::{SecretSource, SecretUnreadable};
use crate::resilience::ConnectorError;
use crate::webhook::Secret;

/// Where credentials read the time: the wall clock on AWS, the local app's
/// virtual clock in process (the simulators judge expiry on the same one).
pub type WallClock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> WallClock {
    Arc::new(Utc::now)
}

/// How long a read secret document is trusted before it is read again, so
/// a rotation reaches warm containers within this time.
pub const SECRET_TTL: Duration = Duration::from_secs(5 * 60);

/// The least time between two re-reads caused by refusals: a credential
/// that stays wrong for hours does not hammer Secrets Manager.
pub const REREAD_AFTER_REFUSAL: Duration = Duration::from_secs(30);

/// A secret document held in memory: the local app's, and tests' (which
/// rotate it with [`FixedSecret::set`]).
pub struct FixedSecret(std::sync::Mutex<String>);

impl FixedSecret {
    pub fn new(json: impl Into<String>) -> Self {
        FixedSecret(std::sync::Mutex::new(json.into()))
    }

    /// What an operator's `put-secret-value` does.
    pub fn set(&self, json: impl Into<String>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = json.into();
    }
}

#[async_trait]
impl SecretSource for FixedSecret {
    async fn read(&self) -> Result<String, SecretUnreadable> {
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

struct Held {
    read_at: DateTime<Utc>,
    /// The last read tried, whether it worked or not.
    tried_at: DateTime<Utc>,
    doc: Arc<ConnectorSecretDocument>,
    /// A refusal asked for a re-read on the next use.
    stale: bool,
}

/// The connector secret document, shared by every connector of a container.
pub struct ConnectorSecrets {
    source: Arc<dyn SecretSource>,
    clock: WallClock,
    ttl: Duration,
    held: tokio::sync::Mutex<Option<Held>>,
}

impl ConnectorSecrets {
    pub fn new(source: Arc<dyn SecretSource>, clock: WallClock) -> Self {
        ConnectorSecrets {
            source,
            clock,
            ttl: SECRET_TTL,
            held: tokio::sync::Mutex::new(None),
        }
    }

    /// A document that never changes (tests, one-off commands).
    pub fn fixed(doc: &ConnectorSecretDocument) -> Arc<Self> {
        let json = serde_json::to_string(doc).unwrap_or_default();
        Arc::new(Self::new(Arc::new(FixedSecret::new(json)), system_clock()))
    }

    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn clock(&self) -> &WallClock {
        &self.clock
    }

    /// The document, read again when it is older than the TTL or a refusal
    /// asked for it. Unreadable with nothing held: a retryable error, so the
    /// records wait instead of dying (a Secrets Manager outage on a cold
    /// container).
    pub async fn current(&self) -> Result<Arc<ConnectorSecretDocument>, ConnectorError> {
        let now = (self.clock)();
        let mut held = self.held.lock().await;
        if let Some(h) = held.as_ref() {
            let age = (now - h.read_at).to_std().unwrap_or_default();
            let tried = (now - h.tried_at).to_std().unwrap_or_default();
            let due = h.stale || age >= self.ttl;
            // A failed re-read is not tried again at once: an outage of
            // Secrets Manager is not hammered, and the held document serves.
            if !due || tried < REREAD_AFTER_REFUSAL {
                return Ok(h.doc.clone());
            }
        }
        let read = match self.source.read().await {
            Ok(json) => {
                ConnectorSecretDocument::parse(&json).map_err(|e| format!("unusable document: {e}"))
            }
            Err(e) => Err(e.to_string()),
        };
        match (read, held.as_mut()) {
            (Ok(doc), _) => {
                let doc = Arc::new(doc);
                *held = Some(Held {
                    read_at: now,
                    tried_at: now,
                    doc: doc.clone(),
                    stale: false,
                });
                Ok(doc)
            }
            (Err(reason), Some(h)) => {
                tracing::warn!(%reason, "connector secret not re-read; keeping the one held");
                h.tried_at = now;
                Ok(h.doc.clone())
            }
            (Err(reason), None) => Err(ConnectorError::Unavailable {
                system: "connector-secret",
                reason,
                retry_after: Some(REREAD_AFTER_REFUSAL),
            }),
        }
    }

    /// A platform refused a credential from the document: read it again on
    /// the next use (an operator may have rotated it), unless it was read
    /// moments ago.
    pub async fn refused(&self) {
        let now = (self.clock)();
        if let Some(h) = self.held.lock().await.as_mut() {
            let tried = (now - h.tried_at).to_std().unwrap_or_default();
            if tried >= REREAD_AFTER_REFUSAL {
                h.stale = true;
            }
        }
    }
}

/// An access token and when the platform said it stops working.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub value: Secret,
    /// `None` when the platform does not say (Salesforce): used until refused.
    pub expires_at: Option<DateTime<Utc>>,
}

struct CachedToken {
    fingerprint: String,
    token: AccessToken,
    renew_at: Option<DateTime<Utc>>,
}

/// How long a failed token request answers for the callers after it:
/// records running at once share one failure instead of queueing one
/// token request each behind the lock.
const FAILURE_SHARED_FOR: chrono::Duration = chrono::Duration::seconds(5);

#[derive(Default)]
struct TokenSlot {
    cached: Option<CachedToken>,
    /// The last failed request: when, for which credential, and why.
    failed: Option<(DateTime<Utc>, String, ConnectorError)>,
}

/// One platform account's access token, shared by every call of a container.
pub struct TokenCache {
    clock: WallClock,
    slot: tokio::sync::Mutex<TokenSlot>,
}

impl TokenCache {
    pub fn new(clock: WallClock) -> Self {
        TokenCache {
            clock,
            slot: tokio::sync::Mutex::new(TokenSlot::default()),
        }
    }

    /// The cached token for the credential `fingerprint` names, or a new one
    /// from `fetch`. Callers arriving during a fetch wait for its token.
    pub async fn token<F, Fut>(&self, fingerprint: &str, fetch: F) -> Result<Secret, ConnectorError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<AccessToken, ConnectorError>>,
    {
        let mut slot = self.slot.lock().await;
        let now = (self.clock)();
        if let Some(c) = slot.cached.as_ref() {
            let fresh = c.renew_at.is_none_or(|at| now < at);
            if c.fingerprint == fingerprint && fresh {
                return Ok(c.token.value.clone());
            }
        }
        if let Some((at, failed_for, e)) = &slot.failed {
            if failed_for == fingerprint && now - *at < FAILURE_SHARED_FOR {
                return Err(e.clone());
            }
        }
        let token = match fetch().await {
            Ok(t) => t,
            Err(e) => {
                slot.failed = Some((now, fingerprint.to_string(), e.clone()));
                return Err(e);
            }
        };
        let renew_at = token.expires_at.map(|exp| renew_time(now, exp));
        let value = token.value.clone();
        *slot = TokenSlot {
            cached: Some(CachedToken {
                fingerprint: fingerprint.to_string(),
                token,
                renew_at,
            }),
            failed: None,
        };
        Ok(value)
    }

    /// The platform refused `token`: the next caller fetches a new one. A
    /// token already replaced is left alone (another caller renewed it).
    pub async fn refused(&self, token: &Secret) {
        let mut slot = self.slot.lock().await;
        if slot
            .cached
            .as_ref()
            .is_some_and(|c| &c.token.value == token)
        {
            slot.cached = None;
        }
    }
}

/// When to renew a token issued `now` that expires at `expires_at`: once a
/// fifth of its life, at most five minutes, is left.
fn renew_time(now: DateTime<Utc>, expires_at: DateTime<Utc>) -> DateTime<Utc> {
    let life = expires_at - now;
    let margin = (life / 5).min(chrono::Duration::minutes(5));
    expires_at - margin.max(chrono::Duration::zero())
}

/// A stable, non-secret name for a credential: a hash of its parts, so a
/// rotated credential is told apart without keeping its text twice.
pub fn fingerprint(parts: &[&str]) -> String {
    crate::idempotency::payload_hash(parts.join("\u{1f}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    fn clock_at(t: Arc<Mutex<DateTime<Utc>>>) -> WallClock {
        Arc::new(move || *t.lock().unwrap())
    }

    fn token(value: &str, now: DateTime<Utc>, life_secs: i64) -> AccessToken {
        AccessToken {
            value: Secret::new(value),
            expires_at: Some(now + chrono::Duration::seconds(life_secs)),
        }
    }

    #[tokio::test]
    async fn records_running_at_once_share_one_refresh() {
        let now = Arc::new(Mutex::new(Utc::now()));
        let cache = Arc::new(TokenCache::new(clock_at(now.clone())));
        let fetches = Arc::new(AtomicU32::new(0));
        let t0 = *now.lock().unwrap();
        let calls = (0..20).map(|_| {
            let (cache, fetches) = (cache.clone(), fetches.clone());
            async move {
                cache
                    .token("cred", || async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(token("t1", t0, 3600))
                    })
                    .await
                    .unwrap()
            }
        });
        let got = futures::future::join_all(calls).await;
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert!(got.iter().all(|t| t.expose() == "t1"));
    }

    #[tokio::test]
    async fn a_token_is_renewed_before_it_expires_not_after() {
        let now = Arc::new(Mutex::new(Utc::now()));
        let cache = TokenCache::new(clock_at(now.clone()));
        let t0 = *now.lock().unwrap();
        let fetch = |v: &'static str| {
            let at = *now.lock().unwrap();
            move || async move { Ok(token(v, at, 3600)) }
        };
        assert_eq!(cache.token("c", fetch("t1")).await.unwrap().expose(), "t1");
        // 54 minutes in: more than five minutes left, still the same token.
        *now.lock().unwrap() = t0 + chrono::Duration::minutes(54);
        assert_eq!(cache.token("c", fetch("t2")).await.unwrap().expose(), "t1");
        // 56 minutes in: four minutes left, renewed while still valid.
        *now.lock().unwrap() = t0 + chrono::Duration::minutes(56);
        assert_eq!(cache.token("c", fetch("t3")).await.unwrap().expose(), "t3");
    }

    #[tokio::test]
    async fn a_refused_token_is_dropped_once_however_many_calls_saw_it_refused() {
        let now = Arc::new(Mutex::new(Utc::now()));
        let cache = TokenCache::new(clock_at(now.clone()));
        let t0 = *now.lock().unwrap();
        let old = cache
            .token("c", || async { Ok(token("old", t0, 3600)) })
            .await
            .unwrap();
        cache.refused(&old).await;
        let new = cache
            .token("c", || async { Ok(token("new", t0, 3600)) })
            .await
            .unwrap();
        assert_eq!(new.expose(), "new");
        // A second call that also saw "old" refused leaves "new" in place.
        cache.refused(&old).await;
        let again = cache
            .token("c", || async { Ok(token("newer", t0, 3600)) })
            .await
            .unwrap();
        assert_eq!(again.expose(), "new");
    }

    #[tokio::test]
    async fn a_rotated_credential_never_reuses_the_old_credentials_token() {
        let t0 = Utc::now();
        let cache = TokenCache::new(Arc::new(move || t0));
        cache
            .token("old-cred", || async { Ok(token("t-old", t0, 3600)) })
            .await
            .unwrap();
        let t = cache
            .token("new-cred", || async { Ok(token("t-new", t0, 3600)) })
            .await
            .unwrap();
        assert_eq!(t.expose(), "t-new");
    }

    fn doc(ns_account: &str) -> String {
        serde_json::json!({"business_central": {"tenant_id": ns_account,
            "client_id": "c", "client_secret": "s"}})
        .to_string()
    }

    #[tokio::test]
    async fn a_rotated_secret_reaches_a_warm_container_within_the_ttl() {
        let now = Arc::new(Mutex::new(Utc::now()));
        let source = Arc::new(FixedSecret::new(doc("before")));
        let secrets = ConnectorSecrets::new(source.clone(), clock_at(now.clone()));
        let tenant =
            |d: &ConnectorSecretDocument| d.business_central.as_ref().map(|b| b.tenant_id.clone());
        assert_eq!(tenant(&secrets.current().await.unwrap()).unwrap(), "before");
        source.set(doc("after"));
        *now.lock().unwrap() += chrono::Duration::minutes(4);
        assert_eq!(tenant(&secrets.current().await.unwrap()).unwrap(), "before");
        *now.lock().unwrap() += chrono::Duration::minutes(2);
        assert_eq!(tenant(&secrets.current().await.unwrap()).unwrap(), "after");
    }

    #[tokio::test]
    async fn a_refusal_rereads_the_secret_at_once() {
        let now = Arc::new(Mutex::new(Utc::now()));
        let source = Arc::new(FixedSecret::new(doc("before")));
        let secrets = ConnectorSecrets::new(source.clone(), clock_at(now.clone()));
        secrets.current().await.unwrap();
        source.set(doc("after"));
        *now.lock().unwrap() += chrono::Duration::minutes(1);
        secrets.refused().await;
        let d = secrets.current().await.unwrap();
        assert_eq!(d.business_central.as_ref().unwrap().tenant_id, "after");
    }

    struct Down;
    #[async_trait]
    impl SecretSource for Down {
        async fn read(&self) -> Result<String, SecretUnreadable> {
            Err(SecretUnreadable("secrets manager is down".into()))
        }
    }

    #[tokio::test]
    async fn an_unreadable_secret_is_a_retryable_error_and_never_drops_what_is_held() {
        let cold = ConnectorSecrets::new(Arc::new(Down), system_clock());
        let err = cold.current().await.unwrap_err();
        assert!(err.is_retryable(), "{err}");

        struct Flaky(AtomicU32);
        #[async_trait]
        impl SecretSource for Flaky {
            async fn read(&self) -> Result<String, SecretUnreadable> {
                match self.0.fetch_add(1, Ordering::SeqCst) {
                    0 => Ok(doc("held")),
                    _ => Err(SecretUnreadable("down".into())),
                }
            }
        }
        let now = Arc::new(Mutex::new(Utc::now()));
        let warm = ConnectorSecrets::new(Arc::new(Flaky(AtomicU32::new(0))), clock_at(now.clone()));
        warm.current().await.unwrap();
        *now.lock().unwrap() += chrono::Duration::hours(2);
        let d = warm.current().await.unwrap();
        assert_eq!(d.business_central.as_ref().unwrap().tenant_id, "held");
    }
}
