//! Reconciliation: for a window of hours, every order and return saga
//! started in it is checked two ways.
//!
//! - **Stuck steps**: a step not done within its SLA is re-driven by
//!   sending its triggering event (the one intake kept on the order's,
//!   return's or cancellation's saga) again to that step's queue only
//!   (idempotency makes the repeat safe), at most `redrive_limit` times,
//!   then raised for people.
//! - **Ledgers**: the systems of record are read back in batches (one paged
//!   ERP query per kind and page of sagas, one loyalty query) and compared
//!   with what the sagas recorded: one sales order per order of the
//!   order's total, one credit memo per refund of the refunded amount, one
//!   accrual journal of the points the rules gave and one reversal per
//!   return. Differences are reported by kind ([`DiscrepancyKind`]).
//!
//! Sagas are read an hour at a time through the time index, 100 per page;
//! a run that nears its deadline saves where it is and the next run goes
//! on from there. The report is kept in the state store, and
//! `DiscrepancyFound` (one per problem) and `ReconciliationCompleted` are
//! published.

pub mod checks;
pub mod request;
pub mod run;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::events::EventDetail;

pub use run::{Reconciliation, ReconciliationError};

pub const SOURCE: &str = "retailflow.reconciliation";
/// The state-store cursor a run that stopped early leaves for the next.
pub const RESUME_CURSOR: &str = "reconciliation-resume";
/// The state-store cursor naming the last finished run's report.
pub const LATEST_CURSOR: &str = "reconciliation-latest";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconciliationConfig {
    /// Per step: how long after its triggering event it should be done.
    pub sla: BTreeMap<String, Duration>,
    /// For steps without their own SLA.
    pub default_sla: Duration,
    /// Re-drives of one step before it is raised for people.
    pub redrive_limit: u32,
    /// Amount differences up to this many minor units are reported as
    /// tax/rounding variance, larger ones as mismatches.
    pub tolerance_minor: i64,
    /// How long a run may go on when no deadline is given.
    pub max_run: Duration,
    /// Stop this long before the deadline (saving where the run got to).
    pub deadline_margin: Duration,
    /// How long reports are kept.
    pub report_retention: Duration,
}

impl Default for ReconciliationConfig {
    fn default() -> Self {
        ReconciliationConfig {
            sla: BTreeMap::new(),
            // Past the steps' own retry patience (about 5 hours): a step
            // still retrying an outage is not stuck.
            default_sla: Duration::hours(6),
            redrive_limit: 3,
            tolerance_minor: 0,
            max_run: Duration::minutes(10),
            deadline_margin: Duration::seconds(60),
            report_retention: Duration::days(90),
        }
    }
}

impl ReconciliationConfig {
    pub fn sla(&self, step: &str) -> Duration {
        self.sla.get(step).copied().unwrap_or(self.default_sla)
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DiscrepancyKind {
    /// A document or journal the sagas say exists is not there.
    Missing,
    /// More than one where there must be exactly one.
    Duplicate,
    /// Amounts or points differ beyond the tolerance.
    AmountMismatch,
    /// Amounts differ within the tolerance (tax or rounding).
    RoundingVariance,
    /// A step not done within its SLA (re-driven, or raised when re-driven
    /// too often).
    StuckStep,
    /// A message on a step's dead-letter queue: its retries ran out; fix
    /// the cause and re-drive it.
    DeadLettered,
    /// A message a step gave up for a person to decide (a refund over the
    /// order's total, an ERP that would not cancel): re-driving it as it is
    /// fails again.
    HeldForReview,
}

impl DiscrepancyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DiscrepancyKind::Missing => "missing",
            DiscrepancyKind::Duplicate => "duplicate",
            DiscrepancyKind::AmountMismatch => "amount_mismatch",
            DiscrepancyKind::RoundingVariance => "rounding_variance",
            DiscrepancyKind::StuckStep => "stuck_step",
            DiscrepancyKind::DeadLettered => "dead_lettered",
            DiscrepancyKind::HeldForReview => "held_for_review",
        }
    }
}

/// One difference between retailflow's records and a system's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Discrepancy {
    pub kind: DiscrepancyKind,
    /// `erp`, `loyalty` or `retailflow` (a stuck step).
    pub system: String,
    /// The order's key: also the correlation id of its events.
    pub order_key: String,
    /// What is off (`sales order`, `credit memo for refund 77`, a step).
    pub subject: String,
    /// The document's external id (idempotency key), when it has one.
    pub external_id: Option<String>,
    pub expected: Option<String>,
    pub found: Option<String>,
    pub detail: String,
}

/// A run's findings. Kept as JSON under its run id; a run that stopped
/// before its deadline is continued by the next and `complete` only then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReconciliationReport {
    pub run_id: String,
    /// The window's first hour and the hour after its last.
    pub window_from: DateTime<Utc>,
    pub window_to: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub complete: bool,
    pub sagas_checked: u64,
    pub orders_checked: u64,
    pub returns_checked: u64,
    /// Reports kept before cancellations were counted read as 0.
    #[serde(default)]
    pub cancellations_checked: u64,
    /// Stuck steps published again.
    pub redriven: u64,
    /// Stuck steps past their re-drive limit, raised for people.
    pub escalated: u64,
    /// Requests made to the state store, the ERP and the loyalty platform.
    pub requests: BTreeMap<String, u64>,
    /// How many invocations the run took.
    pub invocations: u32,
    /// What could not be checked (a system's answer unreadable), and why:
    /// those pages are not reported clean.
    #[serde(default)]
    pub unchecked: Vec<String>,
    /// Why the run stopped before covering its window (the deadline, or a
    /// system of record that could not answer); `None` once complete.
    pub paused_because: Option<String>,
    pub counts: BTreeMap<DiscrepancyKind, u64>,
    pub discrepancies: Vec<Discrepancy>,
}

/// Published once per discrepancy, for alerting and ticketing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiscrepancyFound {
    pub run_id: String,
    pub discrepancy: Discrepancy,
}

impl EventDetail for DiscrepancyFound {
    const EVENT_TYPE: &'static str = "DiscrepancyFound";
    const SCHEMA_VERSION: u32 = 1;
}

/// Published when a run has covered its whole window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReconciliationCompleted {
    pub run_id: String,
    pub window_from: DateTime<Utc>,
    pub window_to: DateTime<Utc>,
    pub sagas_checked: u64,
    pub redriven: u64,
    pub escalated: u64,
    pub discrepancies: u64,
    pub counts: BTreeMap<DiscrepancyKind, u64>,
}

impl EventDetail for ReconciliationCompleted {
    const EVENT_TYPE: &'static str = "ReconciliationCompleted";
    const SCHEMA_VERSION: u32 = 1;
}
