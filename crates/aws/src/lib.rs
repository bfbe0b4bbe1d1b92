//! retailflow on AWS: the adapters behind the core's ports (DynamoDB for
//! state, stock, holds, budgets and the saga index; EventBridge for the bus
//! and its archive; SQS for queues and dead letters; S3 for claim checks;
//! Secrets Manager for credentials) and the Lambda glue every function
//! shares. The only crate of the library that lists `aws-sdk-*`.

pub mod adapters;
pub mod lambda;
