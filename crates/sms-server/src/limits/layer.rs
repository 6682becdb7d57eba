//! The per-request guard: the client's rate in the route family, the family's in-flight
//! limit, then the request timeout.
//! Refusals are answered at once, in the body shape of the route (docs/limits.md).

use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Limits;

/// A refusal of the limits, in the error shape of the path's API: `/tee/*` answers
/// `{"error": CODE}` (what iExec workers decode), `/apps/*` and `/requesters/*` a list,
/// everything else `{"error": message, "reason": …}`.
pub(crate) fn refusal(
    path: &str,
    status: StatusCode,
    code: &'static str,
    message: &str,
    reason: String,
    retry_after_secs: Option<u64>,
) -> Response {
    let body = if path.starts_with("/tee/") && !path.starts_with("/tee/provisioning/") {
        json!({ "error": code })
    } else if path.starts_with("/apps/") || path.starts_with("/requesters/") {
        json!({ "error": [message], "reason": reason, "code": code })
    } else {
        json!({ "error": message, "reason": reason, "code": code })
    };
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&reason) {
        response.headers_mut().insert("x-sms-reason", value);
    }
    if let Some(secs) = retry_after_secs
        && let Ok(value) = HeaderValue::from_str(&secs.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The guard as a tower layer over every route (not `axum::middleware::from_fn`, which
/// clones and boxes the route's inner stack once more per request; callgrind, BENCHMARKS.md).
#[derive(Clone)]
pub struct GuardLayer(pub Arc<Limits>);

impl<S> tower::Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            limits: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct Guard<S> {
    limits: Arc<Limits>,
    inner: S,
}

type BoxedResponse<E> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, E>> + Send + 'static>>;

impl<S> tower::Service<Request> for Guard<S>
where
    S: tower::Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxedResponse<S::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let refused = |response: Response| -> BoxedResponse<S::Error> {
            Box::pin(std::future::ready(Ok(response)))
        };
        let limits = &self.limits;
        let family = limits.families.classify(
            request.method(),
            request
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str),
        );
        if has_nul(request.uri()) {
            return refused(refusal(
                request.uri().path(),
                StatusCode::BAD_REQUEST,
                "NUL_IN_REQUEST",
                "Malformed request",
                "the path or the query holds a NUL byte (%00), which no address, name or id may contain"
                    .to_owned(),
                None,
            ));
        }
        if let Some(peer) = peer_ip(&request)
            && let client = limits.rates.trusted_proxies.client(peer, request.headers())
            && let Err(refusal) = limits.rates.check_ip(family, client)
        {
            return refused(refusal.response_for(request.uri().path()));
        }
        let Some(permit) = limits.enter(family) else {
            metrics::counter!("sms_requests_shed_total", "family" => family).increment(1);
            return refused(refusal(
                request.uri().path(),
                StatusCode::SERVICE_UNAVAILABLE,
                "TOO_MANY_IN_FLIGHT",
                "Too many requests in flight",
                format!(
                    "the {family} requests in flight are at their limit (--max-in-flight): retry shortly"
                ),
                Some(1),
            ));
        };
        // Kept for the timeout's refusal only: a reference to the request's bytes, not a copy.
        let uri = request.uri().clone();
        let timeout = limits.request_timeout;
        let response = self.inner.call(request);
        Box::pin(async move {
            let _permit = permit;
            match tokio::time::timeout(timeout, response).await {
                Ok(response) => response,
                Err(_) => {
                    metrics::counter!("sms_requests_timed_out_total", "family" => family)
                        .increment(1);
                    Ok(refusal(
                        uri.path(),
                        StatusCode::REQUEST_TIMEOUT,
                        "REQUEST_TIMEOUT",
                        "Request timeout",
                        format!(
                            "the request did not complete within {} ms (--request-timeout-ms)",
                            timeout.as_millis()
                        ),
                        None,
                    ))
                }
            }
        })
    }
}

/// The address of the connection's peer (absent only when the router is driven without a
/// listener, as in unit tests).
fn peer_ip(request: &Request) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
}

/// A percent-encoded NUL in the path or the query (a raw one never gets past the HTTP parser).
/// No address, name or id may hold one, and PostgreSQL refuses them in text: refused here, for
/// every route, before anything reads the store.
fn has_nul(uri: &axum::http::Uri) -> bool {
    let encoded_nul = |text: &str| text.contains("%00");
    encoded_nul(uri.path()) || uri.query().is_some_and(encoded_nul)
}
