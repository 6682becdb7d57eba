//! What the SMS reads from the PoCo ledger: registry entries, deals and tasks.

use alloy_primitives::{Address, B256, U256, keccak256};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    App,
    Dataset,
    Workerpool,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::App => "app",
            Self::Dataset => "dataset",
            Self::Workerpool => "workerpool",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppEntry {
    pub address: Address,
    pub owner: Address,
    pub name: String,
    pub app_type: String,
    /// Decoded multiaddr (docker image reference for apps).
    pub multiaddr: String,
    pub checksum: B256,
    /// Raw `m_appMREnclave` bytes: the enclave configuration JSON, or empty.
    pub mrenclave: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetEntry {
    pub address: Address,
    pub owner: Address,
    pub name: String,
    /// Decoded multiaddr: binary multiaddr as text, else the UTF-8 bytes.
    pub multiaddr: String,
    pub checksum: B256,
}

impl DatasetEntry {
    /// Upstream's rule for a task's dataset: besides a non-zero address (checked on the deal),
    /// its URI must be non-blank (the checksum, a bytes32 read from the chain, is always
    /// present). A dataset without a URI is treated as no dataset at all.
    pub fn has_content(&self) -> bool {
        !self.multiaddr.trim().is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerpoolEntry {
    pub address: Address,
    pub owner: Address,
    pub description: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskStatus {
    Unset,
    Active,
    Revealing,
    Completed,
    Failed,
}

impl TaskStatus {
    pub fn from_index(i: u8) -> Option<Self> {
        [
            Self::Unset,
            Self::Active,
            Self::Revealing,
            Self::Completed,
            Self::Failed,
        ]
        .get(usize::from(i))
        .copied()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub task_id: B256,
    pub deal_id: B256,
    pub index: u64,
    pub status: TaskStatus,
    /// Unix seconds.
    pub time_ref: u64,
    pub contribution_deadline: u64,
    pub reveal_deadline: u64,
    pub final_deadline: u64,
}

/// One side of a deal: the resource, its owner at match time, and its price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealResource {
    pub pointer: Address,
    pub owner: Address,
    pub price: U256,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deal {
    pub deal_id: B256,
    pub app: DealResource,
    pub dataset: DealResource,
    pub workerpool: DealResource,
    pub trust: U256,
    pub category: U256,
    pub tag: B256,
    pub requester: Address,
    pub beneficiary: Address,
    pub callback: Address,
    pub params: String,
    pub start_time: u64,
    pub bot_first: u64,
    pub bot_size: u64,
    pub worker_stake: U256,
    pub scheduler_reward_ratio: U256,
    pub sponsor: Address,
}

impl Deal {
    pub fn has_dataset(&self) -> bool {
        self.dataset.pointer != Address::ZERO
    }

    pub fn has_callback(&self) -> bool {
        self.callback != Address::ZERO
    }
}

/// `taskid = keccak256(dealid ‖ uint256 idx)`.
pub fn task_id(deal_id: &B256, index: u64) -> B256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(deal_id.as_slice());
    buf[32..].copy_from_slice(&U256::from(index).to_be_bytes::<32>());
    keccak256(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_id_vector() {
        let deal: B256 = "0xa0b0fd396b0f79f14e4d6b34af7180bd9e80e2d86afda91c6127c5c17a268e66"
            .parse()
            .unwrap();
        assert_eq!(
            task_id(&deal, 0),
            "0xe06c86d6bb750dbd9be9e002482854b3b3f21550dbe37236767b9cac29e3ce28"
                .parse::<B256>()
                .unwrap()
        );
    }
}
