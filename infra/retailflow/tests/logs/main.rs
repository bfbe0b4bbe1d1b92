//! Log lines as operators read them: every line of an order's flow (the
//! webhook, each step, its return) carries the order's correlation id, and
//! no email address reaches a log line, whatever logged it.
//!
//! A test binary of its own: tracing keeps each callsite's interest in
//! process-wide state, and in the shared `app` binary other tests' threads
//! registering the same callsites at the instant this test set its
//! subscriber left the drain's lines uncaptured (twice in about ten full
//! runs). Alone in its process, only its own thread logs.

use std::io::Write;
use std::sync::{Arc, Mutex};

use retailflow::local_app::LocalApp;
use simulators::{Fault, FaultKind, System};

// The app tests' helpers (it allows what this binary leaves unused).
#[path = "../app/support/mod.rs"]
mod support;
use support::{deliver, dev_config};

const ORDER: &str = "shopify:acme-outdoor.myshopify.com:order:5872301948123";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

fn correlation(line: &serde_json::Value) -> Option<&str> {
    line["span"]["correlation_id"]
        .as_str()
        .or(line["fields"]["correlation_id"].as_str())
        .filter(|c| !c.is_empty())
}

#[tokio::test(flavor = "current_thread")]
async fn every_line_of_an_order_flow_carries_its_correlation_id_and_no_email() {
    let capture = Capture::default();
    let subscriber = retailflow_core::observability::json_subscriber(
        capture.clone(),
        tracing_subscriber::EnvFilter::new("retailflow=debug,logs=debug"),
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = LocalApp::start(dev_config()).await.unwrap();
    // NetSuite throttles once (a warning line inside the step).
    app.sims.inject(Fault {
        system: System::NetSuite,
        method: Some("PUT"),
        path_contains: "salesOrder",
        kind: FaultKind::Throttle {
            retry_after: Some(1),
        },
        count: 1,
    });
    assert_eq!(deliver(&app, "01-shopify-orders-create.json").await, 200);
    assert_eq!(
        deliver(&app, "08-shopify-refunds-create-partial.json").await,
        200
    );
    let drained = app.drain().await;
    // Something quoting a customer's email (an ERP's error message does).
    {
        let _in_flow = retailflow_core::correlation_span!(ORDER).entered();
        tracing::warn!(
            error = "customer jane.doe@example.com already exists",
            "erp said"
        );
    }

    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.len() >= 8,
        "{text}\ndrained {drained:?}; events published {}",
        app.bus.recorded.published().len()
    );
    for line in &lines {
        assert_eq!(
            correlation(line),
            Some(ORDER),
            "a line without the order's id: {line}"
        );
    }
    assert!(lines.iter().any(|l| l["fields"]["message"] == "webhook"));
    // Each step's record, the throttled retry among them.
    assert!(lines.iter().any(|l| l["fields"]["outcome"]
        .as_str()
        .is_some_and(|o| o.starts_with("retry"))));
    assert!(lines
        .iter()
        .any(|l| l["fields"]["queue"] == "return-reversal"));
    assert!(!text.contains("jane.doe@"), "{text}");
    assert!(text.contains("***@example.com"), "{text}");
    // The sample order's own email is in no line either.
    let sample: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(support::repo().join("events/01-shopify-orders-create.json"))
            .unwrap(),
    )
    .unwrap();
    let body: serde_json::Value = serde_json::from_str(sample["body"].as_str().unwrap()).unwrap();
    let email = body["email"].as_str().unwrap();
    assert!(!text.contains(email), "{email} in {text}");
}
