//! A node operator's life on a devnet, end to end on real parts (chain, broker, three oracles,
//! two node agents on containerd): node 1 is freshly installed and on no licence, governance
//! suspends node 0 with `r1ctl oracle suspend`, and the CSP applies a two-replica job. Neither
//! node gets work. The operator buys a licence and links node 1 with `r1ctl licence` (the node
//! signs its consent, an oracle co-signs): node 1 gets a replica at once, node 0 still none.
//! When the suspension ends node 0 takes the second replica; once an epoch is allocated node 1
//! has earned, and its operator claims R1 with `r1ctl licence claim`. Governance then mints the
//! operator a Master Node Deed through the timelock (`r1ctl oracle mint-reserved`).

use std::time::Duration;

use r1_e2e::chain::{FUNDING_ETHER, GOVERNANCE_KEY};
use r1_e2e::network::{Network, NetworkSettings};
use r1_e2e::scenario::{
    HELLO_WEB, active_nodes, apply_examples, job_status, oracle_logs, printed, read_chain,
    wait_running,
};
use r1_e2e::wait::until;
use r1_protocol::Identity;

/// Runs r1ctl as whoever's key file is `key`.
fn r1ctl_as(network: &Network, key: &std::path::Path, args: &[&str]) -> std::process::Output {
    network.r1ctl_as(key, args).expect("run r1ctl")
}

/// Writes `identity`'s key file into `dir` as `name`.
fn key_file(dir: &std::path::Path, name: &str, identity: &Identity) -> std::path::PathBuf {
    let path = dir.join(name);
    r1_protocol::keyfile::write(&path, identity).expect("key file");
    path
}

/// The ready replicas of `hello-web` as oracle 0 serves it (0 until it has a status), asked at
/// most twice a second: the API limits each key's rate, and the CSP's key polls it.
fn ready(network: &Network) -> u64 {
    std::thread::sleep(Duration::from_millis(500));
    job_status(network, 0, "hello-web")
        .and_then(|s| s["readyReplicas"].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_linked_fresh_node_gets_work_and_earns_while_unlinked_and_suspended_ones_get_none() {
    let mut network = Network::prepare(&NetworkSettings {
        nodes: 2,
        epoch_seconds: 12,
        ..NetworkSettings::default()
    })
    .expect("network");
    let dir = tempfile::tempdir().expect("dir");
    let (suspended, fresh) = (network.nodes()[0].address, network.nodes()[1].address);
    // Node 1 is freshly installed: its harness licence gives it up before it starts.
    network.chain().unlink_harness_node(fresh).expect("unlink");
    network.start_oracles().expect("oracles");
    network.start_nodes().expect("nodes");
    let chain = network.chain();

    // Governance suspends node 0 for four epochs.
    let secret = r1_e2e::chain::signer(GOVERNANCE_KEY)
        .expect("key")
        .to_bytes()
        .0;
    let governance = key_file(
        dir.path(),
        "governance.key",
        &Identity::from_secret(&secret).expect("key"),
    );
    let shown = r1ctl_as(&network, &governance, &["oracle", "show"]);
    assert!(
        printed(&shown).contains("quorum rule      reference"),
        "{}",
        printed(&shown)
    );
    let suspend = r1ctl_as(
        &network,
        &governance,
        &["oracle", "suspend", &suspended.to_string(), "--epochs", "4"],
    );
    assert!(suspend.status.success(), "{}", printed(&suspend));
    let until_epoch = chain
        .block_on(chain.gov().node_licence(suspended))
        .expect("read")
        .expect("licensed")
        .suspended_until_epoch;
    assert!(until_epoch > chain.current_epoch().expect("epoch"));
    let stranger = key_file(dir.path(), "stranger.key", &Identity::generate());
    let refused = r1ctl_as(
        &network,
        &stranger,
        &["oracle", "suspend", &fresh.to_string(), "--epochs", "4"],
    );
    assert!(
        !refused.status.success() && printed(&refused).contains("NotGuardian"),
        "{}",
        printed(&refused)
    );

    // The CSP's two replicas find no node that may work.
    apply_examples(&network, &HELLO_WEB).expect("apply");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        ready(&network),
        0,
        "an unlinked and a suspended node got work"
    );

    // The operator buys a licence and links node 1.
    let operator = Identity::generate();
    let operator_key = key_file(dir.path(), "operator.key", &operator);
    // The harness's chain client may hold a connection the chain closed while the test slept.
    read_chain(|| chain.give_ether(operator.address(), FUNDING_ETHER)).expect("ether");
    read_chain(|| {
        chain.block_on(
            chain
                .gov()
                .mint_r1(operator.address(), r1_contracts::units::r1_units(1_000)),
        )
    })
    .expect("R1");
    let bought = r1ctl_as(&network, &operator_key, &["licence", "buy"]);
    let said = printed(&bought);
    assert!(bought.status.success(), "{said}");
    let licence: u64 = said
        .split("bought licence ")
        .nth(1)
        .and_then(|rest| rest.trim().parse().ok())
        .expect("a licence id");
    let proof = read_chain(|| {
        chain.block_on(r1_node::licence::sign_link(
            &network.nodes()[1].identity(),
            &chain.url(),
            chain.manager(),
            licence,
            operator.address(),
            600,
        ))
    })
    .expect("the node signs");
    let proof_path = dir.path().join("proof.json");
    std::fs::write(&proof_path, serde_json::to_vec(&proof).expect("json")).expect("proof");
    let linked = r1ctl_as(
        &network,
        &operator_key,
        &[
            "licence",
            "link",
            "--node-proof",
            &proof_path.display().to_string(),
        ],
    );
    assert!(linked.status.success(), "{}", printed(&linked));

    // Node 1 gets a replica at once; node 0 none while its suspension lasts.
    assert!(
        until(Duration::from_secs(40), || ready(&network) == 1),
        "the linked node got no replica"
    );
    let mut job = None;
    assert!(
        until(Duration::from_secs(10), || {
            std::thread::sleep(Duration::from_millis(500));
            job = job_status(&network, 0, "hello-web")
                .and_then(|s| s["chainJobId"].as_str()?.parse::<u64>().ok());
            job.is_some()
        }),
        "no chain job"
    );
    let job = job.expect("a chain job");
    assert!(
        until(Duration::from_secs(30), || active_nodes(&network, job)
            .is_ok_and(|nodes| nodes == vec![fresh])),
        "the chain did not validate node 1 alone: {}",
        oracle_logs(&network)
    );
    assert!(
        read_chain(|| chain.current_epoch()).expect("epoch") < until_epoch,
        "the suspension ended too soon for the test to mean anything"
    );

    // Once the suspension ends, node 0 takes the second replica.
    wait_running(&network, "hello-web", 2, Duration::from_secs(90)).expect("two replicas");
    assert!(read_chain(|| chain.current_epoch()).expect("epoch") >= until_epoch);
    assert!(
        until(Duration::from_secs(30), || active_nodes(&network, job)
            .is_ok_and(
                |nodes| nodes.contains(&suspended) && nodes.contains(&fresh)
            )),
        "the chain did not validate both nodes"
    );

    // Node 1 earned once an epoch it served was allocated; its operator claims R1.
    let pending =
        || read_chain(|| chain.block_on(chain.gov().pending_rewards(fresh))).unwrap_or_default();
    assert!(
        until(Duration::from_secs(60), || !pending().is_zero()),
        "node 1 earned nothing"
    );
    let shown = r1ctl_as(
        &network,
        &operator_key,
        &["licence", "show", &licence.to_string()],
    );
    assert!(
        printed(&shown).contains("USDC units not claimed"),
        "{}",
        printed(&shown)
    );
    let r1_of = |who| {
        read_chain(|| chain.block_on(async { chain.gov().r1().balanceOf(who).call().await }))
            .expect("balance")
    };
    let r1_before = r1_of(operator.address());
    let claimed = r1ctl_as(
        &network,
        &operator_key,
        &["licence", "claim", &fresh.to_string()],
    );
    assert!(claimed.status.success(), "{}", printed(&claimed));
    let r1_after = r1_of(operator.address());
    assert!(r1_after > r1_before, "the claim paid no R1");

    // Governance mints the operator a Master Node Deed through the timelock: it mines, it
    // takes no jobs.
    let minted = r1ctl_as(
        &network,
        &governance,
        &["oracle", "mint-reserved", &operator.address().to_string()],
    );
    assert!(minted.status.success(), "{}", printed(&minted));
    let shown = r1ctl_as(&network, &operator_key, &["licence", "show", "1000001"]);
    assert!(
        printed(&shown).contains("Master Node Deed") && printed(&shown).contains("takes no jobs"),
        "{}",
        printed(&shown)
    );
}
