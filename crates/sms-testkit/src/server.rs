//! An SMS server started in process on a loopback port, with its own temporary data dir.

// Test support: a failure to set up the fixture is a test failure, so panics are intended.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};

use sms_client::{ClientOptions, SmsClient};
use sms_server::{Server, ServerConfig};

pub struct TestServer {
    server: Option<Server>,
    config: ServerConfig,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A `--dev` server in a fresh temporary directory.
    pub async fn dev() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = ServerConfig::dev_in(dir.path().to_path_buf());
        Self::with_config(config, Some(dir)).await
    }

    /// A server with `config`; `dir` (if any) is removed when the server is dropped.
    pub async fn with_config(config: ServerConfig, dir: Option<tempfile::TempDir>) -> Self {
        let server = Server::start(config.clone())
            .await
            .expect("the test server starts");
        Self {
            server: Some(server),
            config,
            _dir: dir,
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("server running")
    }

    pub fn url(&self) -> String {
        self.server().url()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.server().data_dir.clone()
    }

    /// Makes the audit log of the server's SQLite store refuse (`true`) or accept new
    /// entries: a trigger standing for a log the database will not extend.
    pub async fn audit_log_read_only(&self, read_only: bool) {
        use sqlx::Connection;
        let db = self.data_dir().join("sms.db");
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("open the server's SQLite store");
        let statement = if read_only {
            "CREATE TRIGGER audit_read_only BEFORE INSERT ON audit_entries \
             BEGIN SELECT RAISE(ABORT, 'audit log is read-only'); END"
        } else {
            "DROP TRIGGER audit_read_only"
        };
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .expect("change the audit log trigger");
        conn.close().await.expect("close the SQLite connection");
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Puts an ACTIVE task with this id (and a deal of its own) on the dev ledger, so a
    /// session seeded for it can be released. `final_deadline` in unix seconds.
    pub fn active_dev_task(&self, task_id: sms_core::B256, final_deadline: u64) {
        use sms_core::ledger::{Deal, DealResource, Task, TaskStatus};
        use sms_core::{Address, B256, U256};
        let ledger = self
            .server()
            .dev_ledger
            .as_ref()
            .expect("a --dev server has a dev ledger");
        let resource = |byte: u8| DealResource {
            pointer: Address::repeat_byte(byte),
            owner: Address::repeat_byte(byte),
            price: U256::ZERO,
        };
        let deal_id = sms_core::hash::keccak_concat(&[b"dev-task-deal", task_id.as_slice()]);
        let deal = Deal {
            deal_id,
            app: resource(0xa1),
            dataset: resource(0),
            workerpool: resource(0xc3),
            trust: U256::ZERO,
            category: U256::ZERO,
            tag: B256::ZERO,
            requester: Address::repeat_byte(0xd4),
            beneficiary: Address::repeat_byte(0xd4),
            callback: Address::ZERO,
            params: String::new(),
            start_time: 1,
            bot_first: 0,
            bot_size: 1,
            worker_stake: U256::ZERO,
            scheduler_reward_ratio: U256::ZERO,
            sponsor: Address::repeat_byte(0xd4),
        };
        let task = Task {
            task_id,
            deal_id,
            index: 0,
            status: TaskStatus::Active,
            time_ref: 1,
            contribution_deadline: final_deadline,
            reveal_deadline: final_deadline,
            final_deadline,
        };
        ledger
            .insert_deal(deal, vec![task])
            .expect("the dev task is recorded");
    }

    /// Sets a dev-ledger task's status (e.g. COMPLETED after a run).
    pub fn set_dev_task_status(
        &self,
        task_id: sms_core::B256,
        status: sms_core::ledger::TaskStatus,
    ) {
        self.server()
            .dev_ledger
            .as_ref()
            .expect("a --dev server has a dev ledger")
            .set_task_status(task_id, status)
            .expect("the task exists");
    }

    /// One raw HTTP call: the status and the JSON body (`Null` when the body is not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        authorization: Option<String>,
        body: Option<&[u8]>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.url()));
        if let Some(a) = authorization {
            request = request.header("Authorization", a);
        }
        if let Some(b) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(b.to_vec());
        }
        let response = request.send().await.expect("the test server answers");
        let status = response.status();
        let text = response.text().await.expect("a readable body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    pub fn client(&self) -> SmsClient {
        SmsClient::new(&self.url(), &ClientOptions::default()).expect("client")
    }

    /// Stops the server and starts it again on the same data dir (and the same port).
    pub async fn restart(&mut self) {
        let old = self.server.take().expect("server running");
        let addr = old.local_addr;
        old.shutdown().await;
        let mut config = self.config.clone();
        config.listen = addr;
        self.server = Some(
            Server::start(config)
                .await
                .expect("the test server restarts"),
        );
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path)
            } else {
                out.push(path)
            }
        }
    }
    out
}

/// The codes of upstream's `TeeSessionGenerationError`, as the iExec worker's enum spells them
/// (reference: SMS behaviour §4.7); written out here, independently of `sms_core`.
pub const UPSTREAM_SESSION_CODES: [&str; 23] = [
    "INVALID_AUTHORIZATION",
    "EXECUTION_NOT_AUTHORIZED_EMPTY_PARAMS_UNAUTHORIZED",
    "EXECUTION_NOT_AUTHORIZED_NO_MATCH_ONCHAIN_TYPE",
    "EXECUTION_NOT_AUTHORIZED_GET_CHAIN_TASK_FAILED",
    "EXECUTION_NOT_AUTHORIZED_TASK_NOT_ACTIVE",
    "EXECUTION_NOT_AUTHORIZED_GET_CHAIN_DEAL_FAILED",
    "EXECUTION_NOT_AUTHORIZED_INVALID_SIGNATURE",
    "GET_SIGNATURE_TOKENS_FAILED_EMPTY_WORKER_ADDRESS",
    "GET_SIGNATURE_TOKENS_FAILED_EMPTY_PUBLIC_ENCLAVE_CHALLENGE",
    "GET_SIGNATURE_TOKENS_FAILED_EMPTY_TEE_CHALLENGE",
    "GET_SIGNATURE_TOKENS_FAILED_EMPTY_TEE_CREDENTIALS",
    "PRE_COMPUTE_GET_DATASET_SECRET_FAILED",
    "APP_COMPUTE_NO_ENCLAVE_CONFIG",
    "APP_COMPUTE_INVALID_ENCLAVE_CONFIG",
    "POST_COMPUTE_GET_ENCRYPTION_TOKENS_FAILED_EMPTY_BENEFICIARY_KEY",
    "POST_COMPUTE_GET_STORAGE_TOKENS_FAILED",
    "SECURE_SESSION_STORAGE_CALL_FAILED",
    "SECURE_SESSION_GENERATION_FAILED",
    "SECURE_SESSION_NO_TEE_FRAMEWORK",
    "GET_TASK_DESCRIPTION_FAILED",
    "NO_SESSION_REQUEST",
    "NO_TASK_DESCRIPTION",
    "UNKNOWN_ISSUE",
];

/// Reads a `POST /tee/sessions` answer the way an iExec worker would, then the way the tests
/// check it. An error body must be exactly `{"error": "<CODE>"}` with an upstream code (the
/// worker decodes it strictly: an unknown key or name fails the whole decode). The value
/// returned for the assertions puts back the precise `error` code (`X-Sms-Error` when sent,
/// else the body's), the body's code as `wireError`, and the `reason` (`X-Sms-Reason`).
pub async fn session_reply(
    response: reqwest::Response,
) -> (reqwest::StatusCode, serde_json::Value) {
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (precise, reason) = (header("x-sms-error"), header("x-sms-reason"));
    let text = response.text().await.expect("a readable body");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    if status.is_success() {
        let data = body
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.get("data"));
        let mut keys: Option<Vec<&str>> = data
            .and_then(|d| d.as_object())
            .map(|d| d.keys().map(String::as_str).collect());
        if let Some(k) = keys.as_mut() {
            k.sort_unstable();
        }
        assert_eq!(
            keys,
            Some(vec!["secretProvisioningUrl", "sessionId"]),
            "a session answer is exactly {{\"data\":{{sessionId, secretProvisioningUrl}}}}, got {text}"
        );
        return (status, body);
    }
    let object = body.as_object();
    let wire = object
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("error"))
        .and_then(|e| e.as_str())
        .unwrap_or_else(|| {
            panic!("a /tee error body is exactly {{\"error\":\"<CODE>\"}}, got {text}")
        });
    assert!(
        UPSTREAM_SESSION_CODES.contains(&wire),
        "an iExec worker cannot decode the session error {wire}"
    );
    (
        status,
        serde_json::json!({
            "error": precise.as_deref().unwrap_or(wire),
            "wireError": wire,
            "reason": reason.unwrap_or_default(),
        }),
    )
}
