//! R1FS between real node agents on 127.0.0.1: files added on some nodes are fetched by another
//! from all of them at once, through a provider that dies mid-transfer and past one that lies;
//! a stranger off the roster gets nothing; a workload adds a file from inside its container and
//! a workload on another node reads it back. The roster is signed by a stand-in oracle
//! (`r1_e2e::peer_rig`), so the test decides who is licensed. Needs root (containerd).

use std::collections::HashMap;
use std::process::Output;
use std::time::Duration;

use r1_e2e::images::OciImageBuilder;
use r1_e2e::node::workload;
use r1_e2e::noise::noise;
use r1_e2e::peer_rig::PeerRig;
use r1_e2e::rogue_peer::{RoguePeer, roster_of};
use r1_r1fs::exchange::wire;
use r1_r1fs::unixfs::{Cid, CidVersion, Importer};

const WAIT: Duration = Duration::from_secs(60);

fn ok(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Writes `bytes` into node `index`'s add directory and adds it there; returns the CID.
fn add_on(rig: &PeerRig, index: usize, name: &str, bytes: &[u8]) -> String {
    let node = &rig.nodes()[index];
    let path = node.add_dir().join(name);
    std::fs::write(&path, bytes).expect("write file");
    ok(
        node.r1ctl_fs(&["add", "--cid-version", "1", path.to_str().expect("utf-8")]),
        "r1ctl fs add",
    )
    .trim()
    .to_owned()
}

/// Blocks received per provider, from `r1ctl fs pin` output.
fn blocks_from(pin_output: &str) -> HashMap<String, u64> {
    pin_output
        .lines()
        .filter_map(|line| {
            let (count, peer) = line.trim().split_once(" blocks from ")?;
            Some((peer.to_lowercase(), count.trim().parse().ok()?))
        })
        .collect()
}

fn checksum(address: r1_protocol::Address) -> String {
    address.to_checksum(None).to_lowercase()
}

fn any_file_contains(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).expect("blocks dir").any(|entry| {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            any_file_contains(&path, needle)
        } else {
            std::fs::read(&path)
                .expect("block file")
                .windows(needle.len())
                .any(|w| w == needle)
        }
    })
}

fn cat(rig: &PeerRig, index: usize, cid: &str) -> Vec<u8> {
    let output = rig.nodes()[index].r1ctl_fs(&["cat", cid]);
    assert!(
        output.status.success(),
        "cat: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn a_file_is_fetched_from_every_provider_at_once_and_survives_one_dying() {
    let mut rig = PeerRig::start(3).expect("rig");
    rig.publish_roster(Vec::new()).expect("roster");

    let file = noise(24 << 20, 1);
    let cid = add_on(&rig, 0, "a.bin", &file);
    assert_eq!(add_on(&rig, 1, "a.bin", &file), cid, "same bytes, same CID");
    let pinned = ok(rig.nodes()[2].r1ctl_fs(&["pin", &cid]), "pin on C");
    let from = blocks_from(&pinned);
    for provider in [0, 1] {
        let address = checksum(rig.nodes()[provider].address);
        assert!(
            from.get(&address).copied().unwrap_or(0) > 0,
            "node {provider} served nothing: {pinned}"
        );
    }
    assert!(cat(&rig, 2, &cid) == file, "C reads the file back intact");

    // Encrypted: the CID names the ciphertext, the key travels apart; C stores and could
    // serve the blocks without ever holding the plaintext.
    let secret = b"a plan nobody else may read; ".repeat(40_000);
    let path = rig.nodes()[0].add_dir().join("secret.txt");
    std::fs::write(&path, &secret).expect("write secret");
    let added = ok(
        rig.nodes()[0].r1ctl_fs(&["add", "--encrypt", path.to_str().expect("utf-8")]),
        "encrypted add",
    );
    let mut lines = added.lines();
    let secret_cid = lines.next().expect("cid").to_owned();
    let key = lines
        .next()
        .and_then(|l| l.strip_prefix("key "))
        .expect("key line")
        .to_owned();
    ok(
        rig.nodes()[2].r1ctl_fs(&["pin", &secret_cid]),
        "pin the ciphertext on C",
    );
    let read = rig.nodes()[2].r1ctl_fs(&["cat", "--key", &key, &secret_cid]);
    assert!(
        read.status.success() && read.stdout == secret,
        "decrypted on C"
    );
    let blocks = rig.nodes()[2].data_dir().join("r1fs/blocks");
    assert!(
        !any_file_contains(&blocks, b"a plan nobody else may read"),
        "no plaintext in C's blocks"
    );
    let wrong = rig.nodes()[2].r1ctl_fs(&["cat", "--key", &"1".repeat(64), &secret_cid]);
    assert!(!wrong.status.success(), "a wrong key reads nothing");
    assert!(wrong.stdout.is_empty());

    let bigger = noise(96 << 20, 2);
    let cid = add_on(&rig, 0, "b.bin", &bigger);
    add_on(&rig, 1, "b.bin", &bigger);
    let answered = |rig: &PeerRig| {
        rig.nodes()[2].metric("r1_node_r1fs_block_requests_total{outcome=\"answered\"}")
    };
    let before = answered(&rig);
    let socket = rig.nodes()[2].api_socket();
    let pin = {
        let cid = cid.clone();
        std::thread::spawn(move || {
            std::process::Command::new(r1_e2e::process::bin_path("r1ctl").expect("r1ctl"))
                .args([
                    "fs",
                    "--socket",
                    socket.to_str().expect("utf-8"),
                    "pin",
                    &cid,
                ])
                .output()
                .expect("r1ctl fs pin")
        })
    };
    let started = r1_e2e::wait::until(WAIT, || answered(&rig) > before + 60.0);
    assert!(started, "the fetch never started");
    rig.nodes_mut()[0].kill();
    assert!(!pin.is_finished(), "A died before the fetch ended");
    let pinned = ok(pin.join().expect("pin thread"), "pin while A dies");
    eprintln!("fetch with A killed midway:\n{pinned}");
    let from = blocks_from(&pinned);
    for (provider, role) in [
        (0, "A served until it died"),
        (1, "B finished the transfer"),
    ] {
        let address = checksum(rig.nodes()[provider].address);
        assert!(
            from.get(&address).copied().unwrap_or(0) > 0,
            "{role}: {pinned}"
        );
    }
    assert!(cat(&rig, 2, &cid) == bigger, "the file arrives intact");
}

/// A licensed node gone bad: it holds `blocks` and sends the root as it is (so the node
/// takes it for a provider) and every other block with one byte flipped.
async fn liar(blocks: HashMap<Cid, Vec<u8>>, root: Cid) -> RoguePeer {
    let answer = move |_: &str, bytes: &[u8]| {
        let wanted = wire::decode_request(bytes).ok()?;
        let answer: Vec<(Cid, Vec<u8>)> = wanted
            .into_iter()
            .filter_map(|cid| {
                let mut data = blocks.get(&cid)?.clone();
                if cid != root {
                    data[0] ^= 0x55;
                }
                Some((cid, data))
            })
            .collect();
        Some(wire::encode_answer(&answer))
    };
    RoguePeer::start(&["r1fs"], Box::new(answer))
        .await
        .expect("rogue peer")
}

fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_lying_provider_is_dropped_and_a_stranger_gets_nothing() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let rig = PeerRig::start(2).expect("rig");
    let file = noise(8 << 20, 3);
    let imported = Importer::new(CidVersion::V1).add_bytes(&file);
    let blocks: HashMap<Cid, Vec<u8>> = imported
        .blocks
        .iter()
        .map(|b| (b.cid, b.data.clone()))
        .collect();
    let liar = runtime.block_on(liar(blocks, imported.root));
    let stranger = runtime
        .block_on(RoguePeer::start(&["r1fs"], Box::new(|_, _| None)))
        .expect("stranger");
    rig.publish_roster(vec![liar.entry()]).expect("roster");
    let everyone = [rig.entry(0), rig.entry(1), liar.entry()];
    runtime
        .block_on(liar.client.set_roster(roster_of(&everyone)))
        .expect("liar's roster");
    assert!(
        r1_e2e::wait::until(WAIT, || rig.nodes()[1]
            .metric("r1_node_p2p_connected_peers")
            >= 2.0),
        "node B never connected to the liar"
    );

    let cid = add_on(&rig, 0, "c.bin", &file);
    assert_eq!(cid, imported.root.to_string());
    let pinned = ok(rig.nodes()[1].r1ctl_fs(&["pin", &cid]), "pin past a liar");
    let liar_address = liar.identity.address().to_checksum(None);
    assert!(
        pinned.contains(&format!("dropped {liar_address}")),
        "the liar is dropped: {pinned}"
    );
    assert!(cat(&rig, 1, &cid) == file, "the file arrives intact");

    // The stranger knows node A's addresses and puts A on its own roster, but A's roster does
    // not list the stranger: A refuses the connection and the stranger's request fails.
    runtime
        .block_on(stranger.client.set_roster(roster_of(&[rig.entry(0)])))
        .expect("stranger's roster");
    let asked = runtime.block_on(stranger.client.request(
        rig.nodes()[0].address,
        "r1fs",
        wire::encode_request(&[imported.root]),
    ));
    assert!(asked.is_err(), "a stranger was answered: {asked:?}");
    assert!(
        metric_sum(
            &rig.nodes()[0].metrics(),
            "r1_node_p2p_refused_connections_total"
        ) >= 1.0,
        "the refusal is counted:\n{}",
        rig.nodes()[0].metrics()
    );
}

/// The CID in the workload API's answer to an add, from a workload's output.
fn cid_in(log: &str) -> Option<String> {
    let start = log.find("\"cid\":\"")? + 7;
    let end = log[start..].find('"')? + start;
    Some(log[start..end].to_owned())
}

#[test]
fn a_workload_adds_a_file_and_a_workload_on_another_node_reads_it() {
    let rig = PeerRig::start(2).expect("rig");
    rig.publish_roster(Vec::new()).expect("roster");
    let image = OciImageBuilder::new("r1.test/fsclient:1")
        .applets(&["sh", "wget", "echo", "cat", "sleep", "printf"]);
    let mut reference = String::new();
    for node in rig.nodes() {
        reference = image
            .write_archive(&node.images_dir().join("fsclient.tar"))
            .expect("image")
            .reference;
    }

    let mut writer = workload(7, 0, &reference, 32);
    writer.command = vec!["sh".into(), "-c".into()];
    writer.args = vec![
        "printf 'written inside a container' > /tmp/f; \
         until wget -q -O /tmp/added --post-file=/tmp/f \"$R1FS_API_URL/v0/add\"; do sleep 1; done; \
         cat /tmp/added; echo; sleep 3600"
            .into(),
    ];
    rig.oracle.deploy(rig.nodes()[0].address, writer);
    let log = |index: usize, job: u64| {
        String::from_utf8_lossy(
            &rig.nodes()[index]
                .r1ctl(&["logs", &format!("{job}/0")])
                .stdout,
        )
        .into_owned()
    };
    assert!(
        r1_e2e::wait::until(WAIT, || cid_in(&log(0, 7)).is_some()),
        "the writer never added its file; its output: {}\nnode log:\n{}",
        log(0, 7),
        rig.nodes()[0].log()
    );
    let cid = cid_in(&log(0, 7)).expect("cid");
    let stat = ok(rig.nodes()[0].r1ctl_fs(&["stat", &cid]), "stat on A");
    assert!(
        stat.contains("pinned: job-7"),
        "the job owns its file: {stat}"
    );

    let mut reader = workload(8, 0, &reference, 32);
    reader.command = vec!["sh".into(), "-c".into()];
    reader.args = vec![format!(
        "until wget -q -O /tmp/got \"$R1FS_API_URL/v0/cat/{cid}\"; do sleep 1; done; \
         echo \"read: $(cat /tmp/got)\"; sleep 3600"
    )];
    rig.oracle.deploy(rig.nodes()[1].address, reader);
    assert!(
        r1_e2e::wait::until(WAIT, || log(1, 8)
            .contains("read: written inside a container")),
        "the reader never read the file; its output: {}\nnode log:\n{}",
        log(1, 8),
        rig.nodes()[1].log()
    );
}
