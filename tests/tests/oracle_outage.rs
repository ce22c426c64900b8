//! Outages are Unknown, not failure: a job runs validated on two nodes, then the oracles lose
//! the chain RPC (a blackholing proxy) and everyone loses the broker (stopped) for two minutes.
//! Meanwhile every replica keeps running and answering, nothing is stopped, moved or closed;
//! afterwards the oracles catch up from what they observe: the job is Running and validated
//! again with the same containers, and the epochs that passed are allocated.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use r1_contracts::Suite;
use r1_contracts::bindings::CspEscrow;
use r1_e2e::network::{Network, NetworkSettings};
use r1_e2e::node::http_get;
use r1_e2e::phrases;
use r1_e2e::proxy::Outage;
use r1_e2e::scenario;
use r1_e2e::wait::until;
use serde_json::Value;

/// The outage the issue asks the network to ride out; the chain RPC comes back after it.
const OUTAGE: Duration = Duration::from_secs(120);

/// The broker comes back a little later than the chain. Every client lost the broker at the same
/// moment, so their reconnection backoffs run in phase (oracles retry every 5 s by then, nodes
/// every 10 s): after 124.5 s the oracles reconnect about 6 s before the nodes, longer than the
/// 3 s grace after which a node's silence on a live link means loss. Restoring at 120 s would
/// let them in 1.3 s apart and hide that window.
const BROKER_OUTAGE: Duration = Duration::from_millis(124_500);

/// How long the baseline must hold still before the outage starts.
const SETTLE: Duration = Duration::from_secs(3);

/// How long the network is watched after the outage: longer than any node needs to reconnect
/// (at most 10 s) plus the grace after which silence would mean loss.
const WATCH_AFTER: Duration = Duration::from_secs(25);

/// How often the replicas are checked during the outage.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// One replica as its node's agent lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Replica {
    node: usize,
    workload: String,
    state: String,
    restarts: u32,
    host_port: u16,
}

/// What runs where, as the nodes and containerd tell it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Baseline {
    replicas: BTreeSet<Replica>,
    containers: Vec<BTreeSet<String>>,
    tasks: Vec<BTreeSet<String>>,
}

impl Baseline {
    fn take(network: &Network) -> Self {
        Self {
            replicas: replicas(network),
            containers: containers(network),
            tasks: running_tasks(network).into_iter().map(|(t, _)| t).collect(),
        }
    }

    /// Two running replicas answering HTTP, and exactly their two containers and tasks.
    fn is_clean(&self) -> bool {
        let count = |sets: &[BTreeSet<String>]| sets.iter().map(BTreeSet::len).sum::<usize>();
        self.replicas.len() == 2
            && self
                .replicas
                .iter()
                .all(|r| r.state == "running" && http_get(r.host_port, "/").is_some())
            && count(&self.containers) == 2
            && self.containers == self.tasks
    }
}

fn validated(status: &Value) -> bool {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Validated" && c["status"] == "True")
}

/// Running 2/2 and validated on every oracle; the chain job id they agree on.
fn running_everywhere(network: &Network) -> Option<u64> {
    let statuses: Vec<Value> = (0..network.oracles().len())
        .map(|o| scenario::job_status(network, o, "hello-web"))
        .collect::<Option<_>>()?;
    let id: u64 = statuses[0]["chainJobId"].as_str()?.parse().ok()?;
    statuses
        .iter()
        .all(|s| {
            s["chainJobId"].as_str() == Some(&id.to_string())
                && s["phase"] == "Running"
                && s["readyReplicas"] == 2
                && validated(s)
        })
        .then_some(id)
}

fn logs(network: &Network) -> String {
    let oracles: String = network
        .oracles()
        .iter()
        .map(|o| format!("--- oracle {}\n{}", o.address, tail(&o.log(), 60)))
        .collect();
    let nodes: String = network
        .nodes()
        .iter()
        .map(|n| format!("--- node {}\n{}", n.address, tail(&n.log(), 30)))
        .collect();
    oracles + &nodes
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n") + "\n"
}

/// Every replica of every node, from `r1ctl node ps` on the node's own socket (which works
/// without the broker).
fn replicas(network: &Network) -> BTreeSet<Replica> {
    let mut found = BTreeSet::new();
    for (node, agent) in network.nodes().iter().enumerate() {
        let output = agent.r1ctl(&["ps"]);
        for line in String::from_utf8_lossy(&output.stdout).lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [workload, state, restarts, ports, ..] = fields[..] else {
                continue;
            };
            let Some(host_port) = ports.split("->").next().and_then(|p| p.parse().ok()) else {
                continue;
            };
            found.insert(Replica {
                node,
                workload: workload.to_owned(),
                state: state.to_owned(),
                restarts: restarts.parse().unwrap_or(u32::MAX),
                host_port,
            });
        }
    }
    found
}

/// Container ids in each node's namespace.
fn containers(network: &Network) -> Vec<BTreeSet<String>> {
    (0..network.nodes().len())
        .map(|i| {
            let output = network
                .node_ctr(i, &["containers", "ls", "-q"])
                .expect("ctr");
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// Ids of the tasks RUNNING in each node's namespace, with what `ctr tasks ls` said.
fn running_tasks(network: &Network) -> Vec<(BTreeSet<String>, String)> {
    (0..network.nodes().len())
        .map(|i| {
            let output = network.node_ctr(i, &["tasks", "ls"]).expect("ctr");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let running = stdout
                .lines()
                .filter(|l| l.contains("RUNNING"))
                .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
                .collect();
            let said = format!(
                "{}: {stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            (running, said)
        })
        .collect()
}

/// The most nodes any oracle counts as Lost right now.
fn lost_nodes(network: &Network) -> f64 {
    network
        .oracles()
        .iter()
        .map(|o| o.metric("r1_oracle_nodes{name=\"lost\"}"))
        .fold(0.0, f64::max)
}

/// Whether every oracle reads the chain and is connected to the broker.
fn reconnected(network: &Network) -> bool {
    network.oracles().iter().all(|o| {
        o.metric("r1_oracle_chain_reachable ") == 1.0
            && o.metric("r1_oracle_broker_connected ") == 1.0
    })
}

/// The last "connected to the broker" log line of every oracle and node.
fn reconnections(network: &Network) -> Vec<String> {
    let last = |who: String, log: String| {
        let line = log
            .lines()
            .rfind(|l| l.contains("connected to the broker") && !l.contains("not connected"))
            .unwrap_or("never connected")
            .to_owned();
        format!("{who}: {line}")
    };
    let oracles = network
        .oracles()
        .iter()
        .map(|o| last(format!("oracle {}", o.address), o.log()));
    let nodes = network
        .nodes()
        .iter()
        .map(|n| last(format!("node {}", n.address), n.log()));
    oracles.chain(nodes).collect()
}

/// How many lines of all oracle logs contain `needle` (a phrase the oracle still logs).
fn logged(network: &Network, needle: &str) -> usize {
    network
        .oracles()
        .iter()
        .map(|o| phrases::count(&o.log(), needle))
        .sum()
}

fn wall_epoch(network: &Network) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let chain = network.chain();
    now.saturating_sub(chain.genesis_unix()) / chain.epoch_seconds()
}

/// A read of the chain by the test itself (not through the proxy), retried a few times: the
/// devnet now and then closes a pooled connection under a request.
fn read<'a, T, F: Future<Output = r1_contracts::Result<T>>>(
    network: &'a Network,
    call: impl Fn(&'a Suite) -> F,
) -> T {
    let chain = network.chain();
    let mut last = None;
    for _ in 0..5 {
        match chain.block_on(call(chain.gov())) {
            Ok(value) => return value,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("chain read failed: {last:?}")
}

fn onchain_job(network: &Network, job: u64) -> CspEscrow::Job {
    read(network, |suite| suite.job(job))
}

fn allocated_until(network: &Network) -> u64 {
    read(network, Suite::allocated_until_epoch)
}

/// What the oracles may never do while they cannot see: these log lines count stops, new
/// placements (a move is one), rollout steps and closures.
const FORBIDDEN: [&str; 4] = [
    "stopping workload",
    "deploying replica",
    "rollout moved",
    "closing a job",
];

#[test]
fn a_two_minute_chain_and_broker_outage_stops_moves_and_closes_nothing() {
    let mut network = Network::start(&NetworkSettings {
        proxy_chain: true,
        ..NetworkSettings::default()
    })
    .expect("network");

    scenario::apply_examples(&network, &scenario::HELLO_WEB).expect("apply");
    let mut job_id = None;
    assert!(
        until(Duration::from_secs(90), || {
            job_id = running_everywhere(&network);
            job_id.is_some()
        }),
        "the job did not run validated on every oracle\n{}",
        logs(&network)
    );
    let job_id = job_id.expect("job id");
    let validated_set = onchain_job(&network, job_id).activeNodes;
    assert_eq!(validated_set.len(), 2);

    // The baseline, once settled (a replica briefly started twice right after the apply is
    // stopped within seconds): two running replicas answering HTTP, one container each, and
    // nothing else in any node's namespace, unchanged over a few seconds.
    let mut before = Baseline::default();
    let mut previous: Option<(Instant, Baseline)> = None;
    let settled = until(Duration::from_secs(60), || {
        before = Baseline::take(&network);
        if !before.is_clean() {
            previous = None;
            return false;
        }
        match &previous {
            Some((at, seen)) if *seen == before => at.elapsed() >= SETTLE,
            _ => {
                previous = Some((Instant::now(), before.clone()));
                false
            }
        }
    });
    assert!(
        settled,
        "no settled baseline: {before:?}\n{}",
        logs(&network)
    );
    eprintln!("before the outage: {before:?}");
    let Baseline {
        replicas: before,
        containers: containers_before,
        tasks: tasks_before,
    } = before;
    let forbidden_before: Vec<usize> = FORBIDDEN.iter().map(|n| logged(&network, n)).collect();
    assert!(
        forbidden_before[1] >= 2,
        "the count cannot see the two placements of the job: {forbidden_before:?}\n{}",
        logs(&network)
    );
    let epoch_at_cut = wall_epoch(&network);

    // The outage: the oracles' chain RPC is blackholed and the broker is down.
    let proxy = network.chain_proxy().expect("chain proxy");
    proxy.cut(Outage::Blackhole);
    network.broker_mut().stop();
    let cut = Instant::now();
    let mut saw_outage = false;
    while cut.elapsed() < OUTAGE {
        std::thread::sleep(CHECK_EVERY.min(OUTAGE.saturating_sub(cut.elapsed())));
        let now = replicas(&network);
        let tasks = running_tasks(&network);
        for replica in &before {
            assert!(
                http_get(replica.host_port, "/").is_some(),
                "{replica:?} stopped answering {:?} into the outage\n{}",
                cut.elapsed(),
                logs(&network)
            );
            assert!(
                now.contains(replica),
                "{replica:?} changed {:?} into the outage: {now:?}\n{}",
                cut.elapsed(),
                logs(&network)
            );
        }
        for (node, ids) in tasks_before.iter().enumerate() {
            assert!(
                ids.is_subset(&tasks[node].0),
                "node {node}: tasks {ids:?} are not all running {:?} into the outage; ctr said {}",
                cut.elapsed(),
                tasks[node].1
            );
        }
        let lost = lost_nodes(&network);
        assert_eq!(
            lost,
            0.0,
            "an oracle counts nodes Lost {:?} into the outage\n{}",
            cut.elapsed(),
            logs(&network)
        );
        let forbidden: Vec<usize> = FORBIDDEN.iter().map(|n| logged(&network, n)).collect();
        assert_eq!(
            forbidden,
            forbidden_before,
            "an oracle stopped, moved or closed something during the outage\n{}",
            logs(&network)
        );
        for oracle in network.oracles_mut() {
            assert!(oracle.is_running(), "oracle {} exited", oracle.address);
        }
        saw_outage |= network.oracles().iter().all(|o| {
            o.metric("r1_oracle_chain_reachable ") == 0.0
                && o.metric("r1_oracle_broker_connected ") == 0.0
        });
    }
    assert!(
        saw_outage,
        "the oracles never noticed the outage\n{}",
        logs(&network)
    );
    let job = onchain_job(&network, job_id);
    assert!(!job.closed, "the job was closed during the outage");
    assert_eq!(job.activeNodes, validated_set);

    // Back: the chain first, then the broker. The oracles reconnect and catch up from what they
    // observe; the nodes come back on their own reconnection schedule, and no oracle may count
    // one Lost meanwhile.
    network.chain_proxy().expect("chain proxy").restore();
    std::thread::sleep(BROKER_OUTAGE.saturating_sub(cut.elapsed()));
    network.broker_mut().start_again().expect("broker");
    let back = Instant::now();
    eprintln!(
        "broker back {:?} after the cut, at {:?}",
        cut.elapsed(),
        SystemTime::now()
    );
    let epoch_back = wall_epoch(&network);
    assert!(
        epoch_back > epoch_at_cut,
        "no epoch passed during the outage"
    );
    let mut max_lost = 0.0_f64;
    let mut caught_up = None;
    let settled = until(Duration::from_secs(90), || {
        max_lost = max_lost.max(lost_nodes(&network));
        if caught_up.is_none()
            && reconnected(&network)
            && running_everywhere(&network) == Some(job_id)
            && allocated_until(&network) >= epoch_back
        {
            caught_up = Some(back.elapsed());
        }
        caught_up.is_some() && back.elapsed() >= WATCH_AFTER
    });
    assert_eq!(
        max_lost,
        0.0,
        "an oracle counted nodes Lost after the outage\n{}",
        logs(&network)
    );
    assert!(
        settled,
        "no catch-up after the outage: reconnected {}, running {:?}, allocated until {:?} (epoch {epoch_back})\n{}",
        reconnected(&network),
        running_everywhere(&network),
        allocated_until(&network),
        logs(&network)
    );
    eprintln!(
        "caught up {:?} after the outage (epochs {epoch_at_cut}..{epoch_back})",
        caught_up.unwrap_or_default()
    );
    for line in reconnections(&network) {
        eprintln!("{line}");
    }
    // An epoch the oracles could not watch is not judged: no availability is recorded for it
    // (rather than every node at zero).
    if epoch_back > epoch_at_cut + 1 {
        let unwatched = epoch_back - 1;
        assert!(
            !read(&network, |suite| suite.availability_agreed(unwatched)),
            "availability was agreed for epoch {unwatched}, which nobody could watch\n{}",
            logs(&network)
        );
    }

    // Nothing was replaced, stopped, moved or closed.
    let after = replicas(&network);
    assert_eq!(after, before, "the replicas changed\n{}", logs(&network));
    assert_eq!(
        containers(&network),
        containers_before,
        "containers were replaced\n{}",
        logs(&network)
    );
    let forbidden: Vec<usize> = FORBIDDEN.iter().map(|n| logged(&network, n)).collect();
    assert_eq!(
        forbidden,
        forbidden_before,
        "an oracle stopped, moved or closed something after the outage\n{}",
        logs(&network)
    );
    let job = onchain_job(&network, job_id);
    assert!(!job.closed, "the job was closed");
    assert_eq!(job.activeNodes, validated_set, "the validated set changed");
}
