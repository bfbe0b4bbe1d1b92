//! The support console as `retailflow serve` serves it after a `run`:
//! pages a browser reads, over the state the run left.

use super::*;

const ORDER_1042: &str = "shopify:acme-outdoor.myshopify.com:order:5872301948123";

fn get(addr: &str, path: &str) -> (u16, String) {
    let (status, body) = http(addr, "GET", path, &[], "");
    (
        status,
        body.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string()),
    )
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

    // The inbox: the sample refused for its totals, kept, with why.
    let (status, inbox) = get(&server.addr, "/console");
    assert_eq!(status, 200, "{inbox}");
    assert!(inbox.starts_with("<!doctype html>"), "{inbox}");
    for expected in [
        "quarantined delivery",
        "class-validation",
        "the stated total_price is 999.99",
        "/console/orders/shopify%3Aacme-outdoor.myshopify.com%3Aorder%3A5872301948999",
    ] {
        assert!(inbox.contains(expected), "{expected} missing: {inbox}");
    }
    // Filtered to a class it holds none of: an empty list, counts kept.
    let (status, none) = get(&server.addr, "/console?class=outage");
    assert_eq!(status, 200);
    assert!(none.contains("Nothing here"), "{none}");
    assert!(none.contains("validation 1"), "{none}");
    // A class that does not exist is named, in HTML.
    let (status, bad) = get(&server.addr, "/console?class=fire");
    assert_eq!(status, 400);
    assert!(bad.contains("rate_limit") && bad.contains("<html"), "{bad}");

    // #1042's page: the shop's total, the ERP's sales order and credit
    // memos, the points accrued and reversed, and its timeline.
    let path = format!("/console/orders/{}", ORDER_1042.replace(':', "%3A"));
    let (status, order) = get(&server.addr, &path);
    assert_eq!(status, 200, "{order}");
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
        assert!(order.contains(expected), "{expected} missing: {order}");
    }
    assert!(!order.contains("class=\"mismatch\""), "{order}");
    let (status, missing) = get(&server.addr, "/console/orders/shopify%3Anope");
    assert_eq!(status, 404);
    assert!(missing.contains("knows no order"), "{missing}");
    drop(server);
}
