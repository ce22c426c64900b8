//! Image blobs shared between real node agents over the peer-to-peer layer (the
//! `image-blobs` protocol), with Debian's docker-registry as the source: three nodes starting
//! the same image together take it from the registry once and from each other; a licensed
//! peer that claims the blobs and serves wrong bytes only sends a node back to the registry,
//! and the image runs. Needs root (containerd).

use std::path::Path;
use std::time::Duration;

use r1_e2e::images as canned;
use r1_e2e::node::workload;
use r1_e2e::noise::noise;
use r1_e2e::peer_rig::PeerRig;
use r1_e2e::registry::LocalRegistry;
use r1_e2e::rogue_peer::{RoguePeer, roster_of};
use r1_node::images::share::{BlobRequest, BlobState, PROTOCOL};
use r1_protocol::messages::{WorkloadId, WorkloadState};

const WAIT: Duration = Duration::from_secs(60);

/// Blobs of the pushed image: its config and its single layer.
const BLOBS: u64 = 2;

/// Pushes an httpd image carrying `pad` bytes of noise as `acme/shared:1`; returns the
/// reference a job names.
fn push_padded(registry: &LocalRegistry, dir: &Path, pad: usize) -> String {
    let name = "localhost/acme/shared:1";
    let archive = dir.join("shared.tar");
    canned::httpd(name)
        .file("/www/pad.bin", noise(pad, 7), 0o644)
        .write_archive(&archive)
        .expect("image archive");
    registry
        .push_archive(&archive, name, "acme/shared:1")
        .expect("push");
    format!("{}/acme/shared:1", registry.host())
}

/// Whether every node of the rig runs its replica of `job` (replica `i` on node `i`).
fn running_everywhere(rig: &PeerRig, job: u64) -> bool {
    rig.nodes().iter().enumerate().all(|(i, node)| {
        let id = WorkloadId {
            job,
            replica: i as u32,
        };
        rig.oracle
            .wait_for(node.address, id, Duration::ZERO, |w| {
                w.state == WorkloadState::Running
            })
            .is_some()
    })
}

#[test]
fn nodes_starting_the_same_image_take_it_from_the_registry_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = LocalRegistry::start(dir.path()).expect("registry");
    let reference = push_padded(&registry, dir.path(), 6 << 20);
    let rig = PeerRig::start(3).expect("rig");
    rig.publish_roster(Vec::new()).expect("roster");
    for (i, node) in rig.nodes().iter().enumerate() {
        rig.oracle
            .deploy(node.address, workload(30, i as u32, &reference, 64));
    }
    assert!(
        r1_e2e::wait::until(WAIT, || running_everywhere(&rig, 30)),
        "not running everywhere; first node's log:\n{}",
        rig.nodes()[0].log()
    );
    let served = registry.blob_downloads().expect("access log");
    // Alone, each node would download every blob: 3 × BLOBS.
    assert!(
        (BLOBS..=BLOBS + 1).contains(&served),
        "the registry served {served} blob downloads for {BLOBS} blobs and 3 nodes"
    );
    let from_peers = |node: &r1_e2e::node::NodeAgent| {
        node.metric(r#"r1_node_images_blob_bytes_total{source="peers"}"#)
    };
    let served_to_peers: f64 = rig
        .nodes()
        .iter()
        .map(|n| n.metric("r1_node_images_served_bytes_total"))
        .sum();
    let took_from_peers = rig.nodes().iter().filter(|n| from_peers(n) > 0.0).count();
    assert!(
        took_from_peers >= 2,
        "{took_from_peers} nodes took blobs from peers"
    );
    assert!(
        served_to_peers >= (6 << 20) as f64,
        "{served_to_peers} bytes served to peers"
    );
}

#[test]
fn a_peer_serving_wrong_bytes_only_sends_the_node_to_the_registry() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = LocalRegistry::start(dir.path()).expect("registry");
    let reference = push_padded(&registry, dir.path(), 2 << 20);
    let rig = PeerRig::start(1).expect("rig");
    // Claims every blob and answers every range with zeros.
    let answer = |protocol: &str, bytes: &[u8]| {
        if protocol != PROTOCOL {
            return None;
        }
        match serde_json::from_slice(bytes).ok()? {
            BlobRequest::Ask { .. } => serde_json::to_vec(&BlobState::Complete { size: 0 }).ok(),
            BlobRequest::Range { len, .. } => {
                Some(vec![0; usize::try_from(len.min(1 << 20)).ok()? + 1])
            }
        }
    };
    let liar = runtime
        .block_on(RoguePeer::start(&[PROTOCOL], Box::new(answer)))
        .expect("rogue peer");
    rig.publish_roster(vec![liar.entry()]).expect("roster");
    runtime
        .block_on(
            liar.client
                .set_roster(roster_of(&[rig.entry(0), liar.entry()])),
        )
        .expect("liar's roster");
    assert!(
        r1_e2e::wait::until(WAIT, || rig.nodes()[0]
            .metric("r1_node_p2p_connected_peers")
            >= 1.0),
        "the node never connected to the liar"
    );
    let node = &rig.nodes()[0];
    rig.oracle
        .deploy(node.address, workload(31, 0, &reference, 64));
    assert!(
        r1_e2e::wait::until(WAIT, || running_everywhere(&rig, 31)),
        "never running past the liar; log:\n{}",
        node.log()
    );
    assert!(
        node.log().contains("fetch from peers failed"),
        "the node tried the liar first:\n{}",
        node.log()
    );
    assert!(registry.blob_downloads().expect("access log") >= BLOBS);
}
