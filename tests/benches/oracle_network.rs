//! Whole-network benchmarks, printed as numbers, on the e2e [`Network`] (a devnet chain, a
//! broker, oracles, and node agents on one private containerd):
//!
//! * apply → running: from `r1ctl apply` returning (the job is stored and funded on chain) to
//!   every oracle reporting it Running with 2/2 replicas ready and the set validated on chain
//!   (each oracle's API asked at once, in process), and to both replicas answering HTTP on
//!   their nodes;
//! * node loss → replacement: from killing the agent of a node that holds a replica to a
//!   replacement replica running, and answering HTTP, on another node.
//!
//! Each of `R1_BENCH_ITERATIONS` iterations (default 8) applies a fresh two-replica copy of
//! `crds/examples/job-http.yaml`, kills one of its nodes, then restarts that agent and deletes
//! the job so the next iteration starts from a clean network. p50/p99/max are printed; a first,
//! cold iteration (the nodes pull the image) is shown apart. `R1_BENCH_HEARTBEAT_SECONDS`
//! sets the nodes' heartbeat interval (default 1; production is 10).
//!
//! Run with `make bench`; needs root for containerd.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use r1_crds::api::object::ObjectKey;
use r1_crds::manifest::Kind;
use r1_ctl::remote::Client;
use r1_e2e::network::{Network, NetworkSettings};
use r1_e2e::node::http_get;
use r1_e2e::wait::until;
use serde_json::Value;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/examples");

/// Longest wait for any one step.
const STEP_TIMEOUT: Duration = Duration::from_secs(90);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    if samples.is_empty() {
        println!("{name:<44} no samples");
        return;
    }
    samples.sort();
    println!(
        "{name:<44} n={:<3} p50={:>7.0} ms  p99={:>7.0} ms  max={:>7.0} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
    );
}

/// Each oracle's API client, signing as the CSP, and a runtime to ask them all at once: a
/// round of `r1ctl` processes took longer than the figures measured.
struct Watchers {
    runtime: tokio::runtime::Runtime,
    clients: Vec<Client>,
}

impl Watchers {
    fn new(network: &Network) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let clients = network
            .oracles()
            .iter()
            .map(|o| Client::new(&o.api_url(), network.csp().clone()).expect("API client"))
            .collect();
        Self { runtime, clients }
    }

    /// The job's status as each oracle reports it (`None` where it does not answer).
    fn statuses(&self, name: &str) -> Vec<Option<Value>> {
        let key = ObjectKey::new(Kind::Job, "default", name);
        self.runtime
            .block_on(futures_util::future::join_all(self.clients.iter().map(
                |client| {
                    let key = key.clone();
                    async move { client.get(&key).await.ok().map(|o| o.status) }
                },
            )))
    }

    /// Whether every oracle reports the job Running with 2/2 ready, under one chain job id.
    fn runs_everywhere(&self, name: &str) -> bool {
        let Some(statuses) = self
            .statuses(name)
            .into_iter()
            .collect::<Option<Vec<Value>>>()
        else {
            return false;
        };
        let id = statuses[0]["chainJobId"].as_str();
        id.is_some()
            && statuses.iter().all(|s| {
                s["chainJobId"].as_str() == id && s["phase"] == "Running" && s["readyReplicas"] == 2
            })
    }

    /// The chain job id of `name` as soon as any oracle knows it (it is funded before it runs).
    fn funded_job(&self, name: &str) -> Option<u64> {
        self.statuses(name)
            .into_iter()
            .flatten()
            .find_map(|s| s["chainJobId"].as_str()?.parse().ok())
    }
}

/// Running replicas of chain job `job` on the nodes `alive`: (node, host port) each, from
/// `r1ctl node ps` on the node's own socket.
fn running_replicas(network: &Network, job: u64, alive: &[usize]) -> Vec<(usize, u16)> {
    alive
        .iter()
        .flat_map(|&node| {
            network.nodes()[node]
                .published_ports(job)
                .into_iter()
                .map(move |port| (node, port))
        })
        .collect()
}

/// Whether two replicas run on two different nodes and both answer HTTP.
fn serving(replicas: &[(usize, u16)]) -> bool {
    let nodes: BTreeSet<usize> = replicas.iter().map(|(n, _)| *n).collect();
    replicas.len() == 2
        && nodes.len() == 2
        && replicas.iter().all(|(_, p)| http_get(*p, "/").is_some())
}

/// Containers left in every node's namespace.
fn containers(network: &Network) -> usize {
    (0..network.nodes().len())
        .map(|i| {
            network
                .node_ctr(i, &["containers", "ls", "-q"])
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
                .expect("ctr containers ls")
        })
        .sum()
}

fn r1ctl_ok(network: &Network, args: &[&str]) {
    let output = network.r1ctl(args).expect("r1ctl");
    assert!(
        output.status.success(),
        "r1ctl {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Samples of one iteration.
struct Iteration {
    running: Duration,
    serving: Duration,
    replaced: Duration,
}

fn iteration(
    network: &mut Network,
    watchers: &Watchers,
    index: usize,
    manifest: &str,
) -> Iteration {
    let name = format!("bench-{index}");
    let path = network.scratch_dir().join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        manifest.replace("name: hello-web", &format!("name: {name}")),
    )
    .expect("manifest");
    r1ctl_ok(network, &["apply", "-f", &path.display().to_string()]);
    let applied = Instant::now();

    // Apply → running on every oracle, and → both replicas answering HTTP, each timed on its
    // own (the replicas are asked as soon as the job is funded, not once the oracles agree).
    let all: Vec<usize> = (0..network.nodes().len()).collect();
    let (mut running, mut serving_at, mut job) = (None, None, None);
    let up = until(STEP_TIMEOUT, || {
        if job.is_none() {
            job = watchers.funded_job(&name);
        }
        if running.is_none() && watchers.runs_everywhere(&name) {
            running = Some(applied.elapsed());
        }
        if let Some(id) = job
            && serving_at.is_none()
            && serving(&running_replicas(network, id, &all))
        {
            serving_at = Some(applied.elapsed());
        }
        running.is_some() && serving_at.is_some()
    });
    assert!(
        up,
        "{name} never ran (running {running:?}, serving {serving_at:?})"
    );
    let job = job.expect("job id");

    // Node loss → a replacement running on another node.
    let (victim, _) = running_replicas(network, job, &all)[0];
    network.nodes_mut()[victim].kill();
    let killed = Instant::now();
    let alive: Vec<usize> = all.iter().copied().filter(|n| *n != victim).collect();
    let replaced = until(STEP_TIMEOUT, || {
        serving(&running_replicas(network, job, &alive))
    });
    assert!(replaced, "{name}: no replacement for node {victim}");
    let replaced = killed.elapsed();
    println!(
        "  {name}: running {:>5} ms, serving {:>5} ms; node {victim} killed, replaced in {:>5} ms",
        running.unwrap_or_default().as_millis(),
        serving_at.unwrap_or_default().as_millis(),
        replaced.as_millis()
    );

    // Back to a clean network: the agent returns, the job is deleted and its containers go.
    network.nodes_mut()[victim]
        .start()
        .expect("restart the agent");
    r1ctl_ok(network, &["delete", "djob", &name]);
    let clean = until(STEP_TIMEOUT, || containers(network) == 0);
    assert!(clean, "{name}: containers left after deletion");
    Iteration {
        running: running.expect("running"),
        serving: serving_at.expect("serving"),
        replaced,
    }
}

fn main() {
    let iterations: usize = std::env::var("R1_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let defaults = NetworkSettings::default();
    let settings = NetworkSettings {
        heartbeat_seconds: std::env::var("R1_BENCH_HEARTBEAT_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(defaults.heartbeat_seconds),
        ..defaults
    };
    let started = Instant::now();
    let mut network = Network::start(&settings).expect("network");
    println!(
        "network: {} oracles, {} nodes, {} s heartbeats, lost after {} missed, {} ms loops \
         (up in {:.1} s)",
        network.oracles().len(),
        network.nodes().len(),
        settings.heartbeat_seconds,
        settings.grace_missed,
        settings.loop_period_ms,
        started.elapsed().as_secs_f64()
    );
    r1ctl_ok(
        &network,
        &[
            "apply",
            "-f",
            &format!("{EXAMPLES}/escrow.yaml"),
            "-f",
            &format!("{EXAMPLES}/project.yaml"),
        ],
    );
    let manifest =
        std::fs::read_to_string(format!("{EXAMPLES}/job-http.yaml")).expect("job-http.yaml");
    let watchers = Watchers::new(&network);
    // The first run pulls the image onto the nodes; it is shown apart, as Kubernetes' pod
    // start-up SLO leaves image pulls out.
    let cold = iteration(&mut network, &watchers, 0, &manifest);
    println!(
        "cold start (image pulled by the nodes): running {} ms, serving {} ms",
        cold.running.as_millis(),
        cold.serving.as_millis()
    );
    let (mut running, mut serving, mut replaced) = (Vec::new(), Vec::new(), Vec::new());
    replaced.push(cold.replaced);
    for index in 1..=iterations {
        let sample = iteration(&mut network, &watchers, index, &manifest);
        running.push(sample.running);
        serving.push(sample.serving);
        replaced.push(sample.replaced);
    }
    println!(
        "two-replica job, {iterations} iterations with the image on the nodes (node loss: all {}):",
        iterations + 1
    );
    summary("apply → Running 2/2 on every oracle", running);
    summary("apply → both replicas answer HTTP", serving);
    summary("node agent killed → replacement answers HTTP", replaced);
    println!("total {:.1} s", started.elapsed().as_secs_f64());
}
