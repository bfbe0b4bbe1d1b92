//! The loyalty platform's side: members, accruals and reversals posted once
//! under an external transaction number, balances for checkout, and the
//! journals read back for reconciliation. Salesforce Loyalty Management
//! implements it over HTTP (`retailflow-connectors`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::resilience::ConnectorError;

/// A loyalty program member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoyaltyMember {
    pub member_id: String,
    pub membership_number: String,
    pub tier: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub membership_number: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub enrolled_at: chrono::DateTime<chrono::Utc>,
}

/// An accrual to post; `external_transaction_number` is its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccrualRequest {
    pub external_transaction_number: String,
    pub membership_number: String,
    pub activity_at: chrono::DateTime<chrono::Utc>,
    /// The amount points are earned on (shop currency).
    pub amount: Money,
    /// Points retailflow's rules computed, for programs that take them.
    pub points: i64,
}

/// An accrual journal as the loyalty platform recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccrualJournal {
    pub journal_id: String,
    /// Points the platform credited (`None` when the lookup does not say).
    pub points: Option<i64>,
}

/// Points taken back for a partial return: retailflow computes them (see
/// [`crate::refund_ledger::RefundLedger::reversal_base`]), the platform
/// debits exactly that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalRequest {
    /// Idempotency key of the reversal journal.
    pub external_transaction_number: String,
    pub membership_number: String,
    pub activity_at: chrono::DateTime<chrono::Utc>,
    /// Merchandise refunded (shop currency) the points came from.
    pub amount: Money,
    pub points: i64,
}

#[async_trait]
pub trait LoyaltyConnector: Send + Sync {
    fn system(&self) -> &'static str;
    async fn find_member(
        &self,
        membership_number: &str,
    ) -> Result<Option<LoyaltyMember>, ConnectorError>;
    async fn enroll(&self, enrollment: &Enrollment) -> Result<LoyaltyMember, ConnectorError>;
    async fn find_accrual(
        &self,
        external_transaction_number: &str,
    ) -> Result<Option<AccrualJournal>, ConnectorError>;
    async fn post_accrual(
        &self,
        accrual: &AccrualRequest,
    ) -> Result<AccrualJournal, ConnectorError>;
    /// The member's points balance; `None` when there is no such member.
    async fn points_balance(&self, membership_number: &str) -> Result<Option<i64>, ConnectorError>;
    /// A reversal journal already posted under this number (any kind).
    async fn find_reversal(
        &self,
        external_transaction_number: &str,
    ) -> Result<Option<AccrualJournal>, ConnectorError>;
    async fn post_reversal(
        &self,
        reversal: &ReversalRequest,
    ) -> Result<AccrualJournal, ConnectorError>;
    /// Reads back, for reconciliation, every journal posted under these
    /// external transaction numbers (all of them: a duplicate shows as a
    /// second journal), with the points each moved.
    async fn ledger_journals(
        &self,
        external_transaction_numbers: &[String],
    ) -> Result<Vec<LedgerJournal>, ConnectorError>;
    /// Cancels an accrual journal whole (the whole order came back). Returns
    /// the cancellation journal, or `None` when it was already cancelled
    /// (a retry after a lost answer).
    async fn cancel_accrual(
        &self,
        accrual_journal_id: &str,
        reason: &str,
    ) -> Result<Option<String>, ConnectorError>;
}

/// A journal as the platform holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerJournal {
    pub external_transaction_number: String,
    pub journal_id: String,
    /// `Accrual`, `Debit`, `Cancellation`, … (the journal type's name).
    pub journal_type: Option<String>,
    /// `Processed`, `Cancelled`, `Pending`, …
    pub status: Option<String>,
    /// Points the journal moved: credits positive, debits negative;
    /// `None` when the platform recorded no ledger entry for it.
    pub points: Option<i64>,
}
