//! Dev wallets: a few keys created on the first `--dev` start and kept in the data directory
//! as keystore V3 files (password `dev`), so the CLI can sign with them right away.

use std::path::{Path, PathBuf};

use alloy_signer_local::PrivateKeySigner;
use sms_core::Address;

pub const DEV_WALLET_PASSWORD: &str = "dev";
const NAMES: [&str; 3] = ["owner", "requester", "workerpool"];

#[derive(Clone, Debug)]
pub struct DevWallet {
    pub name: &'static str,
    pub address: Address,
    pub private_key: String,
    pub keystore: PathBuf,
}

/// Loads the dev wallets of `data_dir`, creating the missing ones.
pub fn load_or_create(data_dir: &Path) -> std::io::Result<Vec<DevWallet>> {
    let dir = data_dir.join("dev-wallets");
    std::fs::create_dir_all(&dir)?;
    let mut wallets = Vec::new();
    for name in NAMES {
        let keystore = dir.join(format!("{name}.json"));
        let signer = if keystore.exists() {
            sms_client::wallet::load(&keystore, DEV_WALLET_PASSWORD)
                .map_err(std::io::Error::other)?
        } else {
            let signer = PrivateKeySigner::random();
            sms_client::wallet::save(&keystore, &signer, DEV_WALLET_PASSWORD)
                .map_err(std::io::Error::other)?;
            signer
        };
        wallets.push(DevWallet {
            name,
            address: signer.address(),
            private_key: sms_core::hex::encode_prefixed(signer.to_bytes()),
            keystore,
        });
    }
    Ok(wallets)
}
