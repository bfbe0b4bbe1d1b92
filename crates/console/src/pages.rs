//! The console's HTML pages. Every value is escaped by the templates
//! (askama escapes `.html` templates by default), so a customer named
//! `<script>` is shown as text.

use askama::Template;
use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::inbox::{Exception, ExceptionClass, InboxPage, InboxQuery, Sort};
use crate::order::OrderView;

/// Why a request to the console cannot be answered as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// A query parameter that means nothing here (answered 400).
    #[error("{0}")]
    BadQuery(String),
    /// A template failed to render: a bug, never the caller's input.
    #[error("the page could not be rendered: {0}")]
    Render(String),
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError::Render(e.to_string())
    }
}

/// Reads the inbox's query string (`class`, `step`, `q`, `sort`, `page`).
pub fn inbox_query<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<InboxQuery, PageError> {
    let mut q = InboxQuery::default();
    for (k, v) in pairs {
        let v = v.trim();
        match k {
            "class" if v.is_empty() => {}
            "class" => {
                q.class = Some(ExceptionClass::parse(v).ok_or_else(|| {
                    PageError::BadQuery(format!(
                        "class {v:?} is not one of {}",
                        ExceptionClass::ALL.map(ExceptionClass::as_str).join(", ")
                    ))
                })?)
            }
            "step" => q.step = Some(v.to_string()).filter(|s| !s.is_empty()),
            "q" => q.search = Some(v.to_string()).filter(|s| !s.is_empty()),
            "sort" => {
                q.sort = Sort::parse(v).ok_or_else(|| {
                    PageError::BadQuery(format!("sort {v:?} is not value, oldest or newest"))
                })?
            }
            "page" => {
                q.page = v
                    .parse()
                    .map_err(|_| PageError::BadQuery(format!("page {v:?} is not a number")))?
            }
            _ => {}
        }
    }
    Ok(q)
}

/// Who the page is for: their name, whether they may act, and the token
/// their action forms carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user: String,
    pub operator: bool,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxTemplate<'a> {
    actor: &'a Actor,
    page: &'a InboxPage<'a>,
    query: &'a InboxQuery,
    /// Every exception, before any filter.
    total: usize,
    /// What the search matched, before the class and step filters.
    searched: usize,
    now: DateTime<Utc>,
}

/// What stays as it is in a URL: RFC 3986's unreserved characters.
const ENCODED: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `s` as one path segment or query value (an order key's colons, a
/// search's spaces and slashes encoded).
pub fn enc(s: &str) -> String {
    utf8_percent_encode(s, ENCODED).to_string()
}

impl InboxTemplate<'_> {
    fn href(&self, class: Option<&str>, step: Option<&str>, page: usize) -> String {
        let mut parts = Vec::new();
        if let Some(c) = class.filter(|c| !c.is_empty()) {
            parts.push(format!("class={}", enc(c)));
        }
        if let Some(s) = step {
            parts.push(format!("step={}", enc(s)));
        }
        if let Some(q) = &self.query.search {
            parts.push(format!("q={}", enc(q)));
        }
        if self.query.sort != Sort::default() {
            parts.push(format!("sort={}", self.query.sort.as_str()));
        }
        if page > 1 {
            parts.push(format!("page={page}"));
        }
        if parts.is_empty() {
            "/console".into()
        } else {
            format!("/console?{}", parts.join("&"))
        }
    }

    fn href_class(&self, class: &str) -> String {
        self.href(Some(class), None, 1)
    }

    fn href_step(&self, step: &str) -> String {
        self.href(self.query.class.map(ExceptionClass::as_str), Some(step), 1)
    }

    fn href_page(&self, page: usize) -> String {
        self.href(
            self.query.class.map(ExceptionClass::as_str),
            self.query.step.as_deref(),
            page,
        )
    }

    /// Whether the inbox offers a retry: a dead letter goes back to its
    /// queue (unless it waits for review); the others are fixed at their
    /// source.
    fn retryable(&self, e: &Exception) -> bool {
        // One held for review fails again as it is: a person decides.
        matches!(e.origin, crate::inbox::Origin::DeadLetter { .. })
            && e.class != ExceptionClass::Review
    }

    /// Whether an operator can take it off the inbox with a note: a dead
    /// letter or a quarantined delivery (the others clear by themselves
    /// once their cause is fixed).
    fn removable(&self, e: &Exception) -> bool {
        matches!(
            e.origin,
            crate::inbox::Origin::DeadLetter { .. } | crate::inbox::Origin::Quarantined
        )
    }

    fn age(&self, e: &Exception) -> String {
        let d = self.now - e.since;
        match (d.num_days(), d.num_hours(), d.num_minutes()) {
            (days, _, _) if days > 0 => format!("{days} d"),
            (_, hours, _) if hours > 0 => format!("{hours} h"),
            (_, _, minutes) => format!("{} min", minutes.max(0)),
        }
    }
}

/// The inbox page over `all`, as `query` asks, for `actor`.
pub fn inbox(
    actor: &Actor,
    all: &[Exception],
    query: &InboxQuery,
    now: DateTime<Utc>,
) -> Result<String, PageError> {
    let page = crate::inbox::query(all, query);
    let searched = page.by_class.values().sum();
    Ok(InboxTemplate {
        actor,
        page: &page,
        query,
        total: all.len(),
        searched,
        now,
    }
    .render()?)
}

#[derive(Template)]
#[template(path = "order.html")]
struct OrderTemplate<'a> {
    actor: &'a Actor,
    view: &'a OrderView,
}

pub fn order(actor: &Actor, view: &OrderView) -> Result<String, PageError> {
    Ok(OrderTemplate { actor, view }.render()?)
}

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFoundTemplate<'a> {
    what: &'a str,
}

/// A refusal or a page that is not there, said in a sentence.
pub fn not_found(what: &str) -> Result<String, PageError> {
    Ok(NotFoundTemplate { what }.render()?)
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessageTemplate<'a> {
    title: &'a str,
    lines: &'a [String],
}

/// What an action did, in a heading and lines.
pub fn message(title: &str, lines: &[String]) -> Result<String, PageError> {
    Ok(MessageTemplate { title, lines }.render()?)
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginTemplate<'a> {
    error: Option<&'a str>,
}

/// The sign-in form (local dev users; deployed, Cognito's own page).
pub fn login(error: Option<&str>) -> Result<String, PageError> {
    Ok(LoginTemplate { error }.render()?)
}

/// One row of the reports list, or the head of a report's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSummary {
    pub run_id: String,
    pub window: String,
    pub finished: String,
    pub complete: bool,
    pub orders: u64,
    pub returns: u64,
    pub discrepancies: usize,
    pub counts: Vec<(String, u64)>,
    pub items: Vec<DiscrepancyRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscrepancyRow {
    pub kind: String,
    pub system: String,
    pub order_key: String,
    pub subject: String,
    pub expected: String,
    pub found: String,
    pub detail: String,
}

impl ReportSummary {
    pub fn of(r: &retailflow_core::reconciliation::ReconciliationReport) -> Self {
        let t = |d: DateTime<Utc>| d.format("%Y-%m-%d %H:%M").to_string();
        ReportSummary {
            run_id: r.run_id.clone(),
            window: format!("{} to {}", t(r.window_from), t(r.window_to)),
            finished: r.finished_at.map(t).unwrap_or_else(|| "not yet".into()),
            complete: r.complete,
            orders: r.orders_checked,
            returns: r.returns_checked,
            discrepancies: r.discrepancies.len(),
            counts: r
                .counts
                .iter()
                .map(|(k, n)| (k.as_str().to_string(), *n))
                .collect(),
            items: r
                .discrepancies
                .iter()
                .map(|d| DiscrepancyRow {
                    kind: d.kind.as_str().to_string(),
                    system: d.system.clone(),
                    order_key: d.order_key.clone(),
                    subject: d.subject.clone(),
                    expected: d.expected.clone().unwrap_or_default(),
                    found: d.found.clone().unwrap_or_default(),
                    detail: d.detail.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "reports.html")]
struct ReportsTemplate<'a> {
    actor: &'a Actor,
    reports: &'a [ReportSummary],
}

/// The reports, newest first.
pub fn reports(actor: &Actor, reports: &[ReportSummary]) -> Result<String, PageError> {
    Ok(ReportsTemplate { actor, reports }.render()?)
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportTemplate<'a> {
    actor: &'a Actor,
    report: &'a ReportSummary,
}

/// One report, its discrepancies by kind.
pub fn report(actor: &Actor, report: &ReportSummary) -> Result<String, PageError> {
    Ok(ReportTemplate { actor, report }.render()?)
}
