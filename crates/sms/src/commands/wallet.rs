use alloy_signer_local::PrivateKeySigner;
use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use sms_client::wallet;

use crate::commands::common::{WalletArgs, prompt_hidden};
use crate::output::Output;

#[derive(Subcommand)]
pub enum WalletCommand {
    /// Create a new random wallet (keystore V3 file).
    Create {
        #[command(flatten)]
        wallet: WalletArgs,
    },
    /// Import a private key into a new keystore file.
    Import {
        /// 0x-prefixed 64-hex-character private key.
        private_key: String,
        #[command(flatten)]
        wallet: WalletArgs,
    },
    /// Show the wallet's address (decrypts it to check the password).
    Show {
        /// Also print the private key.
        #[arg(long)]
        show_private_key: bool,
        #[command(flatten)]
        wallet: WalletArgs,
    },
}

fn new_password(args: &WalletArgs) -> anyhow::Result<String> {
    if let Some(p) = &args.password {
        return Ok(p.clone());
    }
    let first = prompt_hidden("Choose a password to encrypt the wallet: ")?;
    let again = prompt_hidden("Repeat the password: ")?;
    anyhow::ensure!(first == again, "the two passwords differ");
    Ok(first)
}

fn save(
    args: &WalletArgs,
    signer: &PrivateKeySigner,
    out: &Output,
    verb: &str,
) -> anyhow::Result<()> {
    let path = args.path();
    if path.exists() {
        return Err(wallet::WalletError::Exists(path).into());
    }
    let password = new_password(args)?;
    wallet::save(&path, signer, &password)?;
    out.done(
        format!(
            "Wallet {verb}\naddress: {}\nwallet file: {}",
            signer.address(),
            path.display()
        ),
        json!({ "address": signer.address().to_string(), "walletFile": path }),
    );
    Ok(())
}

pub fn run(cmd: WalletCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        WalletCommand::Create { wallet } => {
            save(&wallet, &PrivateKeySigner::random(), out, "created")
        }
        WalletCommand::Import {
            private_key,
            wallet,
        } => {
            let signer = wallet::parse_private_key(&private_key)?;
            save(&wallet, &signer, out, "imported")
        }
        WalletCommand::Show {
            show_private_key,
            wallet,
        } => {
            let path = wallet.path();
            let signer = wallet
                .signer()
                .with_context(|| format!("wallet {}", path.display()))?;
            let key = sms_core::hex::encode_prefixed(signer.to_bytes());
            let mut data = json!({ "address": signer.address().to_string(), "walletFile": path });
            let mut human = format!(
                "address: {}\nwallet file: {}",
                signer.address(),
                path.display()
            );
            if show_private_key {
                data["privateKey"] = json!(key);
                human.push_str(&format!("\nprivate key: {key}"));
            }
            out.done(human, data);
            Ok(())
        }
    }
}
