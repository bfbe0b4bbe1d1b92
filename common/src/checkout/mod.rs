//! Checkout validation (issue 5): what the till and the storefront ask
//! before taking the customer's money. Pure pieces first, each with its own
//! module: prices checked against the versioned price book ([`pricing`]),
//! promotions evaluated in minor units with an explicit rounding rule
//! ([`promotions`]), and stock reserved all-or-nothing so a flash sale never
//! sells what is not there ([`stock`]).
//!
//! Not built yet: the `POST /checkout/validate` handler and its OpenAPI
//! document, the DynamoDB adapters (price book, promotions, reservations),
//! loyalty redemption, the catalog sync and fulfillment sync, and the
//! benchmark.

pub mod catalog;
pub mod pricing;
pub mod promotions;
pub mod stock;
pub mod validation;
