//! Secrets through real oracles: a CSP seals an env value and a private registry's credentials
//! with `r1ctl secret seal`; three oracles and three nodes on a real chain, broker, registry
//! and containerd run the job with the value inside the container, and the clear value is
//! nowhere else — not on the broker, in an oracle's or a node's store, in a log or in a status.
//! A value copied into a namespace it was not sealed for is refused with the field.

use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use r1_e2e::network::{Network, NetworkSettings};
use r1_e2e::node::{TOPIC_ROOT, http_get};
use r1_e2e::registry::LocalRegistry;
use r1_e2e::scenario::{
    EXAMPLES, bytes_contain, files_under, job_status, network_logs, printed, wait_running,
};
use r1_e2e::wait::until;
use r1_protocol::Identity;
use r1_protocol::broker_acl::Role;
use r1_protocol::docker_config::config_for;
use r1_protocol::secrets::PullCredentials;
use r1_protocol::topics::{Channel, Topics};
use rumqttc::{Event, Packet, QoS};

/// The env value; long and random-looking so it cannot turn up by chance.
const SECRET: &str = "r1-sealed-value-7f3a9c0e5b";
/// The private registry's password.
const PASSWORD: &str = "registry-pass-51d2e8a4";

/// Every payload published on the topics `filters` name, as `identity` (admitted as `role`)
/// hears them.
fn tap(
    network: &Network,
    identity: &Identity,
    role: Role,
    name: &str,
    filters: Vec<String>,
) -> Arc<Mutex<Vec<u8>>> {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = heard.clone();
    let url = network
        .broker()
        .admit(identity.address(), role)
        .expect("admit the tap");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    r1_e2e::mqtt_client::spawn(
        &url,
        network.broker().ca_file().as_deref(),
        name,
        identity,
        move |client, event| match event {
            Some(Event::Incoming(Packet::ConnAck(_))) => {
                for filter in &filters {
                    let _ = client.subscribe(filter.clone(), QoS::AtLeastOnce);
                }
            }
            Some(Event::Incoming(Packet::SubAck(_))) => {
                let _ = ready_tx.send(());
            }
            Some(Event::Incoming(Packet::Publish(p))) => {
                sink.lock().expect("tap").extend_from_slice(&p.payload);
            }
            _ => {}
        },
    )
    .expect("tap client");
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("tap subscribed");
    heard
}

/// `r1ctl secret seal --namespace NAMESPACE EXTRA…` with `stdin`; the `sealed` mapping it
/// prints.
fn seal(network: &Network, namespace: &str, extra: &[&str], stdin: &str) -> serde_yaml::Value {
    let mut child = network
        .r1ctl_command()
        .expect("r1ctl")
        .args(["secret", "seal", "--namespace", namespace])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn r1ctl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("r1ctl secret seal");
    assert!(output.status.success(), "{}", printed(&output));
    let printed_yaml: serde_yaml::Value =
        serde_yaml::from_slice(&output.stdout).expect("r1ctl prints YAML");
    printed_yaml["sealed"].clone()
}

/// Every file under `dir`, read whole (stores, logs, configs).
#[test]
fn a_sealed_env_value_and_pull_secret_reach_only_the_container() {
    let mut network = Network::prepare(&NetworkSettings {
        nodes: 2,
        ..NetworkSettings::default()
    })
    .expect("network");
    // The jobs' fixed host port is the one port every node offers.
    let port = r1_e2e::ports::free_port();
    for node in network.nodes_mut() {
        node.set_host_ports(port, port).expect("host ports");
    }
    network.start_oracles().expect("oracles");
    network.start_nodes().expect("nodes");
    let topics = Topics::new(TOPIC_ROOT);

    // The broker as every node and every oracle hears it, from before the job exists.
    let mut taps = Vec::new();
    for (i, node) in network.nodes().iter().enumerate() {
        let mut filters = vec![topics.topic(Channel::Commands, &node.address)];
        filters.extend([Channel::Roster, Channel::Cstore].map(|c| topics.all(c)));
        taps.push(tap(
            &network,
            &node.identity(),
            Role::Node,
            &format!("tap-node-{i}"),
            filters,
        ));
    }
    let listener = Identity::generate();
    let oracle_filters = [
        Channel::Heartbeat,
        Channel::Status,
        Channel::Observations,
        Channel::Requests,
    ]
    .map(|c| topics.all(c))
    .to_vec();
    taps.push(tap(
        &network,
        &listener,
        Role::Oracle,
        "tap-oracle",
        oracle_filters,
    ));

    let registry_dir = network.scratch_dir().join("private-registry");
    std::fs::create_dir_all(&registry_dir).expect("registry dir");
    let registry =
        LocalRegistry::start_with_auth(&registry_dir, "acme", PASSWORD).expect("registry");
    let name = "localhost/acme/private:1";
    let archive = registry_dir.join("httpd.tar");
    r1_e2e::images::httpd(name)
        .write_archive(&archive)
        .expect("image archive");
    let digest = registry
        .push_archive(&archive, name, "acme/private:1")
        .expect("push");

    // Every oracle announces its key; the first answers for all three.
    let keys_port: u16 = network.oracles()[0]
        .api_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("api port");
    let all_keys = until(Duration::from_secs(60), || {
        http_get(keys_port, "/v1/oracle-keys").is_some_and(|body| {
            serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["oracles"].as_array().map(Vec::len))
                == Some(network.oracles().len())
        })
    });
    assert!(all_keys, "the oracles never listed each other's keys");

    let env_value = seal(&network, "default", &[], &format!("{SECRET}\n"));
    let pull_secret = seal(
        &network,
        "default",
        &[
            "--docker-server",
            &registry.host(),
            "--docker-username",
            "acme",
        ],
        &format!("{PASSWORD}\n"),
    );
    let elsewhere = seal(&network, "mallory", &[], SECRET);
    assert_eq!(
        env_value.as_mapping().map(serde_yaml::Mapping::len),
        Some(3),
        "one copy per oracle"
    );

    let job = |job_name: &str, value: &serde_yaml::Value| {
        serde_json::json!({
            "apiVersion": "deeploy.ratio1.ai/v1alpha1",
            "kind": "DeeployJob",
            "metadata": {"name": job_name},
            "spec": {
                "projectRef": {"name": "hello"},
                "escrowRef": {"name": "acme-escrow"},
                "image": format!("{}/acme/private:1", registry.host()),
                "command": ["sh", "-c", "printf %s \"$APP_SECRET\" > /tmp/secret.txt && exec httpd -f -p 8080 -h /tmp"],
                "env": [
                    {"name": "MODE", "value": "plain"},
                    {"name": "APP_SECRET", "valueFrom": {"sealed": value}},
                ],
                "imagePullSecret": {"sealed": pull_secret},
                "ports": [{"containerPort": 8080, "hostPort": port}],
                "resources": {"cpu": "250m", "memory": "128Mi"},
                "replicas": 1,
                "durationEpochs": 30,
                "healthCheck": {"http": {"path": "/", "port": 8080}, "periodSeconds": 5},
            }
        })
    };
    let manifests = network.scratch_dir().join("sealed-jobs.yaml");
    let text = [
        job("private-web", &env_value),
        job("copied-secret", &elsewhere),
    ]
    .iter()
    .map(|j| serde_yaml::to_string(j).expect("yaml"))
    .collect::<Vec<_>>()
    .join("---\n");
    std::fs::write(&manifests, text).expect("write manifests");
    // r1ctl pins the tag to the registry's digest, reading the credentials from Docker's config.
    let docker_dir = network.scratch_dir().join("docker");
    std::fs::create_dir_all(&docker_dir).expect("docker config dir");
    let credentials = PullCredentials::Basic {
        username: "acme".into(),
        password: PASSWORD.into(),
    };
    std::fs::write(
        docker_dir.join("config.json"),
        config_for(&registry.host(), &credentials),
    )
    .expect("docker config");
    let applied = network
        .r1ctl_command()
        .expect("r1ctl")
        .env("DOCKER_CONFIG", &docker_dir)
        .args(["apply", "-f", &format!("{EXAMPLES}/escrow.yaml")])
        .args(["-f", &format!("{EXAMPLES}/project.yaml")])
        .args(["-f", &manifests.display().to_string()])
        .output()
        .expect("r1ctl apply");
    assert!(applied.status.success(), "{}", printed(&applied));
    assert!(
        printed(&applied).contains(&format!(
            "image {}/acme/private:1 pinned to {digest}",
            registry.host()
        )),
        "{}",
        printed(&applied)
    );

    let job_id = wait_running(&network, "private-web", 1, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}\n{}", network_logs(&network)));
    let stored = network
        .r1ctl(&["get", "djob", "private-web", "-o", "json"])
        .expect("r1ctl get");
    let stored: serde_json::Value = serde_json::from_slice(&stored.stdout)
        .unwrap_or_else(|e| panic!("r1ctl get: {e}: {}", printed(&stored)));
    assert_eq!(
        stored["spec"]["image"],
        format!("{}/acme/private:1@{digest}", registry.host()),
        "chain job {job_id} runs the pinned digest"
    );
    let served = until(Duration::from_secs(30), || {
        http_get(port, "/secret.txt").as_deref() == Some(SECRET)
    });
    assert!(
        served,
        "the container never saw the value: {:?}",
        http_get(port, "/secret.txt")
    );

    // A value sealed for another namespace opens nowhere: every oracle says which field.
    let refused = until(Duration::from_secs(30), || {
        (0..network.oracles().len()).all(|o| {
            job_status(&network, o, "copied-secret").is_some_and(|s| {
                s["phase"] == "Failed"
                    && s["conditions"]
                        .to_string()
                        .contains("spec.env[APP_SECRET].valueFrom.sealed: oracle")
            })
        })
    });
    assert!(refused, "{:?}", job_status(&network, 0, "copied-secret"));

    // The clear value is nowhere but in the container.
    let mut places: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, heard) in taps.iter().enumerate() {
        places.push((
            format!("broker tap {i}"),
            heard.lock().expect("tap").clone(),
        ));
    }
    for oracle in network.oracles() {
        places.extend(files_under(&oracle.data_dir()));
        places.push(("oracle log".into(), oracle.log().into_bytes()));
    }
    for node in network.nodes() {
        places.extend(files_under(&node.data_dir()));
        places.push(("node log".into(), node.log().into_bytes()));
    }
    for o in 0..network.oracles().len() {
        let status = job_status(&network, o, "private-web").expect("status");
        places.push(("status".into(), status.to_string().into_bytes()));
    }
    for (place, bytes) in &places {
        assert!(
            !bytes_contain(bytes, SECRET),
            "the value is in the clear in {place}"
        );
        assert!(
            !bytes_contain(bytes, PASSWORD),
            "the password is in the clear in {place}"
        );
    }
    // The search could have found them: the deploy commands went by, carrying sealed secrets,
    // and the stores hold the job (its plain env value included).
    assert!(
        taps.iter()
            .any(|t| bytes_contain(&t.lock().expect("tap"), "\\\"secrets\\\"")),
        "no deploy command with sealed secrets crossed the broker"
    );
    assert!(
        places
            .iter()
            .any(|(place, bytes)| place.contains("resources")
                && bytes_contain(bytes, "APP_SECRET")),
        "the oracles' stores were not searched"
    );
}
