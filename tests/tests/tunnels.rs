//! Tunnels on real parts — three oracles, three nodes, a real chain, broker and containerd, and
//! a real `bore server` on 127.0.0.1 whose secret the CSP seals with `r1ctl secret seal`. A
//! one-replica job behind a bore `Tunnel` answers HTTP through the server's public port; its
//! client, killed, is restarted by the node and answers again; its node, killed, loses the
//! replica to another node, whose client takes the same public port and answers. The `Tunnel`
//! status shows phase, URL and the connection.

#![allow(clippy::unwrap_used)] // test fixtures

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use r1_e2e::bore::{self, BoreServer};
use r1_e2e::network::{Network, NetworkSettings};
use r1_e2e::node::http_get;
use r1_e2e::ports::free_port;
use r1_e2e::scenario::{EXAMPLES, active_nodes, network_logs, printed, wait_running};
use r1_e2e::signal::{Signal, signal_process};
use r1_e2e::wait::until;
use serde_json::Value;

/// The bore server's secret, sealed to the oracles and delivered sealed to each node.
const SECRET: &str = "bore-secret-0c41e9";

/// `r1ctl secret seal --namespace default` of `value`: the `sealed` mapping it prints.
fn seal(network: &Network, value: &str) -> serde_json::Value {
    let mut child = network
        .r1ctl_command()
        .unwrap()
        .args(["secret", "seal", "--namespace", "default"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(value.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", printed(&output));
    let printed_yaml: serde_yaml::Value = serde_yaml::from_slice(&output.stdout).unwrap();
    serde_json::to_value(&printed_yaml["sealed"]).unwrap()
}

/// The Tunnel's status as the first oracle serves it.
fn tunnel_status(network: &Network) -> Value {
    let output = network.r1ctl(&["get", "tun", "web", "-o", "json"]).unwrap();
    serde_json::from_slice::<Value>(&output.stdout).map_or(Value::Null, |v| v["status"].clone())
}

/// Whether the job answers through the tunnel server's public port.
fn answers(port: u16) -> bool {
    http_get(port, "/").is_some()
}

/// The one `bore local` client holding `port`, once there is exactly one.
fn one_client(port: u16) -> Option<u32> {
    match bore::client_pids(port)[..] {
        [pid] => Some(pid),
        _ => None,
    }
}

#[test]
fn a_job_behind_a_bore_tunnel_answers_through_restarts_and_moves() {
    assert!(
        bore::binary().is_file(),
        "{} is missing: `make deps` installs bore-cli",
        bore::binary().display()
    );
    let started = Instant::now();
    let mut network = Network::prepare(&NetworkSettings::default()).unwrap();
    for node in network.nodes() {
        node.add_config(&format!(
            "tunnels: {{ borePath: {} }}",
            bore::binary().display()
        ))
        .unwrap();
    }
    network.start_oracles().unwrap();
    network.start_nodes().unwrap();
    let public = free_port();
    let _server = BoreServer::start(network.scratch_dir(), SECRET, public, public).unwrap();

    // Seal once the API lists every oracle's key (they learn each other's from their signatures).
    let mut sealed = Value::Null;
    let all_keys = until(Duration::from_secs(30), || {
        sealed = seal(&network, SECRET);
        sealed
            .as_object()
            .is_some_and(|copies| copies.len() == network.oracles().len())
    });
    assert!(
        all_keys,
        "the API never listed every oracle's key: {sealed}"
    );
    let tunnel = serde_json::json!({
        "apiVersion": "deeploy.ratio1.ai/v1alpha1",
        "kind": "Tunnel",
        "metadata": {"name": "web"},
        "spec": {
            "provider": "bore",
            "bore": {"server": "127.0.0.1", "port": public},
            "sealedToken": sealed,
        },
    });
    let job = std::fs::read_to_string(format!("{EXAMPLES}/job-http.yaml"))
        .unwrap()
        .replace("replicas: 2", "replicas: 1")
        .replace(
            "  type: container\n",
            "  type: container\n  tunnelRef: { name: web }\n",
        );
    let manifests = network.scratch_dir().join("tunnel.yaml");
    std::fs::write(
        &manifests,
        format!("{}\n---\n{job}", serde_yaml::to_string(&tunnel).unwrap()),
    )
    .unwrap();
    let applied = network
        .r1ctl(&[
            "apply",
            "-f",
            &format!("{EXAMPLES}/escrow.yaml"),
            "-f",
            &format!("{EXAMPLES}/project.yaml"),
            "-f",
            &manifests.display().to_string(),
        ])
        .unwrap();
    assert!(applied.status.success(), "{}", printed(&applied));
    let job_id = wait_running(&network, "hello-web", 1, Duration::from_secs(90)).unwrap();

    let t0 = Instant::now();
    assert!(
        until(Duration::from_secs(30), || answers(public)),
        "the job does not answer through the tunnel on {public}\n{}",
        network_logs(&network)
    );
    let through = t0.elapsed();
    let ready = until(Duration::from_secs(20), || {
        let status = tunnel_status(&network);
        status["phase"] == "Ready"
            && status["url"] == format!("127.0.0.1:{public}")
            && status["connections"]
                .as_array()
                .is_some_and(|c| c.len() == 1 && c[0]["up"] == true)
            && status["conditions"][0]["type"] == "Ready"
            && status["conditions"][0]["status"] == "True"
    });
    assert!(ready, "tunnel status: {}", tunnel_status(&network));

    // The client, killed, is restarted (after the 2 s backoff) and answers again.
    let first = one_client(public).expect("one bore client");
    assert!(signal_process(first, Signal::Kill).unwrap());
    let t1 = Instant::now();
    let restarted = until(Duration::from_secs(30), || {
        one_client(public).is_some_and(|pid| pid != first) && answers(public)
    });
    assert!(
        restarted,
        "the tunnel client was not restarted\n{}",
        network_logs(&network)
    );
    let restart = t1.elapsed();
    let restarts = until(Duration::from_secs(10), || {
        tunnel_status(&network)["connections"][0]["restarts"] == 1
    });
    assert!(restarts, "tunnel status: {}", tunnel_status(&network));

    // The replica's node dies (its agent and the client with it): the replica moves, and the
    // new node's client takes the same public port.
    let nodes = active_nodes(&network, job_id).unwrap();
    assert_eq!(nodes.len(), 1);
    let victim = network
        .node_addresses()
        .iter()
        .position(|a| *a == nodes[0])
        .unwrap();
    network.nodes_mut()[victim].kill();
    let t2 = Instant::now();
    let moved = until(Duration::from_secs(90), || {
        let status = tunnel_status(&network);
        answers(public)
            && status["connections"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["up"] == true && c["node"] != nodes[0].to_checksum(None))
            })
    });
    assert!(
        moved,
        "the tunnel did not follow the replica\n{}\n{}",
        tunnel_status(&network),
        network_logs(&network)
    );
    let moved_in = t2.elapsed();
    eprintln!(
        "tunnels: answering {through:?} after Running, restarted in {restart:?}, moved in {moved_in:?}, whole test {:?}",
        started.elapsed()
    );
}
