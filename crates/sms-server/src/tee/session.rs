//! `POST /tee/sessions` as a list of steps, each returning what the next needs:
//! `verify_worker → (the route counts the workerpool signer's rate) → authorize_session_task →
//! read_task_records (the task's session index, secrets and challenge key: one store read) →
//! find_live_session → describe_task (with the bulk slice, `super::bulk`) → gather_secrets →
//! build_plan → store_session → export`. Both signatures are recovered offline in the first
//! step: a request nobody could have signed costs no chain read. Every failure is a
//! [`SessionError`] whose code is the wire contract; details name what was wrong and never
//! carry secret values. `/tee/challenges` shares the on-chain checks ([`super::task`]).

use sms_core::authorization::WorkerpoolAuthorization;
use sms_core::deal_params::{self, DealParams};
use sms_core::ledger::{AppEntry, DatasetEntry, Deal};
use sms_core::secret::{SecretId, SecretValue};
use sms_core::session_plan::{
    SecretValues, SecretsNeeded, SessionInputs, SessionPlan, TaskInput, build_session_plan,
    secrets_needed, session_id,
};
use sms_core::signature::EthSignature;
use sms_core::stored_session::StoredSession;
use sms_core::tee_error::{SessionError, TeeSessionGenerationError as E};
use sms_core::{Address, B256};
use sms_store::{Insert, Namespace, NewRow, RecordKey};
use zeroize::Zeroizing;

use super::challenge;
use super::task::{self, AuthorizedTask, TaskRefusal};
use crate::provision::SessionRow;
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

/// A failed store call: 503 when the store could not be reached in time (the caller may
/// retry), the reference's refusal otherwise.
fn store_fail(code: E, what: &str, error: sms_store::StoreError) -> SessionError {
    if error.is_unavailable() || matches!(error, sms_store::StoreError::AuditRefused(_)) {
        SessionError::unavailable(code, format!("{what}: {error}"))
    } else {
        fail(code, format!("{what}: {error}"))
    }
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

/// The challenge key in the form the plan builder reads (hex text of 32 bytes).
fn challenge_key_text(stored: &SecretValue) -> SecretValue {
    match challenge::key_of(stored) {
        Some(raw) => {
            let hex = Zeroizing::new(sms_core::hex::encode_prefixed(raw.as_slice()));
            SecretValue::new(hex.as_bytes().to_vec())
        }
        // Unusable key: hand it over as is, the builder answers EMPTY_TEE_CREDENTIALS.
        None => SecretValue::new(stored.as_bytes().to_vec()),
    }
}

/// Runs the steps of session creation after [`verify_worker`], in order. Each step returns
/// what the next needs.
pub async fn create(
    state: &AppState,
    worker: VerifiedWorker,
) -> Result<CreatedSession, SessionError> {
    let VerifiedWorker { auth, pool_signer } = worker;
    let task = authorize_session_task(state, &auth, pool_signer).await?;
    let params = deal_params_of(&task.task_id, &task.deal);
    let records = read_task_records(state, &task, &params, &auth).await?;
    if let Some(existing) = find_live_session(state, &auth, records.index)? {
        return Ok(created(state, existing));
    }
    let assets = describe_task(state, &task, params).await?;
    let secrets = gather_secrets(state, &assets, records.secrets, records.challenge_key).await?;
    let plan = build_plan(state, &task, &assets, &secrets, &auth)?;
    let session_id = store_session(state, &task, &assets, &secrets, &plan, &auth).await?;
    export(state, &session_id, &plan).await?;
    metrics::counter!("sms_tee_sessions_created_total").increment(1);
    tracing::info!(
        task = %task.task_id,
        session = %session_id,
        worker = %auth.worker_wallet,
        enclaves = plan.enclaves().count(),
        "TEE session created"
    );
    Ok(created(state, session_id))
}

fn created(state: &AppState, session_id: String) -> CreatedSession {
    CreatedSession {
        session_id,
        secret_provisioning_url: state.tee.provisioning_url(),
    }
}

/// What step 1 establishes offline: the authorization, signed by its worker, and who signed
/// it as the workerpool owner (checked against the chain in step 2).
#[derive(Debug)]
pub struct VerifiedWorker {
    pub auth: WorkerpoolAuthorization,
    pub pool_signer: Address,
}

/// Step 1: the body is a WorkerpoolAuthorization, signed by its worker in `Authorization`,
/// whose body signature recovers to an address (the workerpool owner's, if genuine).
pub fn verify_worker(header: Option<&str>, body: &[u8]) -> Result<VerifiedWorker, SessionError> {
    // Body first: without it there is no hash for the worker signature.
    let auth = WorkerpoolAuthorization::from_json_bytes(body).map_err(|e| e.to_session_error())?;
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
    if auth.chain_task_id == B256::ZERO {
        return Err(fail(
            E::ExecutionNotAuthorizedEmptyParamsUnauthorized,
            "chainTaskId is zero",
        ));
    }
    let pool_signer = auth.signature.recover_eip191(&auth.hash()).map_err(|e| {
        fail(
            E::ExecutionNotAuthorizedInvalidSignature,
            format!("the authorization signature recovers to no address: {e}"),
        )
    })?;
    Ok(VerifiedWorker { auth, pool_signer })
}

/// Step 2: the shared on-chain checks ([`task::authorize_task`]), with the workerpool owner's
/// signature being the authorization's.
async fn authorize_session_task(
    state: &AppState,
    auth: &WorkerpoolAuthorization,
    pool_signer: Address,
) -> Result<AuthorizedTask, SessionError> {
    let task = task::authorize_task(
        state.ledger.as_ref(),
        state.tee.framework,
        auth.chain_task_id,
        |owner| owner == pool_signer,
    )
    .await
    .map_err(|refusal| {
        let code = refusal_code(&refusal);
        if refusal.is_unavailable() {
            SessionError::unavailable(code, refusal.to_string())
        } else {
            fail(code, refusal.to_string())
        }
    })?;
    if auth.deal_id != B256::ZERO && auth.deal_id != task.task.deal_id {
        tracing::info!(task = %task.task_id, "authorization dealId differs from the task's deal (ignored)");
    }
    Ok(task)
}

/// The session error code of a failed on-chain check.
pub fn refusal_code(refusal: &TaskRefusal) -> E {
    match refusal {
        TaskRefusal::TaskUnknown(_) | TaskRefusal::TaskUnreadable(..) => {
            E::ExecutionNotAuthorizedGetChainTaskFailed
        }
        TaskRefusal::TaskNotActive(..) => E::ExecutionNotAuthorizedTaskNotActive,
        TaskRefusal::DealUnknown(_) | TaskRefusal::DealUnreadable(..) => {
            E::ExecutionNotAuthorizedGetChainDealFailed
        }
        TaskRefusal::NotTee(_) => E::ExecutionNotAuthorizedNoMatchOnchainType,
        TaskRefusal::NotSignedByPoolOwner(_) => E::ExecutionNotAuthorizedInvalidSignature,
        TaskRefusal::FrameworkNotServed { .. } => E::ExecutionNotAuthorizedTeeFrameworkMismatch,
    }
}

/// What step 3 reads in one store call, before the ledger is asked for more: the task's
/// session index, the secrets its deal needs (a bulk deal's dataset keys come with its
/// checked slice, in step 6) and its challenge key.
struct TaskRecords {
    index: Option<sms_store::Versioned>,
    secrets: SecretValues,
    challenge_key: Option<SecretValue>,
}

/// Step 3: the task's records, in one multi-key read.
async fn read_task_records(
    state: &AppState,
    task: &AuthorizedTask,
    params: &DealParams,
    auth: &WorkerpoolAuthorization,
) -> Result<TaskRecords, SessionError> {
    let needed = secrets_needed(&task_input(task, params, auth));
    let extra = [
        TaskSession::key(&task.task_id),
        challenge::key(&task.task_id),
    ];
    let (secrets, found) = read_values(state, needed.all(), &extra)
        .await
        .map_err(|e| {
            store_fail(
                E::SecureSessionStorageCallFailed,
                "task records read failed",
                e,
            )
        })?;
    // One row per key of `extra`, in its order.
    let mut found = found.into_iter();
    Ok(TaskRecords {
        index: found.next().flatten(),
        secrets,
        challenge_key: found.next().flatten().map(|v| v.value),
    })
}

/// Step 4: one task, one session. The live session of the same worker and challenge is
/// answered again (so a retrying worker gets the same session and budget); another worker's
/// request for a task with a live session is refused.
fn find_live_session(
    state: &AppState,
    auth: &WorkerpoolAuthorization,
    index: Option<sms_store::Versioned>,
) -> Result<Option<String>, SessionError> {
    match TaskSession::live_of(index, state.clock.now())? {
        Some(existing) => existing
            .same_holder(auth)
            .map(|()| Some(existing.session_id)),
        None => Ok(None),
    }
}

/// What the session is built from besides secrets.
struct TaskAssets {
    app: AppEntry,
    dataset: Option<DatasetEntry>,
    params: DealParams,
    /// The checked slice of a bulk deal.
    bulk: Option<sms_core::bulk::BulkSlice>,
}

/// Step 5: the app, the dataset (if any) and, for a bulk deal, its checked slice
/// ([`super::bulk::resolve_slice`]), with the deal params.
async fn describe_task(
    state: &AppState,
    task: &AuthorizedTask,
    params: DealParams,
) -> Result<TaskAssets, SessionError> {
    let app = find_app(state, &task.deal).await?;
    let dataset = find_dataset(state, &task.deal).await?;
    let bulk = super::bulk::resolve_slice(state, task, &params).await?;
    Ok(TaskAssets {
        app,
        dataset,
        params,
        bulk,
    })
}

/// Step 5a: the deal's app entry.
pub(crate) async fn find_app(state: &AppState, deal: &Deal) -> Result<AppEntry, SessionError> {
    let app = deal.app.pointer;
    required_entry("app", app, state.ledger.app(app).await)
}

/// An entry the task names, read from the ledger: absent or unreadable refuses the session.
fn required_entry<T>(
    what: &str,
    address: Address,
    read: Result<Option<T>, sms_chain::LedgerError>,
) -> Result<T, SessionError> {
    match read {
        Ok(Some(entry)) => Ok(entry),
        Ok(None) => Err(fail(
            E::GetTaskDescriptionFailed,
            format!("{what} {address} not found"),
        )),
        Err(e) => Err(ledger_fail(
            E::GetTaskDescriptionFailed,
            format!("{what} {address}"),
            e,
        )),
    }
}

/// Step 5b: the deal's dataset entry, `None` when the deal has no dataset.
pub(crate) async fn find_dataset(
    state: &AppState,
    deal: &Deal,
) -> Result<Option<DatasetEntry>, SessionError> {
    if !deal.has_dataset() {
        return Ok(None);
    }
    let dataset = deal.dataset.pointer;
    required_entry("dataset", dataset, state.ledger.dataset(dataset).await).map(Some)
}

/// The deal params (a malformed text falls back as upstream does, with a warning).
pub(crate) fn deal_params_of(task_id: &B256, deal: &Deal) -> DealParams {
    let parsed = deal_params::parse(&deal.params);
    if let Some(w) = parsed.warning() {
        tracing::warn!(task = %task_id, warning = %w, "deal params");
    }
    parsed.params
}

fn task_input<'a>(
    task: &'a AuthorizedTask,
    params: &'a DealParams,
    auth: &WorkerpoolAuthorization,
) -> TaskInput<'a> {
    TaskInput {
        task_id: task.task_id,
        task_index: task.task.index,
        deal: &task.deal,
        params,
        worker: auth.worker_wallet,
    }
}

/// The stored values a plan is built from.
struct GatheredSecrets {
    secrets: SecretValues,
    challenge_key: Option<SecretValue>,
}

fn secret_read_failed(e: sms_store::StoreError) -> SessionError {
    store_fail(E::SecureSessionGenerationFailed, "store read failed", e)
}

/// Step 6: the values the plan is built from: those step 3 read, with a bulk slice's dataset
/// keys.
async fn gather_secrets(
    state: &AppState,
    assets: &TaskAssets,
    mut secrets: SecretValues,
    challenge_key: Option<SecretValue>,
) -> Result<GatheredSecrets, SessionError> {
    if let Some(slice) = &assets.bulk {
        let (bulk, _) = read_values(state, slice.secrets_needed(), &[])
            .await
            .map_err(secret_read_failed)?;
        secrets.extend(bulk);
    }
    Ok(GatheredSecrets {
        secrets,
        challenge_key: challenge_key.map(|k| challenge_key_text(&k)),
    })
}

/// The stored values of the secrets a task needs (absent ones left out).
pub(crate) async fn read_secrets(
    state: &AppState,
    needed: &SecretsNeeded,
) -> Result<SecretValues, SessionError> {
    let (secrets, _) = read_values(state, needed.all(), &[])
        .await
        .map_err(secret_read_failed)?;
    Ok(secrets)
}

/// The secrets of `ids` that exist and the rows of `extra`, in order: one multi-key read.
async fn read_values(
    state: &AppState,
    ids: Vec<SecretId>,
    extra: &[RecordKey],
) -> Result<(SecretValues, Vec<Option<sms_store::Versioned>>), sms_store::StoreError> {
    let mut keys: Vec<RecordKey> = ids.iter().map(RecordKey::from).collect();
    keys.extend_from_slice(extra);
    let mut values = state.store.get_many(&keys).await?.into_iter();
    let mut secrets = SecretValues::new();
    for (id, value) in ids.into_iter().zip(values.by_ref()) {
        if let Some(v) = value {
            secrets.insert(id, v.value);
        }
    }
    Ok((secrets, values.collect()))
}

/// Step 7: the pure plan builder (every enclave's environment and expected measurement).
fn build_plan(
    state: &AppState,
    task: &AuthorizedTask,
    assets: &TaskAssets,
    secrets: &GatheredSecrets,
    auth: &WorkerpoolAuthorization,
) -> Result<SessionPlan, SessionError> {
    let tee = &state.tee;
    let pipelines = tee
        .pipelines
        .for_app(task.framework, &assets.app)
        .map_err(|e| fail(E::SecureSessionGenerationFailed, format!("pipelines: {e}")))?;
    let inputs = SessionInputs {
        task: task_input(task, &assets.params, auth),
        sms_framework: tee.framework,
        app: &assets.app,
        dataset: assets.dataset.as_ref(),
        pipelines: &pipelines,
        enclave_challenge: auth.enclave_challenge,
        challenge_private_key: secrets.challenge_key.as_ref(),
        secrets: &secrets.secrets,
        bulk: assets.bulk.as_ref(),
    };
    let plan = build_session_plan(&inputs)?;
    for w in &plan.warnings {
        tracing::warn!(task = %task.task_id, warning = %w, "session plan");
    }
    Ok(plan)
}

/// Step 8: the sealed session for the built-in provisioner and the task's session index,
/// in one transaction with the session's audit entry (the session is the task's from then
/// on). Of concurrent identical requests one insert wins; the others write nothing and
/// answer the winner's.
async fn store_session(
    state: &AppState,
    task: &AuthorizedTask,
    assets: &TaskAssets,
    secrets: &GatheredSecrets,
    plan: &SessionPlan,
    auth: &WorkerpoolAuthorization,
) -> Result<String, SessionError> {
    let storage_failed = |e: sms_store::StoreError| {
        store_fail(
            E::SecureSessionStorageCallFailed,
            "session store write failed",
            e,
        )
    };
    let now = state.clock.now();
    let ttl_end = now.saturating_add(state.tee.session_ttl.as_secs());
    let expires_at = match task.task.final_deadline {
        0 => ttl_end,
        deadline => ttl_end.min(deadline),
    };
    if expires_at <= now {
        tracing::warn!(task = %task.task_id, "the task's final deadline has passed: the session is already expired");
    }
    for _ in 0..4 {
        let id = session_id(&mut rand::rng(), &task.task_id);
        let stored = StoredSession::from_plan(id.clone(), plan, auth.worker_wallet, expires_at);
        let index = TaskSession {
            session_id: id.clone(),
            worker: auth.worker_wallet,
            enclave_challenge: auth.enclave_challenge,
            expires_at,
        };
        let event = session_event(task, assets, secrets, auth, &id);
        let session_row = SessionRow::of(&stored).map_err(storage_failed)?;
        if index
            .insert_with(&state.store, &task.task_id, &session_row, &event)
            .await
            .map_err(storage_failed)?
        {
            return Ok(id);
        }
        // The task has a session (another request won, or one that expired and is not swept
        // yet), or the drawn id was taken.
        match TaskSession::get_versioned(&state.store, &task.task_id)
            .await
            .map_err(storage_failed)?
        {
            Some((winner, _)) if winner.expires_at > now => {
                return winner.same_holder(auth).map(|()| winner.session_id);
            }
            // Expired: it releases nothing any more, and the task may have a new session (with
            // the same release budget, which is the task's). Only that exact index row goes.
            Some((_, version)) => {
                state
                    .store
                    .delete_at(&TaskSession::key(&task.task_id), version)
                    .await
                    .map_err(storage_failed)?;
            }
            None => {}
        }
    }
    Err(fail(
        E::SecureSessionGenerationFailed,
        "could not draw a unique session id",
    ))
}

/// Step 9: the optional export to an external provisioner (SCONE CAS, Gramine SPS, TDX).
async fn export(
    state: &AppState,
    session_id: &str,
    plan: &SessionPlan,
) -> Result<(), SessionError> {
    match &state.tee.exporter {
        Some(exporter) => exporter
            .deliver(session_id, plan)
            .await
            .map_err(|e| fail(E::SecureSessionStorageCallFailed, e)),
        None => Ok(()),
    }
}

/// The audit entry of the session (docs/audit.md): who runs what, with which secrets, by
/// identity.
fn session_event(
    task: &AuthorizedTask,
    assets: &TaskAssets,
    secrets: &GatheredSecrets,
    auth: &WorkerpoolAuthorization,
    session_id: &str,
) -> sms_core::audit::AuditEvent {
    use sms_core::hex::encode_prefixed as hex;
    let mut held: Vec<sms_core::audit::SecretRef> =
        secrets.secrets.keys().map(Into::into).collect();
    held.sort();
    sms_core::audit::AuditEvent::SessionCreated {
        task: hex(task.task_id),
        deal: hex(task.deal.deal_id),
        session: session_id.to_owned(),
        app: hex(task.deal.app.pointer),
        dataset: assets
            .dataset
            .as_ref()
            .map(|_| hex(task.deal.dataset.pointer)),
        requester: hex(task.deal.requester),
        workerpool: hex(task.deal.workerpool.pointer),
        worker: hex(auth.worker_wallet),
        secrets: held,
    }
}

fn index_read_failed(e: sms_store::StoreError) -> SessionError {
    store_fail(
        E::SecureSessionStorageCallFailed,
        "session index read failed",
        e,
    )
}

/// The live session of a task: `RecordKey("tee-task-session", "", <taskId>)`, sealed JSON,
/// expiring with the session. Only this type builds that key or decodes that record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSession {
    pub session_id: String,
    pub worker: Address,
    pub enclave_challenge: Address,
    /// Unix seconds.
    pub expires_at: u64,
}

impl TaskSession {
    fn name_of(task_id: &B256) -> String {
        sms_core::hex::encode_prefixed(task_id)
    }

    /// The index row's key: `("", <taskId>)`.
    fn key(task_id: &B256) -> RecordKey {
        Namespace::TeeTaskSession.key("", Self::name_of(task_id))
    }

    /// An index row decoded, with its version.
    fn decode(found: sms_store::Versioned) -> Result<(Self, i64), sms_store::StoreError> {
        serde_json::from_slice(found.value.as_bytes())
            .map(|index| (index, found.version))
            .map_err(|e| sms_store::StoreError::Key(format!("task session index: {e}")))
    }

    /// The index with the version of its row.
    async fn get_versioned(
        store: &sms_store::Store,
        task_id: &B256,
    ) -> Result<Option<(Self, i64)>, sms_store::StoreError> {
        store
            .get(&Self::key(task_id))
            .await?
            .map(Self::decode)
            .transpose()
    }

    /// The session of a task unexpired at `now` (Unix seconds), if any.
    pub async fn live(
        store: &sms_store::Store,
        task_id: &B256,
        now: u64,
    ) -> Result<Option<Self>, SessionError> {
        let row = store
            .get(&Self::key(task_id))
            .await
            .map_err(index_read_failed)?;
        Self::live_of(row, now)
    }

    /// The index read as `row`, if unexpired at `now` (Unix seconds).
    fn live_of(row: Option<sms_store::Versioned>, now: u64) -> Result<Option<Self>, SessionError> {
        let found = row
            .map(Self::decode)
            .transpose()
            .map_err(index_read_failed)?;
        Ok(found
            .map(|(index, _)| index)
            .filter(|index| index.expires_at > now))
    }

    /// Inserts the index and the session's row with the session's audit entry, all or
    /// nothing; false (nothing written) when the task has an index or the session id exists.
    async fn insert_with(
        &self,
        store: &sms_store::Store,
        task_id: &B256,
        session: &SessionRow,
        event: &sms_core::audit::AuditEvent,
    ) -> Result<bool, sms_store::StoreError> {
        let json = serde_json::to_vec(self)
            .map_err(|e| sms_store::StoreError::Key(format!("task session index: {e}")))?;
        let index_key = Self::key(task_id);
        let index_value = SecretValue::new(json);
        let expires = Some(i64::try_from(self.expires_at).unwrap_or(i64::MAX));
        let event = |_| event.clone();
        let rows = [
            session.new_row(),
            NewRow {
                key: &index_key,
                value: &index_value,
                expires_at: expires,
            },
        ];
        let written = store.audited(&event).insert_all(&rows).await?;
        Ok(written == Insert::Inserted)
    }

    /// Ok when `auth` comes from the worker and challenge this session was created for.
    fn same_holder(&self, auth: &WorkerpoolAuthorization) -> Result<(), SessionError> {
        self.ensure_held_by(
            &auth.chain_task_id,
            auth.worker_wallet,
            auth.enclave_challenge,
        )
    }

    /// Ok when this session was created for `worker` and `enclave_challenge`.
    pub fn ensure_held_by(
        &self,
        task_id: &B256,
        worker: Address,
        enclave_challenge: Address,
    ) -> Result<(), SessionError> {
        if self.worker == worker && self.enclave_challenge == enclave_challenge {
            return Ok(());
        }
        Err(fail(
            E::ExecutionNotAuthorizedTaskSessionTaken,
            format!(
                "task {task_id} already has a live session for worker {} (until {}): one task, one session",
                self.worker, self.expires_at
            ),
        ))
    }
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
    /// 503: the store could not be reached in time.
    StoreUnavailable(String),
    /// 429: the signer is over its rate (`--rate-limit-signer`).
    RateLimited(crate::limits::rate::RateRefusal),
}

/// Authorizes the workerpool owner and gets or creates the task's challenge. The signer is
/// recovered and its rate counted offline; only then is the chain read (task, then its deal,
/// which holds the workerpool owner).
pub async fn challenge(
    state: &AppState,
    task_path: &str,
    header: Option<&str>,
) -> Result<Address, ChallengeFailure> {
    use ChallengeFailure as F;
    let task_id = task_id_of(task_path).map_err(F::BadTaskId)?;
    let sig = owner_signature(header).map_err(F::Unauthorized)?;
    let digest = sms_core::challenge::enclave_challenge_request(&task_id);
    let signer = sig.recover_eip191(&digest).map_err(|e| {
        F::Unauthorized(format!(
            "the Authorization header recovers to no address: {e}"
        ))
    })?;
    state
        .rates
        .check_signer(crate::limits::family::TEE_CHALLENGE, signer)
        .map_err(F::RateLimited)?;
    let task = task::authorize_task(
        state.ledger.as_ref(),
        state.tee.framework,
        task_id,
        |owner| owner == signer,
    )
    .await
    .map_err(|refusal| match refusal {
        r if r.is_unavailable() => F::LedgerUnavailable(r.to_string()),
        r @ TaskRefusal::FrameworkNotServed { .. } => F::FrameworkMismatch(r.to_string()),
        r @ TaskRefusal::NotSignedByPoolOwner(_) => {
            F::Unauthorized(format!("the Authorization header is {r}"))
        }
        r => F::Unauthorized(r.to_string()),
    })?;
    let expires_at = match task.task.final_deadline {
        0 => state.clock.now() + challenge::MISSING_DEADLINE_RETENTION_SECS,
        deadline => deadline,
    };
    let issued = |challenge: Address| sms_core::audit::AuditEvent::ChallengeIssued {
        task: sms_core::hex::encode_prefixed(task_id),
        challenge: sms_core::hex::encode_prefixed(challenge),
        workerpool: sms_core::hex::encode_prefixed(task.deal.workerpool.pointer),
    };
    let address = challenge::get_or_create(&state.store, &task_id, expires_at, issued)
        .await
        .map_err(|e| match e {
            challenge::ChallengeError::Store(e)
                if e.is_unavailable() || matches!(e, sms_store::StoreError::AuditRefused(_)) =>
            {
                F::StoreUnavailable(e.to_string())
            }
            e => F::NotCreated(e.to_string()),
        })?;
    Ok(address)
}

/// The workerpool owner's signature in the `Authorization` header (scheduler routes).
pub fn owner_signature(header: Option<&str>) -> Result<EthSignature, String> {
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            "the Authorization header (workerpool owner signature) is missing".to_owned()
        })?;
    EthSignature::parse(header)
        .map_err(|e| format!("the Authorization header is not a 65-byte hex signature: {e}"))
}

/// The task id of a path segment, or why it is not one.
pub fn task_id_of(task_path: &str) -> Result<B256, String> {
    parse_task_id(task_path).ok_or_else(|| {
        format!(
            "taskId '{}' is not a task id (0x + 64 hex)",
            task_path.chars().take(80).collect::<String>()
        )
    })
}

pub(crate) fn parse_task_id(text: &str) -> Option<B256> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))?;
    if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    text.parse().ok()
}
