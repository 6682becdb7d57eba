//! The SMS HTTP server: the iExec-compatible secret API, operational endpoints, and (in
//! `--dev`) the dev ledger API. Start with [`Server::start`]; see `sms server --help`.

pub mod attest_args;
pub mod audit;
pub mod config;
pub mod dev_wallets;
mod error;
pub mod health;
pub mod identity;
mod ledger;
pub mod limits;
mod metrics_layer;
pub mod provision;
mod routes;
mod server;
mod state;
pub mod tee;

pub use config::{ChainArgs, ServerConfig};
pub use routes::CorsOrigins;
pub use routes::admin::{KeyArgs, read_token_file as admin_token};
pub use server::{OpenedStore, Server, StartupError, open_store};
pub use state::{AppState, AppStateInner};
