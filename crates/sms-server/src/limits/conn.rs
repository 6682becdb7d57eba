//! Connection limits, applied below HTTP (and below TLS) by an acceptor:
//!
//! - at most `max_connections` open connections: one more is closed as soon as it is accepted;
//! - a connection's clock: while no request is in flight it must either send a whole request
//!   head within `header_read_timeout` of its first byte, or stay silent no longer than
//!   `idle_timeout`; past either it is closed. A request in flight is bounded by the request
//!   timeout instead (`super::layer`). Slow-loris (a byte at a time) and idle keep-alive
//!   connections both end, whatever the protocol (HTTP/1, HTTP/2, a stalled TLS handshake).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Timeouts of an open connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionTimeouts {
    pub header_read: Duration,
    pub idle: Duration,
}

/// What a connection is doing, for its clock.
#[derive(Debug)]
struct Phase {
    in_flight: usize,
    /// When the connection last became idle (no request in flight, nothing read since).
    idle_since: Instant,
    /// When the first byte of the next request head arrived, while idle.
    head_since: Option<Instant>,
}

/// Shared by a connection's stream and its service.
#[derive(Debug)]
struct Clock {
    timeouts: ConnectionTimeouts,
    phase: Mutex<Phase>,
}

impl Clock {
    fn new(timeouts: ConnectionTimeouts) -> Self {
        Self {
            timeouts,
            phase: Mutex::new(Phase {
                in_flight: 0,
                idle_since: Instant::now(),
                head_since: None,
            }),
        }
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn on_read(&self) {
        let mut p = self.phase();
        if p.in_flight == 0 && p.head_since.is_none() {
            p.head_since = Some(Instant::now());
        }
    }

    fn on_write(&self) {
        let mut p = self.phase();
        if p.in_flight == 0 {
            p.idle_since = Instant::now();
        }
    }

    fn request_started(&self) {
        let mut p = self.phase();
        p.in_flight += 1;
        p.head_since = None;
    }

    fn request_ended(&self) {
        let mut p = self.phase();
        p.in_flight = p.in_flight.saturating_sub(1);
        if p.in_flight == 0 {
            p.idle_since = Instant::now();
            p.head_since = None;
        }
    }

    /// When the connection is to be closed if nothing changes (`None`: a request is in flight).
    fn deadline(&self) -> Option<(Instant, &'static str)> {
        let p = self.phase();
        if p.in_flight > 0 {
            return None;
        }
        Some(match p.head_since {
            Some(t) => (t + self.timeouts.header_read, "header"),
            None => (p.idle_since + self.timeouts.idle, "idle"),
        })
    }
}

/// The acceptor: counts connections against the limit and gives each one its clock.
#[derive(Clone)]
pub struct LimitedAcceptor<A> {
    inner: A,
    permits: Arc<Semaphore>,
    max: usize,
    timeouts: ConnectionTimeouts,
}

impl<A> LimitedAcceptor<A> {
    pub fn new(inner: A, max_connections: usize, timeouts: ConnectionTimeouts) -> Self {
        metrics::gauge!("sms_connections_max").set(max_connections as f64);
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max_connections)),
            max: max_connections,
            timeouts,
        }
    }
}

impl<A, I, S> Accept<I, S> for LimitedAcceptor<A>
where
    A: Accept<TimedIo<I>, ConnService<S>>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future =
        Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send + 'static>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            metrics::counter!("sms_connections_refused_total").increment(1);
            tracing::debug!(
                max = self.max,
                "connection refused: too many open connections"
            );
            drop(stream);
            return Box::pin(std::future::ready(Err(io::Error::other(
                "too many open connections",
            ))));
        };
        metrics::gauge!("sms_connections_open").increment(1.0);
        let clock = Arc::new(Clock::new(self.timeouts));
        let stream = TimedIo {
            inner: stream,
            clock: clock.clone(),
            timer: Box::pin(tokio::time::sleep(self.timeouts.idle)),
            _permit: OpenConnection(permit),
        };
        let service = ConnService {
            inner: service,
            clock,
        };
        Box::pin(self.inner.accept(stream, service))
    }
}

/// Held by an open connection: its place under the limit and the open-connections gauge.
struct OpenConnection(#[allow(dead_code)] OwnedSemaphorePermit);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!("sms_connections_open").decrement(1.0);
    }
}

/// A connection's stream: reads fail with `TimedOut` once the clock's deadline passes.
pub struct TimedIo<I> {
    inner: I,
    clock: Arc<Clock>,
    timer: Pin<Box<Sleep>>,
    _permit: OpenConnection,
}

impl<I> TimedIo<I> {
    /// `Err` when the connection is past its deadline; otherwise the timer is armed for it.
    fn check_clock(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let Some((deadline, what)) = self.clock.deadline() else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            metrics::counter!("sms_connections_timed_out_total", "phase" => what).increment(1);
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connection closed: {what} timeout"),
            ));
        }
        // The timer is re-armed only for an earlier deadline: every answer moves the idle
        // deadline later, and resetting a tokio timer per request (a timer-wheel update under
        // its lock) was a measurable share of the request path. A timer that fires before the
        // current deadline is re-armed then.
        if deadline < self.timer.deadline() {
            self.timer.as_mut().reset(deadline);
        }
        // Registers the waker.
        if self.timer.as_mut().poll(cx).is_ready() {
            self.timer.as_mut().reset(deadline);
            if self.timer.as_mut().poll(cx).is_ready() {
                metrics::counter!("sms_connections_timed_out_total", "phase" => what).increment(1);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connection closed: {what} timeout"),
                ));
            }
        }
        Ok(())
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for TimedIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.clock.on_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.check_clock(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for TimedIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.on_write();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.on_write();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A connection's service: marks its requests in flight on the connection's clock.
#[derive(Clone)]
pub struct ConnService<S> {
    inner: S,
    clock: Arc<Clock>,
}

/// Ends the request on the clock when the answer's future completes or is dropped.
struct InFlight(Arc<Clock>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

impl<S, R> tower::Service<R> for ConnService<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.clock.request_started();
        let guard = InFlight(self.clock.clone());
        let future = self.inner.call(request);
        Box::pin(async move {
            let out = future.await;
            drop(guard);
            out
        })
    }
}
