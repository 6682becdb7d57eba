#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use sha2::{Digest, Sha256};

use super::*;

fn h(hex: &str) -> Hash {
    parse_hash(hex).unwrap()
}

fn leaf(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(data);
    hasher.finalize().into()
}

/// The leaves of the RFC 6962 reference test vectors (certificate-transparency).
fn rfc_leaves() -> Vec<Hash> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|d| leaf(&crate::hex::decode_lenient(d).unwrap()))
    .collect()
}

const RFC_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

#[test]
fn roots_match_the_rfc6962_vectors_whole_and_incrementally() {
    let leaves = rfc_leaves();
    assert_eq!(
        hash_hex(&merkle_root(&[])),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let mut frontier = Frontier::default();
    assert_eq!(frontier.root(), merkle_root(&[]));
    for (n, root) in RFC_ROOTS.iter().enumerate() {
        assert_eq!(merkle_root(&leaves[..=n]), h(root), "size {}", n + 1);
        frontier.push(leaves[n]);
        assert_eq!(frontier.root(), h(root), "frontier size {}", n + 1);
    }
}

#[test]
fn every_inclusion_proof_verifies_and_no_forged_one_does() {
    let leaves: Vec<Hash> = (0u8..37).map(|i| leaf(&[i])).collect();
    for size in 1..=leaves.len() {
        let tree = &leaves[..size];
        let root = merkle_root(tree);
        for index in 0..size {
            let path = inclusion_proof(tree, index).unwrap();
            assert!(verify_inclusion(
                &tree[index],
                index as u64,
                size as u64,
                &path,
                &root
            ));
            // Another leaf, another position, another size, a changed path: refused.
            let other = leaf(b"not in the tree");
            assert!(!verify_inclusion(
                &other,
                index as u64,
                size as u64,
                &path,
                &root
            ));
            if size > 1 {
                let wrong = (index + 1) % size;
                assert!(!verify_inclusion(
                    &tree[index],
                    wrong as u64,
                    size as u64,
                    &path,
                    &root
                ));
                let mut bent = path.clone();
                bent[0][0] ^= 1;
                assert!(!verify_inclusion(
                    &tree[index],
                    index as u64,
                    size as u64,
                    &bent,
                    &root
                ));
            }
            // A position outside the tree proves nothing.
            assert!(!verify_inclusion(
                &tree[index],
                size as u64,
                size as u64,
                &path,
                &root
            ));
        }
        assert!(inclusion_proof(tree, size).is_none());
    }
}

fn admin(detail: &str) -> AuditEvent {
    AuditEvent::AdminAction {
        action: "rotate-data-key".into(),
        detail: detail.into(),
    }
}

/// A vector computed independently (Python hashlib, the encoding of docs/audit.md).
#[test]
fn entry_hash_chain_and_head_payload_vectors() {
    let event = admin("key 2");
    assert_eq!(
        event.body(),
        r#"{"type":"admin-action","action":"rotate-data-key","detail":"key 2"}"#
    );
    let e0 = AuditEntry::next(0, 1_700_000_000, GENESIS, &event);
    assert_eq!(
        hash_hex(&e0.hash()),
        "79a170f64061a4d3f33f0a7b1915a683a3d26123a955b8ea761fab3e2c095961"
    );
    let e1 = AuditEntry::next(1, 1_700_000_001, e0.hash(), &event);
    assert_eq!(
        hash_hex(&e1.hash()),
        "0d5f62d950dfe66212b0227b88cbe14df77cf055b5bcb7908cf43c33233d268f"
    );
    let root = merkle_root(&[e0.hash(), e1.hash()]);
    assert_eq!(
        hash_hex(&root),
        "b745ce06c4fcbd6b398a442776b3c20093e2e43e405a03f72f3552a8fde63e3e"
    );
    let head = TreeHead {
        size: 2,
        root,
        at: 1_700_000_010,
    };
    assert_eq!(
        hash_hex(&Sha256::digest(head.signing_payload()).into()),
        hash_hex(
            &Sha256::digest(
                crate::hex::decode_lenient(
                    "69657865632d736d732f61756469742f747265652d686561642f76310000000000000002\
                     b745ce06c4fcbd6b398a442776b3c20093e2e43e405a03f72f3552a8fde63e3e000000006553f10a"
                )
                .unwrap()
            )
            .into()
        )
    );
}

fn log(n: u64) -> Vec<(AuditEntry, Option<Hash>)> {
    let mut prev = GENESIS;
    (0..n)
        .map(|i| {
            let e = AuditEntry::next(i, 1_700_000_000 + i, prev, &admin(&format!("k{i}")));
            prev = e.hash();
            let hash = e.hash();
            (e, Some(hash))
        })
        .collect()
}

fn head_of(entries: &[(AuditEntry, Option<Hash>)], size: usize) -> TreeHead {
    let leaves: Vec<Hash> = entries[..size].iter().map(|(e, _)| e.hash()).collect();
    TreeHead {
        size: size as u64,
        root: merkle_root(&leaves),
        at: 1,
    }
}

#[test]
fn verify_log_names_the_first_bad_entry() {
    let good = log(9);
    let heads = [head_of(&good, 4), head_of(&good, 9)];
    assert_eq!(verify_log(&good, &heads).unwrap().len(), 9);

    // One byte of entry 5's body changed.
    let mut edited = good.clone();
    edited[5].0.body = edited[5].0.body.replace("k5", "k6");
    assert_eq!(
        verify_log(&edited, &heads),
        Err(LogError::Edited { index: 5 })
    );
    // ... and its recorded hash rewritten too: entry 6 no longer links to it.
    edited[5].1 = Some(edited[5].0.hash());
    assert_eq!(
        verify_log(&edited, &heads),
        Err(LogError::BrokenLink { index: 6 })
    );
    // ... without recorded hashes (a source that has none): the link names 6 as well.
    let bare: Vec<_> = edited.iter().map(|(e, _)| (e.clone(), None)).collect();
    assert_eq!(
        verify_log(&bare, &heads),
        Err(LogError::BrokenLink { index: 6 })
    );

    // Entry 3 deleted from the middle.
    let mut gap = good.clone();
    gap.remove(3);
    let err = verify_log(&gap, &heads).unwrap_err();
    assert_eq!(
        err,
        LogError::Missing {
            expected: 3,
            found: 4
        }
    );
    assert_eq!(err.entry(), Some(3));

    // The tail cut after a signed head.
    let cut = good[..7].to_vec();
    assert_eq!(
        verify_log(&cut, &heads),
        Err(LogError::Truncated {
            head_size: 9,
            log_size: 7
        })
    );
    // A head whose root is not the entries'.
    let mut forged = head_of(&good, 9);
    forged.root[0] ^= 1;
    assert!(matches!(
        verify_log(&good, &[forged]),
        Err(LogError::RootMismatch { head_size: 9, .. })
    ));
    // A body that is not an event, consistently re-hashed: unreadable, named.
    let mut junk = good[..1].to_vec();
    junk[0].0.body = "{}".into();
    junk[0].1 = Some(junk[0].0.hash());
    assert!(matches!(
        verify_log(&junk, &[]),
        Err(LogError::Unreadable { index: 0, .. })
    ));
}

fn secret(ns: &str, owner: &str, name: &str) -> SecretRef {
    SecretRef {
        namespace: ns.into(),
        owner: owner.into(),
        name: name.into(),
    }
}

fn session(id: &str, secrets: Vec<SecretRef>) -> AuditEvent {
    AuditEvent::SessionCreated {
        task: "0xt".into(),
        deal: "0xd".into(),
        session: id.into(),
        app: "0xapp".into(),
        dataset: Some("0xdata".into()),
        requester: "0xreq".into(),
        workerpool: "0xpool".into(),
        worker: "0xw".into(),
        secrets,
    }
}

fn release(session: &str) -> AuditEvent {
    AuditEvent::ReleaseGranted {
        task: "0xt".into(),
        session: session.into(),
        service: "app".into(),
        worker: "0xw".into(),
        tee: "simulated".into(),
        measurement: "aa".into(),
        tcb_status: None,
        advisories: vec![],
        release: 1,
    }
}

fn written(s: SecretRef) -> AuditEvent {
    AuditEvent::SecretWritten {
        secret: s,
        action: SecretAction::Created,
        signer: "0xsigner".into(),
        version: 1,
        api: "v1".into(),
    }
}

#[test]
fn receipts_hold_exactly_the_owner_s_secrets_and_their_sessions() {
    let app_secret = secret("app-developer", "0xapp", "1");
    let dataset_key = secret("web3", "0xdata", "");
    let requester = secret("requester", "0xreq", "token");
    let entries: Vec<(u64, AuditEvent)> = vec![
        written(app_secret.clone()),
        written(dataset_key.clone()),
        written(requester.clone()),
        written(secret("requester", "0xother", "token")),
        session("s1", vec![app_secret.clone(), dataset_key.clone()]),
        release("s1"),
        session("s2", vec![requester.clone()]),
        release("s2"),
        AuditEvent::ChallengeIssued {
            task: "0xt".into(),
            challenge: "0xc".into(),
            workerpool: "0xpool".into(),
        },
        admin("x"),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, e)| (i as u64, e))
    .collect();
    let app_owner = OwnedAssets {
        owner: "0xdev".into(),
        apps: ["0xapp".to_owned()].into(),
        datasets: Default::default(),
    };
    assert_eq!(receipts_for(&entries, &app_owner), [0, 4, 5]);
    let dataset_owner = OwnedAssets {
        owner: "0xdataowner".into(),
        apps: Default::default(),
        datasets: ["0xdata".to_owned()].into(),
    };
    assert_eq!(receipts_for(&entries, &dataset_owner), [1, 4, 5]);
    let requester_owner = OwnedAssets {
        owner: "0xreq".into(),
        ..OwnedAssets::default()
    };
    assert_eq!(receipts_for(&entries, &requester_owner), [2, 6, 7]);
    let stranger = OwnedAssets {
        owner: "0xnobody".into(),
        ..OwnedAssets::default()
    };
    assert!(receipts_for(&entries, &stranger).is_empty());
    assert_eq!(
        referenced_assets(entries.iter().map(|(_, e)| e))
            .into_iter()
            .collect::<Vec<_>>(),
        ["0xapp", "0xdata"]
    );
}

#[test]
fn receipts_challenge_binds_owner_instance_and_time() {
    let a = receipts_digest("0xAB", "inst", 100);
    assert_eq!(a, receipts_digest("0xab", "inst", 100));
    assert_ne!(a, receipts_digest("0xac", "inst", 100));
    assert_ne!(a, receipts_digest("0xab", "other", 100));
    assert_ne!(a, receipts_digest("0xab", "inst", 101));
    assert!(receipts_timestamp_fresh(1000, 1000));
    assert!(receipts_timestamp_fresh(700, 1000));
    assert!(!receipts_timestamp_fresh(699, 1000));
    assert!(receipts_timestamp_fresh(1030, 1000));
    assert!(!receipts_timestamp_fresh(1031, 1000));
}
