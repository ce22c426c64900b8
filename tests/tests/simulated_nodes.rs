//! The simulated nodes `make bench-scale` measures with, checked on real parts: licensed in
//! bulk on the chain, they are counted alive by three real oracles over the real broker, run a
//! job's replicas when the oracles say so and only then (a stranger's signed deploy is
//! refused), and a silenced one is replaced on another node. 1 s heartbeats keep it short.

#![allow(clippy::unwrap_used)] // test fixtures

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use r1_e2e::broker::Role;
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
    assert!(refused, "the stranger's deploy was not refused");
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
