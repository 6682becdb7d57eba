//! [`Cluster`]: N real `sms server` processes on one PostgreSQL database with one master key,
//! a round-robin client, and SIGKILL/restart of any replica.
//!
//! [`Mode::Dev`] replicas run `--dev` (embedded dev ledger, one per replica data dir): the store
//! is shared, the ledger is not, so cluster tests of the store need no chain.
//! [`Mode::Production`] replicas run without `--dev`: the caller's `extra_args` name the one
//! chain they all read (`--chain-rpc`, `--hub`, `--chain-id`) and the TEE settings, so the
//! ledger is shared too (cluster tests of challenges, sessions and releases).

// Test support: a failure to set up the fixture is a test failure, so panics are intended.
#![allow(clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// Master key shared by every replica of a test cluster (tests only).
pub const TEST_MASTER_KEY: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";
/// Set `SMS_TEST_REPLICA_LOGS=1` to see the replicas' logs (stderr) in the test output.
/// How long a replica may take to answer `/health` after it is spawned.
const START_LIMIT: Duration = Duration::from_secs(60);

/// One replica: its process (None while killed), its port and data dir.
pub struct Replica {
    child: Option<Child>,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Replica {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// How the replicas are started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `sms server --dev`: each replica has its own in-memory dev ledger.
    Dev,
    /// `sms server` without `--dev`: the ledger is the chain named in the extra arguments.
    Production,
}

pub struct Cluster {
    binary: PathBuf,
    mode: Mode,
    database_url: String,
    extra_args: Vec<String>,
    pub replicas: Vec<Replica>,
    next: AtomicUsize,
}

/// A free loopback port (bound then released; the replica binds it right after).
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address")
}

impl Cluster {
    /// Starts `n` replicas of `binary` (the `sms` executable) on `database_url` and waits until
    /// each answers `/health`. `extra_args` go to every `sms server` (e.g. timeouts).
    pub async fn start(
        binary: impl Into<PathBuf>,
        database_url: &str,
        n: usize,
        extra_args: &[&str],
    ) -> Self {
        Self::start_in(Mode::Dev, binary, database_url, n, extra_args).await
    }

    /// [`Cluster::start`] in `mode`.
    pub async fn start_in(
        mode: Mode,
        binary: impl Into<PathBuf>,
        database_url: &str,
        n: usize,
        extra_args: &[&str],
    ) -> Self {
        let mut cluster = Self::spawn_in(mode, binary, database_url, n, extra_args);
        for i in 0..n {
            cluster.wait_ready(i).await;
        }
        cluster
    }

    /// Spawns `n` replicas at once, without waiting for them.
    pub fn spawn(
        binary: impl Into<PathBuf>,
        database_url: &str,
        n: usize,
        extra_args: &[&str],
    ) -> Self {
        Self::spawn_in(Mode::Dev, binary, database_url, n, extra_args)
    }

    /// [`Cluster::spawn`] in `mode`.
    pub fn spawn_in(
        mode: Mode,
        binary: impl Into<PathBuf>,
        database_url: &str,
        n: usize,
        extra_args: &[&str],
    ) -> Self {
        sms_client::install_crypto_provider();
        let mut cluster = Self {
            binary: binary.into(),
            mode,
            database_url: database_url.to_owned(),
            extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
            replicas: Vec::new(),
            next: AtomicUsize::new(0),
        };
        for _ in 0..n {
            let dir = tempfile::tempdir().expect("replica data dir");
            let addr = free_port();
            let mut replica = Replica {
                child: None,
                addr,
                dir,
            };
            replica.child = Some(cluster.command(&replica).spawn().expect("spawn sms server"));
            cluster.replicas.push(replica);
        }
        cluster
    }

    fn command(&self, replica: &Replica) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg("server");
        if self.mode == Mode::Dev {
            command.arg("--dev");
        }
        command
            .arg("--listen")
            .arg(replica.addr.to_string())
            .arg("--data-dir")
            .arg(replica.dir.path())
            .arg("--database-url")
            .arg(&self.database_url)
            .args(&self.extra_args)
            .env("SMS_MASTER_KEY", TEST_MASTER_KEY)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(if std::env::var_os("SMS_TEST_REPLICA_LOGS").is_some() {
                std::process::Stdio::inherit()
            } else {
                std::process::Stdio::null()
            })
            .kill_on_drop(true);
        command
    }

    /// Waits until replica `i` answers `/health` with 200.
    pub async fn wait_ready(&mut self, i: usize) {
        let url = format!("{}/health", self.replicas[i].url());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Some(child) = self.replicas[i].child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("replica {i} exited during start-up: {status}");
            }
            assert!(
                started.elapsed() < START_LIMIT,
                "replica {i} not healthy within {START_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Exit status of replica `i` if it has stopped by itself.
    pub fn exited(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        self.replicas[i].child.as_mut()?.try_wait().ok().flatten()
    }

    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    pub fn url(&self, i: usize) -> String {
        self.replicas[i].url()
    }

    /// The data directory of replica `i` (with PostgreSQL it holds nothing that matters).
    pub fn data_dir(&self, i: usize) -> &std::path::Path {
        self.replicas[i].dir.path()
    }

    /// The next replica's base URL, round-robin over all replicas (killed ones included:
    /// callers see the connection errors a load balancer would retry).
    pub fn next_url(&self) -> String {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.replicas.len();
        self.url(i)
    }

    /// SIGKILLs replica `i` (no graceful shutdown) and reaps it.
    pub async fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.replicas[i].child.take() {
            child.start_kill().expect("SIGKILL the replica");
            let _ = child.wait().await;
        }
    }

    /// Starts replica `i` again on its port and data dir, and waits until it is healthy.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i).await;
        let child = self
            .command(&self.replicas[i])
            .spawn()
            .expect("respawn sms server");
        self.replicas[i].child = Some(child);
        self.wait_ready(i).await;
    }
}
