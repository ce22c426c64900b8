//! The declarative path through every oracle: three oracles, one in Kubernetes mode against a
//! fake API server (the harness's, over HTTP), three nodes, a real chain, broker and containerd.
//! The CSP deposits USDC and delegates the kube-mode oracle's delegate key; the manifests are
//! then only ever written to the cluster, as kubectl or Argo CD would. The job — with an env
//! value from a Kubernetes Secret, beside a Tunnel whose token is one — is funded from the escrow by the delegate key, validated by
//! all three oracles, scaled up by a patch of `replicas` (told which permission it lacks while
//! the delegate may only create, then extended once it may), extended by a patch of
//! `durationEpochs`, and deleted with its refund; the chain shows each step. Once the delegate is
//! revoked, a new job in the cluster reaches no oracle.

use std::collections::BTreeMap;
use std::time::Duration;

use alloy::primitives::U256;
use r1_e2e::kube_api::FakeApiServer;
use r1_e2e::network::{EXAMPLES_REGISTRY_PORT, Network, NetworkSettings};
use r1_e2e::scenario::{
    EXAMPLES, bytes_contain, chain_job, files_under, network_logs, printed, stored_job,
    wait_closed, wait_running,
};
use r1_e2e::wait::until;
use r1_protocol::Identity;
use serde_json::{Value, json};

/// The Secret's value; long and random-looking so it cannot turn up by chance.
const SECRET: &str = "kube-secret-7f3a9c1e5b2d8046";

/// The tunnel token's value, as [`SECRET`].
const TUNNEL_TOKEN: &str = "kube-tunnel-token-2c9e4b7a1d0f";

/// An example manifest as the JSON object a cluster holds, in namespace `default`.
fn example(file: &str) -> Value {
    let text = std::fs::read_to_string(format!("{EXAMPLES}/{file}")).expect("example");
    let mut value: Value = serde_yaml::from_str(&text).expect("yaml");
    value["metadata"]["namespace"] = json!("default");
    value
}

fn condition(object: &Value, type_: &str) -> Option<Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

#[test]
fn a_job_applied_to_the_cluster_is_funded_validated_scaled_extended_and_deleted() {
    // The examples' image comes from Debian's docker-registry, so the kube-mode oracle can pin
    // its tag.
    let mut network = Network::prepare(&NetworkSettings {
        registry_port: Some(EXAMPLES_REGISTRY_PORT),
        ..NetworkSettings::default()
    })
    .expect("network");
    let api = FakeApiServer::start().expect("fake API server");
    let delegate = Identity::generate();
    let key = network.scratch_dir().join("delegate.key");
    r1_protocol::keyfile::write(&key, &delegate).expect("delegate key");
    network
        .chain()
        .give_ether(delegate.address(), 10)
        .expect("gas for the delegate");
    network.oracles_mut()[0]
        .enable_kube(
            api.kubeconfig_path(),
            &format!(
                "{{ delegateKeyFile: \"{}\", resyncSeconds: 5, retryMaxMs: 2000 }}",
                key.display()
            ),
        )
        .expect("kube mode");
    network.start_oracles().expect("oracles");
    network.start_nodes().expect("nodes");

    // The CSP, once: 40 USDC into the escrow, and the oracle's delegate key may create and
    // extend.
    for args in [
        vec!["escrow", "deposit", "40"],
        vec!["escrow", "delegate", &format!("{}", delegate.address())],
    ] {
        let out = network.r1ctl(&args).expect("r1ctl escrow");
        assert!(out.status.success(), "{}", printed(&out));
    }
    let csp = network.csp().address();
    let wallet_before = network.chain().usdc_balance(csp).expect("usdc");

    // From here on only the cluster is written to.
    api.put_secret(
        "default",
        "hello-secrets",
        &BTreeMap::from([("greeting".to_owned(), SECRET.to_owned())]),
    )
    .expect("secret");
    api.put_secret(
        "default",
        "cloudflare",
        &BTreeMap::from([("tunnel-token".to_owned(), TUNNEL_TOKEN.to_owned())]),
    )
    .expect("secret");
    api.create(example("tunnel.yaml"))
        .expect("tunnel in the cluster");
    let mut job = example("job-http.yaml");
    job["spec"]["env"] = json!([
        {"name": "GREETING", "valueFrom": {"secretKeyRef": {"name": "hello-secrets", "key": "greeting"}}}
    ]);
    for object in [example("escrow.yaml"), example("project.yaml"), job] {
        api.create(object).expect("create in the cluster");
    }
    let job_id = wait_running(&network, "hello-web", 2, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}\n{}", network_logs(&network)));
    let created = chain_job(&network, job_id).expect("chain job");
    assert_eq!(created.numberOfNodesRequested, U256::from(2));
    assert_eq!(
        network.chain().usdc_balance(csp).expect("usdc"),
        wallet_before,
        "paid from the escrow's free balance, not the CSP's wallet"
    );
    let funded = until(Duration::from_secs(30), || {
        api.get("deeployjobs", "default", "hello-web")
            .and_then(|job| condition(&job, "ClusterFunded"))
            .is_some_and(|c| c["status"] == "True")
    });
    assert!(
        funded,
        "no ClusterFunded condition: {:?}",
        api.get("deeployjobs", "default", "hello-web")
    );
    // Every oracle holds the env value sealed, one copy per oracle, never in clear, and the
    // image tag pinned to the registry's digest.
    let mut pins = Vec::new();
    for oracle in 0..network.oracles().len() {
        let out = network
            .r1ctl_command()
            .expect("r1ctl")
            .env("R1_SERVER", network.oracles()[oracle].api_url())
            .args(["get", "djob", "hello-web", "-o", "json"])
            .output()
            .expect("r1ctl get");
        let stored: Value = serde_json::from_slice(&out.stdout).expect("json");
        let sealed = &stored["spec"]["env"][0]["valueFrom"]["sealed"];
        // The tunnel names the project, so its mirror may be retried after the project's
        // (with backoff): wait for it rather than read it once.
        let get_tunnel = || {
            let out = network
                .r1ctl_command()
                .expect("r1ctl")
                .env("R1_SERVER", network.oracles()[oracle].api_url())
                .args(["get", "tunnel", "hello-web", "-o", "json"])
                .output()
                .expect("r1ctl get tunnel");
            out.status
                .success()
                .then(|| serde_json::from_slice::<Value>(&out.stdout).expect("json"))
        };
        let mut tunnel = None;
        until(Duration::from_secs(30), || {
            tunnel = get_tunnel();
            tunnel.is_some()
        });
        let tunnel = tunnel.unwrap_or_else(|| {
            panic!(
                "oracle {oracle} has no tunnel hello-web\n{}",
                network_logs(&network)
            )
        });
        assert_eq!(
            tunnel["spec"]["sealedToken"]
                .as_object()
                .map(serde_json::Map::len),
            Some(3),
            "oracle {oracle}: the tunnel's token is not sealed to every oracle: {tunnel}"
        );
        assert!(tunnel["spec"].get("tokenSecretRef").is_none(), "{tunnel}");
        assert_eq!(
            sealed.as_object().map(serde_json::Map::len),
            Some(3),
            "oracle {oracle}: {stored}"
        );
        pins.push(
            stored["spec"]["image"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert!(
        pins[0].starts_with("localhost:5000/r1-examples/httpd:1@sha256:"),
        "{pins:?}"
    );
    assert!(pins.iter().all(|p| *p == pins[0]), "{pins:?}");
    assert_eq!(
        api.get("deeployjobs", "default", "hello-web").expect("job")["spec"]["image"],
        "localhost:5000/r1-examples/httpd:1",
        "the cluster object keeps its tag"
    );

    // kubectl scale while the delegate may only create: the job says which permission it
    // lacks, and nothing changes on chain.
    let narrowed = network
        .r1ctl(&[
            "escrow",
            "delegate",
            &format!("{}", delegate.address()),
            "--permissions",
            "create",
        ])
        .expect("r1ctl escrow delegate");
    assert!(narrowed.status.success(), "{}", printed(&narrowed));
    api.patch_spec(
        "deeployjobs",
        "default",
        "hello-web",
        json!({"replicas": 3}),
    )
    .expect("scale");
    let told = until(Duration::from_secs(60), || {
        api.get("deeployjobs", "default", "hello-web")
            .and_then(|job| condition(&job, "ClusterFunded"))
            .is_some_and(|c| {
                c["status"] == "False"
                    && c["reason"] == "NotPermitted"
                    && c["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("extend-nodes"))
            })
    });
    assert!(told, "{:?}", api.get("deeployjobs", "default", "hello-web"));
    assert_eq!(
        chain_job(&network, job_id)
            .expect("chain job")
            .numberOfNodesRequested,
        U256::from(2)
    );

    // Given the permission back, the funder's retry extends the chain job; a third replica
    // runs.
    let widened = network
        .r1ctl(&["escrow", "delegate", &format!("{}", delegate.address())])
        .expect("r1ctl escrow delegate");
    assert!(widened.status.success(), "{}", printed(&widened));
    wait_running(&network, "hello-web", 3, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}\n{}", network_logs(&network)));
    let scaled = chain_job(&network, job_id).expect("chain job");
    assert_eq!(scaled.numberOfNodesRequested, U256::from(3));

    // A longer durationEpochs extends the chain job's last epoch.
    api.patch_spec(
        "deeployjobs",
        "default",
        "hello-web",
        json!({"durationEpochs": 45}),
    )
    .expect("extend");
    let extended = until(Duration::from_secs(60), || {
        chain_job(&network, job_id)
            .is_ok_and(|job| job.lastExecutionEpoch >= created.lastExecutionEpoch + U256::from(10))
    });
    assert!(
        extended,
        "the chain job was not extended\n{}",
        network_logs(&network)
    );

    // kubectl delete: every oracle closes the job on chain; the rest of the budget goes back to
    // the escrow's owner; the finalizer lets the object go.
    let free_before = network.chain().usdc_balance(csp).expect("usdc");
    api.delete("deeployjobs", "default", "hello-web")
        .expect("delete");
    assert!(
        wait_closed(&network, "hello-web", Duration::from_secs(120)),
        "the job was never closed\n{}",
        network_logs(&network)
    );
    let released = until(Duration::from_secs(60), || {
        api.get("deeployjobs", "default", "hello-web").is_none()
    });
    assert!(released, "the finalizer was never released");
    let closed_job = chain_job(&network, job_id).expect("chain job");
    assert_eq!(closed_job.balance, U256::ZERO, "nothing is left locked");
    let refunded = until(Duration::from_secs(30), || {
        network
            .chain()
            .usdc_balance(csp)
            .is_ok_and(|now| now > free_before)
    });
    assert!(refunded, "no refund reached the owner");
    let events = api.events("default");
    for reason in ["Funded", "Scheduled", "Validated"] {
        assert!(
            events.iter().any(|e| e["reason"] == reason),
            "no {reason} event among {}",
            events.len()
        );
    }

    // Revoked: a new job in the cluster waits, named as not delegated, and reaches no oracle.
    let revoke = network
        .r1ctl(&["escrow", "revoke", &format!("{}", delegate.address())])
        .expect("r1ctl escrow revoke");
    assert!(revoke.status.success(), "{}", printed(&revoke));
    std::thread::sleep(Duration::from_secs(11));
    let mut late = example("job-http.yaml");
    late["metadata"]["name"] = json!("late-web");
    api.create(late).expect("create");
    let refused = until(Duration::from_secs(30), || {
        api.get("deeployjobs", "default", "late-web")
            .and_then(|job| condition(&job, "Valid"))
            .is_some_and(|c| c["reason"] == "NotDelegated")
    });
    assert!(
        refused,
        "{:?}\n{}",
        api.get("deeployjobs", "default", "late-web"),
        network_logs(&network)
    );
    for oracle in 0..network.oracles().len() {
        assert_eq!(
            stored_job(&network, oracle, "late-web"),
            Ok(None),
            "oracle {oracle} holds a job a revoked delegate wrote"
        );
    }

    // The Secret's value is in no oracle's store, log or status.
    let mut places = Vec::new();
    for oracle in network.oracles() {
        places.extend(files_under(&oracle.data_dir()));
        places.push(("oracle log".to_owned(), oracle.log().into_bytes()));
    }
    for (place, bytes) in &places {
        for secret in [SECRET, TUNNEL_TOKEN] {
            assert!(
                !bytes_contain(bytes, secret),
                "a Secret's value is in the clear in {place}"
            );
        }
    }
}
