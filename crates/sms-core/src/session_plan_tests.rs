use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, U256};
use rand::SeedableRng;

use super::*;
use crate::deal_params::parse;
use crate::ledger::{AppEntry, DatasetEntry, Deal, DealResource};
use crate::tee_error::TeeSessionGenerationError as E;

const DEAL_ID: &str = "0xa0b0fd396b0f79f14e4d6b34af7180bd9e80e2d86afda91c6127c5c17a268e66";
const APP: &str = "0x76fE91568d50C5fF9411223df5A0c50Ec5fa326A";
const DATASET: &str = "0x2Ad5773db1a705DB568fAd403cd247fee4808Fb8";
const REQUESTER: &str = "0x4CF114732732c072D49a783e80C6Fe9fe8BA420a";
const BENEFICIARY: &str = "0xbeefbeefbeefbeefbeefbeefbeefbeefbeefbeef";
const POOL_OWNER: &str = "0x3333333333333333333333333333333333333333";
/// EIP-55 example address.
const WORKER: &str = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
const WORKER_CHECKSUMMED: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
const CHALLENGE_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const CHALLENGE_ADDRESS: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const APP_FP: &str = "01ba4719c80b6fe911b091a7c05124b64eeece964e09c058ef8f9805daca546b";
const PRE_FP: &str = "aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11";
const POST_FP: &str = "bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22";
const APP_CHECKSUM: &str = "0x15de77fd7ac448028884256b3ab376e7d4560e9ef6acf0594ea0b3c031d5d395";
const DATASET_CHECKSUM: &str = "0x02a12ef127dcfbdb294a090c8f0b69a0ca30b7940fc36cabf971f488efd374d7";
const TASK_INDEX: u64 = 2;
/// The TDX registers of the pipeline of [`Fx::tdx`]: pre-compute `1x`, post-compute `2x`, the
/// app TD image `3x` (MRTD, RTMR0, RTMR1, RTMR2 = x1..x4).
const TDX_TABLES: &str = concat!(
    "[pipelines.pre-compute.tdx]\n",
    "mrtd = \"111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111\"\n",
    "rtmr0 = \"121212121212121212121212121212121212121212121212121212121212121212121212121212121212121212121212\"\n",
    "rtmr1 = \"any\"\nrtmr2 = \"any\"\nrtmr3 = \"any\"\n",
    "[pipelines.post-compute.tdx]\n",
    "mrtd = \"212121212121212121212121212121212121212121212121212121212121212121212121212121212121212121212121\"\n",
    "rtmr0 = \"any\"\nrtmr1 = \"any\"\nrtmr2 = \"any\"\nrtmr3 = \"any\"\n",
    "[pipelines.app.tdx]\n",
    "mrtd = \"313131313131313131313131313131313131313131313131313131313131313131313131313131313131313131313131\"\n",
    "rtmr0 = \"323232323232323232323232323232323232323232323232323232323232323232323232323232323232323232323232\"\n",
    "rtmr1 = \"333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333\"\n",
    "rtmr2 = \"343434343434343434343434343434343434343434343434343434343434343434343434343434343434343434343434\"\n",
);
const ZERO_ADDRESS: &str = "0x0000000000000000000000000000000000000000";

fn a(s: &str) -> Address {
    s.parse().unwrap()
}

fn tag(low: u8) -> B256 {
    let mut t = B256::ZERO;
    t[31] = low;
    t
}

fn resource(pointer: Address) -> DealResource {
    DealResource {
        pointer,
        owner: Address::repeat_byte(0x44),
        price: U256::ZERO,
    }
}

fn scone_config() -> String {
    format!(
        r#"{{"framework":"SCONE","version":"v5","entrypoint":"python /app/app.py","heapSize":1073741824,"fingerprint":"{APP_FP}"}}"#
    )
}

fn pipelines_toml(versions: &[&str]) -> String {
    versions
        .iter()
        .map(|v| {
            format!(
                "[[pipelines]]\nversion = \"{v}\"\n[pipelines.pre-compute]\nimage = \"reg/pre:{v}\"\nfingerprint = \"{PRE_FP}\"\nentrypoint = \"/pre\"\nheap-size = \"2GB\"\n[pipelines.post-compute]\nimage = \"reg/post:{v}\"\nfingerprint = \"{POST_FP}\"\nentrypoint = \"/post\"\nheap-size = \"1GB\"\n"
            )
        })
        .collect()
}

struct Fx {
    deal: Deal,
    params: DealParams,
    app: AppEntry,
    dataset: Option<DatasetEntry>,
    pipelines: Pipelines,
    sms_framework: TeeFramework,
    worker: Address,
    enclave_challenge: Address,
    key: Option<SecretValue>,
    secrets: SecretValues,
}

impl Fx {
    /// A SCONE task, no dataset, IPFS storage with the worker's token and the pool's proxy.
    fn scone() -> Self {
        let deal_id: B256 = DEAL_ID.parse().unwrap();
        let mut fx = Self {
            deal: Deal {
                deal_id,
                app: resource(a(APP)),
                dataset: resource(Address::ZERO),
                workerpool: DealResource {
                    pointer: Address::repeat_byte(0x55),
                    owner: a(POOL_OWNER),
                    price: U256::ZERO,
                },
                trust: U256::from(1),
                category: U256::ZERO,
                tag: tag(0x03),
                requester: a(REQUESTER),
                beneficiary: a(BENEFICIARY),
                callback: Address::ZERO,
                params: r#"{"iexec_result_storage_provider":"ipfs"}"#.into(),
                start_time: 1,
                bot_first: 1,
                bot_size: 5,
                worker_stake: U256::ZERO,
                scheduler_reward_ratio: U256::ZERO,
                sponsor: a(REQUESTER),
            },
            params: DealParams::default(),
            app: AppEntry {
                address: a(APP),
                owner: Address::repeat_byte(0x44),
                name: "app".into(),
                app_type: "DOCKER".into(),
                multiaddr: "docker.io/org/app:1.0.0".into(),
                checksum: APP_CHECKSUM.parse().unwrap(),
                mrenclave: scone_config().into_bytes(),
            },
            dataset: None,
            pipelines: Pipelines::from_toml_str(
                &pipelines_toml(&["v4", "v5"]),
                TeeFramework::Scone,
            )
            .unwrap(),
            sms_framework: TeeFramework::Scone,
            worker: a(WORKER),
            enclave_challenge: a(CHALLENGE_ADDRESS),
            key: Some(SecretValue::from(CHALLENGE_KEY)),
            secrets: SecretValues::new(),
        };
        fx.set_params(r#"{"iexec_result_storage_provider":"ipfs"}"#);
        fx.web2(a(WORKER), WEB2_IPFS_TOKEN, " worker-jwt\n");
        fx.web2(a(POOL_OWNER), WEB2_RESULT_PROXY_URL, " https://proxy.pool ");
        fx
    }

    fn tdx() -> Self {
        let mut fx = Self::scone();
        fx.deal.tag = tag(0x09);
        fx.app.mrenclave = Vec::new();
        fx.sms_framework = TeeFramework::Tdx;
        let text = pipelines_toml(&["tdx-1"]) + TDX_TABLES;
        fx.pipelines = Pipelines::from_toml_str(&text, TeeFramework::Tdx).unwrap();
        fx
    }

    fn set_params(&mut self, raw: &str) {
        self.deal.params = raw.to_owned();
        let parsed = parse(raw);
        assert!(!parsed.fell_back(), "{raw}");
        self.params = parsed.params;
    }

    fn web2(&mut self, owner: Address, name: &str, value: &str) {
        self.secrets.insert(
            SecretId::web2(owner, name).unwrap(),
            SecretValue::from(value),
        );
    }

    fn with_dataset(&mut self, key: Option<&str>) {
        self.deal.dataset = resource(a(DATASET));
        self.dataset = Some(DatasetEntry {
            address: a(DATASET),
            owner: Address::repeat_byte(0x66),
            name: "data".into(),
            multiaddr: "/ipfs/QmW2WQi7j6c7UgJTarActp7tDNikE4B2qXtFCfLPdsgaTQ".into(),
            checksum: DATASET_CHECKSUM.parse().unwrap(),
        });
        if let Some(k) = key {
            self.secrets
                .insert(SecretId::web3(a(DATASET)), SecretValue::from(k));
        }
    }

    fn task(&self) -> TaskInput<'_> {
        TaskInput {
            task_id: crate::ledger::task_id(&self.deal.deal_id, TASK_INDEX),
            task_index: TASK_INDEX,
            deal: &self.deal,
            params: &self.params,
            worker: self.worker,
        }
    }

    fn plan(&self) -> Result<SessionPlan, SessionError> {
        build_session_plan(&SessionInputs {
            task: self.task(),
            sms_framework: self.sms_framework,
            app: &self.app,
            dataset: self.dataset.as_ref(),
            pipelines: &self.pipelines,
            enclave_challenge: self.enclave_challenge,
            challenge_private_key: self.key.as_ref(),
            secrets: &self.secrets,
            bulk: None,
        })
    }

    fn error(&self) -> E {
        self.plan().unwrap_err().code
    }

    fn task_id_hex(&self) -> String {
        encode_prefixed(self.task().task_id)
    }
}

type Env = BTreeMap<String, String>;

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn exposed(e: &EnclaveEnv) -> Env {
    e.expose()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn sign_env(fx: &Fx) -> Env {
    env(&[
        (IEXEC_TASK_ID, &fx.task_id_hex()),
        (SIGN_WORKER_ADDRESS, WORKER_CHECKSUMMED),
        (SIGN_TEE_CHALLENGE_PRIVATE_KEY, CHALLENGE_KEY),
    ])
}

fn base_app_env(fx: &Fx) -> Env {
    env(&[
        (IEXEC_DEAL_ID, DEAL_ID),
        (IEXEC_TASK_INDEX, "2"),
        (IEXEC_TASK_ID, &fx.task_id_hex()),
        (IEXEC_IN, "/iexec_in"),
        (IEXEC_OUT, "/iexec_out"),
        (IEXEC_BOT_SIZE, "5"),
        (IEXEC_BOT_FIRST_INDEX, "1"),
        (IEXEC_BOT_TASK_INDEX, "2"),
        (IEXEC_DATASET_ADDRESS, ZERO_ADDRESS),
        (IEXEC_DATASET_FILENAME, ZERO_ADDRESS),
        (IEXEC_INPUT_FILES_NUMBER, "0"),
    ])
}

fn base_post_env(fx: &Fx) -> Env {
    let mut e = env(&[
        (RESULT_ENCRYPTION, "false"),
        (RESULT_ENCRYPTION_PUBLIC_KEY, ""),
        (RESULT_STORAGE_CALLBACK, "false"),
        (RESULT_STORAGE_PROVIDER, "ipfs"),
        (RESULT_STORAGE_PROXY, "https://proxy.pool"),
        (RESULT_STORAGE_TOKEN, "worker-jwt"),
    ]);
    e.extend(sign_env(fx));
    e
}

fn set(e: &mut Env, k: &str, v: &str) {
    e.insert(k.to_owned(), v.to_owned());
}

#[test]
fn app_developer_secret_only() {
    let mut fx = Fx::scone();
    fx.secrets.insert(
        SecretId::app_developer(a(APP)),
        SecretValue::from("\n my app secret \n"),
    );
    let plan = fx.plan().unwrap();

    assert!(plan.pre_compute.is_none());
    assert_eq!(plan.framework, TeeFramework::Scone);
    assert_eq!(plan.pipeline_version, "v5");
    assert_eq!(plan.warnings, Vec::<String>::new());

    let mut app = base_app_env(&fx);
    set(&mut app, IEXEC_APP_DEVELOPER_SECRET, "\n my app secret \n");
    set(
        &mut app,
        IEXEC_APP_DEVELOPER_SECRET_1,
        "\n my app secret \n",
    );
    assert_eq!(exposed(&plan.app.env), app);
    assert_eq!(exposed(&plan.post_compute.env), base_post_env(&fx));

    assert_eq!(plan.app.role.name(), "app");
    assert_eq!(plan.app.image, "docker.io/org/app:1.0.0");
    assert_eq!(plan.app.measurement.as_hex(), APP_FP);
    assert_eq!(plan.app.command.as_deref(), Some("python /app/app.py"));
    assert_eq!(plan.app.heap_size_bytes, Some(1 << 30));
    assert_eq!(plan.post_compute.role.name(), "post-compute");
    assert_eq!(plan.post_compute.image, "reg/post:v5");
    assert_eq!(plan.post_compute.measurement.as_hex(), POST_FP);
    assert_eq!(plan.post_compute.command.as_deref(), Some("/post"));
    assert_eq!(plan.post_compute.heap_size_bytes, Some(1 << 30));
    assert_eq!(
        plan.enclaves().map(|e| e.role).collect::<Vec<_>>(),
        vec![EnclaveRole::App, EnclaveRole::PostCompute]
    );

    // Secrets never show in Debug output, public values do.
    let debug = format!("{plan:?}");
    assert!(!debug.contains("my app secret"), "{debug}");
    assert!(!debug.contains(&CHALLENGE_KEY[2..]), "{debug}");
    assert!(!debug.contains("worker-jwt"), "{debug}");
    assert!(debug.contains(WORKER_CHECKSUMMED), "{debug}");
    assert!(plan.app.env.is_sensitive(IEXEC_APP_DEVELOPER_SECRET));
    assert!(!plan.app.env.is_sensitive(IEXEC_TASK_ID));

    // Provisioner payloads get the values in clear.
    let json = serde_json::to_value(&plan.app.env).unwrap();
    assert_eq!(json[IEXEC_APP_DEVELOPER_SECRET_1], "\n my app secret \n");
}

#[test]
fn requester_secrets_at_their_positions() {
    let mut fx = Fx::scone();
    fx.set_params(
        r#"{"iexec_secrets":{"1":"foo","3":"bar"},"iexec_result_storage_provider":"ipfs"}"#,
    );
    fx.secrets.insert(
        SecretId::requester(a(REQUESTER), &RequesterSecretName::parse("foo").unwrap()),
        SecretValue::from(" foo-value\n"),
    );
    fx.secrets.insert(
        SecretId::requester(a(REQUESTER), &RequesterSecretName::parse("bar").unwrap()),
        SecretValue::from("bar-value"),
    );
    let plan = fx.plan().unwrap();
    let mut app = base_app_env(&fx);
    set(&mut app, "IEXEC_REQUESTER_SECRET_1", " foo-value\n");
    set(&mut app, "IEXEC_REQUESTER_SECRET_3", "bar-value");
    assert_eq!(exposed(&plan.app.env), app);
    assert!(!plan.app.env.contains("IEXEC_REQUESTER_SECRET_2"));
    assert!(plan.app.env.is_sensitive("IEXEC_REQUESTER_SECRET_3"));
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    assert_eq!(exposed(&plan.post_compute.env), base_post_env(&fx));
}

#[test]
fn requester_secret_names_shared_by_positions_and_invalid_positions() {
    let mut fx = Fx::scone();
    fx.set_params(r#"{"iexec_secrets":{"1":"foo","2":"foo","01":"foo","0":"foo","x":"foo","-3":"foo","5":"missing","6":"bad:name"}}"#);
    fx.secrets.insert(
        SecretId::requester(a(REQUESTER), &RequesterSecretName::parse("foo").unwrap()),
        SecretValue::from("v"),
    );
    let plan = fx.plan().unwrap();
    let mut app = base_app_env(&fx);
    for k in ["01", "1", "2"] {
        set(&mut app, &format!("IEXEC_REQUESTER_SECRET_{k}"), "v");
    }
    assert_eq!(exposed(&plan.app.env), app);
    let mut warnings = plan.warnings.clone();
    warnings.sort();
    assert_eq!(
        warnings,
        vec![
            "iexec_secrets key '-3' is not a positive integer: requester secret 'foo' not delivered at it".to_owned(),
            "iexec_secrets key '0' is not a positive integer: requester secret 'foo' not delivered at it".to_owned(),
            "iexec_secrets key 'x' is not a positive integer: requester secret 'foo' not delivered at it".to_owned(),
            format!("requester secret 'bad:name' of {REQUESTER} not found: position(s) 6 left unset"),
            format!("requester secret 'missing' of {REQUESTER} not found: position(s) 5 left unset"),
        ]
    );
    // Only the valid names at valid positions are looked up.
    let needed = secrets_needed(&fx.task());
    assert_eq!(
        needed.requester,
        vec![
            SecretId::requester(a(REQUESTER), &RequesterSecretName::parse("foo").unwrap()),
            SecretId::requester(
                a(REQUESTER),
                &RequesterSecretName::parse("missing").unwrap()
            ),
        ]
    );
}

#[test]
fn dataset_goes_to_pre_compute() {
    let mut fx = Fx::scone();
    fx.with_dataset(Some("\nubA6H9emVPJT91/flYAmnKHC0phSV3cfuqsLxQfgow0=\n"));
    let plan = fx.plan().unwrap();
    let pre = plan.pre_compute.as_ref().unwrap();
    let dataset_lower = DATASET.to_lowercase();
    let mut expected = env(&[
        (IEXEC_PRE_COMPUTE_OUT, "/iexec_in"),
        (IS_DATASET_REQUIRED, "true"),
        (
            IEXEC_DATASET_KEY,
            "\nubA6H9emVPJT91/flYAmnKHC0phSV3cfuqsLxQfgow0=\n",
        ),
        (
            IEXEC_DATASET_URL,
            "/ipfs/QmW2WQi7j6c7UgJTarActp7tDNikE4B2qXtFCfLPdsgaTQ",
        ),
        (IEXEC_DATASET_FILENAME, &dataset_lower),
        (IEXEC_DATASET_CHECKSUM, DATASET_CHECKSUM),
        (IEXEC_DEAL_ID, DEAL_ID),
        (IEXEC_TASK_INDEX, "2"),
        (IEXEC_INPUT_FILES_NUMBER, "0"),
    ]);
    expected.extend(sign_env(&fx));
    assert_eq!(exposed(&pre.env), expected);
    assert!(pre.env.is_sensitive(IEXEC_DATASET_KEY));
    assert_eq!(pre.role.name(), "pre-compute");
    assert_eq!(pre.image, "reg/pre:v5");
    assert_eq!(pre.measurement.as_hex(), PRE_FP);
    assert_eq!(pre.command.as_deref(), Some("/pre"));
    assert_eq!(pre.heap_size_bytes, Some(2 << 30));

    let mut app = base_app_env(&fx);
    set(&mut app, IEXEC_DATASET_ADDRESS, &dataset_lower);
    set(&mut app, IEXEC_DATASET_FILENAME, &dataset_lower);
    assert_eq!(exposed(&plan.app.env), app);
    assert_eq!(
        plan.enclaves().map(|e| e.role).collect::<Vec<_>>(),
        vec![
            EnclaveRole::PreCompute,
            EnclaveRole::App,
            EnclaveRole::PostCompute
        ]
    );
}

#[test]
fn dataset_key_missing() {
    let mut fx = Fx::scone();
    fx.with_dataset(None);
    assert_eq!(fx.error(), E::PreComputeGetDatasetSecretFailed);
    fx.secrets
        .insert(SecretId::web3(a(DATASET)), SecretValue::from(""));
    assert_eq!(fx.error(), E::PreComputeGetDatasetSecretFailed);
    // The deal has a dataset but the server did not provide its entry.
    fx.dataset = None;
    assert_eq!(fx.error(), E::GetTaskDescriptionFailed);
}

/// Upstream counts a dataset only when its address is non-zero and its URI is non-blank: a
/// deal naming a dataset whose URI is blank runs without one (no key asked, no pre-compute).
#[test]
fn dataset_without_uri_counts_as_no_dataset() {
    let mut fx = Fx::scone();
    fx.with_dataset(None);
    for blank in ["", "  "] {
        if let Some(d) = fx.dataset.as_mut() {
            d.multiaddr = blank.into();
        }
        let plan = fx.plan().unwrap();
        assert!(plan.pre_compute.is_none(), "{blank:?}");
    }
}

#[test]
fn input_files_without_dataset() {
    let mut fx = Fx::scone();
    fx.set_params(r#"{"iexec_input_files":["https://example.com/foo.txt","http://b/2"],"iexec_result_storage_provider":"ipfs"}"#);
    let plan = fx.plan().unwrap();
    let name_2 = encode_prefixed(crate::hash::sha256(b"http://b/2"));
    let mut pre = env(&[
        (IEXEC_PRE_COMPUTE_OUT, "/iexec_in"),
        (IS_DATASET_REQUIRED, "false"),
        (IEXEC_DEAL_ID, DEAL_ID),
        (IEXEC_TASK_INDEX, "2"),
        (IEXEC_INPUT_FILES_NUMBER, "2"),
        (IEXEC_INPUT_FILES_FOLDER, "/iexec_in"),
        ("IEXEC_INPUT_FILE_URL_1", "https://example.com/foo.txt"),
        ("IEXEC_INPUT_FILE_URL_2", "http://b/2"),
    ]);
    pre.extend(sign_env(&fx));
    assert_eq!(exposed(&plan.pre_compute.as_ref().unwrap().env), pre);

    let mut app = base_app_env(&fx);
    set(&mut app, IEXEC_INPUT_FILES_NUMBER, "2");
    set(&mut app, IEXEC_INPUT_FILES_FOLDER, "/iexec_in");
    // reference/iexec-client-chain.md §11.3
    set(
        &mut app,
        "IEXEC_INPUT_FILE_NAME_1",
        "0x5aaad10112bc2296b5b64fdad4da1bfb2e774da7523ca918b3e0c020a7fb61b6",
    );
    set(&mut app, "IEXEC_INPUT_FILE_NAME_2", &name_2);
    assert_eq!(exposed(&plan.app.env), app);
}

#[test]
fn result_encryption() {
    let mut fx = Fx::scone();
    fx.set_params(r#"{"iexec_result_encryption":true,"iexec_result_storage_provider":"ipfs"}"#);
    assert_eq!(
        fx.error(),
        E::PostComputeGetEncryptionTokensFailedEmptyBeneficiaryKey
    );
    fx.web2(a(BENEFICIARY), WEB2_RESULT_ENCRYPTION_PUBLIC_KEY, "   ");
    assert_eq!(
        fx.error(),
        E::PostComputeGetEncryptionTokensFailedEmptyBeneficiaryKey
    );
    // Looked up for the beneficiary, not the requester.
    fx.web2(a(REQUESTER), WEB2_RESULT_ENCRYPTION_PUBLIC_KEY, "LS0tWRONG");
    assert_eq!(
        fx.error(),
        E::PostComputeGetEncryptionTokensFailedEmptyBeneficiaryKey
    );
    fx.web2(
        a(BENEFICIARY),
        WEB2_RESULT_ENCRYPTION_PUBLIC_KEY,
        " LS0tLS1CRUdJTg==\n",
    );
    let plan = fx.plan().unwrap();
    let mut post = base_post_env(&fx);
    set(&mut post, RESULT_ENCRYPTION, "true");
    set(&mut post, RESULT_ENCRYPTION_PUBLIC_KEY, "LS0tLS1CRUdJTg==");
    assert_eq!(exposed(&plan.post_compute.env), post);

    // Off: the key is neither needed nor delivered.
    let mut off = Fx::scone();
    off.set_params(r#"{"iexec_result_encryption":false,"iexec_result_storage_provider":"ipfs"}"#);
    off.web2(
        a(BENEFICIARY),
        WEB2_RESULT_ENCRYPTION_PUBLIC_KEY,
        "LS0tLS1CRUdJTg==",
    );
    assert_eq!(
        exposed(&off.plan().unwrap().post_compute.env),
        base_post_env(&off)
    );
}

#[test]
fn callback_empties_storage() {
    let mut fx = Fx::scone();
    fx.deal.callback = Address::repeat_byte(0x77);
    fx.set_params("{}");
    fx.secrets.clear();
    let plan = fx.plan().unwrap();
    let mut post = env(&[
        (RESULT_ENCRYPTION, "false"),
        (RESULT_ENCRYPTION_PUBLIC_KEY, ""),
        (RESULT_STORAGE_CALLBACK, "true"),
        (RESULT_STORAGE_PROVIDER, ""),
        (RESULT_STORAGE_PROXY, ""),
        (RESULT_STORAGE_TOKEN, ""),
    ]);
    post.extend(sign_env(&fx));
    assert_eq!(exposed(&plan.post_compute.env), post);
    assert!(secrets_needed(&fx.task()).web2.is_empty());
}

#[test]
fn dropbox_uses_requester_token() {
    let mut fx = Fx::scone();
    fx.set_params(r#"{"iexec_result_storage_provider":"dropbox"}"#);
    assert_eq!(fx.error(), E::PostComputeGetStorageTokensFailed);
    fx.web2(a(REQUESTER), WEB2_DROPBOX_TOKEN, "\tdropbox-token ");
    let plan = fx.plan().unwrap();
    let mut post = base_post_env(&fx);
    set(&mut post, RESULT_STORAGE_PROVIDER, "dropbox");
    set(&mut post, RESULT_STORAGE_PROXY, "");
    set(&mut post, RESULT_STORAGE_TOKEN, "dropbox-token");
    assert_eq!(exposed(&plan.post_compute.env), post);
    assert_eq!(
        secrets_needed(&fx.task()).web2,
        vec![SecretId::web2(a(REQUESTER), WEB2_DROPBOX_TOKEN).unwrap()]
    );

    fx.set_params(
        r#"{"iexec_result_storage_provider":"dropbox","iexec_result_storage_proxy":"https://p"}"#,
    );
    let plan = fx.plan().unwrap();
    set(&mut post, RESULT_STORAGE_PROXY, "https://p");
    assert_eq!(exposed(&plan.post_compute.env), post);
}

#[test]
fn proxy_from_params_then_workerpool_owner_then_empty() {
    let mut fx = Fx::scone();
    // Params proxy wins over the pool owner's secret, verbatim.
    fx.set_params(r#"{"iexec_result_storage_provider":"ipfs","iexec_result_storage_proxy":"https://params.proxy"}"#);
    let mut post = base_post_env(&fx);
    set(&mut post, RESULT_STORAGE_PROXY, "https://params.proxy");
    assert_eq!(exposed(&fx.plan().unwrap().post_compute.env), post);
    // No params proxy: the pool owner's web2 secret, trimmed.
    fx.set_params(r#"{"iexec_result_storage_provider":"ipfs"}"#);
    assert_eq!(
        exposed(&fx.plan().unwrap().post_compute.env),
        base_post_env(&fx)
    );
    // Neither: empty.
    fx.secrets
        .remove(&SecretId::web2(a(POOL_OWNER), WEB2_RESULT_PROXY_URL).unwrap());
    let mut post = base_post_env(&fx);
    set(&mut post, RESULT_STORAGE_PROXY, "");
    assert_eq!(exposed(&fx.plan().unwrap().post_compute.env), post);
    // A provider-less deal takes the IPFS path, provider delivered empty.
    fx.set_params("{}");
    set(&mut post, RESULT_STORAGE_PROVIDER, "");
    assert_eq!(exposed(&fx.plan().unwrap().post_compute.env), post);
}

#[test]
fn worker_ipfs_token_preferred_over_requester() {
    let mut fx = Fx::scone();
    fx.web2(a(REQUESTER), WEB2_IPFS_TOKEN, "requester-jwt");
    assert_eq!(
        exposed(&fx.plan().unwrap().post_compute.env),
        base_post_env(&fx)
    );
    // Without the worker's token, the requester's.
    fx.web2(a(WORKER), WEB2_IPFS_TOKEN, " ");
    let mut post = base_post_env(&fx);
    set(&mut post, RESULT_STORAGE_TOKEN, "requester-jwt");
    assert_eq!(exposed(&fx.plan().unwrap().post_compute.env), post);
    fx.secrets
        .remove(&SecretId::web2(a(WORKER), WEB2_IPFS_TOKEN).unwrap());
    assert_eq!(exposed(&fx.plan().unwrap().post_compute.env), post);
    // Neither.
    fx.secrets
        .remove(&SecretId::web2(a(REQUESTER), WEB2_IPFS_TOKEN).unwrap());
    assert_eq!(fx.error(), E::PostComputeGetStorageTokensFailed);
    assert_eq!(
        secrets_needed(&fx.task()).web2,
        vec![
            SecretId::web2(a(WORKER), WEB2_IPFS_TOKEN).unwrap(),
            SecretId::web2(a(REQUESTER), WEB2_IPFS_TOKEN).unwrap(),
            SecretId::web2(a(POOL_OWNER), WEB2_RESULT_PROXY_URL).unwrap(),
        ]
    );
}

#[test]
fn tdx_uses_app_checksum_and_the_single_pipeline() {
    let mut fx = Fx::tdx();
    fx.with_dataset(Some("k"));
    let plan = fx.plan().unwrap();
    assert_eq!(plan.framework, TeeFramework::Tdx);
    assert_eq!(plan.pipeline_version, "tdx-1");
    assert_eq!(plan.app.measurement.to_prefixed(), APP_CHECKSUM);
    assert_eq!(plan.app.image, "docker.io/org/app:1.0.0");
    assert_eq!(
        (plan.app.command.as_deref(), plan.app.heap_size_bytes),
        (None, None)
    );
    let pre = plan.pre_compute.as_ref().unwrap();
    assert_eq!(
        (pre.image.as_str(), pre.measurement.as_hex()),
        ("reg/pre:tdx-1", PRE_FP)
    );
    // The registers each TD must prove: the stages' tables; for the app, the app TD image
    // with RTMR3 derived from the app's checksum.
    use crate::measurement::{Register, app_rtmr3};
    let pre_tdx = pre.tdx.as_ref().unwrap();
    assert_eq!(
        (pre_tdx.mrtd, pre_tdx.rtmr0, pre_tdx.rtmr1),
        (
            Register::Exact([0x11; 48]),
            Register::Exact([0x12; 48]),
            Register::Any
        )
    );
    assert_eq!(
        plan.post_compute.tdx.as_ref().unwrap().mrtd,
        Register::Exact([0x21; 48])
    );
    let app_tdx = plan.app.tdx.as_ref().unwrap();
    let checksum: B256 = APP_CHECKSUM.parse().unwrap();
    assert_eq!(
        app_tdx,
        &crate::measurement::TdxMeasurement {
            mrtd: Register::Exact([0x31; 48]),
            rtmr0: Register::Exact([0x32; 48]),
            rtmr1: Register::Exact([0x33; 48]),
            rtmr2: Register::Exact([0x34; 48]),
            rtmr3: Register::Exact(app_rtmr3(&checksum)),
            mr_config_id: Register::Any,
        }
    );
    let dataset_lower = DATASET.to_lowercase();
    let mut app = base_app_env(&fx);
    set(&mut app, IEXEC_DATASET_ADDRESS, &dataset_lower);
    set(&mut app, IEXEC_DATASET_FILENAME, &dataset_lower);
    assert_eq!(exposed(&plan.app.env), app);
    assert_eq!(exposed(&plan.post_compute.env), base_post_env(&fx));
    // An enclave configuration on a TDX app is ignored, even an invalid one.
    fx.app.mrenclave = b"{not json".to_vec();
    assert!(fx.plan().is_ok());
}

#[test]
fn legacy_scone_fingerprint_delivers_fspf() {
    let mut fx = Fx::scone();
    let key = "c".repeat(64);
    let tag = "d".repeat(32);
    fx.app.mrenclave = scone_config()
        .replace(APP_FP, &format!("{key}|{tag}|{APP_FP}"))
        .into_bytes();
    let plan = fx.plan().unwrap();
    assert_eq!(plan.app.measurement.as_hex(), APP_FP);
    let mut app = base_app_env(&fx);
    set(&mut app, "SCONE_FSPF_KEY", &key);
    set(&mut app, "SCONE_FSPF_TAG", &tag);
    assert_eq!(exposed(&plan.app.env), app);
    assert!(plan.app.env.is_sensitive("SCONE_FSPF_KEY"));
    assert!(!format!("{plan:?}").contains(&key));
}

#[test]
fn app_command_appends_args() {
    let mut fx = Fx::scone();
    fx.set_params(r#"{"iexec_args":"--in a b","iexec_result_storage_provider":"ipfs"}"#);
    assert_eq!(
        fx.plan().unwrap().app.command.as_deref(),
        Some("python /app/app.py --in a b")
    );
    fx.set_params(r#"{"iexec_args":"  ","iexec_result_storage_provider":"ipfs"}"#);
    assert_eq!(
        fx.plan().unwrap().app.command.as_deref(),
        Some("python /app/app.py")
    );
}

#[test]
fn gramine_app() {
    let mut fx = Fx::scone();
    fx.deal.tag = tag(0x05);
    fx.sms_framework = TeeFramework::Gramine;
    fx.pipelines =
        Pipelines::from_toml_str(&pipelines_toml(&["v5"]), TeeFramework::Gramine).unwrap();
    fx.app.mrenclave =
        format!(r#"{{"framework":"GRAMINE","version":"v5","fingerprint":"{APP_FP}"}}"#)
            .into_bytes();
    let plan = fx.plan().unwrap();
    assert_eq!(plan.app.measurement.as_hex(), APP_FP);
    assert_eq!(plan.app.command, None);
    assert_eq!(exposed(&plan.app.env), base_app_env(&fx));
    // A SCONE configuration does not run on GRAMINE.
    fx.app.mrenclave = scone_config().into_bytes();
    assert_eq!(fx.error(), E::AppComputeInvalidEnclaveConfig);
}

#[test]
fn enclave_configuration_errors() {
    let mut fx = Fx::scone();
    fx.app.mrenclave = Vec::new();
    assert_eq!(fx.error(), E::AppComputeNoEnclaveConfig);
    fx.app.mrenclave = b"{\"framework\":\"SCONE\",\"extra\":1}".to_vec();
    assert_eq!(fx.error(), E::AppComputeInvalidEnclaveConfig);
    fx.app.mrenclave = scone_config().replace("1073741824", "0").into_bytes();
    let e = fx.plan().unwrap_err();
    assert_eq!(e.code, E::AppComputeInvalidEnclaveConfig);
    assert!(e.detail.contains("heapSize"), "{}", e.detail);
    fx.app.mrenclave = scone_config().replace("v5", "v9").into_bytes();
    let e = fx.plan().unwrap_err();
    assert_eq!(e.code, E::AppComputeInvalidEnclaveConfig);
    assert!(
        e.detail.contains("no SCONE pipeline for version 'v9'"),
        "{}",
        e.detail
    );
    fx.app.mrenclave = scone_config().replace("v5", "v4").into_bytes();
    assert_eq!(fx.plan().unwrap().pipeline_version, "v4");
}

#[test]
fn framework_and_task_checks() {
    let mut fx = Fx::scone();
    fx.deal.tag = tag(0x01);
    assert_eq!(fx.error(), E::ExecutionNotAuthorizedNoMatchOnchainType);
    fx.deal.tag = tag(0x09);
    assert_eq!(fx.error(), E::ExecutionNotAuthorizedTeeFrameworkMismatch);
    assert_eq!(fx.plan().unwrap_err().http_status(), 409);
    fx.deal.tag = tag(0x03);
    fx.set_params(r#"{"bulk_cid":"QmBulk"}"#);
    assert_eq!(fx.error(), E::PreComputeBulkProcessingNotSupported);
    fx.set_params("{}");
    fx.app.address = Address::repeat_byte(9);
    assert_eq!(fx.error(), E::GetTaskDescriptionFailed);
    let mut gramine_pipelines = Fx::scone();
    gramine_pipelines.pipelines =
        Pipelines::from_toml_str(&pipelines_toml(&["v5"]), TeeFramework::Gramine).unwrap();
    assert_eq!(gramine_pipelines.error(), E::SecureSessionGenerationFailed);
}

#[test]
fn sign_token_checks() {
    let mut fx = Fx::scone();
    fx.worker = Address::ZERO;
    assert_eq!(fx.error(), E::GetSignatureTokensFailedEmptyWorkerAddress);
    let mut fx = Fx::scone();
    fx.enclave_challenge = Address::ZERO;
    assert_eq!(
        fx.error(),
        E::GetSignatureTokensFailedEmptyPublicEnclaveChallenge
    );
    let mut fx = Fx::scone();
    fx.key = None;
    assert_eq!(fx.error(), E::GetSignatureTokensFailedEmptyTeeChallenge);
    fx.key = Some(SecretValue::new(Vec::new()));
    assert_eq!(fx.error(), E::GetSignatureTokensFailedEmptyTeeCredentials);
    fx.key = Some(SecretValue::from("0x1234"));
    assert_eq!(fx.error(), E::GetSignatureTokensFailedEmptyTeeCredentials);
    fx.key = Some(SecretValue::new(vec![0; 32]));
    assert_eq!(fx.error(), E::GetSignatureTokensFailedEmptyTeeCredentials);
    // Another task's challenge.
    fx.key = Some(SecretValue::new(vec![7; 32]));
    let e = fx.plan().unwrap_err();
    assert_eq!(e.code, E::ExecutionNotAuthorizedEnclaveChallengeMismatch);
    assert_eq!(e.http_status(), 401);
    // Raw bytes and unprefixed hex are both accepted.
    let raw = alloy_primitives::hex::decode(CHALLENGE_KEY).unwrap();
    fx.key = Some(SecretValue::new(raw));
    assert_eq!(
        exposed(&fx.plan().unwrap().post_compute.env),
        base_post_env(&fx)
    );
    fx.key = Some(SecretValue::from(&CHALLENGE_KEY[2..]));
    assert_eq!(
        exposed(&fx.plan().unwrap().post_compute.env),
        base_post_env(&fx)
    );
}

#[test]
fn secrets_needed_lists_every_lookup() {
    let mut fx = Fx::scone();
    fx.with_dataset(None);
    fx.set_params(r#"{"iexec_secrets":{"2":"b","1":"a","3":"a"},"iexec_result_encryption":true,"iexec_result_storage_proxy":"https://p"}"#);
    let needed = secrets_needed(&fx.task());
    let name = |n: &str| RequesterSecretName::parse(n).unwrap();
    assert_eq!(
        needed,
        SecretsNeeded {
            dataset_key: Some(SecretId::web3(a(DATASET))),
            app_developer: SecretId::app_developer(a(APP)),
            requester: vec![
                SecretId::requester(a(REQUESTER), &name("a")),
                SecretId::requester(a(REQUESTER), &name("b"))
            ],
            web2: vec![
                SecretId::web2(a(BENEFICIARY), WEB2_RESULT_ENCRYPTION_PUBLIC_KEY).unwrap(),
                SecretId::web2(a(WORKER), WEB2_IPFS_TOKEN).unwrap(),
                SecretId::web2(a(REQUESTER), WEB2_IPFS_TOKEN).unwrap(),
            ],
            bulk_dataset_keys: Vec::new(),
        }
    );
    assert_eq!(needed.all().len(), 7);
}

#[test]
fn session_ids() {
    let task: B256 = "0xe06c86d6bb750dbd9be9e002482854b3b3f21550dbe37236767b9cac29e3ce28"
        .parse()
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let id = session_id(&mut rng, &task);
    assert_eq!(id.len(), 80);
    assert!(id[..10].bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
    assert_eq!(
        &id[10..],
        "00000xe06c86d6bb750dbd9be9e002482854b3b3f21550dbe37236767b9cac29e3ce28"
    );
    let again = session_id(&mut rand::rngs::StdRng::seed_from_u64(7), &task);
    assert_eq!(id, again);
    assert_ne!(session_id(&mut rng, &task), id);
}

/// `sms_core::explain::plan_checks` runs the builder's own steps: its first failing check
/// carries the code the builder answers, and a buildable plan fails no check.
#[test]
fn explain_agrees_with_the_builder() {
    use crate::explain::{CheckStatus, plan_checks};
    fn first_failure(fx: &Fx) -> Option<String> {
        let inputs = SessionInputs {
            task: fx.task(),
            sms_framework: fx.sms_framework,
            app: &fx.app,
            dataset: fx.dataset.as_ref(),
            pipelines: &fx.pipelines,
            enclave_challenge: Address::ZERO,
            challenge_private_key: None,
            secrets: &fx.secrets,
            bulk: None,
        };
        let checks = plan_checks(&inputs, &secrets_needed(&fx.task()));
        checks
            .iter()
            .find(|c| c.status == CheckStatus::Fail)
            .and_then(|c| c.code.clone())
    }
    let agree = |label: &str, fx: &Fx| {
        let built = fx.plan().err().map(|e| e.code.as_str().to_owned());
        assert_eq!(first_failure(fx), built, "{label}");
    };
    agree("scone", &Fx::scone());
    agree("tdx", &Fx::tdx());
    let mut fx = Fx::scone();
    fx.with_dataset(Some("key"));
    agree("dataset with key", &fx);
    fx.secrets.remove(&SecretId::web3(a(DATASET)));
    agree("dataset without key", &fx);
    let mut fx = Fx::scone();
    fx.app.mrenclave = Vec::new();
    agree("no enclave configuration", &fx);
    let mut fx = Fx::scone();
    fx.set_params(r#"{"bulk_cid":"QmBulk"}"#);
    agree("bulk", &fx);
    let mut fx = Fx::scone();
    fx.app.address = Address::repeat_byte(9);
    agree("not the deal's app", &fx);
    let mut fx = Fx::scone();
    fx.pipelines =
        Pipelines::from_toml_str(&pipelines_toml(&["v5"]), TeeFramework::Gramine).unwrap();
    agree("pipelines of another framework", &fx);
    let mut fx = Fx::scone();
    fx.set_params(r#"{"iexec_result_encryption":true}"#);
    agree("encryption without key", &fx);
    let mut fx = Fx::scone();
    fx.secrets.clear();
    agree("no storage token", &fx);
}
