//! The node's sandbox on a real containerd: a workload runs as nobody on the host (user
//! namespace), sees only its own processes and files, cannot write its root file system, call
//! a syscall the seccomp profile forbids, or fill more disk than its scratch quota; and the
//! node refuses, with a reason in the workload's state, what its operator does not allow,
//! while the oracles place a job asking for less isolation only on nodes that allow it.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use r1_e2e::OciImageBuilder;
use r1_e2e::broker::{Broker, Role, Rumqttd};
use r1_e2e::containerd::PrivateContainerd;
use r1_e2e::network::{Network, NetworkSettings};
use r1_e2e::node::{NodeAgent, NodeSettings, TestOracle, workload};
use r1_e2e::scenario::{EXAMPLES, active_nodes, network_logs, printed, wait_running};
use r1_protocol::Identity;
use r1_protocol::messages::{
    HealthCheckSpec, HealthProbe, PortMapping, PortProtocol, SecurityRequest, WorkloadId,
    WorkloadReport, WorkloadState,
};

const WAIT: Duration = Duration::from_secs(30);
/// Each workload's scratch disk in these tests.
const SCRATCH_BYTES: u64 = 16 << 20;
/// Each workload's `/tmp`.
const TMP_BYTES: u64 = 8 << 20;

struct Rig {
    node: NodeAgent,
    oracle: TestOracle,
    containerd: PrivateContainerd,
    _broker: Box<dyn Broker>,
}

fn rig() -> Rig {
    let broker: Box<dyn Broker> = Box::new(Rumqttd::start().expect("rumqttd"));
    let containerd = PrivateContainerd::start().expect("containerd");
    let oracle = TestOracle::connect(broker.as_ref()).expect("oracle");
    let identity = Identity::generate();
    let mut node = NodeAgent::new(
        &NodeSettings {
            containerd_socket: containerd.socket().to_owned(),
            namespace: containerd.namespace().to_owned(),
            broker_url: broker.admit(identity.address(), Role::Node).expect("admit"),
            ca_file: broker.ca_file(),
            oracles: vec![oracle.address()],
            heartbeat_seconds: 1,
            backoff_initial_ms: 300,
            labels: Vec::new(),
        },
        &identity,
    )
    .expect("node");
    node.add_config(&format!(
        "sandbox: {{ scratchBytes: {SCRATCH_BYTES}, tmpBytes: {TMP_BYTES} }}"
    ))
    .expect("sandbox config");
    node.start().expect("start node");
    assert!(
        r1_e2e::wait::until(WAIT, || oracle.heartbeat(node.address).is_some()),
        "no heartbeat from the node; its log:\n{}",
        node.log()
    );
    Rig {
        node,
        oracle,
        containerd,
        _broker: broker,
    }
}

/// What the probing workload reports about its sandbox, one `name=value` line each, then
/// stays up so the test can look at it from the host.
const PROBE: &str = r#"
echo "uid=$(id -u)"
echo "pids=$(ls /proc | grep -c '^[0-9][0-9]*$')"
if cat "$HOST_FILE" >/dev/null 2>&1; then echo host-file=read; else echo host-file=hidden; fi
if ls "$AGENT_DIR" >/dev/null 2>&1; then echo agent-dir=visible; else echo agent-dir=hidden; fi
if touch /written 2>/dev/null; then echo root=writable; else echo root=read-only; fi
echo "$TAG" > "/scratch/mine-$TAG" && echo scratch=writable
echo "scratch-files=$(ls /scratch | grep -c mine-)"
echo x > /tmp/x && echo tmp=writable
if dd if=/dev/zero of=/scratch/fill bs=1M count=64 2>&1 | grep -q 'No space'; then echo scratch-full=enospc; fi
set -- $(du -k /scratch/fill); echo "scratch-fill-kib=$1"
if dd if=/dev/zero of=/tmp/fill bs=1M count=64 2>&1 | grep -q 'No space'; then echo tmp-full=enospc; fi
rm -f /tmp/fill
if unshare -U true 2>/dev/null; then echo unshare=allowed; else echo unshare=refused; fi
if mount -t tmpfs none /mnt 2>/dev/null; then echo mount=allowed; else echo mount=refused; fi
echo reopened-stdout=yes > /proc/1/fd/1
echo probe=done
exec sleep 3600
"#;

fn probe_image(rig: &Rig) -> String {
    let info = OciImageBuilder::new("localhost/r1-test/probe:1")
        .applets(&[
            "sh", "id", "ls", "grep", "cat", "touch", "dd", "du", "rm", "unshare", "mount", "sleep",
        ])
        .dir("/mnt", 0o755)
        .write_archive(&rig.node.images_dir().join("probe.tar"))
        .expect("image archive");
    info.reference
}

/// The `name=value` lines workload `job/replica` printed, once it printed them all.
fn probe_report(rig: &Rig, job: u64) -> Vec<(String, String)> {
    let mut text = String::new();
    let done = r1_e2e::wait::until(WAIT, || {
        let out = rig
            .node
            .r1ctl(&["logs", &format!("{job}/0"), "--tail", "0"]);
        text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("probe=done")
    });
    assert!(
        done,
        "the probe never finished:\n{text}\n{}",
        rig.node.log()
    );
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn value<'a>(report: &'a [(String, String)], name: &str) -> &'a str {
    report
        .iter()
        .find(|(k, _)| k == name)
        .map_or("<missing>", |(_, v)| v.as_str())
}

/// Host pids of the running tasks in the rig's namespace.
fn task_pids(rig: &Rig) -> Vec<u32> {
    let out = rig.containerd.ctr(&["tasks", "ls"]).expect("ctr tasks ls");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter(|l| l.contains("RUNNING"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

/// The real uid of host process `pid`.
fn host_uid(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next()?.parse().ok())
        .expect("Uid line")
}

fn running(w: &WorkloadReport) -> bool {
    w.state == WorkloadState::Running
}

#[test]
fn a_workload_sees_and_touches_only_its_own_sandbox() {
    let rig = rig();
    let reference = probe_image(&rig);
    let host_file = rig.node.data_dir().join("host-secret.txt");
    std::fs::write(&host_file, "not for workloads\n").expect("host file");
    let started = std::time::Instant::now();
    for (job, tag) in [(1, "a"), (2, "b")] {
        let mut spec = workload(job, 0, &reference, 64);
        spec.command = vec!["sh".into(), "-c".into(), PROBE.into()];
        spec.env.insert("TAG".into(), tag.into());
        // An exec'd command (health check) is confined like the workload itself.
        spec.health = Some(HealthCheckSpec {
            probe: HealthProbe::Exec {
                command: [
                    "sh",
                    "-c",
                    "! unshare -U true && ! touch /written && test $(id -u) = 0",
                ]
                .map(str::to_owned)
                .to_vec(),
            },
            initial_delay_s: 0,
            period_s: 1,
            failure_threshold: 2,
        });
        spec.env
            .insert("HOST_FILE".into(), host_file.display().to_string());
        spec.env.insert(
            "AGENT_DIR".into(),
            rig.node.data_dir().join("state").display().to_string(),
        );
        rig.oracle.deploy(rig.node.address, spec);
    }
    for job in [1, 2] {
        let id = WorkloadId { job, replica: 0 };
        assert!(
            rig.oracle
                .wait_for(rig.node.address, id, WAIT, running)
                .is_some(),
            "workload {job} never ran; log:\n{}",
            rig.node.log()
        );
    }
    eprintln!(
        "two sandboxed workloads running after {:?}",
        started.elapsed()
    );
    for job in [1, 2] {
        let id = WorkloadId { job, replica: 0 };
        assert!(
            rig.oracle
                .wait_for(rig.node.address, id, WAIT, |w| w.healthy == Some(true))
                .is_some(),
            "the exec check of workload {job} found it unconfined; log:\n{}",
            rig.node.log()
        );
    }

    for job in [1, 2] {
        let report = probe_report(&rig, job);
        let expect = [
            ("uid", "0"),
            ("host-file", "hidden"),
            ("agent-dir", "hidden"),
            ("root", "read-only"),
            ("scratch", "writable"),
            ("scratch-files", "1"),
            ("tmp", "writable"),
            ("scratch-full", "enospc"),
            ("tmp-full", "enospc"),
            ("unshare", "refused"),
            ("mount", "refused"),
            ("reopened-stdout", "yes"),
        ];
        for (name, wanted) in expect {
            assert_eq!(
                value(&report, name),
                wanted,
                "{name} of job {job}: {report:?}"
            );
        }
        let pids: u32 = value(&report, "pids").parse().expect("pids");
        assert!(pids <= 5, "job {job} sees {pids} processes: {report:?}");
        let filled: u64 = value(&report, "scratch-fill-kib").parse().expect("fill");
        assert!(
            filled < SCRATCH_BYTES >> 10,
            "job {job} wrote {filled} KiB to a {SCRATCH_BYTES}-byte scratch disk"
        );
    }

    let pids = task_pids(&rig);
    assert_eq!(pids.len(), 2, "two running tasks");
    for pid in pids {
        let uid = host_uid(pid);
        assert!(
            (100_000..165_536).contains(&uid),
            "the workload's process {pid} runs as host uid {uid}"
        );
    }
    let scratch_dir = rig.node.data_dir().join("scratch");
    let images: Vec<_> = std::fs::read_dir(&scratch_dir)
        .expect("scratch dir")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "ext4"))
        .collect();
    assert_eq!(images.len(), 2, "one scratch disk per workload");
    for image in &images {
        let meta = image.metadata().expect("image metadata");
        assert_eq!(meta.len(), SCRATCH_BYTES);
        assert!(
            meta.blocks() * 512 <= SCRATCH_BYTES,
            "{} takes {} bytes of the host's disk",
            image.path().display(),
            meta.blocks() * 512
        );
    }

    rig.oracle
        .stop(rig.node.address, WorkloadId { job: 1, replica: 0 });
    assert!(
        r1_e2e::wait::until(WAIT, || std::fs::read_dir(&scratch_dir)
            .map(|d| d.flatten().count())
            .unwrap_or(0)
            == 2),
        "the stopped workload's scratch disk (image and mount point) was not removed"
    );
}

#[test]
fn what_the_operator_does_not_allow_is_refused_with_a_reason() {
    let rig = rig();
    let reference = probe_image(&rig);
    let (first, last) = rig.node.host_ports();
    let failed =
        |id: WorkloadId, reason: &str| {
            rig.oracle
            .wait_for(rig.node.address, id, WAIT, |w| {
                matches!(&w.state, WorkloadState::Failed { reason: r } if r.contains(reason))
            })
            .is_some()
        };

    let outside = first - 1;
    let mut fixed = workload(3, 0, &reference, 32);
    fixed.command = vec!["sleep".into(), "3600".into()];
    fixed.ports = vec![PortMapping {
        container_port: 8080,
        host_port: Some(outside),
        protocol: PortProtocol::Tcp,
    }];
    rig.oracle.deploy(rig.node.address, fixed.clone());
    assert!(
        failed(
            fixed.id,
            &format!("host port {outside} is outside this node's range {first}-{last}")
        ),
        "no refusal of host port {outside}; log:\n{}",
        rig.node.log()
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", outside)).is_err(),
        "the node listens on the refused port"
    );

    let mut writable = workload(4, 0, &reference, 32);
    writable.command = fixed.command.clone();
    writable.security = Some(SecurityRequest {
        host_users: false,
        writable_root_filesystem: true,
        no_egress: false,
    });
    rig.oracle.deploy(rig.node.address, writable.clone());
    assert!(
        failed(writable.id, "writable root file system"),
        "no refusal of a writable root; log:\n{}",
        rig.node.log()
    );
    let containers = rig
        .containerd
        .ctr(&["containers", "ls", "-q"])
        .expect("ctr");
    assert!(
        String::from_utf8_lossy(&containers.stdout)
            .trim()
            .is_empty(),
        "a refused workload got a container"
    );
}

#[test]
fn a_job_asking_for_a_writable_root_is_placed_only_where_the_operator_allows_it() {
    let mut network = Network::prepare(&NetworkSettings::default()).expect("network");
    let allowing = 1;
    network.nodes()[allowing]
        .add_config("sandbox: { allowWritableRootFilesystem: true }")
        .expect("sandbox config");
    network.start_oracles().expect("oracles");
    network.start_nodes().expect("nodes");
    let mut job = std::fs::read_to_string(format!("{EXAMPLES}/job-http.yaml")).expect("example");
    for (from, to) in [
        (
            "replicas: 2",
            "replicas: 1\n  securityContext: { writableRootFilesystem: true }",
        ),
        (
            r#"command: ["httpd", "-f", "-p", "8080", "-h", "/www"]"#,
            r#"command: ["sh", "-c", "echo written > /www/root.txt && exec httpd -f -p 8080 -h /www"]"#,
        ),
    ] {
        assert!(job.contains(from), "job-http.yaml has no {from:?}");
        job = job.replace(from, to);
    }
    let path = network.scratch_dir().join("job-writable.yaml");
    std::fs::write(&path, job).expect("job file");
    let mut args = vec!["apply".to_owned()];
    for file in ["escrow.yaml", "project.yaml"] {
        args.extend(["-f".to_owned(), format!("{EXAMPLES}/{file}")]);
    }
    args.extend(["-f".to_owned(), path.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let applied = network.r1ctl(&args).expect("r1ctl apply");
    assert!(applied.status.success(), "{}", printed(&applied));
    let job_id = wait_running(&network, "hello-web", 1, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}\n{}", network_logs(&network)));
    let nodes = active_nodes(&network, job_id).expect("active nodes");
    assert_eq!(
        nodes,
        vec![network.nodes()[allowing].address],
        "placed on a node that does not allow a writable root"
    );
}
