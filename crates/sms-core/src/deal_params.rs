//! The deal `params` string (reference: client §5).
//!
//! Two sides live here:
//!
//! * [`parse`]: how the SMS (and the Java worker) read `deal.params`. The known keys are
//!   `iexec_args`, `iexec_input_files`, `iexec_result_encryption`,
//!   `iexec_result_storage_provider`, `iexec_result_storage_proxy`, `iexec_secrets` and
//!   `bulk_cid`. Invalid JSON, a JSON value that is not an object, any unknown key or a value of
//!   the wrong type makes the *whole string* the `iexec_args`, with no input files and no secrets
//!   — the upstream semantics, kept so that the SMS and the worker agree on what a task needs.
//!   Unlike upstream, the result says what happened ([`ParseOutcome`], [`ParsedDealParams::warning`])
//!   so the server can log e.g. "unknown key wrong_field1: iexec_secrets ignored".
//!   Scalars are coerced the way the Java JSON reader does by default: numbers and booleans are
//!   accepted where a string is expected, and `"true"`/`"false"` where a boolean is.
//! * [`ParamsBuilder`]: the SDK side of `--params`, `--args`, `--input-files`, `--secret k=name`,
//!   `--storage-provider`, `--storage-proxy` and `--encrypt-result`, producing a params JSON string
//!   that holds only known keys.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use thiserror::Error;

use crate::secret::RequesterSecretName;

pub const IEXEC_ARGS: &str = "iexec_args";
pub const IEXEC_INPUT_FILES: &str = "iexec_input_files";
pub const IEXEC_RESULT_ENCRYPTION: &str = "iexec_result_encryption";
pub const IEXEC_RESULT_STORAGE_PROVIDER: &str = "iexec_result_storage_provider";
pub const IEXEC_RESULT_STORAGE_PROXY: &str = "iexec_result_storage_proxy";
pub const IEXEC_SECRETS: &str = "iexec_secrets";
pub const BULK_CID: &str = "bulk_cid";

/// Every key the parser knows, in the order the builder writes them.
pub const KNOWN_KEYS: [&str; 7] = [
    IEXEC_ARGS,
    IEXEC_INPUT_FILES,
    IEXEC_SECRETS,
    IEXEC_RESULT_STORAGE_PROVIDER,
    IEXEC_RESULT_STORAGE_PROXY,
    IEXEC_RESULT_ENCRYPTION,
    BULK_CID,
];

pub const STORAGE_IPFS: &str = "ipfs";
pub const STORAGE_DROPBOX: &str = "dropbox";

/// The deal parameters as the SMS uses them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DealParams {
    pub iexec_args: Option<String>,
    pub iexec_input_files: Vec<String>,
    pub iexec_result_encryption: bool,
    pub iexec_result_storage_provider: Option<String>,
    pub iexec_result_storage_proxy: Option<String>,
    /// Position (as written) → requester secret name.
    pub iexec_secrets: BTreeMap<String, String>,
    /// Empty when absent.
    pub bulk_cid: String,
}

impl DealParams {
    /// The upstream fallback: the whole string is the args, nothing else is set.
    fn fallback(raw: &str) -> Self {
        Self {
            iexec_args: Some(raw.to_owned()),
            ..Self::default()
        }
    }

    pub fn has_input_files(&self) -> bool {
        !self.iexec_input_files.is_empty()
    }

    pub fn has_bulk(&self) -> bool {
        !self.bulk_cid.is_empty()
    }
}

/// The app's argv: the entrypoint's words, then the words of `iexec_args`. Words are split on
/// whitespace with no quoting, escaping or expansion, as SCONE splits a session's `command`:
/// `--args "a 'b c'"` gives the three arguments `a`, `'b`, `c'`, and `; env` gives `;`, `env`.
/// Nothing here is ever given to a shell, so the requester's args cannot run commands.
pub fn app_argv(entrypoint: &str, iexec_args: Option<&str>) -> Vec<String> {
    entrypoint
        .split_whitespace()
        .chain(iexec_args.unwrap_or("").split_whitespace())
        .map(str::to_owned)
        .collect()
}

/// Why the parser fell back to "the whole string is `iexec_args`".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FallbackReason {
    /// Not valid JSON.
    NotJson,
    /// Valid JSON but not an object (a string, number, array or `null`).
    NotAnObject,
    /// Keys the parser does not know, in document order.
    UnknownKeys(Vec<String>),
    /// A known key whose value has the wrong type.
    InvalidValue {
        key: &'static str,
        expected: &'static str,
    },
}

/// What [`parse`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseOutcome {
    /// The params string is empty: no args, nothing else.
    Empty,
    /// A JSON object with known keys only.
    Parsed,
    /// The whole string was taken as `iexec_args`.
    FellBack(FallbackReason),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedDealParams {
    pub params: DealParams,
    pub outcome: ParseOutcome,
    /// Known keys that were present in the JSON but dropped by the fallback.
    pub ignored_keys: Vec<&'static str>,
}

impl ParsedDealParams {
    pub fn fell_back(&self) -> bool {
        matches!(self.outcome, ParseOutcome::FellBack(_))
    }

    /// A log line when the parser fell back, naming the cause and what was dropped.
    pub fn warning(&self) -> Option<String> {
        let ParseOutcome::FellBack(reason) = &self.outcome else {
            return None;
        };
        let cause = match reason {
            FallbackReason::NotJson => "not valid JSON".to_owned(),
            FallbackReason::NotAnObject => "not a JSON object".to_owned(),
            FallbackReason::UnknownKeys(keys) => {
                let quoted: Vec<String> = keys
                    .iter()
                    .map(|k| format!("'{}'", truncate(k, 64)))
                    .collect();
                let noun = if keys.len() == 1 {
                    "unknown key"
                } else {
                    "unknown keys"
                };
                format!("{noun} {}", quoted.join(", "))
            }
            FallbackReason::InvalidValue { key, expected } => format!("'{key}' is not {expected}"),
        };
        let mut line =
            format!("deal params: {cause}: the whole params string is used as iexec_args");
        if !self.ignored_keys.is_empty() {
            let what: Vec<&str> = self
                .ignored_keys
                .iter()
                .map(|k| match *k {
                    IEXEC_SECRETS => "secrets mapping (iexec_secrets)",
                    IEXEC_INPUT_FILES => "input files (iexec_input_files)",
                    other => other,
                })
                .collect();
            line.push_str(&format!("; ignored: {}", what.join(", ")));
        }
        Some(line)
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// A scalar read where the Java reader expects a string.
fn coerce_string(v: &Value) -> Option<Option<String>> {
    match v {
        Value::Null => Some(None),
        Value::String(s) => Some(Some(s.clone())),
        Value::Number(n) => Some(Some(n.to_string())),
        Value::Bool(b) => Some(Some(b.to_string())),
        Value::Array(_) | Value::Object(_) => None,
    }
}

fn coerce_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Null => Some(false),
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::Array(_) | Value::Object(_) => None,
    }
}

fn read_object(obj: &Map<String, Value>) -> Result<DealParams, FallbackReason> {
    let unknown: Vec<String> = obj
        .keys()
        .filter(|k| !KNOWN_KEYS.contains(&k.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(FallbackReason::UnknownKeys(unknown));
    }
    let string = |key: &'static str| -> Result<Option<String>, FallbackReason> {
        match obj.get(key) {
            None => Ok(None),
            Some(v) => coerce_string(v).ok_or(FallbackReason::InvalidValue {
                key,
                expected: "a string",
            }),
        }
    };
    let mut params = DealParams {
        iexec_args: string(IEXEC_ARGS)?,
        iexec_result_storage_provider: string(IEXEC_RESULT_STORAGE_PROVIDER)?,
        iexec_result_storage_proxy: string(IEXEC_RESULT_STORAGE_PROXY)?,
        bulk_cid: string(BULK_CID)?.unwrap_or_default(),
        ..DealParams::default()
    };
    if let Some(v) = obj.get(IEXEC_RESULT_ENCRYPTION) {
        params.iexec_result_encryption = coerce_bool(v).ok_or(FallbackReason::InvalidValue {
            key: IEXEC_RESULT_ENCRYPTION,
            expected: "a boolean",
        })?;
    }
    let files_err = FallbackReason::InvalidValue {
        key: IEXEC_INPUT_FILES,
        expected: "a list of strings",
    };
    match obj.get(IEXEC_INPUT_FILES) {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                match coerce_string(item) {
                    Some(Some(s)) => params.iexec_input_files.push(s),
                    _ => return Err(files_err),
                }
            }
        }
        Some(_) => return Err(files_err),
    }
    let secrets_err = FallbackReason::InvalidValue {
        key: IEXEC_SECRETS,
        expected: "an object of strings",
    };
    match obj.get(IEXEC_SECRETS) {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                match coerce_string(v) {
                    Some(Some(name)) => {
                        params.iexec_secrets.insert(k.clone(), name);
                    }
                    _ => return Err(secrets_err),
                }
            }
        }
        Some(_) => return Err(secrets_err),
    }
    Ok(params)
}

/// Parses `deal.params` with the upstream semantics, reporting what happened.
pub fn parse(raw: &str) -> ParsedDealParams {
    if raw.is_empty() {
        return ParsedDealParams {
            params: DealParams::default(),
            outcome: ParseOutcome::Empty,
            ignored_keys: vec![],
        };
    }
    let fallback = |reason: FallbackReason, ignored_keys: Vec<&'static str>| ParsedDealParams {
        params: DealParams::fallback(raw),
        outcome: ParseOutcome::FellBack(reason),
        ignored_keys,
    };
    let value: Value = match serde_json::from_str(raw) {
        Ok(v) => v,
        Err(_) => return fallback(FallbackReason::NotJson, vec![]),
    };
    let Value::Object(obj) = value else {
        return fallback(FallbackReason::NotAnObject, vec![]);
    };
    match read_object(&obj) {
        Ok(params) => ParsedDealParams {
            params,
            outcome: ParseOutcome::Parsed,
            ignored_keys: vec![],
        },
        Err(reason) => {
            let ignored = KNOWN_KEYS
                .into_iter()
                .filter(|k| *k != IEXEC_ARGS && obj.get(*k).is_some_and(|v| !v.is_null()))
                .collect();
            fallback(reason, ignored)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SDK side
// ---------------------------------------------------------------------------------------------

/// Refusals of the params builder. The texts follow the SDK's.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ParamsError {
    #[error(
        "'{0}' is not a valid secret mapping syntax (must be <appSecretKey>=<requesterSecretName>)"
    )]
    SecretMappingSyntax(String),
    #[error("iexec_secrets mapping keys must be strictly positive integers (got '{0}')")]
    SecretKey(String),
    #[error("iexec_secrets mapping names must be strings (got an empty name for key '{0}')")]
    SecretNameEmpty(String),
    #[error("iexec_secrets mapping name '{0}' is not a valid requester secret name: {1}")]
    SecretName(String, String),
    #[error("iexec_secrets is not supported for non TEE tasks")]
    SecretsWithoutTee,
    #[error("iexec_input_files: '{0}' is not an http:// or https:// URL")]
    InputFileUrl(String),
    #[error(
        "iexec_result_storage_provider: '{0}' is not a supported storage provider (expected ipfs or dropbox)"
    )]
    StorageProvider(String),
    #[error("iexec_result_storage_provider: only ipfs is supported for non TEE tasks (got '{0}')")]
    StorageProviderWithoutTee(String),
    #[error("params: unknown key '{0}' (expected one of {keys})", keys = KNOWN_KEYS.join(", "))]
    UnknownKey(String),
    #[error("params: '{key}' must be {expected}")]
    InvalidValue {
        key: &'static str,
        expected: &'static str,
    },
}

/// Builds the request-order `params` string from CLI-style options; later calls win, as in the
/// SDK (`--params` first, then the dedicated options).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamsBuilder {
    args: Option<String>,
    input_files: Option<Vec<String>>,
    /// Keys validated as `^[1-9][0-9]*$`.
    secrets: BTreeMap<SecretKey, String>,
    storage_provider: Option<String>,
    storage_proxy: Option<String>,
    encrypt_result: Option<bool>,
    bulk_cid: Option<String>,
}

/// A secret position ordered numerically (no leading zeros, so length then text).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SecretKey(usize, String);

impl SecretKey {
    fn parse(key: &str) -> Result<Self, ParamsError> {
        let mut bytes = key.bytes();
        let ok = matches!(bytes.next(), Some(b'1'..=b'9')) && bytes.all(|b| b.is_ascii_digit());
        if ok {
            Ok(Self(key.len(), key.to_owned()))
        } else {
            Err(ParamsError::SecretKey(key.to_owned()))
        }
    }
}

fn check_url(url: &str) -> Result<(), ParamsError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ParamsError::InputFileUrl(url.to_owned()))
    }
}

fn check_provider(p: &str) -> Result<(), ParamsError> {
    if p == STORAGE_IPFS || p == STORAGE_DROPBOX {
        Ok(())
    } else {
        Err(ParamsError::StorageProvider(p.to_owned()))
    }
}

/// The options of `sms app run` that make a deal's params (the SDK's merge rules: `params`
/// first, the other options over it).
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions<'a> {
    /// `--params`: a JSON object of known keys, or the args.
    pub params: Option<&'a str>,
    /// `--args`: appended to the app's entrypoint.
    pub args: Option<&'a str>,
    pub input_files: &'a [String],
    /// `<appSecretIndex>=<requesterSecretName>` mappings.
    pub secrets: &'a [String],
    pub encrypt_result: bool,
}

impl RunOptions<'_> {
    /// The params string of these options, with the deal's `bulk_cid` if any.
    pub fn params(&self, tee: bool, bulk_cid: Option<String>) -> Result<String, ParamsError> {
        let mut builder = match self.params {
            Some(p) => ParamsBuilder::from_params(p)?,
            None => ParamsBuilder::new(),
        };
        if let Some(a) = self.args {
            builder = builder.args(a);
        }
        if !self.input_files.is_empty() {
            builder = builder.input_files(self.input_files.iter().map(String::as_str))?;
        }
        if !self.secrets.is_empty() {
            builder = builder.secret_mappings(self.secrets.iter().map(String::as_str))?;
        }
        if self.encrypt_result {
            builder = builder.encrypt_result(true);
        }
        if let Some(cid) = bulk_cid {
            builder = builder.bulk_cid(cid);
        }
        builder.build(tee, false)
    }
}

impl ParamsBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// `--params <json>`: a JSON object with known keys only; any other text is the args.
    pub fn from_params(text: &str) -> Result<Self, ParamsError> {
        let mut b = Self::default();
        let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(text) else {
            b.args = Some(text.to_owned());
            return Ok(b);
        };
        for (key, value) in &obj {
            let invalid = |key: &'static str, expected: &'static str| ParamsError::InvalidValue {
                key,
                expected,
            };
            match key.as_str() {
                IEXEC_ARGS => {
                    b.args = Some(
                        value
                            .as_str()
                            .ok_or(invalid(IEXEC_ARGS, "a string"))?
                            .to_owned(),
                    );
                }
                IEXEC_INPUT_FILES => {
                    let items = value
                        .as_array()
                        .ok_or(invalid(IEXEC_INPUT_FILES, "a list of URLs"))?;
                    let urls = items
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_owned)
                                .ok_or(invalid(IEXEC_INPUT_FILES, "a list of URLs"))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    b = b.input_files(urls)?;
                }
                IEXEC_SECRETS => {
                    let map = value
                        .as_object()
                        .ok_or(invalid(IEXEC_SECRETS, "an object"))?;
                    for (k, v) in map {
                        let name = v
                            .as_str()
                            .ok_or_else(|| ParamsError::SecretNameEmpty(k.clone()))?;
                        b = b.secret(k, name)?;
                    }
                }
                IEXEC_RESULT_STORAGE_PROVIDER => {
                    let p = value
                        .as_str()
                        .ok_or(invalid(IEXEC_RESULT_STORAGE_PROVIDER, "a string"))?;
                    b = b.storage_provider(p)?;
                }
                IEXEC_RESULT_STORAGE_PROXY => {
                    let p = value
                        .as_str()
                        .ok_or(invalid(IEXEC_RESULT_STORAGE_PROXY, "a string"))?;
                    b = b.storage_proxy(p);
                }
                IEXEC_RESULT_ENCRYPTION => {
                    b.encrypt_result = Some(
                        value
                            .as_bool()
                            .ok_or(invalid(IEXEC_RESULT_ENCRYPTION, "a boolean"))?,
                    );
                }
                BULK_CID => {
                    b.bulk_cid = Some(
                        value
                            .as_str()
                            .ok_or(invalid(BULK_CID, "a string"))?
                            .to_owned(),
                    );
                }
                other => return Err(ParamsError::UnknownKey(other.to_owned())),
            }
        }
        Ok(b)
    }

    /// `--args`.
    pub fn args(mut self, args: impl Into<String>) -> Self {
        self.args = Some(args.into());
        self
    }

    /// `--input-files a,b`: each must be an http(s) URL. Replaces earlier input files.
    pub fn input_files<I, S>(mut self, urls: I) -> Result<Self, ParamsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let urls: Vec<String> = urls.into_iter().map(Into::into).collect();
        urls.iter().try_for_each(|u| check_url(u))?;
        self.input_files = Some(urls);
        Ok(self)
    }

    /// One `iexec_secrets` entry; a later entry for the same key overwrites.
    pub fn secret(mut self, key: &str, name: &str) -> Result<Self, ParamsError> {
        let key = SecretKey::parse(key)?;
        if name.is_empty() {
            return Err(ParamsError::SecretNameEmpty(key.1));
        }
        RequesterSecretName::parse(name)
            .map_err(|e| ParamsError::SecretName(name.to_owned(), e.to_string()))?;
        self.secrets.insert(key, name.to_owned());
        Ok(self)
    }

    /// `--secret 1=foo 3=bar`: each item split at its first `=`.
    pub fn secret_mappings<I, S>(mut self, items: I) -> Result<Self, ParamsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for item in items {
            let item = item.as_ref();
            let (key, name) = item
                .split_once('=')
                .ok_or_else(|| ParamsError::SecretMappingSyntax(item.to_owned()))?;
            self = self.secret(key, name)?;
        }
        Ok(self)
    }

    /// `--storage-provider ipfs|dropbox`.
    pub fn storage_provider(mut self, provider: &str) -> Result<Self, ParamsError> {
        check_provider(provider)?;
        self.storage_provider = Some(provider.to_owned());
        Ok(self)
    }

    /// `--storage-proxy <url>` (v8 only).
    pub fn storage_proxy(mut self, url: impl Into<String>) -> Self {
        self.storage_proxy = Some(url.into());
        self
    }

    /// `bulk_cid`: the CID of a bulk root (docs/bulk-processing.md).
    pub fn bulk_cid(mut self, cid: impl Into<String>) -> Self {
        self.bulk_cid = Some(cid.into());
        self
    }

    /// `--encrypt-result`.
    pub fn encrypt_result(mut self, on: bool) -> Self {
        self.encrypt_result = Some(on);
        self
    }

    /// The params JSON string. `tee` = the order tag has the TEE bit; with no callback the storage
    /// provider defaults to `ipfs`.
    pub fn build(&self, tee: bool, has_callback: bool) -> Result<String, ParamsError> {
        if !tee && !self.secrets.is_empty() {
            return Err(ParamsError::SecretsWithoutTee);
        }
        let provider = match (&self.storage_provider, has_callback) {
            (Some(p), _) => Some(p.clone()),
            (None, false) => Some(STORAGE_IPFS.to_owned()),
            (None, true) => None,
        };
        if let Some(p) = &provider
            && !tee
            && p != STORAGE_IPFS
        {
            return Err(ParamsError::StorageProviderWithoutTee(p.clone()));
        }
        // Rendered by hand so the key order is fixed whatever serde_json's map features are.
        let string = |s: &str| Value::String(s.to_owned()).to_string();
        let mut fields: Vec<(&str, String)> = Vec::new();
        if let Some(a) = &self.args {
            fields.push((IEXEC_ARGS, string(a)));
        }
        if let Some(files) = &self.input_files {
            let items: Vec<String> = files.iter().map(|f| string(f)).collect();
            fields.push((IEXEC_INPUT_FILES, format!("[{}]", items.join(","))));
        }
        if !self.secrets.is_empty() {
            let items: Vec<String> = self
                .secrets
                .iter()
                .map(|(k, v)| format!("{}:{}", string(&k.1), string(v)))
                .collect();
            fields.push((IEXEC_SECRETS, format!("{{{}}}", items.join(","))));
        }
        if let Some(p) = &provider {
            fields.push((IEXEC_RESULT_STORAGE_PROVIDER, string(p)));
        }
        if let Some(p) = &self.storage_proxy {
            fields.push((IEXEC_RESULT_STORAGE_PROXY, string(p)));
        }
        if let Some(e) = self.encrypt_result {
            fields.push((IEXEC_RESULT_ENCRYPTION, e.to_string()));
        }
        if let Some(c) = &self.bulk_cid {
            fields.push((BULK_CID, string(c)));
        }
        let body: Vec<String> = fields
            .into_iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        let json = format!("{{{}}}", body.join(","));
        Ok(json)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn app_argv_is_words_without_a_shell() {
        assert_eq!(
            app_argv("python3  /app/app.py", Some("; echo $X > $IEXEC_OUT/leak")),
            [
                "python3",
                "/app/app.py",
                ";",
                "echo",
                "$X",
                ">",
                "$IEXEC_OUT/leak"
            ]
        );
        assert_eq!(app_argv("/app", Some("a 'b c'")), ["/app", "a", "'b", "c'"]);
        assert_eq!(app_argv("/app", None), ["/app"]);
        assert_eq!(app_argv("/app", Some("  \t\n")), ["/app"]);
    }
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_known_key() {
        let raw = r#"{"iexec_args":"--x 1","iexec_input_files":["https://a/1","http://b/2"],"iexec_result_encryption":true,"iexec_result_storage_provider":"dropbox","iexec_result_storage_proxy":"https://proxy","iexec_secrets":{"1":"foo","3":"bar"},"bulk_cid":"QmBulk"}"#;
        let p = parse(raw);
        assert_eq!(p.outcome, ParseOutcome::Parsed);
        assert_eq!(p.warning(), None);
        assert_eq!(
            p.params,
            DealParams {
                iexec_args: Some("--x 1".into()),
                iexec_input_files: vec!["https://a/1".into(), "http://b/2".into()],
                iexec_result_encryption: true,
                iexec_result_storage_provider: Some("dropbox".into()),
                iexec_result_storage_proxy: Some("https://proxy".into()),
                iexec_secrets: secrets(&[("1", "foo"), ("3", "bar")]),
                bulk_cid: "QmBulk".into(),
            }
        );
    }

    #[test]
    fn defaults() {
        let p = parse("{}");
        assert_eq!(p.outcome, ParseOutcome::Parsed);
        assert_eq!(p.params, DealParams::default());
        let empty = parse("");
        assert_eq!(empty.outcome, ParseOutcome::Empty);
        assert_eq!(empty.params, DealParams::default());
        let nulls = parse(
            r#"{"iexec_args":null,"iexec_input_files":null,"iexec_secrets":null,"iexec_result_encryption":null,"bulk_cid":null}"#,
        );
        assert_eq!(
            (nulls.outcome, nulls.params),
            (ParseOutcome::Parsed, DealParams::default())
        );
    }

    #[test]
    fn upstream_unknown_key_vector() {
        // reference/iexec-client-chain.md §5.2
        let raw = r#"{"wrong_field1":"wrong arg value","iexec_input_files":["http://file1"]}"#;
        let p = parse(raw);
        assert_eq!(
            p.params,
            DealParams {
                iexec_args: Some(raw.into()),
                ..DealParams::default()
            }
        );
        assert_eq!(
            p.outcome,
            ParseOutcome::FellBack(FallbackReason::UnknownKeys(vec!["wrong_field1".into()]))
        );
        assert_eq!(p.ignored_keys, vec![IEXEC_INPUT_FILES]);
        assert_eq!(
            p.warning().unwrap(),
            "deal params: unknown key 'wrong_field1': the whole params string is used as iexec_args; \
             ignored: input files (iexec_input_files)"
        );
    }

    #[test]
    fn unknown_key_drops_secrets_and_says_so() {
        let raw =
            r#"{"iexec_secrets":{"1":"foo"},"iexec_result_encryption":true,"typo":1,"other":2}"#;
        let p = parse(raw);
        assert_eq!(
            p.params,
            DealParams {
                iexec_args: Some(raw.into()),
                ..DealParams::default()
            }
        );
        assert!(p.fell_back());
        let w = p.warning().unwrap();
        assert!(
            w.contains("unknown keys 'other', 'typo'")
                || w.contains("unknown keys 'typo', 'other'"),
            "{w}"
        );
        assert!(
            w.ends_with("ignored: secrets mapping (iexec_secrets), iexec_result_encryption"),
            "{w}"
        );
    }

    #[test]
    fn non_json_and_non_objects_become_args() {
        for (raw, reason) in [
            ("hello world", FallbackReason::NotJson),
            ("{\"iexec_args\":", FallbackReason::NotJson),
            ("42", FallbackReason::NotAnObject),
            ("\"quoted\"", FallbackReason::NotAnObject),
            ("[\"a\"]", FallbackReason::NotAnObject),
            ("null", FallbackReason::NotAnObject),
        ] {
            let p = parse(raw);
            assert_eq!(
                p.params,
                DealParams {
                    iexec_args: Some(raw.into()),
                    ..DealParams::default()
                },
                "{raw}"
            );
            assert_eq!(p.outcome, ParseOutcome::FellBack(reason), "{raw}");
            assert!(
                p.warning().unwrap().contains("whole params string"),
                "{raw}"
            );
        }
    }

    #[test]
    fn wrong_types_fall_back_and_scalars_are_coerced() {
        let p = parse(r#"{"iexec_input_files":"https://a"}"#);
        assert_eq!(
            p.outcome,
            ParseOutcome::FellBack(FallbackReason::InvalidValue {
                key: IEXEC_INPUT_FILES,
                expected: "a list of strings"
            })
        );
        assert_eq!(p.ignored_keys, vec![IEXEC_INPUT_FILES]);
        assert!(parse(r#"{"iexec_secrets":["foo"]}"#).fell_back());
        assert!(parse(r#"{"iexec_args":["a"]}"#).fell_back());
        assert!(parse(r#"{"iexec_result_encryption":"yes"}"#).fell_back());
        let coerced =
            parse(r#"{"iexec_args":42,"iexec_result_encryption":"true","iexec_secrets":{"1":7}}"#);
        assert_eq!(coerced.outcome, ParseOutcome::Parsed);
        assert_eq!(
            coerced.params,
            DealParams {
                iexec_args: Some("42".into()),
                iexec_result_encryption: true,
                iexec_secrets: secrets(&[("1", "7")]),
                ..DealParams::default()
            }
        );
    }

    #[test]
    fn builder_secrets_args_files_encryption() {
        let json = ParamsBuilder::new()
            .args("a b")
            .input_files(["https://x/1", "http://y/2"])
            .unwrap()
            .secret_mappings(["3=bar", "1=foo", "10=ten", "2=two"])
            .unwrap()
            .encrypt_result(true)
            .build(true, false)
            .unwrap();
        assert_eq!(
            json,
            r#"{"iexec_args":"a b","iexec_input_files":["https://x/1","http://y/2"],"iexec_secrets":{"1":"foo","2":"two","3":"bar","10":"ten"},"iexec_result_storage_provider":"ipfs","iexec_result_encryption":true}"#
        );
        let back = parse(&json);
        assert_eq!(back.outcome, ParseOutcome::Parsed);
        assert_eq!(
            back.params.iexec_secrets,
            secrets(&[("1", "foo"), ("2", "two"), ("3", "bar"), ("10", "ten")])
        );
    }

    #[test]
    fn builder_sdk_example_and_defaults() {
        // reference/iexec-client-chain.md §5.1: `{iexec_secrets:{1:'foo'}}` with a TEE tag.
        let json = ParamsBuilder::from_params(r#"{"iexec_secrets":{"1":"foo"}}"#)
            .unwrap()
            .build(true, false)
            .unwrap();
        assert_eq!(
            json,
            r#"{"iexec_secrets":{"1":"foo"},"iexec_result_storage_provider":"ipfs"}"#
        );
        // A callback gets no default provider.
        assert_eq!(ParamsBuilder::new().build(false, true).unwrap(), "{}");
        // Later duplicates overwrite; `=` inside the name is kept (split at the first one).
        let b = ParamsBuilder::new()
            .secret_mappings(["1=a", "1=b"])
            .unwrap();
        assert_eq!(
            b.build(true, true).unwrap(),
            r#"{"iexec_secrets":{"1":"b"}}"#
        );
        // Non-JSON --params are args; later --args win.
        let b = ParamsBuilder::from_params("plain text").unwrap();
        assert_eq!(
            b.build(false, true).unwrap(),
            r#"{"iexec_args":"plain text"}"#
        );
        assert_eq!(
            b.args("x").build(false, true).unwrap(),
            r#"{"iexec_args":"x"}"#
        );
        let all = ParamsBuilder::from_params(
            r#"{"iexec_result_storage_provider":"dropbox","iexec_result_storage_proxy":"https://p","bulk_cid":"Qm"}"#,
        )
        .unwrap()
        .build(true, false)
        .unwrap();
        assert_eq!(
            all,
            r#"{"iexec_result_storage_provider":"dropbox","iexec_result_storage_proxy":"https://p","bulk_cid":"Qm"}"#
        );
        assert_eq!(parse(&all).outcome, ParseOutcome::Parsed);
    }

    #[test]
    fn builder_errors() {
        let e = |r: Result<ParamsBuilder, ParamsError>| r.unwrap_err();
        assert_eq!(
            e(ParamsBuilder::new().secret_mappings(["1foo"])).to_string(),
            "'1foo' is not a valid secret mapping syntax (must be <appSecretKey>=<requesterSecretName>)"
        );
        for bad in ["0=a", "01=a", "-1=a", "a=b", "=b", "1.5=a"] {
            assert!(
                matches!(
                    e(ParamsBuilder::new().secret_mappings([bad])),
                    ParamsError::SecretKey(_)
                ),
                "{bad}"
            );
        }
        assert!(
            e(ParamsBuilder::new().secret_mappings(["1="]))
                .to_string()
                .contains("mapping names must be strings")
        );
        assert!(matches!(
            e(ParamsBuilder::new().secret_mappings(["1=a:b"])),
            ParamsError::SecretName(..)
        ));
        assert!(matches!(
            e(ParamsBuilder::new().secret_mappings(["1=a=b"])),
            ParamsError::SecretName(..)
        ));
        let non_tee = ParamsBuilder::new()
            .secret_mappings(["1=foo"])
            .unwrap()
            .build(false, false)
            .unwrap_err();
        assert_eq!(
            non_tee.to_string(),
            "iexec_secrets is not supported for non TEE tasks"
        );
        assert_eq!(
            e(ParamsBuilder::new().input_files(["https://ok", "ftp://no"])),
            ParamsError::InputFileUrl("ftp://no".into())
        );
        assert_eq!(
            e(ParamsBuilder::new().storage_provider("s3")),
            ParamsError::StorageProvider("s3".into())
        );
        let dropbox = ParamsBuilder::new().storage_provider("dropbox").unwrap();
        assert_eq!(
            dropbox.build(false, false),
            Err(ParamsError::StorageProviderWithoutTee("dropbox".into()))
        );
        assert_eq!(
            e(ParamsBuilder::from_params(r#"{"oops":1}"#)),
            ParamsError::UnknownKey("oops".into())
        );
        assert_eq!(
            e(ParamsBuilder::from_params(
                r#"{"iexec_result_encryption":"true"}"#
            )),
            ParamsError::InvalidValue {
                key: IEXEC_RESULT_ENCRYPTION,
                expected: "a boolean"
            }
        );
        assert_eq!(
            e(ParamsBuilder::from_params(r#"{"iexec_secrets":{"1":""}}"#)),
            ParamsError::SecretNameEmpty("1".into())
        );
    }
}
