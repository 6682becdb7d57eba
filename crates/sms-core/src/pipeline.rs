//! Pre-/post-compute pipelines served by this SMS (docs/iexec-compatibility.md §3, §4).
//!
//! ## The `--pipelines <file>` format
//!
//! TOML (the recommended form, any file not ending in `.json`) or JSON (a file ending in
//! `.json`), with the same structure: one `pipelines` list, each item a framework version with
//! its pre-compute and post-compute enclaves. Keys are kebab-case; every key is required and no
//! other key is accepted (a typo is a start-up error, not a silently ignored setting).
//!
//! ```toml
//! [[pipelines]]
//! version = "v5"
//!
//! [pipelines.pre-compute]
//! image = "registry.example/tee-worker-pre-compute:1.0.0"
//! fingerprint = "<64 hex characters>"   # 0x prefix and uppercase accepted
//! entrypoint = "/pre-compute"
//! heap-size = "3GB"                      # integer bytes, or a number with B, KB, MB, GB or TB
//!
//! [pipelines.post-compute]
//! image = "registry.example/tee-worker-post-compute:1.0.0"
//! fingerprint = "<64 hex characters>"
//! entrypoint = "/post-compute"
//! heap-size = "3GB"
//! ```
//!
//! Sizes are 1024-based (`1KB` = 1024 bytes), case-insensitive, optionally with a space before
//! the unit, and must be greater than 0.
//!
//! ### TDX: the measured registers
//!
//! For the TDX framework the `fingerprint` is only published (properties, session storage);
//! what an enclave must prove is the set of its TD registers
//! ([`crate::measurement`]). Each stage then also has a `tdx` table, and the pipeline an `app`
//! table holding the app TD image's registers:
//!
//! ```toml
//! [pipelines.pre-compute.tdx]            # likewise [pipelines.post-compute.tdx]
//! mrtd  = "<96 hex characters>"          # TD firmware
//! rtmr0 = "<96 hex characters>"          # firmware configuration
//! rtmr1 = "<96 hex characters>"          # boot loader, kernel
//! rtmr2 = "<96 hex characters>"          # kernel command line, initrd
//! rtmr3 = "any"                          # unchecked: only because it says so
//! mr-config-id = "<96 hex characters>"   # optional: unchecked when absent
//!
//! [pipelines.app.tdx]                    # the TD image every app runs in
//! mrtd  = "<96 hex characters>"
//! rtmr0 = "<96 hex characters>"
//! rtmr1 = "<96 hex characters>"
//! rtmr2 = "<96 hex characters>"
//! # no rtmr3: derived from the app's on-chain checksum (crate::measurement::app_rtmr3)
//! ```
//!
//! Every register is required (fail closed): a value is 96 hex characters (48 bytes, `0x` and
//! uppercase accepted) or `"any"`, which leaves that register unchecked; a table of nothing but
//! `any` is refused. The exception is `mr-config-id`, a value the host chooses at TD creation
//! that the launcher does not read: absent means unchecked. The `tdx` and `app` tables are
//! required for TDX and refused for SCONE and Gramine.
//!
//! Validation reports every problem at once, each naming its field, e.g.
//! `pipelines[1].pre-compute.fingerprint: expected 64 hex characters` or
//! `pipelines[0].pre-compute.tdx.rtmr2: expected 96 hex characters or "any" (missing)` (indexes
//! are 0-based). Rules: at least one pipeline, distinct non-empty versions, non-empty image
//! without whitespace, non-empty entrypoint, fingerprint of 32 bytes (SGX) or 32/48 bytes (TDX),
//! the TDX tables above. TDX requires **exactly one** pipeline. The first pipeline is the
//! default one (deprecated `/tee/properties/{framework}` endpoint).
//!
//! [`TeeProperties`] is the JSON of `GET /tee/properties/{framework}/{version}`, polymorphic on
//! `teeFramework`; SCONE adds `lasImage`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::enclave_config::Measurement;
use crate::measurement::{ANY, Register, TdxAppBase, TdxMeasurement, TdxRegister};
use crate::tag::TeeFramework;

/// One enclave of a pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageConfig {
    pub image: String,
    pub fingerprint: Measurement,
    pub entrypoint: String,
    pub heap_size_bytes: u64,
    /// TDX: the registers the stage's TD must prove (`tdx` table). `None` for SGX frameworks,
    /// and for a TDX pipeline without a file (`--dev`), whose stages no TDX quote can match.
    pub tdx: Option<TdxMeasurement>,
}

/// One framework version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pipeline {
    pub version: String,
    pub pre_compute: StageConfig,
    pub post_compute: StageConfig,
    /// TDX: the registers of the app TD image (`[pipelines.app.tdx]`); RTMR3 is each app's.
    pub app_tdx: Option<TdxAppBase>,
}

/// A validated, non-empty pipeline list for one framework.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pipelines {
    framework: TeeFramework,
    items: Vec<Pipeline>,
}

/// One configuration problem: `path: expected …`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub expected: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: expected {}", self.path, self.expected)
    }
}

/// Every problem found in a pipelines file.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PipelineConfigError {
    #[error("pipelines file is not valid {format}: {message}")]
    Syntax {
        format: &'static str,
        message: String,
    },
    #[error("invalid pipelines configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Fields(Vec<FieldError>),
}

impl PipelineConfigError {
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::Fields(errors) => errors,
            Self::Syntax { .. } => &[],
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DataSizeError {
    #[error("a size such as 512MB or 3GB (units B, KB, MB, GB, TB; 1024-based), got '{0}'")]
    Format(String),
    #[error("a size greater than 0")]
    Zero,
    #[error("a size below 2^64 bytes, got '{0}'")]
    Overflow(String),
}

/// Parses `3GB`, `512 mb`, `1024B` or `1024` into bytes (1024-based units).
pub fn parse_data_size(text: &str) -> Result<u64, DataSizeError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(DataSizeError::Format(text.to_owned()));
    }
    let shift = match unit.trim_start().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "KB" => 10,
        "MB" => 20,
        "GB" => 30,
        "TB" => 40,
        _ => return Err(DataSizeError::Format(text.to_owned())),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| DataSizeError::Overflow(text.to_owned()))?;
    let bytes = n
        .checked_mul(1u64 << shift)
        .ok_or_else(|| DataSizeError::Overflow(text.to_owned()))?;
    if bytes == 0 {
        return Err(DataSizeError::Zero);
    }
    Ok(bytes)
}

struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn fail(&mut self, path: impl Into<String>, expected: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            expected: expected.into(),
        });
    }

    fn object<'a>(
        &mut self,
        value: Option<&'a Value>,
        path: &str,
        keys: &[&str],
    ) -> Option<&'a Map<String, Value>> {
        self.object_refusing(value, path, keys, &[])
    }

    /// [`object`](Self::object), with a specific explanation for some unknown keys.
    fn object_refusing<'a>(
        &mut self,
        value: Option<&'a Value>,
        path: &str,
        keys: &[&str],
        refused: &[(&str, &str)],
    ) -> Option<&'a Map<String, Value>> {
        match value {
            None => {
                self.fail(path, "a table (missing)");
                None
            }
            Some(Value::Object(map)) => {
                for k in map.keys().filter(|k| !keys.contains(&k.as_str())) {
                    let shown: String = k.chars().take(64).collect();
                    let why = refused
                        .iter()
                        .find(|(key, _)| key == k)
                        .map(|(_, why)| (*why).to_owned())
                        .unwrap_or_else(|| {
                            format!("no such key (known keys: {})", keys.join(", "))
                        });
                    self.fail(format!("{path}.{shown}"), why);
                }
                Some(map)
            }
            Some(_) => {
                self.fail(path, "a table");
                None
            }
        }
    }

    fn string(&mut self, map: &Map<String, Value>, path: &str, key: &str) -> Option<String> {
        match map.get(key) {
            None => {
                self.fail(format!("{path}.{key}"), "a value (missing)");
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                self.fail(format!("{path}.{key}"), "a non-empty string");
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.fail(format!("{path}.{key}"), "a string");
                None
            }
        }
    }

    fn stage(
        &mut self,
        value: Option<&Value>,
        path: &str,
        framework: TeeFramework,
    ) -> Option<StageConfig> {
        let tdx_framework = framework == TeeFramework::Tdx;
        let keys: &[&str] = if tdx_framework {
            &["image", "fingerprint", "entrypoint", "heap-size", "tdx"]
        } else {
            &["image", "fingerprint", "entrypoint", "heap-size"]
        };
        let map = self.object(value, path, keys)?;
        let image = self.string(map, path, "image");
        if let Some(i) = &image
            && i.chars().any(char::is_whitespace)
        {
            self.fail(
                format!("{path}.image"),
                "an image reference without whitespace",
            );
        }
        let fingerprint = self.string(map, path, "fingerprint").and_then(|f| {
            let (lens, expected): (&[usize], &str) = if framework == TeeFramework::Tdx {
                (&[32, 48], "64 or 96 hex characters")
            } else {
                (&[32], "64 hex characters")
            };
            let m = Measurement::parse(&f, lens);
            if m.is_none() {
                self.fail(format!("{path}.fingerprint"), expected);
            }
            m
        });
        let entrypoint = self.string(map, path, "entrypoint");
        let heap_path = format!("{path}.heap-size");
        let heap = match map.get("heap-size") {
            None => {
                self.fail(&heap_path, "a value (missing)");
                None
            }
            Some(Value::Number(n)) => match n.as_u64() {
                Some(0) => {
                    self.fail(&heap_path, DataSizeError::Zero.to_string());
                    None
                }
                Some(b) => Some(b),
                None => {
                    self.fail(
                        &heap_path,
                        "a positive integer of bytes or a size such as 3GB",
                    );
                    None
                }
            },
            Some(Value::String(s)) => match parse_data_size(s) {
                Ok(b) => Some(b),
                Err(e) => {
                    self.fail(&heap_path, e.to_string());
                    None
                }
            },
            Some(_) => {
                self.fail(
                    &heap_path,
                    "a positive integer of bytes or a size such as 3GB",
                );
                None
            }
        };
        let tdx = if tdx_framework {
            Some(self.tdx_table(map.get("tdx"), &format!("{path}.tdx"), false)?)
        } else {
            None
        };
        Some(StageConfig {
            image: image.filter(|i| !i.chars().any(char::is_whitespace))?,
            fingerprint: fingerprint?,
            entrypoint: entrypoint?,
            heap_size_bytes: heap?,
            tdx,
        })
    }

    /// One register: 96 hex characters or `any`; `optional` registers default to `any`.
    fn register(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        key: &str,
        optional: bool,
    ) -> Option<Register> {
        let expected = format!("96 hex characters or \"{ANY}\"");
        let field = format!("{path}.{key}");
        match map.get(key) {
            None if optional => Some(Register::Any),
            None => {
                self.fail(field, format!("{expected} (missing)"));
                None
            }
            Some(Value::String(text)) => {
                let register = Register::parse(text);
                if register.is_none() {
                    self.fail(field, expected);
                }
                register
            }
            Some(_) => {
                self.fail(field, format!("{expected} as a string"));
                None
            }
        }
    }

    /// A `tdx` table. For the app (`app`), RTMR3 is not configurable: it is derived from the
    /// app's checksum, and the returned RTMR3 is a placeholder.
    fn tdx_table(
        &mut self,
        value: Option<&Value>,
        path: &str,
        app: bool,
    ) -> Option<TdxMeasurement> {
        let registers: Vec<TdxRegister> = TdxRegister::ALL
            .into_iter()
            .filter(|r| !(app && *r == TdxRegister::Rtmr3))
            .collect();
        let keys: Vec<&str> = registers.iter().map(|r| r.config_key()).collect();
        let refused: &[(&str, &str)] = if app {
            &[(
                "rtmr3",
                "no such key: RTMR3 of the app TD is derived from the app's on-chain checksum (see docs/tee-sessions.md)",
            )]
        } else {
            &[]
        };
        let map = self.object_refusing(value, path, &keys, refused)?;
        let mut complete = true;
        let measurement = TdxMeasurement::from_fn(|r| {
            if !registers.contains(&r) {
                return Register::Any;
            }
            let optional = r == TdxRegister::MrConfigId;
            self.register(map, path, r.config_key(), optional)
                .unwrap_or_else(|| {
                    complete = false;
                    Register::Any
                })
        });
        if !complete {
            return None;
        }
        if registers
            .iter()
            .all(|r| *measurement.get(*r) == Register::Any)
        {
            self.fail(
                path,
                format!("at least one register other than \"{ANY}\" (this table accepts any TD)"),
            );
            return None;
        }
        Some(measurement)
    }

    /// `[pipelines.app]`: only its `tdx` table.
    fn app(&mut self, value: Option<&Value>, path: &str) -> Option<TdxAppBase> {
        let map = self.object(value, path, &["tdx"])?;
        let m = self.tdx_table(map.get("tdx"), &format!("{path}.tdx"), true)?;
        Some(TdxAppBase {
            mrtd: m.mrtd,
            rtmr0: m.rtmr0,
            rtmr1: m.rtmr1,
            rtmr2: m.rtmr2,
            mr_config_id: m.mr_config_id,
        })
    }
}

impl Pipelines {
    /// Parses a TOML pipelines file.
    pub fn from_toml_str(text: &str, framework: TeeFramework) -> Result<Self, PipelineConfigError> {
        let value: Value = toml::from_str(text).map_err(|e| PipelineConfigError::Syntax {
            format: "TOML",
            message: e.message().to_owned(),
        })?;
        Self::from_value(&value, framework)
    }

    /// Parses a JSON pipelines file.
    pub fn from_json_str(text: &str, framework: TeeFramework) -> Result<Self, PipelineConfigError> {
        let value: Value = serde_json::from_str(text).map_err(|e| PipelineConfigError::Syntax {
            format: "JSON",
            message: e.to_string(),
        })?;
        Self::from_value(&value, framework)
    }

    /// Picks the format from the file name: JSON for `*.json`, TOML otherwise.
    pub fn from_file_contents(
        file_name: &str,
        text: &str,
        framework: TeeFramework,
    ) -> Result<Self, PipelineConfigError> {
        if file_name.to_ascii_lowercase().ends_with(".json") {
            Self::from_json_str(text, framework)
        } else {
            Self::from_toml_str(text, framework)
        }
    }

    fn from_value(value: &Value, framework: TeeFramework) -> Result<Self, PipelineConfigError> {
        let mut c = Checker { errors: Vec::new() };
        let mut items = Vec::new();
        let root = c.object(Some(value), "(file)", &["pipelines"]);
        match root.and_then(|r| r.get("pipelines")) {
            None if root.is_some() => c.fail("pipelines", "a list of pipelines (missing)"),
            None => {}
            Some(Value::Array(list)) => {
                if list.is_empty() {
                    c.fail("pipelines", "at least one pipeline");
                }
                if framework == TeeFramework::Tdx && list.len() > 1 {
                    c.fail(
                        "pipelines",
                        format!("exactly one pipeline for TDX, got {}", list.len()),
                    );
                }
                for (i, item) in list.iter().enumerate() {
                    let path = format!("pipelines[{i}]");
                    let keys: &[&str] = if framework == TeeFramework::Tdx {
                        &["version", "pre-compute", "post-compute", "app"]
                    } else {
                        &["version", "pre-compute", "post-compute"]
                    };
                    let Some(map) = c.object(Some(item), &path, keys) else {
                        continue;
                    };
                    let version = c.string(map, &path, "version");
                    if let Some(v) = &version
                        && let Some(j) = items.iter().position(|p: &Pipeline| &p.version == v)
                    {
                        c.fail(
                            format!("{path}.version"),
                            format!("a version not already used by pipelines[{j}] (\"{v}\")"),
                        );
                    }
                    let pre = c.stage(
                        map.get("pre-compute"),
                        &format!("{path}.pre-compute"),
                        framework,
                    );
                    let post = c.stage(
                        map.get("post-compute"),
                        &format!("{path}.post-compute"),
                        framework,
                    );
                    let app_tdx = if framework == TeeFramework::Tdx {
                        c.app(map.get("app"), &format!("{path}.app"))
                    } else {
                        None
                    };
                    if let (Some(version), Some(pre_compute), Some(post_compute)) =
                        (version, pre, post)
                    {
                        items.push(Pipeline {
                            version,
                            pre_compute,
                            post_compute,
                            app_tdx,
                        });
                    }
                }
            }
            Some(_) => c.fail("pipelines", "a list of pipelines"),
        }
        if c.errors.is_empty() && !items.is_empty() {
            Ok(Self { framework, items })
        } else {
            Err(PipelineConfigError::Fields(c.errors))
        }
    }

    pub fn framework(&self) -> TeeFramework {
        self.framework
    }

    /// A list of exactly one already-built pipeline (e.g. a built-in default resolved for the
    /// version an app asks for). Its version must not be blank.
    pub fn single(
        framework: TeeFramework,
        pipeline: Pipeline,
    ) -> Result<Self, PipelineConfigError> {
        if pipeline.version.trim().is_empty() {
            return Err(PipelineConfigError::Fields(vec![FieldError {
                path: "pipelines[0].version".into(),
                expected: "a non-empty string".into(),
            }]));
        }
        Ok(Self {
            framework,
            items: vec![pipeline],
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Pipeline> {
        self.items.iter()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The pipeline of a framework version.
    pub fn find(&self, version: &str) -> Option<&Pipeline> {
        self.items.iter().find(|p| p.version == version)
    }

    /// The first pipeline: the TDX pipeline, and the answer of the deprecated
    /// `/tee/properties/{framework}` endpoint.
    pub fn default_pipeline(&self) -> &Pipeline {
        // Construction guarantees at least one item.
        &self.items[0]
    }
}

/// `preComputeProperties` / `postComputeProperties`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageProperties {
    pub image: String,
    pub fingerprint: String,
    pub entrypoint: String,
    pub heap_size_in_bytes: u64,
}

impl From<&StageConfig> for StageProperties {
    fn from(s: &StageConfig) -> Self {
        Self {
            image: s.image.clone(),
            fingerprint: s.fingerprint.as_hex().to_owned(),
            entrypoint: s.entrypoint.clone(),
            heap_size_in_bytes: s.heap_size_bytes,
        }
    }
}

/// The body of `GET /tee/properties/{framework}/{version}` (also read by workers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeeProperties {
    pub tee_framework: TeeFramework,
    pub tee_framework_version: String,
    pub pre_compute_properties: StageProperties,
    pub post_compute_properties: StageProperties,
    /// SCONE only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub las_image: Option<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("SCONE properties need the LAS image (expected a non-empty image reference)")]
pub struct MissingLasImage;

impl TeeProperties {
    /// Properties of one pipeline. `las_image` is required for SCONE and ignored otherwise.
    pub fn new(
        framework: TeeFramework,
        pipeline: &Pipeline,
        las_image: Option<&str>,
    ) -> Result<Self, MissingLasImage> {
        let las_image = match framework {
            TeeFramework::Scone => Some(
                las_image
                    .filter(|l| !l.trim().is_empty())
                    .ok_or(MissingLasImage)?
                    .to_owned(),
            ),
            TeeFramework::Gramine | TeeFramework::Tdx => None,
        };
        Ok(Self {
            tee_framework: framework,
            tee_framework_version: pipeline.version.clone(),
            pre_compute_properties: (&pipeline.pre_compute).into(),
            post_compute_properties: (&pipeline.post_compute).into(),
            las_image,
        })
    }

    pub fn to_json(&self) -> String {
        // Strings, integers and a unit enum always serialise.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP_PRE: &str = "aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11";
    const FP_POST: &str = "bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22";

    fn toml_pipeline(version: &str, heap: &str) -> String {
        format!(
            r#"
[[pipelines]]
version = "{version}"

[pipelines.pre-compute]
image = "reg/pre:{version}"
fingerprint = "{FP_PRE}"
entrypoint = "/pre"
heap-size = {heap}

[pipelines.post-compute]
image = "reg/post:{version}"
fingerprint = "0x{post}"
entrypoint = "/post"
heap-size = "512 mb"
"#,
            post = FP_POST.to_uppercase()
        )
    }

    fn stage(kind: &str, version: &str, fp: &str, heap: u64) -> StageConfig {
        StageConfig {
            image: format!("reg/{kind}:{version}"),
            fingerprint: Measurement::parse(fp, &[32]).unwrap(),
            entrypoint: format!("/{kind}"),
            heap_size_bytes: heap,
            tdx: None,
        }
    }

    #[test]
    fn single_pipeline() {
        let p = Pipeline {
            version: "any".into(),
            pre_compute: stage("pre", "any", FP_PRE, 1),
            post_compute: stage("post", "any", FP_POST, 1),
            app_tdx: None,
        };
        let list = Pipelines::single(TeeFramework::Scone, p.clone()).unwrap();
        assert_eq!(list.find("any"), Some(&p));
        assert_eq!(list.default_pipeline(), &p);
        let blank = Pipeline {
            version: " ".into(),
            ..p
        };
        let e = Pipelines::single(TeeFramework::Tdx, blank).unwrap_err();
        assert_eq!(e.field_errors()[0].path, "pipelines[0].version");
    }

    #[test]
    fn data_sizes() {
        assert_eq!(parse_data_size("1024"), Ok(1024));
        assert_eq!(parse_data_size("1B"), Ok(1));
        assert_eq!(parse_data_size("1KB"), Ok(1024));
        assert_eq!(parse_data_size("512 MB"), Ok(512 << 20));
        assert_eq!(parse_data_size("3gb"), Ok(3 << 30));
        assert_eq!(parse_data_size("2TB"), Ok(2 << 40));
        assert_eq!(parse_data_size("0GB"), Err(DataSizeError::Zero));
        for bad in ["", "GB", "1.5GB", "-1GB", "1 G", "1PB", "1 2GB"] {
            assert!(
                matches!(parse_data_size(bad), Err(DataSizeError::Format(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_data_size("99999999999TB"),
            Err(DataSizeError::Overflow(_))
        ));
        assert!(matches!(
            parse_data_size("99999999999999999999999"),
            Err(DataSizeError::Overflow(_))
        ));
    }

    #[test]
    fn parses_toml_and_json() {
        let text = format!(
            "{}{}",
            toml_pipeline("v5", "\"3GB\""),
            toml_pipeline("v6", "1073741824")
        );
        let p = Pipelines::from_toml_str(&text, TeeFramework::Scone).unwrap();
        let expected = vec![
            Pipeline {
                version: "v5".into(),
                pre_compute: stage("pre", "v5", FP_PRE, 3 << 30),
                post_compute: stage("post", "v5", FP_POST, 512 << 20),
                app_tdx: None,
            },
            Pipeline {
                version: "v6".into(),
                pre_compute: stage("pre", "v6", FP_PRE, 1 << 30),
                post_compute: stage("post", "v6", FP_POST, 512 << 20),
                app_tdx: None,
            },
        ];
        assert_eq!(p.iter().cloned().collect::<Vec<_>>(), expected);
        assert_eq!(p.find("v6"), Some(&expected[1]));
        assert_eq!(p.find("v7"), None);
        assert_eq!(p.default_pipeline(), &expected[0]);
        assert_eq!(p.framework(), TeeFramework::Scone);

        let json = format!(
            r#"{{"pipelines":[{{"version":"v5","pre-compute":{{"image":"reg/pre:v5","fingerprint":"{FP_PRE}","entrypoint":"/pre","heap-size":"3GB"}},"post-compute":{{"image":"reg/post:v5","fingerprint":"{FP_POST}","entrypoint":"/post","heap-size":536870912}}}}]}}"#
        );
        let j =
            Pipelines::from_file_contents("pipelines.JSON", &json, TeeFramework::Gramine).unwrap();
        assert_eq!(
            j.iter().cloned().collect::<Vec<_>>(),
            expected[..1].to_vec()
        );
        assert!(
            Pipelines::from_file_contents("pipelines.toml", &json, TeeFramework::Gramine).is_err()
        );
    }

    fn errors(text: &str, framework: TeeFramework) -> Vec<String> {
        Pipelines::from_toml_str(text, framework)
            .unwrap_err()
            .field_errors()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn errors_name_each_field() {
        let bad = toml_pipeline("v5", "\"3GB\"")
            + &toml_pipeline("v5", "\"lots\"")
                .replace(FP_PRE, "abc")
                .replace("/post\"", "\"\nextra = 1");
        assert_eq!(
            errors(&bad, TeeFramework::Scone),
            vec![
                "pipelines[1].version: expected a version not already used by pipelines[0] (\"v5\")",
                "pipelines[1].pre-compute.fingerprint: expected 64 hex characters",
                "pipelines[1].pre-compute.heap-size: expected a size such as 512MB or 3GB (units B, KB, MB, GB, TB; 1024-based), got 'lots'",
                "pipelines[1].post-compute.extra: expected no such key (known keys: image, fingerprint, entrypoint, heap-size)",
                "pipelines[1].post-compute.entrypoint: expected a non-empty string",
            ]
        );
    }

    #[test]
    fn structural_errors() {
        assert_eq!(
            errors("", TeeFramework::Scone),
            vec!["pipelines: expected a list of pipelines (missing)"]
        );
        assert_eq!(
            errors("pipelines = []", TeeFramework::Scone),
            vec!["pipelines: expected at least one pipeline"]
        );
        assert_eq!(
            errors("pipelines = 3", TeeFramework::Scone),
            vec!["pipelines: expected a list of pipelines"]
        );
        assert_eq!(
            errors("typo = 1\npipelines = []", TeeFramework::Scone),
            vec![
                "(file).typo: expected no such key (known keys: pipelines)",
                "pipelines: expected at least one pipeline"
            ]
        );
        let missing = "[[pipelines]]\nversion = \"v1\"\n[pipelines.pre-compute]\nimage = \"a b\"\nfingerprint = 1\nheap-size = 0\n";
        assert_eq!(
            errors(missing, TeeFramework::Gramine),
            vec![
                "pipelines[0].pre-compute.image: expected an image reference without whitespace",
                "pipelines[0].pre-compute.fingerprint: expected a string",
                "pipelines[0].pre-compute.entrypoint: expected a value (missing)",
                "pipelines[0].pre-compute.heap-size: expected a size greater than 0",
                "pipelines[0].post-compute: expected a table (missing)",
            ]
        );
        assert!(matches!(
            Pipelines::from_toml_str("[[pipelines]", TeeFramework::Scone),
            Err(PipelineConfigError::Syntax { format: "TOML", .. })
        ));
        assert!(matches!(
            Pipelines::from_json_str("{", TeeFramework::Scone),
            Err(PipelineConfigError::Syntax { format: "JSON", .. })
        ));
    }

    fn reg(byte: &str) -> String {
        byte.repeat(48)
    }

    /// The `tdx` tables of a TDX pipeline: pre-compute registers `11..`, post `21..`, the app
    /// image `31..`; RTMR3 of the stages is `any`.
    fn tdx_tables() -> String {
        let stage = |name: &str, d: u8| {
            format!(
                "[pipelines.{name}.tdx]\nmrtd = \"{}\"\nrtmr0 = \"{}\"\nrtmr1 = \"{}\"\nrtmr2 = \"{}\"\nrtmr3 = \"any\"\n",
                reg(&format!("{d}1")),
                reg(&format!("{d}2")),
                reg(&format!("{d}3")),
                reg(&format!("{d}4")),
            )
        };
        format!(
            "{}{}[pipelines.app.tdx]\nmrtd = \"{}\"\nrtmr0 = \"{}\"\nrtmr1 = \"{}\"\nrtmr2 = \"{}\"\nmr-config-id = \"{}\"\n",
            stage("pre-compute", 1),
            stage("post-compute", 2),
            reg("31"),
            reg("32"),
            reg("33"),
            reg("34"),
            reg("35"),
        )
    }

    fn tdx_pipeline(version: &str) -> String {
        toml_pipeline(version, "1") + &tdx_tables()
    }

    fn exact(byte: &str) -> Register {
        Register::parse(&reg(byte)).unwrap()
    }

    #[test]
    fn tdx_needs_exactly_one_pipeline_and_accepts_48_byte_fingerprints() {
        let two = tdx_pipeline("v1") + &tdx_pipeline("v2");
        assert_eq!(
            errors(&two, TeeFramework::Tdx),
            vec!["pipelines: expected exactly one pipeline for TDX, got 2"]
        );
        let tdx = tdx_pipeline("v1").replace(FP_PRE, &"cd".repeat(48));
        let p = Pipelines::from_toml_str(&tdx, TeeFramework::Tdx).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            p.default_pipeline().pre_compute.fingerprint.as_hex(),
            "cd".repeat(48)
        );
        // 48-byte fingerprints are TDX only.
        let sgx = toml_pipeline("v1", "1").replace(FP_PRE, &"cd".repeat(48));
        assert_eq!(
            errors(&sgx, TeeFramework::Scone),
            vec!["pipelines[0].pre-compute.fingerprint: expected 64 hex characters"]
        );
        assert_eq!(
            errors(&tdx_pipeline("v1").replace(FP_PRE, "ab"), TeeFramework::Tdx),
            vec!["pipelines[0].pre-compute.fingerprint: expected 64 or 96 hex characters"]
        );
    }

    #[test]
    fn tdx_registers_are_parsed_per_stage_and_for_the_app_image() {
        let p = Pipelines::from_toml_str(&tdx_pipeline("v1"), TeeFramework::Tdx).unwrap();
        let pipeline = p.default_pipeline();
        assert_eq!(
            pipeline.pre_compute.tdx,
            Some(TdxMeasurement {
                mrtd: exact("11"),
                rtmr0: exact("12"),
                rtmr1: exact("13"),
                rtmr2: exact("14"),
                rtmr3: Register::Any,
                // Absent: unchecked.
                mr_config_id: Register::Any,
            })
        );
        assert_eq!(
            pipeline.post_compute.tdx.as_ref().map(|m| m.mrtd),
            Some(exact("21"))
        );
        assert_eq!(
            pipeline.app_tdx,
            Some(TdxAppBase {
                mrtd: exact("31"),
                rtmr0: exact("32"),
                rtmr1: exact("33"),
                rtmr2: exact("34"),
                mr_config_id: exact("35"),
            })
        );
        // JSON, with 0x prefixes and uppercase.
        let json = format!(
            r#"{{"pipelines":[{{"version":"v1",
              "pre-compute":{{"image":"i","fingerprint":"{FP_PRE}","entrypoint":"/pre","heap-size":1,
                "tdx":{{"mrtd":"0x{m}","rtmr0":"any","rtmr1":"any","rtmr2":"any","rtmr3":"any"}}}},
              "post-compute":{{"image":"i","fingerprint":"{FP_POST}","entrypoint":"/post","heap-size":1,
                "tdx":{{"mrtd":"{m}","rtmr0":"{m}","rtmr1":"{m}","rtmr2":"{m}","rtmr3":"{m}","mr-config-id":"{m}"}}}},
              "app":{{"tdx":{{"mrtd":"{m}","rtmr0":"{m}","rtmr1":"{m}","rtmr2":"{m}"}}}}}}]}}"#,
            m = reg("AB")
        );
        let j = Pipelines::from_json_str(&json, TeeFramework::Tdx).unwrap();
        let pre = j.default_pipeline().pre_compute.tdx.clone().unwrap();
        assert_eq!(
            (pre.mrtd, pre.rtmr0),
            (Register::Exact([0xab; 48]), Register::Any)
        );
        let post = j.default_pipeline().post_compute.tdx.clone().unwrap();
        assert!(post.iter().all(|(_, r)| *r == Register::Exact([0xab; 48])));
    }

    #[test]
    fn tdx_register_errors_name_the_field() {
        let base = tdx_pipeline("v1");
        let rtmr2_pre = format!("rtmr2 = \"{}\"\n", reg("14"));
        assert!(base.contains(&rtmr2_pre));
        // Missing: fail closed.
        assert_eq!(
            errors(&base.replace(&rtmr2_pre, ""), TeeFramework::Tdx),
            vec![
                "pipelines[0].pre-compute.tdx.rtmr2: expected 96 hex characters or \"any\" (missing)"
            ]
        );
        // Too short, not hex, not a string, a typo in `any`, an unknown key.
        let bad = base
            .replace(&rtmr2_pre, "rtmr2 = \"abcd\"\n")
            .replace(
                &format!("rtmr0 = \"{}\"\n", reg("22")),
                &format!("rtmr0 = \"{}\"\n", reg("zz")),
            )
            .replace(&format!("rtmr1 = \"{}\"\n", reg("23")), "rtmr1 = 7\n")
            .replace(
                &format!("mrtd = \"{}\"\n", reg("31")),
                "mrtd = \"anything\"\nrtmr4 = \"any\"\n",
            );
        assert_eq!(
            errors(&bad, TeeFramework::Tdx),
            vec![
                "pipelines[0].pre-compute.tdx.rtmr2: expected 96 hex characters or \"any\"",
                "pipelines[0].post-compute.tdx.rtmr0: expected 96 hex characters or \"any\"",
                "pipelines[0].post-compute.tdx.rtmr1: expected 96 hex characters or \"any\" as a string",
                "pipelines[0].app.tdx.rtmr4: expected no such key (known keys: mrtd, rtmr0, rtmr1, rtmr2, mr-config-id)",
                "pipelines[0].app.tdx.mrtd: expected 96 hex characters or \"any\"",
            ]
        );
        // RTMR3 of the app is derived, never configured.
        assert_eq!(
            errors(&(base.clone() + "rtmr3 = \"any\"\n"), TeeFramework::Tdx),
            vec![
                "pipelines[0].app.tdx.rtmr3: expected no such key: RTMR3 of the app TD is derived from the app's on-chain checksum (see docs/tee-sessions.md)"
            ]
        );
        // A table of nothing but `any` accepts any TD: refused.
        let all_any = base
            .replace(&format!("mrtd = \"{}\"\n", reg("11")), "mrtd = \"any\"\n")
            .replace(&format!("rtmr0 = \"{}\"\n", reg("12")), "rtmr0 = \"any\"\n")
            .replace(&format!("rtmr1 = \"{}\"\n", reg("13")), "rtmr1 = \"ANY\"\n")
            .replace(&rtmr2_pre, "rtmr2 = \"any\"\n");
        assert_eq!(
            errors(&all_any, TeeFramework::Tdx),
            vec![
                "pipelines[0].pre-compute.tdx: expected at least one register other than \"any\" (this table accepts any TD)"
            ]
        );
    }

    #[test]
    fn documented_examples_parse() {
        let sgx = include_str!("../../../docs/examples/pipelines.toml");
        assert_eq!(
            Pipelines::from_toml_str(sgx, TeeFramework::Scone)
                .unwrap()
                .len(),
            2
        );
        let tdx = include_str!("../../../docs/examples/pipelines-tdx.toml");
        let p = Pipelines::from_toml_str(tdx, TeeFramework::Tdx).unwrap();
        let pipeline = p.default_pipeline();
        assert_eq!(
            pipeline.post_compute.tdx.as_ref().map(|m| m.rtmr3),
            Some(Register::Any)
        );
        assert_eq!(
            pipeline.app_tdx.as_ref().map(|a| a.mr_config_id),
            Some(Register::Any)
        );
    }

    #[test]
    fn tdx_tables_are_required_for_tdx_and_refused_elsewhere() {
        // A TDX pipeline without its tables.
        assert_eq!(
            errors(&toml_pipeline("v1", "1"), TeeFramework::Tdx),
            vec![
                "pipelines[0].pre-compute.tdx: expected a table (missing)",
                "pipelines[0].post-compute.tdx: expected a table (missing)",
                "pipelines[0].app: expected a table (missing)",
            ]
        );
        assert_eq!(
            errors(
                &(toml_pipeline("v1", "1") + "[pipelines.app]\n"),
                TeeFramework::Tdx
            )[2],
            "pipelines[0].app.tdx: expected a table (missing)"
        );
        // The same tables on an SGX framework are typos, not silently ignored settings.
        assert_eq!(
            errors(&tdx_pipeline("v1"), TeeFramework::Gramine),
            vec![
                "pipelines[0].app: expected no such key (known keys: version, pre-compute, post-compute)",
                "pipelines[0].pre-compute.tdx: expected no such key (known keys: image, fingerprint, entrypoint, heap-size)",
                "pipelines[0].post-compute.tdx: expected no such key (known keys: image, fingerprint, entrypoint, heap-size)",
            ]
        );
    }

    #[test]
    fn properties_json() {
        let p =
            Pipelines::from_toml_str(&toml_pipeline("v5", "\"1GB\""), TeeFramework::Scone).unwrap();
        let scone =
            TeeProperties::new(TeeFramework::Scone, p.default_pipeline(), Some("reg/las:1"))
                .unwrap();
        let expected = format!(
            r#"{{"teeFramework":"SCONE","teeFrameworkVersion":"v5","preComputeProperties":{{"image":"reg/pre:v5","fingerprint":"{FP_PRE}","entrypoint":"/pre","heapSizeInBytes":1073741824}},"postComputeProperties":{{"image":"reg/post:v5","fingerprint":"{FP_POST}","entrypoint":"/post","heapSizeInBytes":536870912}},"lasImage":"reg/las:1"}}"#
        );
        assert_eq!(scone.to_json(), expected);
        assert_eq!(
            serde_json::from_str::<TeeProperties>(&expected).unwrap(),
            scone
        );
        assert_eq!(
            TeeProperties::new(TeeFramework::Scone, p.default_pipeline(), None),
            Err(MissingLasImage)
        );
        assert_eq!(
            TeeProperties::new(TeeFramework::Scone, p.default_pipeline(), Some(" ")),
            Err(MissingLasImage)
        );
        let gramine =
            TeeProperties::new(TeeFramework::Gramine, p.default_pipeline(), Some("ignored"))
                .unwrap();
        let gramine_json = gramine.to_json();
        assert!(
            gramine_json.starts_with(r#"{"teeFramework":"GRAMINE","teeFrameworkVersion":"v5","#)
        );
        assert!(!gramine_json.contains("lasImage"));
        let tdx = TeeProperties::new(TeeFramework::Tdx, p.default_pipeline(), None).unwrap();
        assert!(tdx.to_json().starts_with(r#"{"teeFramework":"TDX","#));
    }
}
