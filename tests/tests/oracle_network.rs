//! Three oracles, three nodes, a real chain, broker and containerd: a job applied through
//! `r1ctl` is placed, runs, is validated on chain, and moves when its node dies.

use std::time::Duration;

use r1_e2e::network::{Network, NetworkSettings};
use r1_e2e::node::http_get;
use r1_e2e::scenario::{active_nodes, oracle_logs, run_hello_web};
use r1_e2e::wait::until;

#[test]
fn a_job_runs_validated_and_moves_off_a_dead_node() {
    let mut network = Network::start(&NetworkSettings::default()).unwrap();
    let job_id = run_hello_web(&network).unwrap();
    let before = active_nodes(&network, job_id).unwrap();
    assert_eq!(before.len(), 2, "validated node set on chain");

    // Kill the agent of one node of the validated set: its replica must move to the third node
    // and the new set be validated.
    let victim = before[0];
    let index = network
        .node_addresses()
        .iter()
        .position(|a| *a == victim)
        .unwrap();
    network.nodes_mut()[index].kill();
    let moved = until(Duration::from_secs(60), || {
        let nodes = active_nodes(&network, job_id).unwrap_or_default();
        nodes.len() == 2 && !nodes.contains(&victim)
    });
    assert!(
        moved,
        "the replica did not move off the dead node\n{}",
        oracle_logs(&network)
    );

    // The replacement runs on the node that took it and answers over HTTP there (the dead
    // agent's container may still answer on its own port, so only the new node is asked).
    let after = active_nodes(&network, job_id).unwrap();
    let taker = after
        .iter()
        .find(|node| !before.contains(node))
        .expect("a node new to the set");
    let node = network
        .nodes()
        .iter()
        .find(|n| n.address == *taker)
        .expect("the taker is a harness node");
    let mut answer = None;
    let answers = until(Duration::from_secs(30), || {
        answer = node
            .published_ports(job_id)
            .into_iter()
            .find_map(|port| http_get(port, "/"));
        answer
            .as_deref()
            .is_some_and(|body| body.contains("hello from r1"))
    });
    assert!(
        answers,
        "the replacement on {taker} does not answer ({answer:?})\n{}\n{}",
        node.log(),
        oracle_logs(&network)
    );
}
