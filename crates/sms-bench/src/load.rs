//! A lean closed-loop HTTP/1.1 load generator: one keep-alive connection per worker (hyper,
//! no pool, no TLS), bounded by a deadline and by a request count.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One request to send and the status that counts as success.
#[derive(Clone)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Bytes,
    pub expect: StatusCode,
}

impl Req {
    pub fn head(path: String, expect: StatusCode) -> Self {
        Self {
            method: Method::HEAD,
            path,
            authorization: None,
            body: Bytes::new(),
            expect,
        }
    }
}

/// Builds request number `i` (0-based, unique across workers).
pub type MakeReq = dyn Fn(u64) -> Req + Send + Sync;

#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub connections: usize,
    pub duration: Duration,
    pub max_requests: u64,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latency of every completed request, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// Request numbers that got the expected status.
    pub succeeded: Vec<u64>,
    pub first_error: Option<String>,
}

impl Outcome {
    pub fn ops_per_s(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        percentile_us(&self.latencies_us, p).map(|us| us / 1000.0)
    }
}

/// The `p`-th percentile (0..100) of sorted microsecond samples.
pub fn percentile_us(sorted: &[u32], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(f64::from(sorted[rank.clamp(1, sorted.len()) - 1]))
}

struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

async fn connect(addr: SocketAddr) -> Result<Conn, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Conn { sender })
}

async fn send(
    conn: &mut Conn,
    host: &HeaderValue,
    req: &Req,
) -> Result<(StatusCode, Bytes), String> {
    let mut builder = Request::builder()
        .method(req.method.clone())
        .uri(req.path.as_str())
        .header(HOST, host.clone());
    if let Some(auth) = &req.authorization {
        builder = builder.header("authorization", auth.as_str());
    }
    if !req.body.is_empty() {
        let json = req.body.first() == Some(&b'{');
        builder = builder.header(
            "content-type",
            if json {
                "application/json"
            } else {
                "text/plain"
            },
        );
    }
    let request = builder
        .body(Full::new(req.body.clone()))
        .map_err(|e| e.to_string())?;
    conn.sender
        .ready()
        .await
        .map_err(|e| format!("connection: {e}"))?;
    let response = conn
        .sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((status, body))
}

/// One request on its own connection: the status and the body.
pub async fn probe(addr: SocketAddr, req: &Req) -> Result<(StatusCode, Bytes), String> {
    let host = HeaderValue::from_str(&addr.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
    let mut conn = connect(addr).await?;
    send(&mut conn, &host, req).await
}

struct Worker {
    ok: u64,
    errors: u64,
    latencies_us: Vec<u32>,
    succeeded: Vec<u64>,
    first_error: Option<String>,
}

impl Worker {
    fn error(&mut self, message: String) {
        self.errors += 1;
        self.first_error.get_or_insert(message);
    }
}

/// Runs `make` requests on `load.connections` connections until the deadline or until
/// `load.max_requests` were issued. Connections are opened before the clock starts.
pub async fn run(addr: SocketAddr, load: Load, make: Arc<MakeReq>) -> Outcome {
    run_spread(&[addr], load, make).await
}

/// [`run`] over several servers (replicas behind a connection-level load balancer):
/// connection `k` goes to `addrs[k % addrs.len()]` and stays there.
pub async fn run_spread(addrs: &[SocketAddr], load: Load, make: Arc<MakeReq>) -> Outcome {
    let mut conns = Vec::with_capacity(load.connections);
    let mut outcome = Outcome::default();
    if addrs.is_empty() {
        outcome.errors = 1;
        outcome.first_error = Some("no server to load".to_owned());
        return outcome;
    }
    for k in 0..load.connections.max(1) {
        let addr = addrs[k % addrs.len()];
        let host = HeaderValue::from_str(&addr.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        match connect(addr).await {
            Ok(c) => conns.push((addr, host, c)),
            Err(e) => {
                outcome.errors += 1;
                outcome.first_error.get_or_insert(e);
            }
        }
    }
    if conns.is_empty() {
        return outcome;
    }
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + load.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (addr, host, mut conn) in conns {
        let (next, make) = (next.clone(), make.clone());
        let per_worker = (load.max_requests / load.connections.max(1) as u64).min(1 << 20) as usize;
        tasks.spawn(async move {
            let mut w = Worker {
                ok: 0,
                errors: 0,
                latencies_us: Vec::with_capacity(per_worker.min(64 * 1024)),
                succeeded: Vec::new(),
                first_error: None,
            };
            loop {
                let t0 = Instant::now();
                if t0 >= deadline {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= load.max_requests {
                    break;
                }
                let req = make(i);
                match send(&mut conn, &host, &req).await {
                    Ok((status, _)) => {
                        w.latencies_us
                            .push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                        if status == req.expect {
                            w.ok += 1;
                            w.succeeded.push(i);
                        } else {
                            w.error(format!(
                                "{} {}: status {status}, expected {}",
                                req.method, req.path, req.expect
                            ));
                        }
                    }
                    Err(e) => {
                        w.error(e);
                        // A broken connection is replaced (bounded by the deadline).
                        match connect(addr).await {
                            Ok(c) => conn = c,
                            Err(e) => {
                                w.error(e);
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                }
            }
            w
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(w) => {
                outcome.ok += w.ok;
                outcome.errors += w.errors;
                outcome.latencies_us.extend(w.latencies_us);
                outcome.succeeded.extend(w.succeeded);
                if outcome.first_error.is_none() {
                    outcome.first_error = w.first_error;
                }
            }
            Err(e) => {
                outcome.errors += 1;
                outcome.first_error.get_or_insert(format!("worker: {e}"));
            }
        }
    }
    outcome.elapsed = start.elapsed();
    outcome.latencies_us.sort_unstable();
    outcome.succeeded.sort_unstable();
    outcome
}
