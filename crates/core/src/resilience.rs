//! The one retry policy every connector and step uses.
//!
//! - Each external failure is classified once, as retryable (429, 5xx,
//!   timeouts, connection errors, an open circuit) or permanent (4xx
//!   validation): [`ConnectorError::is_retryable`].
//! - A retryable failure does not retry in a loop: the SQS record goes back
//!   with its visibility timeout set by [`RetryPolicy::delay`] (the platform's
//!   `Retry-After` when it gave one, else exponential backoff by receive
//!   count), so a down system sees a trickle, not a storm.
//! - A permanent failure goes to the DLQ with its reason.
//! - A [`CircuitBreaker`] per external system stops calls after repeated
//!   failures and lets one probe through when its open period ends.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Why a call to an external system (ERP, loyalty, ecommerce) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// HTTP 429 or the vendor's request-limit error: retry after the hint.
    #[error("{system} throttled the call{}", retry_hint(.retry_after))]
    Throttled {
        system: &'static str,
        retry_after: Option<Duration>,
    },
    /// 5xx, timeout, connection refused or reset: retry later.
    #[error("{system} is unavailable: {reason}")]
    Unavailable {
        system: &'static str,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The circuit breaker is open: not called at all.
    #[error("{system} circuit is open after repeated failures{}", retry_hint(.retry_after))]
    CircuitOpen {
        system: &'static str,
        retry_after: Option<Duration>,
    },
    /// 4xx validation and other answers that will not change on retry.
    #[error("{system} refused the request (HTTP {status}): {reason}")]
    Rejected {
        system: &'static str,
        status: u16,
        reason: String,
    },
    /// The platform refused the credentials even after a renewal (HTTP 401,
    /// or the token endpoint's invalid_client / invalid_grant): an operator
    /// fixes the secret, so the record waits with backoff and the
    /// `ConnectorAuthFailing` alarm fires; it is never dead-lettered at once.
    #[error("{system} refused the credentials: {reason}")]
    Unauthorized {
        system: &'static str,
        reason: String,
    },
    /// Someone else changed or is creating the same record right now (HTTP
    /// 409/412, NetSuite's "record has been changed"): the next try reads
    /// it as it now stands.
    #[error("{system} reported a conflicting change: {reason}")]
    Conflict {
        system: &'static str,
        reason: String,
    },
    /// The answer could not be understood: a contract problem, not transient.
    #[error("{system} answered something unexpected: {reason}")]
    BadResponse {
        system: &'static str,
        reason: String,
    },
}

fn retry_hint(d: &Option<Duration>) -> String {
    d.map(|d| format!(" (retry after {} s)", d.as_secs()))
        .unwrap_or_default()
}

impl ConnectorError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConnectorError::Throttled { .. }
                | ConnectorError::Unavailable { .. }
                | ConnectorError::CircuitOpen { .. }
                | ConnectorError::Unauthorized { .. }
                | ConnectorError::Conflict { .. }
        )
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ConnectorError::Throttled { retry_after, .. }
            | ConnectorError::Unavailable { retry_after, .. }
            | ConnectorError::CircuitOpen { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether this failure counts against the system's health (throttling
    /// and refusals do not: the system is up and answering).
    pub fn counts_as_outage(&self) -> bool {
        matches!(self, ConnectorError::Unavailable { .. })
    }

    /// Classifies an HTTP status the way every connector must.
    pub fn from_status(
        system: &'static str,
        status: u16,
        retry_after: Option<Duration>,
        body: &str,
    ) -> Self {
        let reason = body.chars().take(500).collect::<String>();
        match status {
            429 => ConnectorError::Throttled {
                system,
                retry_after,
            },
            409 | 412 => ConnectorError::Conflict {
                system,
                reason: format!("HTTP {status}: {reason}"),
            },
            408 | 500..=599 => ConnectorError::Unavailable {
                system,
                reason: format!("HTTP {status}: {reason}"),
                retry_after,
            },
            _ => ConnectorError::Rejected {
                system,
                status,
                reason,
            },
        }
    }
}

/// Parses a `Retry-After` header given in seconds (HTTP-dates are rare from
/// these APIs and are treated as absent, falling back to backoff).
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// When a failed record is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failed receive.
    pub base: Duration,
    /// Longest delay between tries.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 30 s doubling to 15 min: with a maxReceiveCount of 24 a record keeps
    /// being retried for over four and a half hours before the DLQ.
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(30),
            max: Duration::from_secs(15 * 60),
        }
    }
}

/// SQS caps a visibility timeout at 12 hours.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

impl RetryPolicy {
    /// Delay before the next try, after `receive_count` receives (1 = first).
    /// A `Retry-After` hint wins when it is longer than the backoff.
    pub fn delay(&self, receive_count: u32, retry_after: Option<Duration>) -> Duration {
        let exp = receive_count.saturating_sub(1).min(20);
        let backoff = self.base.saturating_mul(1u32 << exp).min(self.max);
        retry_after
            .map_or(backoff, |hint| hint.max(backoff))
            .min(MAX_VISIBILITY)
    }

    /// Total time a record keeps being retried before `max_receive_count`
    /// sends it to the DLQ: what an outage must stay under.
    pub fn patience(&self, max_receive_count: u32) -> Duration {
        (1..max_receive_count).map(|n| self.delay(n, None)).sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BreakerState {
    Closed {
        failures: u32,
    },
    Open {
        until: DateTime<Utc>,
    },
    /// One probe is out; others wait.
    HalfOpen,
}

/// What kind of system a breaker guards, for the `CircuitOpened` metric's
/// `System` dimension (alarms name `erp`, not each ERP).
fn system_kind(system: &str) -> &'static str {
    let s = system.to_ascii_lowercase();
    if s.contains("loyalty") || s.contains("salesforce") {
        "loyalty"
    } else if s.contains("shopify") || s.contains("adobe") {
        "shop"
    } else {
        "erp"
    }
}

/// Stops calling a system that keeps failing; probes it once its open period ends.
#[derive(Debug)]
pub struct CircuitBreaker {
    system: &'static str,
    threshold: u32,
    open_for: Duration,
    state: Mutex<BreakerState>,
}

/// Outage failures in a row that open a system's breaker.
pub const BREAKER_THRESHOLD: u32 = 5;

/// How long an open breaker refuses calls before it lets one probe through.
pub const BREAKER_OPEN_FOR: Duration = Duration::from_secs(60);

impl CircuitBreaker {
    /// The breaker every caller of one system uses, named as the system's
    /// connector names itself (`netsuite`, `salesforce-loyalty`, …), so a
    /// circuit-open error and the `CircuitOpened` metric name the system
    /// whichever function or step saw it.
    pub fn for_system(system: &'static str) -> std::sync::Arc<Self> {
        Self::for_system_opening_for(system, BREAKER_OPEN_FOR)
    }

    /// [`CircuitBreaker::for_system`] with its own open period (checkout's
    /// balance read gives up on the loyalty platform for less long; the
    /// local app runs on a virtual clock).
    pub fn for_system_opening_for(
        system: &'static str,
        open_for: Duration,
    ) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self::new(system, BREAKER_THRESHOLD, open_for))
    }

    pub fn new(system: &'static str, threshold: u32, open_for: Duration) -> Self {
        CircuitBreaker {
            system,
            threshold: threshold.max(1),
            open_for,
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        // The state is a plain value; a poisoned lock still holds a valid one.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks to make a call now; an open circuit answers with the error to report.
    pub fn permit(&self, now: DateTime<Utc>) -> Result<(), ConnectorError> {
        let mut st = self.lock();
        match *st {
            BreakerState::Closed { .. } => Ok(()),
            BreakerState::Open { until } if now >= until => {
                *st = BreakerState::HalfOpen;
                Ok(())
            }
            BreakerState::Open { until } => Err(ConnectorError::CircuitOpen {
                system: self.system,
                retry_after: (until - now).to_std().ok(),
            }),
            BreakerState::HalfOpen => Err(ConnectorError::CircuitOpen {
                system: self.system,
                retry_after: Some(self.open_for),
            }),
        }
    }

    /// Reports a call's outcome.
    pub fn record(&self, now: DateTime<Utc>, result: Result<(), &ConnectorError>) {
        let mut st = self.lock();
        let outage = matches!(result, Err(e) if e.counts_as_outage());
        *st = match (*st, outage) {
            (_, false) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, true) if failures + 1 < self.threshold => {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            (state, true) => {
                if !matches!(state, BreakerState::Open { .. }) {
                    tracing::warn!(
                        system = self.system,
                        "circuit opened: calls stop for a while"
                    );
                    crate::observability::count(
                        "CircuitOpened",
                        ("System", system_kind(self.system)),
                    );
                }
                BreakerState::Open {
                    until: now
                        + chrono::Duration::from_std(self.open_for)
                            .unwrap_or(chrono::Duration::seconds(60)),
                }
            }
        };
    }

    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        matches!(*self.lock(), BreakerState::Open { until } if now < until)
    }
}

/// A connector with its system's circuit breaker: every call goes through
/// the breaker, refused at once while it is open.
pub struct Guarded<C: ?Sized> {
    pub connector: std::sync::Arc<C>,
    pub breaker: std::sync::Arc<CircuitBreaker>,
}

impl<C: ?Sized> Guarded<C> {
    pub fn new(connector: std::sync::Arc<C>, breaker: std::sync::Arc<CircuitBreaker>) -> Self {
        Guarded { connector, breaker }
    }

    /// One call through the breaker: refused at once while it is open,
    /// and its outcome recorded.
    pub async fn guard<T, Fut>(
        &self,
        now: DateTime<Utc>,
        f: impl FnOnce(std::sync::Arc<C>) -> Fut,
    ) -> Result<T, ConnectorError>
    where
        Fut: std::future::Future<Output = Result<T, ConnectorError>>,
    {
        self.breaker.permit(now)?;
        let result = f(self.connector.clone()).await;
        self.breaker.record(now, result.as_ref().map(|_| ()));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> ConnectorError {
        ConnectorError::Unavailable {
            system: "erp",
            reason: "HTTP 503".into(),
            retry_after: None,
        }
    }

    #[test]
    fn statuses_are_classified_once_for_every_connector() {
        let c = |s| ConnectorError::from_status("erp", s, None, "");
        assert!(c(429).is_retryable());
        assert!(c(500).is_retryable());
        assert!(c(503).is_retryable());
        assert!(c(408).is_retryable());
        assert!(!c(400).is_retryable());
        assert!(!c(404).is_retryable());
        assert!(!c(422).is_retryable());
        assert!(c(409).is_retryable(), "a concurrent change: try again");
        assert!(c(412).is_retryable(), "a stale etag: try again");
        assert!(!c(409).counts_as_outage());
        let t = ConnectorError::from_status("erp", 429, Some(Duration::from_secs(7)), "");
        assert_eq!(t.retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        assert_eq!(
            parse_retry_after(Some(" 12 ")),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(parse_retry_after(None), None);
    }

    #[test]
    fn backoff_doubles_to_a_cap_and_honours_longer_hints() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, None), Duration::from_secs(30));
        assert_eq!(p.delay(2, None), Duration::from_secs(60));
        assert_eq!(p.delay(3, None), Duration::from_secs(120));
        assert_eq!(p.delay(10, None), Duration::from_secs(900));
        assert_eq!(p.delay(1000, None), Duration::from_secs(900));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
        assert_eq!(
            p.delay(3, Some(Duration::from_secs(5))),
            Duration::from_secs(120)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(86_400))),
            MAX_VISIBILITY
        );
    }

    #[test]
    fn a_two_hour_outage_fits_in_the_retry_budget() {
        let p = RetryPolicy::default();
        assert!(
            p.patience(24) > Duration::from_secs(4 * 3600 + 1800),
            "{:?}",
            p.patience(24)
        );
        assert!(p.patience(24) > Duration::from_secs(2 * 3600));
    }

    #[test]
    fn breaker_opens_after_repeated_outages_and_probes_once() {
        let b = CircuitBreaker::new("erp", 3, Duration::from_secs(60));
        let t = Utc::now();
        for _ in 0..2 {
            assert!(b.permit(t).is_ok());
            b.record(t, Err(&down()));
        }
        assert!(!b.is_open(t));
        b.record(t, Err(&down()));
        assert!(b.is_open(t));
        let err = b.permit(t + chrono::Duration::seconds(10)).unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(50)));
        // After the open period one probe goes through; others wait for it.
        let later = t + chrono::Duration::seconds(61);
        assert!(b.permit(later).is_ok());
        assert!(b.permit(later).is_err());
        // A failed probe opens the circuit again; a good one closes it.
        b.record(later, Err(&down()));
        assert!(b.is_open(later));
        let much_later = later + chrono::Duration::seconds(61);
        assert!(b.permit(much_later).is_ok());
        b.record(much_later, Ok(()));
        assert!(b.permit(much_later).is_ok());
        assert!(!b.is_open(much_later));
    }

    #[test]
    fn throttling_and_refusals_do_not_open_the_breaker() {
        let b = CircuitBreaker::new("erp", 1, Duration::from_secs(60));
        let t = Utc::now();
        b.record(t, Err(&ConnectorError::from_status("erp", 429, None, "")));
        b.record(
            t,
            Err(&ConnectorError::from_status("erp", 400, None, "bad")),
        );
        assert!(!b.is_open(t));
    }
}
