//! The built-in attested provisioner: releases the environment of one service of a stored TEE
//! session to an enclave that proves, by remote attestation, that it runs the measurement the
//! session expects and holds the key the environment is sealed to. Protocol: docs/provisioning.md.
//!
//! A release is a list of steps, each returning what the next needs: `parse_request →
//! read_ahead (nonce, session and release log in one store read) → take_nonce →
//! decode_session → find_service → verify_evidence → check_task_live →
//! count_release (with its audit entry) → seal_answer`. A refusal after the session is found is
//! an audit entry too; the release's own entry is written before anything is sealed, and if
//! it cannot be, nothing is (docs/audit.md). The answer is signed by the SMS identity over the transcript
//! of the exchange, so an enclave that pins the identity refuses anything else.

mod records;
pub mod refusal;

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use sms_attest::pccs::{PccsClient, PccsConfig};
use sms_attest::provision::{NonceAnswer, ReleaseAnswer, ReleaseRequest, ReleasedEnv};
use sms_attest::{
    CollateralSource, Evidence, Policy, ReleaseTranscript, SmsIdentity, SmsPublicKey, TeeKind,
    VerifiedReport, Verifier, VerifyError,
};
use sms_chain::Ledger;
use sms_core::audit::AuditEvent;
use sms_core::session_plan::EnclaveRole;
use sms_core::stored_session::{StoredService, StoredSession};
use sms_store::{Namespace, Store};
use zeroize::Zeroizing;

use crate::attest_args::{AttestArgs, Clock, IEXEC_IGNORED_ADVISORIES_ENV};
use crate::startup::StartupError;
use records::{NonceRecord, Reserve};
pub use records::{ReleaseEntry, ReleaseLog, release_key};
pub use refusal::Refusal;

/// Random bytes in a nonce.
pub const NONCE_LEN: usize = 32;

/// How often expired nonces are swept (opportunistically, when nonces are issued).
const SWEEP_EVERY_MS: u64 = 60_000;

pub struct Provisioner {
    identity: SmsIdentity,
    verifier: Verifier,
    collateral: Option<CollateralSource>,
    release_limit: u32,
    nonce_ttl_ms: u64,
    clock: Clock,
    last_sweep_ms: AtomicU64,
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner")
            .field("allow_simulated", &self.verifier.allows_simulated())
            .field("policy", self.verifier.policy())
            .field("release_limit", &self.release_limit)
            .field("nonce_ttl_ms", &self.nonce_ttl_ms)
            .finish_non_exhaustive()
    }
}

/// The policy from the file (if any) plus the flags; `env` reads the iExec fallback variable.
pub fn policy_from_args(
    args: &AttestArgs,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Policy, String> {
    let mut policy = match &args.attest_policy {
        Some(path) => {
            let text = std::fs::read(path)
                .map_err(|e| format!("cannot read policy {}: {e}", path.display()))?;
            serde_json::from_slice::<Policy>(&text)
                .map_err(|e| format!("policy {} is not a valid policy: {e}", path.display()))?
        }
        None => Policy::default(),
    };
    for status in &args.accept_tcb_status {
        policy = policy.accept_status(*status);
    }
    let ignored: Vec<String> = if args.ignored_advisories.is_empty() {
        env(IEXEC_IGNORED_ADVISORIES_ENV)
            .map(|list| Policy::parse_advisory_list(&list).into_iter().collect())
            .unwrap_or_default()
    } else {
        args.ignored_advisories
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    Ok(policy.ignore_advisories(ignored))
}

impl Provisioner {
    /// Builds the provisioner from its flags; `dev` implies simulated evidence.
    pub fn build(
        args: &AttestArgs,
        dev: bool,
        identity: SmsIdentity,
    ) -> Result<Self, StartupError> {
        let policy = policy_from_args(args, |name| std::env::var(name).ok())
            .map_err(StartupError::Config)?;
        let mut verifier = Verifier::new(policy);
        if args.simulated_allowed(dev) {
            verifier = verifier.dangerous_allow_simulated();
        }
        let collateral = match (&args.pccs_url, &args.collateral_dir) {
            (Some(url), _) => Some(CollateralSource::Pccs(
                PccsClient::new(PccsConfig::new(url.clone()))
                    .map_err(|e| StartupError::Config(format!("--pccs-url: {e}")))?,
            )),
            (None, Some(dir)) => Some(CollateralSource::offline(dir).map_err(|e| {
                StartupError::Config(format!("--collateral-dir {}: {e}", dir.display()))
            })?),
            (None, None) => None,
        };
        let provisioner = Provisioner {
            identity,
            verifier,
            collateral,
            release_limit: args.release_limit.max(1),
            nonce_ttl_ms: args.nonce_ttl_secs.saturating_mul(1000),
            clock: args.clock.clone().unwrap_or_else(Clock::system),
            last_sweep_ms: AtomicU64::new(0),
        };
        provisioner.announce();
        Ok(provisioner)
    }

    fn announce(&self) {
        if self.verifier.allows_simulated() {
            tracing::warn!(
                "!!! SIMULATED TEE EVIDENCE IS ACCEPTED: /tee/provisioning releases secrets to ANY caller claiming a \
                 measurement, with no hardware proof. Development only: never run with real secrets !!!"
            );
        }
        let collateral = self
            .collateral_source()
            .unwrap_or_else(|| "none (SGX/TDX evidence refused with COLLATERAL_MISSING)".into());
        tracing::info!(
            identity = %self.identity.public_key().key_id(),
            collateral = %collateral,
            policy = ?self.verifier.policy(),
            release_limit = self.release_limit,
            nonce_ttl_ms = self.nonce_ttl_ms,
            "attested provisioner ready"
        );
        self.publish_collateral_expiry(self.clock.now_ms() / 1000);
    }

    /// The key every release answer is signed with.
    pub fn identity(&self) -> &SmsPublicKey {
        self.identity.public_key()
    }

    pub fn allows_simulated(&self) -> bool {
        self.verifier.allows_simulated()
    }

    fn publish_collateral_expiry(&self, now: u64) {
        if let Some(secs) = self
            .collateral
            .as_ref()
            .and_then(|c| c.seconds_until_expiry(now))
        {
            metrics::gauge!("sms_attest_collateral_days_until_expiry").set(secs as f64 / 86_400.0);
            let expires_at = i64::try_from(now).unwrap_or(i64::MAX).saturating_add(secs);
            metrics::gauge!("sms_attest_collateral_expires_at_seconds").set(expires_at as f64);
        }
    }

    /// Releases per service and task (across sessions and replicas).
    pub fn release_limit(&self) -> u32 {
        self.release_limit
    }

    /// Where SGX/TDX collateral comes from, `None` when none is configured (then SGX/TDX
    /// evidence is refused with `COLLATERAL_MISSING`).
    pub fn collateral_source(&self) -> Option<String> {
        self.collateral.as_ref().map(|c| match c {
            CollateralSource::Offline(bundle) => {
                format!("offline bundle ({} entries)", bundle.len())
            }
            CollateralSource::Pccs(client) => format!("PCCS {}", client.config().url),
        })
    }

    /// The attestation policy evidence is judged by.
    pub fn policy(&self) -> &Policy {
        self.verifier.policy()
    }

    /// The service of the task has releases left; answers how many were counted. `known`:
    /// the log's row when it was read ahead for this task.
    pub async fn ensure_release_budget(
        &self,
        store: &Store,
        task_id: &sms_core::B256,
        service: &str,
        known: Option<Option<sms_store::Versioned>>,
    ) -> Result<u32, Refusal> {
        let count = records::release_log(store, task_id, service, known)
            .await?
            .map_or(0, |log| log.count());
        if count >= self.release_limit {
            return Err(Refusal::ReleaseLimitReached {
                limit: self.release_limit,
            });
        }
        Ok(count)
    }

    /// Issues a fresh nonce for `(session_id, service)` once the session and service exist.
    pub async fn issue_nonce(
        &self,
        store: &Store,
        session_id: &str,
        segment: &ServiceSegment,
    ) -> Result<NonceAnswer, Refusal> {
        let service = segment.as_str();
        let now_ms = self.clock.now_ms();
        self.maybe_sweep(store, now_ms).await;
        let ahead = read_ahead(store, session_id, service, None).await?;
        let session = decode_session(ahead.session, session_id, now_ms)?;
        find_service(&session, segment)?;
        // A service already released up to its limit gets no more nonces (saves an attestation).
        let known = ahead.log.and_then(|log| log.for_task(&session.task_id));
        self.ensure_release_budget(store, &session.task_id, service, known)
            .await?;

        let nonce: [u8; NONCE_LEN] = rand::random();
        let expires_at_ms = now_ms.saturating_add(self.nonce_ttl_ms);
        let record = NonceRecord {
            session_id: session_id.to_owned(),
            service: service.to_owned(),
            expires_at_ms,
        };
        if !records::insert_nonce(store, &nonce, &record).await? {
            return Err(Refusal::Internal("nonce collision".into()));
        }
        metrics::counter!("sms_provision_nonces_total").increment(1);
        Ok(NonceAnswer {
            session_id: session_id.to_owned(),
            service: service.to_owned(),
            nonce: STANDARD.encode(nonce),
            expires_at: expires_at_ms.div_ceil(1000),
        })
    }

    /// Checks everything and answers the service's environment sealed to the request's key,
    /// signed by the SMS identity. Each step returns what the next needs.
    pub async fn release(
        &self,
        store: &Store,
        ledger: &dyn Ledger,
        session_id: &str,
        segment: &ServiceSegment,
        body: &[u8],
    ) -> Result<ReleaseAnswer, Refusal> {
        let service = segment.as_str();
        let request = parse_request(body)?;
        let now_ms = self.clock.now_ms();
        let ahead = read_ahead(store, session_id, service, Some(&request.nonce)).await?;
        take_nonce(store, &request, ahead.nonce, session_id, service, now_ms).await?;
        let session = decode_session(ahead.session, session_id, now_ms)?;
        let known_log = ahead.log.and_then(|log| log.for_task(&session.task_id));
        let mut report = None;
        let checked = self
            .check_release(
                store,
                ledger,
                &request,
                &session,
                segment,
                now_ms,
                known_log,
                &mut report,
            )
            .await;
        let (stored, report, number) = match checked {
            Ok(done) => done,
            Err(refusal) => {
                // A refusal of a real session is a security event; its entry is best effort
                // (the answer is a refusal whether or not it is written).
                let event = refused_event(&session, service, report.as_ref(), &refusal);
                crate::audit::record_after(store, &event).await;
                return Err(refusal);
            }
        };
        let answer = self.seal_answer(&request, &session, stored, &report, number)?;
        metrics::counter!("sms_provision_releases_total", "service" => service_label(service), "tee" => report.tee.as_str())
            .increment(1);
        tracing::info!(
            session = %session_id,
            task = %format!("{:#x}", session.task_id),
            worker = %format!("{:#x}", session.worker),
            service = %service,
            tee = %report.tee,
            measurement = %report.measurement_hex(),
            tcb_status = ?report.tcb_status,
            release = number,
            limit = self.release_limit,
            variables = stored.env.len(),
            "environment released"
        );
        Ok(answer)
    }

    /// Steps 3 to 6 (service, evidence, task live, budget), each refusal an audit entry; the
    /// verified report is left in `report` as soon as there is one (the refusal names it).
    #[allow(clippy::too_many_arguments)]
    async fn check_release<'s>(
        &self,
        store: &Store,
        ledger: &dyn Ledger,
        request: &ParsedRequest,
        session: &'s StoredSession,
        segment: &ServiceSegment,
        now_ms: u64,
        known_log: Option<Option<sms_store::Versioned>>,
        report: &mut Option<VerifiedReport>,
    ) -> Result<(&'s StoredService, VerifiedReport, u32), Refusal> {
        let service = segment.as_str();
        let stored = find_service(session, segment)?;
        let verified = self
            .verify_evidence(request, session, stored, now_ms / 1000)
            .await?;
        *report = Some(verified.clone());
        check_task_live(ledger, session, now_ms / 1000).await?;
        let number = self
            .count_release(
                store,
                session,
                service,
                &verified,
                release_entry(session, &verified, request, now_ms / 1000),
                known_log,
            )
            .await?;
        Ok((stored, verified, number))
    }

    /// Step 3: authenticity, policy, measurement and report-data binding of the evidence.
    async fn verify_evidence(
        &self,
        request: &ParsedRequest,
        session: &StoredSession,
        stored: &StoredService,
        now: u64,
    ) -> Result<VerifiedReport, Refusal> {
        let expected = stored
            .expected_measurement(session.framework)
            .map_err(|e| {
                Refusal::Internal(format!(
                    "session {} service {}: {e}",
                    session.session_id,
                    stored.role.name()
                ))
            })?;
        let binding = sms_attest::report_data_binding(&request.nonce, &request.public_key);
        self.verify(&request.evidence, &expected, &binding, now)
            .await
    }

    /// Step 5: the release is counted against the task's budget, in the same transaction as
    /// its audit entry (across sessions and replicas: a check-and-set on one record per task
    /// and service).
    async fn count_release(
        &self,
        store: &Store,
        session: &StoredSession,
        service: &str,
        report: &VerifiedReport,
        entry: ReleaseEntry,
        known_log: Option<Option<sms_store::Versioned>>,
    ) -> Result<u32, Refusal> {
        let granted = |number| granted_event(session, service, report, number);
        match records::reserve_release(
            store,
            &session.task_id,
            service,
            self.release_limit,
            entry,
            &granted,
            known_log,
        )
        .await?
        {
            Reserve::Recorded(number) => Ok(number),
            Reserve::LimitReached => Err(Refusal::ReleaseLimitReached {
                limit: self.release_limit,
            }),
            Reserve::Busy => Err(Refusal::Busy),
        }
    }

    /// Step 6: the environment sealed to the enclave's key, and the identity's signature
    /// over the transcript of this exchange.
    fn seal_answer(
        &self,
        request: &ParsedRequest,
        session: &StoredSession,
        stored: &StoredService,
        report: &VerifiedReport,
        number: u32,
    ) -> Result<ReleaseAnswer, Refusal> {
        let payload = ReleasedEnv {
            env: stored.env.clone(),
        };
        let plaintext = Zeroizing::new(
            serde_json::to_vec(&payload)
                .map_err(|e| Refusal::Internal(format!("environment encoding: {e}")))?,
        );
        let sealed = sms_attest::seal::seal(
            &request.public_key,
            &sms_attest::release_info(&session.session_id, stored.role.name()),
            &plaintext,
        )
        .map_err(|e| Refusal::Internal(format!("sealing: {e}")))?;
        let measurement = report.measurement_hex();
        let key_id = self.identity.public_key().key_id();
        let transcript = ReleaseTranscript {
            key_id: &key_id,
            session_id: &session.session_id,
            service: stored.role.name(),
            nonce: &request.nonce,
            enclave_public_key: &request.public_key,
            request_sha256: &request.body_sha256,
            release: number,
            limit: self.release_limit,
            tee: report.tee.as_str(),
            measurement: &measurement,
            sealed: &sealed,
        };
        let signature = self.identity.sign(&transcript.to_bytes());
        Ok(ReleaseAnswer {
            session_id: session.session_id.clone(),
            service: stored.role.name().to_owned(),
            release: number,
            limit: self.release_limit,
            tee: report.tee.as_str().to_owned(),
            measurement,
            sealed,
            signature,
        })
    }

    async fn verify(
        &self,
        evidence: &Evidence,
        expected_measurement: &sms_attest::ExpectedMeasurement,
        binding: &[u8; 64],
        now: u64,
    ) -> Result<VerifiedReport, Refusal> {
        let result = match (evidence, &self.collateral) {
            (Evidence::Simulated { .. }, _) => {
                self.verifier
                    .verify(evidence, None, expected_measurement, binding, now)
            }
            (_, Some(source)) => {
                let result = self
                    .verifier
                    .verify_with_source(evidence, source, expected_measurement, binding, now)
                    .await;
                self.publish_collateral_expiry(now);
                result
            }
            (_, None) => Err(VerifyError::CollateralMissing(evidence.tee())),
        };
        if evidence.tee() == TeeKind::Simulated {
            let outcome = if result.is_ok() {
                "accepted"
            } else {
                "refused"
            };
            metrics::counter!("sms_attest_simulated_evidence_total", "outcome" => outcome)
                .increment(1);
        }
        Ok(result?)
    }

    async fn maybe_sweep(&self, store: &Store, now_ms: u64) {
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < SWEEP_EVERY_MS
            || self
                .last_sweep_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        match store
            .records(Namespace::TeeProvisionNonce)
            .delete_expired(now)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "expired provisioning nonces deleted"),
            Err(e) => tracing::warn!(error = %e, "provisioning nonce sweep failed"),
        }
    }
}

/// A release request, decoded. Decoding comes first: a malformed request does not burn its
/// nonce.
struct ParsedRequest {
    nonce: [u8; NONCE_LEN],
    public_key: [u8; sms_attest::seal::PUBLIC_KEY_LEN],
    evidence: Evidence,
    /// SHA-256 of the body as received: the signed transcript binds the evidence with it.
    body_sha256: [u8; 32],
}

/// Step 1: the body is a release request with a 32-byte nonce and an X25519 key.
fn parse_request(body: &[u8]) -> Result<ParsedRequest, Refusal> {
    let request: ReleaseRequest = serde_json::from_slice(body)
        .map_err(|e| Refusal::RequestMalformed(format!("body is not a release request: {e}")))?;
    let nonce = STANDARD
        .decode(request.nonce.trim())
        .map_err(|e| Refusal::RequestMalformed(format!("nonce is not base64: {e}")))?
        .try_into()
        .map_err(|_| Refusal::RequestMalformed(format!("nonce must be {NONCE_LEN} bytes")))?;
    let public_key = STANDARD
        .decode(request.public_key.trim())
        .map_err(|e| Refusal::RequestMalformed(format!("publicKey is not base64: {e}")))?;
    sms_attest::seal::parse_public_key(&public_key)
        .map_err(|e| Refusal::RequestMalformed(format!("publicKey: {e}")))?;
    let public_key = public_key
        .try_into()
        .map_err(|_| Refusal::RequestMalformed("publicKey: wrong length".into()))?;
    Ok(ParsedRequest {
        nonce,
        public_key,
        evidence: request.evidence,
        body_sha256: sms_attest::request_sha256(body),
    })
}

/// [`parse_request`] for the fuzz targets ([`crate::fuzzing`]): the refusal code only.
pub(crate) fn parse_request_code(body: &[u8]) -> Result<(), &'static str> {
    parse_request(body).map(|_| ()).map_err(|e| e.code())
}

/// The release log's entry of a release at `now` (its number is set when counted).
fn release_entry(
    session: &StoredSession,
    report: &VerifiedReport,
    request: &ParsedRequest,
    now: u64,
) -> ReleaseEntry {
    ReleaseEntry {
        number: 0,
        at: now,
        session_id: session.session_id.clone(),
        worker: format!("{:#x}", session.worker),
        task_id: format!("{:#x}", session.task_id),
        tee: report.tee.as_str().to_owned(),
        measurement: report.measurement_hex(),
        tcb_status: report.tcb_status.map(|s| s.as_str().to_owned()),
        advisory_ids: report.advisory_ids.clone(),
        public_key_sha256: hex_sha256(&request.public_key),
    }
}

/// What a provisioning call reads in one store round trip: the session, the nonce's row when
/// a nonce is given, and the service's release log for the task the session id names.
struct ReadAhead {
    session: Option<sms_store::Versioned>,
    nonce: Option<sms_store::Versioned>,
    log: Option<records::LogRead>,
}

async fn read_ahead(
    store: &Store,
    session_id: &str,
    service: &str,
    nonce: Option<&[u8]>,
) -> Result<ReadAhead, Refusal> {
    let task = records::task_named_by(session_id);
    let mut keys = vec![records::session_key(session_id)];
    keys.extend(task.map(|t| records::release_key(&t, service)));
    keys.extend(nonce.map(records::nonce_key));
    let mut found = store.get_many(&keys).await?.into_iter();
    let session = found.next().flatten();
    let log = task.map(|task_id| records::LogRead {
        task_id,
        row: found.next().flatten(),
    });
    Ok(ReadAhead {
        session,
        nonce: found.next().flatten(),
        log,
    })
}

/// Step 2: the nonce (read ahead as `found`) is single-use (taken whatever happens next; of
/// two concurrent releases presenting it, one takes it), unexpired, and was issued for this
/// session and service.
async fn take_nonce(
    store: &Store,
    request: &ParsedRequest,
    found: Option<sms_store::Versioned>,
    session_id: &str,
    service: &str,
    now_ms: u64,
) -> Result<(), Refusal> {
    let record = records::take_nonce(store, &request.nonce, found)
        .await?
        .ok_or(Refusal::NonceUnknown)?;
    if now_ms >= record.expires_at_ms {
        return Err(Refusal::NonceExpired {
            expired_at_ms: record.expires_at_ms,
        });
    }
    if record.session_id != session_id || record.service != service {
        return Err(Refusal::NonceMismatch);
    }
    Ok(())
}

/// Step 4: the task is still running: ACTIVE on chain (through the ledger's bounded cache)
/// and before its final deadline.
async fn check_task_live(
    ledger: &dyn Ledger,
    session: &StoredSession,
    now: u64,
) -> Result<(), Refusal> {
    let task = match crate::tee::task::ensure_task_active(ledger, session.task_id).await {
        Ok(task) => task,
        Err(refusal) if refusal.is_unavailable() => {
            return Err(Refusal::ChainUnavailable(refusal.to_string()));
        }
        Err(refusal) => return Err(Refusal::TaskNotLive(refusal.to_string())),
    };
    crate::tee::task::ensure_before_final_deadline(session.task_id, &task, now)
        .map_err(Refusal::TaskNotLive)
}

/// The release's audit entry: it commits with the release count, before anything is sealed
/// (no entry, no release, and nothing counted).
fn granted_event(
    session: &StoredSession,
    service: &str,
    report: &VerifiedReport,
    number: u32,
) -> AuditEvent {
    AuditEvent::ReleaseGranted {
        task: format!("{:#x}", session.task_id),
        session: session.session_id.clone(),
        service: service.to_owned(),
        worker: format!("{:#x}", session.worker),
        tee: report.tee.as_str().to_owned(),
        measurement: report.measurement_hex(),
        tcb_status: report.tcb_status.map(|s| s.as_str().to_owned()),
        advisories: report.advisory_ids.clone(),
        release: number,
    }
}

fn refused_event(
    session: &StoredSession,
    service: &str,
    report: Option<&VerifiedReport>,
    refusal: &Refusal,
) -> AuditEvent {
    AuditEvent::ReleaseRefused {
        task: format!("{:#x}", session.task_id),
        session: session.session_id.clone(),
        // The caller's text: bounded, it is not one of the session's names when unknown.
        service: service.chars().take(64).collect(),
        worker: format!("{:#x}", session.worker),
        code: refusal.code().to_owned(),
        tee: report.map(|r| r.tee.as_str().to_owned()),
        measurement: report.map(VerifiedReport::measurement_hex),
        tcb_status: report.and_then(|r| r.tcb_status.map(|s| s.as_str().to_owned())),
        advisories: report.map(|r| r.advisory_ids.clone()).unwrap_or_default(),
    }
}

fn service_label(service: &str) -> &'static str {
    [
        EnclaveRole::PreCompute,
        EnclaveRole::App,
        EnclaveRole::PostCompute,
    ]
    .into_iter()
    .map(EnclaveRole::name)
    .find(|name| *name == service)
    .unwrap_or("other")
}

fn hex_sha256(bytes: &[u8]) -> String {
    sms_core::hex::encode(Sha256::digest(bytes))
}

/// A session's row as `/tee/sessions` writes it with its task's index: sealed JSON under
/// `RecordKey("tee-session", "", id)`, expiring with the session.
pub struct SessionRow {
    pub key: sms_store::RecordKey,
    pub value: sms_core::secret::SecretValue,
    pub expires_at: Option<i64>,
}

impl SessionRow {
    pub fn of(session: &StoredSession) -> Result<Self, sms_store::StoreError> {
        let json = Zeroizing::new(
            serde_json::to_vec(session)
                .map_err(|e| sms_store::StoreError::Key(format!("session encoding: {e}")))?,
        );
        Ok(Self {
            key: records::session_key(&session.session_id),
            value: sms_core::secret::SecretValue::new(json.to_vec()),
            expires_at: Some(i64::try_from(session.expires_at).unwrap_or(i64::MAX)),
        })
    }

    /// The row for [`Store::insert_all`].
    pub fn new_row(&self) -> sms_store::NewRow<'_> {
        sms_store::NewRow {
            key: &self.key,
            value: &self.value,
            expires_at: self.expires_at,
        }
    }
}

/// Stores `session` alone (no task index), for tests and tools seeding a server; false if
/// the id exists.
pub async fn store_session(
    store: &Store,
    session: &StoredSession,
) -> Result<bool, sms_store::StoreError> {
    let row = SessionRow::of(session)?;
    let inserted = store.insert(&row.key, &row.value, row.expires_at).await?;
    Ok(inserted == sms_store::Insert::Inserted)
}

/// Step 3: the session's row (read ahead) decoded, and unexpired.
fn decode_session(
    stored: Option<sms_store::Versioned>,
    session_id: &str,
    now_ms: u64,
) -> Result<StoredSession, Refusal> {
    let stored = stored.ok_or(Refusal::SessionUnknown)?;
    let session: StoredSession = serde_json::from_slice(stored.value.as_bytes()).map_err(|e| {
        Refusal::Internal(format!("stored session {session_id} is not decodable: {e}"))
    })?;
    if now_ms / 1000 >= session.expires_at {
        return Err(Refusal::SessionExpired {
            expired_at: session.expires_at,
        });
    }
    Ok(session)
}

/// The `{service}` segment of a provisioning path, parsed by the route: an enclave role, or
/// text that names none (kept, bounded, for the refusal). Text that names no role is refused
/// with `SERVICE_UNKNOWN` where the service is looked up, after the session checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceSegment {
    Role(EnclaveRole),
    Unknown(String),
}

impl ServiceSegment {
    pub fn parse(segment: &str) -> Self {
        match EnclaveRole::from_name(segment) {
            Some(role) => Self::Role(role),
            None => Self::Unknown(segment.chars().take(64).collect()),
        }
    }

    /// The role's name, or the caller's (bounded) text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Role(role) => role.name(),
            Self::Unknown(text) => text,
        }
    }
}

fn find_service<'a>(
    session: &'a StoredSession,
    segment: &ServiceSegment,
) -> Result<&'a StoredService, Refusal> {
    match segment {
        ServiceSegment::Role(role) => session.service(*role),
        ServiceSegment::Unknown(_) => None,
    }
    .ok_or_else(|| Refusal::ServiceUnknown(segment.as_str().to_owned()))
}
