//! The AWS adapters: each implements a port of `retailflow_core::ports` (or
//! of the checkout's stock, holds and catalog) with the same semantics as its
//! in-process twin, proven against moto by the AWS-wire tests.

pub mod dynamodb;
pub mod dynamodb_budget;
pub mod dynamodb_catalog;
pub mod dynamodb_open_holds;
pub mod dynamodb_saga_index;
pub mod dynamodb_stock;
pub mod eventbridge;
pub mod eventbridge_archive;
pub mod s3_claim_checks;
pub mod sqs;
pub mod sqs_dead_letters;
