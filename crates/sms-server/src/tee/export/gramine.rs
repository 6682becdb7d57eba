//! Gramine SPS session JSON (docs/iexec-compatibility.md §6).
//!
//! `{"session", "enclaves": [{name, mrenclave, command, environment, volumes}]}`. Unlike
//! upstream, which dropped it, the pre-compute enclave is included when the task needs one, so
//! datasets and input files work under Gramine.

use std::collections::BTreeMap;

use serde::Serialize;
use sms_core::session_plan::SessionPlan;

#[derive(Serialize)]
struct Session<'a> {
    session: &'a str,
    enclaves: Vec<Enclave<'a>>,
}

#[derive(Serialize)]
struct Enclave<'a> {
    name: &'a str,
    mrenclave: &'a str,
    command: &'a str,
    environment: BTreeMap<&'a str, &'a str>,
    volumes: Vec<String>,
}

/// The SPS session of a plan, compact JSON.
pub fn sps_session_json(session_id: &str, plan: &SessionPlan) -> String {
    let session = Session {
        session: session_id,
        enclaves: plan
            .enclaves()
            .map(|e| Enclave {
                name: e.role.name(),
                mrenclave: e.measurement.as_hex(),
                command: "",
                environment: e.env.iter_exposed().collect(),
                volumes: Vec::new(),
            })
            .collect(),
    };
    serde_json::to_string(&session).unwrap_or_default()
}
