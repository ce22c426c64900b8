//! R1FS benchmarks, printed as numbers:
//!
//! * add throughput: a file imported into a node's block store (chunked, hashed, written,
//!   pinned) beside `sha256sum` of the same file, alternating, in the same run;
//! * fetch throughput over real r1-p2p on 127.0.0.1 from one provider and from three, every
//!   provider's answers rate-limited to the same bandwidth;
//! * time to first byte of `cat` on a node that does not hold the file (provider discovery,
//!   then the first blocks of a fetch that continues behind the reader).
//!
//! Run with `make bench` (`cargo bench -p r1-e2e --bench r1fs --profile dev`). Sizes:
//! `R1_BENCH_ADD_MIB` (default 256), `R1_BENCH_GET_MIB` (64), `R1_BENCH_PROVIDER_MIBPS` (32).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use r1_e2e::noise::noise;
use r1_node::files::metrics::FilesMetrics;
use r1_node::files::{Files, Net};
use r1_p2p::{Client, Event, P2p, ParsedRoster};
use r1_protocol::{Address, Identity};
use r1_r1fs::blocks::BlockStore;
use r1_r1fs::exchange::{self, Peers};
use r1_r1fs::unixfs::{Cid, CidVersion, Importer};

const NETWORK: &str = "r1-bench";

fn env_mib(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mibps(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / took.as_secs_f64()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn add_against_sha256sum(dir: &std::path::Path) {
    let mib = env_mib("R1_BENCH_ADD_MIB", 256);
    let file = dir.join("add.bin");
    std::fs::write(&file, noise(mib << 20, 0x9e37_79b9)).expect("write file");
    let mut adds = Vec::new();
    let mut sums = Vec::new();
    for round in 0..3 {
        let started = Instant::now();
        let out = std::process::Command::new("sha256sum")
            .arg(&file)
            .output()
            .expect("sha256sum");
        assert!(out.status.success());
        sums.push(started.elapsed());

        let store_dir = dir.join(format!("store-{round}"));
        let store = BlockStore::open(&store_dir, u64::MAX).expect("store");
        let started = Instant::now();
        let mut lease = store.lease();
        let added = Importer::new(CidVersion::V0)
            .add_path(&file, &mut lease)
            .expect("add");
        store.pin(&added.cid, "bench").expect("pin");
        drop(lease);
        adds.push(started.elapsed());
        drop(store);
        std::fs::remove_dir_all(&store_dir).expect("remove store");
    }
    let (add, sum) = (median(adds), median(sums));
    println!(
        "r1fs add {mib} MiB (store, pin)      median {:>7.1} MiB/s",
        mibps(mib << 20, add)
    );
    println!(
        "sha256sum of the same file          median {:>7.1} MiB/s",
        mibps(mib << 20, sum)
    );
    println!(
        "add / sha256sum throughput          {:.2} (target >= 0.5)",
        sum.as_secs_f64() / add.as_secs_f64()
    );
}

/// A node of the fetch benchmark: a peer-to-peer client and a block store, answering block
/// requests no faster than `mibps` (its uplink).
struct BenchNode {
    address: Address,
    client: Client,
    addrs: Vec<r1_p2p::Multiaddr>,
    store: Arc<BlockStore>,
    registry: Registry,
}

async fn bench_node(dir: &std::path::Path, mibps: Option<f64>) -> BenchNode {
    let identity = Identity::generate();
    let mut config = r1_p2p::Config::new(identity.clone(), NETWORK);
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")];
    config.request_protocols = vec!["r1fs".into()];
    let mut registry = Registry::default();
    let (client, mut events) = P2p::start(config, &mut registry).await.expect("p2p");
    let store = Arc::new(BlockStore::open(dir, u64::MAX).expect("store"));
    let serving = store.clone();
    let uplink = Arc::new(Mutex::new(Instant::now()));
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let Event::Request { bytes, reply, .. } = event else {
                continue;
            };
            let store = serving.clone();
            let uplink = uplink.clone();
            tokio::spawn(async move {
                let answer =
                    tokio::task::spawn_blocking(move || exchange::answer(&store, &bytes, 4 << 20))
                        .await;
                let Ok(Ok(answer)) = answer else {
                    return;
                };
                if let Some(mibps) = mibps {
                    let cost = Duration::from_secs_f64(answer.len() as f64 / (mibps * 1048576.0));
                    let due = {
                        let mut free_at = uplink.lock().expect("uplink");
                        *free_at = (*free_at).max(Instant::now()) + cost;
                        *free_at
                    };
                    tokio::time::sleep_until(due.into()).await;
                }
                let _ = reply.send(answer);
            });
        }
    });
    BenchNode {
        address: identity.address(),
        addrs: client.listen_addrs().await.expect("addrs"),
        client,
        store,
        registry,
    }
}

#[derive(Clone)]
struct Direct(Client);

impl Peers for Direct {
    type Error = r1_p2p::Error;

    async fn request(&self, peer: Address, bytes: Vec<u8>) -> Result<Vec<u8>, r1_p2p::Error> {
        self.0.request(peer, "r1fs", bytes).await
    }
}

async fn connect(nodes: &[&BenchNode]) {
    let roster = ParsedRoster::new(1, nodes.iter().map(|n| (n.address, n.addrs.clone())));
    for node in nodes {
        node.client
            .set_roster(roster.clone())
            .await
            .expect("roster");
    }
    let others = nodes.len() - 1;
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in nodes {
        while node.client.connected_peers().await.expect("peers").len() < others {
            assert!(Instant::now() < deadline, "nodes did not connect");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn fetch_from_one_and_three(dir: &std::path::Path) {
    let mib = env_mib("R1_BENCH_GET_MIB", 64);
    let rate = env_mib("R1_BENCH_PROVIDER_MIBPS", 32) as f64;
    let file = noise(mib << 20, 0x9e37_79b9);
    let mut providers = Vec::new();
    for i in 0..3 {
        providers.push(bench_node(&dir.join(format!("provider-{i}")), Some(rate)).await);
    }
    let mut root = None;
    for provider in &providers {
        let mut lease = provider.store.lease();
        let added = Importer::new(CidVersion::V1)
            .add_reader(file.as_slice(), &mut lease)
            .expect("add");
        provider.store.pin(&added.cid, "bench").expect("pin");
        root = Some(added.cid);
    }
    let root: Cid = root.expect("root");
    let mut results = HashMap::new();
    for count in [1usize, 3] {
        let mut samples = Vec::new();
        for round in 0..3 {
            let fetcher = bench_node(&dir.join(format!("fetcher-{count}-{round}")), None).await;
            let mut all: Vec<&BenchNode> = providers.iter().collect();
            all.push(&fetcher);
            connect(&all).await;
            let from: Vec<Address> = providers[..count].iter().map(|p| p.address).collect();
            let started = Instant::now();
            exchange::fetch(
                &fetcher.store,
                &Direct(fetcher.client.clone()),
                root,
                from,
                8,
                "bench",
            )
            .await
            .expect("fetch");
            samples.push(started.elapsed());
        }
        let took = median(samples);
        println!(
            "fetch {mib} MiB from {count} provider(s) at {rate} MiB/s each  median {:>7.1} MiB/s ({:.2} s)",
            mibps(mib << 20, took),
            took.as_secs_f64()
        );
        results.insert(count, took);
    }
    println!(
        "3 providers / 1 provider throughput {:.2} (target >= 2)",
        results[&1].as_secs_f64() / results[&3].as_secs_f64()
    );

    let mut ttfb = Vec::new();
    for round in 0..5 {
        let mut reader = bench_node(&dir.join(format!("reader-{round}")), None).await;
        let mut all: Vec<&BenchNode> = providers.iter().collect();
        all.push(&reader);
        connect(&all).await;
        let metrics = Arc::new(FilesMetrics::register(&mut reader.registry));
        let files = Files::new(
            reader.store.clone(),
            Net::new(reader.client.clone(), metrics.clone()),
            &[],
            metrics,
        );
        let started = Instant::now();
        let mut chunks = files.cat(root, "bench", None).await.expect("cat");
        let first = chunks.recv().await.expect("a chunk").expect("bytes");
        ttfb.push(started.elapsed());
        assert!(!first.is_empty());
        while chunks.recv().await.is_some() {}
    }
    println!(
        "cat time to first byte (3 providers at {rate} MiB/s, {mib} MiB file)  median {:>6.1} ms",
        median(ttfb).as_secs_f64() * 1e3
    );
}

fn main() {
    let dir = tempfile::Builder::new()
        .prefix("r1-bench-fs")
        .tempdir_in("/tmp")
        .expect("temp dir");
    add_against_sha256sum(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    runtime.block_on(fetch_from_one_and_three(dir.path()));
}
