//! `GET /tee/explain/{taskId}`: why a session would be created or refused, and what the
//! release will require, without side effects (no challenge created, no session stored, no
//! nonce spent, no release counted). Wire contract: docs/tee-sessions.md, "Explain".
//!
//! The same step functions as session creation ([`super::session`], [`super::task`]) and
//! release ([`crate::provision`]) run here in the same order; each outcome is recorded as a
//! [`Check`] instead of ending the request. Steps:
//! `parse_request → authorize_owner → chain_checks → session_checks → plan_checks
//! (sms_core::explain) → challenge_check → release_checks`.

use sms_attest::TeeKind;
use sms_core::explain::{Check, Explanation, PLAN_CHECKS, names};
use sms_core::ledger::{Deal, Task};
use sms_core::secret::parse_address;
use sms_core::session_plan::{SessionInputs, TaskInput, secrets_needed};
use sms_core::signature::EthSignature;
use sms_core::tag::TeeFramework;
use sms_core::tee_error::{SessionError, TeeSessionGenerationError as E};
use sms_core::{Address, B256};

use super::challenge;
use super::session::{self, TaskSession};
use super::task::{self, TaskRefusal};
use crate::state::AppState;

/// Why no explanation is answered.
#[derive(Debug)]
pub enum ExplainFailure {
    /// 400: the path is not a task id.
    BadTaskId(String),
    /// 400: the `worker` query is not an address.
    BadWorker(String),
    /// 401: unsigned, or not signed by the deal's workerpool owner.
    Unauthorized(String),
    /// 404: the task or its deal is not on chain (no workerpool owner to authorize).
    UnknownTask(String),
    /// 503: the chain could not be read in time.
    LedgerUnavailable(String),
    /// 503: the store could not be reached in time.
    StoreUnavailable(String),
}

struct ExplainRequest {
    task_id: B256,
    worker: Option<Address>,
    signature: EthSignature,
}

/// Runs every step; each returns what the next needs.
pub async fn explain(
    state: &AppState,
    task_path: &str,
    worker: Option<&str>,
    header: Option<&str>,
) -> Result<Explanation, ExplainFailure> {
    let request = parse_request(task_path, worker, header)?;
    let (task, deal) = authorize_owner(state, &request).await?;
    let mut checks = Vec::new();
    let framework = chain_checks(state, &request, &task, &deal, &mut checks);
    let challenge = challenge_address(state, &request.task_id).await?;
    checks.push(session_check(state, &request, challenge).await?);
    plan(state, &request, &task, &deal, &mut checks).await?;
    checks.push(challenge_check(challenge));
    release_checks(state, &request, framework, &mut checks).await?;
    Ok(Explanation::new(
        sms_core::hex::encode_prefixed(request.task_id),
        request.worker.map(sms_core::hex::encode_prefixed),
        checks,
    ))
}

/// Step 1: task id (path), worker (query) and the owner's signature (header), all offline.
fn parse_request(
    task_path: &str,
    worker: Option<&str>,
    header: Option<&str>,
) -> Result<ExplainRequest, ExplainFailure> {
    let task_id = session::task_id_of(task_path).map_err(ExplainFailure::BadTaskId)?;
    let worker = match worker.map(str::trim).filter(|w| !w.is_empty()) {
        None => None,
        Some(text) => Some(
            parse_address(text).map_err(|e| ExplainFailure::BadWorker(format!("worker: {e}")))?,
        ),
    };
    let signature = session::owner_signature(header).map_err(ExplainFailure::Unauthorized)?;
    Ok(ExplainRequest {
        task_id,
        worker,
        signature,
    })
}

fn chain_failure(refusal: TaskRefusal) -> ExplainFailure {
    if refusal.is_unavailable() {
        ExplainFailure::LedgerUnavailable(refusal.to_string())
    } else {
        ExplainFailure::UnknownTask(refusal.to_string())
    }
}

/// Step 2: the task and its deal exist, and the request is signed by the deal's workerpool
/// owner over [`sms_core::challenge::explain_request`]. A task that is not ACTIVE is still
/// explained (that is a check, not an authorization failure).
async fn authorize_owner(
    state: &AppState,
    request: &ExplainRequest,
) -> Result<(Task, Deal), ExplainFailure> {
    let ledger = state.ledger.as_ref();
    let task = task::find_task(ledger, request.task_id)
        .await
        .map_err(chain_failure)?;
    let deal = task::find_deal(ledger, task.deal_id)
        .await
        .map_err(chain_failure)?;
    let digest = sms_core::challenge::explain_request(&request.task_id);
    task::ensure_signed_by_pool_owner(&deal, |owner| {
        sms_core::signature::is_signed_by(&request.signature, &digest, owner)
    })
    .map_err(|r| ExplainFailure::Unauthorized(format!("the Authorization header is {r}")))?;
    Ok((task, deal))
}

fn refusal_check(name: &str, refusal: &TaskRefusal) -> Check {
    Check::fail(
        name,
        session::refusal_code(refusal).as_str(),
        refusal.to_string(),
    )
}

/// Step 3: the on-chain checks of `/tee/sessions` (and the release's deadline rule); answers
/// the deal's framework when it is a served TEE framework.
fn chain_checks(
    state: &AppState,
    request: &ExplainRequest,
    task: &Task,
    deal: &Deal,
    checks: &mut Vec<Check>,
) -> Option<TeeFramework> {
    let id = request.task_id;
    checks.push(match task::ensure_active(id, task) {
        Ok(()) => Check::pass(
            names::TASK_ACTIVE,
            format!(
                "status ACTIVE, final deadline {}",
                deadline_text(task.final_deadline)
            ),
        ),
        Err(r) => refusal_check(names::TASK_ACTIVE, &r),
    });
    let now = state.clock.now();
    checks.push(match task::ensure_before_final_deadline(id, task, now) {
        Ok(()) if task.final_deadline == 0 => {
            Check::pass(names::TASK_DEADLINE, "no final deadline on chain")
        }
        Ok(()) => Check::pass(
            names::TASK_DEADLINE,
            format!(
                "final deadline {} is in {} s",
                deadline_text(task.final_deadline),
                task.final_deadline - now
            ),
        ),
        // Sessions are still created (already expired); the provisioner refuses.
        Err(reason) => Check::fail(names::TASK_DEADLINE, "TASK_NOT_LIVE", reason),
    });
    let framework = match task::ensure_tee_deal(deal) {
        Ok(f) => {
            checks.push(Check::pass(
                names::DEAL_TEE_TAG,
                format!("deal tag {} selects {f}", deal.tag),
            ));
            Some(f)
        }
        Err(r) => {
            checks.push(refusal_check(names::DEAL_TEE_TAG, &r));
            None
        }
    };
    let served = state.tee.framework;
    match framework {
        Some(f) => match task::ensure_framework_served(f, served) {
            Ok(()) => {
                checks.push(Check::pass(
                    names::TEE_FRAMEWORK,
                    format!("this SMS serves {served}"),
                ));
                Some(f)
            }
            Err(r) => {
                checks.push(refusal_check(names::TEE_FRAMEWORK, &r));
                None
            }
        },
        None => {
            checks.push(Check::skipped(
                names::TEE_FRAMEWORK,
                "deal-tee-tag did not pass",
            ));
            None
        }
    }
}

fn deadline_text(unix: u64) -> String {
    match unix {
        0 => "none".to_owned(),
        t => format!("{t} (unix seconds)"),
    }
}

fn store_unavailable(e: SessionError) -> ExplainFailure {
    ExplainFailure::StoreUnavailable(e.detail)
}

/// The task's issued challenge address, if any (read only: never created here).
async fn challenge_address(
    state: &AppState,
    task_id: &B256,
) -> Result<Option<Result<Address, ()>>, ExplainFailure> {
    let stored = challenge::get(&state.store, task_id)
        .await
        .map_err(|e| ExplainFailure::StoreUnavailable(e.to_string()))?;
    Ok(stored.map(|v| challenge::address_of(&v).ok_or(())))
}

/// Step 4: one task, one session: a live session of another worker refuses this one.
async fn session_check(
    state: &AppState,
    request: &ExplainRequest,
    challenge: Option<Result<Address, ()>>,
) -> Result<Check, ExplainFailure> {
    let live = match TaskSession::live(&state.store, &request.task_id, state.clock.now()).await {
        Ok(live) => live,
        Err(e) if e.unavailable => return Err(store_unavailable(e)),
        Err(e) => return Ok(Check::session_fail(names::TASK_SESSION, &e)),
    };
    let Some(existing) = live else {
        return Ok(Check::pass(names::TASK_SESSION, "no live session"));
    };
    let held = format!(
        "live session of worker {} until {}",
        existing.worker, existing.expires_at
    );
    let Some(worker) = request.worker else {
        return Ok(Check::pass(
            names::TASK_SESSION,
            format!("{held} (pass worker= to check another worker)"),
        ));
    };
    // The worker's enclaveChallenge must be the task's issued challenge (else the plan fails).
    let enclave = match challenge {
        Some(Ok(address)) => address,
        _ => existing.enclave_challenge,
    };
    Ok(
        match existing.ensure_held_by(&request.task_id, worker, enclave) {
            Ok(()) => Check::pass(
                names::TASK_SESSION,
                format!("{held}: answered again to this worker"),
            ),
            Err(e) => Check::session_fail(names::TASK_SESSION, &e),
        },
    )
}

/// Step 5: the app, the dataset and the deal params (ledger), the secrets (store), then the
/// plan builder's steps ([`sms_core::explain::plan_checks`]).
async fn plan(
    state: &AppState,
    request: &ExplainRequest,
    task: &Task,
    deal: &Deal,
    checks: &mut Vec<Check>,
) -> Result<(), ExplainFailure> {
    let ledger_unavailable = |e: SessionError| ExplainFailure::LedgerUnavailable(e.detail);
    let app = match session::find_app(state, deal).await {
        Ok(app) => app,
        Err(e) if e.unavailable => return Err(ledger_unavailable(e)),
        Err(e) => {
            checks.push(Check::session_fail(names::APP, &e));
            for name in PLAN_CHECKS {
                checks.push(Check::skipped(name, "app did not pass"));
            }
            return Ok(());
        }
    };
    checks.push(Check::pass(
        names::APP,
        format!(
            "app {} (owner {}, image {})",
            app.address,
            app.owner,
            app.multiaddr.chars().take(200).collect::<String>()
        ),
    ));
    let dataset = match session::find_dataset(state, deal).await {
        Ok(d) => d,
        Err(e) if e.unavailable => return Err(ledger_unavailable(e)),
        // Not found: the plan's dataset step reports it (same code).
        Err(_) => None,
    };
    let params = session::deal_params_of(&request.task_id, deal);
    let task_input = TaskInput {
        task_id: request.task_id,
        task_index: task.index,
        deal,
        params: &params,
        worker: request.worker.unwrap_or(Address::ZERO),
    };
    let needed = secrets_needed(&task_input);
    let secrets = session::read_secrets(state, &needed)
        .await
        .map_err(store_unavailable)?;
    let pipelines = state.tee.pipelines.for_app(state.tee.framework, &app);
    let pipelines = match pipelines {
        Ok(p) => p,
        Err(e) => {
            for name in PLAN_CHECKS {
                checks.push(if name == names::PIPELINES {
                    Check::fail(
                        name,
                        E::SecureSessionGenerationFailed.as_str(),
                        format!("pipelines: {e}"),
                    )
                } else {
                    Check::skipped(name, "pipelines did not pass")
                });
            }
            return Ok(());
        }
    };
    let pending_slice = sms_core::bulk::BulkSlice::default();
    let inputs = SessionInputs {
        task: task_input,
        sms_framework: state.tee.framework,
        app: &app,
        dataset: dataset.as_ref(),
        pipelines: &pipelines,
        enclave_challenge: Address::ZERO,
        challenge_private_key: None,
        secrets: &secrets,
        // Explain reads no IPFS: with a gateway (or the dev IPFS), a bulk deal's slice is taken as resolvable
        // (the session reads and checks it).
        bulk: (state.tee.ipfs.is_some() || state.dev_ledger.is_some()).then_some(&pending_slice),
    };
    checks.extend(sms_core::explain::plan_checks(&inputs, &needed));
    Ok(())
}

/// Step 6: the task's enclave challenge. Not created here: the scheduler's
/// `POST /tee/challenges` creates it before the worker asks for a session.
fn challenge_check(challenge: Option<Result<Address, ()>>) -> Check {
    match challenge {
        Some(Ok(address)) => Check::pass(
            names::ENCLAVE_CHALLENGE,
            format!("issued: {address} (the worker's enclaveChallenge must be it)"),
        ),
        Some(Err(())) => Check::fail(
            names::ENCLAVE_CHALLENGE,
            E::GetSignatureTokensFailedEmptyTeeCredentials.as_str(),
            "the stored enclave challenge of the task is not a usable key",
        ),
        None => Check::pass(
            names::ENCLAVE_CHALLENGE,
            "not issued yet: the scheduler's POST /tee/challenges creates it",
        ),
    }
}

/// The kind of evidence the provisioner requires of a framework's enclaves.
fn tee_kind(framework: TeeFramework) -> TeeKind {
    match framework {
        TeeFramework::Scone | TeeFramework::Gramine => TeeKind::Sgx,
        TeeFramework::Tdx => TeeKind::Tdx,
    }
}

/// Step 7: what the provisioner will require: evidence kind, collateral and policy, and the
/// releases left per service (read, never counted).
async fn release_checks(
    state: &AppState,
    request: &ExplainRequest,
    framework: Option<TeeFramework>,
    checks: &mut Vec<Check>,
) -> Result<(), ExplainFailure> {
    let provisioner = &state.provisioner;
    let kind = tee_kind(framework.unwrap_or(state.tee.framework));
    let policy = provisioner.policy();
    let statuses: Vec<&str> = policy
        .accepted_tcb_statuses
        .iter()
        .map(|s| s.as_str())
        .collect();
    let policy_text = format!(
        "TCB statuses accepted: {}; advisories ignored: {}",
        statuses.join(", "),
        policy.ignored_advisories.len()
    );
    checks.push(
        match (provisioner.collateral_source(), provisioner.allows_simulated()) {
            (Some(source), simulated) => Check::pass(
                names::RELEASE_EVIDENCE,
                format!(
                    "{kind} evidence with collateral from {source}; {policy_text}{}",
                    if simulated {
                        "; simulated evidence also accepted (dev)"
                    } else {
                        ""
                    }
                ),
            ),
            (None, true) => Check::pass(
                names::RELEASE_EVIDENCE,
                format!(
                    "simulated evidence accepted (dev); {kind} evidence refused: no collateral configured"
                ),
            ),
            (None, false) => Check::fail(
                names::RELEASE_EVIDENCE,
                "COLLATERAL_MISSING",
                format!("{kind} evidence needs collateral (--pccs-url or --collateral-dir); none is configured"),
            ),
        },
    );
    let mut counted = Vec::new();
    for role in [
        sms_core::session_plan::EnclaveRole::PreCompute,
        sms_core::session_plan::EnclaveRole::App,
        sms_core::session_plan::EnclaveRole::PostCompute,
    ] {
        match provisioner
            .ensure_release_budget(&state.store, &request.task_id, role.name(), None)
            .await
        {
            Ok(n) => counted.push(format!("{} {n}", role.name())),
            Err(crate::provision::Refusal::StoreUnavailable(e)) => {
                return Err(ExplainFailure::StoreUnavailable(e));
            }
            Err(refusal) => {
                checks.push(Check::fail(
                    names::RELEASE_BUDGET,
                    refusal.code(),
                    format!(
                        "{} has no release left ({} allowed per service)",
                        role.name(),
                        provisioner.release_limit()
                    ),
                ));
                return Ok(());
            }
        }
    }
    checks.push(Check::pass(
        names::RELEASE_BUDGET,
        format!(
            "releases so far of {} allowed per service: {}",
            provisioner.release_limit(),
            counted.join(", ")
        ),
    ));
    Ok(())
}
