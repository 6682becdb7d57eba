//! The service of every connection: the route table matched once, the layers every request
//! passes, then the route's handler. axum's `Router` is not used: it matched the path again,
//! copied the path parameters into new strings under `Arc` keys and inserted two more request
//! extensions, and it cloned a route's layered service for every request (callgrind,
//! BENCHMARKS.md "Request path").
//!
//! Outermost first: [`MatchRoute`] (the route's index, pattern and path parameters, the
//! connection's peer: one request extension, [`Matched`]), then [`Edge`]: the request id (a
//! client's own `x-request-id` is kept, and echoed on the answer), the request span
//! (`crate::request_log`), metrics, the limits, the request timeout and the simulated-TEE
//! mark, in one future; then [`Dispatch`], the route's `MethodRouter` (methods, 405, HEAD, the
//! per-route layers: CORS on the secret API, the body limit).

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use tracing::Instrument;

use crate::limits::Limits;
use crate::metrics_layer::{OTHER, record, static_method};
use crate::request_log::{RequestFields, RequestId, request_span};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Path parameters a route pattern may have (`/tee/provisioning/{session}/{service}/release`
/// has two).
const MAX_PARAMS: usize = 4;

/// What [`MatchRoute`] found for a request: the connection's peer and, when a route's pattern
/// matches the path, that route.
#[derive(Clone, Debug)]
pub struct Matched {
    pub peer: SocketAddr,
    route: Option<MatchedRoute>,
}

#[derive(Clone, Copy, Debug)]
struct MatchedRoute {
    index: usize,
    pattern: &'static str,
    /// Byte ranges of the parameters' values in the path, in the pattern's order.
    params: [(usize, usize); MAX_PARAMS],
    count: usize,
}

/// The mounted routes: their patterns, matched as axum's router matches them (the same
/// `matchit`), and their services (with the state and per-route layers), then the answer of a
/// path no route serves.
pub struct RouteTable {
    patterns: matchit::Router<usize>,
    routes: Vec<(&'static str, MethodRouter)>,
    fallback: MethodRouter,
}

impl RouteTable {
    pub fn new(
        routes: Vec<(&'static str, MethodRouter)>,
        fallback: MethodRouter,
    ) -> Result<Self, String> {
        let mut patterns = matchit::Router::new();
        for (index, (path, _)) in routes.iter().enumerate() {
            if path.matches('{').count() > MAX_PARAMS {
                return Err(format!(
                    "route {path}: more than {MAX_PARAMS} path parameters"
                ));
            }
            patterns
                .insert(*path, index)
                .map_err(|e| format!("route {path}: {e}"))?;
        }
        Ok(Self {
            patterns,
            routes,
            fallback,
        })
    }

    fn find(&self, path: &str) -> Option<MatchedRoute> {
        let found = self.patterns.at(path).ok()?;
        let index = *found.value;
        let mut route = MatchedRoute {
            index,
            pattern: self.routes.get(index)?.0,
            params: [(0, 0); MAX_PARAMS],
            count: 0,
        };
        let base = path.as_ptr() as usize;
        for ((_, value), slot) in found.params.iter().zip(route.params.iter_mut()) {
            // matchit's values are slices of `path`.
            let start = (value.as_ptr() as usize).checked_sub(base)?;
            *slot = (start, start + value.len());
            route.count += 1;
        }
        Some(route)
    }
}

/// Makes the service of each accepted connection (in place of axum's
/// `into_make_service_with_connect_info`).
#[derive(Clone)]
pub struct Connections {
    routes: Arc<RouteTable>,
    edge: EdgeLayer,
}

impl Connections {
    pub fn new(routes: RouteTable, edge: EdgeLayer) -> Self {
        Self {
            routes: Arc::new(routes),
            edge,
        }
    }
}

impl tower::Service<SocketAddr> for Connections {
    type Response = MatchRoute<Edge<Dispatch>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, peer: SocketAddr) -> Self::Future {
        let dispatch = Dispatch {
            routes: self.routes.clone(),
        };
        std::future::ready(Ok(MatchRoute {
            routes: self.routes.clone(),
            peer,
            inner: tower::Layer::layer(&self.edge, dispatch),
        }))
    }
}

/// Gives each request its [`Matched`] extension.
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
        let route = self.routes.find(request.uri().path());
        request.extensions_mut().insert(Matched {
            peer: self.peer,
            route,
        });
        self.inner.call(request)
    }
}

/// The path pattern of the route serving a request (`None`: no route matches its path).
pub fn route_of<B>(request: &axum::http::Request<B>) -> Option<&'static str> {
    let matched = request.extensions().get::<Matched>()?;
    matched.route.map(|r| r.pattern)
}

/// The address of the connection's peer.
pub fn peer_of<B>(request: &axum::http::Request<B>) -> Option<SocketAddr> {
    request.extensions().get::<Matched>().map(|m| m.peer)
}

/// The innermost service: the matched route's `MethodRouter`, or the fallback. Calling a
/// `MethodRouter` needs it mutable, and hyper clones the connection's service for every
/// request, so each worker thread keeps its own clone of each route (made at the thread's first
/// request for it), as the metric handles are kept; axum's router cloned the route's service for
/// every request instead.
#[derive(Clone)]
pub struct Dispatch {
    routes: Arc<RouteTable>,
}

/// Per route table (several servers may share a process, as in tests): this thread's clones
/// of its routes. The table is held weakly: the clones of a server that stopped are dropped
/// when this thread first serves another table.
type ThreadRoutes = Vec<(std::sync::Weak<RouteTable>, Vec<Option<MethodRouter>>)>;

thread_local! {
    static ROUTES: std::cell::RefCell<ThreadRoutes> = const { std::cell::RefCell::new(Vec::new()) };
}

impl tower::Service<Request> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let table = &self.routes;
        let index = request
            .extensions()
            .get::<Matched>()
            .and_then(|m| m.route)
            .map(|r| r.index)
            .filter(|i| *i < table.routes.len());
        let Some(index) = index else {
            return tower::Service::call(&mut table.fallback.clone(), request);
        };
        ROUTES.with(|cell| {
            let mut tables = cell.borrow_mut();
            let this = Arc::as_ptr(table);
            let position = match tables.iter().position(|(t, _)| t.as_ptr() == this) {
                Some(position) => position,
                None => {
                    tables.retain(|(t, _)| t.strong_count() > 0);
                    tables.push((
                        Arc::downgrade(table),
                        table.routes.iter().map(|_| None).collect(),
                    ));
                    tables.len() - 1
                }
            };
            let slot = &mut tables[position].1[index];
            let route = slot.get_or_insert_with(|| table.routes[index].1.clone());
            // Builds the route's future without polling it: the borrow ends here.
            tower::Service::call(route, request)
        })
    }
}

/// The path parameters of the matched route, percent-decoded, in the pattern's order: a
/// `String` or a `(String, String)` (in place of axum's `Path`, which reads what its router
/// stored).
pub struct Params<T>(pub T);

/// Path parameters as a handler takes them.
pub trait FromParams: Sized {
    fn from_params(values: &mut dyn Iterator<Item = String>) -> Option<Self>;
}

impl FromParams for String {
    fn from_params(values: &mut dyn Iterator<Item = String>) -> Option<Self> {
        values.next()
    }
}

impl FromParams for (String, String) {
    fn from_params(values: &mut dyn Iterator<Item = String>) -> Option<Self> {
        Some((values.next()?, values.next()?))
    }
}

/// A path parameter that is not UTF-8 once percent-decoded (axum's `Path` answers 400 too).
pub struct BadParams;

impl IntoResponse for BadParams {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            "Invalid URL: a path segment is not UTF-8 once percent-decoded",
        )
            .into_response()
    }
}

impl<T: FromParams, S: Sync> FromRequestParts<S> for Params<T> {
    type Rejection = BadParams;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, BadParams> {
        let route = parts
            .extensions
            .get::<Matched>()
            .and_then(|m| m.route)
            .ok_or(BadParams)?;
        let path = parts.uri.path();
        let mut values = Vec::with_capacity(route.count);
        for &(start, end) in route.params.get(..route.count).ok_or(BadParams)? {
            let raw = path.get(start..end).ok_or(BadParams)?;
            if !raw.contains('%') {
                values.push(raw.to_owned());
                continue;
            }
            let decoded = percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| BadParams)?;
            values.push(decoded.into_owned());
        }
        T::from_params(&mut values.into_iter())
            .map(Params)
            .ok_or(BadParams)
    }
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
            route: route.map_or_else(
                || Cow::Owned(request.uri().path().to_owned()),
                Cow::Borrowed,
            ),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use axum::body::to_bytes;
    use axum::extract::State;
    use tower::ServiceExt;

    use super::*;

    async fn echo(Params((a, b)): Params<(String, String)>) -> String {
        format!("{a}|{b}")
    }

    async fn answer(path: &str, method: axum::http::Method) -> (StatusCode, String) {
        let routes = vec![(
            "/x/{a}/y/{b}",
            axum::routing::get(echo).post(echo).with_state(()),
        )];
        let table =
            Arc::new(RouteTable::new(routes, axum::routing::any(|| async { "none" })).unwrap());
        let service = MatchRoute {
            routes: table.clone(),
            peer: "127.0.0.1:1".parse().unwrap(),
            inner: Dispatch { routes: table },
        };
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        let status = response.status();
        let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// A stopped server's routes (and the state they hold) do not outlive it in a worker thread:
    /// the thread drops them when it first serves another route table.
    #[tokio::test(flavor = "current_thread")]
    async fn clones_of_a_dropped_table_are_released() {
        let held = Arc::new(());
        let table = |state: Arc<()>| {
            let route =
                axum::routing::get(|State(_): State<Arc<()>>| async { "x" }).with_state(state);
            Arc::new(
                RouteTable::new(vec![("/x", route)], axum::routing::any(|| async { "none" }))
                    .unwrap(),
            )
        };
        let call = |table: Arc<RouteTable>| async move {
            let service = MatchRoute {
                routes: table.clone(),
                peer: "127.0.0.1:1".parse().unwrap(),
                inner: Dispatch { routes: table },
            };
            let request = axum::http::Request::builder()
                .uri("/x")
                .body(Body::empty())
                .unwrap();
            service.oneshot(request).await.unwrap().status()
        };
        assert_eq!(call(table(held.clone())).await, StatusCode::OK);
        // The first table is gone, its clone still held by this thread.
        assert!(Arc::strong_count(&held) > 1);
        assert_eq!(call(table(Arc::new(()))).await, StatusCode::OK);
        assert_eq!(Arc::strong_count(&held), 1);
    }

    /// Path parameters reach the handler percent-decoded, as axum's `Path` gave them; a
    /// parameter that is not UTF-8 once decoded is a 400; other methods are 405 and other paths
    /// the fallback, as with axum's router.
    #[tokio::test]
    async fn the_route_gets_its_decoded_parameters() {
        use axum::http::Method;
        assert_eq!(
            answer("/x/0xab/y/name", Method::GET).await,
            (StatusCode::OK, "0xab|name".into())
        );
        assert_eq!(
            answer("/x/%C3%A9t%C3%A9/y/a%20b", Method::POST).await,
            (StatusCode::OK, "été|a b".into())
        );
        assert_eq!(
            answer("/x/%FF/y/n", Method::GET).await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            answer("/x/a/y/b", Method::PUT).await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(answer("/x/a/y/b", Method::HEAD).await.0, StatusCode::OK);
        assert_eq!(
            answer("/elsewhere", Method::GET).await,
            (StatusCode::OK, "none".into())
        );
    }
}
