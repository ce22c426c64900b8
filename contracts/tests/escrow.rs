//! CSP escrows: deployment behind the beacon, job creation and extension, access rules, upgrades.
#![allow(clippy::unwrap_used)] // test bodies run inside closures, where the usual test exemption does not reach

mod common;

use alloy::primitives::{Address, B256, U256};
use common::{World, actor, raw_revert_of, revert_of, run};
use r1_contracts::JobRequest;
use r1_contracts::bindings::v2::CspEscrowV2;
use r1_contracts::bindings::{CspEscrow, PoAIManager, UpgradeableBeacon};
use r1_contracts::tx::confirm;

const PRICE: u64 = 100_000; // job type 1: 0.10 USDC per node per epoch

fn request(job_type: u8, last_execution_epoch: u64, nodes: u64) -> CspEscrow::JobCreationRequest {
    CspEscrow::JobCreationRequest {
        jobType: job_type,
        projectHash: B256::repeat_byte(7),
        lastExecutionEpoch: U256::from(last_execution_epoch),
        numberOfNodesRequested: U256::from(nodes),
    }
}

#[test]
fn governance_deploys_one_escrow_per_csp() {
    run(|chain| async move {
        let w = World::new(chain, 1, 0).await;
        assert_eq!(w.gov.escrow_of(w.csp.address()).await.unwrap(), w.escrow);
        let escrow = w.gov.escrow(w.escrow);
        assert_eq!(escrow.cspOwner().call().await.unwrap(), w.csp.address());
        assert_eq!(
            escrow.manager().call().await.unwrap(),
            w.gov.deployment().manager
        );
        let err = revert_of::<_, PoAIManager::PoAIManagerErrors>(
            w.gov.deploy_escrow(w.csp.address()).await,
        );
        assert!(matches!(
            err,
            PoAIManager::PoAIManagerErrors::EscrowExists(_)
        ));
        let err = revert_of::<_, PoAIManager::PoAIManagerErrors>(
            w.csp.deploy_escrow(Address::repeat_byte(3)).await,
        );
        assert!(matches!(
            err,
            PoAIManager::PoAIManagerErrors::OwnableUnauthorizedAccount(_)
        ));
        let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
            escrow
                .initialize(Address::repeat_byte(9), w.gov.deployment().manager)
                .call()
                .await,
        );
        assert!(matches!(
            err,
            CspEscrow::CspEscrowErrors::InvalidInitialization(_)
        ));
        assert_eq!(
            w.gov.manager().getEscrows().call().await.unwrap(),
            vec![w.escrow]
        );
    });
}

#[test]
fn create_jobs_pulls_price_times_nodes_times_epochs_at_once() {
    run(|chain| async move {
        let w = World::new(chain, 1, 0).await;
        w.next_epoch().await;
        let epoch = w.epoch().await;
        let before = w.usdc_balance(w.csp.address()).await;
        let cost_a = U256::from(PRICE * 2 * 30);
        let cost_b = U256::from(375_000u64 * 45);
        confirm(w.csp.usdc().approve(w.escrow, cost_a + cost_b))
            .await
            .unwrap();
        let escrow = w.csp.escrow(w.escrow);
        let receipt =
            confirm(escrow.createJobs(vec![request(1, epoch + 30, 2), request(3, epoch + 45, 1)]))
                .await
                .unwrap();
        assert_eq!(
            receipt
                .decoded_log::<CspEscrow::JobCreated>()
                .unwrap()
                .data
                .paid,
            cost_a
        );
        assert_eq!(
            w.usdc_balance(w.csp.address()).await,
            before - cost_a - cost_b
        );
        assert_eq!(w.usdc_balance(w.escrow).await, cost_a + cost_b);
        assert_eq!(
            escrow.totalDeposited().call().await.unwrap(),
            cost_a + cost_b
        );

        let job = w.csp.job(1).await.unwrap();
        assert_eq!(job.balance, cost_a);
        assert_eq!(job.nextEpochToSettle, U256::from(epoch + 1));
        assert_eq!(job.pricePerEpoch, U256::from(PRICE));
        assert!(job.activeNodes.is_empty() && !job.closed);
        assert_eq!(w.csp.job(2).await.unwrap().balance, cost_b);
        assert_eq!(
            escrow.getOpenJobIds().call().await.unwrap(),
            vec![U256::from(1), U256::from(2)]
        );
        assert_eq!(
            w.gov.manager().getOpenJobIds().call().await.unwrap(),
            vec![U256::from(1), U256::from(2)]
        );
    });
}

#[test]
fn create_jobs_refuses_bad_requests() {
    run(|chain| async move {
        let w = World::new(chain, 1, 0).await;
        let epoch = w.epoch().await;
        let escrow = w.csp.escrow(w.escrow);
        confirm(w.csp.usdc().approve(w.escrow, U256::MAX))
            .await
            .unwrap();
        let cases = [
            (request(1, epoch + 29, 1), "TooFewEpochs"),
            (request(1, epoch, 1), "TooFewEpochs"),
            (request(1, epoch + 30, 0), "NoNodesRequested"),
            (request(99, epoch + 30, 1), "UnknownJobType"),
        ];
        for (req, expected) in cases {
            let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
                escrow.createJobs(vec![req]).call().await,
            );
            let name = match err {
                CspEscrow::CspEscrowErrors::TooFewEpochs(_) => "TooFewEpochs",
                CspEscrow::CspEscrowErrors::NoNodesRequested(_) => "NoNodesRequested",
                CspEscrow::CspEscrowErrors::UnknownJobType(_) => "UnknownJobType",
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(name, expected);
        }
        // Not the owner.
        let stranger = actor(&w).await;
        let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
            stranger
                .escrow(w.escrow)
                .createJobs(vec![request(1, epoch + 30, 1)])
                .call()
                .await,
        );
        assert!(matches!(err, CspEscrow::CspEscrowErrors::NotCspOwner(_)));
        // Underfunded: allowance too small, then balance too small.
        confirm(w.csp.usdc().approve(w.escrow, U256::from(PRICE * 30 - 1)))
            .await
            .unwrap();
        let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
            escrow
                .createJobs(vec![request(1, epoch + 30, 1)])
                .call()
                .await,
        );
        assert!(matches!(err, CspEscrow::CspEscrowErrors::Underfunded(_)));
        confirm(w.csp.usdc().approve(w.escrow, U256::MAX))
            .await
            .unwrap();
        let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
            escrow
                .createJobs(vec![request(1, epoch + 30, 1_000_000)])
                .call()
                .await,
        );
        assert!(matches!(err, CspEscrow::CspEscrowErrors::Underfunded(_)));
    });
}

#[test]
fn extend_job_duration_charges_the_added_epochs() {
    run(|chain| async move {
        let w = World::new(chain, 1, 0).await;
        let job = w.create_job(2, 30).await;
        let before = w.csp.job(job).await.unwrap();
        let spent_before = w.usdc_balance(w.csp.address()).await;
        let last = u64::try_from(before.lastExecutionEpoch).unwrap();
        w.csp
            .extend_job_duration(w.escrow, job, last + 10)
            .await
            .unwrap();
        let after = w.csp.job(job).await.unwrap();
        assert_eq!(after.lastExecutionEpoch, U256::from(last + 10));
        assert_eq!(after.balance, before.balance + U256::from(PRICE * 2 * 10));
        assert_eq!(
            w.usdc_balance(w.csp.address()).await,
            spent_before - U256::from(PRICE * 2 * 10)
        );

        let escrow = w.csp.escrow(w.escrow);
        let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
            escrow
                .extendJobDuration(U256::from(job), U256::from(last + 10))
                .call()
                .await,
        );
        assert!(matches!(err, CspEscrow::CspEscrowErrors::NotAnExtension(_)));
        let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
            escrow
                .extendJobDuration(U256::from(77), U256::from(last + 20))
                .call()
                .await,
        );
        assert!(matches!(err, CspEscrow::CspEscrowErrors::JobNotOpen(_)));
        let stranger = actor(&w).await;
        let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
            stranger
                .escrow(w.escrow)
                .extendJobDuration(U256::from(job), U256::from(last + 20))
                .call()
                .await,
        );
        assert!(matches!(err, CspEscrow::CspEscrowErrors::NotCspOwner(_)));
        confirm(w.csp.usdc().approve(w.escrow, U256::ZERO))
            .await
            .unwrap();
        let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
            escrow
                .extendJobDuration(U256::from(job), U256::from(last + 20))
                .call()
                .await,
        );
        assert!(matches!(err, CspEscrow::CspEscrowErrors::Underfunded(_)));

        w.advance_epochs(41).await;
        confirm(w.csp.usdc().approve(w.escrow, U256::MAX))
            .await
            .unwrap();
        let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
            escrow
                .extendJobDuration(U256::from(job), U256::from(last + 50))
                .call()
                .await,
        );
        assert!(matches!(err, CspEscrow::CspEscrowErrors::JobEnded(_)));
        let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
            escrow
                .extendJobNodes(U256::from(job), U256::from(5))
                .call()
                .await,
        );
        assert!(matches!(err, CspEscrow::CspEscrowErrors::JobEnded(_)));
    });
}

#[test]
fn extend_job_nodes_settles_first_and_charges_the_epochs_left() {
    run(|chain| async move {
        let w = World::new(chain, 3, 3).await;
        let job = w.create_job(1, 30).await;
        w.agree(job, &w.nodes[..1]).await;
        w.advance_epochs(3).await; // epochs 1 and 2 are done, epoch 3 is running
        let before = w.csp.job(job).await.unwrap();
        let csp_before = w.usdc_balance(w.csp.address()).await;
        w.csp.extend_job_nodes(w.escrow, job, 3).await.unwrap();
        let after = w.csp.job(job).await.unwrap();
        // Epochs 1-2 were settled to the single node; epochs 3..=30 are paid for two more nodes.
        let settled = U256::from(PRICE * 2);
        let added = U256::from(PRICE * 2 * 28);
        assert_eq!(after.nextEpochToSettle, U256::from(3));
        assert_eq!(after.numberOfNodesRequested, U256::from(3));
        assert_eq!(after.balance, before.balance - settled + added);
        assert_eq!(w.usdc_balance(w.csp.address()).await, csp_before - added);
        assert_eq!(
            w.node_balance(w.nodes[0]).await,
            U256::from(PRICE * 2 * 85 / 100)
        );

        let escrow = w.csp.escrow(w.escrow);
        let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
            escrow
                .extendJobNodes(U256::from(job), U256::from(3))
                .call()
                .await,
        );
        assert!(matches!(err, CspEscrow::CspEscrowErrors::NotAnExtension(_)));
        let stranger = actor(&w).await;
        let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
            stranger
                .escrow(w.escrow)
                .extendJobNodes(U256::from(job), U256::from(4))
                .call()
                .await,
        );
        assert!(matches!(err, CspEscrow::CspEscrowErrors::NotCspOwner(_)));
        // The grown job now accepts three nodes.
        assert_eq!(w.agree(job, &w.nodes).await, w.nodes);
    });
}

#[test]
fn only_the_manager_moves_escrow_money_and_only_escrows_call_the_manager_hooks() {
    run(|chain| async move {
        let w = World::new(chain, 1, 1).await;
        let job = w.create_job(1, 30).await;
        let escrow = w.csp.escrow(w.escrow);
        let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
            escrow
                .updateActiveNodes(U256::from(job), vec![])
                .call()
                .await,
        );
        assert!(matches!(err, CspEscrow::CspEscrowErrors::NotManager(_)));
        let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
            escrow.allocateRewards(U256::from(5)).call().await,
        );
        assert!(matches!(err, CspEscrow::CspEscrowErrors::NotManager(_)));
        let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
            escrow.withdrawNodeBalance(w.nodes[0]).call().await,
        );
        assert!(matches!(err, CspEscrow::CspEscrowErrors::NotManager(_)));
        let manager = w.csp.manager();
        let err =
            raw_revert_of::<_, PoAIManager::PoAIManagerErrors>(manager.registerJob().call().await);
        assert!(matches!(err, PoAIManager::PoAIManagerErrors::NotEscrow(_)));
        let err = raw_revert_of::<_, PoAIManager::PoAIManagerErrors>(
            manager.burnUsdc(U256::from(1)).call().await,
        );
        assert!(matches!(err, PoAIManager::PoAIManagerErrors::NotEscrow(_)));
    });
}

#[test]
fn the_beacon_owner_upgrades_every_escrow_at_once() {
    run(|chain| async move {
        let w = World::new(chain, 3, 1).await;
        let (other_csp, _) = chain.funded_account(10).await.unwrap();
        let second = w.gov.deploy_escrow(other_csp).await.unwrap();
        let job = w.create_job(1, 30).await;
        w.agree(job, &w.nodes).await;
        assert_eq!(
            w.gov.escrow(w.escrow).version().call().await.unwrap(),
            U256::from(1)
        );

        let v2 = CspEscrowV2::deploy_builder(w.gov.provider().clone())
            .deploy()
            .await
            .unwrap();
        let beacon = UpgradeableBeacon::new(w.gov.deployment().beacon, w.gov.provider().clone());
        let stranger = actor(&w).await;
        let err = revert_of::<_, UpgradeableBeacon::UpgradeableBeaconErrors>(
            confirm(
                UpgradeableBeacon::new(w.gov.deployment().beacon, stranger.provider().clone())
                    .upgradeTo(v2),
            )
            .await,
        );
        assert!(matches!(
            err,
            UpgradeableBeacon::UpgradeableBeaconErrors::OwnableUnauthorizedAccount(_)
        ));

        confirm(beacon.upgradeTo(v2)).await.unwrap();
        assert_eq!(beacon.implementation().call().await.unwrap(), v2);
        for escrow in [w.escrow, second] {
            assert_eq!(
                w.gov.escrow(escrow).version().call().await.unwrap(),
                U256::from(2)
            );
        }
        // State survived the upgrade and the escrow keeps working.
        let state = w.csp.job(job).await.unwrap();
        assert_eq!(state.activeNodes, w.nodes);
        assert_eq!(
            w.gov.escrow(w.escrow).cspOwner().call().await.unwrap(),
            w.csp.address()
        );
        let request = JobRequest {
            job_type: 1,
            project_hash: B256::ZERO,
            last_execution_epoch: w.epoch().await + 30,
            nodes: 1,
        };
        assert_eq!(w.csp.create_job(w.escrow, &request).await.unwrap(), job + 1);
    });
}
