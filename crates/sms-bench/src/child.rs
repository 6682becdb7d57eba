//! Child processes of the bench (the SMS server, the bare axum handler), their start-up line,
//! their resident memory, and the loopback-only target check.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// A child process that printed `{"url": ...}` on its first JSON line.
pub struct Spawned {
    pub addr: SocketAddr,
    pub pid: u32,
    /// From spawn to the start-up line.
    pub ready_after: Duration,
    child: Child,
    _stdout: BufReader<ChildStdout>,
}

impl Spawned {
    /// `<program> --json <args…>` with a clean `SMS_*` environment; stderr goes to `log`.
    pub async fn start(program: &Path, args: &[&str], log: &Path) -> anyhow::Result<Self> {
        let mut cmd = Command::new(program);
        cmd.arg("--json").args(args);
        for (key, _) in std::env::vars_os() {
            if let Some(k) = key.to_str()
                && k.starts_with("SMS_")
                && k != "SMS_LOG"
            {
                cmd.env_remove(k);
            }
        }
        // The bench measures throughput from one loopback client: rate limits would cap it.
        cmd.env("SMS_RATE_LIMIT_IP", "off")
            .env("SMS_RATE_LIMIT_SIGNER", "off");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true);
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let pid = child.id().context("child exited at once")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                line.clear();
                if reader.read_line(&mut line).await? == 0 {
                    return Ok::<_, std::io::Error>(None);
                }
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line.trim())
                    && let Some(url) = v.get("url").and_then(|u| u.as_str())
                {
                    return Ok(Some(url.to_owned()));
                }
            }
        })
        .await;
        let ready_after = start.elapsed();
        let url = match read {
            Ok(Ok(Some(url))) => url,
            Ok(Ok(None)) => bail!(
                "`{} {}` exited before printing its URL (log: {})",
                program.display(),
                args.join(" "),
                log.display()
            ),
            Ok(Err(e)) => bail!(
                "reading the start-up line of `{} {}`: {e}",
                program.display(),
                args.join(" ")
            ),
            Err(_) => bail!(
                "`{} {}` printed no URL within 60 s (log: {})",
                program.display(),
                args.join(" "),
                log.display()
            ),
        };
        let addr = loopback_addr(&url)?;
        Ok(Self {
            addr,
            pid,
            ready_after,
            child,
            _stdout: reader,
        })
    }

    /// SIGKILL (nothing is flushed on the way out) and reap.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// The `sms` executable the bench loads: `SMS_BENCH_SMS`, else the `sms` next to this one.
pub fn sms_executable() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SMS_BENCH_SMS") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("cannot find the sms-bench executable")?;
    let sms = exe.with_file_name("sms");
    if !sms.is_file() {
        bail!(
            "no sms executable next to {} (build the workspace, or set SMS_BENCH_SMS)",
            exe.display()
        );
    }
    Ok(sms)
}

/// An SMS server child in `--dev` mode on a loopback port, in `data_dir`.
pub async fn start_server(data_dir: &Path) -> anyhow::Result<Spawned> {
    let dir = data_dir.to_str().context("data dir is not UTF-8")?;
    let log = data_dir.join("server.log");
    std::fs::create_dir_all(data_dir)?;
    Spawned::start(
        &sms_executable()?,
        &[
            "server",
            "--dev",
            "--data-dir",
            dir,
            "--listen",
            "127.0.0.1:0",
        ],
        &log,
    )
    .await
}

/// The `sms-bench --serve-bare` child: a trivial axum handler, the HTTP ceiling.
pub async fn start_bare(work: &Path) -> anyhow::Result<Spawned> {
    let exe = std::env::current_exe().context("cannot find the sms-bench executable")?;
    Spawned::start(&exe, &["--serve-bare"], &work.join("bare.log")).await
}

/// The socket address of an `http://` URL, refused unless it is loopback.
pub fn loopback_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!(
            "--sms-url must be http:// on loopback (the bench measures the server, not TLS): {url}"
        );
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let with_port =
        if (authority.starts_with('[') && !authority.contains("]:")) || !authority.contains(':') {
            format!("{authority}:80")
        } else {
            authority.to_owned()
        };
    let addrs: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority}"))?
        .collect();
    let Some(addr) = addrs.first().copied() else {
        bail!("{authority} resolves to no address")
    };
    if !addrs.iter().all(|a| a.ip().is_loopback()) {
        bail!(
            "refusing to load {url}: the bench only targets loopback addresses (127.0.0.0/8, ::1)"
        );
    }
    Ok(addr)
}

/// `VmRSS` and `VmHWM` (peak) of a process, in MiB.
pub fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// User + system CPU seconds of a process so far (`/proc/<pid>/stat`, USER_HZ = 100).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// CPU microseconds per operation spent by `pid` (and by this bench) during `f`.
pub struct CpuMeter {
    server: Option<(u32, f64)>,
    client: Option<f64>,
}

impl CpuMeter {
    pub fn start(server_pid: Option<u32>) -> Self {
        let server = server_pid.and_then(|p| cpu_seconds(p).map(|c| (p, c)));
        Self {
            server,
            client: cpu_seconds(std::process::id()),
        }
    }

    /// (server µs/op, client µs/op).
    pub fn per_op(&self, ops: u64) -> (Option<f64>, Option<f64>) {
        let n = ops.max(1) as f64;
        let server = self
            .server
            .and_then(|(p, c0)| cpu_seconds(p).map(|c| (c - c0) * 1e6 / n));
        let client = self
            .client
            .and_then(|c0| cpu_seconds(std::process::id()).map(|c| (c - c0) * 1e6 / n));
        (server, client)
    }
}

/// The process listening on `addr` (best effort, Linux): used for the RSS of a `--sms-url`.
pub fn pid_listening_on(addr: SocketAddr) -> Option<u32> {
    let tables = if addr.is_ipv4() {
        ["/proc/net/tcp"]
    } else {
        ["/proc/net/tcp6"]
    };
    let port = format!("{:04X}", addr.port());
    let mut inode = None;
    for table in tables {
        let text = std::fs::read_to_string(table).ok()?;
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT, st 0A is LISTEN, inode is column 9.
            if cols.len() > 9 && cols[1].ends_with(&format!(":{port}")) && cols[3] == "0A" {
                inode = Some(cols[9].to_owned());
            }
        }
    }
    let target = format!("socket:[{}]", inode?);
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str()) {
                return Some(pid);
            }
        }
    }
    None
}

/// Root of the bench's temporary data directories (kept on the same file system as TMPDIR).
pub fn work_dir() -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("sms-bench-")
        .tempdir()
        .context("cannot create a temporary directory")
}
