//! Hostile load: slow and idle connections, connection and in-flight limits, request timeout
//! (docs/limits.md). Bounds are generous: the figures are printed, the asserts only catch a
//! server that is starved or leaks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use sms_server::ServerConfig;
use sms_testkit::server::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Raises the soft file descriptor limit to what the test needs (client and server ends of
/// every connection live in this process).
fn ensure_fd_limit(needed: u64) {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    if soft < needed {
        let target = needed.min(hard);
        rlimit::setrlimit(rlimit::Resource::NOFILE, target, hard).unwrap();
        assert!(
            target >= needed,
            "this test needs {needed} file descriptors, the hard limit is {hard}"
        );
    }
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

async fn server_with(limits: impl FnOnce(&mut sms_server::limits::LimitsArgs)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::dev_in(dir.path().to_path_buf());
    limits(&mut config.limits);
    TestServer::with_config(config, Some(dir)).await
}

/// The value of an unlabelled gauge or counter in `/metrics` (0 when absent).
async fn metric(server: &TestServer, name: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", server.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .filter(|rest| rest.starts_with(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

const CHECK: &str =
    "/secrets/web2?ownerAddress=0x1111111111111111111111111111111111111111&secretName=k";

/// True when the server closed the connection (EOF or reset) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // An error answer (e.g. 408 on the head timeout) may come first; then EOF.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_do_not_starve_a_normal_client() {
    const IDLE: usize = 1000;
    const SLOW: usize = 1000;
    ensure_fd_limit(2 * (IDLE + SLOW) as u64 + 1024);
    // Timeouts longer than the test: the hostile connections stay open while it measures.
    let server = server_with(|l| {
        l.header_read_timeout_ms = 120_000;
        l.idle_timeout_ms = 120_000;
    })
    .await;
    let addr = server.server().local_addr;
    let client = reqwest::Client::new();
    let url = format!("{}{CHECK}", server.url());
    for _ in 0..50 {
        client.head(&url).send().await.unwrap();
    }
    let baseline = rss_mib();
    let open_before = metric(&server, "sms_connections_open").await;

    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // Byte-at-a-time clients: each sends a request head one byte every 200 ms, forever.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut slow = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut stop = stop_rx.clone();
        slow.push(tokio::spawn(async move {
            let head = b"POST /secrets/web2?ownerAddress=0x11 HTTP/1.1\r\nHost: x\r\nX-Pad: ";
            let mut i = 0usize;
            loop {
                let byte = head.get(i).copied().unwrap_or(b'a');
                i += 1;
                if stream.write_all(&[byte]).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open = metric(&server, "sms_connections_open").await;
    assert!(
        open >= (IDLE + SLOW) as f64,
        "the hostile connections are open on the server ({open})"
    );

    let mut latencies = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let start = Instant::now();
        let response = client.head(&url).send().await.unwrap();
        latencies.push(start.elapsed());
        assert_eq!(response.status(), 404);
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    let peak = rss_mib();
    println!(
        "with {IDLE} idle and {SLOW} byte-at-a-time connections open: p50 {:.2} ms, p99 {:.2} ms \
         (issue figure: p99 < 100 ms); RSS {baseline:.0} MiB before, {peak:.0} MiB with them",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    assert!(p99 < Duration::from_millis(500), "p99 {p99:?}");

    stop_tx.send(true).unwrap();
    for task in slow {
        task.await.unwrap();
    }
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut open = f64::MAX;
    while Instant::now() < deadline {
        open = metric(&server, "sms_connections_open").await;
        if open <= open_before + 4.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = rss_mib();
    println!("after they closed: {open} connections open, RSS {after:.0} MiB");
    assert!(
        open <= open_before + 4.0,
        "{open} connections still open ({open_before} before)"
    );
    assert!(
        after < baseline + 0.5 * (peak - baseline).max(0.0) + 64.0,
        "RSS {after:.0} MiB after, {baseline:.0} MiB before, {peak:.0} MiB peak"
    );
}

#[tokio::test]
async fn slow_loris_and_idle_keep_alive_connections_are_closed() {
    let server = server_with(|l| {
        l.header_read_timeout_ms = 300;
        l.idle_timeout_ms = 800;
    })
    .await;
    let addr = server.server().local_addr;

    // A head sent a byte at a time: closed once the header read timeout has passed.
    let mut loris = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let mut closed = false;
    for byte in
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    {
        if loris.write_all(&[*byte]).await.is_err()
            || closed_within(&mut loris, Duration::from_millis(50)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a byte-at-a-time head is cut");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );

    // A connection that never sends anything: closed after the idle timeout.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );

    // Keep-alive: a request is answered, then the idle connection is closed.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    assert!(closed_within(&mut kept, Duration::from_secs(5)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );

    // The server still serves.
    assert_eq!(
        reqwest::get(format!("{}/health", server.url()))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once() {
    let server = server_with(|l| l.max_connections = 8).await;
    let addr = server.server().local_addr;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert!(
        closed_within(&mut extra, Duration::from_secs(2)).await,
        "the ninth connection is closed"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        reqwest::get(format!("{}/health", server.url()))
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(metric(&server, "sms_connections_refused_total").await >= 1.0);
}

/// A POST whose body never arrives: the request is in flight until the request timeout.
async fn stalled_upload(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("POST {CHECK} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc").as_bytes(),
    )
    .await
    .unwrap();
    s
}

async fn answer_of(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("an answer in time")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn in_flight_limit_sheds_and_request_timeout_answers_408() {
    let server = server_with(|l| {
        l.request_timeout_ms = 1500;
        l.max_in_flight = "100,secrets=2".parse_in_flight();
    })
    .await;
    let addr = server.server().local_addr;
    let mut a = stalled_upload(addr).await;
    let mut b = stalled_upload(addr).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The family is full: shed at once, with Retry-After.
    let response = reqwest::Client::new()
        .head(format!("{}{CHECK}", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    // Another family is not affected.
    assert_eq!(
        reqwest::get(format!("{}/health", server.url()))
            .await
            .unwrap()
            .status(),
        200
    );
    // The stalled uploads end with 408 at the request timeout.
    for s in [&mut a, &mut b] {
        let answer = answer_of(s).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("REQUEST_TIMEOUT"), "{answer}");
    }
    // The places are free again.
    let response = reqwest::Client::new()
        .head(format!("{}{CHECK}", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

trait ParseInFlight {
    fn parse_in_flight(&self) -> sms_server::limits::FamilyValues;
}

impl ParseInFlight for str {
    fn parse_in_flight(&self) -> sms_server::limits::FamilyValues {
        self.parse().unwrap()
    }
}
