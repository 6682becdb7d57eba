//! [`PocoLedger`]: the iExec PoCo contracts read over JSON-RPC (`eth_call` at `latest`).
//!
//! - Bounded: every ledger call returns within [`PocoConfig::timeout`]; a node that is down,
//!   hangs or answers garbage gives [`LedgerError::Unavailable`], and the next call simply tries
//!   again (no sticky failure state).
//! - Cached: facts that never change once on chain (deals, the name/multiaddr/checksum/enclave
//!   configuration of entries, tasks in a final status, categories) live in a bounded cache; ownership and
//!   task status are never older than [`PocoConfig::fresh_for`].
//! - "Does not exist" (`Ok(None)`): an entry that is not registered in its registry (or whose
//!   calls revert or return nothing), a deal whose app pointer is zero, a task whose deal id is
//!   zero (never initialized), an `owner()` that reverts, returns nothing or zero.

use std::fmt;
use std::time::{Duration, Instant};

use alloy::network::{Ethereum, TransactionBuilder};
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::client::RpcClient;
use alloy::rpc::types::TransactionRequest;
use alloy::sol;
use alloy::sol_types::SolCall;
use alloy::transports::http::Http;
use alloy::transports::{RpcError, TransportErrorKind};
use async_trait::async_trait;
use quick_cache::sync::Cache;
use sms_core::ledger::{
    AppEntry, DatasetEntry, Deal, DealResource, Task, TaskStatus, WorkerpoolEntry,
};
use thiserror::Error;

use crate::{Ledger, LedgerError};

sol! {
    struct AppInfo {
        address owner;
        string m_appName;
        string m_appType;
        bytes m_appMultiaddr;
        bytes32 m_appChecksum;
        bytes m_appMREnclave;
    }

    struct DatasetInfo {
        address owner;
        string m_datasetName;
        bytes m_datasetMultiaddr;
        bytes32 m_datasetChecksum;
    }

    struct WorkerpoolInfo {
        address owner;
        string m_workerpoolDescription;
        uint256 m_workerStakeRatioPolicy;
        uint256 m_schedulerRewardRatioPolicy;
    }

    struct Resource {
        address pointer;
        address owner;
        uint256 price;
    }

    struct PocoDeal {
        Resource app;
        Resource dataset;
        Resource workerpool;
        uint256 trust;
        uint256 category;
        bytes32 tag;
        address requester;
        address beneficiary;
        address callback;
        string params;
        uint256 startTime;
        uint256 botFirst;
        uint256 botSize;
        uint256 workerStake;
        uint256 schedulerRewardRatio;
        address sponsor;
    }

    struct PocoTask {
        uint8 status;
        bytes32 dealid;
        uint256 idx;
        uint256 timeref;
        uint256 contributionDeadline;
        uint256 revealDeadline;
        uint256 finalDeadline;
        bytes32 consensusValue;
        uint256 revealCounter;
        uint256 winnerCounter;
        address[] contributors;
        bytes32 resultDigest;
        bytes results;
        uint256 resultsTimestamp;
        bytes resultsCallback;
    }

    struct PocoCategory {
        string name;
        string description;
        uint256 workClockTimeRef;
    }

    interface IexecHub {
        function viewApp(address app) external view returns (AppInfo memory);
        function viewDataset(address dataset) external view returns (DatasetInfo memory);
        function viewWorkerpool(address workerpool) external view returns (WorkerpoolInfo memory);
        function viewDeal(bytes32 id) external view returns (PocoDeal memory);
        function viewTask(bytes32 id) external view returns (PocoTask memory);
        function viewCategory(uint256 id) external view returns (PocoCategory memory);
        function appregistry() external view returns (address);
        function datasetregistry() external view returns (address);
        function workerpoolregistry() external view returns (address);
    }

    interface IRegistry {
        function isRegistered(address entry) external view returns (bool);
    }

    interface IOwnable {
        function owner() external view returns (address);
    }

    /// `IexecLibOrders_v5.DatasetOrder` with its signature, as `assertDatasetDealCompatibility`
    /// takes it.
    struct PocoDatasetOrder {
        address dataset;
        uint256 datasetprice;
        uint256 volume;
        bytes32 tag;
        address apprestrict;
        address workerpoolrestrict;
        address requesterrestrict;
        bytes32 salt;
        bytes sign;
    }

    interface IexecPoco1 {
        error IncompatibleDatasetOrder(string reason);
        function assertDatasetDealCompatibility(PocoDatasetOrder datasetOrder, bytes32 dealId) external view;
    }
}

/// How to reach the PoCo contracts.
#[derive(Clone, Debug)]
pub struct PocoConfig {
    /// JSON-RPC endpoint (http or https). It may carry an API key: it is never logged whole.
    pub rpc_url: String,
    /// The PoCo diamond proxy ("hub").
    pub hub: Address,
    /// Chain id the RPC must answer; checked by [`PocoLedger::connect`].
    pub chain_id: u64,
    /// Upper bound of every ledger call, retries included. Default 2 s.
    pub timeout: Duration,
    /// Extra attempts after a failed RPC request, as long as the timeout allows. Default 2.
    pub retries: u32,
    /// Maximum age of an ownership or task-status answer. Default 1 s (about one block or less
    /// on the chains iExec runs on); zero reads them from the chain every time.
    pub fresh_for: Duration,
    /// Number of immutable facts (deals, entries, final tasks) kept in memory. Default 10 000.
    pub cache_capacity: usize,
}

impl PocoConfig {
    pub fn new(rpc_url: impl Into<String>, hub: Address, chain_id: u64) -> Self {
        Self {
            rpc_url: rpc_url.into(),
            hub,
            chain_id,
            timeout: Duration::from_secs(2),
            retries: 2,
            fresh_for: Duration::from_secs(1),
            cache_capacity: 10_000,
        }
    }
}

/// Why [`PocoLedger::connect`] refused a configuration.
#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("invalid chain RPC url '{url}': {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error(
        "chain id mismatch: the RPC at {rpc} serves chain {actual}, the configuration expects chain {expected}"
    )]
    ChainIdMismatch {
        rpc: String,
        expected: u64,
        actual: u64,
    },
    #[error("no contract at hub address {hub} on chain {chain_id} (wrong hub address or chain?)")]
    NoHubCode { hub: Address, chain_id: u64 },
    #[error("{hub} on chain {chain_id} does not look like an iExec PoCo hub: {reason}")]
    NotAHub {
        hub: Address,
        chain_id: u64,
        reason: String,
    },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// A PoCo category (`viewCategory`): the work clock of its tasks. Categories cannot be changed
/// once created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Category {
    pub id: U256,
    pub name: String,
    pub description: String,
    /// `workClockTimeRef`, in seconds: a task's deadlines are multiples of it.
    pub work_clock_time_ref: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum FactKey {
    App(Address),
    Dataset(Address),
    Workerpool(Address),
    Deal(B256),
    Task(B256),
    Category(U256),
}

/// What never changes once on chain (owners excepted: they are read fresh).
#[derive(Clone, Debug)]
enum Fact {
    App {
        name: String,
        app_type: String,
        multiaddr: String,
        checksum: B256,
        mrenclave: Vec<u8>,
    },
    Dataset {
        name: String,
        multiaddr: String,
        checksum: B256,
    },
    Workerpool {
        description: String,
    },
    Deal(Box<Deal>),
    /// A task in a final status (COMPLETED or FAILED).
    Task(Box<Task>),
    Category(Box<Category>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum FreshKey {
    Owner(Address),
    Task(B256),
}

#[derive(Clone, Debug)]
enum FreshValue {
    Owner(Option<Address>),
    Task(Option<Box<Task>>),
}

/// The production [`Ledger`]: PoCo over JSON-RPC.
pub struct PocoLedger {
    provider: RootProvider<Ethereum>,
    config: PocoConfig,
    /// The RPC url without path, query or credentials, for logs and errors.
    redacted_url: String,
    /// Strings of the full url to scrub from transport error messages.
    secret_urls: Vec<String>,
    /// Random sender of every `eth_call` (some chains want one).
    from: Address,
    app_registry: Address,
    dataset_registry: Address,
    workerpool_registry: Address,
    facts: Cache<FactKey, Fact>,
    fresh: Cache<FreshKey, (Instant, FreshValue)>,
}

/// Result of one `eth_call`: a decoded answer, or "nothing there" (revert, empty answer).
enum Answer<T> {
    Value(T),
    Nothing,
}

impl PocoLedger {
    /// Connects to the RPC, checks that it serves `config.chain_id` and that the hub is a PoCo
    /// hub (has code, answers its registry addresses).
    pub async fn connect(config: PocoConfig) -> Result<Self, ConnectError> {
        // reqwest is built with `rustls-no-provider`: ring must be installed before a client is.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let invalid = |reason: String| ConnectError::InvalidUrl {
            url: redact_url_str(&config.rpc_url),
            reason,
        };
        let url = config
            .rpc_url
            .parse::<reqwest::Url>()
            .map_err(|e| invalid(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("only http and https are supported".to_owned()));
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| invalid(e.without_url().to_string()))?;
        let redacted_url = redact_url(&url);
        let secret_urls = vec![url.as_str().to_owned(), config.rpc_url.clone()];
        let is_local = url
            .host_str()
            .is_some_and(|h| h == "localhost" || h.starts_with("127.") || h == "[::1]");
        let provider = RootProvider::new(RpcClient::new(Http::with_client(client, url), is_local));
        let capacity = config.cache_capacity.max(1);
        let mut ledger = Self {
            provider,
            redacted_url,
            secret_urls,
            from: random_address(),
            app_registry: Address::ZERO,
            dataset_registry: Address::ZERO,
            workerpool_registry: Address::ZERO,
            facts: Cache::new(capacity),
            fresh: Cache::new(capacity),
            config,
        };

        let deadline = ledger.deadline();
        let actual = ledger
            .rpc("eth_chainId", deadline, || ledger.provider.get_chain_id())
            .await?;
        if actual != ledger.config.chain_id {
            return Err(ConnectError::ChainIdMismatch {
                rpc: ledger.redacted_url.clone(),
                expected: ledger.config.chain_id,
                actual,
            });
        }
        let hub = ledger.config.hub;
        let chain_id = ledger.config.chain_id;
        let deadline = ledger.deadline();
        let code = ledger
            .rpc("eth_getCode", deadline, || {
                ledger.provider.get_code_at(hub).into_future()
            })
            .await?;
        if code.is_empty() {
            return Err(ConnectError::NoHubCode { hub, chain_id });
        }
        let not_a_hub = |what: &str| ConnectError::NotAHub {
            hub,
            chain_id,
            reason: format!("no answer to {what}"),
        };
        let (apps, datasets, workerpools) = tokio::join!(
            ledger.call(hub, IexecHub::appregistryCall {}, deadline),
            ledger.call(hub, IexecHub::datasetregistryCall {}, deadline),
            ledger.call(hub, IexecHub::workerpoolregistryCall {}, deadline),
        );
        let registry = |answer: Answer<Address>, what: &str| match answer {
            Answer::Value(address) if address != Address::ZERO => Ok(address),
            _ => Err(not_a_hub(what)),
        };
        ledger.app_registry = registry(apps?, "appregistry()")?;
        ledger.dataset_registry = registry(datasets?, "datasetregistry()")?;
        ledger.workerpool_registry = registry(workerpools?, "workerpoolregistry()")?;
        tracing::info!(ledger = %ledger.describe(), "connected to the PoCo ledger");
        Ok(ledger)
    }

    pub fn config(&self) -> &PocoConfig {
        &self.config
    }

    /// `viewCategory(id)`: `Ok(None)` for a category that does not exist (the call reverts).
    /// Existing categories are cached (they never change); a missing one is asked again.
    pub async fn category(&self, id: U256) -> Result<Option<Category>, LedgerError> {
        if let Some(Fact::Category(category)) = self.facts.get(&FactKey::Category(id)) {
            return Ok(Some(*category));
        }
        let deadline = self.deadline();
        let Answer::Value(raw) = self
            .call(self.config.hub, IexecHub::viewCategoryCall { id }, deadline)
            .await?
        else {
            return Ok(None);
        };
        let work_clock_time_ref = u64::try_from(raw.workClockTimeRef).map_err(|_| {
            self.unavailable(
                &format!("viewCategory({id})"),
                format!("workClockTimeRef {} is out of range", raw.workClockTimeRef),
            )
        })?;
        let category = Category {
            id,
            name: raw.name,
            description: raw.description,
            work_clock_time_ref,
        };
        self.facts.insert(
            FactKey::Category(id),
            Fact::Category(Box::new(category.clone())),
        );
        Ok(Some(category))
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.config.timeout
    }

    fn unavailable(&self, what: &str, reason: impl fmt::Display) -> LedgerError {
        let mut reason = reason.to_string();
        for secret in &self.secret_urls {
            if !secret.is_empty() {
                reason = reason.replace(secret.as_str(), &self.redacted_url);
            }
        }
        LedgerError::Unavailable(format!("{what} via {}: {reason}", self.redacted_url))
    }

    /// Runs one RPC request with retries, all within `deadline`.
    async fn rpc<T, F, Fut>(
        &self,
        what: &str,
        deadline: Instant,
        request: F,
    ) -> Result<T, LedgerError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, RpcError<TransportErrorKind>>>,
    {
        match self.rpc_or_revert(what, deadline, request).await? {
            Ok(value) => Ok(value),
            Err(message) => Err(self.unavailable(what, message)),
        }
    }

    /// Like [`Self::rpc`], but hands an execution revert back as `Ok(Err(message))`.
    async fn rpc_or_revert<T, F, Fut>(
        &self,
        what: &str,
        deadline: Instant,
        request: F,
    ) -> Result<Result<T, String>, LedgerError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, RpcError<TransportErrorKind>>>,
    {
        let mut attempt = 0u32;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(
                    self.unavailable(what, format!("no answer within {:?}", self.config.timeout))
                );
            }
            let error = match tokio::time::timeout(remaining, request()).await {
                Err(_) => {
                    return Err(self
                        .unavailable(what, format!("no answer within {:?}", self.config.timeout)));
                }
                Ok(Ok(value)) => return Ok(Ok(value)),
                Ok(Err(RpcError::ErrorResp(payload)))
                    if is_revert(payload.code, &payload.message) =>
                {
                    return Ok(Err(revert_reason(
                        payload.as_revert_data().as_ref().map(|d| d.as_ref()),
                        &payload.message,
                    )));
                }
                Ok(Err(error)) => error,
            };
            if attempt >= self.config.retries {
                return Err(self.unavailable(what, error));
            }
            attempt += 1;
            tracing::debug!(%what, attempt, error = %self.unavailable(what, &error), "retrying chain read");
            let pause = Duration::from_millis(50 * u64::from(attempt));
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }

    /// `eth_call` of `call` on `to`, decoded; a revert or an empty answer is [`Answer::Nothing`].
    async fn call<C: SolCall>(
        &self,
        to: Address,
        call: C,
        deadline: Instant,
    ) -> Result<Answer<C::Return>, LedgerError> {
        let tx = TransactionRequest::default()
            .with_from(self.from)
            .with_to(to)
            .with_input(call.abi_encode());
        let what = format!("{} on {to}", C::SIGNATURE);
        let answer = self
            .rpc_or_revert(&what, deadline, || {
                self.provider.call(tx.clone()).latest().into_future()
            })
            .await?;
        let Ok(bytes) = answer else {
            return Ok(Answer::Nothing);
        };
        if bytes.is_empty() {
            return Ok(Answer::Nothing);
        }
        C::abi_decode_returns(&bytes)
            .map(Answer::Value)
            .map_err(|e| {
                self.unavailable(
                    &what,
                    format!("undecodable answer ({} bytes): {e}", bytes.len()),
                )
            })
    }

    fn fresh_get(&self, key: FreshKey) -> Option<FreshValue> {
        if self.config.fresh_for.is_zero() {
            return None;
        }
        match self.fresh.get(&key) {
            Some((at, value)) if at.elapsed() < self.config.fresh_for => Some(value),
            _ => None,
        }
    }

    fn fresh_put(&self, key: FreshKey, at: Instant, value: FreshValue) {
        if !self.config.fresh_for.is_zero() {
            self.fresh.insert(key, (at, value));
        }
    }

    async fn owner_with_deadline(
        &self,
        entry: Address,
        deadline: Instant,
    ) -> Result<Option<Address>, LedgerError> {
        if let Some(FreshValue::Owner(owner)) = self.fresh_get(FreshKey::Owner(entry)) {
            return Ok(owner);
        }
        let asked = Instant::now();
        let owner = match self.call(entry, IOwnable::ownerCall {}, deadline).await? {
            Answer::Value(owner) if owner != Address::ZERO => Some(owner),
            _ => None,
        };
        self.fresh_put(FreshKey::Owner(entry), asked, FreshValue::Owner(owner));
        Ok(owner)
    }

    async fn is_registered(
        &self,
        registry: Address,
        entry: Address,
        deadline: Instant,
    ) -> Result<bool, LedgerError> {
        Ok(matches!(
            self.call(registry, IRegistry::isRegisteredCall { entry }, deadline)
                .await?,
            Answer::Value(true)
        ))
    }

    /// Reads the immutable facts of an entry (cached) and its current owner.
    async fn entry(&self, key: FactKey) -> Result<Option<(Fact, Address)>, LedgerError> {
        let deadline = self.deadline();
        let (address, registry) = match key {
            FactKey::App(a) => (a, self.app_registry),
            FactKey::Dataset(a) => (a, self.dataset_registry),
            FactKey::Workerpool(a) => (a, self.workerpool_registry),
            FactKey::Deal(_) | FactKey::Task(_) | FactKey::Category(_) => return Ok(None),
        };
        if let Some(fact) = self.facts.get(&key) {
            return Ok(self
                .owner_with_deadline(address, deadline)
                .await?
                .map(|owner| (fact, owner)));
        }
        let hub = self.config.hub;
        let asked = Instant::now();
        let (registered, view) = match key {
            FactKey::App(app) => {
                let (registered, view) = tokio::join!(
                    self.is_registered(registry, address, deadline),
                    self.call(hub, IexecHub::viewAppCall { app }, deadline)
                );
                (registered?, view?.map(|i| (i.owner, app_fact(i))))
            }
            FactKey::Dataset(dataset) => {
                let (registered, view) = tokio::join!(
                    self.is_registered(registry, address, deadline),
                    self.call(hub, IexecHub::viewDatasetCall { dataset }, deadline)
                );
                (registered?, view?.map(|i| (i.owner, dataset_fact(i))))
            }
            FactKey::Workerpool(workerpool) => {
                let (registered, view) = tokio::join!(
                    self.is_registered(registry, address, deadline),
                    self.call(hub, IexecHub::viewWorkerpoolCall { workerpool }, deadline)
                );
                (registered?, view?.map(|i| (i.owner, workerpool_fact(i))))
            }
            FactKey::Deal(_) | FactKey::Task(_) | FactKey::Category(_) => return Ok(None),
        };
        let Answer::Value((owner, fact)) = view else {
            return Ok(None);
        };
        if !registered || owner == Address::ZERO {
            return Ok(None);
        }
        self.facts.insert(key, fact.clone());
        self.fresh_put(
            FreshKey::Owner(address),
            asked,
            FreshValue::Owner(Some(owner)),
        );
        Ok(Some((fact, owner)))
    }

    fn convert_deal(&self, deal_id: B256, d: PocoDeal) -> Result<Deal, LedgerError> {
        let what = format!("viewDeal({deal_id})");
        let int = |v: U256, field: &str| {
            u64::try_from(v)
                .map_err(|_| self.unavailable(&what, format!("{field} {v} is out of range")))
        };
        let resource = |r: Resource| DealResource {
            pointer: r.pointer,
            owner: r.owner,
            price: r.price,
        };
        Ok(Deal {
            deal_id,
            start_time: int(d.startTime, "startTime")?,
            bot_first: int(d.botFirst, "botFirst")?,
            bot_size: int(d.botSize, "botSize")?,
            app: resource(d.app),
            dataset: resource(d.dataset),
            workerpool: resource(d.workerpool),
            trust: d.trust,
            category: d.category,
            tag: d.tag,
            requester: d.requester,
            beneficiary: d.beneficiary,
            callback: d.callback,
            params: d.params,
            worker_stake: d.workerStake,
            scheduler_reward_ratio: d.schedulerRewardRatio,
            sponsor: d.sponsor,
        })
    }

    fn convert_task(&self, task_id: B256, t: PocoTask) -> Result<Task, LedgerError> {
        let what = format!("viewTask({task_id})");
        let int = |v: U256, field: &str| {
            u64::try_from(v)
                .map_err(|_| self.unavailable(&what, format!("{field} {v} is out of range")))
        };
        let status = TaskStatus::from_index(t.status)
            .ok_or_else(|| self.unavailable(&what, format!("unknown task status {}", t.status)))?;
        Ok(Task {
            task_id,
            deal_id: t.dealid,
            index: int(t.idx, "idx")?,
            status,
            time_ref: int(t.timeref, "timeref")?,
            contribution_deadline: int(t.contributionDeadline, "contributionDeadline")?,
            reveal_deadline: int(t.revealDeadline, "revealDeadline")?,
            final_deadline: int(t.finalDeadline, "finalDeadline")?,
        })
    }
}

fn app_fact(i: AppInfo) -> Fact {
    Fact::App {
        name: i.m_appName,
        app_type: i.m_appType,
        // Apps carry a docker image reference: plain text.
        multiaddr: String::from_utf8_lossy(&i.m_appMultiaddr).into_owned(),
        checksum: i.m_appChecksum,
        mrenclave: i.m_appMREnclave.to_vec(),
    }
}

fn dataset_fact(i: DatasetInfo) -> Fact {
    Fact::Dataset {
        name: i.m_datasetName,
        multiaddr: decode_multiaddr(&i.m_datasetMultiaddr),
        checksum: i.m_datasetChecksum,
    }
}

fn workerpool_fact(i: WorkerpoolInfo) -> Fact {
    Fact::Workerpool {
        description: i.m_workerpoolDescription,
    }
}

impl<T> Answer<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Answer<U> {
        match self {
            Answer::Value(v) => Answer::Value(f(v)),
            Answer::Nothing => Answer::Nothing,
        }
    }
}

impl PocoLedger {
    /// `assertDatasetDealCompatibility(order, dealId)` at `latest`: `Ok(Err(reason))` when it
    /// reverts (the reason PoCo gives), `Ok(Ok(()))` when it returns.
    pub async fn assert_dataset_deal_compatibility(
        &self,
        order: &sms_core::bulk::SignedDatasetOrder,
        deal_id: B256,
    ) -> Result<Result<(), String>, LedgerError> {
        let o = &order.order;
        let call = IexecPoco1::assertDatasetDealCompatibilityCall {
            datasetOrder: PocoDatasetOrder {
                dataset: o.dataset,
                datasetprice: o.datasetprice,
                volume: o.volume,
                tag: o.tag,
                apprestrict: o.apprestrict,
                workerpoolrestrict: o.workerpoolrestrict,
                requesterrestrict: o.requesterrestrict,
                salt: o.salt,
                sign: order.sign.clone(),
            },
            dealId: deal_id,
        };
        let tx = TransactionRequest::default()
            .with_from(self.from)
            .with_to(self.config.hub)
            .with_input(call.abi_encode());
        let what = format!("assertDatasetDealCompatibility({}, {deal_id})", o.dataset);
        let answer = self
            .rpc_or_revert(&what, self.deadline(), || {
                self.provider.call(tx.clone()).latest().into_future()
            })
            .await?;
        Ok(answer.map(|_| ()))
    }
}

#[async_trait]
impl Ledger for PocoLedger {
    async fn owner_of(&self, entry: Address) -> Result<Option<Address>, LedgerError> {
        self.owner_with_deadline(entry, self.deadline()).await
    }

    async fn app(&self, address: Address) -> Result<Option<AppEntry>, LedgerError> {
        Ok(match self.entry(FactKey::App(address)).await? {
            Some((
                Fact::App {
                    name,
                    app_type,
                    multiaddr,
                    checksum,
                    mrenclave,
                },
                owner,
            )) => Some(AppEntry {
                address,
                owner,
                name,
                app_type,
                multiaddr,
                checksum,
                mrenclave,
            }),
            _ => None,
        })
    }

    async fn dataset(&self, address: Address) -> Result<Option<DatasetEntry>, LedgerError> {
        Ok(match self.entry(FactKey::Dataset(address)).await? {
            Some((
                Fact::Dataset {
                    name,
                    multiaddr,
                    checksum,
                },
                owner,
            )) => Some(DatasetEntry {
                address,
                owner,
                name,
                multiaddr,
                checksum,
            }),
            _ => None,
        })
    }

    async fn workerpool(&self, address: Address) -> Result<Option<WorkerpoolEntry>, LedgerError> {
        Ok(match self.entry(FactKey::Workerpool(address)).await? {
            Some((Fact::Workerpool { description }, owner)) => Some(WorkerpoolEntry {
                address,
                owner,
                description,
            }),
            _ => None,
        })
    }

    async fn deal(&self, deal_id: B256) -> Result<Option<Deal>, LedgerError> {
        if let Some(Fact::Deal(deal)) = self.facts.get(&FactKey::Deal(deal_id)) {
            return Ok(Some(*deal));
        }
        let deadline = self.deadline();
        let Answer::Value(raw) = self
            .call(
                self.config.hub,
                IexecHub::viewDealCall { id: deal_id },
                deadline,
            )
            .await?
        else {
            return Ok(None);
        };
        if raw.app.pointer == Address::ZERO {
            return Ok(None);
        }
        let deal = self.convert_deal(deal_id, raw)?;
        self.facts
            .insert(FactKey::Deal(deal_id), Fact::Deal(Box::new(deal.clone())));
        Ok(Some(deal))
    }

    async fn task(&self, task_id: B256) -> Result<Option<Task>, LedgerError> {
        if let Some(Fact::Task(task)) = self.facts.get(&FactKey::Task(task_id)) {
            return Ok(Some(*task));
        }
        if let Some(FreshValue::Task(task)) = self.fresh_get(FreshKey::Task(task_id)) {
            return Ok(task.map(|t| *t));
        }
        let deadline = self.deadline();
        let asked = Instant::now();
        let task = match self
            .call(
                self.config.hub,
                IexecHub::viewTaskCall { id: task_id },
                deadline,
            )
            .await?
        {
            Answer::Value(raw) if raw.dealid != B256::ZERO => {
                Some(self.convert_task(task_id, raw)?)
            }
            _ => None,
        };
        match &task {
            Some(t) if matches!(t.status, TaskStatus::Completed | TaskStatus::Failed) => {
                self.facts
                    .insert(FactKey::Task(task_id), Fact::Task(Box::new(t.clone())));
            }
            _ => self.fresh_put(
                FreshKey::Task(task_id),
                asked,
                FreshValue::Task(task.clone().map(Box::new)),
            ),
        }
        Ok(task)
    }

    async fn check_dataset_order(
        &self,
        order: &sms_core::bulk::SignedDatasetOrder,
        deal: &Deal,
    ) -> Result<Result<(), sms_core::bulk::OrderRejection>, LedgerError> {
        Ok(self
            .assert_dataset_deal_compatibility(order, deal.deal_id)
            .await?
            .map_err(sms_core::bulk::OrderRejection::Poco))
    }

    fn describe(&self) -> String {
        format!(
            "PoCo hub {} on chain {} via {}",
            self.config.hub, self.config.chain_id, self.redacted_url
        )
    }
}

/// A JSON-RPC error that means "the call executed and reverted" rather than "the node failed".
/// The reason of a revert: PoCo's `IncompatibleDatasetOrder(reason)` or a `require` message
/// decoded from the revert data, else the node's message.
fn revert_reason(data: Option<&[u8]>, message: &str) -> String {
    use alloy::sol_types::{Revert, SolError};
    let decoded = data.and_then(|d| {
        IexecPoco1::IncompatibleDatasetOrder::abi_decode(d)
            .map(|e| e.reason)
            .or_else(|_| Revert::abi_decode(d).map(|r| r.reason))
            .ok()
    });
    decoded.unwrap_or_else(|| message.to_owned())
}

fn is_revert(code: i64, message: &str) -> bool {
    code == 3 || message.to_ascii_lowercase().contains("revert")
}

/// `scheme://host[:port]`, with `/…` when the url had a path or query (they may hold API keys).
fn redact_url(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let rest = if url.path().len() > 1 || url.query().is_some() {
        "/…"
    } else {
        ""
    };
    format!("{}://{host}{port}{rest}", url.scheme())
}

fn redact_url_str(url: &str) -> String {
    url.parse::<reqwest::Url>()
        .map(|u| redact_url(&u))
        .unwrap_or_else(|_| "<unparsable url>".to_owned())
}

/// A throw-away sender address for `eth_call`s.
fn random_address() -> Address {
    Address::from(rand::random::<[u8; 20]>())
}

/// Renders on-chain multiaddr bytes as text: a binary multiaddr made only of known protocols
/// (`/ipfs/Qm…`, `/ip4/…/tcp/…`, `/dns4/…`, …), else the bytes as UTF-8 (lossy).
pub fn decode_multiaddr(bytes: &[u8]) -> String {
    multiaddr::to_text(bytes).unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned())
}

mod multiaddr {
    use std::fmt::Write;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// How a protocol's value is laid out and shown.
    enum Value {
        None,
        Ip4,
        Ip6,
        Port,
        Text,
        Base58,
    }

    fn protocol(code: u64) -> Option<(&'static str, Value)> {
        Some(match code {
            4 => ("ip4", Value::Ip4),
            6 => ("tcp", Value::Port),
            41 => ("ip6", Value::Ip6),
            53 => ("dns", Value::Text),
            54 => ("dns4", Value::Text),
            55 => ("dns6", Value::Text),
            56 => ("dnsaddr", Value::Text),
            273 => ("udp", Value::Port),
            421 => ("ipfs", Value::Base58),
            443 => ("https", Value::None),
            460 => ("quic", Value::None),
            477 => ("ws", Value::None),
            478 => ("wss", Value::None),
            480 => ("http", Value::None),
            _ => return None,
        })
    }

    fn varint(bytes: &mut &[u8]) -> Option<u64> {
        sms_core::cid::read_varint(bytes)
    }

    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if bytes.len() < n {
            return None;
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Some(head)
    }

    pub(super) fn to_text(mut bytes: &[u8]) -> Option<String> {
        if bytes.is_empty() {
            return None;
        }
        let mut out = String::new();
        while !bytes.is_empty() {
            let (name, value) = protocol(varint(&mut bytes)?)?;
            out.push('/');
            out.push_str(name);
            let shown = match value {
                Value::None => continue,
                Value::Ip4 => {
                    let b: [u8; 4] = take(&mut bytes, 4)?.try_into().ok()?;
                    Ipv4Addr::from(b).to_string()
                }
                Value::Ip6 => {
                    let b: [u8; 16] = take(&mut bytes, 16)?.try_into().ok()?;
                    Ipv6Addr::from(b).to_string()
                }
                Value::Port => {
                    let b: [u8; 2] = take(&mut bytes, 2)?.try_into().ok()?;
                    u16::from_be_bytes(b).to_string()
                }
                Value::Text => {
                    let len = usize::try_from(varint(&mut bytes)?).ok()?;
                    let text = std::str::from_utf8(take(&mut bytes, len)?).ok()?;
                    if text.is_empty() || text.contains('/') {
                        return None;
                    }
                    text.to_owned()
                }
                Value::Base58 => {
                    let len = usize::try_from(varint(&mut bytes)?).ok()?;
                    let value = take(&mut bytes, len)?;
                    if value.is_empty() {
                        return None;
                    }
                    base58(value)
                }
            };
            write!(out, "/{shown}").ok()?;
        }
        Some(out)
    }

    pub(super) fn base58(input: &[u8]) -> String {
        sms_core::cid::base58_encode(input)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use alloy::primitives::hex;

    #[test]
    fn selectors_match_the_deployed_hub() {
        assert_eq!(IexecHub::viewAppCall::SELECTOR, hex!("e1523fb4"));
        assert_eq!(IexecHub::viewDatasetCall::SELECTOR, hex!("1e143ef7"));
        assert_eq!(IexecHub::viewWorkerpoolCall::SELECTOR, hex!("bd8ab058"));
        assert_eq!(IexecHub::viewDealCall::SELECTOR, hex!("b74861b2"));
        assert_eq!(IexecHub::viewTaskCall::SELECTOR, hex!("adccf0d5"));
        assert_eq!(IOwnable::ownerCall::SELECTOR, hex!("8da5cb5b"));
    }

    #[test]
    fn multiaddr_vectors() {
        let cases = [
            (
                "a503221220359d55f58a43126d4ba446a35940265eb2dab57ecbc439e7f105c558f8774819",
                "/ipfs/QmRwwTz9Chq4Y7F7ReKKcx1GV6s3H7egmNGrku9XrwiDa8",
            ),
            (
                "a5032212205d008f22f8f878fd58473a634cc73d41049fc0d19b81002eaae221ac5a446a3e",
                "/ipfs/QmUbh7ugQ9WVprTVYjzrCS4d9cCy73zUz4MMchsrqzzu1w",
            ),
            (
                "a5032212207237a7f4091a74ae95514890fa86a2e8a36037c350ea71c06a34c8cbe25a5057",
                "/ipfs/QmW2WQi7j6c7UgJTarActp7tDNikE4B2qXtFCfLPdsgaTQ",
            ),
        ];
        for (bytes, text) in cases {
            assert_eq!(decode_multiaddr(&hex::decode(bytes).unwrap()), text);
        }
        let url =
            "https://gateway.ipfs.io/ipfs/QmW2WQi7j6c7UgJTarActp7tDNikE4B2qXtFCfLPdsgaTQ/cat.jpg";
        assert_eq!(decode_multiaddr(url.as_bytes()), url);
        assert_eq!(
            decode_multiaddr(b"iexechub/python-hello-world:8.0.4"),
            "iexechub/python-hello-world:8.0.4"
        );
    }

    #[test]
    fn multiaddr_other_protocols_and_fallbacks() {
        // /ip4/127.0.0.1/tcp/5001
        assert_eq!(
            decode_multiaddr(&hex!("047f000001061389")),
            "/ip4/127.0.0.1/tcp/5001"
        );
        // /dns4/example.com/tcp/443/https
        let mut dns = vec![54u8, 11];
        dns.extend_from_slice(b"example.com");
        dns.extend_from_slice(&[6, 0x01, 0xbb, 0xbb, 0x03]);
        assert_eq!(decode_multiaddr(&dns), "/dns4/example.com/tcp/443/https");
        // Truncated binary: not a multiaddr, shown as (lossy) text.
        assert_eq!(
            decode_multiaddr(&hex!("a5032212")),
            String::from_utf8_lossy(&hex!("a5032212"))
        );
        assert_eq!(decode_multiaddr(b""), "");
    }

    #[test]
    fn base58_edges() {
        assert_eq!(multiaddr::base58(&[]), "");
        assert_eq!(multiaddr::base58(&[0, 0, 1]), "112");
        assert_eq!(multiaddr::base58(b"hello world"), "StV1DL6CwTryKyV");
    }

    #[test]
    fn urls_are_redacted() {
        let url: reqwest::Url = "https://user:pw@rpc.example.com:8545/v3/KEY?x=1"
            .parse()
            .unwrap();
        assert_eq!(redact_url(&url), "https://rpc.example.com:8545/…");
        let url: reqwest::Url = "http://127.0.0.1:8545".parse().unwrap();
        assert_eq!(redact_url(&url), "http://127.0.0.1:8545");
    }

    #[test]
    fn reverts_are_recognised() {
        assert!(is_revert(3, "execution reverted"));
        assert!(is_revert(-32603, "EVM error: Revert"));
        assert!(!is_revert(-32005, "rate limited"));
    }
}
