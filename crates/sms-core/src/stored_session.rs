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

use crate::session_plan::{EnclaveRole, SessionPlan};
use crate::tag::TeeFramework;

/// Store namespace of provisioning sessions.
pub const SESSION_NAMESPACE: &str = "tee-session";

#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StoredService {
    /// `pre-compute`, `app` or `post-compute`.
    pub name: String,
    /// Expected measurement, lowercase hex without 0x (MRENCLAVE for SGX; for TDX the value
    /// the session pins, see docs).
    pub measurement: String,
    pub command: Option<String>,
    pub env: BTreeMap<String, String>,
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
            .field("name", &self.name)
            .field("measurement", &self.measurement)
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
                name: e.role.name().to_owned(),
                measurement: e.measurement.as_hex().to_owned(),
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
        self.services.iter().find(|s| s.name == role.name())
    }
}
