//! Deploys the real iExec PoCo protocol (native mode) from the compiled `@iexec/poco` artifacts.
//!
//! Order: diamond-1 facets + `DiamondInit` → `Diamond` (owner = deployer) → `IexecLibOrders_v5`
//! → PoCo facets (library linked) in one `diamondCut` → the three registries (initialised) →
//! `configure(...)` in native mode (no token) → the five standard categories.

use std::collections::BTreeSet;
use std::path::Path;

use alloy::json_abi::JsonAbi;
use alloy::primitives::{Address, Bytes, FixedBytes, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolValue};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use super::contracts::{DiamondArgs, FacetCut, IDiamondCut, IHub, IRegistry};
use super::{Deployment, Node, call_tx};

/// PoCo facets deployed behind the diamond, native (non-token) flavour.
const POCO_FACETS: [&str; 11] = [
    "IexecAccessorsABILegacyFacet",
    "IexecCategoryManagerFacet",
    "IexecConfigurationExtraFacet",
    "IexecConfigurationFacet",
    "IexecERC20Facet",
    "IexecEscrowNativeFacet",
    "IexecOrderManagementFacet",
    "IexecPoco1Facet",
    "IexecPoco2Facet",
    "IexecPocoAccessorsFacet",
    "IexecRelayFacet",
];

/// Standard categories: (name, workClockTimeRef in seconds).
pub const CATEGORIES: [(&str, u64); 5] = [
    ("XS", 300),
    ("S", 1200),
    ("M", 3600),
    ("L", 10800),
    ("XL", 36000),
];

const LIB_ORDERS: &str = "IexecLibOrders_v5";

struct Artifact {
    abi: JsonAbi,
    /// Creation bytecode as hex, possibly with `__$…$__` library placeholders.
    bytecode: String,
    links: Vec<(String, usize, usize)>,
}

impl Artifact {
    fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading {} (run tools/chain/setup.sh)", path.display()))?;
        let json: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let abi: JsonAbi = serde_json::from_value(json["abi"].clone()).context("artifact abi")?;
        let bytecode = json["bytecode"]
            .as_str()
            .ok_or_else(|| anyhow!("{}: no bytecode", path.display()))?
            .to_owned();
        let mut links = Vec::new();
        if let Some(files) = json.get("linkReferences").and_then(Value::as_object) {
            for libs in files.values() {
                for (lib, refs) in libs.as_object().into_iter().flatten() {
                    for r in refs.as_array().into_iter().flatten() {
                        let start = r["start"]
                            .as_u64()
                            .ok_or_else(|| anyhow!("bad linkReferences"))?;
                        let length = r["length"]
                            .as_u64()
                            .ok_or_else(|| anyhow!("bad linkReferences"))?;
                        links.push((lib.clone(), start as usize, length as usize));
                    }
                }
            }
        }
        Ok(Self {
            abi,
            bytecode,
            links,
        })
    }

    fn code(&self, libraries: &[(&str, Address)]) -> Result<Bytes> {
        let mut hex = self.bytecode.trim_start_matches("0x").to_owned();
        for (lib, start, length) in &self.links {
            let address = libraries
                .iter()
                .find(|(name, _)| name == lib)
                .map(|(_, a)| *a)
                .ok_or_else(|| anyhow!("library {lib} is not deployed"))?;
            if *length != 20 {
                bail!("unexpected link length {length}");
            }
            let range = start * 2..(start + length) * 2;
            if hex.get(range.clone()).is_none() {
                bail!("link reference out of range");
            }
            hex.replace_range(range, &alloy::hex::encode(address));
        }
        Ok(Bytes::from(
            alloy::hex::decode(&hex).context("bytecode is not hex after linking")?,
        ))
    }

    /// Diamond selectors of this facet: its functions, plus `receive`/`fallback` as
    /// `0x00000000`/`0xffffffff`.
    fn selectors(&self) -> Vec<FixedBytes<4>> {
        let mut out: Vec<FixedBytes<4>> = self.abi.functions().map(|f| f.selector()).collect();
        if self.abi.receive.is_some() {
            out.push(FixedBytes([0, 0, 0, 0]));
        }
        if self.abi.fallback.is_some() {
            out.push(FixedBytes([0xff; 4]));
        }
        out
    }
}

struct Paths<'a>(&'a Path);

impl Paths<'_> {
    fn contract(&self, rel: &str) -> std::path::PathBuf {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        self.0
            .join("artifacts/contracts")
            .join(format!("{rel}.sol"))
            .join(format!("{name}.json"))
    }
    fn facet(&self, name: &str) -> std::path::PathBuf {
        self.contract(&format!("facets/{name}"))
    }
    /// The diamond-1 facets are not in `artifacts/`; their bytecode ships in the deployments.
    fn diamond1(&self, name: &str) -> std::path::PathBuf {
        self.0
            .join("deployments/arbitrumSepolia")
            .join(format!("{name}.json"))
    }
}

pub(super) async fn deploy(
    node: &Node,
    deployer: &PrivateKeySigner,
    artifacts: &Path,
) -> Result<Deployment> {
    let paths = Paths(artifacts);
    let owner = deployer.address();

    // 1. Diamond with the three diamond-1 facets and its initialiser.
    let mut cuts = Vec::new();
    let mut installed = BTreeSet::new();
    for name in ["DiamondCutFacet", "DiamondLoupeFacet", "OwnershipFacet"] {
        let artifact = Artifact::load(&paths.diamond1(name))?;
        let address = node
            .deploy(deployer, artifact.code(&[])?)
            .await
            .with_context(|| format!("deploying {name}"))?;
        let selectors = artifact.selectors();
        installed.extend(selectors.iter().copied());
        cuts.push(FacetCut {
            facetAddress: address,
            action: 0,
            functionSelectors: selectors,
        });
    }
    let init_artifact = Artifact::load(&paths.diamond1("DiamondInit"))?;
    let init = node
        .deploy(deployer, init_artifact.code(&[])?)
        .await
        .context("deploying DiamondInit")?;
    let init_selector = init_artifact
        .abi
        .function("init")
        .and_then(|f| f.first())
        .map(|f| f.selector())
        .ok_or_else(|| anyhow!("DiamondInit has no init()"))?;
    let diamond = Artifact::load(&paths.contract("Diamond"))?;
    let args = DiamondArgs {
        owner,
        init,
        initCalldata: Bytes::copy_from_slice(init_selector.as_slice()),
    };
    let mut code = diamond.code(&[])?.to_vec();
    code.extend_from_slice(&(cuts, args).abi_encode_params());
    let hub = node
        .deploy(deployer, code.into())
        .await
        .context("deploying Diamond")?;

    // 2. The orders library, then the PoCo facets linked against it, in one cut.
    let lib = Artifact::load(&paths.contract(&format!("libs/{LIB_ORDERS}")))?;
    let lib_address = node
        .deploy(deployer, lib.code(&[])?)
        .await
        .context("deploying IexecLibOrders_v5")?;
    let libraries = [(LIB_ORDERS, lib_address)];
    let mut cuts = Vec::new();
    for name in POCO_FACETS {
        let artifact = Artifact::load(&paths.facet(name))?;
        let address = node
            .deploy(deployer, artifact.code(&libraries)?)
            .await
            .with_context(|| format!("deploying {name}"))?;
        // A selector already served (e.g. `owner()` by OwnershipFacet) cannot be added twice.
        let selectors: Vec<_> = artifact
            .selectors()
            .into_iter()
            .filter(|s| installed.insert(*s))
            .collect();
        cuts.push(FacetCut {
            facetAddress: address,
            action: 0,
            functionSelectors: selectors,
        });
    }
    let cut = call_tx(
        hub,
        IDiamondCut::diamondCutCall::new((cuts, Address::ZERO, Bytes::new())),
    );
    node.send(deployer, cut)
        .await
        .context("diamondCut of the PoCo facets")?;

    // 3. Registries, owned by the deployer.
    let mut registries = Vec::new();
    for rel in [
        "registries/apps/AppRegistry",
        "registries/datasets/DatasetRegistry",
        "registries/workerpools/WorkerpoolRegistry",
    ] {
        let artifact = Artifact::load(&paths.contract(rel))?;
        let address = node
            .deploy(deployer, artifact.code(&[])?)
            .await
            .with_context(|| format!("deploying {rel}"))?;
        let call = call_tx(address, IRegistry::initializeCall::new((Address::ZERO,)));
        node.send(deployer, call)
            .await
            .with_context(|| format!("initialising {rel}"))?;
        registries.push(address);
    }
    let [app_registry, dataset_registry, workerpool_registry] = registries[..] else {
        bail!("three registries expected");
    };

    // 4. Native mode: no token.
    let configure = IHub::configureCall::new((
        Address::ZERO,
        "Staked RLC".into(),
        "SRLC".into(),
        9,
        app_registry,
        dataset_registry,
        workerpool_registry,
        Address::ZERO,
    ));
    node.send(deployer, call_tx(hub, configure))
        .await
        .context("configure")?;
    for (name, time_ref) in CATEGORIES {
        let call = IHub::createCategoryCall::new((name.into(), "{}".into(), U256::from(time_ref)));
        node.send(deployer, call_tx(hub, call))
            .await
            .with_context(|| format!("category {name}"))?;
    }
    Ok(Deployment {
        hub,
        app_registry,
        dataset_registry,
        workerpool_registry,
        chain_id: node.chain_id,
    })
}
