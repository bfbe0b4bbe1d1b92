//! Business Central API v2.0: customers, sales orders and sales credit memos
//! (deep insert of lines), looked up with single-field `$filter ... eq
//! '...'`; the credit memo `Microsoft.NAV.post` bound action; DELETE of a
//! sales order. Like the real service it does NOT enforce unique
//! externalDocumentNumbers: a double POST is two documents, which is why the
//! connector looks up first.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use retailflow_core::money::{Currency, Money};
use serde_json::{json, Value};

use crate::{lock, SimState};

/// The company path the simulator serves.
pub const COMPANY_PATH: &str =
    "/bc/v2.0/tenant/production/api/v2.0/companies(00000000-0000-0000-0000-000000000001)";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BcSalesOrder {
    pub id: String,
    pub number: String,
    pub external_document_number: String,
    pub customer_number: String,
    pub total: Money,
    pub lines: usize,
    /// `Draft` until posted (credit memos: `Open` once posted).
    pub status: String,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct BcState {
    pub customers: BTreeMap<String, Value>,
    pub sales_orders: Vec<BcSalesOrder>,
    pub credit_memos: Vec<BcSalesOrder>,
    /// Orders BC shipped and invoiced: they leave `salesOrders`.
    pub sales_invoices: Vec<BcSalesOrder>,
    next: u64,
}

#[derive(Clone, Copy)]
enum Kind {
    SalesOrder,
    CreditMemo,
    SalesInvoice,
}

impl Kind {
    fn docs(self, st: &mut BcState) -> &mut Vec<BcSalesOrder> {
        match self {
            Kind::SalesOrder => &mut st.sales_orders,
            Kind::CreditMemo => &mut st.credit_memos,
            Kind::SalesInvoice => &mut st.sales_invoices,
        }
    }
    fn lines_field(self) -> &'static str {
        match self {
            Kind::SalesOrder => "salesOrderLines",
            Kind::CreditMemo => "salesCreditMemoLines",
            Kind::SalesInvoice => "salesInvoiceLines",
        }
    }
    fn number(self, n: u64) -> String {
        match self {
            Kind::SalesOrder => format!("SO{:06}", 100_000 + n),
            Kind::CreditMemo => format!("CM{:06}", 100_000 + n),
            Kind::SalesInvoice => format!("SI{:06}", 100_000 + n),
        }
    }
}

pub(crate) fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/customers", get(list_customers).post(create_customer))
        .route(
            "/salesOrders",
            get(|st, q| list(Kind::SalesOrder, st, q))
                .post(|st, b| create(Kind::SalesOrder, st, b)),
        )
        .route(
            "/salesCreditMemos",
            get(|st, q| list(Kind::CreditMemo, st, q))
                .post(|st, b| create(Kind::CreditMemo, st, b)),
        )
        .route(
            "/salesInvoices",
            get(|st, q| list(Kind::SalesInvoice, st, q)),
        )
        .merge(crate::erp_items::bc_items_router())
        .route("/{entity}", axum::routing::delete(delete_order))
        .route("/{entity}/{action}", axum::routing::post(bound_action))
}

/// The id in `entitySet(id)`.
fn entity_id<'a>(segment: &'a str, set: &str) -> Option<&'a str> {
    segment
        .strip_prefix(set)?
        .strip_prefix('(')?
        .strip_suffix(')')
}

/// `DELETE salesOrders({id})`: only a draft (unposted) order can go.
async fn delete_order(
    State(state): State<Arc<SimState>>,
    axum::extract::Path(entity): axum::extract::Path<String>,
) -> Response {
    let Some(id) = entity_id(&entity, "salesOrders") else {
        return error(
            StatusCode::NOT_FOUND,
            "BadRequest_NotFound",
            "no such entity",
        );
    };
    let mut st = lock(&state.business_central);
    let before = st.sales_orders.len();
    st.sales_orders.retain(|o| o.id != id);
    if st.sales_orders.len() == before {
        return error(
            StatusCode::NOT_FOUND,
            "Internal_RecordNotFound",
            "The sales order does not exist.",
        );
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `POST salesCreditMemos({id})/Microsoft.NAV.post`.
async fn bound_action(
    State(state): State<Arc<SimState>>,
    axum::extract::Path((entity, action)): axum::extract::Path<(String, String)>,
) -> Response {
    let (Some(id), "Microsoft.NAV.post") =
        (entity_id(&entity, "salesCreditMemos"), action.as_str())
    else {
        return error(
            StatusCode::NOT_FOUND,
            "BadRequest_MethodNotFound",
            "no such bound action",
        );
    };
    let mut st = lock(&state.business_central);
    let Some(memo) = st.credit_memos.iter_mut().find(|m| m.id == id) else {
        return error(
            StatusCode::NOT_FOUND,
            "Internal_RecordNotFound",
            "The credit memo does not exist.",
        );
    };
    if memo.status != "Draft" {
        return error(
            StatusCode::BAD_REQUEST,
            "Application_DialogException",
            "The credit memo is already posted.",
        );
    }
    memo.status = "Open".into();
    StatusCode::NO_CONTENT.into_response()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// `field eq 'value'` from `$filter`.
fn filter_eq(params: &BTreeMap<String, String>, field: &str) -> Option<String> {
    let f = params.get("$filter")?;
    let rest = f.strip_prefix(&format!("{field} eq '"))?;
    Some(rest.strip_suffix('\'')?.replace("''", "'"))
}

async fn list_customers(
    State(state): State<Arc<SimState>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(number) = filter_eq(&q, "number") else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "only $filter=number eq '...' is simulated",
        );
    };
    let st = lock(&state.business_central);
    let value: Vec<Value> = st.customers.get(&number).cloned().into_iter().collect();
    Json(json!({"value": value})).into_response()
}

async fn create_customer(State(state): State<Arc<SimState>>, Json(body): Json<Value>) -> Response {
    let Some(number) = body["number"]
        .as_str()
        .filter(|n| !n.is_empty() && n.len() <= 20)
        .map(str::to_string)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest_InvalidField",
            "number must be 1-20 characters",
        );
    };
    let mut st = lock(&state.business_central);
    if st.customers.contains_key(&number) {
        return error(
            StatusCode::CONFLICT,
            "Internal_EntityWithSameKeyExists",
            &format!(
                "The Customer already exists. Identification fields and values: No.='{number}'"
            ),
        );
    }
    st.next += 1;
    let customer = json!({"id": format!("c0000000-0000-0000-0000-{:012}", st.next), "number": number,
                          "displayName": body["displayName"], "@odata.etag": "W/\"1\""});
    st.customers.insert(number, customer.clone());
    (StatusCode::CREATED, Json(customer)).into_response()
}

fn order_json(o: &BcSalesOrder) -> Value {
    json!({
        "id": o.id, "number": o.number, "externalDocumentNumber": o.external_document_number,
        "customerNumber": o.customer_number, "currencyCode": o.total.currency.code(),
        "totalAmountIncludingTax": serde_json::value::RawValue::from_string(o.total.to_decimal_string()).ok(),
        "totalTaxAmount": 0, "status": o.status, "@odata.etag": "W/\"1\""
    })
}

/// `field eq 'a' or field eq 'b' …` from `$filter`.
fn filter_eq_any(params: &BTreeMap<String, String>, field: &str) -> Option<Vec<String>> {
    let f = params.get("$filter")?;
    f.split(" or ")
        .map(|clause| {
            let rest = clause.trim().strip_prefix(&format!("{field} eq '"))?;
            Some(rest.strip_suffix('\'')?.replace("''", "'"))
        })
        .collect()
}

async fn list(
    kind: Kind,
    State(state): State<Arc<SimState>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(wanted) = filter_eq_any(&q, "externalDocumentNumber") else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "only $filter=externalDocumentNumber eq '...' (joined by or) is simulated",
        );
    };
    let mut st = lock(&state.business_central);
    let value: Vec<Value> = kind
        .docs(&mut st)
        .iter()
        .filter(|o| wanted.contains(&o.external_document_number))
        .map(order_json)
        .collect();
    Json(json!({"value": value})).into_response()
}

fn money(v: &Value, c: Currency) -> Option<Money> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    Money::parse(&text, c).ok()
}

async fn create(
    kind: Kind,
    State(state): State<Arc<SimState>>,
    Json(body): Json<Value>,
) -> Response {
    let mut st = lock(&state.business_central);
    let customer = body["customerNumber"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !st.customers.contains_key(&customer) {
        return error(
            StatusCode::BAD_REQUEST,
            "Application_DialogException",
            "A customerNumber or a customerID must be provided.",
        );
    }
    let Some(currency) = body["currencyCode"]
        .as_str()
        .and_then(|c| Currency::from_code(c).ok())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest_InvalidField",
            "currencyCode is not valid",
        );
    };
    let lines = body[kind.lines_field()]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut total = Money::zero(currency);
    for l in &lines {
        let (Some(unit), Some(discount), Some(qty)) = (
            money(&l["unitPrice"], currency),
            money(&l["discountAmount"], currency),
            l["quantity"].as_i64(),
        ) else {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequest_InvalidField",
                "line amounts are not valid",
            );
        };
        let line = unit.checked_mul(qty).and_then(|g| g.checked_sub(discount));
        total = match line.and_then(|l| total.checked_add(l)) {
            Ok(t) => t,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest_InvalidField",
                    "amount overflow",
                )
            }
        };
    }
    st.next += 1;
    let order = BcSalesOrder {
        id: format!("50000000-0000-0000-0000-{:012}", st.next),
        number: kind.number(st.next),
        external_document_number: body["externalDocumentNumber"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        customer_number: customer,
        total,
        lines: lines.len(),
        status: "Draft".into(),
    };
    kind.docs(&mut st).push(order.clone());
    (StatusCode::CREATED, Json(order_json(&order))).into_response()
}
