//! A workload's way out of its node on a real containerd: the node gives each replica an
//! interface on a CNI bridge with NAT (Debian's containernetworking-plugins) before its program
//! runs, and holds its egress policy in the replica's own namespace. A server on the
//! bridge's gateway address (the host, reached through the bridge) answers a replica whose node
//! allows exactly that address; under the default policy (the public internet, never the node
//! itself nor a private network) the same server stays out of reach, and a node with egress
//! off makes no interface at all. A removed replica's namespace, address and NAT rules are
//! released.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use r1_e2e::OciImageBuilder;
use r1_e2e::broker::{Broker, Role, Rumqttd};
use r1_e2e::containerd::PrivateContainerd;
use r1_e2e::node::{NodeAgent, NodeSettings, TestOracle, workload};
use r1_e2e::wait::until;
use r1_protocol::Identity;
use r1_protocol::messages::{SecurityRequest, WorkloadId};

const WAIT: Duration = Duration::from_secs(40);

/// What the probe prints: first whether its namespace had an interface beyond loopback when
/// its program started, then each second whether the gateway's test server answered.
const PROBE: &str = r#"
if grep -q eth0 /proc/net/dev; then echo first=eth0; else echo first=loopback; fi
while true; do
  if wget -O - "http://$GATEWAY:$PORT/" 2>/dev/null | grep -q pong; then echo egress=open; else echo egress=closed; fi
  sleep 1
done
"#;

/// A node with its own bridge and /24, and the oracle that commands it.
struct Rig {
    node: NodeAgent,
    oracle: TestOracle,
    bridge: String,
    gateway: Ipv4Addr,
    _containerd: PrivateContainerd,
    _broker: Box<dyn Broker>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.node.stop();
        let _ = std::process::Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .output();
    }
}

/// A rig whose node's egress is `egress` (a YAML flow mapping, `{gateway}` standing for its
/// bridge's address); `salt` keeps its bridge and subnet apart from the other rigs'.
fn rig(egress: &str, salt: u32) -> Rig {
    let n = std::process::id().wrapping_mul(7).wrapping_add(salt);
    let bridge = format!("r1e{:06x}", n & 0xff_ffff);
    let subnet = Ipv4Addr::new(10, 200 + (n % 50) as u8, ((n / 50) % 250) as u8, 0);
    let gateway = Ipv4Addr::from(u32::from(subnet) + 1);
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
    let egress = egress.replace("{gateway}", &gateway.to_string());
    node.set_network(&format!(
        "{{ egress: {egress}, bridge: {bridge}, subnet: \"{subnet}/24\" }}"
    ))
    .expect("network config");
    node.start().expect("start node");
    assert!(
        until(WAIT, || oracle.heartbeat(node.address).is_some()),
        "no heartbeat; the node's log:\n{}",
        node.log()
    );
    Rig {
        node,
        oracle,
        bridge,
        gateway,
        _containerd: containerd,
        _broker: broker,
    }
}

/// Serves `pong` on the rig's gateway, port `port`, once the bridge holds that address.
fn serve_pong(rig: &Rig, port: u16) {
    let mut listener = None;
    until(WAIT, || {
        listener = TcpListener::bind((rig.gateway, port)).ok();
        listener.is_some()
    });
    let listener = listener.unwrap_or_else(|| {
        panic!(
            "the bridge never got its gateway address; the node's log:\n{}",
            rig.node.log()
        )
    });
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\npong\n");
        }
    });
}

/// Starts the probe as job `job` on the rig's node, calling the gateway on `port`; with
/// `no_egress`, the job asks for no interface beyond loopback.
fn start_probe(rig: &Rig, job: u64, port: u16, no_egress: bool) {
    let image = OciImageBuilder::new("localhost/r1-test/egress:1")
        .applets(&["sh", "wget", "grep", "sleep", "echo"])
        .write_archive(&rig.node.images_dir().join("egress.tar"))
        .expect("image")
        .reference;
    let mut spec = workload(job, 0, &image, 64);
    spec.command = vec!["sh".into(), "-c".into(), PROBE.into()];
    spec.env.insert("GATEWAY".into(), rig.gateway.to_string());
    spec.env.insert("PORT".into(), port.to_string());
    if no_egress {
        spec.security = Some(SecurityRequest {
            no_egress: true,
            ..SecurityRequest::default()
        });
    }
    rig.oracle.deploy(rig.node.address, spec);
}

/// The probe's last verdict once it is `want`, else after the wait.
fn verdict(rig: &Rig, job: u64, want: &str) -> String {
    let mut last = String::new();
    until(WAIT, || {
        let out = rig
            .node
            .r1ctl(&["logs", &format!("{job}/0"), "--tail", "1"]);
        last = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        last == want
    });
    last
}

/// The first line job `job`'s replica printed.
fn first_line(rig: &Rig, job: u64) -> String {
    let out = rig.node.r1ctl(&["logs", &format!("{job}/0")]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

/// The host's NAT rules for the rig's network.
fn nat_rules(rig: &Rig) -> usize {
    let out = std::process::Command::new("iptables")
        .args(["-t", "nat", "-S"])
        .output()
        .expect("iptables");
    let name = format!("r1-{}", rig.bridge);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.contains(&name))
        .count()
}

/// Stops job `job` and waits until its namespace, address and NAT rules are released.
fn stop_and_release(rig: &Rig, job: u64) {
    rig.oracle
        .stop(rig.node.address, WorkloadId { job, replica: 0 });
    assert!(
        until(WAIT, || pinned(job).is_empty() && nat_rules(rig) == 0),
        "the removed replica's namespace or NAT rules are still there: {:?}, {} rules",
        pinned(job),
        nat_rules(rig)
    );
}

/// Names of the network namespaces pinned for job `job`'s containers.
fn pinned(job: u64) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|name| name.starts_with(&format!("r1-r1-{job}-")))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_replica_reaches_what_its_node_allows_and_nothing_else() {
    let port = r1_e2e::free_port();

    // Allowed: exactly the gateway.
    let only = rig("{ mode: only, allow: [\"{gateway}/32\"] }", 1);
    start_probe(&only, 41, port, false);
    serve_pong(&only, port);
    let seen = verdict(&only, 41, "egress=open");
    assert_eq!(seen, "egress=open", "node log:\n{}", only.node.log());
    assert_eq!(pinned(41).len(), 1, "the replica's namespace is pinned");
    assert_eq!(
        first_line(&only, 41),
        "first=eth0",
        "the interface is there before the program runs"
    );
    assert!(nat_rules(&only) > 0, "no NAT for the replica");
    // A job asking for no egress gets no interface on the same node.
    start_probe(&only, 44, port, true);
    let seen = verdict(&only, 44, "egress=closed");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        verdict(&only, 44, "egress=closed"),
        "egress=closed",
        "{seen}"
    );
    assert!(
        pinned(44).is_empty(),
        "a job without egress got a namespace pinned"
    );
    assert_eq!(first_line(&only, 44), "first=loopback");
    stop_and_release(&only, 41);
    drop(only);

    // The default policy: the node itself (the gateway) is out of reach.
    let public = rig("{ mode: public }", 2);
    start_probe(&public, 42, port, false);
    serve_pong(&public, port);
    std::thread::sleep(Duration::from_secs(3));
    let seen = verdict(&public, 42, "egress=closed");
    assert_eq!(seen, "egress=closed", "node log:\n{}", public.node.log());
    stop_and_release(&public, 42);
    drop(public);

    // Egress off: loopback only, no bridge is ever made.
    let none = rig("{ mode: none }", 3);
    start_probe(&none, 43, port, false);
    let seen = verdict(&none, 43, "egress=closed");
    assert_eq!(seen, "egress=closed", "node log:\n{}", none.node.log());
    assert!(
        !std::path::Path::new("/sys/class/net")
            .join(&none.bridge)
            .exists(),
        "a bridge was made for a node without egress"
    );
    assert!(pinned(43).is_empty());
}
