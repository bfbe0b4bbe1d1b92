//! The operators' actions: each a same-origin POST carrying the session's
//! token, refused to viewers, and recorded (who, when, what, how it went)
//! on the order's timeline.

use super::*;

#[derive(Deserialize)]
pub(super) struct RetryForm {
    id: String,
    #[serde(default)]
    csrf: String,
}

/// Sends one dead letter back to its queue, runs what it starts, and
/// records what came of it on the order's timeline.
pub(super) async fn retry(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<RetryForm>,
) -> Response {
    let s = match acting(&c, &headers, &f.csrf, Some(Role::Operator)) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let letters = match c.app.list(usize::MAX).await {
        Ok(l) => l,
        Err(e) => return refused(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let Some(letter) = letters.iter().find(|d| d.id == f.id).cloned() else {
        return refused(
            StatusCode::NOT_FOUND,
            &format!("no dead letter {}: retried or resolved already?", f.id),
        );
    };
    let asked_at = c.app.clock.now();
    let filter = DeadLetterFilter {
        id: Some(f.id.clone()),
        ..Default::default()
    };
    let result = match c.app.redrive(&filter, 1).await {
        Ok(r) if r.redriven.is_empty() => {
            return refused(
                StatusCode::CONFLICT,
                &format!(
                    "dead letter {} was no longer on its queue: nothing re-driven",
                    f.id
                ),
            )
        }
        Ok(_) => {
            c.app.drain().await;
            died_again(&c.app, &letter, &letters).await
        }
        Err(e) => format!("not re-driven: {e}"),
    };
    let action = OperatorAction {
        id: uuid::Uuid::new_v4(),
        at: asked_at,
        who: s.user.clone(),
        action: "retry".into(),
        subject: format!("dead letter {} on {}", letter.id, letter.queue),
        order_key: letter.correlation_id.clone(),
        note: None,
        result,
    };
    if let Err(e) = c.app.store.record(&action).await {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("retried, but the action could not be recorded: {e}"),
        );
    }
    let back = match &letter.correlation_id {
        Some(key) => format!("/console/orders/{}", pages::enc(key)),
        None => "/console".into(),
    };
    Redirect::to(&back).into_response()
}

/// What came of a re-driven letter: done, or dead again with the reason.
async fn died_again(app: &LocalApp, letter: &DeadLetterView, before: &[DeadLetterView]) -> String {
    let Ok(now) = app.list(usize::MAX).await else {
        return "re-driven; its outcome could not be read".into();
    };
    let again = now.into_iter().find(|d| {
        !before.iter().any(|b| b.id == d.id)
            && (&d.queue, &d.correlation_id, &d.event_type)
                == (&letter.queue, &letter.correlation_id, &letter.event_type)
    });
    if let Some(d) = again {
        return format!(
            "failed again: {}",
            d.reason.unwrap_or_else(|| "no reason given".into())
        );
    }
    // On the real clock a drain leaves a message in backoff queued: it is
    // not done until it has left its queue.
    let queues = crate::runtime::lock(&app.queues);
    let waiting = queues.get(&letter.queue).is_some_and(|q| {
        q.bodies().any(|body| {
            let v = DeadLetterView::from_body(
                String::new(),
                letter.queue.clone(),
                None,
                body.to_string(),
            );
            (&v.correlation_id, &v.event_type) == (&letter.correlation_id, &letter.event_type)
        })
    });
    if waiting {
        "re-driven; still retrying (waiting out a backoff on its queue)".into()
    } else {
        "re-driven and done".into()
    }
}

#[derive(Deserialize)]
pub(super) struct BulkForm {
    #[serde(default)]
    class: String,
    #[serde(default)]
    step: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    csrf: String,
}

/// Sends every dead letter the inbox's view shows back to its queue. The
/// ERP steps they start take the ERP's concurrency budget like any other
/// (each call waits for a slot), so a bulk retry never runs more calls at
/// once than the ERP allows. Each letter's outcome is recorded on its
/// order's timeline.
pub(super) async fn bulk_retry(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<BulkForm>,
) -> Response {
    let s = match acting(&c, &headers, &f.csrf, Some(Role::Operator)) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let query = match pages::inbox_query([
        ("class", f.class.as_str()),
        ("step", f.step.as_str()),
        ("q", f.q.as_str()),
    ]) {
        Ok(q) => q,
        Err(e) => return refused(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let all = crate::local_console::exceptions(&c.app).await;
    let chosen: Vec<String> = retailflow_console::inbox::matching(&all, &query)
        .into_iter()
        .filter(|e| {
            matches!(
                e.origin,
                retailflow_console::inbox::Origin::DeadLetter { .. }
            )
        })
        .map(|e| e.id.clone())
        .collect();
    let before = match c.app.list(usize::MAX).await {
        Ok(l) => l,
        Err(e) => return refused(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let asked_at = c.app.clock.now();
    let started = std::time::Instant::now();
    let mut sent = Vec::new();
    let mut not_sent = Vec::new();
    for id in &chosen {
        let filter = DeadLetterFilter {
            id: Some(id.clone()),
            ..Default::default()
        };
        match c.app.redrive(&filter, 1).await {
            Ok(r) if !r.redriven.is_empty() => sent.extend(r.redriven),
            Ok(_) => not_sent.push(format!("{id}: no longer on its queue")),
            Err(e) => not_sent.push(format!("{id}: {e}")),
        }
    }
    c.app.drain().await;
    let mut done = 0usize;
    let mut failed = Vec::new();
    for letter in &sent {
        let result = died_again(&c.app, letter, &before).await;
        if result.starts_with("failed again") {
            failed.push(format!(
                "{}: {result}",
                letter.correlation_id.as_deref().unwrap_or(&letter.id)
            ));
        } else {
            done += 1;
        }
        let action = OperatorAction {
            id: uuid::Uuid::new_v4(),
            at: asked_at,
            who: s.user.clone(),
            action: "bulk_retry".into(),
            subject: format!(
                "dead letter {} on {} (one of {} chosen by class {:?}, step {:?}, search {:?})",
                letter.id,
                letter.queue,
                chosen.len(),
                f.class,
                f.step,
                f.q
            ),
            order_key: letter.correlation_id.clone(),
            note: None,
            result,
        };
        if let Err(e) = c.app.store.record(&action).await {
            not_sent.push(format!("{}: retried, not recorded: {e}", letter.id));
        }
    }
    let mut lines = vec![
        format!(
            "{} of {} dead letters re-driven: {done} done, {} failed again, in {:.1} s",
            sent.len(),
            chosen.len(),
            failed.len(),
            started.elapsed().as_secs_f64()
        ),
        match c.app.budgets.erp.as_ref() {
            Some(b) => format!(
                "paced by the ERP's concurrency budget: at most {} calls at once",
                b.limit_now()
            ),
            None => "the ERP has no concurrency budget configured".into(),
        },
    ];
    lines.extend(failed);
    lines.extend(not_sent);
    html(StatusCode::OK, pages::message("Bulk retry", &lines))
}

/// What retrying `letter` would do in the system of record: the document
/// or journal its step looks up first, found (already there: resolve it
/// rather than retry) or not (a retry creates it).
async fn look_up(app: &LocalApp, letter: &DeadLetterView) -> String {
    use retailflow_core::ports::erp::ErpConnector;
    use retailflow_core::ports::loyalty::LoyaltyConnector;
    let Some(order) = letter
        .correlation_id
        .as_deref()
        .and_then(retailflow_core::model::OrderRef::from_key)
    else {
        return "the dead letter names no order: nothing to look up".into();
    };
    let body: serde_json::Value = serde_json::from_str(&letter.body).unwrap_or_default();
    let detail = if body["detail"]["detail"].is_object() {
        &body["detail"]["detail"]
    } else {
        &body["detail"]
    };
    let erp = app.erp.system();
    match (letter.queue.as_str(), letter.event_type.as_deref()) {
        (crate::local_app::ERP_POST_QUEUE, _) => {
            let ext = retailflow_core::steps::erp_posting::sales_order_external_id(&order);
            match app.erp.find_sales_order(&ext).await {
                Ok(Some(doc)) => format!(
                    "already posted: {erp} sales order {} ({}) under {ext}: resolve it rather than retry",
                    doc.number, doc.total
                ),
                Ok(None) => format!("{erp} has no sales order {ext}: a retry creates it"),
                Err(e) => format!("{erp} could not be asked: {e}"),
            }
        }
        (crate::local_app::LOYALTY_ACCRUAL_QUEUE, _) => {
            let ext = retailflow_core::steps::loyalty_accrual::accrual_external_id(&order);
            match app.loyalty.find_accrual(&ext).await {
                Ok(Some(j)) => format!(
                    "already accrued: journal {} ({} points) under {ext}: resolve it rather than retry",
                    j.journal_id,
                    j.points.map_or("?".into(), |p| p.to_string())
                ),
                Ok(None) => format!("no accrual {ext} yet: a retry posts it"),
                Err(e) => format!("the loyalty platform could not be asked: {e}"),
            }
        }
        (_, Some("RefundIssued")) => {
            let Some(refund) = detail["refund"]["refund_id"].as_str() else {
                return "the refund's id is not in the dead letter: nothing to look up".into();
            };
            let ext =
                retailflow_core::steps::return_reversal::credit_memo_external_id(&order, refund);
            match app.erp.find_credit_memo(&ext).await {
                Ok(Some(doc)) => format!(
                    "already credited: {erp} credit memo {} ({}) under {ext}",
                    doc.number, doc.total
                ),
                Ok(None) => format!("{erp} has no credit memo {ext}: a retry creates it"),
                Err(e) => format!("{erp} could not be asked: {e}"),
            }
        }
        (queue, _) => format!("nothing to look up before retrying a letter of {queue}"),
    }
}

/// Looks the system of record up before a retry, and says what a retry
/// would do; recorded like any action.
pub(super) async fn check(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<RetryForm>,
) -> Response {
    let s = match acting(&c, &headers, &f.csrf, Some(Role::Operator)) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let letters = match c.app.list(usize::MAX).await {
        Ok(l) => l,
        Err(e) => return refused(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let Some(letter) = letters.into_iter().find(|d| d.id == f.id) else {
        return refused(
            StatusCode::NOT_FOUND,
            &format!("no dead letter {}: retried or resolved already?", f.id),
        );
    };
    let result = look_up(&c.app, &letter).await;
    let action = OperatorAction {
        id: uuid::Uuid::new_v4(),
        at: c.app.clock.now(),
        who: s.user.clone(),
        action: "check".into(),
        subject: format!("dead letter {} on {}", letter.id, letter.queue),
        order_key: letter.correlation_id.clone(),
        note: None,
        result: result.clone(),
    };
    if let Err(e) = c.app.store.record(&action).await {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("looked up, but the action could not be recorded: {e}"),
        );
    }
    html(
        StatusCode::OK,
        pages::message(&format!("Before retrying {}", letter.id), &[result]),
    )
}

#[derive(Deserialize)]
pub(super) struct ResolveForm {
    id: String,
    /// `resolve` (fixed by other means) or `dismiss` (nothing to do).
    #[serde(default)]
    how: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    csrf: String,
}

/// Takes a dead letter off the inbox for good, with the operator's note
/// saying why: fixed by other means (resolve) or nothing to do (dismiss).
pub(super) async fn resolve(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<ResolveForm>,
) -> Response {
    let s = match acting(&c, &headers, &f.csrf, Some(Role::Operator)) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let how = match f.how.as_str() {
        "" | "resolve" => "resolve",
        "dismiss" => "dismiss",
        other => {
            return refused(
                StatusCode::BAD_REQUEST,
                &format!("{other:?} is neither resolve nor dismiss"),
            )
        }
    };
    let note = f.note.trim();
    if note.is_empty() {
        return refused(
            StatusCode::BAD_REQUEST,
            "say why in a note: the order's timeline keeps it",
        );
    }
    let letters = match c.app.list(usize::MAX).await {
        Ok(l) => l,
        Err(e) => return refused(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    // A dead letter, or a quarantined delivery.
    let (subject, order_key, quarantined) = match letters.into_iter().find(|d| d.id == f.id) {
        Some(d) => (
            format!("dead letter {} on {}", d.id, d.queue),
            d.correlation_id.clone(),
            None,
        ),
        None => {
            let found = uuid::Uuid::parse_str(&f.id)
                .ok()
                .and_then(|id| c.app.store.quarantined().into_iter().find(|q| q.id == id));
            let Some(q) = found else {
                return refused(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "no dead letter or quarantined delivery {}: taken off already?",
                        f.id
                    ),
                );
            };
            (
                format!("quarantined {} delivery {}", q.source, q.id),
                retailflow_core::trace::quarantined_order_key(&q),
                Some(q.id),
            )
        }
    };
    // Recorded first: nothing may leave without its note.
    let action = OperatorAction {
        id: uuid::Uuid::new_v4(),
        at: c.app.clock.now(),
        who: s.user.clone(),
        action: how.into(),
        subject,
        order_key,
        note: Some(note.to_string()),
        result: "taken off the inbox".into(),
    };
    if let Err(e) = c.app.store.record(&action).await {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("not taken off: the action could not be recorded: {e}"),
        );
    }
    let taken = match quarantined {
        Some(id) => c
            .app
            .store
            .discard_quarantined(id)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        None => c
            .app
            .discard_dead_letter(&f.id)
            .map(|_| ())
            .map_err(|e| e.to_string()),
    };
    match taken {
        Ok(()) => Redirect::to("/console").into_response(),
        Err(e) => refused(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("recorded, but not taken off: {e}"),
        ),
    }
}

#[derive(Deserialize)]
pub(super) struct ReconcileForm {
    #[serde(default)]
    hours: String,
    #[serde(default)]
    csrf: String,
}

/// Reconciles the orders of the last `hours` now, and shows its report.
pub(super) async fn reconcile(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<ReconcileForm>,
) -> Response {
    let s = match acting(&c, &headers, &f.csrf, Some(Role::Operator)) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let hours: i64 = match f.hours.trim().parse() {
        Ok(h) if (1..=744).contains(&h) => h,
        _ => {
            return refused(
                StatusCode::BAD_REQUEST,
                &format!(
                    "{:?} hours: give a whole number from 1 to 744 (31 days)",
                    f.hours
                ),
            )
        }
    };
    let report = match c.app.reconcile(chrono::Duration::hours(hours)).await {
        Ok(r) => r,
        Err(e) => {
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the reconciliation did not run: {e}"),
            )
        }
    };
    let action = OperatorAction {
        id: uuid::Uuid::new_v4(),
        at: c.app.clock.now(),
        who: s.user.clone(),
        action: "reconcile".into(),
        subject: format!("the last {hours} hours"),
        order_key: None,
        note: None,
        result: format!(
            "report {}: {} discrepancies",
            report.run_id,
            report.discrepancies.len()
        ),
    };
    if let Err(e) = c.app.store.record(&action).await {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("reconciled, but the action could not be recorded: {e}"),
        );
    }
    let to = format!("/console/reports/{}", pages::enc(&report.run_id));
    Redirect::to(&to).into_response()
}
