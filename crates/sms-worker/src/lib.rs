//! File formats and result-signing primitives of the iExec TEE worker stages.
//!
//! The formats are pure or work on readers, writers and paths handed in by the caller; the
//! stages read their environment and do their own file and network I/O:
//!
//! - [`dataset`]: dataset keys and the `IV ‖ AES-256-CBC` dataset file format, with checksum;
//! - [`result_archive`]: beneficiary RSA keys, zipping `/iexec_out`, encrypted result archives;
//! - [`result_digest`]: the web2 (file/directory) and web3 (callback) result digests;
//! - [`enclave_signature`]: result hash, seal, enclave signature and worker-API authorization;
//! - [`computed`]: the `computed.json` model;
//! - [`exit_cause`]: the wire names of pre-/post-compute failure causes;
//! - [`stage`], [`pre_compute`], [`post_compute`]: the built-in pipeline stages of the local
//!   worker, reading only their environment; [`fetch`]: their downloads.

mod cbc_stream;
pub mod computed;
pub mod dataset;
pub mod enclave_signature;
pub mod exit_cause;
pub mod fetch;
pub mod post_compute;
pub mod pre_compute;
pub mod pre_compute_bulk;
pub mod result_archive;
pub mod result_digest;
pub mod stage;

pub use cbc_stream::{CbcError, Progress};
