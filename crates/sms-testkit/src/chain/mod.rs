//! [`LocalChain`]: an anvil node on a free loopback port with the real iExec PoCo protocol
//! deployed (native mode), plus helpers to create registry entries, match TEE deals and move
//! tasks through their statuses.
//!
//! The protocol is deployed once, its state dumped and cached on disk under
//! `tools/chain/artifacts/anvil-state/` (keyed by the anvil binary, the artifacts and this
//! module's source); every [`LocalChain::start`] then boots a fresh node and loads that state.
//! Gas is free (`--base-fee 0 --gas-price 0`), so any random wallet can send transactions.

mod contracts;
mod deploy;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U256, b256, hex, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent, SolStruct};
use alloy::transports::http::reqwest::Url;
use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::json;
use sms_core::ledger::EntryKind;
use tokio::sync::OnceCell;

pub use contracts::eip712;
use contracts::{
    IHub, IRegistry, SignedAppOrder, SignedDatasetOrder, SignedRequestOrder, SignedWorkerpoolOrder,
};
pub use deploy::CATEGORIES;

/// Chain id of every local chain (Bellecour's, which the iExec SDK knows).
pub const CHAIN_ID: u64 = 134;
/// Version of `@iexec/poco` whose artifacts `tools/chain/setup.sh` extracts.
pub const POCO_VERSION: &str = "6.1.0";
const SETUP_HINT: &str =
    "run tools/chain/setup.sh (needs node/npm) to install anvil and the PoCo artifacts";

/// Addresses of the deployed protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    /// The diamond proxy (the "hub", `verifyingContract` of orders).
    pub hub: Address,
    pub app_registry: Address,
    pub dataset_registry: Address,
    pub workerpool_registry: Address,
    pub chain_id: u64,
}

impl Deployment {
    pub fn registry(&self, kind: EntryKind) -> Address {
        match kind {
            EntryKind::App => self.app_registry,
            EntryKind::Dataset => self.dataset_registry,
            EntryKind::Workerpool => self.workerpool_registry,
        }
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "hub": self.hub, "app_registry": self.app_registry, "dataset_registry": self.dataset_registry,
            "workerpool_registry": self.workerpool_registry, "chain_id": self.chain_id,
        })
    }

    fn from_json(v: &serde_json::Value) -> Result<Self> {
        let addr = |k: &str| -> Result<Address> {
            v[k].as_str()
                .ok_or_else(|| anyhow!("missing {k}"))?
                .parse()
                .with_context(|| format!("bad {k}"))
        };
        Ok(Self {
            hub: addr("hub")?,
            app_registry: addr("app_registry")?,
            dataset_registry: addr("dataset_registry")?,
            workerpool_registry: addr("workerpool_registry")?,
            chain_id: v["chain_id"]
                .as_u64()
                .ok_or_else(|| anyhow!("missing chain_id"))?,
        })
    }
}

/// `tools/chain` of this workspace.
pub fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/chain")
}

/// The anvil binary: `$SMS_ANVIL`, else the one `tools/chain/setup.sh` installs. Panics when missing.
pub fn anvil_path() -> PathBuf {
    let path = std::env::var_os("SMS_ANVIL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            tools_dir().join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
        });
    assert!(
        path.is_file(),
        "anvil not found at {}: {SETUP_HINT} (or set SMS_ANVIL)",
        path.display()
    );
    path
}

/// The extracted `@iexec/poco` package: `$SMS_POCO_ARTIFACTS`, else `tools/chain/artifacts/poco-<v>`.
/// Panics when missing.
pub fn poco_artifacts_dir() -> PathBuf {
    let path = std::env::var_os("SMS_POCO_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools_dir().join(format!("artifacts/poco-{POCO_VERSION}")));
    assert!(
        path.join("artifacts/contracts/Diamond.sol/Diamond.json")
            .is_file()
            && path
                .join("deployments/arbitrumSepolia/DiamondCutFacet.json")
                .is_file(),
        "iExec PoCo artifacts not found in {}: {SETUP_HINT} (or set SMS_POCO_ARTIFACTS)",
        path.display()
    );
    path
}

/// A running anvil process and how to reach it.
struct Node {
    child: Option<Child>,
    port: u16,
    url: String,
    parsed_url: Url,
    chain_id: u64,
}

impl Node {
    /// Starts anvil on `port` (0 = any free port) and waits until it answers.
    async fn spawn(port: u16) -> Result<Self> {
        let anvil = anvil_path();
        let mut child = Command::new(&anvil)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--chain-id",
                &CHAIN_ID.to_string(),
                "--base-fee",
                "0",
                "--gas-price",
                "0",
            ])
            .args(["--accounts", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", anvil.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("anvil stdout"))?;
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("anvil stderr"))?;
        let (tx, rx) = mpsc::channel();
        // Reads the listening port, then keeps draining so anvil never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.trim().strip_prefix("Listening on ") {
                    let _ = tx.send(addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()));
                }
            }
        });
        let (etx, erx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.len() < 20 {
                    lines.push(line);
                }
            }
            let _ = etx.send(lines.join("\n"));
        });
        let found = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)))
            .await
            .context("waiting for anvil")?;
        let port = match found {
            Ok(Some(port)) => port,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let err = erx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
                bail!("anvil did not start on port {port}: {err}");
            }
        };
        let url = format!("http://127.0.0.1:{port}");
        let parsed_url = url.parse().context("anvil url")?;
        let node = Self {
            child: Some(child),
            port,
            url,
            parsed_url,
            chain_id: CHAIN_ID,
        };
        let provider = node.provider();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match provider.get_chain_id().await {
                Ok(id) if id == CHAIN_ID => break,
                Ok(id) => bail!("anvil answers chain id {id}, expected {CHAIN_ID}"),
                Err(e) if Instant::now() > deadline => {
                    bail!("anvil on port {port} does not answer: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        Ok(node)
    }

    fn provider(&self) -> DynProvider {
        init_tls();
        ProviderBuilder::new()
            .connect_http(self.parsed_url.clone())
            .erased()
    }

    async fn rpc<R>(&self, method: &'static str, params: serde_json::Value) -> Result<R>
    where
        R: serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + Unpin + 'static,
    {
        self.provider()
            .raw_request(method.into(), params)
            .await
            .with_context(|| format!("{method} failed"))
    }

    /// Sends a zero-gas-price transaction from `signer` and returns its successful receipt.
    async fn send(
        &self,
        signer: &PrivateKeySigner,
        tx: TransactionRequest,
    ) -> Result<TransactionReceipt> {
        init_tls();
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer.clone()))
            .connect_http(self.parsed_url.clone());
        let tx = tx.with_from(signer.address()).with_gas_price(0);
        let pending = provider.send_transaction(tx).await?;
        let hash = *pending.tx_hash();
        // Anvil mines on submission: the receipt is there at once (no 250 ms polling).
        let deadline = Instant::now() + Duration::from_secs(10);
        let receipt = loop {
            if let Some(receipt) = provider.get_transaction_receipt(hash).await? {
                break receipt;
            }
            ensure!(Instant::now() < deadline, "no receipt for {hash}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        ensure!(receipt.status(), "transaction {hash} reverted");
        Ok(receipt)
    }

    async fn deploy(&self, signer: &PrivateKeySigner, code: Bytes) -> Result<Address> {
        let receipt = self
            .send(signer, TransactionRequest::default().with_deploy_code(code))
            .await?;
        receipt
            .contract_address
            .ok_or_else(|| anyhow!("no contract address in receipt"))
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The deployed protocol as an anvil state dump, shared by every chain of the process.
struct Snapshot {
    state: Bytes,
    deployment: Deployment,
}

static SNAPSHOT: OnceCell<Snapshot> = OnceCell::const_new();

/// Fixed deployer key, so the protocol lands at the same addresses on every machine. It also
/// sends the fixture's protocol-level transactions (entry creation, initialize, claim).
fn deployer() -> Result<PrivateKeySigner> {
    Ok(PrivateKeySigner::from_bytes(&keccak256(
        b"sms-testkit deployer",
    ))?)
}

/// reqwest is built with `rustls-no-provider`: install ring before any client is built.
fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn snapshot_key(anvil: &Path, artifacts: &Path) -> String {
    let mut material = Vec::new();
    for path in [anvil, artifacts] {
        material.extend_from_slice(path.to_string_lossy().as_bytes());
        if let Ok(meta) = std::fs::metadata(path) {
            material.extend_from_slice(&meta.len().to_be_bytes());
            if let Ok(modified) = meta
                .modified()
                .map(|t| t.duration_since(UNIX_EPOCH).unwrap_or_default())
            {
                material.extend_from_slice(&modified.as_nanos().to_be_bytes());
            }
        }
    }
    material.extend_from_slice(include_str!("deploy.rs").as_bytes());
    material.extend_from_slice(include_str!("contracts.rs").as_bytes());
    material.extend_from_slice(include_str!("mod.rs").as_bytes());
    alloy::hex::encode(&keccak256(&material)[..12])
}

async fn snapshot() -> Result<&'static Snapshot> {
    SNAPSHOT
        .get_or_try_init(|| async {
            let anvil = anvil_path();
            let artifacts = poco_artifacts_dir();
            let dir = tools_dir().join("artifacts/anvil-state");
            let file = dir.join(format!("{}.json", snapshot_key(&anvil, &artifacts)));
            if let Ok(text) = std::fs::read_to_string(&file)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && let (Ok(deployment), Some(Ok(state))) = (
                    Deployment::from_json(&v["deployment"]),
                    v["state"].as_str().map(str::parse::<Bytes>),
                )
            {
                return Ok(Snapshot { state, deployment });
            }
            let started = Instant::now();
            let node = Node::spawn(0).await?;
            let deployment = deploy::deploy(&node, &deployer()?, &artifacts).await?;
            let state: Bytes = node.rpc("anvil_dumpState", json!([])).await?;
            eprintln!(
                "sms-testkit: PoCo {POCO_VERSION} deployed in {:?}",
                started.elapsed()
            );
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let tmp = dir.join(format!(".{}.{}", std::process::id(), unique()));
            let body = json!({ "deployment": deployment.to_json(), "state": state });
            std::fs::write(&tmp, body.to_string())
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &file).with_context(|| format!("writing {}", file.display()))?;
            // Dumps of older deployments (other anvil, artifacts or fixture code) are dead weight.
            for old in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = old.path();
                if path != file && path.extension().is_some_and(|e| e == "json") {
                    let _ = std::fs::remove_file(path);
                }
            }
            Ok(Snapshot { state, deployment })
        })
        .await
}

fn unique() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(40)
}

/// A fresh 32-byte salt.
pub fn salt() -> B256 {
    keccak256(
        [
            unique().to_be_bytes().as_slice(),
            &std::process::id().to_be_bytes(),
        ]
        .concat(),
    )
}

/// A transaction calling `call` on `to`.
fn call_tx(to: Address, call: impl SolCall) -> TransactionRequest {
    TransactionRequest::default()
        .with_to(to)
        .with_input(call.abi_encode())
}

/// A new random wallet (gas is free on a local chain, no funding needed).
pub fn wallet() -> PrivateKeySigner {
    PrivateKeySigner::random()
}

/// An app entry to register.
#[derive(Clone, Debug)]
pub struct AppSpec {
    pub name: String,
    pub app_type: String,
    pub multiaddr: Vec<u8>,
    pub checksum: B256,
    /// `m_appMREnclave`: the enclave configuration JSON bytes (empty for a non-TEE/TDX app).
    pub mrenclave: Vec<u8>,
}

/// Scone enclave configuration of the iExec SDK template app.
pub const SCONE_MRENCLAVE: &str = r#"{"framework":"SCONE","version":"v5.9","entrypoint":"python /app/app.py","heapSize":1073741824,"fingerprint":"2d4b9efd066d0bb058b8da79bf8551be7d244779bc41d03a12201a4004779609"}"#;

impl AppSpec {
    /// A Scone TEE app (docker image as UTF-8 multiaddr, enclave config JSON).
    pub fn scone(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            app_type: "DOCKER".to_owned(),
            multiaddr: b"docker.io/iexechub/python-hello-world:8.0.0-sconify-5.9.1-v15-production"
                .to_vec(),
            checksum: b256!("0x15de77fd7ac448028884256b3ab376e7d4560e9ef6acf0594ea0b3c031d5d395"),
            mrenclave: SCONE_MRENCLAVE.as_bytes().to_vec(),
        }
    }
}

/// A dataset entry to register.
#[derive(Clone, Debug)]
pub struct DatasetSpec {
    pub name: String,
    pub multiaddr: Vec<u8>,
    pub checksum: B256,
}

impl DatasetSpec {
    /// A dataset whose multiaddr is the binary form of `/ipfs/QmW2WQi7j6c7UgJTarActp7tDNikE4B2qXtFCfLPdsgaTQ`.
    pub fn ipfs(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            multiaddr: hex!(
                "a5032212207237a7f4091a74ae95514890fa86a2e8a36037c350ea71c06a34c8cbe25a5057"
            )
            .to_vec(),
            checksum: keccak256(name.as_bytes()),
        }
    }
}

/// What a deal is made of; see [`LocalChain::deal`] for a ready-made one.
#[derive(Clone, Debug)]
pub struct DealSpec {
    pub app: Address,
    pub app_owner: PrivateKeySigner,
    /// Dataset address and its owner's key.
    pub dataset: Option<(Address, PrivateKeySigner)>,
    pub workerpool: Address,
    pub workerpool_owner: PrivateKeySigner,
    pub requester: PrivateKeySigner,
    pub beneficiary: Address,
    pub callback: Address,
    pub tag: B256,
    pub category: u64,
    pub trust: u64,
    pub volume: u64,
    pub params: String,
}

/// Everything about a deal made by [`LocalChain::deal`]: the actors' keys and the entries.
#[derive(Clone, Debug)]
pub struct TestDeal {
    pub deal_id: B256,
    pub spec: DealSpec,
    /// A worker wallet and an enclave-challenge key, for contributions.
    pub worker: PrivateKeySigner,
    pub enclave: PrivateKeySigner,
}

impl TestDeal {
    pub fn task_id(&self, index: u64) -> B256 {
        task_id(&self.deal_id, index)
    }
}

/// `keccak256(dealid ‖ uint256 idx)`.
pub fn task_id(deal_id: &B256, index: u64) -> B256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(deal_id.as_slice());
    buf[32..].copy_from_slice(&U256::from(index).to_be_bytes::<32>());
    keccak256(buf)
}

/// Tag of a Scone TEE deal (`tee,scone` = `0x…03`).
pub fn scone_tag() -> B256 {
    let mut tag = B256::ZERO;
    tag[31] = 0x03;
    tag
}

/// A fresh anvil chain (chain id 134) with the iExec PoCo protocol deployed. Killed on drop.
pub struct LocalChain {
    node: Node,
    deployment: Deployment,
    /// State saved by [`LocalChain::stop`], loaded back by [`LocalChain::resume`].
    saved: Option<Bytes>,
}

impl LocalChain {
    /// Starts a fresh chain. Panics (with a hint to run `tools/chain/setup.sh`) when anvil or the
    /// PoCo artifacts are missing, and on any other failure.
    pub async fn start() -> Self {
        match Self::try_start().await {
            Ok(chain) => chain,
            Err(e) => panic!("LocalChain failed to start: {e:#}"),
        }
    }

    pub async fn try_start() -> Result<Self> {
        let snapshot = snapshot().await?;
        let node = Node::spawn(0).await?;
        let loaded: bool = node.rpc("anvil_loadState", json!([snapshot.state])).await?;
        ensure!(loaded, "anvil_loadState returned false");
        Ok(Self {
            node,
            deployment: snapshot.deployment.clone(),
            saved: None,
        })
    }

    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    pub fn hub(&self) -> Address {
        self.deployment.hub
    }

    pub fn chain_id(&self) -> u64 {
        self.deployment.chain_id
    }

    /// `http://127.0.0.1:<port>`.
    pub fn rpc_url(&self) -> &str {
        &self.node.url
    }

    pub fn port(&self) -> u16 {
        self.node.port
    }

    /// The chain flags of a server reading this chain: reads bounded by `timeout_ms`, one
    /// retry, no freshness cache (every read sees the chain as it is now).
    pub fn server_chain_args(&self, timeout_ms: u64) -> sms_server::ChainArgs {
        sms_server::ChainArgs {
            chain_rpc: Some(self.rpc_url().to_owned()),
            hub: Some(self.hub()),
            chain_id: Some(self.chain_id()),
            chain_timeout_ms: timeout_ms,
            chain_retries: 1,
            chain_fresh_ms: 0,
        }
    }

    /// A read-only provider on this chain.
    pub fn provider(&self) -> DynProvider {
        self.node.provider()
    }

    /// Sends a transaction (gas price 0) from `signer`; fails when it reverts.
    pub async fn send(
        &self,
        signer: &PrivateKeySigner,
        tx: TransactionRequest,
    ) -> Result<TransactionReceipt> {
        self.node.send(signer, tx).await
    }

    /// Kills the node at once (its state is lost); calls to [`Self::rpc_url`] then fail.
    pub fn kill(&mut self) {
        self.node.kill();
    }

    /// Saves the node's state, then kills it; [`Self::resume`] brings it back on the same port.
    pub async fn stop(&mut self) -> Result<()> {
        self.saved = Some(self.node.rpc("anvil_dumpState", json!([])).await?);
        self.node.kill();
        Ok(())
    }

    /// Restarts the node on the same port with the state saved by [`Self::stop`] (or a fresh
    /// deployment after [`Self::kill`]).
    pub async fn resume(&mut self) -> Result<()> {
        self.node.kill();
        let state = match self.saved.take() {
            Some(state) => state,
            None => snapshot().await?.state.clone(),
        };
        let mut last = None;
        // The port was just released; retry briefly in case the OS has not freed it yet.
        for _ in 0..20 {
            match Node::spawn(self.node.port).await {
                Ok(node) => {
                    let loaded: bool = node.rpc("anvil_loadState", json!([state])).await?;
                    ensure!(loaded, "anvil_loadState returned false");
                    self.node = node;
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(last.unwrap_or_else(|| anyhow!("could not restart anvil")))
    }

    /// Moves chain time forward and mines a block.
    pub async fn increase_time(&self, seconds: u64) -> Result<()> {
        let _: serde_json::Value = self.node.rpc("evm_increaseTime", json!([seconds])).await?;
        let _: serde_json::Value = self.node.rpc("evm_mine", json!([])).await?;
        Ok(())
    }

    /// Latest block number.
    pub async fn block_number(&self) -> Result<u64> {
        Ok(self.provider().get_block_number().await?)
    }

    async fn create_entry(
        &self,
        registry: Address,
        tx: TransactionRequest,
        owner: Address,
    ) -> Result<Address> {
        let receipt = self.node.send(&deployer()?, tx.with_to(registry)).await?;
        receipt
            .logs()
            .iter()
            .filter(|log| log.address() == registry)
            .find_map(|log| IRegistry::Transfer::decode_log_data(log.data()).ok())
            .filter(|t| t.to == owner)
            .map(|t| Address::from_word(t.tokenId.into()))
            .ok_or_else(|| anyhow!("no ERC-721 Transfer event in the creation receipt"))
    }

    /// Registers an app owned by `owner`; returns its address.
    pub async fn create_app(&self, owner: Address, app: &AppSpec) -> Result<Address> {
        let registry = self.deployment.app_registry;
        let call = call_tx(
            registry,
            IRegistry::createAppCall::new((
                owner,
                app.name.clone(),
                app.app_type.clone(),
                app.multiaddr.clone().into(),
                app.checksum,
                app.mrenclave.clone().into(),
            )),
        );
        self.create_entry(registry, call, owner)
            .await
            .context("createApp")
    }

    /// Registers a dataset owned by `owner`; returns its address.
    pub async fn create_dataset(&self, owner: Address, dataset: &DatasetSpec) -> Result<Address> {
        let registry = self.deployment.dataset_registry;
        let call = call_tx(
            registry,
            IRegistry::createDatasetCall::new((
                owner,
                dataset.name.clone(),
                dataset.multiaddr.clone().into(),
                dataset.checksum,
            )),
        );
        self.create_entry(registry, call, owner)
            .await
            .context("createDataset")
    }

    /// Registers a workerpool owned by `owner`; returns its address.
    pub async fn create_workerpool(&self, owner: Address, description: &str) -> Result<Address> {
        let registry = self.deployment.workerpool_registry;
        let call = call_tx(
            registry,
            IRegistry::createWorkerpoolCall::new((owner, description.to_owned())),
        );
        self.create_entry(registry, call, owner)
            .await
            .context("createWorkerpool")
    }

    /// ERC-721 transfer of a registry entry from its owner `from` to `to`.
    pub async fn transfer(
        &self,
        kind: EntryKind,
        entry: Address,
        from: &PrivateKeySigner,
        to: Address,
    ) -> Result<()> {
        let call = IRegistry::transferFromCall::new((
            from.address(),
            to,
            U256::from_be_slice(entry.as_slice()),
        ));
        self.node
            .send(from, call_tx(self.deployment.registry(kind), call))
            .await
            .context("transferFrom")?;
        Ok(())
    }

    /// EIP-712 signature (65 bytes, v = 27/28) of an order by `signer`.
    pub fn sign_order<T: SolStruct>(&self, order: &T, signer: &PrivateKeySigner) -> Result<Bytes> {
        let hash = order.eip712_signing_hash(&eip712::domain(self.chain_id(), self.hub()));
        Ok(Bytes::copy_from_slice(
            &signer.sign_hash_sync(&hash)?.as_bytes(),
        ))
    }

    /// Signs the four orders of `spec` (prices 0) and matches them; returns the deal id.
    pub async fn match_orders(&self, spec: &DealSpec) -> Result<B256> {
        let volume = U256::from(spec.volume);
        let app = eip712::AppOrder {
            app: spec.app,
            appprice: U256::ZERO,
            volume,
            tag: spec.tag,
            datasetrestrict: Address::ZERO,
            workerpoolrestrict: Address::ZERO,
            requesterrestrict: Address::ZERO,
            salt: salt(),
        };
        let app_sign = self.sign_order(&app, &spec.app_owner)?;
        let (dataset_address, dataset_sign, dataset_salt) = match &spec.dataset {
            Some((address, owner)) => {
                let order = eip712::DatasetOrder {
                    dataset: *address,
                    datasetprice: U256::ZERO,
                    volume,
                    tag: B256::ZERO,
                    apprestrict: Address::ZERO,
                    workerpoolrestrict: Address::ZERO,
                    requesterrestrict: Address::ZERO,
                    salt: salt(),
                };
                (*address, self.sign_order(&order, owner)?, order.salt)
            }
            None => (Address::ZERO, Bytes::new(), B256::ZERO),
        };
        let pool = eip712::WorkerpoolOrder {
            workerpool: spec.workerpool,
            workerpoolprice: U256::ZERO,
            volume,
            tag: spec.tag,
            category: U256::from(spec.category),
            trust: U256::from(spec.trust),
            apprestrict: Address::ZERO,
            datasetrestrict: Address::ZERO,
            requesterrestrict: Address::ZERO,
            salt: salt(),
        };
        let pool_sign = self.sign_order(&pool, &spec.workerpool_owner)?;
        let request = eip712::RequestOrder {
            app: spec.app,
            appmaxprice: U256::ZERO,
            dataset: dataset_address,
            datasetmaxprice: U256::ZERO,
            workerpool: spec.workerpool,
            workerpoolmaxprice: U256::ZERO,
            requester: spec.requester.address(),
            volume,
            tag: spec.tag,
            category: U256::from(spec.category),
            trust: U256::from(spec.trust),
            beneficiary: spec.beneficiary,
            callback: spec.callback,
            params: spec.params.clone(),
            salt: salt(),
        };
        let request_sign = self.sign_order(&request, &spec.requester)?;
        let call = call_tx(
            self.hub(),
            IHub::matchOrdersCall::new((
                SignedAppOrder {
                    app: app.app,
                    appprice: app.appprice,
                    volume: app.volume,
                    tag: app.tag,
                    datasetrestrict: app.datasetrestrict,
                    workerpoolrestrict: app.workerpoolrestrict,
                    requesterrestrict: app.requesterrestrict,
                    salt: app.salt,
                    sign: app_sign,
                },
                SignedDatasetOrder {
                    dataset: dataset_address,
                    datasetprice: U256::ZERO,
                    volume: if spec.dataset.is_some() {
                        volume
                    } else {
                        U256::ZERO
                    },
                    tag: B256::ZERO,
                    apprestrict: Address::ZERO,
                    workerpoolrestrict: Address::ZERO,
                    requesterrestrict: Address::ZERO,
                    salt: dataset_salt,
                    sign: dataset_sign,
                },
                SignedWorkerpoolOrder {
                    workerpool: pool.workerpool,
                    workerpoolprice: pool.workerpoolprice,
                    volume: pool.volume,
                    tag: pool.tag,
                    category: pool.category,
                    trust: pool.trust,
                    apprestrict: pool.apprestrict,
                    datasetrestrict: pool.datasetrestrict,
                    requesterrestrict: pool.requesterrestrict,
                    salt: pool.salt,
                    sign: pool_sign,
                },
                SignedRequestOrder {
                    app: request.app,
                    appmaxprice: request.appmaxprice,
                    dataset: request.dataset,
                    datasetmaxprice: request.datasetmaxprice,
                    workerpool: request.workerpool,
                    workerpoolmaxprice: request.workerpoolmaxprice,
                    requester: request.requester,
                    volume: request.volume,
                    tag: request.tag,
                    category: request.category,
                    trust: request.trust,
                    beneficiary: request.beneficiary,
                    callback: request.callback,
                    params: request.params.clone(),
                    salt: request.salt,
                    sign: request_sign,
                },
            )),
        );
        // Anyone may submit matching orders; the requester does here.
        let receipt = self
            .node
            .send(&spec.requester, call)
            .await
            .context("matchOrders")?;
        receipt
            .logs()
            .iter()
            .filter(|log| log.address() == self.hub())
            .find_map(|log| IHub::OrdersMatched::decode_log_data(log.data()).ok())
            .map(|e| e.dealid)
            .ok_or_else(|| anyhow!("no OrdersMatched event"))
    }

    /// Creates fresh owners, a Scone app, an optional IPFS dataset and a workerpool, and matches
    /// a TEE deal (`tag` `0x…03`, category 0, trust 1, prices 0) of `volume` tasks.
    pub async fn deal(&self, with_dataset: bool, volume: u64) -> Result<TestDeal> {
        let app_owner = wallet();
        let app = self
            .create_app(
                app_owner.address(),
                &AppSpec::scone(&format!("app-{}", unique())),
            )
            .await?;
        let dataset = if with_dataset {
            let owner = wallet();
            let dataset = self
                .create_dataset(
                    owner.address(),
                    &DatasetSpec::ipfs(&format!("dataset-{}", unique())),
                )
                .await?;
            Some((dataset, owner))
        } else {
            None
        };
        let workerpool_owner = wallet();
        let workerpool = self
            .create_workerpool(workerpool_owner.address(), "sms-testkit pool")
            .await?;
        let requester = wallet();
        let spec = DealSpec {
            app,
            app_owner,
            dataset,
            workerpool,
            workerpool_owner,
            beneficiary: requester.address(),
            requester,
            callback: Address::ZERO,
            tag: scone_tag(),
            category: 0,
            trust: 1,
            volume,
            params: r#"{"iexec_result_storage_provider":"ipfs","iexec_args":"hello"}"#.to_owned(),
        };
        let deal_id = self.match_orders(&spec).await?;
        Ok(TestDeal {
            deal_id,
            spec,
            worker: wallet(),
            enclave: wallet(),
        })
    }

    /// `initialize(dealId, index)`: the task becomes ACTIVE. Returns the task id.
    pub async fn initialize_task(&self, deal_id: B256, index: u64) -> Result<B256> {
        let call = call_tx(
            self.hub(),
            IHub::initializeCall::new((deal_id, U256::from(index))),
        );
        self.node
            .send(&deployer()?, call)
            .await
            .context("initialize")?;
        Ok(task_id(&deal_id, index))
    }

    /// The two signatures a TEE contribution carries: the workerpool owner's authorization of
    /// (worker, task, enclave) and the enclave's signature of (resultHash, resultSeal).
    fn contribution_signatures(
        &self,
        deal: &TestDeal,
        task: B256,
        result_hash: B256,
        result_seal: B256,
    ) -> Result<(Bytes, Bytes)> {
        let mut auth = Vec::with_capacity(72);
        auth.extend_from_slice(deal.worker.address().as_slice());
        auth.extend_from_slice(task.as_slice());
        auth.extend_from_slice(deal.enclave.address().as_slice());
        let authorization = deal
            .spec
            .workerpool_owner
            .sign_message_sync(keccak256(&auth).as_slice())?;
        let enclave_message = keccak256([result_hash.as_slice(), result_seal.as_slice()].concat());
        let enclave = deal.enclave.sign_message_sync(enclave_message.as_slice())?;
        Ok((
            Bytes::copy_from_slice(&authorization.as_bytes()),
            Bytes::copy_from_slice(&enclave.as_bytes()),
        ))
    }

    fn result_hash_and_seal(worker: Address, task: B256, digest: B256) -> (B256, B256) {
        let hash = keccak256([task.as_slice(), digest.as_slice()].concat());
        let seal = keccak256([worker.as_slice(), task.as_slice(), digest.as_slice()].concat());
        (hash, seal)
    }

    /// A TEE `contribute` by the deal's worker; with trust 1 the task becomes REVEALING.
    pub async fn contribute(&self, deal: &TestDeal, task: B256, result_digest: B256) -> Result<()> {
        let (hash, seal) = Self::result_hash_and_seal(deal.worker.address(), task, result_digest);
        let (authorization, enclave) = self.contribution_signatures(deal, task, hash, seal)?;
        let call = call_tx(
            self.hub(),
            IHub::contributeCall::new((
                task,
                hash,
                seal,
                deal.enclave.address(),
                enclave,
                authorization,
            )),
        );
        self.node
            .send(&deal.worker, call)
            .await
            .context("contribute")?;
        Ok(())
    }

    /// A TEE `contributeAndFinalize` by the deal's worker: the task becomes COMPLETED.
    pub async fn contribute_and_finalize(
        &self,
        deal: &TestDeal,
        task: B256,
        result_digest: B256,
        results: &[u8],
    ) -> Result<()> {
        let (hash, seal) = Self::result_hash_and_seal(deal.worker.address(), task, result_digest);
        let (authorization, enclave) = self.contribution_signatures(deal, task, hash, seal)?;
        let call = call_tx(
            self.hub(),
            IHub::contributeAndFinalizeCall::new((
                task,
                result_digest,
                Bytes::copy_from_slice(results),
                Bytes::new(),
                deal.enclave.address(),
                enclave,
                authorization,
            )),
        );
        self.node
            .send(&deal.worker, call)
            .await
            .context("contributeAndFinalize")?;
        Ok(())
    }

    /// Moves time past any final deadline (10 × the largest category time ref) and `claim`s the
    /// task: it becomes FAILED. Affects every task of this chain.
    pub async fn fail_task(&self, task: B256) -> Result<()> {
        let longest = CATEGORIES.iter().map(|(_, t)| *t).max().unwrap_or(36000);
        self.increase_time(10 * longest + 1).await?;
        let call = call_tx(self.hub(), IHub::claimCall::new((task,)));
        self.node.send(&deployer()?, call).await.context("claim")?;
        Ok(())
    }
}
