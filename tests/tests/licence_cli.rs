//! A node operator's licence from the command line, on a real chain with real oracles: buy a
//! licence with `r1ctl licence buy`, have the node sign its consent (`r1-node sign-link`'s
//! library call), and link it with `r1ctl licence link`, which asks an oracle to co-sign; a dry
//! run first prints the transaction and its gas and sends nothing. The oracle co-signs only for
//! the licence's owner, and the chain refuses a relink within the relink delay (one epoch).

use r1_ctl::remote::{Client, RemoteError};
use r1_e2e::chain::FUNDING_ETHER;
use r1_e2e::network::{Network, NetworkSettings};
use r1_e2e::scenario::printed;
use r1_protocol::Identity;
use r1_protocol::links::LinkAttestRequest;

/// Runs r1ctl as whoever's key file is `key`.
fn r1ctl_as(network: &Network, key: &std::path::Path, args: &[&str]) -> std::process::Output {
    network.r1ctl_as(key, args).expect("run r1ctl")
}

/// The node's signed consent to join `licence` of `owner`, written to a file for r1ctl.
fn node_proof(
    network: &Network,
    node: &Identity,
    licence: u64,
    owner: r1_protocol::Address,
    dir: &std::path::Path,
) -> (LinkAttestRequest, std::path::PathBuf) {
    let proof = network
        .chain()
        .block_on(r1_node::licence::sign_link(
            node,
            &network.chain().url(),
            network.chain().manager(),
            licence,
            owner,
            600,
        ))
        .expect("the node signs");
    let path = dir.join(format!("proof-{licence}-{}.json", proof.nonce));
    std::fs::write(&path, serde_json::to_vec(&proof).expect("json")).expect("write proof");
    (proof, path)
}

#[test]
fn an_operator_buys_a_licence_and_links_a_node_the_oracle_co_signs() {
    let network = Network::start(&NetworkSettings {
        nodes: 0,
        ..NetworkSettings::default()
    })
    .expect("network");
    let chain = network.chain();
    let dir = tempfile::tempdir().expect("dir");
    let operator = Identity::generate();
    let key = dir.path().join("operator.key");
    r1_protocol::keyfile::write(&key, &operator).expect("key file");
    chain
        .give_ether(operator.address(), FUNDING_ETHER)
        .expect("ether");
    chain
        .block_on(
            chain
                .gov()
                .mint_r1(operator.address(), r1_contracts::units::r1_units(1_000)),
        )
        .expect("R1");

    let dear = r1ctl_as(&network, &key, &["licence", "buy", "--max-price", "1"]);
    assert!(!dear.status.success(), "{}", printed(&dear));
    assert!(
        printed(&dear).contains("above your limit"),
        "{}",
        printed(&dear)
    );
    let bought = r1ctl_as(&network, &key, &["licence", "buy"]);
    assert!(bought.status.success(), "{}", printed(&bought));
    assert!(
        printed(&bought).contains("bought licence 1"),
        "{}",
        printed(&bought)
    );

    let node = Identity::generate();
    let (proof, path) = node_proof(&network, &node, 1, operator.address(), dir.path());
    let path = path.display().to_string();

    // A dry run shows the transaction and its gas, and links nothing.
    let dry = r1ctl_as(
        &network,
        &key,
        &["licence", "link", "--node-proof", &path, "--dry-run"],
    );
    let said = printed(&dry);
    assert!(dry.status.success(), "{said}");
    assert!(said.contains("co-signed") && said.contains("gas"), "{said}");
    assert!(said.contains("not sent"), "{said}");
    assert_eq!(chain.licence_of_node(node.address()).expect("read"), 0);

    // Only the licence's owner gets the oracle's co-signature.
    let stranger =
        Client::new(&network.oracles()[0].api_url(), Identity::generate()).expect("client");
    let refused = chain.block_on(stranger.attest_link(&proof));
    assert!(
        matches!(&refused, Err(RemoteError::Refused { status: 403, .. })),
        "{refused:?}"
    );

    // Nor for a licence that does not exist.
    let (missing, _) = node_proof(&network, &node, 99, operator.address(), dir.path());
    let owner_client =
        Client::new(&network.oracles()[0].api_url(), operator.clone()).expect("client");
    let refused = chain.block_on(owner_client.attest_link(&missing));
    assert!(
        matches!(&refused, Err(RemoteError::Refused { status: 409, body }) if body.reason.contains("licence 99 does not exist")),
        "{refused:?}"
    );

    let linked = r1ctl_as(&network, &key, &["licence", "link", "--node-proof", &path]);
    assert!(linked.status.success(), "{}", printed(&linked));
    assert_eq!(chain.licence_of_node(node.address()).expect("read"), 1);
    let shown = r1ctl_as(&network, &key, &["licence", "show", "1"]);
    let said = printed(&shown);
    assert!(
        said.contains(&node.address().to_string()) && said.contains("next link from"),
        "{said}"
    );

    // Unlinked, the licence takes no node again before the relink delay (one epoch here).
    let unlinked = r1ctl_as(&network, &key, &["licence", "unlink", "1"]);
    assert!(unlinked.status.success(), "{}", printed(&unlinked));
    let other = Identity::generate();
    let (_, path) = node_proof(&network, &other, 1, operator.address(), dir.path());
    let early = r1ctl_as(
        &network,
        &key,
        &[
            "licence",
            "link",
            "--node-proof",
            &path.display().to_string(),
        ],
    );
    assert!(!early.status.success(), "{}", printed(&early));
    assert!(
        printed(&early).contains("RelinkTooSoon"),
        "{}",
        printed(&early)
    );
}

/// What `r1ctl node info` says of `node`'s licence, once it says something.
fn licence_line(node: &r1_e2e::node::NodeAgent) -> String {
    let mut line = String::new();
    r1_e2e::wait::until(std::time::Duration::from_secs(30), || {
        let info = node.r1ctl(&["info"]);
        line = String::from_utf8_lossy(&info.stdout)
            .lines()
            .find(|l| l.starts_with("licence:"))
            .unwrap_or_default()
            .to_owned();
        !line.is_empty()
    });
    line
}

#[test]
fn a_node_says_at_boot_whether_it_is_linked() {
    let mut network = Network::prepare(&NetworkSettings {
        nodes: 2,
        ..NetworkSettings::default()
    })
    .expect("network");
    let chain = network.chain();
    // Node 1's operator unlinks it before it starts.
    chain
        .unlink_harness_node(network.nodes()[1].address)
        .expect("unlink");
    let block = format!(
        "chain: {{ rpcUrl: \"{}\", manager: \"{}\" }}",
        chain.url(),
        chain.manager()
    );
    for node in network.nodes() {
        node.add_config(&block).expect("chain block");
    }
    network.start_oracles().expect("oracles");
    network.start_nodes().expect("nodes");

    let linked = licence_line(&network.nodes()[0]);
    assert!(
        linked.contains("is linked to licence") && linked.contains("earned and not claimed"),
        "{linked}"
    );
    let unlinked = licence_line(&network.nodes()[1]);
    assert!(
        unlinked.contains("linked to no licence") && unlinked.contains("r1-node sign-link"),
        "{unlinked}"
    );
    assert!(
        network.nodes()[1].log().contains("linked to no licence"),
        "the node's log says it"
    );
}
