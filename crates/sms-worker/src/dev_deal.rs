//! A deal and its task on a `--dev` server's ledger, for the local worker (`sms app run`,
//! `sms worker run`, `sms demo`).
//!
//! The dev workerpool: created once per SMS URL, owned by a wallet of its own; that wallet and
//! the worker's are kept in `<config dir>/dev-workerpool.json` (`~/.config/sms/` unless
//! `XDG_CONFIG_HOME` is set; file readable by you only). They are dev keys: never fund them.
//! Bulk tasks (docs/bulk-processing.md): one open bulk order per dataset, signed by their owner,
//! listed in one slice; slice and bulk root are stored in the server's dev IPFS
//! (`POST /dev/ipfs`), which the server then reads back as its IPFS gateway.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alloy_signer_local::PrivateKeySigner;
use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sms_client::SmsClient;
use sms_core::B256;
use sms_core::bulk::{MAX_ORDERS_PER_SLICE, SignedDatasetOrder, dev_domain, open_order};

use crate::files::write_private;

/// The dev workerpool file.
#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DevPoolFile {
    owner_private_key: String,
    worker_private_key: String,
    /// SMS URL → workerpool address on that server's dev ledger.
    #[serde(default)]
    workerpools: BTreeMap<String, String>,
}

/// The dev workerpool of one SMS: its owner's and its worker's wallets.
pub struct DevPool {
    pub owner: PrivateKeySigner,
    pub worker: PrivateKeySigner,
    file: DevPoolFile,
    path: PathBuf,
}

fn default_pool_file() -> PathBuf {
    let wallet = sms_client::wallet::default_path();
    wallet
        .parent()
        .unwrap_or(Path::new("."))
        .join("dev-workerpool.json")
}

impl DevPool {
    pub fn load_or_create(path: Option<&Path>) -> anyhow::Result<Self> {
        let path = path
            .map(Path::to_path_buf)
            .unwrap_or_else(default_pool_file);
        let file: DevPoolFile = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a dev workerpool file", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = |s: &PrivateKeySigner| sms_core::hex::encode_prefixed(s.to_bytes());
                DevPoolFile {
                    owner_private_key: key(&PrivateKeySigner::random()),
                    worker_private_key: key(&PrivateKeySigner::random()),
                    workerpools: BTreeMap::new(),
                }
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let owner = sms_client::wallet::parse_private_key(&file.owner_private_key)?;
        let worker = sms_client::wallet::parse_private_key(&file.worker_private_key)?;
        let pool = Self {
            owner,
            worker,
            file,
            path,
        };
        pool.save()?;
        Ok(pool)
    }

    fn save(&self) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.file)?;
        write_private(&self.path, &bytes, true)
    }

    /// The workerpool address on the SMS at `sms_url`, deployed when unknown (or `redeploy`).
    pub async fn workerpool(
        &mut self,
        client: &SmsClient,
        sms_url: &str,
        redeploy: bool,
    ) -> anyhow::Result<String> {
        let key = sms_url.trim_end_matches('/').to_owned();
        if !redeploy && let Some(a) = self.file.workerpools.get(&key) {
            return Ok(a.clone());
        }
        let body = json!({ "owner": self.owner.address().to_string(), "description": "sms local dev workerpool" });
        let address = deploy_dev_entry(client, "/dev/workerpools", &body).await?;
        self.file.workerpools.insert(key, address.clone());
        self.save()?;
        Ok(address)
    }
}

/// Registers an app, dataset or workerpool on the dev ledger (`POST /dev/<kind>s`); returns
/// its address as the SMS answered it.
pub async fn deploy_dev_entry(
    client: &SmsClient,
    path: &str,
    body: &Value,
) -> anyhow::Result<String> {
    let answer: Value = client.post_json(path, body).await?;
    answer
        .get("address")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the SMS answered without an address: {answer}"))
}

/// An app, dataset or workerpool to register on the dev ledger (`sms dev <kind> deploy`).
pub enum DevEntry {
    App {
        owner: String,
        name: String,
        /// The enclave configuration JSON.
        mrenclave: String,
        multiaddr: String,
        checksum: Option<String>,
    },
    Dataset {
        owner: String,
        name: String,
        multiaddr: String,
        checksum: Option<String>,
    },
    Workerpool {
        owner: String,
        description: String,
    },
}

impl DevEntry {
    /// `app`, `dataset` or `workerpool`.
    pub fn kind(&self) -> &'static str {
        match self {
            DevEntry::App { .. } => "app",
            DevEntry::Dataset { .. } => "dataset",
            DevEntry::Workerpool { .. } => "workerpool",
        }
    }

    /// The request body of `POST /dev/<kind>s`.
    fn body(&self) -> Value {
        let (mut body, checksum) = match self {
            DevEntry::App {
                owner,
                name,
                mrenclave,
                multiaddr,
                checksum,
            } => (
                json!({ "owner": owner, "name": name, "mrenclave": mrenclave, "multiaddr": multiaddr }),
                checksum,
            ),
            DevEntry::Dataset {
                owner,
                name,
                multiaddr,
                checksum,
            } => (
                json!({ "owner": owner, "name": name, "multiaddr": multiaddr }),
                checksum,
            ),
            DevEntry::Workerpool { owner, description } => {
                (json!({ "owner": owner, "description": description }), &None)
            }
        };
        if let Some(c) = checksum {
            body["checksum"] = json!(c);
        }
        body
    }
}

/// Registers `entry` on the dev ledger; its address, checked and checksummed.
pub async fn deploy_checksummed(client: &SmsClient, entry: &DevEntry) -> anyhow::Result<String> {
    let path = format!("/dev/{}s", entry.kind());
    let answer: Value = client.post_json(&path, &entry.body()).await?;
    Ok(answer
        .get("address")
        .and_then(Value::as_str)
        .and_then(|a| sms_core::secret::parse_address(a).ok())
        .ok_or_else(|| anyhow!("the SMS answered without an address: {answer}"))?
        .to_string())
}

/// Sets a task's status on the dev ledger (`POST /dev/tasks/{task}/status`); the answer.
pub async fn set_task_status(
    client: &SmsClient,
    task: &str,
    status: &str,
) -> anyhow::Result<Value> {
    let path = format!("/dev/tasks/{task}/status");
    Ok(client
        .post_json(&path, &json!({ "status": status }))
        .await?)
}

/// Transfers an entry to `to` on the dev ledger (`POST /dev/transfer`); the kind of entry
/// moved (`entry` if the answer does not say) and the answer.
pub async fn transfer(
    client: &SmsClient,
    entry: &str,
    to: &str,
) -> anyhow::Result<(String, Value)> {
    let answer: Value = client
        .post_json("/dev/transfer", &json!({ "entry": entry, "to": to }))
        .await?;
    let kind = answer
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("entry")
        .to_owned();
    Ok((kind, answer))
}

/// A deal exactly as `sms dev deal create` gives it: any workerpool, volume and category.
pub struct NewDevDeal {
    pub app: String,
    pub dataset: Option<String>,
    pub workerpool: String,
    pub requester: String,
    pub beneficiary: Option<String>,
    pub callback: Option<String>,
    /// Names (`tee,scone`) or a 0x bytes32, as the server parses it.
    pub tag: String,
    /// A JSON object, or any other string stored verbatim.
    pub params: Option<String>,
    pub volume: u64,
    pub category: u64,
}

/// Records `deal` on the dev ledger (`POST /dev/deals`); returns its id and its task ids.
pub async fn create_deal_as_given(
    client: &SmsClient,
    deal: &NewDevDeal,
) -> anyhow::Result<(String, Vec<String>)> {
    let mut body = json!({
        "app": deal.app, "workerpool": deal.workerpool, "requester": deal.requester,
        "tag": deal.tag, "volume": deal.volume, "category": deal.category,
    });
    for (key, value) in [
        ("dataset", &deal.dataset),
        ("beneficiary", &deal.beneficiary),
        ("callback", &deal.callback),
    ] {
        if let Some(v) = value {
            body[key] = json!(v);
        }
    }
    if let Some(params) = &deal.params {
        body["params"] = match serde_json::from_str::<Value>(params) {
            Ok(object @ Value::Object(_)) => object,
            _ => json!(params),
        };
    }
    let answer: Value = client.post_json("/dev/deals", &body).await?;
    let deal_id = answer
        .get("dealId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let tasks: Vec<String> = answer
        .get("taskIds")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok((deal_id, tasks))
}

/// `sms app run` needs the server's dev ledger: the server is asked (`GET /dev/info`) and
/// must say that it is a dev server.
pub async fn ensure_dev_server(client: &SmsClient) -> anyhow::Result<()> {
    let dev = client.is_dev_server().await.with_context(|| {
        format!(
            "cannot ask {} whether it is a dev server (GET /dev/info)",
            client.url()
        )
    })?;
    if !dev {
        bail!(
            "sms app run needs a dev server, and {} is not one (it has no GET /dev/info: it was not started with --dev): against a chain, create the deal with the iExec SDK and run its task with `sms worker run --task <taskId>`",
            client.url()
        );
    }
    Ok(())
}

/// A deal to create on the dev ledger.
pub struct DealRequest {
    pub app: String,
    pub dataset: Option<String>,
    pub requester: String,
    pub beneficiary: String,
    pub tag: B256,
    pub params: String,
}

/// The deal `sms app run` creates: its options as given.
pub struct AppRunDeal<'a> {
    pub app: &'a str,
    pub dataset: Option<&'a str>,
    pub requester: String,
    /// Default: the requester.
    pub beneficiary: Option<String>,
    /// `--tag`: names or a 0x bytes32.
    pub tag: &'a str,
    /// Datasets processed in bulk, each with an open order signed by the bulk owner.
    pub bulk: &'a [String],
    pub options: sms_core::deal_params::RunOptions<'a>,
}

impl AppRunDeal<'_> {
    /// The deal request: the tag parsed, the bulk orders (if any) signed by `bulk_owner` and
    /// published in the dev IPFS, the params built for a TEE tag or not.
    pub async fn request(
        self,
        client: &SmsClient,
        bulk_owner: impl FnOnce() -> anyhow::Result<PrivateKeySigner>,
    ) -> anyhow::Result<DealRequest> {
        let tag = sms_core::tag::parse_tag(self.tag).map_err(|e| anyhow!("--tag: {e}"))?;
        let tee = tag.as_slice()[31] & 1 == 1;
        let bulk_cid = if self.bulk.is_empty() {
            None
        } else {
            let owner = bulk_owner()?;
            Some(publish_dev_bulk(client, &owner, self.bulk, tag).await?)
        };
        Ok(DealRequest {
            app: self.app.to_owned(),
            dataset: self.dataset.map(str::to_owned),
            beneficiary: self.beneficiary.unwrap_or_else(|| self.requester.clone()),
            requester: self.requester,
            tag,
            params: self.options.params(tee, bulk_cid)?,
        })
    }
}

/// Creates the deal on the dev ledger with the dev workerpool; returns (dealId, first taskId).
pub async fn create_dev_deal(
    client: &SmsClient,
    sms_url: &str,
    pool: &mut DevPool,
    deal: &DealRequest,
) -> anyhow::Result<(String, String)> {
    for attempt in 0..2 {
        let workerpool = pool.workerpool(client, sms_url, attempt > 0).await?;
        let mut body = json!({
            "app": deal.app,
            "workerpool": workerpool,
            "requester": deal.requester,
            "beneficiary": deal.beneficiary,
            "tag": sms_core::hex::encode_prefixed(deal.tag),
            "params": deal.params,
        });
        if let Some(d) = &deal.dataset {
            body["dataset"] = json!(d);
        }
        match client.post_json::<Value>("/dev/deals", &body).await {
            Ok(answer) => {
                let deal_id = answer
                    .get("dealId")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let task = answer
                    .get("taskIds")
                    .and_then(|t| t.get(0))
                    .and_then(Value::as_str)
                    .ok_or_else(|| anyhow!("the SMS answered without a task: {answer}"))?
                    .to_owned();
                return Ok((deal_id, task));
            }
            // A workerpool remembered from another dev server at the same URL: deploy again.
            Err(e) if attempt == 0 && e.to_string().contains("is not a workerpool") => continue,
            Err(e) => return Err(e).context("cannot create the deal"),
        }
    }
    bail!("cannot create the deal")
}

/// Publishes the bulk orders of `datasets` (signed by `owner`) in the dev IPFS; returns the
/// root's CID, the deal's `bulk_cid`.
pub async fn publish_dev_bulk(
    client: &SmsClient,
    owner: &PrivateKeySigner,
    datasets: &[String],
    tag: B256,
) -> anyhow::Result<String> {
    if datasets.len() > MAX_ORDERS_PER_SLICE {
        bail!("--bulk: at most {MAX_ORDERS_PER_SLICE} datasets per task");
    }
    let mut orders = Vec::with_capacity(datasets.len());
    for text in datasets {
        let dataset =
            sms_core::secret::parse_address(text).map_err(|e| anyhow!("--bulk {text}: {e}"))?;
        let salt = B256::from(rand::random::<[u8; 32]>());
        let order = SignedDatasetOrder::sign(open_order(dataset, tag, salt), owner, &dev_domain());
        orders.push(order.to_json());
    }
    let slice = add_to_dev_ipfs(client, Value::Array(orders)).await?;
    add_to_dev_ipfs(client, Value::Array(vec![Value::String(slice)])).await
}

async fn add_to_dev_ipfs(client: &SmsClient, document: Value) -> anyhow::Result<String> {
    let answer: Value = client
        .post_json("/dev/ipfs", &document)
        .await
        .context("cannot store a bulk document in the dev IPFS (POST /dev/ipfs)")?;
    answer
        .get("cid")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the SMS answered without a CID: {answer}"))
}
