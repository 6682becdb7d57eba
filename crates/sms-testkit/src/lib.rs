//! Test-only support for the `sms` workspace (a dev-dependency, never shipped).
//!
//! - [`chain::LocalChain`]: a local anvil node with the real iExec PoCo contracts deployed.
//! - [`server::TestServer`]: an SMS started in process on loopback, in a temporary data dir.
//! - [`cluster::Cluster`]: N real `sms server` processes on one PostgreSQL database.
//! - [`proxy::FaultProxy`]: a loopback TCP proxy that can hang, answer garbage, close,
//!   blackhole or refuse.
//! - [`ipfs::FakeIpfsGateway`]: a loopback IPFS gateway serving documents by CID, or misbehaving.
//! - [`rpc_count::CountingRpc`]: a loopback JSON-RPC proxy that counts the calls a server makes.

pub mod chain;
pub mod cluster;
pub mod ipfs;
pub mod postgres;
pub mod proxy;
pub mod result_proxy;
pub mod rpc_count;
pub mod server;
