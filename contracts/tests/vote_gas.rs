//! A node-set vote carries gas for deciding even when, at its estimate, it would only count:
//! oracles vote at about the same moment, so the vote that turns out to decide was often
//! estimated before the other oracle's vote was mined.

mod common;

use alloy::consensus::Transaction;
use alloy::eips::BlockNumberOrTag;
use alloy::primitives::Address;
use alloy::providers::Provider;
use common::*;
use r1_contracts::VoteOutcome;

/// The gas limit of the one transaction of the latest block (the chain mines on every
/// transaction), and the gas it used.
async fn last_transaction_gas(world: &World) -> (u64, u64) {
    let block = world
        .chain
        .rpc()
        .get_block_by_number(BlockNumberOrTag::Latest)
        .full()
        .await
        .expect("latest block")
        .expect("a block");
    let transaction = block
        .transactions
        .txns()
        .next()
        .expect("one transaction")
        .clone();
    let receipt = world
        .chain
        .rpc()
        .get_transaction_receipt(*transaction.inner.tx_hash())
        .await
        .expect("receipt")
        .expect("mined");
    (transaction.gas_limit(), receipt.gas_used)
}

/// Oracle 0 votes `nodes` (which only counts), then oracle 1 (which decides): the first
/// vote's gas limit covers what the deciding one used.
async fn counted_vote_could_have_decided(world: &World, job: u64, nodes: &[Address]) {
    let first = world.oracles[0]
        .submit_node_update(job, nodes)
        .await
        .expect("first vote");
    assert_eq!(first, VoteOutcome::Pending);
    let (limit, counted) = last_transaction_gas(world).await;
    let second = world.oracles[1]
        .submit_node_update(job, nodes)
        .await
        .expect("deciding vote");
    assert!(matches!(second, VoteOutcome::Accepted(_)));
    let (_, decided) = last_transaction_gas(world).await;
    assert!(
        decided > counted,
        "deciding ({decided}) costs more than counting ({counted})"
    );
    assert!(
        limit >= decided,
        "{} nodes: a vote estimated as counting gets {limit} gas, deciding used {decided}",
        nodes.len()
    );
}

#[test]
fn every_vote_has_gas_to_decide_starting_moving_and_closing_a_job() {
    run(|chain| async move {
        for nodes in [1usize, 4] {
            let world = World::new(chain, 3, 2 * nodes).await;
            let job = world.create_job(nodes as u64, 30).await;
            world.next_epoch().await;
            let (first, second) = world.nodes.split_at(nodes);
            counted_vote_could_have_decided(&world, job, first).await;
            // Moving settles the epochs run by the first set, then swaps and burns their fee.
            world.advance_epochs(3).await;
            counted_vote_could_have_decided(&world, job, second).await;
            world.advance_epochs(1).await;
            counted_vote_could_have_decided(&world, job, &[]).await;
        }
    });
}
