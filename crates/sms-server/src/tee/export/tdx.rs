//! TDX session-storage JSON (docs/iexec-compatibility.md §6).
//!
//! `{"name", "version": "0.1.0", "services": [{name, image_name, fingerprint, environment}]}`:
//! pre/post take the pipeline image and fingerprint, the app its on-chain multiaddr (docker
//! image) and checksum. The app's fingerprint is its on-chain checksum as upstream sends it,
//! `0x` + lowercase hex; the pipeline fingerprints are lowercase hex as configured.

use std::collections::BTreeMap;

use serde::Serialize;
use sms_core::session_plan::{EnclaveRole, SessionPlan};

pub const TDX_SESSION_VERSION: &str = "0.1.0";

#[derive(Serialize)]
struct Session<'a> {
    name: &'a str,
    version: &'a str,
    services: Vec<Service<'a>>,
}

#[derive(Serialize)]
struct Service<'a> {
    name: &'a str,
    image_name: &'a str,
    fingerprint: String,
    environment: BTreeMap<&'a str, &'a str>,
}

pub fn tdx_session_json(session_id: &str, plan: &SessionPlan) -> String {
    let session = Session {
        name: session_id,
        version: TDX_SESSION_VERSION,
        services: plan
            .enclaves()
            .map(|e| Service {
                name: e.role.name(),
                image_name: &e.image,
                fingerprint: match e.role {
                    EnclaveRole::App => format!("0x{}", e.measurement.as_hex()),
                    _ => e.measurement.as_hex().to_owned(),
                },
                environment: e.env.iter_exposed().collect(),
            })
            .collect(),
    };
    serde_json::to_string(&session).unwrap_or_default()
}
