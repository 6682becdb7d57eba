//! Test-only support for the `sms` workspace (a dev-dependency, never shipped).
//!
//! - [`chain::LocalChain`]: a local anvil node with the real iExec PoCo contracts deployed.
//! - [`server::TestServer`]: an SMS started in process on loopback, in a temporary data dir.
//! - [`proxy::FaultProxy`]: a loopback TCP proxy that can hang, answer garbage or close.

pub mod chain;
pub mod postgres;
pub mod proxy;
pub mod server;
