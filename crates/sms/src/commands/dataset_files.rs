//! `sms dataset encrypt` and `sms dataset decrypt`: the iExec dataset file format
//! (`IV(16) ‖ AES-256-CBC-PKCS7`, key = 32 bytes as padded base64, checksum = `0x` + sha256 of the
//! encrypted file), streamed in constant memory.

use std::fs;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use sms_worker::dataset::{self, DatasetKey};

use crate::output::Output;

/// Default directory of encrypted datasets (as `iexec dataset init --encrypted`).
pub const DEFAULT_OUT_DIR: &str = "datasets/encrypted";
/// Default directory of dataset keys.
pub const DEFAULT_KEY_DIR: &str = ".secrets/datasets";
/// Default directory of files to encrypt when none is given.
pub const DEFAULT_ORIGINAL_DIR: &str = "datasets/original";
/// Key file holding the key of the last file encrypted (what `dataset push-secret` reads).
pub const LAST_KEY_FILE: &str = "dataset.key";

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

/// A progress bar on standard error, drawn only on a terminal and for large inputs.
pub struct ProgressBar {
    label: String,
    total: u64,
    enabled: bool,
    last_draw: Option<Instant>,
    started: Instant,
}

/// Inputs smaller than this get no progress bar.
const PROGRESS_MIN_BYTES: u64 = 16 * 1024 * 1024;

impl ProgressBar {
    pub fn new(label: impl Into<String>, total: u64) -> Self {
        Self {
            label: label.into(),
            total,
            enabled: total >= PROGRESS_MIN_BYTES && std::io::stderr().is_terminal(),
            last_draw: None,
            started: Instant::now(),
        }
    }

    pub fn update(&mut self, done: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self
            .last_draw
            .is_some_and(|t| now.duration_since(t) < Duration::from_millis(100))
            && done < self.total
        {
            return;
        }
        self.last_draw = Some(now);
        let fraction = if self.total == 0 {
            1.0
        } else {
            (done as f64 / self.total as f64).min(1.0)
        };
        let width = 30;
        let filled = (fraction * width as f64) as usize;
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = done as f64 / secs / 1_048_576.0;
        eprint!(
            "\r{} [{}{}] {:>3}% {:.1}/{:.1} MiB {:.1} MiB/s ",
            self.label,
            "#".repeat(filled),
            "-".repeat(width - filled),
            (fraction * 100.0) as u32,
            done as f64 / 1_048_576.0,
            self.total as f64 / 1_048_576.0,
            rate
        );
    }

    pub fn finish(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            eprintln!();
        }
    }
}

/// A file written under a temporary name and renamed into place on [`PendingFile::commit`];
/// removed if dropped before.
pub struct PendingFile {
    tmp: Option<PathBuf>,
    target: PathBuf,
}

impl PendingFile {
    pub fn create(target: &Path, force: bool, private: bool) -> anyhow::Result<(Self, fs::File)> {
        if target.exists() && !force {
            bail!(
                "{} already exists (use --force to overwrite it)",
                target.display()
            );
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.part", unique_suffix()));
        let mut options = fs::File::options();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        let file = options
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok((
            Self {
                tmp: Some(tmp),
                target: target.to_path_buf(),
            },
            file,
        ))
    }

    pub fn commit(mut self) -> anyhow::Result<PathBuf> {
        if let Some(tmp) = self.tmp.take() {
            fs::rename(&tmp, &self.target)
                .with_context(|| format!("cannot write {}", self.target.display()))?;
        }
        Ok(self.target.clone())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// A suffix unique among the temporary files of this machine (process id, time, counter).
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes a small private file (a key) atomically.
pub fn write_private(path: &Path, bytes: &[u8], force: bool) -> anyhow::Result<()> {
    let (pending, mut file) = PendingFile::create(path, force, true)?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    drop(file);
    pending.commit()?;
    Ok(())
}

fn file_name(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| anyhow::anyhow!("{} has no file name", path.display()))
}

struct EncryptedFile {
    original: PathBuf,
    encrypted: PathBuf,
    key: PathBuf,
    checksum: String,
}

fn encrypt_one(
    path: &Path,
    args: &EncryptArgs,
    key_dir_last: &Path,
) -> anyhow::Result<EncryptedFile> {
    let name = file_name(path)?;
    let encrypted_path = args.out_dir.join(format!("{name}.enc"));
    let key_path = args.key_dir.join(format!("{name}.key"));
    if !args.force {
        for p in [&encrypted_path, &key_path] {
            if p.exists() {
                bail!(
                    "{} already exists (use --force to overwrite it)",
                    p.display()
                );
            }
        }
    }
    let input = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let total = input.metadata().map(|m| m.len()).unwrap_or(0);
    let key = DatasetKey::generate();
    let (pending, output) = PendingFile::create(&encrypted_path, args.force, false)?;
    let mut writer = BufWriter::with_capacity(256 * 1024, output);
    let mut bar = ProgressBar::new(format!("encrypting {name}"), total);
    let encrypted = dataset::encrypt_with_progress(
        BufReader::with_capacity(256 * 1024, input),
        &mut writer,
        &key,
        &mut |n| bar.update(n),
    )
    .with_context(|| format!("cannot encrypt {}", path.display()))?;
    bar.finish();
    let file = writer
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", encrypted_path.display(), e.error()))?;
    file.sync_all()
        .with_context(|| format!("cannot write {}", encrypted_path.display()))?;
    drop(file);
    // Keys first: an encrypted file without its key would be useless.
    let key_text = key.to_base64();
    write_private(&key_path, key_text.as_bytes(), args.force)?;
    write_private(key_dir_last, key_text.as_bytes(), true)?;
    let encrypted_path = pending.commit()?;
    Ok(EncryptedFile {
        original: path.to_path_buf(),
        encrypted: encrypted_path,
        key: key_path,
        checksum: encrypted.checksum.to_hex(),
    })
}

fn files_to_encrypt(args: &EncryptArgs) -> anyhow::Result<Vec<PathBuf>> {
    let given = if args.files.is_empty() {
        let dir = Path::new(DEFAULT_ORIGINAL_DIR);
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .with_context(|| format!("no file given and {} cannot be read", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        files
    } else {
        args.files.clone()
    };
    let mut files = Vec::new();
    for path in given {
        let meta =
            fs::metadata(&path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_file() {
            files.push(path);
        } else {
            eprintln!("Skipping {}: not a regular file", path.display());
        }
    }
    if files.is_empty() {
        bail!("nothing to encrypt");
    }
    Ok(files)
}

pub fn encrypt(args: EncryptArgs, out: &Output) -> anyhow::Result<()> {
    let files = files_to_encrypt(&args)?;
    let last_key = args.key_dir.join(LAST_KEY_FILE);
    let mut done = Vec::new();
    for path in &files {
        done.push(encrypt_one(path, &args, &last_key)?);
    }
    let mut human = String::new();
    for f in &done {
        human.push_str(&format!(
            "Encrypted {}\n  encrypted file: {}\n  key file:       {}\n  checksum:       {}\n",
            f.original.display(),
            f.encrypted.display(),
            f.key.display(),
            f.checksum
        ));
    }
    human.push_str(&format!(
        "Key of the last file also in {}",
        last_key.display()
    ));
    let list: Vec<_> = done
        .iter()
        .map(|f| json!({ "original": f.original, "encrypted": f.encrypted, "key": f.key, "checksum": f.checksum }))
        .collect();
    out.done(
        human,
        json!({ "encryptedDatasetFolderPath": args.out_dir, "secretPath": args.key_dir, "lastKeyPath": last_key, "encryptedFiles": list }),
    );
    Ok(())
}

/// A key given as base64 text or as a key file.
pub fn load_key(given: &str) -> anyhow::Result<DatasetKey> {
    let path = Path::new(given);
    if path.is_file() {
        let text =
            fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        return DatasetKey::from_base64(&text)
            .with_context(|| format!("{} does not hold a dataset key", path.display()));
    }
    DatasetKey::from_base64(given)
        .map_err(|e| anyhow::anyhow!("--key is neither a key file nor a base64 dataset key ({e})"))
}

fn default_decrypted_path(input: &Path) -> anyhow::Result<PathBuf> {
    let name = file_name(input)?;
    let out_name = match name.strip_suffix(".enc") {
        Some(stem) if !stem.is_empty() => stem.to_owned(),
        _ => format!("{name}.dec"),
    };
    Ok(input.with_file_name(out_name))
}

pub fn decrypt(args: DecryptArgs, out: &Output) -> anyhow::Result<()> {
    let key = load_key(&args.key)?;
    let target = match &args.out {
        Some(p) => p.clone(),
        None => default_decrypted_path(&args.file)?,
    };
    let input = fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let total = input.metadata().map(|m| m.len()).unwrap_or(0);
    let (pending, output) = PendingFile::create(&target, args.force, false)?;
    let mut writer = BufWriter::with_capacity(256 * 1024, output);
    let mut bar = ProgressBar::new(format!("decrypting {}", args.file.display()), total);
    let result = dataset::decrypt_with_progress(
        BufReader::with_capacity(256 * 1024, input),
        &mut writer,
        &key,
        &mut |n| bar.update(n),
    );
    bar.finish();
    let decrypted = result.with_context(|| format!("cannot decrypt {}", args.file.display()))?;
    let file = writer
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", target.display(), e.error()))?;
    file.sync_all()
        .with_context(|| format!("cannot write {}", target.display()))?;
    drop(file);
    let target = pending.commit()?;
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
