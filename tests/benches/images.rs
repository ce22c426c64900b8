//! Image distribution benchmark, printed as numbers: four node agents start the same image
//! (`R1_BENCH_IMAGE_MIB`, default 100 MiB of incompressible layer) from Debian's
//! docker-registry behind a proxy that holds it to `R1_BENCH_REGISTRY_MIBPS` (default
//! 25 MiB/s, a distant registry). Measured: from the four deploys until every replica runs, and
//! the bytes the registry served — registry only (`registries.shareWithPeers: false`) against
//! blobs shared between the nodes, alternating, `R1_BENCH_IMAGE_ROUNDS` rounds (default 2),
//! each on fresh nodes and a fresh containerd.
//!
//! Run with `make bench` (`cargo bench -p r1-e2e --bench images --profile dev`); needs root.

use std::time::{Duration, Instant};

use r1_e2e::images as canned;
use r1_e2e::node::workload;
use r1_e2e::noise::noise;
use r1_e2e::peer_rig::PeerRig;
use r1_e2e::proxy::Proxy;
use r1_e2e::registry::LocalRegistry;
use r1_protocol::messages::{WorkloadId, WorkloadState};

const NODES: usize = 4;
const WAIT: Duration = Duration::from_secs(600);

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One start of the image on fresh nodes: the time until all run, and the registry's bytes.
fn start_everywhere(reference: &str, proxy: &Proxy, share: bool, job: u64) -> (Duration, u64) {
    let config = if share {
        ""
    } else {
        "registries: { shareWithPeers: false }"
    };
    let rig = PeerRig::start_with(NODES, config).expect("rig");
    rig.publish_roster(Vec::new()).expect("roster");
    let served = proxy.served_bytes();
    let started = Instant::now();
    for (i, node) in rig.nodes().iter().enumerate() {
        rig.oracle
            .deploy(node.address, workload(job, i as u32, reference, 64));
    }
    let running = |i: usize| {
        let id = WorkloadId {
            job,
            replica: i as u32,
        };
        rig.oracle
            .wait_for(rig.nodes()[i].address, id, Duration::ZERO, |w| {
                w.state == WorkloadState::Running
            })
            .is_some()
    };
    assert!(
        r1_e2e::wait::until(WAIT, || (0..NODES).all(running)),
        "not running on every node; first node's log:\n{}",
        rig.nodes()[0].log()
    );
    (started.elapsed(), proxy.served_bytes() - served)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mib = env("R1_BENCH_IMAGE_MIB", 100);
    let rate = env("R1_BENCH_REGISTRY_MIBPS", 25);
    let rounds = env("R1_BENCH_IMAGE_ROUNDS", 2).max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = LocalRegistry::start(dir.path()).expect("registry");
    let name = "localhost/acme/big:1";
    let archive = dir.path().join("big.tar");
    canned::httpd(name)
        .file(
            "/www/big.bin",
            noise(usize::try_from(mib << 20).expect("size"), 11),
            0o644,
        )
        .write_archive(&archive)
        .expect("image archive");
    registry
        .push_archive(&archive, name, "acme/big:1")
        .expect("push");
    std::fs::remove_file(&archive).expect("remove archive");
    let proxy = Proxy::start_throttled(registry.addr(), rate << 20).expect("proxy");
    let reference = format!("127.0.0.1:{}/acme/big:1", proxy.port());

    let mut alone = Vec::new();
    let mut shared = Vec::new();
    for round in 0..rounds {
        for share in [false, true] {
            let job = 100 + round * 2 + u64::from(share);
            let (took, served) = start_everywhere(&reference, &proxy, share, job);
            let mode = if share {
                "peers shared"
            } else {
                "registry only"
            };
            println!(
                "image {mib} MiB on {NODES} nodes, registry at {rate} MiB/s, {mode:<13}: all running after {:>6.1} s, registry served {:>6.1} MiB",
                took.as_secs_f64(),
                served as f64 / f64::from(1 << 20)
            );
            if share {
                shared.push(took.as_secs_f64());
            } else {
                alone.push(took.as_secs_f64());
            }
        }
    }
    let (alone, shared) = (median(alone), median(shared));
    println!(
        "image start on {NODES} nodes: peers shared {shared:.1} s vs registry only {alone:.1} s: ratio {:.2} (target <= 0.5)",
        shared / alone
    );
}
