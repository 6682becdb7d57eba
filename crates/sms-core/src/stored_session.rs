//! The form in which a TEE session is kept for the built-in attested provisioner: what each
//! enclave service of the task may receive, and the measurement it must prove.
//!
//! Sessions are stored sealed like any secret, under `RecordKey("tee-session", "", <id>)`,
//! with an expiry. Serialised as JSON; environment values are secrets: the type has no
//! `Debug` that shows them.

use std::collections::BTreeMap;
use std::fmt;

use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::enclave_config::Measurement;
use crate::measurement::{ExpectedMeasurement, TdxMeasurement};
use crate::session_plan::{EnclaveRole, SessionPlan};
use crate::tag::TeeFramework;

#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StoredService {
    /// Stored as `"name"`: `pre-compute`, `app` or `post-compute`.
    #[serde(rename = "name")]
    pub role: EnclaveRole,
    /// Expected measurement, stored as lowercase hex without 0x: MRENCLAVE for SGX; for TDX the
    /// stage's published fingerprint (pipeline fingerprint, app checksum), which only simulated
    /// evidence is compared with.
    pub measurement: Measurement,
    /// TDX: the registers a TDX quote must satisfy. Absent for SGX frameworks, and in TDX
    /// sessions stored before registers were checked or built without them (`--dev` built-in
    /// pipeline): such a service refuses every TDX quote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdx: Option<TdxMeasurement>,
    pub command: Option<String>,
    pub env: BTreeMap<String, String>,
}

impl StoredService {
    /// What this service's evidence must match in a session of `framework`.
    pub fn expected_measurement(
        &self,
        framework: TeeFramework,
    ) -> Result<ExpectedMeasurement, String> {
        let bytes = self.measurement.to_bytes();
        match framework {
            TeeFramework::Scone | TeeFramework::Gramine => {
                if self.tdx.is_some() {
                    return Err(format!("TDX registers in a {framework} service"));
                }
                let mr_enclave = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                    format!(
                        "measurement: expected 64 hex characters (MRENCLAVE), got {} bytes",
                        bytes.len()
                    )
                })?;
                Ok(ExpectedMeasurement::Sgx { mr_enclave })
            }
            TeeFramework::Tdx => Ok(ExpectedMeasurement::Tdx {
                registers: self.tdx.clone(),
                fingerprint: bytes,
            }),
        }
    }
}

impl Drop for StoredService {
    fn drop(&mut self) {
        for value in self.env.values_mut() {
            value.zeroize();
        }
    }
}

impl fmt::Debug for StoredService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredService")
            .field("role", &self.role)
            .field("measurement", &self.measurement)
            .field("tdx", &self.tdx)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StoredSession {
    pub session_id: String,
    pub task_id: B256,
    pub framework: TeeFramework,
    pub worker: Address,
    /// Unix seconds after which nothing is released.
    pub expires_at: u64,
    pub services: Vec<StoredService>,
}

impl StoredSession {
    pub fn from_plan(
        session_id: String,
        plan: &SessionPlan,
        worker: Address,
        expires_at: u64,
    ) -> Self {
        let services = plan
            .enclaves()
            .map(|e| StoredService {
                role: e.role,
                measurement: e.measurement.clone(),
                tdx: e.tdx.clone(),
                command: e.command.clone(),
                env: e
                    .env
                    .iter_exposed()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            })
            .collect();
        Self {
            session_id,
            task_id: plan.task_id,
            framework: plan.framework,
            worker,
            expires_at,
            services,
        }
    }

    pub fn service(&self, role: EnclaveRole) -> Option<&StoredService> {
        self.services.iter().find(|s| s.role == role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measurement::Register;

    fn service(measurement: &str, tdx: Option<TdxMeasurement>) -> StoredService {
        StoredService {
            role: EnclaveRole::App,
            measurement: Measurement::from_hex(measurement).unwrap(),
            tdx,
            command: None,
            env: BTreeMap::new(),
        }
    }

    fn registers() -> TdxMeasurement {
        TdxMeasurement::from_fn(|_| Register::Exact([7; 48]))
    }

    #[test]
    fn expectation_follows_the_framework() {
        let sgx = service(&"ab".repeat(32), None);
        assert_eq!(
            sgx.expected_measurement(TeeFramework::Scone),
            Ok(ExpectedMeasurement::Sgx {
                mr_enclave: [0xab; 32]
            })
        );
        assert!(sgx.expected_measurement(TeeFramework::Gramine).is_ok());
        let tdx = service(&"ab".repeat(32), Some(registers()));
        assert_eq!(
            tdx.expected_measurement(TeeFramework::Tdx),
            Ok(ExpectedMeasurement::Tdx {
                registers: Some(registers()),
                fingerprint: vec![0xab; 32],
            })
        );
        // Registers in an SGX session, or a 48-byte MRENCLAVE: the stored session is wrong.
        assert!(tdx.expected_measurement(TeeFramework::Scone).is_err());
        let e = service(&"ab".repeat(48), None)
            .expected_measurement(TeeFramework::Gramine)
            .unwrap_err();
        assert!(e.contains("64 hex characters"), "{e}");
        // A measurement that is not hex: the stored session does not decode.
        let bad = r#"{"name":"app","measurement":"zz","command":null,"env":{}}"#;
        assert!(serde_json::from_str::<StoredService>(bad).is_err());
    }

    /// A session record as the store holds it today: it decodes into the typed fields and is
    /// written back byte for byte.
    #[test]
    fn a_stored_session_in_todays_json_reads_and_writes_back_the_same() {
        let task = format!("0x{}", "07".repeat(32));
        let worker = format!("0x{}", "09".repeat(20));
        let (pre, app) = ("aa".repeat(32), "ab".repeat(32));
        let json = format!(
            r#"{{"sessionId":"s-1","taskId":"{task}","framework":"SCONE","worker":"{worker}","expiresAt":1751328000,"services":[{{"name":"pre-compute","measurement":"{pre}","command":null,"env":{{"IEXEC_TASK_ID":"0x07"}}}},{{"name":"app","measurement":"{app}","command":"python3 /app/main.py","env":{{}}}}]}}"#
        );
        let session: StoredSession = serde_json::from_str(&json).unwrap();
        assert_eq!(session.task_id, B256::repeat_byte(7));
        assert_eq!(session.worker, Address::repeat_byte(9));
        let roles: Vec<EnclaveRole> = session.services.iter().map(|s| s.role).collect();
        assert_eq!(roles, [EnclaveRole::PreCompute, EnclaveRole::App]);
        let app_service = session.service(EnclaveRole::App).unwrap();
        assert_eq!(app_service.measurement.to_bytes(), vec![0xab; 32]);
        assert!(session.service(EnclaveRole::PostCompute).is_none());
        assert_eq!(serde_json::to_string(&session).unwrap(), json);
        // A service name no enclave has: the record is refused, not read as another service.
        let unknown = json.replace(r#""name":"app""#, r#""name":"worker""#);
        assert!(serde_json::from_str::<StoredSession>(&unknown).is_err());
    }

    #[test]
    fn sessions_stored_without_registers_still_decode() {
        let old = r#"{"name":"pre-compute","measurement":"abcd","command":null,"env":{"A":"1"}}"#;
        let s: StoredService = serde_json::from_str(old).unwrap();
        assert_eq!(s.tdx, None);
        // And write no `tdx` key when there is none, so older readers decode new SGX sessions.
        assert!(!serde_json::to_string(&s).unwrap().contains("tdx"));
        let with = service("abcd", Some(registers()));
        let json = serde_json::to_string(&with).unwrap();
        assert!(json.contains(r#""tdx":{"mrtd":""#), "{json}");
        assert_eq!(serde_json::from_str::<StoredService>(&json).unwrap(), with);
    }
}
