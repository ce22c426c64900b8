//! A call between two jobs of a project across nodes, against a direct TCP connection on
//! loopback, in the same run: two node meshes (`r1_node::services`) joined by real r1-p2p on
//! 127.0.0.1, the caller's connection forwarded by one over a `svc/1` stream to the other,
//! which checks the call against its table and connects to the served port — here an echo
//! server on 127.0.0.1 (the replicas' namespaces are this process's own, so no container is
//! needed and only the mesh's path is measured).
//!
//! Printed: round trip of 64 bytes on an open connection (p50, p99), a new connection's first
//! round trip (p50), and one-way throughput of `R1_BENCH_SVC_MIB` MiB (default 256).
//!
//! Run with `make bench` (`cargo bench -p r1-e2e --bench services --profile dev`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use r1_node::metrics::Metrics;
use r1_node::services::plan::Listener;
use r1_node::services::{MeshParts, ServiceMesh};
use r1_node::state::NodeState;
use r1_p2p::{Client, P2p, ParsedRoster};
use r1_protocol::messages::WorkloadId;
use r1_protocol::services::{ProjectJob, Replica, ServicePort, ServiceTable};
use r1_protocol::{Address, Identity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const API: u64 = 7;
const WEB: u64 = 8;

async fn peer(identity: &Identity) -> (Client, Vec<r1_p2p::Multiaddr>) {
    let mut config = r1_p2p::Config::new(identity.clone(), "r1-bench");
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")];
    let mut registry = Registry::default();
    let (client, mut events) = P2p::start(config, &mut registry).await.expect("p2p");
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let addrs = client.listen_addrs().await.expect("addrs");
    (client, addrs)
}

fn table(target: Address, web: Address, api: Address, port: u16) -> ServiceTable {
    ServiceTable {
        target,
        project: "bench/shop".into(),
        domain: "shop.internal".into(),
        issued_ms: 1,
        jobs: vec![
            ProjectJob {
                name: "api".into(),
                job: API,
                ports: vec![ServicePort {
                    name: "echo".into(),
                    port,
                }],
                replicas: vec![Replica {
                    node: api,
                    workload: WorkloadId::of(API, 1, 0),
                    ready: true,
                }],
                callers: vec![WEB],
            },
            ProjectJob {
                name: "web".into(),
                job: WEB,
                ports: vec![],
                replicas: vec![Replica {
                    node: web,
                    workload: WorkloadId::of(WEB, 1, 0),
                    ready: true,
                }],
                callers: vec![],
            },
        ],
    }
}

fn mesh(me: Address, p2p: Client, workload: WorkloadId, dir: &std::path::Path) -> ServiceMesh {
    let state = NodeState::new(BTreeMap::new());
    if let Ok(mut pids) = state.pids.lock() {
        pids.insert(workload, std::process::id());
    }
    ServiceMesh::new(MeshParts {
        me,
        p2p: Some(p2p),
        state,
        hosts_dir: dir.join(me.to_string()),
        metrics: Metrics::new(),
    })
    .expect("mesh")
}

async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = conn.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    port
}

async fn round_trips(addr: SocketAddr, count: usize) -> Vec<Duration> {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.set_nodelay(true).expect("nodelay");
    let mut buf = [0u8; 64];
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        conn.write_all(&[7u8; 64]).await.expect("write");
        conn.read_exact(&mut buf).await.expect("read");
        samples.push(started.elapsed());
    }
    samples
}

async fn first_round_trips(addr: SocketAddr, count: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(count);
    let mut buf = [0u8; 64];
    for _ in 0..count {
        let started = Instant::now();
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(&[7u8; 64]).await.expect("write");
        conn.read_exact(&mut buf).await.expect("read");
        samples.push(started.elapsed());
    }
    samples
}

/// MiB/s of `bytes` written through `addr` and echoed back.
async fn throughput(addr: SocketAddr, bytes: usize) -> f64 {
    let conn = TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = conn.into_split();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        let chunk = vec![1u8; 64 << 10];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            write.write_all(&chunk[..n]).await.expect("write");
            left -= n;
        }
        write
    });
    let mut buf = vec![0u8; 64 << 10];
    let mut got = 0;
    while got < bytes {
        let n = read.read(&mut buf).await.expect("read");
        assert!(n > 0, "the stream ended early");
        got += n;
    }
    let _ = writer.await;
    bytes as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64()
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("dir");
    let (web_id, api_id) = (Identity::generate(), Identity::generate());
    let (web_p2p, web_addrs) = peer(&web_id).await;
    let (api_p2p, api_addrs) = peer(&api_id).await;
    let (web, api) = (web_id.address(), api_id.address());
    let roster = ParsedRoster::new(1, [(web, web_addrs), (api, api_addrs)]);
    web_p2p.set_roster(roster.clone()).await.expect("roster");
    api_p2p.set_roster(roster).await.expect("roster");

    let port = echo_server().await;
    let caller = mesh(web, web_p2p, WorkloadId::of(WEB, 1, 0), dir.path());
    let server = mesh(api, api_p2p, WorkloadId::of(API, 1, 0), dir.path());
    caller.offer(table(web, web, api, port));
    server.offer(table(api, web, api, port));
    tokio::spawn(server.serve_peers());
    let front = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let via_mesh = front.local_addr().expect("addr");
    let listener = Listener {
        workload: WorkloadId::of(WEB, 1, 0),
        pid: std::process::id(),
        ip: std::net::Ipv4Addr::new(127, 0, 1, 1),
        port,
        job: API,
    };
    tokio::spawn(async move {
        while let Ok((conn, _)) = front.accept().await {
            let _ = conn.set_nodelay(true);
            tokio::spawn(caller.clone().forward(conn, listener));
        }
    });
    let direct = SocketAddr::from(([127, 0, 0, 1], port));
    let mib: usize = std::env::var("R1_BENCH_SVC_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    // Warm up both paths (the first stream dials the peer).
    round_trips(via_mesh, 100).await;
    round_trips(direct, 100).await;

    let mut open = (Vec::new(), Vec::new());
    let mut fresh = (Vec::new(), Vec::new());
    let mut rates = (Vec::new(), Vec::new());
    for _ in 0..3 {
        open.0.extend(round_trips(direct, 2000).await);
        open.1.extend(round_trips(via_mesh, 2000).await);
        fresh.0.extend(first_round_trips(direct, 200).await);
        fresh.1.extend(first_round_trips(via_mesh, 200).await);
        rates.0.push(throughput(direct, mib << 20).await);
        rates.1.push(throughput(via_mesh, mib << 20).await);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (rate_direct, rate_mesh) = (median(rates.0), median(rates.1));
    println!("service call across nodes (r1-p2p svc/1) against direct TCP on loopback, same run");
    println!(
        "round trip, open connection   direct p50 {:>7.1} µs p99 {:>7.1} µs   mesh p50 {:>7.1} µs p99 {:>7.1} µs   added p50 {:>7.1} µs",
        micros(percentile(&open.0, 0.5)),
        micros(percentile(&open.0, 0.99)),
        micros(percentile(&open.1, 0.5)),
        micros(percentile(&open.1, 0.99)),
        micros(percentile(&open.1, 0.5)) - micros(percentile(&open.0, 0.5)),
    );
    println!(
        "first round trip, new conn.   direct p50 {:>7.1} µs              mesh p50 {:>7.1} µs              added p50 {:>7.1} µs",
        micros(percentile(&fresh.0, 0.5)),
        micros(percentile(&fresh.1, 0.5)),
        micros(percentile(&fresh.1, 0.5)) - micros(percentile(&fresh.0, 0.5)),
    );
    println!(
        "throughput {mib} MiB echoed      direct {rate_direct:>7.1} MiB/s            mesh {rate_mesh:>7.1} MiB/s            ratio {:.2}",
        rate_mesh / rate_direct
    );
}
