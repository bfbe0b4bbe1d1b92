//! The local app runs the same topology as template.yaml: this fails when
//! the two differ (rules, their event patterns and targets, queue settings).

use std::collections::BTreeSet;

use retailflow::local_app::{rules, MAX_RECEIVE_COUNT, VISIBILITY_TIMEOUT};
use serde_yaml::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `ErpPostQueue` → `erp-post`, the local queue name.
fn local_name(logical_id: &str) -> String {
    let base = logical_id.trim_end_matches("Queue");
    let mut out = String::new();
    for (i, c) in base.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The logical id inside `!GetAtt X.Arn`.
fn get_att_target(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(t) if t.tag == "!GetAtt" => t
            .value
            .as_str()
            .map(|s| s.trim_end_matches(".Arn").to_string()),
        _ => None,
    }
}

#[test]
fn local_rules_match_the_template_rules() {
    let t = template();
    let resources = t["Resources"].as_mapping().unwrap();
    let mut in_template = BTreeSet::new();
    for (_, r) in resources {
        if r["Type"].as_str() != Some("AWS::Events::Rule") {
            continue;
        }
        // Schedules (the hold sweep) have no pattern: not routed events.
        if r["Properties"]["EventPattern"].is_null() {
            continue;
        }
        let pattern = &r["Properties"]["EventPattern"];
        let sources: Vec<String> = pattern["source"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let types: Vec<String> = pattern["detail-type"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        for target in r["Properties"]["Targets"].as_sequence().unwrap() {
            let queue = local_name(&get_att_target(&target["Arn"]).unwrap());
            for ty in &types {
                for source in &sources {
                    in_template.insert((source.clone(), ty.clone(), queue.clone()));
                }
            }
        }
    }
    let local: BTreeSet<(String, String, String)> = rules()
        .iter()
        .flat_map(|r| {
            r.detail_types
                .iter()
                .map(|t| (r.source.to_string(), t.to_string(), r.queue.to_string()))
        })
        .collect();
    assert_eq!(local, in_template);
}

#[test]
fn local_queues_have_the_template_retry_settings() {
    let t = template();
    let resources = t["Resources"].as_mapping().unwrap();
    let mut seen = 0;
    for (id, r) in resources {
        let id = id.as_str().unwrap();
        if r["Type"].as_str() != Some("AWS::SQS::Queue") || id.ends_with("DLQ") {
            continue;
        }
        let p = &r["Properties"];
        assert_eq!(
            p["VisibilityTimeout"].as_u64(),
            Some(VISIBILITY_TIMEOUT.as_secs()),
            "{id}"
        );
        assert_eq!(
            p["RedrivePolicy"]["maxReceiveCount"].as_u64(),
            Some(u64::from(MAX_RECEIVE_COUNT)),
            "{id}"
        );
        assert!(
            rules().iter().any(|r| r.queue == local_name(id)),
            "{id} has no local twin"
        );
        seen += 1;
    }
    assert!(seen >= 2);
}

/// What EventBridge cannot deliver lands somewhere people look: every rule
/// target, every schedule and every function's EventBridge event has a
/// dead-letter queue, and every rule target a retry policy.
#[test]
fn every_rule_and_schedule_target_has_a_dead_letter_queue() {
    let t = template();
    let resources = t["Resources"].as_mapping().expect("Resources");
    let mut checked = 0;
    let mut missing = Vec::new();
    for (id, r) in resources {
        let id = id.as_str().unwrap_or_default();
        match r["Type"].as_str() {
            Some("AWS::Events::Rule") => {
                for target in r["Properties"]["Targets"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                {
                    checked += 1;
                    if target["DeadLetterConfig"]["Arn"].is_null() {
                        missing.push(format!("{id}: target without a dead-letter queue"));
                    }
                    if target["RetryPolicy"].is_null() {
                        missing.push(format!("{id}: target without a retry policy"));
                    }
                }
            }
            Some("AWS::Scheduler::Schedule") => {
                checked += 1;
                if r["Properties"]["Target"]["DeadLetterConfig"].is_null() {
                    missing.push(format!("{id}: schedule without a dead-letter queue"));
                }
            }
            Some("AWS::Serverless::Function") => {
                for (name, event) in r["Properties"]["Events"].as_mapping().into_iter().flatten() {
                    let kind = event["Type"].as_str().unwrap_or_default();
                    if [
                        "Schedule",
                        "ScheduleV2",
                        "EventBridgeRule",
                        "CloudWatchEvent",
                    ]
                    .contains(&kind)
                    {
                        checked += 1;
                        if event["Properties"]["DeadLetterConfig"].is_null() {
                            missing.push(format!(
                                "{id}.{}: {kind} event without a dead-letter queue",
                                name.as_str().unwrap_or_default()
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    assert!(
        checked >= 12,
        "only {checked} targets found: the walk is wrong"
    );
    assert!(missing.is_empty(), "{missing:#?}");
}

/// Replay and the saga's fallback have every event to go back to, and a
/// failure before a delivery is recorded pages someone.
#[test]
fn the_bus_is_archived_and_failures_before_recording_alarm() {
    let t = template();
    let resources = t["Resources"].as_mapping().expect("Resources");
    let of_type = |ty: &str| {
        resources
            .iter()
            .filter(|(_, r)| r["Type"].as_str() == Some(ty))
            .map(|(_, r)| r.clone())
            .collect::<Vec<_>>()
    };
    let archives = of_type("AWS::Events::Archive");
    assert_eq!(archives.len(), 1, "one archive of the bus");
    assert_eq!(
        get_att_target(&archives[0]["Properties"]["SourceArn"]).as_deref(),
        Some("EventBus")
    );
    let alarms = of_type("AWS::CloudWatch::Alarm");
    let watches = |metric: &str| {
        alarms
            .iter()
            .any(|a| a["Properties"]["MetricName"].as_str() == Some(metric))
    };
    assert!(watches("5xx"), "the API's 5xx");
    assert!(
        alarms.iter().any(
            |a| a["Properties"]["MetricName"].as_str() == Some("Webhooks")
                && a["Properties"]["Dimensions"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .any(|d| d["Value"].as_str() == Some("retry"))
        ),
        "intake's 5xx answers"
    );
}

/// The logical id inside `!Ref X`.
fn ref_target(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(t) if t.tag == "!Ref" => t.value.as_str().map(str::to_string),
        _ => None,
    }
}

/// An event a rule could neither deliver nor dead-letter is lost between
/// services: every rule's and schedule's `FailedInvocations` and
/// `InvocationsFailedToBeSentToDlq` are in an alarm.
#[test]
fn every_rule_failing_to_deliver_pages_someone() {
    let t = template();
    let resources = t["Resources"].as_mapping().expect("Resources");
    let mut rules = BTreeSet::new();
    for (id, r) in resources {
        let id = id.as_str().unwrap_or_default();
        match r["Type"].as_str() {
            Some("AWS::Events::Rule") => {
                rules.insert(id.to_string());
            }
            Some("AWS::Serverless::Function") => {
                for (name, event) in r["Properties"]["Events"].as_mapping().into_iter().flatten() {
                    if ["Schedule", "EventBridgeRule"]
                        .contains(&event["Type"].as_str().unwrap_or(""))
                    {
                        // SAM names the rule it generates <function><event>.
                        rules.insert(format!("{id}{}", name.as_str().unwrap_or_default()));
                    }
                }
            }
            _ => {}
        }
    }
    assert!(rules.len() >= 12, "{rules:?}");
    let mut watched = BTreeSet::new();
    for (_, r) in resources {
        if r["Type"].as_str() != Some("AWS::CloudWatch::Alarm") {
            continue;
        }
        for q in r["Properties"]["Metrics"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let metric = &q["MetricStat"]["Metric"];
            let name = metric["MetricName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            for d in metric["Dimensions"].as_sequence().into_iter().flatten() {
                if d["Name"].as_str() == Some("RuleName") {
                    if let Some(rule) = ref_target(&d["Value"]) {
                        watched.insert((rule, name.clone()));
                    }
                }
            }
        }
    }
    let unwatched: Vec<_> = rules
        .iter()
        .flat_map(|r| {
            ["FailedInvocations", "InvocationsFailedToBeSentToDlq"]
                .into_iter()
                .filter(|m| !watched.contains(&(r.clone(), m.to_string())))
                .map(move |m| format!("{r}: {m}"))
        })
        .collect();
    assert!(unwatched.is_empty(), "{unwatched:#?}");
}
