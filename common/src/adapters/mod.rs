//! Adapters behind the ports: AWS (DynamoDB, EventBridge) and in-process.

pub mod dynamodb;
pub mod dynamodb_catalog;
pub mod dynamodb_saga_index;
pub mod dynamodb_stock;
pub mod eventbridge;
pub mod in_process;
pub mod sqs;
pub mod sqs_dead_letters;
pub mod sqs_step_queues;
