//! `POST /tee/sessions`: checks in the reference order, the session plan, the sealed stored
//! session and the optional export. Every failure is a [`SessionError`] whose code is the wire
//! contract; details name what was wrong and never carry secret values.

use sms_core::authorization::WorkerpoolAuthorization;
use sms_core::deal_params;
use sms_core::ledger::TaskStatus;
use sms_core::secret::SecretValue;
use sms_core::session_plan::{
    SecretValues, SessionInputs, TaskInput, build_session_plan, secrets_needed, session_id,
};
use sms_core::signature::EthSignature;
use sms_core::stored_session::{SESSION_NAMESPACE, StoredSession};
use sms_core::tag::TeeFramework;
use sms_core::tee_error::{SessionError, TeeSessionGenerationError as E};
use sms_core::{Address, B256};
use sms_store::{Insert, RecordKey};
use zeroize::Zeroizing;

use super::challenge;
use crate::state::AppState;

/// A created session.
#[derive(Debug)]
pub struct CreatedSession {
    pub session_id: String,
    pub secret_provisioning_url: String,
}

fn fail(code: E, detail: impl Into<String>) -> SessionError {
    SessionError::new(code, detail)
}

/// A failed ledger read: 503 when the chain could not be read in time (the caller may retry),
/// the reference's refusal otherwise.
fn ledger_fail(code: E, what: String, error: sms_chain::LedgerError) -> SessionError {
    match error {
        sms_chain::LedgerError::Unavailable(_) => {
            SessionError::unavailable(code, format!("{what}: {error}"))
        }
        sms_chain::LedgerError::Rejected(_) => fail(code, format!("{what}: {error}")),
    }
}

pub fn session_key(session_id: &str) -> RecordKey {
    RecordKey::new(SESSION_NAMESPACE, "", session_id)
}

/// The challenge key in the form the plan builder reads (hex text of 32 bytes).
fn challenge_key_text(stored: &SecretValue) -> SecretValue {
    match challenge::signer_of(stored) {
        Some(signer) => {
            let hex = Zeroizing::new(sms_core::hex::encode_prefixed(signer.to_bytes()));
            SecretValue::new(hex.as_bytes().to_vec())
        }
        // Unusable key: hand it over as is, the builder answers EMPTY_TEE_CREDENTIALS.
        None => SecretValue::new(stored.as_bytes().to_vec()),
    }
}

/// Runs every step of session creation.
pub async fn create(
    state: &AppState,
    header: Option<&str>,
    body: &[u8],
) -> Result<CreatedSession, SessionError> {
    // Body first: without it there is no hash for the worker signature.
    let auth = WorkerpoolAuthorization::from_json_bytes(body).map_err(|e| e.to_session_error())?;
    // 4.1 worker signature.
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            fail(
                E::InvalidAuthorization,
                "the Authorization header (worker signature) is missing",
            )
        })?;
    let worker_sig = EthSignature::parse(header).map_err(|e| {
        fail(
            E::InvalidAuthorization,
            format!("the Authorization header is not a 65-byte hex signature: {e}"),
        )
    })?;
    if !auth.is_signed_by_worker(&worker_sig) {
        return Err(fail(
            E::InvalidAuthorization,
            format!(
                "the Authorization header is not signed by workerWallet {}",
                auth.worker_wallet
            ),
        ));
    }
    // 4.2 on-chain authorization.
    let task_id = auth.chain_task_id;
    if task_id == B256::ZERO {
        return Err(fail(
            E::ExecutionNotAuthorizedEmptyParamsUnauthorized,
            "chainTaskId is zero",
        ));
    }
    let task = match state.ledger.task(task_id).await {
        Ok(Some(t)) if t.deal_id != B256::ZERO => t,
        Ok(_) => {
            return Err(fail(
                E::ExecutionNotAuthorizedGetChainTaskFailed,
                format!("task {task_id} not found"),
            ));
        }
        Err(e) => {
            return Err(ledger_fail(
                E::ExecutionNotAuthorizedGetChainTaskFailed,
                format!("task {task_id}"),
                e,
            ));
        }
    };
    if task.status != TaskStatus::Active {
        return Err(fail(
            E::ExecutionNotAuthorizedTaskNotActive,
            format!("task {task_id} is {:?}, not ACTIVE", task.status),
        ));
    }
    let deal = match state.ledger.deal(task.deal_id).await {
        Ok(Some(d)) if d.start_time > 0 => d,
        Ok(_) => {
            return Err(fail(
                E::ExecutionNotAuthorizedGetChainDealFailed,
                format!("deal {} not found", task.deal_id),
            ));
        }
        Err(e) => {
            return Err(ledger_fail(
                E::ExecutionNotAuthorizedGetChainDealFailed,
                format!("deal {}", task.deal_id),
                e,
            ));
        }
    };
    let Some(framework) = TeeFramework::from_tag(&deal.tag) else {
        return Err(fail(
            E::ExecutionNotAuthorizedNoMatchOnchainType,
            format!("deal tag {} selects no TEE framework", deal.tag),
        ));
    };
    if !auth.is_signed_by_workerpool_owner(deal.workerpool.owner) {
        return Err(fail(
            E::ExecutionNotAuthorizedInvalidSignature,
            format!(
                "signature.value is not signed by the workerpool owner {}",
                deal.workerpool.owner
            ),
        ));
    }
    let tee = &state.tee;
    if framework != tee.framework {
        return Err(fail(
            E::ExecutionNotAuthorizedTeeFrameworkMismatch,
            format!(
                "the deal runs on {framework}, this SMS serves {}",
                tee.framework
            ),
        ));
    }
    if auth.deal_id != B256::ZERO && auth.deal_id != task.deal_id {
        tracing::info!(task = %task_id, "authorization dealId differs from the task's deal (ignored)");
    }

    // 4.4 task description.
    let app = match state.ledger.app(deal.app.pointer).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return Err(fail(
                E::GetTaskDescriptionFailed,
                format!("app {} not found", deal.app.pointer),
            ));
        }
        Err(e) => {
            return Err(ledger_fail(
                E::GetTaskDescriptionFailed,
                format!("app {}", deal.app.pointer),
                e,
            ));
        }
    };
    let dataset = if deal.has_dataset() {
        match state.ledger.dataset(deal.dataset.pointer).await {
            Ok(Some(d)) => Some(d),
            Ok(None) => {
                return Err(fail(
                    E::GetTaskDescriptionFailed,
                    format!("dataset {} not found", deal.dataset.pointer),
                ));
            }
            Err(e) => {
                return Err(ledger_fail(
                    E::GetTaskDescriptionFailed,
                    format!("dataset {}", deal.dataset.pointer),
                    e,
                ));
            }
        }
    } else {
        None
    };
    let parsed = deal_params::parse(&deal.params);
    if let Some(w) = parsed.warning() {
        tracing::warn!(task = %task_id, warning = %w, "deal params");
    }
    let params = parsed.params;
    let task_input = TaskInput {
        task_id,
        task_index: task.index,
        deal: &deal,
        params: &params,
        worker: auth.worker_wallet,
    };

    // Secrets and challenge.
    let needed = secrets_needed(&task_input);
    let mut secrets = SecretValues::new();
    for id in needed.all() {
        let found = state.store.get(&RecordKey::from(&id)).await.map_err(|e| {
            fail(
                E::SecureSessionGenerationFailed,
                format!("store read failed: {e}"),
            )
        })?;
        if let Some(v) = found {
            secrets.insert(id, v.value);
        }
    }
    let challenge_key = challenge::get(&state.store, &task_id)
        .await
        .map_err(|e| {
            fail(
                E::SecureSessionGenerationFailed,
                format!("store read failed: {e}"),
            )
        })?
        .map(|k| challenge_key_text(&k));

    let pipelines = tee
        .pipelines
        .for_app(framework, &app)
        .map_err(|e| fail(E::SecureSessionGenerationFailed, format!("pipelines: {e}")))?;
    let inputs = SessionInputs {
        task: task_input,
        sms_framework: tee.framework,
        app: &app,
        dataset: dataset.as_ref(),
        pipelines: &pipelines,
        enclave_challenge: auth.enclave_challenge,
        challenge_private_key: challenge_key.as_ref(),
        secrets: &secrets,
    };
    let plan = build_session_plan(&inputs)?;
    for w in &plan.warnings {
        tracing::warn!(task = %task_id, warning = %w, "session plan");
    }

    // Storage for the built-in provisioner.
    let now = challenge::unix_now();
    let ttl_end = now.saturating_add(tee.session_ttl.as_secs());
    let expires_at = if task.final_deadline > 0 {
        ttl_end.min(task.final_deadline)
    } else {
        ttl_end
    };
    if expires_at <= now {
        tracing::warn!(task = %task_id, "the task's final deadline has passed: the session is already expired");
    }
    let mut stored_id = None;
    for _ in 0..4 {
        let id = session_id(&mut rand::rng(), &task_id);
        let stored = StoredSession::from_plan(id.clone(), &plan, auth.worker_wallet, expires_at);
        let json = Zeroizing::new(serde_json::to_vec(&stored).map_err(|e| {
            fail(
                E::SecureSessionGenerationFailed,
                format!("session encoding: {e}"),
            )
        })?);
        let value = SecretValue::new(json.to_vec());
        let expires = i64::try_from(expires_at).unwrap_or(i64::MAX);
        match state
            .store
            .insert(&session_key(&id), &value, Some(expires))
            .await
        {
            Ok(Insert::Inserted) => {
                stored_id = Some(id);
                break;
            }
            Ok(Insert::AlreadyExists) => continue,
            Err(e) => {
                return Err(fail(
                    E::SecureSessionStorageCallFailed,
                    format!("session store write failed: {e}"),
                ));
            }
        }
    }
    let session_id = stored_id.ok_or_else(|| {
        fail(
            E::SecureSessionGenerationFailed,
            "could not draw a unique session id",
        )
    })?;

    // Optional export to an external provisioner.
    if let Some(exporter) = &tee.exporter {
        exporter
            .deliver(&session_id, &plan)
            .await
            .map_err(|e| fail(E::SecureSessionStorageCallFailed, e))?;
    }
    metrics::counter!("sms_tee_sessions_created_total").increment(1);
    tracing::info!(
        task = %task_id,
        session = %session_id,
        worker = %auth.worker_wallet,
        enclaves = plan.enclaves().count(),
        "TEE session created"
    );
    Ok(CreatedSession {
        session_id,
        secret_provisioning_url: tee.provisioning_url(),
    })
}

/// `POST /tee/challenges/{taskId}` outcome.
#[derive(Debug)]
pub enum ChallengeFailure {
    /// 400: the path is not a task id.
    BadTaskId(String),
    /// 401: any authorization failure.
    Unauthorized(String),
    /// 409: the deal runs on a framework this SMS does not serve.
    FrameworkMismatch(String),
    /// 503: the ledger could not be read.
    LedgerUnavailable(String),
    /// 404: the challenge could not be created or read back.
    NotCreated(String),
}

/// Authorizes the workerpool owner and gets or creates the task's challenge.
pub async fn challenge(
    state: &AppState,
    task_path: &str,
    header: Option<&str>,
) -> Result<Address, ChallengeFailure> {
    use ChallengeFailure as F;
    let task_id: B256 = parse_task_id(task_path).ok_or_else(|| {
        F::BadTaskId(format!(
            "'{}' is not a task id (0x + 64 hex)",
            task_path.chars().take(80).collect::<String>()
        ))
    })?;
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            F::Unauthorized(
                "the Authorization header (workerpool owner signature) is missing".into(),
            )
        })?;
    let sig = EthSignature::parse(header).map_err(|e| {
        F::Unauthorized(format!(
            "the Authorization header is not a 65-byte hex signature: {e}"
        ))
    })?;
    let task = match state.ledger.task(task_id).await {
        Ok(Some(t)) if t.deal_id != B256::ZERO => t,
        Ok(_) => return Err(F::Unauthorized(format!("task {task_id} not found"))),
        Err(e) => return Err(F::LedgerUnavailable(e.to_string())),
    };
    if task.status != TaskStatus::Active {
        return Err(F::Unauthorized(format!(
            "task {task_id} is {:?}, not ACTIVE",
            task.status
        )));
    }
    let deal = match state.ledger.deal(task.deal_id).await {
        Ok(Some(d)) if d.start_time > 0 => d,
        Ok(_) => return Err(F::Unauthorized(format!("deal {} not found", task.deal_id))),
        Err(e) => return Err(F::LedgerUnavailable(e.to_string())),
    };
    let Some(framework) = TeeFramework::from_tag(&deal.tag) else {
        return Err(F::Unauthorized(format!(
            "deal tag {} selects no TEE framework",
            deal.tag
        )));
    };
    let digest = sms_core::challenge::enclave_challenge_request(&task_id);
    if !sms_core::signature::is_signed_by(&sig, &digest, deal.workerpool.owner) {
        return Err(F::Unauthorized(format!(
            "the Authorization header is not signed by the workerpool owner {}",
            deal.workerpool.owner
        )));
    }
    if framework != state.tee.framework {
        return Err(F::FrameworkMismatch(format!(
            "the deal runs on {framework}, this SMS serves {}",
            state.tee.framework
        )));
    }
    let expires_at = if task.final_deadline > 0 {
        task.final_deadline
    } else {
        challenge::unix_now() + challenge::MISSING_DEADLINE_RETENTION_SECS
    };
    challenge::get_or_create(&state.store, &task_id, expires_at)
        .await
        .map_err(|e| F::NotCreated(e.to_string()))
}

fn parse_task_id(text: &str) -> Option<B256> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))?;
    if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    text.parse().ok()
}
