//! Adapters behind the ports: AWS (DynamoDB, EventBridge) and in-process.

pub mod dynamodb;
pub mod eventbridge;
pub mod in_process;
pub mod sqs;
