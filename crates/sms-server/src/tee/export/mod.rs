//! Delivery of sessions to external provisioners in the three upstream formats, over HTTPS
//! with certificate and hostname verification on (a CA file may be added to the trusted roots;
//! a client identity may be presented for mutual TLS).
//!
//! | `--session-export` | body | POST to | success |
//! |---|---|---|---|
//! | `scone-cas` | CAS session YAML ([`scone`]) | `<url>/session` | 201 |
//! | `gramine-sps` | SPS session JSON ([`gramine`]) | `<url>/api/session` | 2xx |
//! | `tdx-storage` | session-storage JSON ([`tdx`]) | `<url>/session` | 2xx |
//!
//! A failed delivery answers `SECURE_SESSION_STORAGE_CALL_FAILED`. Neither bodies sent nor
//! bodies received are logged.

pub mod gramine;
pub mod scone;
pub mod tdx;
pub mod yaml;

use std::path::Path;
use std::time::Duration;

use sms_core::error_chain;
use sms_core::session_plan::SessionPlan;
use sms_core::tag::TeeFramework;
use zeroize::Zeroizing;

use super::args::{SessionExport, TeeArgs};
use scone::SconeAttestation;

/// A configured exporter.
#[derive(Clone, Debug)]
pub struct Exporter {
    kind: SessionExport,
    endpoint: String,
    http: reqwest::Client,
    basic: Option<(String, String)>,
    attestation: SconeAttestation,
}

/// What the exporter posts.
pub struct Payload {
    pub content_type: &'static str,
    pub body: Zeroizing<String>,
}

fn framework_of(kind: SessionExport) -> Option<TeeFramework> {
    match kind {
        SessionExport::None => None,
        SessionExport::SconeCas => Some(TeeFramework::Scone),
        SessionExport::GramineSps => Some(TeeFramework::Gramine),
        SessionExport::TdxStorage => Some(TeeFramework::Tdx),
    }
}

/// Options of [`Exporter::new`].
#[derive(Clone, Debug, Default)]
pub struct ExporterOptions<'a> {
    pub ca_file: Option<&'a Path>,
    pub client_identity: Option<&'a Path>,
    pub basic: Option<(String, String)>,
    pub attestation: SconeAttestation,
    pub timeout: Option<Duration>,
}

impl Exporter {
    /// From the server flags; `Ok(None)` when exports are off.
    pub fn from_args(args: &TeeArgs, framework: TeeFramework) -> Result<Option<Self>, String> {
        if args.session_export == SessionExport::None {
            return Ok(None);
        }
        if framework_of(args.session_export) != Some(framework) {
            return Err(format!(
                "--session-export {:?} does not fit --tee-framework {framework}",
                args.session_export
            ));
        }
        let url = args
            .session_export_url
            .as_deref()
            .ok_or("--session-export needs --session-export-url (SMS_SESSION_EXPORT_URL)")?;
        let attestation = SconeAttestation {
            mode: args.scone_attestation_mode.as_str().to_owned(),
            url: args.scone_attestation_url.clone(),
            tolerate: args.scone_tolerate.clone(),
            ignore_advisories: args.scone_ignore_advisories.clone(),
        };
        if args.session_export == SessionExport::SconeCas
            && attestation.mode == "maa"
            && attestation.url.is_none()
        {
            return Err("--scone-attestation-mode maa needs --scone-attestation-url".into());
        }
        let basic = match (&args.session_export_login, &args.session_export_password) {
            (Some(l), Some(p)) => Some((l.clone(), p.clone())),
            _ => None,
        };
        let options = ExporterOptions {
            ca_file: args.session_export_ca_file.as_deref(),
            client_identity: args.session_export_client_identity.as_deref(),
            basic,
            attestation,
            timeout: None,
        };
        Self::new(args.session_export, url, options).map(Some)
    }

    pub fn new(
        kind: SessionExport,
        url: &str,
        options: ExporterOptions<'_>,
    ) -> Result<Self, String> {
        let base = url.trim().trim_end_matches('/');
        if !base.starts_with("https://") {
            return Err(format!(
                "--session-export-url '{base}' must be an https:// URL"
            ));
        }
        let path = match kind {
            SessionExport::None => return Err("no export kind".into()),
            SessionExport::SconeCas | SessionExport::TdxStorage => "/session",
            SessionExport::GramineSps => "/api/session",
        };
        sms_client::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .connect_timeout(Duration::from_secs(5))
            .timeout(options.timeout.unwrap_or(Duration::from_secs(30)));
        if let Some(path) = options.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("--session-export-ca-file {}: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("--session-export-ca-file {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "--session-export-ca-file {}: no PEM certificate",
                    path.display()
                ));
            }
            builder = builder.tls_certs_merge(certs);
        }
        if let Some(path) = options.client_identity {
            let pem = Zeroizing::new(std::fs::read(path).map_err(|e| {
                format!("--session-export-client-identity {}: {e}", path.display())
            })?);
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| format!("--session-export-client-identity {}: {e}", path.display()))?;
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|e| format!("session export HTTP client: {e}"))?;
        Ok(Self {
            kind,
            endpoint: format!("{base}{path}"),
            http,
            basic: options.basic,
            attestation: options.attestation,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The body of a session in this exporter's format.
    pub fn payload(&self, session_id: &str, plan: &SessionPlan) -> Payload {
        match self.kind {
            SessionExport::SconeCas => Payload {
                content_type: "application/x-yaml",
                body: Zeroizing::new(scone::cas_session_yaml(session_id, plan, &self.attestation)),
            },
            SessionExport::GramineSps => Payload {
                content_type: "application/json",
                body: Zeroizing::new(gramine::sps_session_json(session_id, plan)),
            },
            SessionExport::TdxStorage | SessionExport::None => Payload {
                content_type: "application/json",
                body: Zeroizing::new(tdx::tdx_session_json(session_id, plan)),
            },
        }
    }

    /// Posts the session; an error says why (never with the body).
    pub async fn deliver(&self, session_id: &str, plan: &SessionPlan) -> Result<(), String> {
        let payload = self.payload(session_id, plan);
        self.post(&payload).await
    }

    pub async fn post(&self, payload: &Payload) -> Result<(), String> {
        let mut request = self
            .http
            .post(&self.endpoint)
            .header("Content-Type", payload.content_type)
            .body(payload.body.as_bytes().to_vec());
        if let Some((login, password)) = &self.basic {
            request = request.basic_auth(login, Some(password));
        }
        let response = request.send().await.map_err(|e| {
            let reason = error_chain(&e);
            tracing::warn!(endpoint = %self.endpoint, %reason, "session export failed");
            format!("session export to {} failed: {reason}", self.endpoint)
        })?;
        let status = response.status();
        let ok = match self.kind {
            SessionExport::SconeCas => status == reqwest::StatusCode::CREATED,
            _ => status.is_success(),
        };
        if ok {
            Ok(())
        } else {
            tracing::warn!(endpoint = %self.endpoint, %status, "session export refused");
            Err(format!(
                "session export to {} answered {status}",
                self.endpoint
            ))
        }
    }
}
