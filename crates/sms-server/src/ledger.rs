//! Which ledger the server reads: the PoCo contracts (`--chain-rpc` + `--hub`) or the embedded
//! dev ledger (`--dev` alone).
//!
//! | flags                           | ledger            | `/dev/*` API | dev wallets |
//! |---------------------------------|-------------------|--------------|-------------|
//! | `--chain-rpc --hub`             | PoCo over JSON-RPC | no          | no          |
//! | `--dev --chain-rpc --hub`       | PoCo over JSON-RPC | no          | yes         |
//! | `--dev`                         | embedded dev ledger | yes        | yes         |
//! | none                            | start-up refused   |             |             |
//!
//! The `/dev/*` API writes the embedded ledger; it is absent when the ledger is a chain, which it
//! cannot write.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sms_chain::Ledger;
use sms_chain::dev::DevLedger;
use sms_chain::poco::{ConnectError, PocoConfig, PocoLedger};

use crate::config::{ChainArgs, DEFAULT_CHAIN_ID, ServerConfig, parse_address_arg};
use crate::startup::StartupError;

pub type Ledgers = (Arc<dyn Ledger>, Option<Arc<DevLedger>>);

/// iExec's names, read when neither the flag nor its `SMS_*` variable is given.
pub const IEXEC_RPC_ENV: &str = "IEXEC_BLOCKCHAIN_NODE_ADDRESS";
pub const IEXEC_HUB_ENV: &str = "IEXEC_HUB_ADDRESS";
pub const IEXEC_CHAIN_ID_ENV: &str = "IEXEC_CHAIN_ID";

pub async fn build(config: &ServerConfig, data_dir: &Path) -> Result<Ledgers, StartupError> {
    let chain = poco_config(&config.chain, |name| std::env::var(name).ok())
        .map_err(StartupError::Config)?;
    match chain {
        Some(poco) => {
            let ledger = PocoLedger::connect(poco).await.map_err(connect_error)?;
            if config.dev {
                tracing::warn!(
                    ledger = %ledger.describe(),
                    "--dev with a chain: dev wallets are available, the /dev ledger API is not served"
                );
            }
            // Random or repeated ids must not each cost an RPC call (docs/limits.md).
            let shared = sms_chain::shared::SharedReads::new(
                Arc::new(ledger),
                config.limits.shared_reads(),
            );
            Ok((Arc::new(shared), None))
        }
        None if config.dev => {
            let dev = Arc::new(DevLedger::open(data_dir.join("dev-ledger.json"))?);
            Ok((dev.clone(), Some(dev)))
        }
        None => Err(StartupError::Config(
            "no ledger: pass --chain-rpc and --hub (or SMS_CHAIN_RPC and SMS_HUB) to read the iExec contracts, \
             or --dev for the embedded dev ledger"
                .into(),
        )),
    }
}

fn connect_error(e: ConnectError) -> StartupError {
    match e {
        // Could not ask the node at all (down, hanging, garbage): say which check was running.
        ConnectError::Ledger(e) => StartupError::Io(format!(
            "chain: cannot check the chain id and the hub at start-up: {e} (is --chain-rpc right and the node up?)"
        )),
        // Mismatches and invalid urls name the configured and the observed values.
        other => StartupError::Config(other.to_string()),
    }
}

/// A `value` that is set and not blank.
fn present(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The chain id this SMS serves (with or without a PoCo chain): `--chain-id`, else
/// `IEXEC_CHAIN_ID`, else Bellecour's. It is also the `chainId` of the v2 signing domain.
pub fn chain_id(args: &ChainArgs, env: impl Fn(&str) -> Option<String>) -> Result<u64, String> {
    match args.chain_id {
        Some(id) => Ok(id),
        None => match present(env(IEXEC_CHAIN_ID_ENV)) {
            Some(text) => text.parse().map_err(|_| {
                format!("{IEXEC_CHAIN_ID_ENV}: '{text}' is not a chain id (a decimal number)")
            }),
            None => Ok(DEFAULT_CHAIN_ID),
        },
    }
}

/// The PoCo configuration of `args`, the iExec variables filling what the flags and `SMS_*`
/// variables leave unset (`env` looks a variable up). `Ok(None)`: no chain configured.
pub fn poco_config(
    args: &ChainArgs,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<PocoConfig>, String> {
    let rpc = present(args.chain_rpc.clone()).or_else(|| present(env(IEXEC_RPC_ENV)));
    let hub = match args.hub {
        Some(hub) => Some(hub),
        None => present(env(IEXEC_HUB_ENV))
            .map(|text| parse_address_arg(&text).map_err(|e| format!("{IEXEC_HUB_ENV}: {e}")))
            .transpose()?,
    };
    let chain_id = chain_id(args, &env)?;
    let (rpc, hub) = match (rpc, hub) {
        (None, None) => return Ok(None),
        (Some(rpc), Some(hub)) => (rpc, hub),
        (Some(_), None) => {
            return Err(format!(
                "--chain-rpc is set but not --hub: give the PoCo hub address with --hub (or SMS_HUB, {IEXEC_HUB_ENV})"
            ));
        }
        (None, Some(hub)) => {
            return Err(format!(
                "--hub {hub} is set but not --chain-rpc: give the JSON-RPC url with --chain-rpc \
                 (or SMS_CHAIN_RPC, {IEXEC_RPC_ENV})"
            ));
        }
    };
    let mut config = PocoConfig::new(rpc, hub, chain_id);
    config.timeout = Duration::from_millis(args.chain_timeout_ms);
    config.retries = args.chain_retries;
    config.fresh_for = Duration::from_millis(args.chain_fresh_ms);
    Ok(Some(config))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sms_core::Address;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    const HUB: &str = "0x3eca1B216A7DF1C7689aEb259fFB83ADFB894E7f";

    #[test]
    fn nothing_configured_is_no_chain() {
        assert!(
            poco_config(&ChainArgs::default(), env(&[]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn flags_win_over_iexec_variables() {
        let args = ChainArgs {
            chain_rpc: Some("http://flag:8545".into()),
            hub: Some(Address::repeat_byte(1)),
            chain_id: Some(65535),
            chain_timeout_ms: 300,
            chain_retries: 0,
            chain_fresh_ms: 0,
        };
        let vars = env(&[
            (IEXEC_RPC_ENV, "http://iexec:8545"),
            (IEXEC_HUB_ENV, HUB),
            (IEXEC_CHAIN_ID_ENV, "134"),
        ]);
        let c = poco_config(&args, vars).unwrap().unwrap();
        assert_eq!(
            (c.rpc_url.as_str(), c.hub, c.chain_id),
            ("http://flag:8545", Address::repeat_byte(1), 65535)
        );
        assert_eq!(
            (c.timeout, c.retries, c.fresh_for),
            (Duration::from_millis(300), 0, Duration::ZERO)
        );
    }

    #[test]
    fn iexec_variables_fill_the_gaps() {
        let vars = env(&[
            (IEXEC_RPC_ENV, " https://bellecour.iex.ec "),
            (IEXEC_HUB_ENV, HUB),
            (IEXEC_CHAIN_ID_ENV, "65535"),
        ]);
        let c = poco_config(&ChainArgs::default(), vars).unwrap().unwrap();
        assert_eq!(
            (c.rpc_url.as_str(), c.hub, c.chain_id),
            (
                "https://bellecour.iex.ec",
                parse_address_arg(HUB).unwrap(),
                65535
            )
        );
        assert_eq!(
            (c.timeout, c.retries, c.fresh_for),
            (Duration::from_secs(2), 2, Duration::from_secs(1))
        );
        // Chain id defaults to Bellecour's; blank variables are absent.
        let vars = env(&[
            (IEXEC_RPC_ENV, "http://x"),
            (IEXEC_HUB_ENV, HUB),
            (IEXEC_CHAIN_ID_ENV, " "),
        ]);
        assert_eq!(
            poco_config(&ChainArgs::default(), vars)
                .unwrap()
                .unwrap()
                .chain_id,
            134
        );
    }

    #[test]
    fn half_a_chain_or_bad_variables_are_refused() {
        let only_rpc = ChainArgs {
            chain_rpc: Some("http://x".into()),
            ..ChainArgs::default()
        };
        let e = poco_config(&only_rpc, env(&[])).unwrap_err();
        assert!(e.contains("--hub") && e.contains(IEXEC_HUB_ENV), "{e}");
        let e = poco_config(&ChainArgs::default(), env(&[(IEXEC_HUB_ENV, HUB)])).unwrap_err();
        assert!(
            e.contains("--chain-rpc") && e.contains(IEXEC_RPC_ENV),
            "{e}"
        );
        let e = poco_config(
            &ChainArgs::default(),
            env(&[(IEXEC_RPC_ENV, "http://x"), (IEXEC_HUB_ENV, "0x12")]),
        )
        .unwrap_err();
        assert!(e.contains(IEXEC_HUB_ENV) && e.contains("0x12"), "{e}");
        let vars = env(&[
            (IEXEC_RPC_ENV, "http://x"),
            (IEXEC_HUB_ENV, HUB),
            (IEXEC_CHAIN_ID_ENV, "bellecour"),
        ]);
        let e = poco_config(&ChainArgs::default(), vars).unwrap_err();
        assert!(
            e.contains(IEXEC_CHAIN_ID_ENV) && e.contains("bellecour"),
            "{e}"
        );
    }
}
