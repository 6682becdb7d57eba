//! `PocoLedger` against the real iExec PoCo contracts on a local anvil chain (sms-testkit).
//! These tests need `tools/chain/setup.sh` to have run; they fail (never skip) otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256, keccak256};
use sms_chain::poco::{ConnectError, PocoConfig, PocoLedger};
use sms_chain::{Ledger, LedgerError};
use sms_core::ledger::{EntryKind, TaskStatus};
use sms_testkit::chain::{
    AppSpec, CATEGORIES, DatasetSpec, LocalChain, SCONE_MRENCLAVE, scone_tag, wallet,
};
use sms_testkit::proxy::{Fault, FaultProxy};

/// Always-fresh reads, short timeout: what most tests want.
fn config(url: &str, chain: &LocalChain) -> PocoConfig {
    let mut config = PocoConfig::new(url, chain.hub(), chain.chain_id());
    config.fresh_for = Duration::ZERO;
    config.timeout = Duration::from_millis(800);
    config
}

async fn ledger(chain: &LocalChain) -> PocoLedger {
    PocoLedger::connect(config(chain.rpc_url(), chain))
        .await
        .unwrap()
}

fn unavailable<T: std::fmt::Debug>(result: Result<T, LedgerError>) -> String {
    match result {
        Err(LedgerError::Unavailable(reason)) => reason,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// The call must fail as Unavailable within the configured timeout (plus scheduling slack).
async fn assert_bounded_unavailable(ledger: &PocoLedger, label: &str) {
    let bound = ledger.config().timeout + Duration::from_millis(400);
    let started = Instant::now();
    let reason = unavailable(ledger.task(B256::repeat_byte(1)).await);
    let elapsed = started.elapsed();
    assert!(
        elapsed < bound,
        "{label}: took {elapsed:?}, bound {bound:?} ({reason})"
    );
    let started = Instant::now();
    unavailable(ledger.owner_of(Address::repeat_byte(1)).await);
    unavailable(ledger.app(Address::repeat_byte(2)).await);
    unavailable(ledger.deal(B256::repeat_byte(3)).await);
    unavailable(ledger.category(U256::from(4)).await);
    assert!(
        started.elapsed() < bound * 4,
        "{label}: four calls took {:?}",
        started.elapsed()
    );
    eprintln!("{label}: Unavailable in {elapsed:?}: {reason}");
}

#[tokio::test]
async fn reads_apps_datasets_and_workerpools() {
    let chain = LocalChain::start().await;
    let ledger = ledger(&chain).await;
    let owner = wallet().address();

    let spec = AppSpec::scone("my-tee-app");
    let app = chain.create_app(owner, &spec).await.unwrap();
    let entry = ledger.app(app).await.unwrap().expect("app exists");
    assert_eq!(entry.address, app);
    assert_eq!(entry.owner, owner);
    assert_eq!(entry.name, "my-tee-app");
    assert_eq!(entry.app_type, "DOCKER");
    assert_eq!(
        entry.multiaddr,
        "docker.io/iexechub/python-hello-world:8.0.0-sconify-5.9.1-v15-production"
    );
    assert_eq!(entry.checksum, spec.checksum);
    assert_eq!(entry.mrenclave, SCONE_MRENCLAVE.as_bytes());
    // Served from the cache the second time, owner still read.
    assert_eq!(ledger.app(app).await.unwrap().unwrap(), entry);
    assert_eq!(ledger.owner_of(app).await.unwrap(), Some(owner));

    let ipfs = chain
        .create_dataset(owner, &DatasetSpec::ipfs("ipfs-dataset"))
        .await
        .unwrap();
    let entry = ledger.dataset(ipfs).await.unwrap().expect("dataset exists");
    assert_eq!(entry.owner, owner);
    assert_eq!(entry.name, "ipfs-dataset");
    assert_eq!(
        entry.multiaddr,
        "/ipfs/QmW2WQi7j6c7UgJTarActp7tDNikE4B2qXtFCfLPdsgaTQ"
    );
    assert_eq!(entry.checksum, keccak256(b"ipfs-dataset"));

    let url = "https://gateway.ipfs.io/ipfs/QmW2WQi7j6c7UgJTarActp7tDNikE4B2qXtFCfLPdsgaTQ/cat.jpg";
    let text = DatasetSpec {
        name: "url-dataset".into(),
        multiaddr: url.as_bytes().to_vec(),
        checksum: B256::ZERO,
    };
    let text = chain.create_dataset(owner, &text).await.unwrap();
    assert_eq!(ledger.dataset(text).await.unwrap().unwrap().multiaddr, url);

    let pool = chain.create_workerpool(owner, "a pool").await.unwrap();
    let entry = ledger
        .workerpool(pool)
        .await
        .unwrap()
        .expect("workerpool exists");
    assert_eq!((entry.owner, entry.description.as_str()), (owner, "a pool"));

    // Each kind only answers for its own registry.
    assert_eq!(ledger.dataset(app).await.unwrap(), None);
    assert_eq!(ledger.app(ipfs).await.unwrap(), None);
    assert_eq!(ledger.workerpool(app).await.unwrap(), None);
    assert_eq!(ledger.app(pool).await.unwrap(), None);
}

#[tokio::test]
async fn missing_entries_deals_and_tasks_are_none() {
    let chain = LocalChain::start().await;
    let ledger = ledger(&chain).await;
    let nobody = wallet().address();
    assert_eq!(ledger.owner_of(nobody).await.unwrap(), None);
    assert_eq!(ledger.app(nobody).await.unwrap(), None);
    assert_eq!(ledger.dataset(nobody).await.unwrap(), None);
    assert_eq!(ledger.workerpool(nobody).await.unwrap(), None);
    // A contract that is not an app (the registry itself) is not an app.
    assert_eq!(
        ledger.app(chain.deployment().app_registry).await.unwrap(),
        None
    );
    assert_eq!(ledger.app(chain.hub()).await.unwrap(), None);
    assert_eq!(ledger.deal(B256::repeat_byte(0x42)).await.unwrap(), None);
    assert_eq!(ledger.task(B256::repeat_byte(0x42)).await.unwrap(), None);
}

#[tokio::test]
async fn deal_and_tasks_in_every_reachable_status() {
    let chain = LocalChain::start().await;
    let ledger = ledger(&chain).await;
    let deal = chain.deal(true, 4).await.unwrap();

    let read = ledger
        .deal(deal.deal_id)
        .await
        .unwrap()
        .expect("deal exists");
    let (dataset, dataset_owner) = deal.spec.dataset.clone().unwrap();
    assert_eq!(read.deal_id, deal.deal_id);
    assert_eq!(read.tag, scone_tag());
    assert_eq!(
        (read.app.pointer, read.app.owner),
        (deal.spec.app, deal.spec.app_owner.address())
    );
    assert_eq!(
        (read.dataset.pointer, read.dataset.owner),
        (dataset, dataset_owner.address())
    );
    assert!(read.has_dataset());
    assert_eq!(
        (read.workerpool.pointer, read.workerpool.owner),
        (deal.spec.workerpool, deal.spec.workerpool_owner.address())
    );
    assert_eq!(read.requester, deal.spec.requester.address());
    assert_eq!(read.beneficiary, deal.spec.beneficiary);
    assert!(!read.has_callback());
    assert_eq!(read.params, deal.spec.params);
    assert_eq!((read.trust, read.category), (U256::from(1), U256::ZERO));
    assert_eq!((read.bot_first, read.bot_size), (0, 4));
    assert!(read.start_time > 0);

    // Index 0 is never initialized: the task does not exist (UNSET).
    assert_eq!(ledger.task(deal.task_id(0)).await.unwrap(), None);

    let active = chain.initialize_task(deal.deal_id, 1).await.unwrap();
    let task = ledger
        .task(active)
        .await
        .unwrap()
        .expect("initialized task");
    assert_eq!(task.status, TaskStatus::Active);
    assert_eq!(
        (task.task_id, task.deal_id, task.index),
        (active, deal.deal_id, 1)
    );
    assert_eq!(task.time_ref, 300, "category 0 (XS)");
    assert_eq!(task.contribution_deadline, read.start_time + 7 * 300);
    assert_eq!(task.final_deadline, read.start_time + 10 * 300);

    let revealing = chain.initialize_task(deal.deal_id, 2).await.unwrap();
    chain
        .contribute(&deal, revealing, B256::repeat_byte(7))
        .await
        .unwrap();
    assert_eq!(
        ledger.task(revealing).await.unwrap().unwrap().status,
        TaskStatus::Revealing
    );

    let completed = chain.initialize_task(deal.deal_id, 3).await.unwrap();
    chain
        .contribute_and_finalize(&deal, completed, B256::repeat_byte(8), b"{}")
        .await
        .unwrap();
    assert_eq!(
        ledger.task(completed).await.unwrap().unwrap().status,
        TaskStatus::Completed
    );

    chain.fail_task(active).await.unwrap();
    assert_eq!(
        ledger.task(active).await.unwrap().unwrap().status,
        TaskStatus::Failed
    );
    assert_eq!(
        ledger.task(revealing).await.unwrap().unwrap().status,
        TaskStatus::Revealing
    );
    assert_eq!(ledger.task(deal.task_id(0)).await.unwrap(), None);
    assert_eq!(
        ledger.task(deal.task_id(4)).await.unwrap(),
        None,
        "outside the deal"
    );
}

#[tokio::test]
async fn categories_created_by_the_fixture_and_a_missing_one() {
    let chain = LocalChain::start().await;
    let ledger = ledger(&chain).await;
    assert_eq!(
        CATEGORIES.map(|(name, _)| name),
        ["XS", "S", "M", "L", "XL"]
    );
    assert_eq!(
        CATEGORIES.map(|(_, time_ref)| time_ref),
        [300, 1200, 3600, 10800, 36000]
    );
    for (index, (name, time_ref)) in CATEGORIES.into_iter().enumerate() {
        let id = U256::from(index);
        let category = ledger
            .category(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("category {index} ({name})"));
        assert_eq!(category.id, id);
        assert_eq!(category.name, name);
        assert_eq!(category.description, "{}", "the fixture's description");
        assert_eq!(category.work_clock_time_ref, time_ref, "{name}");
        // Served from the cache the second time.
        assert_eq!(ledger.category(id).await.unwrap(), Some(category));
    }
    let count = U256::from(CATEGORIES.len());
    assert_eq!(ledger.category(count).await.unwrap(), None);
    assert_eq!(ledger.category(U256::MAX).await.unwrap(), None);

    // A task's time ref is its category's work clock.
    let deal = chain.deal(false, 1).await.unwrap();
    let task = chain.initialize_task(deal.deal_id, 0).await.unwrap();
    let read = ledger.deal(deal.deal_id).await.unwrap().unwrap();
    let category = ledger.category(read.category).await.unwrap().unwrap();
    assert_eq!(
        ledger.task(task).await.unwrap().unwrap().time_ref,
        category.work_clock_time_ref
    );
}

#[tokio::test]
async fn ownership_follows_transfers() {
    let chain = LocalChain::start().await;
    let ledger = ledger(&chain).await;
    let deal = chain.deal(true, 1).await.unwrap();
    let new_owner = wallet().address();
    let app = deal.spec.app;
    assert_eq!(
        ledger.app(app).await.unwrap().unwrap().owner,
        deal.spec.app_owner.address()
    );

    chain
        .transfer(EntryKind::App, app, &deal.spec.app_owner, new_owner)
        .await
        .unwrap();
    assert_eq!(ledger.owner_of(app).await.unwrap(), Some(new_owner));
    assert_eq!(ledger.app(app).await.unwrap().unwrap().owner, new_owner);

    let (dataset, dataset_owner) = deal.spec.dataset.clone().unwrap();
    chain
        .transfer(EntryKind::Dataset, dataset, &dataset_owner, new_owner)
        .await
        .unwrap();
    assert_eq!(
        ledger.dataset(dataset).await.unwrap().unwrap().owner,
        new_owner
    );

    // The deal keeps the owners it was matched with.
    let read = ledger.deal(deal.deal_id).await.unwrap().unwrap();
    assert_eq!(read.app.owner, deal.spec.app_owner.address());
}

#[tokio::test]
async fn ownership_and_status_are_never_staler_than_fresh_for() {
    let chain = LocalChain::start().await;
    let mut config = config(chain.rpc_url(), &chain);
    config.fresh_for = Duration::from_millis(300);
    let ledger = PocoLedger::connect(config).await.unwrap();
    let deal = chain.deal(false, 1).await.unwrap();
    let app = deal.spec.app;
    let task = chain.initialize_task(deal.deal_id, 0).await.unwrap();
    assert_eq!(
        ledger.task(task).await.unwrap().unwrap().status,
        TaskStatus::Active
    );
    assert_eq!(
        ledger.owner_of(app).await.unwrap(),
        Some(deal.spec.app_owner.address())
    );

    let new_owner = wallet().address();
    chain
        .transfer(EntryKind::App, app, &deal.spec.app_owner, new_owner)
        .await
        .unwrap();
    chain
        .contribute(&deal, task, B256::repeat_byte(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(ledger.owner_of(app).await.unwrap(), Some(new_owner));
    assert_eq!(ledger.app(app).await.unwrap().unwrap().owner, new_owner);
    assert_eq!(
        ledger.task(task).await.unwrap().unwrap().status,
        TaskStatus::Revealing
    );
}

#[tokio::test]
async fn connect_checks_chain_id_and_hub() {
    let chain = LocalChain::start().await;
    let mut wrong_chain = config(chain.rpc_url(), &chain);
    wrong_chain.chain_id = 42161;
    let err = PocoLedger::connect(wrong_chain)
        .await
        .err()
        .expect("chain id mismatch");
    assert!(
        matches!(
            err,
            ConnectError::ChainIdMismatch {
                expected: 42161,
                actual: 134,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("42161") && text.contains("134"), "{text}");

    let mut no_code = config(chain.rpc_url(), &chain);
    no_code.hub = wallet().address();
    let err = PocoLedger::connect(no_code)
        .await
        .err()
        .expect("no hub code");
    assert!(matches!(err, ConnectError::NoHubCode { .. }), "{err}");

    let mut not_hub = config(chain.rpc_url(), &chain);
    not_hub.hub = chain.deployment().app_registry;
    let err = PocoLedger::connect(not_hub).await.err().expect("not a hub");
    assert!(matches!(err, ConnectError::NotAHub { .. }), "{err}");

    let bad = PocoConfig::new("ftp://example.com", chain.hub(), 134);
    assert!(matches!(
        PocoLedger::connect(bad).await,
        Err(ConnectError::InvalidUrl { .. })
    ));

    let ledger = ledger(&chain).await;
    assert!(
        ledger.describe().contains(&format!("{}", chain.hub())),
        "{}",
        ledger.describe()
    );
}

#[tokio::test]
async fn node_down_is_bounded_and_recovers() {
    let mut chain = LocalChain::start().await;
    let ledger = ledger(&chain).await;
    let deal = chain.deal(false, 1).await.unwrap();
    let task = chain.initialize_task(deal.deal_id, 0).await.unwrap();

    chain.stop().await.unwrap();
    assert_bounded_unavailable(&ledger, "node down").await;
    let err = PocoLedger::connect(config(chain.rpc_url(), &chain))
        .await
        .err()
        .expect("down");
    assert!(
        matches!(err, ConnectError::Ledger(LedgerError::Unavailable(_))),
        "{err}"
    );

    chain.resume().await.unwrap();
    assert_eq!(
        ledger.task(task).await.unwrap().unwrap().status,
        TaskStatus::Active
    );
    assert!(ledger.deal(deal.deal_id).await.unwrap().is_some());
}

#[tokio::test]
async fn hanging_node_is_bounded_and_recovers() {
    let chain = LocalChain::start().await;
    let upstream: SocketAddr = ([127, 0, 0, 1], chain.port()).into();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let ledger = PocoLedger::connect(config(&proxy.url(), &chain))
        .await
        .unwrap();
    let deal = chain.deal(false, 1).await.unwrap();

    proxy.set(Fault::Hang);
    assert_bounded_unavailable(&ledger, "hanging node").await;
    let started = Instant::now();
    let err = PocoLedger::connect(config(&proxy.url(), &chain))
        .await
        .err()
        .expect("hangs");
    assert!(
        matches!(err, ConnectError::Ledger(LedgerError::Unavailable(_))),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "connect took {:?}",
        started.elapsed()
    );

    proxy.set(Fault::None);
    assert!(ledger.deal(deal.deal_id).await.unwrap().is_some());
}

#[tokio::test]
async fn garbage_answers_are_unavailable_and_recover() {
    let chain = LocalChain::start().await;
    let upstream: SocketAddr = ([127, 0, 0, 1], chain.port()).into();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let ledger = PocoLedger::connect(config(&proxy.url(), &chain))
        .await
        .unwrap();
    let deal = chain.deal(false, 1).await.unwrap();

    for fault in [Fault::HttpGarbage, Fault::RawGarbage, Fault::Close] {
        proxy.set(fault);
        assert_bounded_unavailable(&ledger, &format!("{fault:?}")).await;
    }
    proxy.set(Fault::None);
    assert!(ledger.deal(deal.deal_id).await.unwrap().is_some());
}

#[tokio::test]
async fn api_keys_in_the_url_are_not_shown() {
    let chain = LocalChain::start().await;
    let url = format!("{}/?key=secret-api-key", chain.rpc_url());
    let mut config = config(&url, &chain);
    config.retries = 0;
    // anvil ignores the query: connect works, then the node goes away.
    let ledger = PocoLedger::connect(config).await.unwrap();
    assert!(
        !ledger.describe().contains("secret-api-key"),
        "{}",
        ledger.describe()
    );
    drop(chain);
    let reason = unavailable(ledger.task(B256::ZERO).await);
    assert!(!reason.contains("secret-api-key"), "{reason}");
}
