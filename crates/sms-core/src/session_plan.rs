//! What a TEE session delivers to each enclave of a task, computed without I/O
//! (docs/iexec-compatibility.md §4, §5; reference: client §11).
//!
//! The server works in two steps:
//!
//! 1. [`secrets_needed`] lists, from the deal, its parsed params and the worker address, every
//!    stored secret the session may use ([`SecretsNeeded`]). The server reads those it has into a
//!    [`SecretValues`] map (absent ones are simply left out), and gets or creates the task's
//!    enclave challenge key.
//! 2. [`build_session_plan`] builds the environment and the expected measurement of each enclave
//!    (pre-compute only when the task has a dataset, input files or a bulk CID; app;
//!    post-compute), or the session error code to answer with.
//!
//! Upstream rules reproduced: `IEXEC_APP_DEVELOPER_SECRET` and `IEXEC_APP_DEVELOPER_SECRET_1`;
//! `IEXEC_REQUESTER_SECRET_<k>` for each `iexec_secrets` key that is a positive integer (suffix
//! as written, so `"01"` gives `_01`), a name used at several positions filling each of them;
//! sign tokens in pre- and post-compute only; booleans `"true"`/`"false"`; web2 values trimmed,
//! dataset keys and compute secrets delivered byte for byte; the storage fallbacks (callback →
//! empty; dropbox → requester's dropbox token; otherwise the worker's IPFS token, else the
//! requester's; proxy = params proxy, else the pool owner's proxy URL secret, else empty).
//!
//! Deliberate differences from upstream, each reported in [`SessionPlan::warnings`] or as an error:
//! * an `iexec_secrets` key that is not a positive integer is never emitted (upstream emitted it
//!   when its name also appeared at a valid position);
//! * a blank worker IPFS token falls back to the requester's (upstream used the blank one and
//!   failed);
//! * the deal framework must be the one this SMS serves
//!   (`EXECUTION_NOT_AUTHORIZED_TEE_FRAMEWORK_MISMATCH`), the enclave challenge key must be the
//!   one of `enclaveChallenge` (`EXECUTION_NOT_AUTHORIZED_ENCLAVE_CHALLENGE_MISMATCH`), and an
//!   app enclave configuration of another framework is invalid;
//! * bulk processing (`bulk_cid`, docs/bulk-processing.md): the server checks the slice's
//!   orders and hands them over as [`SessionInputs::bulk`]; without it (no IPFS gateway) the
//!   plan answers `PRE_COMPUTE_BULK_PROCESSING_NOT_SUPPORTED`.
//!
//! Every secret value is held in zeroizing memory and is redacted from `Debug` output.

use std::collections::BTreeSet;

use alloy_primitives::{Address, B256};
use zeroize::Zeroizing;

use crate::bulk::BulkSlice;
use crate::deal_params::{DealParams, STORAGE_DROPBOX};
use crate::enclave_config::{
    ENV_SCONE_FSPF_KEY, ENV_SCONE_FSPF_TAG, Measurement, TeeEnclaveConfiguration,
};
pub use crate::enclave_env::{EnclaveEnv, SecretValues};
use crate::hex::encode_prefixed;
use crate::ledger::{AppEntry, DatasetEntry, Deal};
use crate::measurement::TdxMeasurement;
use crate::pipeline::{Pipeline, Pipelines};
use crate::secret::{RequesterSecretName, SecretId, SecretValue};
use crate::tag::TeeFramework;
use crate::tee_error::{SessionError, TeeSessionGenerationError as E};

// Web2 secret names.
pub const WEB2_RESULT_ENCRYPTION_PUBLIC_KEY: &str = "iexec-result-encryption-public-key";
pub const WEB2_DROPBOX_TOKEN: &str = "iexec-result-dropbox-token";
pub const WEB2_IPFS_TOKEN: &str = "iexec-result-iexec-ipfs-token";
pub const WEB2_RESULT_PROXY_URL: &str = "iexec-result-iexec-result-proxy-url";

// Environment variable names.
pub const IEXEC_TASK_ID: &str = "IEXEC_TASK_ID";
pub const IEXEC_DEAL_ID: &str = "IEXEC_DEAL_ID";
pub const IEXEC_TASK_INDEX: &str = "IEXEC_TASK_INDEX";
pub const IEXEC_PRE_COMPUTE_OUT: &str = "IEXEC_PRE_COMPUTE_OUT";
pub const IS_DATASET_REQUIRED: &str = "IS_DATASET_REQUIRED";
pub const IEXEC_DATASET_KEY: &str = "IEXEC_DATASET_KEY";
pub const IEXEC_DATASET_URL: &str = "IEXEC_DATASET_URL";
pub const IEXEC_DATASET_FILENAME: &str = "IEXEC_DATASET_FILENAME";
pub const IEXEC_DATASET_CHECKSUM: &str = "IEXEC_DATASET_CHECKSUM";
pub const IEXEC_DATASET_ADDRESS: &str = "IEXEC_DATASET_ADDRESS";
pub const IEXEC_INPUT_FILES_NUMBER: &str = "IEXEC_INPUT_FILES_NUMBER";
pub const IEXEC_INPUT_FILES_FOLDER: &str = "IEXEC_INPUT_FILES_FOLDER";
/// Followed by the 1-based index.
pub const IEXEC_INPUT_FILE_URL_PREFIX: &str = "IEXEC_INPUT_FILE_URL_";
/// Followed by the 1-based index.
pub const IEXEC_INPUT_FILE_NAME_PREFIX: &str = "IEXEC_INPUT_FILE_NAME_";
pub const IEXEC_IN: &str = "IEXEC_IN";
pub const IEXEC_OUT: &str = "IEXEC_OUT";
pub const IEXEC_BOT_SIZE: &str = "IEXEC_BOT_SIZE";
pub const IEXEC_BOT_FIRST_INDEX: &str = "IEXEC_BOT_FIRST_INDEX";
pub const IEXEC_BOT_TASK_INDEX: &str = "IEXEC_BOT_TASK_INDEX";
pub const IEXEC_APP_DEVELOPER_SECRET: &str = "IEXEC_APP_DEVELOPER_SECRET";
pub const IEXEC_APP_DEVELOPER_SECRET_1: &str = "IEXEC_APP_DEVELOPER_SECRET_1";
/// Followed by the `iexec_secrets` key as written.
pub const IEXEC_REQUESTER_SECRET_PREFIX: &str = "IEXEC_REQUESTER_SECRET_";
pub const SIGN_WORKER_ADDRESS: &str = "SIGN_WORKER_ADDRESS";
pub const SIGN_TEE_CHALLENGE_PRIVATE_KEY: &str = "SIGN_TEE_CHALLENGE_PRIVATE_KEY";
pub const RESULT_ENCRYPTION: &str = "RESULT_ENCRYPTION";
pub const RESULT_ENCRYPTION_PUBLIC_KEY: &str = "RESULT_ENCRYPTION_PUBLIC_KEY";
pub const RESULT_STORAGE_CALLBACK: &str = "RESULT_STORAGE_CALLBACK";
pub const RESULT_STORAGE_PROVIDER: &str = "RESULT_STORAGE_PROVIDER";
pub const RESULT_STORAGE_PROXY: &str = "RESULT_STORAGE_PROXY";
pub const RESULT_STORAGE_TOKEN: &str = "RESULT_STORAGE_TOKEN";

/// Mount points inside the enclaves.
pub const IEXEC_IN_DIR: &str = "/iexec_in";
pub const IEXEC_OUT_DIR: &str = "/iexec_out";

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/// The task a session is requested for.
#[derive(Clone, Copy, Debug)]
pub struct TaskInput<'a> {
    pub task_id: B256,
    pub task_index: u64,
    pub deal: &'a Deal,
    /// `deal.params` parsed with [`crate::deal_params::parse`].
    pub params: &'a DealParams,
    /// `workerWallet` of the authorization.
    pub worker: Address,
}

/// The stored secrets a session may use. Absent secrets are not an error here: the builder
/// decides which absences are fatal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretsNeeded {
    /// Web3 secret of the deal's dataset.
    pub dataset_key: Option<SecretId>,
    pub app_developer: SecretId,
    /// One per distinct valid name referenced at a valid `iexec_secrets` position.
    pub requester: Vec<SecretId>,
    /// Result encryption key, storage tokens, proxy URL.
    pub web2: Vec<SecretId>,
    /// Keys of the valid datasets of a bulk slice ([`BulkSlice::secrets_needed`]), added by the
    /// server once it has checked the slice.
    pub bulk_dataset_keys: Vec<SecretId>,
}

impl SecretsNeeded {
    pub fn all(&self) -> Vec<SecretId> {
        let mut all: Vec<SecretId> = self.dataset_key.iter().cloned().collect();
        all.push(self.app_developer.clone());
        all.extend(self.requester.iter().cloned());
        all.extend(self.web2.iter().cloned());
        all.extend(self.bulk_dataset_keys.iter().cloned());
        all
    }
}

/// `^[0-9]+$` with a value in `1..=i32::MAX` (the upstream `Integer.parseInt(k) > 0`, without the
/// sign characters it also accepted).
fn is_valid_position(key: &str) -> bool {
    !key.is_empty()
        && key.bytes().all(|b| b.is_ascii_digit())
        && key.parse::<i32>().is_ok_and(|n| n > 0)
}

fn web2(owner: Address, name: &str) -> Option<SecretId> {
    SecretId::web2(owner, name).ok()
}

fn requester_names(params: &DealParams) -> BTreeSet<&str> {
    params
        .iexec_secrets
        .iter()
        .filter(|(k, _)| is_valid_position(k))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Step 1: every secret the session may read.
pub fn secrets_needed(task: &TaskInput<'_>) -> SecretsNeeded {
    let deal = task.deal;
    let params = task.params;
    let requester = requester_names(params)
        .into_iter()
        .filter_map(|n| RequesterSecretName::parse(n).ok())
        .map(|n| SecretId::requester(deal.requester, &n))
        .collect();
    let mut web2_ids = Vec::new();
    if params.iexec_result_encryption {
        web2_ids.extend(web2(deal.beneficiary, WEB2_RESULT_ENCRYPTION_PUBLIC_KEY));
    }
    if !deal.has_callback() {
        if params.iexec_result_storage_provider.as_deref() == Some(STORAGE_DROPBOX) {
            web2_ids.extend(web2(deal.requester, WEB2_DROPBOX_TOKEN));
        } else {
            web2_ids.extend(web2(task.worker, WEB2_IPFS_TOKEN));
            web2_ids.extend(web2(deal.requester, WEB2_IPFS_TOKEN));
            if params.iexec_result_storage_proxy.is_none() {
                web2_ids.extend(web2(deal.workerpool.owner, WEB2_RESULT_PROXY_URL));
            }
        }
    }
    SecretsNeeded {
        dataset_key: deal
            .has_dataset()
            .then(|| SecretId::web3(deal.dataset.pointer)),
        app_developer: SecretId::app_developer(deal.app.pointer),
        requester,
        web2: web2_ids,
        bulk_dataset_keys: Vec::new(),
    }
}

/// Everything [`build_session_plan`] reads.
#[derive(Clone, Copy, Debug)]
pub struct SessionInputs<'a> {
    pub task: TaskInput<'a>,
    /// The framework this SMS serves.
    pub sms_framework: TeeFramework,
    /// Registry entry of `deal.app.pointer`.
    pub app: &'a AppEntry,
    /// Registry entry of `deal.dataset.pointer`, when the deal has a dataset.
    pub dataset: Option<&'a DatasetEntry>,
    pub pipelines: &'a Pipelines,
    /// `enclaveChallenge` of the authorization.
    pub enclave_challenge: Address,
    /// The private key of the challenge this SMS issued for the task (32 raw bytes, or its hex
    /// text with or without `0x`), `None` when no challenge exists.
    pub challenge_private_key: Option<&'a SecretValue>,
    pub secrets: &'a SecretValues,
    /// The checked slice of a bulk deal (`bulk_cid`), read by the server from IPFS; its valid
    /// datasets' keys are in `secrets`. `None` when the deal has no `bulk_cid`, or when this
    /// server cannot read IPFS.
    pub bulk: Option<&'a BulkSlice>,
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// An enclave of a task; its [`name`](Self::name) is its service name in sessions, in stored
/// sessions (`"name"`) and in `/tee/provisioning/{session}/{service}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnclaveRole {
    PreCompute,
    App,
    PostCompute,
}

impl EnclaveRole {
    pub const ALL: [Self; 3] = [Self::PreCompute, Self::App, Self::PostCompute];

    /// The role whose [`name`](Self::name) is `name` exactly.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.name() == name)
    }

    /// The service name in provisioner sessions (`SCONE_CONFIG_ID=<session>/<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Self::PreCompute => "pre-compute",
            Self::App => "app",
            Self::PostCompute => "post-compute",
        }
    }
}

/// One enclave of the session.
#[derive(Debug)]
pub struct EnclaveSession {
    pub role: EnclaveRole,
    /// Pipeline image for pre/post; the app's on-chain multiaddr (docker image) for the app.
    pub image: String,
    /// The measurement the provisioner must pin: pipeline fingerprint for pre/post; the app
    /// enclave configuration fingerprint (SGX) or the app checksum (TDX) for the app. For TDX
    /// this is the published fingerprint (exporters, simulated evidence); quotes are compared
    /// with [`tdx`](Self::tdx).
    pub measurement: Measurement,
    /// TDX: the registers the enclave's TD must prove: the stage's `tdx` table for pre/post;
    /// for the app, the pipeline's app TD image with RTMR3 derived from the app checksum
    /// ([`crate::measurement::app_rtmr3`]). `None` for SGX frameworks and for a TDX pipeline
    /// without registers (`--dev` built-in), which no TDX quote can match.
    pub tdx: Option<TdxMeasurement>,
    /// Pre/post: the pipeline entrypoint. App: the configured entrypoint followed by
    /// `" " + iexec_args` when the args are not blank; `None` without an entrypoint.
    pub command: Option<String>,
    pub heap_size_bytes: Option<u64>,
    pub env: EnclaveEnv,
}

#[derive(Debug)]
pub struct SessionPlan {
    pub task_id: B256,
    pub framework: TeeFramework,
    pub pipeline_version: String,
    pub pre_compute: Option<EnclaveSession>,
    pub app: EnclaveSession,
    pub post_compute: EnclaveSession,
    /// Things the server should log (never secret values).
    pub warnings: Vec<String>,
}

impl SessionPlan {
    /// The enclaves in session order: pre-compute (if any), app, post-compute.
    pub fn enclaves(&self) -> impl Iterator<Item = &EnclaveSession> {
        self.pre_compute
            .iter()
            .chain([&self.app, &self.post_compute])
    }
}

// ---------------------------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------------------------

fn err(code: E, detail: impl Into<String>) -> SessionError {
    SessionError::new(code, detail)
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// Secret bytes as text (invalid UTF-8 replaced, as the upstream string conversion does).
fn secret_text(v: &SecretValue) -> Zeroizing<String> {
    Zeroizing::new(String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// A web2 value, trimmed; `None` when absent or blank.
fn web2_value(secrets: &SecretValues, owner: Address, name: &str) -> Option<Zeroizing<String>> {
    let v = secrets.get(&web2(owner, name)?)?;
    let text = secret_text(v);
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| Zeroizing::new(trimmed.to_owned()))
}

/// The challenge signer and its raw key, from 32 raw bytes or 64 hex characters (optional `0x`).
/// The address of a challenge key and its 32 bytes (libsecp256k1, `crate::signature`).
fn challenge_signer(key: &SecretValue) -> Option<(Address, Zeroizing<[u8; 32]>)> {
    let bytes = key.as_bytes();
    let raw = if bytes.len() == 32 {
        let mut raw = Zeroizing::new([0u8; 32]);
        raw.copy_from_slice(bytes);
        raw
    } else {
        crate::hex::decode_key32(std::str::from_utf8(bytes).ok()?)?
    };
    let address = crate::signature::address_of_key(&raw)?;
    Some((address, raw))
}

/// What the app enclave is run and measured with (plan step E).
pub struct AppSide {
    pipeline: Pipeline,
    measurement: Measurement,
    tdx: Option<TdxMeasurement>,
    command: Option<String>,
    heap: Option<u64>,
    fspf: Option<(Zeroizing<String>, String)>,
}

impl AppSide {
    /// The pipeline (pre- and post-compute stages) the app's enclave configuration selects.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The measurement the app enclave must prove (published fingerprint for TDX).
    pub fn measurement(&self) -> &Measurement {
        &self.measurement
    }

    /// TDX: the registers the app's TD must prove.
    pub fn tdx(&self) -> Option<&TdxMeasurement> {
        self.tdx.as_ref()
    }
}

/// Plan step E: the app's enclave configuration (SGX) or checksum (TDX), and its pipeline.
pub fn resolve_app(
    inputs: &SessionInputs<'_>,
    framework: TeeFramework,
) -> Result<AppSide, SessionError> {
    let app = inputs.app;
    if framework == TeeFramework::Tdx {
        let pipeline = inputs.pipelines.default_pipeline().clone();
        let tdx = pipeline
            .app_tdx
            .as_ref()
            .map(|base| base.measurement_for(&app.checksum));
        return Ok(AppSide {
            pipeline,
            measurement: Measurement::from_b256(&app.checksum),
            tdx,
            command: None,
            heap: None,
            fspf: None,
        });
    }
    let config = match TeeEnclaveConfiguration::from_mrenclave(&app.mrenclave) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(err(
                E::AppComputeNoEnclaveConfig,
                format!("app {} has no enclave configuration", app.address),
            ));
        }
        Err(e) => {
            return Err(err(
                E::AppComputeInvalidEnclaveConfig,
                format!("app {}: {e}", app.address),
            ));
        }
    };
    if config.framework != framework {
        return Err(err(
            E::AppComputeInvalidEnclaveConfig,
            format!(
                "app {}: enclave configuration is for {}, the task runs on {framework}",
                app.address, config.framework
            ),
        ));
    }
    let valid = config.validate().map_err(|e| {
        err(
            E::AppComputeInvalidEnclaveConfig,
            format!("app {}: {e}", app.address),
        )
    })?;
    let pipeline = inputs
        .pipelines
        .find(&valid.version)
        .cloned()
        .ok_or_else(|| {
            err(
                E::AppComputeInvalidEnclaveConfig,
                format!(
                    "app {}: no {framework} pipeline for version '{}'",
                    app.address, valid.version
                ),
            )
        })?;
    let args = inputs.task.params.iexec_args.as_deref().unwrap_or("");
    let command = valid.entrypoint.as_ref().map(|e| {
        if args.trim().is_empty() {
            e.clone()
        } else {
            format!("{e} {args}")
        }
    });
    let fspf = valid
        .fingerprint
        .fspf()
        .map(|f| (Zeroizing::new(f.key().to_owned()), f.tag().to_owned()));
    Ok(AppSide {
        pipeline,
        measurement: valid.measurement().clone(),
        tdx: None,
        command,
        heap: valid.heap_size,
        fspf,
    })
}

/// Plan step F: the tokens pre- and post-compute sign their results with (worker address and
/// the task's enclave challenge key, which must be the one of `enclaveChallenge`).
pub fn sign_tokens(inputs: &SessionInputs<'_>) -> Result<EnclaveEnv, SessionError> {
    let worker = inputs.task.worker;
    if worker == Address::ZERO {
        return Err(err(
            E::GetSignatureTokensFailedEmptyWorkerAddress,
            "worker address is empty",
        ));
    }
    if inputs.enclave_challenge == Address::ZERO {
        return Err(err(
            E::GetSignatureTokensFailedEmptyPublicEnclaveChallenge,
            "enclave challenge is empty",
        ));
    }
    let key = inputs.challenge_private_key.ok_or_else(|| {
        err(
            E::GetSignatureTokensFailedEmptyTeeChallenge,
            "no enclave challenge was issued for the task",
        )
    })?;
    if key.is_empty() {
        return Err(err(
            E::GetSignatureTokensFailedEmptyTeeCredentials,
            "enclave challenge private key is empty",
        ));
    }
    let (signer, raw_key) = challenge_signer(key).ok_or_else(|| {
        err(
            E::GetSignatureTokensFailedEmptyTeeCredentials,
            "enclave challenge private key is not a secp256k1 key",
        )
    })?;
    if signer != inputs.enclave_challenge {
        return Err(err(
            E::ExecutionNotAuthorizedEnclaveChallengeMismatch,
            format!(
                "enclaveChallenge {} is not the challenge {} issued for the task",
                inputs.enclave_challenge, signer
            ),
        ));
    }
    let mut env = EnclaveEnv::default();
    env.public(IEXEC_TASK_ID, encode_prefixed(inputs.task.task_id));
    env.public(SIGN_WORKER_ADDRESS, worker.to_checksum(None));
    env.secret(
        SIGN_TEE_CHALLENGE_PRIVATE_KEY,
        Zeroizing::new(encode_prefixed(raw_key.as_slice())),
    );
    Ok(env)
}

fn input_file_name(url: &str) -> String {
    encode_prefixed(crate::hash::sha256(url.as_bytes()))
}

/// Plan step G1: the pre-compute environment; fails when the dataset has no stored key.
pub fn pre_compute_env(
    inputs: &SessionInputs<'_>,
    dataset: Option<&DatasetEntry>,
    sign: &EnclaveEnv,
) -> Result<EnclaveEnv, SessionError> {
    let task = &inputs.task;
    let mut env = EnclaveEnv::default();
    env.public(IEXEC_PRE_COMPUTE_OUT, IEXEC_IN_DIR);
    env.public(IS_DATASET_REQUIRED, bool_str(dataset.is_some()));
    if let Some(d) = dataset {
        let key = inputs
            .secrets
            .get(&SecretId::web3(d.address))
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                err(
                    E::PreComputeGetDatasetSecretFailed,
                    format!("no key stored for dataset {}", d.address),
                )
            })?;
        env.secret(IEXEC_DATASET_KEY, secret_text(key));
        env.public(IEXEC_DATASET_URL, d.multiaddr.clone());
        env.public(IEXEC_DATASET_FILENAME, encode_prefixed(d.address));
        env.public(IEXEC_DATASET_CHECKSUM, encode_prefixed(d.checksum));
    }
    env.public(IEXEC_DEAL_ID, encode_prefixed(task.deal.deal_id));
    env.public(IEXEC_TASK_INDEX, task.task_index.to_string());
    env.public(IEXEC_TASK_ID, encode_prefixed(task.task_id));
    input_files_env(
        &mut env,
        &task.params.iexec_input_files,
        IEXEC_INPUT_FILE_URL_PREFIX,
        |url| url.to_owned(),
    );
    if let Some(slice) = inputs.bulk {
        slice.pre_compute_env(inputs.secrets, &mut env);
    }
    env.extend(sign);
    Ok(env)
}

/// `IEXEC_INPUT_FILES_NUMBER` and, when there are files, the folder and one `<prefix><i>`
/// (1-based) per file: its URL for pre-compute, its file name for the app.
fn input_files_env(
    env: &mut EnclaveEnv,
    files: &[String],
    prefix: &str,
    value: impl Fn(&str) -> String,
) {
    env.public(IEXEC_INPUT_FILES_NUMBER, files.len().to_string());
    if !files.is_empty() {
        env.public(IEXEC_INPUT_FILES_FOLDER, IEXEC_IN_DIR);
        for (i, file) in files.iter().enumerate() {
            env.public(format!("{prefix}{}", i + 1), value(file));
        }
    }
}

/// Plan step G2: the app environment (absent developer or requester secrets are warnings).
pub fn app_env(
    inputs: &SessionInputs<'_>,
    app: &AppSide,
    warnings: &mut Vec<String>,
) -> EnclaveEnv {
    let task = &inputs.task;
    let deal = task.deal;
    let mut env = EnclaveEnv::default();
    env.public(IEXEC_DEAL_ID, encode_prefixed(deal.deal_id));
    env.public(IEXEC_TASK_INDEX, task.task_index.to_string());
    env.public(IEXEC_TASK_ID, encode_prefixed(task.task_id));
    env.public(IEXEC_IN, IEXEC_IN_DIR);
    env.public(IEXEC_OUT, IEXEC_OUT_DIR);
    env.public(IEXEC_BOT_SIZE, deal.bot_size.to_string());
    env.public(IEXEC_BOT_FIRST_INDEX, deal.bot_first.to_string());
    env.public(IEXEC_BOT_TASK_INDEX, task.task_index.to_string());
    let dataset = encode_prefixed(deal.dataset.pointer);
    env.public(IEXEC_DATASET_ADDRESS, dataset.clone());
    env.public(IEXEC_DATASET_FILENAME, dataset);
    input_files_env(
        &mut env,
        &task.params.iexec_input_files,
        IEXEC_INPUT_FILE_NAME_PREFIX,
        input_file_name,
    );
    if let Some(secret) = inputs
        .secrets
        .get(&SecretId::app_developer(deal.app.pointer))
    {
        env.secret(IEXEC_APP_DEVELOPER_SECRET, secret_text(secret));
        env.secret(IEXEC_APP_DEVELOPER_SECRET_1, secret_text(secret));
    }
    let secrets = &task.params.iexec_secrets;
    for (position, name) in secrets {
        if !is_valid_position(position) {
            warnings.push(format!(
                "iexec_secrets key '{}' is not a positive integer: requester secret '{}' not delivered at it",
                position.chars().take(32).collect::<String>(),
                name.chars().take(64).collect::<String>()
            ));
        }
    }
    for name in requester_names(task.params) {
        let positions: Vec<&str> = secrets
            .iter()
            .filter(|(k, v)| is_valid_position(k) && v.as_str() == name)
            .map(|(k, _)| k.as_str())
            .collect();
        let value = RequesterSecretName::parse(name)
            .ok()
            .and_then(|n| inputs.secrets.get(&SecretId::requester(deal.requester, &n)));
        match value {
            Some(v) => {
                for p in positions {
                    env.secret(
                        format!("{IEXEC_REQUESTER_SECRET_PREFIX}{p}"),
                        secret_text(v),
                    );
                }
            }
            None => warnings.push(format!(
                "requester secret '{}' of {} not found: position(s) {} left unset",
                name.chars().take(64).collect::<String>(),
                deal.requester,
                positions.join(", ")
            )),
        }
    }
    if let Some((key, tag)) = &app.fspf {
        env.secret(ENV_SCONE_FSPF_KEY, key.clone());
        env.public(ENV_SCONE_FSPF_TAG, tag.clone());
    }
    if let Some(slice) = inputs.bulk {
        slice.app_env(&mut env);
    }
    env
}

/// Plan step G3a: the result encryption variables; fails when encryption is asked and the
/// beneficiary has no public key.
pub fn result_encryption_env(inputs: &SessionInputs<'_>) -> Result<EnclaveEnv, SessionError> {
    let deal = inputs.task.deal;
    let mut env = EnclaveEnv::default();
    let encryption = inputs.task.params.iexec_result_encryption;
    env.public(RESULT_ENCRYPTION, bool_str(encryption));
    if encryption {
        let key = web2_value(
            inputs.secrets,
            deal.beneficiary,
            WEB2_RESULT_ENCRYPTION_PUBLIC_KEY,
        )
        .ok_or_else(|| {
            err(
                E::PostComputeGetEncryptionTokensFailedEmptyBeneficiaryKey,
                format!(
                    "beneficiary {} has no {WEB2_RESULT_ENCRYPTION_PUBLIC_KEY}",
                    deal.beneficiary
                ),
            )
        })?;
        env.public(RESULT_ENCRYPTION_PUBLIC_KEY, key.as_str());
    } else {
        env.public(RESULT_ENCRYPTION_PUBLIC_KEY, "");
    }
    Ok(env)
}

/// Plan step G3b: the result storage variables; fails when the storage needs a token nobody
/// stored.
pub fn result_storage_env(inputs: &SessionInputs<'_>) -> Result<EnclaveEnv, SessionError> {
    let task = &inputs.task;
    let deal = task.deal;
    let params = task.params;
    let secrets = inputs.secrets;
    let mut env = EnclaveEnv::default();
    let callback = deal.has_callback();
    env.public(RESULT_STORAGE_CALLBACK, bool_str(callback));
    if callback {
        env.public(RESULT_STORAGE_PROVIDER, "");
        env.public(RESULT_STORAGE_PROXY, "");
        env.secret(RESULT_STORAGE_TOKEN, Zeroizing::new(String::new()));
        return Ok(env);
    }
    let provider = params
        .iexec_result_storage_provider
        .clone()
        .unwrap_or_default();
    let (token, proxy, missing) = if provider == STORAGE_DROPBOX {
        let token = web2_value(secrets, deal.requester, WEB2_DROPBOX_TOKEN);
        let proxy = params
            .iexec_result_storage_proxy
            .clone()
            .unwrap_or_default();
        (
            token,
            proxy,
            format!("requester {} has no {WEB2_DROPBOX_TOKEN}", deal.requester),
        )
    } else {
        let token = web2_value(secrets, task.worker, WEB2_IPFS_TOKEN)
            .or_else(|| web2_value(secrets, deal.requester, WEB2_IPFS_TOKEN));
        let proxy = match &params.iexec_result_storage_proxy {
            Some(p) => p.clone(),
            None => web2_value(secrets, deal.workerpool.owner, WEB2_RESULT_PROXY_URL)
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
        };
        (
            token,
            proxy,
            format!(
                "neither worker {} nor requester {} has {WEB2_IPFS_TOKEN}",
                task.worker, deal.requester
            ),
        )
    };
    let token = token.ok_or_else(|| err(E::PostComputeGetStorageTokensFailed, missing))?;
    env.public(RESULT_STORAGE_PROVIDER, provider);
    env.public(RESULT_STORAGE_PROXY, proxy);
    env.secret(RESULT_STORAGE_TOKEN, token);
    Ok(env)
}

/// Plan step G3: the post-compute environment (encryption, then storage, then sign tokens).
pub fn post_compute_env(
    inputs: &SessionInputs<'_>,
    sign: &EnclaveEnv,
) -> Result<EnclaveEnv, SessionError> {
    let mut env = result_encryption_env(inputs)?;
    env.extend(&result_storage_env(inputs)?);
    env.extend(sign);
    Ok(env)
}

/// Plan step A: the deal's tag selects the framework this SMS serves, and the configured
/// pipelines are for it.
pub fn ensure_deal_framework(inputs: &SessionInputs<'_>) -> Result<TeeFramework, SessionError> {
    let deal = inputs.task.deal;
    let framework = TeeFramework::from_tag(&deal.tag).ok_or_else(|| {
        err(
            E::ExecutionNotAuthorizedNoMatchOnchainType,
            format!("deal tag {} selects no TEE framework", deal.tag),
        )
    })?;
    if framework != inputs.sms_framework {
        return Err(err(
            E::ExecutionNotAuthorizedTeeFrameworkMismatch,
            format!(
                "the deal runs on {framework}, this SMS serves {}",
                inputs.sms_framework
            ),
        ));
    }
    ensure_pipelines_for(inputs.pipelines, framework)?;
    Ok(framework)
}

/// The configured pipelines are for `framework`.
pub fn ensure_pipelines_for(
    pipelines: &Pipelines,
    framework: TeeFramework,
) -> Result<(), SessionError> {
    if pipelines.framework() != framework {
        return Err(err(
            E::SecureSessionGenerationFailed,
            format!(
                "configured pipelines are for {}, not {framework}",
                pipelines.framework()
            ),
        ));
    }
    Ok(())
}

/// Plan step B: the task id is the deal's task at its index, and the app entry is the deal's.
pub fn ensure_task_matches(inputs: &SessionInputs<'_>) -> Result<(), SessionError> {
    let task = &inputs.task;
    let deal = task.deal;
    if crate::ledger::task_id(&deal.deal_id, task.task_index) != task.task_id {
        return Err(err(
            E::GetTaskDescriptionFailed,
            "task id does not match the deal id and task index",
        ));
    }
    if inputs.app.address != deal.app.pointer {
        return Err(err(
            E::GetTaskDescriptionFailed,
            "app entry is not the deal's app",
        ));
    }
    Ok(())
}

/// Plan step C: the dataset the pre-compute downloads, `None` when the deal has none (or, as
/// upstream counts it, a dataset entry without a URI).
pub fn resolve_dataset<'a>(
    inputs: &SessionInputs<'a>,
) -> Result<Option<&'a DatasetEntry>, SessionError> {
    let deal = inputs.task.deal;
    match (deal.has_dataset(), inputs.dataset) {
        (false, _) => Ok(None),
        (true, Some(d)) if d.address == deal.dataset.pointer => {
            Ok(Some(d).filter(|d| d.has_content()))
        }
        (true, _) => Err(err(
            E::GetTaskDescriptionFailed,
            "dataset entry of the deal is missing",
        )),
    }
}

/// Plan step D: the deal params ask for nothing this SMS cannot do: a `bulk_cid` must be a CID
/// this SMS can verify.
pub fn ensure_supported_params(params: &DealParams) -> Result<(), SessionError> {
    if params.has_bulk() {
        crate::bulk::parse_bulk_cid(&params.bulk_cid)
            .map_err(|e| err(E::PreComputeBulkDocumentInvalid, format!("bulk_cid: {e}")))?;
    }
    Ok(())
}

/// Plan step D2: a bulk deal comes with its checked slice (the server reads it from IPFS
/// before the plan; without `--ipfs-gateway` it cannot).
pub fn ensure_bulk_resolved(inputs: &SessionInputs<'_>) -> Result<(), SessionError> {
    if inputs.task.params.has_bulk() && inputs.bulk.is_none() {
        return Err(err(
            E::PreComputeBulkProcessingNotSupported,
            "the deal has a bulk_cid and this SMS reads no IPFS gateway (--ipfs-gateway)",
        ));
    }
    Ok(())
}

/// True when the session has a pre-compute enclave.
pub fn needs_pre_compute(dataset: Option<&DatasetEntry>, params: &DealParams) -> bool {
    dataset.is_some() || params.has_input_files() || params.has_bulk()
}

/// The session of a task, or the error code to answer with: plan steps A to D, then the app
/// side (E), the sign tokens (F) and each enclave's environment (G: pre-compute, app,
/// post-compute), in that order; the first failure is the answer.
pub fn build_session_plan(inputs: &SessionInputs<'_>) -> Result<SessionPlan, SessionError> {
    let task = &inputs.task;
    let framework = ensure_deal_framework(inputs)?;
    ensure_task_matches(inputs)?;
    let dataset = resolve_dataset(inputs)?;
    ensure_bulk_resolved(inputs)?;
    ensure_supported_params(task.params)?;

    let app_side = resolve_app(inputs, framework)?;
    let sign = sign_tokens(inputs)?;
    let mut warnings = Vec::new();

    let pre_compute = if needs_pre_compute(dataset, task.params) {
        let stage = &app_side.pipeline.pre_compute;
        Some(EnclaveSession {
            role: EnclaveRole::PreCompute,
            image: stage.image.clone(),
            measurement: stage.fingerprint.clone(),
            tdx: stage.tdx.clone(),
            command: Some(stage.entrypoint.clone()),
            heap_size_bytes: Some(stage.heap_size_bytes),
            env: pre_compute_env(inputs, dataset, &sign)?,
        })
    } else {
        None
    };
    let app = EnclaveSession {
        role: EnclaveRole::App,
        image: inputs.app.multiaddr.clone(),
        measurement: app_side.measurement.clone(),
        tdx: app_side.tdx.clone(),
        command: app_side.command.clone(),
        heap_size_bytes: app_side.heap,
        env: app_env(inputs, &app_side, &mut warnings),
    };
    let stage = &app_side.pipeline.post_compute;
    let post_compute = EnclaveSession {
        role: EnclaveRole::PostCompute,
        image: stage.image.clone(),
        measurement: stage.fingerprint.clone(),
        tdx: stage.tdx.clone(),
        command: Some(stage.entrypoint.clone()),
        heap_size_bytes: Some(stage.heap_size_bytes),
        env: post_compute_env(inputs, &sign)?,
    };
    Ok(SessionPlan {
        task_id: task.task_id,
        framework,
        pipeline_version: app_side.pipeline.version.clone(),
        pre_compute,
        app,
        post_compute,
        warnings,
    })
}

/// A session id: 10 random ASCII letters or digits, `"0000"`, then the task id (`0x` + 64 hex).
pub fn session_id<R: rand::Rng + ?Sized>(rng: &mut R, task_id: &B256) -> String {
    let prefix: String = (0..10)
        .map(|_| char::from(rng.sample(rand::distr::Alphanumeric)))
        .collect();
    format!("{prefix}0000{}", encode_prefixed(task_id))
}

#[cfg(test)]
#[path = "session_plan_tests.rs"]
mod tests;
