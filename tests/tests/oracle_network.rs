//! Three oracles, three nodes, a real chain, broker and containerd: a job applied through
//! `r1ctl` is placed, runs, is validated on chain, and moves when its node dies.

use std::time::Duration;

use r1_contracts::JobRequest;
use r1_e2e::chain::signer;
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

/// Applies the examples, funds the job as the CSP, and waits for every oracle to see it
/// Running on two nodes validated on chain. Returns the chain job id.
fn run_hello_web(network: &Network) -> u64 {
    let applied = network
        .r1ctl(&[
            "apply",
            "--no-fund",
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
        "apply failed: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let chain = network.chain();
    let csp = chain.suite_as(&signer(&network.csp_key_hex()).unwrap());
    let epoch = chain.current_epoch().unwrap();
    let request = JobRequest {
        job_type: r1_crds::pricing::Catalogue::builtin()
            .unwrap()
            .class("entry")
            .unwrap()
            .id,
        project_hash: r1_contracts::project_hash(csp.address(), "default", "hello-web"),
        last_execution_epoch: epoch + 30,
        nodes: 2,
    };
    let job_id = chain
        .block_on(csp.create_job(network.escrow(), &request))
        .unwrap();

    let running = until(Duration::from_secs(90), || {
        (0..network.oracles().len()).all(|o| {
            job_status(network, o).is_some_and(|s| {
                s["phase"] == "Running" && s["readyReplicas"] == 2 && s["chainJobId"] == job_id.to_string()
            })
        })
    });
    assert!(running, "the job did not reach Running on every oracle\n{}", logs(network));
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
        let nodes = chain.block_on(chain.gov().job(job_id)).map(|j| j.activeNodes).unwrap_or_default();
        nodes.len() == 2 && !nodes.contains(&victim)
    });
    assert!(moved, "the replica did not move off the dead node\n{}", logs(&network));
}
