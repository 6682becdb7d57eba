//! The `cluster` scenario: push and check over 3 replicas (`sms server --dev --database-url`)
//! on one PostgreSQL, beside the same load on 1 replica on PostgreSQL and on 1 server on SQLite,
//! with the CPU each group of processes (replicas, PostgreSQL, this client) spent per request.
//!
//! PostgreSQL is `--database-url` (loopback only), or a throwaway cluster this bench starts
//! from the server binaries (`initdb`, `pg_ctl` in `--pg-bin`, default the newest
//! `/usr/lib/postgresql/*/bin`) in a temporary directory, `fsync=on`, removed afterwards.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use alloy_signer_local::PrivateKeySigner;
use anyhow::{Context, bail};
use hyper::StatusCode;
use sqlx::Connection;

use super::child::{self, Spawned};
use super::load::{self, Load, Outcome, Req};
use super::scenarios::{from_outcome, replay, run_tag, signed_pushes};
use super::{Ctx, Report, round};

/// Replicas of the cluster run.
pub const REPLICAS: usize = 3;
const CHECK_CONNECTIONS: usize = 64;

/// Where the bench's PostgreSQL comes from.
#[derive(Clone, Debug, Default)]
pub struct PgSource {
    /// `--database-url`: an existing database (loopback only).
    pub url: Option<String>,
    /// `--pg-bin`: directory of `initdb` and `pg_ctl` for a throwaway cluster.
    pub bin: Option<PathBuf>,
}

/// A PostgreSQL this bench uses: the URL, and the postmaster's pid when it is known (for its
/// CPU and that of its backends).
struct Pg {
    url: String,
    postmaster: Option<u32>,
    throwaway: Option<Throwaway>,
}

/// A throwaway PostgreSQL cluster, stopped (immediate) and removed on drop.
struct Throwaway {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", &data.display().to_string(), "-m", "immediate", "stop"],
        );
    }
}

/// Runs a PostgreSQL server binary; as the `postgres` user when this process is root (initdb
/// and the server refuse to run as root).
fn as_postgres(program: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    let output = if root {
        let quoted: Vec<String> = std::iter::once(program.display().to_string())
            .chain(args.iter().map(|a| (*a).to_owned()))
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect();
        Command::new("su")
            .args(["postgres", "-s", "/bin/sh", "-c", &quoted.join(" ")])
            .output()
    } else {
        Command::new(program).args(args).output()
    }
    .with_context(|| format!("cannot run {}", program.display()))?;
    if !output.status.success() {
        bail!(
            "{} {} failed: {}{}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`.
fn default_pg_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

impl Pg {
    async fn open(source: &PgSource) -> anyhow::Result<Self> {
        if let Some(url) = &source.url {
            let addr = host_port(url)?;
            return Ok(Self {
                url: url.clone(),
                postmaster: child::pid_listening_on(addr),
                throwaway: None,
            });
        }
        let bin = match &source.bin {
            Some(b) => b.clone(),
            None => default_pg_bin().context(
                "the cluster scenario needs PostgreSQL: pass --database-url postgres://… (loopback), \
                 or install the PostgreSQL server (initdb not found in /usr/lib/postgresql/*/bin; \
                 or pass --pg-bin <dir>)",
            )?,
        };
        // Directly under the temp root, not in the bench's 0700 work dir: the `postgres` user
        // must reach it when this bench runs as root.
        let dir = tempfile::Builder::new().prefix("sms-bench-pg-").tempdir()?;
        let _ = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(dir.path())
            .output();
        let data = dir.path().join("data");
        let throwaway = Throwaway { bin, dir };
        let d = data.display().to_string();
        as_postgres(
            &throwaway.bin.join("initdb"),
            &["-D", &d, "-A", "trust", "-U", "sms", "--no-sync"],
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on",
            throwaway.dir.path().display()
        );
        let log = throwaway.dir.path().join("log").display().to_string();
        as_postgres(
            &throwaway.bin.join("pg_ctl"),
            &["-D", &d, "-l", &log, "-w", "-o", &options, "start"],
        )?;
        let postmaster = std::fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()));
        Ok(Self {
            url: format!("postgres://sms@127.0.0.1:{port}/postgres"),
            postmaster,
            throwaway: Some(throwaway),
        })
    }

    /// A fresh database on the server (throwaway), or the given one.
    async fn database(&self, name: &str) -> anyhow::Result<String> {
        if self.throwaway.is_none() {
            return Ok(self.url.clone());
        }
        let mut conn = sqlx::PgConnection::connect(&self.url)
            .await
            .context("connect to the bench PostgreSQL")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        let base = self.url.rsplit_once('/').map_or(&*self.url, |(b, _)| b);
        Ok(format!("{base}/{name}"))
    }

    /// The postmaster and its children (backends, writer, WAL writer, …).
    fn pids(&self) -> Vec<u32> {
        let Some(root) = self.postmaster else {
            return Vec::new();
        };
        let mut pids = vec![root];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if parent_of(pid) == Some(root) {
                pids.push(pid);
            }
        }
        pids
    }
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The loopback address of a `postgres://user@host:port/db` URL.
fn host_port(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .context("--database-url must be postgres://…")?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let with_port = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    child::loopback_addr(&format!("http://{with_port}"))
        .context("--database-url must be a loopback PostgreSQL (the bench measures this machine)")
}

/// CPU seconds spent by a changing set of processes: those alive at the end, minus what each
/// had spent at the start (0 for those born since).
struct GroupCpu {
    start: HashMap<u32, f64>,
}

impl GroupCpu {
    fn start(pids: &[u32]) -> Self {
        Self {
            start: pids
                .iter()
                .filter_map(|&p| child::cpu_seconds(p).map(|c| (p, c)))
                .collect(),
        }
    }

    fn seconds(&self, pids_now: &[u32]) -> Option<f64> {
        if pids_now.is_empty() {
            return None;
        }
        Some(
            pids_now
                .iter()
                .filter_map(|&p| {
                    child::cpu_seconds(p).map(|c| c - self.start.get(&p).copied().unwrap_or(0.0))
                })
                .sum(),
        )
    }
}

/// The servers of one configuration.
struct Servers {
    label: &'static str,
    database_url: Option<String>,
    replicas: Vec<Spawned>,
}

impl Servers {
    fn addrs(&self) -> Vec<SocketAddr> {
        self.replicas.iter().map(|r| r.addr).collect()
    }

    fn pids(&self) -> Vec<u32> {
        self.replicas.iter().map(|r| r.pid).collect()
    }

    fn rss_mib(&self) -> Option<f64> {
        let all: Option<Vec<f64>> = self
            .replicas
            .iter()
            .map(|r| child::rss_mib(r.pid).map(|(rss, _)| rss))
            .collect();
        all.map(|v| round(v.iter().sum()))
    }

    async fn stop(self) {
        for r in self.replicas {
            r.kill().await;
        }
    }
}

/// `n` replicas on `database_url`, one master key file, each its own data dir.
async fn start_replicas(
    label: &'static str,
    work: &Path,
    database_url: Option<&str>,
    n: usize,
) -> anyhow::Result<Servers> {
    let root = work.join(format!("cluster-{label}"));
    std::fs::create_dir_all(&root)?;
    let key_file = root.join("master.key");
    sms_store::MasterKey::load_or_create(&key_file).context("creating the master key file")?;
    let key = key_file.to_str().context("path is not UTF-8")?.to_owned();
    let sms = child::sms_executable()?;
    let mut replicas = Vec::with_capacity(n);
    for i in 0..n {
        let dir = root.join(format!("replica-{i}"));
        std::fs::create_dir_all(&dir)?;
        let d = dir.to_str().context("path is not UTF-8")?;
        let mut args = vec![
            "server",
            "--dev",
            "--data-dir",
            d,
            "--listen",
            "127.0.0.1:0",
            "--master-key-file",
            &key,
        ];
        if let Some(url) = database_url {
            args.extend(["--database-url", url]);
        }
        replicas.push(Spawned::start(&sms, &args, &dir.join("server.log")).await?);
    }
    Ok(Servers {
        label,
        database_url: database_url.map(str::to_owned),
        replicas,
    })
}

/// Transactions committed and rows inserted, fetched and updated by the database so far
/// (`pg_stat_database`, after the backends' pending statistics are flushed: they flush at
/// most once a second while busy, and when idle).
async fn pg_counters(url: &str) -> Option<[i64; 4]> {
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut conn = sqlx::PgConnection::connect(url).await.ok()?;
    let row: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT xact_commit, tup_inserted, tup_fetched, tup_updated FROM pg_stat_database \
         WHERE datname = current_database()",
    )
    .fetch_one(&mut conn)
    .await
    .ok()?;
    Some([row.0, row.1, row.2, row.3])
}

/// Per request: PostgreSQL transactions, rows inserted, fetched, updated.
fn set_pg_counters(r: &mut Report, ops: u64, before: Option<[i64; 4]>, after: Option<[i64; 4]>) {
    let (Some(b), Some(a)) = (before, after) else {
        return;
    };
    let n = ops.max(1) as f64;
    for (i, key) in [
        "postgres_commits_per_op",
        "postgres_rows_inserted_per_op",
        "postgres_rows_fetched_per_op",
        "postgres_rows_updated_per_op",
    ]
    .into_iter()
    .enumerate()
    {
        r.set(key, round((a[i] - b[i]) as f64 / n));
    }
}

/// CPU per request of each group, into `r`.
fn set_group_cpu(
    r: &mut Report,
    ops: u64,
    servers: (&GroupCpu, &[u32]),
    pg: Option<(&GroupCpu, &[u32])>,
    client: f64,
) {
    let n = ops.max(1) as f64;
    if let Some(s) = servers.0.seconds(servers.1) {
        r.set("server_cpu_us_per_op", round(s * 1e6 / n));
    }
    if let Some((meter, pids)) = pg
        && let Some(s) = meter.seconds(pids)
    {
        r.set("postgres_cpu_us_per_op", round(s * 1e6 / n));
    }
    if let Some(c) = child::cpu_seconds(std::process::id()) {
        r.set("client_cpu_us_per_op", round((c - client) * 1e6 / n));
    }
}

/// Push then check against `servers`; two reports.
async fn measure(
    ctx: &Ctx,
    servers: &Servers,
    pg: Option<&Pg>,
    reqs: Arc<Vec<Req>>,
) -> anyhow::Result<(Report, Report)> {
    let addrs = servers.addrs();
    let pg_pids = || pg.map(Pg::pids).unwrap_or_default();
    let client_cpu = || child::cpu_seconds(std::process::id()).unwrap_or(0.0);

    // Warm-up (not measured): every replica opens its pooled database connections, so that
    // PostgreSQL backend start-ups are not counted in the figures.
    let probe = format!(
        "/requesters/{}/secrets/warm-up",
        PrivateKeySigner::random().address()
    );
    let warm = load::run_spread(
        &addrs,
        Load {
            connections: CHECK_CONNECTIONS,
            duration: Duration::from_secs(2),
            max_requests: 3_000,
        },
        Arc::new(move |_| Req::head(probe.clone(), StatusCode::NOT_FOUND)),
    )
    .await;
    if warm.errors > 0 {
        bail!(
            "warm-up of {}: {}",
            servers.label,
            warm.first_error.unwrap_or_default()
        );
    }

    // push: presigned fresh names, `push_connections` spread over the replicas.
    let url = servers.database_url.as_deref();
    let counted = match url {
        Some(u) => pg_counters(u).await,
        None => None,
    };
    let (s0, p0, c0) = (
        GroupCpu::start(&servers.pids()),
        GroupCpu::start(&pg_pids()),
        client_cpu(),
    );
    let o = load::run_spread(
        &addrs,
        Load {
            connections: ctx.push_connections,
            duration: ctx.duration,
            max_requests: reqs.len() as u64,
        },
        replay(reqs.clone()),
    )
    .await;
    let mut push = from_outcome(&format!("cluster:{}:push", servers.label), &o);
    let pids = pg_pids();
    set_group_cpu(
        &mut push,
        o.ok + o.errors,
        (&s0, &servers.pids()),
        pg.map(|_| (&p0, pids.as_slice())),
        c0,
    );
    push.server_rss_mib = servers.rss_mib();
    if let Some(u) = url {
        set_pg_counters(&mut push, o.ok + o.errors, counted, pg_counters(u).await);
    }
    push.set("replicas", servers.replicas.len());
    push.set("connections", ctx.push_connections);
    if o.ok + o.errors >= reqs.len() as u64 {
        push.set("capped", true);
    }
    // Every acknowledged secret is read back through another replica than the one that
    // acknowledged it (connection k of the check goes to replica k % n; the push's went to
    // the same spread, so shifting the list shifts the replica).
    let acked: Vec<Req> = o
        .succeeded
        .iter()
        .map(|&i| Req::head(reqs[i as usize].path.clone(), StatusCode::NO_CONTENT))
        .collect();
    let n_acked = acked.len() as u64;
    let mut shifted = addrs.clone();
    shifted.rotate_left(1);
    let verify = load::run(
        shifted[0],
        Load {
            connections: 16,
            duration: Duration::from_secs(600),
            max_requests: n_acked,
        },
        replay(Arc::new(acked)),
    )
    .await;
    push.set("acknowledged", n_acked);
    push.set("lost", n_acked.saturating_sub(verify.ok));
    push.set(
        "durability_check",
        if addrs.len() > 1 {
            "HEAD every acknowledged secret on one replica (acknowledged by all three)"
        } else {
            "HEAD every acknowledged secret"
        },
    );

    // check: 256 existing and 256 missing names, HEAD, 64 connections spread.
    let requester = PrivateKeySigner::random();
    let tag = run_tag();
    let names: Vec<String> = (0..256).map(|j| format!("ck-{tag}-{j}")).collect();
    let setup = signed_pushes(&requester, &names);
    let stored = load::run_spread(
        &addrs,
        Load {
            connections: 16,
            duration: Duration::from_secs(600),
            max_requests: setup.len() as u64,
        },
        replay(Arc::new(setup)),
    )
    .await;
    if stored.ok != names.len() as u64 {
        bail!(
            "storing the secrets to check failed: {}",
            stored.first_error.unwrap_or_default()
        );
    }
    let address = requester.address();
    let existing: Vec<String> = names
        .iter()
        .map(|n| format!("/requesters/{address}/secrets/{n}"))
        .collect();
    let missing: Vec<String> = (0..256)
        .map(|j| format!("/requesters/{address}/secrets/none-{tag}-{j}"))
        .collect();
    let make: Arc<load::MakeReq> = Arc::new(move |i| {
        let k = (i / 2) as usize % 256;
        if i % 2 == 0 {
            Req::head(existing[k].clone(), StatusCode::NO_CONTENT)
        } else {
            Req::head(missing[k].clone(), StatusCode::NOT_FOUND)
        }
    });
    let counted = match url {
        Some(u) => pg_counters(u).await,
        None => None,
    };
    let (s0, p0, c0) = (
        GroupCpu::start(&servers.pids()),
        GroupCpu::start(&pg_pids()),
        client_cpu(),
    );
    let o: Outcome = load::run_spread(
        &addrs,
        Load {
            connections: CHECK_CONNECTIONS,
            duration: ctx.duration,
            max_requests: ctx.max_requests(200_000.0),
        },
        make,
    )
    .await;
    let mut check = from_outcome(&format!("cluster:{}:check", servers.label), &o);
    let pids = pg_pids();
    set_group_cpu(
        &mut check,
        o.ok + o.errors,
        (&s0, &servers.pids()),
        pg.map(|_| (&p0, pids.as_slice())),
        c0,
    );
    check.server_rss_mib = servers.rss_mib();
    if let Some(u) = url {
        set_pg_counters(&mut check, o.ok + o.errors, counted, pg_counters(u).await);
    }
    check.set("replicas", servers.replicas.len());
    check.set("connections", CHECK_CONNECTIONS);
    Ok((push, check))
}

pub async fn cluster(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let pg = Pg::open(&ctx.postgres).await?;
    let max = ctx.max_requests(8_000.0);
    let tag = run_tag();
    let mut lines = Vec::new();
    for (label, replicas, on_pg) in [
        ("sqlite-1", 1, false),
        ("postgres-1", 1, true),
        ("postgres-3", REPLICAS, true),
    ] {
        let url = if on_pg {
            Some(
                pg.database(&format!("bench_{}_{tag}", label.replace('-', "_")))
                    .await?,
            )
        } else {
            None
        };
        // Fresh names per configuration, signed before the clock starts.
        let signer = PrivateKeySigner::random();
        let names: Vec<String> = (0..max).map(|i| format!("cl-{tag}-{label}-{i}")).collect();
        let reqs = Arc::new(signed_pushes(&signer, &names));
        let servers = start_replicas(label, &ctx.work, url.as_deref(), replicas).await?;
        let measured = measure(ctx, &servers, on_pg.then_some(&pg), reqs).await;
        servers.stop().await;
        let (push, check) = measured?;
        lines.push(push);
        lines.push(check);
    }
    let find = |name: &str| lines.iter().find(|r| r.scenario == name);
    let main = find("cluster:postgres-3:push").context("no cluster push figure")?;
    let mut r = Report::new("cluster");
    r.ops_per_s = main.ops_per_s;
    r.p50_ms = main.p50_ms;
    r.p99_ms = main.p99_ms;
    r.server_rss_mib = main.server_rss_mib;
    r.extra = main.extra.clone();
    r.set(
        "what",
        "push over 3 replicas on one PostgreSQL; the cluster:* lines have the rest",
    );
    if let Some(check) = find("cluster:postgres-3:check") {
        r.set("check_ops_per_s", check.ops_per_s);
        r.set("check_p99_ms", check.p99_ms);
    }
    for (key, name) in [
        ("push_postgres_1_ops_per_s", "cluster:postgres-1:push"),
        ("push_sqlite_1_ops_per_s", "cluster:sqlite-1:push"),
    ] {
        if let Some(other) = find(name) {
            r.set(key, other.ops_per_s);
        }
    }
    r.errors = lines.iter().map(|l| l.errors).sum();
    let lost: u64 = lines
        .iter()
        .filter_map(|l| l.extra.get("lost").and_then(serde_json::Value::as_u64))
        .sum();
    r.set("lost", lost);
    r.set(
        "postgres",
        if pg.throwaway.is_some() {
            "throwaway cluster started by the bench (fsync=on)"
        } else {
            "--database-url"
        },
    );
    ctx.extra_reports.extend(lines);
    drop(pg);
    Ok(r)
}
