//! R1FS blocks over the real peer-to-peer layer (`r1-p2p` on 127.0.0.1): two nodes hold a file
//! and answer block requests from their stores; a third fetches it from both at once.

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Address;
use prometheus_client::registry::Registry;
use r1_p2p::{Client, Config, Event, P2p, ParsedRoster};
use r1_protocol::Identity;
use r1_r1fs::blocks::BlockStore;
use r1_r1fs::exchange::{self, Peers};
use r1_r1fs::unixfs::{CidVersion, Importer};

const PROTOCOL: &str = "r1fs";

/// The `r1fs` protocol over an `r1-p2p` client.
#[derive(Clone)]
struct Net(Client);

impl Peers for Net {
    type Error = r1_p2p::Error;

    async fn request(&self, peer: Address, bytes: Vec<u8>) -> Result<Vec<u8>, r1_p2p::Error> {
        self.0.request(peer, PROTOCOL, bytes).await
    }
}

struct Node {
    address: Address,
    client: Client,
    addrs: Vec<r1_p2p::Multiaddr>,
    store: Arc<BlockStore>,
    _dir: tempfile::TempDir,
}

async fn node() -> Node {
    let identity = Identity::generate();
    let mut config = Config::new(identity.clone(), "r1fs-test");
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    config.request_protocols = vec![PROTOCOL.into()];
    let (client, mut events) = P2p::start(config, &mut Registry::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(BlockStore::open(dir.path(), u64::MAX).unwrap());
    let serving = store.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::Request { bytes, reply, .. } = event {
                let store = serving.clone();
                let answer =
                    tokio::task::spawn_blocking(move || exchange::answer(&store, &bytes, 4 << 20))
                        .await;
                if let Ok(Ok(answer)) = answer {
                    let _ = reply.send(answer);
                }
            }
        }
    });
    Node {
        address: identity.address(),
        addrs: client.listen_addrs().await.unwrap(),
        client,
        store,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_added_on_two_nodes_is_fetched_on_a_third_from_both() {
    let (a, b, c) = (node().await, node().await, node().await);
    let roster = ParsedRoster::new(1, [&a, &b, &c].map(|n| (n.address, n.addrs.clone())));
    for n in [&a, &b, &c] {
        n.client.set_roster(roster.clone()).await.unwrap();
    }
    let file: Vec<u8> = (0..3 * 1024 * 1024 + 17u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut root = None;
    for n in [&a, &b] {
        let mut lease = n.store.lease();
        let added = Importer::new(CidVersion::V1)
            .add_reader(file.as_slice(), &mut lease)
            .unwrap();
        n.store.pin(&added.cid, "local").unwrap();
        root = Some(added.cid);
    }
    let root = root.unwrap();

    let fetched = tokio::time::timeout(
        Duration::from_secs(30),
        exchange::fetch(
            &c.store,
            &Net(c.client.clone()),
            root,
            vec![a.address, b.address],
            4,
            "local",
        ),
    )
    .await
    .expect("in time")
    .expect("fetched");
    assert_eq!(fetched.from.len(), 2, "both served: {fetched:?}");
    assert!(fetched.penalised.is_empty());

    for block in Importer::new(CidVersion::V1).add_bytes(&file).blocks {
        let stored = c.store.get(&block.cid).unwrap().expect("every block on C");
        assert_eq!(stored, block.data);
    }
    assert_eq!(c.store.pins().unwrap()[0].root, root);
}
