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
//!   worker, reading only their environment; [`fetch`]: their downloads;
//! - [`files`]: the CLI's dataset and result files (atomic writes, private key files);
//! - [`launcher`]: the enclave launcher's pinned key, hardware quotes and exec;
//! - [`dev_deal`]: the dev workerpool, deals and bulk orders on a `--dev` server's ledger;
//! - [`local`]: the local worker, which plays scheduler and worker for one task against an
//!   SMS and runs the stages as processes through the enclave launcher.

mod cbc_stream;
pub mod computed;
pub mod dataset;
pub mod demo;
pub mod dev_deal;
pub mod enclave_signature;
pub mod exit_cause;
pub mod fetch;
pub mod files;
pub mod launcher;
pub mod local;
pub mod post_compute;
pub mod pre_compute;
pub mod pre_compute_bulk;
pub mod result_archive;
pub mod result_digest;
pub mod stage;

pub use cbc_stream::{CbcError, Progress};
