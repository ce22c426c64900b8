//! Fetches between real block stores (RocksDB and files in temporary directories); the network
//! between them is a map from provider to store, with the failures a network has.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::unixfs::{CidVersion, Importer};

const CHUNK: usize = 262_144;

/// How a provider behaves.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Honest,
    /// Flips a byte of every block it sends.
    Corrupt,
    /// Answers this many requests, then fails every one (killed mid-transfer).
    DiesAfter(usize),
}

#[derive(Clone)]
struct Net {
    providers: Arc<HashMap<Address, (Arc<BlockStore>, Behaviour, AtomicUsize)>>,
}

impl Peers for Net {
    type Error = String;

    async fn request(&self, peer: Address, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
        let (store, behaviour, served) = self.providers.get(&peer).ok_or("unknown peer")?;
        let count = served.fetch_add(1, Ordering::SeqCst);
        if let Behaviour::DiesAfter(n) = behaviour
            && count >= *n
        {
            return Err("connection closed".into());
        }
        let answer = answer(store, &bytes, 4 << 20).map_err(|e| e.to_string())?;
        if *behaviour != Behaviour::Corrupt {
            return Ok(answer);
        }
        let mut blocks = wire::decode_answer(&answer).map_err(|e| e.to_string())?;
        for (_, data) in &mut blocks {
            data[0] ^= 0xff;
        }
        Ok(wire::encode_answer(&blocks))
    }
}

fn data(chunks: usize) -> Vec<u8> {
    (0..chunks * CHUNK)
        .map(|i| ((i / CHUNK) as u8) ^ (i as u8).rotate_left(3))
        .collect()
}

struct World {
    _dirs: Vec<tempfile::TempDir>,
    net: Net,
    local: BlockStore,
    root: Cid,
    blocks: usize,
}

/// A file added on every provider, and an empty local store.
fn world(chunks: usize, providers: &[(u8, Behaviour)]) -> World {
    let file = data(chunks);
    let imported = Importer::new(CidVersion::V0).add_bytes(&file);
    let mut dirs = Vec::new();
    let mut map = HashMap::new();
    for (byte, behaviour) in providers {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(dir.path(), u64::MAX).unwrap();
        for block in &imported.blocks {
            store.put(&block.cid, &block.data).unwrap();
        }
        store.pin(&imported.root, "local").unwrap();
        dirs.push(dir);
        map.insert(
            Address::repeat_byte(*byte),
            (Arc::new(store), *behaviour, AtomicUsize::new(0)),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let local = BlockStore::open(dir.path(), u64::MAX).unwrap();
    dirs.push(dir);
    World {
        _dirs: dirs,
        net: Net {
            providers: Arc::new(map),
        },
        local,
        root: imported.root,
        blocks: chunks + 1,
    }
}

fn providers(bytes: &[u8]) -> Vec<Address> {
    bytes.iter().map(|b| Address::repeat_byte(*b)).collect()
}

#[tokio::test]
async fn a_file_arrives_from_several_providers_in_parallel_and_is_pinned() {
    let w = world(12, &[(1, Behaviour::Honest), (2, Behaviour::Honest)]);
    let fetched = fetch(&w.local, &w.net, w.root, providers(&[1, 2]), 4, "job-7")
        .await
        .unwrap();
    assert_eq!(fetched.from.values().sum::<usize>(), w.blocks);
    assert_eq!(fetched.from.len(), 2, "both providers served: {fetched:?}");
    assert_eq!(w.local.pins().unwrap()[0].owner, "job-7");
    assert_eq!(w.local.collect_garbage().unwrap().blocks, 0, "all pinned");
}

#[tokio::test]
async fn a_provider_killed_mid_transfer_leaves_the_rest_to_the_other() {
    let w = world(16, &[(1, Behaviour::DiesAfter(3)), (2, Behaviour::Honest)]);
    let fetched = fetch(&w.local, &w.net, w.root, providers(&[1, 2]), 4, "local")
        .await
        .unwrap();
    assert_eq!(fetched.from.values().sum::<usize>(), w.blocks);
    assert!(fetched.failed_requests >= 1, "{fetched:?}");
    assert!(fetched.from[&Address::repeat_byte(1)] <= 3);
}

#[tokio::test]
async fn a_corrupting_provider_is_caught_and_the_file_still_arrives_intact() {
    let w = world(6, &[(1, Behaviour::Corrupt), (2, Behaviour::Honest)]);
    let fetched = fetch(&w.local, &w.net, w.root, providers(&[1, 2]), 2, "local")
        .await
        .unwrap();
    assert_eq!(fetched.penalised, providers(&[1]));
    assert!(!fetched.from.contains_key(&Address::repeat_byte(1)));
    assert_eq!(w.local.usage().unwrap().blocks, w.blocks as u64);
}

#[tokio::test]
async fn an_interrupted_fetch_resumes_without_asking_again() {
    let w = world(10, &[(1, Behaviour::DiesAfter(5))]);
    let error = fetch(&w.local, &w.net, w.root, providers(&[1]), 1, "local")
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::Stuck(_)), "{error}");
    assert!(
        w.local.pins().unwrap().is_empty(),
        "nothing half-fetched is pinned"
    );
    let again = world(10, &[(2, Behaviour::Honest)]);
    let net = again.net.clone();
    let fetched = fetch(&w.local, &net, w.root, providers(&[2]), 2, "local")
        .await
        .unwrap();
    assert_eq!(
        fetched.held, 5,
        "the root and four leaves were kept: {fetched:?}"
    );
    assert_eq!(fetched.from.values().sum::<usize>(), w.blocks - 5);
}

#[tokio::test]
async fn a_block_nobody_has_is_a_clear_error() {
    let w = world(2, &[(1, Behaviour::Honest)]);
    let other = Importer::new(CidVersion::V0)
        .add_bytes(b"nobody has this")
        .root;
    let error = fetch(&w.local, &w.net, other, providers(&[1]), 2, "local")
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), format!("no provider has block {other}"));
}
