//! CSTORE's Redis port answers Debian's `redis-cli` (from `redis-tools`, installed by
//! `make deps`) as redis-server would: strings, hashes, expiry, keys, errors and a pipe of
//! raw commands; and what it wrote is there after the engine is reopened.

use std::process::Command;
use std::sync::Arc;

use r1_cstore::engine::Engine;
use r1_protocol::Identity;

fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli (apt install redis-tools)");
    String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned()
}

#[test]
fn redis_cli_talks_to_cstore() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Identity::generate();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let serve = |engine: Engine| {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = runtime.spawn(r1_cstore::server::serve(
            listener,
            Arc::new(engine),
            r1_cstore::server::Caller {
                who: r1_cstore::access::Principal::Operator,
                namespace: Some("app".into()),
            },
            Arc::new(r1_cstore::replicas::Alone),
            r1_protocol::now_ms,
        ));
        (port, task)
    };
    let (port, task) =
        serve(Engine::open(dir.path(), node.clone(), 5_000, Default::default()).expect("engine"));

    assert_eq!(cli(port, &["PING"]), "PONG");
    assert_eq!(cli(port, &["SET", "greeting", "hello world"]), "OK");
    assert_eq!(cli(port, &["GET", "greeting"]), "hello world");
    assert_eq!(
        cli(port, &["HSET", "user:1", "name", "ada", "lang", "rust"]),
        "2"
    );
    assert_eq!(
        cli(port, &["HGETALL", "user:1"]),
        "lang\nrust\nname\nada",
        "fields by name"
    );
    assert_eq!(
        cli(port, &["GET", "user:1"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(cli(port, &["EXPIRE", "greeting", "100"]), "1");
    assert_eq!(cli(port, &["TTL", "greeting"]), "100");
    assert_eq!(cli(port, &["KEYS", "*"]), "greeting\nuser:1");
    assert!(cli(port, &["NOPE"]).starts_with("ERR unknown command 'NOPE'"));

    let piped = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'SET a 1\\r\\nSET b 2\\r\\nDEL a\\r\\n' | redis-cli -h 127.0.0.1 -p {port} --pipe"
        ))
        .output()
        .expect("redis-cli --pipe");
    let text = String::from_utf8_lossy(&piped.stdout);
    assert!(text.contains("errors: 0, replies: 3"), "{text}");

    task.abort();
    let _ = runtime.block_on(task);
    let (port, _task) =
        serve(Engine::open(dir.path(), node, 5_000, Default::default()).expect("reopen"));
    assert_eq!(
        cli(port, &["MGET", "a", "b", "greeting"]),
        "\n2\nhello world"
    );
}
