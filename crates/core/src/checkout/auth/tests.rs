use super::*;
use crate::adapters::in_process::InProcessStateStore;
use serde_json::json;

const SHOP: &str = "acme-outdoor.myshopify.com";

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn config() -> CheckoutAuthConfig {
    CheckoutSecretDocument {
        shopify_secret: "app-secret".into(),
        shopify_previous_secret: "old-app-secret".into(),
        shopify_client_id: "client-1".into(),
        shopify_shop_domains: vec![format!("https://{SHOP}")],
        storefront_secrets: [("web-eu".to_string(), "storefront-secret".to_string())].into(),
    }
    .apply(CheckoutAuthConfig::default())
}

fn claims(sub: Option<&str>) -> serde_json::Value {
    let at = t0().timestamp();
    let mut c = json!({
        "iss": format!("https://{SHOP}/admin"),
        "dest": format!("https://{SHOP}"),
        "aud": "client-1",
        "exp": at + 300,
        "nbf": at,
        "iat": at,
        "jti": "f7c6a1d2-0001",
        "sid": "session-1",
    });
    if let Some(s) = sub {
        c["sub"] = json!(s);
    }
    c
}

fn token(secret: &str, claims: &serde_json::Value) -> String {
    session_token(&Secret::new(secret), claims)
}

fn verify(token: &str, at: DateTime<Utc>) -> Result<ShopifyBuyer, AuthRefusal> {
    let c = config();
    verify_session_token(c.shopify.as_ref().unwrap(), token, at, c.leeway)
}

fn refused_for(r: Result<ShopifyBuyer, AuthRefusal>, words: &str) {
    match r {
        Err(AuthRefusal::Token(reason)) => assert!(reason.contains(words), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_valid_session_token_names_the_shop_the_customer_and_the_session() {
    let buyer = verify(
        &token(
            "app-secret",
            &claims(Some("gid://shopify/Customer/7301928374651")),
        ),
        t0(),
    )
    .unwrap();
    assert_eq!(
        buyer,
        ShopifyBuyer {
            shop: SHOP.into(),
            customer_id: Some("7301928374651".into()),
            session_id: Some("session-1".into()),
        }
    );
    // A guest: no sub. Signed with the previous secret during a rotation.
    let guest = verify(&token("old-app-secret", &claims(None)), t0()).unwrap();
    assert_eq!(guest.customer_id, None);
}

#[test]
fn a_token_signed_with_another_secret_is_refused() {
    refused_for(
        verify(&token("forged", &claims(None)), t0()),
        "signature does not match",
    );
    // A valid token with its payload changed (another customer).
    let good = token("app-secret", &claims(Some("gid://shopify/Customer/1")));
    let parts: Vec<&str> = good.split('.').collect();
    let other = token("app-secret", &claims(Some("gid://shopify/Customer/2")));
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        other.split('.').nth(1).unwrap(),
        parts[2]
    );
    refused_for(verify(&forged, t0()), "signature does not match");
}

#[test]
fn an_expired_or_not_yet_valid_token_is_refused_beyond_the_leeway() {
    let t = token("app-secret", &claims(None));
    assert!(verify(&t, t0() + Duration::seconds(310)).is_ok(), "leeway");
    refused_for(verify(&t, t0() + Duration::seconds(311)), "expired");
    assert!(verify(&t, t0() - Duration::seconds(10)).is_ok(), "leeway");
    refused_for(verify(&t, t0() - Duration::seconds(11)), "nbf");
    let mut no_exp = claims(None);
    no_exp.as_object_mut().unwrap().remove("exp");
    refused_for(verify(&token("app-secret", &no_exp), t0()), "no exp");
}

#[test]
fn a_token_for_another_app_or_shop_is_refused() {
    let mut c = claims(None);
    c["aud"] = json!("someone-else");
    refused_for(verify(&token("app-secret", &c), t0()), "aud");
    c["aud"] = json!(["someone-else", "client-1"]);
    assert!(verify(&token("app-secret", &c), t0()).is_ok());
    let mut c = claims(None);
    c["dest"] = json!("https://other.myshopify.com");
    c["iss"] = json!("https://other.myshopify.com/admin");
    refused_for(verify(&token("app-secret", &c), t0()), "dest");
    let mut c = claims(None);
    c["iss"] = json!("https://other.myshopify.com/admin");
    refused_for(verify(&token("app-secret", &c), t0()), "different shops");
    let mut c = claims(None);
    c.as_object_mut().unwrap().remove("iss");
    assert!(
        verify(&token("app-secret", &c), t0()).is_ok(),
        "iss may be absent"
    );
    c.as_object_mut().unwrap().remove("dest");
    refused_for(verify(&token("app-secret", &c), t0()), "dest");
    let c = claims(Some("gid://shopify/StaffMember/9"));
    refused_for(verify(&token("app-secret", &c), t0()), "sub");
}

#[test]
fn alg_none_and_other_algorithms_are_refused_before_any_key() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    let body = B64.encode(claims(None).to_string());
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None","typ":"JWT"}"#,
        r#"{"alg":"RS256","typ":"JWT"}"#,
        r#"{"alg":"HS512","typ":"JWT"}"#,
    ] {
        let t = format!("{}.{body}.", B64.encode(header));
        assert!(
            matches!(verify(&t, t0()), Err(AuthRefusal::Token(_))),
            "{header}"
        );
        // With a signature made by HS256 under the right secret, too.
        let good = token("app-secret", &claims(None));
        let sig = good.rsplit('.').next().unwrap();
        let t = format!("{}.{body}.{sig}", B64.encode(header));
        assert!(verify(&t, t0()).is_err(), "{header}");
    }
    for junk in ["", "a.b", "a.b.c", "....", &"x".repeat(20_000)] {
        assert!(verify(junk, t0()).is_err(), "{junk:.20}");
    }
}

fn auth() -> CheckoutAuth {
    CheckoutAuth::new(config(), Arc::new(InProcessStateStore::new()))
}

fn headers(pairs: &[(&str, String)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[tokio::test]
async fn no_credentials_or_two_kinds_are_refused() {
    let a = auth();
    assert_eq!(
        a.authenticate(&headers(&[]), b"{}", t0()).await,
        Err(AuthError::Refused(AuthRefusal::NoCredentials))
    );
    let both = headers(&[
        ("authorization", "Bearer x".into()),
        ("x-retailflow-storefront", "web-eu".into()),
    ]);
    assert_eq!(
        a.authenticate(&both, b"{}", t0()).await,
        Err(AuthError::Refused(AuthRefusal::Ambiguous))
    );
    let basic = headers(&[("authorization", "Basic dXNlcjpwdw==".into())]);
    assert_eq!(
        a.authenticate(&basic, b"{}", t0()).await,
        Err(AuthError::Refused(AuthRefusal::NotBearer))
    );
    let unconfigured = CheckoutAuth::new(
        CheckoutAuthConfig::default(),
        Arc::new(InProcessStateStore::new()),
    );
    let bearer = headers(&[(
        "authorization",
        format!("Bearer {}", token("app-secret", &claims(None))),
    )]);
    assert!(matches!(
        unconfigured.authenticate(&bearer, b"{}", t0()).await,
        Err(AuthError::Refused(AuthRefusal::NotConfigured(_)))
    ));
    assert!(matches!(
        a.authenticate(&bearer, b"{}", t0()).await,
        Ok(Caller::Shopify(_))
    ));
}

#[tokio::test]
async fn a_storefront_request_is_taken_once_while_fresh() {
    let a = auth();
    let body = br#"{"checkout_id":"c1","lines":[]}"#;
    let signed = |nonce: &str, at: DateTime<Utc>, secret: &str, body: &[u8]| {
        let pairs: Vec<(&str, String)> =
            storefront_headers("web-eu", &Secret::new(secret), at, nonce, body)
                .into_iter()
                .collect();
        headers(&pairs)
    };
    let h = signed("nonce-0123456789abcdef", t0(), "storefront-secret", body);
    assert_eq!(
        a.authenticate(&h, body, t0()).await,
        Ok(Caller::Storefront {
            id: "web-eu".into()
        })
    );
    // The same request again: a replay.
    let again = a.authenticate(&h, body, t0() + Duration::seconds(1)).await;
    assert!(
        matches!(&again, Err(AuthError::Refused(AuthRefusal::Storefront(r))) if r.contains("nonce already used")),
        "{again:?}"
    );
    // A stale stamp.
    let h = signed("nonce-1123456789abcdef", t0(), "storefront-secret", body);
    let stale = a.authenticate(&h, body, t0() + Duration::minutes(6)).await;
    assert!(
        matches!(&stale, Err(AuthError::Refused(AuthRefusal::Storefront(r))) if r.contains("stale")),
        "{stale:?}"
    );
    // Another secret, another body, an unknown storefront, no stamp.
    let h = signed("nonce-2123456789abcdef", t0(), "wrong", body);
    assert!(a.authenticate(&h, body, t0()).await.is_err());
    let h = signed("nonce-3123456789abcdef", t0(), "storefront-secret", body);
    assert!(a.authenticate(&h, b"{}", t0()).await.is_err());
    let mut h = signed("nonce-4123456789abcdef", t0(), "storefront-secret", body);
    h.insert("x-retailflow-storefront", "web-us".parse().unwrap());
    assert!(a.authenticate(&h, body, t0()).await.is_err());
    let mut h = signed("nonce-5123456789abcdef", t0(), "storefront-secret", body);
    h.remove("x-retailflow-timestamp");
    h.remove("x-retailflow-nonce");
    assert!(a.authenticate(&h, body, t0()).await.is_err());
}

fn request(customer: Option<&str>, member: Option<&str>, points: u64) -> CheckoutRequest {
    CheckoutRequest {
        checkout_id: "c1".into(),
        customer_id: customer.map(str::to_string),
        loyalty_member: member.map(str::to_string),
        lines: Vec::new(),
        promotion_codes: Vec::new(),
        points_to_redeem: points,
    }
}

#[test]
fn a_shopify_buyer_acts_for_its_own_customer_and_membership_only() {
    let buyer = Caller::Shopify(ShopifyBuyer {
        shop: SHOP.into(),
        customer_id: Some("42".into()),
        session_id: None,
    });
    let own = member_number("shopify", SHOP, "42");
    let bound = buyer.bind(&request(None, None, 100)).unwrap();
    assert_eq!(bound.request.customer_id.as_deref(), Some("42"));
    assert_eq!(bound.request.loyalty_member.as_deref(), Some(own.as_str()));
    assert_eq!(
        bound.owner.as_deref(),
        Some("shopify:acme-outdoor.myshopify.com:customer:42")
    );
    assert!(buyer
        .bind(&request(Some("gid://shopify/Customer/42"), Some(&own), 1))
        .is_ok());
    assert!(buyer.bind(&request(Some("43"), None, 0)).is_err());
    let theirs = member_number("shopify", SHOP, "43");
    assert!(buyer.bind(&request(None, Some(&theirs), 100)).is_err());
    assert!(buyer.bind(&request(Some("42"), Some("M-7"), 100)).is_err());
    // A guest names nobody.
    let guest = Caller::Shopify(ShopifyBuyer {
        shop: SHOP.into(),
        customer_id: None,
        session_id: Some("s-1".into()),
    });
    assert!(guest.bind(&request(Some("42"), None, 0)).is_err());
    assert!(guest.bind(&request(None, Some(&own), 0)).is_err());
    let bound = guest.bind(&request(None, None, 100)).unwrap();
    assert_eq!(bound.request.loyalty_member, None, "no points for a guest");
    assert_eq!(
        bound.owner.as_deref(),
        Some("shopify:acme-outdoor.myshopify.com:session:s-1")
    );
    // A storefront is trusted for whom it names.
    let server = Caller::Storefront {
        id: "web-eu".into(),
    };
    let bound = server
        .bind(&request(Some("c-9"), Some("M-7"), 100))
        .unwrap();
    assert_eq!(bound.request.loyalty_member.as_deref(), Some("M-7"));
    assert_eq!(
        bound.owner.as_deref(),
        Some("storefront:web-eu:customer:c-9")
    );
}

#[test]
fn the_membership_number_is_the_one_loyalty_accrual_enrols() {
    use crate::events::CanonicalEvent;
    use crate::mappers::shopify::{map, ShopifyTopic};
    let body =
        include_str!("../../../../../events/payloads/shopify-orders-create-discount-code.json");
    let CanonicalEvent::OrderPlaced(placed) =
        map(ShopifyTopic::OrdersCreate, SHOP, body.as_bytes()).unwrap()
    else {
        panic!("not an order")
    };
    let customer = placed
        .order
        .customer
        .as_ref()
        .unwrap()
        .customer_id
        .clone()
        .unwrap();
    assert_eq!(
        crate::steps::loyalty_accrual::membership_number(&placed.order),
        Some(member_number("shopify", SHOP, &customer))
    );
}

#[test]
fn the_secret_document_configures_nothing_it_does_not_name() {
    let none = CheckoutSecretDocument::parse(r#"{"shopify_secret":"s"}"#)
        .unwrap()
        .apply(CheckoutAuthConfig::default());
    assert!(none.shopify.is_none(), "no client id, no shops");
    assert!(!none.accepts_anyone());
    let err = CheckoutSecretDocument::parse(
        r#"{"storefront_secrets":{"a":"hunter22"},"shopify_shop_domains":"x"}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(!err.contains("hunter22"), "{err}");
    let c = config();
    assert_eq!(
        c.shopify.as_ref().unwrap().shops,
        BTreeSet::from([SHOP.to_string()])
    );
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("app-secret") && !dbg.contains("storefront-secret"),
        "{dbg}"
    );
}
