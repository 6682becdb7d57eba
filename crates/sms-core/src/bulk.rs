//! Bulk processing without I/O (docs/bulk-processing.md): the two IPFS documents of a bulk
//! deal, the signed dataset orders of a slice, their EIP-712 hash, the order rules PoCo
//! applies (for ledgers that cannot run PoCo itself), and the environment a checked slice
//! gives the pre-compute and the app.

use std::fmt;

use alloy_primitives::{Address, B256, Bytes, U256};
pub use alloy_sol_types::Eip712Domain;
use alloy_sol_types::{SolStruct, sol};
use serde::Deserialize;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::cid::{Cid, CidError};
use crate::enclave_env::{EnclaveEnv, SecretValues};
use crate::hex::encode_prefixed;
use crate::ledger::Deal;
use crate::secret::SecretId;
use crate::signature::EthSignature;

/// Largest document (bulk root or slice) read from a gateway.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Most orders in one slice: the iExec SDK's `maxDatasetPerTask` ceiling.
pub const MAX_ORDERS_PER_SLICE: usize = 100;
/// The smallest order volume usable in bulk, 2^53 − 2 (iExec SMS 9.3).
pub const MIN_BULK_VOLUME: u64 = (1 << 53) - 2;

pub const IEXEC_BULK_SLICE_SIZE: &str = "IEXEC_BULK_SLICE_SIZE";

/// `IEXEC_DATASET_<index>_<suffix>`, `index` 1-based.
pub fn dataset_variable(index: usize, suffix: &str) -> String {
    format!("IEXEC_DATASET_{index}_{suffix}")
}

sol! {
    /// PoCo's `IexecLibOrders_v5.DatasetOrder` as EIP-712 hashes it.
    #[derive(Debug, PartialEq, Eq)]
    struct DatasetOrder {
        address dataset;
        uint256 datasetprice;
        uint256 volume;
        bytes32 tag;
        address apprestrict;
        address workerpoolrestrict;
        address requesterrestrict;
        bytes32 salt;
    }
}

/// `EIP712Domain("iExecODB", "5.0.0", chainId, hub)`: the domain of every PoCo order.
pub fn order_domain(chain_id: u64, hub: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some("iExecODB".into()),
        Some("5.0.0".into()),
        Some(U256::from(chain_id)),
        Some(hub),
        None,
    )
}

/// Chain id of the dev ledger's order domain (no chain behind it).
pub const DEV_CHAIN_ID: u64 = 65535;
/// `verifyingContract` of the dev ledger's order domain.
pub const DEV_HUB: Address = Address::new([
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xde, 0x00,
]);

/// The order domain of the dev ledger.
pub fn dev_domain() -> Eip712Domain {
    order_domain(DEV_CHAIN_ID, DEV_HUB)
}

/// A dataset order with its owner's signature, as a slice lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedDatasetOrder {
    pub order: DatasetOrder,
    pub sign: Bytes,
}

impl SignedDatasetOrder {
    /// The EIP-712 digest the dataset owner signs.
    pub fn hash(&self, domain: &Eip712Domain) -> B256 {
        self.order.eip712_signing_hash(domain)
    }

    /// Signs `order` with the dataset owner's key (EIP-712, 65 bytes, v = 27/28).
    pub fn sign(
        order: DatasetOrder,
        owner: &alloy_signer_local::PrivateKeySigner,
        domain: &Eip712Domain,
    ) -> Self {
        use alloy_signer::SignerSync;
        let hash = order.eip712_signing_hash(domain);
        // Signing a prehash with an in-memory secp256k1 key cannot fail.
        let sign = match owner.sign_hash_sync(&hash) {
            Ok(sig) => Bytes::from(sig.as_bytes().to_vec()),
            Err(e) => unreachable!("local secp256k1 signing failed: {e}"),
        };
        Self { order, sign }
    }

    /// The order as the iExec SDK writes it in a slice (uints as decimal strings).
    pub fn to_json(&self) -> serde_json::Value {
        let o = &self.order;
        serde_json::json!({
            "dataset": o.dataset.to_checksum(None),
            "datasetprice": o.datasetprice.to_string(),
            "volume": o.volume.to_string(),
            "tag": encode_prefixed(o.tag),
            "apprestrict": o.apprestrict.to_checksum(None),
            "workerpoolrestrict": o.workerpoolrestrict.to_checksum(None),
            "requesterrestrict": o.requesterrestrict.to_checksum(None),
            "salt": encode_prefixed(o.salt),
            "sign": encode_prefixed(&self.sign),
        })
    }
}

/// A bulk order of `dataset` for any app, pool and requester: price 0, the SDK's infinite
/// volume (2^53 − 1), the given tag and salt.
pub fn open_order(dataset: Address, tag: B256, salt: B256) -> DatasetOrder {
    DatasetOrder {
        dataset,
        datasetprice: U256::ZERO,
        volume: U256::from((1u64 << 53) - 1),
        tag,
        apprestrict: Address::ZERO,
        workerpoolrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt,
    }
}

/// Why a document could not be used (the whole slice is refused).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DocumentError {
    #[error(transparent)]
    Cid(#[from] CidError),
    #[error("document {cid} is larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge { cid: String },
    #[error("bulk root {cid} is not a JSON array of CID strings: {reason}")]
    Root { cid: String, reason: String },
    #[error("bulk root {cid} has {slices} slice(s): none for task index {index}")]
    NoSlice {
        cid: String,
        slices: usize,
        index: u64,
    },
    #[error("slice {cid} is not a JSON array of signed dataset orders: {reason}")]
    Slice { cid: String, reason: String },
    #[error("slice {cid} lists {count} orders, more than {MAX_ORDERS_PER_SLICE}")]
    TooManyOrders { cid: String, count: usize },
}

/// The `bulk_cid` of the deal params, if it is a CID this SMS can verify.
pub fn parse_bulk_cid(text: &str) -> Result<Cid, DocumentError> {
    Ok(Cid::parse(text.trim())?)
}

/// Checks `bytes` against `cid` (size bound, then hash): the gateway is not trusted.
pub fn verify_document(cid: &Cid, bytes: &[u8]) -> Result<(), DocumentError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(DocumentError::TooLarge {
            cid: cid.to_string(),
        });
    }
    Ok(cid.verify(bytes)?)
}

/// The slice CID of task `index` in a verified bulk root.
pub fn slice_cid(root_cid: &Cid, root: &[u8], index: u64) -> Result<Cid, DocumentError> {
    let bad = |reason: String| DocumentError::Root {
        cid: root_cid.to_string(),
        reason,
    };
    let slices: Vec<String> = serde_json::from_slice(root).map_err(|e| bad(e.to_string()))?;
    let entry = usize::try_from(index)
        .ok()
        .and_then(|i| slices.get(i))
        .ok_or(DocumentError::NoSlice {
            cid: root_cid.to_string(),
            slices: slices.len(),
            index,
        })?;
    Cid::parse(entry).map_err(|e| bad(format!("slice {index}: {e}")))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonUint {
    Number(u64),
    Text(String),
}

/// One order as the SDK writes it (unknown fields ignored, as the SDK strips none it knows).
#[derive(Deserialize)]
struct JsonOrder {
    dataset: String,
    datasetprice: JsonUint,
    volume: JsonUint,
    tag: String,
    apprestrict: String,
    workerpoolrestrict: String,
    requesterrestrict: String,
    salt: String,
    sign: String,
}

fn field<T>(index: usize, name: &str, parsed: Option<T>) -> Result<T, String> {
    parsed.ok_or_else(|| format!("order {}: field '{name}' is malformed", index + 1))
}

fn hex_bytes(text: &str, len: Option<usize>) -> Option<Vec<u8>> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))?;
    if digits.len() > 2048 || len.is_some_and(|l| digits.len() != 2 * l) {
        return None;
    }
    alloy_primitives::hex::decode(digits).ok()
}

fn address(text: &str) -> Option<Address> {
    hex_bytes(text, Some(20)).map(|b| Address::from_slice(&b))
}

fn bytes32(text: &str) -> Option<B256> {
    hex_bytes(text, Some(32)).map(|b| B256::from_slice(&b))
}

fn uint(value: &JsonUint) -> Option<U256> {
    match value {
        JsonUint::Number(n) => Some(U256::from(*n)),
        JsonUint::Text(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
            U256::from_str_radix(t, 10).ok()
        }
        JsonUint::Text(_) => None,
    }
}

impl JsonOrder {
    fn typed(self, i: usize) -> Result<SignedDatasetOrder, String> {
        Ok(SignedDatasetOrder {
            order: DatasetOrder {
                dataset: field(i, "dataset", address(&self.dataset))?,
                datasetprice: field(i, "datasetprice", uint(&self.datasetprice))?,
                volume: field(i, "volume", uint(&self.volume))?,
                tag: field(i, "tag", bytes32(&self.tag))?,
                apprestrict: field(i, "apprestrict", address(&self.apprestrict))?,
                workerpoolrestrict: field(
                    i,
                    "workerpoolrestrict",
                    address(&self.workerpoolrestrict),
                )?,
                requesterrestrict: field(i, "requesterrestrict", address(&self.requesterrestrict))?,
                salt: field(i, "salt", bytes32(&self.salt))?,
            },
            sign: field(i, "sign", hex_bytes(&self.sign, None))?.into(),
        })
    }
}

/// The orders of a verified slice, in order.
pub fn parse_slice(cid: &Cid, bytes: &[u8]) -> Result<Vec<SignedDatasetOrder>, DocumentError> {
    let bad = |reason: String| DocumentError::Slice {
        cid: cid.to_string(),
        reason,
    };
    let raw: Vec<serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if raw.len() > MAX_ORDERS_PER_SLICE {
        return Err(DocumentError::TooManyOrders {
            cid: cid.to_string(),
            count: raw.len(),
        });
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, value)| {
            serde_json::from_value::<JsonOrder>(value)
                .map_err(|e| format!("order {}: {e}", i + 1))
                .and_then(|o| o.typed(i))
                .map_err(bad)
        })
        .collect()
}

/// Why an order of a slice is not used (its index gets empty values).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum OrderRejection {
    #[error("dataset {0} is not a registered dataset")]
    UnknownDataset(Address),
    #[error("volume {0} is below the bulk minimum {MIN_BULK_VOLUME}")]
    Volume(U256),
    #[error("the order is revoked or fully consumed")]
    Consumed,
    #[error("the signature is not the dataset owner's ({0})")]
    Signature(String),
    #[error("the deal already has a dataset")]
    DealHasDataset,
    #[error("app {0} is not allowed by apprestrict")]
    AppRestriction(Address),
    #[error("workerpool {0} is not allowed by workerpoolrestrict")]
    WorkerpoolRestriction(Address),
    #[error("requester {0} is not allowed by requesterrestrict")]
    RequesterRestriction(Address),
    #[error("the order's tag {order} has bits the deal's tag {deal} lacks")]
    Tag { order: B256, deal: B256 },
    /// PoCo's `assertDatasetDealCompatibility` reverted with this reason.
    #[error("PoCo: {0}")]
    Poco(String),
}

/// The upstream 9.3 volume rule (PoCo does not make it).
pub fn ensure_bulk_volume(order: &SignedDatasetOrder) -> Result<(), OrderRejection> {
    if order.order.volume < U256::from(MIN_BULK_VOLUME) {
        return Err(OrderRejection::Volume(order.order.volume));
    }
    Ok(())
}

/// A plain address restriction (zero = anyone). ERC-734 group contracts are not resolved here.
fn allowed(restriction: Address, account: Address) -> bool {
    restriction == Address::ZERO || restriction == account
}

/// PoCo 6.1's `assertDatasetDealCompatibility`, in its order, for a ledger that cannot run it:
/// `consumed` is the order's consumed volume, `owner` the dataset's current owner. Only EOA
/// signatures (65 bytes, or 64-byte EIP-2098) are understood.
pub fn check_order(
    order: &SignedDatasetOrder,
    deal: &Deal,
    owner: Address,
    consumed: U256,
    domain: &Eip712Domain,
) -> Result<(), OrderRejection> {
    let o = &order.order;
    if consumed >= o.volume {
        return Err(OrderRejection::Consumed);
    }
    ensure_signed_by(order, owner, domain)?;
    if deal.has_dataset() {
        return Err(OrderRejection::DealHasDataset);
    }
    if !allowed(o.apprestrict, deal.app.pointer) {
        return Err(OrderRejection::AppRestriction(deal.app.pointer));
    }
    if !allowed(o.workerpoolrestrict, deal.workerpool.pointer) {
        return Err(OrderRejection::WorkerpoolRestriction(
            deal.workerpool.pointer,
        ));
    }
    if !allowed(o.requesterrestrict, deal.requester) {
        return Err(OrderRejection::RequesterRestriction(deal.requester));
    }
    if deal.tag & o.tag != o.tag {
        return Err(OrderRejection::Tag {
            order: o.tag,
            deal: deal.tag,
        });
    }
    Ok(())
}

/// The order's EIP-712 digest is signed by `owner`.
pub fn ensure_signed_by(
    order: &SignedDatasetOrder,
    owner: Address,
    domain: &Eip712Domain,
) -> Result<(), OrderRejection> {
    let sign = order.sign.as_ref();
    let signature = match sign.len() {
        65 => EthSignature::parse(&encode_prefixed(sign)),
        64 => {
            // EIP-2098: the top bit of `s` is the parity.
            let mut full = [0u8; 65];
            full[..64].copy_from_slice(sign);
            full[64] = 27 + (sign[32] >> 7);
            full[32] &= 0x7f;
            EthSignature::parse(&encode_prefixed(full))
        }
        n => return Err(OrderRejection::Signature(format!("{n}-byte signature"))),
    }
    .map_err(|e| OrderRejection::Signature(e.to_string()))?;
    let signer = signature
        .recover_prehash(&order.hash(domain))
        .map_err(|e| OrderRejection::Signature(e.to_string()))?;
    if signer != owner {
        return Err(OrderRejection::Signature(format!(
            "signed by {signer}, owner is {owner}"
        )));
    }
    Ok(())
}

/// What the session knows of one order of the slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkDataset {
    /// The order's `dataset`: the file name in both enclaves.
    pub address: Address,
    /// The on-chain entry when every check passed, `None` otherwise.
    pub valid: Option<ValidDataset>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidDataset {
    pub multiaddr: String,
    pub checksum: B256,
}

/// The checked slice of a task, in the slice's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BulkSlice {
    pub cid: String,
    pub datasets: Vec<BulkDataset>,
}

impl BulkSlice {
    /// The stored keys the pre-compute needs (one per valid dataset).
    pub fn secrets_needed(&self) -> Vec<SecretId> {
        self.datasets
            .iter()
            .filter(|d| d.valid.is_some())
            .map(|d| SecretId::web3(d.address))
            .collect()
    }

    pub fn valid_count(&self) -> usize {
        self.datasets.iter().filter(|d| d.valid.is_some()).count()
    }

    /// The pre-compute's bulk variables: URL, checksum, key and file name per index, empty
    /// values for an invalid order (and an empty key for a valid one without a stored key).
    pub fn pre_compute_env(&self, secrets: &SecretValues, env: &mut EnclaveEnv) {
        env.public(IEXEC_BULK_SLICE_SIZE, self.datasets.len().to_string());
        for (i, d) in self.datasets.iter().enumerate() {
            let index = i + 1;
            let (url, checksum, key) = match &d.valid {
                Some(v) => (
                    v.multiaddr.clone(),
                    encode_prefixed(v.checksum),
                    secrets
                        .get(&SecretId::web3(d.address))
                        .map(|k| Zeroizing::new(String::from_utf8_lossy(k.as_bytes()).into_owned()))
                        .unwrap_or_default(),
                ),
                None => (String::new(), String::new(), Zeroizing::default()),
            };
            env.public(dataset_variable(index, "URL"), url);
            env.public(dataset_variable(index, "CHECKSUM"), checksum);
            env.secret(dataset_variable(index, "KEY"), key);
            env.public(
                dataset_variable(index, "FILENAME"),
                encode_prefixed(d.address),
            );
        }
    }

    /// The app's bulk variables: the slice size and every file name.
    pub fn app_env(&self, env: &mut EnclaveEnv) {
        env.public(IEXEC_BULK_SLICE_SIZE, self.datasets.len().to_string());
        for (i, d) in self.datasets.iter().enumerate() {
            env.public(
                dataset_variable(i + 1, "FILENAME"),
                encode_prefixed(d.address),
            );
        }
    }
}

impl fmt::Display for BulkSlice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "slice {}: {} of {} order(s) valid",
            self.cid,
            self.valid_count(),
            self.datasets.len()
        )
    }
}

#[cfg(test)]
#[path = "bulk_tests.rs"]
mod tests;
