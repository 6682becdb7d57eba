//! CORS on the secret routes only, as iExec's SMS does, so the iExec SDK runs in browsers
//! (it sends `Authorization` with a `text/plain` body, hence preflights).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;
use tower::{Layer, Service};

/// The origins allowed to call the secret routes from a browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `*` (the default, as upstream).
    Any,
    /// Exact origins, e.g. `https://app.example`.
    List(Vec<HeaderValue>),
}

impl std::str::FromStr for CorsOrigins {
    type Err = String;

    /// A comma-separated list of origins (`scheme://host[:port]`), or `*`.
    fn from_str(s: &str) -> Result<Self, String> {
        let items: Vec<&str> = s.split(',').map(str::trim).collect();
        if items == ["*"] {
            return Ok(CorsOrigins::Any);
        }
        let mut origins = Vec::with_capacity(items.len());
        for item in items {
            if item == "*" {
                return Err("`*` cannot be combined with other origins".into());
            }
            let valid = (item.starts_with("http://") || item.starts_with("https://"))
                && !item.ends_with('/')
                && item
                    .split("://")
                    .nth(1)
                    .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
            if !valid {
                return Err(format!(
                    "invalid origin `{item}`: expected scheme://host[:port] (no path), or `*`"
                ));
            }
            let value = HeaderValue::from_str(item)
                .map_err(|_| format!("invalid origin `{item}`: not a header value"))?;
            origins.push(value);
        }
        Ok(CorsOrigins::List(origins))
    }
}

impl CorsOrigins {
    pub(crate) fn layer(&self) -> Cors {
        Cors {
            origins: Arc::new(self.clone()),
        }
    }

    /// The `access-control-allow-origin` value for a request from `origin`, if it is allowed.
    fn allow(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match self {
            CorsOrigins::Any => Some(HeaderValue::from_static("*")),
            CorsOrigins::List(list) => origin.filter(|o| list.contains(o)).cloned(),
        }
    }
}

/// Answers vary with these request headers (caches must not mix them up).
const VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);
const ALLOW_METHODS: HeaderValue = HeaderValue::from_static("GET,HEAD,POST,PUT");
const ALLOW_HEADERS: HeaderValue =
    HeaderValue::from_static("authorization,content-type,x-request-id");
const EXPOSE_HEADERS: HeaderValue = HeaderValue::from_static("x-request-id");
const MAX_AGE: HeaderValue = HeaderValue::from_static("3600");

/// The CORS layer of the secret routes. A preflight (`OPTIONS`) is answered here; any other
/// request goes to the route, and its answer gets the CORS headers when the request came from
/// a browser (an `Origin` header) that is allowed. A request without `Origin` (every
/// non-browser client: the SDK in Node.js, the worker, `sms`) costs one `Vary` header.
#[derive(Clone)]
pub(crate) struct Cors {
    origins: Arc<CorsOrigins>,
}

impl<S> Layer<S> for Cors {
    type Service = CorsService<S>;

    fn layer(&self, inner: S) -> CorsService<S> {
        CorsService {
            inner,
            origins: self.origins.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct CorsService<S> {
    inner: S,
    origins: Arc<CorsOrigins>,
}

impl<S> Service<Request> for CorsService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = Infallible;
    type Future = CorsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let origin = request.headers().get(header::ORIGIN);
        if request.method() == Method::OPTIONS {
            return CorsFuture::Preflight(Some(preflight(self.origins.allow(origin))));
        }
        let allow = origin.and_then(|o| self.origins.allow(Some(o)));
        CorsFuture::Route {
            answer: self.inner.call(request),
            allow,
        }
    }
}

/// The preflight answer: 200, empty, with what the routes accept.
fn preflight(allow: Option<HeaderValue>) -> Response {
    let mut response = Response::new(axum::body::Body::empty());
    let headers = response.headers_mut();
    if let Some(origin) = allow {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS);
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS);
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE);
    headers.append(header::VARY, VARY);
    response
}

pub(crate) enum CorsFuture<F> {
    Preflight(Option<Response>),
    Route {
        answer: F,
        allow: Option<HeaderValue>,
    },
}

impl<F> Future for CorsFuture<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            CorsFuture::Preflight(answer) => match answer.take() {
                Some(answer) => Poll::Ready(Ok(answer)),
                None => Poll::Pending,
            },
            CorsFuture::Route { answer, allow } => {
                let Ok(mut response) = std::task::ready!(Pin::new(answer).poll(cx));
                let headers = response.headers_mut();
                if let Some(origin) = allow.take() {
                    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
                }
                headers.append(header::VARY, VARY);
                Poll::Ready(Ok(response))
            }
        }
    }
}
