//! The price book: one current price per SKU, versioned, so a cart priced
//! from an older price is detected instead of charged at the wrong amount.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::money::Money;

/// A SKU's current price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceEntry {
    pub sku: String,
    pub price: Money,
    /// Bumped by every price change the ERP sends.
    pub version: u64,
    /// Collections the SKU belongs to (promotion scopes).
    pub collections: BTreeSet<String>,
}

/// One line of a cart as the storefront shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub sku: String,
    pub quantity: u32,
    /// The unit price the customer was shown.
    pub shown_price: Money,
}

/// A line priced from the book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub sku: String,
    pub quantity: u32,
    pub unit_price: Money,
    pub price_version: u64,
    /// unit price × quantity.
    pub subtotal: Money,
    pub collections: BTreeSet<String>,
}

/// Why a line cannot be sold as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum LineProblem {
    #[error("{sku} is not sold here")]
    UnknownSku { sku: String },
    #[error("{sku} now costs {current} (price version {version}), not the {shown} shown")]
    PriceChanged {
        sku: String,
        shown: Money,
        current: Money,
        version: u64,
    },
    #[error("{sku}: quantity must be at least 1")]
    BadQuantity { sku: String },
    #[error("{sku}: amount overflows")]
    Overflow { sku: String },
}

/// Prices every line from the book, or says what is wrong with each line
/// that cannot be sold as shown.
pub fn price_lines(
    lines: &[CartLine],
    book: &BTreeMap<String, PriceEntry>,
) -> Result<Vec<PricedLine>, Vec<LineProblem>> {
    let mut priced = Vec::with_capacity(lines.len());
    let mut problems = Vec::new();
    for l in lines {
        let sku = l.sku.clone();
        if l.quantity == 0 {
            problems.push(LineProblem::BadQuantity { sku });
            continue;
        }
        let Some(entry) = book.get(&l.sku) else {
            problems.push(LineProblem::UnknownSku { sku });
            continue;
        };
        if entry.price != l.shown_price {
            problems.push(LineProblem::PriceChanged {
                sku,
                shown: l.shown_price,
                current: entry.price,
                version: entry.version,
            });
            continue;
        }
        match entry.price.checked_mul(i64::from(l.quantity)) {
            Ok(subtotal) => priced.push(PricedLine {
                sku,
                quantity: l.quantity,
                unit_price: entry.price,
                price_version: entry.version,
                subtotal,
                collections: entry.collections.clone(),
            }),
            Err(_) => problems.push(LineProblem::Overflow { sku }),
        }
    }
    if problems.is_empty() {
        Ok(priced)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn usd(minor: i64) -> Money {
        Money::new(minor, Currency::from_code("USD").unwrap())
    }

    fn book() -> BTreeMap<String, PriceEntry> {
        [("TEE", 2000, 3), ("CAP", 1500, 1)]
            .into_iter()
            .map(|(sku, price, version)| {
                (
                    sku.to_string(),
                    PriceEntry {
                        sku: sku.into(),
                        price: usd(price),
                        version,
                        collections: BTreeSet::new(),
                    },
                )
            })
            .collect()
    }

    fn line(sku: &str, quantity: u32, shown: i64) -> CartLine {
        CartLine {
            sku: sku.into(),
            quantity,
            shown_price: usd(shown),
        }
    }

    #[test]
    fn lines_at_the_book_price_are_priced_with_their_version() {
        let priced = price_lines(&[line("TEE", 3, 2000), line("CAP", 1, 1500)], &book()).unwrap();
        assert_eq!(priced[0].subtotal, usd(6000));
        assert_eq!(priced[0].price_version, 3);
    }

    #[test]
    fn a_price_changed_since_the_storefront_showed_it_is_named_per_line() {
        let err = price_lines(
            &[
                line("TEE", 1, 1900),
                line("HAT", 1, 100),
                line("CAP", 0, 1500),
            ],
            &book(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            vec![
                LineProblem::PriceChanged {
                    sku: "TEE".into(),
                    shown: usd(1900),
                    current: usd(2000),
                    version: 3
                },
                LineProblem::UnknownSku { sku: "HAT".into() },
                LineProblem::BadQuantity { sku: "CAP".into() },
            ]
        );
        assert!(
            err[0].to_string().contains("now costs 20.00 USD"),
            "{}",
            err[0]
        );
    }
}
