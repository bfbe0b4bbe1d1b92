//! The one-shot commands: `run`, `canonical`, `sample-event`.

use std::path::Path;

use anyhow::{bail, Context};
use retailflow_core::config::intake_config_from_env;
use retailflow_core::events::{delivery_event_id, CanonicalEvent, EnvelopeMeta};
use retailflow_core::idempotency::payload_hash;
use retailflow_core::intake::{IntakeConfig, WebhookRequest, WebhookRoute};
use retailflow_core::mappers::{adobe, pos, shopify};
use retailflow_core::webhook::{adobe_signature, shopify_signature, Secret};

use crate::api_event::{webhook_event, ApiRequest};
use crate::local_app::LocalApp;
use crate::Source;
use retailflow::data_dir::DataDir;
use retailflow::timeline::{render, timelines};
use std::path::PathBuf;

pub(crate) fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Verification config for local runs: the environment if it names a
/// Shopify secret, else the dev keys the samples in `events/` are signed
/// with, which must be there: without them every sample would be refused.
pub(crate) fn local_config(dev_keys: &Path) -> anyhow::Result<IntakeConfig> {
    if std::env::var("RETAILFLOW_SHOPIFY_SECRET").is_ok() {
        return Ok(intake_config_from_env(|k| std::env::var(k).ok())?);
    }
    retailflow::dev_keys::require(dev_keys)?;
    retailflow::dev_keys::intake_config(dev_keys)
}

/// Every `*.json` file named, or inside a named folder (not recursing).
fn event_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut in_dir: Vec<_> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "json"))
                .collect();
            in_dir.sort();
            files.extend(in_dir);
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        bail!("no *.json event files in {:?}", paths);
    }
    Ok(files)
}

/// Every event file named (by file name, parsed) and what the samples
/// among them are there to show, read before anything is touched: a
/// mistyped file or bad JSON is an error naming it.
pub(crate) fn read_events(
    paths: &[PathBuf],
) -> anyhow::Result<(Vec<(String, serde_json::Value)>, RefusedOnPurpose)> {
    let mut events = Vec::new();
    let mut expected = RefusedOnPurpose::default();
    for file in event_files(paths)? {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let event: serde_json::Value = serde_json::from_str(&read(&file)?)
            .with_context(|| format!("{} is not JSON", file.display()))?;
        expected.read_beside(&file)?;
        events.push((name, event));
    }
    Ok((events, expected))
}

/// Feeds one Lambda event file into the app: HTTP API requests to the
/// webhook routes, EventBridge events onto the bus, SQS events onto their queue.
async fn feed(app: &LocalApp, name: &str, event: &serde_json::Value) -> anyhow::Result<String> {
    if event.get("detail-type").is_some() {
        let t = event["detail-type"].as_str().unwrap_or_default();
        // Reconciliation's schedule, or a request for it on the bus.
        let names_reconciliation = event["resources"].as_array().is_some_and(|r| {
            r.iter()
                .any(|a| a.as_str().is_some_and(|a| a.contains("Reconciliation")))
        });
        if t == retailflow_core::reconciliation::request::REQUESTED_EVENT
            || (t == retailflow_core::steps::stock_commit::SCHEDULED_EVENT && names_reconciliation)
        {
            let window = retailflow_core::reconciliation::request::requested_window(
                event,
                app.clock.now(),
                chrono::Duration::hours(24),
            )?;
            let report = app.reconcile_window(window).await?;
            return Ok(crate::reconcile::summary(&report));
        }
        // A schedule's tick: what the template's schedules run on AWS.
        if t == retailflow_core::steps::stock_commit::SCHEDULED_EVENT {
            let shown = |o: retailflow_core::steps::StepOutcome| match o {
                retailflow_core::steps::StepOutcome::Done { summary } => summary.to_string(),
                other => format!("{other:?}"),
            };
            let sweep = shown(app.sweep_holds().await);
            let sync = shown(app.catalog_sync.run().await);
            let shipments = shown(
                app.fulfillment_sync
                    .run(retailflow_core::steps::Invocation {
                        now: app.clock.now(),
                        deadline: None,
                        attempt: 1,
                    })
                    .await,
            );
            return Ok(format!(
                "schedule tick: hold sweep {sweep}; catalog sync {sync}; fulfillment sync {shipments}"
            ));
        }
        let routed = app
            .bus
            .route(t, event.to_string())
            .map_err(anyhow::Error::msg)?;
        if routed == 0 {
            bail!(
                "no rule takes {t} from {:?}",
                event["source"].as_str().unwrap_or("")
            );
        }
        let queues = crate::reconcile::plural(routed as u64, "queue", "queues");
        return Ok(format!("EventBridge {t} routed to {queues}"));
    }
    if let Some(records) = event["Records"].as_array() {
        for r in records {
            let arn = r["eventSourceARN"].as_str().unwrap_or_default();
            let queue = arn.rsplit(':').next().unwrap_or_default();
            let body = r["body"].as_str().unwrap_or_default().to_string();
            let mut queues = retailflow::runtime::lock(&app.queues);
            let q = queues
                .values_mut()
                .find(|q| queue.ends_with(&q.name))
                .with_context(|| format!("{name}: no queue for {arn}"))?;
            q.send(body, app.clock.now()).map_err(anyhow::Error::msg)?;
        }
        let records = crate::reconcile::plural(records.len() as u64, "record", "records");
        return Ok(format!("SQS {records} queued"));
    }
    let req = ApiRequest::from_event(event)?;
    if req.path == "/checkout/validate" {
        let (status, body) = retailflow_core::checkout::validation::answer(
            &app.checkout,
            &app.checkout_auth,
            retailflow_core::checkout::validation::CheckoutHttpRequest {
                headers: &req.headers,
                body: &req.body,
                received_at: app.clock.now(),
                gateway_time: req.gateway_time,
            },
        )
        .await;
        return Ok(format!("{status} {body}"));
    }
    let route = WebhookRoute::from_path(&req.path)
        .with_context(|| format!("no route for {} {}", req.method, req.path))?;
    let resp = app
        .intake
        .handle(WebhookRequest {
            route,
            headers: &req.headers,
            body: &req.body,
            received_at: app.clock.now(),
            gateway_time: req.gateway_time,
            deadline: None,
        })
        .await;
    Ok(format!("{} {}", resp.status, resp.body))
}

pub async fn run(
    paths: &[PathBuf],
    dev_keys: &Path,
    json: bool,
    data_dir: &Path,
) -> anyhow::Result<bool> {
    // Every file read and every key found before the last run's state is
    // let go: a mistyped argument leaves it as it was.
    let (events, expected) = read_events(paths)?;
    let intake = local_config(dev_keys)?;
    let checkout_auth = retailflow::dev_keys::local_checkout_auth(dev_keys)?;
    // A run starts from nothing, so the same files give the same result;
    // what it leaves stays for `trace`, `replay` and `reconcile`.
    let data = std::sync::Arc::new(DataDir::open_empty(data_dir)?);
    let mut app = LocalApp::open(intake, Some(data)).await?;
    // The steps' times in the order they ran, not all at one instant.
    app.batch_tick = std::time::Duration::from_millis(10);
    app.checkout_auth =
        retailflow_core::checkout::auth::CheckoutAuth::new(checkout_auth, app.store.clone());
    let mut report = retailflow::local_app::DrainReport::default();
    let mut refusals: Vec<Refusal> = Vec::new();
    let mut absorb = |r: retailflow::local_app::DrainReport| {
        report.deliveries += r.deliveries;
        report.retries += r.retries;
        report.gave_up |= r.gave_up;
    };
    let mut fed = Vec::new();
    for (name, event) in events {
        fed.push(name.clone());
        // A second between deliveries, as a platform's would come.
        app.clock
            .advance_to(app.clock.now() + chrono::Duration::seconds(1));
        // A schedule tick sees what the files before it did, as on AWS
        // minutes later: the queues are drained first.
        if event["detail-type"].as_str()
            == Some(retailflow_core::steps::stock_commit::SCHEDULED_EVENT)
        {
            absorb(app.drain().await);
        }
        match feed(&app, &name, &event).await {
            Ok(line) => {
                if let Some(refusal) = Refusal::of(&name, &line) {
                    refusals.push(refusal);
                }
                if !json {
                    println!("{name:<60} {line}");
                }
            }
            Err(e) => {
                eprintln!("{name}: skipped: {e:#}");
                refusals.push(Refusal {
                    file: name,
                    status: None,
                    reason: format!("{e:#}"),
                });
            }
        }
    }
    absorb(app.drain().await);
    let timelines = timelines(&app);
    let dead = app.dead_letters();
    if json {
        for t in &timelines {
            println!("{}", serde_json::to_string(t)?);
        }
    } else {
        println!();
        for t in &timelines {
            println!("{}", render(t));
        }
        let q = app.store.quarantined();
        use crate::reconcile::plural;
        println!(
            "{}, {} complete; {}, {} retried; {}; {}",
            plural(timelines.len() as u64, "order", "orders"),
            timelines.iter().filter(|t| t.complete).count(),
            plural(
                report.deliveries as u64,
                "queue delivery",
                "queue deliveries"
            ),
            report.retries,
            plural(
                q.len() as u64,
                "quarantined delivery",
                "quarantined deliveries"
            ),
            plural(dead.len() as u64, "dead letter", "dead letters")
        );
        for d in &dead {
            println!("  DLQ {}: {}", d.queue, d.reason);
        }
    }
    let (on_purpose, not_taken) = expected.judge(&fed, &refusals);
    if !json {
        print_refusals(&on_purpose, &not_taken, &refusals);
        let first = timelines
            .iter()
            .find(|t| !t.complete)
            .or(timelines.first())
            .map_or("<order key>".to_string(), |t| t.correlation_id.clone());
        println!("state kept in {}; next:", data_dir.display());
        println!("  {}", next_command(data_dir, &format!("trace {first}")));
        println!(
            "  {}   ·   {}",
            next_command(data_dir, "replay list"),
            next_command(data_dir, "reconcile")
        );
        // What the same run costs on AWS, counted on the in-process adapters.
        println!(
            "state store writes: {}; events published: {}",
            app.store.writes(),
            app.bus.recorded.published().len()
        );
    }
    Ok(timelines.iter().all(|t| t.complete)
        && dead.is_empty()
        && !report.gave_up
        && not_taken.is_empty())
}

/// A command to paste after this one: with the data directory it used,
/// unless that is the default.
pub(crate) fn next_command(data_dir: &Path, args: &str) -> String {
    if data_dir == Path::new(retailflow::data_dir::DEFAULT_DATA_DIR) {
        return format!("retailflow {args}");
    }
    format!("retailflow {args} --data-dir {}", shell_quoted(data_dir))
}

/// `p` as one shell word.
fn shell_quoted(p: &Path) -> String {
    let s = p.display().to_string();
    let plain = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%,".contains(&b));
    if plain && !s.is_empty() {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// What `run` and `send` say of the refusals: those the samples are there
/// to show, then what should have been taken and was not, with the likely
/// cause when another Shopify secret is set.
pub(crate) fn print_refusals(on_purpose: &[String], not_taken: &[String], refusals: &[Refusal]) {
    if !on_purpose.is_empty() {
        println!(
            "refused on purpose ({}; the samples are there to show it):",
            on_purpose.len()
        );
        for line in on_purpose {
            println!("  {line}");
        }
    }
    if !not_taken.is_empty() {
        println!(
            "NOT TAKEN ({}): deliveries that should have been taken were not:",
            not_taken.len()
        );
        for line in not_taken {
            println!("  {line}");
        }
        if std::env::var_os("RETAILFLOW_SHOPIFY_SECRET").is_some()
            && refusals.iter().any(|r| r.status == Some(401))
        {
            println!(
                "  hint: RETAILFLOW_SHOPIFY_SECRET is set, so the dev keys are not used; the samples are signed with events/dev-keys"
            );
        }
    }
}

/// A file the app did not take: refused with a status, or not fed at all.
pub(crate) struct Refusal {
    pub(crate) file: String,
    pub(crate) status: Option<u16>,
    pub(crate) reason: String,
}

impl Refusal {
    /// A refusal in a fed file's answer line (`<status> <body>`), if any.
    pub(crate) fn of(file: &str, line: &str) -> Option<Self> {
        let (status, body) = line.split_once(' ')?;
        let status: u16 = status.parse().ok()?;
        if status < 400 {
            return None;
        }
        let body: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let reason = body["error"]
            .as_str()
            .unwrap_or(body.to_string().as_str())
            .to_string();
        let reason = match body["quarantine_id"].as_str() {
            Some(q) => format!("{reason} (kept as quarantine {q})"),
            None => reason,
        };
        Some(Refusal {
            file: file.to_string(),
            status: Some(status),
            reason,
        })
    }
}

/// The samples that are there to be refused, and how: from a
/// `refused-on-purpose.tsv` beside them (`file<TAB>status<TAB>why`, `#`
/// comments), else by name (`*tampered*` 401, `*mismatch*` 400, as
/// `sample-event --tamper` names them). Any other refusal, or one of these
/// taken, is a delivery the run did not take as it should have.
#[derive(Default)]
pub(crate) struct RefusedOnPurpose {
    read: std::collections::BTreeSet<PathBuf>,
    listed: std::collections::BTreeMap<String, (u16, String)>,
}

impl RefusedOnPurpose {
    const MANIFEST: &'static str = "refused-on-purpose.tsv";

    pub(crate) fn read_beside(&mut self, file: &Path) -> anyhow::Result<()> {
        let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
        if !self.read.insert(dir.clone()) {
            return Ok(());
        }
        let manifest = dir.join(Self::MANIFEST);
        if !manifest.is_file() {
            return Ok(());
        }
        for (n, line) in read(&manifest)?.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut cols = line.splitn(3, '\t');
            let (Some(name), Some(status), why) = (cols.next(), cols.next(), cols.next()) else {
                bail!(
                    "{} line {}: not file<TAB>status<TAB>why",
                    manifest.display(),
                    n + 1
                );
            };
            let status: u16 = status.trim().parse().with_context(|| {
                format!("{} line {}: status {status:?}", manifest.display(), n + 1)
            })?;
            self.listed.insert(
                name.trim().to_string(),
                (status, why.unwrap_or_default().trim().to_string()),
            );
        }
        Ok(())
    }

    fn expected(&self, file: &str) -> Option<(u16, String)> {
        self.listed.get(file).cloned().or_else(|| {
            if file.contains("tampered") {
                Some((401, "tampered, by its name".into()))
            } else if file.contains("mismatch") {
                Some((400, "its totals do not add up, by its name".into()))
            } else {
                None
            }
        })
    }

    /// The refusals shown on purpose, and what was not taken as it should
    /// have been (refused otherwise, or taken when it should not).
    pub(crate) fn judge(&self, fed: &[String], refusals: &[Refusal]) -> (Vec<String>, Vec<String>) {
        let (mut on_purpose, mut not_taken) = (Vec::new(), Vec::new());
        for r in refusals {
            match (self.expected(&r.file), r.status) {
                (Some((want, why)), Some(got)) if want == got => {
                    on_purpose.push(format!("{r} (expected: {why})"));
                }
                _ => not_taken.push(r.to_string()),
            }
        }
        for file in fed {
            if let Some((want, why)) = self.expected(file) {
                if !refusals.iter().any(|r| &r.file == file) {
                    not_taken.push(format!(
                        "{file}: taken, but it is there to be refused with {want} ({why})"
                    ));
                }
            }
        }
        (on_purpose, not_taken)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "{}: {s} {}", self.file, self.reason),
            None => write!(f, "{}: not fed: {}", self.file, self.reason),
        }
    }
}

/// What a payload looks like, from its fields, when it did not map as the
/// source given: a person who picked the wrong `--source` hears which one.
fn looks_like(body: &str) -> Option<&'static str> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    if v.get("specversion").is_some() || v["data"]["value"].is_object() || v.get("event").is_some()
    {
        Some("an Adobe Commerce event: try --source adobe --topic observer.sales_order_save_after")
    } else if v.get("return_id").is_some() && v.get("store_id").is_some() {
        Some("a till's return: try --source pos --topic pos/returns --shop <store id>")
    } else if v.get("line_items").is_some() || v.get("refund_line_items").is_some() {
        Some("a Shopify webhook: try --source shopify --topic orders/create (or refunds/create, orders/cancelled)")
    } else {
        None
    }
}

pub fn canonical(source: Source, topic: &str, shop: &str, file: &Path) -> anyhow::Result<()> {
    let body = read(file)?;
    let mapped = map_as(source, topic, shop, &body).map_err(|e| match looks_like(&body) {
        Some(hint) => e.context(format!(
            "{} does not map as given; it looks like {hint}",
            file.display()
        )),
        None => e.context(format!("{} does not map", file.display())),
    });
    let (platform, event) = mapped?;
    canonical_out(platform, shop, topic, &body, event)
}

/// The payload mapped as `source` says it is.
fn map_as(
    source: Source,
    topic: &str,
    shop: &str,
    body: &str,
) -> anyhow::Result<(&'static str, CanonicalEvent)> {
    Ok(match source {
        Source::Shopify => {
            let t = shopify::ShopifyTopic::parse(topic)
                .with_context(|| format!("retailflow does not map Shopify topic {topic:?}"))?;
            ("shopify", shopify::map(t, shop, body.as_bytes())?)
        }
        Source::Pos => ("point_of_sale", pos::map(shop, body.as_bytes())?),
        Source::Adobe => {
            let delivery = adobe::AdobeDelivery::parse(body.as_bytes())?;
            if !adobe::is_order_event_code(topic) && !adobe::is_creditmemo_event_code(topic) {
                bail!("retailflow does not map Adobe event {topic:?}");
            }
            ("adobe_commerce", adobe::map(shop, &delivery)?)
        }
    })
}

fn canonical_out(
    platform: &str,
    shop: &str,
    topic: &str,
    body: &str,
    event: CanonicalEvent,
) -> anyhow::Result<()> {
    let delivery_id = format!("file:{}", &payload_hash(body.as_bytes())[..16]);
    let meta = EnvelopeMeta {
        event_id: delivery_event_id(platform, shop, topic, &delivery_id),
        occurred_at: event.occurred_at(),
        source: format!("{platform}:{shop}"),
        causation_id: Some(delivery_id),
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&event.to_envelope(&meta))?
    );
    Ok(())
}

/// What `sample-event` is asked to make.
pub struct SampleEvent<'a> {
    pub source: Source,
    pub topic: &'a str,
    pub shop: &'a str,
    pub event_id: Option<String>,
    pub dev_keys: &'a Path,
    pub tamper: bool,
    /// When it is delivered: every stamp of the event says this time.
    pub at: chrono::DateTime<chrono::Utc>,
}

pub fn sample_event(sample: SampleEvent<'_>, payload: &Path) -> anyhow::Result<()> {
    let SampleEvent {
        source,
        topic,
        shop,
        event_id,
        dev_keys,
        tamper,
        at,
    } = sample;
    let body = read(payload)?.trim_end().to_string();
    // Adobe dates the event inside the signed body: dated `at` too.
    let body = match source {
        Source::Adobe => dated_adobe_body(&body, at),
        _ => body,
    };
    let (path, headers) = match source {
        Source::Shopify => {
            let secret = Secret::new(read(&dev_keys.join("shopify-secret.txt"))?);
            let event_id = event_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let headers = vec![
                ("X-Shopify-Topic".to_string(), topic.to_string()),
                ("X-Shopify-Shop-Domain".into(), shop.to_string()),
                ("X-Shopify-Event-Id".into(), event_id.clone()),
                ("X-Shopify-Webhook-Id".into(), format!("wh-{event_id}")),
                ("X-Shopify-API-Version".into(), "2025-10".into()),
                (
                    "X-Shopify-Triggered-At".into(),
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ),
                (
                    "X-Shopify-Hmac-Sha256".into(),
                    shopify_signature(&secret, body.as_bytes()),
                ),
            ];
            ("/webhooks/shopify", headers)
        }
        Source::Pos => {
            let stores: std::collections::BTreeMap<String, String> =
                serde_json::from_str(&read(&dev_keys.join("pos-store-secrets.json"))?)?;
            let secret = stores
                .get(shop)
                .with_context(|| format!("no dev secret for store {shop}"))?;
            // Stamped at the event's time (its requestContext.timeEpoch),
            // with a nonce fixed by the body and time so regenerating the
            // samples changes nothing.
            let nonce = if at == crate::api_event::recorded_at() {
                uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, body.as_bytes()).to_string()
            } else {
                let seed = format!("{}.{body}", at.timestamp_millis());
                uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, seed.as_bytes()).to_string()
            };
            let headers =
                pos::signed_headers(shop, &Secret::new(secret), at, &nonce, body.as_bytes())
                    .into_iter()
                    .filter(|(name, _)| *name != "content-type")
                    .map(|(name, value)| (name.to_string(), value))
                    .collect();
            ("/pos/returns", headers)
        }
        Source::Adobe => {
            let mut headers = Vec::new();
            for n in 1..=2 {
                let key = read(&dev_keys.join(format!("adobe-private-{n}.pem")))?;
                headers.push((
                    format!("x-adobe-digital-signature-{n}"),
                    adobe_signature(&key, body.as_bytes())?,
                ));
                headers.push((
                    format!("x-adobe-public-key{n}-path"),
                    format!("/prod/keys/pub-key-dev-{n}.pem"),
                ));
            }
            headers.push(("x-adobe-event-code".into(), topic.to_string()));
            ("/webhooks/adobe", headers)
        }
    };
    // Any byte changed after signing; the JSON stays valid.
    let body = if tamper { format!("{body} ") } else { body };
    let request_id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, body.as_bytes()).to_string();
    let event = webhook_event(path, &headers, &body, &request_id, at);
    println!("{}", serde_json::to_string_pretty(&event)?);
    Ok(())
}

/// `body` with its CloudEvents `time` set to `at`, the rest byte for byte
/// (the samples keep their layout); as it was if it names no time.
pub(crate) fn dated_adobe_body(body: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let Some(old) = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["time"].as_str().map(str::to_string))
    else {
        return body.to_string();
    };
    let new = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    body.replacen(
        &format!("\"time\": \"{old}\""),
        &format!("\"time\": \"{new}\""),
        1,
    )
}

pub fn sample_sqs_event(
    queue: &str,
    shop: &str,
    topic: &str,
    payload: &Path,
) -> anyhow::Result<()> {
    let body = read(payload)?;
    let parsed = shopify::ShopifyTopic::parse(topic)
        .ok_or_else(|| anyhow::anyhow!("unknown Shopify topic {topic:?}"))?;
    let event = shopify::map(parsed, shop, body.as_bytes())?;
    let delivery_id = format!("file:{}", &payload_hash(body.as_bytes())[..16]);
    let meta = EnvelopeMeta {
        event_id: delivery_event_id("shopify", shop, topic, &delivery_id),
        occurred_at: event.occurred_at(),
        source: format!("shopify:{shop}"),
        causation_id: Some(delivery_id),
    };
    let bus_event = retailflow_core::ports::BusEvent {
        event_id: meta.event_id,
        detail_type: event.event_type().to_string(),
        source: retailflow_core::events::INTAKE_SOURCE.to_string(),
        detail: event.to_envelope(&meta).to_string(),
        time: event.occurred_at(),
    };
    let sqs = serde_json::json!({"Records": [{
        "messageId": meta.event_id.to_string(),
        "receiptHandle": format!("sample-{}", meta.event_id),
        "body": retailflow::runtime::eventbridge_event(&bus_event),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795694400000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{queue}"),
        "awsRegion": "us-east-1"
    }]});
    println!("{}", serde_json::to_string_pretty(&sqs)?);
    Ok(())
}

/// `retailflow load-catalog`: a catalog file into the state table.
pub async fn load_catalog(table: &str, file: &Path) -> anyhow::Result<()> {
    use retailflow_aws::adapters::dynamodb_catalog::DynamoDbCatalog;
    use retailflow_aws::adapters::dynamodb_stock::DynamoDbStock;
    use retailflow_core::adapters::in_process::CatalogSeed;
    use retailflow_core::checkout::pricing::PriceEntry;
    use retailflow_core::ports::catalog::Catalog;
    use retailflow_core::ports::stock::StockReservations;
    let seed = CatalogSeed::parse(&read(file)?).map_err(anyhow::Error::msg)?;
    let currency = retailflow_core::money::Currency::from_code(&seed.currency)?;
    let aws = retailflow::stack::aws_config().await?;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let catalog = DynamoDbCatalog::new(ddb.clone(), table);
    let stock = DynamoDbStock::new(ddb, table);
    let skus: Vec<String> = seed.items.iter().map(|i| i.sku.clone()).collect();
    let current = Catalog::prices(&catalog, &skus).await?;
    let (mut prices, mut counts) = (0, 0);
    for item in &seed.items {
        let price = retailflow_core::money::Money::parse(&item.price, currency)
            .with_context(|| format!("price of {}", item.sku))?;
        let old = current.get(&item.sku);
        if old.is_none_or(|o| o.price != price || o.collections != item.collections) {
            let entry = PriceEntry {
                sku: item.sku.clone(),
                price,
                version: old.map_or(1, |o| o.version + 1),
                collections: item.collections.clone(),
            };
            if Catalog::put_price(&catalog, &entry).await? {
                prices += 1;
            }
        }
        stock.set_on_hand(&item.sku, item.on_hand).await?;
        counts += 1;
    }
    for p in &seed.promotions {
        catalog.put_promotion(p).await?;
    }
    println!(
        "{table}: {prices} price(s) written, {counts} on-hand count(s) set, {} promotion(s) written",
        seed.promotions.len()
    );
    Ok(())
}

/// `retailflow trace`: an order's trace from a deployed state table
/// (its steps; the dead-letter queues are not read there yet).
pub async fn trace(table: &str, key: &str, json: bool) -> anyhow::Result<bool> {
    let store = retailflow::stack::state_store(table).await?;
    let Some(t) = retailflow_core::trace::trace_order(&store, key).await? else {
        bail!("{table} has no saga for {key}");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&t)?);
    } else {
        print!("{}", retailflow_core::trace::render(&t));
    }
    Ok(t.complete)
}
