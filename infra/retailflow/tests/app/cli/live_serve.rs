//! A running `serve` as a person uses it: on the real clock, fed by
//! `retailflow send`, answering every refusal in JSON, stopped by SIGTERM.

use super::*;

const ORDER_1042: &str = "shopify:acme-outdoor.myshopify.com:order:5872301948123";

fn time(v: &serde_json::Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

/// `retailflow send` from the repository root (where the dev keys are).
fn send(data_dir: &std::path::Path, files: &[&str]) -> Command {
    let mut c = cli_in(data_dir);
    c.current_dir(repo()).arg("send").args(files);
    c
}

fn trace_json(data_dir: &std::path::Path, key: &str) -> serde_json::Value {
    let out = cli_in(data_dir)
        .args(["trace", "--json", key])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn serve_then_send_two_seconds_later_stamps_the_order_after_serve_started() {
    let dir = fresh_dir();
    let server = serve_from_repo(&dir);
    let ready = chrono::Utc::now();
    std::thread::sleep(Duration::from_secs(2));
    let text = stdout_of(&mut send(&dir, &["events/01-shopify-orders-create.json"]));
    assert!(text.contains(" 200 "), "{text}");

    let trace = trace_json(&dir, ORDER_1042);
    let started = time(&trace["started_at"]);
    assert!(
        started >= ready + chrono::Duration::seconds(2),
        "started {started}, serve ready {ready}"
    );
    let steps = trace["steps"].as_array().unwrap();
    assert!(steps.len() >= 3, "{trace}");
    for s in steps {
        assert!(time(&s["completed_at"]) >= started, "{s} before {started}");
    }
    drop(server);
}

#[test]
fn serve_holds_checkout_stock_and_replays_windows_on_the_real_clock() {
    let server = serve();
    let start = chrono::Utc::now();
    std::thread::sleep(Duration::from_millis(1100));
    let body = payload("shopify-orders-create-discount-code.json");
    let headers = shopify_headers("serve-secret", "ev-clock-1", &body);
    assert_eq!(
        http(&server.addr, "POST", "/webhooks/shopify", &headers, &body).0,
        200
    );
    // A hold lasts 15 minutes from when the checkout was made.
    let cart = r#"{"checkout_id":"clock-1","customer_id":"c-9","lines":[{"sku":"MCS-CHR-M","quantity":1,"shown_price":{"minor":2499,"currency":"USD"}}]}"#;
    let posted = chrono::Utc::now();
    let (status, resp) = http(
        &server.addr,
        "POST",
        "/checkout/validate",
        &storefront_headers(cart, "clock-nonce-000000000001"),
        cart,
    );
    assert_eq!(status, 200, "{resp}");
    let expires = time(&resp["expires_at"]);
    assert!(
        expires >= posted + chrono::Duration::minutes(15) - chrono::Duration::seconds(1),
        "hold expires {expires}, checkout made {posted}"
    );
    // A window from a second after serve started holds the order.
    let url = format!("http://{}", server.addr);
    let from = (start + chrono::Duration::seconds(1)).to_rfc3339();
    let replay = |window: [&str; 2]| {
        stdout_of(
            cli()
                .args(["replay", "--local", &url, "window"])
                .args(["--rule", "OrderPlacedToErpPost"])
                .args(window),
        )
    };
    let text = replay(["--from", &from]);
    assert!(text.contains("1 event replayed"), "{text}");
    let text = replay(["--hours", "6"]);
    assert!(text.contains("1 event replayed"), "{text}");
}

#[test]
fn send_takes_what_run_takes_and_stamps_a_till_return_anew_each_time() {
    let dir = fresh_dir();
    let _server = serve_from_repo(&dir);
    let text = stdout_of(&mut send(&dir, &["events/"]));
    assert!(text.contains("refused on purpose (2"), "{text}");
    assert!(
        text.contains("03-shopify-orders-create-tampered.json: 401"),
        "{text}"
    );
    assert!(
        text.contains("06-shopify-orders-create-totals-mismatch.json: 400"),
        "{text}"
    );
    assert!(!text.contains("NOT TAKEN"), "{text}");
    // A till signs each request with a fresh nonce: the same return sent
    // again is not a replay of the request (the return itself is one).
    let line = stdout_of(&mut send(&dir, &["events/12-pos-return.json"]));
    assert!(
        line.contains("12-pos-return.json") && line.contains(" 200 "),
        "{line}"
    );
}

#[test]
fn send_without_a_running_serve_says_how_to_start_one() {
    let dir = fresh_dir();
    let out = send(&dir, &["events/01-shopify-orders-create.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no retailflow serve is running"), "{err}");
    assert!(err.contains("retailflow serve --data-dir"), "{err}");
    assert!(err.contains("--to"), "{err}");
}

#[test]
fn sample_event_stamps_now_unless_told_when() {
    let make = |extra: &[&str]| {
        let out = cli()
            .current_dir(repo())
            .args([
                "sample-event",
                "--source",
                "shopify",
                "--topic",
                "orders/create",
            ])
            .args(["--shop", "acme-outdoor.myshopify.com"])
            .args(["--event-id", "3f1c0a5e-0001-4d7e-9a51-000000000001"])
            .args(extra)
            .arg("events/payloads/shopify-orders-create-discount-code.json")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let now: serde_json::Value = serde_json::from_slice(&make(&[])).unwrap();
    let epoch = now["requestContext"]["timeEpoch"].as_i64().unwrap();
    let age = chrono::Utc::now().timestamp_millis() - epoch;
    assert!((0..60_000).contains(&age), "stamped {age} ms ago");
    let triggered = time(&now["headers"]["x-shopify-triggered-at"]);
    assert!((chrono::Utc::now() - triggered).num_seconds() < 60);
    // At the samples' recorded time it is the committed sample, byte for byte.
    let recorded = make(&["--at", "2026-11-26T12:00:00Z"]);
    let committed = std::fs::read(repo().join("events/01-shopify-orders-create.json")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&recorded).trim_end(),
        String::from_utf8_lossy(&committed).trim_end()
    );
}

#[test]
fn serve_answers_every_refusal_in_json() {
    let server = serve();
    let (status, body) = http(&server.addr, "GET", "/nope", &[], "");
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("/nope"), "{body}");
    let (status, body) = http(&server.addr, "GET", "/webhooks/shopify", &[], "");
    assert_eq!(status, 405);
    assert!(body["error"].as_str().unwrap().contains("POST"), "{body}");
    let (status, body) = http(&server.addr, "GET", "/local/trace/nope", &[], "");
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");
    let (status, body) = http(&server.addr, "POST", "/local/reconcile", &[], "{not json");
    assert_eq!(status, 400);
    assert!(body["error"].is_string(), "{body}");
    // A body over the outer limit; the server may answer and close before
    // it is all written, so a failed write ends the sending.
    let mut s = TcpStream::connect(&server.addr).unwrap();
    let length = 22_000_000;
    write!(
        s,
        "POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < length {
        let n = chunk.len().min(length - sent);
        if s.write_all(&chunk[..n]).is_err() {
            break;
        }
        sent += n;
    }
    // Read the head and as much body as it announces (the connection may
    // stay open).
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut resp = Vec::new();
    let mut buf = [0u8; 4096];
    let (head, body) = loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before an answer");
        resp.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&resp).into_owned();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        if body.len() >= length {
            break (head.to_string(), body.to_string());
        }
    };
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(body["limit_bytes"].as_u64().unwrap() < 22_000_000, "{body}");
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
}

#[test]
fn serve_stops_gracefully_on_sigterm_and_forgets_its_url() {
    let dir = fresh_dir();
    let mut server = serve_on(&dir);
    let url_file = dir.join("serve.url");
    let start = Instant::now();
    while !url_file.exists() {
        assert!(start.elapsed() < Duration::from_secs(10), "no serve.url");
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still serving");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(!url_file.exists(), "serve.url left behind");
}

#[test]
fn serve_listens_on_a_host_name() {
    let dir = fresh_dir();
    let mut child = cli_in(&dir)
        .args(["serve", "--listen", "localhost:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url_file = dir.join("serve.url");
    let start = Instant::now();
    while !url_file.exists() {
        assert!(start.elapsed() < Duration::from_secs(20), "no serve.url");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = std::fs::read_to_string(&url_file).unwrap();
    let addr = url.trim().trim_start_matches("http://").to_string();
    let (status, body) = http(&addr, "GET", "/local/data-dir", &[], "");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn serve_will_not_take_the_public_dev_keys_off_loopback() {
    let dir = fresh_dir();
    let mut c = cli_in(&dir);
    c.current_dir(repo());
    for (k, _) in std::env::vars() {
        if k.starts_with("RETAILFLOW_") && k != "RETAILFLOW_DATA_DIR" {
            c.env_remove(k);
        }
    }
    let out = c.args(["serve", "--listen", "0.0.0.0:0"]).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dev keys, which are public"), "{err}");
}
