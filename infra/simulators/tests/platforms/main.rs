//! The HTTP connectors against the platform simulators: one test binary
//! (one link) for the crate.

mod auth;
mod business_central;
mod catalog_sync;
mod concurrent_customers;
mod connectors;
mod crash_recovery;
mod fulfillment_sync;
mod return_connectors;
