//! What an enclave must prove it runs before the SMS releases its environment.
//!
//! - SGX (SCONE, Gramine): one value, MRENCLAVE (32 bytes).
//! - TDX: the whole trust domain: MRTD (initial TD memory: the firmware), RTMR0 (firmware
//!   configuration), RTMR1 (boot loader and kernel), RTMR2 (kernel command line and initrd),
//!   RTMR3 (the workload), and MRCONFIGID (a value the host sets when creating the TD), each
//!   48 bytes. Every register must equal its expected value; a register is left unchecked only
//!   when the configuration says `any` for it ([`Register::Any`]).
//!
//! ## The TDX app stage
//!
//! Every TDX app runs in the same app TD image (firmware, kernel, command line, root file
//! system: MRTD and RTMR0..2, given once in the pipelines file); what differs between apps is
//! the workload, identified on chain by the app's 32-byte checksum. Before it asks for a quote,
//! the app TD extends RTMR3 exactly once with the 48-byte event [`app_rtmr3_event`]: the
//! checksum followed by 16 zero bytes. RTMR3 starts at 48 zero bytes, and an extension is
//! `RTMR ← SHA-384(RTMR ‖ event)` ([`rtmr_extend`], what `TDG.MR.RTMR.EXTEND` does), so the
//! expected RTMR3 of an app is [`app_rtmr3`]`(checksum)` = `SHA-384(0^48 ‖ checksum ‖ 0^16)`.
//! An app TD that extended RTMR3 with anything else, or not at all, is refused.
//!
//! This module is pure: no I/O, no clock.

use std::fmt;

use alloy_primitives::B256;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};
use sha2::{Digest, Sha384};

/// Bytes in a TDX measurement register.
pub const REGISTER_LEN: usize = 48;

/// The text that leaves a register unchecked.
pub const ANY: &str = "any";

/// The expected value of one TDX register.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Register {
    /// The register must hold exactly these bytes.
    Exact([u8; REGISTER_LEN]),
    /// Not checked (written `any` in the configuration).
    Any,
}

impl Register {
    /// `any` (any case), or 96 hex characters with an optional `0x` prefix (any case).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.eq_ignore_ascii_case(ANY) {
            return Some(Self::Any);
        }
        let digits = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        let mut bytes = [0u8; REGISTER_LEN];
        alloy_primitives::hex::decode_to_slice(digits, &mut bytes).ok()?;
        Some(Self::Exact(bytes))
    }

    /// Whether `actual` satisfies this expectation.
    pub fn matches(&self, actual: &[u8; REGISTER_LEN]) -> bool {
        match self {
            Self::Exact(expected) => expected == actual,
            Self::Any => true,
        }
    }

    /// `any`, or lowercase hex without `0x`.
    pub fn to_text(&self) -> String {
        match self {
            Self::Exact(bytes) => alloy_primitives::hex::encode(bytes),
            Self::Any => ANY.to_owned(),
        }
    }
}

impl fmt::Debug for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl fmt::Display for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl Serialize for Register {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_text())
    }
}

impl<'de> Deserialize<'de> for Register {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text)
            .ok_or_else(|| D::Error::custom(format!("expected 96 hex characters or \"{ANY}\"")))
    }
}

/// The registers of a TD report that a [`TdxMeasurement`] constrains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TdxRegister {
    Mrtd,
    Rtmr0,
    Rtmr1,
    Rtmr2,
    Rtmr3,
    MrConfigId,
}

impl TdxRegister {
    /// In comparison order.
    pub const ALL: [Self; 6] = [
        Self::Mrtd,
        Self::Rtmr0,
        Self::Rtmr1,
        Self::Rtmr2,
        Self::Rtmr3,
        Self::MrConfigId,
    ];

    /// Intel's name, as errors print it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mrtd => "MRTD",
            Self::Rtmr0 => "RTMR0",
            Self::Rtmr1 => "RTMR1",
            Self::Rtmr2 => "RTMR2",
            Self::Rtmr3 => "RTMR3",
            Self::MrConfigId => "MRCONFIGID",
        }
    }

    /// The key in a `tdx` table of the pipelines file.
    pub fn config_key(self) -> &'static str {
        match self {
            Self::Mrtd => "mrtd",
            Self::Rtmr0 => "rtmr0",
            Self::Rtmr1 => "rtmr1",
            Self::Rtmr2 => "rtmr2",
            Self::Rtmr3 => "rtmr3",
            Self::MrConfigId => "mr-config-id",
        }
    }
}

/// The expected registers of a TDX trust domain. Stored in sessions as JSON
/// `{"mrtd": "<96 hex>"|"any", "rtmr0": …, "rtmr1": …, "rtmr2": …, "rtmr3": …, "mrConfigId": …}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TdxMeasurement {
    pub mrtd: Register,
    pub rtmr0: Register,
    pub rtmr1: Register,
    pub rtmr2: Register,
    pub rtmr3: Register,
    pub mr_config_id: Register,
}

impl TdxMeasurement {
    /// Each register's expectation from `f`.
    pub fn from_fn(mut f: impl FnMut(TdxRegister) -> Register) -> Self {
        Self {
            mrtd: f(TdxRegister::Mrtd),
            rtmr0: f(TdxRegister::Rtmr0),
            rtmr1: f(TdxRegister::Rtmr1),
            rtmr2: f(TdxRegister::Rtmr2),
            rtmr3: f(TdxRegister::Rtmr3),
            mr_config_id: f(TdxRegister::MrConfigId),
        }
    }

    pub fn get(&self, register: TdxRegister) -> &Register {
        match register {
            TdxRegister::Mrtd => &self.mrtd,
            TdxRegister::Rtmr0 => &self.rtmr0,
            TdxRegister::Rtmr1 => &self.rtmr1,
            TdxRegister::Rtmr2 => &self.rtmr2,
            TdxRegister::Rtmr3 => &self.rtmr3,
            TdxRegister::MrConfigId => &self.mr_config_id,
        }
    }

    /// Every register with its expectation, in [`TdxRegister::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (TdxRegister, &Register)> {
        TdxRegister::ALL.into_iter().map(|r| (r, self.get(r)))
    }

    /// The first register whose actual value (`actual(register)`) does not satisfy its
    /// expectation, with the expected bytes.
    pub fn first_mismatch(
        &self,
        actual: impl Fn(TdxRegister) -> [u8; REGISTER_LEN],
    ) -> Option<(TdxRegister, [u8; REGISTER_LEN])> {
        self.iter().find_map(|(register, expected)| match expected {
            Register::Exact(bytes) if *bytes != actual(register) => Some((register, *bytes)),
            _ => None,
        })
    }
}

/// The registers shared by every TDX app: the app TD image, given once per pipeline
/// (`[pipelines.app.tdx]`). RTMR3 is the app's own (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TdxAppBase {
    pub mrtd: Register,
    pub rtmr0: Register,
    pub rtmr1: Register,
    pub rtmr2: Register,
    pub mr_config_id: Register,
}

impl TdxAppBase {
    /// The expectation for the app whose on-chain checksum is `checksum`: the base registers and
    /// RTMR3 = [`app_rtmr3`]`(checksum)`.
    pub fn measurement_for(&self, checksum: &B256) -> TdxMeasurement {
        TdxMeasurement {
            mrtd: self.mrtd,
            rtmr0: self.rtmr0,
            rtmr1: self.rtmr1,
            rtmr2: self.rtmr2,
            rtmr3: Register::Exact(app_rtmr3(checksum)),
            mr_config_id: self.mr_config_id,
        }
    }
}

/// One TDX register extension: `SHA-384(current ‖ event)`.
pub fn rtmr_extend(current: &[u8; REGISTER_LEN], event: &[u8; REGISTER_LEN]) -> [u8; REGISTER_LEN] {
    let mut hasher = Sha384::new();
    hasher.update(current);
    hasher.update(event);
    hasher.finalize().into()
}

/// The event an app TD extends RTMR3 with: the app's 32-byte on-chain checksum, then 16 zero
/// bytes.
pub fn app_rtmr3_event(checksum: &B256) -> [u8; REGISTER_LEN] {
    let mut event = [0u8; REGISTER_LEN];
    if let Some(head) = event.get_mut(..32) {
        head.copy_from_slice(checksum.as_slice());
    }
    event
}

/// RTMR3 of an app TD running the app of `checksum`: one extension of the all-zero register
/// with [`app_rtmr3_event`].
pub fn app_rtmr3(checksum: &B256) -> [u8; REGISTER_LEN] {
    rtmr_extend(&[0u8; REGISTER_LEN], &app_rtmr3_event(checksum))
}

/// What the evidence of one enclave service must match.
// One value per release: boxing the TDX registers would save little.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpectedMeasurement {
    /// An SGX enclave (SCONE, Gramine) of this MRENCLAVE. Simulated evidence must claim it.
    Sgx { mr_enclave: [u8; 32] },
    /// A TDX trust domain. A TDX quote must satisfy every register of `registers`; without
    /// registers (none configured for the service) every TDX quote is refused. Simulated
    /// evidence, which has no registers, must claim `fingerprint`: the stage's published
    /// fingerprint (pipeline `fingerprint`, or the app's on-chain checksum).
    Tdx {
        registers: Option<TdxMeasurement>,
        fingerprint: Vec<u8>,
    },
}

impl ExpectedMeasurement {
    /// The value simulated evidence must claim.
    pub fn simulated_claim(&self) -> &[u8] {
        match self {
            Self::Sgx { mr_enclave } => mr_enclave,
            Self::Tdx { fingerprint, .. } => fingerprint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h48(text: &str) -> [u8; REGISTER_LEN] {
        let mut out = [0u8; REGISTER_LEN];
        alloy_primitives::hex::decode_to_slice(text, &mut out).unwrap();
        out
    }

    #[test]
    fn register_text_forms() {
        let hex = "ab".repeat(48);
        assert_eq!(Register::parse(&hex), Some(Register::Exact([0xab; 48])));
        assert_eq!(
            Register::parse(&format!("0x{}", hex.to_uppercase())),
            Some(Register::Exact([0xab; 48]))
        );
        assert_eq!(Register::parse("any"), Some(Register::Any));
        assert_eq!(Register::parse("ANY"), Some(Register::Any));
        for bad in [
            "",
            "anything",
            "*",
            &"ab".repeat(32),
            &"zz".repeat(48),
            "0x",
        ] {
            assert_eq!(Register::parse(bad), None, "{bad}");
        }
        assert_eq!(Register::Exact([0xab; 48]).to_text(), hex);
        assert_eq!(Register::Any.to_text(), "any");
        assert!(Register::Any.matches(&[1; 48]));
        assert!(Register::Exact([1; 48]).matches(&[1; 48]));
        assert!(!Register::Exact([1; 48]).matches(&[2; 48]));
    }

    fn all_exact() -> TdxMeasurement {
        TdxMeasurement {
            mrtd: Register::Exact([1; 48]),
            rtmr0: Register::Exact([2; 48]),
            rtmr1: Register::Exact([3; 48]),
            rtmr2: Register::Exact([4; 48]),
            rtmr3: Register::Exact([5; 48]),
            mr_config_id: Register::Exact([6; 48]),
        }
    }

    fn actual(register: TdxRegister) -> [u8; 48] {
        let index = TdxRegister::ALL
            .iter()
            .position(|r| *r == register)
            .unwrap();
        [index as u8 + 1; 48]
    }

    #[test]
    fn every_register_is_compared_and_any_only_where_written() {
        let m = all_exact();
        assert_eq!(m.first_mismatch(actual), None);
        for register in TdxRegister::ALL {
            let wrong = |r: TdxRegister| if r == register { [0xee; 48] } else { actual(r) };
            let expected = *match m.get(register) {
                Register::Exact(b) => b,
                Register::Any => unreachable!(),
            };
            assert_eq!(
                m.first_mismatch(wrong),
                Some((register, expected)),
                "{register:?}"
            );
        }
        // `any` on RTMR2 only: RTMR2 may differ, RTMR1 may not.
        let mut relaxed = all_exact();
        relaxed.rtmr2 = Register::Any;
        let rtmr2_differs = |r: TdxRegister| {
            if r == TdxRegister::Rtmr2 {
                [0xee; 48]
            } else {
                actual(r)
            }
        };
        assert_eq!(relaxed.first_mismatch(rtmr2_differs), None);
        let rtmr1_differs = |r: TdxRegister| {
            if r == TdxRegister::Rtmr1 {
                [0xee; 48]
            } else {
                actual(r)
            }
        };
        assert_eq!(
            relaxed.first_mismatch(rtmr1_differs).map(|(r, _)| r),
            Some(TdxRegister::Rtmr1)
        );
    }

    #[test]
    fn stored_json_form() {
        let mut m = all_exact();
        m.mr_config_id = Register::Any;
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["mrtd"], "01".repeat(48));
        assert_eq!(json["mrConfigId"], "any");
        let back: TdxMeasurement = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, m);
        let mut short = json.clone();
        short["rtmr1"] = "abcd".into();
        let e = serde_json::from_value::<TdxMeasurement>(short).unwrap_err();
        assert!(e.to_string().contains("96 hex characters"), "{e}");
        let mut missing = json;
        missing.as_object_mut().unwrap().remove("rtmr3");
        assert!(serde_json::from_value::<TdxMeasurement>(missing).is_err());
    }

    // Vectors computed independently: sha384(bytes(48) + checksum + bytes(16)).
    #[test]
    fn app_rtmr3_vectors() {
        let hello: B256 = "0x2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
            .parse()
            .unwrap();
        let event = app_rtmr3_event(&hello);
        assert_eq!(&event[..32], hello.as_slice());
        assert_eq!(&event[32..], &[0u8; 16]);
        assert_eq!(
            app_rtmr3(&hello),
            h48(
                "1c6705b27a8b201940270788032352e420e0037abfc9ed3eed248df2061dbb33532ed678bd12e4b2dcaf0c4dd3131491"
            )
        );
        assert_eq!(
            app_rtmr3(&B256::repeat_byte(0xab)),
            h48(
                "a5da144499d813d3591c52b12a48e28919f5207045f5ba4162035619a521c3bcc99b10109c60adfa6d5471be5927f57b"
            )
        );
        // The zero checksum extends the zero register with 48 zero bytes.
        assert_eq!(
            app_rtmr3(&B256::ZERO),
            h48(
                "f57bb7ed82c6ae4a29e6c9879338c592c7d42a39135583e8ccbe3940f2344b0eb6eb8503db0ffd6a39ddd00cd07d8317"
            )
        );
        // Not the event itself, and a different app gives a different register.
        assert_ne!(app_rtmr3(&hello), event);
        assert_ne!(app_rtmr3(&hello), app_rtmr3(&B256::repeat_byte(0xab)));
    }

    #[test]
    fn app_base_pins_rtmr3_to_the_checksum() {
        let base = TdxAppBase {
            mrtd: Register::Exact([1; 48]),
            rtmr0: Register::Exact([2; 48]),
            rtmr1: Register::Exact([3; 48]),
            rtmr2: Register::Any,
            mr_config_id: Register::Any,
        };
        let checksum = B256::repeat_byte(0xab);
        let m = base.measurement_for(&checksum);
        assert_eq!(m.rtmr3, Register::Exact(app_rtmr3(&checksum)));
        assert_eq!((m.mrtd, m.rtmr2), (base.mrtd, Register::Any));
    }
}
