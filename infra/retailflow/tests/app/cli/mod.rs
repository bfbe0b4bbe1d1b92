//! The `retailflow` binary as a person uses it: `serve`, `run` and `canonical`.

mod console;
mod follow_up;
mod help;
mod live_serve;
mod progress;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use retailflow_core::webhook::{shopify_signature, Secret};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn payload(name: &str) -> String {
    std::fs::read_to_string(repo().join("events/payloads").join(name)).unwrap()
}

/// A data directory of its own, so tests run side by side.
fn fresh_dir() -> PathBuf {
    std::env::temp_dir().join(format!("retailflow-cli-{}", uuid::Uuid::new_v4()))
}

/// The binary on a data directory.
fn cli_in(data_dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_retailflow"));
    c.env("RETAILFLOW_DATA_DIR", data_dir);
    c
}

/// The binary on a fresh data directory.
fn cli() -> Command {
    cli_in(&fresh_dir())
}

struct Server {
    child: Child,
    addr: String,
    data_dir: PathBuf,
    /// Left for a restart to open again.
    keep_data: bool,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep_data {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

fn serve() -> Server {
    serve_on(&fresh_dir())
}

fn serve_on(data_dir: &std::path::Path) -> Server {
    let mut c = cli_in(data_dir);
    c.env("RETAILFLOW_SHOPIFY_SECRET", "serve-secret")
        .env("RETAILFLOW_SHOPIFY_PREVIOUS_SECRET", "serve-old-secret")
        .env("RETAILFLOW_SHOPIFY_CLIENT_ID", "serve-client-id")
        .env("RETAILFLOW_SHOPIFY_SHOPS", "acme.myshopify.com")
        .env(
            "RETAILFLOW_CHECKOUT_STOREFRONT_SECRETS",
            r#"{"web-eu":"serve-storefront-secret"}"#,
        );
    start_server(c, data_dir)
}

/// `serve` as a newcomer starts it: from the repository root with no
/// secrets set, so it verifies with the dev keys the samples are signed with.
fn serve_from_repo(data_dir: &std::path::Path) -> Server {
    let mut c = cli_in(data_dir);
    c.current_dir(repo());
    for (k, _) in std::env::vars() {
        if k.starts_with("RETAILFLOW_") && k != "RETAILFLOW_DATA_DIR" {
            c.env_remove(k);
        }
    }
    start_server(c, data_dir)
}

/// `c` (the binary on `data_dir`) serving on a free loopback port, once it
/// accepts connections.
fn start_server(mut c: Command, data_dir: &std::path::Path) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = c
        .args(["serve", "--listen", &addr])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Forward the server's log lines so a failure shows them.
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[serve] {line}");
        }
    });
    let start = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        addr,
        data_dir: data_dir.to_path_buf(),
        keep_data: false,
    }
}

fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.to_string())),
    )
}

fn shopify_headers(secret: &str, event_id: &str, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Content-Type", "application/json".into()),
        ("X-Shopify-Topic", "orders/create".into()),
        ("X-Shopify-Shop-Domain", "acme.myshopify.com".into()),
        ("X-Shopify-Event-Id", event_id.into()),
        (
            "X-Shopify-Hmac-Sha256",
            shopify_signature(&Secret::new(secret), body.as_bytes()),
        ),
    ]
}

#[test]
fn serve_accepts_signed_refuses_tampered_and_publishes_a_redelivery_as_the_same_event() {
    let server = serve();
    let body = payload("shopify-orders-create-discount-code.json");
    let headers = shopify_headers("serve-secret", "ev-serve-1", &body);

    let (status, first) = http(&server.addr, "POST", "/webhooks/shopify", &headers, &body);
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["event_type"], "OrderPlaced");

    let tampered = body.replace("\"quantity\": 1", "\"quantity\": 2");
    assert_ne!(tampered, body);
    let (status, _) = http(
        &server.addr,
        "POST",
        "/webhooks/shopify",
        &headers,
        &tampered,
    );
    assert_eq!(status, 401);

    let (status, again) = http(&server.addr, "POST", "/webhooks/shopify", &headers, &body);
    assert_eq!(status, 200);
    assert_eq!(again["duplicate"], true);

    // Signed with the previous secret during a rotation: accepted.
    let rotated = shopify_headers("serve-old-secret", "ev-serve-2", &body);
    assert_eq!(
        http(&server.addr, "POST", "/webhooks/shopify", &rotated, &body).0,
        200
    );

    let (status, state) = http(&server.addr, "GET", "/local/state", &[], "");
    assert_eq!(status, 200);
    let events = state["events"].as_array().unwrap();
    let first_id = first["event_id"].as_str().unwrap();
    // The redelivery is published again, under the first one's event id.
    assert_eq!(
        events.iter().filter(|e| e["event_id"] == first_id).count(),
        2,
        "{state}"
    );
    // Two deliveries placed the order (distinct events); the saga's steps ran
    // once, their events (re-published with the same id) are one each.
    let distinct = |t: &str| {
        let mut ids: Vec<&str> = events
            .iter()
            .filter(|e| e["detail_type"] == t)
            .map(|e| e["event_id"].as_str().unwrap())
            .collect();
        ids.sort();
        ids.dedup();
        ids.len()
    };
    assert_eq!(distinct("OrderPlaced"), 2);
    assert_eq!(distinct("OrderPostedToErp"), 1);
    assert_eq!(distinct("LoyaltyAccrued"), 1);
    assert_eq!(state["sagas"].as_array().unwrap().len(), 1);
    let (_, timelines) = http(&server.addr, "GET", "/local/timelines", &[], "");
    assert_eq!(timelines[0]["complete"], true, "{timelines}");
}

#[test]
fn serve_answers_bad_input_with_reasons() {
    let server = serve();
    let headers = shopify_headers("serve-secret", "ev-bad-1", "{not json");
    let (status, body) = http(
        &server.addr,
        "POST",
        "/webhooks/shopify",
        &headers,
        "{not json",
    );
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("JSON"), "{body}");
    assert!(body["quarantine_id"].is_string());
    let big = "x".repeat(7 * 1024 * 1024);
    let headers = shopify_headers("serve-secret", "ev-big", &big);
    assert_eq!(
        http(&server.addr, "POST", "/webhooks/shopify", &headers, &big).0,
        413
    );
    // No Adobe keys configured for this server: not accepted, retry later.
    assert_eq!(
        http(&server.addr, "POST", "/webhooks/adobe", &[], "{}").0,
        503
    );
}

/// A storefront's signed request headers, as docs/operations.md signs them.
fn storefront_headers(body: &str, nonce: &str) -> Vec<(&'static str, String)> {
    retailflow_core::checkout::auth::storefront_headers(
        "web-eu",
        &Secret::new("serve-storefront-secret"),
        chrono::Utc::now(),
        nonce,
        body.as_bytes(),
    )
}

#[test]
fn serve_validates_a_checkout_as_the_readme_shows() {
    let server = serve();
    let body = r#"{"checkout_id":"readme-1","customer_id":"c-1","lines":[{"sku":"MCS-CHR-M","quantity":2,"shown_price":{"minor":2499,"currency":"USD"}}],"promotion_codes":["SOCKS5"]}"#;
    let json = [("content-type", "application/json".to_string())];
    // Nobody vouches for the caller: 401, and nothing is held.
    let (status, resp) = http(&server.addr, "POST", "/checkout/validate", &json, body);
    assert_eq!(status, 401, "{resp}");
    assert!(
        resp["error"].as_str().unwrap().contains("no credentials"),
        "{resp}"
    );
    let signed = storefront_headers(body, "readme-nonce-0000000001");
    let (status, resp) = http(&server.addr, "POST", "/checkout/validate", &signed, body);
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["status"], "accepted", "{resp}");
    assert_eq!(resp["totals"]["total"]["minor"], 4498);
    // The same request again is a replay.
    let (status, resp) = http(&server.addr, "POST", "/checkout/validate", &signed, body);
    assert_eq!(status, 401, "{resp}");
    // A Shopify checkout's session token, signed with the app's secret.
    let at = chrono::Utc::now().timestamp();
    let token = |secret: &str| {
        retailflow_core::checkout::auth::session_token(
            &Secret::new(secret),
            &serde_json::json!({"dest": "https://acme.myshopify.com", "aud": "serve-client-id",
                "sub": "gid://shopify/Customer/77", "exp": at + 300, "nbf": at, "iat": at}),
        )
    };
    let shopper = r#"{"checkout_id":"readme-2","lines":[{"sku":"BLB-01","quantity":1,"shown_price":{"minor":1250,"currency":"USD"}}]}"#;
    let bearer = |t: String| vec![("Authorization", format!("Bearer {t}"))];
    let (status, resp) = http(
        &server.addr,
        "POST",
        "/checkout/validate",
        &bearer(token("serve-secret")),
        shopper,
    );
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["status"], "accepted", "{resp}");
    let (status, _) = http(
        &server.addr,
        "POST",
        "/checkout/validate",
        &bearer(token("forged")),
        shopper,
    );
    assert_eq!(status, 401);
    let bad = "{\"lines\":1}";
    let (status, resp) = http(
        &server.addr,
        "POST",
        "/checkout/validate",
        &storefront_headers(bad, "readme-nonce-0000000002"),
        bad,
    );
    assert_eq!(status, 400);
    assert!(
        resp["error"]
            .as_str()
            .unwrap()
            .contains("not a checkout request"),
        "{resp}"
    );
}

fn canonical(source: &str, topic: &str, file: &str) -> serde_json::Value {
    let out = cli()
        .args(["canonical", "--source", source, "--topic", topic])
        .arg(repo().join("events/payloads").join(file))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn totals(env: &serde_json::Value, side: &str) -> Vec<i64> {
    let t = &env["detail"]["order"]["totals"];
    [
        "lines_gross",
        "line_discounts",
        "shipping",
        "shipping_discounts",
        "tax",
        "total",
    ]
    .iter()
    .map(|k| t[k][side]["minor"].as_i64().unwrap())
    .collect()
}

#[test]
fn canonical_prints_totals_that_reconcile_for_the_acceptance_orders() {
    // [lines, line discounts, shipping, shipping discounts, tax, total]
    let discount = canonical(
        "shopify",
        "orders/create",
        "shopify-orders-create-discount-code.json",
    );
    assert_eq!(
        totals(&discount, "shop"),
        vec![12148, 1215, 1000, 0, 875, 12808]
    );
    assert_eq!(discount["schema_version"], 1);

    let eur = canonical(
        "shopify",
        "orders/create",
        "shopify-orders-create-eur-presentment-vat-inclusive.json",
    );
    assert_eq!(totals(&eur, "shop"), vec![14457, 1087, 641, 0, 2335, 14011]);
    assert_eq!(
        totals(&eur, "presentment"),
        vec![13300, 1000, 590, 0, 2148, 12890]
    );
    assert_eq!(
        eur["detail"]["order"]["totals"]["total"]["presentment"]["currency"],
        "EUR"
    );

    let cad = canonical(
        "shopify",
        "orders/create",
        "shopify-orders-create-cad-gift-card.json",
    );
    assert_eq!(totals(&cad, "shop"), vec![13999, 0, 1500, 0, 1365, 16864]);
    assert_eq!(
        cad["detail"]["order"]["totals"]["gift_cards"]["shop"]["minor"],
        5000
    );

    let adobe = canonical(
        "adobe",
        "observer.sales_order_save_after",
        "adobe-order-configurable.json",
    );
    assert_eq!(totals(&adobe, "shop"), vec![8400, 520, 1000, 0, 650, 9530]);
    assert_eq!(
        adobe["detail"]["order"]["lines"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn canonical_prints_an_adobe_credit_memo_as_a_refund_with_its_fee_as_a_line_of_its_own() {
    let memo = canonical(
        "adobe",
        "observer.sales_order_creditmemo_save_after",
        "adobe-creditmemo-adjustment-fee.json",
    );
    assert_eq!(memo["event_type"], "RefundIssued", "{memo}");
    let refund = &memo["detail"]["refund"];
    assert_eq!(refund["refund_id"], "42");
    assert_eq!(refund["total"]["shop"]["minor"], 4_566);
    let parts: Vec<(String, i64)> = refund["adjustment_parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_string(),
                p["amount"]["shop"]["minor"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(parts, vec![("refund".into(), 0), ("fee".into(), -500)]);
}

#[test]
fn canonical_reports_a_mismatch_and_exits_non_zero() {
    let out = cli()
        .args([
            "canonical",
            "--source",
            "shopify",
            "--topic",
            "orders/create",
        ])
        .arg(repo().join("events/payloads/invalid/shopify-orders-create-totals-mismatch.json"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("total_price") && err.contains("999.99"),
        "{err}"
    );
}

#[test]
fn run_feeds_the_sample_events_through_the_whole_app() {
    let out = cli().current_dir(repo()).args(["run"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let status_of = |file: &str| -> u16 {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(file))
            .unwrap_or_else(|| panic!("{file} missing:\n{stdout}"));
        line[60..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(status_of("01-shopify-orders-create.json"), 200);
    assert_eq!(status_of("02-shopify-orders-create-redelivery.json"), 200);
    assert!(stdout
        .lines()
        .any(|l| l.starts_with("02-") && l.contains("\"duplicate\":true")));
    assert_eq!(status_of("03-shopify-orders-create-tampered.json"), 401);
    assert_eq!(
        status_of("06-shopify-orders-create-totals-mismatch.json"),
        400
    );
    assert_eq!(status_of("11-adobe-order-configurable.json"), 200);
    assert!(
        stdout.contains("5 orders, 5 complete;")
            && stdout.contains("1 quarantined delivery; 0 dead letters"),
        "{stdout}"
    );
    // The four orders that stay open; Adobe order 216 is cancelled a
    // second after it was placed, before or after its ERP post ran.
    let posted = stdout.matches("ERP posted: netsuite document SO").count();
    assert!(posted == 4 || posted == 5, "{stdout}");
    assert!(
        stdout.contains("points accrued: 109 points on 109.33 USD"),
        "{stdout}"
    );
}

#[test]
fn run_json_prints_one_timeline_per_order_and_fails_on_dead_letters() {
    let out = cli()
        .current_dir(repo())
        .args(["run", "--json", "events/"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert!(lines.iter().all(|t| t["complete"] == true));

    // An SQS event whose message is not an order: DLQ, exit code 2.
    let dir = std::env::temp_dir().join(format!("rf-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqs = dir.join("sqs.json");
    std::fs::write(
        &sqs,
        r#"{"Records":[{"messageId":"1","body":"{}","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:us-east-1:000000000000:retailflow-erp-post"}]}"#,
    )
    .unwrap();
    let out = cli()
        .current_dir(repo())
        .arg("run")
        .arg(&sqs)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("DLQ erp-post"));
}

#[test]
fn reconcile_asks_a_running_serve_and_reports_a_clean_order_and_refuses_a_bad_window() {
    let server = serve();
    let body = payload("shopify-orders-create-discount-code.json");
    let headers = shopify_headers("serve-secret", "ev-recon-1", &body);
    assert_eq!(
        http(&server.addr, "POST", "/webhooks/shopify", &headers, &body).0,
        200
    );
    let url = format!("http://{}", server.addr);
    let out = cli()
        .args(["reconcile", "--local", &url, "--hours", "2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("complete: 1 saga: 1 order, 0 returns, 0 cancellations"),
        "{text}"
    );
    assert!(text.contains("no discrepancies"), "{text}");

    // The same through --json, and a window backwards is refused with why.
    let out = cli()
        .args(["reconcile", "--local", &url, "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["complete"], true);
    let (status, refused) = http(
        &server.addr,
        "POST",
        "/local/reconcile",
        &[],
        r#"{"from":"2026-11-27T00:00:00Z","to":"2026-11-26T00:00:00Z"}"#,
    );
    assert_eq!(status, 400);
    assert!(refused.to_string().contains("after"), "{refused}");
    // Nowhere to reconcile: a clear error, not a run.
    let out = cli().args(["reconcile"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--local"));
}

#[test]
fn serve_killed_and_restarted_keeps_its_orders_events_and_deduplication() {
    let dir = fresh_dir();
    let body = payload("shopify-orders-create-discount-code.json");
    let headers = shopify_headers("serve-secret", "ev-restart-1", &body);
    {
        let mut first = serve_on(&dir);
        first.keep_data = true;
        assert_eq!(
            http(&first.addr, "POST", "/webhooks/shopify", &headers, &body).0,
            200
        );
        // Dropped: the process is killed (SIGKILL), no shutdown of any kind.
    }
    let server = serve_on(&dir);
    let (status, state) = http(&server.addr, "GET", "/local/state", &[], "");
    assert_eq!(status, 200);
    assert_eq!(state["sagas"].as_array().unwrap().len(), 1, "{state}");
    assert!(
        state["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["detail_type"] == "OrderPostedToErp"),
        "{state}"
    );
    // Shopify retries the delivery it sent before the restart: a duplicate.
    let (status, again) = http(&server.addr, "POST", "/webhooks/shopify", &headers, &body);
    assert_eq!(status, 200);
    assert_eq!(again["duplicate"], true, "{again}");
    // `trace` with no flags finds the running serve through the data dir.
    let out = cli_in(&dir)
        .args(["trace", "shopify:acme.myshopify.com:order:5872301948123"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches("erp_post: done").count(), 1, "{text}");
    assert!(text.contains("loyalty_accrual: done"), "{text}");
}

#[test]
fn trace_replay_and_reconcile_read_what_run_left_after_it_exited() {
    let dir = fresh_dir();
    let out = cli_in(&dir)
        .current_dir(repo())
        .args(["run", "events/"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = |args: &[&str]| -> String {
        let out = cli_in(&dir).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let trace = ok(&[
        "trace",
        "shopify:acme-outdoor.myshopify.com:order:5872301948123",
    ]);
    assert!(trace.contains("erp_post: done"), "{trace}");
    assert!(trace.contains("credit_memo [return:"), "{trace}");
    assert!(ok(&["replay", "list"]).contains("0 dead letters"));
    // The ERP and loyalty records the run made are there to compare with.
    let report = ok(&["reconcile", "--hours", "2"]);
    assert!(
        report.contains("12 sagas: 5 orders, 5 returns, 2 cancellations"),
        "{report}"
    );
    assert!(report.contains("no discrepancies"), "{report}");
    // A key the run never saw, and a directory nothing ran in: said plainly.
    let out = cli_in(&dir).args(["trace", "nope"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no saga for nope"));
    let out = cli().args(["trace", "nope"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("run `retailflow run`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The binary's stdout of one call, asserting it succeeded.
fn stdout_of(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn run_takes_an_order_of_1500_lines_and_its_return_both_by_claim_check_and_exits_0() {
    let dir = fresh_dir();
    let events = dir.join("events");
    std::fs::create_dir_all(&events).unwrap();
    for (n, extra, topic) in [
        ("1-order", &[][..], "orders/create"),
        ("2-refund", &["--refund"][..], "refunds/create"),
    ] {
        let payload = dir.join(format!("{n}.payload.json"));
        std::fs::write(
            &payload,
            stdout_of(
                cli()
                    .args(["large-order", "--lines", "1500", "--skus", "150"])
                    .args(extra),
            ),
        )
        .unwrap();
        let event = stdout_of(
            cli()
                .args(["sample-event", "--source", "shopify", "--topic", topic])
                .args(["--shop", "acme.myshopify.com", "--event-id", n])
                .arg("--dev-keys")
                .arg(repo().join("events/dev-keys"))
                .arg(&payload),
        );
        std::fs::write(events.join(format!("{n}.json")), event).unwrap();
    }
    let out = cli_in(&dir.join("data"))
        .current_dir(repo())
        .arg("run")
        .arg(&events)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 order, 1 complete"), "{text}");
    assert!(text.contains("CreditMemoPosted"), "{text}");
    assert!(
        text.contains("(1500 line(s)"),
        "the refund read back from its claim check: {text}"
    );
    assert!(!text.contains("NOT TAKEN"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn run_says_what_it_did_not_take_and_exits_non_zero() {
    let dir = fresh_dir();
    let events = dir.join("events");
    std::fs::create_dir_all(&events).unwrap();
    // Over what a Lambda takes in one request: 6 MB.
    let payload = dir.join("huge.payload.json");
    std::fs::write(
        &payload,
        stdout_of(cli().args(["large-order", "--lines", "6000", "--skus", "10"])),
    )
    .unwrap();
    let event = stdout_of(
        cli()
            .args([
                "sample-event",
                "--source",
                "shopify",
                "--topic",
                "orders/create",
            ])
            .arg("--dev-keys")
            .arg(repo().join("events/dev-keys"))
            .arg(&payload),
    );
    std::fs::write(events.join("huge.json"), event).unwrap();
    let out = cli_in(&dir.join("data"))
        .current_dir(repo())
        .arg("run")
        .arg(&events)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("NOT TAKEN (1)"), "{text}");
    assert!(text.contains("huge.json: 413"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn run_without_the_dev_keys_names_dev_keys_and_creates_no_state() {
    let dir = fresh_dir();
    let elsewhere = fresh_dir();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let from_elsewhere = cli_in(&dir)
        .current_dir(&elsewhere)
        .env_remove("RETAILFLOW_SHOPIFY_SECRET")
        .arg("run")
        .arg(repo().join("events"))
        .output()
        .unwrap();
    let pointing_nowhere = cli_in(&dir)
        .current_dir(repo())
        .env_remove("RETAILFLOW_SHOPIFY_SECRET")
        .args(["run", "events/", "--dev-keys", "/nowhere/dev-keys"])
        .output()
        .unwrap();
    for out in [from_elsewhere, pointing_nowhere] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("--dev-keys"), "{stderr}");
    }
    assert!(!dir.exists(), "a refused run created {}", dir.display());
    let _ = std::fs::remove_dir_all(&elsewhere);
}

#[test]
fn a_mistyped_run_argument_keeps_the_last_runs_state() {
    let dir = fresh_dir();
    let run = |args: &[&str]| {
        cli_in(&dir)
            .current_dir(repo())
            .env_remove("RETAILFLOW_SHOPIFY_SECRET")
            .args(args)
            .output()
            .unwrap()
    };
    assert!(run(&["run", "events/"]).status.success());
    let typo = run(&["run", "events/typo.json"]);
    assert!(!typo.status.success());
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert!(stderr.contains("events/typo.json"), "{stderr}");
    assert!(!run(&["run", "events/", "--dev-keys", "/nowhere"])
        .status
        .success());
    // The first run's orders are still there to trace.
    let trace = run(&[
        "trace",
        "shopify:acme-outdoor.myshopify.com:order:5872301948123",
    ]);
    let out = String::from_utf8_lossy(&trace.stdout);
    assert!(trace.status.success(), "{out}");
    assert!(out.contains("erp_post: done"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_prints_its_report_not_log_lines_and_no_colour_off_a_terminal() {
    let dir = fresh_dir();
    let run = |extra: &[&str]| {
        cli_in(&dir)
            .current_dir(repo())
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .args(["run", "events/"])
            .args(extra)
            .output()
            .unwrap()
    };
    let quiet = run(&[]);
    assert!(quiet.status.success());
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert!(!stderr.contains("INFO"), "{stderr}");
    assert!(String::from_utf8_lossy(&quiet.stdout).contains("[complete]"));
    // Asked for: the log lines, plain text into a pipe.
    let verbose = run(&["-v"]);
    let stderr = String::from_utf8_lossy(&verbose.stderr);
    assert!(stderr.contains("INFO"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes into a pipe: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_error_is_one_plain_line_without_a_backtrace() {
    let out = cli()
        .env("RUST_BACKTRACE", "1")
        .args(["trace", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
    assert!(!stderr.contains("Caused by"), "{stderr}");
}

#[test]
fn run_lists_the_samples_refused_on_purpose_and_exits_0() {
    let dir = fresh_dir();
    let out = cli_in(&dir)
        .current_dir(repo())
        .env_remove("RETAILFLOW_SHOPIFY_SECRET")
        .args(["run", "events/"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("refused on purpose (2"), "{text}");
    assert!(
        text.contains("03-shopify-orders-create-tampered.json: 401"),
        "{text}"
    );
    assert!(!text.contains("NOT TAKEN"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_under_another_shopify_secret_takes_nothing_and_says_why_with_exit_2() {
    let dir = fresh_dir();
    let out = cli_in(&dir)
        .current_dir(repo())
        .env("RETAILFLOW_SHOPIFY_SECRET", "another-secret")
        .args([
            "run",
            "events/01-shopify-orders-create.json",
            "events/04-shopify-orders-create-eur-vat-inclusive.json",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("NOT TAKEN (2)"), "{text}");
    assert!(
        text.contains("hint: RETAILFLOW_SHOPIFY_SECRET is set"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
