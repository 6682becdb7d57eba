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
