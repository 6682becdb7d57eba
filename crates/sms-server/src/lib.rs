//! The SMS HTTP server: the iExec-compatible secret API, operational endpoints, and (in
//! `--dev`) the dev ledger API. Start with [`Server::start`]; see `sms server --help`.

pub mod admin_config;
pub mod attest_args;
pub mod audit;
pub mod config;
pub mod dev_wallets;
mod edge;
mod error;
pub mod health;
pub mod identity;
mod ledger;
pub mod limits;
mod metrics_layer;
pub mod provision;
pub mod request_log;
mod routes;
mod run;
mod server;
mod startup;
mod state;
pub mod tee;

pub use config::{ChainArgs, ServerConfig};

/// Entry points for the fuzz targets (`fuzz/`): parse steps of hostile input that are private
/// to their routes. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// Step 1 of a release (`POST /tee/provisioning/{session}/{service}/release`): the refusal
    /// code of a malformed body.
    pub fn release_request(body: &[u8]) -> Result<(), &'static str> {
        crate::provision::parse_request_code(body)
    }

    /// The `{task}` segment of `POST /tee/challenges/{task}`.
    pub fn task_id(text: &str) -> Option<sms_core::B256> {
        crate::tee::session::parse_task_id(text)
    }
}
pub use admin_config::{KeyArgs, read_token_file as admin_token};
pub use routes::CorsOrigins;
pub use run::{StoreIdentity, init_logs, serve, shutdown_signal, start_dev, store_identity};
pub use server::{OpenedStore, Server, open_store};
pub use startup::StartupError;
pub use state::{AppState, AppStateInner};
