//! The embedded dev ledger: registry entries, deals and tasks kept in a JSON file of the data
//! directory. For `--dev` and demos only; it never stands in for the chain in production.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sms_core::bulk::{OrderRejection, SignedDatasetOrder};
use sms_core::hash::keccak_concat;
use sms_core::ledger::{
    AppEntry, DatasetEntry, Deal, EntryKind, Task, TaskStatus, WorkerpoolEntry,
};
use sms_core::{Address, B256};

use crate::{Ledger, LedgerError};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    nonce: u64,
    apps: BTreeMap<Address, AppEntry>,
    datasets: BTreeMap<Address, DatasetEntry>,
    workerpools: BTreeMap<Address, WorkerpoolEntry>,
    deals: BTreeMap<B256, Deal>,
    tasks: BTreeMap<B256, Task>,
}

/// Fields of a new dev app.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    pub owner: Address,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub multiaddr: String,
    #[serde(default)]
    pub checksum: B256,
    /// The enclave configuration JSON stored as `m_appMREnclave`.
    #[serde(default)]
    pub mrenclave: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewDataset {
    pub owner: Address,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub multiaddr: String,
    #[serde(default)]
    pub checksum: B256,
}

/// A ledger persisted atomically (write, fsync, rename) on every change.
pub struct DevLedger {
    path: PathBuf,
    state: Mutex<State>,
}

impl DevLedger {
    /// Opens the ledger file, creating an empty ledger when it does not exist.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, LedgerError> {
        let path = path.into();
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                LedgerError::Rejected(format!("dev ledger {} is corrupt: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => {
                return Err(LedgerError::Unavailable(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        Ok(Self {
            path,
            state: Mutex::new(state),
        })
    }

    fn update<T>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Apply to a copy so a failed write leaves memory and file in agreement.
        let mut next = guard.clone();
        let out = f(&mut next)?;
        persist(&self.path, &next)?;
        *guard = next;
        Ok(out)
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        let guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    fn next_address(state: &mut State, kind: EntryKind, owner: Address) -> Address {
        state.nonce += 1;
        let digest = keccak_concat(&[
            b"sms-dev-ledger",
            kind.as_str().as_bytes(),
            owner.as_slice(),
            &state.nonce.to_be_bytes(),
        ]);
        Address::from_slice(&digest[12..])
    }

    pub fn deploy_app(&self, app: NewApp) -> Result<Address, LedgerError> {
        self.update(|s| {
            let address = Self::next_address(s, EntryKind::App, app.owner);
            s.apps.insert(
                address,
                AppEntry {
                    address,
                    owner: app.owner,
                    name: app.name,
                    app_type: "DOCKER".into(),
                    multiaddr: app.multiaddr,
                    checksum: app.checksum,
                    mrenclave: app.mrenclave.into_bytes(),
                },
            );
            Ok(address)
        })
    }

    pub fn deploy_dataset(&self, dataset: NewDataset) -> Result<Address, LedgerError> {
        self.update(|s| {
            let address = Self::next_address(s, EntryKind::Dataset, dataset.owner);
            s.datasets.insert(
                address,
                DatasetEntry {
                    address,
                    owner: dataset.owner,
                    name: dataset.name,
                    multiaddr: dataset.multiaddr,
                    checksum: dataset.checksum,
                },
            );
            Ok(address)
        })
    }

    pub fn deploy_workerpool(
        &self,
        owner: Address,
        description: String,
    ) -> Result<Address, LedgerError> {
        self.update(|s| {
            let address = Self::next_address(s, EntryKind::Workerpool, owner);
            s.workerpools.insert(
                address,
                WorkerpoolEntry {
                    address,
                    owner,
                    description,
                },
            );
            Ok(address)
        })
    }

    /// Changes the owner of an entry, like an ERC-721 transfer. Returns the entry kind.
    pub fn transfer(&self, entry: Address, to: Address) -> Result<EntryKind, LedgerError> {
        self.update(|s| {
            if let Some(app) = s.apps.get_mut(&entry) {
                app.owner = to;
                return Ok(EntryKind::App);
            }
            if let Some(dataset) = s.datasets.get_mut(&entry) {
                dataset.owner = to;
                return Ok(EntryKind::Dataset);
            }
            if let Some(pool) = s.workerpools.get_mut(&entry) {
                pool.owner = to;
                return Ok(EntryKind::Workerpool);
            }
            Err(LedgerError::Rejected(format!(
                "{entry} is not an app, dataset or workerpool of the dev ledger"
            )))
        })
    }

    /// Records a deal and its tasks (used by the dev deal API).
    pub fn insert_deal(&self, deal: Deal, tasks: Vec<Task>) -> Result<(), LedgerError> {
        self.update(|s| {
            if s.deals.contains_key(&deal.deal_id) {
                return Err(LedgerError::Rejected(format!(
                    "deal {} already exists",
                    deal.deal_id
                )));
            }
            for task in tasks {
                s.tasks.insert(task.task_id, task);
            }
            s.deals.insert(deal.deal_id, deal);
            Ok(())
        })
    }

    /// Sets a task's status (dev only: lets tests walk a task through its life cycle).
    pub fn set_task_status(&self, task_id: B256, status: TaskStatus) -> Result<(), LedgerError> {
        self.update(|s| {
            let task = s.tasks.get_mut(&task_id).ok_or_else(|| {
                LedgerError::Rejected(format!("no task {task_id} in the dev ledger"))
            })?;
            task.status = status;
            Ok(())
        })
    }

    /// Stores a document of the dev IPFS (`--dev` bulk runs): a file named by its CIDv0 in
    /// `<ledger dir>/dev-ipfs/`. Returns the CID.
    pub fn ipfs_add(&self, content: &[u8]) -> Result<String, LedgerError> {
        let cid = sms_core::cid::cid_v0(content);
        let dir = self.ipfs_dir();
        let io = |e: std::io::Error| {
            LedgerError::Unavailable(format!("cannot write {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let tmp = dir.join(format!("{cid}.tmp"));
        std::fs::write(&tmp, content).map_err(io)?;
        std::fs::rename(&tmp, dir.join(&cid)).map_err(io)?;
        Ok(cid)
    }

    /// A document of the dev IPFS, `None` when unknown (or not a CID).
    pub fn ipfs_get(&self, cid: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        if sms_core::cid::Cid::parse(cid).is_err() {
            return Ok(None);
        }
        match std::fs::read(self.ipfs_dir().join(cid)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LedgerError::Unavailable(format!("dev IPFS {cid}: {e}"))),
        }
    }

    fn ipfs_dir(&self) -> PathBuf {
        self.path
            .parent()
            .unwrap_or(Path::new("."))
            .join("dev-ipfs")
    }

    /// A fresh nonce for ids derived by callers (deal ids).
    pub fn next_nonce(&self) -> Result<u64, LedgerError> {
        self.update(|s| {
            s.nonce += 1;
            Ok(s.nonce)
        })
    }
}

fn persist(path: &Path, state: &State) -> Result<(), LedgerError> {
    let io = |e: std::io::Error| {
        LedgerError::Unavailable(format!("cannot write {}: {e}", path.display()))
    };
    let bytes =
        serde_json::to_vec_pretty(state).map_err(|e| LedgerError::Unavailable(e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

#[async_trait]
impl Ledger for DevLedger {
    async fn owner_of(&self, entry: Address) -> Result<Option<Address>, LedgerError> {
        Ok(self.read(|s| {
            s.apps
                .get(&entry)
                .map(|a| a.owner)
                .or_else(|| s.datasets.get(&entry).map(|d| d.owner))
                .or_else(|| s.workerpools.get(&entry).map(|w| w.owner))
        }))
    }

    async fn app(&self, address: Address) -> Result<Option<AppEntry>, LedgerError> {
        Ok(self.read(|s| s.apps.get(&address).cloned()))
    }

    async fn dataset(&self, address: Address) -> Result<Option<DatasetEntry>, LedgerError> {
        Ok(self.read(|s| s.datasets.get(&address).cloned()))
    }

    async fn workerpool(&self, address: Address) -> Result<Option<WorkerpoolEntry>, LedgerError> {
        Ok(self.read(|s| s.workerpools.get(&address).cloned()))
    }

    async fn deal(&self, deal_id: B256) -> Result<Option<Deal>, LedgerError> {
        Ok(self.read(|s| s.deals.get(&deal_id).cloned()))
    }

    async fn task(&self, task_id: B256) -> Result<Option<Task>, LedgerError> {
        Ok(self.read(|s| s.tasks.get(&task_id).cloned()))
    }

    /// The PoCo rules run locally with the dev owners and the dev order domain; nothing is
    /// ever consumed on the dev ledger.
    async fn check_dataset_order(
        &self,
        order: &SignedDatasetOrder,
        deal: &Deal,
    ) -> Result<Result<(), OrderRejection>, LedgerError> {
        let dataset = order.order.dataset;
        let Some(owner) = self.read(|s| s.datasets.get(&dataset).map(|d| d.owner)) else {
            return Ok(Err(OrderRejection::UnknownDataset(dataset)));
        };
        let known = self.read(|s| s.deals.contains_key(&deal.deal_id));
        if !known {
            return Ok(Err(OrderRejection::Poco("Deal not found".into())));
        }
        Ok(sms_core::bulk::check_order(
            order,
            deal,
            owner,
            sms_core::U256::ZERO,
            &sms_core::bulk::dev_domain(),
        ))
    }

    fn describe(&self) -> String {
        format!("dev ledger at {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_survive_reopen_and_transfer_changes_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.json");
        let alice = Address::repeat_byte(0xa1);
        let bob = Address::repeat_byte(0xb0);
        let app = {
            let ledger = DevLedger::open(&path).unwrap();
            let app = ledger
                .deploy_app(NewApp {
                    owner: alice,
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(ledger.owner_of(app).await.unwrap(), Some(alice));
            assert_eq!(ledger.transfer(app, bob).unwrap(), EntryKind::App);
            app
        };
        let ledger = DevLedger::open(&path).unwrap();
        assert_eq!(ledger.owner_of(app).await.unwrap(), Some(bob));
        assert_eq!(ledger.owner_of(Address::ZERO).await.unwrap(), None);
        assert!(ledger.transfer(Address::ZERO, bob).is_err());
    }
}
