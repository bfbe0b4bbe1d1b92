//! Money as integer minor units of an ISO 4217 currency.
//!
//! Platforms send money as decimal strings ("12.30"), as JSON numbers (Shopify
//! refund subtotals, Adobe Commerce totals) or as padded strings ("52.0000").
//! Every one of them is parsed exactly into minor units using the currency's own
//! exponent (JPY 0, USD 2, KWD 3); a value with more precision than the currency
//! allows is an error, never silently rounded. Where a computation must round
//! (proportional shares), the caller names the rule with [`Rounding`].

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an amount could not be read or combined. None of these is retryable:
/// the same input fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unknown ISO 4217 currency code {0:?}")]
    UnknownCurrency(String),
    #[error("currency {0} has no minor unit (not a money currency)")]
    NoMinorUnit(String),
    #[error("{value:?} is not a decimal amount")]
    NotDecimal { value: String },
    #[error("{value:?} has more decimals than {currency} allows ({exponent})")]
    TooPrecise {
        value: String,
        currency: String,
        exponent: u16,
    },
    #[error("amount {value:?} is out of range")]
    OutOfRange { value: String },
    #[error("cannot combine {left} with {right}")]
    CurrencyMismatch { left: String, right: String },
    #[error("arithmetic overflow")]
    Overflow,
}

/// An ISO 4217 currency that has a minor unit (so XAU and friends are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    pub fn from_code(code: &str) -> Result<Self, MoneyError> {
        let c = iso_currency::Currency::from_code(code.trim())
            .ok_or_else(|| MoneyError::UnknownCurrency(code.to_string()))?;
        if c.exponent().is_none() {
            return Err(MoneyError::NoMinorUnit(code.to_string()));
        }
        Ok(Currency(c))
    }

    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Number of decimal places of the minor unit.
    pub fn exponent(self) -> u16 {
        // `from_code` refuses currencies without an exponent, so it is always present.
        self.0.exponent().unwrap_or(0)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::from_code(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Currency::from_code(&code).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Currency {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Currency".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "description": "ISO 4217 alphabetic currency code"
        })
    }
}

/// How a computed share of an amount is rounded to the minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Toward negative infinity: points and reversals never exceed their base.
    Down,
    /// Half away from zero: the usual commercial rounding.
    HalfUp,
    /// Half to even (banker's rounding).
    HalfEven,
}

/// An amount in minor units of one currency. Never f64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Money {
    /// Amount in the currency's minor unit (cents for USD, yen for JPY, fils for KWD).
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Money { minor, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Money::new(0, currency)
    }

    pub fn is_zero(&self) -> bool {
        self.minor == 0
    }

    /// Parses a decimal string exactly ("12.30", "-5.2", "52.0000", "1e2" is refused).
    /// Trailing zeros beyond the currency's exponent are accepted; any other extra
    /// precision is an error.
    pub fn parse(value: &str, currency: Currency) -> Result<Self, MoneyError> {
        let minor = parse_minor(value, currency.exponent()).map_err(|e| match e {
            ParseFail::NotDecimal => MoneyError::NotDecimal {
                value: value.to_string(),
            },
            ParseFail::TooPrecise => MoneyError::TooPrecise {
                value: value.to_string(),
                currency: currency.code().to_string(),
                exponent: currency.exponent(),
            },
            ParseFail::OutOfRange => MoneyError::OutOfRange {
                value: value.to_string(),
            },
        })?;
        Ok(Money::new(minor, currency))
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    pub fn checked_mul(self, factor: i64) -> Result<Money, MoneyError> {
        let minor = self.minor.checked_mul(factor).ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    pub fn negate(self) -> Money {
        Money::new(self.minor.saturating_neg(), self.currency)
    }

    pub fn abs(self) -> Money {
        Money::new(self.minor.saturating_abs(), self.currency)
    }

    /// `self × numerator / denominator`, rounded by `rounding`. Used for
    /// proportional shares (a returned quantity's part of a line's discount).
    pub fn share(
        self,
        numerator: i64,
        denominator: i64,
        rounding: Rounding,
    ) -> Result<Money, MoneyError> {
        if denominator == 0 {
            return Err(MoneyError::Overflow);
        }
        let n = i128::from(self.minor) * i128::from(numerator);
        let d = i128::from(denominator);
        let minor = div_round(n, d, rounding);
        let minor = i64::try_from(minor).map_err(|_| MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    /// Sums amounts that must all be in `currency`.
    pub fn sum<'a>(
        currency: Currency,
        items: impl IntoIterator<Item = &'a Money>,
    ) -> Result<Money, MoneyError> {
        items
            .into_iter()
            .try_fold(Money::zero(currency), |acc, m| acc.checked_add(*m))
    }

    fn same_currency(&self, other: Money) -> Result<(), MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch {
                left: self.currency.code().to_string(),
                right: other.currency.code().to_string(),
            });
        }
        Ok(())
    }

    /// The amount as a plain decimal string with the currency's exponent ("58.50").
    pub fn to_decimal_string(&self) -> String {
        let exp = u32::from(self.currency.exponent());
        let neg = self.minor < 0;
        let abs = self.minor.unsigned_abs();
        let sign = if neg { "-" } else { "" };
        if exp == 0 {
            return format!("{sign}{abs}");
        }
        let div = 10u64.pow(exp);
        format!(
            "{sign}{}.{:0width$}",
            abs / div,
            abs % div,
            width = exp as usize
        )
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

fn div_round(n: i128, d: i128, rounding: Rounding) -> i128 {
    let (n, d) = if d < 0 { (-n, -d) } else { (n, d) };
    let q = n.div_euclid(d);
    let r = n.rem_euclid(d); // 0 <= r < d, q is floor
    match rounding {
        Rounding::Down => q,
        Rounding::HalfUp => {
            // half away from zero
            let twice = 2 * r;
            if twice > d || (twice == d && n >= 0) {
                q + 1
            } else {
                q
            }
        }
        Rounding::HalfEven => {
            let twice = 2 * r;
            if twice > d || (twice == d && q % 2 != 0) {
                q + 1
            } else {
                q
            }
        }
    }
}

enum ParseFail {
    NotDecimal,
    TooPrecise,
    OutOfRange,
}

fn parse_minor(value: &str, exponent: u16) -> Result<i64, ParseFail> {
    let s = value.trim();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (int_part, frac_part) = match digits.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits, ""),
    };
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(ParseFail::NotDecimal);
    }
    let exp = usize::from(exponent);
    let (kept, extra) = if frac_part.len() > exp {
        frac_part.split_at(exp)
    } else {
        (frac_part, "")
    };
    if extra.bytes().any(|b| b != b'0') {
        return Err(ParseFail::TooPrecise);
    }
    let mut minor: i64 = 0;
    let push = |acc: i64, b: u8| -> Result<i64, ParseFail> {
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(ParseFail::OutOfRange)
    };
    for b in int_part.bytes().chain(kept.bytes()) {
        minor = push(minor, b)?;
    }
    for _ in kept.len()..exp {
        minor = minor.checked_mul(10).ok_or(ParseFail::OutOfRange)?;
    }
    Ok(if neg { -minor } else { minor })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(code: &str) -> Currency {
        Currency::from_code(code).unwrap()
    }

    #[test]
    fn parses_decimal_strings_with_the_currency_exponent() {
        assert_eq!(Money::parse("12.30", cur("USD")).unwrap().minor, 1230);
        assert_eq!(Money::parse("12.3", cur("USD")).unwrap().minor, 1230);
        assert_eq!(Money::parse("12", cur("USD")).unwrap().minor, 1200);
        assert_eq!(Money::parse("1500", cur("JPY")).unwrap().minor, 1500);
        assert_eq!(Money::parse("1.234", cur("KWD")).unwrap().minor, 1234);
        assert_eq!(Money::parse("-5.20", cur("USD")).unwrap().minor, -520);
        assert_eq!(Money::parse(".5", cur("USD")).unwrap().minor, 50);
    }

    #[test]
    fn accepts_padding_zeros_but_refuses_real_extra_precision() {
        assert_eq!(Money::parse("52.0000", cur("USD")).unwrap().minor, 5200);
        assert_eq!(Money::parse("1500.00", cur("JPY")).unwrap().minor, 1500);
        assert!(matches!(
            Money::parse("12.345", cur("USD")),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            Money::parse("1500.5", cur("JPY")),
            Err(MoneyError::TooPrecise { .. })
        ));
    }

    #[test]
    fn refuses_what_is_not_a_plain_decimal() {
        for bad in ["", "-", ".", "1e2", "12,30", "NaN", "1.2.3", "$5", " 1 2"] {
            assert!(
                matches!(
                    Money::parse(bad, cur("USD")),
                    Err(MoneyError::NotDecimal { .. })
                ),
                "{bad:?} should be refused"
            );
        }
        assert!(matches!(
            Money::parse("99999999999999999999", cur("USD")),
            Err(MoneyError::OutOfRange { .. })
        ));
    }

    #[test]
    fn refuses_unknown_and_non_money_currencies() {
        assert!(matches!(
            Currency::from_code("ABC"),
            Err(MoneyError::UnknownCurrency(_))
        ));
        assert!(matches!(
            Currency::from_code("XAU"),
            Err(MoneyError::NoMinorUnit(_))
        ));
    }

    #[test]
    fn formats_with_the_currency_exponent() {
        assert_eq!(Money::new(5850, cur("USD")).to_string(), "58.50 USD");
        assert_eq!(Money::new(-5, cur("USD")).to_decimal_string(), "-0.05");
        assert_eq!(Money::new(1500, cur("JPY")).to_decimal_string(), "1500");
        assert_eq!(Money::new(1234, cur("KWD")).to_decimal_string(), "1.234");
    }

    #[test]
    fn arithmetic_refuses_mixed_currencies() {
        let usd = Money::new(100, cur("USD"));
        let eur = Money::new(100, cur("EUR"));
        assert!(matches!(
            usd.checked_add(eur),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        assert_eq!(usd.checked_sub(usd).unwrap().minor, 0);
    }

    #[test]
    fn shares_round_by_the_named_rule() {
        let m = Money::new(1000, cur("USD"));
        // 1000 * 1 / 3 = 333.33
        assert_eq!(m.share(1, 3, Rounding::Down).unwrap().minor, 333);
        assert_eq!(m.share(1, 3, Rounding::HalfUp).unwrap().minor, 333);
        // 1000 * 2 / 3 = 666.67
        assert_eq!(m.share(2, 3, Rounding::Down).unwrap().minor, 666);
        assert_eq!(m.share(2, 3, Rounding::HalfUp).unwrap().minor, 667);
        // exact halves: 5 / 2 = 2.5, 3*5/2 = 7.5
        let five = Money::new(5, cur("USD"));
        assert_eq!(five.share(1, 2, Rounding::HalfUp).unwrap().minor, 3);
        assert_eq!(five.share(1, 2, Rounding::HalfEven).unwrap().minor, 2);
        assert_eq!(five.share(3, 2, Rounding::HalfEven).unwrap().minor, 8);
        // negatives: half away from zero, floor goes down
        let neg = Money::new(-5, cur("USD"));
        assert_eq!(neg.share(1, 2, Rounding::HalfUp).unwrap().minor, -3);
        assert_eq!(neg.share(1, 2, Rounding::Down).unwrap().minor, -3);
        assert!(m.share(1, 0, Rounding::Down).is_err());
    }

    #[test]
    fn serializes_as_minor_units_and_code() {
        let m = Money::new(5850, cur("USD"));
        let json = serde_json::to_value(m).unwrap();
        assert_eq!(json, serde_json::json!({"minor": 5850, "currency": "USD"}));
        let back: Money = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
        assert!(serde_json::from_value::<Money>(
            serde_json::json!({"minor": 1, "currency": "ZZZ"})
        )
        .is_err());
    }
}
