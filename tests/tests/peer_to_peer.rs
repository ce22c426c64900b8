//! The peer-to-peer layer on a real network: the oracle puts the licensed nodes it hears on
//! its signed roster with the listen addresses their heartbeats announce, and the node agents,
//! told nothing else about each other, connect. (Strangers off the roster are refused: the
//! `r1-p2p` crate's own tests.) Needs root (containerd).

use std::time::Duration;

use r1_e2e::network::{Network, NetworkSettings};
use r1_e2e::wait;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn licensed_nodes_find_each_other_through_the_oracles_roster() {
    let network = Network::start(&NetworkSettings {
        oracles: 1,
        nodes: 3,
        ..NetworkSettings::default()
    })
    .expect("network");
    let connected = |i: usize| network.nodes()[i].metric("r1_node_p2p_connected_peers");
    assert!(
        wait::until(WAIT, || (0..3).all(|i| connected(i) == 2.0)),
        "connected peers: {:?}; node 0 log:\n{}\noracle log:\n{}",
        (0..3).map(connected).collect::<Vec<_>>(),
        network.nodes()[0].log(),
        network.oracles()[0].log()
    );
    for node in network.nodes() {
        assert!(node.metric("r1_node_p2p_rosters_accepted") >= 1.0);
    }
}
