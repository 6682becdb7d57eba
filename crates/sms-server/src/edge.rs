//! The layers every request passes, applied once around the router rather than to each route:
//! axum clones a route's whole layered service for every request, and each `Router::layer`
//! layer boxed and moved its future once more (callgrind, BENCHMARKS.md "Request path").
//!
//! Outermost first: [`MatchRoute`] (the connection's peer, the route's path pattern), then
//! [`Edge`]: the request id (a client's own `x-request-id` is kept, and echoed on the answer),
//! the request span (`crate::request_log`), metrics, the limits, the request timeout and the
//! simulated-TEE mark, in one future.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderName;
use axum::response::Response;
use tracing::Instrument;

use crate::limits::Limits;
use crate::metrics_layer::{OTHER, record, static_method};
use crate::request_log::{RequestFields, RequestId, request_span};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The path pattern of the route a request is for (`/requesters/{requester}/secrets/{name}`),
/// found before the router runs: span, metrics and limits name the route with it.
#[derive(Clone, Copy, Debug)]
pub struct RoutePattern(pub &'static str);

/// The mounted routes' patterns, matched as axum's router matches them (the same `matchit`).
pub struct RouteTable(matchit::Router<&'static str>);

impl RouteTable {
    pub fn new(paths: impl IntoIterator<Item = &'static str>) -> Result<Self, String> {
        let mut table = matchit::Router::new();
        for path in paths {
            table
                .insert(path, path)
                .map_err(|e| format!("route {path}: {e}"))?;
        }
        Ok(Self(table))
    }

    fn pattern(&self, path: &str) -> Option<&'static str> {
        self.0.at(path).ok().map(|m| *m.value)
    }
}

/// Makes the service of each accepted connection (in place of axum's
/// `into_make_service_with_connect_info`).
#[derive(Clone)]
pub struct Connections<S> {
    routes: Arc<RouteTable>,
    stack: S,
}

impl<S> Connections<S> {
    pub fn new(routes: RouteTable, stack: S) -> Self {
        Self {
            routes: Arc::new(routes),
            stack,
        }
    }
}

impl<S: Clone> tower::Service<SocketAddr> for Connections<S> {
    type Response = MatchRoute<S>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<MatchRoute<S>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, peer: SocketAddr) -> Self::Future {
        std::future::ready(Ok(MatchRoute {
            routes: self.routes.clone(),
            peer,
            inner: self.stack.clone(),
        }))
    }
}

/// Gives each request the connection's peer (`ConnectInfo`) and its [`RoutePattern`].
#[derive(Clone)]
pub struct MatchRoute<S> {
    routes: Arc<RouteTable>,
    peer: SocketAddr,
    inner: S,
}

impl<S, B> tower::Service<axum::http::Request<B>> for MatchRoute<S>
where
    S: tower::Service<Request>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> S::Future {
        let mut request = request.map(Body::new);
        let pattern = self.routes.pattern(request.uri().path());
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(self.peer));
        if let Some(pattern) = pattern {
            extensions.insert(RoutePattern(pattern));
        }
        self.inner.call(request)
    }
}

/// The path pattern of the route serving a request (`None`: no route matches its path).
pub fn route_of<B>(request: &axum::http::Request<B>) -> Option<&'static str> {
    request.extensions().get::<RoutePattern>().map(|p| p.0)
}

/// Request id, span, metrics, limits, timeout and simulated-TEE mark around the router.
#[derive(Clone)]
pub struct EdgeLayer {
    limits: Arc<Limits>,
    simulated_tee: bool,
    ids: Arc<RequestIds>,
}

impl EdgeLayer {
    /// `id_prefix`: the 8 hex digits of this process's request ids (drawn at random).
    pub fn new(limits: Arc<Limits>, simulated_tee: bool, id_prefix: u32) -> Self {
        Self {
            limits,
            simulated_tee,
            ids: Arc::new(RequestIds {
                prefix: id_prefix,
                counter: AtomicU64::new(0),
            }),
        }
    }
}

/// The ids of requests that bring none: `<prefix>-<counter>`.
struct RequestIds {
    prefix: u32,
    counter: AtomicU64,
}

impl RequestIds {
    fn of(&self, request: &Request) -> RequestId {
        match request.headers().get(X_REQUEST_ID) {
            Some(own) => RequestId::Client(own.clone()),
            None => RequestId::Made {
                prefix: self.prefix,
                n: self.counter.fetch_add(1, Ordering::Relaxed),
            },
        }
    }
}

/// Echoes the request id on an answer that has none of its own.
fn echo_id(response: &mut Response, id: &RequestId) {
    if !response.headers().contains_key(X_REQUEST_ID)
        && let Some(value) = id.header_value()
    {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            shared: self.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct Edge<S> {
    shared: EdgeLayer,
    inner: S,
}

type Answer = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response, Infallible>> + Send + 'static>,
>;

impl<S> tower::Service<Request> for Edge<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Answer {
        let start = Instant::now();
        let route = route_of(&request);
        let id = self.shared.ids.of(&request);
        let span = request_span(RequestFields {
            id: id.clone(),
            method: request.method().clone(),
            route: route.map_or_else(|| Cow::Owned(request.uri().path().to_owned()), Cow::Borrowed),
        });
        let entered = span.enter();
        tracing::debug!("started processing request");
        let method = static_method(request.method()).unwrap_or(OTHER);
        let limits = &self.shared.limits;
        let family = limits.families.classify(request.method(), route);
        let label = route.unwrap_or(OTHER);
        let admitted = match limits.admit(&request, family) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                let mut refusal = *refusal;
                echo_id(&mut refusal, &id);
                finished(&refusal, start);
                record(method, label, refusal.status().as_u16(), seconds(start));
                drop(entered);
                return Box::pin(std::future::ready(Ok(refusal)));
            }
        };
        let mark = self.shared.simulated_tee;
        // Kept for the timeout's refusal and the mark: a reference to the request's bytes.
        let uri = request.uri().clone();
        let timeout: Duration = limits.request_timeout;
        let response = self.inner.call(request);
        drop(entered);
        let answer = async move {
            let _admitted = admitted;
            let mut response = match tokio::time::timeout(timeout, response).await {
                Ok(Ok(mut response)) => {
                    if mark {
                        crate::routes::mark_simulated_tee(uri.path(), &mut response);
                    }
                    response
                }
                Ok(Err(never)) => match never {},
                Err(_) => crate::limits::timed_out(uri.path(), family, timeout),
            };
            echo_id(&mut response, &id);
            finished(&response, start);
            record(method, label, response.status().as_u16(), seconds(start));
            Ok(response)
        };
        Box::pin(answer.instrument(span))
    }
}

/// The request's last events: a server error is logged (with the request's fields), every
/// answer at debug level.
fn finished(response: &Response, start: Instant) {
    let status = response.status();
    let latency_ms = start.elapsed().as_millis();
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), latency_ms, "response failed");
    }
    tracing::debug!(
        status = status.as_u16(),
        latency_ms,
        "finished processing request"
    );
}

fn seconds(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}
