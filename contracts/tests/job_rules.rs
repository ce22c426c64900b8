//! The reference's rules besides money flow, on a real EDR node: the cooldown between a job's
//! node-set decisions, the redeem of a job that never started, the quorum rule chosen at
//! deployment, node suspension and the 98 % service record, allocation and job searches in
//! pages, the 15 % share burned apart from the decisions that queue it, governance behind its
//! timelock beside an immediate guardian, a CSP's exit from a stalled protocol, and the Master
//! and Genesis Node Deeds' mining schedules.

mod common;

use alloy::primitives::{Address, B256, U256};
use common::{EPOCH, World, actor, node_pay, random_address, revert_of, run};
use r1_contracts::ballots::{Ballot, BallotOutcome, Skip};
use r1_contracts::bindings::{CspEscrow, PoAIManager, TimelockController};
use r1_contracts::tx::confirm;
use r1_contracts::units::usdc_units;
use r1_contracts::{Governed, JobRequest, Permissions, Quorum, Suite, VoteOutcome};

type E = PoAIManager::PoAIManagerErrors;
type EscrowError = CspEscrow::CspEscrowErrors;
type DeedError = r1_contracts::bindings::NodeDeed::NodeDeedErrors;

/// Price per node per epoch of job type 1, in USDC units.
const PRICE: u64 = 100_000;

#[test]
fn a_new_node_set_waits_for_the_cooldown_but_a_closure_does_not() {
    run(|chain| async move {
        let w = World::with(chain, 3, 2, |c| c.decision_cooldown_seconds = 300).await;
        let job = w.create_job(1, 30).await;
        assert_eq!(w.gov.decision_ready_at(job).await.unwrap(), 0);
        w.agree(job, &w.nodes[..1]).await;
        let decided = w.chain.timestamp().await.unwrap();
        let ready = w.gov.decision_ready_at(job).await.unwrap();
        assert!(
            (decided + 299..=decided + 300).contains(&ready),
            "{ready} vs {decided}"
        );

        match revert_of::<_, E>(w.oracles[0].submit_node_update(job, &w.nodes[1..]).await) {
            E::DecisionCooldown(e) => {
                assert_eq!(e.jobId, U256::from(job));
                assert_eq!(e.readyAt, U256::from(ready));
            }
            other => panic!("unexpected {other:?}"),
        }

        w.chain.advance_time(300).await.unwrap();
        assert_eq!(w.agree(job, &w.nodes[1..]).await, w.nodes[1..].to_vec());
        // Closing is never delayed.
        assert_eq!(w.agree(job, &[]).await, Vec::<Address>::new());
    });
}

#[test]
fn a_batch_of_votes_counts_each_and_skips_the_moot_ones_without_failing_the_others() {
    run(|chain| async move {
        let w = World::with(chain, 3, 2, |c| c.decision_cooldown_seconds = 300).await;
        let voted = w.create_job(1, 30).await;
        let fresh = w.create_job(1, 30).await;
        let closed = w.create_job(1, 30).await;
        let cooling = w.create_job(1, 30).await;
        w.oracles[0]
            .submit_node_update(voted, &w.nodes[..1])
            .await
            .unwrap();
        w.agree(closed, &[]).await;
        w.agree(cooling, &w.nodes[..1]).await;
        let ready = w.gov.decision_ready_at(cooling).await.unwrap();
        let ballot = |job: u64, nodes: &[Address]| Ballot {
            job,
            nodes: nodes.to_vec(),
            active: 0,
        };
        let outcomes = w.oracles[0]
            .submit_node_updates(&[
                ballot(voted, &w.nodes[..1]),
                ballot(fresh, &w.nodes[..1]),
                ballot(closed, &w.nodes[..1]),
                ballot(cooling, &w.nodes[1..]),
            ])
            .await
            .expect("batch")
            .outcomes;
        assert_eq!(
            outcomes,
            vec![
                (voted, BallotOutcome::Skipped(Skip::AlreadyVoted)),
                (fresh, BallotOutcome::Counted(VoteOutcome::Pending)),
                (closed, BallotOutcome::Skipped(Skip::Closed)),
                (
                    cooling,
                    BallotOutcome::Skipped(Skip::Cooldown { ready_at: ready })
                ),
            ]
        );

        // The other oracles' batches decide both open jobs, each in its own round.
        let second = w.oracles[1]
            .submit_node_updates(&[ballot(voted, &w.nodes[..1]), ballot(fresh, &w.nodes[..1])])
            .await
            .expect("second batch")
            .outcomes;
        assert_eq!(
            second,
            vec![
                (
                    voted,
                    BallotOutcome::Counted(VoteOutcome::Accepted(w.nodes[..1].to_vec()))
                ),
                (
                    fresh,
                    BallotOutcome::Counted(VoteOutcome::Accepted(w.nodes[..1].to_vec()))
                ),
            ]
        );
        for job in [voted, fresh] {
            assert_eq!(
                w.gov.job(job).await.unwrap().activeNodes,
                w.nodes[..1].to_vec()
            );
        }

        // A refusal that is not moot fails the whole batch: nothing of it is counted.
        let other = w.create_job(1, 30).await;
        let strangers = w.create_job(1, 30).await;
        let stranger = random_address();
        match revert_of::<_, E>(
            w.oracles[2]
                .submit_node_updates(&[
                    ballot(other, &w.nodes[..1]),
                    ballot(strangers, &[stranger]),
                ])
                .await,
        ) {
            E::NodeNotLicensed(e) => assert_eq!(e.node, stranger),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            w.oracles[2]
                .submit_node_update(other, &w.nodes[..1])
                .await
                .unwrap(),
            VoteOutcome::Pending
        );
    });
}

#[test]
fn a_job_that_never_started_is_redeemed_after_the_delay_by_its_owner_or_a_redeem_delegate() {
    run(|chain| async move {
        let w = World::new(chain, 3, 1).await;
        let job = w.create_job(2, 30).await;
        let cost = w.creation_cost(job, 2).await;
        let requested = w.gov.job(job).await.unwrap().requestTimestamp;
        match revert_of::<_, EscrowError>(w.csp.redeem_unstarted_job(w.escrow, job).await) {
            EscrowError::RedeemTooEarly(e) => {
                assert_eq!(e.readyAt, requested + U256::from(EPOCH));
            }
            other => panic!("unexpected {other:?}"),
        }

        w.chain.advance_time(EPOCH).await.unwrap();
        let stranger = actor(&w).await;
        assert!(matches!(
            revert_of::<_, EscrowError>(stranger.redeem_unstarted_job(w.escrow, job).await),
            EscrowError::NotPermitted(_)
        ));
        let delegate = actor(&w).await;
        w.csp
            .set_delegate(w.escrow, delegate.address(), Permissions::CREATE)
            .await
            .unwrap();
        assert!(matches!(
            revert_of::<_, EscrowError>(delegate.redeem_unstarted_job(w.escrow, job).await),
            EscrowError::NotPermitted(_)
        ));
        w.csp
            .set_delegate(w.escrow, delegate.address(), Permissions::REDEEM)
            .await
            .unwrap();

        let open_before = w.gov.manager().openJobCount().call().await.unwrap();
        let wallet_before = w.usdc_balance(w.csp.address()).await;
        assert_eq!(
            delegate.redeem_unstarted_job(w.escrow, job).await.unwrap(),
            cost
        );
        // The refund goes to the owner's wallet, whoever redeems.
        assert_eq!(w.usdc_balance(w.csp.address()).await, wallet_before + cost);
        assert_eq!(w.usdc_balance(delegate.address()).await, U256::ZERO);
        assert_eq!(
            w.gov.manager().openJobCount().call().await.unwrap(),
            open_before - U256::from(1u64)
        );
        assert!(w.gov.job(job).await.unwrap().closed);
        let totals = w.gov.escrow_totals(w.escrow).await.unwrap();
        assert_eq!(totals.refunded, cost);
        assert_eq!(totals.balance_usdc, U256::ZERO);
        // The oracles can no longer start it, and it cannot be redeemed twice.
        assert!(matches!(
            revert_of::<_, E>(w.oracles[0].submit_node_update(job, &w.nodes).await),
            E::JobClosed(_)
        ));
        assert!(matches!(
            revert_of::<_, EscrowError>(w.csp.redeem_unstarted_job(w.escrow, job).await),
            EscrowError::JobNotOpen(_)
        ));

        // A job a node set started is not redeemable, however long it waited.
        let started = w.create_job(1, 30).await;
        w.agree(started, &w.nodes).await;
        w.chain.advance_time(EPOCH * 2).await.unwrap();
        assert!(matches!(
            revert_of::<_, EscrowError>(w.csp.redeem_unstarted_job(w.escrow, started).await),
            EscrowError::JobAlreadyStarted(_)
        ));
    });
}

#[test]
fn each_quorum_rule_decides_on_chain_as_the_model_says() {
    run(|chain| async move {
        for rule in [Quorum::Reference, Quorum::Byzantine] {
            let w = World::with(chain, 3, 1, |c| c.quorum = rule).await;
            let manager = w.gov.manager();
            assert_eq!(manager.quorum().call().await.unwrap(), rule.as_u8());
            for n in 1..=20u64 {
                let submissions = manager
                    .submissionsNeeded(U256::from(n))
                    .call()
                    .await
                    .unwrap();
                let agreement = manager.agreementNeeded(U256::from(n)).call().await.unwrap();
                assert_eq!(
                    submissions,
                    U256::from(rule.submissions_needed(n)),
                    "{rule} n={n}"
                );
                assert_eq!(
                    agreement,
                    U256::from(rule.agreement_needed(n)),
                    "{rule} n={n}"
                );
            }
            // Three oracles: the reference rule decides at the second agreeing vote, the
            // Byzantine rule only at the third.
            let job = w.create_job(1, 30).await;
            let mut outcomes = Vec::new();
            for oracle in &w.oracles {
                let outcome = oracle.submit_node_update(job, &w.nodes).await.unwrap();
                let accepted = matches!(outcome, VoteOutcome::Accepted(_));
                outcomes.push(accepted);
                if accepted {
                    break;
                }
            }
            let expected = match rule {
                Quorum::Reference => vec![false, true],
                Quorum::Byzantine => vec![false, false, true],
            };
            assert_eq!(outcomes, expected, "{rule}");
        }
    });
}

#[test]
fn a_suspended_node_is_named_in_no_set_and_mints_no_poa_until_its_suspension_ends() {
    run(|chain| async move {
        let w = World::new(chain, 3, 2).await;
        let suspended = w.nodes[0];
        let until = w.epoch().await + 2;
        let stranger = actor(&w).await;
        assert!(matches!(
            revert_of::<_, E>(stranger.suspend(suspended, until).await),
            E::NotGuardian(_)
        ));
        w.gov.suspend(suspended, until).await.unwrap();
        let licence = w.gov.node_licence(suspended).await.unwrap().unwrap();
        assert_eq!(licence.suspended_until_epoch, until);
        assert!(!licence.may_work(until - 1) && licence.may_work(until));

        let job = w.create_job(2, 30).await;
        match revert_of::<_, E>(w.oracles[0].submit_node_update(job, &w.nodes).await) {
            E::NodeIsSuspended(e) => {
                assert_eq!(e.node, suspended);
                assert_eq!(e.untilEpoch, U256::from(until));
            }
            other => panic!("unexpected {other:?}"),
        }

        // Availability of a finished epoch: both nodes measured, only the working one mints.
        w.next_epoch().await;
        let epoch = w.epoch().await - 1;
        let before = w.r1_balance(w.owner.address()).await;
        w.agree_availability(epoch, &[(w.nodes[0], 255), (w.nodes[1], 255)])
            .await;
        let minted = w.r1_balance(w.owner.address()).await - before;
        let per_epoch = w.gov.node_deed().poaRewardFor(255).call().await.unwrap();
        assert_eq!(minted, per_epoch);
        let record = w.gov.service_record(suspended).await.unwrap();
        assert_eq!((record.epochs_measured, record.epochs_at_sla), (1, 1));

        w.advance_epochs(until - w.epoch().await).await;
        assert_eq!(w.agree(job, &w.nodes).await, w.nodes);
    });
}

#[test]
fn the_service_record_flags_epochs_at_98_percent() {
    run(|chain| async move {
        let w = World::new(chain, 3, 2).await;
        w.next_epoch().await;
        w.agree_availability(0, &[(w.nodes[0], 250), (w.nodes[1], 249)])
            .await;
        w.next_epoch().await;
        w.agree_availability(1, &[(w.nodes[0], 100), (w.nodes[1], 255)])
            .await;
        let first = w.gov.service_record(w.nodes[0]).await.unwrap();
        assert_eq!(
            (
                first.epochs_measured,
                first.epochs_at_sla,
                first.last_epoch,
                first.last_at_sla
            ),
            (2, 1, 1, false)
        );
        let second = w.gov.service_record(w.nodes[1]).await.unwrap();
        assert_eq!(
            (
                second.epochs_measured,
                second.epochs_at_sla,
                second.last_epoch,
                second.last_at_sla
            ),
            (2, 1, 1, true)
        );
        let unknown = w.gov.service_record(Address::repeat_byte(7)).await.unwrap();
        assert_eq!(unknown.epochs_measured, 0);
    });
}

#[test]
fn allocation_runs_in_pages_across_escrows_and_pays_every_job_exactly_once() {
    run(|chain| async move {
        let w = World::new(chain, 3, 1).await;
        let node = w.nodes[0];
        let mut jobs = Vec::new();
        for _ in 0..4 {
            jobs.push(w.create_job(1, 30).await);
        }
        let other = second_escrow(&w).await;
        for _ in 0..2 {
            jobs.push(create_job_in(&other.0, other.1).await);
        }
        for job in &jobs {
            w.agree(*job, &[node]).await;
        }
        w.advance_epochs(3).await; // epochs 1 and 2 finished

        let oracle = &w.oracles[0];
        let manager = oracle.manager();
        assert!(matches!(
            common::raw_revert_of::<_, E>(manager.allocateRewardsToNodes(U256::ZERO).call().await),
            E::EmptyPage(_)
        ));
        let first = confirm(manager.allocateRewardsToNodes(U256::from(2u64)))
            .await
            .unwrap();
        let page = first
            .decoded_log::<PoAIManager::AllocationPage>()
            .expect("a page");
        assert_eq!(page.data.jobsVisited, U256::from(2u64));
        assert!(
            first
                .decoded_log::<PoAIManager::RewardsAllocated>()
                .is_none()
        );
        assert_eq!(w.gov.allocated_until_epoch().await.unwrap(), 0);

        // A job closes between pages: the set's last job moves into its place.
        w.agree(jobs[0], &[]).await;
        let closed_at = w.now().await;
        let mut pages = 1;
        let allocation = loop {
            let receipt = confirm(manager.allocateRewardsToNodes(U256::from(1u64)))
                .await
                .unwrap();
            pages += 1;
            if let Some(done) = receipt.decoded_log::<PoAIManager::RewardsAllocated>() {
                break done.data;
            }
            assert!(pages < 20, "the pass never ends");
        };
        // Two jobs, then one per page: escrow 1's three left (the moved one again), escrow 2's two.
        assert_eq!(pages, 5);
        assert_eq!(allocation.untilEpoch, U256::from(3u64));
        // Each job pays its node from its validation, by the second: the closed one up to its
        // closure, the rest up to the start of epoch 3 by the pages.
        let mut paid = [U256::ZERO; 2];
        let mut burned_by_pages = U256::ZERO;
        for (i, job) in jobs.iter().enumerate() {
            let started = u64::try_from(w.gov.job(*job).await.unwrap().startTimestamp).unwrap();
            let until = if i == 0 {
                closed_at
            } else {
                w.start_of(3).await
            };
            let (to_node, burned) = node_pay(PRICE, until - started);
            paid[usize::from(i >= 4)] += to_node;
            if i > 0 {
                burned_by_pages += burned;
            }
        }
        assert_eq!(allocation.usdcBurned, burned_by_pages);
        assert_eq!(w.node_balance(node).await, paid[0]);
        let in_other = w
            .gov
            .escrow(other.1)
            .virtualWalletBalance(node)
            .call()
            .await
            .unwrap();
        assert_eq!(in_other, paid[1]);
        assert_eq!(w.gov.allocated_until_epoch().await.unwrap(), 3);
        assert!(matches!(
            revert_of::<_, E>(w.oracles[1].allocate_rewards().await),
            E::EpochAlreadyAllocated(_)
        ));
    });
}

#[test]
fn open_jobs_are_listed_in_pages() {
    run(|chain| async move {
        let w = World::new(chain, 3, 1).await;
        let mut jobs = Vec::new();
        for _ in 0..5 {
            jobs.push(w.create_job(1, 30).await);
        }
        let manager = w.gov.manager();
        let mut seen = Vec::new();
        let mut start = U256::ZERO;
        let mut pages = 0;
        loop {
            let page = manager
                .getOpenJobIds(start, U256::from(2u64))
                .call()
                .await
                .unwrap();
            pages += 1;
            seen.extend(page.ids.iter().map(|id| id.to::<u64>()));
            if page.next.is_zero() {
                break;
            }
            start = page.next;
        }
        assert_eq!(pages, 3);
        seen.sort_unstable();
        assert_eq!(seen, jobs);
        let past_the_end = manager
            .getOpenJobIds(U256::from(9u64), U256::from(2u64))
            .call()
            .await
            .unwrap();
        assert!(past_the_end.ids.is_empty() && past_the_end.next.is_zero());
        assert_eq!(
            w.oracles[0]
                .unvalidated_job_ids(w.oracles[0].address())
                .await
                .unwrap()
                .len(),
            5
        );
        assert_eq!(w.gov.closable_job_ids().await.unwrap(), Vec::<u64>::new());
    });
}

#[test]
fn a_failing_swap_blocks_no_decision_and_a_burn_refuses_less_than_its_bound() {
    run(|chain| async move {
        let w = World::new(chain, 3, 2).await;
        let manager = w.gov.manager();
        let pool = w.gov.deployment().pool;
        confirm(manager.setSwap(Address::repeat_byte(0x77)))
            .await
            .unwrap();
        let job = w.create_job(2, 30).await;
        w.agree(job, &w.nodes).await;
        let started = w.now().await;
        w.advance_epochs(3).await;
        w.oracles[0].allocate_rewards().await.unwrap();
        w.next_epoch().await;
        assert_eq!(w.agree(job, &[]).await, Vec::<Address>::new());
        // From the validation to epoch 3 settled by the allocation, the rest up to the closure
        // by the closure: 15 % of each queued, for each of the two nodes.
        let by_allocation = node_pay(PRICE, w.start_of(3).await - started).1;
        let by_closure = node_pay(PRICE, w.now().await - w.start_of(3).await).1;
        let queued = (by_allocation + by_closure) * U256::from(2u64);
        assert_eq!(w.gov.pending_burn().await.unwrap(), queued);
        assert!(w.oracles[0].burn_pending_fees(100).await.is_err());
        assert_eq!(w.gov.pending_burn().await.unwrap(), queued);

        confirm(manager.setSwap(pool)).await.unwrap();
        let oracle = w.oracles[0].manager();
        assert!(matches!(
            common::raw_revert_of::<_, E>(oracle.burnPendingFees(U256::ZERO).call().await),
            E::NoSlippageBound(_)
        ));
        let quote = w.oracles[0].quote_usdc_to_r1(queued).await.unwrap();
        assert!(
            oracle
                .burnPendingFees(quote + U256::from(1u64))
                .call()
                .await
                .is_err(),
            "a bound above the quote is refused"
        );
        let (usdc, r1) = w.oracles[0].burn_pending_fees(100).await.unwrap().unwrap();
        assert_eq!((usdc, r1), (queued, quote));
        assert_eq!(manager.totalUsdcBurned().call().await.unwrap(), queued);
        assert_eq!(w.gov.pending_burn().await.unwrap(), U256::ZERO);
    });
}

#[test]
fn owner_changes_wait_for_the_timelock_while_the_guardian_acts_at_once() {
    run(|chain| async move {
        let w = World::with(chain, 1, 1, |c| c.governance_delay_seconds = Some(0)).await;
        let timelock = w.gov.timelock().expect("a timelock");
        let manager = w.gov.manager();
        assert_eq!(manager.owner().call().await.unwrap(), timelock);
        // The deployer is no longer the owner: a direct owner-only call is refused …
        let newcomer = random_address();
        assert!(matches!(
            revert_of::<_, E>(confirm(manager.addOracle(newcomer)).await),
            E::OwnableUnauthorizedAccount(_)
        ));
        // … but it is the guardian, which acts at once.
        w.gov.suspend(w.nodes[0], 5).await.unwrap();
        assert!(manager.isSuspended(w.nodes[0]).call().await.unwrap());
        let stranger = actor(&w).await;
        assert!(matches!(
            revert_of::<_, E>(stranger.suspend(w.nodes[0], 0).await),
            E::NotGuardian(_)
        ));

        // A one-hour delay, itself set through the timelock.
        let lock = TimelockController::new(timelock, w.gov.provider().clone());
        let governed = w
            .gov
            .govern(lock.updateDelay(U256::from(3_600u64)), false)
            .await;
        assert!(matches!(governed, Ok(Governed::Done(_))), "{governed:?}");
        let Governed::Scheduled {
            operation,
            ready_at,
        } = w.gov.add_oracle(newcomer).await.unwrap()
        else {
            panic!("scheduled, not done");
        };
        let now = w.chain.timestamp().await.unwrap();
        assert!((now + 3_599..=now + 3_600).contains(&ready_at));
        assert!(
            w.gov.execute_governed(&operation).await.is_err(),
            "too early"
        );
        assert!(!manager.isOracle(newcomer).call().await.unwrap());
        w.chain.advance_time(3_600).await.unwrap();
        w.gov.execute_governed(&operation).await.unwrap();
        assert!(manager.isOracle(newcomer).call().await.unwrap());
        // A dry run simulates the call as the timelock would make it and sends nothing.
        let refused = w.gov.govern(manager.addOracle(newcomer), true).await;
        assert!(
            matches!(
                refused.as_ref().map_err(|e| e.revert::<E>()),
                Err(Some(E::AlreadyOracle(_)))
            ),
            "{refused:?}"
        );
    });
}

#[test]
fn a_csp_takes_its_jobs_back_once_nobody_has_allocated_for_the_exit_delay() {
    run(|chain| async move {
        let w = World::new(chain, 3, 1).await;
        let node = w.nodes[0];
        let job = w.create_job(1, 30).await;
        w.agree(job, &[node]).await;
        w.advance_epochs(2).await;
        w.oracles[0].allocate_rewards().await.unwrap(); // epoch 1 paid; allocated until 2
        match revert_of::<_, E>(w.csp.exit_stalled_job(w.escrow, job).await) {
            E::NotStalled(e) => assert_eq!(e.exitFromEpoch, U256::from(2 + 3u64)),
            other => panic!("unexpected {other:?}"),
        }
        let stranger = actor(&w).await;
        assert!(matches!(
            revert_of::<_, EscrowError>(stranger.exit_stalled_job(w.escrow, job).await),
            EscrowError::NotCspOwner(_)
        ));

        w.advance_epochs(3).await; // epoch 5: no allocation for three epochs
        assert!(w.gov.manager().isStalled().call().await.unwrap());
        let paid_before = w.node_balance(node).await;
        let wallet_before = w.usdc_balance(w.csp.address()).await;
        let held = w.gov.job(job).await.unwrap().balance;
        let refunded = w.csp.exit_stalled_job(w.escrow, job).await.unwrap();
        // Epochs 2, 3 and 4 are paid to the validated node as a closure would, and the seconds
        // of epoch 5 before the exit was mined (none, unless the clock ticked meanwhile); the
        // rest comes back: epochs 5 to 30, and what the second the job was created in left of
        // epoch 0's share.
        let into_epoch_5 = w.now().await - w.start_of(5).await;
        let served = PRICE * (3 * EPOCH + into_epoch_5) / EPOCH;
        assert_eq!(
            w.node_balance(node).await - paid_before,
            U256::from(served - served * 15 / 100)
        );
        assert_eq!(refunded, held - U256::from(served));
        // Whatever of epoch 5 was served is paid, not refunded, so it counts with the refund.
        let unserved = U256::from(PRICE * (30 - 4));
        let back = refunded + U256::from(served - 3 * PRICE);
        assert!(
            back >= unserved && back - unserved <= U256::from(PRICE / 100),
            "refunded {refunded} after {into_epoch_5} s of epoch 5, epochs 5 to 30 cost {unserved}"
        );
        assert_eq!(
            w.usdc_balance(w.csp.address()).await,
            wallet_before + refunded
        );
        assert!(w.gov.job(job).await.unwrap().closed);
        assert_eq!(
            w.gov.manager().openJobCount().call().await.unwrap(),
            U256::ZERO
        );
        assert!(matches!(
            revert_of::<_, E>(w.oracles[0].submit_node_update(job, &[]).await),
            E::JobClosed(_)
        ));
    });
}

#[test]
fn master_and_genesis_deeds_mine_on_their_own_schedules_and_take_no_jobs() {
    run(|chain| async move {
        let w = World::new(chain, 3, 1).await;
        let deed = w.owner.node_deed();
        let gov_deed = w.gov.node_deed();
        let stranger = actor(&w).await;
        assert!(matches!(
            common::raw_revert_of::<_, DeedError>(
                stranger
                    .node_deed()
                    .mintMaster(stranger.address())
                    .call()
                    .await
            ),
            DeedError::OwnableUnauthorizedAccount(_)
        ));
        confirm(gov_deed.mintMaster(w.owner.address()))
            .await
            .unwrap();
        confirm(gov_deed.mintGenesis(w.owner.address()))
            .await
            .unwrap();
        assert!(matches!(
            common::raw_revert_of::<_, DeedError>(
                gov_deed.mintGenesis(w.owner.address()).call().await
            ),
            DeedError::GenesisExists(_)
        ));
        let master = U256::from(1_000_001u64);
        let genesis = U256::from(2_000_000u64);
        assert_eq!(
            deed.ownerOf(master).call().await.unwrap(),
            w.owner.address()
        );
        for (id, kind) in [(U256::from(1u64), 0u8), (master, 1), (genesis, 2)] {
            assert_eq!(deed.kindOf(id).call().await.unwrap(), kind);
        }

        // A node on each, linked as any node is.
        let mut linked = Vec::new();
        for licence in [master, genesis] {
            let key = alloy::signers::local::PrivateKeySigner::random();
            let proof =
                common::link_proof(w.chain, &w.owner, licence.to(), &key, &w.oracle_keys[0]).await;
            w.owner
                .link_node(licence.to(), key.address(), &proof)
                .await
                .unwrap();
            linked.push(key.address());
        }
        let (master_node, genesis_node) = (linked[0], linked[1]);
        assert!(!deed.forHire(master_node).call().await.unwrap());
        assert!(deed.forHire(w.nodes[0]).call().await.unwrap());
        let job = w.create_job(1, 30).await;
        for node in [master_node, genesis_node] {
            assert!(matches!(
                revert_of::<_, E>(w.oracles[0].submit_node_update(job, &[node]).await),
                E::NodeNotForHire(_)
            ));
        }
        let standing = w.gov.node_licence(master_node).await.unwrap().unwrap();
        assert!(!standing.may_work(0));

        // Epoch 0: the genesis deed mines its 365th, the master deed nothing before its cliff.
        let table = [(w.nodes[0], 255u8), (master_node, 255), (genesis_node, 255)];
        w.next_epoch().await;
        w.agree_availability(0, &table).await;
        let genesis_cap = deed.MAX_POA_GENESIS().call().await.unwrap();
        let per_genesis_epoch = genesis_cap * U256::from(255u64) / U256::from(365u64 * 255);
        assert_eq!(
            deed.poaMinted(genesis).call().await.unwrap(),
            per_genesis_epoch
        );
        assert_eq!(deed.poaMinted(master).call().await.unwrap(), U256::ZERO);
        assert_eq!(
            deed.poaMinted(U256::from(1u64)).call().await.unwrap(),
            deed.poaRewardFor(255).call().await.unwrap()
        );

        // Epoch 223, the first after the cliff: the master deed mines its 900th.
        let epoch = w.epoch().await;
        w.advance_epochs(224 - epoch).await;
        w.agree_availability(223, &table).await;
        let master_cap = deed.MAX_POA_PER_MASTER().call().await.unwrap();
        // 26.1 % of the R1 cap over 500 master deeds, 28.9 % for the genesis deed.
        let cap = U256::from(161_803_398u64) * U256::from(10u64).pow(U256::from(18u64));
        let per_mille = |n: u64| cap * U256::from(n) / U256::from(1_000u64);
        assert_eq!(master_cap, per_mille(261) / U256::from(500u64));
        assert_eq!(genesis_cap, per_mille(289));
        assert_eq!(
            deed.poaMinted(master).call().await.unwrap(),
            master_cap * U256::from(255u64) / U256::from(900u64 * 255)
        );
        assert_eq!(
            deed.poaMinted(genesis).call().await.unwrap(),
            per_genesis_epoch * U256::from(2u64)
        );
    });
}

/// A second CSP with its own escrow and USDC.
async fn second_escrow(w: &World) -> (Suite, Address) {
    let csp = actor(w).await;
    let escrow = w.gov.deploy_escrow(csp.address()).await.unwrap();
    w.gov
        .mint_usdc(csp.address(), usdc_units(10_000))
        .await
        .unwrap();
    (csp, escrow)
}

/// A one-node job of type 1 for 30 epochs in `escrow`, paid by `csp`.
async fn create_job_in(csp: &Suite, escrow: Address) -> u64 {
    let request = JobRequest {
        job_type: 1,
        project_hash: B256::repeat_byte(0xcd),
        last_execution_epoch: csp.current_epoch().await.unwrap() + 30,
        nodes: 1,
    };
    csp.create_job(escrow, &request).await.unwrap()
}
