//! The `sms` binary driven against an in-process `--dev` server, shared by the end-to-end tests
//! of `sms app run` and of the examples.

#![allow(dead_code)]

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use sms_testkit::server::TestServer;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", self.stdout, self.stderr))
    }
}

/// A home directory with a task workspace root (`ws/`), the server's dev wallets (password
/// `dev`), and a record of everything the CLI printed.
pub struct DevCli {
    pub url: String,
    pub home: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub printed: RefCell<String>,
}

impl DevCli {
    pub fn new(server: &TestServer) -> Self {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join("ws")).unwrap();
        Self {
            url: server.url(),
            home,
            data_dir: server.data_dir(),
            printed: RefCell::default(),
        }
    }

    /// Keystore file of a dev wallet (`owner`, `requester`, `workerpool`).
    pub fn wallet(&self, name: &str) -> String {
        self.data_dir
            .join("dev-wallets")
            .join(format!("{name}.json"))
            .display()
            .to_string()
    }

    /// Address of a dev wallet, read from its keystore.
    pub fn address(&self, name: &str) -> String {
        let keystore: Value =
            serde_json::from_slice(&std::fs::read(self.wallet(name)).unwrap()).unwrap();
        let a = keystore["address"].as_str().unwrap();
        if a.starts_with("0x") {
            a.to_owned()
        } else {
            format!("0x{a}")
        }
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_sms"))
            .args(args)
            .env("SMS_URL", &self.url)
            .env("HOME", self.home.path())
            .env("SMS_WALLET_PASSWORD", "dev")
            .env("SMS_WORKSPACE_ROOT", self.home.path().join("ws"))
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("SMS_WALLET_FILE")
            .current_dir(self.home.path())
            .output()
            .unwrap();
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        self.printed.borrow_mut().push_str(&run.stdout);
        self.printed.borrow_mut().push_str(&run.stderr);
        run
    }

    pub fn ok(&self, args: &[&str]) -> Value {
        let run = self.run(args);
        assert_eq!(run.code, 0, "sms {args:?}: {}{}", run.stdout, run.stderr);
        run.json()
    }

    /// Registers, as the `owner` dev wallet, a SCONE app whose enclave runs `entrypoint` with
    /// the given fingerprint (64 hex characters); returns its address.
    pub fn deploy_scone_app(&self, entrypoint: &str, fingerprint: &str) -> String {
        let config = json!({
            "framework": "SCONE", "version": "v5", "entrypoint": entrypoint,
            "heapSize": 1_073_741_824u64, "fingerprint": fingerprint,
        });
        let owner = self.address("owner");
        let mrenclave = config.to_string();
        let args = [
            "dev",
            "app",
            "deploy",
            "--owner",
            &owner,
            "--mrenclave",
            &mrenclave,
            "--json",
        ];
        self.ok(&args)["address"].as_str().unwrap().to_owned()
    }

    /// `sms app run <app> --dev --json` as the `requester` dev wallet, plus `extra`.
    pub fn app_run(&self, app: &str, extra: &[&str]) -> Run {
        let requester = self.wallet("requester");
        let mut args = vec![
            "app",
            "run",
            app,
            "--dev",
            "--json",
            "--wallet-file",
            &requester,
        ];
        args.extend(extra);
        self.run(&args)
    }
}
