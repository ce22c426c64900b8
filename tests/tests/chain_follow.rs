//! A pass's chain snapshot followed on from the guard's whole read of the open jobs, on a real
//! chain: what changed after the read began (a job created, a job extended) is in the followed
//! snapshot, which holds what a whole read at that block holds.

#![allow(clippy::unwrap_used)] // test fixtures

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;
use r1_contracts::JobRequest;
use r1_controller::oracle::chain::{ChainSnapshot, WholeRead, escrow_book};
use r1_crds::pricing::Catalogue;
use r1_e2e::chain::TestChain;
use r1_protocol::now_ms;

#[test]
fn a_snapshot_followed_on_from_a_whole_read_holds_what_changed_after_it() {
    let chain = TestChain::start(3_600).unwrap();
    chain
        .set_catalogue_prices(&Catalogue::builtin().unwrap())
        .unwrap();
    let csp = PrivateKeySigner::random();
    chain.give_ether(csp.address(), 10).unwrap();
    chain.fund_csp(csp.address(), 1_000).unwrap();
    let escrow = chain.deploy_escrow(csp.address()).unwrap();
    let suite = chain.suite_as(&csp);
    let epoch = chain.current_epoch().unwrap();
    let request = |project: u8| JobRequest {
        job_type: 1,
        project_hash: B256::repeat_byte(project),
        last_execution_epoch: epoch + 40,
        nodes: 1,
    };
    let kept = chain
        .block_on(suite.create_job(escrow, &request(1)))
        .unwrap();
    let extended = chain
        .block_on(suite.create_job(escrow, &request(2)))
        .unwrap();
    let read = chain
        .block_on(WholeRead::read(&suite, BTreeSet::from([escrow]), now_ms()))
        .unwrap();

    let created = chain
        .block_on(suite.create_job(escrow, &request(3)))
        .unwrap();
    chain
        .block_on(suite.extend_job_duration(escrow, extended, epoch + 50))
        .unwrap();

    let owners = BTreeSet::from([csp.address()]);
    let head = chain.block_on(suite.head()).unwrap();
    let snapshot = |previous: Option<&ChainSnapshot>| {
        chain
            .block_on(ChainSnapshot::read(
                &suite,
                epoch,
                &owners,
                &mut escrow_book(),
                now_ms(),
                Some(head),
                previous,
            ))
            .unwrap()
    };
    let base = read.base(&BTreeMap::from([(csp.address(), escrow)]));
    let followed = snapshot(Some(&base));
    assert_eq!(
        followed.jobs.keys().copied().collect::<Vec<_>>(),
        [kept, extended, created]
    );
    assert_eq!(followed.jobs[&extended].last_execution_epoch, epoch + 50);
    assert_eq!(
        base.jobs[&extended].last_execution_epoch,
        epoch + 40,
        "the read began before the extension"
    );
    assert_eq!(
        followed.jobs,
        snapshot(None).jobs,
        "as a whole read finds them"
    );
}
