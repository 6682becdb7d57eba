//! What an operator does to a store with no server on it (`sms operator restore`,
//! `rotate-master-key`, docs/keys-and-backups.md): open its backend from a data directory or a
//! PostgreSQL URL, restore a backup with the master key of a key file, re-wrap the data keys
//! under a new master key file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::postgres::{PostgresBackend, PostgresSettings};
use crate::sqlite::{Restored, SqliteBackend};
use crate::{Backend, MasterKey, MasterKeyRotation, StoreError};

/// The backend of a shared store (`database_url`) or of the SQLite store of `data_dir`, which
/// must exist already (never created here).
pub async fn open_backend(
    database_url: Option<&str>,
    data_dir: Option<&Path>,
) -> Result<Arc<dyn Backend>, StoreError> {
    Ok(match (database_url, data_dir) {
        (Some(url), _) => {
            Arc::new(PostgresBackend::open(&PostgresSettings::new(url.to_owned())).await?)
        }
        (None, Some(dir)) => {
            let db = dir.join("sms.db");
            if !db.exists() {
                return Err(StoreError::NoStore(format!(
                    "no store in {} (no sms.db)",
                    dir.display()
                )));
            }
            Arc::new(SqliteBackend::open(&db).await?)
        }
        (None, None) => {
            return Err(StoreError::NoStore(
                "give --data-dir (SQLite) or --database-url (PostgreSQL)".into(),
            ));
        }
    })
}

/// Restores `backup` into `data_dir` (created if missing) with the master key of `key_file`
/// (default `<data-dir>/master.key`, never created; `SMS_MASTER_KEY` first); answers what was
/// restored and that key's fingerprint.
pub async fn restore_backup(
    backup: &Path,
    data_dir: &Path,
    key_file: Option<&Path>,
) -> Result<(Restored, String), StoreError> {
    let key_file = key_file.map_or_else(|| data_dir.join("master.key"), Path::to_path_buf);
    let (master, _) = MasterKey::from_env_or_file(&key_file, false)?;
    let fingerprint = master.fingerprint();
    std::fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let restored = crate::sqlite::restore(backup, data_dir, master).await?;
    Ok((restored, fingerprint))
}

/// Re-wraps every data key of `backend` under the master key of `new_key_file` (read, or
/// created 0600), from the current one of `old_key_file` (`SMS_MASTER_KEY` first). Answers
/// the rotation and whether the new key file was created.
pub async fn rotate_master_key_files(
    backend: &dyn Backend,
    old_key_file: &Path,
    new_key_file: &Path,
) -> Result<(MasterKeyRotation, bool), StoreError> {
    let (old, _) = MasterKey::from_env_or_file(old_key_file, false)?;
    let (new, created) = MasterKey::load_or_create(new_key_file)?;
    let done = crate::rotate_master_key(backend, &old, &new).await?;
    Ok((done, created))
}

/// The current master key file of a rotation: the one given, else `<data-dir>/master.key`,
/// else `master.key`.
pub fn current_key_file(given: Option<&Path>, data_dir: Option<&Path>) -> PathBuf {
    given
        .map(Path::to_path_buf)
        .or_else(|| data_dir.map(|d| d.join("master.key")))
        .unwrap_or_else(|| PathBuf::from("master.key"))
}
