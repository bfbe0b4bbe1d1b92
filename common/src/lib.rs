//! retailflow's shared library: the canonical model and events, the ports and
//! their adapters, idempotency and saga state, webhook verification, the
//! platform mappers, and the step logic the Lambda functions wire up.

pub mod adapters;
pub mod budget;
pub mod checkout;
pub mod claim_check;
pub mod config;
pub mod connectors;
pub mod credentials;
pub mod events;
pub mod idempotency;
pub mod intake;
pub mod lambda;
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
