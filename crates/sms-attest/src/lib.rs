//! Remote-attestation verification for attested secret release.
//!
//! A secret is released only to an enclave that proves, by remote attestation, that it runs the
//! expected code and that it holds the private key the secret will be sealed to:
//!
//! 1. the server issues a fresh nonce for `(sessionId, service)`;
//! 2. the enclave generates an ephemeral HPKE X25519 key pair;
//! 3. the enclave produces [`Evidence`] whose 64-byte report data is
//!    [`report_data_binding`]`(nonce, public_key)`;
//! 4. the server [`Verifier::verify`]s the evidence: authenticity against Intel's collateral,
//!    the [`Policy`], the expected measurement, the expected report data;
//! 5. the server seals the environment to the public key.
//!
//! # Report-data binding
//!
//! ```text
//! report_data = SHA-512( "iexec-sms/attest/report-data/v1" || 0x00
//!                        || u64_be(len(nonce)) || nonce
//!                        || u64_be(len(public_key)) || public_key )
//! ```
//!
//! 64 bytes, filling the whole report-data field of SGX and TDX reports. The context string is
//! ASCII, followed by one zero byte; lengths are 8-byte big-endian. The public key is the raw
//! 32-byte X25519 public key.
//!
//! # Measurement
//!
//! The expected measurement is an [`ExpectedMeasurement`] (pure domain, `sms_core::measurement`):
//! **MRENCLAVE** (32 bytes) for SGX; for TDX the whole TD: **MRTD, RTMR0..3 and MRCONFIGID**,
//! every register compared unless the expectation says `any` for it
//! ([`check_measurement`]). SGX evidence never matches a TDX expectation, nor the converse.
//! MRSIGNER, ISV product id and SVN, MRSEAM and MROWNER are reported in the [`VerifiedReport`]
//! but not compared.
//!
//! # Evidence kinds
//!
//! One [`TeeVerifier`] per kind ([`tee::sgx`], [`tee::tdx`], [`tee::simulated`]) appraises
//! authenticity; [`Verifier`] then applies the same policy, measurement and report-data checks
//! to every kind. Simulated evidence is refused unless the verifier is built with
//! [`Verifier::dangerous_allow_simulated`].
//!
//! # DCAP verification
//!
//! SGX quotes v3 and TDX quotes v4/v5 are verified with `dcap-qvl` (pure Rust, ring) against
//! Intel's production root CA, at a time given by the caller. [`Collateral`] comes from a JSON
//! file or a directory of them ([`CollateralSource::Offline`]) or from a PCCS
//! ([`CollateralSource::Pccs`], feature `pccs`, cached per FMSPC until it expires). Only quotes
//! that embed their PCK certificate chain (certification data type 5, what current quoting
//! enclaves emit) are supported.
//!
//! Refusals are [`VerifyError`]s, each with a stable [`VerifyError::code`].

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod binding;
pub mod collateral;
pub mod collateral_source;
mod error;
mod evidence;
mod hexser;
pub mod identity;
pub mod inspect;
#[cfg(feature = "pccs")]
pub mod pccs;
mod policy;
pub mod provision;
mod report;
pub mod samples;
pub mod seal;
mod status;
pub mod tee;
mod verifier;

pub use binding::{REPORT_DATA_CONTEXT, report_data_binding};
pub use collateral::{Collateral, CollateralBundle};
pub use collateral_source::CollateralSource;
pub use error::{CollateralError, Detail, VerifyError};
pub use evidence::Evidence;
pub use identity::{
    AnswerSignature, IDENTITY_ALGORITHM, IdentityDocument, IdentityError, ReleaseTranscript,
    SmsIdentity, SmsPublicKey, request_sha256,
};
pub use inspect::{QuoteInspection, QuoteSummary, Verdict, inspect_quote};
pub use policy::Policy;
pub use report::{SgxClaims, TdxClaims, TeeClaims, TeeKind, VerifiedReport};
pub use seal::{EphemeralKey, HPKE_SUITE, SealError, SealedEnvelope, release_info};
pub use sms_core::measurement::{ExpectedMeasurement, Register, TdxMeasurement, TdxRegister};
pub use status::{TcbStatus, UnknownTcbStatus, parse_status_list};
pub use tee::TeeVerifier;
pub use tee::dcap::DcapQuote;
pub use verifier::{Verifier, check_measurement, check_report};
