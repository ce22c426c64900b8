//! What one oracle spends per node, without the network (`make bench`): a signed heartbeat
//! taken into the node registry (and its parts: envelope decoding, signature recovery, payload
//! parsing), and the per-pass views of `R1_BENCH_NODES` (default 10,000) nodes a reconcile pass
//! takes (liveness, placement candidates, the roster), and a CSP's request relayed by another
//! oracle: first received (checked and applied) and received again (the oracles re-send every
//! request they hold now and then). `make bench-scale` measures the same costs inside running
//! oracles; this isolates them so a change to either shows at once.

use std::time::{Duration, Instant};

use r1_controller::decide::liveness::{BrokerLink, LivenessConfig};
use r1_controller::decide::node_registry::{Registry, Standing};
use r1_controller::decide::placement::{Demand, PlacementRequest, place};
use r1_controller::intake::quotas::Quotas;
use r1_controller::intake::store::ResourceStore;
use r1_controller::oracle::relay::{self, Outcome};
use r1_controller::oracle::state::OracleState;
use r1_crds::pricing::Catalogue;
use r1_e2e::scenario::EXAMPLES;
use r1_e2e::simnodes::node::SimNode;
use r1_protocol::api_auth;
use r1_protocol::messages::RelayedRequest;
use r1_protocol::messages::{DeployCommand, Heartbeat};
use r1_protocol::{Envelope, Identity};

fn nodes() -> usize {
    std::env::var("R1_BENCH_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn per_item(total: Duration, items: usize) -> f64 {
    total.as_secs_f64() * 1e6 / items as f64
}

/// Each node's heartbeat, sealed `round` times over (nonce = round); one node in five runs a
/// replica, as 1,000 two-replica jobs on 10,000 nodes do.
fn sealed_heartbeats(identities: &[Identity], round: u64, now_ms: u64) -> Vec<Vec<u8>> {
    identities
        .iter()
        .enumerate()
        .map(|(i, identity)| {
            let mut node = SimNode::new(format!("sim-{i}"));
            if i % 5 == 0 {
                node.deploy(DeployCommand {
                    target: identity.address(),
                    workload: r1_e2e::node::workload(i as u64, 0, "busybox", 64),
                });
            }
            let heartbeat: Heartbeat = node.heartbeat(Duration::from_secs(10));
            Envelope::seal(identity, &heartbeat, round, now_ms)
                .expect("seal")
                .to_bytes()
        })
        .collect()
}

/// `jobs` requests of one CSP, each applying its escrow, and a project and a job of its own
/// (as `r1ctl apply -f` of a directory sends), signed at
/// consecutive milliseconds.
fn relayed_requests(jobs: usize) -> Vec<RelayedRequest> {
    let csp = Identity::generate();
    let owner = csp.address().to_checksum(None);
    let project = std::fs::read_to_string(format!("{EXAMPLES}/project.yaml")).expect("project");
    let project = project.replace("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", &owner);
    let escrow = std::fs::read_to_string(format!("{EXAMPLES}/escrow.yaml")).expect("escrow");
    let escrow = escrow.replace("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", &owner);
    let job = std::fs::read_to_string(format!("{EXAMPLES}/job-http.yaml")).expect("job");
    let now = r1_protocol::now_ms();
    (0..jobs)
        .map(|i| {
            let body = format!(
                "{escrow}\n---\n{}\n---\n{}",
                project.replace("name: hello\n", &format!("name: hello-{i}\n")),
                job.replace("name: hello-web", &format!("name: web-{i}"))
                    .replace("    name: hello\n", &format!("    name: hello-{i}\n"))
            );
            let at = now + i as u64;
            let headers =
                api_auth::sign(&csp, "POST", "/v1/apply", at, body.as_bytes()).expect("sign");
            RelayedRequest {
                method: "POST".into(),
                path: "/v1/apply".into(),
                address: headers.address,
                timestamp: headers.timestamp,
                signature: headers.signature,
                body,
            }
        })
        .collect()
}

/// A relayed request received the first time (checked and applied to the store) and again.
fn relay(jobs: usize) {
    let dir = tempfile::tempdir().expect("scratch");
    let state = OracleState::open(&dir.path().join("state")).expect("state");
    let store = ResourceStore::open(&dir.path().join("store")).expect("store");
    let catalogue = Catalogue::builtin().expect("catalogue");
    let requests = relayed_requests(jobs);
    let receive_all = |expected: Outcome| {
        let started = Instant::now();
        for request in &requests {
            let outcome = relay::receive(
                &state,
                &store,
                &catalogue,
                Quotas::default(),
                request,
                false,
            )
            .expect("relayed request taken");
            assert_eq!(outcome, expected);
        }
        started.elapsed()
    };
    let first = receive_all(Outcome::Applied);
    let again = receive_all(Outcome::AlreadyCurrent);
    println!(
        "  relayed requests (an escrow, a project and a job each, {} bytes), {jobs}: first received {:.1} µs, received again {:.1} µs",
        requests[0].body.len(),
        per_item(first, jobs),
        per_item(again, jobs),
    );
}

fn main() {
    relay(200);
    let count = nodes();
    let identities: Vec<Identity> = (0..count).map(|_| Identity::generate()).collect();
    let config = LivenessConfig::default();
    let now = r1_protocol::now_ms();
    let started = Instant::now();
    let first = sealed_heartbeats(&identities, 1, now);
    let seal = started.elapsed();
    let second = sealed_heartbeats(&identities, 2, now + 1);
    println!("oracle intake, {count} nodes (one in five running a replica)");

    let started = Instant::now();
    for bytes in &first {
        let envelope = Envelope::from_bytes(bytes).expect("decode");
        std::hint::black_box(envelope);
    }
    let decode = started.elapsed();
    let envelopes: Vec<Envelope> = first
        .iter()
        .map(|b| Envelope::from_bytes(b).expect("decode"))
        .collect();
    let started = Instant::now();
    for envelope in &envelopes {
        std::hint::black_box(envelope.recover_signer_key());
    }
    let recover = started.elapsed();
    let started = Instant::now();
    for envelope in &envelopes {
        let heartbeat: Heartbeat = serde_json::from_str(&envelope.payload).expect("payload");
        std::hint::black_box(heartbeat);
    }
    let parse = started.elapsed();
    println!(
        "  heartbeat parts: built and signed {:.1} µs; decode {:.1} µs, signature recovery {:.1} µs, payload {:.1} µs ({} bytes a heartbeat)",
        per_item(seal, count),
        per_item(decode, count),
        per_item(recover, count),
        per_item(parse, count),
        first.iter().map(Vec::len).sum::<usize>() / count,
    );

    let mut registry = Registry::default();
    let take = |registry: &mut Registry, batch: &[Vec<u8>], at: u64| {
        let started = Instant::now();
        for (identity, bytes) in identities.iter().zip(batch) {
            registry
                .on_heartbeat(identity.address(), bytes, at, &config)
                .expect("heartbeat accepted");
        }
        started.elapsed()
    };
    let new_nodes = take(&mut registry, &first, now);
    let known_nodes = take(&mut registry, &second, now + 1);
    println!(
        "  heartbeat into the registry: first {:.1} µs, later {:.1} µs ({:.0} a second on one core)",
        per_item(new_nodes, count),
        per_item(known_nodes, count),
        1e6 / per_item(known_nodes, count),
    );

    for identity in &identities {
        registry.set_standing(
            identity.address(),
            Standing {
                licensed: true,
                idle: false,
                operator: identity.address(),
                checked_ms: now,
            },
        );
    }
    let link = BrokerLink::Connected {
        since_ms: now.saturating_sub(60_000),
    };
    let started = Instant::now();
    let (liveness, candidates) = registry.survey(link, now + 2, &config, |_, _, _| {});
    let survey_time = started.elapsed();
    let started = Instant::now();
    let roster = registry.roster_entries();
    let roster_time = started.elapsed();
    assert_eq!(candidates.len(), count);
    assert_eq!(liveness.nodes.len(), count);
    assert_eq!(roster.len(), count);
    println!(
        "  pass views of {count} nodes: liveness and candidates {:.1} ms, roster {:.1} ms",
        survey_time.as_secs_f64() * 1e3,
        roster_time.as_secs_f64() * 1e3,
    );
    let jobs = 1_000u64;
    let demand = Demand {
        cpu_millis: 100,
        memory_bytes: 64 << 20,
        disk_bytes: 0,
        gpu: 0,
        gpu_model: None,
    };
    let started = Instant::now();
    let mut placed = 0;
    for job_id in 0..jobs {
        let request = PlacementRequest {
            job_id,
            replicas: 2,
            demand: demand.clone(),
            ..PlacementRequest::default()
        };
        placed += place(&request, &candidates).assignments.len();
    }
    let placing = started.elapsed();
    assert_eq!(placed, 2 * jobs as usize, "every replica placed");
    println!(
        "  placing {jobs} new jobs of 2 replicas on {count} nodes: {:.1} ms ({:.0} µs a replica)",
        placing.as_secs_f64() * 1e3,
        placing.as_secs_f64() * 1e6 / placed as f64,
    );
}
