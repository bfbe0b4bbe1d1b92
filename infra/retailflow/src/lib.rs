//! The whole retailflow app in one process: in-process stand-ins for the AWS
//! services, the loopback simulators of the systems of record, and the same
//! step logic the Lambdas run.

pub mod api_event;
pub mod bench_flash_sale;
pub mod budget_drain;
pub mod chaos;
pub mod data_dir;
pub mod dev_keys;
pub mod large_orders;
pub mod local_app;
pub mod local_console;
pub mod local_replay;
pub mod progress;
pub mod runtime;
pub mod stack;
pub mod timeline;
