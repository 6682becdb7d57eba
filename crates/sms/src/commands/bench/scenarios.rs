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

use super::ceilings::{self, Ceilings};
use super::child;
use super::load::{self, Load, Outcome, Req};
use super::{Ctx, Report, round};

const CHECK_CONNECTIONS: usize = 64;
/// 2025-07-01T00:00:00Z, inside the validity window of the fixture's collateral.
const DCAP_NOW: u64 = 1_751_328_000;

/// Fills the latency and throughput fields of a report from a load outcome.
fn from_outcome(name: &str, o: &Outcome) -> Report {
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
fn run_tag() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Signed requester-secret pushes, signed on every core before the clock starts.
fn signed_pushes(signer: &PrivateKeySigner, names: &[String]) -> Vec<Req> {
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

fn replay(reqs: Arc<Vec<Req>>) -> Arc<load::MakeReq> {
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
    let mut c = Ceilings::default();

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
        let recoveries =
            tokio::task::spawn_blocking(move || ceilings::secp256k1_recoveries(duration)).await?;
        c.recoveries = Some(recoveries);
        let seals = tokio::task::spawn_blocking(move || ceilings::aes_gcm_seals(duration)).await?;
        c.seals = Some(seals);
        let dir = ctx.work.join("ceiling-sqlite");
        let (single, _) = ceilings::sqlite_commits(&dir, 1, duration).await?;
        let (batched_commits, batched_rows) = ceilings::sqlite_commits(&dir, 64, duration).await?;
        c.sqlite_single = Some(single);
        c.sqlite_batched_rows = Some(batched_rows);
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        for (name, ops, note) in [
            (
                "ceiling:secp256k1-recover",
                recoveries,
                format!("EIP-191 recoveries on {threads} threads"),
            ),
            (
                "ceiling:aes-256-gcm-seal",
                seals,
                format!("64-byte seals with AAD on {threads} threads"),
            ),
            (
                "ceiling:sqlite-commit",
                single,
                "durable commits of 1 row (WAL, synchronous=FULL)".to_owned(),
            ),
            (
                "ceiling:sqlite-commit-batched",
                batched_rows,
                format!(
                    "rows/s in commits of 64 rows ({} commits/s)",
                    round(batched_commits)
                ),
            ),
        ] {
            let mut r = Report::new(name);
            r.ops_per_s = Some(round(ops));
            r.set("what", note);
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
    r.target = Some("≥ 60 % of the bare handler".into());
    r.meets_target = r.ratio.map(|x| x >= 0.6);
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
    r.target = Some("≥ 2000/s, p99 ≤ 25 ms, lost = 0".into());
    r.meets_target = match (r.ops_per_s, r.p99_ms) {
        (Some(ops), Some(p99)) => Some(ops >= 2000.0 && p99 <= 25.0 && n_acked == verify.ok),
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

pub async fn session(ctx: &mut Ctx) -> anyhow::Result<Report> {
    if !route_exists(ctx, "/tee/sessions").await? {
        return Ok(missing(
            "session",
            "POST /tee/sessions is not served yet (sessions issue)".into(),
        ));
    }
    Ok(missing(
        "session",
        "POST /tee/sessions exists but this bench has no session scenario yet".into(),
    ))
}

pub async fn release(ctx: &mut Ctx) -> anyhow::Result<Report> {
    if !route_exists(ctx, "/tee/provisioning/bench-session/app/nonce").await? {
        return Ok(missing(
            "release",
            "the /tee/provisioning API is not served yet (provisioning issue)".into(),
        ));
    }
    Ok(missing(
        "release",
        "/tee/provisioning exists but this bench has no release scenario yet".into(),
    ))
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

pub async fn scale(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let n = ctx.scale_secrets.max(1);
    let dir = ctx.work.join("scale");
    let owners: Vec<Address> = (0..(n / 100).max(1))
        .map(|_| Address::from(rand::random::<[u8; 20]>()))
        .collect();
    let fill = Instant::now();
    populate(&dir, n, &owners).await?;
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
    let meter = child::CpuMeter::start(Some(server.pid));
    let o = load::run(server.addr, load, make).await;
    let mut r = from_outcome("scale", &o);
    let cpu = set_cpu(&mut r, &meter, o.ok + o.errors);
    set_cpu_ratio(&mut r, ctx.ceilings.bare_head_cpu_us, cpu);
    let (rss, peak) =
        child::rss_mib(server.pid).map_or((None, None), |(a, b)| (Some(round(a)), Some(round(b))));
    server.kill().await;
    r.server_rss_mib = rss;
    r.set("secrets", n);
    r.set("populate_s", round(fill.as_secs_f64()));
    r.set("startup_ms", round(startup.as_secs_f64() * 1000.0));
    r.set("startup_line_ms", round(line.as_secs_f64() * 1000.0));
    r.set("rss_after_start_mib", rss_idle);
    r.set("peak_rss_mib", peak);
    r.set(
        "what",
        "ops/s, p50, p99: HEAD of existing secrets across the store, 64 connections",
    );
    let mut r = r.with_ceiling(ctx.ceilings.bare_head);
    r.target = Some("start-up ≤ 1 s, RSS ≤ 150 MiB".into());
    r.meets_target = Some(startup <= Duration::from_secs(1) && peak.is_some_and(|p| p <= 150.0));
    Ok(r)
}
