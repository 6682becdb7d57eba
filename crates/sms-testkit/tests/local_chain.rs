//! The fixture itself: deployment, entries, deals and every reachable task status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use alloy::primitives::B256;
use sms_testkit::chain::{LocalChain, wallet};

#[tokio::test]
async fn fresh_chain_runs_tee_tasks_through_their_statuses() {
    let started = Instant::now();
    let chain = LocalChain::start().await;
    eprintln!(
        "fresh chain in {:?} at {}",
        started.elapsed(),
        chain.rpc_url()
    );
    let started = Instant::now();
    let chain2 = LocalChain::start().await;
    eprintln!("second fresh chain in {:?}", started.elapsed());
    assert_eq!(chain.hub(), chain2.hub());
    assert_ne!(chain.port(), chain2.port());
    drop(chain2);

    let deal = chain.deal(true, 3).await.unwrap();
    assert_ne!(deal.deal_id, B256::ZERO);
    let revealing = chain.initialize_task(deal.deal_id, 0).await.unwrap();
    chain
        .contribute(&deal, revealing, B256::repeat_byte(7))
        .await
        .unwrap();
    let completed = chain.initialize_task(deal.deal_id, 1).await.unwrap();
    chain
        .contribute_and_finalize(
            &deal,
            completed,
            B256::repeat_byte(8),
            br#"{"storage":"ipfs","location":"/ipfs/x"}"#,
        )
        .await
        .unwrap();
    let failed = chain.initialize_task(deal.deal_id, 2).await.unwrap();
    chain.fail_task(failed).await.unwrap();
    let other = wallet();
    chain
        .transfer(
            sms_core::ledger::EntryKind::App,
            deal.spec.app,
            &deal.spec.app_owner,
            other.address(),
        )
        .await
        .unwrap();
    eprintln!("scenario in {:?}", started.elapsed());
}
