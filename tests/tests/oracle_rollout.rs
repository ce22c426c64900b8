//! Rollouts across a whole network — three oracles, three nodes, a real chain, broker and
//! containerd. The hello-web job runs; a changed spec is rolled out replica by replica, each
//! new replica started beside the old one and the old one stopped only once the new one passes
//! its health check. A revision that never becomes healthy is rolled back: the old replicas
//! keep serving throughout and the status says why. A good revision ends on every replica with
//! never a moment without a serving replica, and without touching the validated node set.
//!
//! The oracles run with `loops.rolloutDeadlineSeconds: 6` so a bad revision fails fast.

#![allow(clippy::unwrap_used)] // test fixtures

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use alloy::primitives::Address;
use r1_e2e::network::{Network, NetworkSettings};
use r1_e2e::node::{TestOracle, http_get};
use r1_e2e::scenario;
use r1_e2e::wait::until;
use r1_protocol::messages::{WorkloadReport, WorkloadState};
use serde_json::Value;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/examples");

/// Seconds a new replica has to become healthy.
const DEADLINE_S: u64 = 6;

/// Replaces `from` by `to` in the config file at `path`.
fn edit_config(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let changed = text.replace(from, to);
    assert_ne!(
        changed,
        text,
        "{} has no {from:?}; adapt this test to the harness",
        path.display()
    );
    std::fs::write(path, changed).unwrap();
}

/// A network whose oracles roll back after [`DEADLINE_S`].
fn start_network() -> Network {
    start_network_with(|_| {})
}

/// The network of [`start_network`] whose every node offers host port `port` only (a fixed
/// host port must lie in the node's range).
fn start_network_offering(port: u16) -> Network {
    start_network_with(|network| {
        for node in network.nodes_mut() {
            node.set_host_ports(port, port).unwrap();
        }
    })
}

fn start_network_with(adapt: impl FnOnce(&mut Network)) -> Network {
    let mut network = Network::prepare(&NetworkSettings::default()).unwrap();
    adapt(&mut network);
    for oracle in network.oracles() {
        edit_config(
            &oracle.config_path(),
            "resyncSeconds: 5 }",
            &format!("resyncSeconds: 5, rolloutDeadlineSeconds: {DEADLINE_S} }}"),
        );
    }
    network.start_oracles().unwrap();
    network.start_nodes().unwrap();
    network
}

fn statuses(network: &Network) -> Vec<Value> {
    (0..network.oracles().len())
        .filter_map(|o| scenario::job_status(network, o, "hello-web"))
        .collect()
}

/// The `RolledOut` condition of a status.
fn rolled_out(status: &Value) -> Option<&Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "RolledOut")
}

fn apply(network: &Network, files: &[String]) {
    let mut args = vec!["apply".to_owned()];
    for file in files {
        args.push("-f".into());
        args.push(file.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let applied = network.r1ctl(&args).unwrap();
    assert!(
        applied.status.success(),
        "apply failed: {}{}",
        String::from_utf8_lossy(&applied.stdout),
        String::from_utf8_lossy(&applied.stderr)
    );
}

/// hello-web with each `from` replaced by its `to`, written to the scratch directory.
fn variant(network: &Network, name: &str, edits: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(format!("{EXAMPLES}/job-http.yaml")).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "job-http.yaml has no {from:?}");
        text = text.replace(from, to);
    }
    let path = network.scratch_dir().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Applies the examples and waits until every oracle sees hello-web Running on two nodes.
/// Returns its chain job id.
fn run_hello_web(network: &Network) -> u64 {
    apply(
        network,
        &[
            format!("{EXAMPLES}/escrow.yaml"),
            format!("{EXAMPLES}/project.yaml"),
            format!("{EXAMPLES}/job-http.yaml"),
        ],
    );
    let mut job_id = None;
    let running = until(Duration::from_secs(40), || {
        let all = statuses(network);
        let ids: Vec<Option<u64>> = all
            .iter()
            .map(|s| s["chainJobId"].as_str()?.parse().ok())
            .collect();
        job_id = ids.first().copied().flatten();
        all.len() == network.oracles().len()
            && job_id.is_some()
            && ids.iter().all(|id| *id == job_id)
            && all
                .iter()
                .all(|s| s["phase"] == "Running" && s["readyReplicas"] == 2)
    });
    assert!(
        running,
        "the job did not reach Running on every oracle\n{}",
        scenario::network_logs(network)
    );
    job_id.unwrap()
}

/// The node set validated on chain for `job` (retrying a failed read).
fn active_nodes(network: &Network, job: u64) -> Vec<Address> {
    let chain = network.chain();
    let mut nodes = None;
    let read = until(Duration::from_secs(10), || {
        nodes = chain
            .block_on(chain.gov().job(job))
            .ok()
            .map(|j| j.activeNodes);
        nodes.is_some()
    });
    assert!(read, "the chain cannot be read");
    nodes.unwrap()
}

/// Every workload of `job` the nodes run as they last told (heartbeat and the status reports
/// since: a rollout outpaces the 1 s heartbeats), with its node.
fn workloads(monitor: &TestOracle, nodes: &[Address], job: u64) -> Vec<(Address, WorkloadReport)> {
    nodes
        .iter()
        .flat_map(|node| {
            monitor
                .live_workloads(*node)
                .into_iter()
                .filter(move |w| w.id.job == job)
                .map(move |w| (*node, w))
        })
        .collect()
}

/// Whether the workload answers HTTP on the host port of its container port 8080.
fn serves(report: &WorkloadReport) -> bool {
    report.state == WorkloadState::Running
        && report
            .ports
            .iter()
            .find(|p| p.container_port == 8080)
            .and_then(|p| p.host_port)
            .is_some_and(|port| http_get(port, "/").is_some())
}

/// Revision → number of the job's workloads that answer HTTP, right now.
fn serving(monitor: &TestOracle, nodes: &[Address], job: u64) -> BTreeMap<String, usize> {
    let mut by_revision = BTreeMap::new();
    for (_, report) in workloads(monitor, nodes, job) {
        if serves(&report) {
            *by_revision.entry(report.revision).or_default() += 1;
        }
    }
    by_revision
}

/// The replicas of a new revision the nodes report, and how many of them report healthy.
#[derive(Debug, Clone, Copy)]
struct Newcomers {
    present: usize,
    healthy: usize,
}

/// The workloads of `job` of any revision but `old`, right now.
fn newcomers(monitor: &TestOracle, nodes: &[Address], job: u64, old: &str) -> Newcomers {
    let new: Vec<WorkloadReport> = workloads(monitor, nodes, job)
        .into_iter()
        .map(|(_, w)| w)
        .filter(|w| w.revision != old)
        .collect();
    Newcomers {
        present: new.len(),
        healthy: new.iter().filter(|w| w.healthy == Some(true)).count(),
    }
}

/// Takes a `sample` every 100 ms on another thread while `body` runs; returns the samples.
fn sample_while<S: Send, T>(
    sample: impl Fn() -> S + Sync,
    body: impl FnOnce() -> T,
) -> (T, Vec<S>) {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                samples.push(sample());
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        });
        let result = body();
        done.store(true, Ordering::Relaxed);
        (result, sampler.join().unwrap())
    })
}

/// The one revision both replicas of `job` run and serve, once they do.
fn settled_revision(network: &Network, monitor: &TestOracle, job: u64) -> String {
    let nodes = network.node_addresses();
    let mut revision = None;
    let settled = until(Duration::from_secs(20), || {
        let all = workloads(monitor, &nodes, job);
        let serving = serving(monitor, &nodes, job);
        revision = serving.keys().next().cloned();
        all.len() == 2 && serving.len() == 1 && serving.values().all(|n| *n == 2)
    });
    assert!(
        settled,
        "the job's replicas did not settle on one serving revision: {:?}\n{}",
        workloads(monitor, &nodes, job),
        scenario::network_logs(network)
    );
    revision.unwrap()
}

#[test]
fn a_revision_that_never_becomes_healthy_is_rolled_back_while_the_old_one_serves() {
    let started = Instant::now();
    let network = start_network();
    let monitor = TestOracle::connect(network.broker()).unwrap();
    let nodes = network.node_addresses();
    let job = run_hello_web(&network);
    let old = settled_revision(&network, &monitor, job);
    let running_at = started.elapsed();

    // Same image, but httpd listens on 9090: the health check on 8080 never passes.
    let bad = variant(
        &network,
        "job-bad.yaml",
        &[(
            r#"["httpd", "-f", "-p", "8080", "-h", "/www"]"#,
            r#"["httpd", "-f", "-p", "9090", "-h", "/www"]"#,
        )],
    );
    let mut new_ids = Vec::new();
    let (rolled_back, samples) = sample_while(
        || serving(&monitor, &nodes, job),
        || {
            apply(&network, &[bad]);
            until(Duration::from_secs(40), || {
                for (_, report) in workloads(&monitor, &nodes, job) {
                    if report.revision != old && !new_ids.contains(&report.id) {
                        new_ids.push(report.id);
                    }
                }
                let all = statuses(&network);
                let failed = all.len() == network.oracles().len()
                    && all.iter().all(|s| {
                        s["phase"] == "Running"
                            && s["readyReplicas"] == 2
                            && rolled_out(s).is_some_and(|c| {
                                c["reason"] == "RolloutFailed"
                                    && c["message"].as_str().is_some_and(|m| {
                                        m.ends_with(&format!("running revision {old} again"))
                                    })
                            })
                    });
                let only_old = workloads(&monitor, &nodes, job)
                    .iter()
                    .all(|(_, w)| w.revision == old);
                failed && only_old
            })
        },
    );
    assert!(
        rolled_back,
        "the bad revision was not rolled back on every oracle: {:?}\n{}",
        statuses(&network),
        scenario::network_logs(&network)
    );
    assert!(
        !new_ids.is_empty(),
        "no replica of the bad revision was ever started"
    );
    assert!(
        new_ids.iter().all(|id| id.index() == 0),
        "only replica 0 was tried before the rollback: {new_ids:?}"
    );
    let old_serving: Vec<usize> = samples
        .iter()
        .map(|s| s.get(&old).copied().unwrap_or(0))
        .collect();
    assert!(
        old_serving.iter().all(|n| *n == 2),
        "both old replicas serve throughout: {old_serving:?}"
    );
    // Read again: every oracle showed the condition above, but one pass may write a status
    // without it (seen once in CI, not understood yet); the CSP sees it again on the next.
    let mut condition = None;
    until(Duration::from_secs(10), || {
        condition = scenario::job_status(&network, 0, "hello-web")
            .and_then(|status| rolled_out(&status).cloned());
        condition.is_some()
    });
    let condition = condition.unwrap_or_else(|| {
        panic!(
            "no RolledOut condition on oracle 0: {:?}",
            scenario::job_status(&network, 0, "hello-web")
        )
    });
    let message = condition["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("never became healthy within {DEADLINE_S} s")),
        "{message}"
    );
    assert_eq!(settled_revision(&network, &monitor, job), old);
    eprintln!(
        "running after {running_at:?}, rolled back after {:?} ({} samples, condition: {message})",
        started.elapsed(),
        samples.len()
    );
}

#[test]
fn a_changed_env_rolls_out_replica_by_replica_without_a_gap() {
    let started = Instant::now();
    let network = start_network();
    let monitor = TestOracle::connect(network.broker()).unwrap();
    let nodes = network.node_addresses();
    let job = run_hello_web(&network);
    let old = settled_revision(&network, &monitor, job);
    let validated = active_nodes(&network, job);
    let running_at = started.elapsed();

    let changed = variant(
        &network,
        "job-env.yaml",
        &[(
            "value: Hello from a Ratio1 edge node",
            "value: Hello from the next revision",
        )],
    );
    let mut new = None;
    let (rolled_out_everywhere, samples) = sample_while(
        || {
            (
                serving(&monitor, &nodes, job),
                newcomers(&monitor, &nodes, job, &old),
            )
        },
        || {
            apply(&network, &[changed]);
            until(Duration::from_secs(40), || {
                let all = workloads(&monitor, &nodes, job);
                new = all.first().map(|(_, w)| w.revision.clone());
                let on_new = all.len() == 2
                    && new.as_ref().is_some_and(|n| *n != old)
                    && all
                        .iter()
                        .all(|(_, w)| Some(&w.revision) == new.as_ref() && serves(w));
                let statuses = statuses(&network);
                on_new
                    && statuses.len() == network.oracles().len()
                    && statuses.iter().all(|s| {
                        s["phase"] == "Running"
                            && rolled_out(s).is_some_and(|c| {
                                c["status"] == "True"
                                    && c["message"].as_str().is_some_and(|m| {
                                        new.as_ref().is_some_and(|n| m.ends_with(n.as_str()))
                                    })
                            })
                    })
            })
        },
    );
    assert!(
        rolled_out_everywhere,
        "the new revision did not reach every replica: {:?}\n{:?}\n{}",
        workloads(&monitor, &nodes, job),
        statuses(&network),
        scenario::network_logs(&network)
    );
    let totals: Vec<usize> = samples.iter().map(|(s, _)| s.values().sum()).collect();
    let least = totals.iter().copied().min().unwrap_or(0);
    assert!(least >= 1, "a moment without a serving replica: {totals:?}");
    assert!(
        samples.iter().any(|(s, _)| s.len() == 2),
        "old and new never served side by side: {samples:?}"
    );
    // Replica by replica: the second new replica exists only once the first reports healthy.
    let both_unproven: Vec<&Newcomers> = samples
        .iter()
        .map(|(_, newcomers)| newcomers)
        .filter(|n| n.present >= 2 && n.healthy == 0)
        .collect();
    assert!(
        samples.iter().any(|(_, n)| n.present == 2) && both_unproven.is_empty(),
        "new replicas were started together, before one was healthy: {samples:?}"
    );
    let after = active_nodes(&network, job);
    assert_eq!(
        after, validated,
        "old and new share each node, so the validated set stays"
    );
    eprintln!(
        "running after {running_at:?}, rolled out after {:?}; least serving {least} over {} samples",
        started.elapsed(),
        samples.len()
    );
}

#[test]
fn a_job_with_a_fixed_host_port_rolls_out_without_closing_the_port() {
    let port = r1_e2e::ports::free_port();
    let network = start_network_offering(port);
    let monitor = TestOracle::connect(network.broker()).unwrap();
    let nodes = network.node_addresses();
    // One replica: every node agent of the harness listens on 127.0.0.1, so two replicas on
    // two nodes could not both hold the port.
    let host_port = format!("containerPort: 8080\n      hostPort: {port}");
    let fixed: [(&str, &str); 2] = [
        ("replicas: 2", "replicas: 1"),
        ("containerPort: 8080", &host_port),
    ];
    let base = variant(&network, "job-fixed.yaml", &fixed);
    apply(
        &network,
        &[
            format!("{EXAMPLES}/escrow.yaml"),
            format!("{EXAMPLES}/project.yaml"),
            base,
        ],
    );
    let mut old = None;
    let mut job = None;
    let running = until(Duration::from_secs(40), || {
        let all = statuses(&network);
        job = all
            .first()
            .and_then(|s| s["chainJobId"].as_str()?.parse::<u64>().ok());
        old = job.and_then(|job| {
            workloads(&monitor, &nodes, job)
                .first()
                .map(|(_, w)| w.revision.clone())
        });
        all.len() == network.oracles().len()
            && all
                .iter()
                .all(|s| s["phase"] == "Running" && s["readyReplicas"] == 1)
            && http_get(port, "/").is_some()
            && old.is_some()
    });
    assert!(
        running,
        "the job never served on {port}\n{}",
        scenario::network_logs(&network)
    );
    let old = old.unwrap();

    let mut edits = fixed.to_vec();
    edits.push((
        "value: Hello from a Ratio1 edge node",
        "value: Hello from the next revision",
    ));
    let changed = variant(&network, "job-fixed-env.yaml", &edits);
    // Sample until the handover is over, not only until the oracles say RolledOut (set in the
    // step that sends the old replica's stop): the new revision is the only workload left, runs
    // and answers on the port.
    let job = job.unwrap();
    let (handed_over, samples) = sample_while(
        || {
            let revisions: BTreeSet<String> = workloads(&monitor, &nodes, job)
                .into_iter()
                .map(|(_, w)| w.revision)
                .collect();
            (http_get(port, "/").is_some(), revisions)
        },
        || {
            apply(&network, &[changed]);
            until(Duration::from_secs(40), || {
                let all = statuses(&network);
                let said = all.len() == network.oracles().len()
                    && all.iter().all(|s| {
                        rolled_out(s).is_some_and(|c| {
                            c["status"] == "True"
                                && c["message"]
                                    .as_str()
                                    .is_some_and(|m| !m.ends_with(old.as_str()))
                        })
                    });
                let only_new = match workloads(&monitor, &nodes, job).as_slice() {
                    [(_, w)] => w.revision != old && serves(w),
                    _ => false,
                };
                said && only_new
            })
        },
    );
    assert!(
        handed_over,
        "the new revision did not take the port over: {:?}\n{:?}\n{}",
        statuses(&network),
        workloads(&monitor, &nodes, job),
        scenario::network_logs(&network)
    );
    let refused = samples.iter().filter(|(answered, _)| !answered).count();
    assert_eq!(
        refused,
        0,
        "{refused} of {} requests to port {port} failed: {samples:?}\n{}",
        samples.len(),
        scenario::network_logs(&network)
    );
    let with_old = samples.iter().filter(|(_, r)| r.contains(&old)).count();
    assert!(
        with_old > 0,
        "no sample while the old replica ran: {samples:?}"
    );
    eprintln!(
        "{} requests to the fixed host port during the rollout, all answered ({with_old} while \
         the old replica ran)",
        samples.len()
    );
}
