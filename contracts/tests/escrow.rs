//! CSP escrows: deployment behind the beacon, job creation and extension, access rules,
//! delegates and the free balance they spend, upgrades.
#![allow(clippy::unwrap_used)] // test bodies run inside closures, where the usual test exemption does not reach

mod common;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::Provider;
use alloy::sol_types::SolValue;
use common::{World, actor, by_the_second, node_pay, raw_revert_of, revert_of, run};
use r1_contracts::bindings::v2::CspEscrowV2;
use r1_contracts::bindings::{CspEscrow, PoAIManager, UpgradeableBeacon};
use r1_contracts::client::settle_gas_headroom;
use r1_contracts::tx::confirm;
use r1_contracts::units::usdc_units;
use r1_contracts::{JobRequest, Permissions, Suite};

const PRICE: u64 = 100_000; // job type 1: 0.10 USDC per node per epoch

/// A request for a one-node job of type 1 paid for `epochs` epochs after `epoch`.
fn job_request(epoch: u64, epochs: u64, nodes: u64) -> JobRequest {
    JobRequest {
        job_type: 1,
        project_hash: B256::repeat_byte(0xcd),
        last_execution_epoch: epoch + epochs,
        nodes,
    }
}

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
            PoAIManager::PoAIManagerErrors::NotGuardian(_)
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
fn create_jobs_pulls_the_seconds_to_the_last_epochs_end_at_once() {
    run(|chain| async move {
        let w = World::new(chain, 1, 0).await;
        w.next_epoch().await;
        w.chain.advance_time(1_234).await.unwrap();
        let epoch = w.epoch().await;
        let before = w.usdc_balance(w.csp.address()).await;
        // At most the creation epoch and the whole epochs after it.
        let most = U256::from(PRICE * 2 * 31 + 375_000u64 * 46);
        confirm(w.csp.usdc().approve(w.escrow, most)).await.unwrap();
        let escrow = w.csp.escrow(w.escrow);
        let receipt =
            confirm(escrow.createJobs(vec![request(1, epoch + 30, 2), request(3, epoch + 45, 1)]))
                .await
                .unwrap();
        // The rest of the creation epoch and the whole epochs after it, by the second.
        let created = w.now().await;
        assert!(created > w.start_of(epoch).await, "created mid-epoch");
        let cost_a = by_the_second(PRICE, 2, w.start_of(epoch + 31).await - created);
        let cost_b = by_the_second(375_000, 1, w.start_of(epoch + 46).await - created);
        assert!(cost_a > U256::from(PRICE * 2 * 30) && cost_a < U256::from(PRICE * 2 * 31));
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
        assert_eq!(job.nextEpochToSettle, U256::from(epoch));
        assert_eq!(job.settledUntil, U256::from(created));
        assert_eq!(job.requestTimestamp, U256::from(created));
        assert_eq!(job.pricePerEpoch, U256::from(PRICE));
        assert!(job.activeNodes.is_empty() && !job.closed);
        assert_eq!(w.csp.job(2).await.unwrap().balance, cost_b);
        assert_eq!(
            escrow.getOpenJobIds().call().await.unwrap(),
            vec![U256::from(1), U256::from(2)]
        );
        let page = w
            .gov
            .manager()
            .getOpenJobIds(U256::ZERO, U256::from(10))
            .call()
            .await
            .unwrap();
        assert_eq!(page.ids, vec![U256::from(1), U256::from(2)]);
        assert_eq!(page.next, U256::ZERO);
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
        assert!(matches!(
            err,
            CspEscrow::CspEscrowErrors::NotPermitted(e) if e.caller == stranger.address() && e.permission == 1
        ));
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
        assert!(matches!(
            err,
            CspEscrow::CspEscrowErrors::NotPermitted(e) if e.caller == stranger.address() && e.permission == 2
        ));
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
fn extend_job_nodes_settles_first_and_charges_the_seconds_left() {
    run(|chain| async move {
        let w = World::new(chain, 3, 3).await;
        let job = w.create_job(1, 30).await;
        w.agree(job, &w.nodes[..1]).await;
        w.advance_epochs(3).await; // epochs 1 and 2 are done, epoch 3 is running
        let before = w.csp.job(job).await.unwrap();
        let csp_before = w.usdc_balance(w.csp.address()).await;
        w.csp.extend_job_nodes(w.escrow, job, 3).await.unwrap();
        let extended = w.now().await;
        let after = w.csp.job(job).await.unwrap();
        // The single node is paid from its validation to the extension, by the second; the two
        // more nodes pay from the extension to the end of epoch 30.
        let served = extended - u64::try_from(before.startTimestamp).unwrap();
        let (to_node, burned) = node_pay(PRICE, served);
        let added = by_the_second(PRICE, 2, w.start_of(31).await - extended);
        assert_eq!(after.nextEpochToSettle, U256::from(3));
        assert_eq!(after.settledUntil, U256::from(extended));
        assert_eq!(after.numberOfNodesRequested, U256::from(3));
        assert_eq!(after.balance, before.balance - to_node - burned + added);
        assert_eq!(w.usdc_balance(w.csp.address()).await, csp_before - added);
        assert_eq!(w.node_balance(w.nodes[0]).await, to_node);

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
        assert!(matches!(
            err,
            CspEscrow::CspEscrowErrors::NotPermitted(e) if e.caller == stranger.address() && e.permission == 4
        ));
        // The grown job now accepts three nodes.
        assert_eq!(w.agree(job, &w.nodes).await, w.nodes);
    });
}

/// An extension estimated in the second its job was last settled settles nothing at its
/// estimate; mined a later second, it settles every validated node. The gas added to the
/// estimate covers that, for one node and for four.
#[test]
fn an_extension_estimated_with_nothing_to_settle_has_gas_to_settle_every_node() {
    run(|chain| async move {
        for nodes in [1u64, 4] {
            let w = World::new(chain, 3, nodes as usize).await;
            let job = w.create_job(nodes, 30).await;
            assert_eq!(w.agree(job, &w.nodes).await, w.nodes);
            w.advance_epochs(2).await;
            w.csp
                .extend_job_nodes(w.escrow, job, nodes + 1)
                .await
                .unwrap();
            confirm(w.csp.usdc().approve(w.escrow, U256::MAX))
                .await
                .unwrap();
            let escrow = w.csp.escrow(w.escrow);
            let call = escrow.extendJobNodes(U256::from(job), U256::from(nodes + 2));
            let settled_now = w.now().await;
            let estimated = call
                .clone()
                .block(alloy::eips::BlockId::latest())
                .estimate_gas()
                .await
                .unwrap();
            w.advance_epochs(1).await;
            let receipt = confirm(call.gas(estimated + settle_gas_headroom(nodes as usize)))
                .await
                .unwrap_or_else(|e| panic!("{nodes} nodes: {e}"));
            let settled = receipt
                .decoded_log::<CspEscrow::Settled>()
                .expect("the extension settled the job");
            assert_eq!(settled.data.fromTime, U256::from(settled_now));
            assert_eq!(settled.data.nodesPaid, U256::from(nodes));
            assert!(
                receipt.gas_used > estimated,
                "{nodes} nodes: settling used {} gas, estimated with nothing to settle {estimated}",
                receipt.gas_used
            );
        }
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
            escrow
                .allocateRewards(U256::from(5), U256::MAX, U256::from(10))
                .call()
                .await,
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
        let delegate = actor(&w).await;
        w.csp
            .set_delegate(w.escrow, delegate.address(), Permissions::CREATE)
            .await
            .unwrap();
        w.csp.deposit(w.escrow, usdc_units(10)).await.unwrap();

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
        // So did the delegates and the free balance (appended storage), and they still work.
        assert_eq!(
            w.csp.delegates(w.escrow).await.unwrap(),
            vec![delegate.address()]
        );
        assert_eq!(
            w.csp
                .delegate_permissions(w.escrow, delegate.address())
                .await
                .unwrap(),
            Permissions::CREATE.bits()
        );
        assert_eq!(w.csp.free_balance(w.escrow).await.unwrap(), usdc_units(10));
        assert_eq!(
            delegate.create_job(w.escrow, &request).await.unwrap(),
            job + 2
        );
        assert_eq!(
            w.csp.free_balance(w.escrow).await.unwrap(),
            usdc_units(10) - w.creation_cost(job + 2, 1).await
        );
    });
}

/// The free balance plus every open job's budget plus every node's balance is exactly what the
/// escrow holds.
async fn assert_escrow_accounts(w: &World) {
    let escrow = w.gov.escrow(w.escrow);
    let mut locked = w.gov.free_balance(w.escrow).await.unwrap();
    for job in w.gov.escrow_open_jobs(w.escrow).await.unwrap() {
        locked += job.balance;
    }
    for node in &w.nodes {
        locked += w.node_balance(*node).await;
    }
    assert_eq!(w.usdc_balance(w.escrow).await, locked);
    let totals = w.gov.escrow_totals(w.escrow).await.unwrap();
    assert_eq!(
        totals.deposited,
        totals.balance_usdc + totals.claimed + totals.burned + totals.refunded + totals.withdrawn
    );
    assert_eq!(
        totals.free_balance,
        escrow.freeBalance().call().await.unwrap()
    );
}

fn not_permitted(err: CspEscrow::CspEscrowErrors, caller: &Suite, permission: Permissions) {
    match err {
        CspEscrow::CspEscrowErrors::NotPermitted(e) => {
            assert_eq!(e.caller, caller.address());
            assert_eq!(e.permission, permission.bits());
        }
        other => panic!("expected NotPermitted, got {other:?}"),
    }
}

#[test]
fn the_owner_grants_lists_changes_and_revokes_delegates() {
    run(|chain| async move {
        let w = World::new(chain, 1, 0).await;
        let escrow = w.csp.escrow(w.escrow);
        assert_eq!(
            escrow.PERMISSION_CREATE().call().await.unwrap(),
            Permissions::CREATE.bits()
        );
        assert_eq!(
            escrow.PERMISSION_EXTEND_DURATION().call().await.unwrap(),
            Permissions::EXTEND_DURATION.bits()
        );
        assert_eq!(
            escrow.PERMISSION_EXTEND_NODES().call().await.unwrap(),
            Permissions::EXTEND_NODES.bits()
        );
        assert_eq!(
            escrow.PERMISSION_REDEEM().call().await.unwrap(),
            Permissions::REDEEM.bits()
        );
        assert_eq!(
            escrow.ALL_PERMISSIONS().call().await.unwrap(),
            Permissions::ALL.bits()
        );
        assert!(w.csp.delegates(w.escrow).await.unwrap().is_empty());

        let [a, b, c] = [actor(&w).await, actor(&w).await, actor(&w).await];
        let receipt = w
            .csp
            .set_delegate(w.escrow, a.address(), Permissions::CREATE)
            .await
            .unwrap();
        let event = receipt.decoded_log::<CspEscrow::DelegateSet>().unwrap();
        assert_eq!(event.data.delegate, a.address());
        assert_eq!(event.data.permissions, Permissions::CREATE.bits());
        w.csp
            .set_delegate(w.escrow, b.address(), Permissions::ALL)
            .await
            .unwrap();
        w.csp
            .set_delegate(
                w.escrow,
                c.address(),
                Permissions::EXTEND_DURATION | Permissions::EXTEND_NODES,
            )
            .await
            .unwrap();
        assert_eq!(
            w.csp.delegates(w.escrow).await.unwrap(),
            vec![a.address(), b.address(), c.address()]
        );
        // Changing a delegate's bits replaces them and does not list it twice.
        w.csp
            .set_delegate(w.escrow, a.address(), Permissions::EXTEND_NODES)
            .await
            .unwrap();
        assert_eq!(
            w.csp
                .delegate_permissions(w.escrow, a.address())
                .await
                .unwrap(),
            Permissions::EXTEND_NODES.bits()
        );
        assert_eq!(w.csp.delegates(w.escrow).await.unwrap().len(), 3);

        // Revoking (0) the first moves the last into its slot.
        let receipt = w
            .csp
            .set_delegate(w.escrow, a.address(), Permissions::NONE)
            .await
            .unwrap();
        assert_eq!(
            receipt
                .decoded_log::<CspEscrow::DelegateSet>()
                .unwrap()
                .data
                .permissions,
            0
        );
        assert_eq!(
            w.csp.delegates(w.escrow).await.unwrap(),
            vec![c.address(), b.address()]
        );
        assert_eq!(
            w.csp
                .delegate_permissions(w.escrow, a.address())
                .await
                .unwrap(),
            0
        );
        // Revoking again, or someone never granted, changes nothing.
        w.csp
            .set_delegate(w.escrow, a.address(), Permissions::NONE)
            .await
            .unwrap();
        w.csp
            .set_delegate(w.escrow, Address::repeat_byte(0x77), Permissions::NONE)
            .await
            .unwrap();
        w.csp
            .set_delegate(w.escrow, b.address(), Permissions::NONE)
            .await
            .unwrap();
        assert_eq!(w.csp.delegates(w.escrow).await.unwrap(), vec![c.address()]);
        w.csp
            .set_delegate(w.escrow, c.address(), Permissions::NONE)
            .await
            .unwrap();
        assert!(w.csp.delegates(w.escrow).await.unwrap().is_empty());

        // Refused: the zero address, the owner itself, bits the escrow does not define, and
        // anyone but the owner (delegates included).
        for bad in [Address::ZERO, w.csp.address()] {
            let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
                escrow.setDelegate(bad, 1).call().await,
            );
            assert!(matches!(
                err,
                CspEscrow::CspEscrowErrors::InvalidDelegate(e) if e.delegate == bad
            ));
        }
        for bits in [16u8, 0x80, 0xff] {
            let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
                escrow.setDelegate(a.address(), bits).call().await,
            );
            assert!(matches!(
                err,
                CspEscrow::CspEscrowErrors::UnknownPermissions(e) if e.permissions == bits
            ));
        }
        w.csp
            .set_delegate(w.escrow, b.address(), Permissions::ALL)
            .await
            .unwrap();
        for caller in [&a, &b] {
            let err = revert_of::<_, CspEscrow::CspEscrowErrors>(
                caller
                    .set_delegate(w.escrow, caller.address(), Permissions::ALL)
                    .await,
            );
            assert!(matches!(
                err,
                CspEscrow::CspEscrowErrors::NotCspOwner(e) if e.caller == caller.address()
            ));
        }
    });
}

#[test]
fn a_delegate_creates_and_extends_jobs_paid_from_the_free_balance() {
    run(|chain| async move {
        let w = World::new(chain, 1, 3).await;
        let delegate = actor(&w).await;
        assert_eq!(w.usdc_balance(delegate.address()).await, U256::ZERO);
        w.csp
            .set_delegate(w.escrow, delegate.address(), Permissions::CREATE)
            .await
            .unwrap();
        let receipt = w.csp.deposit(w.escrow, usdc_units(20)).await.unwrap();
        let event = receipt.decoded_log::<CspEscrow::Deposited>().unwrap();
        assert_eq!(
            (event.data.from, event.data.amount),
            (w.csp.address(), usdc_units(20))
        );
        assert_eq!(w.csp.free_balance(w.escrow).await.unwrap(), usdc_units(20));
        assert_escrow_accounts(&w).await;

        // The delegate holds no USDC and approves nothing; the owner's wallet is untouched.
        let owner_before = w.usdc_balance(w.csp.address()).await;
        let escrow_before = w.usdc_balance(w.escrow).await;
        let deposited_before = w
            .gov
            .escrow(w.escrow)
            .totalDeposited()
            .call()
            .await
            .unwrap();
        let epoch = w.epoch().await;
        let job = delegate
            .create_job(w.escrow, &job_request(epoch, 30, 2))
            .await
            .unwrap();
        let cost = w.creation_cost(job, 2).await;
        assert_eq!(w.usdc_balance(w.csp.address()).await, owner_before);
        assert_eq!(w.usdc_balance(delegate.address()).await, U256::ZERO);
        assert_eq!(w.usdc_balance(w.escrow).await, escrow_before);
        assert_eq!(
            w.csp.free_balance(w.escrow).await.unwrap(),
            usdc_units(20) - cost
        );
        assert_eq!(
            w.gov
                .escrow(w.escrow)
                .totalDeposited()
                .call()
                .await
                .unwrap(),
            deposited_before
        );
        let state = w.csp.job(job).await.unwrap();
        assert_eq!(state.balance, cost);
        assert_eq!(
            w.gov
                .usdc()
                .allowance(delegate.address(), w.escrow)
                .call()
                .await
                .unwrap(),
            U256::ZERO
        );
        assert_escrow_accounts(&w).await;

        // Without EXTEND_NODES / EXTEND_DURATION the delegate is refused.
        let err = revert_of::<_, CspEscrow::CspEscrowErrors>(
            delegate.extend_job_nodes(w.escrow, job, 3).await,
        );
        not_permitted(err, &delegate, Permissions::EXTEND_NODES);
        let err = revert_of::<_, CspEscrow::CspEscrowErrors>(
            delegate
                .extend_job_duration(w.escrow, job, epoch + 40)
                .await,
        );
        not_permitted(err, &delegate, Permissions::EXTEND_DURATION);

        // With them it extends, paid from the free balance too.
        w.csp
            .set_delegate(w.escrow, delegate.address(), Permissions::ALL)
            .await
            .unwrap();
        w.agree(job, &w.nodes[..1]).await;
        w.advance_epochs(3).await;
        let free = w.csp.free_balance(w.escrow).await.unwrap();
        delegate
            .extend_job_duration(w.escrow, job, epoch + 40)
            .await
            .unwrap();
        let duration_cost = U256::from(PRICE * 2 * 10);
        assert_eq!(
            w.csp.free_balance(w.escrow).await.unwrap(),
            free - duration_cost
        );
        assert_escrow_accounts(&w).await;
        let free = w.csp.free_balance(w.escrow).await.unwrap();
        delegate.extend_job_nodes(w.escrow, job, 3).await.unwrap();
        // Settled up to now first; one more node pays from now to the end of epoch 40.
        let nodes_cost = by_the_second(PRICE, 1, w.start_of(41).await - w.now().await);
        assert_eq!(
            w.csp.free_balance(w.escrow).await.unwrap(),
            free - nodes_cost
        );
        assert_eq!(w.usdc_balance(w.csp.address()).await, owner_before);
        assert_escrow_accounts(&w).await;

        // More than the free balance is refused, whatever the delegate's wallet holds.
        w.gov
            .mint_usdc(delegate.address(), usdc_units(1_000))
            .await
            .unwrap();
        confirm(delegate.usdc().approve(w.escrow, U256::MAX))
            .await
            .unwrap();
        let free = w.csp.free_balance(w.escrow).await.unwrap();
        let epoch = w.epoch().await;
        let big = job_request(epoch, 100, 3);
        let err =
            revert_of::<_, CspEscrow::CspEscrowErrors>(delegate.create_job(w.escrow, &big).await);
        match err {
            CspEscrow::CspEscrowErrors::InsufficientFreeBalance(e) => {
                assert!(e.required > U256::from(PRICE * 3 * 100));
                assert!(e.required <= U256::from(PRICE * 3 * 101));
                assert_eq!(e.free, free);
            }
            other => panic!("expected InsufficientFreeBalance, got {other:?}"),
        }
        assert_eq!(w.usdc_balance(delegate.address()).await, usdc_units(1_000));
        // The owner still pays from its wallet, leaving the free balance alone.
        let owner_before = w.usdc_balance(w.csp.address()).await;
        let big_job = w.csp.create_job(w.escrow, &big).await.unwrap();
        assert_eq!(
            w.usdc_balance(w.csp.address()).await,
            owner_before - w.creation_cost(big_job, 3).await
        );
        assert_eq!(w.csp.free_balance(w.escrow).await.unwrap(), free);

        // Closing the delegate's job pays its node up to the close and refunds the rest of its
        // budget to the owner's wallet.
        let owner_before = w.usdc_balance(w.csp.address()).await;
        let state = w.csp.job(job).await.unwrap();
        let free = w.csp.free_balance(w.escrow).await.unwrap();
        assert_eq!(w.agree(job, &[]).await, Vec::<Address>::new());
        let served = w.now().await - u64::try_from(state.settledUntil).unwrap();
        let (to_node, burned) = node_pay(PRICE, served);
        assert_eq!(
            w.usdc_balance(w.csp.address()).await,
            owner_before + state.balance - to_node - burned,
            "the seconds since the extension are paid, the rest refunded"
        );
        assert_eq!(w.csp.free_balance(w.escrow).await.unwrap(), free);
        assert_escrow_accounts(&w).await;

        // Revoked, the delegate is refused again.
        w.csp
            .set_delegate(w.escrow, delegate.address(), Permissions::NONE)
            .await
            .unwrap();
        let err = revert_of::<_, CspEscrow::CspEscrowErrors>(
            delegate
                .create_job(w.escrow, &job_request(epoch, 30, 1))
                .await,
        );
        not_permitted(err, &delegate, Permissions::CREATE);
    });
}

#[test]
fn anyone_deposits_and_only_the_owner_withdraws_the_free_balance() {
    run(|chain| async move {
        let w = World::new(chain, 1, 0).await;
        let escrow = w.csp.escrow(w.escrow);
        let funder = actor(&w).await;
        w.gov
            .mint_usdc(funder.address(), usdc_units(50))
            .await
            .unwrap();
        // Deposits pull from the caller: refused without allowance, or for nothing.
        let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
            funder.escrow(w.escrow).deposit(usdc_units(5)).call().await,
        );
        assert!(matches!(err, CspEscrow::CspEscrowErrors::Underfunded(_)));
        let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
            funder.escrow(w.escrow).deposit(U256::ZERO).call().await,
        );
        assert!(matches!(err, CspEscrow::CspEscrowErrors::ZeroAmount(_)));
        funder.deposit(w.escrow, usdc_units(30)).await.unwrap();
        w.csp.deposit(w.escrow, usdc_units(5)).await.unwrap();
        assert_eq!(w.usdc_balance(funder.address()).await, usdc_units(20));
        assert_eq!(w.csp.free_balance(w.escrow).await.unwrap(), usdc_units(35));
        assert_eq!(w.usdc_balance(w.escrow).await, usdc_units(35));
        assert_eq!(
            escrow.totalDeposited().call().await.unwrap(),
            usdc_units(35)
        );
        assert_escrow_accounts(&w).await;

        // Withdrawals: only the owner, only up to the free balance (job budgets stay).
        let job = w.create_job(1, 30).await;
        let err = revert_of::<_, CspEscrow::CspEscrowErrors>(
            w.csp
                .withdraw(w.escrow, usdc_units(35) + U256::from(1))
                .await,
        );
        match err {
            CspEscrow::CspEscrowErrors::InsufficientFreeBalance(e) => {
                assert_eq!(e.required, usdc_units(35) + U256::from(1));
                assert_eq!(e.free, usdc_units(35));
            }
            other => panic!("expected InsufficientFreeBalance, got {other:?}"),
        }
        let err = raw_revert_of::<_, CspEscrow::CspEscrowErrors>(
            escrow.withdraw(U256::ZERO).call().await,
        );
        assert!(matches!(err, CspEscrow::CspEscrowErrors::ZeroAmount(_)));
        w.csp
            .set_delegate(w.escrow, funder.address(), Permissions::ALL)
            .await
            .unwrap();
        let err = revert_of::<_, CspEscrow::CspEscrowErrors>(
            funder.withdraw(w.escrow, usdc_units(1)).await,
        );
        assert!(matches!(
            err,
            CspEscrow::CspEscrowErrors::NotCspOwner(e) if e.caller == funder.address()
        ));
        let owner_before = w.usdc_balance(w.csp.address()).await;
        let receipt = w.csp.withdraw(w.escrow, usdc_units(35)).await.unwrap();
        let event = receipt.decoded_log::<CspEscrow::Withdrawn>().unwrap();
        assert_eq!(
            (event.data.to, event.data.amount),
            (w.csp.address(), usdc_units(35))
        );
        assert_eq!(
            w.usdc_balance(w.csp.address()).await,
            owner_before + usdc_units(35)
        );
        assert_eq!(w.csp.free_balance(w.escrow).await.unwrap(), U256::ZERO);
        assert_eq!(
            escrow.totalWithdrawn().call().await.unwrap(),
            usdc_units(35)
        );
        assert_eq!(
            w.usdc_balance(w.escrow).await,
            w.csp.job(job).await.unwrap().balance
        );
        assert_escrow_accounts(&w).await;
    });
}

/// A job's storage slot `field` (its index in `CspEscrow.Job`) in the escrow's `jobs` mapping,
/// which is storage slot 3 (after `cspOwner`, `manager` and `usdc`; OpenZeppelin's
/// `Initializable` keeps its state in a namespaced slot).
fn job_slot(job: u64, field: u64) -> U256 {
    let base = keccak256((U256::from(job), U256::from(3u64)).abi_encode());
    U256::from_be_bytes(base.0) + U256::from(field)
}

/// `CspEscrow.Job` fields this test rewrites: `nextEpochToSettle`, `balance`, `settledUntil`.
const NEXT_EPOCH_TO_SETTLE: u64 = 6;
const BALANCE: u64 = 9;
const SETTLED_UNTIL: u64 = 12;

#[test]
fn a_job_from_before_per_second_settlement_is_settled_from_its_next_epoch() {
    run(|chain| async move {
        let w = World::new(chain, 3, 1).await;
        let job = w.create_job(1, 30).await;
        let created = w.epoch().await;
        let escrow = w.gov.escrow(w.escrow);
        let read = |field: u64| {
            let escrow = escrow.clone();
            async move {
                escrow
                    .provider()
                    .get_storage_at(*escrow.address(), job_slot(job, field))
                    .await
                    .unwrap()
            }
        };
        let state = w.csp.job(job).await.unwrap();
        assert_eq!(
            read(SETTLED_UNTIL).await,
            state.settledUntil,
            "the slot is found"
        );
        assert_eq!(read(BALANCE).await, state.balance);
        // As the implementation before it left the job: no settledUntil, whole epochs from the
        // one after its creation's, paid for those alone.
        let legacy = [
            (SETTLED_UNTIL, U256::ZERO),
            (NEXT_EPOCH_TO_SETTLE, U256::from(created + 1)),
            (BALANCE, U256::from(PRICE * 30)),
        ];
        for (field, value) in legacy {
            let _: bool = chain
                .rpc()
                .raw_request(
                    "hardhat_setStorageAt".into(),
                    (w.escrow, job_slot(job, field), B256::from(value)),
                )
                .await
                .unwrap();
        }
        assert_eq!(
            w.csp.job(job).await.unwrap().balance,
            U256::from(PRICE * 30)
        );

        // Validated in its creation epoch: not paid before epoch `created + 1`, as before.
        w.agree(job, &w.nodes).await;
        assert_eq!(w.csp.job(job).await.unwrap().settledUntil, U256::ZERO);
        w.advance_epochs(3).await;
        w.oracles[0].allocate_rewards().await.unwrap();
        let after = w.csp.job(job).await.unwrap();
        let start = w.start_of(created + 3).await;
        assert_eq!(after.settledUntil, U256::from(start));
        assert_eq!(after.nextEpochToSettle, U256::from(created + 3));
        let two_epochs = node_pay(PRICE, 2 * common::EPOCH);
        assert_eq!(w.node_balance(w.nodes[0]).await, two_epochs.0);
        assert_eq!(
            after.balance,
            U256::from(PRICE * 30) - two_epochs.0 - two_epochs.1
        );

        // From then on, by the second: a close mid-epoch pays up to it and refunds the rest.
        w.chain.advance_time(common::EPOCH / 4).await.unwrap();
        let wallet = w.usdc_balance(w.csp.address()).await;
        w.agree(job, &[]).await;
        let served = node_pay(PRICE, w.now().await - start);
        assert_eq!(w.node_balance(w.nodes[0]).await, two_epochs.0 + served.0);
        assert_eq!(
            w.usdc_balance(w.csp.address()).await,
            wallet + after.balance - served.0 - served.1
        );
    });
}
