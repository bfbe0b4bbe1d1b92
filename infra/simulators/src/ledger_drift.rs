//! What reconciliation reads of the ERPs, and hooks to make the systems of
//! record drift from retailflow's records the way they do in production
//! (a sales order deleted by hand, a second one keyed by a script, an
//! amount edited, a journal lost).
//!
//! NetSuite: SuiteQL over `transaction` (`type = 'SalesOrd'` or
//! `'CustCred'`): the simulator does not run SQL; it answers with every
//! sales order or credit memo whose external id or
//! `custbody_retailflow_order_key` is one of the query's quoted literals,
//! with NetSuite's column names and a negative `total` for credit memos.

use axum::response::Response;
use retailflow_core::money::Money;
use serde_json::{json, Value};

use crate::netsuite::NetSuiteSalesOrder;
use crate::{lock, SimState, Simulators};

/// The single-quoted literals of a query (`''` is a quote inside one).
fn quoted_literals(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut lit = String::new();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    lit.push('\'');
                    continue;
                }
                break;
            }
            lit.push(c);
        }
        out.push(lit);
    }
    out
}

pub(crate) fn transaction_rows(state: &SimState, q: &str, limit: usize, offset: usize) -> Response {
    let literals = quoted_literals(q);
    let credit = q.contains("'CustCred'");
    let ns = lock(&state.netsuite);
    let records = if credit {
        &ns.credit_memos
    } else {
        &ns.sales_orders
    };
    let matches = |r: &NetSuiteSalesOrder| {
        literals.contains(&r.external_id)
            || r.order_key.as_ref().is_some_and(|k| literals.contains(k))
    };
    let mut rows: Vec<Value> = records
        .values()
        .filter(|r| matches(r))
        .map(|r| {
            let total = if credit { -r.total.minor } else { r.total.minor };
            json!({
                "links": [],
                "id": r.internal_id,
                "tranid": r.tran_id,
                "externalid": r.external_id,
                "order_key": r.order_key,
                "total": Money::new(total, r.total.currency).to_decimal_string(),
                "currency": r.total.currency.code(),
                "status": if r.closed { "Closed" } else if credit { "Open" } else { "Pending Fulfillment" },
            })
        })
        .collect();
    rows.sort_by_key(|r| r["id"].as_str().and_then(|i| i.parse::<u64>().ok()));
    crate::erp_items::suiteql_page(rows, limit, offset)
}

/// Which NetSuite record a drift hook touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetSuiteRecord {
    SalesOrder,
    CreditMemo,
}

impl Simulators {
    fn with_netsuite_record<R>(
        &self,
        record: NetSuiteRecord,
        f: impl FnOnce(&mut std::collections::BTreeMap<String, NetSuiteSalesOrder>) -> R,
    ) -> R {
        let mut ns = lock(&self.state.netsuite);
        match record {
            NetSuiteRecord::SalesOrder => f(&mut ns.sales_orders),
            NetSuiteRecord::CreditMemo => f(&mut ns.credit_memos),
        }
    }

    /// Deletes a record, as a user deleting it in NetSuite would. True when
    /// it was there.
    pub fn netsuite_delete(&self, record: NetSuiteRecord, external_id: &str) -> bool {
        self.with_netsuite_record(record, |r| r.remove(external_id).is_some())
    }

    /// Keys a second record for the same shop order under another external
    /// id, as a script re-importing orders would. Returns its external id.
    pub fn netsuite_duplicate(&self, record: NetSuiteRecord, external_id: &str) -> Option<String> {
        self.with_netsuite_record(record, |r| {
            let mut copy = r.get(external_id)?.clone();
            copy.external_id = format!("{external_id}-import");
            copy.internal_id = format!("{}1", copy.internal_id);
            copy.tran_id = format!("{}-2", copy.tran_id);
            let id = copy.external_id.clone();
            r.insert(id.clone(), copy);
            Some(id)
        })
    }

    /// Changes a record's total by `delta_minor`, as an edit in the ERP would.
    pub fn netsuite_adjust_total(
        &self,
        record: NetSuiteRecord,
        external_id: &str,
        delta_minor: i64,
    ) -> bool {
        self.with_netsuite_record(record, |r| match r.get_mut(external_id) {
            Some(o) => {
                o.total = Money::new(o.total.minor + delta_minor, o.total.currency);
                true
            }
            None => false,
        })
    }

    /// Ships and invoices a Business Central sales order: it leaves
    /// `salesOrders` for `salesInvoices` (same external document number).
    pub fn business_central_invoice_order(&self, external_document_number: &str) -> bool {
        let mut bc = lock(&self.state.business_central);
        let Some(pos) = bc
            .sales_orders
            .iter()
            .position(|o| o.external_document_number == external_document_number)
        else {
            return false;
        };
        let mut invoice = bc.sales_orders.remove(pos);
        invoice.number = invoice.number.replace("SO", "SI");
        invoice.status = "Paid".into();
        bc.sales_invoices.push(invoice);
        true
    }

    /// Loses every journal posted under an external transaction number (and
    /// the points they moved), as a failed platform job would.
    pub fn loyalty_delete_journals(&self, external_transaction_number: &str) -> usize {
        let mut sf = lock(&self.state.salesforce);
        let before = sf.journals.len();
        sf.journals
            .retain(|j| j.external_transaction_number != external_transaction_number);
        before - sf.journals.len()
    }

    /// Changes the points of the journals under an external transaction
    /// number by `delta` (an edit in the platform).
    pub fn loyalty_adjust_points(&self, external_transaction_number: &str, delta: i64) -> usize {
        let mut sf = lock(&self.state.salesforce);
        let mut n = 0;
        for j in sf
            .journals
            .iter_mut()
            .filter(|j| j.external_transaction_number == external_transaction_number)
        {
            j.points += delta;
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_literals_read_escaped_quotes() {
        assert_eq!(
            quoted_literals("WHERE a IN ('x', 'o''brien') AND t = 'SalesOrd'"),
            vec!["x".to_string(), "o'brien".into(), "SalesOrd".into()]
        );
    }
}
