use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, head, post};

use crate::state::AppState;

mod dev;
mod dev_deals;
mod dev_read;
mod ops;
mod provision;
pub(crate) mod secrets;
mod tee;

/// Bodies above this are refused before anything else (memory bound); smaller oversized
/// values are refused after authorization, with the iExec status codes.
fn body_cap(max_secret_bytes: usize) -> usize {
    (max_secret_bytes * 2).max(64 * 1024)
}

pub fn router(state: AppState) -> Router {
    let cap = body_cap(state.max_secret_bytes);
    let mut router = Router::new()
        .route(
            "/secrets/web3",
            head(secrets::check_web3).post(secrets::push_web3),
        )
        .route(
            "/secrets/web2",
            head(secrets::check_web2)
                .post(secrets::push_web2)
                .put(secrets::update_web2),
        )
        .route(
            "/apps/{app}/secrets",
            head(secrets::check_app).post(secrets::push_app),
        )
        .route(
            "/requesters/{requester}/secrets/{name}",
            head(secrets::check_requester).post(secrets::push_requester),
        )
        .route("/version", get(ops::version))
        .route("/health", get(ops::health))
        .route("/actuator/health", get(ops::health))
        .route("/metrics", get(ops::metrics));
    if state.tee.enabled {
        router = router
            .route("/tee/framework", get(tee::framework))
            .route("/tee/properties/{framework}", get(tee::properties_default))
            .route(
                "/tee/properties/{framework}/{version}",
                get(tee::properties),
            )
            .route("/tee/challenges/{task}", post(tee::challenge))
            .route("/tee/sessions", post(tee::create_session));
    }
    router = router
        .route("/tee/provisioning/identity", get(provision::identity))
        .route(
            "/tee/provisioning/{session}/{service}/nonce",
            post(provision::nonce),
        )
        .route(
            "/tee/provisioning/{session}/{service}/release",
            post(provision::release),
        );
    if state.dev_ledger.is_some() {
        router = router
            .route("/dev/apps", post(dev::deploy_app))
            .route("/dev/datasets", post(dev::deploy_dataset))
            .route("/dev/workerpools", post(dev::deploy_workerpool))
            .route("/dev/transfer", post(dev::transfer))
            .route("/dev/deals", post(dev_deals::create_deal))
            .route("/dev/tasks/{task}/status", post(dev_deals::set_task_status))
            .route("/dev/tasks/{task}", get(dev_read::task_description));
    }
    let simulated_tee = state.provisioner.allows_simulated();
    let router = router.layer(DefaultBodyLimit::max(cap)).with_state(state);
    if simulated_tee {
        router.layer(axum::middleware::from_fn(mark_simulated_tee))
    } else {
        router
    }
}

/// Header on every `/tee/*` answer of a server that accepts simulated TEE evidence (a header,
/// not a body field: iExec workers decode those bodies).
pub const SIMULATED_TEE_HEADER: &str = "x-sms-simulated-tee";

async fn mark_simulated_tee(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let tee = request.uri().path().starts_with("/tee/");
    let mut response = next.run(request).await;
    if tee {
        response.headers_mut().insert(
            axum::http::HeaderName::from_static(SIMULATED_TEE_HEADER),
            axum::http::HeaderValue::from_static("true"),
        );
    }
    response
}
