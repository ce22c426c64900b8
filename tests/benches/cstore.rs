//! CSTORE benchmark, printed as numbers: `redis-benchmark` (Debian's `redis-tools`) against
//! CSTORE's Redis-protocol server and against a `redis-server` started beside it in the same
//! run, GET and SET, unpipelined and with `-P 16`; then the replication lag: three replicas,
//! each with the node agent's replication over its own r1-p2p on loopback, and the time from a
//! write on one until it is readable on the other two (p50, p99).
//!
//! Run with `make bench` (`cargo bench -p r1-e2e --bench cstore --profile dev`). Requests per
//! test: `R1_BENCH_REDIS_REQUESTS` (default 100000), times the pipeline depth.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use r1_cstore::engine::Engine;
use r1_e2e::process::ChildGuard;
use r1_protocol::Identity;

fn requests() -> usize {
    std::env::var("R1_BENCH_REDIS_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// Requests per second for each of GET and SET against `port`, with `pipeline` commands in
/// flight per connection, on redis-benchmark's one key or, with `keys`, on that many random
/// ones.
fn redis_benchmark(port: u16, pipeline: usize, keys: Option<u32>) -> (f64, f64) {
    let output = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "set,get",
            "-q",
        ])
        .args(
            keys.map(|n| ["-r".to_owned(), n.to_string()])
                .into_iter()
                .flatten(),
        )
        // Pipelined runs send as many requests per pipeline slot, so they last about as long.
        .args([
            "-n",
            &(requests() * pipeline).to_string(),
            "-P",
            &pipeline.to_string(),
        ])
        .output()
        .expect("redis-benchmark (apt install redis-tools)");
    let text = String::from_utf8_lossy(&output.stdout);
    let rate = |name: &str| {
        text.split(['\r', '\n'])
            .filter_map(|line| line.strip_prefix(&format!("{name}: ")))
            .filter_map(|rest| rest.split(' ').next()?.parse::<f64>().ok())
            .next_back()
            .unwrap_or_else(|| panic!("no {name} figure in: {text}"))
    };
    (rate("GET"), rate("SET"))
}

/// Keys of the random-key runs (redis-benchmark's `-r`).
const RANDOM_KEYS: u32 = 100_000;

/// Writes measured for the replication lag: `R1_BENCH_CSTORE_LAG_WRITES` (default 500).
fn lag_writes() -> usize {
    std::env::var("R1_BENCH_CSTORE_LAG_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

/// One replica: an engine replicated by the node agent's code over its own peer-to-peer layer.
struct Replica {
    engine: Arc<Engine>,
    client: r1_p2p::Client,
    address: r1_protocol::Address,
    addrs: Vec<r1_p2p::Multiaddr>,
}

async fn replica(dir: &std::path::Path) -> Replica {
    let identity = Identity::generate();
    let engine =
        Arc::new(Engine::open(dir, identity.clone(), 5_000, Default::default()).expect("engine"));
    let mut config = r1_p2p::Config::new(identity.clone(), "bench");
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")];
    config.request_protocols = vec![r1_node::kv::replication::PROTOCOL.into()];
    let mut registry = prometheus_client::registry::Registry::default();
    let (client, events) = r1_p2p::P2p::start(config, &mut registry)
        .await
        .expect("p2p");
    client
        .subscribe(r1_node::kv::replication::TOPIC)
        .await
        .expect("subscribe");
    let metrics = Arc::new(r1_node::kv::metrics::KvMetrics::register(&mut registry));
    let replication =
        r1_node::kv::replication::Replication::new(engine.clone(), client.clone(), metrics, 60_000);
    tokio::spawn(replication.clone().publish_writes());
    tokio::spawn(replication.serve(events));
    let addrs = client.listen_addrs().await.expect("addrs");
    Replica {
        engine,
        client,
        address: identity.address(),
        addrs,
    }
}

/// Milliseconds from a write on replica 0 until both others read it, for `writes` writes.
async fn replication_lags(dir: &std::path::Path, writes: usize) -> Vec<f64> {
    let mut replicas = Vec::new();
    for i in 0..3 {
        replicas.push(replica(&dir.join(format!("replica-{i}"))).await);
    }
    let roster = r1_p2p::ParsedRoster::new(
        r1_protocol::now_ms(),
        replicas.iter().map(|r| (r.address, r.addrs.clone())),
    );
    for r in &replicas {
        r.client.set_roster(roster.clone()).await.expect("roster");
    }
    // Until the gossip mesh carries a write to both others.
    let readable = |r: &Replica, key: &str| {
        r.engine
            .execute(
                "bench",
                &[b"GET".to_vec(), key.as_bytes().to_vec()],
                r1_protocol::now_ms(),
            )
            .is_ok_and(|(reply, _)| reply != r1_cstore::resp::Reply::Bulk(None))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for attempt in 0.. {
        let key = format!("warm-{attempt}");
        let set = [b"SET".to_vec(), key.clone().into_bytes(), b"1".to_vec()];
        replicas[0]
            .engine
            .execute("bench", &set, r1_protocol::now_ms())
            .expect("set");
        tokio::time::sleep(Duration::from_millis(200)).await;
        if replicas[1..].iter().all(|r| readable(r, &key)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replicas never connected"
        );
    }
    let mut lags = Vec::with_capacity(writes);
    for i in 0..writes {
        let key = format!("lag-{i}");
        let set = [b"SET".to_vec(), key.clone().into_bytes(), vec![b'v'; 64]];
        let start = std::time::Instant::now();
        replicas[0]
            .engine
            .execute("bench", &set, r1_protocol::now_ms())
            .expect("set");
        while !replicas[1..].iter().all(|r| readable(r, &key)) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "write {i} never arrived"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        lags.push(start.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    lags.sort_by(f64::total_cmp);
    lags
}

fn main() {
    let dir = tempfile::Builder::new()
        .prefix("r1-bench-cstore")
        .tempdir_in("/tmp")
        .expect("temp dir");
    // The Redis port as a workload reaches it: job 1, in the namespace its oracle assigned.
    let oracle = Identity::generate();
    let engine = Arc::new(
        Engine::open(
            &dir.path().join("db"),
            Identity::generate(),
            5_000,
            [oracle.address()].into(),
        )
        .expect("engine"),
    );
    let stamp = r1_cstore::Stamp {
        wall_ms: r1_protocol::now_ms(),
        logical: 0,
    };
    let rule = r1_cstore::Entry::signed(
        r1_cstore::access::job_key(1),
        Some(b"bench".to_vec()),
        None,
        stamp,
        &oracle,
    )
    .expect("rule");
    let merged = engine
        .apply_remote(vec![rule], r1_protocol::now_ms())
        .expect("rule");
    assert_eq!(merged.new.len(), 1, "the oracle's rule is taken");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let cstore_port = listener.local_addr().expect("addr").port();
    runtime.spawn(r1_cstore::server::serve(
        listener,
        engine.clone(),
        r1_cstore::server::Caller {
            who: r1_cstore::access::Principal::Job(1),
            namespace: None,
        },
        Arc::new(r1_cstore::replicas::Alone),
        r1_protocol::now_ms,
    ));
    // Seal as the node does, with its delay and batch size (its gossip is measured below, on
    // three replicas), on a thread of its own as the node's second runtime worker would.
    std::thread::spawn(move || {
        let sealing = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        sealing.block_on(async move {
            while engine
                .next_sealed(Duration::from_millis(2), 4096)
                .await
                .is_ok()
            {}
        });
    });

    let redis_port = r1_e2e::free_port();
    let mut command = Command::new("redis-server");
    command
        .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::null());
    let _redis = ChildGuard::spawn_logged(&mut command, "redis-server", dir.path())
        .expect("redis-server (apt install redis-server)");
    assert!(
        r1_e2e::wait::until(Duration::from_secs(10), || r1_e2e::wait::tcp_accepts(
            redis_port
        )),
        "redis-server did not start"
    );

    // redis-benchmark's own default (one key), then 100,000 random keys: every write a new
    // key to seal and store, as apps mostly write.
    for (pipeline, keys) in [(1, None), (16, None), (16, Some(RANDOM_KEYS))] {
        let (cstore_get, cstore_set) = redis_benchmark(cstore_port, pipeline, keys);
        let (redis_get, redis_set) = redis_benchmark(redis_port, pipeline, keys);
        let label = match keys {
            Some(n) => format!("-P {pipeline:<2} -r {n}"),
            None => format!("-P {pipeline:<2}"),
        };
        println!(
            "redis-benchmark {label} GET: CSTORE {cstore_get:>9.0}/s  redis-server {redis_get:>9.0}/s  ratio {:.2} (target >= 0.5)",
            cstore_get / redis_get
        );
        println!(
            "redis-benchmark {label} SET: CSTORE {cstore_set:>9.0}/s  redis-server {redis_set:>9.0}/s  ratio {:.2} (target >= 0.25)",
            cstore_set / redis_set
        );
    }

    let writes = lag_writes();
    let lags = runtime.block_on(replication_lags(dir.path(), writes));
    let at = |q: f64| lags[((lags.len() - 1) as f64 * q).round() as usize];
    println!(
        "replication lag (write on one node -> readable on the other two, {writes} writes): p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms (target p99 <= 100 ms)",
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
