//! TEE challenges and sessions: the scheduler- and worker-facing API (`/tee/*`).
//!
//! - [`challenge`]: one secp256k1 key per task, created once (store insert-once), swept after
//!   the task's final deadline.
//! - [`session`]: `POST /tee/sessions`, every check of the reference in order, the session plan,
//!   the sealed [`sms_core::stored_session::StoredSession`] and the optional export.
//! - [`explain`]: `GET /tee/explain/{taskId}`, the same checks without side effects.
//! - [`export`]: SCONE CAS YAML, Gramine SPS JSON and TDX session-storage JSON builders, and the
//!   HTTPS poster.

pub mod args;
pub mod bulk;
pub mod challenge;
pub mod explain;
pub mod export;
pub mod ipfs;
pub mod session;
pub mod task;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sms_core::clock::Clock;
use sms_core::enclave_config::{Measurement, TeeEnclaveConfiguration};
use sms_core::ledger::AppEntry;
use sms_core::pipeline::{Pipeline, PipelineConfigError, Pipelines, StageConfig, TeeProperties};
use sms_core::tag::TeeFramework;
use sms_store::Store;

use crate::startup::StartupError;
use args::{FrameworkArg, TeeArgs, UPSTREAM_FRAMEWORK_ENV};

/// Image of the built-in dev pre-compute pipeline.
pub const DEV_PRE_COMPUTE_IMAGE: &str = "sms-pre-compute:dev";
/// Image of the built-in dev post-compute pipeline.
pub const DEV_POST_COMPUTE_IMAGE: &str = "sms-post-compute:dev";
/// sha256("sms-dev-pre-compute"): the fixed fingerprint of the dev pre-compute.
pub const DEV_PRE_COMPUTE_FINGERPRINT: &str =
    "a9f181462113751aee0f6485f77358b17266da83c49bfeebc7ca15a47368fd32";
/// sha256("sms-dev-post-compute"): the fixed fingerprint of the dev post-compute.
pub const DEV_POST_COMPUTE_FINGERPRINT: &str =
    "aef4f3cfc77336dd634ddac6bbd7171009c0bd8b2dfdc445bb16af88ec278a02";
pub const DEV_PRE_COMPUTE_ENTRYPOINT: &str = "sms worker pre-compute";
pub const DEV_POST_COMPUTE_ENTRYPOINT: &str = "sms worker post-compute";
/// 1 GiB.
pub const DEV_HEAP_SIZE_BYTES: u64 = 1 << 30;
/// LAS image announced by SCONE properties in --dev when none is configured.
pub const DEV_LAS_IMAGE: &str = "sms-dev-las:dev";
/// Version label of the dev pipeline in the deprecated unversioned properties endpoint.
pub const DEV_PIPELINE_VERSION: &str = "dev";

/// The pipelines this SMS serves.
#[derive(Clone, Debug)]
pub enum PipelineSource {
    /// From `--pipelines`.
    Configured(Pipelines),
    /// `--dev` without a file: one built-in pipeline answering for any version.
    AnyVersion(Box<Pipeline>),
}

fn dev_stage(image: &str, fingerprint: &str, entrypoint: &str) -> Option<StageConfig> {
    Some(StageConfig {
        image: image.to_owned(),
        fingerprint: Measurement::parse(fingerprint, &[32])?,
        entrypoint: entrypoint.to_owned(),
        heap_size_bytes: DEV_HEAP_SIZE_BYTES,
        // No TDX registers: a TDX quote never matches the built-in pipeline (simulated only).
        tdx: None,
    })
}

/// The built-in dev pipeline (the project's own pre/post-compute).
pub fn dev_pipeline(version: &str) -> Option<Pipeline> {
    Some(Pipeline {
        version: version.to_owned(),
        pre_compute: dev_stage(
            DEV_PRE_COMPUTE_IMAGE,
            DEV_PRE_COMPUTE_FINGERPRINT,
            DEV_PRE_COMPUTE_ENTRYPOINT,
        )?,
        post_compute: dev_stage(
            DEV_POST_COMPUTE_IMAGE,
            DEV_POST_COMPUTE_FINGERPRINT,
            DEV_POST_COMPUTE_ENTRYPOINT,
        )?,
        app_tdx: None,
    })
}

impl PipelineSource {
    /// The pipeline of a version (`None`: unknown version).
    pub fn find(&self, version: &str) -> Option<Pipeline> {
        match self {
            Self::Configured(p) => p.find(version).cloned(),
            Self::AnyVersion(template) => Some(Pipeline {
                version: version.to_owned(),
                ..Pipeline::clone(template)
            }),
        }
    }

    pub fn default_pipeline(&self) -> Pipeline {
        match self {
            Self::Configured(p) => p.default_pipeline().clone(),
            Self::AnyVersion(template) => Pipeline::clone(template),
        }
    }

    /// The pipelines a session of `app` is built with.
    pub fn for_app(
        &self,
        framework: TeeFramework,
        app: &AppEntry,
    ) -> Result<Pipelines, PipelineConfigError> {
        match self {
            Self::Configured(p) => Ok(p.clone()),
            Self::AnyVersion(template) => {
                let version = TeeEnclaveConfiguration::from_mrenclave(&app.mrenclave)
                    .ok()
                    .flatten()
                    .and_then(|c| c.version)
                    .filter(|v| !v.trim().is_empty())
                    .unwrap_or_else(|| template.version.clone());
                Pipelines::single(
                    framework,
                    Pipeline {
                        version,
                        ..Pipeline::clone(template)
                    },
                )
            }
        }
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Everything the `/tee/*` handlers need besides the store and the ledger.
pub struct TeeState {
    /// False outside `--dev` when no framework is configured: the `/tee/*` routes are not
    /// served (the fields below then hold unused dev defaults).
    pub enabled: bool,
    pub framework: TeeFramework,
    pub pipelines: PipelineSource,
    pub las_image: Option<String>,
    pub session_ttl: Duration,
    configured_provisioning_url: Option<String>,
    public_url: OnceLock<String>,
    pub exporter: Option<export::Exporter>,
    /// `--ipfs-gateway`: where bulk documents are read; `None` refuses bulk tasks.
    pub ipfs: Option<ipfs::IpfsGateway>,
    _sweeper: AbortOnDrop,
}

impl std::fmt::Debug for TeeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeeState")
            .field("framework", &self.framework)
            .finish_non_exhaustive()
    }
}

/// The served framework; `None` when none is configured outside `--dev`.
fn framework_from(
    arg: Option<FrameworkArg>,
    dev: bool,
) -> Result<Option<TeeFramework>, StartupError> {
    if let Some(a) = arg {
        return Ok(Some(match a {
            FrameworkArg::Scone => TeeFramework::Scone,
            FrameworkArg::Gramine => TeeFramework::Gramine,
            FrameworkArg::Tdx => TeeFramework::Tdx,
        }));
    }
    match std::env::var(UPSTREAM_FRAMEWORK_ENV) {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .parse::<TeeFramework>()
            .map(Some)
            .map_err(|e| StartupError::Config(format!("{UPSTREAM_FRAMEWORK_ENV}: {e}"))),
        _ if dev => Ok(Some(TeeFramework::Scone)),
        _ => Ok(None),
    }
}

fn trim_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

/// `host:port` of a URL: scheme, path and credentials dropped; the scheme's default port made
/// explicit (443 for https, 80 for http) because an enclave runtime needs one.
fn host_port(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let has_port = !authority.ends_with(']')
        && authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    if has_port || authority.is_empty() {
        authority.to_owned()
    } else {
        let port = if scheme.eq_ignore_ascii_case("http") {
            80
        } else {
            443
        };
        format!("{authority}:{port}")
    }
}

impl TeeState {
    /// Validates the TEE configuration and starts the challenge sweep. A bad pipelines file
    /// stops the start-up with a message naming the field.
    pub fn build(
        args: &TeeArgs,
        dev: bool,
        store: Store,
        clock: Clock,
    ) -> Result<Arc<Self>, StartupError> {
        let Some(framework) = framework_from(args.tee_framework, dev)? else {
            tracing::warn!(
                "no --tee-framework (SMS_TEE_FRAMEWORK or IEXEC_SMS_TEE_RUNTIME_FRAMEWORK): the /tee API is not served"
            );
            return Self::disabled(args, store, clock);
        };
        let pipelines = match &args.pipelines {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    StartupError::Config(format!("--pipelines {}: {e}", path.display()))
                })?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let list = Pipelines::from_file_contents(&name, &text, framework).map_err(|e| {
                    StartupError::Config(format!("--pipelines {}: {e}", path.display()))
                })?;
                PipelineSource::Configured(list)
            }
            None if dev => PipelineSource::AnyVersion(Box::new(
                dev_pipeline(DEV_PIPELINE_VERSION).ok_or_else(|| {
                    StartupError::Config("built-in dev pipeline is invalid".into())
                })?,
            )),
            None => {
                return Err(StartupError::Config(
                    "--pipelines <file> (SMS_PIPELINES) is required outside --dev; see docs/tee-sessions.md".into(),
                ));
            }
        };
        let las_image = match (&args.las_image, framework) {
            (Some(l), _) if !l.trim().is_empty() => Some(l.trim().to_owned()),
            (_, TeeFramework::Scone) if dev => Some(DEV_LAS_IMAGE.to_owned()),
            (_, TeeFramework::Scone) => {
                return Err(StartupError::Config(
                    "--las-image (SMS_LAS_IMAGE) is required for SCONE".into(),
                ));
            }
            _ => None,
        };
        let exporter =
            export::Exporter::from_args(args, framework).map_err(StartupError::Config)?;
        let ipfs = ipfs::IpfsGateway::from_args(args).map_err(StartupError::Config)?;
        let sweeper = challenge::spawn_sweeper(store, args.challenge_sweep_interval, clock);
        Ok(Arc::new(Self {
            enabled: true,
            framework,
            pipelines,
            las_image,
            session_ttl: args.session_ttl,
            configured_provisioning_url: args.secret_provisioning_url.as_deref().map(trim_url),
            public_url: args
                .public_url
                .as_deref()
                .map(|u| OnceLock::from(trim_url(u)))
                .unwrap_or_default(),
            exporter,
            ipfs,
            _sweeper: AbortOnDrop(sweeper),
        }))
    }

    fn disabled(args: &TeeArgs, store: Store, clock: Clock) -> Result<Arc<Self>, StartupError> {
        let pipeline = dev_pipeline(DEV_PIPELINE_VERSION)
            .ok_or_else(|| StartupError::Config("built-in dev pipeline is invalid".into()))?;
        Ok(Arc::new(Self {
            enabled: false,
            framework: TeeFramework::Scone,
            pipelines: PipelineSource::AnyVersion(Box::new(pipeline)),
            las_image: None,
            session_ttl: args.session_ttl,
            configured_provisioning_url: None,
            public_url: OnceLock::new(),
            exporter: None,
            ipfs: None,
            _sweeper: AbortOnDrop(challenge::spawn_sweeper(
                store,
                args.challenge_sweep_interval,
                clock,
            )),
        }))
    }

    /// The public base URL (`--public-url`, else the URL the server listens on).
    pub fn public_url(&self) -> String {
        self.public_url.get().cloned().unwrap_or_default()
    }

    /// Called once the listener is bound: the default public URL.
    pub fn set_listen_url(&self, url: &str) {
        let _ = self.public_url.set(trim_url(url));
    }

    /// `secretProvisioningUrl` of session answers, as upstream shapes it per framework: SCONE
    /// and Gramine answer the `host:port` of the attestation endpoint (the worker hands it to
    /// the enclave runtime as `SCONE_CAS_ADDR` or the SPS address, without a scheme); TDX
    /// answers a full URL. A configured `--secret-provisioning-url` is answered verbatim.
    pub fn provisioning_url(&self) -> String {
        if let Some(configured) = &self.configured_provisioning_url {
            return configured.clone();
        }
        let public = self.public_url.get().cloned().unwrap_or_default();
        match self.framework {
            TeeFramework::Scone | TeeFramework::Gramine => host_port(&public),
            TeeFramework::Tdx => public,
        }
    }

    /// `/tee/properties` of one pipeline.
    pub fn properties(&self, pipeline: &Pipeline) -> Option<TeeProperties> {
        TeeProperties::new(self.framework, pipeline, self.las_image.as_deref()).ok()
    }
}

#[cfg(test)]
mod host_port_tests {
    use super::host_port;

    #[test]
    fn drops_the_scheme_and_path_and_keeps_or_adds_the_port() {
        assert_eq!(host_port("https://sms.example:8443/x"), "sms.example:8443");
        assert_eq!(host_port("https://sms.example"), "sms.example:443");
        assert_eq!(host_port("http://127.0.0.1:13300"), "127.0.0.1:13300");
        assert_eq!(host_port("http://user:pw@host"), "host:80");
        assert_eq!(host_port("https://[::1]:9000/"), "[::1]:9000");
        assert_eq!(host_port("https://[::1]"), "[::1]:443");
    }
}
