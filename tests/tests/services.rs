//! Jobs of one project calling each other by name, across nodes, through real oracles: three
//! oracles and three nodes on a real chain, broker and containerd. `web` runs on node 0 and
//! calls `api:8080` (and `api.hello.internal:8080`), which runs on node 1 or 2: the call travels
//! from web's namespace through its node's listener, over the peer-to-peer layer, into api's
//! namespace on the other node. When api's node dies, api's replica moves to the remaining
//! node and the calls succeed again. A job of another project resolves no such name and finds
//! nothing listening at the service's address.

use std::time::Duration;

use r1_e2e::network::{HTTPD_IMAGE, Network, NetworkSettings};
use r1_e2e::scenario::{EXAMPLES, active_nodes, network_logs, printed, wait_running};
use r1_e2e::wait::until;

/// What api answers.
const REPLY: &str = "answer-from-api";

/// A one-replica job of `project` running `script`, then busybox httpd on 8080, on nodes of
/// `side`; with `port_name`, 8080 is served to the project under that name.
fn job(name: &str, project: &str, side: &str, script: &str, port_name: Option<&str>) -> String {
    let mut port = serde_json::json!({"containerPort": 8080});
    if let Some(port_name) = port_name {
        port["name"] = port_name.into();
    }
    serde_yaml::to_string(&serde_json::json!({
        "apiVersion": "deeploy.ratio1.ai/v1alpha1",
        "kind": "DeeployJob",
        "metadata": {"name": name},
        "spec": {
            "projectRef": {"name": project},
            "escrowRef": {"name": "acme-escrow"},
            "image": HTTPD_IMAGE,
            "command": ["sh", "-c", format!("{script} mkdir -p /tmp/www && exec httpd -f -p 8080 -h /tmp/www")],
            "ports": [port],
            "resources": {"cpu": "250m", "memory": "128Mi"},
            "replicas": 1,
            "nodeSelector": {"r1.test/side": side},
            "durationEpochs": 30,
        }
    }))
    .expect("yaml")
}

/// Project `name`, with `policy` as its network policy when given.
fn project(name: &str, policy: Option<serde_json::Value>) -> String {
    let mut spec = serde_json::json!({"owner": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"});
    if let Some(policy) = policy {
        spec["networkPolicy"] = policy;
    }
    serde_yaml::to_string(&serde_json::json!({
        "apiVersion": "deeploy.ratio1.ai/v1alpha1",
        "kind": "DeeployProject",
        "metadata": {"name": name},
        "spec": spec
    }))
    .expect("yaml")
}

/// Runs `wget` of `url` inside `job`'s replica; what it printed, when it succeeded. Slowly,
/// when polled: the API limits each key to 10 requests a second.
fn fetch(network: &Network, job: &str, url: &str) -> Result<String, String> {
    std::thread::sleep(Duration::from_millis(500));
    let out = network
        .r1ctl(&[
            "exec",
            &format!("djob/{job}"),
            "--",
            // No `-T`: busybox 1.35's wget crashes on it.
            "wget",
            "-O",
            "-",
            url,
        ])
        .expect("r1ctl exec");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{}: {}", out.status, printed(&out)))
    }
}

#[test]
fn a_job_calls_another_by_name_across_nodes_and_after_it_moves() {
    let mut network = Network::start(&NetworkSettings {
        nodes: 3,
        node_labels: vec![
            vec![("r1.test/side", "client")],
            vec![("r1.test/side", "server")],
            vec![("r1.test/side", "server")],
        ],
        ..NetworkSettings::default()
    })
    .expect("network");
    let dir = network.scratch_dir();
    let files = [
        ("other.yaml", project("other", None)),
        (
            "hello.yaml",
            project(
                "hello",
                Some(serde_json::json!({"allow": [{"from": ["web"], "to": ["api"]}]})),
            ),
        ),
        (
            "api.yaml",
            job(
                "api",
                "hello",
                "server",
                &format!("mkdir -p /tmp/www && echo {REPLY} > /tmp/www/id;"),
                Some("http"),
            ),
        ),
        ("web.yaml", job("web", "hello", "client", "", None)),
        ("spy.yaml", job("spy", "other", "client", "", None)),
        (
            "intruder.yaml",
            job("intruder", "hello", "client", "", None),
        ),
    ];
    let mut args = vec![
        "apply".to_owned(),
        "-f".into(),
        format!("{EXAMPLES}/escrow.yaml"),
    ];
    for (file, text) in &files {
        let path = dir.join(file);
        std::fs::write(&path, text).expect("manifest");
        args.extend(["-f".into(), path.display().to_string()]);
    }
    args.push("--no-pin".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let applied = network.r1ctl(&args).expect("r1ctl apply");
    assert!(applied.status.success(), "{}", printed(&applied));
    let mut jobs = Vec::new();
    for name in ["api", "web", "spy", "intruder"] {
        jobs.push(
            wait_running(&network, name, 1, Duration::from_secs(120))
                .unwrap_or_else(|e| panic!("{e}\n{}", network_logs(&network))),
        );
    }
    let api_job = jobs[0];

    // By name and by the project's domain, from node 0 to api's node.
    for url in ["http://api:8080/id", "http://api.hello.internal:8080/id"] {
        let mut last = Err(String::new());
        let answered = until(Duration::from_secs(30), || {
            last = fetch(&network, "web", url);
            last.as_deref().is_ok_and(|body| body.trim() == REPLY)
        });
        assert!(answered, "{url}: {last:?}\n{}", network_logs(&network));
    }
    let serving = active_nodes(&network, api_job).expect("api's node");
    let web_node = network.nodes()[0].address;
    assert_eq!(serving.len(), 1);
    assert_ne!(
        serving[0], web_node,
        "api must run on another node than web"
    );

    // Another project's job, and a job of this project the policy does not let call api: no
    // such name, and nothing listens at the service's address.
    for job in ["spy", "intruder"] {
        for url in ["http://api:8080/id", "http://127.0.1.1:8080/id"] {
            let refused = fetch(&network, job, url);
            assert!(refused.is_err(), "{job} reached api at {url}: {refused:?}");
        }
    }

    // api's node dies: its replica moves to the other server node, and calls find it there.
    let index = network
        .nodes()
        .iter()
        .position(|n| n.address == serving[0])
        .expect("api's node is one of ours");
    network.nodes_mut()[index].kill();
    let killed = std::time::Instant::now();
    let mut last = Err(String::new());
    let moved = until(Duration::from_secs(120), || {
        last = fetch(&network, "web", "http://api:8080/id");
        let now = active_nodes(&network, api_job).unwrap_or_default();
        last.as_deref().is_ok_and(|body| body.trim() == REPLY)
            && now.len() == 1
            && now[0] != serving[0]
    });
    assert!(
        moved,
        "calls did not follow api's move: {last:?}\n{}",
        network_logs(&network)
    );
    eprintln!(
        "calls answered from api's new node {:?} after its node died",
        killed.elapsed()
    );
}
