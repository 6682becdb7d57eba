//! `sms result generate-encryption-keypair` and `sms result decrypt`: beneficiary RSA-4096 keys
//! and the iExec encrypted result archive (zip of `iexec_out.zip.aes` + `aes-key.rsa`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde_json::json;
use sms_worker::files::{decrypt_result_file, write_result_key_pair};
use sms_worker::result_archive;

use crate::commands::common::{WalletArgs, address_or_wallet};
use crate::output::Output;
use sms_worker::files::ProgressBar;

/// Default directory of beneficiary keys (the iExec SDK's).
pub const DEFAULT_KEY_DIR: &str = ".secrets/beneficiary";

#[derive(Args)]
#[command(after_help = "\
Writes <key-dir>/<address>_key (private, PKCS#8 PEM, readable by you only) and
<key-dir>/<address>_key.pub (public, SPKI PEM), with the checksummed beneficiary address
taken from --address or from the wallet file (read without its password). Then push the
public key: sms result push-encryption-key. Run tasks with --encrypt-result, and decrypt
their archives with: sms result decrypt <archive>.")]
pub struct KeypairArgs {
    /// Beneficiary address (default: the wallet's).
    #[arg(long)]
    pub address: Option<String>,
    /// Directory of the key files.
    #[arg(long, default_value = DEFAULT_KEY_DIR)]
    pub key_dir: PathBuf,
    /// Overwrite existing key files.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub wallet: WalletArgs,
    /// RSA key size (tests only; the iExec format is 4096 bits).
    #[arg(long, default_value_t = result_archive::RSA_BITS, hide = true)]
    pub bits: usize,
}

#[derive(Args)]
#[command(after_help = "\
The archive is the zip a task with --encrypt-result stores (it holds iexec_out.zip.aes and
aes-key.rsa). The output is the plain result zip (computed.json and the app's files); it is
written under a temporary name and renamed once complete.")]
pub struct DecryptArgs {
    /// Encrypted result archive.
    #[arg(default_value = "encryptedResults.zip")]
    pub archive: PathBuf,
    /// Private key PEM (default: .secrets/beneficiary/<wallet address>_key).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Output zip.
    #[arg(long, default_value = "results.zip")]
    pub out: PathBuf,
    /// Overwrite the output file.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub wallet: WalletArgs,
}

pub fn generate_keypair(args: KeypairArgs, out: &Output) -> anyhow::Result<()> {
    let address = address_or_wallet(args.address.as_deref(), &args.wallet)?.to_string();
    let (private_path, public_path) =
        write_result_key_pair(&args.key_dir, &address, args.bits, args.force)?;
    out.done(
        format!(
            "Generated an RSA-{} result encryption key pair for {address}\n  private key: {}\n  public key:  {}\nNext: sms result push-encryption-key --secret-path {}",
            args.bits,
            private_path.display(),
            public_path.display(),
            public_path.display()
        ),
        json!({ "address": address, "secretPath": private_path, "publicKeyPath": public_path }),
    );
    Ok(())
}

fn default_key_path(wallet: &WalletArgs) -> anyhow::Result<PathBuf> {
    let address = wallet
        .address()
        .context("no --key given and no wallet to find the default key")?;
    Ok(Path::new(DEFAULT_KEY_DIR).join(format!("{address}_key")))
}

pub fn decrypt(args: DecryptArgs, out: &Output) -> anyhow::Result<()> {
    let key_path = match &args.key {
        Some(k) => k.clone(),
        None => default_key_path(&args.wallet)?,
    };
    let (target, written) = decrypt_result_file(
        &args.archive,
        &key_path,
        &args.out,
        args.force,
        &mut ProgressBar::default(),
    )?;
    out.done(
        format!(
            "Results decrypted to {} ({written} bytes)",
            target.display()
        ),
        json!({ "archive": args.archive, "decrypted": target, "size": written }),
    );
    Ok(())
}
