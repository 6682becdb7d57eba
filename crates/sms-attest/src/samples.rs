//! Where the real Intel DCAP sample quotes are read from.
//!
//! The `dcap-qvl` package that cargo downloads to build this crate ships real SGX and TDX quotes
//! with their collateral under `sample/`. The tests and `sms bench` read them from there (the
//! version locked in Cargo.lock, unpacked under `$CARGO_HOME/registry/src`), so a clone of this
//! repository needs nothing beside it. `SMS_DCAP_SAMPLES=<dir>` overrides the
//! lookup (for a binary run outside the source tree).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The environment variable that names a directory of samples explicitly.
pub const SAMPLES_ENV: &str = "SMS_DCAP_SAMPLES";

/// The directory holding `sgx_quote`, `tdx_quote`, `tdx_quote_outdated`, … and their
/// `*_collateral.json`. The lookup runs once per process.
pub fn samples_dir() -> Result<&'static Path, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(locate).as_deref().map_err(Clone::clone)
}

/// The bytes of one sample file; the error names the file and where it was looked for.
pub fn read_sample(name: &str) -> Result<Vec<u8>, String> {
    let path = samples_dir()?.join(name);
    std::fs::read(&path).map_err(|e| format!("cannot read DCAP sample {}: {e}", path.display()))
}

fn locate() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os(SAMPLES_ENV) {
        return checked(PathBuf::from(dir));
    }
    let version = locked_version()?;
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let sources = cargo_home.join("registry").join("src");
    let registries = std::fs::read_dir(&sources)
        .map_err(|e| format!("cannot list {}: {e}", sources.display()))?;
    registries
        .filter_map(Result::ok)
        .map(|registry| registry.path().join(format!("dcap-qvl-{version}")).join("sample"))
        .find(|dir| dir.join("sgx_quote").is_file())
        .ok_or_else(|| {
            format!(
                "dcap-qvl {version} is not unpacked under {} (build the workspace first, or set {SAMPLES_ENV})",
                sources.display()
            )
        })
}

/// The version of dcap-qvl in the workspace's Cargo.lock, two levels above this crate.
fn locked_version() -> Result<String, String> {
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    let text = std::fs::read_to_string(&lock)
        .map_err(|e| format!("cannot read {}: {e}; set {SAMPLES_ENV}", lock.display()))?;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == r#"name = "dcap-qvl""# {
            let version = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = "))
                .map(|v| v.trim_matches('"').to_owned());
            return version
                .ok_or_else(|| format!("no version after dcap-qvl in {}", lock.display()));
        }
    }
    Err(format!("dcap-qvl is not in {}", lock.display()))
}

fn checked(dir: PathBuf) -> Result<PathBuf, String> {
    if dir.join("sgx_quote").is_file() {
        Ok(dir)
    } else {
        Err(format!(
            "no DCAP samples in {} (expected sgx_quote there)",
            dir.display()
        ))
    }
}
