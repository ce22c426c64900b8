//! The node agent on a real containerd and real brokers: serving, crashing, running out of
//! memory, being killed, outliving containerd and the broker, running exec health checks,
//! stopping slow workloads without holding up others, and refusing bad commands.

use std::time::Duration;

use r1_e2e::broker::{Broker, Mosquitto, Role, Rumqttd};
use r1_e2e::containerd::PrivateContainerd;
use r1_e2e::images as canned;
use r1_e2e::node::{NodeAgent, NodeSettings, TestOracle, http_get, workload};
use r1_protocol::Identity;
use r1_protocol::messages::{
    DeployCommand, HealthCheckSpec, HealthProbe, PortMapping, PortProtocol, WorkloadId,
    WorkloadReport, WorkloadState,
};

const WAIT: Duration = Duration::from_secs(30);

struct Rig {
    node: NodeAgent,
    oracle: TestOracle,
    broker: Box<dyn Broker>,
    containerd: PrivateContainerd,
}

fn rig(broker: Box<dyn Broker>) -> Rig {
    rig_with_heartbeat(broker, 1)
}

fn rig_with_heartbeat(broker: Box<dyn Broker>, heartbeat_seconds: u64) -> Rig {
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
            heartbeat_seconds,
            backoff_initial_ms: 300,
            labels: Vec::new(),
        },
        &identity,
    )
    .expect("node");
    node.start().expect("start node");
    assert!(
        r1_e2e::wait::until(WAIT, || oracle.heartbeat(node.address).is_some()),
        "no heartbeat from the node; its log:\n{}",
        node.log()
    );
    Rig {
        node,
        oracle,
        broker,
        containerd,
    }
}

fn image(rig: &Rig, builder: r1_e2e::OciImageBuilder, name: &str) -> String {
    let info = builder
        .write_archive(&rig.node.images_dir().join(format!("{name}.tar")))
        .expect("image archive");
    info.reference
}

fn running(w: &WorkloadReport) -> bool {
    w.state == WorkloadState::Running
}

/// Containers in the rig's namespace, by id.
fn containers(rig: &Rig) -> Vec<String> {
    let out = rig
        .containerd
        .ctr(&["containers", "ls", "-q"])
        .expect("ctr containers ls");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

fn task_pid(rig: &Rig, container: &str) -> Option<u32> {
    let out = rig.containerd.ctr(&["tasks", "ls"]).ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with(container))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// Sends `text` to UDP `port` on loopback until an answer comes within `WAIT`; the answer.
fn udp_answer(port: u16, text: &str) -> Option<String> {
    let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp client");
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut answer = None;
    r1_e2e::wait::until(WAIT, || {
        let _ = client.send_to(text.as_bytes(), ("127.0.0.1", port));
        let mut buf = [0u8; 1500];
        answer = client
            .recv(&mut buf)
            .ok()
            .map(|len| String::from_utf8_lossy(&buf[..len]).into_owned());
        answer.is_some()
    });
    answer
}

#[test]
fn a_udp_port_answers_on_its_host_port_until_stopped() {
    let rig = rig(Box::new(Rumqttd::start().expect("rumqttd")));
    let echo = env!("CARGO_BIN_EXE_r1-udp-echo");
    let builder = r1_e2e::OciImageBuilder::new("localhost/r1-test/udp-echo:1")
        .applets(&["sh"])
        .host_program(echo)
        .expect("r1-udp-echo in the image")
        .cmd(&[
            "sh",
            "-c",
            &format!("trap 'exit 0' TERM; {echo} 5353 & wait"),
        ]);
    let reference = image(&rig, builder, "udp-echo");
    let mut spec = workload(2, 0, &reference, 64);
    spec.ports = vec![PortMapping {
        container_port: 5353,
        host_port: None,
        protocol: PortProtocol::Udp,
    }];
    let id = spec.id;
    rig.oracle.deploy(rig.node.address, spec);
    let report = rig
        .oracle
        .wait_for(rig.node.address, id, WAIT, running)
        .unwrap_or_else(|| panic!("never running; log:\n{}", rig.node.log()));
    assert_eq!(report.ports.len(), 1, "{:?}", report.ports);
    assert_eq!(report.ports[0].protocol, PortProtocol::Udp);
    let host_port = report.ports[0].host_port.expect("host port");
    assert_eq!(
        udp_answer(host_port, "ping over udp").as_deref(),
        Some("ping over udp"),
        "log:\n{}",
        rig.node.log()
    );
    let ps = rig.node.r1ctl(&["ps"]);
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(ps.contains(&format!("{host_port}->5353/udp")), "{ps}");

    rig.oracle.stop(rig.node.address, id);
    assert!(rig.oracle.wait_for_count(rig.node.address, 0, WAIT));
    let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp client");
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    client
        .send_to(b"anyone?", ("127.0.0.1", host_port))
        .expect("send");
    assert!(
        client.recv(&mut [0u8; 64]).is_err(),
        "a stopped workload's UDP port still answers"
    );
}

#[test]
fn deployed_workload_serves_http_and_stop_removes_it() {
    let rig = rig(Box::new(Rumqttd::start().expect("rumqttd")));
    let reference = image(&rig, canned::httpd("localhost/r1-test/httpd:1"), "httpd");
    let mut spec = workload(1, 0, &reference, 64);
    spec.ports = vec![PortMapping {
        container_port: 8080,
        host_port: None,
        protocol: PortProtocol::Tcp,
    }];
    let id = spec.id;
    rig.oracle.deploy(rig.node.address, spec);
    let report = rig
        .oracle
        .wait_for(rig.node.address, id, WAIT, running)
        .unwrap_or_else(|| panic!("never running; log:\n{}", rig.node.log()));
    let host_port = report.ports[0].host_port.expect("host port");
    assert!(
        report
            .image_digest
            .as_deref()
            .is_some_and(|d| d.starts_with("sha256:"))
    );
    let mut body = None;
    r1_e2e::wait::until(WAIT, || {
        body = http_get(host_port, "/");
        body.is_some()
    });
    assert_eq!(body.as_deref(), Some("hello from r1\n"));

    let ps = rig.node.r1ctl(&["ps"]);
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(ps.contains("1/0") && ps.contains("running"), "{ps}");
    assert!(ps.contains(&format!("{host_port}->8080")), "{ps}");

    rig.oracle.stop(rig.node.address, id);
    assert!(rig.oracle.wait_for_count(rig.node.address, 0, WAIT));
    assert!(r1_e2e::wait::until(WAIT, || containers(&rig).is_empty()));
    assert!(http_get(host_port, "/").is_none());
    let statuses = rig.oracle.statuses(rig.node.address);
    assert!(
        statuses
            .iter()
            .any(|s| s.workload.id == id && s.workload.state == WorkloadState::Running)
    );
    assert!(
        statuses.iter().any(
            |s| s.workload.id == id && matches!(s.workload.state, WorkloadState::Exited { .. })
        )
    );
}

/// Seconds since midnight of a log line's RFC 3339 timestamp.
fn log_seconds(line: &str) -> Option<f64> {
    let time = line
        .split_whitespace()
        .next()?
        .split_once('T')?
        .1
        .trim_end_matches('Z');
    let mut parts = time.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

#[test]
fn crashing_workload_is_restarted_with_growing_delays() {
    let rig = rig(Box::new(Rumqttd::start().expect("rumqttd")));
    let reference = image(
        &rig,
        canned::exits_with("localhost/r1-test/exit3:1", 3),
        "exit3",
    );
    let mut spec = workload(2, 0, &reference, 32);
    spec.command = vec![
        "sh".into(),
        "-c".into(),
        r#"echo "start $MSG"; echo oops >&2; sleep 1; exit 3"#.into(),
    ];
    spec.env.insert("MSG".into(), "from-env".into());
    let id = spec.id;
    rig.oracle.deploy(rig.node.address, spec);
    let report = rig
        .oracle
        .wait_for(rig.node.address, id, WAIT, |w| {
            matches!(w.state, WorkloadState::Restarting { restarts, last_exit_code: 3, .. } if restarts >= 5)
        })
        .unwrap_or_else(|| panic!("no restarts seen; log:\n{}", rig.node.log()));
    assert!(matches!(
        report.state,
        WorkloadState::Restarting { reason: None, .. }
    ));
    let log = rig.node.log();
    let starts: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("workload started") && l.contains("r1-2-0-"))
        .filter_map(log_seconds)
        .collect();
    assert!(starts.len() >= 5, "{log}");
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // Each run lasts 1 s; the delays after it are 0.3, 0.6, 1.2, 2.4 s (and passes are 1 s apart).
    assert!(
        gaps[3] > gaps[0] + 1.0,
        "delays do not grow: {gaps:?}\n{log}"
    );
    let logs = rig.node.r1ctl(&["logs", "2/0", "--tail", "0"]);
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(logs.matches("start from-env").count() >= 5, "{logs}");
    assert!(logs.contains("oops"), "{logs}");
}

#[test]
fn workload_over_its_memory_limit_is_killed_and_reported() {
    let rig = rig(Box::new(Rumqttd::start().expect("rumqttd")));
    let reference = image(&rig, canned::memory_hog("localhost/r1-test/hog:1"), "hog");
    let spec = workload(3, 0, &reference, 32);
    let id = spec.id;
    rig.oracle.deploy(rig.node.address, spec);
    let report = rig
        .oracle
        .wait_for(rig.node.address, id, WAIT, |w| {
            matches!(w.state, WorkloadState::Restarting { .. })
        })
        .unwrap_or_else(|| panic!("never killed; log:\n{}", rig.node.log()));
    assert_eq!(
        report.state,
        WorkloadState::Restarting {
            restarts: match report.state {
                WorkloadState::Restarting { restarts, .. } => restarts,
                _ => 0,
            },
            last_exit_code: 137,
            reason: Some("OOMKilled".into())
        }
    );
    assert!(
        rig.oracle
            .statuses(rig.node.address)
            .iter()
            .any(|s| s.message.contains("OOMKilled"))
    );
}

#[test]
fn killed_agent_reattaches_without_duplicates_and_removes_strays() {
    let mut rig = rig(Box::new(Mosquitto::start().expect("mosquitto")));
    let reference = image(
        &rig,
        canned::sleeper("localhost/r1-test/sleeper:1"),
        "sleeper",
    );
    let ids: Vec<WorkloadId> = (0..2)
        .map(|replica| {
            let spec = workload(4, replica, &reference, 16);
            let id = spec.id;
            rig.oracle.deploy(rig.node.address, spec);
            id
        })
        .collect();
    for id in &ids {
        assert!(
            rig.oracle
                .wait_for(rig.node.address, *id, WAIT, running)
                .is_some()
        );
    }
    let before = containers(&rig);
    assert_eq!(before.len(), 2);
    let pids: Vec<Option<u32>> = before.iter().map(|c| task_pid(&rig, c)).collect();

    rig.node.kill();
    rig.containerd
        .ctr(&[
            "containers",
            "create",
            "--label",
            "ai.ratio1.workload=99/0",
            &reference,
            "r1-99-0-stray",
        ])
        .expect("stray container");
    rig.node.start().expect("restart");
    assert!(r1_e2e::wait::until(WAIT, || containers(&rig) == before));
    let after: Vec<Option<u32>> = before.iter().map(|c| task_pid(&rig, c)).collect();
    assert_eq!(
        pids, after,
        "running containers were restarted instead of re-attached"
    );
    for id in &ids {
        assert!(
            rig.oracle
                .wait_for(rig.node.address, *id, WAIT, running)
                .is_some()
        );
    }
}

#[test]
fn agent_survives_a_containerd_restart() {
    let mut rig = rig(Box::new(Rumqttd::start().expect("rumqttd")));
    let reference = image(
        &rig,
        canned::sleeper("localhost/r1-test/sleeper:1"),
        "sleeper",
    );
    let first = workload(5, 0, &reference, 16);
    rig.oracle.deploy(rig.node.address, first.clone());
    assert!(
        rig.oracle
            .wait_for(rig.node.address, first.id, WAIT, running)
            .is_some()
    );
    let container = containers(&rig).remove(0);
    let pid = task_pid(&rig, &container);

    rig.containerd.restart().expect("containerd restart");
    let second = workload(5, 1, &reference, 16);
    rig.oracle.deploy(rig.node.address, second.clone());
    assert!(
        rig.oracle
            .wait_for(rig.node.address, second.id, WAIT, running)
            .is_some(),
        "log:\n{}",
        rig.node.log()
    );
    assert_eq!(task_pid(&rig, &container), pid);
    assert!(
        rig.oracle
            .wait_for(rig.node.address, first.id, WAIT, running)
            .is_some()
    );
    assert_eq!(containers(&rig).len(), 2);
}

#[test]
fn heartbeat_is_sent_at_once_when_the_broker_returns() {
    let mut rig = rig_with_heartbeat(Box::new(Mosquitto::start().expect("mosquitto")), 60);
    let connected = |rig: &Rig| rig.node.metric("r1_node_broker_connected ");
    assert!(r1_e2e::wait::until(WAIT, || connected(&rig) == 1.0));
    rig.broker.stop();
    assert!(r1_e2e::wait::until(WAIT, || connected(&rig) == 0.0));
    let sent_before = rig.node.metric("r1_node_heartbeats_sent_total");
    rig.broker.start_again().expect("broker back");
    assert!(
        r1_e2e::wait::until(WAIT, || connected(&rig) == 1.0),
        "never reconnected; log:\n{}",
        rig.node.log()
    );
    assert!(
        r1_e2e::wait::until(Duration::from_secs(3), || rig
            .node
            .metric("r1_node_heartbeats_sent_total")
            > sent_before),
        "no heartbeat right after reconnecting (the interval is 60 s)"
    );
}

#[test]
fn forged_unsigned_stale_replayed_and_misaddressed_commands_are_refused() {
    let rig = rig(Box::new(Rumqttd::start().expect("rumqttd")));
    let node = rig.node.address;
    let spec = workload(6, 0, "localhost/r1-test/none:1", 16);
    let command = DeployCommand {
        target: node,
        workload: spec.clone(),
    };

    let mut forged = rig.oracle.seal(&command);
    forged.payload = forged
        .payload
        .replace("localhost/r1-test/none:1", "localhost/evil:1");
    rig.oracle.send_raw(node, forged.to_bytes());

    let unsigned = serde_json::json!({
        "v": 1, "kind": "deploy", "sender": format!("{node:#x}"), "nonce": 1, "ts": r1_protocol::now_ms(),
        "payload": serde_json::to_string(&command).unwrap(), "sig": ""
    });
    rig.oracle.send_raw(node, unsigned.to_string().into_bytes());

    let stranger = TestOracle::connect(rig.broker.as_ref()).expect("stranger");
    stranger.send_raw(node, stranger.seal(&command).to_bytes());

    let stale = rig
        .oracle
        .seal_at(&command, r1_protocol::now_ms() - 600_000);
    rig.oracle.send_raw(node, stale.to_bytes());

    let elsewhere = rig.oracle.seal(&DeployCommand {
        target: stranger.address(),
        workload: spec.clone(),
    });
    rig.oracle.send_raw(node, elsewhere.to_bytes());

    let good = rig.oracle.seal(&command);
    rig.oracle.send_raw(node, good.to_bytes());
    assert!(rig.oracle.wait_for(node, spec.id, WAIT, |_| true).is_some());
    rig.oracle.stop(node, spec.id);
    assert!(rig.oracle.wait_for_count(node, 0, WAIT));
    rig.oracle.send_raw(node, good.to_bytes());

    let refused = |outcome: &str| {
        rig.node.metric(&format!(
            "r1_node_commands_total{{kind=\"deploy\",outcome=\"{outcome}\"}}"
        ))
    };
    assert!(r1_e2e::wait::until(WAIT, || refused("replayed") >= 1.0));
    assert_eq!(
        rig.node
            .metric("r1_node_commands_total{kind=\"unknown\",outcome=\"malformed\"}"),
        1.0,
        "the unsigned command: {}",
        rig.node.metrics()
    );
    for outcome in [
        "bad_signature",
        "unknown_sender",
        "stale",
        "wrong_target",
        "replayed",
    ] {
        assert_eq!(refused(outcome), 1.0, "{outcome}: {}", rig.node.metrics());
    }
    assert_eq!(refused("accepted"), 1.0);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        rig.oracle.wait_for_count(node, 0, WAIT),
        "the replayed deploy was obeyed"
    );
    let log = rig.node.log();
    assert!(log.contains("command refused"), "{log}");
}

/// An exec health check running `command` every second, unhealthy after two failures.
fn exec_check(command: &[&str]) -> Option<HealthCheckSpec> {
    Some(HealthCheckSpec {
        probe: HealthProbe::Exec {
            command: command.iter().map(|&a| a.to_owned()).collect(),
        },
        initial_delay_s: 0,
        period_s: 1,
        failure_threshold: 2,
    })
}

#[test]
fn exec_health_checks_run_inside_the_container() {
    let rig = rig(Box::new(Rumqttd::start().expect("rumqttd")));
    let reference = image(
        &rig,
        canned::httpd("localhost/r1-test/httpd-exec:1").applets(&["test"]),
        "httpd-exec",
    );
    let node = rig.node.address;
    let checks = [
        (
            0,
            exec_check(&["test", "-f", "/www/index.html"]),
            Some(true),
        ),
        (
            1,
            exec_check(&["test", "-f", "/www/missing.html"]),
            Some(false),
        ),
        (2, exec_check(&["sleep", "60"]), Some(false)),
        (3, exec_check(&["/bin/not-there"]), Some(false)),
    ];
    for (replica, health, _) in &checks {
        let mut spec = workload(7, *replica, &reference, 32);
        spec.health = health.clone();
        rig.oracle.deploy(node, spec);
    }
    for (replica, _, verdict) in checks {
        let id = WorkloadId { job: 7, replica };
        let report = rig
            .oracle
            .wait_for(node, id, WAIT, |w| running(w) && w.healthy.is_some())
            .unwrap_or_else(|| panic!("replica {replica}: no verdict; log:\n{}", rig.node.log()));
        assert_eq!(report.healthy, verdict, "replica {replica}");
    }
    let log = rig.node.log();
    assert_eq!(
        r1_e2e::phrases::count(&log, "cannot delete exec process"),
        0,
        "{log}"
    );
}

#[test]
fn a_workload_slow_to_stop_holds_up_neither_new_workloads_nor_reports() {
    let rig = rig(Box::new(Rumqttd::start().expect("rumqttd")));
    let reference = image(&rig, canned::httpd("localhost/r1-test/httpd:1"), "httpd");
    let node = rig.node.address;
    // A bare httpd as PID 1 has no TERM handler, so only the SIGKILL after the 10 s stop
    // grace ends it.
    let mut stubborn = workload(8, 0, &reference, 32);
    stubborn.command = ["httpd", "-f", "-p", "8080", "-h", "/www"]
        .map(str::to_owned)
        .to_vec();
    rig.oracle.deploy(node, stubborn.clone());
    assert!(
        rig.oracle
            .wait_for(node, stubborn.id, WAIT, running)
            .is_some(),
        "never running; log:\n{}",
        rig.node.log()
    );

    rig.oracle.stop(node, stubborn.id);
    let next = workload(8, 1, &reference, 32);
    rig.oracle.deploy(node, next.clone());
    assert!(
        rig.oracle.wait_for(node, next.id, WAIT, running).is_some(),
        "the next workload never ran; log:\n{}",
        rig.node.log()
    );
    assert!(rig.oracle.wait_for_count(node, 1, WAIT));
    assert_eq!(
        containers(&rig).len(),
        2,
        "the stubborn container should still be in its stop grace"
    );
    assert!(
        r1_e2e::wait::until(WAIT, || containers(&rig).len() == 1),
        "the stubborn container was never removed; log:\n{}",
        rig.node.log()
    );
}

#[test]
fn generations_of_one_job_share_a_fixed_host_port_and_hand_it_over() {
    let rig = rig(Box::new(Rumqttd::start().expect("rumqttd")));
    let node = rig.node.address;
    let first = image(&rig, canned::httpd("localhost/r1-test/httpd:1"), "httpd");
    let second = image(
        &rig,
        canned::httpd("localhost/r1-test/httpd:2").file(
            "/www/index.html",
            b"second generation\n".to_vec(),
            0o644,
        ),
        "httpd-2",
    );
    // A fixed host port must lie in the node's range.
    let port = rig.node.host_ports().1;
    let fixed = |replica: u32, image: &str| {
        let mut spec = workload(9, replica, image, 32);
        spec.ports = vec![PortMapping {
            container_port: 8080,
            host_port: Some(port),
            protocol: PortProtocol::Tcp,
        }];
        spec
    };
    let old = fixed(10_000, &first);
    rig.oracle.deploy(node, old.clone());
    assert!(rig.oracle.wait_for(node, old.id, WAIT, running).is_some());
    assert!(r1_e2e::wait::until(WAIT, || http_get(port, "/").as_deref()
        == Some("hello from r1\n")));

    // The next generation claims the same port: the old one keeps serving it.
    let new = fixed(20_000, &second);
    rig.oracle.deploy(node, new.clone());
    assert!(
        rig.oracle.wait_for(node, new.id, WAIT, running).is_some(),
        "the second generation never ran; log:\n{}",
        rig.node.log()
    );
    assert_eq!(http_get(port, "/").as_deref(), Some("hello from r1\n"));

    // Another job cannot take it.
    rig.oracle.deploy(node, {
        let mut other = fixed(0, &first);
        other.id.job = 10;
        other
    });
    assert!(r1_e2e::wait::until(WAIT, || rig.node.metric(
        "r1_node_commands_total{kind=\"deploy\",outcome=\"ports\"}"
    ) >= 1.0));

    // Once the old generation stops, the port serves the new one without closing.
    rig.oracle.stop(node, old.id);
    assert!(
        r1_e2e::wait::until(WAIT, || http_get(port, "/").as_deref()
            == Some("second generation\n")),
        "the port never moved to the new generation; log:\n{}",
        rig.node.log()
    );
}
