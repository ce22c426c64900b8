//! A delegate key drives a CSP's jobs through every oracle: three oracles, three nodes, a real
//! chain, broker and containerd. The CSP deposits USDC in its escrow and delegates a key
//! (`r1ctl escrow`); the delegate applies the example job with `--owner` — funded from the
//! escrow's free balance, validated by all three oracles — scales it up by applying more
//! replicas (the escrow job is extended from the free balance), and deletes it (closed on chain,
//! the rest refunded). Once revoked, the delegate's requests are refused by every oracle.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use r1_e2e::network::{Network, NetworkSettings};
use r1_e2e::scenario::{EXAMPLES, chain_job, network_logs, printed, wait_closed, wait_running};
use r1_e2e::wait::until;
use r1_protocol::Identity;

/// `r1ctl ARGS` as the delegate (key file `key`) acting for the network's CSP through oracle
/// `oracle`.
fn as_delegate(network: &Network, key: &Path, oracle: usize, args: &[&str]) -> Output {
    network
        .r1ctl_command()
        .expect("r1ctl")
        .env("R1_SERVER", network.oracles()[oracle].api_url())
        .env("R1_KEY", key)
        .env("R1_OWNER", network.csp().address().to_checksum(None))
        .args(args)
        .output()
        .expect("r1ctl")
}

/// The example job with `replicas`, written next to the network's other scratch files.
fn job_file(network: &Network, replicas: u32) -> String {
    let text = std::fs::read_to_string(format!("{EXAMPLES}/job-http.yaml")).expect("example");
    let text = text.replace("replicas: 2", &format!("replicas: {replicas}"));
    let path = network.scratch_dir().join(format!("job-{replicas}.yaml"));
    std::fs::write(&path, text).expect("write job");
    path.display().to_string()
}

#[test]
fn a_delegate_funds_scales_and_deletes_a_job_until_it_is_revoked() {
    let network = Network::start(&NetworkSettings::default()).expect("network");
    let delegate = Identity::generate();
    let key = network.scratch_dir().join("delegate.key");
    r1_protocol::keyfile::write(&key, &delegate).expect("delegate key");
    network
        .chain()
        .give_ether(delegate.address(), 10)
        .expect("gas for the delegate");
    let csp_usdc = || network.chain().usdc_balance(network.csp().address());

    // The CSP: 40 USDC into the escrow, and the delegate may create and extend.
    for args in [
        vec!["escrow", "deposit", "40"],
        vec!["escrow", "delegate", &format!("{}", delegate.address())],
    ] {
        let out = network.r1ctl(&args).expect("r1ctl escrow");
        assert!(out.status.success(), "{}", printed(&out));
    }
    let shown = network
        .r1ctl(&["escrow", "show"])
        .expect("r1ctl escrow show");
    assert!(
        printed(&shown).contains("free balance 40.00 USDC")
            && printed(&shown).contains("create,extend-duration,extend-nodes"),
        "{}",
        printed(&shown)
    );
    let wallet_before = csp_usdc().expect("usdc");

    // The delegate applies and funds the job; every oracle runs it as the CSP's.
    let applied = as_delegate(
        &network,
        &key,
        1,
        &[
            "apply",
            "-f",
            &format!("{EXAMPLES}/escrow.yaml"),
            "-f",
            &format!("{EXAMPLES}/project.yaml"),
            "-f",
            &job_file(&network, 2),
        ],
    );
    assert!(applied.status.success(), "{}", printed(&applied));
    assert!(
        printed(&applied).contains("DeeployJob default/hello-web funded: chain job"),
        "{}",
        printed(&applied)
    );
    let job_id = wait_running(&network, "hello-web", 2, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}\n{}", network_logs(&network)));
    assert_eq!(
        csp_usdc().expect("usdc"),
        wallet_before,
        "paid from the escrow, not the CSP's wallet"
    );

    // Scaling up by applying more replicas extends the escrow job; a third replica runs.
    let scaled = as_delegate(&network, &key, 2, &["apply", "-f", &job_file(&network, 3)]);
    assert!(scaled.status.success(), "{}", printed(&scaled));
    assert!(
        printed(&scaled).contains("nodes 2 → 3"),
        "{}",
        printed(&scaled)
    );
    wait_running(&network, "hello-web", 3, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}\n{}", network_logs(&network)));
    let job = chain_job(&network, job_id).expect("chain job");
    assert_eq!(job.numberOfNodesRequested, alloy::primitives::U256::from(3));

    // The delegate deletes it: closed on chain by the oracles, Closed everywhere.
    let deleted = as_delegate(&network, &key, 0, &["delete", "djob", "hello-web"]);
    assert!(deleted.status.success(), "{}", printed(&deleted));
    assert!(
        wait_closed(&network, "hello-web", Duration::from_secs(90)),
        "the job was never closed\n{}",
        network_logs(&network)
    );

    // Revoked: every oracle refuses the delegate within the delegation cache's 10 s.
    let revoke = network
        .r1ctl(&["escrow", "revoke", &format!("{}", delegate.address())])
        .expect("r1ctl escrow revoke");
    assert!(revoke.status.success(), "{}", printed(&revoke));
    let refused_everywhere = until(Duration::from_secs(20), || {
        (0..network.oracles().len()).all(|o| {
            let out = as_delegate(
                &network,
                &key,
                o,
                &["apply", "--no-fund", "-f", &job_file(&network, 1)],
            );
            !out.status.success() && printed(&out).contains("is not a delegate")
        })
    });
    assert!(refused_everywhere, "a revoked delegate is still accepted");
}
