//! CORS on the secret routes only, as iExec's SMS does, so the iExec SDK runs in browsers
//! (it sends `Authorization` with a `text/plain` body, hence preflights).

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

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
    pub(crate) fn layer(&self) -> CorsLayer {
        let origin = match self {
            CorsOrigins::Any => AllowOrigin::any(),
            CorsOrigins::List(list) => AllowOrigin::list(list.clone()),
        };
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::PUT])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([HeaderName::from_static("x-request-id")])
            .max_age(std::time::Duration::from_secs(3600))
    }
}
