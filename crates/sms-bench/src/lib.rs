//! `sms bench` (the `sms-bench` binary): measures the service against the limits of this
//! machine.
//!
//! A client process that starts its own `--dev` server (the `sms` executable installed next to
//! this one, or `SMS_BENCH_SMS`) on loopback, or
//! targets a loopback `--sms-url`, runs each scenario for a bounded time and number of
//! requests, and prints throughput, p50, p99, the server's RSS and errors, with the ceilings
//! of the machine measured in the same run. See BENCHMARKS.md.

mod ceilings;
mod child;
mod cluster;
mod load;
mod scenarios;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use serde_json::{Map, Value, json};

use self::ceilings::Ceilings;
use self::child::Spawned;

#[derive(Args)]
pub struct BenchArgs {
    /// Scenarios to run, comma-separated or repeated (default: all). `sms bench --list` names them.
    #[arg(long, value_delimiter = ',')]
    pub scenario: Vec<String>,
    /// Seconds each scenario runs (each ceiling runs at most 2 s).
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Load this SMS (a `--dev` server on loopback) instead of starting one. Its RSS is found
    /// through /proc when possible; the push durability check then only re-reads, no restart.
    #[arg(long, env = "SMS_BENCH_URL")]
    pub sms_url: Option<String>,
    /// CI smoke run: a fraction of a second per scenario and ceiling, 2,000 secrets for
    /// `scale`; fails only on errors or lost writes, never on figures.
    #[arg(long)]
    pub smoke: bool,
    /// Secrets stored before the `scale` start-up.
    #[arg(long, default_value_t = 100_000)]
    pub scale_secrets: usize,
    /// Data directory of `scale`, kept after the run and reused by the next one when it holds
    /// the same --scale-secrets (a 1,000,000-secret store takes minutes to fill). Default: a
    /// temporary directory, removed.
    #[arg(long, value_name = "DIR")]
    pub scale_dir: Option<PathBuf>,
    /// Concurrent connections of `push` (`check` always uses 64).
    #[arg(long, default_value_t = 32)]
    pub push_connections: usize,
    /// Directory of the DCAP fixtures (sgx_quote, sgx_quote_collateral.json).
    #[arg(long, env = "SMS_BENCH_FIXTURES")]
    pub fixtures: Option<PathBuf>,
    /// PostgreSQL of the `cluster` scenario: an existing database on loopback (its tables are
    /// created if needed; runs leave their rows). Without it the scenario starts a throwaway
    /// PostgreSQL cluster of its own (initdb in a temporary directory, fsync=on, removed
    /// afterwards) from --pg-bin.
    #[arg(long, env = "SMS_BENCH_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Directory of the PostgreSQL server binaries (`initdb`, `pg_ctl`) for the throwaway
    /// cluster; default: the newest /usr/lib/postgresql/<version>/bin. Run as root, the bench
    /// runs them as the `postgres` user.
    #[arg(long, env = "PG_BIN", value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,
    /// Skip the ceilings (no ratios).
    #[arg(long)]
    pub no_ceilings: bool,
    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Internal: serve the bare axum handler used as the HTTP ceiling (a child of the bench).
    #[arg(long, hide = true)]
    pub serve_bare: bool,
    /// For outside load generators (scripts/bench-vs-openbao.sh): print this many signed
    /// requester-secret pushes of a fresh wallet, one `path<TAB>authorization<TAB>body` a
    /// line, and exit.
    #[arg(long, value_name = "N")]
    pub presign_pushes: Option<usize>,
}

/// One line of output: a scenario or a ceiling.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub ops_per_s: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub server_rss_mib: Option<f64>,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling_ops_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meets_target: Option<bool>,
    /// Scenario-specific figures (lost, startup_ms, mean_ms, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Report {
    pub fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.to_owned(),
            ops_per_s: None,
            p50_ms: None,
            p99_ms: None,
            server_rss_mib: None,
            errors: 0,
            ceiling_ops_per_s: None,
            ratio: None,
            target: None,
            meets_target: None,
            extra: Map::new(),
        }
    }

    pub fn with_ceiling(mut self, ceiling: Option<f64>) -> Self {
        self.ceiling_ops_per_s = ceiling.map(round);
        self.ratio = match (self.ops_per_s, ceiling) {
            (Some(ops), Some(c)) if c > 0.0 => Some((ops / c * 1000.0).round() / 1000.0),
            _ => None,
        };
        self
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.extra.insert(key.to_owned(), value.into());
    }

    fn missing(&self) -> bool {
        self.extra.contains_key("missing")
    }

    fn failed(&self) -> bool {
        self.errors > 0
            || self
                .extra
                .get("lost")
                .and_then(Value::as_u64)
                .is_some_and(|n| n > 0)
    }
}

/// Rounds a figure to 3 significant decimals for printing.
pub fn round(x: f64) -> f64 {
    if x.abs() >= 100.0 {
        x.round()
    } else {
        (x * 1000.0).round() / 1000.0
    }
}

/// The server under load: a child this bench started (restartable) or a `--sms-url`.
pub struct Target {
    pub addr: SocketAddr,
    pub pid: Option<u32>,
    owned: Option<Owned>,
}

struct Owned {
    child: Spawned,
    data_dir: PathBuf,
}

impl Target {
    async fn start(data_dir: PathBuf) -> anyhow::Result<Self> {
        let child = child::start_server(&data_dir).await?;
        Ok(Self {
            addr: child.addr,
            pid: Some(child.pid),
            owned: Some(Owned { child, data_dir }),
        })
    }

    fn external(url: &str) -> anyhow::Result<Self> {
        let addr = child::loopback_addr(url)?;
        Ok(Self {
            addr,
            pid: child::pid_listening_on(addr),
            owned: None,
        })
    }

    pub fn rss_mib(&self) -> Option<f64> {
        self.pid.and_then(child::rss_mib).map(|(rss, _)| round(rss))
    }

    pub fn restartable(&self) -> bool {
        self.owned.is_some()
    }

    /// SIGKILL the server and start it again on the same data directory (new port).
    pub async fn kill_and_restart(&mut self) -> anyhow::Result<Duration> {
        let owned = self.owned.take().context("not a server of this bench")?;
        owned.child.kill().await;
        let fresh = Self::start(owned.data_dir).await?;
        let ready = fresh
            .owned
            .as_ref()
            .map(|o| o.child.ready_after)
            .unwrap_or_default();
        *self = fresh;
        Ok(ready)
    }

    async fn stop(self) {
        if let Some(o) = self.owned {
            o.child.kill().await;
        }
    }
}

/// What every scenario gets.
pub struct Ctx {
    pub duration: Duration,
    pub scale_secrets: usize,
    pub scale_dir: Option<PathBuf>,
    pub push_connections: usize,
    pub fixtures: PathBuf,
    pub ceilings: Ceilings,
    pub work: PathBuf,
    /// The shared server for the HTTP scenarios (started on first use).
    target: Option<Target>,
    sms_url: Option<String>,
    /// PostgreSQL of the `cluster` scenario.
    pub postgres: cluster::PgSource,
    /// Lines a scenario reports besides its own (printed before it).
    pub extra_reports: Vec<Report>,
}

impl Ctx {
    pub async fn target(&mut self) -> anyhow::Result<&mut Target> {
        if self.target.is_none() {
            let target = match &self.sms_url {
                Some(url) => Target::external(url)?,
                None => Target::start(self.work.join("server")).await?,
            };
            self.target = Some(target);
        }
        self.target.as_mut().context("no target")
    }

    /// Upper bound of requests for a scenario expected to reach `rate_per_s`.
    pub fn max_requests(&self, rate_per_s: f64) -> u64 {
        (rate_per_s * self.duration.as_secs_f64()).clamp(1_000.0, 5_000_000.0) as u64
    }
}

type RunFn = for<'a> fn(&'a mut Ctx) -> Pin<Box<dyn Future<Output = anyhow::Result<Report>> + 'a>>;

/// A scenario of the registry. New ones (e.g. once an API lands) are one entry here.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub run: RunFn,
}

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "check",
        about: "HEAD existing and missing requester secrets, 64 connections",
        run: |c| Box::pin(scenarios::check(c)),
    },
    Scenario {
        name: "push",
        about: "POST requester secrets, fresh names, real signatures; acknowledged = durable",
        run: |c| Box::pin(scenarios::push(c)),
    },
    Scenario {
        name: "session",
        about: "POST /tee/sessions for fresh tasks on the dev ledger",
        run: |c| Box::pin(scenarios::session(c)),
    },
    Scenario {
        name: "release",
        about: "attested release with simulated evidence",
        run: |c| Box::pin(scenarios::release(c)),
    },
    Scenario {
        name: "dcap",
        about: "offline verification of the real SGX quote at a pinned time (in process)",
        run: |c| Box::pin(scenarios::dcap(c)),
    },
    Scenario {
        name: "cluster",
        about: "push and check over 3 replicas on one PostgreSQL, beside 1 replica on PostgreSQL and on SQLite",
        run: |c| Box::pin(cluster::cluster(c)),
    },
    Scenario {
        name: "scale",
        about: "start-up time and RSS of a server holding --scale-secrets secrets",
        run: |c| Box::pin(scenarios::scale(c)),
    },
];

/// The real Intel quotes shipped by the `dcap-qvl` package (see `sms_attest::samples`).
fn default_fixtures() -> anyhow::Result<PathBuf> {
    sms_attest::samples::samples_dir()
        .map(Path::to_path_buf)
        .map_err(|e| anyhow::anyhow!("{e}; pass --fixtures <dir>"))
}

fn progress(json: bool, text: impl std::fmt::Display) {
    if !json {
        eprintln!("bench: {text}");
    }
}

/// Runs the selected scenarios and prints their reports (one JSON object per line with `json`,
/// else a table); an error when any scenario failed or lost a write.
pub async fn run(args: BenchArgs, json: bool) -> anyhow::Result<()> {
    if args.serve_bare {
        return ceilings::serve_bare().await;
    }
    if let Some(n) = args.presign_pushes {
        return scenarios::print_presigned(n);
    }
    if args.list {
        let lines: Vec<String> = SCENARIOS
            .iter()
            .map(|s| format!("{:<8} {}", s.name, s.about))
            .collect();
        let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        if json {
            println!("{}", json!({ "scenarios": names }));
        } else {
            println!("{}", lines.join("\n"));
        }
        return Ok(());
    }
    let selected: Vec<&Scenario> = if args.scenario.is_empty() {
        SCENARIOS.iter().collect()
    } else {
        let mut v = Vec::new();
        for name in &args.scenario {
            match SCENARIOS.iter().find(|s| s.name == name) {
                Some(s) => v.push(s),
                None => bail!(
                    "unknown scenario '{name}' (known: {})",
                    SCENARIOS
                        .iter()
                        .map(|s| s.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        v
    };
    if !(args.duration > 0.0 && args.duration <= 600.0) {
        bail!("--duration must be between 0 and 600 seconds");
    }
    if let Some(url) = &args.sms_url {
        child::loopback_addr(url)?;
    }
    let duration = Duration::from_secs_f64(if args.smoke {
        args.duration.min(0.3)
    } else {
        args.duration
    });
    let work = child::work_dir()?;
    let mut ctx = Ctx {
        duration,
        scale_secrets: if args.smoke {
            args.scale_secrets.min(2_000)
        } else {
            args.scale_secrets
        },
        scale_dir: args.scale_dir.clone(),
        push_connections: args.push_connections.max(1),
        fixtures: match args.fixtures.clone() {
            Some(dir) => dir,
            None => default_fixtures()?,
        },
        ceilings: Ceilings::default(),
        work: work.path().to_path_buf(),
        target: None,
        sms_url: args.sms_url.clone(),
        postgres: cluster::PgSource {
            url: args.database_url.clone(),
            bin: args.pg_bin.clone(),
        },
        extra_reports: Vec::new(),
    };

    let mut reports = Vec::new();
    for s in &selected {
        // Each scenario's ceilings are measured just before it, so that a change of load on a
        // shared machine during the run affects both sides of its ratio alike.
        if !args.no_ceilings {
            let measured = scenarios::measure_ceilings(&mut ctx, &[s.name]).await?;
            if !measured.is_empty() {
                progress(json, format!("ceilings for {}", s.name));
            }
            for r in measured {
                emit(json, &r);
                reports.push(r);
            }
        }
        progress(
            json,
            format!("scenario {} ({:.1} s)", s.name, ctx.duration.as_secs_f64()),
        );
        let report = match (s.run)(&mut ctx).await {
            Ok(r) => r,
            Err(e) => {
                let mut r = Report::new(s.name);
                r.errors = 1;
                r.set("failure", format!("{e:#}"));
                r
            }
        };
        for r in std::mem::take(&mut ctx.extra_reports) {
            emit(json, &r);
            reports.push(r);
        }
        emit(json, &report);
        reports.push(report);
    }
    if let Some(t) = ctx.target.take() {
        t.stop().await;
    }
    if !json {
        print_table(&reports);
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| r.failed())
        .map(|r| r.scenario.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("errors in: {}", failed.join(", "));
    }
    Ok(())
}

fn emit(json: bool, report: &Report) {
    if json {
        println!("{}", serde_json::to_string(report).unwrap_or_default());
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{}", round(x)))
}

fn print_table(reports: &[Report]) {
    println!(
        "{:<26} {:>10} {:>8} {:>8} {:>8} {:>6} {:>10} {:>6}  target",
        "scenario", "ops/s", "p50 ms", "p99 ms", "RSS MiB", "errors", "ceiling/s", "ratio"
    );
    for r in reports {
        let target = match (&r.target, r.meets_target) {
            (Some(t), Some(true)) => format!("{t}: met"),
            (Some(t), Some(false)) => format!("{t}: MISSED"),
            (Some(t), None) => t.clone(),
            _ => String::new(),
        };
        println!(
            "{:<26} {:>10} {:>8} {:>8} {:>8} {:>6} {:>10} {:>6}  {}",
            r.scenario,
            fmt_opt(r.ops_per_s),
            fmt_opt(r.p50_ms),
            fmt_opt(r.p99_ms),
            fmt_opt(r.server_rss_mib),
            r.errors,
            fmt_opt(r.ceiling_ops_per_s),
            fmt_opt(r.ratio),
            target
        );
        if !r.extra.is_empty() {
            let details: Vec<String> = r
                .extra
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}: {s}"),
                    other => format!("{k}: {other}"),
                })
                .collect();
            let prefix = if r.missing() { "  MISSING " } else { "  " };
            println!("{prefix}{}", details.join(", "));
        }
    }
}
