//! TDX session-storage JSON (reference: SMS behaviour §4.7, "TDX: iExec session storage").
//!
//! `{"name", "version": "0.1.0", "services": [{name, image_name, fingerprint, environment}]}`:
//! pre/post take the pipeline image and fingerprint, the app its on-chain multiaddr (docker
//! image) and checksum. Fingerprints are lowercase hex without `0x`.

use std::collections::BTreeMap;

use serde::Serialize;
use sms_core::session_plan::SessionPlan;

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
    fingerprint: &'a str,
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
                fingerprint: e.measurement.as_hex(),
                environment: e.env.iter_exposed().collect(),
            })
            .collect(),
    };
    serde_json::to_string(&session).unwrap_or_default()
}
