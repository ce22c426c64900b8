//! Node agent benchmarks, printed as numbers:
//!
//! * container create → running latency through the agent's containerd path (snapshot,
//!   container, task), p50/p99 over `R1_BENCH_STARTS` starts (default 50), sandboxed as a node
//!   does by default (user namespace with the image shifted into its ids, scratch disk) and
//!   without those, beside a plain `ctr run -d` of the same image measured in the same run,
//!   and `runc create` + `runc start` of a busybox bundle without containerd (the floor);
//! * the CPU cost of one heartbeat (build, sign, encode) with 20 workloads, and what that is
//!   as a share of one core at the default 10 s interval.
//!
//! Run with `make bench` (`cargo bench -p r1-e2e --bench node_agent --profile dev`); needs root
//! for containerd.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use r1_e2e::containerd::PrivateContainerd;
use r1_e2e::images as canned;
use r1_node::heartbeat::{self, Identity as NodeIdentity};
use r1_node::reconcile::TaskState;
use r1_node::resources::Capacity;
use r1_node::runtime::containerd::Containerd;
use r1_node::runtime::spec::{IdMap, Isolation, SpecInput, runtime_spec};
use r1_node::scratch::ScratchDisks;
use r1_node::state::NodeState;
use r1_node::store::DesiredWorkload;
use r1_protocol::Identity;
use r1_protocol::envelope::Sealer;
use r1_protocol::messages::{Resources, WorkloadId, WorkloadReport, WorkloadState};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{name:<30} n={:<3} p50={:>7.1} ms  p99={:>7.1} ms  mean={:>7.1} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3,
    );
}

/// The node's default sandbox (user namespace, read-only root, scratch disk), or none of it.
fn isolation(sandboxed: bool) -> Isolation {
    Isolation {
        id_map: sandboxed.then_some(IdMap {
            host_base: 100_000,
            size: 65_536,
        }),
        writable_root: !sandboxed,
        tmp_bytes: 64 << 20,
        scratch: None,
    }
}

fn agent_path(
    containerd: &PrivateContainerd,
    archive: &std::path::Path,
    reference: &str,
    starts: usize,
    dir: &std::path::Path,
    sandboxed: bool,
) -> Vec<Duration> {
    let scratch = ScratchDisks::new(dir.join("scratch"), if sandboxed { 64 << 20 } else { 0 });
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    runtime.block_on(async {
        let client = Containerd::connect(containerd.socket(), containerd.namespace())
            .await
            .expect("connect");
        client.import_archive(archive).await.expect("import");
        let image = client
            .resolve_image(reference)
            .await
            .expect("resolve")
            .expect("image present");
        let spec = r1_e2e::node::workload(1, 0, reference, 16);
        let mut samples = Vec::with_capacity(starts);
        for i in 0..starts {
            let id = format!("bench-agent-{sandboxed}-{i}");
            let started = Instant::now();
            let mut isolation = isolation(sandboxed);
            isolation.scratch = scratch.ensure(&id, 100_000).await.expect("scratch");
            let oci = runtime_spec(&SpecInput {
                container_id: &id,
                namespace: containerd.namespace(),
                workload: &spec,
                image: &image.config.config,
                devices: &[],
                secret_env: &BTreeMap::new(),
                node_env: &[],
                isolation: &isolation,
            })
            .expect("spec");
            let labels = BTreeMap::from([("ai.ratio1.workload".to_owned(), format!("1/{i}"))]);
            client
                .create_container(&id, &image, &oci, labels, isolation.id_map)
                .await
                .expect("create");
            client
                .create_task(&id, &dir.join(format!("{id}.log")), isolation.id_map)
                .await
                .expect("create task");
            client.start_created_task(&id).await.expect("start");
            while !matches!(
                client.task(&id).await.expect("task"),
                TaskState::Running { .. }
            ) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            samples.push(started.elapsed());
            client
                .remove(&id, Duration::from_secs(5))
                .await
                .expect("remove");
            scratch.remove(&id).expect("remove scratch");
        }
        samples
    })
}

fn ctr_path(containerd: &PrivateContainerd, reference: &str, starts: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(starts);
    for i in 0..starts {
        let id = format!("bench-ctr-{i}");
        let started = Instant::now();
        let out = containerd
            .ctr(&["run", "-d", "--memory-limit", "16777216", reference, &id])
            .expect("ctr run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        samples.push(started.elapsed());
        let _ = containerd.ctr(&["tasks", "kill", "-s", "SIGKILL", &id]);
        let _ = r1_e2e::wait::until(Duration::from_secs(5), || {
            containerd
                .ctr(&["tasks", "rm", &id])
                .is_ok_and(|o| o.status.success())
        });
        let _ = containerd.ctr(&["containers", "rm", &id]);
    }
    samples
}

/// `runc create` and `runc start` of a bundle holding only busybox, with no containerd and no
/// shim: the floor every containerd path stands on.
fn runc_path(dir: &std::path::Path, starts: usize) -> Vec<Duration> {
    let bundle = dir.join("runc-bundle");
    let state = dir.join("runc-state");
    std::fs::create_dir_all(bundle.join("rootfs/bin")).expect("bundle");
    std::fs::copy(canned::BUSYBOX, bundle.join("rootfs/bin/busybox")).expect("busybox");
    let runc = |args: &[&str]| {
        Command::new("runc")
            .arg("--root")
            .arg(&state)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("runc")
    };
    let bundle_arg = bundle.display().to_string();
    assert!(
        runc(&["spec", "--bundle", &bundle_arg]).success(),
        "runc spec"
    );
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).expect("config")).expect("json");
    config["process"]["args"] = serde_json::json!(["/bin/busybox", "sleep", "1000"]);
    config["process"]["terminal"] = false.into();
    std::fs::write(&config_path, config.to_string()).expect("config");
    let mut samples = Vec::with_capacity(starts);
    for i in 0..starts {
        let id = format!("bench-runc-{i}");
        let started = Instant::now();
        assert!(
            runc(&["create", "--bundle", &bundle_arg, &id]).success(),
            "runc create"
        );
        assert!(runc(&["start", &id]).success(), "runc start");
        samples.push(started.elapsed());
        runc(&["delete", "--force", &id]);
    }
    samples
}

fn heartbeat_cost(reference: &str, data_dir: &std::path::Path) {
    let desired = (0..20u32)
        .map(|replica| {
            let spec = r1_e2e::node::workload(7, replica, reference, 64);
            let workload = DesiredWorkload {
                spec,
                host_ports: BTreeMap::from([(8080, 30000 + replica as u16)]),
                udp_host_ports: BTreeMap::new(),
                ordered_by: r1_protocol::Address::ZERO,
            };
            (workload.spec.id, workload)
        })
        .collect();
    let state = NodeState::new(desired);
    state.replace_reports(
        (0..20u32)
            .map(|replica| {
                let id = WorkloadId { job: 7, replica };
                let report = WorkloadReport {
                    id,
                    revision: "rev-7".into(),
                    state: WorkloadState::Running,
                    image_digest: Some(format!("sha256:{}", "ab".repeat(32))),
                    ports: vec![],
                    healthy: Some(true),
                    tunnel: None,
                };
                (id, report)
            })
            .collect(),
    );
    let identity = NodeIdentity {
        alias: "bench".into(),
        labels: BTreeMap::from([("kyb".into(), "true".into())]),
        capacity: Capacity {
            total: Resources {
                cpu_millis: 2000,
                memory_bytes: 24 << 30,
                disk_bytes: 1 << 40,
                gpu: 0,
            },
            gpus: Default::default(),
        },
        data_dir: data_dir.to_owned(),
        started: Instant::now(),
        p2p_addrs: vec!["/ip4/10.0.0.5/tcp/4001".into()],
        logs: r1_node::logs::LogDir::new(
            data_dir.join("logs"),
            10 << 20,
            3,
            r1_node::logs::retired::Retention::default(),
        )
        .expect("log dir"),
    };
    let sealer = Sealer::new(Identity::generate());
    let rounds = 500u32;
    let cpu_before = cpu_time();
    let started = Instant::now();
    let mut bytes = 0usize;
    for _ in 0..rounds {
        let hb = heartbeat::build(&identity, &state, Duration::from_secs(10));
        bytes = sealer
            .seal(&hb, r1_protocol::now_ms())
            .expect("seal")
            .to_bytes()
            .len();
    }
    let wall = started.elapsed() / rounds;
    let cpu = (cpu_time() - cpu_before) / rounds;
    println!(
        "heartbeat, 20 workloads: {bytes} bytes, {:.0} µs wall, {:.0} µs CPU each = {:.4} % of one core at a 10 s interval",
        wall.as_secs_f64() * 1e6,
        cpu.as_secs_f64() * 1e6,
        cpu.as_secs_f64() / 10.0 * 100.0
    );
}

/// CPU time (user + system) this process has used, from /proc/self/stat (10 ms ticks).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn main() {
    let starts: usize = std::env::var("R1_BENCH_STARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let containerd = PrivateContainerd::start().expect("containerd");
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("sleeper.tar");
    let reference = "localhost/r1-bench/sleeper:1";
    canned::sleeper(reference)
        .write_archive(&archive)
        .expect("image");
    let sandboxed = agent_path(&containerd, &archive, reference, starts, dir.path(), true);
    let plain = agent_path(&containerd, &archive, reference, starts, dir.path(), false);
    let ctr = ctr_path(&containerd, reference, starts);
    let runc = runc_path(dir.path(), starts);
    println!("container create → running, same image and containerd, {starts} starts each:");
    summary("r1-node, sandboxed (default)", sandboxed);
    summary("r1-node, no userns/scratch", plain);
    summary("ctr run -d (baseline)", ctr);
    summary("runc create + start alone", runc);
    heartbeat_cost(reference, dir.path());
}
