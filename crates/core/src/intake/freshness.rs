//! Replay protection at the intake: a delivery captured on the wire and sent
//! again later must not be taken as new.
//!
//! - **Shopify** signs only the body. Its `X-Shopify-Triggered-At` header
//!   (when the event fired; retries keep it) is checked against
//!   [`ReplayPolicy::shopify_max_age`]: Shopify retries for 4 hours, so an
//!   older delivery is not Shopify's. Shopify's documented duplicates (the
//!   same `X-Shopify-Event-Id`) are answered 200 as duplicates by the
//!   delivery record, and publish the recorded event (one event id) again
//!   within a day. Neither header is signed, so a
//!   replay with forged headers can reach the record under a new id; what it
//!   carries is a body already taken, which the steps' own idempotency (one
//!   sales order per order, one accrual, one reversal per refund) absorbs.
//! - **Point of sale** is retailflow's own API, so its signature covers a
//!   timestamp and a nonce too ([`crate::mappers::pos::signing_input`]): a
//!   request older than [`ReplayPolicy::pos_max_age`] or whose nonce was
//!   already used is refused 401. A client retrying after a lost answer signs
//!   again with a fresh timestamp and nonce; the return id keeps the retry
//!   idempotent.
//! - **Adobe Commerce** signs the whole body, and the body carries the
//!   event's `time` (CloudEvents): a replayed body cannot be re-dated
//!   without breaking its signature, so an event older than
//!   [`ReplayPolicy::adobe_max_age`] is refused. I/O Events retries a
//!   delivery for 24 hours and keeps its `time`; the default leaves room
//!   for Commerce's own cron and send retries and for our 503s.

use chrono::{DateTime, Duration, Utc};

use crate::config::ConfigError;
use crate::mappers::pos;

/// How old a delivery may be, and whether point-of-sale requests must be stamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayPolicy {
    /// Older `X-Shopify-Triggered-At` values are refused. Shopify retries
    /// for 4 hours; a day leaves room for a delivery stuck behind our own 503s.
    pub shopify_max_age: Duration,
    /// Older Adobe I/O Events `time` values are refused.
    pub adobe_max_age: Duration,
    /// Older point-of-sale timestamps are refused (the nonce is remembered
    /// this long, so a nonce can never be used twice).
    pub pos_max_age: Duration,
    /// How far in the future a timestamp may be (the sender's clock runs fast).
    pub max_clock_skew: Duration,
    /// When false, a point-of-sale request without `X-Retailflow-Timestamp`
    /// is still taken if its body signature verifies (tills not yet
    /// upgraded); a stamped request's signature never verifies without its
    /// stamp, so stamps cannot be stripped. Set true once every till stamps.
    pub pos_require_timestamp: bool,
}

impl Default for ReplayPolicy {
    fn default() -> Self {
        ReplayPolicy {
            shopify_max_age: Duration::hours(24),
            adobe_max_age: Duration::hours(48),
            pos_max_age: Duration::minutes(5),
            max_clock_skew: Duration::minutes(5),
            pos_require_timestamp: false,
        }
    }
}

/// Why a delivery was refused as a replay. Never retryable; answered 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayRefusal {
    #[error("{header} is not {expected}")]
    Unreadable {
        header: &'static str,
        expected: &'static str,
    },
    #[error("missing {0} (point-of-sale requests are signed with a timestamp and a nonce)")]
    MissingStamp(&'static str),
    #[error("stale delivery: {header} is {at}, more than {max_age_secs} s before it was received at {received}")]
    Stale {
        header: &'static str,
        at: DateTime<Utc>,
        received: DateTime<Utc>,
        max_age_secs: i64,
    },
    #[error("{header} is {at}, in the future of {received} by more than the allowed clock skew")]
    FromTheFuture {
        header: &'static str,
        at: DateTime<Utc>,
        received: DateTime<Utc>,
    },
    #[error("nonce already used: a point-of-sale request is signed anew for every attempt")]
    NonceReused,
}

/// The `X-Retailflow-Timestamp` / `X-Retailflow-Nonce` pair of a point-of-sale request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosStamp {
    /// Unix seconds, as sent (signed as sent).
    pub timestamp: String,
    pub nonce: String,
}

impl PosStamp {
    /// Reads the stamp headers: `None` when neither is present (an unstamped
    /// till), an error when only one is or either is malformed.
    pub fn from_headers(
        header: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<PosStamp>, ReplayRefusal> {
        let timestamp = header(pos::TIMESTAMP_HEADER).map(|v| v.trim().to_string());
        let nonce = header(pos::NONCE_HEADER).map(|v| v.trim().to_string());
        match (timestamp, nonce) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(ReplayRefusal::MissingStamp("X-Retailflow-Timestamp")),
            (Some(_), None) => Err(ReplayRefusal::MissingStamp("X-Retailflow-Nonce")),
            (Some(timestamp), Some(nonce)) => {
                if timestamp.is_empty()
                    || timestamp.len() > 12
                    || !timestamp.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(ReplayRefusal::Unreadable {
                        header: "X-Retailflow-Timestamp",
                        expected: "a Unix time in seconds",
                    });
                }
                let nonce_ok = (16..=128).contains(&nonce.len())
                    && nonce
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !nonce_ok {
                    return Err(ReplayRefusal::Unreadable {
                        header: "X-Retailflow-Nonce",
                        expected: "16 to 128 characters of A-Z, a-z, 0-9, '-' or '_'",
                    });
                }
                Ok(Some(PosStamp { timestamp, nonce }))
            }
        }
    }

    /// The signed time (checked readable by [`Self::from_headers`]).
    pub fn at(&self) -> Result<DateTime<Utc>, ReplayRefusal> {
        self.timestamp
            .parse::<i64>()
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .ok_or(ReplayRefusal::Unreadable {
                header: "X-Retailflow-Timestamp",
                expected: "a Unix time in seconds",
            })
    }
}

impl ReplayPolicy {
    /// Reads `RETAILFLOW_SHOPIFY_MAX_DELIVERY_AGE_SECS`,
    /// `RETAILFLOW_ADOBE_MAX_DELIVERY_AGE_SECS`,
    /// `RETAILFLOW_POS_MAX_REQUEST_AGE_SECS` and
    /// `RETAILFLOW_POS_REQUIRE_TIMESTAMP` (`true`/`false`); unset keeps the default.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut p = ReplayPolicy::default();
        let secs = |name: &str| -> Result<Option<Duration>, ConfigError> {
            match var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
            {
                None => Ok(None),
                Some(v) => match v.parse::<i64>() {
                    Ok(s) if s > 0 && s <= 30 * 86_400 => Ok(Some(Duration::seconds(s))),
                    _ => Err(ConfigError::BadSetting(format!(
                        "{name} must be a number of seconds from 1 to 2592000, not {v:?}"
                    ))),
                },
            }
        };
        if let Some(d) = secs("RETAILFLOW_SHOPIFY_MAX_DELIVERY_AGE_SECS")? {
            p.shopify_max_age = d;
        }
        if let Some(d) = secs("RETAILFLOW_ADOBE_MAX_DELIVERY_AGE_SECS")? {
            p.adobe_max_age = d;
        }
        if let Some(d) = secs("RETAILFLOW_POS_MAX_REQUEST_AGE_SECS")? {
            p.pos_max_age = d;
        }
        match var("RETAILFLOW_POS_REQUIRE_TIMESTAMP")
            .as_deref()
            .map(str::trim)
        {
            None | Some("") => {}
            Some("true") => p.pos_require_timestamp = true,
            Some("false") => p.pos_require_timestamp = false,
            Some(other) => {
                return Err(ConfigError::BadSetting(format!(
                    "RETAILFLOW_POS_REQUIRE_TIMESTAMP must be true or false, not {other:?}"
                )))
            }
        }
        Ok(p)
    }

    /// Checks Shopify's `X-Shopify-Triggered-At` (absent: nothing to check).
    pub fn check_shopify(
        &self,
        triggered_at: Option<&str>,
        received: DateTime<Utc>,
    ) -> Result<(), ReplayRefusal> {
        let Some(v) = triggered_at.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(());
        };
        let at = DateTime::parse_from_rfc3339(v)
            .map_err(|_| ReplayRefusal::Unreadable {
                header: "X-Shopify-Triggered-At",
                expected: "an RFC 3339 time",
            })?
            .with_timezone(&Utc);
        self.check_age("X-Shopify-Triggered-At", at, received, self.shopify_max_age)
    }

    /// Checks an Adobe event's `time`, from its signed body (absent: nothing
    /// to check; the caller counts it).
    pub fn check_adobe(
        &self,
        time: Option<&str>,
        received: DateTime<Utc>,
    ) -> Result<(), ReplayRefusal> {
        let Some(v) = time.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(());
        };
        let at = DateTime::parse_from_rfc3339(v)
            .map_err(|_| ReplayRefusal::Unreadable {
                header: "the event's time",
                expected: "an RFC 3339 time",
            })?
            .with_timezone(&Utc);
        self.check_age("the event's time", at, received, self.adobe_max_age)
    }

    /// Checks a point-of-sale stamp's age; returns when its nonce may be forgotten.
    pub fn check_pos(
        &self,
        stamp: &PosStamp,
        received: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, ReplayRefusal> {
        let at = stamp.at()?;
        self.check_age("X-Retailflow-Timestamp", at, received, self.pos_max_age)?;
        // Until then the timestamp itself is fresh; after, it is refused as stale.
        Ok(at + self.pos_max_age + Duration::seconds(1))
    }

    fn check_age(
        &self,
        header: &'static str,
        at: DateTime<Utc>,
        received: DateTime<Utc>,
        max_age: Duration,
    ) -> Result<(), ReplayRefusal> {
        if at > received + self.max_clock_skew {
            return Err(ReplayRefusal::FromTheFuture {
                header,
                at,
                received,
            });
        }
        if received - at > max_age {
            return Err(ReplayRefusal::Stale {
                header,
                at,
                received,
                max_age_secs: max_age.num_seconds(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_shopify_delivery_within_the_retry_window_is_fresh_and_an_older_one_is_stale() {
        let p = ReplayPolicy::default();
        let now = t("2026-11-26T12:00:00Z");
        assert_eq!(p.check_shopify(None, now), Ok(()));
        assert_eq!(
            p.check_shopify(Some("2026-11-26T08:00:00.877041743Z"), now),
            Ok(())
        );
        assert!(matches!(
            p.check_shopify(Some("2026-11-25T11:59:59Z"), now),
            Err(ReplayRefusal::Stale {
                max_age_secs: 86_400,
                ..
            })
        ));
        assert!(matches!(
            p.check_shopify(Some("2026-11-26T12:06:00Z"), now),
            Err(ReplayRefusal::FromTheFuture { .. })
        ));
        assert!(matches!(
            p.check_shopify(Some("yesterday"), now),
            Err(ReplayRefusal::Unreadable { .. })
        ));
    }

    #[test]
    fn a_pos_stamp_needs_both_headers_and_a_readable_nonce() {
        let h = |ts: Option<&str>, n: Option<&str>| {
            let (ts, n) = (ts.map(str::to_string), n.map(str::to_string));
            PosStamp::from_headers(move |name| match name {
                pos::TIMESTAMP_HEADER => ts.clone(),
                pos::NONCE_HEADER => n.clone(),
                _ => None,
            })
        };
        assert_eq!(h(None, None), Ok(None));
        assert!(h(Some("1795694400"), None).is_err());
        assert!(h(None, Some("0123456789abcdef")).is_err());
        assert!(h(Some("-5"), Some("0123456789abcdef")).is_err());
        assert!(h(Some("1795694400"), Some("short")).is_err());
        assert!(h(Some("1795694400"), Some("0123456789abcdef\n")).is_ok());
        assert!(h(Some("1795694400"), Some("0123456789abcde f")).is_err());
        let stamp = h(Some("1795694400"), Some("0123456789abcdef"))
            .unwrap()
            .unwrap();
        let p = ReplayPolicy::default();
        let now = t("2026-11-26T12:00:00Z");
        assert_eq!(stamp.at().unwrap(), now);
        assert_eq!(
            p.check_pos(&stamp, now + Duration::minutes(5)).unwrap(),
            now + Duration::minutes(5) + Duration::seconds(1)
        );
        assert!(matches!(
            p.check_pos(&stamp, now + Duration::minutes(5) + Duration::seconds(1)),
            Err(ReplayRefusal::Stale { .. })
        ));
    }

    #[test]
    fn the_policy_reads_its_settings_and_refuses_nonsense() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            ReplayPolicy::from_env(env(&[])).unwrap(),
            ReplayPolicy::default()
        );
        let p = ReplayPolicy::from_env(env(&[
            ("RETAILFLOW_SHOPIFY_MAX_DELIVERY_AGE_SECS", "21600"),
            ("RETAILFLOW_POS_MAX_REQUEST_AGE_SECS", "60"),
            ("RETAILFLOW_POS_REQUIRE_TIMESTAMP", "true"),
        ]))
        .unwrap();
        assert_eq!(p.shopify_max_age, Duration::hours(6));
        assert_eq!(p.pos_max_age, Duration::minutes(1));
        assert!(p.pos_require_timestamp);
        assert!(matches!(
            ReplayPolicy::from_env(env(&[("RETAILFLOW_POS_MAX_REQUEST_AGE_SECS", "0")])),
            Err(ConfigError::BadSetting(m)) if m.contains("RETAILFLOW_POS_MAX_REQUEST_AGE_SECS")
        ));
        assert!(matches!(
            ReplayPolicy::from_env(env(&[("RETAILFLOW_POS_REQUIRE_TIMESTAMP", "yes")])),
            Err(ConfigError::BadSetting(m)) if m.contains("true or false")
        ));
    }
}
