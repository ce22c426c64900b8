//! CSTORE on a real node agent: a workload runs Debian's `redis-cli` against `CSTORE_REDIS_URL`
//! from inside its container, in the namespace its oracle assigned its project, and reads what
//! another project granted and nothing else; the operator reads and writes any namespace (but
//! the oracles' system one) with `r1ctl cstore` over the node's socket.
//! Needs root (containerd).

use std::time::Duration;

use r1_e2e::images::OciImageBuilder;
use r1_e2e::node::workload;
use r1_e2e::peer_rig::PeerRig;

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn a_workload_uses_cstore_with_redis_cli_in_the_namespaces_its_oracle_assigns() {
    let rig = PeerRig::start(1).expect("rig");
    let node = &rig.nodes()[0];
    // Debian's redis-cli, unmodified, with its libraries.
    let reference = OciImageBuilder::new("r1.test/redis-cli:1")
        .applets(&["sh", "sleep", "cat", "grep", "printf"])
        .host_program("/usr/bin/redis-cli")
        .expect("redis-cli (apt install redis-tools)")
        .write_archive(&node.images_dir().join("redis-cli.tar"))
        .expect("image")
        .reference;
    // Jobs 21 and 22 belong to two projects; the first grants the second reading.
    rig.oracle.publish_cstore_rules(
        &[
            (21, "p.test.shop"),
            (22, "p.test.stats"),
            (23, "p.test.other"),
        ],
        &[("p.test.shop", "p.test.stats")],
    );
    let redis = |job: u64, script: &str| {
        let mut spec = workload(job, 0, &reference, 32);
        spec.command = vec!["sh".into(), "-c".into()];
        spec.args = vec![format!(
            "port=${{CSTORE_REDIS_URL##*:}}; r() {{ redis-cli -p $port \"$@\"; }}; \
             one() {{ printf \"$1\" | redis-cli -p $port; }}; \
             until r PING | grep -q PONG; do sleep 1; done; {script}; echo done; sleep 3600"
        )];
        rig.oracle.deploy(node.address, spec);
    };
    let log = |job: u64| {
        String::from_utf8_lossy(&node.r1ctl(&["logs", &format!("{job}/0")]).stdout).into_owned()
    };
    let finished = |job: u64| {
        assert!(
            r1_e2e::wait::until(WAIT, || log(job).contains("done")),
            "job {job} never finished; output: {}\nnode log:\n{}",
            log(job),
            node.log()
        );
        log(job)
    };

    redis(
        21,
        "r SET greeting hello; r GET greeting; r HSET h f v; r HGETALL h; r NAMESPACE",
    );
    let shop = finished(21);
    for reply in ["OK", "hello", "p.test.shop"] {
        assert!(shop.contains(reply), "{reply} missing: {shop}");
    }

    // Stats may read the shop's namespace but not write it; another project may not read it.
    redis(
        22,
        "one 'NAMESPACE p.test.shop\\nGET greeting\\nSET greeting bye\\nNAMESPACE p.test.other\\n'",
    );
    let stats = finished(22);
    assert!(stats.contains("hello"), "a granted read: {stats}");
    assert!(
        stats.contains("NOPERM job 22 may not write namespace p.test.shop"),
        "{stats}"
    );
    assert!(
        stats.contains("NOPERM job 22 may not read namespace p.test.other"),
        "{stats}"
    );
    redis(
        23,
        "r NAMESPACE p.test.shop; r SET mine 1; r NAMESPACE r1.system",
    );
    let other = finished(23);
    assert!(
        other.contains("NOPERM job 23 may not read namespace p.test.shop"),
        "{other}"
    );
    assert!(other.contains("OK"), "its own namespace works: {other}");
    assert!(other.contains("NOPERM the system namespace"), "{other}");
    let counted = || {
        node.metric("r1_node_cstore_ops_total{command=\"SET\"}") >= 2.0
            && node.metric("r1_node_cstore_denied_total") >= 4.0
    };
    assert!(
        r1_e2e::wait::until(Duration::from_secs(15), counted),
        "commands and refusals are counted:\n{}",
        node.metrics()
    );
    let read_back = node.r1ctl_cstore(&["get", "p.test.shop", "greeting"]);
    assert_eq!(
        String::from_utf8_lossy(&read_back.stdout),
        "\"hello\"\n",
        "the grant was read-only"
    );
}

#[test]
fn the_operator_reads_and_writes_any_namespace_with_r1ctl_cstore() {
    let rig = PeerRig::start(1).expect("rig");
    let node = &rig.nodes()[0];
    let run = |args: &[&str]| {
        let output = node.r1ctl_cstore(args);
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let ok = |args: &[&str]| {
        let (success, stdout, stderr) = run(args);
        assert!(
            success,
            "r1ctl cstore {args:?}: {stderr}\nnode log:\n{}",
            node.log()
        );
        stdout
    };
    let refused = |args: &[&str]| {
        let (success, stdout, stderr) = run(args);
        assert!(!success, "r1ctl cstore {args:?} succeeded: {stdout}");
        stderr
    };

    assert_eq!(ok(&["set", "ops", "greeting", "hello world"]), "OK\n");
    assert_eq!(ok(&["get", "ops", "greeting"]), "\"hello world\"\n");
    assert_eq!(
        ok(&["get", "job-5", "greeting"]),
        "(nil)\n",
        "namespaces apart"
    );
    assert_eq!(ok(&["set", "ops", "brief", "x", "--ex", "600"]), "OK\n");

    assert_eq!(
        ok(&["hset", "job-5", "user:1", "name", "ada"]),
        "(integer) 1\n"
    );
    ok(&["hset", "job-5", "user:1", "lang", "rust"]);
    assert_eq!(ok(&["hget", "job-5", "user:1", "name"]), "\"ada\"\n");
    assert_eq!(
        ok(&["hgetall", "job-5", "user:1"]),
        "1) \"lang\"\n2) \"rust\"\n3) \"name\"\n4) \"ada\"\n"
    );
    assert_eq!(ok(&["hgetall", "job-5", "nobody"]), "(empty array)\n");

    ok(&["set", "job-5", "user:2", "grace"]);
    ok(&["set", "job-5", "other", "x"]);
    assert_eq!(
        ok(&["keys", "job-5", "user:*"]),
        "1) \"user:1\"\n2) \"user:2\"\n"
    );
    assert_eq!(
        ok(&["keys", "job-5"]),
        "1) \"other\"\n2) \"user:1\"\n3) \"user:2\"\n"
    );

    assert_eq!(ok(&["del", "ops", "greeting", "missing"]), "(integer) 1\n");
    assert_eq!(ok(&["get", "ops", "greeting"]), "(nil)\n");

    let wrong_type = refused(&["get", "job-5", "user:1"]);
    assert!(wrong_type.contains("(error) WRONGTYPE"), "{wrong_type}");
    let bad = refused(&["set", "Not OK", "k", "v"]);
    assert!(
        bad.contains("namespace \"Not OK\"") && bad.contains("1 to 128 characters"),
        "{bad}"
    );
    let nameless = refused(&["get", "", "k"]);
    assert!(nameless.contains("a namespace is required"), "{nameless}");

    let stat = ok(&["stat"]);
    assert!(stat.contains("namespaces: 2\n"), "{stat}");
    let row = |name: &str, entries: &str| {
        stat.lines()
            .any(|l| l.split_whitespace().eq([name, entries]))
    };
    assert!(row("job-5", "4") && row("ops", "2"), "{stat}");
}
