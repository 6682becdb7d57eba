//! The route table: every route is one [`Route`] entry (feature, method, path, handler,
//! description). The router and the OpenAPI document (`/openapi.json`) are both built from it,
//! so they cannot drift; adding a route is adding one entry to [`table`].

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter};

use crate::state::AppState;

pub mod admin;
mod audit;
pub(crate) mod cors;
mod dev;
mod dev_deals;
mod dev_read;
pub(crate) mod feature;
pub mod openapi;
mod ops;
mod provision;
pub(crate) mod secrets;
mod tee;
mod v2;

pub use cors::CorsOrigins;
pub use feature::Feature;

impl Feature {
    fn mounted(self, state: &AppState) -> bool {
        match self {
            Feature::Tee => state.tee.enabled,
            Feature::Dev => state.dev_ledger.is_some(),
            Feature::Admin => state.admin.is_some(),
            Feature::Secrets
            | Feature::SecretsV2
            | Feature::Ops
            | Feature::Provisioning
            | Feature::Audit => true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    Head,
    Post,
    Put,
}

impl Verb {
    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Head => MethodFilter::HEAD,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Head => "head",
            Verb::Post => "post",
            Verb::Put => "put",
        }
    }
}

/// What a body (request or answer) is, for the API description.
#[derive(Clone, Copy, Debug)]
pub enum Body {
    None,
    /// `text/plain`: a secret value, a challenge address, a version.
    Text(&'static str),
    /// `application/json` with a component schema name (see `openapi::schemas`).
    Json(&'static str),
}

/// A query parameter: name, description, required.
pub type Query = (&'static str, &'static str, bool);

/// The description of one operation.
#[derive(Clone, Copy, Debug)]
pub struct Operation {
    pub summary: &'static str,
    pub query: &'static [Query],
    pub request: Body,
    /// Status, meaning, body.
    pub responses: &'static [(u16, &'static str, Body)],
}

pub struct Route {
    pub feature: Feature,
    pub verb: Verb,
    pub path: &'static str,
    pub operation: Operation,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(
    feature: Feature,
    verb: Verb,
    path: &'static str,
    handler: H,
    operation: Operation,
) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Route {
        feature,
        verb,
        path,
        operation,
        handler: axum::routing::on(verb.filter(), handler),
    }
}

const SECRET_WEB3_QUERY: &[Query] = &[("secretAddress", "dataset address (0x + 40 hex)", true)];
const SECRET_WEB2_QUERY: &[Query] = &[
    ("ownerAddress", "owner address (0x + 40 hex)", true),
    ("secretName", "secret name", true),
];
const SECRET_VALUE: Body = Body::Text("the secret value (UTF-8)");
const PLAIN_ERROR: Body = Body::Json("PlainError");
const LIST_ERROR: Body = Body::Json("ListError");
const CHECK: &[(u16, &str, Body)] = &[
    (204, "the secret exists", Body::None),
    (404, "no such secret", Body::None),
    (400, "malformed address or name", Body::None),
];
const V2_REQUEST: Body = Body::Json("SignedRequest");
const V2_ERROR: Body = Body::Json("CodedError");
/// Refusals every v2 operation can give (its own answers come first).
macro_rules! v2_answers {
    ($($own:expr),* $(,)?) => {
        &[
            $($own,)*
            (400, "malformed body or field (`error.field` names it)", V2_ERROR),
            (401, "WRONG_CHAIN, WRONG_DOMAIN, SIGNATURE_EXPIRED, BAD_SIGNATURE, NONCE_REUSED, VALUE_NOT_SIGNED or NOT_OWNER", V2_ERROR),
            (503, "store or ledger unavailable", V2_ERROR),
        ]
    };
}
const DEV_ANSWERS: &[(u16, &str, Body)] = &[
    (200, "done", Body::Json("Object")),
    (
        400,
        "malformed body (the reason names the field)",
        PLAIN_ERROR,
    ),
    (404, "unknown entry", PLAIN_ERROR),
];

const ADMIN_UNAUTHORIZED: (u16, &str, Body) = (401, "no or wrong admin token", PLAIN_ERROR);

/// Every route of the server. Entries with the same path are merged into one axum route.
pub fn table() -> Vec<Route> {
    use Feature::*;
    use Verb::*;
    let mut routes = admin_table();
    routes.extend(audit::table());
    routes.extend(vec![
        // iExec-compatible secret API (docs/secrets-api.md).
        route(
            Secrets,
            Head,
            "/secrets/web3",
            secrets::check_web3,
            Operation {
                summary: "Does a dataset secret (web3) exist",
                query: SECRET_WEB3_QUERY,
                request: Body::None,
                responses: CHECK,
            },
        ),
        route(
            Secrets,
            Post,
            "/secrets/web3",
            secrets::push_web3,
            Operation {
                summary: "Push a dataset secret, signed by the dataset owner",
                query: SECRET_WEB3_QUERY,
                request: SECRET_VALUE,
                responses: &[
                    (204, "stored", Body::None),
                    (400, "malformed address or signature", PLAIN_ERROR),
                    (401, "signature not by the dataset owner", PLAIN_ERROR),
                    (409, "secret already exists", PLAIN_ERROR),
                    (413, "value too large", PLAIN_ERROR),
                    (503, "ledger unavailable", PLAIN_ERROR),
                ],
            },
        ),
        route(
            Secrets,
            Head,
            "/secrets/web2",
            secrets::check_web2,
            Operation {
                summary: "Does a web2 secret exist",
                query: SECRET_WEB2_QUERY,
                request: Body::None,
                responses: CHECK,
            },
        ),
        route(
            Secrets,
            Post,
            "/secrets/web2",
            secrets::push_web2,
            Operation {
                summary: "Push a web2 secret, signed by its owner",
                query: SECRET_WEB2_QUERY,
                request: SECRET_VALUE,
                responses: &[
                    (204, "stored", Body::None),
                    (400, "malformed address, name or signature", PLAIN_ERROR),
                    (401, "signature not by the owner", PLAIN_ERROR),
                    (409, "secret already exists", PLAIN_ERROR),
                    (413, "value too large", PLAIN_ERROR),
                ],
            },
        ),
        route(
            Secrets,
            Put,
            "/secrets/web2",
            secrets::update_web2,
            Operation {
                summary: "Update a web2 secret, signed by its owner",
                query: SECRET_WEB2_QUERY,
                request: SECRET_VALUE,
                responses: &[
                    (204, "updated (or the same value)", Body::None),
                    (400, "malformed address, name or signature", PLAIN_ERROR),
                    (401, "signature not by the owner", PLAIN_ERROR),
                    (404, "no such secret", PLAIN_ERROR),
                    (413, "value too large", PLAIN_ERROR),
                ],
            },
        ),
        route(
            Secrets,
            Head,
            "/apps/{app}/secrets",
            secrets::check_app,
            Operation {
                summary: "Does the app developer secret exist",
                query: &[],
                request: Body::None,
                responses: CHECK,
            },
        ),
        route(
            Secrets,
            Post,
            "/apps/{app}/secrets",
            secrets::push_app,
            Operation {
                summary: "Push the app developer secret, signed by the app owner",
                query: &[],
                request: SECRET_VALUE,
                responses: &[
                    (204, "stored", Body::None),
                    (400, "malformed address or signature", LIST_ERROR),
                    (401, "signature not by the app owner", LIST_ERROR),
                    (409, "secret already exists", LIST_ERROR),
                    (413, "value too large", LIST_ERROR),
                    (503, "ledger unavailable", LIST_ERROR),
                ],
            },
        ),
        route(
            Secrets,
            Head,
            "/requesters/{requester}/secrets/{name}",
            secrets::check_requester,
            Operation {
                summary: "Does a requester secret exist",
                query: &[],
                request: Body::None,
                responses: CHECK,
            },
        ),
        route(
            Secrets,
            Post,
            "/requesters/{requester}/secrets/{name}",
            secrets::push_requester,
            Operation {
                summary: "Push a requester secret, signed by the requester",
                query: &[],
                request: SECRET_VALUE,
                responses: &[
                    (204, "stored", Body::None),
                    (
                        400,
                        "malformed address, name, signature, or value too large",
                        LIST_ERROR,
                    ),
                    (401, "signature not by the requester", LIST_ERROR),
                    (409, "secret already exists", LIST_ERROR),
                ],
            },
        ),
        // Operations.
        // Secrets API v2 (docs/secrets-api-v2.md).
        route(
            SecretsV2,
            Get,
            "/v2/domain",
            v2::domain,
            Operation {
                summary: "The EIP-712 domain v2 requests are signed for",
                query: &[],
                request: Body::None,
                responses: &[(200, "the domain", Body::Json("Domain"))],
            },
        ),
        route(
            SecretsV2,
            Post,
            "/v2/secrets/put",
            v2::put,
            Operation {
                summary: "Create (expectedVersion 0) or replace version N of a secret",
                query: &[],
                request: V2_REQUEST,
                responses: v2_answers![
                    (200, "written: the new version", Body::Json("SecretVersion")),
                    (
                        409,
                        "VERSION_CONFLICT: `error.currentVersion` is the live version",
                        V2_ERROR
                    ),
                    (413, "value too large", V2_ERROR),
                ],
            },
        ),
        route(
            SecretsV2,
            Post,
            "/v2/secrets/delete",
            v2::delete,
            Operation {
                summary: "Delete a secret (a tombstone; expectedVersion 0 deletes any version)",
                query: &[],
                request: V2_REQUEST,
                responses: v2_answers![
                    (
                        200,
                        "deleted: the tombstone's version",
                        Body::Json("SecretVersion")
                    ),
                    (404, "no such secret", V2_ERROR),
                    (
                        409,
                        "VERSION_CONFLICT: `error.currentVersion` is the live version",
                        V2_ERROR
                    ),
                ],
            },
        ),
        route(
            SecretsV2,
            Post,
            "/v2/secrets/list",
            v2::list,
            Operation {
                summary: "Names and versions of one kind and owner (never values)",
                query: &[],
                request: V2_REQUEST,
                responses: v2_answers![(200, "the live secrets", Body::Json("SecretList"))],
            },
        ),
        route(
            SecretsV2,
            Post,
            "/v2/secrets/show",
            v2::show,
            Operation {
                summary: "Metadata of one secret: version, times, key id (never the value)",
                query: &[],
                request: V2_REQUEST,
                responses: v2_answers![
                    (200, "the metadata", Body::Json("SecretMetadata")),
                    (404, "no such secret", V2_ERROR),
                ],
            },
        ),
        route(
            Ops,
            Get,
            "/version",
            ops::version,
            Operation {
                summary: "Server version (plain text when Accept lists text/plain first)",
                query: &[],
                request: Body::None,
                responses: &[(200, "the version", Body::Json("Version"))],
            },
        ),
        route(
            Ops,
            Get,
            "/health",
            ops::health,
            Operation {
                summary: "Liveness of the server and its store",
                query: &[],
                request: Body::None,
                responses: &[
                    (200, "up", Body::Json("Health")),
                    (503, "the store does not answer", Body::Json("Health")),
                ],
            },
        ),
        route(
            Ops,
            Get,
            "/actuator/health",
            ops::health,
            Operation {
                summary: "Same as /health (iExec's path)",
                query: &[],
                request: Body::None,
                responses: &[
                    (200, "up", Body::Json("Health")),
                    (503, "the store does not answer", Body::Json("Health")),
                ],
            },
        ),
        route(
            Ops,
            Get,
            "/metrics",
            ops::metrics,
            Operation {
                summary: "Prometheus metrics",
                query: &[],
                request: Body::None,
                responses: &[(200, "metrics", Body::Text("Prometheus text format"))],
            },
        ),
        route(
            Ops,
            Get,
            "/openapi.json",
            openapi::serve,
            Operation {
                summary: "This API description (OpenAPI 3.1), for the routes this server mounts",
                query: &[],
                request: Body::None,
                responses: &[(200, "the document", Body::Json("Object"))],
            },
        ),
        // iExec-compatible TEE API (docs/tee-sessions.md).
        route(
            Tee,
            Get,
            "/tee/framework",
            tee::framework,
            Operation {
                summary: "The TEE framework this server serves",
                query: &[],
                request: Body::None,
                responses: &[(
                    200,
                    "\"SCONE\", \"GRAMINE\" or \"TDX\"",
                    Body::Json("Framework"),
                )],
            },
        ),
        route(
            Tee,
            Get,
            "/tee/properties/{framework}",
            tee::properties_default,
            Operation {
                summary: "Properties of the first pipeline (deprecated by iExec)",
                query: &[],
                request: Body::None,
                responses: &[
                    (200, "pipeline properties", Body::Json("Object")),
                    (400, "unknown framework", Body::None),
                    (409, "not the served framework", Body::None),
                ],
            },
        ),
        route(
            Tee,
            Get,
            "/tee/properties/{framework}/{version}",
            tee::properties,
            Operation {
                summary: "Properties of a pipeline version",
                query: &[],
                request: Body::None,
                responses: &[
                    (200, "pipeline properties", Body::Json("Object")),
                    (400, "unknown framework", Body::None),
                    (404, "unknown version", Body::None),
                    (409, "not the served framework", Body::None),
                ],
            },
        ),
        route(
            Tee,
            Post,
            "/tee/challenges/{task}",
            tee::challenge,
            Operation {
                summary: "The task's enclave challenge (scheduler, signed by the workerpool owner)",
                query: &[],
                request: Body::None,
                responses: &[
                    (
                        200,
                        "challenge address, 0x + 40 lowercase hex",
                        Body::Text("address"),
                    ),
                    (400, "malformed task id or signature", Body::None),
                    (401, "not authorized", Body::None),
                    (404, "unknown task", Body::None),
                    (503, "ledger unavailable", Body::None),
                ],
            },
        ),
        route(
            Tee,
            Get,
            "/tee/explain/{task}",
            tee::explain,
            Operation {
                summary: "Why a session of the task would be created or refused, and what the release requires (workerpool owner, no side effects)",
                query: &[(
                    "worker",
                    "worker address (0x + 40 hex) to run the checks for",
                    false,
                )],
                request: Body::None,
                responses: &[
                    (200, "every check with its outcome", Body::Json("Explanation")),
                    (400, "malformed task id or worker", Body::Json("PlainError")),
                    (401, "not signed by the deal's workerpool owner", Body::Json("PlainError")),
                    (404, "task or deal not on chain", Body::Json("PlainError")),
                    (503, "ledger or store unavailable", Body::Json("PlainError")),
                ],
            },
        ),
        route(
            Tee,
            Post,
            "/tee/sessions",
            tee::create_session,
            Operation {
                summary: "Create the task's TEE session (worker, WorkerpoolAuthorization)",
                query: &[],
                request: Body::Json("WorkerpoolAuthorization"),
                responses: &[
                    (200, "the session", Body::Json("SessionAnswer")),
                    (400, "malformed request", Body::Json("SessionError")),
                    (401, "not authorized", Body::Json("SessionError")),
                    (
                        409,
                        "framework mismatch or session taken",
                        Body::Json("SessionError"),
                    ),
                    (
                        422,
                        "bulk document unusable (docs/bulk-processing.md)",
                        Body::Json("SessionError"),
                    ),
                    (500, "session generation failed", Body::Json("SessionError")),
                    (501, "not supported", Body::Json("SessionError")),
                    (
                        502,
                        "IPFS gateway answered bytes that are not the CID's",
                        Body::Json("SessionError"),
                    ),
                ],
            },
        ),
        // Attested provisioning (docs/provisioning.md).
        route(
            Provisioning,
            Get,
            "/tee/provisioning/identity",
            provision::identity,
            Operation {
                summary: "The SMS identity (Ed25519 public key) that signs releases",
                query: &[],
                request: Body::None,
                responses: &[(200, "identity document", Body::Json("Object"))],
            },
        ),
        route(
            Provisioning,
            Post,
            "/tee/provisioning/{session}/{service}/nonce",
            provision::nonce,
            Operation {
                summary: "A single-use nonce for an enclave's release",
                query: &[],
                request: Body::None,
                responses: &[
                    (200, "the nonce", Body::Json("Object")),
                    (400, "malformed session or service", PLAIN_ERROR),
                    (404, "unknown session or service", PLAIN_ERROR),
                ],
            },
        ),
        route(
            Provisioning,
            Post,
            "/tee/provisioning/{session}/{service}/release",
            provision::release,
            Operation {
                summary: "Release an enclave's environment against evidence",
                query: &[],
                request: Body::Json("Object"),
                responses: &[
                    (200, "the sealed, signed environment", Body::Json("Object")),
                    (400, "malformed request", PLAIN_ERROR),
                    (401, "evidence refused", PLAIN_ERROR),
                    (403, "measurement or task refused", PLAIN_ERROR),
                    (404, "unknown session, service or nonce", PLAIN_ERROR),
                    (409, "release budget spent", PLAIN_ERROR),
                    (503, "chain unavailable", PLAIN_ERROR),
                ],
            },
        ),
        // Dev ledger (`--dev` only).
        route(
            Dev,
            Get,
            "/dev/info",
            dev::info,
            Operation {
                summary: "Says that this server is a dev server (embedded dev ledger)",
                query: &[],
                request: Body::None,
                responses: &[(200, "dev server", Body::Json("DevInfo"))],
            },
        ),
        route(
            Dev,
            Post,
            "/dev/apps",
            dev::deploy_app,
            Operation {
                summary: "Deploy an app on the dev ledger",
                query: &[],
                request: Body::Json("Object"),
                responses: DEV_ANSWERS,
            },
        ),
        route(
            Dev,
            Post,
            "/dev/datasets",
            dev::deploy_dataset,
            Operation {
                summary: "Deploy a dataset on the dev ledger",
                query: &[],
                request: Body::Json("Object"),
                responses: DEV_ANSWERS,
            },
        ),
        route(
            Dev,
            Post,
            "/dev/workerpools",
            dev::deploy_workerpool,
            Operation {
                summary: "Deploy a workerpool on the dev ledger",
                query: &[],
                request: Body::Json("Object"),
                responses: DEV_ANSWERS,
            },
        ),
        route(
            Dev,
            Post,
            "/dev/transfer",
            dev::transfer,
            Operation {
                summary: "Transfer an entry to a new owner",
                query: &[],
                request: Body::Json("Object"),
                responses: DEV_ANSWERS,
            },
        ),
        route(
            Dev,
            Post,
            "/dev/deals",
            dev_deals::create_deal,
            Operation {
                summary: "Create a deal and its tasks on the dev ledger",
                query: &[],
                request: Body::Json("Object"),
                responses: DEV_ANSWERS,
            },
        ),
        route(
            Dev,
            Post,
            "/dev/tasks/{task}/status",
            dev_deals::set_task_status,
            Operation {
                summary: "Set a task's status",
                query: &[],
                request: Body::Json("Object"),
                responses: DEV_ANSWERS,
            },
        ),
        route(
            Dev,
            Get,
            "/dev/tasks/{task}",
            dev_read::task_description,
            Operation {
                summary: "A task's description as the worker sees it",
                query: &[],
                request: Body::None,
                responses: DEV_ANSWERS,
            },
        ),
        route(
            Dev,
            Post,
            "/dev/ipfs",
            dev::ipfs_add,
            Operation {
                summary: "Store a document in the dev IPFS; answers its CIDv0 (bulk runs)",
                query: &[],
                request: Body::Text("the document"),
                responses: DEV_ANSWERS,
            },
        ),
        route(
            Dev,
            Get,
            "/dev/ipfs/{cid}",
            dev::ipfs_get,
            Operation {
                summary: "A document of the dev IPFS, as a path gateway serves it",
                query: &[],
                request: Body::None,
                responses: &[
                    (200, "the document", Body::Text("the document bytes")),
                    (404, "unknown CID", PLAIN_ERROR),
                ],
            },
        ),
    ]);
    routes
}

/// The admin API (docs/keys-and-backups.md): bearer token, off without `--admin-token-file`.
fn admin_table() -> Vec<Route> {
    use Feature::Admin;
    use Verb::*;
    vec![
        route(
            Admin,
            Get,
            "/admin/keys",
            admin::key_status,
            Operation {
                summary: "Data keys: ids, rows and encryptions per key, rows left to re-wrap",
                query: &[],
                request: Body::None,
                responses: &[
                    (200, "key status", Body::Json("Object")),
                    ADMIN_UNAUTHORIZED,
                ],
            },
        ),
        route(
            Admin,
            Post,
            "/admin/keys/rotate",
            admin::rotate,
            Operation {
                summary: "Create a new data key; new values are sealed with it",
                query: &[],
                request: Body::None,
                responses: &[
                    (200, "key status", Body::Json("Object")),
                    ADMIN_UNAUTHORIZED,
                ],
            },
        ),
        route(
            Admin,
            Post,
            "/admin/keys/rewrap",
            admin::rewrap,
            Operation {
                summary: "Re-seal one bounded batch of rows under the current data key",
                query: &[
                    (
                        "limit",
                        "rows in this batch, 1 to 10000 (default 500)",
                        false,
                    ),
                    ("after", "cursor `next` of the previous batch", false),
                ],
                request: Body::None,
                responses: &[
                    (
                        200,
                        "what the batch did, and the next cursor",
                        Body::Json("Object"),
                    ),
                    (400, "bad limit or cursor", PLAIN_ERROR),
                    ADMIN_UNAUTHORIZED,
                ],
            },
        ),
        route(
            Admin,
            Post,
            "/admin/keys/retire",
            admin::retire,
            Operation {
                summary: "Delete the data keys no row uses (never the current one)",
                query: &[],
                request: Body::None,
                responses: &[
                    (200, "the retired key ids", Body::Json("Object")),
                    ADMIN_UNAUTHORIZED,
                ],
            },
        ),
        route(
            Admin,
            Post,
            "/admin/backup",
            admin::backup,
            Operation {
                summary: "Online backup of the SQLite store, streamed (never the master key)",
                query: &[],
                request: Body::None,
                responses: &[
                    (
                        201,
                        "the backup, a SQLite database",
                        Body::Text("application/vnd.sqlite3"),
                    ),
                    ADMIN_UNAUTHORIZED,
                    (
                        409,
                        "PostgreSQL store: back it up with pg_dump",
                        PLAIN_ERROR,
                    ),
                    (429, "a backup is already running", PLAIN_ERROR),
                ],
            },
        ),
        route(
            Admin,
            Post,
            "/admin/{storageID}/restore-backup",
            admin::restore_backup,
            Operation {
                summary: "iExec's restore: refused while serving (use `sms operator restore`)",
                query: &[("fileName", "ignored", false)],
                request: Body::None,
                responses: &[
                    (400, "storageID is not hex", PLAIN_ERROR),
                    ADMIN_UNAUTHORIZED,
                    (409, "refused while serving", PLAIN_ERROR),
                ],
            },
        ),
    ]
}

/// The entries this server mounts (TEE only when a framework is served, dev only with a dev ledger).
pub fn mounted(state: &AppState) -> Vec<Route> {
    table()
        .into_iter()
        .filter(|r| r.feature.mounted(state))
        .collect()
}

/// Bodies above this are refused before anything else (memory bound); smaller oversized
/// values are refused after authorization, with the iExec status codes.
fn body_cap(max_secret_bytes: usize) -> usize {
    (max_secret_bytes * 2).max(64 * 1024)
}

/// The mounted routes, one service per path pattern (the entries of one path merged), each
/// with the state and its own layers (CORS on the secret API, the body limit); then the answer
/// of a path no entry serves. `crate::edge` matches the path once and calls the route.
pub fn services(state: AppState) -> (Vec<(&'static str, MethodRouter)>, MethodRouter) {
    let cap = body_cap(state.max_secret_bytes);
    let mut paths: Vec<(&'static str, bool, MethodRouter<AppState>)> = Vec::new();
    for entry in mounted(&state) {
        let secret = matches!(entry.feature, Feature::Secrets | Feature::SecretsV2);
        match paths.iter_mut().find(|(path, _, _)| *path == entry.path) {
            Some((_, _, handler)) => {
                *handler = std::mem::take(handler).merge(entry.handler);
            }
            None => paths.push((entry.path, secret, entry.handler)),
        }
    }
    let routes = paths
        .into_iter()
        .map(|(path, secret, handler)| {
            let handler = if secret {
                handler.layer(state.cors.layer())
            } else {
                handler
            };
            let handler = handler
                .layer(DefaultBodyLimit::max(cap))
                .with_state(state.clone());
            (path, handler)
        })
        .collect();
    (routes, axum::routing::any(no_such_route))
}

/// Answer of a path no entry of the table serves (the API description test tells it apart
/// from a handler's own 404 by this body).
async fn no_such_route() -> crate::error::ApiError {
    crate::error::ApiError::new(axum::http::StatusCode::NOT_FOUND, "No such route")
}

/// Header on every `/tee/*` answer of a server that accepts simulated TEE evidence (a header,
/// not a body field: iExec workers decode those bodies).
pub const SIMULATED_TEE_HEADER: &str = "x-sms-simulated-tee";

/// Marks an answer of a server that accepts simulated TEE evidence, if its path is `/tee/*`.
pub fn mark_simulated_tee(path: &str, response: &mut axum::response::Response) {
    if path.starts_with("/tee/") {
        response.headers_mut().insert(
            axum::http::HeaderName::from_static(SIMULATED_TEE_HEADER),
            axum::http::HeaderValue::from_static("true"),
        );
    }
}
