//! What a successful verification tells about the enclave.

use std::fmt;

use serde::{Deserialize, Serialize};
use sms_core::measurement::TdxRegister;

use crate::status::TcbStatus;

/// The kind of TEE that produced a piece of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeeKind {
    Sgx,
    Tdx,
    Simulated,
}

impl TeeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TeeKind::Sgx => "sgx",
            TeeKind::Tdx => "tdx",
            TeeKind::Simulated => "simulated",
        }
    }
}

impl fmt::Display for TeeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of an SGX enclave, from its (signed) enclave report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SgxClaims {
    #[serde(with = "crate::hexser::hex_bytes")]
    pub mr_enclave: [u8; 32],
    #[serde(with = "crate::hexser::hex_bytes")]
    pub mr_signer: [u8; 32],
    pub isv_prod_id: u16,
    pub isv_svn: u16,
    /// The 16-byte SGX ATTRIBUTES (bit 1 of byte 0 is DEBUG).
    #[serde(with = "crate::hexser::hex_bytes")]
    pub attributes: [u8; 16],
}

/// Identity of a TDX trust domain, from its (signed) TD report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TdxClaims {
    #[serde(with = "crate::hexser::hex_bytes")]
    pub mr_td: [u8; 48],
    #[serde(with = "crate::hexser::hex_bytes")]
    pub rtmr0: [u8; 48],
    #[serde(with = "crate::hexser::hex_bytes")]
    pub rtmr1: [u8; 48],
    #[serde(with = "crate::hexser::hex_bytes")]
    pub rtmr2: [u8; 48],
    #[serde(with = "crate::hexser::hex_bytes")]
    pub rtmr3: [u8; 48],
    #[serde(with = "crate::hexser::hex_bytes")]
    pub mr_config_id: [u8; 48],
    #[serde(with = "crate::hexser::hex_bytes")]
    pub mr_owner: [u8; 48],
    #[serde(with = "crate::hexser::hex_bytes")]
    pub mr_seam: [u8; 48],
    /// The 8-byte TD ATTRIBUTES (byte 0 is the TD-under-debug byte: DEBUG and profiling bits).
    #[serde(with = "crate::hexser::hex_bytes")]
    pub td_attributes: [u8; 8],
    /// TDX quote version (4 or 5).
    pub quote_version: u16,
}

impl TdxClaims {
    /// The value of one of the registers a [`TdxMeasurement`](sms_core::measurement::TdxMeasurement) constrains.
    pub fn register(&self, register: TdxRegister) -> [u8; 48] {
        match register {
            TdxRegister::Mrtd => self.mr_td,
            TdxRegister::Rtmr0 => self.rtmr0,
            TdxRegister::Rtmr1 => self.rtmr1,
            TdxRegister::Rtmr2 => self.rtmr2,
            TdxRegister::Rtmr3 => self.rtmr3,
            TdxRegister::MrConfigId => self.mr_config_id,
        }
    }
}

/// TEE-specific claims.
// One value per verification: boxing the TDX variant would save little.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeeClaims {
    Sgx(SgxClaims),
    Tdx(TdxClaims),
    Simulated {
        #[serde(with = "crate::hexser::hex_bytes")]
        measurement: Vec<u8>,
    },
}

/// The claims of verified evidence: the signature chain, the collateral and the report's own
/// integrity were checked; the policy and the expected values may or may not have been (see
/// [`Verifier::verify`](crate::Verifier::verify), which checks all of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedReport {
    pub tee: TeeKind,
    /// Converged TCB status; `None` for simulated evidence, which has no TCB.
    pub tcb_status: Option<TcbStatus>,
    /// Intel security advisories that apply to the platform's TCB level (e.g. `INTEL-SA-00615`).
    pub advisory_ids: Vec<String>,
    /// Whether the enclave runs in debug mode (SGX ATTRIBUTES.DEBUG, or any TDX
    /// TD-under-debug bit: DEBUG or profiling). A debug enclave's memory is readable by the host.
    pub debug: bool,
    #[serde(with = "crate::hexser::hex_bytes")]
    pub report_data: [u8; 64],
    /// Unix seconds when the collateral used stops being valid: the earliest of the TCB info
    /// and QE identity `nextUpdate`, the CRLs' `nextUpdate` and the certificates' `notAfter`.
    /// `None` for simulated evidence.
    pub collateral_expires_at: Option<u64>,
    pub claims: TeeClaims,
}

impl VerifiedReport {
    /// The main measurement, for records and display: MRENCLAVE (32 bytes) for SGX, MRTD
    /// (48 bytes) for TDX, the claimed measurement for simulated evidence. For TDX it is not the
    /// whole identity: [`check_report`](crate::check_report) compares every register of a
    /// [`TdxMeasurement`](sms_core::measurement::TdxMeasurement).
    pub fn measurement(&self) -> &[u8] {
        match &self.claims {
            TeeClaims::Sgx(c) => &c.mr_enclave,
            TeeClaims::Tdx(c) => &c.mr_td,
            TeeClaims::Simulated { measurement } => measurement,
        }
    }

    pub fn measurement_hex(&self) -> String {
        hex::encode(self.measurement())
    }
}
