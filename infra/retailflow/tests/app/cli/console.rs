//! The support console as `retailflow serve` serves it after a `run`:
//! pages a browser reads, over the state the run left, for the users who
//! signed in.

use super::*;

const ORDER_1042: &str = "shopify:acme-outdoor.myshopify.com:order:5872301948123";

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn request(addr: &str, method: &str, path: &str, headers: &[(&str, String)], body: &str) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Signs `user` in; the cookie to send.
fn sign_in(addr: &str, user: &str, password: &str) -> String {
    let form = format!("user={}&password={password}", user.replace('@', "%40"));
    let a = request(
        addr,
        "POST",
        "/console/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded".into()),
            ("Origin", format!("http://{addr}")),
        ],
        &form,
    );
    assert_eq!(a.status, 303, "{}", a.body);
    let set = a.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    set.split(';').next().unwrap().to_string()
}

fn get(addr: &str, path: &str, cookie: &str) -> Answer {
    request(addr, "GET", path, &[("Cookie", cookie.to_string())], "")
}

#[test]
fn after_run_serve_shows_the_quarantined_delivery_in_the_console_and_an_orders_erp_document_and_points(
) {
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
    let server = serve_from_repo(&dir);
    let addr = server.addr.clone();

    // Nobody signed in: the sign-in form, and a wrong password is refused.
    let a = request(&addr, "GET", "/console", &[], "");
    assert_eq!(
        (a.status, a.header("location")),
        (303, Some("/console/login"))
    );
    let login = |origin: &str, password: &str| {
        request(
            &addr,
            "POST",
            "/console/login",
            &[
                ("Content-Type", "application/x-www-form-urlencoded".into()),
                ("Origin", origin.to_string()),
            ],
            &format!("user=olga%40example.com&password={password}"),
        )
    };
    let a = login(&format!("http://{addr}"), "guess");
    assert_eq!(a.status, 401, "{}", a.body);
    // Another site cannot sign this browser in, even as a real user.
    let a = login("https://evil.example", "dev-operator");
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.header("set-cookie").is_none());
    let viewer = sign_in(&addr, "victor@example.com", "dev-viewer");

    // The inbox: the sample refused for its totals, kept, with why.
    let a = get(&addr, "/console", &viewer);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.starts_with("<!doctype html>"), "{}", a.body);
    for expected in [
        "victor@example.com (viewer)",
        "quarantined delivery",
        "class-validation",
        "the stated total_price is 999.99",
        "/console/orders/shopify%3Aacme-outdoor.myshopify.com%3Aorder%3A5872301948999",
    ] {
        assert!(a.body.contains(expected), "{expected} missing: {}", a.body);
    }
    // Filtered to a class it holds none of: an empty list, counts kept.
    let a = get(&addr, "/console?class=outage", &viewer);
    assert_eq!(a.status, 200);
    assert!(
        a.body.contains("Nothing here") && a.body.contains("validation 1"),
        "{}",
        a.body
    );
    // A class that does not exist is named, in HTML.
    let a = get(&addr, "/console?class=fire", &viewer);
    assert_eq!(a.status, 400);
    assert!(
        a.body.contains("rate_limit") && a.body.contains("<html"),
        "{}",
        a.body
    );

    // #1042's page: the shop's total, the ERP's sales order and credit
    // memos, the points accrued and reversed, and its timeline.
    let path = format!("/console/orders/{}", ORDER_1042.replace(':', "%3A"));
    let a = get(&addr, &path, &viewer);
    assert_eq!(a.status, 200, "{}", a.body);
    for expected in [
        "#1042",
        "Order total</td><td class=\"money\">128.08 USD",
        "Sales order SO",
        "Credit memo CM",
        "34.29 USD",
        "+109 points",
        "Left</td><td class=\"money\">65 points",
        "LoyaltyAccrued",
        "https://acme-outdoor.myshopify.com/admin/orders/5872301948123",
    ] {
        assert!(a.body.contains(expected), "{expected} missing: {}", a.body);
    }
    assert!(!a.body.contains("class=\"mismatch\""), "{}", a.body);
    let a = get(&addr, "/console/orders/shopify%3Anope", &viewer);
    assert_eq!(a.status, 404);
    assert!(a.body.contains("knows no order"), "{}", a.body);
    drop(server);
}

#[test]
fn a_viewer_is_offered_no_action_and_a_forged_or_viewers_retry_is_refused() {
    let dir = fresh_dir();
    let server = serve_from_repo(&dir);
    let addr = server.addr.clone();
    let form = [(
        "Content-Type",
        "application/x-www-form-urlencoded".to_string(),
    )];
    let viewer = sign_in(&addr, "victor@example.com", "dev-viewer");
    let page = get(&addr, "/console", &viewer).body;
    assert!(!page.contains("/console/actions/retry"), "{page}");
    let token = |page: &str| {
        let at = page.find("name=\"csrf\" value=\"").unwrap() + 19;
        page[at..].split('"').next().unwrap().to_string()
    };
    let viewer_token = token(&page);
    let origin = format!("http://{addr}");
    let post = |cookie: &str, origin: Option<&str>, csrf: &str| {
        let mut h = form.to_vec();
        h.push(("Cookie", cookie.to_string()));
        if let Some(o) = origin {
            h.push(("Origin", o.to_string()));
        }
        request(
            &addr,
            "POST",
            "/console/actions/retry",
            &h,
            &format!("id=m-1&csrf={csrf}"),
        )
    };
    // A viewer's own, well-formed request: refused for the role.
    let a = post(&viewer, Some(&origin), &viewer_token);
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(
        a.body.contains("viewers can look but not act"),
        "{}",
        a.body
    );
    // An operator's session, but a form another site made: no token, or
    // the wrong origin; and no session at all.
    let operator = sign_in(&addr, "olga@example.com", "dev-operator");
    let operator_token = token(&get(&addr, "/console", &operator).body);
    let refused = |a: Answer, status: u16, why: &str| {
        assert_eq!(a.status, status, "{}", a.body);
        assert!(a.body.contains(why), "{why}: {}", a.body);
    };
    refused(
        post(&operator, Some(&origin), "forged"),
        403,
        "token is not this session",
    );
    refused(
        post(&operator, Some("https://evil.example"), &operator_token),
        403,
        "did not come from the console",
    );
    refused(
        post(&operator, None, &operator_token),
        403,
        "did not come from the console",
    );
    refused(
        post("rf_console=made.up", Some(&origin), &operator_token),
        401,
        "not one this console sealed",
    );
    // A name that resolves to this machine (DNS rebinding) is not the
    // console's origin, even when the page and the request agree on it.
    let rebound = request(
        &addr,
        "POST",
        "/console/actions/retry",
        &[
            ("Content-Type", "application/x-www-form-urlencoded".into()),
            ("Cookie", operator.clone()),
            ("Host", "evil.example".into()),
            ("Origin", "http://evil.example".into()),
        ],
        &format!("id=m-1&csrf={operator_token}"),
    );
    refused(rebound, 403, "did not come from the console");
    // The operator's real request gets through to the action.
    let a = post(&operator, Some(&origin), &operator_token);
    assert_eq!(a.status, 404, "{}", a.body);
    assert!(a.body.contains("no dead letter m-1"), "{}", a.body);
    drop(server);
}

#[test]
fn an_operator_runs_a_reconciliation_everyone_reads_and_dismisses_the_quarantined_sample_with_a_note(
) {
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
    let server = serve_from_repo(&dir);
    let addr = server.addr.clone();
    let viewer = sign_in(&addr, "victor@example.com", "dev-viewer");
    let list = get(&addr, "/console/reports", &viewer).body;
    assert!(
        !list.contains("id=\"reconcile\""),
        "viewers run nothing: {list}"
    );

    let operator = sign_in(&addr, "olga@example.com", "dev-operator");
    let page = get(&addr, "/console/reports", &operator).body;
    let at = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    let token = page[at..].split('"').next().unwrap().to_string();
    let post = |hours: &str| {
        request(
            &addr,
            "POST",
            "/console/actions/reconcile",
            &[
                ("Content-Type", "application/x-www-form-urlencoded".into()),
                ("Cookie", operator.clone()),
                ("Origin", format!("http://{addr}")),
            ],
            &format!("hours={hours}&csrf={token}"),
        )
    };
    let a = post("9999");
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("1 to 744"), "{}", a.body);
    let a = post("2");
    assert_eq!(a.status, 303, "{}", a.body);
    let report_path = a.header("location").unwrap().to_string();
    assert!(
        report_path.starts_with("/console/reports/recon-"),
        "{report_path}"
    );

    // The viewer reads it: the run's orders checked, nothing found.
    let report = get(&addr, &report_path, &viewer);
    assert_eq!(report.status, 200, "{}", report.body);
    assert!(
        report.body.contains("5 orders, 5 returns checked")
            && report.body.contains("no discrepancies"),
        "{}",
        report.body
    );
    let list = get(&addr, "/console/reports", &viewer).body;
    let id = report_path.trim_start_matches("/console/reports/");
    assert!(list.contains(id), "{list}");

    // The quarantined sample, looked at and dismissed with a note.
    let inbox = get(&addr, "/console", &operator).body;
    let at = inbox.find("data-id=\"").unwrap() + 9;
    let quarantined = inbox[at..].split('"').next().unwrap().to_string();
    let take_off = |note: &str| {
        request(
            &addr,
            "POST",
            "/console/actions/resolve",
            &[
                ("Content-Type", "application/x-www-form-urlencoded".into()),
                ("Cookie", operator.clone()),
                ("Origin", format!("http://{addr}")),
            ],
            &format!("id={quarantined}&how=dismiss&note={note}&csrf={token}"),
        )
    };
    let a = take_off("");
    assert_eq!(a.status, 400, "a note is required: {}", a.body);
    let a = take_off("the+sample+is+refused+on+purpose");
    assert_eq!(a.status, 303, "{}", a.body);
    let inbox = get(&addr, "/console", &viewer).body;
    assert!(inbox.contains("Nothing here"), "{inbox}");
    assert_eq!(take_off("again").status, 404);
    drop(server);
}
