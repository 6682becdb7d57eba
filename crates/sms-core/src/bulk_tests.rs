use alloy_primitives::{address, b256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;

use super::*;
use crate::ledger::DealResource;
use crate::secret::SecretValue;

fn hub() -> Address {
    address!("0x3eca1B216A7DF1C7689aEb259fFB83ADFB894E7f")
}

fn vector_order() -> DatasetOrder {
    DatasetOrder {
        dataset: address!("0x9deb16f7861123ce34ae755f48d30697ed066793"),
        datasetprice: U256::ZERO,
        volume: U256::from(9_007_199_254_740_991u64),
        tag: b256!("0x0000000000000000000000000000000000000000000000000000000000000003"),
        apprestrict: address!("0x76fE91568d50C5fF9411223df5A0c50Ec5fa326A"),
        workerpoolrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt: b256!("0xcadb4f169d98b940ae506dfc8ee7832e1ff36854aab92f89b7408257693207b3"),
    }
}

/// Hash and signature computed with ethers 6.17 `TypedDataEncoder` / `signTypedData`, key
/// `0x11…11`.
#[test]
fn order_hash_and_signature_vector() {
    let domain = order_domain(134, hub());
    let signed = SignedDatasetOrder {
        order: vector_order(),
        sign: alloy_primitives::hex::decode("d6f99183fd5048a8dbe573b8fd05e4822c3a61371e14f9a29790005ae40417fd46ea65d3fc76875652c17ed1ddb96d34c4f121ba39e9848aac2949f3785983da1b").unwrap().into(),
    };
    assert_eq!(
        signed.hash(&domain),
        b256!("0xd8801a3037b97540b21521fbaeb0cb3575d877f802b5da996dd02f38d50b936f")
    );
    let owner = address!("0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A");
    ensure_signed_by(&signed, owner, &domain).unwrap();
    assert!(matches!(
        ensure_signed_by(&signed, Address::repeat_byte(1), &domain),
        Err(OrderRejection::Signature(_))
    ));
    assert!(ensure_signed_by(&signed, owner, &dev_domain()).is_err());
    // The same signature in its 64-byte EIP-2098 form.
    let mut short = signed.sign[..64].to_vec();
    short[32] |= (signed.sign[64] - 27) << 7;
    let compact = SignedDatasetOrder {
        sign: short.into(),
        ..signed.clone()
    };
    ensure_signed_by(&compact, owner, &domain).unwrap();
}

fn sign(order: DatasetOrder, key: &PrivateKeySigner, domain: &Eip712Domain) -> SignedDatasetOrder {
    let hash = order.eip712_signing_hash(domain);
    let sig = key.sign_hash_sync(&hash).unwrap();
    SignedDatasetOrder {
        order,
        sign: sig.as_bytes().to_vec().into(),
    }
}

fn resource(pointer: Address) -> DealResource {
    DealResource {
        pointer,
        owner: Address::ZERO,
        price: U256::ZERO,
    }
}

fn bulk_deal() -> Deal {
    Deal {
        deal_id: B256::repeat_byte(7),
        app: resource(address!("0x76fE91568d50C5fF9411223df5A0c50Ec5fa326A")),
        dataset: resource(Address::ZERO),
        workerpool: resource(Address::repeat_byte(0x90)),
        trust: U256::from(1),
        category: U256::ZERO,
        tag: b256!("0x0000000000000000000000000000000000000000000000000000000000000003"),
        requester: Address::repeat_byte(0x7e),
        beneficiary: Address::repeat_byte(0x7e),
        callback: Address::ZERO,
        params: String::new(),
        start_time: 1,
        bot_first: 0,
        bot_size: 1,
        worker_stake: U256::ZERO,
        scheduler_reward_ratio: U256::ZERO,
        sponsor: Address::repeat_byte(0x7e),
    }
}

#[test]
fn check_order_follows_poco_rules() {
    let domain = dev_domain();
    let owner = PrivateKeySigner::random();
    let deal = bulk_deal();
    let ok = sign(vector_order(), &owner, &domain);
    check_order(&ok, &deal, owner.address(), U256::ZERO, &domain).unwrap();
    ensure_bulk_volume(&ok).unwrap();

    let impostor = sign(vector_order(), &PrivateKeySigner::random(), &domain);
    assert!(matches!(
        check_order(&impostor, &deal, owner.address(), U256::ZERO, &domain),
        Err(OrderRejection::Signature(_))
    ));
    assert_eq!(
        check_order(&ok, &deal, owner.address(), ok.order.volume, &domain),
        Err(OrderRejection::Consumed)
    );
    let other_app = sign(
        DatasetOrder {
            apprestrict: Address::repeat_byte(0xaa),
            ..vector_order()
        },
        &owner,
        &domain,
    );
    assert_eq!(
        check_order(&other_app, &deal, owner.address(), U256::ZERO, &domain),
        Err(OrderRejection::AppRestriction(deal.app.pointer))
    );
    let other_pool = sign(
        DatasetOrder {
            workerpoolrestrict: Address::repeat_byte(0xbb),
            ..vector_order()
        },
        &owner,
        &domain,
    );
    assert!(matches!(
        check_order(&other_pool, &deal, owner.address(), U256::ZERO, &domain),
        Err(OrderRejection::WorkerpoolRestriction(_))
    ));
    let other_requester = sign(
        DatasetOrder {
            requesterrestrict: Address::repeat_byte(0xcc),
            ..vector_order()
        },
        &owner,
        &domain,
    );
    assert!(matches!(
        check_order(
            &other_requester,
            &deal,
            owner.address(),
            U256::ZERO,
            &domain
        ),
        Err(OrderRejection::RequesterRestriction(_))
    ));
    let tdx = sign(
        DatasetOrder {
            tag: b256!("0x0000000000000000000000000000000000000000000000000000000000000009"),
            ..vector_order()
        },
        &owner,
        &domain,
    );
    assert!(matches!(
        check_order(&tdx, &deal, owner.address(), U256::ZERO, &domain),
        Err(OrderRejection::Tag { .. })
    ));
    let mut with_dataset = bulk_deal();
    with_dataset.dataset.pointer = Address::repeat_byte(0xdd);
    assert_eq!(
        check_order(&ok, &with_dataset, owner.address(), U256::ZERO, &domain),
        Err(OrderRejection::DealHasDataset)
    );
    let single = sign(
        DatasetOrder {
            volume: U256::from(1),
            ..vector_order()
        },
        &owner,
        &domain,
    );
    assert_eq!(
        ensure_bulk_volume(&single),
        Err(OrderRejection::Volume(U256::from(1)))
    );
    let minimum = DatasetOrder {
        volume: U256::from(MIN_BULK_VOLUME),
        ..vector_order()
    };
    ensure_bulk_volume(&sign(minimum, &owner, &domain)).unwrap();
}

fn raw_cid(bytes: &[u8]) -> Cid {
    // CIDv1 raw sha2-256: 0x01 0x55 0x12 0x20 digest, base32.
    let mut b = vec![0x01, 0x55, 0x12, 0x20];
    b.extend_from_slice(crate::hash::sha256(bytes).as_slice());
    Cid::parse(&format!("b{}", base32(&b))).unwrap()
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let (mut out, mut buffer, mut bits) = (String::new(), 0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[test]
fn documents_parse_and_verify() {
    let owner = PrivateKeySigner::random();
    let signed = sign(vector_order(), &owner, &dev_domain());
    let slice = serde_json::json!([{
        "dataset": encode_prefixed(signed.order.dataset),
        "datasetprice": 0,
        "volume": "9007199254740991",
        "tag": encode_prefixed(signed.order.tag),
        "apprestrict": signed.order.apprestrict.to_checksum(None),
        "workerpoolrestrict": encode_prefixed(Address::ZERO),
        "requesterrestrict": encode_prefixed(Address::ZERO),
        "salt": encode_prefixed(signed.order.salt),
        "sign": encode_prefixed(&signed.sign),
        "extra": "ignored",
    }]);
    let bytes = serde_json::to_vec(&slice).unwrap();
    let cid = raw_cid(&bytes);
    verify_document(&cid, &bytes).unwrap();
    assert_eq!(parse_slice(&cid, &bytes).unwrap(), vec![signed]);

    let root = serde_json::to_vec(&[cid.to_string()]).unwrap();
    let root_cid = raw_cid(&root);
    assert_eq!(slice_cid(&root_cid, &root, 0).unwrap(), cid);
    assert!(matches!(
        slice_cid(&root_cid, &root, 1),
        Err(DocumentError::NoSlice {
            slices: 1,
            index: 1,
            ..
        })
    ));
    assert!(matches!(
        slice_cid(&root_cid, b"{\"a\":1}", 0),
        Err(DocumentError::Root { .. })
    ));

    let mut tampered = bytes.clone();
    tampered[3] ^= 1;
    assert!(matches!(
        verify_document(&cid, &tampered),
        Err(DocumentError::Cid(CidError::Mismatch { .. }))
    ));
    let huge = vec![b' '; MAX_DOCUMENT_BYTES + 1];
    assert!(matches!(
        verify_document(&raw_cid(&huge), &huge),
        Err(DocumentError::TooLarge { .. })
    ));
}

#[test]
fn malformed_orders_refuse_the_slice() {
    let cid = raw_cid(b"x");
    let good = serde_json::json!({
        "dataset": "0x9deb16f7861123ce34ae755f48d30697ed066793", "datasetprice": "0",
        "volume": 9_007_199_254_740_991u64,
        "tag": "0x0000000000000000000000000000000000000000000000000000000000000003",
        "apprestrict": "0x0000000000000000000000000000000000000000",
        "workerpoolrestrict": "0x0000000000000000000000000000000000000000",
        "requesterrestrict": "0x0000000000000000000000000000000000000000",
        "salt": "0x0000000000000000000000000000000000000000000000000000000000000001",
        "sign": "0x00",
    });
    assert_eq!(
        parse_slice(&cid, &serde_json::to_vec(&[&good]).unwrap())
            .unwrap()
            .len(),
        1
    );
    for (name, bad) in [
        ("dataset", serde_json::json!("0x1234")),
        ("volume", serde_json::json!("-1")),
        ("volume", serde_json::json!(1.5)),
        ("tag", serde_json::json!("03")),
        ("sign", serde_json::json!("0xzz")),
    ] {
        let mut order = good.clone();
        order[name] = bad;
        let err = parse_slice(&cid, &serde_json::to_vec(&[order]).unwrap()).unwrap_err();
        assert!(err.to_string().contains(name) || matches!(err, DocumentError::Slice { .. }));
    }
    let many: Vec<_> = (0..=MAX_ORDERS_PER_SLICE).map(|_| good.clone()).collect();
    assert!(matches!(
        parse_slice(&cid, &serde_json::to_vec(&many).unwrap()),
        Err(DocumentError::TooManyOrders { count: 101, .. })
    ));
    assert!(parse_slice(&cid, b"[1,2]").is_err());
    assert!(parse_slice(&cid, b"not json").is_err());
}

#[test]
fn slice_environment() {
    let a = Address::repeat_byte(0xa1);
    let b = Address::repeat_byte(0xb2);
    let slice = BulkSlice {
        cid: "bafk".into(),
        datasets: vec![
            BulkDataset {
                address: a,
                valid: Some(ValidDataset {
                    multiaddr: "/ipfs/QmA".into(),
                    checksum: B256::repeat_byte(1),
                }),
            },
            BulkDataset {
                address: b,
                valid: None,
            },
        ],
    };
    assert_eq!(slice.secrets_needed(), vec![SecretId::web3(a)]);
    let mut secrets = SecretValues::new();
    secrets.insert(SecretId::web3(a), SecretValue::new(b"a-key".to_vec()));
    secrets.insert(SecretId::web3(b), SecretValue::new(b"b-key".to_vec()));
    let mut pre = EnclaveEnv::default();
    slice.pre_compute_env(&secrets, &mut pre);
    assert_eq!(pre.get("IEXEC_BULK_SLICE_SIZE"), Some("2"));
    assert_eq!(pre.get("IEXEC_DATASET_1_URL"), Some("/ipfs/QmA"));
    assert_eq!(
        pre.get("IEXEC_DATASET_1_CHECKSUM"),
        Some(encode_prefixed(B256::repeat_byte(1)).as_str())
    );
    assert_eq!(pre.get("IEXEC_DATASET_1_KEY"), Some("a-key"));
    assert!(pre.is_sensitive("IEXEC_DATASET_1_KEY"));
    assert_eq!(
        pre.get("IEXEC_DATASET_1_FILENAME"),
        Some(encode_prefixed(a).as_str())
    );
    // An invalid order keeps its index with empty values, even when a key is stored.
    assert_eq!(pre.get("IEXEC_DATASET_2_URL"), Some(""));
    assert_eq!(pre.get("IEXEC_DATASET_2_CHECKSUM"), Some(""));
    assert_eq!(pre.get("IEXEC_DATASET_2_KEY"), Some(""));
    assert_eq!(
        pre.get("IEXEC_DATASET_2_FILENAME"),
        Some(encode_prefixed(b).as_str())
    );
    let mut app = EnclaveEnv::default();
    slice.app_env(&mut app);
    assert_eq!(app.len(), 3);
    assert_eq!(
        app.get("IEXEC_DATASET_2_FILENAME"),
        Some(encode_prefixed(b).as_str())
    );
}

#[test]
fn sign_and_json_round_trip() {
    let owner = PrivateKeySigner::random();
    let order = open_order(
        Address::repeat_byte(0x42),
        B256::repeat_byte(3),
        B256::repeat_byte(9),
    );
    let signed = SignedDatasetOrder::sign(order, &owner, &dev_domain());
    ensure_signed_by(&signed, owner.address(), &dev_domain()).unwrap();
    let bytes = serde_json::to_vec(&[signed.to_json()]).unwrap();
    let cid = Cid::parse(&crate::cid::cid_v0(&bytes)).unwrap();
    verify_document(&cid, &bytes).unwrap();
    assert_eq!(parse_slice(&cid, &bytes).unwrap(), vec![signed]);
}
