//! The files the CLI writes for a dataset owner or a beneficiary, in the iExec SDK's layout:
//! encrypted dataset files and their keys, decrypted datasets and results. Every output is
//! written under a temporary name and renamed into place only when complete; key files are
//! created readable by their owner only. Progress goes to a [`Meter`] the caller draws.

use std::fs;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::dataset::{self, Checksum, DatasetKey};
use crate::result_archive::{self, ResultPrivateKey};

/// Default directory of encrypted datasets (as `iexec dataset init --encrypted`).
pub const DEFAULT_OUT_DIR: &str = "datasets/encrypted";
/// Default directory of dataset keys.
pub const DEFAULT_KEY_DIR: &str = ".secrets/datasets";
/// Default directory of files to encrypt when none is given.
pub const DEFAULT_ORIGINAL_DIR: &str = "datasets/original";
/// Key file holding the key of the last file encrypted (what `dataset push-secret` reads).
pub const LAST_KEY_FILE: &str = "dataset.key";

/// Progress of one long file operation, as the caller shows it.
pub trait Meter {
    /// A new operation on `total` input bytes.
    fn start(&mut self, label: &str, total: u64);
    /// `done` input bytes consumed so far.
    fn update(&mut self, done: u64);
    /// The operation ended (successfully or not).
    fn finish(&mut self);
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

/// Writes a small public file atomically (not synced, as a public key).
pub fn write_public(path: &Path, bytes: &[u8], force: bool) -> anyhow::Result<()> {
    let (pending, mut file) = PendingFile::create(path, force, false)?;
    file.write_all(bytes)
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

/// Where `encrypt_dataset_file` writes: `<out_dir>/<name>.enc`, `<key_dir>/<name>.key`, and
/// the key again in `last_key`.
pub struct EncryptLayout<'a> {
    pub out_dir: &'a Path,
    pub key_dir: &'a Path,
    pub last_key: &'a Path,
    pub force: bool,
}

impl EncryptLayout<'_> {
    /// What `sms dataset encrypt` prints of the files `done` in this layout: the text, and
    /// the JSON object of `--json` (the SDK's names).
    pub fn report(&self, done: &[EncryptedFile]) -> (String, serde_json::Value) {
        let mut human = String::new();
        for f in done {
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
            self.last_key.display()
        ));
        let list: Vec<_> = done
            .iter()
            .map(|f| serde_json::json!({ "original": f.original, "encrypted": f.encrypted, "key": f.key, "checksum": f.checksum }))
            .collect();
        let data = serde_json::json!({ "encryptedDatasetFolderPath": self.out_dir, "secretPath": self.key_dir, "lastKeyPath": self.last_key, "encryptedFiles": list });
        (human, data)
    }
}

/// One dataset file encrypted.
pub struct EncryptedFile {
    pub original: PathBuf,
    pub encrypted: PathBuf,
    pub key: PathBuf,
    pub checksum: String,
}

/// Encrypts one file with a new key; keys are written before the encrypted file is renamed
/// into place (an encrypted file without its key would be useless).
pub fn encrypt_dataset_file(
    path: &Path,
    layout: &EncryptLayout<'_>,
    meter: &mut dyn Meter,
) -> anyhow::Result<EncryptedFile> {
    let name = file_name(path)?;
    let encrypted_path = layout.out_dir.join(format!("{name}.enc"));
    let key_path = layout.key_dir.join(format!("{name}.key"));
    if !layout.force {
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
    let (pending, output) = PendingFile::create(&encrypted_path, layout.force, false)?;
    let mut writer = BufWriter::with_capacity(256 * 1024, output);
    meter.start(&format!("encrypting {name}"), total);
    let encrypted = dataset::encrypt_with_progress(
        BufReader::with_capacity(256 * 1024, input),
        &mut writer,
        &key,
        &mut |n| meter.update(n),
    )
    .with_context(|| format!("cannot encrypt {}", path.display()))?;
    meter.finish();
    let file = writer
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", encrypted_path.display(), e.error()))?;
    file.sync_all()
        .with_context(|| format!("cannot write {}", encrypted_path.display()))?;
    drop(file);
    let key_text = key.to_base64();
    write_private(&key_path, key_text.as_bytes(), layout.force)?;
    write_private(layout.last_key, key_text.as_bytes(), true)?;
    let encrypted_path = pending.commit()?;
    Ok(EncryptedFile {
        original: path.to_path_buf(),
        encrypted: encrypted_path,
        key: key_path,
        checksum: encrypted.checksum.to_hex(),
    })
}

/// A key given as base64 text or as a key file.
pub fn load_dataset_key(given: &str) -> anyhow::Result<DatasetKey> {
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

/// The input name without `.enc`, or with `.dec` appended.
pub fn default_decrypted_path(input: &Path) -> anyhow::Result<PathBuf> {
    let name = file_name(input)?;
    let out_name = match name.strip_suffix(".enc") {
        Some(stem) if !stem.is_empty() => stem.to_owned(),
        _ => format!("{name}.dec"),
    };
    Ok(input.with_file_name(out_name))
}

/// One dataset file decrypted.
pub struct DecryptedFile {
    pub target: PathBuf,
    pub plaintext_len: u64,
    pub checksum: Checksum,
}

/// Decrypts `file` into `target`; a wrong key leaves nothing behind.
pub fn decrypt_dataset_file(
    file: &Path,
    key: &DatasetKey,
    target: &Path,
    force: bool,
    meter: &mut dyn Meter,
) -> anyhow::Result<DecryptedFile> {
    let input = fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let total = input.metadata().map(|m| m.len()).unwrap_or(0);
    let (pending, output) = PendingFile::create(target, force, false)?;
    let mut writer = BufWriter::with_capacity(256 * 1024, output);
    meter.start(&format!("decrypting {}", file.display()), total);
    let result = dataset::decrypt_with_progress(
        BufReader::with_capacity(256 * 1024, input),
        &mut writer,
        key,
        &mut |n| meter.update(n),
    );
    meter.finish();
    let decrypted = result.with_context(|| format!("cannot decrypt {}", file.display()))?;
    finish_writer(writer, target)?;
    Ok(DecryptedFile {
        target: pending.commit()?,
        plaintext_len: decrypted.plaintext_len,
        checksum: decrypted.checksum,
    })
}

/// Decrypts an encrypted result archive into `out`; returns the path and the size written.
pub fn decrypt_result_file(
    archive: &Path,
    key_path: &Path,
    out: &Path,
    force: bool,
    meter: &mut dyn Meter,
) -> anyhow::Result<(PathBuf, u64)> {
    let pem = fs::read_to_string(key_path)
        .with_context(|| format!("cannot read the key file {}", key_path.display()))?;
    let key = ResultPrivateKey::from_pem(&pem)?;
    drop(pem);
    let input =
        fs::File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let total = input.metadata().map(|m| m.len()).unwrap_or(0);
    let (pending, output) = PendingFile::create(out, force, false)?;
    let mut writer = BufWriter::with_capacity(256 * 1024, output);
    meter.start("decrypting result", total);
    let result = result_archive::decrypt_result_archive_with_progress(
        BufReader::new(input),
        &key,
        &mut writer,
        &mut |n| meter.update(n),
    );
    meter.finish();
    let written = result.with_context(|| format!("cannot decrypt {}", archive.display()))?;
    finish_writer(writer, out)?;
    Ok((pending.commit()?, written))
}

fn finish_writer(writer: BufWriter<fs::File>, target: &Path) -> anyhow::Result<()> {
    let file = writer
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", target.display(), e.error()))?;
    file.sync_all()
        .with_context(|| format!("cannot write {}", target.display()))?;
    Ok(())
}

/// The files `sms dataset encrypt` encrypts: those given, or every file of
/// [`DEFAULT_ORIGINAL_DIR`] (sorted); what is not a regular file goes to `skipped`.
pub fn files_to_encrypt(
    given: &[PathBuf],
    mut skipped: impl FnMut(&Path),
) -> anyhow::Result<Vec<PathBuf>> {
    let given = if given.is_empty() {
        let dir = Path::new(DEFAULT_ORIGINAL_DIR);
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .with_context(|| format!("no file given and {} cannot be read", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        files
    } else {
        given.to_vec()
    };
    let mut files = Vec::new();
    for path in given {
        let meta =
            fs::metadata(&path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_file() {
            files.push(path);
        } else {
            skipped(&path);
        }
    }
    if files.is_empty() {
        bail!("nothing to encrypt");
    }
    Ok(files)
}

/// [`encrypt_dataset_file`] for each file in turn, each with its progress bar.
pub fn encrypt_dataset_files(
    files: &[PathBuf],
    layout: &EncryptLayout,
) -> anyhow::Result<Vec<EncryptedFile>> {
    files
        .iter()
        .map(|path| encrypt_dataset_file(path, layout, &mut ProgressBar::default()))
        .collect()
}

/// A new RSA result encryption key pair of `bits` for beneficiary `address`, written as
/// `<key_dir>/<address>_key` (private, owner only) and `<key_dir>/<address>_key.pub`; existing
/// files are kept unless `force`. Returns both paths.
pub fn write_result_key_pair(
    key_dir: &Path,
    address: &str,
    bits: usize,
    force: bool,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let private_path = key_dir.join(format!("{address}_key"));
    let public_path = key_dir.join(format!("{address}_key.pub"));
    if !force {
        for p in [&private_path, &public_path] {
            anyhow::ensure!(
                !p.exists(),
                "{} already exists (use --force to overwrite it)",
                p.display()
            );
        }
    }
    let pair = result_archive::generate_key_pair_with_bits(bits)?;
    write_private(&private_path, pair.private_pem.as_bytes(), force)?;
    write_public(&public_path, pair.public_pem.as_bytes(), force)?;
    Ok((private_path, public_path))
}

/// The base64 key of a dataset key file (trimmed), checked to be a dataset key.
pub fn read_dataset_key_file(path: &Path) -> anyhow::Result<String> {
    let key = fs::read_to_string(path)
        .with_context(|| format!("cannot read the dataset key file {}", path.display()))?;
    let key = key.trim();
    DatasetKey::from_base64(key)
        .with_context(|| format!("{} does not hold a dataset key", path.display()))?;
    Ok(key.to_owned())
}

/// A beneficiary's public key file (SPKI PEM) as the result encryption key secret holds it.
pub fn read_result_public_key(path: &Path) -> anyhow::Result<String> {
    let pem = fs::read_to_string(path)
        .with_context(|| format!("cannot read the public key file {}", path.display()))?;
    Ok(result_archive::format_encryption_key(pem.trim()))
}

/// A progress bar on standard error, drawn only on a terminal and for large inputs.
#[derive(Default)]
pub struct ProgressBar {
    label: String,
    total: u64,
    enabled: bool,
    last_draw: Option<Instant>,
    started: Option<Instant>,
}

/// Inputs smaller than this get no progress bar.
const PROGRESS_MIN_BYTES: u64 = 16 * 1024 * 1024;

impl Meter for ProgressBar {
    fn start(&mut self, label: &str, total: u64) {
        *self = Self {
            label: label.to_owned(),
            total,
            enabled: total >= PROGRESS_MIN_BYTES && std::io::stderr().is_terminal(),
            last_draw: None,
            started: Some(Instant::now()),
        };
    }

    fn update(&mut self, done: u64) {
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
        let secs = self
            .started
            .map_or(0.0, |t| t.elapsed().as_secs_f64())
            .max(0.001);
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

    fn finish(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            eprintln!();
        }
    }
}
