//! A heartbeat counts only for the node that signed it and whose topic it came on. Three
//! oracles and two licensed node agents; the broker lets a client publish only under its own
//! topics, so the impostor here is node 0's operator, logged in with node 0's key: heartbeats
//! it seals with a fresh key add no node, and heartbeats it signs with node 1's key (an operator
//! of both keeping a dead node paid) do not keep node 0 alive once its agent died. Every oracle
//! refuses and counts both.

use std::time::Duration;

use r1_e2e::hostile::mqtt::Attacker;
use r1_e2e::hostile::payload;
use r1_e2e::network::{Network, NetworkSettings};
use r1_e2e::scenario;
use r1_e2e::wait::until;
use r1_protocol::envelope::Sealer;
use r1_protocol::topics::Channel;
use r1_protocol::{Address, Identity};

/// How often the outsider publishes.
const EVERY: Duration = Duration::from_millis(300);

/// Every oracle's count of nodes in liveness `state`.
fn nodes_in(network: &Network, state: &str) -> Vec<f64> {
    network
        .oracles()
        .iter()
        .map(|o| o.metric(&format!("r1_oracle_nodes{{name=\"{state}\"}}")))
        .collect()
}

/// Every oracle's count of nodes it keeps a record of, in any state.
fn known_nodes(network: &Network) -> Vec<f64> {
    let mut known = vec![0.0; network.oracles().len()];
    for state in ["alive", "suspect", "lost", "unknown"] {
        for (total, n) in known.iter_mut().zip(nodes_in(network, state)) {
            *total += n;
        }
    }
    known
}

/// Every oracle's count of messages refused because the signer is not the topic's node.
fn mismatches(network: &Network) -> Vec<f64> {
    network
        .oracles()
        .iter()
        .map(|o| o.metric("r1_oracle_refused_total{name=\"topic_mismatch\"}"))
        .collect()
}

/// Publishes heartbeats sealed by `sealer` under `topic_node`'s topic until `done` holds (or
/// 30 s pass); whether it held.
fn publish_until(
    attacker: &Attacker,
    sealer: &Sealer,
    topic_node: Address,
    mut done: impl FnMut() -> bool,
) -> bool {
    until(Duration::from_secs(30), || {
        let beat = payload::heartbeat("impostor", Vec::new());
        let envelope = sealer
            .seal(&beat, r1_protocol::now_ms())
            .expect("sealing a heartbeat");
        assert!(attacker.publish(Channel::Heartbeat, topic_node, envelope.to_bytes()));
        std::thread::sleep(EVERY);
        done()
    })
}

#[test]
fn heartbeats_signed_by_another_key_than_the_topic_names_count_for_nobody() {
    let mut network = scenario::start_network(&NetworkSettings {
        nodes: 2,
        ..NetworkSettings::default()
    })
    .unwrap();
    let everyone_alive = until(Duration::from_secs(30), || {
        nodes_in(&network, "alive").iter().all(|n| *n == 2.0)
    });
    assert!(
        everyone_alive,
        "the nodes are not alive on every oracle: {:?}\n{}",
        nodes_in(&network, "alive"),
        scenario::oracle_logs(&network)
    );
    let node0 = network.nodes()[0].address;
    let attacker =
        Attacker::connect(&network.broker().url(), &network.nodes()[0].identity(), &[]).unwrap();

    // A fresh key's heartbeats under node 0's topic: refused, and no third node appears.
    let impostor = Sealer::new(Identity::generate());
    let refused = publish_until(&attacker, &impostor, node0, || {
        mismatches(&network).iter().all(|n| *n >= 3.0)
    });
    assert!(
        refused,
        "not every oracle refused the impostor's heartbeats: {:?}\n{}",
        mismatches(&network),
        scenario::oracle_logs(&network)
    );
    assert_eq!(
        known_nodes(&network),
        vec![2.0; 3],
        "the impostor became a node"
    );

    // Node 0 dies; node 1's heartbeats republished under node 0's topic do not keep it alive.
    network.nodes_mut()[0].kill();
    let before = mismatches(&network);
    let node1 = Sealer::new(network.nodes()[1].identity());
    let lost = publish_until(&attacker, &node1, node0, || {
        nodes_in(&network, "lost").iter().all(|n| *n == 1.0)
    });
    assert!(
        lost,
        "node 0 was kept from Lost by heartbeats it did not sign: lost {:?}, alive {:?}\n{}",
        nodes_in(&network, "lost"),
        nodes_in(&network, "alive"),
        scenario::oracle_logs(&network)
    );
    let after = mismatches(&network);
    assert!(
        after.iter().zip(&before).all(|(a, b)| a > b),
        "the republished heartbeats were not refused as such: {before:?} → {after:?}"
    );
    assert_eq!(
        nodes_in(&network, "alive"),
        vec![1.0; 3],
        "node 1 stays alive"
    );
}
