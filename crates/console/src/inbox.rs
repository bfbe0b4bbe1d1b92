//! The inbox: every exception in one list (dead letters of every queue,
//! steps stuck past their SLA, quarantined deliveries, reconciliation
//! findings, refunds held for review), each put in the class a support
//! person acts on, and ranked by what it costs the customer.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use retailflow_core::money::Money;
use serde::Serialize;

/// What kind of trouble an exception is: the class decides who acts and
/// how (fix the data, renew a credential, wait, look).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionClass {
    /// The input or the document was refused: someone fixes the data.
    Validation,
    /// A system refused retailflow's credentials: renew or rotate them.
    Credentials,
    /// A system kept throttling: retry once its budget allows.
    RateLimit,
    /// A system was down or never answered in time: retry once it is back.
    Outage,
    /// Something exists twice, or was done for another version.
    Duplicate,
    /// Money would go wrong (an over-refund, an ERP that would not cancel,
    /// a document that does not match): a person decides.
    Review,
    /// A step has not finished past its SLA and no error says why.
    Stuck,
}

impl ExceptionClass {
    pub const ALL: [ExceptionClass; 7] = [
        ExceptionClass::Validation,
        ExceptionClass::Credentials,
        ExceptionClass::RateLimit,
        ExceptionClass::Outage,
        ExceptionClass::Duplicate,
        ExceptionClass::Review,
        ExceptionClass::Stuck,
    ];

    /// The name in URLs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionClass::Validation => "validation",
            ExceptionClass::Credentials => "credentials",
            ExceptionClass::RateLimit => "rate_limit",
            ExceptionClass::Outage => "outage",
            ExceptionClass::Duplicate => "duplicate",
            ExceptionClass::Review => "review",
            ExceptionClass::Stuck => "stuck",
        }
    }

    /// The name people read.
    pub fn label(self) -> &'static str {
        match self {
            ExceptionClass::RateLimit => "rate limit",
            other => other.as_str(),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The class of a failure from what it said. The texts are the
    /// connectors' errors (`ConnectorError`'s messages name the system and
    /// what it did), the ledger's "needs review", the intake's refusals. A
    /// dead letter without a reason ran out of retries on a failure that
    /// was meant to pass (an outage, throttling that never let up).
    pub fn of_reason(reason: Option<&str>) -> Self {
        let Some(reason) = reason.filter(|r| !r.trim().is_empty()) else {
            return ExceptionClass::Outage;
        };
        let r = reason.to_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| r.contains(w));
        if retailflow_core::replay::held_for_review(Some(&r)) || has(&["kept for review"]) {
            ExceptionClass::Review
        } else if has(&["refused the credentials", "unauthorized", "forbidden"]) {
            ExceptionClass::Credentials
        } else if has(&["throttled", "rate limit", "too many requests", "budget"]) {
            ExceptionClass::RateLimit
        } else if has(&[
            "is unavailable",
            "circuit is open",
            "timed out",
            "timeout",
            "maxreceivecount",
            "received too many times",
            "retries ran out",
        ]) {
            ExceptionClass::Outage
        } else if has(&["conflicting change", "duplicate", "different version"]) {
            ExceptionClass::Duplicate
        } else {
            ExceptionClass::Validation
        }
    }
}

/// Where an exception was found: what retrying or resolving it means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// A message a step gave up on, on its queue's DLQ.
    DeadLetter { queue: String },
    /// A delivery refused as bad input, its body kept.
    Quarantined,
    /// A step not finished past its SLA.
    StuckStep,
    /// What the last reconciliation found in the systems of record.
    Discrepancy,
}

impl Origin {
    pub fn label(&self) -> &str {
        match self {
            Origin::DeadLetter { .. } => "dead letter",
            Origin::Quarantined => "quarantined delivery",
            Origin::StuckStep => "stuck step",
            Origin::Discrepancy => "reconciliation",
        }
    }
}

/// One exception, with what support needs to rank and find it. The
/// customer's name is shown on the page and never logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exception {
    /// Unique within its origin: the dead letter's message id, the
    /// quarantine id, `<saga key>#<step>`, `<report>#<n>`.
    pub id: String,
    pub origin: Origin,
    pub class: ExceptionClass,
    pub step: Option<String>,
    /// The system that failed, when known (`netsuite`, `salesforce-loyalty`…).
    pub system: Option<String>,
    pub since: DateTime<Utc>,
    /// The order's key (the correlation id `trace` takes).
    pub order_key: Option<String>,
    /// The number the customer and the shop know (#1042, 000000214).
    pub order_number: Option<String>,
    /// The order total in shop currency.
    pub order_value: Option<Money>,
    pub customer: Option<String>,
    pub reason: String,
}

/// How the inbox is ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// The costliest orders first (then the oldest): what hurts most.
    #[default]
    Value,
    Oldest,
    Newest,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "value" => Some(Sort::Value),
            "oldest" => Some(Sort::Oldest),
            "newest" => Some(Sort::Newest),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Value => "value",
            Sort::Oldest => "oldest",
            Sort::Newest => "newest",
        }
    }
}

/// What the person asked the inbox for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxQuery {
    pub class: Option<ExceptionClass>,
    pub step: Option<String>,
    /// Part of an order number, an order key (correlation id) or a
    /// customer's name, in any case.
    pub search: Option<String>,
    pub sort: Sort,
    /// From 1.
    pub page: usize,
    pub per_page: usize,
}

impl Default for InboxQuery {
    fn default() -> Self {
        InboxQuery {
            class: None,
            step: None,
            search: None,
            sort: Sort::Value,
            page: 1,
            per_page: 50,
        }
    }
}

/// One page of the inbox, with the counts that say where the trouble is.
#[derive(Debug)]
pub struct InboxPage<'a> {
    pub items: Vec<&'a Exception>,
    /// Exceptions that match the whole query, over every page.
    pub matching: usize,
    pub page: usize,
    pub pages: usize,
    /// Per class and per step, over what the search matches (the class and
    /// step filters left out, so each count says what choosing it shows).
    pub by_class: BTreeMap<ExceptionClass, usize>,
    pub by_step: BTreeMap<String, usize>,
    /// Dead letters among what matches, over every page: what a bulk
    /// retry of this view re-drives.
    pub dead_letters: usize,
}

fn matches_search(e: &Exception, needle: &str) -> bool {
    [&e.order_number, &e.order_key, &e.customer]
        .into_iter()
        .flatten()
        .any(|field| field.to_lowercase().contains(needle))
}

/// Everything `q` matches (its class, step and search), unordered and
/// unpaged: what a bulk action on the view acts on.
pub fn matching<'a>(all: &'a [Exception], q: &InboxQuery) -> Vec<&'a Exception> {
    let needle = q
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_lowercase);
    all.iter()
        .filter(|e| needle.as_deref().is_none_or(|n| matches_search(e, n)))
        .filter(|e| q.class.is_none_or(|c| e.class == c))
        .filter(|e| {
            q.step
                .as_deref()
                .is_none_or(|s| e.step.as_deref() == Some(s))
        })
        .collect()
}

/// The page `query` asks for, out of `all`.
pub fn query<'a>(all: &'a [Exception], q: &InboxQuery) -> InboxPage<'a> {
    let needle = q
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_lowercase);
    let searched: Vec<&Exception> = all
        .iter()
        .filter(|e| needle.as_deref().is_none_or(|n| matches_search(e, n)))
        .collect();
    let mut by_class = BTreeMap::new();
    let mut by_step = BTreeMap::new();
    for e in &searched {
        *by_class.entry(e.class).or_insert(0) += 1;
        if let Some(step) = &e.step {
            *by_step.entry(step.clone()).or_insert(0) += 1;
        }
    }
    let mut items: Vec<&Exception> = searched
        .into_iter()
        .filter(|e| q.class.is_none_or(|c| e.class == c))
        .filter(|e| {
            q.step
                .as_deref()
                .is_none_or(|s| e.step.as_deref() == Some(s))
        })
        .collect();
    match q.sort {
        // Amounts in different currencies are ranked by their minor units:
        // a rough order, enough to put the big ones first.
        Sort::Value => items.sort_by(|a, b| {
            let value = |e: &Exception| e.order_value.map_or(i64::MIN, |m| m.minor);
            value(b)
                .cmp(&value(a))
                .then(a.since.cmp(&b.since))
                .then(a.id.cmp(&b.id))
        }),
        Sort::Oldest => items.sort_by(|a, b| a.since.cmp(&b.since).then(a.id.cmp(&b.id))),
        Sort::Newest => items.sort_by(|a, b| b.since.cmp(&a.since).then(a.id.cmp(&b.id))),
    }
    let per_page = q.per_page.clamp(1, 500);
    let dead_letters = items
        .iter()
        .filter(|e| matches!(e.origin, Origin::DeadLetter { .. }))
        .count();
    let matching = items.len();
    let pages = matching.div_ceil(per_page).max(1);
    let page = q.page.clamp(1, pages);
    let items = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    InboxPage {
        items,
        matching,
        page,
        pages,
        by_class,
        by_step,
        dead_letters,
    }
}

#[cfg(test)]
#[path = "inbox_tests.rs"]
mod tests;
