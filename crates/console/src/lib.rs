//! retailflow's support console: the pages support and operations staff
//! use instead of a terminal. This crate builds them from what the domain
//! records; the local app (`retailflow serve`) and the console Lambda
//! serve them and gather the exceptions from their own stores.

pub mod inbox;
pub mod order;
pub mod pages;
pub mod session;

#[cfg(test)]
mod tests;
