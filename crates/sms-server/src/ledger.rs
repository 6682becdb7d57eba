//! Which ledger the server reads: the embedded dev ledger (`--dev`) or the PoCo contracts.

use std::path::Path;
use std::sync::Arc;

use sms_chain::Ledger;
use sms_chain::dev::DevLedger;

use crate::config::ServerConfig;
use crate::server::StartupError;

pub type Ledgers = (Arc<dyn Ledger>, Option<Arc<DevLedger>>);

pub async fn build(config: &ServerConfig, data_dir: &Path) -> Result<Ledgers, StartupError> {
    if config.dev {
        let dev = Arc::new(DevLedger::open(data_dir.join("dev-ledger.json"))?);
        return Ok((dev.clone(), Some(dev)));
    }
    Err(StartupError::Config(
        "no ledger: pass --chain-rpc and --hub to read the iExec contracts, or --dev for the embedded dev ledger".into(),
    ))
}
