//! CSTORE benchmark, printed as numbers: `redis-benchmark` (Debian's `redis-tools`) against
//! CSTORE's Redis-protocol server and against a `redis-server` started beside it in the same
//! run, GET and SET, unpipelined and with `-P 16`.
//!
//! Run with `make bench` (`cargo bench -p r1-e2e --bench cstore --profile dev`). Requests per
//! test: `R1_BENCH_REDIS_REQUESTS` (default 100000).

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
/// flight per connection.
fn redis_benchmark(port: u16, pipeline: usize) -> (f64, f64) {
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
        .args(["-n", &requests().to_string(), "-P", &pipeline.to_string()])
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

fn main() {
    let dir = tempfile::Builder::new()
        .prefix("r1-bench-cstore")
        .tempdir_in("/tmp")
        .expect("temp dir");
    let engine = Arc::new(
        Engine::open(&dir.path().join("db"), Identity::generate(), 5_000).expect("engine"),
    );
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
        engine,
        "bench".into(),
        r1_protocol::now_ms,
    ));

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

    for pipeline in [1, 16] {
        let (cstore_get, cstore_set) = redis_benchmark(cstore_port, pipeline);
        let (redis_get, redis_set) = redis_benchmark(redis_port, pipeline);
        println!(
            "redis-benchmark -P {pipeline:<2} GET: CSTORE {cstore_get:>9.0}/s  redis-server {redis_get:>9.0}/s  ratio {:.2} (target >= 0.5)",
            cstore_get / redis_get
        );
        println!(
            "redis-benchmark -P {pipeline:<2} SET: CSTORE {cstore_set:>9.0}/s  redis-server {redis_set:>9.0}/s  ratio {:.2} (target >= 0.25)",
            cstore_set / redis_set
        );
    }
}
