//! One module per top-level command; they share only [`common`] (arguments and printing
//! helpers) and never import each other. Nested commands are child modules of their parent.

pub mod attest;
pub mod audit;
pub mod bench;
pub mod common;
pub mod demo;
pub mod dev;
pub mod enclave;
pub mod explain;
pub mod operator;
pub mod secret;
pub mod secrets;
pub mod server;
pub mod wallet;
pub mod worker;
