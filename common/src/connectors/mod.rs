//! Ports to the systems of record, and their HTTP adapters.
//!
//! The adapters speak each vendor's documented REST shapes (see
//! `infra/simulators/API-SHAPES.md`); the loopback simulators speak the same,
//! so the code tested is the code that talks to the real services. Every
//! failure is classified once into [`ConnectorError`] (retryable or not).

pub mod auth;
pub mod business_central;
pub mod erp_catalog;
pub mod erp_ledger;
pub mod erp_shipments;
pub mod from_env;
pub mod loyalty_ledger;
pub mod netsuite;
pub mod salesforce;
pub mod shop;
mod shop_fulfillment;
mod shop_stock;
mod wire;

pub use crate::idempotency::external_id;
pub use crate::ports::erp::*;
pub use crate::ports::loyalty::*;
pub use crate::ports::shop::*;
pub use auth::Auth;
pub use wire::WireDecimal;
