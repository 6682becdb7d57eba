//! [`FaultProxy`]: a loopback TCP proxy in front of a JSON-RPC node or a PostgreSQL server that
//! can be switched to misbehave (hang, answer garbage, close, blackhole, refuse), to test how
//! clients bound and recover from faults.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with each connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward bytes to the upstream node.
    None,
    /// Accept and read, never answer.
    Hang,
    /// Answer every request with HTTP 200 and a body that is not JSON-RPC.
    HttpGarbage,
    /// Answer with bytes that are not HTTP at all, then close.
    RawGarbage,
    /// Close each connection as soon as it is accepted.
    Close,
    /// A network cut: open connections stay open but nothing is forwarded either way; new
    /// connections are accepted and never answered.
    Blackhole,
    /// A stopped server: the port is closed (connection refused) and open connections are
    /// closed.
    Refuse,
}

/// A proxy on `127.0.0.1:<random port>`. Switching the fault drops the open connections, so
/// pooled keep-alive connections see the new behaviour at once. Stops on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    fault: watch::Sender<Fault>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (e.g. `127.0.0.1:<anvil port>`), forwarding.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (fault, _) = watch::channel(Fault::None);
        let rx = fault.subscribe();
        let accept = tokio::spawn(accept_loop(listener, addr, upstream, rx));
        Ok(Self {
            addr,
            fault,
            accept,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Accepts while the fault is not `Refuse`; under `Refuse` the listening socket is closed and
/// bound again (same port) when the fault changes.
async fn accept_loop(
    mut listener: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut rx: watch::Receiver<Fault>,
) {
    loop {
        if *rx.borrow_and_update() == Fault::Refuse {
            drop(listener);
            loop {
                if rx.changed().await.is_err() {
                    return;
                }
                if *rx.borrow_and_update() != Fault::Refuse {
                    break;
                }
            }
            listener = loop {
                match TcpListener::bind(addr).await {
                    Ok(l) => break l,
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                }
            };
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    tokio::spawn(serve(socket, upstream, rx.clone()));
                }
                Err(_) => return,
            },
            changed = rx.changed() => if changed.is_err() { return },
        }
    }
}

/// Holds a connection open without forwarding until the fault changes.
async fn swallow(socket: &mut TcpStream, fault: &mut watch::Receiver<Fault>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            read = socket.read(&mut buf) => if matches!(read, Ok(0) | Err(_)) { return },
            _ = fault.changed() => return,
        }
    }
}

async fn serve(mut socket: TcpStream, upstream: SocketAddr, mut fault: watch::Receiver<Fault>) {
    let mode = *fault.borrow_and_update();
    let mut buf = vec![0u8; 64 * 1024];
    match mode {
        Fault::None => {
            let Ok(mut node) = TcpStream::connect(upstream).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut socket, &mut node) => {}
                _ = fault.changed() => {
                    if *fault.borrow_and_update() == Fault::Blackhole {
                        // Keep both ends open, forward nothing, until the cut heals.
                        swallow(&mut socket, &mut fault).await;
                    }
                }
            }
        }
        Fault::Blackhole => swallow(&mut socket, &mut fault).await,
        Fault::Refuse => {}
        Fault::Hang => loop {
            tokio::select! {
                read = socket.read(&mut buf) => if matches!(read, Ok(0) | Err(_)) { return },
                _ = fault.changed() => return,
            }
        },
        Fault::HttpGarbage => loop {
            tokio::select! {
                read = socket.read(&mut buf) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        return;
                    }
                    let body = "<html>definitely not json-rpc</html>";
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
                _ = fault.changed() => return,
            }
        },
        Fault::RawGarbage => {
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"\x00\xff\x13garbage that is not HTTP\r\n\r\n")
                .await;
        }
        Fault::Close => {}
    }
}
