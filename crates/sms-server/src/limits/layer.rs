//! The per-request guard: the client's rate in the route family, the family's in-flight
//! limit, then the request timeout.
//! Refusals are answered at once, in the body shape of the route (docs/limits.md).

use axum::Json;
use axum::extract::Request;
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

/// A request let through by [`Limits::admit`]: its place among its family's requests in flight
/// (held until the answer is ready).
pub(crate) struct Admitted(#[allow(dead_code)] Option<tokio::sync::OwnedSemaphorePermit>);

impl Limits {
    /// The checks before any handler runs, in order: no NUL in the path or the query, the
    /// client's rate in `family`, a free place among the family's requests in flight. A refusal
    /// is the answer to send (boxed: refusals are the cold path).
    pub(crate) fn admit(
        &self,
        request: &Request,
        family: &'static str,
    ) -> Result<Admitted, Box<Response>> {
        if has_nul(request.uri()) {
            return Err(Box::new(refusal(
                request.uri().path(),
                StatusCode::BAD_REQUEST,
                "NUL_IN_REQUEST",
                "Malformed request",
                "the path or the query holds a NUL byte (%00), which no address, name or id may contain"
                    .to_owned(),
                None,
            )));
        }
        if let Some(peer) = peer_ip(request)
            && let client = self.rates.trusted_proxies.client(peer, request.headers())
            && let Err(refusal) = self.rates.check_ip(family, client)
        {
            return Err(Box::new(refusal.response_for(request.uri().path())));
        }
        let Some(permit) = self.enter(family) else {
            metrics::counter!("sms_requests_shed_total", "family" => family).increment(1);
            return Err(Box::new(refusal(
                request.uri().path(),
                StatusCode::SERVICE_UNAVAILABLE,
                "TOO_MANY_IN_FLIGHT",
                "Too many requests in flight",
                format!(
                    "the {family} requests in flight are at their limit (--max-in-flight): retry shortly"
                ),
                Some(1),
            )));
        };
        Ok(Admitted(permit))
    }
}

/// The answer of a request still running after `timeout` (`--request-timeout-ms`).
pub(crate) fn timed_out(
    path: &str,
    family: &'static str,
    timeout: std::time::Duration,
) -> Response {
    metrics::counter!("sms_requests_timed_out_total", "family" => family).increment(1);
    refusal(
        path,
        StatusCode::REQUEST_TIMEOUT,
        "REQUEST_TIMEOUT",
        "Request timeout",
        format!(
            "the request did not complete within {} ms (--request-timeout-ms)",
            timeout.as_millis()
        ),
        None,
    )
}

/// The address of the connection's peer (absent only when the router is driven without a
/// listener, as in unit tests).
fn peer_ip(request: &Request) -> Option<std::net::IpAddr> {
    crate::edge::peer_of(request).map(|peer| peer.ip())
}

/// A percent-encoded NUL in the path or the query (a raw one never gets past the HTTP parser).
/// No address, name or id may hold one, and PostgreSQL refuses them in text: refused here, for
/// every route, before anything reads the store.
fn has_nul(uri: &axum::http::Uri) -> bool {
    let encoded_nul = |text: &str| text.contains("%00");
    encoded_nul(uri.path()) || uri.query().is_some_and(encoded_nul)
}
