//! Resilience of a three-oracle network (real chain, broker and containerd): an oracle killed
//! while it deploys, commands that no listed oracle signed (or that are replayed, stale or early),
//! and a byzantine oracle that votes a wrong node set, stops healthy replicas and lies about
//! availability, and oracles whose wallets run dry. The honest parts must keep the job running
//! exactly once per replica and keep the chain's records honest.
//!
//! A vote counts once the chain has answered it: one that ran out of gas (its estimate was taken
//! while it would not decide, and another vote made it the deciding one) or that could not be
//! paid is sent again on the next pass, and a second vote in a round is refused by the chain.

#![allow(clippy::unwrap_used)] // test fixtures

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, keccak256};
use alloy::providers::Provider;
use r1_contracts::VoteOutcome;
use r1_e2e::TestChain;
use r1_e2e::broker::Role;
use r1_e2e::consensus::{
    AcceptedNodeSet, accepted_availability, accepted_node_sets, availability_votes, node_set_votes,
    read, recorded_availability,
};
use r1_e2e::network::{HEALTHY_TIMEOUT, HTTPD_IMAGE, Network, NetworkSettings};
use r1_e2e::node::TOPIC_ROOT;
use r1_e2e::peer::MqttPeer;
use r1_e2e::scenario;
use r1_e2e::wait::until;
use r1_protocol::messages::{DeployCommand, OracleObservation, StopCommand, WorkloadId};
use r1_protocol::topics::{Channel, Topics};
use r1_protocol::{Identity, MessageKind};
use serde_json::Value;

/// Pause between two polls that spawn processes (r1ctl, ctr), to leave the CPUs to the network.
const SLOW_POLL: Duration = Duration::from_millis(250);

/// Epochs long enough that a scenario never crosses one: every node-set vote of a scenario
/// counts in the same round.
fn one_epoch_settings() -> NetworkSettings {
    NetworkSettings {
        epoch_seconds: 120,
        ..NetworkSettings::default()
    }
}

fn apply_hello_web(network: &Network) {
    scenario::apply_examples(network, &scenario::HELLO_WEB).unwrap();
}

/// The only job of the CSP's escrow, once r1ctl has funded it.
fn funded_job(network: &Network) -> u64 {
    let chain = network.chain();
    let jobs = read(chain, || chain.gov().escrow_open_jobs(network.escrow())).unwrap();
    assert_eq!(jobs.len(), 1, "r1ctl apply funds exactly one job");
    u64::try_from(jobs[0].id).unwrap()
}

fn active_nodes(network: &Network, job: u64) -> BTreeSet<Address> {
    let chain = network.chain();
    read(chain, || chain.gov().job(job))
        .unwrap()
        .activeNodes
        .into_iter()
        .collect()
}

/// Waits until `oracles` all show hello-web Running with two ready replicas of `job`, and the
/// chain has validated two nodes; returns the validated set.
fn wait_running(network: &Network, oracles: &[usize], job: u64) -> BTreeSet<Address> {
    let running = until(Duration::from_secs(40), || {
        let all = oracles.iter().all(|&o| {
            scenario::job_status(network, o, "hello-web").is_some_and(|s| {
                s["phase"] == "Running"
                    && s["readyReplicas"] == 2
                    && s["chainJobId"].as_str() == Some(job.to_string().as_str())
            })
        });
        let done = all && active_nodes(network, job).len() == 2;
        if !done {
            std::thread::sleep(SLOW_POLL);
        }
        done
    });
    assert!(
        running,
        "job {job} did not reach Running and validated on oracles {oracles:?}\n{}",
        scenario::oracle_logs(network)
    );
    active_nodes(network, job)
}

/// `ctr <args>` in node `index`'s namespace: the non-empty lines of its output.
fn ctr_lines(network: &Network, index: usize, args: &[&str]) -> Vec<String> {
    let output = network.node_ctr(index, args).unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What runs in node `index`'s namespace: each container id with its task's pid and status
/// (`-` when it has no task).
fn containers(network: &Network, index: usize) -> BTreeMap<String, (String, String)> {
    let tasks: BTreeMap<String, (String, String)> = ctr_lines(network, index, &["tasks", "ls"])
        .into_iter()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let id = fields.next()?.to_owned();
            let pid = fields.next()?.to_owned();
            let status = fields.next()?.to_owned();
            Some((id, (pid, status)))
        })
        .collect();
    ctr_lines(network, index, &["containers", "ls", "-q"])
        .into_iter()
        .map(|id| {
            let task = tasks
                .get(&id)
                .cloned()
                .unwrap_or_else(|| ("-".into(), "-".into()));
            (id, task)
        })
        .collect()
}

/// Every node's containers, by node address.
fn all_containers(network: &Network) -> BTreeMap<Address, BTreeMap<String, (String, String)>> {
    network
        .node_addresses()
        .into_iter()
        .enumerate()
        .map(|(i, node)| (node, containers(network, i)))
        .collect()
}

/// The replica a container of `job` runs (`r1-<job>-<replica>-<revision hash>`).
fn replica_of(container: &str, job: u64) -> Option<u32> {
    container
        .strip_prefix(&format!("r1-{job}-"))?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// Whether exactly the validated nodes hold one running container of `job` each, for two
/// distinct replicas, and no other node holds anything.
fn exactly_once(
    found: &BTreeMap<Address, BTreeMap<String, (String, String)>>,
    active: &BTreeSet<Address>,
    job: u64,
) -> bool {
    let mut replicas = BTreeSet::new();
    for (node, containers) in found {
        let expected = usize::from(active.contains(node));
        if containers.len() != expected {
            return false;
        }
        for (id, (_, status)) in containers {
            if status != "RUNNING" {
                return false;
            }
            match replica_of(id, job) {
                Some(replica) => replicas.insert(replica),
                None => return false,
            };
        }
    }
    replicas.len() == 2
}

/// Waits until [`exactly_once`] holds, then checks it still holds a few seconds later (a
/// duplicate being started or a stray being stopped would show in between).
fn assert_exactly_once(network: &Network, job: u64) {
    let active = active_nodes(network, job);
    let settled = until(Duration::from_secs(15), || {
        let ok = exactly_once(&all_containers(network), &active, job);
        if !ok {
            std::thread::sleep(SLOW_POLL);
        }
        ok
    });
    assert!(
        settled,
        "containers are not one per validated node: {:#?} (validated {active:?})\n{}",
        all_containers(network),
        scenario::oracle_logs(network)
    );
    std::thread::sleep(Duration::from_secs(3));
    let later = all_containers(network);
    assert!(
        exactly_once(&later, &active_nodes(network, job), job),
        "containers changed after settling: {later:#?}"
    );
}

/// What an oracle logs when the chain refuses its second vote in a round (`AlreadyVoted`,
/// during gas estimation, so nothing is left on chain).
const SECOND_VOTE_REFUSED: &str = "this oracle's vote of the round was already counted";

/// No oracle has two counted votes in one round of `job`, and no oracle tried a second one: a
/// second vote in a round reverts with `AlreadyVoted` during gas estimation, which leaves no
/// trace on chain but a line in the voter's log ([`SECOND_VOTE_REFUSED`], or a failed vote
/// with that error's selector should the oracle stop telling the refusal apart).
fn assert_no_double_vote(network: &Network, job: u64) {
    let votes = node_set_votes(network.chain(), job).unwrap();
    let mut seen = BTreeSet::new();
    for vote in &votes {
        assert!(
            seen.insert((vote.round, vote.oracle)),
            "oracle {} voted twice in round {} of job {job}: {votes:#?}",
            vote.oracle,
            vote.round
        );
    }
    r1_e2e::phrases::assert_in_source(SECOND_VOTE_REFUSED);
    let already_voted =
        r1_protocol::hex::encode_bare(&keccak256("AlreadyVoted(bytes32,address)")[..4]);
    for oracle in network.oracles() {
        let log = oracle.log();
        let failed: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("node-set vote failed"))
            .collect();
        let twice: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains(SECOND_VOTE_REFUSED)
                    || (l.contains("node-set vote failed") && l.contains(&already_voted))
            })
            .collect();
        assert!(
            twice.is_empty(),
            "oracle {} tried to vote twice in a round: {twice:#?}",
            oracle.address
        );
        if !failed.is_empty() {
            eprintln!(
                "oracle {}: {} node-set vote(s) failed otherwise:\n{}",
                oracle.address,
                failed.len(),
                failed.join("\n")
            );
        }
    }
}

/// The chain accepted exactly one node set for `job`: `active`, in `round` (`why` says why
/// that round). Returns the acceptance.
fn assert_one_acceptance(
    network: &Network,
    job: u64,
    round: u64,
    active: &BTreeSet<Address>,
    why: &str,
) -> AcceptedNodeSet {
    let mut accepted = accepted_node_sets(network.chain(), job).unwrap();
    assert_eq!(accepted.len(), 1, "{accepted:#?}");
    let only = accepted.remove(0);
    assert_eq!(only.round, round, "{why}");
    assert_eq!(only.nodes.iter().copied().collect::<BTreeSet<_>>(), *active);
    only
}

#[test]
fn an_oracle_killed_mid_reconcile_duplicates_nothing_and_never_votes_twice() {
    let mut network = Network::start(&one_epoch_settings()).unwrap();
    apply_hello_web(&network);
    let job = funded_job(&network);

    // Kill the oracle that sent the first deploy command with SIGKILL, while the replicas
    // are starting, and start it again on the same data. (Only the first oracle to act
    // deploys: the others find the replicas already reported and adopt them.)
    let deployed = |network: &Network, o: usize| {
        network.oracles()[o].metric("r1_oracle_commands_total{name=\"deploy\"}") >= 1.0
    };
    let mut victim = None;
    until(Duration::from_secs(20), || {
        victim = (0..3).find(|&o| deployed(&network, o));
        victim.is_some()
    });
    let Some(victim) = victim else {
        panic!("no oracle deployed\n{}", scenario::oracle_logs(&network));
    };
    network.oracles_mut()[victim].kill();
    network.oracles_mut()[victim].start().unwrap();
    network.oracles_mut()[victim]
        .wait_healthy(HEALTHY_TIMEOUT)
        .unwrap();

    // Kill another one right after its first node-set vote (before the set may be accepted),
    // and start it again: the chain counted its vote, so it must not vote again.
    let voted = |network: &Network, o: usize| {
        network.oracles()[o].metric("r1_oracle_votes_total{kind=\"nodeset\"") >= 1.0
    };
    let others: Vec<usize> = (0..3).filter(|&o| o != victim).collect();
    let mut second = None;
    until(Duration::from_secs(30), || {
        second = others.iter().copied().find(|&o| voted(&network, o));
        second.is_some()
    });
    // The set needs two agreeing votes, so one of the other two oracles votes.
    let Some(second) = second else {
        panic!(
            "neither other oracle voted within 30 s\n{}",
            scenario::oracle_logs(&network)
        );
    };
    network.oracles_mut()[second].kill();
    network.oracles_mut()[second].start().unwrap();
    network.oracles_mut()[second]
        .wait_healthy(HEALTHY_TIMEOUT)
        .unwrap();

    wait_running(&network, &[0, 1, 2], job);
    assert_exactly_once(&network, job);
    assert_no_double_vote(&network, job);
    let accepted = accepted_node_sets(network.chain(), job).unwrap();
    assert_eq!(accepted.len(), 1, "one validation, no churn: {accepted:#?}");
}

#[test]
fn commands_no_listed_oracle_signed_or_replayed_stale_or_early_ones_are_refused() {
    let network = Network::start(&one_epoch_settings()).unwrap();
    let broker = network.broker();
    // A spy on each node's command topic, with that node's own key (nobody else may listen
    // there), to replay what a real oracle sent.
    let spies: Vec<MqttPeer> = network
        .nodes()
        .iter()
        .map(|node| {
            let topic = Topics::new(TOPIC_ROOT).topic(Channel::Commands, &node.address);
            MqttPeer::connect(broker, node.identity(), Role::Node, &[topic]).unwrap()
        })
        .collect();
    apply_hello_web(&network);
    let job = funded_job(&network);
    let active = wait_running(&network, &[0, 1, 2], job);
    assert_exactly_once(&network, job);
    let before = all_containers(&network);
    let metric = |index: usize, kind: &str, outcome: &str| {
        network.nodes()[index].metric(&format!(
            "r1_node_commands_total{{kind=\"{kind}\",outcome=\"{outcome}\"}}"
        ))
    };
    // What every node obeyed so far (an oracle may have placed and then stopped a replica
    // anywhere while the job started).
    let obeyed = || -> Vec<(f64, f64)> {
        (0..network.nodes().len())
            .map(|i| {
                (
                    metric(i, "deploy", "accepted"),
                    metric(i, "stop", "accepted"),
                )
            })
            .collect()
    };
    let obeyed_before = obeyed();

    let nodes = network.node_addresses();
    let holder = *active.first().unwrap();
    let holder_index = nodes.iter().position(|n| *n == holder).unwrap();
    let idle_index = nodes.iter().position(|n| !active.contains(n)).unwrap();
    let idle = nodes[idle_index];
    let held_replica = before[&holder]
        .keys()
        .find_map(|id| replica_of(id, job))
        .unwrap();
    let bogus = r1_e2e::node::workload(4242, 0, HTTPD_IMAGE, 64);
    let hijack = r1_e2e::node::workload(job, held_replica, HTTPD_IMAGE, 64);

    // A stranger (a fresh key no node lists, but an oracle to the broker) deploys, hijacks
    // and stops.
    let stranger = MqttPeer::connect(broker, Identity::generate(), Role::Oracle, &[]).unwrap();
    for node in [holder, idle] {
        let deploy = DeployCommand {
            target: node,
            workload: bogus.clone(),
        };
        stranger.send(Channel::Commands, node, &deploy);
    }
    let hijacking = DeployCommand {
        target: holder,
        workload: hijack.clone(),
    };
    stranger.send(Channel::Commands, holder, &hijacking);
    let stop = StopCommand {
        target: holder,
        workload: WorkloadId {
            job,
            replica: held_replica,
        },
        reason: "forged".into(),
    };
    stranger.send(Channel::Commands, holder, &stop);

    // The stranger's signature under a listed oracle's name.
    let oracle = network.oracles()[0].address;
    let mut forged = stranger.seal_at(&hijacking, r1_protocol::now_ms());
    forged.sender = oracle;
    stranger.publish_raw(Channel::Commands, holder, forged.to_bytes());

    // A real oracle's deploy to the holder, published again.
    let real = spies
        .iter()
        .flat_map(MqttPeer::heard)
        .find(|h| {
            h.owner == holder
                && r1_protocol::Envelope::from_bytes(&h.bytes)
                    .is_ok_and(|e| e.kind == MessageKind::Deploy)
        })
        .expect("the spy heard the oracles deploy to the holder");
    stranger.publish_raw(Channel::Commands, holder, real.bytes.clone());

    // A listed oracle's key, but sealed five minutes ago, or a minute from now.
    let as_oracle = MqttPeer::connect(
        broker,
        network.oracles()[0].identity().clone(),
        Role::Oracle,
        &[],
    )
    .unwrap();
    let now = r1_protocol::now_ms();
    let deploy_bogus = DeployCommand {
        target: holder,
        workload: bogus.clone(),
    };
    for at in [now - 300_000, now + 60_000] {
        let envelope = as_oracle.seal_at(&deploy_bogus, at);
        as_oracle.publish_raw(Channel::Commands, holder, envelope.to_bytes());
    }

    let expected = [
        (holder_index, "deploy", "unknown_sender", 2.0),
        (holder_index, "stop", "unknown_sender", 1.0),
        (holder_index, "deploy", "bad_signature", 1.0),
        (holder_index, "deploy", "replayed", 1.0),
        (holder_index, "deploy", "stale", 1.0),
        (holder_index, "deploy", "from_the_future", 1.0),
        (idle_index, "deploy", "unknown_sender", 1.0),
    ];
    let refused = until(Duration::from_secs(10), || {
        expected
            .iter()
            .all(|&(i, kind, outcome, count)| metric(i, kind, outcome) >= count)
    });
    let counts: Vec<_> = expected
        .iter()
        .map(|&(i, kind, outcome, _)| (i, kind, outcome, metric(i, kind, outcome)))
        .collect();
    assert!(refused, "not every command was refused: {counts:?}");

    // Nothing started or stopped: no node obeyed anything new, the job's replicas run in the
    // same tasks, and the oracles still see the job validated on the same nodes.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(obeyed(), obeyed_before, "a node obeyed a refused command");
    let after = all_containers(&network);
    assert_eq!(after, before, "the replicas were touched");
    assert!(
        after[&idle].is_empty(),
        "something started on the idle node"
    );
    assert_eq!(active_nodes(&network, job), active);
    assert_eq!(
        wait_running(&network, &[0, 1, 2], job),
        active,
        "the validated set moved"
    );
}

/// Moves the chain's clock to the wall clock. The development chain's clock starts a few
/// seconds behind it, while the oracles date epochs by the wall clock: an oracle would submit
/// an epoch's availability before the chain considers that epoch ended, and lose its vote (see
/// the report of issue 5). A live chain's blocks carry the current time.
fn align_chain_clock(chain: &TestChain) {
    let now_s = r1_protocol::now_ms().div_ceil(1000);
    let rpc = chain.devchain().rpc();
    read(chain, || {
        rpc.raw_request::<_, Value>("evm_setNextBlockTimestamp".into(), (now_s,))
    })
    .unwrap();
    read(chain, || {
        rpc.raw_request::<_, String>("evm_mine".into(), Vec::<u64>::new())
    })
    .unwrap();
}

/// Starts oracles 0 and 1 only (waiting until both are healthy), then the nodes: oracle 2 stays
/// registered on chain and listed by every node, and the test plays it with its key.
fn start_with_a_silent_third_oracle(settings: &NetworkSettings) -> Network {
    let mut network = Network::prepare(settings).unwrap();
    for o in 0..2 {
        network.oracles_mut()[o].start().unwrap();
    }
    for o in 0..2 {
        network.oracles_mut()[o]
            .wait_healthy(HEALTHY_TIMEOUT)
            .unwrap();
    }
    network.start_nodes().unwrap();
    network
}

#[test]
fn a_byzantine_oracle_loses_the_node_set_vote() {
    let network = start_with_a_silent_third_oracle(&one_epoch_settings());
    let chain = network.chain();
    let liar_key = network.oracles()[2].identity().clone();
    let liar = chain.suite_as(liar_key.signer());
    // A licensed node that never runs anything: the liar's favourite.
    let ghost_key = Identity::generate();
    let ghost = ghost_key.address();
    chain
        .license_node(ghost_key.signer(), network.oracles()[0].identity().signer())
        .unwrap();

    apply_hello_web(&network);
    let job = funded_job(&network);
    let round = read(chain, || chain.gov().job_round(job)).unwrap();
    let mut lie = vec![ghost, network.node_addresses()[0]];
    lie.sort();
    let outcome = read(chain, || liar.submit_node_update(job, &lie)).unwrap();
    assert_eq!(outcome, VoteOutcome::Pending, "one vote decides nothing");

    let active = wait_running(&network, &[0, 1], job);
    assert!(!active.contains(&ghost), "the liar's ghost was validated");
    let accepted = assert_one_acceptance(
        &network,
        job,
        round,
        &active,
        "the honest set won the very round the liar voted in",
    );
    let votes = node_set_votes(chain, job).unwrap();
    let in_round: BTreeMap<Address, _> = votes
        .iter()
        .filter(|v| v.round == round)
        .map(|v| (v.oracle, v.proposal))
        .collect();
    assert_eq!(
        in_round.len(),
        3,
        "all three voted in round {round}: {votes:#?}"
    );
    assert_ne!(in_round[&liar_key.address()], accepted.proposal);
    for honest in &network.oracle_addresses()[..2] {
        assert_eq!(in_round[honest], accepted.proposal);
    }
    assert_exactly_once(&network, job);
}

#[test]
fn stops_from_a_byzantine_oracle_are_undone_by_the_honest_ones() {
    // All three oracle processes run; a byzantine actor also holds oracle 2's key and uses it to
    // stop a healthy replica. Its signature is a listed oracle's, so the node obeys: what the
    // network guarantees is that the honest oracles see the replica gone and deploy it again,
    // once the node has stopped it (httpd ignores SIGTERM, so after the node's 10 s stop grace):
    // about 12 s here.
    let network = Network::start(&one_epoch_settings()).unwrap();
    apply_hello_web(&network);
    let job = funded_job(&network);
    let active = wait_running(&network, &[0, 1, 2], job);
    assert_exactly_once(&network, job);

    let before = all_containers(&network);
    let victim = *active.first().unwrap();
    let victim_index = network
        .node_addresses()
        .iter()
        .position(|n| *n == victim)
        .unwrap();
    let (container, (pid, _)) = before[&victim].iter().next().unwrap();
    let replica = replica_of(container, job).unwrap();
    let liar_key = network.oracles()[2].identity().clone();
    let liar = MqttPeer::connect(network.broker(), liar_key, Role::Oracle, &[]).unwrap();
    let stopped_at = Instant::now();
    liar.send(
        Channel::Commands,
        victim,
        &StopCommand {
            target: victim,
            workload: WorkloadId { job, replica },
            reason: "byzantine".into(),
        },
    );
    let obeyed = until(Duration::from_secs(10), || {
        network.nodes()[victim_index]
            .metric("r1_node_commands_total{kind=\"stop\",outcome=\"accepted\"}")
            >= 1.0
    });
    assert!(obeyed, "the node refused a listed oracle's stop");
    let restored = until(Duration::from_secs(30), || {
        let now = all_containers(&network);
        let restarted = now
            .values()
            .flat_map(|c| c.iter())
            .any(|(id, (new_pid, status))| {
                replica_of(id, job) == Some(replica) && status == "RUNNING" && new_pid != pid
            });
        let ok = restarted && exactly_once(&now, &active_nodes(&network, job), job);
        if !ok {
            std::thread::sleep(SLOW_POLL);
        }
        ok
    });
    assert!(
        restored,
        "replica {replica} was not restored: {:#?}\n{}",
        all_containers(&network),
        scenario::oracle_logs(&network)
    );
    eprintln!(
        "replica {replica}, stopped by a byzantine oracle, ran again after {:?}",
        stopped_at.elapsed()
    );
    wait_running(&network, &[0, 1, 2], job);
}

#[test]
fn a_byzantine_oracle_does_not_move_the_availability_median() {
    let settings = NetworkSettings {
        epoch_seconds: 4,
        ..NetworkSettings::default()
    };
    let network = start_with_a_silent_third_oracle(&settings);
    let chain = network.chain();
    align_chain_clock(chain);
    let liar_key = network.oracles()[2].identity().clone();
    let liar = chain.suite_as(liar_key.signer());
    let liar_peer =
        MqttPeer::connect(network.broker(), liar_key.clone(), Role::Oracle, &[]).unwrap();
    let ghost_key = Identity::generate();
    let ghost = ghost_key.address();
    chain
        .license_node(ghost_key.signer(), network.oracles()[0].identity().signer())
        .unwrap();
    let nodes = network.node_addresses();

    // The liar's table: every real node absent all epoch, the ghost always there.
    let mut table: BTreeMap<Address, u8> = nodes.iter().map(|n| (*n, 0)).collect();
    table.insert(ghost, 255);
    let rows: Vec<(Address, u8)> = table.iter().map(|(n, a)| (*n, *a)).collect();

    // The first epoch that starts once every node has had two seconds to heartbeat.
    let genesis_ms = chain.genesis_unix() * 1000;
    let length_ms = chain.epoch_seconds() * 1000;
    let epoch_at = |ms: u64| (ms - genesis_ms) / length_ms;
    let mut epoch = epoch_at(r1_protocol::now_ms() + 2_000) + 1;
    // The moment the epoch ends, the liar submits its table on chain and publishes it to the
    // honest oracles. Should an honest decision beat it there, it tries the next epoch.
    let mut counted = false;
    for _ in 0..3 {
        let end_ms = genesis_ms + (epoch + 1) * length_ms;
        let wait = end_ms.saturating_sub(r1_protocol::now_ms());
        std::thread::sleep(Duration::from_millis(wait + 20));
        let submitted = read(chain, || liar.submit_availability(epoch, &rows));
        liar_peer.send(
            Channel::Observations,
            liar_key.address(),
            &OracleObservation {
                epoch,
                availability: table.clone(),
                job_nodes: BTreeMap::new(),
            },
        );
        match submitted {
            Ok(_) => {
                counted = true;
                break;
            }
            Err(e) => eprintln!("the liar's availability vote for epoch {epoch} failed: {e}"),
        }
        epoch += 1;
    }
    assert!(counted, "the liar never got its availability vote in");

    let recorded = until(Duration::from_secs(15), || {
        read(chain, || chain.gov().availability_recorded(epoch)).unwrap_or(false)
    });
    assert!(
        recorded,
        "availability of epoch {epoch} was never agreed\n{}",
        scenario::oracle_logs(&network)
    );
    let votes = availability_votes(chain, epoch).unwrap();
    let winner = accepted_availability(chain, epoch).unwrap().unwrap();
    let lie = votes
        .iter()
        .find(|v| v.oracle == liar_key.address())
        .unwrap()
        .proposal;
    assert_ne!(winner, lie, "the liar's table was accepted");
    let availability = recorded_availability(chain, epoch).unwrap();
    assert!(
        !availability.contains_key(&ghost),
        "the ghost was paid for epoch {epoch}: {availability:?}"
    );
    for node in &nodes {
        let byte = availability.get(node).copied().unwrap_or(0);
        assert!(
            byte >= 128,
            "node {node} was up all epoch {epoch} but recorded at {byte}: {availability:?}"
        );
    }
}

/// Seconds left in the chain's current epoch.
fn seconds_left_in_epoch(chain: &TestChain) -> u64 {
    let length = chain.epoch_seconds();
    let elapsed = (r1_protocol::now_ms() / 1000).saturating_sub(chain.genesis_unix()) % length;
    length - elapsed
}

/// How many node-set votes of oracle `index` failed (and are to be tried again).
fn failed_votes(network: &Network, index: usize) -> usize {
    network.oracles()[index]
        .log()
        .lines()
        .filter(|l| l.contains("node-set vote failed"))
        .count()
}

#[test]
fn oracles_whose_wallets_ran_dry_vote_in_the_same_round_once_refilled() {
    let network = Network::start(&one_epoch_settings()).unwrap();
    let chain = network.chain();
    let oracles = network.oracle_addresses();
    // Two of three cannot pay for a transaction: oracle 0's vote alone decides nothing.
    for &poor in &oracles[1..] {
        chain.give_ether(poor, 0).unwrap();
    }
    apply_hello_web(&network);
    let job = funded_job(&network);

    // Wait until both poor oracles tried, with time enough left in the epoch (the round) for
    // their next attempts; an epoch about to end starts the wait again in the next one.
    let tried = until(Duration::from_secs(150), || {
        let both = (1..3).all(|o| failed_votes(&network, o) >= 1);
        let counted = node_set_votes(chain, job)
            .unwrap()
            .iter()
            .any(|v| v.oracle == oracles[0]);
        let done = both && counted && seconds_left_in_epoch(chain) >= 40;
        if !done {
            std::thread::sleep(SLOW_POLL);
        }
        done
    });
    assert!(
        tried,
        "the poor oracles never tried to vote\n{}",
        scenario::oracle_logs(&network)
    );
    let round = read(chain, || chain.gov().job_round(job)).unwrap();
    assert!(
        active_nodes(&network, job).is_empty(),
        "one vote must not decide"
    );

    for &poor in &oracles[1..] {
        chain.give_ether(poor, 100).unwrap();
    }
    let active = wait_running(&network, &[0, 1, 2], job);
    assert_one_acceptance(
        &network,
        job,
        round,
        &active,
        "the refilled oracles' retries decided the round oracle 0 voted in",
    );
    assert_no_double_vote(&network, job);
    assert_exactly_once(&network, job);
}
