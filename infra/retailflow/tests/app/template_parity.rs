//! The local app runs the same topology as template.yaml: this fails when
//! the two differ (rules, their event patterns and targets, queue settings).
//! And the template grants each function only what its code calls, and
//! never writes a secret's value.

use std::collections::{BTreeMap, BTreeSet};

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

/// What each function's code does to the state table, traced from its
/// step through the ports to the adapters (`crates/aws/src/adapters/dynamodb*.rs`):
/// the item actions it calls, the partition-key prefixes they reach, whether
/// it takes places in a concurrency budget (`BUDGET#` slots, through its
/// connectors' auth) and the indexes it queries. A transaction is
/// authorized item by item (its puts as PutItem, its updates as
/// UpdateItem), so TransactWriteItems has no row of its own.
struct TableUse {
    function: &'static str,
    items: &'static [&'static str],
    prefixes: &'static [&'static str],
    budget_slots: bool,
    queries: &'static [&'static str],
}

const TABLE_USE: &[TableUse] = &[
    // OrderIntake: claim (till nonces) and record_first (the delivery, then
    // its saga: updates), quarantine (PutItem). GetItem is not called: kept,
    // as for LoyaltyAccrual, because the conditional writes ask for the
    // standing item back (ReturnValuesOnConditionCheckFailure).
    TableUse {
        function: "OrderPublishFunction",
        items: &["GetItem", "PutItem", "UpdateItem"],
        prefixes: &["DELIVERY#*", "SAGA#*", "QUARANTINE#*"],
        budget_slots: false,
        queries: &[],
    },
    // CheckoutValidation: prices and promotions (BatchGetItem), promotion
    // uses (GetItem), reserve (holds and counts: GetItem, PutItem,
    // UpdateItem), sweep_expired (the marker, the index, the holds), open
    // holds per customer (GetItem, PutItem), storefront nonces (claim:
    // UpdateItem on DELIVERY# items).
    TableUse {
        function: "CheckoutValidationFunction",
        items: &["GetItem", "BatchGetItem", "PutItem", "UpdateItem"],
        prefixes: &[
            "PRICE#*",
            "PROMO#*",
            "PROMOUSE#*",
            "STOCK#*",
            "HOLD#*",
            "SWEEP#stock",
            "OPENHOLDS#*",
            "DELIVERY#*",
        ],
        budget_slots: false,
        queries: &["holds-by-minute"],
    },
    // ErpPosting: saga (GetItem), claim/complete/record_completed/release
    // on the saga item (UpdateItem).
    TableUse {
        function: "ErpPostFunction",
        items: &["GetItem", "UpdateItem"],
        prefixes: &["SAGA#*"],
        budget_slots: true,
        queries: &[],
    },
    // LoyaltyAccrual: claim/complete/release on the saga item. GetItem is
    // not called: it is kept because the claim asks for the standing item
    // back (ReturnValuesOnConditionCheckFailure), and no AWS page says that
    // needs no read permission.
    TableUse {
        function: "LoyaltyAccrualFunction",
        items: &["GetItem", "UpdateItem"],
        prefixes: &["SAGA#*"],
        budget_slots: true,
        queries: &[],
    },
    // ReturnReversal: saga (GetItem), write_refund_ledger and each case's
    // steps (UpdateItem).
    TableUse {
        function: "ReturnReversalFunction",
        items: &["GetItem", "UpdateItem"],
        prefixes: &["SAGA#*"],
        budget_slots: true,
        queries: &[],
    },
    // StockCommit: the step on the saga; commit_order, restock_order,
    // mark_posted and sweep_expired (commit records, holds, counts, the
    // sweep marker); record_promotion_use.
    TableUse {
        function: "StockCommitFunction",
        items: &["GetItem", "PutItem", "UpdateItem"],
        prefixes: &[
            "SAGA#*",
            "COMMIT#*",
            "HOLD#*",
            "STOCK#*",
            "PROMOUSE#*",
            "SWEEP#stock",
        ],
        budget_slots: false,
        queries: &["holds-by-minute"],
    },
    // CatalogSync: prices (BatchGetItem), put_price (PutItem),
    // apply_erp_count (GetItem, UpdateItem).
    TableUse {
        function: "CatalogSyncFunction",
        items: &["GetItem", "BatchGetItem", "PutItem", "UpdateItem"],
        prefixes: &["PRICE#*", "STOCK#*"],
        budget_slots: true,
        queries: &[],
    },
    // Reconciliation: sagas_started (the index, then BatchGetItem),
    // record_redrive (UpdateItem), reports and cursors (PutItem, GetItem).
    TableUse {
        function: "ReconciliationFunction",
        items: &["GetItem", "BatchGetItem", "PutItem", "UpdateItem"],
        prefixes: &["SAGA#*", "REPORT#*", "CURSOR#*"],
        budget_slots: true,
        queries: &["sagas-by-hour"],
    },
    // FulfillmentSync: each shipment's step on its saga item (UpdateItem),
    // the watermark (GetItem, PutItem), quarantine (PutItem).
    TableUse {
        function: "FulfillmentSyncFunction",
        items: &["GetItem", "PutItem", "UpdateItem"],
        prefixes: &["SAGA#*", "CURSOR#*", "QUARANTINE#*"],
        budget_slots: true,
        queries: &[],
    },
];

/// A budget slot is taken (conditional PutItem), counted (BatchGetItem)
/// and given back (conditional DeleteItem): `dynamodb_budget.rs`.
const BUDGET_SLOT_ACTIONS: &[&str] = &["BatchGetItem", "DeleteItem", "PutItem"];
const BUDGET_SLOT_KEYS: &str = "BUDGET#*";

/// Where a statement's DynamoDB actions apply.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum TablePart {
    Items,
    Index(String),
    Other(String),
}

/// One allowed statement's DynamoDB grant: its actions (without the
/// `dynamodb:` prefix), where, and the key prefixes it is held to (`None`:
/// every key).
#[derive(Debug)]
struct DynamoGrant {
    sid: String,
    actions: BTreeSet<String>,
    parts: Vec<TablePart>,
    leading_keys: Option<BTreeSet<String>>,
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn table_part(resource: &Value) -> TablePart {
    match resource {
        Value::Tagged(t) if t.tag == "!GetAtt" && t.value.as_str() == Some("StateTable.Arn") => {
            TablePart::Items
        }
        Value::Tagged(t) if t.tag == "!Sub" => {
            let text = t.value.as_str().unwrap_or_default();
            match text.strip_prefix("${StateTable.Arn}/index/") {
                Some(index) => TablePart::Index(index.to_string()),
                None => TablePart::Other(text.to_string()),
            }
        }
        other => TablePart::Other(format!("{other:?}")),
    }
}

/// Every function's DynamoDB grants, by logical id; a policy this walk
/// cannot read (a SAM policy template, a managed policy) that names
/// DynamoDB goes in the errors: it may grant anything.
fn dynamodb_grants(t: &Value) -> (BTreeMap<String, Vec<DynamoGrant>>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for (id, r) in t["Resources"].as_mapping().expect("Resources") {
        if r["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let id = id.as_str().unwrap_or_default().to_string();
        let mut grants = Vec::new();
        for policy in r["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let Some(statements) = policy["Statement"].as_sequence() else {
                if format!("{policy:?}").to_lowercase().contains("dynamodb") {
                    errors.push(format!("{id}: a policy this test cannot read: {policy:?}"));
                }
                continue;
            };
            for s in statements {
                if s["Effect"].as_str() != Some("Allow") {
                    continue;
                }
                if !s["NotAction"].is_null() || !s["NotResource"].is_null() {
                    errors.push(format!(
                        "{id}: NotAction/NotResource grants more than it names"
                    ));
                }
                let actions: BTreeSet<String> = strings(&s["Action"])
                    .into_iter()
                    .filter(|a| a == "*" || a.to_lowercase().starts_with("dynamodb:"))
                    .map(|a| a.split_once(':').map_or(a.clone(), |(_, n)| n.to_string()))
                    .collect();
                if actions.is_empty() {
                    continue;
                }
                let parts = match &s["Resource"] {
                    Value::Sequence(rs) => rs.iter().map(table_part).collect(),
                    one => vec![table_part(one)],
                };
                let leading_keys = s["Condition"]["ForAllValues:StringLike"]
                    ["dynamodb:LeadingKeys"]
                    .as_sequence()
                    .map(|keys| {
                        keys.iter()
                            .filter_map(|k| k.as_str().map(str::to_string))
                            .collect()
                    });
                grants.push(DynamoGrant {
                    sid: s["Sid"].as_str().unwrap_or("(no Sid)").to_string(),
                    actions,
                    parts,
                    leading_keys,
                });
            }
        }
        out.insert(id, grants);
    }
    (out, errors)
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Each function may call on the state table what its code calls, on the
/// keys it calls it for, and nothing else: an action or a key prefix
/// granted beyond [`TABLE_USE`] fails, and so does one missing from the
/// template (production would be refused it).
#[test]
fn each_function_may_use_only_the_table_actions_and_keys_its_code_uses() {
    let (grants, mut errors) = dynamodb_grants(&template());
    for spec in TABLE_USE {
        if !grants.contains_key(spec.function) {
            errors.push(format!(
                "{}: no such function in the template",
                spec.function
            ));
        }
    }
    for (function, grants) in &grants {
        let Some(spec) = TABLE_USE.iter().find(|u| u.function == function) else {
            errors.push(format!(
                "{function}: not in TABLE_USE; say there what its code does to the table"
            ));
            continue;
        };
        let mut items = BTreeSet::new();
        let mut queries = BTreeSet::new();
        let mut budget = false;
        for g in grants {
            let at = format!("{function}.{}", g.sid);
            if let Some(a) = g
                .actions
                .iter()
                .find(|a| a.contains('*') || a.contains('?'))
            {
                errors.push(format!("{at}: wildcard action {a}"));
            }
            for part in &g.parts {
                match part {
                    TablePart::Other(r) => errors.push(format!(
                        "{at}: DynamoDB actions on {r}, not the state table"
                    )),
                    TablePart::Index(index) => {
                        if g.actions != set(&["Query"]) {
                            errors.push(format!("{at}: {:?} on index {index}", g.actions));
                        }
                        queries.insert(index.clone());
                    }
                    TablePart::Items => match &g.leading_keys {
                        None => errors.push(format!(
                            "{at}: {:?} on every key of the table (no dynamodb:LeadingKeys)",
                            g.actions
                        )),
                        Some(keys) if *keys == set(&[BUDGET_SLOT_KEYS]) => {
                            budget = true;
                            if g.actions != set(BUDGET_SLOT_ACTIONS) {
                                errors.push(format!(
                                    "{at}: budget slots need exactly {BUDGET_SLOT_ACTIONS:?}, granted {:?}",
                                    g.actions
                                ));
                            }
                        }
                        Some(keys) => {
                            if *keys != set(spec.prefixes) {
                                errors.push(format!(
                                    "{at}: keys {keys:?}, its code reaches {:?}",
                                    spec.prefixes
                                ));
                            }
                            items.extend(g.actions.iter().cloned());
                        }
                    },
                }
            }
        }
        if items != set(spec.items) {
            errors.push(format!(
                "{function}: item actions {items:?}, its code calls {:?}",
                spec.items
            ));
        }
        if queries != set(spec.queries) {
            errors.push(format!(
                "{function}: queries {queries:?}, its code queries {:?}",
                spec.queries
            ));
        }
        if budget != spec.budget_slots {
            errors.push(format!(
                "{function}: budget slots granted: {budget}, taken by its connectors: {}",
                spec.budget_slots
            ));
        }
    }
    assert!(errors.is_empty(), "{errors:#?}");
}

/// retailflow deletes one kind of item: a concurrency budget slot it gives
/// back (`dynamodb_budget.rs`, `give_back_slot`). Everything else is kept
/// or expires by TTL, so DeleteItem anywhere else, or on other keys, is a
/// delete the code never makes.
#[test]
fn no_function_may_delete_items_it_never_deletes() {
    let (grants, errors) = dynamodb_grants(&template());
    assert!(errors.is_empty(), "{errors:#?}");
    let mut deleting = BTreeSet::new();
    let mut wrong = Vec::new();
    for (function, grants) in &grants {
        for g in grants {
            let deletes = g
                .actions
                .iter()
                .any(|a| a == "DeleteItem" || a.contains('*') || a.starts_with("Delete"));
            if !deletes {
                continue;
            }
            deleting.insert(function.clone());
            if g.leading_keys != Some(set(&[BUDGET_SLOT_KEYS])) {
                wrong.push(format!(
                    "{function}.{}: {:?} on keys {:?}",
                    g.sid, g.actions, g.leading_keys
                ));
            }
        }
    }
    let slot_takers: BTreeSet<String> = TABLE_USE
        .iter()
        .filter(|u| u.budget_slots)
        .map(|u| u.function.to_string())
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(
        deleting, slot_takers,
        "who may delete: the slot takers only"
    );
}

/// The key prefixes granted are the adapters' own: a typo (`SAGAS#*`)
/// would refuse production every call.
#[test]
fn every_key_prefix_granted_is_one_the_adapters_write() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../crates/aws/src/adapters");
    // The DynamoDB adapters: `dynamodb*.rs` files and `dynamodb*/` folders.
    fn read_rust(path: &std::path::Path, source: &mut String) {
        if path.is_dir() {
            for entry in std::fs::read_dir(path).expect("adapter folder") {
                read_rust(&entry.expect("entry").path(), source);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            source.push_str(&std::fs::read_to_string(path).expect("adapter source"));
        }
    }
    let mut source = String::new();
    for entry in std::fs::read_dir(dir).expect("adapters") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("dynamodb") {
            read_rust(&path, &mut source);
        }
    }
    assert!(source.contains("\"SAGA#"), "the adapters were not read");
    let (grants, errors) = dynamodb_grants(&template());
    assert!(errors.is_empty(), "{errors:#?}");
    let granted: BTreeSet<String> = grants
        .values()
        .flatten()
        .filter_map(|g| g.leading_keys.clone())
        .flatten()
        .collect();
    assert!(granted.len() >= 10, "{granted:?}");
    let unknown: Vec<&String> = granted
        .iter()
        .filter(|k| {
            let needle = match k.strip_suffix('*') {
                Some(prefix) => format!("\"{prefix}"),
                None => format!("\"{k}\""),
            };
            // A prefix is a literal up to its `#`, then anything.
            !k.contains('#') || !source.contains(&needle)
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "no adapter writes keys like {unknown:?}"
    );
}

/// A secret's value in the template would be in every copy of it, and a
/// change to it would write over what operators stored.
#[test]
fn no_secret_value_is_a_literal_in_the_template() {
    let t = template();
    let mut secrets = 0;
    for (id, r) in t["Resources"].as_mapping().expect("Resources") {
        if r["Type"].as_str() != Some("AWS::SecretsManager::Secret") {
            continue;
        }
        secrets += 1;
        assert!(
            r["Properties"]["SecretString"].is_null(),
            "{id:?} has a SecretString literal"
        );
    }
    assert!(secrets >= 2, "the webhook and connector secrets");
}

/// CloudFormation writes a secret's value only from SecretString or
/// GenerateSecretString (on create, and again whenever either changes):
/// with neither, the connector secret is created empty and no deploy or
/// redeploy writes over the credentials operators put there.
#[test]
fn the_connector_secret_is_never_written_by_a_deploy() {
    let t = template();
    let secret = &t["Resources"]["ConnectorSecrets"];
    assert_eq!(secret["Type"].as_str(), Some("AWS::SecretsManager::Secret"));
    let p = &secret["Properties"];
    assert!(p["SecretString"].is_null(), "a literal value");
    assert!(
        p["GenerateSecretString"].is_null(),
        "a generated value, written again whenever its settings change"
    );
    let description = p["Description"].as_str().unwrap_or_default();
    assert!(
        description.contains("put-secret-value") && description.contains("docs/credentials.md"),
        "the description says how operators store it: {description}"
    );
}

/// Events too large for the bus ride in a bucket that is encrypted, closed
/// to the public, TLS only and emptied by its lifecycle; only the functions
/// that publish or consume events reach it, on its event and quarantine
/// keys only.
#[test]
fn the_claim_check_bucket_is_private_encrypted_expiring_and_reached_only_by_the_steps() {
    let t = template();
    let resources = t["Resources"].as_mapping().expect("Resources");
    let bucket = &t["Resources"]["ClaimCheckBucket"]["Properties"];
    assert_eq!(
        bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
            ["ServerSideEncryptionByDefault"]["SSEAlgorithm"],
        "AES256"
    );
    for flag in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(
            bucket["PublicAccessBlockConfiguration"][flag],
            Value::Bool(true),
            "{flag}"
        );
    }
    assert!(bucket["LifecycleConfiguration"]["Rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|r| !r["ExpirationInDays"].is_null()));
    let policy = &t["Resources"]["ClaimCheckBucketPolicy"]["Properties"]["PolicyDocument"];
    assert_eq!(policy["Statement"][0]["Effect"], "Deny");
    assert_eq!(
        policy["Statement"][0]["Condition"]["Bool"]["aws:SecureTransport"],
        Value::Bool(false)
    );
    let mut reaching = BTreeSet::new();
    for (id, r) in resources {
        for statement in r["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|p| p["Statement"].as_sequence().into_iter().flatten())
        {
            let actions: Vec<&str> = statement["Action"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if actions.iter().any(|a| a.starts_with("s3:")) {
                assert!(
                    actions
                        .iter()
                        .all(|a| ["s3:GetObject", "s3:PutObject", "s3:ListBucket"].contains(a)),
                    "{id:?}: {actions:?}"
                );
                reaching.insert(id.as_str().unwrap_or_default().to_string());
            }
        }
    }
    assert_eq!(
        reaching,
        [
            "ErpPostFunction",
            "FulfillmentSyncFunction",
            "LoyaltyAccrualFunction",
            "OrderPublishFunction",
            "ReturnReversalFunction",
            "StockCommitFunction"
        ]
        .map(String::from)
        .into(),
    );
}
