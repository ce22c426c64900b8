//! CSTORE on a real node agent: a workload speaks the Redis protocol to `CSTORE_REDIS_URL`
//! from inside its container, in its job's namespace, and another job does not see its keys.
//! Needs root (containerd).

use std::time::Duration;

use r1_e2e::images::OciImageBuilder;
use r1_e2e::node::workload;
use r1_e2e::peer_rig::PeerRig;

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn a_workload_uses_cstore_over_the_redis_protocol_in_its_own_namespace() {
    let rig = PeerRig::start(1).expect("rig");
    let node = &rig.nodes()[0];
    let reference = OciImageBuilder::new("r1.test/redis-client:1")
        .applets(&["sh", "nc", "printf", "sleep", "cat", "grep"])
        .write_archive(&node.images_dir().join("redis-client.tar"))
        .expect("image")
        .reference;
    let script = |commands: &str, expect: &str| {
        format!(
            "port=${{CSTORE_REDIS_URL##*:}}; \
             until printf '{commands}' | nc -w 2 127.0.0.1 $port > /tmp/out && grep -q '{expect}' /tmp/out; \
             do sleep 1; done; echo \"replies: $(cat /tmp/out)\"; sleep 3600"
        )
    };
    let mut writer = workload(21, 0, &reference, 32);
    writer.command = vec!["sh".into(), "-c".into()];
    writer.args = vec![script(
        "SET greeting hello\\r\\nGET greeting\\r\\n",
        "hello",
    )];
    rig.oracle.deploy(node.address, writer);
    let log = |job: u64| {
        String::from_utf8_lossy(&node.r1ctl(&["logs", &format!("{job}/0")]).stdout).into_owned()
    };
    assert!(
        r1_e2e::wait::until(WAIT, || log(21).contains("replies:")),
        "the writer never got its replies; output: {}\nnode log:\n{}",
        log(21),
        node.log()
    );
    let replies = log(21);
    assert!(
        replies.contains("+OK") && replies.contains("hello"),
        "{replies}"
    );

    let mut other = workload(22, 0, &reference, 32);
    other.command = vec!["sh".into(), "-c".into()];
    other.args = vec![script("EXISTS greeting\\r\\n", ":")];
    rig.oracle.deploy(node.address, other);
    assert!(
        r1_e2e::wait::until(WAIT, || log(22).contains("replies:")),
        "the other job never got a reply; output: {}",
        log(22)
    );
    assert!(
        log(22).contains(":0"),
        "another job's namespace: {}",
        log(22)
    );
}
