//! The scenarios and the measurement of the ceilings they are compared with.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_signer_local::PrivateKeySigner;
use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use sms_core::Address;
use sms_core::challenge;
use sms_core::secret::{RequesterSecretName, SecretId, SecretValue};
use sms_core::signature::sign_eip191;
use sms_store::sqlite::SqliteBackend;
use sms_store::{Backend, MasterKey, RecordKey, Store};

use super::ceilings;
use super::child;
use super::load::{self, Load, Outcome, Req};
use super::{Ctx, Report, round};

const CHECK_CONNECTIONS: usize = 64;
/// 2025-07-01T00:00:00Z, inside the validity window of the fixture's collateral.
const DCAP_NOW: u64 = 1_751_328_000;

/// Fills the latency and throughput fields of a report from a load outcome.
pub(super) fn from_outcome(name: &str, o: &Outcome) -> Report {
    let mut r = Report::new(name);
    r.ops_per_s = Some(round(o.ops_per_s()));
    r.p50_ms = o.percentile_ms(50.0).map(round);
    r.p99_ms = o.percentile_ms(99.0).map(round);
    r.errors = o.errors;
    r.set("requests", o.ok + o.errors);
    r.set("seconds", round(o.elapsed.as_secs_f64()));
    if let Some(e) = &o.first_error {
        r.set("first_error", e.clone());
    }
    r
}

/// Records the CPU cost per operation of the server and of this client.
/// Returns the total (server + client) CPU microseconds per operation when both are known.
fn set_cpu(r: &mut Report, meter: &child::CpuMeter, ops: u64) -> Option<f64> {
    let (server, client) = meter.per_op(ops);
    if let Some(us) = server {
        r.set("server_cpu_us_per_op", round(us));
    }
    if let Some(us) = client {
        r.set("client_cpu_us_per_op", round(us));
    }
    Some(server? + client?)
}

/// The ceiling's CPU per operation over the scenario's: a ratio that other processes
/// competing for the cores disturb much less than the throughput ratio.
fn set_cpu_ratio(r: &mut Report, ceiling_us: Option<f64>, scenario_us: Option<f64>) {
    if let (Some(c), Some(s)) = (ceiling_us, scenario_us)
        && s > 0.0
    {
        r.set("cpu_ratio", (c / s * 1000.0).round() / 1000.0);
    }
}

/// A unique prefix per run, so runs against the same `--sms-url` never collide.
pub(super) fn run_tag() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Signed requester-secret pushes, signed on every core before the clock starts.
pub(super) fn signed_pushes(signer: &PrivateKeySigner, names: &[String]) -> Vec<Req> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = names.len().div_ceil(threads).max(1);
    let requester = signer.address();
    std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(i, name)| {
                            let value = format!("bench-value-{i:08}-{}", "x".repeat(40));
                            let digest = challenge::named_secret(
                                requester.as_slice(),
                                name,
                                value.as_bytes(),
                            );
                            Req {
                                method: Method::POST,
                                path: format!("/requesters/{requester}/secrets/{name}"),
                                authorization: Some(sign_eip191(signer, &digest).to_hex()),
                                body: Bytes::from(value),
                                expect: StatusCode::NO_CONTENT,
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// `--presign-pushes`: `n` signed pushes of a fresh wallet on stdout, for wrk and the like.
pub(super) fn print_presigned(n: usize) -> anyhow::Result<()> {
    use std::io::Write;
    let signer = PrivateKeySigner::random();
    let tag = run_tag();
    let names: Vec<String> = (0..n).map(|i| format!("ext-{tag}-{i}")).collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for req in signed_pushes(&signer, &names) {
        let body = std::str::from_utf8(&req.body).context("push body is not UTF-8")?;
        writeln!(
            out,
            "{}\t{}\t{body}",
            req.path,
            req.authorization.unwrap_or_default()
        )?;
    }
    out.flush()?;
    Ok(())
}

pub(super) fn replay(reqs: Arc<Vec<Req>>) -> Arc<load::MakeReq> {
    Arc::new(move |i| reqs[i as usize % reqs.len()].clone())
}

/// Runs every request of `reqs` once (setup and verification, not timed as a figure).
async fn run_all(addr: std::net::SocketAddr, reqs: Arc<Vec<Req>>, connections: usize) -> Outcome {
    let n = reqs.len() as u64;
    let load = Load {
        connections,
        duration: Duration::from_secs(600),
        max_requests: n,
    };
    load::run(addr, load, replay(reqs)).await
}

// ---- ceilings ------------------------------------------------------------------------------

pub async fn measure_ceilings(ctx: &mut Ctx, scenarios: &[&str]) -> anyhow::Result<Vec<Report>> {
    let wants = |names: &[&str]| names.iter().any(|n| scenarios.contains(n));
    let duration = ctx.duration.min(Duration::from_secs(2));
    let mut out = Vec::new();
    let mut c = ctx.ceilings.clone();

    if wants(&["check", "push", "scale"]) {
        let bare = child::start_bare(&ctx.work).await?;
        let path = format!(
            "/requesters/{}/secrets/bench-bare",
            Address::repeat_byte(0x11)
        );
        if wants(&["check", "scale"]) {
            let make: Arc<load::MakeReq> = Arc::new({
                let path = path.clone();
                move |_| Req::head(path.clone(), StatusCode::NO_CONTENT)
            });
            let load = Load {
                connections: CHECK_CONNECTIONS,
                duration,
                max_requests: ctx.max_requests(200_000.0),
            };
            let meter = child::CpuMeter::start(Some(bare.pid));
            let o = load::run(bare.addr, load, make).await;
            c.bare_head = Some(o.ops_per_s());
            let mut r = from_outcome("ceiling:bare-head", &o);
            c.bare_head_cpu_us = set_cpu(&mut r, &meter, o.ok + o.errors);
            r.server_rss_mib = child::rss_mib(bare.pid).map(|(rss, _)| round(rss));
            r.set("connections", CHECK_CONNECTIONS);
            out.push(r);
        }
        if wants(&["push"]) {
            let signer = PrivateKeySigner::random();
            let reqs = signed_pushes(&signer, &["bench-bare".to_owned()]);
            let make: Arc<load::MakeReq> = Arc::new(move |_| Req {
                path: path.clone(),
                ..reqs[0].clone()
            });
            let load = Load {
                connections: ctx.push_connections,
                duration,
                max_requests: ctx.max_requests(200_000.0),
            };
            let meter = child::CpuMeter::start(Some(bare.pid));
            let o = load::run(bare.addr, load, make).await;
            c.bare_post = Some(o.ops_per_s());
            let mut r = from_outcome("ceiling:bare-post", &o);
            set_cpu(&mut r, &meter, o.ok + o.errors);
            r.server_rss_mib = child::rss_mib(bare.pid).map(|(rss, _)| round(rss));
            r.set("connections", ctx.push_connections);
            out.push(r);
        }
        bare.kill().await;
    }
    if wants(&["push"]) {
        let meter = child::CpuMeter::start(None);
        let recoveries =
            tokio::task::spawn_blocking(move || ceilings::secp256k1_recoveries(duration)).await?;
        c.recoveries = Some(recoveries);
        let recovery_cpu = meter.per_op((recoveries * duration.as_secs_f64()) as u64).1;
        let meter = child::CpuMeter::start(None);
        let seals = tokio::task::spawn_blocking(move || ceilings::aes_gcm_seals(duration)).await?;
        c.seals = Some(seals);
        let seal_cpu = meter.per_op((seals * duration.as_secs_f64()) as u64).1;
        let dir = ctx.work.join("ceiling-sqlite");
        let (single, _) = ceilings::sqlite_commits(&dir, 1, duration).await?;
        let (batched_commits, batched_rows) = ceilings::sqlite_commits(&dir, 64, duration).await?;
        c.sqlite_single = Some(single);
        c.sqlite_batched_rows = Some(batched_rows);
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        for (name, ops, note, cpu) in [
            (
                "ceiling:secp256k1-recover",
                recoveries,
                format!("EIP-191 recoveries on {threads} threads"),
                recovery_cpu,
            ),
            (
                "ceiling:aes-256-gcm-seal",
                seals,
                format!("64-byte seals with AAD on {threads} threads"),
                seal_cpu,
            ),
            (
                "ceiling:sqlite-commit",
                single,
                "durable commits of 1 row (WAL, synchronous=FULL)".to_owned(),
                None,
            ),
            (
                "ceiling:sqlite-commit-batched",
                batched_rows,
                format!(
                    "rows/s in commits of 64 rows ({} commits/s)",
                    round(batched_commits)
                ),
                None,
            ),
        ] {
            let mut r = Report::new(name);
            r.ops_per_s = Some(round(ops));
            r.set("what", note);
            // In process, all cores: this process's CPU per operation.
            if let Some(us) = cpu {
                r.set("server_cpu_us_per_op", round(us));
            }
            out.push(r);
        }
    }
    ctx.ceilings = c;
    Ok(out)
}

// ---- check ---------------------------------------------------------------------------------

pub async fn check(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let (duration, max) = (ctx.duration, ctx.max_requests(200_000.0));
    let ceiling = ctx.ceilings.bare_head;
    let ctx_bare_cpu = ctx.ceilings.bare_head_cpu_us;
    let target = ctx.target().await?;
    let addr = target.addr;
    let signer = PrivateKeySigner::random();
    let tag = run_tag();
    let names: Vec<String> = (0..256).map(|j| format!("chk-{tag}-{j}")).collect();
    let setup = run_all(addr, Arc::new(signed_pushes(&signer, &names)), 16).await;
    if setup.ok != names.len() as u64 {
        bail!(
            "storing the secrets to check failed: {}",
            setup.first_error.unwrap_or_default()
        );
    }
    let requester = signer.address();
    let existing: Vec<String> = names
        .iter()
        .map(|n| format!("/requesters/{requester}/secrets/{n}"))
        .collect();
    let missing: Vec<String> = (0..256)
        .map(|j| format!("/requesters/{requester}/secrets/missing-{tag}-{j}"))
        .collect();
    let make: Arc<load::MakeReq> = Arc::new(move |i| {
        let k = (i / 2) as usize % 256;
        if i % 2 == 0 {
            Req::head(existing[k].clone(), StatusCode::NO_CONTENT)
        } else {
            Req::head(missing[k].clone(), StatusCode::NOT_FOUND)
        }
    });
    let meter = child::CpuMeter::start(target.pid);
    let o = load::run(
        addr,
        Load {
            connections: CHECK_CONNECTIONS,
            duration,
            max_requests: max,
        },
        make,
    )
    .await;
    let mut r = from_outcome("check", &o);
    let cpu = set_cpu(&mut r, &meter, o.ok + o.errors);
    set_cpu_ratio(&mut r, ctx_bare_cpu, cpu);
    r.server_rss_mib = target.rss_mib();
    r.set("connections", CHECK_CONNECTIONS);
    let mut r = r.with_ceiling(ceiling);
    r.target = Some("≥ 70 % of the bare handler".into());
    r.meets_target = r.ratio.map(|x| x >= 0.7);
    Ok(r)
}

// ---- push ----------------------------------------------------------------------------------

pub async fn push(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let (duration, connections) = (ctx.duration, ctx.push_connections);
    let max = ctx.max_requests(8_000.0);
    let ceiling = ctx.ceilings.push();
    let signer = PrivateKeySigner::random();
    let tag = run_tag();
    let names: Vec<String> = (0..max).map(|i| format!("push-{tag}-{i}")).collect();
    let signing = Instant::now();
    let reqs = Arc::new(signed_pushes(&signer, &names));
    let signing = signing.elapsed();

    let target = ctx.target().await?;
    let make = replay(reqs.clone());
    let meter = child::CpuMeter::start(target.pid);
    let o = load::run(
        target.addr,
        Load {
            connections,
            duration,
            max_requests: max,
        },
        make,
    )
    .await;
    let mut r = from_outcome("push", &o);
    set_cpu(&mut r, &meter, o.ok + o.errors);
    r.server_rss_mib = target.rss_mib();
    r.set("connections", connections);
    r.set("presigned", max);
    r.set("signing_s", round(signing.as_secs_f64()));
    if o.ok + o.errors >= max {
        r.set("capped", true);
    }

    // Every acknowledged write must survive: SIGKILL the server, restart it on the same data
    // directory, then read back every acknowledged name.
    let acked: Vec<Req> = o
        .succeeded
        .iter()
        .map(|&i| Req::head(reqs[i as usize].path.clone(), StatusCode::NO_CONTENT))
        .collect();
    let how = if target.restartable() {
        let ready = target.kill_and_restart().await?;
        r.set("restart_ms", round(ready.as_secs_f64() * 1000.0));
        "SIGKILL, restart, HEAD every acknowledged secret"
    } else {
        "HEAD every acknowledged secret (no restart: --sms-url)"
    };
    let n_acked = acked.len() as u64;
    let verify = run_all(target.addr, Arc::new(acked), CHECK_CONNECTIONS).await;
    r.set("acknowledged", n_acked);
    r.set("lost", n_acked.saturating_sub(verify.ok));
    r.set("durability_check", how);
    let mut r = r.with_ceiling(ceiling);
    r.target = Some("≥ 15000/s, p99 ≤ 10 ms, lost = 0".into());
    r.meets_target = match (r.ops_per_s, r.p99_ms) {
        (Some(ops), Some(p99)) => Some(ops >= 15_000.0 && p99 <= 10.0 && n_acked == verify.ok),
        _ => None,
    };
    Ok(r)
}

// ---- session, release (APIs under construction) --------------------------------------------

/// Whether `path` is routed by the target: axum answers an unrouted path with an empty 404
/// (or 405); a handler's refusal of the empty JSON POST has a body.
async fn route_exists(ctx: &mut Ctx, path: &str) -> anyhow::Result<bool> {
    let target = ctx.target().await?;
    let req = Req {
        method: Method::POST,
        path: path.to_owned(),
        authorization: None,
        body: Bytes::from_static(b"{}"),
        expect: StatusCode::OK,
    };
    let (status, body) = load::probe(target.addr, &req)
        .await
        .map_err(anyhow::Error::msg)?;
    let unrouted = matches!(
        status,
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
    ) && body.is_empty();
    Ok(!unrouted)
}

fn missing(name: &str, reason: String) -> Report {
    let mut r = Report::new(name);
    r.set("missing", reason);
    r
}

/// A TEE app (SCONE enclave configuration) and a workerpool on the dev ledger, deals with
/// `n` fresh tasks, and the worker's result-storage token: what a session needs.
struct SessionWorld {
    client: sms_client::SmsClient,
    pool_owner: PrivateKeySigner,
    worker: PrivateKeySigner,
    tasks: Vec<sms_core::B256>,
}

async fn session_world(url: &str, n: usize) -> anyhow::Result<SessionWorld> {
    use serde_json::{Value, json};
    let client = sms_client::SmsClient::new(url, &sms_client::ClientOptions::default())?;
    let (app_owner, pool_owner, requester, worker) = (
        PrivateKeySigner::random(),
        PrivateKeySigner::random(),
        PrivateKeySigner::random(),
        PrivateKeySigner::random(),
    );
    let mrenclave = json!({
        "framework": "SCONE", "version": "v5", "entrypoint": "python /app/app.py",
        "heapSize": 1_073_741_824u64, "fingerprint": "ab".repeat(32),
    })
    .to_string();
    let address = |v: Value| -> anyhow::Result<Address> {
        v["address"]
            .as_str()
            .context("no address in the answer")?
            .parse()
            .context("not an address")
    };
    let app = address(
        client
            .post_json::<Value>(
                "/dev/apps",
                &json!({ "owner": app_owner.address(), "name": "bench-app", "multiaddr": "docker.io/bench/app:1.0.0",
                         "checksum": format!("0x{}", "ab".repeat(32)), "mrenclave": mrenclave }),
            )
            .await?,
    )?;
    let pool = address(
        client
            .post_json::<Value>(
                "/dev/workerpools",
                &json!({ "owner": pool_owner.address() }),
            )
            .await?,
    )?;
    let mut tasks = Vec::with_capacity(n);
    while tasks.len() < n {
        let volume = (n - tasks.len()).min(1000);
        let deal: Value = client
            .post_json(
                "/dev/deals",
                &json!({ "app": app, "workerpool": pool, "requester": requester.address(), "tag": "tee,scone", "volume": volume }),
            )
            .await?;
        for t in deal["taskIds"]
            .as_array()
            .context("no taskIds in the deal")?
        {
            tasks.push(t.as_str().context("task id")?.parse()?);
        }
    }
    let name = sms_core::session_plan::WEB2_IPFS_TOKEN;
    if !client.web2_secret_exists(worker.address(), name).await? {
        client
            .push_web2_secret(&worker, name, "sms-bench", sms_client::Web2Write::Create)
            .await?;
    }
    Ok(SessionWorld {
        client,
        pool_owner,
        worker,
        tasks,
    })
}

impl SessionWorld {
    /// Challenge then session for task `i`; the session id.
    async fn session(&self, i: usize) -> Result<String, String> {
        let task = self.tasks[i];
        let enclave = self
            .client
            .tee_challenge(&self.pool_owner, task)
            .await
            .map_err(|e| format!("challenge: {e}"))?;
        let mut authorization = sms_core::authorization::WorkerpoolAuthorization {
            chain_task_id: task,
            deal_id: sms_core::B256::ZERO,
            task_index: 0,
            worker_wallet: self.worker.address(),
            enclave_challenge: enclave,
            signature: sign_eip191(&self.pool_owner, &sms_core::B256::ZERO),
        };
        authorization.signature = sign_eip191(&self.pool_owner, &authorization.hash());
        let answer = self
            .client
            .tee_session(&self.worker, &authorization)
            .await
            .map_err(|e| format!("session: {e}"))?;
        Ok(answer.session_id)
    }
}

/// Runs `op(i)` for i in 0..n on `concurrency` tasks until the deadline: an outcome like the
/// HTTP load's (latency per operation).
async fn run_ops<F, Fut>(n: usize, concurrency: usize, duration: Duration, op: F) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (op, next) = (op.clone(), next.clone());
        set.spawn(async move {
            let mut o = Outcome::default();
            while Instant::now() < deadline {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t0 = Instant::now();
                let result = op(i).await;
                o.latencies_us
                    .push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                match result {
                    Ok(()) => {
                        o.ok += 1;
                        o.succeeded.push(i as u64);
                    }
                    Err(e) => {
                        o.errors += 1;
                        o.first_error.get_or_insert(e);
                    }
                }
            }
            o
        });
    }
    let mut total = Outcome::default();
    while let Some(joined) = set.join_next().await {
        if let Ok(o) = joined {
            total.ok += o.ok;
            total.errors += o.errors;
            total.latencies_us.extend(o.latencies_us);
            total.succeeded.extend(o.succeeded);
            if total.first_error.is_none() {
                total.first_error = o.first_error;
            }
        }
    }
    total.elapsed = start.elapsed();
    total.latencies_us.sort_unstable();
    total.succeeded.sort_unstable();
    total
}

const SESSION_CONCURRENCY: usize = 32;

pub async fn session(ctx: &mut Ctx) -> anyhow::Result<Report> {
    if !route_exists(ctx, "/tee/sessions").await? {
        return Ok(missing(
            "session",
            "POST /tee/sessions is not served yet (sessions issue)".into(),
        ));
    }
    let duration = ctx.duration;
    let n = ctx.max_requests(3_000.0) as usize;
    let target = ctx.target().await?;
    let url = format!("http://{}", target.addr);
    let setup = Instant::now();
    let world = Arc::new(session_world(&url, n).await?);
    let setup = setup.elapsed();
    let meter = child::CpuMeter::start(target.pid);
    let w = world.clone();
    let o = run_ops(n, SESSION_CONCURRENCY, duration, move |i| {
        let w = w.clone();
        async move { w.session(i).await.map(|_| ()) }
    })
    .await;
    let mut r = from_outcome("session", &o);
    set_cpu(&mut r, &meter, o.ok + o.errors);
    r.server_rss_mib = target.rss_mib();
    r.set("what", "per op: POST /tee/challenges/{task} then POST /tee/sessions (fresh dev-ledger task, SCONE app)");
    r.set("connections", SESSION_CONCURRENCY);
    r.set(
        "client",
        "reqwest (sms-client), two signatures per op on the client",
    );
    r.set("setup_s", round(setup.as_secs_f64()));
    r.target = Some("≥ 3000/s".into());
    r.meets_target = r.ops_per_s.map(|x| x >= 3000.0);
    Ok(r)
}

/// One attested release of the app service: nonce, simulated evidence bound to a fresh
/// X25519 key, release, the answer's signature checked against `pinned`, and opening the
/// sealed environment.
async fn release_once(
    client: &sms_client::SmsClient,
    pinned: &sms_attest::SmsPublicKey,
    session_id: &str,
) -> Result<(), String> {
    let evidence = |report_data: &[u8; 64]| {
        Ok(sms_attest::Evidence::Simulated {
            measurement: vec![0xab; 32],
            report_data: *report_data,
            debug: false,
        })
    };
    client
        .attested_release(session_id, "app", pinned, evidence)
        .await
        .map(|_| ())
        .map_err(|e| format!("release: {e}"))
}

pub async fn release(ctx: &mut Ctx) -> anyhow::Result<Report> {
    if !route_exists(ctx, "/tee/provisioning/bench-session/app/nonce").await? {
        return Ok(missing(
            "release",
            "the /tee/provisioning API is not served yet (provisioning issue)".into(),
        ));
    }
    let duration = ctx.duration;
    // One session per release (a service is released a bounded number of times per session).
    let n = ctx.max_requests(3_000.0) as usize;
    let target = ctx.target().await?;
    let url = format!("http://{}", target.addr);
    let setup = Instant::now();
    let world = Arc::new(session_world(&url, n).await?);
    let ids = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let (w, sink) = (world.clone(), ids.clone());
    let made = run_ops(n, SESSION_CONCURRENCY, Duration::from_secs(600), move |i| {
        let (w, sink) = (w.clone(), sink.clone());
        async move {
            let id = w.session(i).await?;
            sink.lock().map_err(|_| "lock".to_owned())?.push(id);
            Ok(())
        }
    })
    .await;
    if made.errors > 0 {
        bail!(
            "creating sessions for the releases: {}",
            made.first_error.unwrap_or_default()
        );
    }
    let sessions: Arc<Vec<String>> = Arc::new(std::mem::take(
        &mut *ids
            .lock()
            .map_err(|_| anyhow::anyhow!("session list lock"))?,
    ));
    let pinned = world
        .client
        .provision_identity()
        .await
        .map_err(|e| anyhow::anyhow!("GET /tee/provisioning/identity: {e}"))?
        .public_key;
    let pinned = Arc::new(sms_attest::SmsPublicKey::from_base64(&pinned)?);
    let setup = setup.elapsed();
    let meter = child::CpuMeter::start(target.pid);
    let (w, list) = (world.clone(), sessions.clone());
    let o = run_ops(list.len(), SESSION_CONCURRENCY, duration, move |i| {
        let (w, list, pinned) = (w.clone(), list.clone(), pinned.clone());
        async move { release_once(&w.client, &pinned, &list[i]).await }
    })
    .await;
    let mut r = from_outcome("release", &o);
    set_cpu(&mut r, &meter, o.ok + o.errors);
    r.server_rss_mib = target.rss_mib();
    r.set("what", "per op: POST .../app/nonce, simulated evidence bound to a fresh X25519 key, POST .../app/release, verify the Ed25519 answer signature, open the sealed env");
    r.set("connections", SESSION_CONCURRENCY);
    r.set("client", "reqwest (sms-client)");
    r.set("sessions_prepared", sessions.len());
    r.set("setup_s", round(setup.as_secs_f64()));
    r.target = Some("≥ 3000/s".into());
    r.meets_target = r.ops_per_s.map(|x| x >= 3000.0);
    Ok(r)
}

// ---- dcap ----------------------------------------------------------------------------------

pub async fn dcap(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let dir = ctx.fixtures.clone();
    let duration = ctx.duration;
    tokio::task::spawn_blocking(move || {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path)
                .with_context(|| format!("DCAP fixture {} (set --fixtures)", path.display()))
        };
        let raw = read("sgx_quote")?;
        let collateral = sms_attest::Collateral::from_json(&read("sgx_quote_collateral.json")?)?;
        let parse_start = Instant::now();
        let quote = sms_attest::DcapQuote::parse(&raw)?;
        let parse = parse_start.elapsed();
        let (mut lat, mut errors, mut first_error) = (Vec::new(), 0u64, None);
        let meter = child::CpuMeter::start(None);
        let start = Instant::now();
        while start.elapsed() < duration && lat.len() < 100_000 {
            let t0 = Instant::now();
            let result = quote.verify(&collateral, DCAP_NOW);
            lat.push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            if let Err(e) = result {
                errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        lat.sort_unstable();
        let mut r = Report::new("dcap");
        let n = lat.len() as f64;
        r.ops_per_s = Some(round(n / elapsed));
        r.p50_ms = load::percentile_us(&lat, 50.0).map(|us| round(us / 1000.0));
        r.p99_ms = load::percentile_us(&lat, 99.0).map(|us| round(us / 1000.0));
        r.errors = errors;
        let mean_ms = elapsed * 1000.0 / n.max(1.0);
        r.set("mean_ms", round(mean_ms));
        // In process: the verifier is the server's code, so this process's CPU is its CPU.
        if let (_, Some(us)) = meter.per_op(lat.len() as u64) {
            r.set("server_cpu_us_per_op", round(us));
        }
        r.set("parse_ms", round(parse.as_secs_f64() * 1000.0));
        r.set("verifications", lat.len());
        r.set(
            "what",
            "DcapQuote::verify of the real SGX quote, offline collateral, one thread, in process",
        );
        if let Some(e) = first_error {
            r.set("first_error", e);
        }
        r.target = Some("≤ 1.5 ms per quote".into());
        r.meets_target = Some(mean_ms <= 1.5);
        Ok(r)
    })
    .await?
}

// ---- scale ---------------------------------------------------------------------------------

/// Fills a data directory with `n` requester secrets through the store (batched by the
/// group commit: many inserts in flight at once).
async fn populate(dir: &std::path::Path, n: usize, owners: &[Address]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let (master, _) = MasterKey::load_or_create(&dir.join("master.key"))?;
    let backend: Arc<dyn Backend> = Arc::new(SqliteBackend::open(&dir.join("sms.db")).await?);
    let store = Store::open(backend, master).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        while tasks.len() >= 2048 {
            if let Some(r) = tasks.join_next().await {
                r??;
            }
        }
        let store = store.clone();
        let owner = owners[i % owners.len()];
        tasks.spawn(async move {
            let name =
                RequesterSecretName::parse(&format!("scale-{i}")).map_err(anyhow::Error::msg)?;
            let key = RecordKey::from(&SecretId::requester(owner, &name));
            let value =
                SecretValue::new(format!("scale-value-{i:08}-{}", "y".repeat(40)).into_bytes());
            store.insert(&key, &value, None).await?;
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// Polls `GET /health` until it answers 200.
async fn wait_healthy(addr: std::net::SocketAddr, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    let make: Arc<load::MakeReq> = Arc::new(|_| Req {
        method: Method::GET,
        ..Req::head("/health".into(), StatusCode::OK)
    });
    while start.elapsed() < limit {
        let o = load::run(
            addr,
            Load {
                connections: 1,
                duration: limit,
                max_requests: 1,
            },
            make.clone(),
        )
        .await;
        if o.ok == 1 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    bail!("/health did not answer 200 within {limit:?}")
}

/// Polls `GET /metrics` until the store reports its key index loaded
/// (`sms_store_key_index_loaded 1`, which appears once loaded); false when the limit passed.
async fn wait_index_loaded(addr: std::net::SocketAddr, limit: Duration) -> bool {
    let start = Instant::now();
    let req = Req {
        method: Method::GET,
        ..Req::head("/metrics".into(), StatusCode::OK)
    };
    while start.elapsed() < limit {
        let Ok((StatusCode::OK, body)) = load::probe(addr, &req).await else {
            return false;
        };
        let text = String::from_utf8_lossy(&body);
        if text
            .lines()
            .find_map(|l| l.strip_prefix("sms_store_key_index_loaded "))
            .is_some_and(|v| v.trim() == "1")
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

pub async fn scale(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let n = ctx.scale_secrets.max(1);
    let dir = ctx
        .scale_dir
        .clone()
        .unwrap_or_else(|| ctx.work.join("scale"));
    // Owners derived from their index, so that a kept --scale-dir is checked with the same keys.
    let owners: Vec<Address> = (0..(n / 100).max(1))
        .map(|j| {
            Address::from_slice(&alloy_primitives::keccak256(format!("scale-owner-{j}"))[12..])
        })
        .collect();
    let marker = dir.join(format!("populated-{n}"));
    let fill = Instant::now();
    let reused = marker.exists();
    if !reused {
        populate(&dir, n, &owners).await?;
        std::fs::write(&marker, b"")?;
    }
    let fill = fill.elapsed();

    let start = Instant::now();
    let server = child::start_server(&dir).await?;
    let line = server.ready_after;
    wait_healthy(server.addr, Duration::from_secs(60)).await?;
    let startup = start.elapsed();
    let rss_idle = child::rss_mib(server.pid).map(|(rss, _)| round(rss));

    // Existence checks spread over the whole key space.
    let n_owners = owners.len();
    let paths: Arc<Vec<String>> = Arc::new(
        (0..4096.min(n))
            .map(|j| {
                let i = (j * 7919) % n;
                format!("/requesters/{}/secrets/scale-{i}", owners[i % n_owners])
            })
            .collect(),
    );
    let make: Arc<load::MakeReq> = Arc::new(move |i| {
        Req::head(
            paths[i as usize % paths.len()].clone(),
            StatusCode::NO_CONTENT,
        )
    });
    let load = Load {
        connections: CHECK_CONNECTIONS,
        duration: ctx.duration,
        max_requests: ctx.max_requests(200_000.0),
    };
    // First right after start-up, while the store may still be loading its key index in the
    // background (answers then come from the database), then once it reports the index loaded.
    let meter = child::CpuMeter::start(Some(server.pid));
    let cold = load::run(server.addr, load, make.clone()).await;
    let (cold_cpu, _) = meter.per_op(cold.ok + cold.errors);
    let loaded = wait_index_loaded(server.addr, Duration::from_secs(60)).await;
    let index_ready = start.elapsed();
    let meter = child::CpuMeter::start(Some(server.pid));
    let o = load::run(server.addr, load, make).await;
    let mut r = from_outcome("scale", &o);
    r.set("cold_ops_per_s", round(cold.ops_per_s()));
    r.set("cold_errors", cold.errors);
    r.errors += cold.errors;
    if let Some(us) = cold_cpu {
        r.set("cold_server_cpu_us_per_op", round(us));
    }
    if loaded {
        r.set("index_loaded_ms", round(index_ready.as_secs_f64() * 1000.0));
    }
    let cpu = set_cpu(&mut r, &meter, o.ok + o.errors);
    set_cpu_ratio(&mut r, ctx.ceilings.bare_head_cpu_us, cpu);
    let (rss, peak) =
        child::rss_mib(server.pid).map_or((None, None), |(a, b)| (Some(round(a)), Some(round(b))));
    server.kill().await;
    r.server_rss_mib = rss;
    r.set("secrets", n);
    r.set("populate_s", round(fill.as_secs_f64()));
    r.set("reused_store", reused);
    r.set("startup_ms", round(startup.as_secs_f64() * 1000.0));
    r.set("startup_line_ms", round(line.as_secs_f64() * 1000.0));
    r.set("rss_after_start_mib", rss_idle);
    r.set("peak_rss_mib", peak);
    r.set(
        "what",
        "ops/s, p50, p99: HEAD of existing secrets across the store, 64 connections, once the key index is loaded (cold_*: the same load right after start-up)",
    );
    let mut r = r.with_ceiling(ctx.ceilings.bare_head);
    r.target = Some("start-up ≤ 2 s, RSS ≤ 300 MiB".into());
    r.meets_target = Some(startup <= Duration::from_secs(2) && peak.is_some_and(|p| p <= 300.0));
    Ok(r)
}
