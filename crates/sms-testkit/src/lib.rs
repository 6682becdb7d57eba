//! Test-only support for the `sms` workspace (a dev-dependency, never shipped).
//!
//! - [`chain::LocalChain`]: a local anvil node with the real iExec PoCo contracts deployed.

pub mod chain;
