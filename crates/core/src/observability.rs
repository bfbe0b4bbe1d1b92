//! What operators see: JSON log lines that carry the correlation id of the
//! order they are about and no personal data, and business metrics in
//! CloudWatch Embedded Metric Format (EMF) written to stdout, which Lambda
//! ships to CloudWatch Logs and CloudWatch turns into metrics with no API
//! call.
//!
//! Correlation: the work on one queue record or one webhook runs inside a
//! span carrying `correlation_id`; the JSON formatter writes the current
//! span's fields on every line. Masking ([`personal_data`]): every line goes
//! through [`mask_personal_data`] on its way out, whatever logged it (emails,
//! phone numbers, personal fields of an echoed body), and so does every
//! dead-letter reason (`Disposition::DeadLetter`). What a platform echoes in
//! free text is masked where its answer is read: the connectors' refusals
//! are masked of the personal values their request carried
//! ([`PersonalData`]), before any error, log line or dead letter is made of
//! them.

use std::io::Write;
use std::sync::{Arc, RwLock};

use tracing_subscriber::fmt::MakeWriter;

pub mod personal_data;
pub use personal_data::{mask_personal_data, PersonalData};

/// CloudWatch namespace of retailflow's metrics.
pub const NAMESPACE: &str = "Retailflow";
/// Every metric carries `Service=retailflow`, so alarms and the dashboard
/// name them without knowing function names.
pub const SERVICE: &str = "retailflow";

/// A writer that masks what passes through it. The JSON formatter writes
/// each line with one call, so each call is masked whole.
pub struct MaskingWriter<W>(W);

impl<W: Write> Write for MaskingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(mask_personal_data(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// [`MakeWriter`] of [`MaskingWriter`]s around another.
pub struct Masked<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Masked<M> {
    type Writer = MaskingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        MaskingWriter(self.0.make_writer())
    }
}

/// The JSON log subscriber every function uses (and the log tests): one
/// JSON object per line, the current span's fields (the correlation id) on
/// every line, personal data masked.
pub fn json_subscriber<M>(
    make_writer: M,
    filter: tracing_subscriber::EnvFilter,
) -> impl tracing::Subscriber + Send + Sync
where
    M: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .without_time()
        .with_writer(Masked(make_writer))
        .finish()
}

/// The span one queue record's or webhook's work runs in.
#[macro_export]
macro_rules! correlation_span {
    ($id:expr) => {
        tracing::info_span!("work", correlation_id = %$id)
    };
}

type Sink = Arc<dyn Fn(&str) + Send + Sync>;

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

/// Where EMF lines go: stdout in Lambda (set by the functions at start);
/// nowhere by default (the local app and tests), or a capture in tests.
pub fn set_metrics_sink(sink: Option<Sink>) {
    // Plain data behind the lock; a poisoned lock still holds it.
    *SINK.write().unwrap_or_else(|p| p.into_inner()) = sink;
}

/// Sends EMF lines to stdout (what Lambda ships to CloudWatch).
pub fn metrics_to_stdout() {
    set_metrics_sink(Some(Arc::new(|line: &str| {
        let mut out = std::io::stdout().lock();
        // A metric that cannot be written is lost, never an error.
        let _ = writeln!(out, "{line}");
    })));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// The Lambda function's name, read once (not on every metric).
fn function_name() -> Option<&'static str> {
    static NAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    NAME.get_or_init(|| std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok())
        .as_deref()
}

/// One EMF line: the metrics with `Service=retailflow` and, when given,
/// broken down by one more dimension (e.g. `Outcome=retry`).
pub fn emf_line(
    metrics: &[(&str, f64, Unit)],
    dimension: Option<(&str, &str)>,
    timestamp_ms: i64,
) -> String {
    let mut dims = vec![serde_json::json!(["Service"])];
    let mut root = serde_json::Map::new();
    root.insert("Service".into(), SERVICE.into());
    if let Some((k, v)) = dimension {
        dims.push(serde_json::json!(["Service", k]));
        root.insert(k.into(), v.into());
    }
    if let Some(f) = function_name() {
        root.insert("Function".into(), f.into());
    }
    let defs: Vec<serde_json::Value> = metrics
        .iter()
        .map(|(name, _, unit)| serde_json::json!({"Name": name, "Unit": unit.as_str()}))
        .collect();
    for (name, value, _) in metrics {
        root.insert((*name).into(), (*value).into());
    }
    root.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": dims, "Metrics": defs}],
        }),
    );
    serde_json::Value::Object(root).to_string()
}

/// Emits metrics (see [`emf_line`]) to the sink, if one is set.
pub fn emit(metrics: &[(&str, f64, Unit)], dimension: Option<(&str, &str)>) {
    let sink = SINK.read().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(sink) = sink {
        sink(&emf_line(
            metrics,
            dimension,
            chrono::Utc::now().timestamp_millis(),
        ));
    }
}

/// Counts one of something, broken down by one dimension.
pub fn count(metric: &str, dimension: (&str, &str)) {
    emit(&[(metric, 1.0, Unit::Count)], Some(dimension));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_declares_its_metrics_and_dimensions_as_cloudwatch_reads_them() {
        let line = emf_line(
            &[
                ("Records", 1.0, Unit::Count),
                ("StepLatency", 12.0, Unit::Milliseconds),
            ],
            Some(("Outcome", "retry")),
            1_795_694_400_000,
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let cw = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "Retailflow");
        assert_eq!(
            cw["Dimensions"],
            serde_json::json!([["Service"], ["Service", "Outcome"]])
        );
        assert_eq!(
            cw["Metrics"][1],
            serde_json::json!({"Name": "StepLatency", "Unit": "Milliseconds"})
        );
        assert_eq!(v["_aws"]["Timestamp"], 1_795_694_400_000i64);
        assert_eq!(
            (v["Service"].as_str(), v["Outcome"].as_str()),
            (Some("retailflow"), Some("retry"))
        );
        assert_eq!(v["Records"], 1.0);
        assert_eq!(v["StepLatency"], 12.0);
    }
}
