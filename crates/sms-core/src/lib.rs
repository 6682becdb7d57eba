//! Pure domain of the Secret Management Service: identifiers, the challenges owners sign,
//! EIP-191 signatures, on-chain entry models. No I/O lives here.

pub mod authorization;
pub mod challenge;
pub mod deal_params;
pub mod enclave_config;
pub mod hash;
pub mod hex;
pub mod ledger;
pub mod pipeline;
pub mod secret;
pub mod session_plan;
pub mod signature;
pub mod stored_session;
pub mod tag;
pub mod tee_error;

pub use alloy_primitives::{Address, B256, U256};
