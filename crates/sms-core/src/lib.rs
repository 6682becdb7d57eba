//! Pure domain of the Secret Management Service: identifiers, the challenges owners sign,
//! EIP-191 signatures, on-chain entry models. No I/O lives here.

pub mod audit;
pub mod authorization;
pub mod bulk;
pub mod challenge;
pub mod cid;
pub mod clock;
pub mod deal_params;
pub mod enclave_config;
pub mod enclave_env;
pub mod explain;
pub mod hash;
pub mod hex;
pub mod ledger;
pub mod measurement;
pub mod pipeline;
pub mod result_proxy;
pub mod secret;
pub mod secret_operation;
pub mod session_plan;
pub mod signature;
pub mod stored_session;
pub mod tag;
pub mod tee_error;

pub use alloy_primitives::{Address, B256, U256};

/// An error and its `source()` chain on one line (`outer: cause: root cause`).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
