//! PoAI manager: oracle governance, node-set consensus (including byzantine minorities),
//! closing jobs, allocation across escrows, claims and the blacklist.
#![allow(clippy::unwrap_used)] // test bodies run inside closures, where the usual test exemption does not reach

mod common;

use alloy::primitives::{Address, U256};
use common::{EPOCH, World, actor, node_pay, random_address, raw_revert_of, revert_of, run};
use r1_contracts::VoteOutcome;
use r1_contracts::bindings::PoAIManager::{self, PoAIManagerErrors as E};
use r1_contracts::tx::confirm;

const PRICE: u64 = 100_000;

#[test]
fn governance_adds_and_removes_oracles() {
    run(|chain| async move {
        let w = World::new(chain, 2, 0).await;
        let o = w.oracles[0].address();
        assert!(matches!(
            revert_of::<_, E>(w.gov.add_oracle(o).await),
            E::AlreadyOracle(_)
        ));
        let stranger = actor(&w).await;
        assert!(matches!(
            revert_of::<_, E>(stranger.add_oracle(stranger.address()).await),
            E::OwnableUnauthorizedAccount(_)
        ));
        confirm(w.gov.manager().removeOracle(o)).await.unwrap();
        assert_eq!(
            w.gov.manager().getOracles().call().await.unwrap(),
            vec![w.oracles[1].address()]
        );
        let err = revert_of::<_, E>(confirm(w.gov.manager().removeOracle(o)).await);
        assert!(matches!(err, E::NotOracle(_)));
        // The guardian's powers and the owner's are each refused to anyone else.
        let err =
            revert_of::<_, E>(confirm(stranger.manager().setJobTypePrice(1, U256::from(1))).await);
        assert!(matches!(err, E::NotGuardian(_)));
        let err = revert_of::<_, E>(confirm(stranger.manager().setBlacklisted(o, true)).await);
        assert!(matches!(err, E::NotGuardian(_)));
        let err = revert_of::<_, E>(confirm(stranger.manager().setSwap(o)).await);
        assert!(matches!(err, E::OwnableUnauthorizedAccount(_)));
        let err = revert_of::<_, E>(confirm(stranger.manager().setGuardian(o)).await);
        assert!(matches!(err, E::OwnableUnauthorizedAccount(_)));
        // The owner appoints another guardian, which then acts alone.
        confirm(w.gov.manager().setGuardian(stranger.address()))
            .await
            .unwrap();
        confirm(stranger.manager().setBlacklisted(o, true))
            .await
            .unwrap();
        w.gov.set_job_type_price(9, U256::from(123)).await.unwrap();
        assert_eq!(
            w.gov.manager().jobTypePrice(9).call().await.unwrap(),
            U256::from(123)
        );
    });
}

#[test]
fn consensus_needs_a_majority_of_submissions_and_a_third_plus_one_agreeing() {
    run(|chain| async move {
        let w = World::new(chain, 4, 2).await;
        let job = w.create_job(2, 30).await;
        let oracle_ids: Vec<Address> = w.oracles.iter().map(|o| o.address()).collect();
        assert_eq!(
            w.gov.unvalidated_job_ids(oracle_ids[0]).await.unwrap(),
            vec![job]
        );

        // n = 4: attempted at 3 submissions, needs 2 matching.
        assert_eq!(
            w.oracles[0]
                .submit_node_update(job, &w.nodes)
                .await
                .unwrap(),
            VoteOutcome::Pending
        );
        assert!(
            w.gov
                .unvalidated_job_ids(oracle_ids[0])
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            w.gov.unvalidated_job_ids(oracle_ids[1]).await.unwrap(),
            vec![job]
        );
        let err = revert_of::<_, E>(w.oracles[0].submit_node_update(job, &w.nodes).await);
        assert!(matches!(err, E::AlreadyVoted(_)));
        assert_eq!(
            w.oracles[1]
                .submit_node_update(job, &w.nodes[..1])
                .await
                .unwrap(),
            VoteOutcome::Pending
        );
        // Three submissions, all different so far except... none reaches 2: not reached.
        let receipt = confirm(
            w.oracles[2]
                .manager()
                .submitNodeUpdate(U256::from(job), w.nodes[1..].to_vec()),
        )
        .await
        .unwrap();
        assert!(
            receipt
                .decoded_log::<PoAIManager::ConsensusNotReached>()
                .is_some()
        );
        assert!(w.csp.job(job).await.unwrap().activeNodes.is_empty());
        // The fourth agrees with the first: 2 of 4 → accepted, and the job starts.
        assert_eq!(
            w.oracles[3]
                .submit_node_update(job, &w.nodes)
                .await
                .unwrap(),
            VoteOutcome::Accepted(w.nodes.clone())
        );
        let state = w.csp.job(job).await.unwrap();
        assert_eq!(state.activeNodes, w.nodes);
        assert!(state.startTimestamp > U256::ZERO);
        assert!(
            w.gov
                .unvalidated_job_ids(oracle_ids[1])
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            w.gov
                .manager()
                .jobRound(U256::from(job))
                .call()
                .await
                .unwrap(),
            U256::from(1)
        );
    });
}

#[test]
fn a_byzantine_minority_cannot_validate_a_wrong_node_set() {
    run(|chain| async move {
        let w = World::new(chain, 7, 4).await;
        let job = w.create_job(3, 30).await;
        let honest = &w.nodes[..3];
        let wrong = vec![w.nodes[0], w.nodes[1], w.nodes[3]];
        // n = 7: attempted at 4 submissions, needs 3 matching. Two byzantine oracles vote first.
        for byzantine in &w.oracles[..2] {
            assert_eq!(
                byzantine.submit_node_update(job, &wrong).await.unwrap(),
                VoteOutcome::Pending
            );
        }
        assert_eq!(
            w.oracles[2].submit_node_update(job, honest).await.unwrap(),
            VoteOutcome::Pending
        );
        assert_eq!(
            w.oracles[3].submit_node_update(job, honest).await.unwrap(),
            VoteOutcome::Pending
        );
        assert!(w.csp.job(job).await.unwrap().activeNodes.is_empty());
        assert_eq!(
            w.oracles[4].submit_node_update(job, honest).await.unwrap(),
            VoteOutcome::Accepted(honest.to_vec())
        );
        assert_eq!(w.csp.job(job).await.unwrap().activeNodes, honest.to_vec());

        // A new round: the byzantine pair alone still cannot replace the set.
        for byzantine in &w.oracles[..2] {
            assert_eq!(
                byzantine.submit_node_update(job, &wrong).await.unwrap(),
                VoteOutcome::Pending
            );
        }
        assert_eq!(w.csp.job(job).await.unwrap().activeNodes, honest.to_vec());
    });
}

#[test]
fn votes_are_checked_before_they_count() {
    run(|chain| async move {
        let w = World::new(chain, 3, 3).await;
        let job = w.create_job(2, 30).await;
        let oracle = w.oracles[0].manager();
        let stranger = actor(&w).await;
        assert!(matches!(
            revert_of::<_, E>(stranger.submit_node_update(job, &w.nodes[..1]).await),
            E::NotOracle(_)
        ));
        let unsorted = vec![w.nodes[1], w.nodes[0]];
        assert!(matches!(
            raw_revert_of::<_, E>(
                oracle
                    .submitNodeUpdate(U256::from(job), unsorted)
                    .call()
                    .await
            ),
            E::NodesNotSorted(_)
        ));
        let dup = vec![w.nodes[0], w.nodes[0]];
        assert!(matches!(
            raw_revert_of::<_, E>(oracle.submitNodeUpdate(U256::from(job), dup).call().await),
            E::NodesNotSorted(_)
        ));
        assert!(matches!(
            revert_of::<_, E>(w.oracles[0].submit_node_update(job, &w.nodes).await),
            E::TooManyNodes(_)
        ));
        assert!(matches!(
            revert_of::<_, E>(
                w.oracles[0]
                    .submit_node_update(job, &[random_address()])
                    .await
            ),
            E::NodeNotLicensed(_)
        ));
        assert!(matches!(
            revert_of::<_, E>(w.oracles[0].submit_node_update(99, &w.nodes[..1]).await),
            E::UnknownJob(_)
        ));
        confirm(w.gov.manager().setBlacklisted(w.nodes[0], true))
            .await
            .unwrap();
        assert!(matches!(
            revert_of::<_, E>(w.oracles[0].submit_node_update(job, &w.nodes[..1]).await),
            E::NodeIsBlacklisted(_)
        ));
    });
}

#[test]
fn a_round_left_undecided_restarts_in_the_next_epoch() {
    run(|chain| async move {
        let w = World::new(chain, 3, 2).await;
        let job = w.create_job(2, 30).await;
        // n = 3: attempted at 2, needs 2 matching; two different views do not decide.
        w.oracles[0]
            .submit_node_update(job, &w.nodes[..1])
            .await
            .unwrap();
        w.oracles[1]
            .submit_node_update(job, &w.nodes[1..])
            .await
            .unwrap();
        w.next_epoch().await;
        // Same oracle, new epoch, new round.
        assert_eq!(
            w.oracles[0]
                .submit_node_update(job, &w.nodes)
                .await
                .unwrap(),
            VoteOutcome::Pending
        );
        assert_eq!(
            w.gov
                .manager()
                .jobRound(U256::from(job))
                .call()
                .await
                .unwrap(),
            U256::from(1)
        );
        assert_eq!(
            w.oracles[1]
                .submit_node_update(job, &w.nodes)
                .await
                .unwrap(),
            VoteOutcome::Accepted(w.nodes.clone())
        );
    });
}

#[test]
fn allocation_pays_85_percent_to_validated_nodes_burns_15_and_never_repeats_an_epoch() {
    run(|chain| async move {
        let w = World::new(chain, 3, 3).await;
        let job = w.create_job(2, 30).await;
        w.agree(job, &w.nodes[..2]).await;
        let started = w.now().await;
        let stranger = actor(&w).await;
        assert!(matches!(
            revert_of::<_, E>(stranger.allocate_rewards().await),
            E::NotOracle(_)
        ));
        // Nothing finished yet in this epoch.
        assert!(matches!(
            revert_of::<_, E>(w.oracles[0].allocate_rewards().await),
            E::EpochAlreadyAllocated(_)
        ));

        w.advance_epochs(3).await; // the rest of epoch 0, epochs 1 and 2 finished and paid
        let supply = w.gov.r1().totalSupply().call().await.unwrap();
        let pool_r1 = w.gov.pool().reserveR1().call().await.unwrap();
        let allocation = w.oracles[0].allocate_rewards().await.unwrap();
        assert_eq!((allocation.from_epoch, allocation.until_epoch), (0, 3));
        // Each node from its validation to the start of epoch 3, by the second.
        let (to_node, burn) = node_pay(PRICE, w.start_of(3).await - started);
        assert_eq!(w.node_balance(w.nodes[0]).await, to_node);
        assert_eq!(allocation.usdc_burned, burn * U256::from(2));
        // The share is queued; an oracle swaps and burns it in its own transaction.
        assert_eq!(w.gov.pending_burn().await.unwrap(), burn * U256::from(2));
        assert!(matches!(
            revert_of::<_, E>(stranger.burn_pending_fees(100).await),
            E::NotOracle(_)
        ));
        let (usdc, _) = w.oracles[1].burn_pending_fees(100).await.unwrap().unwrap();
        assert_eq!(usdc, burn * U256::from(2));
        assert_eq!(w.gov.pending_burn().await.unwrap(), U256::ZERO);
        assert_eq!(w.oracles[1].burn_pending_fees(100).await.unwrap(), None);
        for node in &w.nodes[..2] {
            assert_eq!(w.node_balance(*node).await, to_node);
        }
        assert_eq!(w.node_balance(w.nodes[2]).await, U256::ZERO);
        let r1_burned = pool_r1 - w.gov.pool().reserveR1().call().await.unwrap();
        assert!(r1_burned > U256::ZERO);
        assert_eq!(
            w.gov.r1().totalSupply().call().await.unwrap(),
            supply - r1_burned
        );
        assert_eq!(
            w.gov.manager().totalR1Burned().call().await.unwrap(),
            r1_burned
        );
        // Any other oracle finds the epoch done.
        assert!(matches!(
            revert_of::<_, E>(w.oracles[1].allocate_rewards().await),
            E::EpochAlreadyAllocated(_)
        ));
        // A missed slot is finalized by another oracle.
        w.next_epoch().await;
        let next = w.oracles[2].allocate_rewards().await.unwrap();
        assert_eq!((next.from_epoch, next.until_epoch), (3, 4));
        assert!(matches!(
            revert_of::<_, E>(w.oracles[0].allocate_rewards().await),
            E::EpochAlreadyAllocated(_)
        ));
    });
}

#[test]
fn each_node_set_is_paid_for_the_seconds_it_served() {
    run(|chain| async move {
        let w = World::new(chain, 3, 3).await;
        let job = w.create_job(1, 30).await;
        w.agree(job, &w.nodes[..1]).await;
        let first = w.now().await;
        w.advance_epochs(2).await; // epochs 0 and 1 done with node 0, no allocation yet
        w.chain.advance_time(EPOCH / 3).await.unwrap();
        w.agree(job, &w.nodes[1..2]).await; // node 1 replaces node 0 a third into epoch 2
        let second = w.now().await;
        w.next_epoch().await;
        w.oracles[0].allocate_rewards().await.unwrap();
        assert_eq!(
            w.node_balance(w.nodes[0]).await,
            node_pay(PRICE, second - first).0,
            "node 0 up to its replacement"
        );
        assert_eq!(
            w.node_balance(w.nodes[1]).await,
            node_pay(PRICE, w.start_of(3).await - second).0,
            "node 1 from its validation"
        );
        assert_eq!(w.node_balance(w.nodes[2]).await, U256::ZERO);
    });
}

#[test]
fn owners_claim_r1_once_and_blacklisted_nodes_are_never_paid() {
    run(|chain| async move {
        let w = World::new(chain, 3, 2).await;
        let job = w.create_job(2, 30).await;
        w.agree(job, &w.nodes).await;
        let started = w.now().await;
        w.advance_epochs(2).await;
        confirm(w.gov.manager().setBlacklisted(w.nodes[1], true))
            .await
            .unwrap();
        w.oracles[0].allocate_rewards().await.unwrap();
        let (reward, burn) = node_pay(PRICE, w.start_of(2).await - started);
        assert_eq!(w.node_balance(w.nodes[0]).await, reward);
        assert_eq!(w.node_balance(w.nodes[1]).await, U256::ZERO);
        assert_eq!(
            w.csp.job(job).await.unwrap().balance,
            w.creation_cost(job, 2).await - reward - burn
        );

        let stranger = actor(&w).await;
        assert!(matches!(
            revert_of::<_, E>(stranger.claim_rewards(&w.nodes[..1], 100).await),
            E::NotNodeOwner(_)
        ));
        assert!(matches!(
            revert_of::<_, E>(w.owner.claim_rewards(&w.nodes[1..], 100).await),
            E::NodeIsBlacklisted(_)
        ));

        let quote = w.gov.pool().quoteUsdcToR1(reward).call().await.unwrap();
        let before = w.r1_balance(w.owner.address()).await;
        let (usdc, r1) = w.owner.claim_rewards(&w.nodes[..1], 100).await.unwrap();
        assert_eq!((usdc, r1), (reward, quote));
        assert_eq!(w.r1_balance(w.owner.address()).await, before + quote);
        assert_eq!(w.node_balance(w.nodes[0]).await, U256::ZERO);
        assert!(matches!(
            revert_of::<_, E>(w.owner.claim_rewards(&w.nodes[..1], 100).await),
            E::NothingToClaim(_)
        ));
    });
}

#[test]
fn closing_a_job_stops_payouts_and_refunds_the_unspent_budget() {
    run(|chain| async move {
        let w = World::new(chain, 3, 1).await;
        let job = w.create_job(1, 30).await;
        w.agree(job, &w.nodes).await;
        assert_eq!(w.gov.first_closable_job_id().await.unwrap(), None);
        w.advance_epochs(32).await;
        assert_eq!(w.gov.first_closable_job_id().await.unwrap(), None);
        w.oracles[0].allocate_rewards().await.unwrap();
        assert_eq!(w.gov.first_closable_job_id().await.unwrap(), Some(job));
        let csp_before = w.usdc_balance(w.csp.address()).await;
        assert_eq!(w.agree(job, &[]).await, Vec::<Address>::new());
        let state = w.csp.job(job).await.unwrap();
        assert!(state.closed);
        // Every epoch was paid to the one node: nothing is left to refund.
        assert_eq!(w.usdc_balance(w.csp.address()).await, csp_before);
        assert!(matches!(
            revert_of::<_, E>(w.oracles[0].submit_node_update(job, &w.nodes).await),
            E::JobClosed(_)
        ));
        assert_eq!(w.gov.first_closable_job_id().await.unwrap(), None);

        // Early close of a half-used job: the seconds the node served are settled (to it and
        // the burn), exactly the rest comes back, and payouts stop. (The amounts depend on the
        // blocks' times, so they are read from the escrow's counters, not assumed.)
        let job = w.create_job(1, 30).await;
        w.agree(job, &w.nodes).await;
        w.advance_epochs(5).await;
        let csp_before = w.usdc_balance(w.csp.address()).await;
        let budget = w.csp.job(job).await.unwrap().balance;
        let before = w.gov.escrow_totals(w.escrow).await.unwrap();
        w.agree(job, &[]).await;
        let after = w.gov.escrow_totals(w.escrow).await.unwrap();
        let refunded = w.usdc_balance(w.csp.address()).await - csp_before;
        let served =
            (after.credited_to_nodes - before.credited_to_nodes) + (after.burned - before.burned);
        assert_eq!(refunded, after.refunded - before.refunded);
        assert_eq!(
            served + refunded,
            budget,
            "settled and refunded make the budget"
        );
        assert!(
            served >= U256::from(PRICE * 4) && served <= U256::from(PRICE * 6),
            "five epochs passed since validation, {served} settled"
        );
        let node_before = w.node_balance(w.nodes[0]).await;
        w.next_epoch().await;
        w.oracles[0].allocate_rewards().await.unwrap();
        assert_eq!(w.node_balance(w.nodes[0]).await, node_before);
    });
}
