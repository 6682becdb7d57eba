//! Request counts and latency per route, and the process-wide Prometheus recorder.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Installs the recorder once per process (several in-process servers share it in tests).
pub fn recorder() -> Result<PrometheusHandle, String> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    ],
                )
                .map_err(|e| e.to_string())?
                .install_recorder()
                .map_err(|e| e.to_string())
        })
        .clone()
}

/// The method as a static label value, for the usual methods.
pub(crate) fn static_method(method: &axum::http::Method) -> Option<&'static str> {
    use axum::http::Method;
    Some(match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => return None,
    })
}

fn status_label(status: u16) -> metrics::SharedString {
    let text: &'static str = match status {
        200 => "200",
        201 => "201",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        409 => "409",
        413 => "413",
        500 => "500",
        503 => "503",
        408 => "408",
        429 => "429",
        // Any other status: its class, so the label set stays bounded.
        s if s < 200 => "1xx",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    };
    metrics::SharedString::from(text)
}

/// Metric handles of one route, per method (and status for the counter).
#[derive(Default)]
struct RouteHandles {
    counters: Vec<(&'static str, u16, Counter)>,
    histograms: Vec<(&'static str, Histogram)>,
}

thread_local! {
    /// Handles already registered, per worker thread: a request then costs no label
    /// allocation, no registry lookup and no lock shared between cores (`sms bench`).
    static HANDLES: RefCell<HashMap<Box<str>, RouteHandles>> = RefCell::new(HashMap::new());
}

/// Counts one answer of `route` and records its latency.
pub(crate) fn record(method: &'static str, route: &str, status: u16, seconds: f64) {
    HANDLES.with(|cell| {
        let mut map = cell.borrow_mut();
        if !map.contains_key(route) {
            map.insert(route.into(), RouteHandles::default());
        }
        let Some(h) = map.get_mut(route) else { return };
        match h.counters.iter().find(|(m, s, _)| *m == method && *s == status) {
            Some((_, _, c)) => c.increment(1),
            None => {
                let c = metrics::counter!("sms_http_requests_total", "method" => method, "route" => route.to_owned(), "status" => status_label(status));
                c.increment(1);
                h.counters.push((method, status, c));
            }
        }
        match h.histograms.iter().find(|(m, _)| *m == method) {
            Some((_, hist)) => hist.record(seconds),
            None => {
                let hist = metrics::histogram!("sms_http_request_duration_seconds", "method" => method, "route" => route.to_owned());
                hist.record(seconds);
                h.histograms.push((method, hist));
            }
        }
    });
}

/// Label of a request no route serves, and of an unusual method: label sets stay bounded
/// whatever a client sends.
pub const OTHER: &str = "other";
