//! The HTTP adapters behind the core's ERP, loyalty and shop ports
//! (`retailflow_core::ports::{erp, loyalty, shop}`).
//!
//! The adapters speak each vendor's documented REST shapes (see
//! `infra/simulators/API-SHAPES.md`); the loopback simulators speak the same,
//! so the code tested is the code that talks to the real services. Every
//! failure is classified once into
//! [`ConnectorError`](retailflow_core::resilience::ConnectorError)
//! (retryable or not).

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

pub use auth::Auth;
pub use wire::WireDecimal;
