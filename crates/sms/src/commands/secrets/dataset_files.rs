//! `sms dataset encrypt` and `sms dataset decrypt`: the iExec dataset file format
//! (`IV(16) ‖ AES-256-CBC-PKCS7`, key = 32 bytes as padded base64, checksum = `0x` + sha256 of the
//! encrypted file), streamed in constant memory by `sms_worker::files`.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;
use sms_worker::files::{
    DEFAULT_KEY_DIR, DEFAULT_OUT_DIR, EncryptLayout, LAST_KEY_FILE, decrypt_dataset_file,
    default_decrypted_path, encrypt_dataset_files, files_to_encrypt, load_dataset_key,
};

use crate::output::Output;
use sms_worker::files::ProgressBar;

#[derive(Args)]
#[command(after_help = "\
Layout (the iExec SDK's): each FILE is encrypted with its own new key into
<out-dir>/<file name>.enc; the key (44 base64 characters, no newline) goes to
<key-dir>/<file name>.key and to <key-dir>/dataset.key, which therefore holds the key of
the last file (the file `sms dataset push-secret` reads by default). With no FILE, every
regular file of datasets/original/ is encrypted. Existing outputs are kept unless --force.
Key files are created readable by you only.

Put the .enc file where workers can download it, register the dataset with the printed
checksum, then push its key: sms dataset push-secret <dataset address>.")]
pub struct EncryptArgs {
    /// Files to encrypt (default: every regular file of datasets/original/).
    pub files: Vec<PathBuf>,
    /// Directory of the encrypted files.
    #[arg(long, default_value = DEFAULT_OUT_DIR)]
    pub out_dir: PathBuf,
    /// Directory of the key files.
    #[arg(long, default_value = DEFAULT_KEY_DIR)]
    pub key_dir: PathBuf,
    /// Overwrite existing encrypted files and keys.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args)]
#[command(after_help = "\
The key is given as its base64 text or as the path of a key file (e.g.
.secrets/datasets/data.csv.key); a path is tried first. The output is written to a
temporary file and renamed only when the whole file decrypted, so a wrong key leaves
nothing behind. Without a MAC, about 1 wrong key in 256 passes the padding check: compare
the printed checksum with the registered one.")]
pub struct DecryptArgs {
    /// Encrypted file (`IV ‖ ciphertext`).
    pub file: PathBuf,
    /// Base64 key or key file.
    #[arg(long)]
    pub key: String,
    /// Output file (default: the input name without `.enc`, or with `.dec` appended).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overwrite the output file.
    #[arg(long)]
    pub force: bool,
}

pub fn encrypt(args: EncryptArgs, out: &Output) -> anyhow::Result<()> {
    let files = files_to_encrypt(&args.files, |path| {
        eprintln!("Skipping {}: not a regular file", path.display());
    })?;
    let last_key = args.key_dir.join(LAST_KEY_FILE);
    let layout = EncryptLayout {
        out_dir: &args.out_dir,
        key_dir: &args.key_dir,
        last_key: &last_key,
        force: args.force,
    };
    let done = encrypt_dataset_files(&files, &layout)?;
    let (human, data) = layout.report(&done);
    out.done(human, data);
    Ok(())
}

pub fn decrypt(args: DecryptArgs, out: &Output) -> anyhow::Result<()> {
    let key = load_dataset_key(&args.key)?;
    let target = match &args.out {
        Some(p) => p.clone(),
        None => default_decrypted_path(&args.file)?,
    };
    let decrypted = decrypt_dataset_file(
        &args.file,
        &key,
        &target,
        args.force,
        &mut ProgressBar::default(),
    )?;
    let target = decrypted.target;
    out.done(
        format!(
            "Decrypted {} to {} ({} bytes)\n  checksum of the encrypted file: {}",
            args.file.display(),
            target.display(),
            decrypted.plaintext_len,
            decrypted.checksum
        ),
        json!({ "encrypted": args.file, "decrypted": target, "size": decrypted.plaintext_len, "checksum": decrypted.checksum.to_hex() }),
    );
    Ok(())
}
