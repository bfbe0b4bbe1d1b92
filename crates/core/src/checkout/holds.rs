//! Open holds per owner: how many checkouts one customer (or one guest
//! session) may hold stock under at once, so made-up checkout ids cannot
//! hold a flash sale's stock.
//!
//! An owner is whoever authentication vouched for
//! ([`crate::checkout::auth::Caller::hold_owner`]): a Shopify customer, a
//! Shopify guest session, a storefront's customer. Each of its checkouts
//! counts until its hold would expire; validating the same checkout again
//! renews its entry and takes no new place. A checkout whose cart was then
//! refused gives its place back. A hold that ends sooner (its order placed,
//! or released) keeps its place until its expiry: the cap errs on the side
//! of holding less, by at most one hold's lifetime.
//!
//! The port is [`OpenHolds`](crate::ports::holds::OpenHolds);
//! [`InProcessOpenHolds`](crate::adapters::in_process::InProcessOpenHolds)
//! is the local app's and the tests' twin; `retailflow-aws`'s
//! `DynamoDbOpenHolds` keeps one small item per owner (`OPENHOLDS#<owner>`),
//! replaced with a condition on its version.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::ports::holds::Admission;

/// The live entries of an owner after `now`, and whether `checkout_id` is
/// among them: the one rule both adapters apply.
pub fn decide(
    entries: &mut BTreeMap<String, DateTime<Utc>>,
    checkout_id: &str,
    until: DateTime<Utc>,
    max: u32,
    now: DateTime<Utc>,
) -> Admission {
    entries.retain(|_, expiry| *expiry > now);
    if let Some(expiry) = entries.get_mut(checkout_id) {
        *expiry = (*expiry).max(until);
        return Admission::Admitted;
    }
    if entries.len() >= max as usize {
        return Admission::Full;
    }
    entries.insert(checkout_id.to_string(), until);
    Admission::Admitted
}
