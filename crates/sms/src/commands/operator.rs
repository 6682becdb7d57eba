//! `sms operator`: keys and backups (docs/keys-and-backups.md). Online commands drive a
//! running server's admin API with the admin token; `rotate-master-key` and `restore` work on
//! the store itself.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::json;
use sms_client::admin::{AdminClient, RewrapProgress, key_status_text};
use sms_store::offline::{current_key_file, open_backend, restore_backup, rotate_master_key_files};

use crate::output::Output;

#[derive(Subcommand)]
pub enum OperatorCommand {
    /// Data keys of a running server: ids, rows and encryptions per key, rows left to rewrap.
    KeyStatus(AdminArgs),
    /// Create a new data key now on a running server; new values are sealed with it. Follow
    /// with `sms operator rewrap` to move the existing rows.
    RotateDataKey(AdminArgs),
    /// Re-seal every row under the newest data key, online, in bounded batches; stateless, so
    /// it resumes after a crash by running it again. Progress on stderr (JSON lines with --json).
    Rewrap(RewrapArgs),
    /// Delete the data keys no row uses any more (never the current one).
    RetireKeys(AdminArgs),
    /// Stream an online backup of a running server's SQLite store to a file (never the master
    /// key: keep it apart; restoring needs it). PostgreSQL: use pg_dump (see the docs).
    Backup(BackupArgs),
    /// Restore a backup into a fresh data directory, with the server stopped. Checks the master
    /// key and opens every row before putting the database in place.
    Restore(RestoreArgs),
    /// Re-wrap every data key under a new master key in one transaction. The old key (from
    /// SMS_MASTER_KEY or --master-key-file) is not needed afterwards; restart every server with
    /// the new one.
    RotateMasterKey(RotateMasterArgs),
}

#[derive(Args, Clone)]
pub struct AdminArgs {
    /// URL of the SMS server.
    #[arg(long, env = "SMS_URL", default_value = "http://127.0.0.1:13300")]
    pub sms_url: String,
    /// Extra CA certificate (PEM) to trust for an HTTPS SMS.
    #[arg(long, env = "SMS_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// File holding the admin token (the server's --admin-token-file).
    #[arg(long, env = "SMS_ADMIN_TOKEN_FILE", value_name = "PATH")]
    pub admin_token_file: PathBuf,
}

#[derive(Args)]
pub struct RewrapArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Rows per batch (one request each). 1 to 10000.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch: u32,
    /// Pause between batches, in milliseconds (leaves room for the traffic). 0 to 60000.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub pause_ms: u64,
    /// Retire the keys no row uses once every row is on the newest key.
    #[arg(long)]
    pub retire: bool,
}

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// File to write (must not exist).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// A file written by `sms operator backup`.
    pub file: PathBuf,
    /// Data directory to restore into (no database there yet, no server running on it).
    #[arg(long, env = "SMS_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The master key the backup's data keys are wrapped with. Ignored when SMS_MASTER_KEY is
    /// set. Default: <data-dir>/master.key (never created by a restore).
    #[arg(long, env = "SMS_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct RotateMasterArgs {
    /// The new master key file: read when it exists, else created (mode 0600). Keep it outside
    /// the data directory.
    #[arg(long, value_name = "PATH")]
    pub new_key_file: PathBuf,
    /// The current master key file. Ignored when SMS_MASTER_KEY is set. Default:
    /// <data-dir>/master.key.
    #[arg(long, env = "SMS_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Data directory of a SQLite store.
    #[arg(long, env = "SMS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL of a shared store (instead of --data-dir).
    #[arg(long, env = "SMS_DATABASE_URL")]
    pub database_url: Option<String>,
}

/// The admin API client of these arguments (the token read from its file).
fn admin(args: &AdminArgs) -> anyhow::Result<AdminClient> {
    let token = sms_server::admin_token(&args.admin_token_file).map_err(anyhow::Error::msg)?;
    Ok(AdminClient::new(
        &args.sms_url,
        token,
        args.ca_cert.as_deref(),
    )?)
}

pub async fn run(command: OperatorCommand, json_mode: bool, out: &Output) -> anyhow::Result<()> {
    match command {
        OperatorCommand::KeyStatus(args) => {
            let status = admin(&args)?.key_status().await?;
            out.done(key_status_text(&status), status);
        }
        OperatorCommand::RotateDataKey(args) => {
            let status = admin(&args)?.rotate_data_key().await?;
            out.done(
                format!(
                    "new data key {}: new values are sealed with it; run `sms operator rewrap` to move the {} older rows",
                    status["currentKeyId"], status["pendingRewrap"]
                ),
                status,
            );
        }
        OperatorCommand::RetireKeys(args) => {
            let answer = admin(&args)?.retire_keys().await?;
            out.done(format!("retired data keys: {}", answer["retired"]), answer);
        }
        OperatorCommand::Rewrap(args) => rewrap(args, json_mode, out).await?,
        OperatorCommand::Backup(args) => backup(args, out).await?,
        OperatorCommand::Restore(args) => {
            let (restored, fingerprint) =
                restore_backup(&args.file, &args.data_dir, args.master_key_file.as_deref()).await?;
            out.done(
                format!(
                    "restored {} rows ({} data keys, master key {fingerprint}) into {}",
                    restored.rows,
                    restored.data_keys,
                    restored.database.display()
                ),
                json!({ "ok": true, "rows": restored.rows, "dataKeys": restored.data_keys,
                        "database": restored.database, "masterKeyFingerprint": fingerprint }),
            );
        }
        OperatorCommand::RotateMasterKey(args) => {
            let backend =
                open_backend(args.database_url.as_deref(), args.data_dir.as_deref()).await?;
            let old_file =
                current_key_file(args.master_key_file.as_deref(), args.data_dir.as_deref());
            let (done, created) =
                rotate_master_key_files(backend.as_ref(), &old_file, &args.new_key_file).await?;
            out.done(
                format!(
                    "{} data keys re-wrapped: master key {} -> {}{}\nRestart every server with --master-key-file {} (or SMS_MASTER_KEY); the old key is no longer needed.",
                    done.data_keys,
                    done.old_fingerprint,
                    done.new_fingerprint,
                    if created { " (new key file created)" } else { "" },
                    args.new_key_file.display()
                ),
                json!({ "ok": true, "dataKeys": done.data_keys, "oldFingerprint": done.old_fingerprint,
                        "newFingerprint": done.new_fingerprint, "newKeyFileCreated": created }),
            );
        }
    }
    Ok(())
}

/// Passes over the table until no row is left on an older key (or only unreadable rows are).
async fn rewrap(args: RewrapArgs, json_mode: bool, out: &Output) -> anyhow::Result<()> {
    let admin = admin(&args.admin)?;
    let terminal = std::io::stderr().is_terminal() && !json_mode;
    let mut show = |p: &RewrapProgress| {
        let (pass, current, rewrapped, pending) =
            (p.pass, &p.current_key_id, p.rewrapped, p.pending);
        if json_mode {
            eprintln!(
                "{}",
                json!({ "pass": pass, "batch": p.batches, "rewrapped": rewrapped, "tombstones": p.tombstones,
                        "pending": pending, "currentKeyId": current })
            );
        } else if terminal {
            eprint!(
                "\rrewrap to key {current}: pass {pass}, {rewrapped} rows re-sealed, {pending} left   "
            );
            let _ = std::io::stderr().flush();
        }
    };
    let pause = Duration::from_millis(args.pause_ms);
    let result = admin
        .rewrap_and_retire(args.batch, pause, args.retire, &mut show)
        .await;
    if terminal {
        eprintln!();
    }
    let (done, retired) = result?;
    let (current, rewrapped, tombstones, raced) = (
        &done.current_key_id,
        done.rewrapped,
        done.tombstones,
        done.raced,
    );
    out.done(
        format!(
            "every row is on data key {current}: {rewrapped} re-sealed, {tombstones} tombstones moved, {raced} rewritten meanwhile by writers{}",
            if args.retire { format!("; retired {retired}") } else { String::new() }
        ),
        json!({ "ok": true, "currentKeyId": current, "rewrapped": rewrapped, "tombstones": tombstones,
                "raced": raced, "batches": done.batches, "retired": retired }),
    );
    Ok(())
}

async fn backup(args: BackupArgs, out: &Output) -> anyhow::Result<()> {
    if args.out.exists() {
        bail!("{} exists: choose a new file", args.out.display());
    }
    let written = admin(&args.admin)?.backup_to(&args.out).await?;
    let (bytes, fingerprint) = (written.bytes, written.master_key_fingerprint);
    out.done(
        format!(
            "backup written to {} ({bytes} bytes); restoring it needs master key {fingerprint} (not in the backup)",
            args.out.display()
        ),
        json!({ "ok": true, "file": args.out, "bytes": bytes, "masterKeyFingerprint": fingerprint }),
    );
    Ok(())
}
