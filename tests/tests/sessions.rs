//! A CSP's view into its running replicas through real oracles: three oracles and two nodes on
//! a real chain, broker and containerd. `r1ctl logs` prints what the replica wrote, followed
//! until the reader leaves; `r1ctl exec` runs a command inside it with its stdout, stderr, stdin
//! and exit status; another CSP's key gets nothing but `not found`; the node logs who ran
//! what; and after a rollout the old generation's log is still there with `--previous`.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use r1_e2e::network::{HTTPD_IMAGE, Network, NetworkSettings};
use r1_e2e::scenario::{EXAMPLES, network_logs, printed, wait_running};
use r1_e2e::wait::{until, until_every};
use r1_protocol::Identity;

/// What the replica prints when it starts.
const GREETING: &str = "hello-from-the-replica";

/// The job: one replica that prints `greeting`, then serves HTTP.
fn job_manifest(greeting: &str) -> String {
    serde_yaml::to_string(&serde_json::json!({
        "apiVersion": "deeploy.ratio1.ai/v1alpha1",
        "kind": "DeeployJob",
        "metadata": {"name": "talker"},
        "spec": {
            "projectRef": {"name": "hello"},
            "escrowRef": {"name": "acme-escrow"},
            "image": HTTPD_IMAGE,
            "command": ["sh", "-c", format!("echo {greeting}; exec httpd -f -p 8080 -h /www")],
            "ports": [{"containerPort": 8080}],
            "resources": {"cpu": "250m", "memory": "128Mi"},
            "replicas": 1,
            "durationEpochs": 30,
        }
    }))
    .expect("yaml")
}

#[test]
fn the_owner_reads_logs_and_runs_commands_and_nobody_else_does() {
    let network = Network::start(&NetworkSettings {
        nodes: 2,
        ..NetworkSettings::default()
    })
    .expect("network");
    let manifest = network.scratch_dir().join("talker.yaml");
    std::fs::write(&manifest, job_manifest(GREETING)).expect("manifest");
    let applied = network
        .r1ctl(&[
            "apply",
            "-f",
            &format!("{EXAMPLES}/escrow.yaml"),
            "-f",
            &format!("{EXAMPLES}/project.yaml"),
            "-f",
            &manifest.display().to_string(),
            "--no-pin",
        ])
        .expect("r1ctl apply");
    assert!(applied.status.success(), "{}", printed(&applied));
    wait_running(&network, "talker", 1, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}\n{}", network_logs(&network)));

    // Logs: what the replica wrote, from its node, through the oracle.
    let mut logs = None;
    let read = until_every(Duration::from_secs(30), Duration::from_millis(250), || {
        let output = network.r1ctl(&["logs", "djob/talker"]).expect("r1ctl logs");
        let found = output.status.success()
            && String::from_utf8_lossy(&output.stdout).contains(&format!("[replica 0] {GREETING}"));
        logs = Some(output);
        found
    });
    let logs = logs.expect("ran");
    assert!(read, "{}\n{}", printed(&logs), network_logs(&network));

    // Since: only what the replica wrote lately (here, a line written into its log by exec).
    std::thread::sleep(Duration::from_secs(3));
    let wrote = network
        .r1ctl(&[
            "exec",
            "djob/talker",
            "--",
            "sh",
            "-c",
            "echo lately > /proc/1/fd/1",
        ])
        .expect("r1ctl exec");
    assert!(wrote.status.success(), "{}", printed(&wrote));
    let recent = network
        .r1ctl(&["logs", "--since", "2s", "--replica", "0", "djob/talker"])
        .expect("r1ctl logs --since");
    assert_eq!(
        String::from_utf8_lossy(&recent.stdout),
        "lately\n",
        "{}",
        printed(&recent)
    );

    // Exec: output on its streams and the exit status passed back.
    let started = Instant::now();
    let exec = network
        .r1ctl(&[
            "exec",
            "djob/talker",
            "--",
            "sh",
            "-c",
            "echo to-stdout; echo to-stderr >&2; exit 3",
        ])
        .expect("r1ctl exec");
    let exec_time = started.elapsed();
    assert_eq!(exec.status.code(), Some(3), "{}", printed(&exec));
    assert_eq!(String::from_utf8_lossy(&exec.stdout), "to-stdout\n");
    assert_eq!(String::from_utf8_lossy(&exec.stderr), "to-stderr\n");
    println!("exec round trip: {exec_time:?}");

    // A terminal when asked for, and only then.
    let probe = "if test -t 1; then echo terminal; else echo pipe; fi";
    let on_tty = network
        .r1ctl(&["exec", "-t", "djob/talker", "--", "sh", "-c", probe])
        .expect("r1ctl exec -t");
    assert_eq!(on_tty.status.code(), Some(0), "{}", printed(&on_tty));
    assert_eq!(
        String::from_utf8_lossy(&on_tty.stdout).trim_end(),
        "terminal",
        "{}",
        printed(&on_tty)
    );
    let no_tty = network
        .r1ctl(&["exec", "djob/talker", "--", "sh", "-c", probe])
        .expect("r1ctl exec");
    assert_eq!(String::from_utf8_lossy(&no_tty.stdout), "pipe\n");

    // Stdin reaches the command; its end closes the command's input.
    let mut cat = network
        .r1ctl_command()
        .expect("r1ctl")
        .args(["exec", "-i", "djob/talker", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("r1ctl exec -i");
    cat.stdin
        .take()
        .expect("stdin")
        .write_all(b"piped input\n")
        .expect("write stdin");
    let cat = cat.wait_with_output().expect("r1ctl exec -i");
    assert_eq!(cat.status.code(), Some(0), "{}", printed(&cat));
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "piped input\n");

    // Another CSP's key: the job does not exist for it, on either route.
    let stranger = network.scratch_dir().join("stranger.key");
    r1_protocol::keyfile::write(&stranger, &Identity::generate()).expect("key");
    for args in [
        vec!["logs", "djob/talker"],
        vec!["exec", "djob/talker", "--", "id"],
    ] {
        let refused = network
            .r1ctl_command()
            .expect("r1ctl")
            .env("R1_KEY", &stranger)
            .args(&args)
            .output()
            .expect("r1ctl as a stranger");
        assert!(!refused.status.success(), "{}", printed(&refused));
        assert!(
            printed(&refused).contains("(404)"),
            "{args:?}: {}",
            printed(&refused)
        );
        assert!(refused.stdout.is_empty(), "{}", printed(&refused));
    }

    // Following: new output arrives; when the reader leaves, the node ends the session.
    let mut follow = network
        .r1ctl_command()
        .expect("r1ctl")
        .args(["logs", "-f", "--tail", "1", "--replica", "0", "djob/talker"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("r1ctl logs -f");
    let mut lines = BufReader::new(follow.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok);
    assert_eq!(first.as_deref(), Some("lately"), "the last line of the log");
    follow.kill().expect("stop following");
    let _ = follow.wait();

    // The node logged each session with the CSP who asked.
    let csp = network.csp().address().to_string();
    let node_logs: String = network.nodes().iter().map(|n| n.log()).collect();
    assert!(
        node_logs.contains("exec session opened") && node_logs.contains(&csp),
        "{node_logs}"
    );
    let followed = node_logs
        .lines()
        .find(|line| line.contains("logs session opened") && line.contains("follow=true"))
        .and_then(|line| line.split("session=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no followed session in the node logs: {node_logs}"));
    let ended = until(Duration::from_secs(20), || {
        network.nodes().iter().any(|n| {
            n.log().lines().any(|line| {
                line.contains("session ended") && line.contains(&format!("session={followed}"))
            })
        })
    });
    let traces: Vec<String> = network
        .oracles()
        .iter()
        .map(|o| o.log())
        .chain(network.nodes().iter().map(|n| n.log()))
        .flat_map(|log| {
            log.lines()
                .filter(|l| l.contains(&followed))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        ended,
        "the followed session {followed} never ended on its node:\n{}",
        traces.join("\n")
    );

    // A rollout: the new generation's log by default, the old one's with --previous (its
    // node kept it when it removed the container).
    std::fs::write(&manifest, job_manifest("second-generation")).expect("manifest");
    let applied = network
        .r1ctl(&["apply", "-f", &manifest.display().to_string(), "--no-pin"])
        .expect("r1ctl apply");
    assert!(applied.status.success(), "{}", printed(&applied));
    let mut previous = None;
    // Slowly: the API limits each key to 10 requests a second.
    let kept = until_every(Duration::from_secs(90), Duration::from_secs(1), || {
        let now = network.r1ctl(&["logs", "djob/talker"]).expect("r1ctl logs");
        if !String::from_utf8_lossy(&now.stdout).contains("[replica 0] second-generation") {
            return false;
        }
        let old = network
            .r1ctl(&["logs", "--previous", "djob/talker"])
            .expect("r1ctl logs --previous");
        let found = old.status.success()
            && String::from_utf8_lossy(&old.stdout)
                .contains(&format!("[replica 0, ended] {GREETING}"));
        previous = Some(old);
        found
    });
    assert!(
        kept,
        "{}\n{}",
        previous.as_ref().map(printed).unwrap_or_default(),
        network_logs(&network)
    );
    let one = network
        .r1ctl(&["logs", "--previous", "--replica", "0", "djob/talker"])
        .expect("r1ctl logs --previous --replica 0");
    assert!(one.status.success(), "{}", printed(&one));
    assert!(
        String::from_utf8_lossy(&one.stdout).starts_with(GREETING),
        "{}",
        printed(&one)
    );
    assert!(
        String::from_utf8_lossy(&one.stderr).contains("replica 0 no longer runs"),
        "{}",
        printed(&one)
    );
}
