//! The one idempotency mechanism every step uses: claim a key with a lease,
//! do the work, then complete (or release) the claim.
//!
//! - A claim is a conditional write: it succeeds when no live record exists,
//!   or when an earlier claim's lease has run out (its worker died).
//! - The lease ends when the worker's invocation does (the Lambda deadline),
//!   capped; it is never zero and never unbounded. With less time left than
//!   [`LeasePolicy::min_work`] the step refuses to start (retryable), instead of
//!   claiming work it cannot finish.
//! - Completed records keep a TTL and the payload's hash: the same key with a
//!   different payload is a conflict, never a silent success.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::saga::SagaUpdate;

/// The item a claim lives in. Steps of an order keep their claims in the
/// order's saga item, so a claim and a completion are one write each and the
/// saga state rides along; webhook deliveries have items of their own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClaimScope {
    /// One platform delivery (dedup of webhooks).
    Delivery(String),
    /// One order's saga ([`crate::model::OrderRef::key`]).
    Saga(String),
}

/// Names one unit of work: where it is recorded and which step it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    pub scope: ClaimScope,
    /// Lowercase step name (`intake`, `erp_post`, `loyalty_accrual`): also
    /// the prefix of the step's attributes in the item.
    pub step: &'static str,
}

impl IdempotencyKey {
    /// The intake claim of one platform delivery.
    pub fn delivery(delivery_key: impl Into<String>) -> Self {
        IdempotencyKey {
            scope: ClaimScope::Delivery(delivery_key.into()),
            step: "intake",
        }
    }

    /// A point-of-sale request's nonce, held until its timestamp is stale:
    /// a second claim of it while held is a replay.
    pub fn request_nonce(store: &str, nonce: &str) -> Self {
        IdempotencyKey {
            scope: ClaimScope::Delivery(format!("pos-nonce:{store}:{nonce}")),
            step: "nonce",
        }
    }

    /// A step's claim inside an order's saga.
    pub fn saga_step(saga_key: impl Into<String>, step: &'static str) -> Self {
        IdempotencyKey {
            scope: ClaimScope::Saga(saga_key.into()),
            step,
        }
    }

    /// Stable text form for errors and logs.
    pub fn describe(&self) -> String {
        match &self.scope {
            ClaimScope::Delivery(k) => format!("delivery {k} / {}", self.step),
            ClaimScope::Saga(k) => format!("saga {k} / {}", self.step),
        }
    }
}

/// An in-progress claim whose worker never came back is forgotten this long
/// after its lease ended (a retry could have taken it over as soon as the lease
/// ended; this only stops orphans from piling up).
pub const ORPHANED_CLAIM_TTL: Duration = Duration::days(1);

/// Hex SHA-256 of the payload the key was claimed for.
pub fn payload_hash(payload: &[u8]) -> String {
    let digest = Sha256::digest(payload);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub key: IdempotencyKey,
    pub payload_hash: String,
    pub now: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
}

/// Proof of a held claim: completion and release are conditional on its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub key: IdempotencyKey,
    pub token: String,
    pub payload_hash: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    /// This worker owns the work now.
    Claimed(Claim),
    /// Done before, with the same payload: answer as before, do nothing.
    AlreadyCompleted { result: Option<serde_json::Value> },
    /// Another worker holds a live lease: retry later.
    InProgress { lease_until: DateTime<Utc> },
    /// The key was used for a different payload: a conflict to report.
    /// `completed` tells whether that other payload's work is done.
    PayloadMismatch { completed: bool },
    /// The order was cancelled before this step of it started: it must not
    /// start now.
    OrderCancelled,
}

/// What [`crate::ports::StateStore::record_first`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordOutcome {
    /// Recorded as done by this call: the work that follows is this
    /// caller's.
    Recorded,
    /// The key was claimed or recorded before: what its record says (never
    /// `Claimed`).
    Existing(ClaimOutcome),
}

#[derive(Debug, Clone)]
pub struct Completion {
    pub result: Option<serde_json::Value>,
    pub now: DateTime<Utc>,
    /// When the completed record may be forgotten (DynamoDB TTL).
    pub expires_at: DateTime<Utc>,
    /// Saga progress recorded in the same request as the completion.
    pub saga: Option<SagaUpdate>,
}

/// How long a claim may be held.
#[derive(Debug, Clone, Copy)]
pub struct LeasePolicy {
    /// Below this much remaining time a step does not start.
    pub min_work: Duration,
    /// Upper bound on a lease, whatever the deadline.
    pub max_lease: Duration,
    /// Lease when the runtime gives no deadline (local runs).
    pub default_lease: Duration,
}

impl Default for LeasePolicy {
    fn default() -> Self {
        LeasePolicy {
            min_work: Duration::milliseconds(500),
            max_lease: Duration::minutes(15),
            default_lease: Duration::seconds(30),
        }
    }
}

/// The invocation has too little time left to start a step. Retryable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("only {remaining_ms} ms left before the deadline; not starting")]
pub struct NoTimeLeft {
    pub remaining_ms: i64,
}

impl LeasePolicy {
    /// The lease for a claim made at `now` by an invocation ending at `deadline`.
    pub fn lease_until(
        &self,
        now: DateTime<Utc>,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<DateTime<Utc>, NoTimeLeft> {
        let Some(deadline) = deadline else {
            return Ok(now + self.default_lease);
        };
        let remaining = deadline - now;
        if remaining < self.min_work {
            return Err(NoTimeLeft {
                remaining_ms: remaining.num_milliseconds(),
            });
        }
        Ok(now + remaining.min(self.max_lease))
    }
}

/// Turns a business key into an external id every system accepts
/// (`[A-Za-z0-9_-]`, at most 35 characters: Business Central's
/// externalDocumentNumber), deterministic and collision-free: the first and
/// last parts stay readable (platform and the platform's id, shortened if
/// needed), a hash of every part keeps keys of different shops (or texts
/// that clean to the same) apart.
pub fn external_id(prefix: &str, parts: &[&str]) -> String {
    const MAX: usize = 35;
    let clean = |p: &str| -> String {
        p.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let hash = &crate::idempotency::payload_hash(parts.join("\n").as_bytes())[..8];
    let shown: Vec<String> = match parts {
        [] => Vec::new(),
        [only] => vec![clean(only)],
        [first, .., last] => vec![clean(first), clean(last)],
    };
    let mut id = prefix.to_string();
    for s in shown {
        id.push('-');
        id.push_str(&s);
    }
    id.truncate(MAX - hash.len() - 1);
    format!("{id}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn lease_ends_at_the_invocation_deadline() {
        let p = LeasePolicy::default();
        let deadline = t0() + Duration::seconds(4);
        assert_eq!(p.lease_until(t0(), Some(deadline)).unwrap(), deadline);
    }

    #[test]
    fn lease_is_capped_when_the_deadline_is_far() {
        let p = LeasePolicy::default();
        let deadline = t0() + Duration::hours(3);
        assert_eq!(
            p.lease_until(t0(), Some(deadline)).unwrap(),
            t0() + Duration::minutes(15)
        );
    }

    #[test]
    fn no_claim_is_made_with_no_time_left() {
        let p = LeasePolicy::default();
        for left_ms in [-1000, 0, 499] {
            let deadline = t0() + Duration::milliseconds(left_ms);
            assert_eq!(
                p.lease_until(t0(), Some(deadline)),
                Err(NoTimeLeft {
                    remaining_ms: left_ms
                })
            );
        }
    }

    #[test]
    fn local_runs_without_a_deadline_get_a_bounded_lease() {
        let p = LeasePolicy::default();
        assert_eq!(
            p.lease_until(t0(), None).unwrap(),
            t0() + Duration::seconds(30)
        );
    }

    #[test]
    fn payload_hash_is_stable_and_distinguishes_payloads() {
        assert_eq!(payload_hash(b"abc"), payload_hash(b"abc"));
        assert_ne!(payload_hash(b"abc"), payload_hash(b"abd"));
        assert_eq!(payload_hash(b"").len(), 64);
    }

    #[test]
    fn external_ids_are_legal_deterministic_and_distinct() {
        let a = external_id("so", &["shopify", "acme.myshopify.com", "5872301948123"]);
        assert_eq!(
            a,
            external_id("so", &["shopify", "acme.myshopify.com", "5872301948123"])
        );
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{a}"
        );
        assert!(a.len() <= 35, "{a}");
        assert!(a.starts_with("so-shopify-5872301948123-"), "{a}");
        // "a.b" and "a_b" clean to the same text but differ by hash.
        assert_ne!(external_id("so", &["a.b"]), external_id("so", &["a_b"]));
    }
}
