//! The whole app in process and its CLI, as users meet them: one test
//! binary (one link) for the crate.

mod adobe_saves;
mod chaos;
mod checkout;
mod cli;
mod flash_sale;
mod fuzz_corpus;
mod large_orders;
mod reconciliation;
mod replay;
mod restart;
mod returns;
mod saga;
mod stock;
mod support;
mod template_parity;
mod trace;
