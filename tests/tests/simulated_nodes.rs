//! The simulated nodes `make bench-scale` measures with, checked on real parts: licensed in
//! bulk on the chain, they are counted alive by three real oracles over the real broker, run a
//! job's replicas when the oracles say so and only then (a stranger's signed deploy is
//! refused), and a silenced one is replaced on another node. 1 s heartbeats keep it short.
//! Beside it, the largest availability page such a fleet makes fits the gas it is sent with.

#![allow(clippy::unwrap_used)] // test fixtures

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use r1_contracts::{AVAILABILITY_PAGE_ROWS, AvailabilityTable, PagesRecorded, page_gas_limit};
use r1_e2e::broker::Role;
use r1_e2e::chain::TestChain;
use r1_e2e::network::{Network, NetworkSettings};
use r1_e2e::node::{TestOracle, workload};
use r1_e2e::scenario;
use r1_e2e::simnodes::licences::license_in_bulk;
use r1_e2e::simnodes::{Fleet, FleetSettings};
use r1_e2e::wait::until;
use r1_protocol::{Address, Identity};

const NODES: usize = 12;

/// The nodes running a replica of any job, by job.
fn holders(fleet: &Fleet) -> Vec<(u64, BTreeSet<Address>)> {
    let mut by_job = std::collections::BTreeMap::<u64, BTreeSet<Address>>::new();
    for (node, id) in fleet.running() {
        by_job.entry(id.job).or_default().insert(node);
    }
    by_job.into_iter().collect()
}

#[test]
fn simulated_nodes_are_licensed_in_bulk_run_what_oracles_order_and_are_replaced_when_silent() {
    let settings = NetworkSettings {
        nodes: 0,
        ..NetworkSettings::default()
    };
    let network = Network::start(&settings).unwrap();
    let identities: Vec<Identity> = (0..NODES).map(|_| Identity::generate()).collect();
    let signers: Vec<_> = identities.iter().map(|i| i.signer().clone()).collect();
    let licences = license_in_bulk(
        network.chain(),
        &signers,
        network.oracles()[0].identity().signer(),
    )
    .unwrap();
    assert_eq!(licences.len(), NODES);
    for identity in &identities {
        let linked = network.chain().licence_of_node(identity.address()).unwrap();
        assert!(linked != 0, "{} is on no licence", identity.address());
    }
    let members = identities
        .into_iter()
        .map(|i| {
            let url = network.broker().admit(i.address(), Role::Node).unwrap();
            (i, url)
        })
        .collect();
    let fleet = Fleet::start(
        members,
        &FleetSettings {
            ca_file: network.broker().ca_file(),
            oracles: network.oracle_addresses(),
            heartbeat_interval: Duration::from_secs(1),
        },
    )
    .unwrap();
    let alive = until(Duration::from_secs(30), || {
        network
            .oracles()
            .iter()
            .all(|o| o.metric("r1_oracle_nodes{name=\"alive\"}") == NODES as f64)
    });
    assert!(
        alive,
        "the oracles do not count {NODES} simulated nodes alive"
    );

    // A stranger's deploy, signed but by no oracle, runs nothing.
    let stranger = TestOracle::connect(network.broker()).unwrap();
    let target = fleet.addresses()[0];
    stranger.deploy(target, workload(999, 0, "busybox", 16));
    let refused = until(Duration::from_secs(10), || {
        fleet.counters().commands_refused.load(Ordering::Relaxed) >= 1
    });
    let counters = fleet.counters();
    assert!(
        refused,
        "the stranger's deploy was not refused (the fleet: {} sessions opened, {} commands \
         obeyed, {} refused)",
        counters.connections.load(Ordering::Relaxed),
        counters.commands_obeyed.load(Ordering::Relaxed),
        counters.commands_refused.load(Ordering::Relaxed),
    );
    assert!(
        fleet.running().is_empty(),
        "a stranger's deploy ran: {:?}",
        fleet.running()
    );

    scenario::apply_examples(&network, &["escrow.yaml", "project.yaml", "job-http.yaml"]).unwrap();
    let mut placed = Vec::new();
    let running = until(Duration::from_secs(60), || {
        placed = holders(&fleet);
        placed.len() == 1 && placed[0].1.len() == 2
    });
    assert!(running, "the job's two replicas never ran: {placed:?}");
    let (job, nodes) = placed[0].clone();
    let victim = *nodes.iter().next().unwrap();
    assert!(fleet.silence(victim));
    let replaced = until(Duration::from_secs(60), || {
        holders(&fleet)
            .first()
            .is_some_and(|(j, n)| *j == job && n.len() == 2 && !n.contains(&victim))
    });
    assert!(
        replaced,
        "job {job} was not replaced off the silenced node: {:?}",
        holders(&fleet)
    );
}

/// Every row of a full page is a node measured and minted for the first time (the dearest
/// row); its transaction, sent with [`page_gas_limit`] and no estimate, is mined, with room
/// left for every licence to have a different owner holding no R1 yet (the bulk licences share
/// one owner: a stranger's balance costs ≈ 20 k more gas a row).
#[test]
fn a_full_availability_page_of_first_time_mints_fits_the_gas_it_is_sent_with() {
    const EPOCH_SECONDS: u64 = 60;
    const STRANGER_OWNER_GAS: u64 = 20_000;
    let chain = TestChain::start(EPOCH_SECONDS).unwrap();
    let oracle = PrivateKeySigner::random();
    chain.give_ether(oracle.address(), 100).unwrap();
    chain.add_oracle(oracle.address()).unwrap();
    let nodes: Vec<PrivateKeySigner> = (0..AVAILABILITY_PAGE_ROWS)
        .map(|_| PrivateKeySigner::random())
        .collect();
    license_in_bulk(&chain, &nodes, &oracle).unwrap();
    chain
        .block_on(chain.devchain().advance_time(EPOCH_SECONDS))
        .unwrap();
    let epoch = chain.current_epoch().unwrap() - 1;
    let rows: Vec<(Address, u8)> = nodes.iter().map(|n| (n.address(), 255)).collect();
    let table = AvailabilityTable::new(epoch, rows.iter().copied());
    let suite = chain.suite_as(&oracle);
    chain
        .block_on(suite.submit_availability(epoch, &rows))
        .unwrap();
    let recorded = chain
        .block_on(suite.record_availability_pages(&table, 0, 1))
        .unwrap();
    assert_eq!(recorded, PagesRecorded::Recorded { sent: 1, left: 0 });
    assert!(
        chain
            .block_on(chain.gov().availability_recorded(epoch))
            .unwrap()
    );
    let block = chain
        .block_on(async {
            chain
                .devchain()
                .rpc()
                .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
                .await
        })
        .unwrap()
        .unwrap();
    let used = block.header.gas_used;
    let limit = page_gas_limit(AVAILABILITY_PAGE_ROWS);
    let rows = AVAILABILITY_PAGE_ROWS as u64;
    eprintln!("a full page of first-time mints used {used} gas of its {limit}");
    assert!(
        used + rows * STRANGER_OWNER_GAS <= limit,
        "a full page used {used} gas: no room under {limit} for {rows} owners new to R1"
    );
}
