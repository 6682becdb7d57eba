//! Typed bindings of the PoCo entry points the fixture drives, and the EIP-712 orders.

use alloy::sol;

sol! {
    /// EIP-2535 diamond cut item (`IDiamond.FacetCut`).
    struct FacetCut {
        address facetAddress;
        uint8 action;
        bytes4[] functionSelectors;
    }

    /// Constructor arguments of iExec's `Diamond`.
    struct DiamondArgs {
        address owner;
        address init;
        bytes initCalldata;
    }

    interface IDiamondCut {
        function diamondCut(FacetCut[] cuts, address init, bytes initCalldata) external;
    }

    interface IRegistry {
        event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);

        function initialize(address previous) external;
        function createApp(address owner, string name, string appType, bytes multiaddr, bytes32 checksum, bytes mrenclave) external returns (address);
        function createDataset(address owner, string name, bytes multiaddr, bytes32 checksum) external returns (address);
        function createWorkerpool(address owner, string description) external returns (address);
        function transferFrom(address from, address to, uint256 tokenId) external;
        function ownerOf(uint256 tokenId) external view returns (address);
    }

    /// Orders as `matchOrders` takes them: the EIP-712 fields followed by `bytes sign`.
    struct SignedAppOrder {
        address app;
        uint256 appprice;
        uint256 volume;
        bytes32 tag;
        address datasetrestrict;
        address workerpoolrestrict;
        address requesterrestrict;
        bytes32 salt;
        bytes sign;
    }

    struct SignedDatasetOrder {
        address dataset;
        uint256 datasetprice;
        uint256 volume;
        bytes32 tag;
        address apprestrict;
        address workerpoolrestrict;
        address requesterrestrict;
        bytes32 salt;
        bytes sign;
    }

    struct SignedWorkerpoolOrder {
        address workerpool;
        uint256 workerpoolprice;
        uint256 volume;
        bytes32 tag;
        uint256 category;
        uint256 trust;
        address apprestrict;
        address datasetrestrict;
        address requesterrestrict;
        bytes32 salt;
        bytes sign;
    }

    struct SignedRequestOrder {
        address app;
        uint256 appmaxprice;
        address dataset;
        uint256 datasetmaxprice;
        address workerpool;
        uint256 workerpoolmaxprice;
        address requester;
        uint256 volume;
        bytes32 tag;
        uint256 category;
        uint256 trust;
        address beneficiary;
        address callback;
        string params;
        bytes32 salt;
        bytes sign;
    }

    interface IHub {
        event OrdersMatched(bytes32 dealid, bytes32 appHash, bytes32 datasetHash, bytes32 workerpoolHash, bytes32 requestHash, uint256 volume);

        function configure(address token, string name, string symbol, uint8 decimals, address appRegistry, address datasetRegistry, address workerpoolRegistry, address v3Hub) external;
        function createCategory(string name, string description, uint256 workClockTimeRef) external returns (uint256);
        function countCategory() external view returns (uint256);
        function eip712domain_separator() external view returns (bytes32);
        function matchOrders(SignedAppOrder apporder, SignedDatasetOrder datasetorder, SignedWorkerpoolOrder workerpoolorder, SignedRequestOrder requestorder) external returns (bytes32);
        function initialize(bytes32 dealid, uint256 idx) external returns (bytes32);
        function claim(bytes32 taskid) external;
        function contribute(bytes32 taskid, bytes32 resultHash, bytes32 resultSeal, address enclaveChallenge, bytes enclaveSign, bytes authorizationSign) external;
        function contributeAndFinalize(bytes32 taskid, bytes32 resultDigest, bytes results, bytes resultsCallback, address enclaveChallenge, bytes enclaveSign, bytes authorizationSign) external;
    }
}

/// The EIP-712 order types, named exactly as the contract hashes them.
pub mod eip712 {
    use alloy::sol;

    sol! {
        #[derive(Debug)]
        struct AppOrder {
            address app;
            uint256 appprice;
            uint256 volume;
            bytes32 tag;
            address datasetrestrict;
            address workerpoolrestrict;
            address requesterrestrict;
            bytes32 salt;
        }

        #[derive(Debug)]
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

        #[derive(Debug)]
        struct WorkerpoolOrder {
            address workerpool;
            uint256 workerpoolprice;
            uint256 volume;
            bytes32 tag;
            uint256 category;
            uint256 trust;
            address apprestrict;
            address datasetrestrict;
            address requesterrestrict;
            bytes32 salt;
        }

        #[derive(Debug)]
        struct RequestOrder {
            address app;
            uint256 appmaxprice;
            address dataset;
            uint256 datasetmaxprice;
            address workerpool;
            uint256 workerpoolmaxprice;
            address requester;
            uint256 volume;
            bytes32 tag;
            uint256 category;
            uint256 trust;
            address beneficiary;
            address callback;
            string params;
            bytes32 salt;
        }
    }

    /// `EIP712Domain("iExecODB", "5.0.0", chainId, hub)`.
    pub fn domain(
        chain_id: u64,
        hub: alloy::primitives::Address,
    ) -> alloy::sol_types::Eip712Domain {
        alloy::sol_types::eip712_domain! {
            name: "iExecODB",
            version: "5.0.0",
            chain_id: chain_id,
            verifying_contract: hub,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::eip712::*;
    use alloy::primitives::{Address, B256, U256, b256};
    use alloy::sol_types::SolStruct;

    fn hub() -> Address {
        "0x3eca1B216A7DF1C7689aEb259fFB83ADFB894E7f"
            .parse()
            .unwrap()
    }

    #[test]
    fn domain_separator_vector() {
        assert_eq!(
            domain(134, hub()).separator(),
            b256!("0xf2cbd98a556869939d25b73c3fa68ba45f19932f8c9a06f744c98290ed9ef860")
        );
    }

    #[test]
    fn typehashes() {
        let typehash =
            |t: std::borrow::Cow<'static, str>| alloy::primitives::keccak256(t.as_bytes());
        assert_eq!(
            typehash(AppOrder::eip712_encode_type()),
            b256!("0x60815a0eeec47dddf1615fe53b31d016c31444e01b9d796db365443a6445d008")
        );
        assert_eq!(
            typehash(DatasetOrder::eip712_encode_type()),
            b256!("0x6cfc932a5a3d22c4359295b9f433edff52b60703fa47690a04a83e40933dd47c")
        );
        assert_eq!(
            typehash(WorkerpoolOrder::eip712_encode_type()),
            b256!("0xaa3429fb281b34691803133d3d978a75bb77c617ed6bc9aa162b9b30920022bb")
        );
        assert_eq!(
            typehash(RequestOrder::eip712_encode_type()),
            b256!("0xf24e853034a3a450aba845a82914fbb564ad85accca6cf62be112a154520fae0")
        );
    }

    #[test]
    fn app_order_hash_vector() {
        let mut tag = B256::ZERO;
        tag[31] = 0x05;
        let order = AppOrder {
            app: "0x76fE91568d50C5fF9411223df5A0c50Ec5fa326A"
                .parse()
                .unwrap(),
            appprice: U256::ZERO,
            volume: U256::from(1_000_000u64),
            tag,
            datasetrestrict: Address::ZERO,
            workerpoolrestrict: Address::ZERO,
            requesterrestrict: Address::ZERO,
            salt: b256!("0xcadb4f169d98b940ae506dfc8ee7832e1ff36854aab92f89b7408257693207b3"),
        };
        assert_eq!(
            order.eip712_signing_hash(&domain(134, hub())),
            b256!("0x210576e452027bc2430a32f6fae97bec8bd1f7bb7a96f59202d6947ec7d6de8f")
        );
    }

    #[test]
    fn workerpool_order_hash_vector() {
        let order = WorkerpoolOrder {
            workerpool: "0x9DEB16F7861123CE34AE755F48D30697eD066793"
                .parse()
                .unwrap(),
            workerpoolprice: U256::ZERO,
            volume: U256::from(4u64),
            tag: B256::ZERO,
            category: U256::from(3u64),
            trust: U256::from(1u64),
            apprestrict: Address::ZERO,
            datasetrestrict: Address::ZERO,
            requesterrestrict: Address::ZERO,
            salt: b256!("0x0c8d51b480466c65b459e828ed8549cf4b15ba1abda0ef5d454964c23f3edf62"),
        };
        assert_eq!(
            order.eip712_signing_hash(&domain(134, hub())),
            b256!("0x7b23e26344284e809d7809395467d611ba148ef83b2ff3854e03430311f3f8fa")
        );
    }
}
