//! Salesforce Loyalty Management: SOQL lookups of members and journals,
//! individual member enrollment, realtime accrual journals, the Debit Points
//! program process (partial return reversals) and the `cancelAccrual`
//! standard action (whole-order reversals). Journals are NOT deduplicated by
//! ExternalTransactionNumber (the real service does not promise it), so a
//! double post shows up as two journals; cancelling a cancelled journal fails.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use retailflow_core::mappers::DecimalText;
use serde_json::{json, Value};

use crate::{lock, SimState};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    pub member_id: String,
    pub membership_number: String,
    pub points_balance: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Journal {
    pub id: String,
    pub external_transaction_number: String,
    pub membership_number: String,
    pub amount: String,
    pub currency: String,
    /// Signed: debits and cancellations are negative.
    pub points: i64,
    /// `Accrual`, `Debit` (a return reversal) or `Cancellation`.
    pub kind: String,
    /// `Processed`, or `Cancelled` once its accrual was cancelled.
    pub status: String,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct SalesforceState {
    pub members: BTreeMap<String, Member>,
    pub journals: Vec<Journal>,
    next_id: u64,
}

pub(crate) fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/query", get(query))
        .route(
            "/loyalty-programs/{program}/individual-member-enrollments",
            post(enroll),
        )
        .route(
            "/connect/realtime/loyalty/programs/{program}",
            post(realtime),
        )
        .route(
            "/connect/loyalty/programs/{program}/program-processes/{process}",
            post(debit_points),
        )
        .route("/actions/standard/cancelAccrual", post(cancel_accrual))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!([{"errorCode": code, "message": message}])),
    )
        .into_response()
}

/// The value of `Field='value'` in a SOQL WHERE clause.
fn soql_eq(q: &str, field: &str) -> Option<String> {
    let start = q.find(&format!("{field}='"))? + field.len() + 2;
    let rest = &q[start..];
    let end = rest.find('\'')?;
    Some(rest[..end].to_string())
}

async fn query(
    State(state): State<Arc<SimState>>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let q = params.get("q").cloned().unwrap_or_default();
    let st = lock(&state.salesforce);
    let records: Vec<Value> = if q.contains("FROM LoyaltyProgramMember") {
        let Some(number) = soql_eq(&q, "MembershipNumber") else {
            return error(
                StatusCode::BAD_REQUEST,
                "MALFORMED_QUERY",
                "unsupported query",
            );
        };
        st.members
            .get(&number)
            .map(|m| {
                json!({"attributes": {"type": "LoyaltyProgramMember"}, "Id": m.member_id,
                            "MembershipNumber": m.membership_number, "MemberStatus": "Active"})
            })
            .into_iter()
            .collect()
    } else if q.contains("FROM LoyaltyMemberCurrency") {
        let Some(number) = soql_eq(&q, "LoyaltyMember.MembershipNumber") else {
            return error(
                StatusCode::BAD_REQUEST,
                "MALFORMED_QUERY",
                "unsupported query",
            );
        };
        st.members
            .get(&number)
            .map(|m| {
                json!({"attributes": {"type": "LoyaltyMemberCurrency"}, "Name": "Points",
                       "PointsBalance": m.points_balance as f64})
            })
            .into_iter()
            .collect()
    } else if let (true, Some(id)) = (q.contains("FROM TransactionJournal"), soql_eq(&q, " Id")) {
        st.journals
            .iter()
            .filter(|j| j.id == id)
            .map(journal_record)
            .collect()
    } else if let (true, Some(numbers)) = (
        q.contains("FROM TransactionJournal"),
        soql_in(&q, "ExternalTransactionNumber"),
    ) {
        st.journals
            .iter()
            .filter(|j| numbers.contains(&j.external_transaction_number))
            .map(journal_record)
            .collect()
    } else if let (true, Some(ids)) = (
        q.contains("FROM LoyaltyLedger"),
        soql_in(&q, "TransactionJournalId"),
    ) {
        // One ledger entry per journal that moved points.
        st.journals
            .iter()
            .filter(|j| ids.contains(&j.id) && j.points != 0)
            .map(|j| {
                json!({"attributes": {"type": "LoyaltyLedger"}, "TransactionJournalId": j.id,
                       "Points": j.points.abs() as f64,
                       "EventType": if j.points < 0 { "Debit" } else { "Credit" }})
            })
            .collect()
    } else if q.contains("FROM TransactionJournal") {
        let Some(ext) = soql_eq(&q, "ExternalTransactionNumber") else {
            return error(
                StatusCode::BAD_REQUEST,
                "MALFORMED_QUERY",
                "unsupported query",
            );
        };
        st.journals
            .iter()
            .filter(|j| j.external_transaction_number == ext)
            .filter(|j| !q.contains("JournalType.Name='Accrual'") || j.kind == "Accrual")
            .map(journal_record)
            .collect()
    } else {
        return error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "unsupported query",
        );
    };
    Json(json!({"totalSize": records.len(), "done": true, "records": records})).into_response()
}

async fn enroll(
    State(state): State<Arc<SimState>>,
    Path(program): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let Some(number) = body["membershipNumber"].as_str().filter(|s| !s.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_FIELD_MISSING",
            "membershipNumber is required",
        );
    };
    let mut st = lock(&state.salesforce);
    if st.members.contains_key(number) {
        return error(
            StatusCode::BAD_REQUEST,
            "DUPLICATE_VALUE",
            "duplicate value found: MembershipNumber",
        );
    }
    st.next_id += 1;
    let member = Member {
        member_id: format!("0lM{:012}", st.next_id),
        membership_number: number.to_string(),
        points_balance: 0,
    };
    st.members.insert(number.to_string(), member.clone());
    (
        StatusCode::CREATED,
        Json(json!({"contactId": format!("003{:012}", st.next_id), "loyaltyProgramMemberId": member.member_id,
                    "loyaltyProgramName": program, "membershipNumber": number, "transactionJournals": []})),
    )
        .into_response()
}

async fn realtime(
    State(state): State<Arc<SimState>>,
    Path(program): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let Some(j) = body["transactionJournals"]
        .as_array()
        .and_then(|a| a.first())
        .cloned()
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "transactionJournals is required",
        );
    };
    let number = j["MembershipNumber"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ext = j["ExternalTransactionNumber"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let amount = match &j["TransactionAmount"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    // Default program rule: one point per whole unit of the amount.
    let whole = amount.split('.').next().unwrap_or("0");
    let Some(points) = DecimalText(whole.to_string()).whole().map(i64::from) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "TransactionAmount is not valid",
        );
    };
    let mut st = lock(&state.salesforce);
    let Some(member) = st.members.get_mut(&number) else {
        return (
            StatusCode::CREATED,
            Json(
                json!({"message": "Member not found", "programName": program,
                                                  "status": false, "processResult": null}),
            ),
        )
            .into_response();
    };
    member.points_balance += points;
    let balance = member.points_balance;
    st.next_id += 1;
    let id = format!("0lV{:012}", st.next_id);
    st.journals.push(Journal {
        id: id.clone(),
        external_transaction_number: ext,
        membership_number: number.clone(),
        amount,
        currency: j["CurrencyIsoCode"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        points,
        kind: "Accrual".into(),
        status: "Processed".into(),
    });
    (
        StatusCode::CREATED,
        Json(json!({
            "message": null, "programName": program, "simulationResults": null, "status": true,
            "processResult": {
                "memberPointsBalance": [{"memberShipNumber": number, "memberCurrencies": [
                    {"currencyName": "Points", "currencyType": "NonQualifying", "pointsBalance": balance as f64,
                     "escrowPointsBalance": 0.0}]}],
                "transactionJournalResult": [{"id": id, "changeInMemberPoints": [{"memberShipNumber": number,
                    "changeInMemberCurrencies": [{"currencyName": "Points", "currencyType": "NonQualifying",
                                                  "changeInPointsBalance": points as f64, "promotionId": "NA"}]}],
                    "voucherResult": null}]
            }
        })),
    )
        .into_response()
}

/// The quoted values of `field IN ('a','b')` (`\'` escapes a quote).
fn soql_in(q: &str, field: &str) -> Option<Vec<String>> {
    let rest = q.split(&format!("{field} IN (")).nth(1)?;
    let list = rest.split(')').next()?;
    Some(
        list.split(',')
            .map(|v| v.trim().trim_matches('\'').replace("\\'", "'"))
            .collect(),
    )
}

fn journal_record(j: &Journal) -> Value {
    json!({"attributes": {"type": "TransactionJournal"}, "Id": j.id, "Status": j.status,
           "JournalType": {"attributes": {"type": "JournalType"}, "Name": j.kind},
           "ExternalTransactionNumber": j.external_transaction_number,
           "Points__c": j.points as f64})
}

/// The Debit Points from Members program process: pre-calculated points
/// taken from a member, recorded as a journal of their own.
async fn debit_points(
    State(state): State<Arc<SimState>>,
    Path((_program, _process)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let p = &body["processParameters"][0];
    let j = &p["TransactionJournal"];
    let (Some(number), Some(ext), Some(points)) = (
        j["MembershipNumber"].as_str(),
        j["ExternalTransactionNumber"].as_str(),
        p["PointsToDebit"].as_f64(),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "TransactionJournal.MembershipNumber, ExternalTransactionNumber and PointsToDebit are required",
        );
    };
    if points < 0.0 || points.fract() != 0.0 {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "PointsToDebit must be a whole positive number",
        );
    }
    // Checked above: a whole, non-negative number of points.
    let points = points as i64;
    let mut st = lock(&state.salesforce);
    let Some(member) = st.members.get_mut(number) else {
        return error(StatusCode::BAD_REQUEST, "INVALID_INPUT", "Member not found");
    };
    member.points_balance -= points;
    st.next_id += 1;
    let id = format!("0lV{:012}", st.next_id);
    st.journals.push(Journal {
        id: id.clone(),
        external_transaction_number: ext.to_string(),
        membership_number: number.to_string(),
        amount: match &j["TransactionAmount"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
        currency: j["CurrencyIsoCode"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        points: -points,
        kind: "Debit".into(),
        status: "Processed".into(),
    });
    Json(json!({
        "message": null, "status": true, "simulationDetails": {},
        "outputParameters": {"outputParameters": {"results": [
            {"TransactionJournalId": id, "LoyaltyProgramMemberId": number, "PointsDebited": points as f64}]}}
    }))
    .into_response()
}

/// The `cancelAccrual` standard invocable action: reverses a processed
/// accrual journal whole.
async fn cancel_accrual(State(state): State<Arc<SimState>>, Json(body): Json<Value>) -> Response {
    let Some(id) = body["inputs"][0]["TransactionJournalId"].as_str() else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "TransactionJournalId is required",
        );
    };
    let fail = |message: &str| {
        Json(
            json!([{"actionName": "cancelAccrual", "isSuccess": false, "outputValues": null,
                     "errors": [{"statusCode": "INVALID_INPUT", "message": message}]}]),
        )
        .into_response()
    };
    let mut st = lock(&state.salesforce);
    let Some(pos) = st
        .journals
        .iter()
        .position(|j| j.id == id && j.kind == "Accrual")
    else {
        return fail("Transaction journal not found");
    };
    if st.journals[pos].status == "Cancelled" {
        return fail("The transaction journal is already cancelled");
    }
    st.journals[pos].status = "Cancelled".into();
    let original = st.journals[pos].clone();
    if let Some(m) = st.members.get_mut(&original.membership_number) {
        m.points_balance -= original.points;
    }
    st.next_id += 1;
    let cancel_id = format!("0lV{:012}", st.next_id);
    st.journals.push(Journal {
        id: cancel_id.clone(),
        external_transaction_number: original.external_transaction_number.clone(),
        membership_number: original.membership_number,
        amount: original.amount,
        currency: original.currency,
        points: -original.points,
        kind: "Cancellation".into(),
        status: "Processed".into(),
    });
    Json(
        json!([{"actionName": "cancelAccrual", "errors": null, "isSuccess": true,
                 "outputValues": {"CancellationTransactionJournalId": cancel_id}}]),
    )
    .into_response()
}
