//! Why the server did not start. A leaf module: every start-up step (configuration, store,
//! ledger, TEE, provisioner, listener) returns it, and `server.rs` only assembles the steps.

use std::net::SocketAddr;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StartupError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("store: {0}")]
    Store(#[from] sms_store::StoreError),
    #[error("ledger: {0}")]
    Ledger(#[from] sms_chain::LedgerError),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("{0}")]
    Io(String),
}
