use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, head, post};

use crate::state::AppState;

mod dev;
mod ops;
pub(crate) mod secrets;

/// Bodies above this are refused before anything else (memory bound); smaller oversized
/// values are refused after authorization, with the iExec status codes.
fn body_cap(max_secret_bytes: usize) -> usize {
    (max_secret_bytes * 2).max(64 * 1024)
}

pub fn router(state: AppState) -> Router {
    let cap = body_cap(state.max_secret_bytes);
    let mut router = Router::new()
        .route("/secrets/web3", head(secrets::check_web3).post(secrets::push_web3))
        .route("/secrets/web2", head(secrets::check_web2).post(secrets::push_web2).put(secrets::update_web2))
        .route("/apps/{app}/secrets", head(secrets::check_app).post(secrets::push_app))
        .route(
            "/requesters/{requester}/secrets/{name}",
            head(secrets::check_requester).post(secrets::push_requester),
        )
        .route("/version", get(ops::version))
        .route("/health", get(ops::health))
        .route("/actuator/health", get(ops::health))
        .route("/metrics", get(ops::metrics));
    if state.dev_ledger.is_some() {
        router = router
            .route("/dev/apps", post(dev::deploy_app))
            .route("/dev/datasets", post(dev::deploy_dataset))
            .route("/dev/workerpools", post(dev::deploy_workerpool))
            .route("/dev/transfer", post(dev::transfer));
    }
    router.layer(DefaultBodyLimit::max(cap)).with_state(state)
}
