use super::*;

#[test]
fn emails_are_masked_wherever_they_appear_and_other_ats_are_left() {
    assert_eq!(
        mask_personal_data(r#"{"message":"NetSuite: jane.doe+x@example.co.uk exists","n":1}"#),
        r#"{"message":"NetSuite: ***@example.co.uk exists","n":1}"#
    );
    assert_eq!(
        mask_personal_data("a@b.com and c_d@e.org"),
        "***@b.com and ***@e.org"
    );
    assert_eq!(
        mask_personal_data("customer jane@example.com."),
        "customer ***@example.com."
    );
    for kept in [
        "no at here",
        "@handle",
        "price @ 5",
        "user@localhost",
        "x@1.2",
    ] {
        assert_eq!(mask_personal_data(kept), kept);
    }
}

#[test]
fn phone_numbers_written_as_people_write_them_are_masked() {
    for (text, masked) in [
        ("call +44 20 7946 0958 now", "call *** now"),
        ("tel:+14155552671", "tel:***"),
        ("(555) 123-4567", "***"),
        ("phone 555-123-4567.", "phone ***."),
        ("555.123.4567", "***"),
        ("020 7946 0958", "***"),
        ("01 23 45 67 89", "***"),
        ("1-800-555-0199", "***"),
        ("+33 1 23 45 67 89", "***"),
        ("Phone: 555-1234", "Phone: ***"),
        ("(call +1 415 555 2671)", "(call ***)"),
    ] {
        assert_eq!(mask_personal_data(text), masked, "{text}");
    }
}

#[test]
fn ids_order_numbers_amounts_timestamps_and_uuids_are_not_phone_numbers() {
    for kept in [
        "order #1001 of shopify:acme.myshopify.com:order:5872301948123",
        "externalId so-shopify-acme-5001 and cu-shopify-7-abcd1234",
        "total 129.99 USD, 12345.67 EUR, refund -58.50",
        "at 2026-11-20T10:00:00Z, 2026-11-20 10:00:00, 20.11.2026 10:00",
        "2026-11-20",
        "message 550e8400-e29b-41d4-a716-446655440000",
        "trace 1-5759e988-bd862e3fe1be46a994272793",
        "took 1795694400000 ms at 1795694400.123",
        "from 192.168.100.200 port 8080",
        "arn:aws:sqs:us-east-1:123456789012:erp-post",
        "HTTP 400 (retry after 120 s), 3 of 24 receives",
        "Adobe order 000000042, line 1234567",
        r#"{"StepLatency":1234.5,"Records":1,"Timestamp":1795694400000}"#,
        "v62.0 and 1.2.3",
        "quantities 1 2 3 4 5 6 7",
    ] {
        assert_eq!(mask_personal_data(kept), kept);
    }
}

#[test]
fn values_of_personal_fields_are_masked_in_json_and_debug_output() {
    assert_eq!(
        mask_personal_data(
            r#"{"firstName":"Jane","last_name": "Doe","addr1":"12 Baker Street","City":"London","zip":"NW1 6XE","phone":5551234567,"sku":"SKU-1","status":400}"#
        ),
        r#"{"firstName":"***","last_name": "***","addr1":"***","City":"***","zip":"***","phone":"***","sku":"SKU-1","status":400}"#
    );
    // An error body quoted inside a log line's JSON string.
    assert_eq!(
        mask_personal_data(
            r#"{"fields":{"error":"HTTP 400: {\"displayName\":\"Jane \\\"JJ\\\" Doe\",\"code\":\"BadRequest\"}"}}"#
        ),
        r#"{"fields":{"error":"HTTP 400: {\"displayName\":\"***\",\"code\":\"BadRequest\"}"}}"#
    );
    assert_eq!(
        mask_personal_data(
            r#"Customer { first_name: Some("Jane"), email: None, is_guest: false }"#
        ),
        r#"Customer { first_name: Some("***"), email: None, is_guest: false }"#
    );
    // `name` alone: a person's is masked, a machine name (the log
    // line's span) is not.
    assert_eq!(
        mask_personal_data(r#"{"span":{"correlation_id":"x","name":"work"},"name":"Jane Doe"}"#),
        r#"{"span":{"correlation_id":"x","name":"work"},"name":"***"}"#
    );
    // A field's message is not its value.
    let shopify = r#"{"errors":{"email":["is invalid"],"phone":["has already been taken"]}}"#;
    assert_eq!(mask_personal_data(shopify), shopify);
    // A masked line is still JSON.
    let line = mask_personal_data(r#"{"a":{"phone":-5551234567},"b":"\"zip\": 12345"}"#);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["a"]["phone"], "***");
    assert_eq!(v["b"], r#""zip": "***""#);
}

#[test]
fn known_values_are_masked_as_whole_words_whatever_their_case() {
    let known = PersonalData::new()
        .name(Some("Jane Doe"))
        .value(Some("12 Baker Street"))
        .value(Some("London"))
        .phone(Some("+1 (415) 555-2671"))
        .name(Some("Al"));
    assert_eq!(
        known.mask("Invalid Field Value 12 BAKER STREET for the following field: addr1"),
        "Invalid Field Value *** for the following field: addr1"
    );
    assert_eq!(
        known.mask("The field Name of table Customer contains a value (Jane Doe) that cannot be found; doe, JANE"),
        "The field Name of table Customer contains a value (***) that cannot be found; ***, ***"
    );
    assert_eq!(known.mask("dial 14155552671"), "dial ***");
    // Short values and parts of other words are left.
    assert_eq!(
        known.mask("Londoner Janet Al Doest"),
        "Londoner Janet Al Doest"
    );
    assert_eq!(
        format!("{known:?}"),
        format!("PersonalData({} values)", known.values.len())
    );
    assert!(!format!("{known:?}").contains("Jane"));
}

#[test]
fn a_log_line_stays_json_and_its_escapes_do_not_hide_personal_data() {
    let known = PersonalData::new().name(Some("Jane Doe"));
    let line = serde_json::json!({
        "fields": {"error": "Jane Doe\n12 Baker St\n+44 20 7946 0958\njane@example.com\tDoe"}
    })
    .to_string();
    let masked = known.mask(&line);
    let v: serde_json::Value = serde_json::from_str(&masked).unwrap();
    assert_eq!(
        v["fields"]["error"],
        "***\n12 Baker St\n***\n***@example.com\t***"
    );
}

#[test]
fn a_request_body_tells_which_values_an_echo_would_carry() {
    let body = serde_json::json!({
        "isPerson": true,
        "firstName": "Jane",
        "lastName": "Doe",
        "email": "jane.doe@example.com",
        "phone": "+44 20 7946 0958",
        "addressBook": {"items": [{"addressBookAddress": {
            "addr1": "12 Baker Street", "city": "London", "zip": "NW1 6XE", "country": "GB"
        }}]},
        "street": ["Flat 2", "221B Baker Street"],
        "subsidiary": {"id": "1"},
        "item": {"items": [{"item": {"externalId": "SKU-1"}, "name": "erp-post"}]},
        "displayName": "RF0A1B2C3D4E5F6A7B8",
    });
    let known = PersonalData::of_json_bytes(body.to_string().as_bytes());
    let masked = known.mask(
        "Jane Doe, jane.doe@example.com, 12 Baker Street, London NW1 6XE, 442079460958, \
         Flat 2 221B Baker Street; kept: GB, SKU-1, erp-post, RF0A1B2C3D4E5F6A7B8",
    );
    assert_eq!(
        masked,
        "*** ***, ***, ***, *** ***, ***, \
         *** ***; kept: GB, SKU-1, erp-post, RF0A1B2C3D4E5F6A7B8"
    );
    assert!(PersonalData::of_json_bytes(b"grant_type=client_credentials").is_empty());
}

#[test]
fn any_text_is_masked_without_panicking() {
    // Every log line goes through the mask: odd text must never panic it.
    let pieces = [
        "\"",
        "\\",
        "\\\"",
        ":",
        " ",
        "+",
        "(",
        ")",
        "-",
        ".",
        "@",
        "5",
        "55",
        "555",
        "2026",
        "é",
        "€",
        "\n",
        "\\n",
        "name",
        "phone",
        "Some(",
        "Jane",
        "x.com",
        "\u{1F600}",
    ];
    let known = PersonalData::new()
        .name(Some("Jane Doe"))
        .phone(Some("555 555"))
        .value(Some("é€\""));
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut masked = 0;
    for _ in 0..20_000 {
        let mut text = String::new();
        for _ in 0..next() % 24 {
            text.push_str(pieces[(next() % pieces.len() as u64) as usize]);
        }
        masked += usize::from(known.mask(&text) != text);
    }
    assert!(masked > 1000, "only {masked} texts had something to mask");
}

#[test]
fn a_connector_error_keeps_its_class_and_code_with_its_reason_masked() {
    let known = PersonalData::of_customer(&Customer {
        customer_id: Some("7".into()),
        email: Some("jane@example.com".into()),
        first_name: Some("Jane".into()),
        last_name: Some("Doe".into()),
        is_guest: false,
    });
    let e = ConnectorError::from_status(
        "netsuite",
        400,
        None,
        "USER_ERROR: A customer record with this email jane@example.com already exists for Jane Doe",
    );
    let masked = known.mask_error(e);
    assert_eq!(
        masked.to_string(),
        "netsuite refused the request (HTTP 400): USER_ERROR: A customer record with this email *** already exists for *** ***"
    );
    assert!(!masked.is_retryable());
}
