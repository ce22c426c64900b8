//! The whole-network harness itself: the test chain deploys, prices, licenses and funds; an
//! oracle's generated config passes `r1-oracle check-config`; a prepared network's nodes
//! heartbeat, run the example image and leave nothing behind. Needs root (containerd).

use std::path::Path;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use r1_crds::pricing::Catalogue;
use r1_e2e::chain::{self, TestChain};
use r1_e2e::network::{BrokerKind, HTTPD_IMAGE, Network, NetworkSettings};
use r1_e2e::node::{TOPIC_ROOT, TestOracle, http_get, workload};
use r1_e2e::oracle::{OracleProcess, OracleSettings};
use r1_protocol::messages::{PortMapping, PortProtocol, WorkloadState};

const WAIT: Duration = Duration::from_secs(30);

/// Hardhat account #1, the CSP of the examples.
const CSP: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

fn csp() -> Address {
    CSP.parse().expect("address")
}

#[test]
fn test_chain_prices_licenses_funds_and_deploys_escrows() {
    let chain = TestChain::start(30).expect("chain");
    assert_eq!(chain.chain_id(), 31337);
    assert_ne!(chain.manager(), Address::ZERO);
    assert!(
        chain.url().starts_with("http://127.0.0.1:"),
        "{}",
        chain.url()
    );
    assert_eq!(chain.current_epoch().expect("epoch"), 0);

    let catalogue = Catalogue::builtin().expect("catalogue");
    chain.set_catalogue_prices(&catalogue).expect("prices");
    let manager = chain.gov().manager();
    for class in &catalogue.classes {
        let price = chain
            .block_on(async { manager.jobTypePrice(class.id).call().await })
            .expect("price");
        assert_eq!(
            price,
            U256::from(class.price_per_epoch.units()),
            "{}",
            class.name
        );
    }

    let oracle_key = PrivateKeySigner::random();
    let oracle = oracle_key.address();
    chain.add_oracle(oracle).expect("add oracle");
    chain.give_ether(oracle, 5).expect("ether");
    assert!(
        chain
            .block_on(async { manager.isOracle(oracle).call().await })
            .expect("isOracle")
    );
    let balance = chain
        .block_on(async {
            alloy::providers::Provider::get_balance(chain.devchain().rpc(), oracle).await
        })
        .expect("balance");
    assert_eq!(
        balance,
        U256::from(5u64) * U256::from(10u64).pow(U256::from(18u64))
    );

    let node_key = PrivateKeySigner::random();
    let node = node_key.address();
    assert_eq!(chain.licence_of_node(node).expect("no licence"), 0);
    let (licence, operator) = chain.license_node(&node_key, &oracle_key).expect("license");
    assert_ne!(licence, 0);
    assert_eq!(chain.licence_of_node(node).expect("licence"), licence);
    let operator_key = chain.operator(operator).expect("operator key");
    assert_eq!(operator_key.address(), operator);
    let owner = chain
        .block_on(async {
            chain
                .gov()
                .node_deed()
                .ownerOf(U256::from(licence))
                .call()
                .await
        })
        .expect("owner");
    assert_eq!(owner, operator);

    chain.fund_csp(csp(), 1_000).expect("fund");
    assert_eq!(
        chain.usdc_balance(csp()).expect("balance"),
        U256::from(1_000_000_000u64)
    );
    assert_eq!(chain.escrow_of(csp()).expect("no escrow"), Address::ZERO);
    let escrow = chain.deploy_escrow(csp()).expect("escrow");
    assert_ne!(escrow, Address::ZERO);
    assert_eq!(chain.escrow_of(csp()).expect("escrow"), escrow);

    let csp_key = chain::signer(chain::CSP_KEY).expect("csp key");
    assert_eq!(csp_key.address(), csp());
    assert!(chain::signer("0x1234").is_err());
}

#[test]
fn oracle_config_passes_check_config() {
    let oracle = OracleProcess::new(
        &OracleSettings {
            rpc_url: "http://127.0.0.1:8545".into(),
            chain_id: 31337,
            manager: "0x5FbDB2315678afecb367f032d93F642f64180aa3"
                .parse()
                .expect("address"),
            broker_url: "mqtt://127.0.0.1:1883".into(),
            ca_file: None,
            topic_root: TOPIC_ROOT.into(),
            loop_period_ms: 500,
            heartbeat_seconds: 1,
            grace_missed: 3,
            start_grace_seconds: 30,
            resync_seconds: 5,
            object_quota: None,
        },
        r1_protocol::Identity::generate(),
    )
    .expect("oracle");
    let out = oracle.check_config().expect("check-config");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&oracle.address.to_checksum(None)), "{text}");
    assert_eq!(oracle.identity().address(), oracle.address);
    for expected in [
        "url: mqtt://127.0.0.1:1883".to_owned(),
        format!("listen: 127.0.0.1:{}", oracle.api_port),
        format!("metricsListen: 127.0.0.1:{}", oracle.metrics_port),
        "periodMs: 500".to_owned(),
        "graceMissed: 3".to_owned(),
        "heartbeatIntervalSeconds: 1".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected:?} not in:\n{text}");
    }
    assert!(
        !text.contains("epoch:"),
        "the epoch comes from the chain:\n{text}"
    );
    assert_eq!(
        oracle.api_url(),
        format!("http://127.0.0.1:{}", oracle.api_port)
    );
    assert!(oracle.data_dir().is_dir());
}

/// The cgroup directories of `namespace` that still exist.
fn cgroups_of(namespace: &str) -> Vec<String> {
    let root = Path::new("/sys/fs/cgroup");
    let mut found: Vec<String> = std::fs::read_dir(root)
        .expect("cgroup root")
        .filter_map(Result::ok)
        .map(|entry| entry.path().join(namespace))
        .filter(|path| path.exists())
        .map(|path| path.display().to_string())
        .collect();
    if root.join(namespace).exists() {
        found.push(namespace.to_owned());
    }
    found
}

#[test]
fn prepared_network_nodes_heartbeat_serve_the_example_image_and_clean_up() {
    let mut network = Network::prepare(&NetworkSettings {
        oracles: 2,
        nodes: 2,
        broker: BrokerKind::Mosquitto,
        ..NetworkSettings::default()
    })
    .expect("network");
    let chain = network.chain();
    for node in network.nodes() {
        assert_ne!(chain.licence_of_node(node.address).expect("licence"), 0);
        assert!(node.images_dir().join("httpd.tar").is_file());
    }
    let manager = chain.gov().manager();
    for oracle in network.oracle_addresses() {
        assert!(
            chain
                .block_on(async { manager.isOracle(oracle).call().await })
                .expect("isOracle")
        );
    }
    assert_eq!(network.csp().address(), csp());
    assert_eq!(chain.escrow_of(csp()).expect("escrow"), network.escrow());
    assert!(chain.usdc_balance(csp()).expect("usdc") >= U256::from(1_000_000_000u64));
    assert_eq!(network.csp_key_hex(), chain::CSP_KEY);
    assert_eq!(
        r1_protocol::keyfile::load(&network.csp_key_file())
            .expect("key file")
            .address(),
        csp()
    );

    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/examples/job-http.yaml");
    let out = network
        .r1ctl(&["estimate", "-f", &examples.display().to_string()])
        .expect("r1ctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The nodes obey the network's oracles; act as the first one over the broker.
    let oracle_identity = network.oracles()[0].identity().clone();
    let oracle = TestOracle::with_identity(network.broker(), oracle_identity).expect("listener");
    network.start_nodes().expect("nodes");
    for node in network.nodes() {
        assert!(
            r1_e2e::wait::until(WAIT, || oracle.heartbeat(node.address).is_some()),
            "no heartbeat from {}; log:\n{}",
            node.address,
            node.log()
        );
    }

    let node = network.nodes()[0].address;
    let mut spec = workload(1, 0, HTTPD_IMAGE, 64);
    spec.command = ["httpd", "-f", "-p", "8080", "-h", "/www"]
        .map(String::from)
        .to_vec();
    spec.ports = vec![PortMapping {
        container_port: 8080,
        host_port: None,
        protocol: PortProtocol::Tcp,
    }];
    oracle.deploy(node, spec);
    let report = oracle
        .wait_for(
            node,
            r1_protocol::messages::WorkloadId { job: 1, replica: 0 },
            WAIT,
            |w| w.state == WorkloadState::Running,
        )
        .unwrap_or_else(|| panic!("never running; log:\n{}", network.nodes()[0].log()));
    let port = report.ports[0].host_port.expect("host port");
    assert!(r1_e2e::wait::until(WAIT, || http_get(port, "/").is_some()));
    let containers = network
        .node_ctr(0, &["containers", "ls", "-q"])
        .expect("ctr");
    assert!(
        !String::from_utf8_lossy(&containers.stdout)
            .trim()
            .is_empty()
    );
    let other = network
        .node_ctr(1, &["containers", "ls", "-q"])
        .expect("ctr");
    assert!(String::from_utf8_lossy(&other.stdout).trim().is_empty());

    let namespace = network.node_namespace(0).expect("namespace").to_owned();
    assert!(!cgroups_of(&namespace).is_empty());
    drop(network);
    assert!(http_get(port, "/").is_none());
    assert_eq!(cgroups_of(&namespace), Vec::<String>::new());
    assert!(!Path::new("/run/containerd/runc").join(&namespace).exists());
}

#[test]
fn full_network_oracles_are_healthy_and_nodes_heartbeat() {
    let network = Network::start(&NetworkSettings {
        oracles: 3,
        nodes: 3,
        ..NetworkSettings::default()
    })
    .expect("network");
    let listener = TestOracle::connect(network.broker()).expect("listener");
    for oracle in network.oracles() {
        assert!(oracle.is_healthy(), "log:\n{}", oracle.log());
        assert!(
            !oracle.metrics().is_empty(),
            "no metrics; log:\n{}",
            oracle.log()
        );
    }
    for node in network.nodes() {
        assert!(
            r1_e2e::wait::until(WAIT, || listener.heartbeat(node.address).is_some()),
            "no heartbeat from {}; log:\n{}",
            node.address,
            node.log()
        );
    }
}
