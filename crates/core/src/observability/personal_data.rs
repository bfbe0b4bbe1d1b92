//! Personal data kept out of what operators read: log lines, dead-letter
//! reasons and the errors the platforms send back.
//!
//! - [`mask_personal_data`] is the one pattern mask: email addresses, phone
//!   numbers, and the values of personal fields (`"firstName": "…"`,
//!   `"addr1": "…"`, `phone: Some("…")`) wherever a JSON or Debug-shaped
//!   pair appears in text, escaped inside a JSON string or not.
//! - [`PersonalData`] is a set of known values (a customer's names,
//!   address lines, phone, email) masked wherever they appear as whole
//!   words, then the pattern mask: what an ERP echoes in free text
//!   (`Invalid Field Value 12 Baker Street for the following field: addr1`)
//!   has no pattern, but it is a value the request carried.
//!
//! What stays readable: error codes, field names, order numbers and ids,
//! amounts, timestamps and UUIDs, so an operator still learns what was wrong.

use std::borrow::Cow;
use std::fmt;

use crate::model::Customer;
use crate::resilience::ConnectorError;

/// What a masked value becomes.
const MASK: &str = "***";

/// Known values shorter than this are not masked: a two-letter name would
/// hide unrelated words.
const MIN_KNOWN_CHARS: usize = 3;

/// Masks personal data found by its shape: email addresses
/// (`jane.doe@example.com` → `***@example.com`), phone numbers (`+44 20 7946
/// 0958`, `(555) 123-4567` → `***`) and the values of personal fields
/// (`"lastName":"Doe"` → `"lastName":"***"`). See the module doc.
pub fn mask_personal_data(text: &str) -> Cow<'_, str> {
    let fields = mask_fields(text);
    let emails = then(fields, mask_emails);
    then(emails, mask_phones)
}

/// Applies `f` to the text `c` holds, keeping whichever owns the result.
fn then<'a>(c: Cow<'a, str>, f: for<'x> fn(&'x str) -> Cow<'x, str>) -> Cow<'a, str> {
    match c {
        Cow::Borrowed(s) => f(s),
        Cow::Owned(s) => match f(&s) {
            Cow::Borrowed(_) => Cow::Owned(s),
            Cow::Owned(o) => Cow::Owned(o),
        },
    }
}

/// Text rebuilt from spans of the original and replacements, allocated at
/// the first replacement only.
struct Rewrite<'a> {
    text: &'a str,
    out: Option<String>,
    copied: usize,
}

impl<'a> Rewrite<'a> {
    fn new(text: &'a str) -> Self {
        Rewrite {
            text,
            out: None,
            copied: 0,
        }
    }

    /// Replaces `text[start..end]` (after anything replaced before).
    fn replace(&mut self, start: usize, end: usize, with: &str) {
        if self.text[start..end] == *with {
            return;
        }
        let out = self
            .out
            .get_or_insert_with(|| String::with_capacity(self.text.len()));
        out.push_str(&self.text[self.copied..start]);
        out.push_str(with);
        self.copied = end;
    }

    fn finish(self) -> Cow<'a, str> {
        match self.out {
            None => Cow::Borrowed(self.text),
            Some(mut out) => {
                out.push_str(&self.text[self.copied..]);
                Cow::Owned(out)
            }
        }
    }
}

/// Whether the letter before `at` ends an escape (`\n` inside a JSON
/// string): text starts after it, as after a space.
fn escape_before(b: &[u8], at: usize) -> bool {
    at >= 2 && b"nrtbf".contains(&b[at - 1]) && backslashes_before(b, at - 1) % 2 == 1
}

// ---- Emails ----

fn is_local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"._%+-".contains(&c)
}

fn is_domain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
}

/// `jane.doe@example.com` → `***@example.com` (the domain tells an
/// operator which kind of customer without telling who).
fn mask_emails(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    if !b.contains(&b'@') {
        return Cow::Borrowed(text);
    }
    let mut rw = Rewrite::new(text);
    for (at, _) in text.match_indices('@') {
        if at < rw.copied {
            continue;
        }
        let mut start = at;
        while start > rw.copied && is_local_char(b[start - 1]) {
            start -= 1;
        }
        // `\njane@…` in a log line: the `n` belongs to the escape.
        if start < at && start > 0 && backslashes_before(b, start) % 2 == 1 {
            start += 1;
        }
        let mut end = at + 1;
        while end < b.len() && is_domain_char(b[end]) {
            end += 1;
        }
        // A sentence's full stop is not part of the domain.
        let domain = text[at + 1..end].trim_end_matches(['.', '-']);
        let looks_like_email = start < at
            && domain.contains('.')
            && domain
                .rsplit('.')
                .next()
                .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|c| c.is_ascii_alphabetic()));
        if looks_like_email {
            rw.replace(start, at, MASK);
        }
    }
    rw.finish()
}

// ---- Phone numbers ----
//
// A phone number is 7 to 15 digits (E.164) written the way people write
// them: a leading `+`, or digits in groups split by spaces, dashes, dots or
// parentheses. What our logs also hold and must keep: ids and epoch times
// (digits without separators), order names (`#1001`), external ids
// (`so-shopify-acme-5001`, glued to a word), amounts (`129.99`: one dot),
// dates and timestamps (`2026-11-20`, `2026-11-20T10:00:00Z`, `12:30:45`),
// UUIDs (hex groups glued to letters) and IPv4 addresses.

fn is_phone_sep(c: u8) -> bool {
    matches!(c, b' ' | b'-' | b'.' | b'(' | b')')
}

/// Whether the characters around a candidate make it part of something
/// else (a word, an id, a time, a path, a sum).
fn glued(b: &[u8], start: usize, end: usize) -> bool {
    let before = start.checked_sub(1).map(|i| b[i]);
    let after = b.get(end).copied();
    let digit_at = |i: Option<usize>| i.and_then(|i| b.get(i)).is_some_and(u8::is_ascii_digit);
    let glued_before = match before {
        None => false,
        Some(_) if escape_before(b, start) => false,
        Some(c) if c.is_ascii_alphanumeric() || b"_-.#/@$%&\\+,".contains(&c) => true,
        // A time (`10:30 …`); `tel:+44…` is not one.
        Some(b':') => digit_at(start.checked_sub(2)),
        Some(c) => c >= 0x80,
    };
    let glued_after = match after {
        None => false,
        Some(c) if c.is_ascii_alphanumeric() || b"_@%/+".contains(&c) || c >= 0x80 => true,
        // The candidate goes on as a token (`…-4567-abc`) or a time.
        Some(b'-' | b'.' | b':' | b',') => b
            .get(end + 1)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_'),
        Some(_) => false,
    };
    glued_before || glued_after
}

/// Whether digit groups with these separators look like a date.
fn is_date(groups: &[&str]) -> bool {
    let n = |s: &str| s.parse::<u32>().unwrap_or(0);
    match groups.iter().map(|g| g.len()).collect::<Vec<_>>()[..] {
        [4, 2, 2] => (1900..=2199).contains(&n(groups[0])) && n(groups[1]) <= 12,
        [2, 2, 4] => (1900..=2199).contains(&n(groups[2])) && n(groups[0]) <= 31,
        _ => false,
    }
}

fn is_phone(cand: &str) -> bool {
    let plus = cand.starts_with('+');
    let digits = cand.bytes().filter(u8::is_ascii_digit).count();
    if !(7..=15).contains(&digits) {
        return false;
    }
    let body = cand.trim_start_matches('+');
    let (open, close) = (body.matches('(').count(), body.matches(')').count());
    if open > 1 || open != close || (open == 1 && body.find('(') > body.find(')')) {
        return false;
    }
    // At most two separators in a row (`) `), never two spaces.
    let mut run = 0;
    let mut prev = b'0';
    for c in body.bytes() {
        if is_phone_sep(c) {
            run += 1;
            if run > 2 || (c == b' ' && prev == b' ') {
                return false;
            }
        } else {
            run = 0;
        }
        prev = c;
    }
    let groups: Vec<&str> = body
        .split(|c: char| c.is_ascii() && is_phone_sep(c as u8))
        .filter(|g| !g.is_empty())
        .collect();
    if plus {
        return groups.len() <= 6;
    }
    let dots = body.matches('.').count();
    let others = body.bytes().any(|c| matches!(c, b' ' | b'-'));
    let valid_dots = dots == 0 || (dots >= 2 && !others);
    let ipv4 = dots == 3 && groups.len() == 4 && groups.iter().all(|g| g.len() <= 3);
    groups.len() >= 2
        && groups.len() <= 5
        && groups.iter().skip(1).all(|g| g.len() >= 2)
        && valid_dots
        && !ipv4
        && !is_date(&groups)
}

/// `+44 20 7946 0958`, `(555) 123-4567`, `555.123.4567` → `***`.
fn mask_phones(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    if b.iter().filter(|c| c.is_ascii_digit()).count() < 7 {
        return Cow::Borrowed(text);
    }
    let mut rw = Rewrite::new(text);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_digit() || c == b'+' || c == b'(') {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i + 1;
        while j < b.len() && (b[j].is_ascii_digit() || is_phone_sep(b[j])) {
            j += 1;
        }
        // The number ends at its last digit.
        let mut end = j;
        while end > start && !b[end - 1].is_ascii_digit() {
            end -= 1;
        }
        if end > start && is_phone(&text[start..end]) && !glued(b, start, end) {
            rw.replace(start, end, MASK);
        }
        i = j;
    }
    rw.finish()
}

// ---- Personal fields ----

/// What a field holds, by its (normalized) name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    /// A person's name: masked, and its words known.
    PersonName,
    /// `name` alone: a person's, a product's, or a span's (`"name":"work"`);
    /// masked unless the value is a lower-case machine name.
    Name,
    Phone,
    /// Email, address lines, city, postal code, birth date.
    Other,
}

const PERSON_NAME_FIELDS: &[&str] = &[
    "firstname",
    "lastname",
    "middlename",
    "fullname",
    "displayname",
    "givenname",
    "familyname",
    "surname",
    "addressee",
    "attention",
    "contactname",
    "customername",
    "billingname",
    "shippingname",
    "company",
    "companyname",
];

const PHONE_FIELDS: &[&str] = &[
    "phone",
    "phonenumber",
    "telephone",
    "tel",
    "mobile",
    "mobilephone",
    "mobilephonenumber",
    "cellphone",
    "homephone",
    "workphone",
    "altphone",
    "fax",
];

const OTHER_FIELDS: &[&str] = &[
    "email",
    "emailaddress",
    "altemail",
    "contactemail",
    "address",
    "address1",
    "address2",
    "address3",
    "addressline1",
    "addressline2",
    "addressline3",
    "addr1",
    "addr2",
    "addr3",
    "addrtext",
    "billaddress",
    "shipaddress",
    "billingaddress",
    "shippingaddress",
    "street",
    "street1",
    "street2",
    "streetaddress",
    "line1",
    "line2",
    "city",
    "town",
    "zip",
    "zipcode",
    "postalcode",
    "postcode",
    "postal",
    "birthdate",
    "dateofbirth",
    "dob",
];

/// The kind of a field by its name: the last segment of a dotted or
/// namespaced name, case, `_`, `-` and spaces ignored (`first_name`,
/// `FirstName`, `billing_address.phone`).
fn field_kind(name: &str) -> Option<FieldKind> {
    let last = name.rsplit([':', '.']).next().unwrap_or(name);
    let key: String = last
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if key == "name" {
        Some(FieldKind::Name)
    } else if PERSON_NAME_FIELDS.contains(&key.as_str()) {
        Some(FieldKind::PersonName)
    } else if PHONE_FIELDS.contains(&key.as_str()) {
        Some(FieldKind::Phone)
    } else if OTHER_FIELDS.contains(&key.as_str()) {
        Some(FieldKind::Other)
    } else {
        None
    }
}

/// A lower-case machine name (`work`, `erp-post`), not a person's.
fn is_machine_name(v: &str) -> bool {
    v.bytes().next().is_some_and(|c| c.is_ascii_lowercase())
        && v.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.:/".contains(&c))
}

/// Backslashes right before `at`.
fn backslashes_before(b: &[u8], at: usize) -> usize {
    b[..at].iter().rev().take_while(|c| **c == b'\\').count()
}

/// The JSON nesting level a quote preceded by `n` backslashes opens: 0 for
/// `"`, 1 for `\"` (JSON inside a JSON string, as in a log line), 2, 3.
fn quote_level(n: usize) -> Option<u32> {
    match n {
        0 => Some(0),
        1 => Some(1),
        3 => Some(2),
        7 => Some(3),
        _ => None,
    }
}

/// The end (index of the closing `"`) of a string at `level` whose content
/// starts at `from`.
fn string_end(b: &[u8], from: usize, level: u32) -> Option<usize> {
    let n = (1usize << level) - 1;
    let period = 1usize << (level + 1);
    (from..b.len()).find(|&i| {
        b[i] == b'"' && {
            let k = backslashes_before(b, i);
            i - k >= from && k >= n && (k - n).is_multiple_of(period)
        }
    })
}

fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t') {
        i += 1;
    }
    i
}

/// A field found in text: its name, and where its value is.
struct Field<'a> {
    name: &'a str,
    /// Where the key token ends (scanning goes on from here when the value
    /// is not masked).
    key_end: usize,
    value: Value,
}

enum Value {
    /// A string's content `start..end` (between its quotes).
    Str { start: usize, end: usize },
    /// A bare number `start..end`, at a quote level (masked as a string of
    /// that level so the JSON stays JSON).
    Num {
        start: usize,
        end: usize,
        level: u32,
    },
}

/// A quoted key (`"phone":`, `\"phone\":`) at `i`, and its value.
fn quoted_field(text: &str, i: usize) -> Option<Field<'_>> {
    let b = text.as_bytes();
    let n = backslashes_before(b, i);
    let level = quote_level(n)?;
    let key_start = i + 1;
    let mut k = key_start;
    while k < b.len()
        && k - key_start <= 48
        && (b[k].is_ascii_alphanumeric() || b"_:. -".contains(&b[k]))
    {
        k += 1;
    }
    // The key closes with the same quote it opened with.
    if k == key_start
        || k + n >= b.len()
        || b[k..k + n].iter().any(|c| *c != b'\\')
        || b[k + n] != b'"'
    {
        return None;
    }
    let name = &text[key_start..k];
    let key_end = k + n + 1;
    let colon = skip_blanks(b, key_end);
    if b.get(colon) != Some(&b':') {
        return None;
    }
    let v = skip_blanks(b, colon + 1);
    let value = if b.get(v + n) == Some(&b'"') && b[v..v + n].iter().all(|c| *c == b'\\') {
        let start = v + n + 1;
        let close = string_end(b, start, level)?;
        Value::Str {
            start,
            end: close - n,
        }
    } else if b
        .get(v)
        .is_some_and(|c| c.is_ascii_digit() || *c == b'-' || *c == b'+')
    {
        let mut end = v + 1;
        while end < b.len() && (b[end].is_ascii_digit() || b".eE+-".contains(&b[end])) {
            end += 1;
        }
        if !b[v..end].iter().any(u8::is_ascii_digit) {
            return None;
        }
        Value::Num {
            start: v,
            end,
            level,
        }
    } else {
        return None;
    };
    Some(Field {
        name,
        key_end,
        value,
    })
}

/// An unquoted key (a Rust Debug field: `last_name: Some("Doe")`,
/// `phone: "555…"`) at `i`, and its string value.
fn bare_field(text: &str, i: usize) -> Option<Field<'_>> {
    let b = text.as_bytes();
    let mut k = i;
    while k < b.len() && (b[k].is_ascii_alphanumeric() || b[k] == b'_') {
        k += 1;
    }
    if b.get(k) != Some(&b':') {
        return None;
    }
    let name = &text[i..k];
    let mut v = skip_blanks(b, k + 1);
    if text[v..].starts_with("Some(") {
        v += "Some(".len();
    }
    let mut q = v;
    while b.get(q) == Some(&b'\\') {
        q += 1;
    }
    if b.get(q) != Some(&b'"') {
        return None;
    }
    let level = quote_level(q - v)?;
    let start = q + 1;
    let close = string_end(b, start, level)?;
    Some(Field {
        name,
        key_end: k,
        value: Value::Str {
            start,
            end: close - (q - v),
        },
    })
}

/// Masks the values of personal fields (see [`field_kind`]): strings and
/// numbers, in JSON at any escaping level or in Debug output. Arrays and
/// objects are left to their own fields (Shopify's `{"errors":{"email":
/// ["is invalid"]}}` keeps its message).
fn mask_fields(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let mut rw = Rewrite::new(text);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let field = if c == b'"' {
            quoted_field(text, i)
        } else if c.is_ascii_alphabetic()
            && (i == 0
                || escape_before(b, i)
                || !(b[i - 1].is_ascii_alphanumeric() || b"_\"\\".contains(&b[i - 1])))
        {
            bare_field(text, i)
        } else {
            None
        };
        let Some(f) = field else {
            i += 1;
            continue;
        };
        let kind = field_kind(f.name);
        match (kind, f.value) {
            (Some(kind), Value::Str { start, end }) => {
                let v = &text[start..end];
                if !v.is_empty() && (kind != FieldKind::Name || !is_machine_name(v)) {
                    rw.replace(start, end, MASK);
                }
                i = end.max(f.key_end);
            }
            (Some(_), Value::Num { start, end, level }) => {
                let q = format!("{}\"", "\\".repeat((1usize << level) - 1));
                rw.replace(start, end, &format!("{q}{MASK}{q}"));
                i = end;
            }
            (None, _) => i = f.key_end,
        }
    }
    rw.finish()
}

// ---- Known values ----

/// Personal values known to be in play (a customer's names, address
/// lines, phone, email): each is masked wherever it appears as a whole word
/// (ASCII case ignored), then the text goes through [`mask_personal_data`].
/// Its `Debug` tells how many values it holds, never which.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PersonalData {
    /// Longest first, so `Jane Doe` goes before `Jane`.
    values: Vec<String>,
}

impl fmt::Debug for PersonalData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonalData({} values)", self.values.len())
    }
}

impl PersonalData {
    pub fn new() -> Self {
        PersonalData::default()
    }

    /// The shop customer's names and email.
    pub fn of_customer(c: &Customer) -> Self {
        PersonalData::new()
            .name(c.first_name.as_deref())
            .name(c.last_name.as_deref())
            .value(c.email.as_deref())
    }

    /// The personal values a JSON document carries: strings (and numbers)
    /// of personal fields, at any depth (a request's body: what the
    /// platform may echo when it refuses it).
    pub fn of_json(v: &serde_json::Value) -> Self {
        let mut known = PersonalData::new();
        known.collect(v, None);
        known
    }

    /// [`Self::of_json`] of a body; nothing known when it is not JSON.
    pub fn of_json_bytes(body: &[u8]) -> Self {
        serde_json::from_slice(body)
            .map(|v| Self::of_json(&v))
            .unwrap_or_default()
    }

    fn collect(&mut self, v: &serde_json::Value, kind: Option<FieldKind>) {
        use serde_json::Value as J;
        match (v, kind) {
            (J::Object(map), _) => {
                for (k, v) in map {
                    self.collect(v, field_kind(k));
                }
            }
            (J::Array(items), _) => {
                for v in items {
                    self.collect(v, kind);
                }
            }
            (J::String(s), Some(FieldKind::PersonName)) => self.add_name(s),
            (J::String(s), Some(FieldKind::Name)) if !is_machine_name(s) => self.add_name(s),
            (J::String(s), Some(FieldKind::Phone)) => self.add_phone(s),
            (J::Number(n), Some(FieldKind::Phone)) => self.add_phone(&n.to_string()),
            (J::String(s), Some(FieldKind::Other)) => self.add(s),
            _ => {}
        }
    }

    /// A person's name: the whole of it and each of its words.
    pub fn name(mut self, v: Option<&str>) -> Self {
        if let Some(v) = v {
            self.add_name(v);
        }
        self
    }

    /// A phone number: as written and as bare digits.
    pub fn phone(mut self, v: Option<&str>) -> Self {
        if let Some(v) = v {
            self.add_phone(v);
        }
        self
    }

    /// Any other personal value (email, address line, city, postal code),
    /// masked whole.
    pub fn value(mut self, v: Option<&str>) -> Self {
        if let Some(v) = v {
            self.add(v);
        }
        self
    }

    fn add_name(&mut self, v: &str) {
        // Digits make a code (a customer number standing in for a name),
        // not a person's name.
        let is_word = |w: &str| !w.bytes().any(|c| c.is_ascii_digit());
        if is_word(v) {
            self.add(v);
        }
        for w in v.split_whitespace().filter(|w| is_word(w)) {
            self.add(w.trim_matches(|c: char| !c.is_alphanumeric()));
        }
    }

    fn add_phone(&mut self, v: &str) {
        self.add(v);
        let digits: String = v.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= 7 {
            self.add(&digits);
        }
    }

    fn add(&mut self, v: &str) {
        let v = v.trim();
        if v.chars().count() < MIN_KNOWN_CHARS || v == MASK {
            return;
        }
        // As written, and as it reads inside a JSON string (a log line).
        let escaped = serde_json::to_string(v).unwrap_or_default();
        let escaped = escaped
            .strip_prefix('"')
            .and_then(|e| e.strip_suffix('"'))
            .unwrap_or(v);
        for v in [v, escaped] {
            if !self.values.iter().any(|k| k.eq_ignore_ascii_case(v)) {
                self.values.push(v.to_string());
            }
        }
        self.values.sort_by_key(|k| std::cmp::Reverse(k.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Masks the known values (whole words, ASCII case ignored), then what
    /// [`mask_personal_data`] finds.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut masked = Cow::Borrowed(text);
        for v in &self.values {
            if let Cow::Owned(o) = mask_words(&masked, v) {
                masked = Cow::Owned(o);
            }
        }
        match masked {
            Cow::Borrowed(t) => mask_personal_data(t),
            Cow::Owned(o) => Cow::Owned(mask_personal_data(&o).into_owned()),
        }
    }

    /// The error with its reason masked ([`Self::mask`]).
    pub fn mask_error(&self, e: ConnectorError) -> ConnectorError {
        let m = |r: String| match self.mask(&r) {
            Cow::Borrowed(_) => r,
            Cow::Owned(o) => o,
        };
        match e {
            ConnectorError::Unavailable {
                system,
                reason,
                retry_after,
            } => ConnectorError::Unavailable {
                system,
                reason: m(reason),
                retry_after,
            },
            ConnectorError::Rejected {
                system,
                status,
                reason,
            } => ConnectorError::Rejected {
                system,
                status,
                reason: m(reason),
            },
            ConnectorError::Unauthorized { system, reason } => ConnectorError::Unauthorized {
                system,
                reason: m(reason),
            },
            ConnectorError::Conflict { system, reason } => ConnectorError::Conflict {
                system,
                reason: m(reason),
            },
            ConnectorError::BadResponse { system, reason } => ConnectorError::BadResponse {
                system,
                reason: m(reason),
            },
            other @ (ConnectorError::Throttled { .. } | ConnectorError::CircuitOpen { .. }) => {
                other
            }
        }
    }
}

/// Masks whole-word occurrences of `word` in `text`, ASCII case ignored.
fn mask_words<'a>(text: &'a str, word: &str) -> Cow<'a, str> {
    let lower = text.to_ascii_lowercase();
    let needle = word.to_ascii_lowercase();
    let is_word_char = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut rw = Rewrite::new(text);
    let mut from = 0;
    while let Some(found) = lower[from..].find(&needle) {
        let start = from + found;
        let end = start + needle.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        let starts_word = !is_word_char(before) || escape_before(text.as_bytes(), start);
        if starts_word && !is_word_char(after) {
            rw.replace(start, end, MASK);
            from = end;
        } else {
            from = start + text[start..].chars().next().map_or(1, char::len_utf8);
        }
    }
    rw.finish()
}

#[cfg(test)]
mod tests;
