//! AWS-wire specifications: the AWS adapters through the real aws-sdk-rust
//! clients against moto server on loopback, one test binary (one link) for
//! the whole tier.

mod adapters;
mod budget;
mod checkout;
mod flash_sale;
mod large_orders;
mod reconciliation;
mod replay;
mod returns;
mod saga;
mod stock;
mod template;
