//! Reading back the loyalty platform's journals for a batch of orders, for
//! reconciliation. Salesforce Loyalty Management: `TransactionJournal` by
//! `ExternalTransactionNumber IN (…)` (100 per query, following
//! `nextRecordsUrl`), then the points each journal moved from
//! `LoyaltyLedger` (`Points`, `EventType` Credit/Debit) by
//! `TransactionJournalId IN (…)`.

use std::collections::BTreeMap;

use super::salesforce::SalesforceLoyalty;
use retailflow_core::ports::loyalty::LedgerJournal;
use retailflow_core::resilience::ConnectorError;

/// Numbers (or journal ids) per SOQL query.
const BATCH: usize = 100;
/// Pages one query reads at most.
const MAX_PAGES: usize = 20;

pub(super) fn soql_list(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect::<Vec<_>>()
        .join(",")
}

fn text(v: &serde_json::Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

impl SalesforceLoyalty {
    pub(crate) async fn ledger_journals(
        &self,
        numbers: &[String],
    ) -> Result<Vec<LedgerJournal>, ConnectorError> {
        let mut journals = Vec::new();
        for batch in numbers.chunks(BATCH) {
            let list: Vec<&str> = batch.iter().map(String::as_str).collect();
            let soql = format!(
                "SELECT Id,Status,ExternalTransactionNumber,JournalType.Name FROM TransactionJournal WHERE ExternalTransactionNumber IN ({})",
                soql_list(&list)
            );
            for r in self.query_all(&soql, MAX_PAGES).await? {
                let (Some(id), Some(number)) =
                    (text(&r["Id"]), text(&r["ExternalTransactionNumber"]))
                else {
                    continue;
                };
                journals.push(LedgerJournal {
                    external_transaction_number: number,
                    journal_id: id,
                    journal_type: text(&r["JournalType"]["Name"]),
                    status: text(&r["Status"]),
                    points: None,
                });
            }
        }
        let mut points: BTreeMap<String, i64> = BTreeMap::new();
        let ids: Vec<&str> = journals.iter().map(|j| j.journal_id.as_str()).collect();
        for batch in ids.chunks(BATCH) {
            let soql = format!(
                "SELECT TransactionJournalId,Points,EventType FROM LoyaltyLedger WHERE TransactionJournalId IN ({})",
                soql_list(batch)
            );
            for r in self.query_all(&soql, MAX_PAGES).await? {
                let Some(id) = text(&r["TransactionJournalId"]) else {
                    continue;
                };
                let Some(p) = r["Points"].as_f64().filter(|p| p.fract() == 0.0) else {
                    return Err(ConnectorError::BadResponse {
                        system: "salesforce-loyalty",
                        reason: format!("ledger entry of {id} without whole points: {r}"),
                    });
                };
                // Whole numbers far inside i64: checked just above.
                let p = p.abs() as i64;
                let signed = if r["EventType"].as_str() == Some("Debit") {
                    -p
                } else {
                    p
                };
                *points.entry(id).or_insert(0) += signed;
            }
        }
        for j in &mut journals {
            j.points = points.get(&j.journal_id).copied();
        }
        Ok(journals)
    }
}
