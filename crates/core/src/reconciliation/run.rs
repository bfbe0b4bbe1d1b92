//! One reconciliation run: pages of sagas, hour by hour, each page checked
//! and its findings published and saved before the next, so a run cut
//! short (deadline, throttled system, crash) goes on from its last page.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::checks::{self, saga_kind, SagaKind, StuckStep};
use super::{
    Discrepancy, DiscrepancyFound, DiscrepancyKind, ReconciliationCompleted, ReconciliationConfig,
    ReconciliationReport, LATEST_CURSOR, RESUME_CURSOR, SOURCE,
};
use crate::ports::dead_letters::DeadLetters;
use crate::ports::erp::{ErpConnector, ErpDocumentKind};
use crate::ports::loyalty::LoyaltyConnector;
use crate::ports::{
    ArchiveError, ArchivedEvent, BusError, BusEvent, EventArchive, EventBus, ReplaySpan,
    StateStore, StoreError,
};
use crate::resilience::ConnectorError;
use crate::resilience::Guarded;
use crate::saga::{hour_start, SagaRecord};

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
    /// The archive could not replay a stuck step's event.
    #[error("{0}")]
    Archive(ArchiveError),
}

impl ReconciliationError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ReconciliationError::Store(e) => e.is_retryable(),
            ReconciliationError::Bus(e) => e.is_retryable(),
            ReconciliationError::Archive(e) => e.is_retryable(),
        }
    }
}

/// Events a page's re-drives replay, closer than this, share one replay.
const REPLAY_GAP: Duration = Duration::seconds(60);
/// Most archive replays one page starts (EventBridge runs 10 at once per
/// account): beyond it, the nearest groups are merged.
const MAX_REPLAYS_PER_PAGE: usize = 3;

/// The events to replay, in time order, in groups of events close in time
/// (each with the union of its steps' targets): at most
/// [`MAX_REPLAYS_PER_PAGE`], merging the groups nearest each other first.
fn replay_groups(
    mut wanted: Vec<(ArchivedEvent, Vec<String>)>,
) -> Vec<(Vec<ArchivedEvent>, Vec<String>)> {
    wanted.retain(|(_, targets)| !targets.is_empty());
    wanted.sort_by_key(|(e, _)| e.published_at);
    let mut groups: Vec<(Vec<ArchivedEvent>, Vec<String>)> = Vec::new();
    for (event, targets) in wanted {
        let joins = groups
            .last()
            .and_then(|(events, _)| events.last())
            .is_some_and(|last| event.published_at - last.published_at <= REPLAY_GAP);
        if !joins {
            groups.push((Vec::new(), Vec::new()));
        }
        if let Some((events, all)) = groups.last_mut() {
            if !events.contains(&event) {
                events.push(event);
            }
            for t in targets {
                if !all.contains(&t) {
                    all.push(t);
                }
            }
        }
    }
    while groups.len() > MAX_REPLAYS_PER_PAGE {
        // The two neighbours with the smallest gap between them.
        let gap = |i: usize| {
            let a = groups[i].0.last().map(|e| e.published_at);
            let b = groups[i + 1].0.first().map(|e| e.published_at);
            match (a, b) {
                (Some(a), Some(b)) => b - a,
                _ => Duration::zero(),
            }
        };
        let i = (0..groups.len() - 1).min_by_key(|&i| gap(i)).unwrap_or(0);
        let (events, targets) = groups.remove(i + 1);
        groups[i].0.extend(events);
        for t in targets {
            if !groups[i].1.contains(&t) {
                groups[i].1.push(t);
            }
        }
    }
    groups
}

/// What may be done about a stuck step.
enum Redrive {
    Allowed,
    LimitReached,
    NoTrigger,
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
    archive: Arc<dyn EventArchive>,
    erp: Option<Guarded<dyn ErpConnector>>,
    loyalty: Option<Guarded<dyn LoyaltyConnector>>,
    config: ReconciliationConfig,
    clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    /// The steps' dead-letter queues, when the run may read them: what
    /// waits there is reported at the end of every run.
    dead_letters: Option<Arc<dyn DeadLetters>>,
}

impl Reconciliation {
    pub fn new(
        store: Arc<dyn StateStore>,
        bus: Arc<dyn EventBus>,
        archive: Arc<dyn EventArchive>,
        erp: Option<Guarded<dyn ErpConnector>>,
        loyalty: Option<Guarded<dyn LoyaltyConnector>>,
        config: ReconciliationConfig,
        clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    ) -> Self {
        Reconciliation {
            store,
            bus,
            archive,
            erp,
            loyalty,
            config,
            clock,
            dead_letters: None,
        }
    }

    /// Reports what waits on these dead-letter queues at the end of every
    /// run, as `dead_lettered` or `held_for_review`.
    pub fn with_dead_letters(mut self, dead_letters: Arc<dyn DeadLetters>) -> Self {
        self.dead_letters = Some(dead_letters);
        self
    }

    /// What waits on the dead-letter queues, as findings. A queue that
    /// cannot be read is named in `unchecked`; the run still finishes.
    async fn dead_letter_findings(&self, report: &mut ReconciliationReport) -> Vec<Discrepancy> {
        let Some(queues) = &self.dead_letters else {
            return Vec::new();
        };
        let letters = match queues.list(MAX_REPORTED).await {
            Ok(l) => l,
            Err(e) => {
                report
                    .unchecked
                    .push(format!("dead-letter queues not read: {e}"));
                return Vec::new();
            }
        };
        count(report, "dead_letters", 1);
        letters
            .into_iter()
            .map(|d| {
                let kind = if crate::replay::held_for_review(d.reason.as_deref()) {
                    DiscrepancyKind::HeldForReview
                } else {
                    DiscrepancyKind::DeadLettered
                };
                Discrepancy {
                    kind,
                    system: "retailflow".into(),
                    order_key: d.correlation_id.clone().unwrap_or_default(),
                    subject: format!(
                        "{} on {}",
                        d.event_type.as_deref().unwrap_or("a message"),
                        d.queue
                    ),
                    external_id: None,
                    expected: None,
                    found: Some(format!("dead letter {}", d.id)),
                    detail: d
                        .reason
                        .unwrap_or_else(|| "received too many times without an answer".into()),
                }
            })
            .collect()
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
                let from = hour_start(window.0);
                let to = hour_start(window.1 + Duration::hours(1) - Duration::nanoseconds(1));
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
                    cancellations_checked: 0,
                    redriven: 0,
                    escalated: 0,
                    requests: BTreeMap::new(),
                    invocations: 0,
                    paused_because: None,
                    unchecked: Vec::new(),
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
                    tracing::warn!(error = %e, "reconciliation paused: a system of record cannot answer now");
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
        let stuck = self.dead_letter_findings(&mut report).await;
        self.report_found(&mut report, stuck).await?;
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
        // What the sagas say: nothing is written or sent until the systems
        // of record have answered, so a page that pauses leaves no trace.
        let (mut orders, mut returns, mut cancellations) = (0, 0, 0);
        let mut expected_docs = Vec::new();
        let mut expected_journals = Vec::new();
        let mut stuck = Vec::new();
        for saga in sagas {
            stuck.extend(checks::stuck_steps(saga, now, &self.config));
            match saga_kind(&saga.saga_key) {
                SagaKind::Order => {
                    if saga.order_facts.is_none() && saga.first_seen.is_empty() {
                        continue;
                    }
                    orders += 1;
                    expected_docs.extend(checks::expected_sales_order(saga));
                    expected_journals.extend(checks::expected_accrual(saga));
                }
                SagaKind::Return { order_key } => {
                    returns += 1;
                    expected_docs.extend(checks::expected_credit_memo(saga, order_key));
                    expected_journals.extend(checks::expected_reversal(saga, order_key));
                }
                SagaKind::Cancellation { order_key } => {
                    cancellations += 1;
                    expected_journals.extend(checks::expected_reversal(saga, order_key));
                }
                SagaKind::Other => {}
            }
        }
        let mut found: Vec<Discrepancy> = Vec::new();
        let mut requests: BTreeMap<String, u64> = BTreeMap::new();
        let mut unchecked = Vec::new();
        if let Some(erp) = &self.erp {
            for kind in [ErpDocumentKind::SalesOrder, ErpDocumentKind::CreditMemo] {
                let wanted: Vec<_> = expected_docs
                    .iter()
                    .filter(|e| e.kind == kind)
                    .cloned()
                    .collect();
                if wanted.is_empty() {
                    continue;
                }
                let queries: Vec<_> = wanted.iter().map(|e| e.query.clone()).collect();
                *requests.entry("erp".into()).or_insert(0) += 1;
                let result = erp
                    .guard(
                        now,
                        |c| async move { c.ledger_documents(kind, &queries).await },
                    )
                    .await;
                match result {
                    Ok(docs) => found.extend(checks::compare_documents(
                        &wanted,
                        &docs,
                        self.config.tolerance_minor,
                    )),
                    Err(e) if e.is_retryable() => return Err(PageError::System(e)),
                    Err(e) => unchecked.push(format!(
                        "{} {kind:?}s of {} sagas: {e}",
                        erp.connector.system(),
                        sagas.len()
                    )),
                }
            }
        }
        if let (Some(loyalty), false) = (&self.loyalty, expected_journals.is_empty()) {
            let numbers: Vec<String> = expected_journals
                .iter()
                .map(|j| j.external_transaction_number.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            *requests.entry("loyalty".into()).or_insert(0) += 1;
            let result = loyalty
                .guard(now, |c| async move { c.ledger_journals(&numbers).await })
                .await;
            match result {
                Ok(journals) => {
                    found.extend(checks::compare_journals(&expected_journals, &journals))
                }
                Err(e) if e.is_retryable() => return Err(PageError::System(e)),
                Err(e) => unchecked.push(format!(
                    "{} journals of {} sagas: {e}",
                    loyalty.connector.system(),
                    sagas.len()
                )),
            }
        }
        // The page is read: now its effects.
        report.sagas_checked += sagas.len() as u64;
        report.orders_checked += orders;
        report.returns_checked += returns;
        report.cancellations_checked += cancellations;
        for (k, n) in requests {
            count(report, &k, n);
        }
        for u in unchecked {
            tracing::warn!(what = %u, "reconciliation could not check a page");
            report.unchecked.push(u);
        }
        let by_key: BTreeMap<&str, &SagaRecord> =
            sagas.iter().map(|s| (s.saga_key.as_str(), s)).collect();
        // Which stuck steps may be re-driven (re-drives left), then archive
        // replays of their events: a few per page, each of the events close
        // in time (EventBridge replays whole spans, to the union of the
        // steps' rules, and runs 10 replays at once); a re-drive is counted
        // on its saga once its replay started, so a replay EventBridge
        // refused (too many running) uses none up.
        let mut verdicts = Vec::new();
        let mut wanted: Vec<(ArchivedEvent, Vec<String>)> = Vec::new();
        for s in &stuck {
            let Some(saga) = by_key.get(s.saga_key.as_str()) else {
                continue;
            };
            let verdict = self.may_redrive(saga, s);
            if let (Redrive::Allowed, Some(trigger)) = (&verdict, &s.trigger) {
                let mut steps = vec![s.step.clone()];
                // A cancellation also gives the order's stock back, a step
                // its saga does not track: if the cancellation stuck because
                // its event never went out, stock-commit never had it either
                // (restocking is idempotent, so sending it again is harmless).
                if matches!(saga_kind(&saga.saga_key), SagaKind::Cancellation { .. }) {
                    steps.push(crate::steps::stock_commit::STEP.to_string());
                }
                steps.retain(|step| self.archive.knows(step));
                wanted.push((trigger.clone(), steps));
            }
            verdicts.push((*saga, s, verdict));
        }
        let mut replayed: BTreeMap<String, String> = BTreeMap::new();
        for (events, targets) in replay_groups(wanted) {
            let Some(span) = ReplaySpan::of(&events) else {
                continue;
            };
            count(report, "archive", 1);
            let replay = self
                .archive
                .replay(&targets, &span)
                .await
                .map_err(ReconciliationError::Archive)?;
            if let Some(r) = replay {
                for e in &events {
                    replayed.insert(e.event_id.clone(), r.clone());
                }
            }
        }
        for (saga, s, verdict) in &verdicts {
            if let (Redrive::Allowed, Some(t)) = (verdict, &s.trigger) {
                if replayed.contains_key(&t.event_id) {
                    count(report, "state_store", 1);
                    self.store
                        .record_redrive(
                            &saga.saga_key,
                            &s.step,
                            self.config.redrive_limit,
                            self.now(),
                        )
                        .await
                        .map_err(ReconciliationError::Store)?;
                }
            }
        }
        for (saga, s, verdict) in verdicts {
            let replay = s
                .trigger
                .as_ref()
                .and_then(|t| replayed.get(&t.event_id))
                .map(String::as_str);
            found.push(self.stuck_discrepancy(report, saga, s, verdict, replay));
        }
        self.report_found(report, found).await?;
        Ok(())
    }

    /// Whether a stuck step may be re-driven: it needs its triggering event
    /// (remembered on the saga) and re-drives left (as the page read them).
    fn may_redrive(&self, saga: &SagaRecord, stuck: &StuckStep) -> Redrive {
        if stuck.trigger.is_none() {
            return Redrive::NoTrigger;
        }
        let used = saga.redrives.get(&stuck.step).copied().unwrap_or(0);
        if used < self.config.redrive_limit {
            Redrive::Allowed
        } else {
            Redrive::LimitReached
        }
    }

    /// The finding of a stuck step, saying what was done about it.
    fn stuck_discrepancy(
        &self,
        report: &mut ReconciliationReport,
        saga: &SagaRecord,
        stuck: &StuckStep,
        verdict: Redrive,
        replay: Option<&str>,
    ) -> Discrepancy {
        let detail = match (verdict, &stuck.trigger) {
            (Redrive::Allowed, Some(trigger)) => match replay {
                Some(replay) if self.archive.knows(&stuck.step) => {
                    report.redriven += 1;
                    format!(
                        "not done within its SLA: its {} {} was sent again from the bus archive ({replay})",
                        trigger.event_type, trigger.event_id
                    )
                }
                _ => {
                    report.escalated += 1;
                    format!(
                        "not done within its SLA and no rule is known to send {} its events again: needs a person",
                        stuck.step
                    )
                }
            },
            (Redrive::LimitReached, _) => {
                report.escalated += 1;
                format!(
                    "not done after {} re-drives: needs a person",
                    self.config.redrive_limit
                )
            }
            _ => {
                report.escalated += 1;
                "not done within its SLA and its triggering event is not known: replay it from the DLQ or the shop"
                    .to_string()
            }
        };
        Discrepancy {
            kind: DiscrepancyKind::StuckStep,
            system: "retailflow".into(),
            order_key: stuck.order_key.clone(),
            subject: format!("{} of {}", stuck.step, stuck.saga_key),
            external_id: None,
            expected: Some(format!("done by {}", stuck.due_at.to_rfc3339())),
            found: Some(
                saga.steps
                    .get(&stuck.step)
                    .map_or("not started".to_string(), |s| {
                        format!("{:?}", s.status).to_lowercase()
                    }),
            ),
            detail,
        }
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
                // The same difference found by the next run is the same
                // event (consumers deduplicate by id); a changed one is new.
                format!(
                    "{}\n{}\n{}\n{:?}\n{:?}",
                    d.kind.as_str(),
                    d.order_key,
                    d.subject,
                    d.external_id,
                    d.found
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
            crate::observability::count("Discrepancies", ("Kind", d.kind.as_str()));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64, target: &str) -> (ArchivedEvent, Vec<String>) {
        let t0 = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        (
            ArchivedEvent {
                event_id: format!("e{minutes}"),
                event_type: "OrderPlaced".into(),
                published_at: t0 + Duration::minutes(minutes),
            },
            vec![target.to_string()],
        )
    }

    #[test]
    fn events_close_in_time_share_a_replay_and_a_page_starts_at_most_three() {
        let groups = replay_groups(vec![at(0, "erp_post"), at(600, "erp_post")]);
        assert_eq!(
            groups.len(),
            2,
            "ten hours apart: two short spans, not one long"
        );
        let groups = replay_groups(vec![
            at(0, "erp_post"),
            at(1, "loyalty_accrual"),
            at(100, "erp_post"),
            at(200, "erp_post"),
            at(205, "erp_post"),
            at(300, "erp_post"),
        ]);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].0.len(), 2);
        assert_eq!(
            groups[0].1,
            ["erp_post", "loyalty_accrual"],
            "both steps' rules"
        );
        // 200, 205 (5 apart) merged first, then the nearest: 100 or 300.
        assert_eq!(
            groups.iter().map(|g| g.0.len()).sum::<usize>(),
            6,
            "every event in a replay"
        );
        assert!(replay_groups(vec![(at(0, "x").0, vec![])]).is_empty());
    }
}
