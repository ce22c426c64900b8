//! CSTORE between real node agents on the peer-to-peer layer: writes on any node reach the
//! others, writes on both sides of a partition converge once it heals, a node killed during a
//! burst of writes keeps every write it acknowledged and catches up, an entry forged in another
//! node's name is refused, and `WAIT` counts the nodes that hold a connection's writes. Writes
//! and reads go through `r1ctl cstore` on each node's socket. Needs root (containerd).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use prometheus_client::registry::Registry;
use r1_cstore::seal::seal_batch;
use r1_cstore::{Entry, Key, Stamp};
use r1_e2e::node::NodeAgent;
use r1_e2e::peer_rig::PeerRig;
use r1_p2p::{P2p, ParsedRoster};
use r1_protocol::Identity;
use r1_protocol::messages::{Roster, RosterEntry};

const WAIT: Duration = Duration::from_secs(30);
const NS: &str = "app";
/// The network name the rig's nodes derive from their topic root.
const NETWORK: &str = "r1-test";

/// Runs `r1ctl cstore ARGS` against the node API socket `socket`: stdout, or the error.
fn cstore_at(socket: &Path, args: &[&str]) -> Result<String, String> {
    let r1ctl = r1_e2e::process::bin_path("r1ctl").map_err(|e| e.to_string())?;
    let out = Command::new(r1ctl)
        .arg("cstore")
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stdout} {}", String::from_utf8_lossy(&out.stderr)))
    }
}

fn cstore(node: &NodeAgent, args: &[&str]) -> Result<String, String> {
    cstore_at(&node.api_socket(), args)
}

fn set(node: &NodeAgent, key: &str, value: &str) -> Result<(), String> {
    cstore(node, &["set", NS, key, value]).map(drop)
}

/// The value at `key` on `node`, `None` for nil.
fn get(node: &NodeAgent, key: &str) -> Option<String> {
    let out = cstore(node, &["get", NS, key]).ok()?;
    (out != "(nil)").then(|| out.trim_matches('"').to_owned())
}

fn wait_value(node: &NodeAgent, key: &str, value: &str) -> bool {
    r1_e2e::wait::until(WAIT, || get(node, key).as_deref() == Some(value))
}

fn publish(rig: &PeerRig, indices: &[usize]) {
    rig.oracle.publish_roster(&Roster {
        issued_ms: r1_protocol::now_ms(),
        nodes: indices.iter().map(|&i| rig.entry(i)).collect(),
    });
}

fn connected(node: &NodeAgent) -> f64 {
    node.metric("r1_node_p2p_connected_peers")
}

#[test]
fn writes_on_both_sides_of_a_partition_converge_once_it_heals() {
    let rig = PeerRig::start(3).expect("rig");
    rig.publish_roster(Vec::new()).expect("connected");
    let nodes = rig.nodes();

    set(&nodes[0], "hello", "from-0").unwrap();
    for node in &nodes[1..] {
        assert!(
            wait_value(node, "hello", "from-0"),
            "gossip never delivered; log:\n{}",
            node.log()
        );
    }

    // Cut node 2 off: the roster lists only nodes 0 and 1, so they drop it.
    publish(&rig, &[0, 1]);
    assert!(
        r1_e2e::wait::until(WAIT, || connected(&nodes[0]) == 1.0
            && connected(&nodes[1]) == 1.0
            && connected(&nodes[2]) == 0.0),
        "partition not in place"
    );
    set(&nodes[0], "left", "0").unwrap();
    set(&nodes[2], "right", "2").unwrap();
    set(&nodes[0], "contested", "older").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    set(&nodes[2], "contested", "newer").unwrap();
    set(&nodes[2], "hello", "overwritten-by-2").unwrap();
    cstore(&nodes[0], &["del", NS, "hello"]).unwrap();
    assert!(wait_value(&nodes[1], "left", "0"));
    assert_eq!(get(&nodes[1], "right"), None, "the partition holds");

    publish(&rig, &[0, 1, 2]);
    for (index, node) in nodes.iter().enumerate() {
        for (key, value) in [("left", "0"), ("right", "2"), ("contested", "newer")] {
            assert!(
                wait_value(node, key, value),
                "node {index}: {key} = {:?}, want {value}; log:\n{}",
                get(node, key),
                node.log()
            );
        }
        assert_eq!(
            get(node, "hello"),
            None,
            "node {index}: the later delete wins"
        );
    }
    let repaired: f64 = nodes
        .iter()
        .map(|n| n.metric("r1_node_cstore_merged_total{via=\"anti_entropy\",outcome=\"new\"}"))
        .sum();
    assert!(repaired >= 3.0, "anti-entropy repaired {repaired} entries");
}

#[test]
fn a_node_killed_during_a_burst_keeps_what_it_acknowledged_and_catches_up() {
    let mut rig = PeerRig::start(2).expect("rig");
    rig.publish_roster(Vec::new()).expect("connected");

    // Node 1 takes a burst of writes; it is killed with SIGKILL in the middle of it.
    let socket = rig.nodes()[1].api_socket();
    let writer = std::thread::spawn(move || {
        let mut acknowledged = Vec::new();
        for i in 0..10_000 {
            match cstore_at(&socket, &["set", NS, &format!("burst-{i}"), &i.to_string()]) {
                Ok(_) => acknowledged.push(i),
                Err(_) => break,
            }
        }
        acknowledged
    });
    std::thread::sleep(Duration::from_millis(1500));
    rig.nodes_mut()[1].kill();
    let acknowledged = writer.join().expect("writer");
    assert!(
        (10..10_000).contains(&acknowledged.len()),
        "{} writes before the kill",
        acknowledged.len()
    );

    // Meanwhile node 0 writes on; node 1 restarts on the same data and catches up.
    set(&rig.nodes()[0], "while-down", "yes").unwrap();
    let before = rig.entry(1).addrs;
    rig.nodes_mut()[1].start().expect("restart");
    // The oracles' next roster lists the address the restarted node announces.
    assert!(
        r1_e2e::wait::until(WAIT, || rig.entry(1).addrs != before),
        "the restarted node announced no new address"
    );
    rig.publish_roster(Vec::new()).expect("reconnected");
    let (zero, one) = (&rig.nodes()[0], &rig.nodes()[1]);
    assert!(
        wait_value(one, "while-down", "yes"),
        "node 1 did not catch up; log:\n{}",
        one.log()
    );
    for node in [one, zero] {
        let keys = cstore(node, &["keys", NS, "burst-*"]).unwrap();
        for i in &acknowledged {
            assert!(
                keys.contains(&format!("\"burst-{i}\"")),
                "acknowledged write {i} missing; keys: {keys}"
            );
        }
    }
    assert_eq!(
        get(zero, &format!("burst-{}", acknowledged[0])).as_deref(),
        Some("0")
    );
}

#[test]
fn an_entry_forged_in_another_nodes_name_is_refused() {
    let rig = PeerRig::start(1).expect("rig");
    let node = &rig.nodes()[0];
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let rogue = Identity::generate();
    let (client, _events) = runtime.block_on(async {
        let mut config = r1_p2p::Config::new(rogue.clone(), NETWORK);
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")];
        P2p::start(config, &mut Registry::default())
            .await
            .expect("p2p")
    });
    let addrs = runtime.block_on(client.listen_addrs()).expect("addrs");
    let rogue_entry = RosterEntry {
        address: rogue.address(),
        addrs: addrs.iter().map(ToString::to_string).collect(),
    };
    rig.publish_roster(vec![rogue_entry]).expect("connected");
    let roster = [rig.entry(0)];
    runtime
        .block_on(client.set_roster(ParsedRoster::new(
            r1_protocol::now_ms(),
            roster.iter().map(|e| {
                (
                    e.address,
                    e.addrs.iter().filter_map(|a| a.parse().ok()).collect(),
                )
            }),
        )))
        .expect("roster");
    runtime
        .block_on(client.subscribe("cstore"))
        .expect("subscribe");

    // An entry that names the node as its writer, sealed by the rogue's key; and one the rogue
    // honestly writes in its own name.
    let key = |k: &str| Key::new(NS, k.as_bytes().to_vec(), None).unwrap();
    let stamp = Stamp {
        wall_ms: r1_protocol::now_ms(),
        logical: 0,
    };
    let forged = Entry::unsealed(
        key("forged"),
        Some(b"x".to_vec()),
        None,
        stamp,
        node.address,
    )
    .unwrap();
    let honest = Entry::unsealed(
        key("honest"),
        Some(b"y".to_vec()),
        None,
        stamp,
        rogue.address(),
    )
    .unwrap();
    let seals = seal_batch(&[forged.digest(), honest.digest()], &rogue).unwrap();
    let entries: Vec<Entry> = [forged, honest]
        .into_iter()
        .zip(seals)
        .map(|(e, s)| e.with_seal(s))
        .collect();
    let message = r1_cstore::delta::encode(&entries, 60_000).remove(0);
    let refused =
        || node.metric("r1_node_cstore_merged_total{via=\"gossip\",outcome=\"forged\"}") >= 1.0;
    // Gossip needs the mesh: publish until the node has taken the message.
    assert!(
        r1_e2e::wait::until(WAIT, || {
            let _ = runtime.block_on(client.publish("cstore", message.clone()));
            refused()
        }),
        "the forged entry was not refused; log:\n{}",
        node.log()
    );
    assert_eq!(get(node, "forged"), None);
    assert_eq!(get(node, "honest").as_deref(), Some("y"));
    let counted: BTreeMap<&str, f64> = ["new", "forged"]
        .into_iter()
        .map(|o| {
            (
                o,
                node.metric(&format!(
                    "r1_node_cstore_merged_total{{via=\"gossip\",outcome=\"{o}\"}}"
                )),
            )
        })
        .collect();
    assert!(counted["new"] >= 1.0, "{counted:?}");
    assert!(
        node.log().contains("CSTORE entry refused"),
        "the refusal is logged"
    );
}

#[test]
fn wait_answers_how_many_other_nodes_hold_a_connections_writes() {
    let rig = PeerRig::start(3).expect("rig");
    rig.publish_roster(Vec::new()).expect("connected");
    rig.oracle.publish_cstore_rules(&[(31, "p.test.wait")], &[]);
    let node = &rig.nodes()[0];
    let reference = r1_e2e::images::OciImageBuilder::new("r1.test/redis-cli:1")
        .applets(&["sh", "sleep", "grep", "printf"])
        .host_program("/usr/bin/redis-cli")
        .expect("redis-cli (apt install redis-tools)")
        .write_archive(&node.images_dir().join("redis-cli.tar"))
        .expect("image")
        .reference;
    let mut spec = r1_e2e::node::workload(31, 0, &reference, 32);
    spec.command = vec!["sh".into(), "-c".into()];
    spec.args = vec![
        "port=${CSTORE_REDIS_URL##*:}; \
         until redis-cli -p $port PING | grep -q PONG; do sleep 1; done; \
         printf 'SET confirmed yes\\nWAIT 2 5000\\nWAIT 3 300\\n' | redis-cli -p $port; \
         echo done; sleep 3600"
            .into(),
    ];
    rig.oracle.deploy(node.address, spec);
    let log = || String::from_utf8_lossy(&node.r1ctl(&["logs", "31/0"]).stdout).into_owned();
    assert!(
        r1_e2e::wait::until(Duration::from_secs(60), || log().contains("done")),
        "the workload never finished: {}\nnode log:\n{}",
        log(),
        node.log()
    );
    let lines: Vec<String> = log().lines().map(str::to_owned).collect();
    let replies: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .skip_while(|l| *l != "OK")
        .take(3)
        .collect();
    assert_eq!(
        replies,
        ["OK", "2", "2"],
        "both other nodes confirm; a third replica does not exist, so WAIT 3 times out at 2"
    );
    for other in &rig.nodes()[1..] {
        assert_eq!(
            cstore(other, &["get", "p.test.wait", "confirmed"]).as_deref(),
            Ok("\"yes\""),
            "a confirmed write is already on every node that confirmed it"
        );
    }
}
