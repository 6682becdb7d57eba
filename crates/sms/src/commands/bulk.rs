//! `sms app run --bulk <dataset>…` on a `--dev` server (docs/bulk-processing.md): one open bulk
//! order per dataset, signed by the wallet (the datasets' owner on the dev ledger), listed in
//! one slice; slice and bulk root are stored in the server's dev IPFS (`POST /dev/ipfs`), which
//! the server then reads back as its IPFS gateway. Returns the root's CID, the deal's
//! `bulk_cid`.

use alloy_signer_local::PrivateKeySigner;
use anyhow::{Context, anyhow, bail};
use serde_json::Value;
use sms_core::B256;
use sms_core::bulk::{MAX_ORDERS_PER_SLICE, SignedDatasetOrder, dev_domain, open_order};

use super::SmsArgs;

pub async fn publish_dev_bulk(
    sms: &SmsArgs,
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
    let slice = add(sms, Value::Array(orders)).await?;
    add(sms, Value::Array(vec![Value::String(slice)])).await
}

async fn add(sms: &SmsArgs, document: Value) -> anyhow::Result<String> {
    let answer: Value = sms
        .client()?
        .post_json("/dev/ipfs", &document)
        .await
        .context("cannot store a bulk document in the dev IPFS (POST /dev/ipfs)")?;
    answer
        .get("cid")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the SMS answered without a CID: {answer}"))
}
