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

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
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
    /// queue; the others are fixed at their source.
    fn retryable(&self, e: &Exception) -> bool {
        matches!(e.origin, crate::inbox::Origin::DeadLetter { .. })
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
