//! Decimal values as platforms send them: strings ("12.30", "52.0000") or JSON
//! numbers (195.67). Kept as text so money is parsed exactly, never via f64
//! arithmetic.

use serde::{Deserialize, Deserializer};

use crate::money::{Currency, Money, MoneyError};

/// A decimal kept as its text. A JSON number is converted with the shortest
/// representation that reads back to the same value, which is its original
/// text for any amount of up to 15 significant digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecimalText(pub String);

impl DecimalText {
    pub fn money(&self, currency: Currency) -> Result<Money, MoneyError> {
        Money::parse(&self.0, currency)
    }

    /// True for any spelling of zero ("0", "0.0000", "-0.00").
    pub fn is_zero(&self) -> bool {
        self.0
            .trim()
            .trim_start_matches(['-', '+'])
            .bytes()
            .all(|b| b == b'0' || b == b'.')
    }

    /// The value as a whole count (quantities such as Adobe's "2.0000").
    pub fn whole(&self) -> Option<u32> {
        let s = self.0.trim();
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if frac.bytes().any(|b| b != b'0') {
            return None;
        }
        int.parse().ok()
    }
}

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(serde_json::Number),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Text(s) => DecimalText(s),
            Raw::Number(n) => DecimalText(n.to_string()),
        })
    }
}

/// Ids arrive as JSON numbers (Shopify) or strings (Adobe); both become text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdText(pub String);

impl<'de> Deserialize<'de> for IdText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(IdText(DecimalText::deserialize(d)?.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_keep_their_decimal_text() {
        let v: Vec<DecimalText> =
            serde_json::from_str(r#"[195.67, "3.98", 0.1, 1e2, 10]"#).unwrap();
        let usd = Currency::from_code("USD").unwrap();
        assert_eq!(v[0].money(usd).unwrap().minor, 19567);
        assert_eq!(v[1].money(usd).unwrap().minor, 398);
        assert_eq!(v[2].money(usd).unwrap().minor, 10);
        assert_eq!(v[3].money(usd).unwrap().minor, 10000);
        assert_eq!(v[4].money(usd).unwrap().minor, 1000);
    }

    #[test]
    fn whole_quantities_accept_padded_zeros_only() {
        assert_eq!(DecimalText("2.0000".into()).whole(), Some(2));
        assert_eq!(DecimalText("3".into()).whole(), Some(3));
        assert_eq!(DecimalText("1.5".into()).whole(), None);
        assert_eq!(DecimalText("-1".into()).whole(), None);
    }
}
