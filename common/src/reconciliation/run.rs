//! One reconciliation run: pages of sagas, hour by hour, each page checked
//! and its findings published and saved before the next, so a run cut
//! short (deadline, throttled system, crash) goes on from its last page.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::checks::{self, saga_kind, SagaKind, StuckStep};
use super::{
    Discrepancy, DiscrepancyFound, DiscrepancyKind, ReconciliationCompleted, ReconciliationConfig,
    ReconciliationReport, LATEST_CURSOR, RESUME_CURSOR, SOURCE,
};
use crate::connectors::{ErpConnector, ErpDocumentKind, LoyaltyConnector};
use crate::events::INTAKE_SOURCE;
use crate::ports::{BusError, BusEvent, EventBus, StateStore, StoreError};
use crate::resilience::{CircuitBreaker, ConnectorError};
use crate::saga::SagaRecord;

/// The pause reason of a run that reached its deadline: the caller goes
/// on at once (the function asks for itself again).
pub const PAUSED_AT_DEADLINE: &str = "deadline";

/// Invocations one run may take by asking for itself; past it, the next
/// scheduled run goes on.
pub const MAX_INVOCATIONS: u32 = 48;

/// `ReconciliationRequested` with `continue`: how a run paused at its
/// deadline asks for the rest (the resume point is in the state store).
pub fn continuation_event(run_id: &str, at: DateTime<Utc>) -> BusEvent {
    let id = Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("{run_id}\ncontinue\n{}", at.timestamp_millis()).as_bytes(),
    );
    BusEvent {
        event_id: id,
        detail_type: super::request::REQUESTED_EVENT.into(),
        source: SOURCE.into(),
        detail: serde_json::json!({"continue": true, "run_id": run_id}).to_string(),
        time: at,
    }
}

/// Discrepancies kept in one report (the counts stay exact beyond it; every
/// one is also published as a `DiscrepancyFound` event).
const MAX_REPORTED: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum ReconciliationError {
    /// The state store failed: retryable, the run goes on from its last
    /// saved page.
    #[error("state store: {0}")]
    Store(#[from] StoreError),
    /// Findings could not be published: retryable the same way.
    #[error("event bus: {0}")]
    Bus(#[from] BusError),
}

impl ReconciliationError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ReconciliationError::Store(e) => e.is_retryable(),
            ReconciliationError::Bus(e) => e.is_retryable(),
        }
    }
}

/// A system of record and the breaker guarding it.
pub struct Guard<C: ?Sized> {
    pub connector: Arc<C>,
    pub breaker: Arc<CircuitBreaker>,
}

/// Where a run cut short goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ResumePoint {
    run_id: String,
    hour: DateTime<Utc>,
    page: Option<String>,
}

pub struct Reconciliation {
    store: Arc<dyn StateStore>,
    bus: Arc<dyn EventBus>,
    erp: Option<Guard<dyn ErpConnector>>,
    loyalty: Option<Guard<dyn LoyaltyConnector>>,
    config: ReconciliationConfig,
    clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
}

fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    // An hour always divides a UTC timestamp: rounding cannot fail.
    t.duration_trunc(Duration::hours(1)).unwrap_or(t)
}

impl Reconciliation {
    pub fn new(
        store: Arc<dyn StateStore>,
        bus: Arc<dyn EventBus>,
        erp: Option<Guard<dyn ErpConnector>>,
        loyalty: Option<Guard<dyn LoyaltyConnector>>,
        config: ReconciliationConfig,
        clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    ) -> Self {
        Reconciliation {
            store,
            bus,
            erp,
            loyalty,
            config,
            clock,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Goes on with a run cut short if there is one, else starts one over
    /// `window` (from, to; widened to whole hours). Returns the report as
    /// it stands: `complete` once the window is covered; otherwise call
    /// again (the next scheduled run does).
    pub async fn run(
        &self,
        window: (DateTime<Utc>, DateTime<Utc>),
        deadline: Option<DateTime<Utc>>,
    ) -> Result<ReconciliationReport, ReconciliationError> {
        let started = self.now();
        let deadline =
            deadline.unwrap_or(started + self.config.max_run) - self.config.deadline_margin;
        let (mut report, mut hour, mut page) = match self.resume_point().await? {
            Some((report, point)) => (report, point.hour, point.page),
            None => {
                let from = floor_hour(window.0);
                let to = floor_hour(window.1 + Duration::hours(1) - Duration::nanoseconds(1));
                let report = ReconciliationReport {
                    // Unique even for runs started at the same instant.
                    run_id: format!(
                        "recon-{}-{}-{}",
                        from.format("%Y%m%dT%H"),
                        started.format("%Y%m%dT%H%M%S"),
                        &Uuid::new_v4().simple().to_string()[..8]
                    ),
                    window_from: from,
                    window_to: to.max(from + Duration::hours(1)),
                    started_at: started,
                    finished_at: None,
                    complete: false,
                    sagas_checked: 0,
                    orders_checked: 0,
                    returns_checked: 0,
                    redriven: 0,
                    escalated: 0,
                    requests: BTreeMap::new(),
                    invocations: 0,
                    paused_because: None,
                    counts: BTreeMap::new(),
                    discrepancies: Vec::new(),
                };
                (report, from, None)
            }
        };
        report.invocations += 1;
        report.paused_because = None;
        while hour < report.window_to {
            if self.now() >= deadline {
                report.paused_because = Some(PAUSED_AT_DEADLINE.into());
                return self.pause(report, hour, page).await;
            }
            let sagas = self.store.sagas_started(hour, page.as_deref()).await?;
            count(&mut report, "state_store", 1);
            match self.check_page(&mut report, &sagas.sagas).await {
                Ok(()) => {}
                // The ERP or loyalty platform cannot answer now: go on from
                // this page next run.
                Err(PageError::System(e)) => {
                    tracing::warn!(error = %e, "reconciliation paused: a system of record cannot answer");
                    report.paused_because = Some(format!("a system of record cannot answer: {e}"));
                    return self.pause(report, hour, page).await;
                }
                Err(PageError::Run(e)) => return Err(e),
            }
            match sagas.next {
                Some(next) => page = Some(next),
                None => {
                    hour += Duration::hours(1);
                    page = None;
                }
            }
            self.save(
                &report,
                Some(&ResumePoint {
                    run_id: report.run_id.clone(),
                    hour,
                    page: page.clone(),
                }),
            )
            .await?;
        }
        self.finish(report).await
    }

    async fn resume_point(
        &self,
    ) -> Result<Option<(ReconciliationReport, ResumePoint)>, ReconciliationError> {
        let Some(text) = self.store.read_cursor(RESUME_CURSOR).await? else {
            return Ok(None);
        };
        let Ok(point) = serde_json::from_str::<ResumePoint>(&text) else {
            // Empty after a finished run, or unreadable: start afresh.
            return Ok(None);
        };
        let report = self
            .store
            .report(&point.run_id)
            .await?
            .and_then(|r| serde_json::from_str::<ReconciliationReport>(&r).ok());
        Ok(report.filter(|r| !r.complete).map(|r| (r, point)))
    }

    async fn save(
        &self,
        report: &ReconciliationReport,
        resume: Option<&ResumePoint>,
    ) -> Result<(), ReconciliationError> {
        // Plain data with string keys: serializing cannot fail.
        let body = serde_json::to_string(report).unwrap_or_default();
        self.store
            .put_report(
                &report.run_id,
                &body,
                self.now() + self.config.report_retention,
            )
            .await?;
        let cursor = resume
            .map(|r| serde_json::to_string(r).unwrap_or_default())
            .unwrap_or_default();
        self.store.write_cursor(RESUME_CURSOR, &cursor).await?;
        Ok(())
    }

    async fn pause(
        &self,
        report: ReconciliationReport,
        hour: DateTime<Utc>,
        page: Option<String>,
    ) -> Result<ReconciliationReport, ReconciliationError> {
        let point = ResumePoint {
            run_id: report.run_id.clone(),
            hour,
            page,
        };
        self.save(&report, Some(&point)).await?;
        Ok(report)
    }

    async fn finish(
        &self,
        mut report: ReconciliationReport,
    ) -> Result<ReconciliationReport, ReconciliationError> {
        report.complete = true;
        report.paused_because = None;
        report.finished_at = Some(self.now());
        let done = ReconciliationCompleted {
            run_id: report.run_id.clone(),
            window_from: report.window_from,
            window_to: report.window_to,
            sagas_checked: report.sagas_checked,
            redriven: report.redriven,
            escalated: report.escalated,
            discrepancies: report.counts.values().sum(),
            counts: report.counts.clone(),
        };
        crate::steps::publish(
            self.bus.as_ref(),
            &done,
            Uuid::new_v5(
                &Uuid::NAMESPACE_URL,
                format!("{}\ncompleted", report.run_id).as_bytes(),
            ),
            &report.run_id,
            SOURCE,
            &report.run_id,
            self.now(),
        )
        .await?;
        count(&mut report, "bus", 1);
        self.save(&report, None).await?;
        self.store
            .write_cursor(LATEST_CURSOR, &report.run_id)
            .await?;
        Ok(report)
    }

    async fn check_page(
        &self,
        report: &mut ReconciliationReport,
        sagas: &[SagaRecord],
    ) -> Result<(), PageError> {
        let now = self.now();
        let mut found: Vec<Discrepancy> = Vec::new();
        let page: BTreeMap<String, &SagaRecord> =
            sagas.iter().map(|s| (s.saga_key.clone(), s)).collect();
        let mut expected_docs = Vec::new();
        let mut expected_journals = Vec::new();
        let mut republish: BTreeMap<String, BusEvent> = BTreeMap::new();
        for saga in sagas {
            report.sagas_checked += 1;
            match saga_kind(&saga.saga_key) {
                SagaKind::Order => {
                    if saga.order_facts.is_none() && saga.first_seen.is_empty() {
                        continue;
                    }
                    report.orders_checked += 1;
                    expected_docs.extend(checks::expected_sales_order(saga));
                    expected_journals.extend(checks::expected_accrual(saga));
                    let returns = self.returns_due(report, saga, &page, now).await?;
                    for stuck in checks::stuck_steps(saga, &returns, now, &self.config) {
                        let d = self.redrive(report, saga, &stuck, &mut republish).await?;
                        found.push(d);
                    }
                }
                SagaKind::Return { order_key, .. } => {
                    report.returns_checked += 1;
                    expected_docs.extend(checks::expected_credit_memo(saga, order_key));
                    expected_journals.extend(checks::expected_reversal(saga, order_key));
                }
                SagaKind::Other => {}
            }
        }
        if !republish.is_empty() {
            let events: Vec<BusEvent> = republish.into_values().collect();
            self.bus
                .publish(&events)
                .await
                .map_err(ReconciliationError::from)?;
            count(report, "bus", 1);
        }
        if let Some(erp) = &self.erp {
            for kind in [ErpDocumentKind::SalesOrder, ErpDocumentKind::CreditMemo] {
                let wanted: Vec<_> = expected_docs.iter().filter(|e| e.kind == kind).collect();
                if wanted.is_empty() {
                    continue;
                }
                let queries: Vec<_> = wanted.iter().map(|e| e.query.clone()).collect();
                erp.breaker.permit(now).map_err(PageError::System)?;
                let result = erp.connector.ledger_documents(kind, &queries).await;
                erp.breaker.record(now, result.as_ref().map(|_| ()));
                count(report, "erp", 1);
                let docs = result.map_err(PageError::System)?;
                let owned: Vec<_> = wanted.into_iter().cloned().collect();
                found.extend(checks::compare_documents(
                    &owned,
                    &docs,
                    self.config.tolerance_minor,
                ));
            }
        }
        if let (Some(loyalty), false) = (&self.loyalty, expected_journals.is_empty()) {
            let numbers: Vec<String> = expected_journals
                .iter()
                .map(|j| j.external_transaction_number.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            loyalty.breaker.permit(now).map_err(PageError::System)?;
            let result = loyalty.connector.ledger_journals(&numbers).await;
            loyalty.breaker.record(now, result.as_ref().map(|_| ()));
            count(report, "loyalty", 1);
            let journals = result.map_err(PageError::System)?;
            found.extend(checks::compare_journals(&expected_journals, &journals));
        }
        self.report_found(report, found).await?;
        Ok(())
    }

    /// The return sagas of the order's refunds whose steps are due: from
    /// the page when they are on it, else read one by one.
    async fn returns_due(
        &self,
        report: &mut ReconciliationReport,
        order: &SagaRecord,
        page: &BTreeMap<String, &SagaRecord>,
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<String, SagaRecord>, ReconciliationError> {
        let mut returns = BTreeMap::new();
        let first_due = checks::RETURN_STEPS
            .iter()
            .map(|s| self.config.sla(s))
            .min()
            .unwrap_or(self.config.default_sla);
        for (_, refund_id, at) in checks::refunds_issued(order) {
            if at + first_due > now {
                continue;
            }
            let key = format!("{}:return:{refund_id}", order.saga_key);
            let saga = match page.get(&key) {
                Some(s) => Some((*s).clone()),
                None => {
                    count(report, "state_store", 1);
                    self.store.saga(&key).await?
                }
            };
            if let Some(s) = saga {
                returns.insert(key, s);
            }
        }
        Ok(returns)
    }

    /// Re-drives a stuck step (its trigger, once per page) or, past the
    /// limit or without a kept event, raises it.
    async fn redrive(
        &self,
        report: &mut ReconciliationReport,
        order: &SagaRecord,
        stuck: &StuckStep,
        republish: &mut BTreeMap<String, BusEvent>,
    ) -> Result<Discrepancy, ReconciliationError> {
        let counter = match stuck.saga_key.strip_prefix(&format!("{}:", order.saga_key)) {
            Some(rest) => format!("{rest}:{}", stuck.step),
            None => stuck.step.clone(),
        };
        let envelope = stuck
            .trigger
            .as_ref()
            .and_then(|(_, id)| order.envelopes.get(id).map(|e| (id.clone(), e.clone())));
        let detail = match envelope {
            None => {
                report.escalated += 1;
                "not done within its SLA and its event was not kept: replay it from the DLQ"
                    .to_string()
            }
            Some((event_id, env)) => {
                count(report, "state_store", 1);
                let allowed = self
                    .store
                    .record_redrive(
                        &order.saga_key,
                        &counter,
                        self.config.redrive_limit,
                        self.now(),
                    )
                    .await?;
                if allowed {
                    report.redriven += 1;
                    if let Some(event) = bus_event(&event_id, &env, self.now()) {
                        republish.insert(event_id, event);
                    }
                    format!(
                        "not done within its SLA: its event {} was published again",
                        stuck.trigger.as_ref().map(|t| t.1.as_str()).unwrap_or("")
                    )
                } else {
                    report.escalated += 1;
                    format!(
                        "not done after {} re-drives: needs a person",
                        self.config.redrive_limit
                    )
                }
            }
        };
        Ok(Discrepancy {
            kind: DiscrepancyKind::StuckStep,
            system: "retailflow".into(),
            order_key: stuck.order_key.clone(),
            subject: format!("{} of {}", stuck.step, stuck.saga_key),
            external_id: None,
            expected: Some(format!("done by {}", stuck.due_at.to_rfc3339())),
            found: order
                .steps
                .get(&stuck.step)
                .filter(|_| stuck.saga_key == order.saga_key)
                .map(|s| format!("{:?}", s.status).to_lowercase())
                .or(Some("not started".into())),
            detail,
        })
    }

    async fn report_found(
        &self,
        report: &mut ReconciliationReport,
        found: Vec<Discrepancy>,
    ) -> Result<(), ReconciliationError> {
        if found.is_empty() {
            return Ok(());
        }
        let at = self.now();
        let mut events = Vec::new();
        for d in &found {
            let id = Uuid::new_v5(
                &Uuid::NAMESPACE_URL,
                format!(
                    "{}\n{}\n{}\n{}\n{:?}",
                    report.run_id,
                    d.kind.as_str(),
                    d.order_key,
                    d.subject,
                    d.external_id
                )
                .as_bytes(),
            );
            let detail = DiscrepancyFound {
                run_id: report.run_id.clone(),
                discrepancy: d.clone(),
            };
            let meta = crate::events::EnvelopeMeta {
                event_id: id,
                occurred_at: at,
                source: SOURCE.to_string(),
                causation_id: Some(report.run_id.clone()),
            };
            events.push(BusEvent {
                event_id: id,
                detail_type: "DiscrepancyFound".into(),
                source: SOURCE.into(),
                detail: crate::events::envelope(&detail, &meta, &d.order_key).to_string(),
                time: at,
            });
        }
        for chunk in events.chunks(10) {
            self.bus.publish(chunk).await?;
            count(report, "bus", 1);
        }
        for d in found {
            tracing::warn!(
                kind = d.kind.as_str(),
                system = %d.system,
                correlation_id = %d.order_key,
                subject = %d.subject,
                "reconciliation discrepancy"
            );
            *report.counts.entry(d.kind).or_insert(0) += 1;
            if report.discrepancies.len() < MAX_REPORTED {
                report.discrepancies.push(d);
            }
        }
        Ok(())
    }
}

enum PageError {
    System(ConnectorError),
    Run(ReconciliationError),
}

impl From<ReconciliationError> for PageError {
    fn from(e: ReconciliationError) -> Self {
        PageError::Run(e)
    }
}

fn count(report: &mut ReconciliationReport, what: &str, n: u64) {
    *report.requests.entry(what.to_string()).or_insert(0) += n;
}

/// The kept intake envelope as the bus event intake published.
fn bus_event(event_id: &str, envelope: &str, at: DateTime<Utc>) -> Option<BusEvent> {
    let v: serde_json::Value = serde_json::from_str(envelope).ok()?;
    Some(BusEvent {
        event_id: Uuid::parse_str(event_id).ok()?,
        detail_type: v["event_type"].as_str()?.to_string(),
        source: INTAKE_SOURCE.to_string(),
        detail: envelope.to_string(),
        time: at,
    })
}
