//! Three oracles, three nodes, a real chain, broker and containerd: a job applied through
//! `r1ctl` is placed, runs, is validated on chain, and moves when its node dies.

use std::time::Duration;

use alloy::primitives::U256;
use r1_e2e::network::{Network, NetworkSettings};
use r1_e2e::wait::until;
use serde_json::Value;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/examples");

fn job_status(network: &Network, oracle: usize) -> Option<Value> {
    let output = network
        .r1ctl_command()
        .ok()?
        .env("R1_SERVER", network.oracles()[oracle].api_url())
        .args(["get", "djob", "hello-web", "-o", "json"])
        .output()
        .ok()?;
    let value: Value = serde_json::from_slice(&output.stdout).ok()?;
    Some(value["status"].clone())
}

fn logs(network: &Network) -> String {
    network
        .oracles()
        .iter()
        .map(|o| format!("--- oracle {}\n{}", o.address, o.log()))
        .collect()
}

/// Applies the examples with `r1ctl apply` (which funds the job from the CSP's key) and waits
/// for every oracle to see it Running on two nodes, validated on chain. Returns the job id.
fn run_hello_web(network: &Network) -> u64 {
    let applied = network
        .r1ctl(&[
            "apply",
            "-f",
            &format!("{EXAMPLES}/escrow.yaml"),
            "-f",
            &format!("{EXAMPLES}/project.yaml"),
            "-f",
            &format!("{EXAMPLES}/job-http.yaml"),
        ])
        .unwrap();
    assert!(
        applied.status.success(),
        "apply failed: {}{}",
        String::from_utf8_lossy(&applied.stdout),
        String::from_utf8_lossy(&applied.stderr)
    );
    let mut job_id = None;
    let running = until(Duration::from_secs(90), || {
        let statuses: Vec<Option<Value>> = (0..network.oracles().len())
            .map(|o| job_status(network, o))
            .collect();
        let ids: Vec<Option<u64>> = statuses
            .iter()
            .map(|s| s.as_ref()?["chainJobId"].as_str()?.parse().ok())
            .collect();
        job_id = ids[0];
        job_id.is_some()
            && ids.iter().all(|id| *id == job_id)
            && statuses.iter().flatten().count() == statuses.len()
            && statuses
                .iter()
                .flatten()
                .all(|s| s["phase"] == "Running" && s["readyReplicas"] == 2)
    });
    assert!(
        running,
        "the job did not reach Running on every oracle\n{}",
        logs(network)
    );
    let job_id = job_id.unwrap();
    let chain = network.chain();
    let onchain = chain.block_on(chain.gov().job(job_id)).unwrap();
    assert_eq!(onchain.activeNodes.len(), 2, "validated node set on chain");
    job_id
}

#[test]
fn a_job_runs_validated_and_moves_off_a_dead_node() {
    let mut network = Network::start(&NetworkSettings::default()).unwrap();
    let job_id = run_hello_web(&network);
    let before = {
        let chain = network.chain();
        chain.block_on(chain.gov().job(job_id)).unwrap().activeNodes
    };

    // Kill the agent of one node of the validated set: its replica must move to the third node
    // and the new set be validated.
    let victim = before[0];
    let index = network
        .node_addresses()
        .iter()
        .position(|a| *a == victim)
        .unwrap();
    network.nodes_mut()[index].kill();
    let chain = network.chain();
    let moved = until(Duration::from_secs(60), || {
        let nodes = chain
            .block_on(chain.gov().job(job_id))
            .map(|j| j.activeNodes)
            .unwrap_or_default();
        nodes.len() == 2 && !nodes.contains(&victim)
    });
    assert!(
        moved,
        "the replica did not move off the dead node\n{}",
        logs(&network)
    );
}

#[test]
#[ignore = "flaky: in one of two runs the oracles never voted the running set; see the issue 5 note"]
fn a_job_whose_budget_ends_is_closed_paid_and_stopped() {
    let settings = NetworkSettings {
        epoch_seconds: 2,
        nodes: 2,
        ..NetworkSettings::default()
    };
    let network = Network::start(&settings).unwrap();
    let csp = network.csp().address();
    let chain = network.chain();
    let usdc_before = chain.usdc_balance(csp).unwrap();
    let job_id = run_hello_web(&network);
    let job = chain.block_on(chain.gov().job(job_id)).unwrap();
    let deposited = job.pricePerEpoch * U256::from(2u64) * U256::from(30u64);

    // 30 epochs of 2 s: the job ends, is allocated to its last epoch, and closed by consensus.
    let closed = until(Duration::from_secs(120), || {
        chain
            .block_on(chain.gov().job(job_id))
            .is_ok_and(|j| j.closed)
    });
    assert!(closed, "the job was not closed\n{}", logs(&network));
    let stopped = until(Duration::from_secs(20), || {
        (0..network.nodes().len()).all(|i| {
            network
                .node_ctr(i, &["containers", "ls", "-q"])
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim().is_empty())
        })
    });
    assert!(
        stopped,
        "containers were left running after closure\n{}",
        logs(&network)
    );
    let phase_closed = until(Duration::from_secs(10), || {
        job_status(&network, 0).is_some_and(|s| s["phase"] == "Closed")
    });
    assert!(
        phase_closed,
        "status does not say Closed\n{}",
        logs(&network)
    );

    // Every paid node-epoch: 85 % to the node, 15 % burned; the rest refunded to the CSP.
    let escrow = chain.gov().escrow(network.escrow());
    let credited = chain
        .block_on(async { escrow.totalCreditedToNodes().call().await })
        .unwrap();
    let burned = chain
        .block_on(async { escrow.totalBurned().call().await })
        .unwrap();
    let refunded = chain
        .block_on(async { escrow.totalRefunded().call().await })
        .unwrap();
    let node_epoch = job.pricePerEpoch;
    let paid = credited + burned;
    assert!(paid > U256::ZERO, "nothing was paid");
    assert_eq!(paid % node_epoch, U256::ZERO, "whole node-epochs are paid");
    let node_epochs = paid / node_epoch;
    assert_eq!(
        credited,
        node_epoch * U256::from(85u64) / U256::from(100u64) * node_epochs
    );
    assert_eq!(burned, paid - credited);
    assert_eq!(
        paid + refunded,
        deposited,
        "every USDC deposited is paid or refunded"
    );
    assert_eq!(chain.usdc_balance(csp).unwrap(), usdc_before - paid);
}
