//! The oracle's read helpers on `Suite` against a real deployment: oracle set, epoch clock,
//! allocation and availability progress, licences, consensus rounds, open jobs by project hash
//! and escrow totals; and attaching to a suite by its manager's address alone.
#![allow(clippy::unwrap_used)] // test bodies run inside closures, where the usual test exemption does not reach

mod common;

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use common::{EPOCH, World, node_pay, random_address, run};
use r1_contracts::attach::chain_id_at;
use r1_contracts::tx::confirm;
use r1_contracts::{
    AvailabilityTable, Deployment, JobChanges, JobRequest, NodeLicence, Suite, project_hash,
};

#[test]
fn oracle_set_clock_allocation_and_availability() {
    run(|chain| async move {
        let w = World::new(chain, 3, 2).await;
        let oracles: Vec<Address> = w.oracles.iter().map(Suite::address).collect();
        assert_eq!(w.gov.oracles().await.unwrap(), oracles);

        let genesis: u64 = w
            .gov
            .manager()
            .genesisTimestamp()
            .call()
            .await
            .unwrap()
            .to();
        assert_eq!(w.csp.epoch_clock().await.unwrap(), (genesis, EPOCH));

        let start = w.epoch().await;
        assert_eq!(w.gov.allocated_until_epoch().await.unwrap(), start);
        w.advance_epochs(2).await;
        w.oracles[0].allocate_rewards().await.unwrap();
        assert_eq!(w.gov.allocated_until_epoch().await.unwrap(), start + 2);

        assert!(!w.gov.availability_recorded(start).await.unwrap());
        let table: Vec<(Address, u8)> = w.nodes.iter().map(|n| (*n, 255)).collect();
        for oracle in &w.oracles[..2] {
            oracle.submit_availability(start, &table).await.unwrap();
        }
        assert!(w.gov.availability_agreed(start).await.unwrap());
        assert!(!w.gov.availability_recorded(start).await.unwrap());
        let pages = AvailabilityTable::new(start, table);
        w.oracles[2]
            .record_availability_pages(&pages, 0, 1)
            .await
            .unwrap();
        assert!(w.gov.availability_recorded(start).await.unwrap());
        assert!(!w.gov.availability_recorded(start + 1).await.unwrap());
    });
}

#[test]
fn node_licences_owner_and_blacklist() {
    run(|chain| async move {
        let w = World::new(chain, 1, 2).await;
        let expected = NodeLicence {
            licence_id: w.licences[1],
            owner: w.owner.address(),
            blacklisted: false,
            suspended_until_epoch: 0,
            for_hire: true,
        };
        assert_eq!(
            w.gov.node_licence(w.nodes[1]).await.unwrap(),
            Some(expected)
        );
        assert_eq!(w.gov.node_licence(random_address()).await.unwrap(), None);

        confirm(w.gov.manager().setBlacklisted(w.nodes[1], true))
            .await
            .unwrap();
        assert_eq!(
            w.gov.node_licence(w.nodes[1]).await.unwrap(),
            Some(NodeLicence {
                blacklisted: true,
                ..expected
            })
        );
        assert!(
            !w.gov
                .node_licence(w.nodes[0])
                .await
                .unwrap()
                .unwrap()
                .blacklisted
        );

        // Many nodes in one call, in order, a stranger's row empty.
        let page = w
            .gov
            .node_licences(&[w.nodes[1], random_address(), w.nodes[0]])
            .await
            .unwrap();
        assert_eq!(page.len(), 3);
        assert_eq!(
            page[0],
            Some(NodeLicence {
                blacklisted: true,
                ..expected
            })
        );
        assert_eq!(page[1], None);
        assert_eq!(page[2].unwrap().licence_id, w.licences[0]);
        assert!(w.gov.node_licences(&[]).await.unwrap().is_empty());
    });
}

#[test]
fn open_jobs_by_project_hash_rounds_and_escrow_totals() {
    run(|chain| async move {
        let w = World::new(chain, 1, 2).await;
        let web = project_hash(w.csp.address(), "default", "web");
        let api = project_hash(w.csp.address(), "default", "api");
        let epoch = w.epoch().await;
        let create = |hash: B256, nodes: u64| JobRequest {
            job_type: 1,
            project_hash: hash,
            last_execution_epoch: epoch + 30,
            nodes,
        };
        assert!(w.gov.escrow_open_jobs(w.escrow).await.unwrap().is_empty());
        assert_eq!(w.gov.find_open_job(w.escrow, web).await.unwrap(), None);

        let before = w.gov.head().await.unwrap();
        let first = w.csp.create_job(w.escrow, &create(web, 2)).await.unwrap();
        let other = w.csp.create_job(w.escrow, &create(api, 1)).await.unwrap();
        let again = w.csp.create_job(w.escrow, &create(web, 1)).await.unwrap();
        let created = w.gov.head().await.unwrap();
        let ours = |ids: &[u64]| {
            JobChanges::Jobs(ids.iter().map(|id| (w.escrow, U256::from(*id))).collect())
        };
        assert_eq!(
            w.gov
                .job_changes(&[w.escrow], before + 1, created)
                .await
                .unwrap(),
            ours(&[first, other, again])
        );
        assert_eq!(
            w.gov
                .job_changes(&[random_address()], before + 1, created)
                .await
                .unwrap(),
            JobChanges::Jobs(Vec::new()),
            "another escrow's jobs did not change"
        );
        let open = w.gov.escrow_open_jobs(w.escrow).await.unwrap();
        let ids: Vec<U256> = open.iter().map(|j| j.id).collect();
        assert_eq!(ids, [first, other, again].map(U256::from));
        let found = w.gov.find_open_job(w.escrow, web).await.unwrap().unwrap();
        assert_eq!(found.id, U256::from(first));
        assert_eq!(found.numberOfNodesRequested, U256::from(2));
        assert_eq!(found.lastExecutionEpoch, U256::from(epoch + 30));
        assert_eq!(
            w.gov
                .find_open_job(w.escrow, api)
                .await
                .unwrap()
                .unwrap()
                .id,
            U256::from(other)
        );
        assert_eq!(
            w.gov
                .find_open_job(w.escrow, B256::repeat_byte(1))
                .await
                .unwrap(),
            None
        );

        let many = w
            .gov
            .find_open_jobs(w.escrow, &[api, B256::repeat_byte(1), web])
            .await
            .unwrap();
        let ids: Vec<Option<U256>> = many.iter().map(|j| j.as_ref().map(|j| j.id)).collect();
        assert_eq!(
            ids,
            [Some(other), None, Some(first)].map(|id| id.map(U256::from))
        );

        // Each accepted node set moves the job's round on.
        assert_eq!(w.gov.job_round(first).await.unwrap(), 0);
        w.agree(first, &w.nodes).await;
        let started = w.now().await;
        let agreed = w.gov.head().await.unwrap();
        assert_eq!(
            w.gov
                .job_changes(&[w.escrow], created + 1, agreed)
                .await
                .unwrap(),
            ours(&[first])
        );
        assert_eq!(
            w.gov
                .job_changes(&[w.escrow], agreed + 1, agreed)
                .await
                .unwrap(),
            JobChanges::Jobs(Vec::new())
        );
        assert_eq!(w.gov.job_round(first).await.unwrap(), 1);

        // The nodes are paid up to an allocation and then up to the job's early close, by the
        // second; the rest is refunded.
        w.advance_epochs(2).await;
        let allocated = w.oracles[0].allocate_rewards().await.unwrap();
        let allocated = w.start_of(allocated.until_epoch).await;
        assert_eq!(
            w.gov
                .job_changes(&[w.escrow], agreed + 1, w.gov.head().await.unwrap())
                .await
                .unwrap(),
            JobChanges::Everything,
            "an allocation settles jobs without a node set silently"
        );
        w.advance_epochs(1).await;
        w.agree(first, &[]).await;
        let closed = w.now().await;
        assert_eq!(w.gov.job_round(first).await.unwrap(), 2);
        let found = w.gov.find_open_job(w.escrow, web).await.unwrap().unwrap();
        assert_eq!(
            found.id,
            U256::from(again),
            "the closed job no longer matches"
        );
        w.owner.claim_rewards(&w.nodes, 100).await.unwrap();

        let totals = w.csp.escrow_totals(w.escrow).await.unwrap();
        assert_eq!(
            totals.deposited,
            w.creation_cost(first, 2).await
                + w.creation_cost(other, 1).await
                + w.creation_cost(again, 1).await
        );
        let (allocated_reward, allocated_burn) = node_pay(100_000, allocated - started);
        let (closed_reward, closed_burn) = node_pay(100_000, closed - allocated);
        let two = U256::from(2u64);
        assert_eq!(
            totals.credited_to_nodes,
            (allocated_reward + closed_reward) * two
        );
        assert_eq!(totals.burned, (allocated_burn + closed_burn) * two);
        assert_eq!(totals.claimed, totals.credited_to_nodes);
        assert!(totals.refunded > U256::ZERO);
        assert_eq!(
            totals.balance_usdc,
            totals.deposited - totals.burned - totals.refunded - totals.claimed
        );
        assert_eq!(totals.balance_usdc, w.usdc_balance(w.escrow).await);
    });
}

#[test]
fn attaching_by_the_manager_address_finds_the_whole_suite() {
    run(|chain| async move {
        let w = World::new(chain, 1, 0).await;
        let deployment = *w.gov.deployment();
        assert_eq!(
            Deployment::from_manager(chain.rpc(), deployment.manager)
                .await
                .unwrap(),
            deployment
        );
        let signer = PrivateKeySigner::random();
        let address = signer.address();
        let suite = Suite::attach(chain.url(), signer, deployment.manager)
            .await
            .unwrap();
        assert_eq!(suite.address(), address);
        assert_eq!(*suite.deployment(), deployment);
        assert_eq!(suite.chain_id().await.unwrap(), 31_337);
        assert_eq!(chain_id_at(chain.url()).await.unwrap(), 31_337);
        assert_eq!(suite.job_type_price(3).await.unwrap(), U256::from(375_000));
        assert_eq!(suite.job_type_price(99).await.unwrap(), U256::ZERO);
        assert_eq!(suite.usdc_balance(address).await.unwrap(), U256::ZERO);
    });
}
