//! What starts a run, and its settings from the function's environment.
//!
//! A run is asked for by the schedule (`Scheduled Event`: the last
//! `lookback` hours), on demand through the bus (`ReconciliationRequested`
//! with `{"from", "to"}` or `{"hours"}`; `{"continue": true}` from a run
//! that paused at its deadline), or by a direct invoke with the same
//! detail.

use chrono::{DateTime, Duration, Utc};

use super::ReconciliationConfig;
use crate::config::ConfigError;

/// The longest window one run may be asked to cover.
pub const MAX_WINDOW: Duration = Duration::days(31);

pub const REQUESTED_EVENT: &str = "ReconciliationRequested";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The request names a window that cannot be read: not retryable.
    #[error("reconciliation request refused: {0}")]
    Invalid(String),
}

fn time(v: &serde_json::Value, field: &str) -> Result<Option<DateTime<Utc>>, RequestError> {
    match v.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(t) => t
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| Some(t.with_timezone(&Utc)))
            .ok_or_else(|| RequestError::Invalid(format!("{field} is not an RFC 3339 time: {t}"))),
    }
}

/// The window a request asks for, given the configured lookback.
pub fn requested_window(
    event: &serde_json::Value,
    now: DateTime<Utc>,
    lookback: Duration,
) -> Result<(DateTime<Utc>, DateTime<Utc>), RequestError> {
    let detail = if event.get("detail-type").is_some() {
        event.get("detail").cloned().unwrap_or_default()
    } else {
        event.clone()
    };
    if let Some(h) = detail.get("hours") {
        let hours = h
            .as_i64()
            .filter(|h| (1..=MAX_WINDOW.num_hours()).contains(h))
            .ok_or_else(|| {
                RequestError::Invalid(format!(
                    "hours must be a whole number from 1 to {}: {h}",
                    MAX_WINDOW.num_hours()
                ))
            })?;
        return Ok((now - Duration::hours(hours), now));
    }
    let from = time(&detail, "from")?;
    let to = time(&detail, "to")?.unwrap_or(now);
    let from = from.unwrap_or(to - lookback);
    if from > to {
        return Err(RequestError::Invalid(format!(
            "from ({from}) is after to ({to})"
        )));
    }
    if to - from > MAX_WINDOW {
        return Err(RequestError::Invalid(format!(
            "the window is longer than {} days: ask for it in parts",
            MAX_WINDOW.num_days()
        )));
    }
    Ok((from, to))
}

/// The settings from the environment (every one optional):
/// `RETAILFLOW_RECONCILIATION_SLA_MINUTES` (all steps, default 30),
/// `RETAILFLOW_RECONCILIATION_STEP_SLAS` (`erp_post=60,stock_commit=10`),
/// `RETAILFLOW_RECONCILIATION_REDRIVE_LIMIT` (3),
/// `RETAILFLOW_RECONCILIATION_TOLERANCE_MINOR` (0).
pub fn config_from_env(
    var: impl Fn(&str) -> Option<String>,
) -> Result<ReconciliationConfig, ConfigError> {
    let number = |name: &str| -> Result<Option<i64>, ConfigError> {
        match var(name).filter(|v| !v.trim().is_empty()) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(Some)
                .ok_or_else(|| ConfigError::Missing(format!("{name} as a whole number ({v:?})"))),
        }
    };
    let mut config = ReconciliationConfig::default();
    let minutes = |name: &str, m: i64| {
        Duration::try_minutes(m)
            .ok_or_else(|| ConfigError::Missing(format!("{name} as a number of minutes ({m})")))
    };
    if let Some(m) = number("RETAILFLOW_RECONCILIATION_SLA_MINUTES")? {
        config.default_sla = minutes("RETAILFLOW_RECONCILIATION_SLA_MINUTES", m)?;
    }
    if let Some(pairs) = var("RETAILFLOW_RECONCILIATION_STEP_SLAS") {
        for pair in pairs.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let parsed = pair
                .split_once('=')
                .and_then(|(s, m)| Some((s.trim(), m.trim().parse::<i64>().ok()?)));
            let Some((step, minutes_value)) = parsed.filter(|(_, m)| *m >= 0) else {
                return Err(ConfigError::Missing(format!(
                    "RETAILFLOW_RECONCILIATION_STEP_SLAS as step=minutes pairs ({pair:?})"
                )));
            };
            config.sla.insert(
                step.to_string(),
                minutes("RETAILFLOW_RECONCILIATION_STEP_SLAS", minutes_value)?,
            );
        }
    }
    if let Some(n) = number("RETAILFLOW_RECONCILIATION_REDRIVE_LIMIT")? {
        config.redrive_limit = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some(n) = number("RETAILFLOW_RECONCILIATION_TOLERANCE_MINOR")? {
        config.tolerance_minor = n;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-26T12:30:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_schedule_tick_reconciles_the_lookback_and_a_request_its_window() {
        let tick = serde_json::json!({"detail-type": "Scheduled Event", "detail": {}});
        assert_eq!(
            requested_window(&tick, now(), Duration::hours(24)).unwrap(),
            (now() - Duration::hours(24), now())
        );
        let asked = serde_json::json!({"detail-type": REQUESTED_EVENT,
            "detail": {"from": "2026-11-25T00:00:00Z", "to": "2026-11-26T00:00:00Z"}});
        let (from, to) = requested_window(&asked, now(), Duration::hours(24)).unwrap();
        assert_eq!((to - from).num_hours(), 24);
        let direct = serde_json::json!({"hours": 3});
        assert_eq!(
            requested_window(&direct, now(), Duration::hours(24))
                .unwrap()
                .0,
            now() - Duration::hours(3)
        );
    }

    #[test]
    fn a_window_backwards_too_long_or_unreadable_is_refused_with_the_reason() {
        for bad in [
            serde_json::json!({"from": "2026-11-27T00:00:00Z", "to": "2026-11-26T00:00:00Z"}),
            serde_json::json!({"from": "2026-01-01T00:00:00Z"}),
            serde_json::json!({"from": "yesterday"}),
            serde_json::json!({"hours": 0}),
            serde_json::json!({"hours": "3"}),
        ] {
            let e = requested_window(&bad, now(), Duration::hours(24)).unwrap_err();
            assert!(e.to_string().contains("refused"), "{e}");
        }
    }

    #[test]
    fn settings_come_from_the_environment_and_bad_ones_are_named() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = config_from_env(env(&[
            ("RETAILFLOW_RECONCILIATION_SLA_MINUTES", "45"),
            (
                "RETAILFLOW_RECONCILIATION_STEP_SLAS",
                "stock_commit=10, erp_post=120",
            ),
            ("RETAILFLOW_RECONCILIATION_TOLERANCE_MINOR", "2"),
        ]))
        .unwrap();
        assert_eq!(c.sla("stock_commit"), Duration::minutes(10));
        assert_eq!(c.sla("erp_post"), Duration::minutes(120));
        assert_eq!(c.sla("loyalty_accrual"), Duration::minutes(45));
        assert_eq!(c.tolerance_minor, 2);
        let e = config_from_env(env(&[("RETAILFLOW_RECONCILIATION_STEP_SLAS", "erp_post")]))
            .unwrap_err();
        assert!(e.to_string().contains("STEP_SLAS"), "{e}");
        let e =
            config_from_env(env(&[("RETAILFLOW_RECONCILIATION_REDRIVE_LIMIT", "-1")])).unwrap_err();
        assert!(e.to_string().contains("REDRIVE_LIMIT"), "{e}");
    }
}
