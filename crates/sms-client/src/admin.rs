//! A client of one server's admin API (`/admin/*`, docs/keys-and-backups.md), authenticated
//! by the admin bearer token.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use thiserror::Error;
use zeroize::Zeroizing;

/// What went wrong talking to the admin API, worded for the operator.
#[derive(Debug, Error)]
pub enum AdminError {
    #[error("cannot read {}", path.display())]
    ReadCaCert {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a PEM certificate", path.display())]
    BadCaCert {
        path: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot reach the SMS at {url}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the admin API is off on {url} (start the server with --admin-token-file)")]
    Off { url: String },
    #[error("the server refused the admin token: {reason}")]
    TokenRefused { reason: String },
    #[error("{path}: HTTP {status}: {reason}")]
    Status {
        path: String,
        status: reqwest::StatusCode,
        reason: String,
    },
    #[error("cannot create {}", path.display())]
    CreateFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the backup stream broke")]
    BackupStream(#[source] reqwest::Error),
    #[error(
        "{} rows do not open (tampered or rolled back; see the server log) and stay on their old key: {}",
        .0.len(),
        .0.join(", ")
    )]
    Unreadable(Vec<String>),
    #[error(
        "{0} rows are still on older keys after {REWRAP_PASSES} passes (heavy writes from replicas on a stale key?): run it again"
    )]
    Pending(u64),
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The running totals of a rewrap, after each batch.
#[derive(Debug, Default)]
pub struct RewrapProgress {
    pub pass: u32,
    pub batches: u64,
    pub rewrapped: u64,
    pub tombstones: u64,
    pub raced: u64,
    /// Rows still on an older key, as of the last batch.
    pub pending: u64,
    pub current_key_id: Value,
    /// The rows of the last pass that did not open (tampered or rolled back).
    pub unreadable: Vec<String>,
}

impl RewrapProgress {
    /// A rewrap is done when every row is on the newest key: unreadable rows (they stay on
    /// their old key) and rows left after the last pass are errors.
    pub fn ensure_complete(&self) -> Result<(), AdminError> {
        if !self.unreadable.is_empty() {
            return Err(AdminError::Unreadable(self.unreadable.clone()));
        }
        if self.pending > 0 {
            return Err(AdminError::Pending(self.pending));
        }
        Ok(())
    }
}

/// A backup written to a file.
pub struct BackupFile {
    pub bytes: u64,
    /// The fingerprint of the master key restoring it needs (not in the backup).
    pub master_key_fingerprint: String,
}

/// Passes over the table at most this many times before giving up.
const REWRAP_PASSES: u32 = 10;

/// The admin API of the server at one URL.
pub struct AdminClient {
    http: reqwest::Client,
    url: String,
    token: Zeroizing<String>,
}

impl AdminClient {
    pub fn new(
        url: &str,
        token: Zeroizing<String>,
        ca_cert: Option<&Path>,
    ) -> Result<Self, AdminError> {
        crate::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600));
        if let Some(ca) = ca_cert {
            let pem = std::fs::read(ca).map_err(|source| AdminError::ReadCaCert {
                path: ca.to_path_buf(),
                source,
            })?;
            let certificate =
                reqwest::Certificate::from_pem(&pem).map_err(|source| AdminError::BadCaCert {
                    path: ca.to_path_buf(),
                    source,
                })?;
            builder = builder.add_root_certificate(certificate);
        }
        Ok(Self {
            http: builder.build()?,
            url: url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// Sends one request; a non-2xx answer is an error naming the server's reason.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<reqwest::Response, AdminError> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.url))
            .query(query)
            .bearer_auth(self.token.as_str())
            .send()
            .await
            .map_err(|source| AdminError::Unreachable {
                url: self.url.clone(),
                source,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let reason = body["reason"]
            .as_str()
            .or(body["error"].as_str())
            .unwrap_or("")
            .to_owned();
        Err(match status.as_u16() {
            404 => AdminError::Off {
                url: self.url.clone(),
            },
            401 => AdminError::TokenRefused { reason },
            _ => AdminError::Status {
                path: path.to_owned(),
                status,
                reason,
            },
        })
    }

    /// Sends one request and reads its JSON answer.
    pub async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, AdminError> {
        Ok(self.send(method, path, query).await?.json().await?)
    }

    /// `GET /admin/keys`: the data keys, their rows and encryptions, rows left to rewrap.
    pub async fn key_status(&self) -> Result<Value, AdminError> {
        self.json(reqwest::Method::GET, "/admin/keys", &[]).await
    }

    /// `POST /admin/keys/rotate`: a new data key now; answers the new status.
    pub async fn rotate_data_key(&self) -> Result<Value, AdminError> {
        self.json(reqwest::Method::POST, "/admin/keys/rotate", &[])
            .await
    }

    /// `POST /admin/keys/retire`: deletes the data keys no row uses; answers `{"retired"}`.
    pub async fn retire_keys(&self) -> Result<Value, AdminError> {
        self.json(reqwest::Method::POST, "/admin/keys/retire", &[])
            .await
    }

    /// [`AdminClient::rewrap_all`] to completion ([`RewrapProgress::ensure_complete`]), then,
    /// with `retire`, the retirement of the keys no row uses (their ids; `[]` without).
    pub async fn rewrap_and_retire(
        &self,
        batch: u32,
        pause: Duration,
        retire: bool,
        on_batch: &mut dyn FnMut(&RewrapProgress),
    ) -> Result<(RewrapProgress, Value), AdminError> {
        let done = self.rewrap_all(batch, pause, on_batch).await?;
        done.ensure_complete()?;
        let retired = if retire {
            self.retire_keys().await?["retired"].clone()
        } else {
            Value::Array(Vec::new())
        };
        Ok((done, retired))
    }

    /// Re-seals every row under the newest data key: passes over the table in batches of
    /// `batch` rows (pausing `pause` between them) until no row is left on an older key, or
    /// only unreadable rows are, or [`REWRAP_PASSES`] passes ran. `on_batch` sees the totals
    /// after each batch; the caller decides what unreadable or pending rows mean.
    pub async fn rewrap_all(
        &self,
        batch: u32,
        pause: Duration,
        on_batch: &mut dyn FnMut(&RewrapProgress),
    ) -> Result<RewrapProgress, AdminError> {
        let mut progress = RewrapProgress {
            current_key_id: Value::Null,
            ..RewrapProgress::default()
        };
        for pass in 1..=REWRAP_PASSES {
            progress.pass = pass;
            let mut after: Option<String> = None;
            let mut pass_unreadable = Vec::new();
            loop {
                let mut query = vec![("limit", batch.to_string())];
                if let Some(cursor) = &after {
                    query.push(("after", cursor.clone()));
                }
                let answer = self
                    .json(reqwest::Method::POST, "/admin/keys/rewrap", &query)
                    .await?;
                progress.batches += 1;
                progress.rewrapped += answer["rewrapped"].as_u64().unwrap_or(0);
                progress.tombstones += answer["tombstones"].as_u64().unwrap_or(0);
                progress.raced += answer["raced"].as_u64().unwrap_or(0);
                progress.pending = answer["pendingRewrap"].as_u64().unwrap_or(0);
                progress.current_key_id = answer["currentKeyId"].clone();
                for row in answer["unreadable"].as_array().into_iter().flatten() {
                    pass_unreadable.push(row.as_str().unwrap_or("?").to_owned());
                }
                on_batch(&progress);
                after = answer["next"].as_str().map(str::to_owned);
                if after.is_none() {
                    break;
                }
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            progress.unreadable = pass_unreadable;
            if progress.pending as usize <= progress.unreadable.len() {
                break;
            }
        }
        Ok(progress)
    }

    /// Streams a backup (`POST /admin/backup`) into `out` through `<out>.partial`, renamed
    /// into place once complete.
    pub async fn backup_to(&self, out: &Path) -> Result<BackupFile, AdminError> {
        use tokio::io::AsyncWriteExt;
        let mut response = self
            .send(reqwest::Method::POST, "/admin/backup", &[])
            .await?;
        let master_key_fingerprint = response
            .headers()
            .get("x-sms-master-key-fingerprint")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?")
            .to_owned();
        let partial = out.with_extension("partial");
        let mut file =
            tokio::fs::File::create(&partial)
                .await
                .map_err(|source| AdminError::CreateFile {
                    path: partial.clone(),
                    source,
                })?;
        let mut bytes = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(AdminError::BackupStream)? {
            file.write_all(&chunk).await?;
            bytes += chunk.len() as u64;
        }
        file.sync_all().await?;
        drop(file);
        std::fs::rename(&partial, out)?;
        Ok(BackupFile {
            bytes,
            master_key_fingerprint,
        })
    }
}

/// The text `sms operator key-status` prints of a `GET /admin/keys` answer.
pub fn key_status_text(status: &Value) -> String {
    let mut text = format!(
        "master key {}; current data key {}; {} rows to rewrap\n  id  rows        encryptions  created     master key        state",
        status["masterKeyFingerprint"].as_str().unwrap_or("?"),
        status["currentKeyId"],
        status["pendingRewrap"],
    );
    for key in status["keys"].as_array().into_iter().flatten() {
        let state = match (key["current"].as_bool(), key["legacy"].as_bool()) {
            (Some(true), _) => "current",
            (_, Some(true)) => "legacy",
            _ => "old",
        };
        text.push_str(&format!(
            "\n  {:<3} {:<11} {:<12} {:<11} {:<17} {state}",
            key["id"],
            key["rows"],
            key["encryptions"],
            key["createdAt"],
            key["masterKeyFingerprint"].as_str().unwrap_or("?"),
        ));
    }
    text
}
