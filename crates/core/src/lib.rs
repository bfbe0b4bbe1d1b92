//! retailflow's domain: the canonical model and events, the ports every
//! adapter implements (each with its contract, in [`ports`]), idempotency
//! and saga state, webhook verification, the platform mappers, checkout, the
//! workflow steps and reconciliation, and the in-process adapters the local
//! app and the fast tests run on. AWS lives in `retailflow-aws`, HTTP in
//! `retailflow-connectors`; Cargo keeps both out of here.

pub mod adapters;
pub mod budget;
pub mod checkout;
pub mod claim_check;
pub mod config;
pub mod credentials;
pub mod events;
pub mod idempotency;
pub mod intake;
pub mod loyalty_rules;
pub mod mappers;
pub mod model;
pub mod money;
pub mod observability;
pub mod ports;
pub mod queue_batch;
pub mod queue_dispositions;
pub mod reconciliation;
pub mod refund_ledger;
pub mod replay;
pub mod resilience;
pub mod saga;
pub mod serde_pairs;
pub mod steps;
pub mod trace;
pub mod webhook;
