//! SCONE CAS session YAML (docs/iexec-compatibility.md §6).
//!
//! Services in order pre-compute (when present), app, post-compute; each pins its measurement
//! in `mrenclaves`, runs its command from `/` and receives its environment. The legacy Java
//! library-path variables upstream adds to pre/post are not emitted: the project's own
//! pre/post-compute are not Java programs.

use sms_core::session_plan::{EnclaveRole, EnclaveSession, SessionPlan};

use super::yaml::Yaml;

/// CAS session format version.
pub const CAS_SESSION_VERSION: &str = "0.3.10";

/// The `security.attestation` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SconeAttestation {
    /// `hardware` or `maa`.
    pub mode: String,
    pub url: Option<String>,
    pub tolerate: Vec<String>,
    pub ignore_advisories: Vec<String>,
}

fn image_name(role: EnclaveRole) -> String {
    format!("{}-image", role.name())
}

fn volumes_of(role: EnclaveRole) -> &'static [(&'static str, &'static str)] {
    match role {
        EnclaveRole::PreCompute => &[("iexec_in", "/iexec_in")],
        EnclaveRole::App => &[("iexec_in", "/iexec_in"), ("iexec_out", "/iexec_out")],
        EnclaveRole::PostCompute => &[
            ("iexec_out", "/iexec_out"),
            ("post-compute-tmp", "/post-compute-tmp"),
        ],
    }
}

fn service(e: &EnclaveSession) -> Yaml {
    let env = Yaml::Map(
        e.env
            .iter_exposed()
            .map(|(k, v)| (k.to_owned(), Yaml::str(v)))
            .collect(),
    );
    Yaml::map([
        ("name", Yaml::str(e.role.name())),
        ("image_name", Yaml::str(image_name(e.role))),
        ("mrenclaves", Yaml::seq([Yaml::str(e.measurement.as_hex())])),
        ("pwd", Yaml::str("/")),
        ("command", Yaml::str(e.command.clone().unwrap_or_default())),
        ("environment", env),
    ])
}

fn image(role: EnclaveRole) -> Yaml {
    let volumes = volumes_of(role)
        .iter()
        .map(|(name, path)| Yaml::map([("name", Yaml::str(*name)), ("path", Yaml::str(*path))]));
    Yaml::map([
        ("name", Yaml::str(image_name(role))),
        ("volumes", Yaml::seq(volumes)),
    ])
}

fn list(items: &[String]) -> Yaml {
    Yaml::seq(items.iter().map(Yaml::str))
}

/// The CAS session document of a plan.
pub fn cas_session_yaml(
    session_id: &str,
    plan: &SessionPlan,
    attestation: &SconeAttestation,
) -> String {
    let enclaves: Vec<&EnclaveSession> = plan.enclaves().collect();
    let doc = Yaml::map([
        ("name", Yaml::str(session_id)),
        ("version", Yaml::str(CAS_SESSION_VERSION)),
        (
            "access_policy",
            Yaml::map([
                ("read", Yaml::seq([Yaml::str("CREATOR")])),
                ("update", Yaml::seq([Yaml::str("NONE")])),
            ]),
        ),
        ("services", Yaml::seq(enclaves.iter().map(|e| service(e)))),
        ("images", Yaml::seq(enclaves.iter().map(|e| image(e.role)))),
        (
            "volumes",
            Yaml::seq(
                ["iexec_in", "iexec_out", "post-compute-tmp"]
                    .map(|v| Yaml::map([("name", Yaml::str(v))])),
            ),
        ),
        (
            "security",
            Yaml::map([(
                "attestation",
                Yaml::map([
                    ("tolerate", list(&attestation.tolerate)),
                    ("ignore_advisories", list(&attestation.ignore_advisories)),
                    ("mode", Yaml::str(attestation.mode.clone())),
                    (
                        "url",
                        attestation.url.clone().map(Yaml::Str).unwrap_or(Yaml::Null),
                    ),
                ]),
            )]),
        ),
    ]);
    doc.to_document()
}
