//! Checkout validation (issue 5): what the till and the storefront ask
//! before taking the customer's money. Pure pieces first, each with its own
//! module: prices checked against the versioned price book ([`pricing`]),
//! promotions evaluated in minor units with an explicit rounding rule
//! ([`promotions`]), and stock reserved all-or-nothing so a flash sale never
//! sells what is not there ([`crate::ports::stock`]).
//!
//! Built: the validation step ([`validation`]) with its loyalty fallback,
//! authenticated callers only ([`auth`]: Shopify checkout session tokens and
//! storefronts' signed requests), holds capped per checkout and per
//! customer ([`holds`]), the local app's `POST /checkout/validate`
//! (openapi/checkout.yaml), stock
//! holds and the price book and promotions in process and on DynamoDB,
//! `retailflow bench-checkout`.
//! The `checkout-validation` Lambda wires the DynamoDB adapters.
//! Not built yet: committing holds on `OrderPlaced`,
//! the catalog sync (ERP prices and stock in, stock out to the shops) and
//! the fulfillment sync.

pub mod auth;
pub mod holds;
pub mod hot_stock;
pub mod pricing;
pub mod promotions;
pub mod validation;
