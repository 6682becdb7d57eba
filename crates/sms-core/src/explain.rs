//! `GET /tee/explain/{taskId}`: the checks of session creation and release, each with its
//! outcome and the fact behind it, without side effects (wire contract: docs/tee-sessions.md,
//! "Explain").
//!
//! This module holds the wire types (shared by the server and the client) and the pure part:
//! [`plan_checks`] runs the session plan builder's own steps
//! ([`crate::session_plan`] steps A–G) one by one and records each outcome instead of
//! stopping at the first failure; a step that needs an earlier failed one is reported as
//! skipped. Facts name secrets by identity and presence, never by value.

use serde::{Deserialize, Serialize};

use crate::enclave_config::Measurement;
use crate::hex::encode_prefixed;
use crate::measurement::TdxMeasurement;
use crate::secret::SecretId;
use crate::session_plan::{
    self, AppSide, EnclaveEnv, SecretsNeeded, SessionInputs, WEB2_DROPBOX_TOKEN, WEB2_IPFS_TOKEN,
};
use crate::tag::TeeFramework;
use crate::tee_error::{SessionError, TeeSessionGenerationError as E};

/// Stable check names (docs/tee-sessions.md lists them in the order they are answered).
pub mod names {
    pub const TASK_ACTIVE: &str = "task-active";
    pub const TASK_DEADLINE: &str = "task-deadline";
    pub const DEAL_TEE_TAG: &str = "deal-tee-tag";
    pub const TEE_FRAMEWORK: &str = "tee-framework";
    pub const TASK_SESSION: &str = "task-session";
    pub const APP: &str = "app";
    pub const TASK_IDENTITY: &str = "task-identity";
    pub const DATASET: &str = "dataset";
    pub const DEAL_PARAMS: &str = "deal-params";
    pub const PIPELINES: &str = "pipelines";
    pub const APP_ENCLAVE: &str = "app-enclave";
    pub const ENCLAVE_CHALLENGE: &str = "enclave-challenge";
    pub const DATASET_KEY: &str = "dataset-key";
    pub const APP_DEVELOPER_SECRET: &str = "app-developer-secret";
    pub const REQUESTER_SECRETS: &str = "requester-secrets";
    pub const RESULT_ENCRYPTION_KEY: &str = "result-encryption-key";
    pub const RESULT_STORAGE_TOKEN: &str = "result-storage-token";
    pub const PRE_COMPUTE_MEASUREMENT: &str = "pre-compute-measurement";
    pub const APP_MEASUREMENT: &str = "app-measurement";
    pub const POST_COMPUTE_MEASUREMENT: &str = "post-compute-measurement";
    pub const RELEASE_EVIDENCE: &str = "release-evidence";
    pub const RELEASE_BUDGET: &str = "release-budget";
}

/// The checks [`plan_checks`] answers, in order (all skipped when the app entry is missing).
pub const PLAN_CHECKS: [&str; 13] = [
    names::TASK_IDENTITY,
    names::DATASET,
    names::DEAL_PARAMS,
    names::PIPELINES,
    names::APP_ENCLAVE,
    names::DATASET_KEY,
    names::APP_DEVELOPER_SECRET,
    names::REQUESTER_SECRETS,
    names::RESULT_ENCRYPTION_KEY,
    names::RESULT_STORAGE_TOKEN,
    names::PRE_COMPUTE_MEASUREMENT,
    names::APP_MEASUREMENT,
    names::POST_COMPUTE_MEASUREMENT,
];

/// Outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Fail,
    /// Not run: it needs the outcome of an earlier failed check (the fact says which).
    Skipped,
}

/// One named check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub name: String,
    pub status: CheckStatus,
    /// True when the check passed.
    pub ok: bool,
    /// What the check found (identities and presence, never secret values).
    pub fact: String,
    /// On failure, the code `/tee/sessions` (precise code, as in `X-Sms-Error`) or the
    /// provisioner would answer.
    pub code: Option<String>,
}

impl Check {
    pub fn pass(name: &str, fact: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            status: CheckStatus::Pass,
            ok: true,
            fact: fact.into(),
            code: None,
        }
    }

    pub fn fail(name: &str, code: &str, fact: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            status: CheckStatus::Fail,
            ok: false,
            fact: fact.into(),
            code: Some(code.to_owned()),
        }
    }

    /// A failure with the session error the step returned.
    pub fn session_fail(name: &str, error: &SessionError) -> Self {
        Self::fail(name, error.code.as_str(), error.detail.clone())
    }

    pub fn skipped(name: &str, reason: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            status: CheckStatus::Skipped,
            ok: false,
            fact: reason.into(),
            code: None,
        }
    }

    /// Pass with `fact` when `result` is Ok, the session error otherwise.
    pub fn from_step<T>(
        name: &str,
        result: &Result<T, SessionError>,
        fact: impl FnOnce(&T) -> String,
    ) -> Self {
        match result {
            Ok(value) => Self::pass(name, fact(value)),
            Err(e) => Self::session_fail(name, e),
        }
    }
}

/// `GET /tee/explain/{taskId}` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub task_id: String,
    /// The worker the checks were run for (`worker=` query), if any.
    pub worker: Option<String>,
    pub checks: Vec<Check>,
    /// True when no check failed or was skipped.
    pub ok: bool,
}

impl Explanation {
    /// The text `sms explain task` prints: one line per check, then the conclusion.
    pub fn human(&self) -> String {
        let explanation = self;
        let width = explanation
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0);
        let mut text = format!("task {}\n", explanation.task_id);
        for check in &explanation.checks {
            let mark = match check.status {
                CheckStatus::Pass => "✓",
                CheckStatus::Fail => "✗",
                CheckStatus::Skipped => "–",
            };
            text.push_str(&format!(
                "{mark} {:width$}  {}",
                check.name,
                check.fact,
                width = width
            ));
            if let Some(code) = &check.code {
                text.push_str(&format!(" [{code}]"));
            }
            text.push('\n');
        }
        text.push_str(match explanation.first_failure() {
            None if explanation.ok => "every check passes",
            None => "no check fails (some were skipped)",
            Some(_) => "a session or release of this task would be refused",
        });
        text
    }

    pub fn new(task_id: String, worker: Option<String>, checks: Vec<Check>) -> Self {
        let ok = checks.iter().all(|c| c.status == CheckStatus::Pass);
        Self {
            task_id,
            worker,
            checks,
            ok,
        }
    }

    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The first check that did not pass.
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| c.status == CheckStatus::Fail)
    }
}

fn measurement_fact(measurement: &Measurement, tdx: Option<&TdxMeasurement>) -> String {
    match tdx {
        Some(registers) => {
            let names: Vec<&str> = registers.iter().map(|(r, _)| r.name()).collect();
            format!(
                "fingerprint {}, TDX registers {}",
                measurement.to_prefixed(),
                names.join(", ")
            )
        }
        None => format!("measurement {}", measurement.to_prefixed()),
    }
}

fn presence(secrets: &session_plan::SecretValues, id: &SecretId) -> bool {
    secrets.get(id).is_some_and(|v| !v.is_empty())
}

/// Runs plan steps A–G on `inputs` (whose `secrets` holds what the store has of `needed`; the
/// challenge key is not read: sign tokens are the enclave-challenge check of the server) and
/// answers one check per entry of [`PLAN_CHECKS`], in that order.
pub fn plan_checks(inputs: &SessionInputs<'_>, needed: &SecretsNeeded) -> Vec<Check> {
    use names::*;
    let task = &inputs.task;
    let deal = task.deal;
    let mut checks = Vec::new();

    let identity = session_plan::ensure_task_matches(inputs);
    checks.push(Check::from_step(TASK_IDENTITY, &identity, |()| {
        format!(
            "task {} is task {} of deal {}; app {} is the deal's",
            encode_prefixed(task.task_id),
            task.task_index,
            encode_prefixed(deal.deal_id),
            inputs.app.address
        )
    }));

    let dataset = session_plan::resolve_dataset(inputs);
    checks.push(Check::from_step(DATASET, &dataset, |d| match d {
        Some(d) => format!(
            "dataset {} (owner {}, checksum {})",
            d.address,
            d.owner,
            encode_prefixed(d.checksum)
        ),
        None if deal.has_dataset() => format!(
            "dataset {} has no URI: counted as no dataset",
            deal.dataset.pointer
        ),
        None => "the deal has no dataset".to_owned(),
    }));

    let params = session_plan::ensure_bulk_resolved(inputs)
        .and_then(|()| session_plan::ensure_supported_params(task.params));
    checks.push(Check::from_step(DEAL_PARAMS, &params, |()| {
        let p = task.params;
        format!(
            "{} input file(s), {} requester secret position(s), storage {}, result encryption {}, callback {}",
            p.iexec_input_files.len(),
            p.iexec_secrets.len(),
            p.iexec_result_storage_provider
                .as_deref()
                .unwrap_or("default"),
            if p.iexec_result_encryption { "on" } else { "off" },
            if deal.has_callback() { "yes" } else { "no" },
        ) + &if p.has_bulk() {
            format!(", bulk_cid {} (its documents are read at session time)", p.bulk_cid)
        } else {
            String::new()
        }
    }));

    let framework = session_plan::ensure_deal_framework(inputs);
    checks.push(match &framework {
        Ok(f) => Check::pass(
            PIPELINES,
            format!(
                "{} pipeline(s) for {f}: {}",
                inputs.pipelines.len(),
                inputs
                    .pipelines
                    .iter()
                    .map(|p| p.version.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        // Tag and served framework are their own checks (deal-tee-tag, tee-framework).
        Err(e) if e.code != E::SecureSessionGenerationFailed => {
            Check::skipped(PIPELINES, format!("no framework to run: {}", e.detail))
        }
        Err(e) => Check::session_fail(PIPELINES, e),
    });

    let app_side: Result<AppSide, String> = match &framework {
        Ok(f) => {
            let side = session_plan::resolve_app(inputs, *f);
            checks.push(Check::from_step(APP_ENCLAVE, &side, |s| {
                app_enclave_fact(inputs, *f, s)
            }));
            side.map_err(|e| format!("app-enclave failed: {}", e.detail))
        }
        Err(_) => {
            checks.push(Check::skipped(APP_ENCLAVE, "pipelines check did not pass"));
            Err("pipelines check did not pass".to_owned())
        }
    };

    checks.push(match &dataset {
        Ok(Some(d)) => {
            let step = session_plan::pre_compute_env(inputs, Some(d), &EnclaveEnv::default());
            Check::from_step(DATASET_KEY, &step, |_| {
                format!("a key is stored for dataset {}", d.address)
            })
        }
        Ok(None) => Check::pass(DATASET_KEY, "no dataset: no key needed"),
        Err(_) => Check::skipped(DATASET_KEY, "dataset check did not pass"),
    });

    checks.push(Check::pass(
        APP_DEVELOPER_SECRET,
        if presence(inputs.secrets, &needed.app_developer) {
            format!(
                "stored for app {} (IEXEC_APP_DEVELOPER_SECRET)",
                deal.app.pointer
            )
        } else {
            format!(
                "none stored for app {}: the app runs without IEXEC_APP_DEVELOPER_SECRET",
                deal.app.pointer
            )
        },
    ));

    checks.push(Check::pass(
        REQUESTER_SECRETS,
        requester_fact(inputs, needed),
    ));

    let encryption = session_plan::result_encryption_env(inputs);
    checks.push(Check::from_step(RESULT_ENCRYPTION_KEY, &encryption, |_| {
        if task.params.iexec_result_encryption {
            format!(
                "a result encryption key is stored for beneficiary {}",
                deal.beneficiary
            )
        } else {
            "result encryption not asked".to_owned()
        }
    }));

    let storage = session_plan::result_storage_env(inputs);
    let mut storage_check = Check::from_step(RESULT_STORAGE_TOKEN, &storage, |env| {
        storage_fact(inputs, env)
    });
    if storage.is_err() && task.worker == crate::Address::ZERO {
        storage_check
            .fact
            .push_str(" (no worker given: a worker's own token was not looked for)");
    }
    checks.push(storage_check);

    let pre_needed = match &dataset {
        Ok(d) => Ok(session_plan::needs_pre_compute(*d, task.params)),
        Err(_) => Err("dataset check did not pass"),
    };
    match &app_side {
        Ok(side) => {
            let pipeline = side.pipeline();
            checks.push(match pre_needed {
                Ok(true) => Check::pass(
                    PRE_COMPUTE_MEASUREMENT,
                    format!(
                        "pipeline {} pre-compute {}",
                        pipeline.version,
                        measurement_fact(
                            &pipeline.pre_compute.fingerprint,
                            pipeline.pre_compute.tdx.as_ref()
                        )
                    ),
                ),
                Ok(false) => Check::pass(
                    PRE_COMPUTE_MEASUREMENT,
                    "no pre-compute enclave (no dataset, no input files)",
                ),
                Err(reason) => Check::skipped(PRE_COMPUTE_MEASUREMENT, reason),
            });
            checks.push(Check::pass(
                APP_MEASUREMENT,
                measurement_fact(side.measurement(), side.tdx()),
            ));
            checks.push(Check::pass(
                POST_COMPUTE_MEASUREMENT,
                format!(
                    "pipeline {} post-compute {}",
                    pipeline.version,
                    measurement_fact(
                        &pipeline.post_compute.fingerprint,
                        pipeline.post_compute.tdx.as_ref()
                    )
                ),
            ));
        }
        Err(reason) => {
            for name in [
                PRE_COMPUTE_MEASUREMENT,
                APP_MEASUREMENT,
                POST_COMPUTE_MEASUREMENT,
            ] {
                checks.push(Check::skipped(name, reason.clone()));
            }
        }
    }
    checks
}

fn app_enclave_fact(inputs: &SessionInputs<'_>, framework: TeeFramework, side: &AppSide) -> String {
    match framework {
        TeeFramework::Tdx => format!(
            "TDX app {}: checksum {}, pipeline {}",
            inputs.app.address,
            encode_prefixed(inputs.app.checksum),
            side.pipeline().version
        ),
        _ => format!(
            "{framework} enclave configuration of app {}: fingerprint {}, pipeline {}",
            inputs.app.address,
            side.measurement().to_prefixed(),
            side.pipeline().version
        ),
    }
}

fn requester_fact(inputs: &SessionInputs<'_>, needed: &SecretsNeeded) -> String {
    if needed.requester.is_empty() {
        return "the deal maps no requester secret".to_owned();
    }
    let (found, missing): (Vec<&SecretId>, Vec<&SecretId>) = needed
        .requester
        .iter()
        .partition(|id| presence(inputs.secrets, id));
    let list = |ids: &[&SecretId]| {
        ids.iter()
            .map(|id| format!("'{}'", id.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let requester = inputs.task.deal.requester;
    match (found.is_empty(), missing.is_empty()) {
        (_, true) => format!("requester {requester}: stored {}", list(&found)),
        (true, false) => format!(
            "requester {requester}: missing {} (the session is created without them: their positions stay unset)",
            list(&missing)
        ),
        (false, false) => format!(
            "requester {requester}: stored {}; missing {} (their positions stay unset)",
            list(&found),
            list(&missing)
        ),
    }
}

fn storage_fact(inputs: &SessionInputs<'_>, env: &EnclaveEnv) -> String {
    let task = &inputs.task;
    let deal = task.deal;
    if deal.has_callback() {
        return format!("callback {}: no result storage", deal.callback);
    }
    let provider = env
        .get(session_plan::RESULT_STORAGE_PROVIDER)
        .filter(|p| !p.is_empty())
        .unwrap_or("ipfs (default)");
    let holder = |owner, name| {
        SecretId::web2(owner, name)
            .ok()
            .is_some_and(|id| presence(inputs.secrets, &id))
    };
    let token = if task.params.iexec_result_storage_provider.as_deref()
        == Some(crate::deal_params::STORAGE_DROPBOX)
    {
        format!("{WEB2_DROPBOX_TOKEN} of requester {}", deal.requester)
    } else if task.worker != crate::Address::ZERO && holder(task.worker, WEB2_IPFS_TOKEN) {
        format!("{WEB2_IPFS_TOKEN} of worker {}", task.worker)
    } else {
        format!("{WEB2_IPFS_TOKEN} of requester {}", deal.requester)
    };
    format!("storage {provider}, token: {token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_is_ok_only_when_every_check_passes() {
        let pass = Check::pass(names::APP, "app found");
        let e = Explanation::new("0x01".into(), None, vec![pass.clone()]);
        assert!(e.ok);
        let skipped = Check::skipped(names::APP_ENCLAVE, "app check did not pass");
        let e = Explanation::new("0x01".into(), None, vec![pass, skipped]);
        assert!(!e.ok);
        assert_eq!(e.first_failure(), None);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["checks"][1]["status"], "skipped");
        assert_eq!(json["checks"][0]["code"], serde_json::Value::Null);
        assert_eq!(json["taskId"], "0x01");
    }
}
